"""The fake clouds' persistent state, shared by provider processes and tests.

Layout under the state directory (``FAKECLOUD_STATE_DIR``)::

    .lock                          flock target: every read-modify-write holds it
    calls.jsonl                    one line per provider call (no property values)
    faults-fired.json              ``once`` faults that already fired
    <cloud>/<type>/<id>.json       one file per cloud object, e.g.
    gcp/serviceaccount.account.Account/projects%2Fp%2FserviceAccounts%2F...json

Each object file holds a *record*::

    {"cloud", "type", "id", "name", "urn", "properties", "meta",
     "createdAt", "updatedAt", "deleted", "deletedAt"}

``properties`` is what the cloud itself holds, in Pulumi wire (camelCase) names;
write-only values such as a new key's private key are never stored. ``deleted``
records are tombstones: the cloud remembers them (a soft-deleted IAM role, a
disabled API) but they no longer count as existing.

Two stacks run their provider processes in parallel against one directory, so
every check-then-write happens under an exclusive ``flock`` and files are
replaced atomically (write to a temp file, ``os.replace``). Nothing here
imports pulumi, so tests can use it cheaply.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import threading
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote

CALLS_FILE = "calls.jsonl"
FAULTS_FILE = "faults-fired.json"
LOCK_FILE = ".lock"
_MAX_STEM = 180  # keeps file names under common 255-byte limits after quoting


def split_token(type_token: str) -> tuple[str, str]:
    """``"gcp:serviceaccount/account:Account"`` -> ``("gcp", "serviceaccount.account.Account")``."""
    cloud, _, rest = type_token.partition(":")
    if not cloud or not rest:
        raise ValueError(f"not a Pulumi type token: {type_token!r}")
    return cloud, rest.replace("/", ".").replace(":", ".")


def _id_stem(resource_id: str) -> str:
    """A file-name-safe, reversible-looking stem; long ids get a hash suffix."""
    stem = quote(resource_id, safe="")
    if len(stem) <= _MAX_STEM:
        return stem
    digest = hashlib.sha256(resource_id.encode()).hexdigest()[:16]
    return f"{stem[: _MAX_STEM - 17]}~{digest}"


class FakeCloud:
    """Read and write the fake clouds' objects under ``state_dir``.

    Tests use the query side (:meth:`resources`, :meth:`get`, :meth:`count`,
    :meth:`find`, :meth:`calls`) and the out-of-band side (:meth:`put`,
    :meth:`edit`, :meth:`remove`) to simulate drift or pre-existing objects.
    Provider processes use :meth:`transaction` plus the same methods.
    """

    def __init__(self, state_dir: str | os.PathLike[str]) -> None:
        self.root = Path(state_dir)
        self.root.mkdir(parents=True, exist_ok=True)
        # Per thread: a provider may run handlers in worker threads (Cloud.blocking_io). Each
        # thread takes the flock on its own open file, so threads exclude each other as
        # processes do; a shared depth would let a second thread in without the lock.
        self._held = threading.local()

    # ----------------------------------------------------------------- locking
    @contextlib.contextmanager
    def transaction(self) -> Iterator[FakeCloud]:
        """Hold the state directory's exclusive lock (re-entrant within this object and thread).

        Never ``await`` while holding it: another coroutine of the same process
        would block the event loop on ``flock`` and deadlock. Nor hold it across a
        slow call (the AWS fake's requests to moto): every other caller would wait.
        """
        held = self._held
        if not getattr(held, "depth", 0):
            fd = os.open(self.root / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
            fcntl.flock(fd, fcntl.LOCK_EX)
            held.fd, held.depth = fd, 0
        held.depth += 1
        try:
            yield self
        finally:
            held.depth -= 1
            if held.depth == 0:
                fcntl.flock(held.fd, fcntl.LOCK_UN)
                os.close(held.fd)
                held.fd = None

    # ------------------------------------------------------------------- files
    def path_for(self, type_token: str, resource_id: str) -> Path:
        """Where the record of ``resource_id`` lives (whether or not it exists)."""
        cloud, type_dir = split_token(type_token)
        return self.root / cloud / type_dir / f"{_id_stem(resource_id)}.json"

    def _write(self, path: Path, data: Mapping[str, Any]) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(data, indent=2, sort_keys=True))
        os.replace(tmp, path)  # atomic: readers see the old or the new file, never half

    @staticmethod
    def _read(path: Path) -> dict[str, Any] | None:
        try:
            return json.loads(path.read_text())
        except FileNotFoundError:
            return None

    # ------------------------------------------------------------------ queries
    def get(
        self, type_token: str, resource_id: str, *, include_deleted: bool = False
    ) -> dict[str, Any] | None:
        """The record for ``resource_id``, or None (tombstones only if asked)."""
        record = self._read(self.path_for(type_token, resource_id))
        if record is None or (record.get("deleted") and not include_deleted):
            return None
        return record

    def resources(
        self,
        type_token: str | None = None,
        *,
        cloud: str | None = None,
        include_deleted: bool = False,
    ) -> list[dict[str, Any]]:
        """All records (optionally of one type or cloud), sorted by type then id."""
        if type_token is not None:
            pattern = "/".join(split_token(type_token)) + "/*.json"
        else:
            pattern = f"{cloud or '*'}/*/*.json"
        records = []
        for path in self.root.glob(pattern):
            record = self._read(path)
            if record is not None and (include_deleted or not record.get("deleted")):
                records.append(record)
        return sorted(records, key=lambda r: (r["type"], r["id"]))

    def count(self, type_token: str | None = None, **kwargs: Any) -> int:
        """``len(self.resources(type_token, **kwargs))``."""
        return len(self.resources(type_token, **kwargs))

    def find(self, type_token: str, **properties: Any) -> list[dict[str, Any]]:
        """Live records of ``type_token`` whose properties equal all of ``properties``."""
        return [
            r
            for r in self.resources(type_token)
            if all(r["properties"].get(k) == v for k, v in properties.items())
        ]

    def calls(
        self,
        op: str | None = None,
        type_token: str | None = None,
        *,
        include_preview: bool = False,
        phase: str = "end",
    ) -> list[dict[str, Any]]:
        """Logged provider calls, oldest first.

        By default only finished (``phase == "end"``), non-preview calls. Mutating
        calls also log a ``phase == "begin"`` line before touching the cloud, so a
        test can see an operation that was killed in flight.
        """
        try:
            text = (self.root / CALLS_FILE).read_text()
        except FileNotFoundError:
            return []
        # A reader polling while a provider appends can see the write half done: Linux makes
        # appends exclusive among writers, not against readers, and a line crossing a page
        # boundary becomes visible a page at a time. The unfinished line is always the last and
        # has no newline yet; it is left for the next read.
        lines = text.split("\n")[:-1]
        entries = [json.loads(line) for line in lines if line.strip()]
        return [
            e
            for e in entries
            if (op is None or e["op"] == op)
            and (type_token is None or e.get("type") == type_token)
            and (include_preview or not e.get("preview"))
            and (phase is None or e.get("phase") == phase)
        ]

    # ------------------------------------------------------------------ writes
    def put(
        self,
        type_token: str,
        resource_id: str,
        properties: Mapping[str, Any],
        *,
        name: str | None = None,
        urn: str | None = None,
        meta: Mapping[str, Any] | None = None,
        created_at: float | None = None,
    ) -> dict[str, Any]:
        """Create or overwrite a live record (tests: seed a pre-existing object)."""
        now = time.time()
        record = {
            "cloud": split_token(type_token)[0],
            "type": type_token,
            "id": resource_id,
            "name": name,
            "urn": urn,
            "properties": dict(properties),
            "meta": dict(meta or {}),
            "createdAt": now if created_at is None else created_at,
            "updatedAt": now,
            "deleted": False,
            "deletedAt": None,
        }
        with self.transaction():
            self._write(self.path_for(type_token, resource_id), record)
        return record

    def edit(self, type_token: str, resource_id: str, **properties: Any) -> dict[str, Any]:
        """Change properties of a live record out of band (tests: simulate drift).

        A value of None removes the property.
        """
        with self.transaction():
            record = self.get(type_token, resource_id)
            if record is None:
                raise KeyError(f"{type_token} {resource_id!r} does not exist")
            for key, value in properties.items():
                if value is None:
                    record["properties"].pop(key, None)
                else:
                    record["properties"][key] = value
            record["updatedAt"] = time.time()
            self._write(self.path_for(type_token, resource_id), record)
            return record

    def save(self, record: Mapping[str, Any]) -> None:
        """Write a whole record back (providers: after changing it in a transaction)."""
        with self.transaction():
            self._write(self.path_for(record["type"], record["id"]), record)

    def remove(self, type_token: str, resource_id: str, *, tombstone: bool = False) -> bool:
        """Delete a record; with ``tombstone`` keep it marked deleted. False if absent."""
        path = self.path_for(type_token, resource_id)
        with self.transaction():
            record = self._read(path)
            if record is None or record.get("deleted"):
                return False
            if tombstone:
                record["deleted"] = True
                record["deletedAt"] = time.time()
                self._write(path, record)
            else:
                path.unlink()
            return True

    # ------------------------------------------------------- faults and the log
    def claim_once(self, key: str) -> bool:
        """True the first time ``key`` is claimed in this state dir, across processes."""
        path = self.root / FAULTS_FILE
        with self.transaction():
            fired = self._read(path) or {"fired": []}
            if key in fired["fired"]:
                return False
            fired["fired"].append(key)
            self._write(path, fired)
            return True

    def log_call(self, entry: Mapping[str, Any]) -> None:
        """Append one JSON line to calls.jsonl (a single O_APPEND write: no interleaving)."""
        line = json.dumps({"ts": time.time(), "pid": os.getpid(), **entry}, sort_keys=True)
        fd = os.open(self.root / CALLS_FILE, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, (line + "\n").encode())
        finally:
            os.close(fd)
