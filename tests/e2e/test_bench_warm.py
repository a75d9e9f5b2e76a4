"""``bench/warm.py``: the engine benchmark's previews of one pool through the Python API, in one
process, against the real engine, the fake GCP and the Prefect server. The benchmark takes a
``preview`` command's start-up to be its time minus these calls'; so they must be whole
previews of the pool, each timed, and change nothing."""

from __future__ import annotations

import secrets

import pytest

from bench.engine import warm_previews
from tests.e2e.conftest import Sandbox
from tests.e2e.test_gcp import up
from tests.fakecloud.faults import MUTATING_OPS

pytestmark = pytest.mark.e2e


def backend_bytes(box: Sandbox) -> dict[str, bytes]:
    """Every file of the file backend, by its path in it."""
    root = box.local_backend
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def ops(box: Sandbox) -> list[str]:
    """Every operation the fake cloud has logged, previews' included, oldest first."""
    return [c["op"] for c in box.cloud.calls(include_preview=True)]


def test_later_calls_are_timed_whole_previews_that_change_nothing(sandbox: Sandbox):
    pool = "etl" + secrets.token_hex(3)
    up(sandbox, pool)
    # What one preview asks of the provider, as a command.
    before = ops(sandbox)
    sandbox.run("preview", pool, "--expect-no-changes")
    one = ops(sandbox)[len(before) :]
    assert one.count("diff") > 0
    cloud, backend, before = (
        sandbox.cloud.resources(cloud="gcp"),
        backend_bytes(sandbox),
        ops(sandbox),
    )

    times = warm_previews(pool, sandbox.env, repeat=2)

    assert len(times) == 2
    assert all(0 < t < 60 for t in times)
    # The first call and the two timed ones each diffed every resource, as the command did...
    calls = ops(sandbox)[len(before) :]
    assert calls.count("diff") == 3 * one.count("diff")
    # ...and changed nothing: not the cloud, not the state.
    assert not set(calls) & set(MUTATING_OPS)
    assert sandbox.cloud.resources(cloud="gcp") == cloud
    assert backend_bytes(sandbox) == backend


def test_a_preview_that_fails_stops_the_benchmark_with_its_error(sandbox: Sandbox):
    with pytest.raises(SystemExit, match=r"bench/warm.py nosuch0 exited 1:\n.*nosuch0"):
        warm_previews("nosuch0", sandbox.env, repeat=1)
