"""Lock holders and staleness: pure functions over what the DIY backends write."""

from __future__ import annotations

import subprocess
from datetime import UTC, datetime, timedelta

from provision.locks import STALE_AFTER, LockHolder, from_lock_file, is_stale, parse_holders

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
