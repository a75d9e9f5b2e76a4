"""Pulumi mock-runtime machinery shared by the stack tests in ``tests/stacks``.

A stack test module keeps only its cloud's mock answers (a ``pulumi.runtime.Mocks``) and gets
from here a monitor that records every registration, a fresh runtime per test, and fixtures
that fail a test whose assertions never ran: under mocks an ``apply`` over an unknown value is
skipped silently, which would make a test pass vacuously.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import pulumi
import pytest
from pulumi.runtime import settings as pulumi_settings
from pulumi.runtime.mocks import MockMonitor


@dataclass
class Registration:
    """One resource registration, as the engine would have received it."""

    urn: str
    type: str
    name: str
    parent: str
    inputs: dict[str, Any]
    dependencies: list[str]
    custom_timeouts: dict[str, str]
    replacement_trigger: Any = None
    """The ``replacement_trigger`` resource option as sent (``None``: none)."""
    delete_before_replace: bool = False


class RecordingMonitor(MockMonitor):
    """A mock monitor that keeps every registration request (parent, deps, timeouts)."""

    def __init__(self, mocks: pulumi.runtime.Mocks) -> None:
        super().__init__(mocks)
        self.mocks = mocks
        self.registrations: dict[str, Registration] = {}
        self.checked = False
        """Set once a test's assertions have run; the fixtures fail the test otherwise."""

    def RegisterResource(self, request):
        """Answer as the mock monitor does, and record the request."""
        response = super().RegisterResource(request)
        if request.type == "pulumi:pulumi:Stack":
            return response
        timeouts = request.customTimeouts
        trigger = None
        if request.HasField("replacement_trigger"):
            from google.protobuf.json_format import MessageToDict

            trigger = MessageToDict(request.replacement_trigger)
        self.registrations[response.urn] = Registration(
            urn=response.urn,
            type=request.type,
            name=request.name,
            parent=request.parent,
            inputs=pulumi.runtime.rpc.deserialize_properties(request.object),
            dependencies=list(request.dependencies),
            custom_timeouts={
                k: getattr(timeouts, k) for k in ("create", "update", "delete") if timeouts
            },
            replacement_trigger=trigger,
            delete_before_replace=request.deleteBeforeReplace,
        )
        return response

    def of_type(self, typ: str) -> list[Registration]:
        """Every registration of type token ``typ``."""
        return [r for r in self.registrations.values() if r.type == typ]

    def one(self, typ: str, name: str | None = None) -> Registration:
        """The only registration of ``typ`` (named ``name``, when given); asserts there is one."""
        found = [r for r in self.of_type(typ) if name is None or r.name == name]
        assert len(found) == 1, f"expected one {typ} {name or ''}, got {[r.name for r in found]}"
        return found[0]

    def registered(self, besides: str | None = None) -> set[tuple[str, str]]:
        """``(type, name)`` of every registration, except those of type ``besides``."""
        return {(r.type, r.name) for r in self.registrations.values() if r.type != besides}

    def children(self, parent: Registration) -> set[tuple[str, str]]:
        """``(type, name)`` of every resource registered with ``parent`` as its parent."""
        return {(r.type, r.name) for r in self.registrations.values() if r.parent == parent.urn}


def install_mocks(mocks: pulumi.runtime.Mocks, *, preview: bool) -> RecordingMonitor:
    """Point the Pulumi runtime at ``mocks`` through a new :class:`RecordingMonitor`."""
    # A fresh root stack per test: set_mocks reuses an existing one, which would carry
    # registrations and exports over from the previous test.
    pulumi_settings.ROOT.set(None)
    # Engine tests run the Automation API in this process and leave no current loop behind.
    asyncio.set_event_loop(asyncio.new_event_loop())
    monitor = RecordingMonitor(mocks)
    pulumi.runtime.set_mocks(
        mocks, project="provision", stack="test", preview=preview, monitor=monitor
    )
    return monitor


def monitor_fixture(
    mocks: Callable[[], pulumi.runtime.Mocks], *, preview: bool = False
) -> Callable[[], Iterator[RecordingMonitor]]:
    """A fixture giving each test a fresh runtime on ``mocks()`` and its recording monitor.

    The test fails if it never reached :func:`check_when_resolved`'s callback.
    """

    @pytest.fixture
    def fixture() -> Iterator[RecordingMonitor]:
        monitor = install_mocks(mocks(), preview=preview)
        yield monitor
        assert monitor.checked, "the assertions inside apply() never ran"

    return fixture


def check_when_resolved(
    mon: RecordingMonitor, outputs: Mapping[str, Any], check: Callable[..., None]
) -> pulumi.Output:
    """Run ``check(values)`` once every one of ``outputs`` has resolved; marks ``mon`` checked.

    The caller picks outputs that depend on every resource, so that by then all of them have
    been registered with the monitor.
    """

    def run(values: dict[str, Any]) -> None:
        mon.checked = True
        check(values)

    return pulumi.Output.all(**outputs).apply(run)


def assert_secret(output: pulumi.Output, resolved: pulumi.Output) -> pulumi.Output:
    """Assert that ``output`` is marked secret, after ``resolved`` (from check_when_resolved)."""

    def check(values: list[Any]) -> None:
        is_secret, _ = values
        assert is_secret is True

    return pulumi.Output.all(output.is_secret(), resolved).apply(check)


def assert_component_tree(
    mon: RecordingMonitor, type_token: str, name: str, children: set[tuple[str, str]]
) -> None:
    """One component ``name`` of ``type_token``, parent of exactly ``children``, and nothing else.

    ``children`` holds ``(type, name)`` pairs.
    """
    component = mon.one(type_token)
    assert component.name == name
    assert component.urn.endswith(f"::pulumi:pulumi:Stack${type_token}::{name}")
    found = mon.children(component)
    assert found == children
    # The URN encodes the chain: every child sits under the component's type.
    for r in mon.registrations.values():
        if r.parent == component.urn:
            assert f"::{type_token}${r.type}::{r.name}" in r.urn
    # Nothing else was created (no stray resource outside the component).
    assert len(mon.registrations) == 1 + len(found)
