"""Stack locks of the DIY backends (file, S3, GCS, Azure Blob): who holds one, and when a lock
is stale. Pure functions; the engine reads the locks and clears them.

A lock is one object per running CLI, ``.pulumi/locks/organization/<project>/<stack>/<uuid>
.json`` holding ``{pid, username, hostname, timestamp}``. On a file backend the engine reads
them directly; on a remote one it asks the CLI, whose lock error names each holder.
"""

from __future__ import annotations

import os
import re
import socket
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

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
