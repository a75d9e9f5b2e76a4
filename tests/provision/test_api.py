"""The Python API in-process, on the service's in-memory engine and Prefect fakes
(``tests/provision/test_service.py``): many pools, one question, failures kept apart."""

# ruff: noqa: F811 (the fakes' fixtures are imported, then named as test parameters)

from __future__ import annotations

import dataclasses
import sys
import threading
from datetime import UTC, datetime

import pytest

import provision
from provision import api, service
from provision.errors import InvalidInputError, ProvisionError
from tests.provision.test_service import thing_target, world  # noqa: F401 (fixtures)


def file(tmp_path, *pools: str, extra: str = "") -> str:
    path = tmp_path / "provision.toml"
    path.write_text("".join(f'[pools.{p}]\ntype = "thing"\n{extra}\n' for p in pools))
    return str(path)


@pytest.fixture(autouse=True)
def thing_flags(monkeypatch):
    """The test target's option as a file key, as a real target's flag would be."""
    from provision import registry

    monkeypatch.setitem(
        registry.TARGETS,
        "thing",
        registry.TargetSpec(
            "thing", "Thing", "tests:Thing", (registry.Flag("size", "Size.", "int"),)
        ),
    )


def kwargs(world):
    # Mid-life of the test credential (made 2026-01-01, valid a year): no rotation is due.
    runtime = dataclasses.replace(world.runtime, clock=lambda: datetime(2026, 6, 1, tzinfo=UTC))
    return {"settings": world.settings, "env": world.env, "runtime": runtime}


def test_the_api_loads_neither_typer_nor_rich():
    import subprocess

    code = (
        "import provision, sys; provision.preview; provision.up; provision.PoolRequest; "
        "print(sorted(m for m in ('typer', 'rich') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_preview_plans_every_pool_of_a_file_in_parallel(world, tmp_path, monkeypatch):
    threads: set[str] = set()
    real = service.plan

    def plan(*args, **kw):
        threads.add(threading.current_thread().name)
        return real(*args, **kw)

    monkeypatch.setattr(service, "plan", plan)
    plans = provision.preview(file(tmp_path, "a1", "b1", "c1"), parallel=3, **kwargs(world))
    assert [p.pool for p in plans.pools] == ["a1", "b1", "c1"]
    assert all(p.plan is not None and p.plan.has_changes for p in plans.pools)
    assert plans.summary() == {
        "pools": 3,
        "changing": 3,
        "unchanged": 0,
        "failed": 0,
        "not_in_file": 0,
        "to_prune": 0,
    }
    assert len(threads) > 1  # more than one pool at a time
    assert world.stacks() == {}  # a preview writes nothing


def test_up_asks_once_applies_every_pool_and_skips_the_unchanged(world, tmp_path):
    path = file(tmp_path, "a1", "b1")
    asked = []
    done = provision.up(path, confirm=lambda plans: asked.append(plans) or True, **kwargs(world))
    assert len(asked) == 1 and [p.pool for p in asked[0].pools] == ["a1", "b1"]
    assert done.ok and [(p.pool, p.action) for p in done.pools] == [("a1", "up"), ("b1", "up")]
    assert set(world.stacks()) == {"a1", "b1"}

    again = provision.up(path, **kwargs(world))
    assert [(p.pool, p.action) for p in again.pools] == [("a1", "skip"), ("b1", "skip")]


def test_a_declined_plan_changes_nothing(world, tmp_path):
    with pytest.raises(service.Cancelled):
        provision.up(file(tmp_path, "a1"), confirm=lambda plans: False, **kwargs(world))
    assert world.stacks() == {}


def test_pools_not_in_the_file_are_listed_and_pruned_only_when_asked(world, tmp_path):
    provision.up(file(tmp_path, "a1", "b1"), **kwargs(world))
    path = file(tmp_path, "a1")
    plans = provision.preview(path, **kwargs(world))
    assert plans.not_in_file == ["b1"] and not plans.has_changes

    done = provision.up(path, **kwargs(world))
    assert "b1" in world.stacks() and [p.pool for p in done.pools] == ["a1"]

    done = provision.up(path, prune=True, **kwargs(world))
    assert ("b1", "destroy") in [(p.pool, p.action) for p in done.pools] and done.ok
    assert "b1" not in world.stacks()


def test_one_pools_failure_leaves_the_others_converged(world, tmp_path, monkeypatch):
    real = service.up

    def up(request, *args, **kw):
        if request.pool == "b1":
            raise ProvisionError("the cloud said no")
        return real(request, *args, **kw)

    monkeypatch.setattr(service, "up", up)
    done = provision.up(file(tmp_path, "a1", "b1", "c1"), **kwargs(world))
    assert not done.ok
    assert [(p.pool, p.error) for p in done.failed] == [("b1", "the cloud said no")]
    assert set(world.stacks()) == {"a1", "c1"}


def test_a_value_the_model_refuses_names_the_file_and_line_before_anything(world, tmp_path):
    path = file(tmp_path, "a1", "b1", extra='size = "big"')
    with pytest.raises(InvalidInputError, match=r"provision.toml:3: size must be an integer"):
        provision.preview(path, **kwargs(world))
    assert world.backend.calls == []


def test_requests_work_as_well_as_files(world):
    requests = [service.PoolRequest("a1", type="thing"), service.PoolRequest("b1", type="thing")]
    done = provision.up(requests, **kwargs(world))
    assert done.ok and set(world.stacks()) == {"a1", "b1"}
    with pytest.raises(InvalidInputError, match="given twice"):
        api.preview([requests[0], requests[0]], **kwargs(world))
    gone = provision.destroy(requests, **kwargs(world))
    assert gone.ok and world.stacks() == {}
