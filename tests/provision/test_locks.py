"""Lock holders and staleness: pure functions over what the DIY backends write; and
``StackLocks`` on a file backend, where it needs no CLI (tests/e2e/test_team.py runs it on S3)."""

from __future__ import annotations

import json
import socket
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from provision.engine import Engine
from provision.locks import (
    STALE_AFTER,
    LockHolder,
    StackLocks,
    from_lock_file,
    is_stale,
    parse_holders,
)
from provision.settings import load_settings

LOCKED = (
    "error: the stack is currently locked by 2 lock(s). Either wait for the other process(es) "
    "to end or delete the lock file with `pulumi cancel`.\n"
    "  s3://b/.pulumi/locks/organization/provision/p/1.json?region=x: created by "
    "alice@laptop-a (pid 4242) at 2026-12-01T21:04:45Z\n"
    "  s3://b/.pulumi/locks/organization/provision/p/2.json?region=x: created by "
    "@ci-runner-7 (pid 7) at 2026-12-01T22:04:45+01:00\n"
)
NOW = datetime(2026, 12, 1, 22, 0, tzinfo=UTC)


def test_every_holder_of_a_lock_error_is_parsed():
    first, second = parse_holders(LOCKED)
    assert (first.user, first.host, first.pid) == ("alice", "laptop-a", 4242)
    assert first.since == datetime(2026, 12, 1, 21, 4, 45, tzinfo=UTC)
    assert first.where.startswith("s3://b/.pulumi/locks/")
    assert (second.user, second.host, second.pid) == ("", "ci-runner-7", 7)
    assert second.since == datetime(2026, 12, 1, 21, 4, 45, tzinfo=UTC)  # offsets honoured
    assert first.describe() == "alice@laptop-a (pid 4242) since 2026-12-01T21:04:45+00:00"
    assert parse_holders("error: no stack named 'p' found") == []


def test_a_lock_file_reads_as_a_holder():
    holder = from_lock_file(
        "/x/1.json",
        {"pid": 12, "username": "bob", "hostname": "h", "timestamp": "2026-12-01T21:00:00Z"},
    )
    assert holder == LockHolder("/x/1.json", "bob", "h", 12, datetime(2026, 12, 1, 21, tzinfo=UTC))
    assert from_lock_file("/x", {"timestamp": "not a time"}).since is None


def test_stale_means_a_dead_local_process_or_older_than_any_run():
    dead = subprocess.Popen(["true"])
    dead.wait()
    recent = NOW - timedelta(minutes=1)
    assert is_stale(LockHolder("l", "u", "here", dead.pid, recent), now=NOW, host="here")
    # Another host's process can't be checked: only its age tells.
    assert not is_stale(LockHolder("l", "u", "there", dead.pid, recent), now=NOW, host="here")
    old = NOW - STALE_AFTER - timedelta(seconds=1)
    assert is_stale(LockHolder("l", "u", "there", 1, old), now=NOW, host="here")
    # A live local process holds it, however old: only its age could say otherwise.
    live = subprocess.Popen(["sleep", "30"])
    try:
        assert not is_stale(LockHolder("l", "u", "here", live.pid, recent), now=NOW, host="here")
    finally:
        live.kill()
        live.wait()
    assert not is_stale(LockHolder("l", "u", "there", 1, None), now=NOW, host="here")


# -- StackLocks on a file backend ------------------------------------------------------------


@pytest.fixture
def engine(tmp_path: Path) -> Engine:
    notices: list[str] = []
    eng = Engine(load_settings(env={"PROVISION_HOME": str(tmp_path)}), on_notice=notices.append)
    eng.notices = notices  # type: ignore[attr-defined]
    return eng


@pytest.fixture
def live_pid() -> Iterator[int]:
    proc = subprocess.Popen(["sleep", "30"])
    try:
        yield proc.pid
    finally:
        proc.kill()
        proc.wait()


@pytest.fixture
def dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def write_lock(engine: Engine, pool: str, name: str, pid: int) -> Path:
    root = engine.settings.local_backend_path
    assert root is not None
    directory = root / ".pulumi" / "locks" / "organization" / "provision" / pool
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}.json"
    path.write_text(
        json.dumps(
            {
                "pid": pid,
                "username": "someone",
                "hostname": socket.gethostname(),
                "timestamp": datetime.now(UTC).isoformat(timespec="seconds"),
            }
        )
    )
    path.with_name(path.name + ".attrs").write_text("{}")
    return path


def test_a_pools_lock_files_and_holders_are_its_own(engine: Engine, live_pid: int) -> None:
    locks = StackLocks(engine)
    assert locks.files("etl") == [] and locks.holders("etl") == []
    mine = write_lock(engine, "etl", "a", live_pid)
    write_lock(engine, "other", "b", live_pid)
    (mine.parent / "c.json").write_text("not json")

    assert locks.files("etl") == [mine, mine.parent / "c.json"]
    (holder,) = locks.holders("etl")  # an unreadable lock names no holder
    assert (holder.where, holder.pid, holder.user) == (str(mine), live_pid, "someone")


def test_unlock_clears_only_stale_locks_unless_forced(
    engine: Engine, live_pid: int, dead_pid: int
) -> None:
    locks = engine.locks
    live = write_lock(engine, "etl", "live", live_pid)
    dead = write_lock(engine, "etl", "dead", dead_pid)

    (cleared,) = locks.unlock("etl")

    assert cleared.pid == dead_pid
    assert not dead.exists() and not dead.with_name(dead.name + ".attrs").exists()
    assert live.exists()
    assert [h.pid for h in locks.unlock("etl", force=True)] == [live_pid]
    assert locks.files("etl") == []


def test_release_stale_says_what_it_cleared_and_whether_the_stack_is_free(
    engine: Engine, live_pid: int, dead_pid: int
) -> None:
    locks = engine.locks
    assert locks.release_stale("etl") is True
    assert engine.notices == []  # type: ignore[attr-defined]

    write_lock(engine, "etl", "dead", dead_pid)
    assert locks.release_stale("etl") is True
    assert engine.notices == [  # type: ignore[attr-defined]
        "Removed a stale lock left by a killed run on 'etl'."
    ]

    write_lock(engine, "etl", "live", live_pid)  # a live run, not an orphan: no wait
    assert locks.release_stale("etl") is False


def test_clearing_a_killed_runs_lock_repairs_the_sidecar_it_tore(
    engine: Engine, live_pid: int, dead_pid: int
) -> None:
    # A writer killed between truncating a blob's metadata sidecar and writing it leaves it
    # empty; the CLI then fails on the stack with "failed to load checkpoint: EOF".
    root = engine.settings.local_backend_path
    assert root is not None
    (root / ".pulumi").mkdir(parents=True)
    (root / ".pulumi" / "meta.yaml").write_text("version: 1\n")
    stacks = root / ".pulumi" / "stacks" / "provision"
    stacks.mkdir(parents=True)
    torn = stacks / "etl.json.attrs"
    torn.write_text("")

    live = write_lock(engine, "etl", "live", live_pid)
    write_lock(engine, "etl", "dead", dead_pid)
    engine.locks.unlock("etl")
    assert torn.exists(), "a live run still holds the stack: its writes are its own"

    live.unlink()
    write_lock(engine, "etl", "dead", dead_pid)
    assert engine.locks.release_stale("etl") is True
    assert not torn.exists()
    assert engine.notices[-2:] == [  # type: ignore[attr-defined]
        "Removed 1 half-written state metadata file(s) a killed run left on 'etl' "
        "(etl.json.attrs).",
        "Removed a stale lock left by a killed run on 'etl'.",
    ]
