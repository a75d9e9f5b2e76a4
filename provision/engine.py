"""Pulumi Automation API lifecycle for one stack per work pool. Knows nothing of any cloud.

One place for: finding (or installing) the pulumi CLI, scratch work dirs, reading a stack's
state, creating a stack (or taking the caller's word that it exists), its config and secrets
manager settings, preview/up/destroy (optionally after a refresh) and stack removal, listing,
retries on propagation errors, and translating engine failures into typed errors (through
``engine_errors``). Two jobs live beside it: stack locks in ``locks.StackLocks`` (reached as
``Engine.locks``), and the decision about a killed run's pending operations in
``recovery.decide_recovery`` (``Engine.recover`` decides from the state the caller read, and
only when that shows operations in flight reads it again, imports and refreshes).

Every CLI process costs a Go start-up, a backend read and, for a passphrase stack, a key
derivation, so the engine starts as few as it can: an ``up`` is the state read (on a file
backend, a read of the checkpoint file, see ``state_file``; elsewhere ``stack export``),
``stack init`` for a new stack, and ``pulumi up``. No ``pulumi version`` (``pulumi_cli``
remembers it), no ``stack select`` (``engine_stack.PoolStack``), config written with the stack
settings file, and the summary and outputs of an operation taken from the engine's own events.
The operations run the CLI through ``cli_run`` (not the Automation API's ``Stack.up``...), so
that it can start before the program is ready: ``start_preview`` and ``start_up`` start a
preview or an update of an existing stack as soon as the state is read, and the caller's own
work overlaps the CLI's start-up. For a preview of an existing stack the provider plugins its
state names are started beside the CLI, which attaches to them (``plugins``) rather than starting
each when the program first needs it, one at a time.
The pulumi SDK is imported lazily so that importing this module stays cheap.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import threading
import time
import weakref
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from provision.engine_errors import ErrorRule, classify, propagation_rules
from provision.errors import EngineError, PropagationError
from provision.events import EventTranslator, ProgressCallback, is_internal, is_secret
from provision.recovery import AdoptCallback, UntrackedRemoval, decide_recovery
from provision.settings import PROJECT_NAME, Settings
from provision.state_file import UNKNOWN, read_checkpoint

if TYPE_CHECKING:
    from pulumi.automation import LocalWorkspace, PulumiCommand

    from provision.cli_run import CliRun
    from provision.dynamic_host import DynamicProviderHost
    from provision.engine_stack import PoolStack
    from provision.locks import StackLocks

# Running the CLI (``cli_run``, ``plugins``, ``late_port``), the dynamic-provider host and the
# locks are imported where they are used: a command that plans offline, or one with no stack,
# never runs the engine, and they cost it ~40 million instructions at start-up (a thread pool,
# sockets, their dataclasses).

Program = Callable[[], Awaitable[None] | None]
NoticeCallback = Callable[[str], None]

CHANGE_KEYS = ("create", "update", "replace", "delete", "same")

SERVE_WITHIN_S = 15.0
"""How long a started CLI may wait for its program before it is started afresh: its calls to
the language host wait for the connection for up to gRPC-Go's connect timeout, 20 s, then
fail the run."""


@dataclass(frozen=True)
class Step:
    """One planned or applied resource step, as the engine reported it."""

    urn: str
    type: str
    name: str
    op: str
    inputs: Mapping[str, Any]
    outputs: Mapping[str, Any] = field(default_factory=dict)
    """The resource's outputs after the step (``{}`` after a delete), as the engine's events
    carry them: a secret is the engine's secret envelope, never its value."""


@dataclass(frozen=True)
class OperationResult:
    """What an engine operation did (or, for previews, would do)."""

    changes: dict[str, int]
    steps: list[Step] = field(default_factory=list)
    outputs: dict[str, Any] = field(default_factory=dict, repr=False)
    """Stack outputs after ``up``; a secret one is ``None`` here (see ``secret_outputs``): its
    value never reaches this process from the engine."""
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
        untracked: UntrackedRemoval | None = None,
        provider_env: Mapping[str, str] | None = None,
    ):
        """``provider_env`` is what the stack's dynamic providers read during their calls
        (``dynamic_host.provider_env``): they are served from this process, so it never goes
        into any process's environment (the Prefect provider's credential is in it)."""
        self.settings = settings
        self._provider_env = dict(provider_env or {})
        self._host: DynamicProviderHost | None = None
        self._scratch: Path | None = None
        self._scratch_lock = threading.RLock()
        self._orphan_hints = dict(orphan_hints or {})
        self._adopt = adopt or (lambda _type, _inputs: None)
        self._untracked = untracked
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
        untracked: UntrackedRemoval | None = None,
        provider_env: Mapping[str, str] | None = None,
    ) -> Engine:
        """An engine for one pool's operations that reuses this one's CLI (found once per
        command; its version is known per binary, see ``pulumi_cli``)."""
        engine = Engine(
            settings,
            on_install=self._on_install,
            on_notice=self._notice,
            retry_delays=self._retry_delays,
            orphan_hints=orphan_hints,
            adopt=adopt,
            untracked=untracked,
            provider_env=provider_env,
        )
        engine._cmd = self._cmd
        return engine

    def notice(self, message: str) -> None:
        """Forward an informational message to the UI."""
        self._notice(message)

    @property
    def locks(self) -> StackLocks:
        """The locks on this backend's pool stacks."""
        from provision.locks import StackLocks

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

    def _workspace(self, work_dir: Path) -> LocalWorkspace:
        """A workspace in ``work_dir``: the project file written, nothing run. Its calls never
        run the program (the operations do, see ``_operate``)."""
        from pulumi import automation as auto

        work_dir.mkdir(parents=True, exist_ok=True)
        # Written here, not as the workspace's ``project_settings``: its writer is PyYAML's,
        # which a command otherwise never loads (``stacks/sdk_modules.py``).
        self._write_project(work_dir)
        return auto.LocalWorkspace(
            work_dir=str(work_dir),
            env_vars=self._cli_env(),
            secrets_provider=self.settings.secrets_provider,
            pulumi_command=self.command(),
        )

    def _stack_dir(self, pool: str) -> Path:
        """The throwaway work dir of ``pool``'s stack in this process."""
        return self._scratch_dir() / "stacks" / pool

    def _write_stack_files(
        self, pool: str, secrets: Mapping[str, Any], config: Mapping[str, str]
    ) -> Path:
        """Write ``pool``'s stack settings file without the SDK, and return the work dir (whose
        project file the caller writes: ``_workspace`` does): the settings name the secrets
        manager the state has (``secrets``: the deployment's ``secrets_providers``) and hold
        ``config``. JSON is YAML. Settings that ``stack init`` wrote there for a new stack (its
        passphrase salt) are kept."""
        work_dir = self._stack_dir(pool)
        work_dir.mkdir(parents=True, exist_ok=True)
        path = work_dir / f"Pulumi.{pool}.yaml"
        settings: dict[str, Any] = {}
        if path.exists():
            import yaml

            settings = yaml.safe_load(path.read_text()) or {}
        settings.update(_pinned_secrets(secrets))
        settings["config"] = dict(config)
        path.write_text(json.dumps(settings))
        return work_dir

    def _read_dir(self) -> Path:
        """The work dir of raw state reads: a project file only (``list`` reads pools on
        several threads at once, so it is written once, under a lock)."""
        with self._scratch_lock:
            work_dir = self._scratch_dir() / "read"
            if not work_dir.exists():
                work_dir.mkdir(parents=True)
                # The stack name is resolved within the project: the file names it.
                self._write_project(work_dir)
            return work_dir

    def _write_project(self, work_dir: Path) -> None:
        """The project file in ``work_dir``, naming this engine's backend (JSON is YAML)."""
        project = {"name": PROJECT_NAME, "runtime": "python"}
        project["backend"] = {"url": self.settings.backend_url}
        (work_dir / "Pulumi.yaml").write_text(json.dumps(project))

    def _cli_env(self) -> dict[str, str]:
        """What every CLI call gets on top of this process's environment."""
        return {
            "PULUMI_SKIP_UPDATE_CHECK": "true",
            **self.settings.engine_env,
            # The CLI prefers this variable to the project's backend: the settings' backend
            # (--backend-url, or a throwaway one for plans of new pools) must win.
            "PULUMI_BACKEND_URL": self.settings.backend_url,
        }

    def _binary(self) -> str:
        """The CLI's path: known without loading the SDK when its version was checked before,
        else through ``command`` (which checks it, or installs the CLI)."""
        if self._cmd is not None:
            return self._cmd.command
        from provision.pulumi_cli import checked_binary

        known = checked_binary(self.settings)
        return str(known) if known is not None else self.command().command

    def _dynamic_host(self) -> DynamicProviderHost:
        """This engine's dynamic-provider host (serving from the first stack workspace until
        the engine is collected)."""
        if self._host is None:
            from provision.dynamic_host import DynamicProviderHost

            self._host = DynamicProviderHost(self._provider_env)
            weakref.finalize(self, self._host.stop)
        return self._host

    def _scratch_dir(self) -> Path:
        """This process's throwaway directory (read-only workspace, state reads' project)."""
        with self._scratch_lock:  # pools are read on several threads at once
            if self._scratch is None:
                self._scratch = Path(tempfile.mkdtemp(prefix="provision-"))
                weakref.finalize(self, shutil.rmtree, str(self._scratch), True)
            return self._scratch

    def scratch_workspace(self) -> LocalWorkspace:
        """A workspace for read-only calls: a throwaway work dir, nothing under PROVISION_HOME.
        Raw CLI commands run through its ``pulumi_command``, ``work_dir`` and ``env_vars``."""
        return self._workspace(self._scratch_dir() / "workspace")

    def export(
        self, pool: str, *, while_reading: Callable[[], None] | None = None
    ) -> dict[str, Any] | None:
        """The pool's exported deployment (secrets stay ciphertext), ``{}`` for a stack with
        nothing recorded yet, or ``None`` when the backend has no stack for ``pool``.

        Reads only: nothing is decrypted (no passphrase is needed, and no key is derived) and
        nothing is written on this machine, so it is safe before validation is over. Waits
        first for a killed run's orphaned engine, which may still be writing the checkpoint.
        A file backend's checkpoint is read straight from disk when ``state_file`` knows its
        layout; otherwise the CLI reads it. ``while_reading`` runs on this thread after the
        read, or while the CLI reads (after the SDK the engine's next calls need is loaded,
        which is done then too).
        """
        exported = self._export(pool, while_reading=while_reading)
        return None if exported is None else exported.get("deployment") or {}

    def _export(
        self, pool: str, *, while_reading: Callable[[], None] | None = None
    ) -> dict[str, Any] | None:
        """``pulumi stack export`` as it prints it: ``{"version": N, "deployment": {...}}``.

        The CLI is started directly, not through a workspace: building one loads the pulumi
        SDK (~0.15 s), which is loaded here instead while the CLI runs. Not the workspace's
        ``export_stack`` either: that one decrypts every secret (``--show-secrets``).
        """
        if self.settings.is_local_backend:
            found = self._read_local(pool)
            if found is not UNKNOWN:
                if while_reading is not None:
                    while_reading()
                return found  # type: ignore[return-value]
        from provision.cli_run import cli_environment

        self.locks.wait_for_orphans(pool)
        work_dir = self._read_dir()
        binary = self._binary()
        process = subprocess.Popen(
            [binary, "--non-interactive", "stack", "export", "--stack", pool],
            cwd=work_dir,
            env=cli_environment(binary, self._cli_env()),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            encoding="utf-8",
        )
        with process:
            try:
                from pulumi import automation as auto

                if while_reading is not None:
                    while_reading()
            finally:
                out, err = process.communicate()
        if process.returncode:
            failure = auto.errors.create_command_error(
                auto.CommandResult(stdout=out, stderr=err, code=process.returncode)
            )
            if isinstance(failure, auto.StackNotFoundError) or "no stack named" in err.lower():
                return None
            raise classify(str(failure), pool=pool, operation="state read") from None
        return json.loads(out or "{}")

    def _read_local(self, pool: str) -> dict[str, Any] | object | None:
        """A file backend's state without the CLI (``state_file``), or ``UNKNOWN``."""
        if not self.settings.local_backend_path.exists():
            return None  # asking the CLI would create the backend directory
        self.locks.wait_for_orphans(pool)
        return read_checkpoint(self.settings.backend_url, PROJECT_NAME, pool)

    def stack(
        self,
        pool: str,
        program: Program,
        *,
        deployment: Mapping[str, Any] | None,
        config: Mapping[str, str],
    ) -> PoolStack:
        """The pool's stack for this run, with ``program`` and ``config``.

        ``deployment`` is what ``export`` just returned: ``None`` (no stack) creates it, the
        one CLI call here; otherwise the stack is taken to exist, and recovery starts from that
        state. The work dir is a throwaway one: everything the pool needs is in the backend,
        and its stack settings file is written once, from there (the secrets manager the state
        names) and from ``config`` (plain values: the providers' settings), so a fresh machine
        and a warm one behave alike.
        """
        from pulumi import automation as auto

        from provision.engine_stack import PoolStack

        if deployment is None:
            created = self.settings.create_passphrase()
            if created:
                self._notice(
                    f"Generated a passphrase for Pulumi secrets at {created} (mode 0600). Back "
                    "it up, and share it with whoever operates this pool (or use a KMS/Vault "
                    "secrets provider): it decrypts the credentials kept in the stack state."
                )
        self._prepare()
        ws = self._workspace(self._stack_dir(pool))
        # A killed run's engine may still be writing the checkpoint: reading it now could
        # see a partial file ("failed to load checkpoint: EOF").
        self.locks.wait_for_orphans(pool)
        if deployment is None:
            try:
                # `stack init` writes the new stack's secrets manager settings in the work dir.
                ws.create_stack(pool)
            except auto.CommandError as exc:
                raise classify(str(exc), pool=pool, operation="stack creation") from None
        secrets = (deployment or {}).get("secrets_providers") or {}
        self._write_stack_files(pool, secrets, config)
        return PoolStack(pool, ws, program, {} if deployment is None else deployment, config)

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

    def remove(self, stack: PoolStack, *, force: bool = False) -> None:
        """Remove the (empty) stack, and the work dir an earlier version kept for it.

        ``force`` also drops a stack whose state still lists the root stack or providers.
        """
        stack.workspace.remove_stack(stack.name, force=force or None)
        shutil.rmtree(self.settings.legacy_work_dir(stack.name), ignore_errors=True)

    # -- operations -----------------------------------------------------------------------

    def start_preview(
        self,
        pool: str,
        *,
        deployment: Mapping[str, Any],
        config: Mapping[str, str],
        refresh: bool = False,
    ) -> CliRun:
        """Start the preview of an existing stack before its program is ready, to be handed
        to ``preview`` (``started``) once it is, or cancelled. The CLI's start-up, backend
        read and key derivation then overlap whatever the caller does meanwhile; nothing here
        loads the pulumi SDK. ``deployment`` and ``config`` are what ``stack`` will be given.
        """
        self._prepare()
        self._preview_locks(pool)
        return self._start_existing(pool, deployment, config, _preview_command(refresh))

    def start_up(
        self,
        pool: str,
        *,
        deployment: Mapping[str, Any],
        config: Mapping[str, str],
        refresh: bool = False,
    ) -> CliRun:
        """Start the update of an existing stack before its program is ready, as
        ``start_preview`` does, for ``up`` (``started``). Cancelling it writes nothing: the
        CLI asks the program's language host for its metadata (``About``) before its update
        takes the stack's lock, and waits for the answer until the program is served.
        Only for a state with no pending operations (recovery would change it first)."""
        if deployment.get("pending_operations"):
            raise ValueError("a stack with pending operations is recovered before its update")
        self._prepare()
        self.locks.wait_for_orphans(pool)
        return self._start_existing(pool, deployment, config, _up_command(refresh, None))

    def _start_existing(
        self,
        pool: str,
        deployment: Mapping[str, Any],
        config: Mapping[str, str],
        command: Sequence[str],
    ) -> CliRun:
        secrets = deployment.get("secrets_providers") or {}
        work_dir = self._write_stack_files(pool, secrets, config)
        self._write_project(work_dir)  # no workspace yet: the CLI starts before the SDK loads
        run = self._start(pool, command, work_dir, deployment, config)
        run.owner = self  # this engine's scratch dir is the run's work dir
        return run

    def preview(
        self,
        stack: PoolStack,
        *,
        on_progress: ProgressCallback | None = None,
        refresh: bool = False,
        rules: Iterable[ErrorRule] = (),
        started: CliRun | None = None,
    ) -> OperationResult:
        """What ``up`` would change (``refresh``: after reading the cloud's actual state);
        ``started``: the CLI ``start_preview`` started for it."""
        if started is None:
            self._preview_locks(stack.name)
        translator = EventTranslator(on_progress)
        self._operate(stack, "preview", _preview_command(refresh), rules, translator, started)
        return OperationResult(changes=_changes(translator.summary), steps=_steps(translator))

    def _preview_locks(self, pool: str) -> None:
        # A preview writes nothing, but a killed run's stale lock would still block it.
        self.locks.wait_for_orphans(pool)
        if self.settings.is_local_backend:
            self.locks.unlock(pool)

    def up(
        self,
        stack: PoolStack,
        *,
        on_progress: ProgressCallback | None = None,
        rules: Iterable[ErrorRule] = (),
        propagation: Iterable[str] = (),
        refresh: bool = False,
        targets: Sequence[str] | None = None,
        started: CliRun | None = None,
    ) -> OperationResult:
        """Apply the stack, retrying while new identities/grants propagate.

        ``refresh`` reads the cloud first, so drift is repaired rather than ignored;
        ``targets`` limits the update to those URNs; ``started``: the CLI ``start_up``
        started for its first attempt. The changes, each resource's outputs and
        the stack outputs come from the engine's events: no CLI call follows ``pulumi up``.
        """
        rules = tuple(rules)
        retry_rules = propagation_rules(propagation)
        command = _up_command(refresh, targets)
        attempt = 0
        while True:
            self.recover(stack)
            translator = EventTranslator(on_progress)
            try:
                self._operate(stack, "update", command, retry_rules + rules, translator, started)
                break
            except PropagationError as exc:
                if attempt >= len(self._retry_delays):
                    # Out of patience: report what the cloud actually said.
                    raise classify(
                        exc.details or "",
                        pool=stack.name,
                        rules=rules,
                        failures=translator.failures,
                    ) from None
                delay = self._retry_delays[attempt]
                attempt += 1
                self._notice(
                    f"New identities or grants are still propagating; retrying in {delay:g}s "
                    f"(attempt {attempt + 1} of {len(self._retry_delays) + 1})."
                )
                time.sleep(delay)
                started = None  # finished by the failed attempt: the retry starts its own
        exported = translator.stack_outputs
        return OperationResult(
            changes=_changes(translator.summary),
            steps=_steps(translator),
            outputs={k: None if is_secret(v) else v for k, v in exported.items()},
            secret_outputs=frozenset(k for k, v in exported.items() if is_secret(v)),
        )

    def destroy(
        self,
        stack: PoolStack,
        *,
        on_progress: ProgressCallback | None = None,
        rules: Iterable[ErrorRule] = (),
    ) -> OperationResult:
        """Delete every resource of the stack (the stack itself stays; see ``remove``)."""
        self.recover(stack)
        translator = EventTranslator(on_progress)
        command = ["destroy", "--yes", "--skip-preview", "--color", "never"]
        self._operate(stack, "destroy", command, rules, translator)
        return OperationResult(changes=_changes(translator.summary))

    def _start(
        self,
        pool: str,
        command: Sequence[str],
        work_dir: Path,
        deployment: Mapping[str, Any] | None,
        config: Mapping[str, str],
    ) -> CliRun:
        """Start ``pulumi COMMAND`` on ``pool``, with the provider plugins ``deployment`` (the
        state as last read; ``None``: unknown) shows the engine will need started beside it."""
        from provision.cli_run import CliRun, cli_environment
        from provision.plugins import attachable

        binary, env = self._binary(), self._cli_env()
        plugins = []
        # Previews only: a plugin started here lives as long as this process, and a killed
        # update's engine (the CLI) must be able to finish its in-flight operations.
        if deployment and command[0] == "preview":
            plugins = attachable(
                deployment,
                project=PROJECT_NAME,
                config=config,
                env=cli_environment(binary, env),
            )
        return CliRun(binary, command, stack=pool, work_dir=work_dir, env=env, plugins=plugins)

    def _operate(
        self,
        stack: PoolStack,
        operation: str,
        command: Sequence[str],
        rules: Iterable[ErrorRule],
        translator: EventTranslator,
        started: CliRun | None = None,
    ) -> None:
        """Run ``pulumi COMMAND`` on ``stack`` with its program (or finish ``started``), the
        engine's failure classified with ``rules``."""
        from pulumi import automation as auto

        run = started
        if run is not None and (run.exited or run.age > SERVE_WITHIN_S):
            # It ended before its program was served, on an error of its own (run again, it
            # reports that error), or it may give up waiting before it is answered.
            run.cancel()
            run = None
        deployment = stack.deployment
        while True:
            if run is None:
                work_dir = stack.workspace.work_dir
                run = self._start(stack.name, command, work_dir, deployment, stack.config)
            try:
                run.serve(stack.program, self._dynamic_host().start(), translator)
            except BaseException:
                run.cancel()
                raise
            try:
                run.finish()
                return
            except auto.CommandError as exc:
                if run.unattached:
                    # A plugin started for the preview's CLI to attach to could not be (it
                    # would not start without the engine's address): the engine starts them
                    # all itself on the second run, which starts none (no deployment).
                    translator.restart()
                    run, deployment = None, None
                    continue
                raise classify(
                    str(exc),
                    pool=stack.name,
                    rules=rules,
                    failures=translator.failures,
                    operation=operation,
                ) from None

    # -- recovery after an interrupted run ------------------------------------------------

    def recover(self, stack: PoolStack) -> None:
        """Make a stack usable after a killed run: orphaned engine, stale lock, pending ops.

        The locks are ``StackLocks``' job and the decision ``recovery.decide_recovery``'s.
        The state the caller read (``stack.deployment``) says whether any operation was in
        flight: only then is the state read again (an orphaned engine may have finished some
        since), the decision's deployment imported, and the stack refreshed.
        """
        pool = stack.name
        if not self.locks.release_stale(pool):
            # A live run holds the stack: its in-flight operations are not ours to reconcile,
            # and its checkpoint may be mid-write. The operation itself reports the lock.
            return
        known = stack.deployment
        if known is not None and not known.get("pending_operations"):
            return
        exported = self._export(pool) or {}
        deployment = exported.get("deployment") or {}
        removal = self._untracked
        decision = decide_recovery(
            pool,
            deployment,
            self._adopt,
            self._orphan_hints,
            removal.types if removal else frozenset(),
        )
        if decision is None:
            stack.deployment = deployment
            return
        self._notice(decision.announcement)
        # From here on the state changes: a later recovery (a retried update) reads it again.
        stack.deployment = None
        if decision.adopted:
            from pulumi import automation as auto

            state = auto.Deployment(version=exported.get("version"), deployment=decision.deployment)
            try:
                stack.import_stack(state)
            except auto.CommandError as exc:
                raise classify(str(exc), pool=pool, operation="recovery") from None
        for message in decision.notices:
            self._notice(message)
        if removal is not None:
            # The copies a killed create may have left that no id can adopt: the target
            # removes them itself (only the types it declared are here).
            for untracked in decision.untracked:
                self._notice(removal.remove(untracked))
        # Pending creates may or may not exist in the cloud; dropping them lets the engine
        # re-create from the program, and refresh reconciles every recorded resource.
        command = ["refresh", "--yes", "--skip-preview", "--clear-pending-creates"]
        self._operate(stack, "recovery refresh", command, (), EventTranslator(None))

    def backend_label(self) -> str:
        """The backend, as messages name it."""
        return (
            f"the local state under {self.settings.local_backend_path}"
            if self.settings.is_local_backend
            else self.settings.backend_url
        )


def _pinned_secrets(secrets: Mapping[str, Any]) -> dict[str, str]:
    """The stack settings naming the secrets manager the state has (``secrets``: the
    deployment's ``secrets_providers``).

    A fresh machine's work dir has no settings file: the CLI would then set up a default
    passphrase manager (with a salt of its own, or asking for a passphrase a KMS-backed stack
    never needed).
    """
    state = secrets.get("state") or {}
    if secrets.get("type") == "passphrase" and state.get("salt"):
        return {"encryptionsalt": state["salt"]}
    if secrets.get("type") == "cloud":
        pinned = {"secretsprovider": state.get("url"), "encryptedkey": state.get("encryptedkey")}
        return {k: v for k, v in pinned.items() if v}
    return {}


def _up_command(refresh: bool, targets: Sequence[str] | None) -> list[str]:
    command = ["up", "--yes", "--skip-preview", "--color", "never"]
    if refresh:
        command.append("--refresh")
    for urn in targets or ():
        command += ["--target", urn]
    return command


def _preview_command(refresh: bool) -> list[str]:
    return ["preview", "--color", "never", *(["--refresh"] if refresh else [])]


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
            urn=s["urn"],
            type=s["type"],
            name=urn_name(s["urn"]),
            op=op,
            inputs=s["inputs"],
            outputs=translator.outputs.get(s["urn"], {}),
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
