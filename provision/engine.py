"""Pulumi Automation API lifecycle for one stack per work pool. Knows nothing of any cloud.

One place for: finding (or installing) the pulumi CLI, scratch work dirs, create-or-select,
config and the secrets manager's settings, preview/up/destroy (optionally after a refresh) and
stack removal, export, listing, retries on propagation errors, and translating engine failures
into typed errors (through ``engine_errors``). Two jobs live beside it: stack locks in
``locks.StackLocks`` (reached as ``Engine.locks``), and the decision about a killed run's pending
operations in ``recovery.decide_recovery`` (``Engine.recover`` exports, decides, imports,
refreshes). The pulumi SDK is imported lazily so that importing this module stays cheap.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
import weakref
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from provision.engine_errors import ErrorRule, classify, propagation_rules
from provision.errors import EngineError, PoolNotFoundError, PropagationError
from provision.events import EventTranslator, ProgressCallback, is_internal
from provision.locks import StackLocks
from provision.recovery import AdoptCallback, OrphanCallback, decide_recovery, tracked_ids
from provision.settings import PROJECT_NAME, Settings

if TYPE_CHECKING:
    from pulumi.automation import LocalWorkspace, PulumiCommand, Stack

Program = Callable[[], Awaitable[None] | None]
NoticeCallback = Callable[[str], None]

CHANGE_KEYS = ("create", "update", "replace", "delete", "same")


@dataclass(frozen=True)
class Step:
    """One planned or applied resource step, as the engine reported it."""

    urn: str
    type: str
    name: str
    op: str
    inputs: Mapping[str, Any]


@dataclass(frozen=True)
class OperationResult:
    """What an engine operation did (or, for previews, would do)."""

    changes: dict[str, int]
    steps: list[Step] = field(default_factory=list)
    outputs: dict[str, Any] = field(default_factory=dict, repr=False)
    """Stack outputs after ``up``; secret values are plain here: never print them."""
    secret_outputs: frozenset[str] = frozenset()


@dataclass(frozen=True)
class StackInfo:
    """A row of ``provision list``."""

    name: str
    last_update: str | None
    resource_count: int | None
    update_in_progress: bool


class Engine:
    """Runs Pulumi operations for pool stacks in ``settings``' backend."""

    def __init__(
        self,
        settings: Settings,
        *,
        on_install: Callable[[], AbstractContextManager[object]] | None = None,
        on_notice: NoticeCallback | None = None,
        retry_delays: Sequence[float] | None = None,
        orphan_hints: Mapping[str, str] | None = None,
        adopt: AdoptCallback | None = None,
        remove_orphans: OrphanCallback | None = None,
        env: Mapping[str, str] | None = None,
    ):
        """``env`` is added to every CLI call's environment, and so reaches the provider
        plugins the engine starts (the Prefect provider reads its credential from there)."""
        self.settings = settings
        self._env = dict(env or {})
        self._scratch: Path | None = None
        self._orphan_hints = dict(orphan_hints or {})
        self._adopt = adopt or (lambda _type, _inputs: None)
        self._remove_orphans = remove_orphans or (lambda _type, _inputs, _tracked: [])
        self._on_install = on_install
        self._notice = on_notice or (lambda _msg: None)
        self._retry_delays = tuple(retry_delays if retry_delays is not None else _env_delays())
        self._cmd: PulumiCommand | None = None
        self._prepared = False

    def for_pool(
        self,
        settings: Settings,
        *,
        orphan_hints: Mapping[str, str] | None = None,
        adopt: AdoptCallback | None = None,
        remove_orphans: OrphanCallback | None = None,
        env: Mapping[str, str] | None = None,
    ) -> Engine:
        """An engine for one pool's operations that reuses this one's CLI (found and version-
        checked once per command)."""
        engine = Engine(
            settings,
            on_install=self._on_install,
            on_notice=self._notice,
            retry_delays=self._retry_delays,
            orphan_hints=orphan_hints,
            adopt=adopt,
            remove_orphans=remove_orphans,
            env=env,
        )
        engine._cmd = self._cmd
        return engine

    def notice(self, message: str) -> None:
        """Forward an informational message to the UI."""
        self._notice(message)

    @property
    def locks(self) -> StackLocks:
        """The locks on this backend's pool stacks."""
        return StackLocks(self)

    # -- workspace and stacks -------------------------------------------------------------

    def command(self) -> PulumiCommand:
        """The pulumi CLI wrapper, found or installed on first use."""
        if self._cmd is None:
            from provision.pulumi_cli import pulumi_command

            self._cmd = pulumi_command(self.settings, self._on_install)
        return self._cmd

    def _prepare(self) -> None:
        if self._prepared:
            return
        self.settings.prepare()
        self._prepared = True

    def _options(self, work_dir: Path) -> Any:
        from pulumi import automation as auto

        work_dir.mkdir(parents=True, exist_ok=True)
        plugins = dynamic_provider_dir(self._scratch_dir())
        env = {
            "PULUMI_SKIP_UPDATE_CHECK": "true",
            **self.settings.engine_env,
            **self._env,
            # The CLI prefers this variable to the project's backend: the settings' backend
            # (--backend-url, or a throwaway one for plans of new pools) must win.
            "PULUMI_BACKEND_URL": self.settings.backend_url,
        }
        # The Prefect resources are served by Pulumi's Python dynamic provider, which the
        # engine starts as `pulumi-resource-pulumi-python`; ours runs this interpreter.
        path = env.get("PATH", os.environ.get("PATH", ""))
        env["PATH"] = os.pathsep.join([str(plugins), path])
        return auto.LocalWorkspaceOptions(
            work_dir=str(work_dir),
            env_vars=env,
            secrets_provider=self.settings.secrets_provider,
            project_settings=auto.ProjectSettings(
                name=PROJECT_NAME,
                runtime="python",
                backend=auto.ProjectBackend(url=self.settings.backend_url),
            ),
            pulumi_command=self.command(),
        )

    def _scratch_dir(self) -> Path:
        """This process's throwaway directory (read-only workspace, plugin script)."""
        if self._scratch is None:
            self._scratch = Path(tempfile.mkdtemp(prefix="provision-"))
            weakref.finalize(self, shutil.rmtree, str(self._scratch), True)
        return self._scratch

    def scratch_workspace(self) -> LocalWorkspace:
        """A workspace for read-only calls: a throwaway work dir, nothing under PROVISION_HOME.
        Raw CLI commands run through its ``pulumi_command``, ``work_dir`` and ``env_vars``."""
        from pulumi import automation as auto

        opts = self._options(self._scratch_dir() / "workspace")
        return auto.LocalWorkspace(
            work_dir=opts.work_dir,
            env_vars=opts.env_vars,
            secrets_provider=opts.secrets_provider,
            project_settings=opts.project_settings,
            pulumi_command=opts.pulumi_command,
        )

    def export(self, pool: str) -> dict[str, Any] | None:
        """The pool's exported deployment (secrets stay ciphertext), ``{}`` for a stack with
        nothing recorded yet, or ``None`` when the backend has no stack for ``pool``.

        Reads only: no passphrase is needed and nothing is written on this machine, so it is
        safe before validation is over.
        """
        from pulumi import automation as auto

        if self.settings.is_local_backend and not self.settings.local_backend_path.exists():
            return None  # asking the CLI would create the backend directory
        ws = self.scratch_workspace()
        self.locks.wait_for_orphans(pool)
        try:
            state = ws.export_stack(pool)
        except auto.StackNotFoundError:
            return None
        except auto.CommandError as exc:
            if "no stack named" in str(exc).lower():
                return None
            raise classify(str(exc), pool=pool, operation="state read") from None
        return state.deployment or {}

    def stack(self, pool: str, program: Program, *, create: bool) -> Stack:
        """Select the pool's stack (``create``: or create it). Missing → ``PoolNotFoundError``."""
        from pulumi import automation as auto

        if create:
            created = self.settings.create_passphrase()
            if created:
                self._notice(
                    f"Generated a passphrase for Pulumi secrets at {created} (mode 0600). Back "
                    "it up, and share it with whoever operates this pool (or use a KMS/Vault "
                    "secrets provider): it decrypts the credentials kept in the stack state."
                )
        self._prepare()
        # A throwaway work dir: everything the pool needs is in the backend, and this run
        # writes its config from there, so a fresh machine and a warm one behave alike.
        opts = self._options(self._scratch_dir() / "stacks" / pool)
        # A killed run's engine may still be writing the checkpoint: reading it now could
        # see a partial file ("failed to load checkpoint: EOF").
        self.locks.wait_for_orphans(pool)
        try:
            if create:
                return auto.create_or_select_stack(
                    pool, project_name=PROJECT_NAME, program=program, opts=opts
                )
            return auto.select_stack(pool, project_name=PROJECT_NAME, program=program, opts=opts)
        except auto.StackNotFoundError:
            raise PoolNotFoundError(
                f"No pool named '{pool}' is provisioned in {self.backend_label()}.",
                hint="`provision list` shows the pools; `provision up` creates one.",
            ) from None
        except auto.CommandError as exc:
            raise classify(str(exc), pool=pool, operation="stack selection") from None

    def list_stacks(self) -> list[StackInfo]:
        """Every pool stack in the backend."""
        from pulumi import automation as auto

        if self.settings.is_local_backend and not self.settings.local_backend_path.exists():
            return []
        ws = self.scratch_workspace()
        try:
            summaries = ws.list_stacks()
        except auto.CommandError as exc:
            raise classify(str(exc), pool="*", operation="stack listing") from None
        return [
            StackInfo(
                name=s.name,
                last_update=s.last_update.isoformat(timespec="seconds")
                if hasattr(s.last_update, "isoformat")
                else s.last_update,
                resource_count=s.resource_count,
                update_in_progress=bool(s.update_in_progress),
            )
            for s in summaries
        ]

    def last_result(self, pool: str) -> str | None:
        """The result (``succeeded``, ``failed``...) of the stack's latest operation, if any."""
        ws = self.scratch_workspace()
        args = ["stack", "history", "--json", "--page-size", "1", "--page", "1", "--stack", pool]
        try:
            out = ws.pulumi_command.run(args, ws.work_dir, ws.env_vars).stdout
            history = json.loads(out or "[]")
        except Exception:  # a listing must not fail on one unreadable stack
            return None
        return history[0].get("result") if history else None

    @staticmethod
    def set_config(stack: Stack, values: Mapping[str, str], secret: Iterable[str] = ()) -> None:
        """Save ``values`` in stack config (``secret`` keys encrypted)."""
        from pulumi import automation as auto

        secret = set(secret)
        stack.set_all_config(
            {k: auto.ConfigValue(value=v, secret=k in secret) for k, v in values.items()}
        )

    @staticmethod
    def pin_secrets(stack: Stack, secrets: Mapping[str, Any]) -> None:
        """Make the work dir's stack settings name the secrets manager the state has.

        A fresh machine's work dir has no settings file: the CLI would then set up a default
        passphrase manager (with a salt of its own, or asking for a passphrase a KMS-backed
        stack never needed). Written only when it differs.
        """
        from pulumi import automation as auto

        state = secrets.get("state") or {}
        if secrets.get("type") == "passphrase":
            wanted = {"encryption_salt": state.get("salt")}
        elif secrets.get("type") == "cloud":
            wanted = {
                "secrets_provider": state.get("url"),
                "encrypted_key": state.get("encryptedkey"),
            }
        else:
            return
        ws = stack.workspace
        try:
            current = ws.stack_settings(stack.name)
        except FileNotFoundError:
            current = auto.StackSettings()
        if all(getattr(current, k) == v for k, v in wanted.items()):
            return
        for key, value in wanted.items():
            setattr(current, key, value)
        ws.save_stack_settings(stack.name, current)

    def remove(self, stack: Stack, pool: str, *, force: bool = False) -> None:
        """Remove the (empty) stack, and the work dir an earlier version kept for it.

        ``force`` also drops a stack whose state still lists the root stack or providers.
        """
        stack.workspace.remove_stack(pool, force=force or None)
        shutil.rmtree(self.settings.legacy_work_dir(pool), ignore_errors=True)

    # -- operations -----------------------------------------------------------------------

    def preview(
        self,
        stack: Stack,
        pool: str,
        *,
        on_progress: ProgressCallback | None = None,
        refresh: bool = False,
        rules: Iterable[ErrorRule] = (),
    ) -> OperationResult:
        """What ``up`` would change (``refresh``: after reading the cloud's actual state)."""
        # A preview writes nothing, but a killed run's stale lock would still block it.
        self.locks.wait_for_orphans(pool)
        if self.settings.is_local_backend:
            self.locks.unlock(pool)
        translator = EventTranslator(on_progress)
        result = self._run(
            pool,
            "preview",
            rules,
            translator,
            lambda: stack.preview(on_event=translator, refresh=refresh or None, color="never"),
        )
        return OperationResult(changes=_changes(result.change_summary), steps=_steps(translator))

    def up(
        self,
        stack: Stack,
        pool: str,
        *,
        on_progress: ProgressCallback | None = None,
        rules: Iterable[ErrorRule] = (),
        propagation: Iterable[str] = (),
        refresh: bool = False,
        targets: Sequence[str] | None = None,
    ) -> OperationResult:
        """Apply the stack, retrying while new identities/grants propagate.

        ``refresh`` reads the cloud first, so drift is repaired rather than ignored;
        ``targets`` limits the update to those URNs.
        """
        rules = tuple(rules)
        retry_rules = propagation_rules(propagation)
        attempt = 0
        while True:
            self.recover(stack, pool)
            translator = EventTranslator(on_progress)
            try:
                result = self._run(
                    pool,
                    "update",
                    retry_rules + rules,
                    translator,
                    lambda tr=translator: stack.up(
                        on_event=tr, color="never", refresh=refresh or None, target=targets
                    ),
                )
                break
            except PropagationError as exc:
                if attempt >= len(self._retry_delays):
                    # Out of patience: report what the cloud actually said.
                    raise classify(
                        exc.details or "", pool=pool, rules=rules, failures=translator.failures
                    ) from None
                delay = self._retry_delays[attempt]
                attempt += 1
                self._notice(
                    f"New identities or grants are still propagating; retrying in {delay:g}s "
                    f"(attempt {attempt + 1} of {len(self._retry_delays) + 1})."
                )
                time.sleep(delay)
        outputs = {k: v.value for k, v in result.outputs.items()}
        secret = frozenset(k for k, v in result.outputs.items() if v.secret)
        return OperationResult(
            changes=_changes(result.summary.resource_changes),
            steps=_steps(translator),
            outputs=outputs,
            secret_outputs=secret,
        )

    def destroy(
        self,
        stack: Stack,
        pool: str,
        *,
        on_progress: ProgressCallback | None = None,
        rules: Iterable[ErrorRule] = (),
    ) -> OperationResult:
        """Delete every resource of the stack (the stack itself stays; see ``remove``)."""
        self.recover(stack, pool)
        translator = EventTranslator(on_progress)
        result = self._run(
            pool, "destroy", rules, translator, lambda: stack.destroy(on_event=translator)
        )
        return OperationResult(changes=_changes(result.summary.resource_changes))

    def _run(
        self,
        pool: str,
        operation: str,
        rules: Iterable[ErrorRule],
        translator: EventTranslator,
        call: Callable[[], Any],
    ) -> Any:
        from pulumi import automation as auto

        try:
            return call()
        except auto.CommandError as exc:
            text = str(exc)
            raise classify(
                text, pool=pool, rules=rules, failures=translator.failures, operation=operation
            ) from None

    # -- recovery after an interrupted run ------------------------------------------------

    def recover(self, stack: Stack, pool: str) -> None:
        """Make a stack usable after a killed run: orphaned engine, stale lock, pending ops.

        The locks are ``StackLocks``' job and the decision ``recovery.decide_recovery``'s:
        this exports the state, imports what was decided, refreshes, then hands each create
        left pending to the target's ``remove_orphans`` with the ids the state now tracks.
        """
        if not self.locks.release_stale(pool):
            # A live run holds the stack: its in-flight operations are not ours to reconcile,
            # and its checkpoint may be mid-write. The operation itself reports the lock.
            return
        state = stack.export_stack()
        decision = decide_recovery(pool, state.deployment or {}, self._adopt, self._orphan_hints)
        if decision is None:
            return
        self._notice(decision.announcement)
        if decision.adopted:
            from pulumi import automation as auto

            deployment = auto.Deployment(version=state.version, deployment=decision.deployment)
            try:
                stack.import_stack(deployment)
            except auto.CommandError as exc:
                raise classify(str(exc), pool=pool, operation="recovery") from None
        for message in decision.notices:
            self._notice(message)
        # Pending creates may or may not exist in the cloud; dropping them lets the engine
        # re-create from the program, and refresh reconciles every recorded resource.
        translator = EventTranslator(None)
        self._run(
            pool,
            "recovery refresh",
            (),
            translator,
            lambda: stack.refresh(clear_pending_creates=True, on_event=translator),
        )
        if decision.unadopted:
            # Before the run goes on: a copy the cloud made untracked may count against a
            # limit the rerun's own create would then hit.
            refreshed = stack.export_stack().deployment or {}
            for rtype, inputs in decision.unadopted:
                for message in self._remove_orphans(rtype, inputs, tracked_ids(refreshed, rtype)):
                    self._notice(message)

    def backend_label(self) -> str:
        """The backend, as messages name it."""
        return (
            f"the local state under {self.settings.local_backend_path}"
            if self.settings.is_local_backend
            else self.settings.backend_url
        )


def dynamic_provider_dir(scratch: Path) -> Path:
    """A directory (under ``scratch``) holding ``pulumi-resource-pulumi-python``.

    The official CLI ships that script, but it runs whatever ``python3`` is first on PATH,
    which may not have ``provision`` installed; ours execs the interpreter running now.
    """
    import sys

    directory = scratch / "plugins"
    script = directory / "pulumi-resource-pulumi-python"
    if not script.exists():
        directory.mkdir(parents=True, exist_ok=True)
        script.write_text(f'#!/bin/sh\nexec "{sys.executable}" -u -m pulumi.dynamic "$@"\n')
        script.chmod(0o755)
    return directory


def _changes(summary: Mapping[Any, int] | None) -> dict[str, int]:
    counts = dict.fromkeys(CHANGE_KEYS, 0)
    for op, n in (summary or {}).items():
        key = str(getattr(op, "value", op)).lower()
        if key in ("create-replacement", "delete-replaced", "replace"):
            key = "replace"
            # The engine counts a replacement three ways; count it once.
            if str(getattr(op, "value", op)).lower() != "replace":
                continue
        if key in counts:
            counts[key] += n
    return counts


def _steps(translator: EventTranslator) -> list[Step]:
    """One step per resource, the one that says what happens to it.

    With ``--refresh`` a ``refresh`` step comes first; a replacement arrives as
    ``create-replacement`` (new inputs), ``replace``, then ``delete-replaced`` (old inputs).
    The first step that is not a refresh is the plan's, and replacements read ``replace``.
    """
    from provision.events import urn_name

    seen: dict[str, Step] = {}
    for s in translator.steps:
        if is_internal(s["type"]):
            continue
        earlier = seen.get(s["urn"])
        if earlier is not None and earlier.op != "refresh":
            continue
        op = "replace" if s["op"] == "create-replacement" else s["op"]
        seen[s["urn"]] = Step(
            urn=s["urn"], type=s["type"], name=urn_name(s["urn"]), op=op, inputs=s["inputs"]
        )
    # The engine emits steps as operations start, which varies between runs.
    return sorted(seen.values(), key=lambda s: s.urn)


def _env_delays() -> tuple[float, ...]:
    raw = os.environ.get("PROVISION_RETRY_DELAYS")
    if raw is None:
        # GCP documents IAM propagation "within a minute, sometimes up to 7 minutes";
        # AWS roles are assumable a few seconds after creation.
        return (10.0, 20.0, 40.0, 60.0)
    try:
        return tuple(float(x) for x in raw.split(",") if x.strip())
    except ValueError:
        raise EngineError(
            f"PROVISION_RETRY_DELAYS must be comma-separated seconds, not {raw!r}."
        ) from None
