"""Rich rendering for the CLI: plan panel, live progress, summary, tables.

Everything here reads plain data (plans, progress records, outcomes) and prints; none of it
decides anything. Secret values never reach this module except as ``[secret]``.
"""

from __future__ import annotations

import dataclasses
import json
import os
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.markup import escape
from rich.panel import Panel
from rich.prompt import Confirm
from rich.table import Table
from rich.text import Text

_OP_STYLE = {
    "create": ("+", "green"),
    "update": ("~", "yellow"),
    "replace": ("+-", "magenta"),
    "create-replacement": ("+-", "magenta"),
    "delete-replaced": ("+-", "magenta"),
    "delete": ("-", "red"),
    "same": (" ", "dim"),
    "read": (">", "cyan"),
    "refresh": (">", "cyan"),
}


def console(*, stderr: bool = False) -> Console:
    """A console; width follows ``COLUMNS`` when set (tests pin it).

    No emoji codes: rich would otherwise turn any ``:name:`` in a printed string into an emoji,
    even with markup off, and cloud values are full of colons (an AWS secret's ARN ends in
    ``:secret:<name>``, which became "㊙"). Nothing here is written as an emoji code, and not
    loading rich's emoji table takes ~8 ms off every command that prints."""
    width = int(os.environ["COLUMNS"]) if os.environ.get("COLUMNS", "").isdigit() else None
    return Console(stderr=stderr, width=width, highlight=False, emoji=False)


def print_json(data: Any) -> None:
    """JSON on stdout, never wrapped or coloured."""
    print(json.dumps(data, indent=2, default=str))


def _op(op: str) -> Text:
    sym, style = _OP_STYLE.get(op, ("?", "white"))
    return Text(f"{sym} {op}", style=style)


# -- plan ---------------------------------------------------------------------------------


def plan(out: Console, the_plan: Any) -> None:
    """The plan: resources with their ops, every grant with its scope, the Prefect writes.

    Tables where their rows fit the terminal; else one entry per line (``+ create  type  name``)
    as terraform and pulumi print plans. Grants are always one entry each: ``who → role @
    scope``, then the permissions. Lines break between words, and a word too long for a line
    (an ARN) after a ``:`` or ``/``: a resource type or permission name is never cut.
    """
    c = the_plan.changes
    width = max(out.width - 4, 20)  # inside the panel's borders and padding
    head = f"{the_plan.pool} · {the_plan.type}" + (
        f" · {the_plan.location}" if the_plan.location else ""
    )
    note = "offline (mocks; computed values are placeholders)"
    # A Text, not markup: rich reads a str title as markup with emoji codes on, whatever the
    # console says (and loads its emoji table to do so).
    title = Text(head, style="bold")
    note_inside = the_plan.offline and len(head) + len(note) + 3 > width - 2
    if the_plan.offline and not note_inside:
        title.append(" · ")
        title.append(note, style="dim")

    changed = [r for r in the_plan.resources if r.op != "same"]
    ops = _widest(str(_op(r.op)) for r in changed) + 2
    fits = ops + _widest(r.type for r in changed) + 2 + _widest(r.name for r in changed) <= width
    if not the_plan.resources:
        resources: Any = Text("none: this pool type has no cloud resources", style="dim")
    elif not changed:
        resources = Text("no cloud changes", style="dim")
    elif fits:
        resources = Table(box=None, show_header=True, header_style="bold", pad_edge=False)
        resources.add_column("op")
        resources.add_column("type")
        resources.add_column("name")
        for r in changed:
            resources.add_row(_op(r.op), r.type, r.name)
    else:
        resources = Group(*(_entry(_op(r.op), f"{r.type}  {r.name}", width) for r in changed))

    grants: list[Text] = []
    for g in the_plan.grants:
        grants += _lines(f"{g.principal} → {g.role} @ {g.scope}", width, hang=4, style="")
        if g.permissions:
            grants += [
                Text("    " + line, style="cyan")
                for line in _wrap(", ".join(g.permissions), width - 4)
            ]

    if not grants:
        grants = [Text("none", style="dim")]

    prefect_rows = []
    for p in the_plan.prefect:
        if p.kind == "block":
            prefect_rows.append((p.op, f"block ({p.block_type})", p.name, []))
        else:
            details = [f"{k} = {_short(v)}" for k, v in p.variables.items()]
            prefect_rows.append((p.op, f"work pool ({p.type})", p.name, details))
    objects, names, details = zip(*((o, n, d) for _, o, n, d in prefect_rows), strict=True)
    widest = _widest(objects) + 2 + _widest(names) + 2 + _widest(d for ds in details for d in ds)
    if 10 + widest <= width:
        prefect: Any = Table(box=None, show_header=True, header_style="bold", pad_edge=False)
        prefect.add_column("op")
        prefect.add_column("object")
        prefect.add_column("name")
        prefect.add_column("template defaults")
        for op, obj, name, details in prefect_rows:
            prefect.add_row(_op(op), obj, name, "\n".join(details))
    else:
        entries: list[Any] = []
        for op, obj, name, details in prefect_rows:
            entries.append(_entry(_op(op), f"{obj}  {name}", width))
            entries += [line for d in details for line in _lines(d, width, hang=14, indent=10)]
        prefect = Group(*entries)

    summary = Text(
        f"{c.create} to create, {c.update} to update, {c.replace} to replace, "
        f"{c.delete} to delete, {c.same} unchanged"
    )
    access = _access(the_plan.credential, the_plan.worker, width)
    if the_plan.rotation is not None:
        r = the_plan.rotation
        text = f"replace the credential (rotation {r.rotation}): {r.reason}; the new one is "
        text += "written to the block before the old one is deleted"
        rotation = [Text("Rotation", style="bold underline"), *_lines(text, width, hang=2)]
        access = [*rotation, Text(""), *access]
    if the_plan.profile is not None:
        access += [Text("Prefect profile (this machine)", style="bold underline")]
        access += [*_profile_lines(the_plan.profile, width), Text("")]
    out.print(
        Panel(
            Group(
                *([Text(note, style="dim"), Text("")] if note_inside else []),
                Text("Cloud resources", style="bold underline"),
                resources,
                Text(""),
                Text("Permissions granted", style="bold underline"),
                *grants,
                Text(""),
                *access,
                Text("Prefect", style="bold underline"),
                prefect,
                Text(""),
                summary,
            ),
            title=title,
            title_align="left",
        )
    )


def _access(credential: Any, worker: Any, width: int) -> list[Text]:
    """The plan's "Credential" and "Worker" sections (empty for a pool with neither)."""
    lines: list[Text] = []
    if credential is not None:
        lines.append(Text("Credential", style="bold underline"))
        lines += _lines(credential_line(credential), width, hang=2)
        lines.append(Text(""))
    if worker is not None:
        lines.append(Text("Worker", style="bold underline"))
        for text in worker_lines(worker):
            lines += _lines(text, width, hang=2)
        lines.append(Text(""))
    return lines


def _profile_lines(change: Any, width: int) -> list[Text]:
    """``--set-image-namespace``: the key, its new value, and what destroy puts back."""
    was = change.previous if change.previous is not None else "unset"
    value = change.value if change.value is not None else "unset"
    text = f"{change.key} = {value} in profile '{change.profile}' ({change.path}); "
    text += "unchanged" if change.op == "same" else f"was {was}, put back by destroy"
    if change.op == "delete" or (change.op == "update" and change.value == change.previous):
        text = f"{change.key} back to {value} in profile '{change.profile}' ({change.path})"
    return [_entry(_op(change.op), text, width)]


def credential_line(credential: Any) -> str:
    """One line on the cloud credential a pool's block holds, or that there is none."""
    if not credential.long_lived:
        note = credential.note or f"the worker runs as {credential.identity}"
        return note if "no long-lived credential" in note else f"no long-lived credential: {note}"
    note = f": {credential.note}" if credential.note else ""
    return f"{credential.kind} of {credential.identity}{note}"


def worker_lines(worker: Any) -> list[str]:
    """The worker a pool runs in the cloud: what, as whom, with which Prefect credential."""
    lines = [
        f"{worker.count} worker(s), image {worker.image}, running as {worker.identity}",
        "runs: " + " ".join(worker.command),
    ]
    if worker.prefect_credential:
        lines.append(
            f"Prefect credential: {worker.prefect_credential} from {worker.secret_store}, "
            f"holding {worker.prefect_credential_source}"
        )
    else:
        lines.append("Prefect credential: none (the server asks for none)")
    return lines


def _widest(texts: Iterable[str]) -> int:
    return max(map(len, texts), default=0)


def _entry(op: Text, text: str, width: int) -> Text:
    """One plan entry: the op in a gutter (10 columns, wider for a long op), ``text`` wrapped
    beside it."""
    gutter = max(10, len(op) + 2)
    first, *rest = _wrap(text, width - gutter)
    line = Text.assemble(op, " " * (gutter - len(op)), first)
    for more in rest:
        line.append("\n" + " " * gutter + more)
    return line


def _lines(text: str, width: int, *, hang: int, indent: int = 0, style: str = "") -> list[Text]:
    """``text`` indented by ``indent``, wrapped to ``width``, continuation lines by ``hang``."""
    first, *rest = _wrap(text, width - indent, hang - indent)
    return [Text(" " * indent + first, style=style)] + [
        Text(" " * hang + line, style=style) for line in rest
    ]


def _wrap(text: str, width: int, hang: int = 0) -> list[str]:
    """``text`` in lines of at most ``width`` (continuation lines ``width - hang``), broken
    between words; a word longer than a line after a ``:`` or ``/`` in it (ARNs, paths, URLs),
    and only when it has none, at the width."""
    lines: list[str] = []
    line = ""
    for word in text.split(" "):
        room = width - (hang if lines else 0)
        if not line or len(line) + 1 + len(word) <= room:
            line = f"{line} {word}" if line else word
            if len(line) <= room:
                continue
            word, line = line, ""  # a first word too long for its line
        elif len(word) <= width - hang:
            lines.append(line)
            line = word
            continue
        else:
            lines.append(line)
        room = width - hang
        while len(word) > room:
            cut = max(word.rfind(":", 0, room), word.rfind("/", 0, room)) + 1 or room
            lines.append(word[:cut])
            word = word[cut:]
        line = word
    return [*lines, line]


def _short(value: Any) -> str:
    return json.dumps(value) if not isinstance(value, str) else value


def confirm_plan(out: Console, verb: str) -> Callable[[Any], bool]:
    """A confirm hook: render the plan, then ask."""

    def ask(the_plan: Any) -> bool:
        plan(out, the_plan)
        return Confirm.ask(
            f"{verb} these changes to '{the_plan.pool}'?", default=False, console=out
        )

    return ask


def confirm_plan_set(out: Console) -> Callable[[Any], bool]:
    """A confirm hook for ``up -f``: the combined plan, then one question."""

    def ask(plans: Any) -> bool:
        plan_set(out, plans)
        if not plans.has_changes:
            return True  # nothing to apply: no question to ask
        return Confirm.ask("Apply these changes?", default=False, console=out)

    return ask


def confirm_destroy_set(out: Console) -> Callable[[list[str]], bool]:
    """A confirm hook for ``destroy -f``: the pools, then one question."""

    def ask(names: list[str]) -> bool:
        out.print("Pools to destroy (cloud resources, the Prefect objects made, the stack):")
        for name in names:
            out.print(f"  - {name}", markup=False)
        return Confirm.ask(f"Destroy these {len(names)} pools?", default=False, console=out)

    return ask


def plan_set(out: Console, plans: Any) -> None:
    """``preview -f``: one row per pool (its changes, or why it could not be planned), the
    pools the backend has that the file does not declare, and the totals."""
    table = Table(header_style="bold")
    for col in ("pool", "type", "cloud changes", "Prefect", "notes"):
        table.add_column(col)
    for p in plans.pools:
        if p.plan is None:
            table.add_row(p.pool, "-", "-", "-", Text(f"error: {p.error}", style="red"))
            continue
        c = p.plan.changes
        counts = [
            f"{n} {op}"
            for op, n in (
                ("create", c.create),
                ("update", c.update),
                ("replace", c.replace),
                ("delete", c.delete),
            )
            if n
        ]
        prefect = [f"{x.kind.replace('_', ' ')} {x.op}" for x in p.plan.prefect if x.op != "same"]
        notes = []
        if p.plan.rotation is not None:
            notes.append(f"rotation: {p.plan.rotation.reason}")
        if p.plan.profile is not None and p.plan.profile.op != "same":
            notes.append(f"profile {p.plan.profile.key} {p.plan.profile.op}")
        table.add_row(
            p.pool,
            p.plan.type,
            ", ".join(counts) or Text("no changes", style="dim"),
            ", ".join(prefect) or Text("-", style="dim"),
            "; ".join(notes),
        )
    for name in plans.not_in_file:
        note = (
            Text("not in file: destroy (--prune)", style="red")
            if plans.prune
            else Text("not in file: left untouched (--prune destroys it)", style="yellow")
        )
        table.add_row(name, "?", "-", "-", note)
    out.print(table)
    t = plans.summary()
    out.print(
        f"{t['pools']} pools: {t['changing']} to change, {t['unchanged']} unchanged, "
        f"{t['failed']} failed to plan; {t['not_in_file']} in the backend but not in the file"
        + (f" ({t['to_prune']} to destroy)" if t["to_prune"] else "")
        + "."
    )


def apply_set(out: Console, done: Any) -> None:
    """``up -f`` / ``destroy -f``: what happened to each pool."""
    for p in done.pools:
        if p.error is not None:
            out.print(f"[red]✗[/] {escape(p.pool)}: {escape(p.error)}", soft_wrap=True)
        elif p.action == "skip":
            out.print(f"[dim]= {escape(p.pool)}: no changes[/]", soft_wrap=True)
        elif p.action == "destroy":
            out.print(f"[green]✓[/] {escape(p.pool)}: destroyed", soft_wrap=True)
        else:
            c = p.outcome.result.changes
            out.print(
                f"[green]✓[/] {escape(p.pool)}: ready ({c['create']} created, {c['update']} "
                f"updated, {c['replace']} replaced, {c['delete']} deleted)",
                soft_wrap=True,
            )
    failed = len(done.failed)
    total = len(done.pools)
    if failed:
        out.print(f"[red]{failed} of {total} pools did not converge.[/]")
    else:
        out.print(f"[green]All {total} pools converged.[/]")


def install_spinner(out: Console) -> Callable[[], AbstractContextManager[object]]:
    """Spinner shown while the pulumi CLI downloads."""
    return lambda: out.status("Installing the pulumi CLI (first run only)...")


# -- progress -----------------------------------------------------------------------------


class Progress:
    """One line per resource with its op and state; live on a terminal, line-by-line otherwise.

    Engine events arrive on gRPC threads, hence the lock.
    """

    def __init__(self, out: Console):
        self.out = out
        self._rows: dict[str, Any] = {}
        self._lock = threading.Lock()
        self._live: Live | None = None
        self._phase = ""

    def __enter__(self) -> Progress:
        if self.out.is_terminal:
            self._live = Live(
                self._render(), console=self.out, refresh_per_second=8, transient=False
            )
            self._live.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._live:
            self._live.update(self._render())
            self._live.stop()
            self._live = None

    def _render(self) -> Table:
        table = Table(box=None, show_header=False, pad_edge=False)
        table.add_column(width=3)
        table.add_column()
        table.add_column()
        table.add_column()
        for row in self._rows.values():
            mark = {
                "running": Text("…", style="cyan"),
                "done": Text("✓", style="green"),
                "failed": Text("✗", style="bold red"),
            }[row.state]
            msg = Text(row.message, style="red") if row.state == "failed" else Text("")
            table.add_row(mark, _op(row.op), f"{row.type} {row.name}", msg)
        if self._phase:
            table.add_row("", Text(self._phase, style="dim"), "", "")
        return table

    def update(self, progress: Any) -> None:
        """Record a resource state change."""
        with self._lock:
            self._rows[progress.urn] = progress
            if self._live:
                self._live.update(self._render())
            elif progress.state != "running" or progress.op != "same":
                style = {"failed": "bold red", "done": "green"}.get(progress.state, "")
                line = Text(f"{progress.state:>7} ")
                line.append(_op(progress.op))
                line.append(f" {progress.type} {progress.name}")
                if progress.message:
                    line.append(f": {progress.message}", style="red")
                line.stylize(style, 0, 7)
                self.out.print(line, soft_wrap=True)

    def notice(self, message: str) -> None:
        """An informational line (retries, recoveries)."""
        with self._lock:
            self.out.print(Text(message, style="yellow"), soft_wrap=True)

    def phase(self, name: str) -> None:
        """A new phase: Planning, Applying, Writing to Prefect..."""
        with self._lock:
            self._phase = name
            if self._live:
                self._live.update(self._render())
            else:
                self.out.print(Text(f"{name}...", style="bold"), soft_wrap=True)

    def paused(self, fn: Callable[[Any], bool]) -> Callable[[Any], bool]:
        """Wrap a prompt so the live display doesn't fight it."""

        def run(arg: Any) -> bool:
            with self._suspended():
                return fn(arg)

        return run

    @contextmanager
    def _suspended(self) -> Iterator[None]:
        live = self._live
        if live:
            live.stop()
            self._live = None
        try:
            yield
        finally:
            if live:
                self._live = Live(self._render(), console=self.out, refresh_per_second=8)
                self._live.start()


# -- summary and tables -------------------------------------------------------------------


def summary(out: Console, outcome: Any) -> None:
    """What was done and what to do next, printed without borders so it can be copied."""
    c = outcome.result.changes
    spec = outcome.spec
    out.print()
    out.print(
        f"[bold green]Pool '{spec.pool}' is ready[/] ({spec.pool_type.name}): "
        f"{c['create']} created, {c['update']} updated, {c['replace']} replaced, "
        f"{c['delete']} deleted, {c['same']} unchanged."
    )
    block = (
        f"block '{spec.block_name}' {outcome.block_op} (id {outcome.block_id}), "
        if spec.block_name
        else ""
    )
    out.print(
        f"Prefect ({outcome.prefect_url}): {block}work pool '{spec.pool}' "
        f"{outcome.work_pool_op} (id {outcome.work_pool_id}).",
        soft_wrap=True,
    )
    if outcome.rotation is not None:
        out.print(
            f"Credential rotated (rotation {outcome.rotation.rotation}: "
            f"{outcome.rotation.reason}); the block holds the new one, the old one is deleted.",
            soft_wrap=True,
            markup=False,
        )
    if outcome.credential is not None:
        out.print(credential_line(outcome.credential), soft_wrap=True, markup=False)
    if outcome.worker is not None:
        for line in worker_lines(outcome.worker):
            out.print(f"Worker: {line}", soft_wrap=True, markup=False)
    steps = outcome.next_steps
    out.print()
    out.print("[bold]Next steps[/]")
    if steps.image_namespace:
        out.print(f"Image namespace: {steps.image_namespace}", soft_wrap=True, markup=False)
    for key, value in steps.env.items():
        out.print(f"export {key}={value}", soft_wrap=True, markup=False)
    for cmd in steps.commands:
        out.print(cmd, soft_wrap=True, markup=False)
    if steps.deploy_snippet:
        out.print()
        out.print(steps.deploy_snippet, soft_wrap=True, markup=False, highlight=False)


def pools_table(out: Console, rows: list[Any]) -> None:
    """``provision list``."""
    if not rows:
        out.print("No pools provisioned yet. Start with `provision preview --offline`.")
        return
    table = Table(header_style="bold")
    for col in ("pool", "type", "location", "last update", "result", "resources", "credential"):
        table.add_column(col)
    for r in rows:
        table.add_row(
            r.name,
            r.type,
            r.location,
            r.last_update or "-",
            r.result or "-",
            str(r.resource_count if r.resource_count is not None else "-"),
            _credential_cell(r.credential),
        )
    out.print(table)
    for r in rows:
        if r.credential is not None and r.credential.due:
            out.print(
                f"Warning: pool '{r.name}': its credential is due for rotation "
                f"({r.credential.due}); the next `provision up {r.name}` replaces it, or run "
                f"`provision rotate {r.name}`.",
                soft_wrap=True,
                markup=False,
            )


def _credential_cell(status: Any) -> str:
    """``12d old, expires in 353d``; ``-`` for a pool with no credential the tool made."""
    if status is None:
        return "-"
    text = f"{status.age_days}d old"
    if status.expires_in_days is not None:
        text += f", expires in {status.expires_in_days}d"
    return text + (" (due)" if status.due else "")


def details_dict(d: Any) -> dict[str, Any]:
    """``show --json``: outputs with secrets masked."""
    return {
        "pool": d.name,
        "type": d.type,
        "location": d.location,
        "outputs": {k: ("[secret]" if k in d.secret_outputs else v) for k, v in d.outputs.items()},
        "prefect": {
            "api_url": d.prefect_api_url,
            "block_name": d.block_name,
            "block_id": d.prefect.block_id,
            "work_pool_id": d.prefect.pool_id,
        },
        "workers": None
        if d.workers is None
        else [
            {"name": w.name, "status": w.status, "last_heartbeat": w.last_heartbeat}
            for w in d.workers
        ],
        "workers_error": d.workers_error,
        "credential": None if d.credential is None else dataclasses.asdict(d.credential),
    }


def details(out: Console, d: Any) -> None:
    """``provision show``."""
    data = details_dict(d)
    table = Table(show_header=False, box=None)
    table.add_column(style="bold")
    table.add_column()
    for k, v in data["outputs"].items():
        # As text, not markup: the values come from the cloud.
        table.add_row(k, Text(v if isinstance(v, str) else json.dumps(v)))
    title = Text(f"{d.name} · {d.type} · {d.location}")  # not markup: see ``plan``
    out.print(Panel(table, title=title, title_align="left"))
    p = data["prefect"]
    block = f"block '{p['block_name']}' id {p['block_id'] or '-'}, " if p["block_name"] else ""
    out.print(
        f"Prefect {p['api_url'] or '(not written yet)'}: {block}"
        f"work pool id {p['work_pool_id'] or '-'}",
        soft_wrap=True,
    )
    if d.credential is not None:
        c = d.credential
        expiry = f", expires {c.expires_at} (in {c.expires_in_days} days)" if c.expires_at else ""
        due = f"; due: {c.due}" if c.due else ""
        out.print(
            f"Credential: made {c.created_at} ({c.age_days} days old){expiry}{due}",
            soft_wrap=True,
            markup=False,
        )
    if d.workers_error:
        out.print(f"Workers: unknown ({d.workers_error})", soft_wrap=True, markup=False)
    elif d.workers is not None and not d.workers:
        out.print("Workers: none has polled this pool yet.")
    elif d.workers:
        table = Table(header_style="bold")
        for col in ("worker", "status", "last heartbeat"):
            table.add_column(col)
        for w in d.workers:
            # Worker names are whatever the worker was started with: text, not markup.
            table.add_row(Text(w.name), w.status, w.last_heartbeat or "-")
        out.print(table)


def types_table(out: Console, pool_types: list[Any]) -> None:
    """``provision types``."""
    table = Table(header_style="bold")
    for col in ("type", "cloud", "needs", "description"):
        table.add_column(col)
    for p in pool_types:
        needs = "Prefect Cloud" if p.prefect_cloud_only else "a worker"
        table.add_row(p.name, p.target, needs, p.description)
    out.print(table)
