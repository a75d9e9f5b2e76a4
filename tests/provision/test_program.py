"""The inline program's own machinery, under Pulumi mocks: which of the SDK's debug messages
reach the engine (``quiet_sdk_debug``).

Under mocks the engine is the SDK's ``MockEngine``, which hands every ``Log`` call to the root
logger: what reaches it is what a real engine would have been sent, one gRPC call each.
"""

from __future__ import annotations

import asyncio
import logging

import pulumi
import pytest
from pulumi.runtime.stack import wait_for_rpcs

from provision import registry
from provision.program import PrefectSide, pool_program, quiet_sdk_debug
from provision.saved import SavedPool
from provision.targets.managed import ManagedPool
from tests.pulumi_mocks import RecordingMonitor, install_mocks


class _Mocks(pulumi.runtime.Mocks):
    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict]:
        return f"{args.name}-id", dict(args.inputs)

    def call(self, args: pulumi.runtime.MockCallArgs) -> dict:
        return {}


class _Thing(pulumi.CustomResource):
    def __init__(self, name: str) -> None:
        super().__init__("test:index:Thing", name, {"size": 1})


def _run(*programs) -> None:
    """Run ``programs`` as the runtime runs a program: each a task (with its own copy of the
    context), then wait for every registration they started."""

    async def main() -> None:
        await asyncio.gather(*programs)
        await wait_for_rpcs()

    asyncio.get_event_loop().run_until_complete(main())


def _registration_debug(caplog: pytest.LogCaptureFixture) -> list[str]:
    """The registration debug messages sent, but the root stack's: the runtime registers it
    before any program runs (as it does under the real engine)."""
    words = ("registering resource", "registration prepared", "registration successful")
    return [
        m
        for m in (r.getMessage() for r in caplog.records)
        if any(w in m for w in words)
        and "ty=pulumi:pulumi:Stack" not in m
        and not m.endswith("::pulumi:pulumi:Stack::provision-test")
    ]


@pytest.fixture
def monitor() -> RecordingMonitor:
    return install_mocks(_Mocks(), preview=False)


@pytest.fixture
def debug_log(monitor: RecordingMonitor, caplog: pytest.LogCaptureFixture):
    caplog.set_level(logging.DEBUG)
    return caplog


def test_a_quiet_program_sends_the_engine_none_of_its_registrations_debug(debug_log):
    async def quiet() -> None:
        quiet_sdk_debug()
        _Thing("quiet")

    async def other() -> None:
        _Thing("other")

    _run(quiet(), other())
    sent = _registration_debug(debug_log)
    # The other program's three messages arrive, from its registration's own task too: the
    # quiet program's setting stayed in its context.
    assert sent == [
        "registering resource: ty=test:index:Thing, name=other, custom=True, remote=False",
        "resource registration prepared: ty=test:index:Thing, name=other",
        "resource registration successful: ty=test:index:Thing, "
        "urn=urn:pulumi:test::provision::pulumi:pulumi:Stack$test:index:Thing::other",
    ]


def test_quieting_twice_wraps_the_sdks_debug_once(debug_log):
    async def quiet() -> None:
        quiet_sdk_debug()
        quiet_sdk_debug()
        pulumi.log.debug("from the quiet program")

    async def other() -> None:
        pulumi.log.debug("from another program")

    _run(quiet(), other())
    messages = [r.getMessage() for r in debug_log.records]
    assert "from another program" in messages
    assert "from the quiet program" not in messages
    assert pulumi.log.debug.provision_scoped is True


def _managed_program():
    """A managed pool's whole program (no cloud side, no block): a record and a work pool."""
    managed = registry.POOL_TYPES["prefect:managed"]
    flags = dict.fromkeys(registry.all_flags())
    pool = ManagedPool.resolve("etl", managed, flags, {"HOME": "/nonexistent"}, None)
    record = SavedPool(
        type=managed.name, options={}, block_name="", generated={}, prefect_api_url=None
    )
    prefect = PrefectSide(api_url="http://127.0.0.1:1/api", block_name=None)
    return pool_program(pool, record, prefect)


def test_a_pools_program_registers_without_debug_messages(monitor, debug_log):
    _run(_managed_program()())
    # It did register (the record and the work pool), without a debug line for either.
    assert {r.name for r in monitor.registrations.values()} == {"record", "work-pool"}
    assert _registration_debug(debug_log) == []


def test_a_pools_program_takes_the_sdks_per_resource_work_the_cheaper_way(monkeypatch):
    # Made before the engine runs it, so even the root stack's registration (the runtime's,
    # ahead of the program) takes the trace that reads no files (provision/sdk_runtime.py).
    from pulumi import _types
    from pulumi.runtime import resource

    from provision import sdk_runtime

    sdk_runtime.install()  # so that the SDK's own functions are known, whatever ran before
    monkeypatch.setattr(resource, "_get_stack_trace", sdk_runtime.replaced["_get_stack_trace"])
    monkeypatch.setattr(_types, "_raw_return_hints", sdk_runtime.replaced["_raw_return_hints"])

    _managed_program()

    assert resource._get_stack_trace is sdk_runtime.stack_trace
    assert _types._raw_return_hints is sdk_runtime.return_hints
