"""Stack locks of the DIY backends (file, S3, GCS, Azure Blob): who holds one, when a lock is
stale, and clearing them.

A lock is one object per running CLI, ``.pulumi/locks/organization/<project>/<stack>/<uuid>
.json`` holding ``{pid, username, hostname, timestamp}``. The functions parse what the backends
write and judge staleness, without pulumi; :class:`StackLocks` reads and clears the locks of a
pool's stack: on a file backend directly, on a remote one through the CLI, whose lock error
names each holder and whose ``cancel`` deletes them.
"""

from __future__ import annotations

import json
import os
import re
import socket
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from provision.engine_errors import classify
from provision.errors import EngineError
from provision.settings import PROJECT_NAME
from provision.state_file import repair_torn_sidecars

if TYPE_CHECKING:
    from provision.engine import Engine

STALE_AFTER = timedelta(hours=6)
"""No run of ``provision`` holds a lock this long: the engine's own operations finish in
minutes and propagation retries give up after about two. An older lock is a killed run's."""

_HOLDER = re.compile(
    r"^\s*(?P<where>\S+): created by (?P<user>[^@\s]*)@(?P<host>\S+) \(pid (?P<pid>\d+)\) "
    r"at (?P<since>\S+)\s*$",
    re.MULTILINE,
)


@dataclass(frozen=True)
class LockHolder:
    """One lock on a stack."""

    where: str
    """The lock object's path or URL."""
    user: str
    host: str
    pid: int
    since: datetime | None

    def describe(self) -> str:
        """``user@host (pid N) since T``, for messages."""
        when = self.since.isoformat(timespec="seconds") if self.since else "an unknown time"
        return f"{self.user}@{self.host} (pid {self.pid}) since {when}"


def parse_holders(text: str) -> list[LockHolder]:
    """The holders a DIY backend's "stack is currently locked" error lists."""
    return [
        LockHolder(
            where=m["where"],
            user=m["user"],
            host=m["host"],
            pid=int(m["pid"]),
            since=parse_time(m["since"]),
        )
        for m in _HOLDER.finditer(text)
    ]


def from_lock_file(where: str, content: dict) -> LockHolder:
    """A holder from a lock file's JSON."""
    return LockHolder(
        where=where,
        user=str(content.get("username", "")),
        host=str(content.get("hostname", "")),
        pid=int(content.get("pid", 0) or 0),
        since=parse_time(str(content.get("timestamp", ""))),
    )


def parse_time(text: str) -> datetime | None:
    """An RFC 3339 time (any offset) as an aware datetime, or ``None``."""
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def is_stale(holder: LockHolder, *, now: datetime | None = None, host: str | None = None) -> bool:
    """A lock whose run is certainly over: its process is gone from this host, or it is older
    than any run could be."""
    host = host or socket.gethostname()
    if holder.host == host and not pid_alive(holder.pid):
        return True
    now = now or datetime.now(UTC)
    return holder.since is not None and now - holder.since > STALE_AFTER


def pid_alive(pid: int) -> bool:
    """Whether a process of that pid exists on this host."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def orphaned(pid: int) -> bool:
    """True when ``pid``'s parent is gone (Linux: reparented to init)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    for line in status.splitlines():
        if line.startswith("PPid:"):
            return int(line.split()[1]) in (0, 1)
    return False


class StackLocks:
    """The locks on pool stacks in an engine's backend: who holds them, waiting for a killed
    run's engine to let go, and clearing stale ones. Remote backends are asked through the
    engine's CLI, in its scratch workspace."""

    def __init__(self, engine: Engine):
        self._engine = engine

    def files(self, pool: str) -> list[Path]:
        """Lock files of a local (file://) backend for this pool's stack."""
        root = self._engine.settings.local_backend_path
        if root is None:
            return []
        locks = root / ".pulumi" / "locks"
        return (
            sorted(p for p in locks.glob(f"*/{PROJECT_NAME}/{pool}/*.json") if p.is_file())
            if locks.exists()
            else []
        )

    def holders(self, pool: str) -> list[LockHolder]:
        """Who holds the pool's stack lock, on any DIY backend.

        A remote backend is asked through the CLI: ``stack init`` of the existing stack takes
        the lock first, so it either fails naming every holder or fails with "already exists",
        having changed nothing.
        """
        engine = self._engine
        if engine.settings.is_local_backend:
            return [holder for _, holder in self._local(pool)]
        from pulumi import automation as auto

        ws = engine.scratch_workspace()
        # The probe never reads a secret, but the CLI sets up a secrets manager for the stack
        # it would create: give it one that needs nothing from this machine.
        env = {**ws.env_vars, "PULUMI_CONFIG_PASSPHRASE": "lock-probe"}
        env.pop("PULUMI_CONFIG_PASSPHRASE_FILE", None)
        try:
            ws.pulumi_command.run(
                ["stack", "init", "--stack", pool, "--secrets-provider", "passphrase"],
                ws.work_dir,
                env,
            )
        except auto.CommandError as exc:
            return parse_holders(str(exc))
        raise EngineError(  # pragma: no cover - the stack existed a moment ago
            f"No stack named '{pool}' exists in {engine.backend_label()}."
        )

    def unlock(self, pool: str, *, force: bool = False) -> list[LockHolder]:
        """Clear the pool's locks if every one is stale (``force``: whatever they are).
        Returns the holders whose locks went; live ones are left alone."""
        if self._engine.settings.is_local_backend:
            cleared = []
            for path, holder in self._local(pool):
                if force or is_stale(holder):
                    path.unlink(missing_ok=True)
                    path.with_name(path.name + ".attrs").unlink(missing_ok=True)
                    cleared.append(holder)
            if cleared and not self.files(pool):
                self._repair_sidecars(pool)
            return cleared
        holders = self.holders(pool)
        if not holders or not (force or all(is_stale(h) for h in holders)):
            return []
        from pulumi import automation as auto

        ws = self._engine.scratch_workspace()
        try:
            # The DIY backends' cancel deletes every lock object of the stack.
            ws.pulumi_command.run(["cancel", "--yes", "--stack", pool], ws.work_dir, ws.env_vars)
        except auto.CommandError as exc:
            raise classify(str(exc), pool=pool, operation="unlock") from None
        return holders

    def wait_for_orphans(self, pool: str, timeout: float = 120.0) -> None:
        """Wait while a killed run's orphaned engine is still running.

        When ``provision`` is killed, its pulumi child lives on (reparented to init) until it
        next writes progress to the pipe nobody reads: SIGPIPE kills it then, holding the
        lock, typically as an in-flight operation completes (strace of an orphaned ``up``:
        ``write(1, ...) = -1 EPIPE``, then ``killed by SIGPIPE``), possibly in the middle of
        a checkpoint write (see ``state_file.repair_torn_sidecars``). Until then it may still
        be writing the state; waiting for it is what a user would do by hand. A lock held by
        a non-orphan is a real concurrent run.
        """
        host = socket.gethostname()
        announced = False
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            orphans = [
                h.pid
                for _, h in self._local(pool)
                if h.host == host and pid_alive(h.pid) and orphaned(h.pid)
            ]
            if not orphans:
                return
            if not announced:
                self._engine.notice(
                    f"The engine of a killed run on '{pool}' is still finishing its in-flight "
                    "operations; waiting for it."
                )
                announced = True
            time.sleep(0.25)

    def release_stale(self, pool: str) -> bool:
        """Wait for a killed run's orphaned engine, then clear the stale locks of a file
        backend (saying so). True when no lock is left, i.e. no live run holds the stack."""
        self.wait_for_orphans(pool)
        if self._engine.settings.is_local_backend and self.unlock(pool):
            self._engine.notice(f"Removed a stale lock left by a killed run on '{pool}'.")
        return not self.files(pool)

    def _repair_sidecars(self, pool: str) -> None:
        # The run whose lock went may have been killed inside a blob write, leaving a torn
        # metadata sidecar that would fail every later CLI command on the stack with
        # "failed to load checkpoint: EOF" (see state_file). No run holds the stack now.
        torn = repair_torn_sidecars(self._engine.settings.backend_url, PROJECT_NAME, pool)
        if torn:
            names = ", ".join(path.name for path in torn)
            self._engine.notice(
                f"Removed {len(torn)} half-written state metadata file(s) a killed run left "
                f"on '{pool}' ({names})."
            )

    def _local(self, pool: str) -> list[tuple[Path, LockHolder]]:
        found = []
        for path in self.files(pool):
            try:
                found.append((path, from_lock_file(str(path), json.loads(path.read_text()))))
            except (OSError, ValueError):
                continue
        return found
