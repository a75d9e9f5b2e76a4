"""Rich rendering for the CLI: plan panel, live progress, summary, tables.

Everything here reads plain data (plans, progress records, outcomes) and prints; none of it
decides anything. Secret values never reach this module except as ``[secret]``.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any

from rich.console import Console, Group
from rich.live import Live
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
    """A console; width follows ``COLUMNS`` when set (tests pin it)."""
    width = int(os.environ["COLUMNS"]) if os.environ.get("COLUMNS", "").isdigit() else None
    return Console(stderr=stderr, width=width, highlight=False)


def print_json(data: Any) -> None:
    """JSON on stdout, never wrapped or coloured."""
    print(json.dumps(data, indent=2, default=str))


def _op(op: str) -> Text:
    sym, style = _OP_STYLE.get(op, ("?", "white"))
    return Text(f"{sym} {op}", style=style)


# -- plan ---------------------------------------------------------------------------------


def plan(out: Console, the_plan: Any) -> None:
    """The plan: resources with their ops, every grant with its scope, the Prefect writes."""
    c = the_plan.changes
    title = (
        f"[bold]{the_plan.pool}[/] · {the_plan.type}"
        + (f" · {the_plan.location}" if the_plan.location else "")
        + (
            " · [dim]offline (mocks; computed values are placeholders)[/]"
            if the_plan.offline
            else ""
        )
    )
    resources = Table(box=None, show_header=True, header_style="bold", pad_edge=False)
    resources.add_column("op")
    resources.add_column("type")
    resources.add_column("name")
    for r in the_plan.resources:
        if r.op == "same":
            continue
        resources.add_row(_op(r.op), r.type, r.name)
    if not any(r.op != "same" for r in the_plan.resources):
        resources.add_row(Text("no cloud changes", style="dim"), "", "")

    grants = Table(box=None, show_header=True, header_style="bold", pad_edge=False)
    for col in ("who", "role", "scope", "permissions"):
        grants.add_column(col, overflow="fold")
    for g in the_plan.typed_grants():
        grants.add_row(g.principal, g.role, g.scope, "\n".join(g.permissions) or "-")

    prefect = Table(box=None, show_header=True, header_style="bold", pad_edge=False)
    prefect.add_column("op")
    prefect.add_column("object")
    prefect.add_column("name", overflow="fold")
    prefect.add_column("template defaults", overflow="fold")
    for p in the_plan.prefect:
        if p.kind == "block":
            prefect.add_row(_op(p.op), f"block ({p.block_type})", p.name, "")
        else:
            details = "\n".join(f"{k} = {_short(v)}" for k, v in p.variables.items())
            prefect.add_row(_op(p.op), f"work pool ({p.type})", p.name, details)

    summary = Text(
        f"{c.create} to create, {c.update} to update, {c.replace} to replace, "
        f"{c.delete} to delete, {c.same} unchanged"
    )
    out.print(
        Panel(
            Group(
                Text("Cloud resources", style="bold underline"),
                resources,
                Text(""),
                Text("Permissions granted", style="bold underline"),
                grants,
                Text(""),
                Text("Prefect", style="bold underline"),
                prefect,
                Text(""),
                summary,
            ),
            title=title,
            title_align="left",
        )
    )


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
    out.print(
        f"Prefect ({outcome.prefect_url}): block '{spec.block_name}' {outcome.block_op} "
        f"(id {outcome.block_id}), work pool '{spec.pool}' {outcome.work_pool_op} "
        f"(id {outcome.work_pool_id}).",
        soft_wrap=True,
    )
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
    for col in ("pool", "type", "location", "last update", "result", "resources"):
        table.add_column(col)
    for r in rows:
        table.add_row(
            r.name,
            r.type,
            r.location,
            r.last_update or "-",
            r.result or "-",
            str(r.resource_count if r.resource_count is not None else "-"),
        )
    out.print(table)


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
    }


def details(out: Console, d: Any) -> None:
    """``provision show``."""
    data = details_dict(d)
    table = Table(show_header=False, box=None)
    table.add_column(style="bold")
    table.add_column()
    for k, v in data["outputs"].items():
        table.add_row(k, v if isinstance(v, str) else json.dumps(v))
    out.print(Panel(table, title=f"{d.name} · {d.type} · {d.location}", title_align="left"))
    p = data["prefect"]
    out.print(
        f"Prefect {p['api_url'] or '(not written yet)'}: block '{p['block_name']}' "
        f"id {p['block_id'] or '-'}, work pool id {p['work_pool_id'] or '-'}",
        soft_wrap=True,
    )


def types_table(out: Console, pool_types: list[Any]) -> None:
    """``provision types``."""
    table = Table(header_style="bold")
    for col in ("type", "cloud", "needs", "description"):
        table.add_column(col)
    for p in pool_types:
        table.add_row(p.name, p.target, "Prefect Cloud" if p.push else "a worker", p.description)
    out.print(table)
