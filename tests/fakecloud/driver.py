"""Drive a FakeProvider the way the engine does, synchronously, for unit tests."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from pulumi.provider.experimental.property_value import PropertyValue
from pulumi.provider.experimental.provider import (
    CheckRequest,
    ConfigureRequest,
    CreateRequest,
    DeleteRequest,
    DiffRequest,
    DiffResponse,
    InvokeRequest,
    ReadRequest,
    UpdateRequest,
)

from tests.fakecloud.provider import FakeProvider, from_plain, to_plain_map

PROJECT = "fake-project"
REGION = "us-central1"


class Driver:
    """Calls a FakeProvider's async methods synchronously, in the engine's order.

    Inputs are plain dicts (``Secret(...)`` marks a secret); ``up`` runs
    Check then Create and returns ``(id, outputs)`` as PropertyValues, which is
    what the engine keeps in its state and passes back to Diff/Read/Update/Delete.
    """

    def __init__(self, provider: FakeProvider) -> None:
        self.provider = provider

    @staticmethod
    def urn(token: str, name: str) -> str:
        """A URN for a top-level resource of a stack ``dev`` in project ``test``."""
        return f"urn:pulumi:dev::test::{token}::{name}"

    def run(self, coro: Any) -> Any:
        """Await one provider call."""
        return asyncio.run(coro)

    def configure(self, **config: Any) -> None:
        """CheckConfig then Configure with ``config`` (plain values)."""
        args = {k: from_plain(v) for k, v in config.items()}
        urn = f"urn:pulumi:dev::test::pulumi:providers:{self.provider.cloud.name}::default"
        self.run(self.provider.check_config(CheckRequest(urn, {}, args, b"")))
        self.run(self.provider.configure(ConfigureRequest({}, args, True, True)))

    def check(
        self,
        token: str,
        name: str,
        inputs: Mapping[str, Any],
        olds: Mapping[str, PropertyValue] | None = None,
    ) -> Any:
        """Check; returns the CheckResponse (``.inputs`` has defaults and ``__defaults``)."""
        news = {k: from_plain(v) for k, v in inputs.items()}
        return self.run(
            self.provider.check(CheckRequest(self.urn(token, name), olds or {}, news, b""))
        )

    def checked(self, token: str, name: str, inputs: Mapping[str, Any]) -> dict[str, PropertyValue]:
        """Check's inputs, asserting there were no failures."""
        response = self.check(token, name, inputs)
        assert not response.failures, [(f.property, f.reason) for f in response.failures]
        return response.inputs

    def up(
        self, token: str, name: str, inputs: Mapping[str, Any], *, preview: bool = False
    ) -> tuple[str, dict[str, PropertyValue]]:
        """Check then Create."""
        checked = self.checked(token, name, inputs)
        request = CreateRequest(self.urn(token, name), checked, 60, preview)
        response = self.run(self.provider.create(request))
        return response.resource_id, response.properties

    def diff(
        self,
        token: str,
        name: str,
        rid: str,
        outputs: Mapping[str, PropertyValue],
        inputs: Mapping[str, Any],
        ignore_changes: list[str] | None = None,
    ) -> DiffResponse:
        """Check the new inputs, then Diff them against the old outputs."""
        checked = self.checked(token, name, inputs)
        request = DiffRequest(
            self.urn(token, name), rid, dict(outputs), checked, ignore_changes or []
        )
        return self.run(self.provider.diff(request))

    def update(
        self,
        token: str,
        name: str,
        rid: str,
        outputs: Mapping[str, PropertyValue],
        inputs: Mapping[str, Any],
        *,
        preview: bool = False,
    ) -> dict[str, PropertyValue]:
        """Check then Update; returns the new outputs."""
        checked = self.checked(token, name, inputs)
        request = UpdateRequest(self.urn(token, name), rid, dict(outputs), checked, 60, [], preview)
        return self.run(self.provider.update(request)).properties

    def read(
        self,
        token: str,
        name: str,
        rid: str,
        outputs: Mapping[str, PropertyValue],
        inputs: Mapping[str, PropertyValue] | None = None,
    ) -> Any:
        """Read (refresh); ``.resource_id`` is empty when the object is gone."""
        request = ReadRequest(self.urn(token, name), rid, dict(outputs), dict(inputs or {}))
        return self.run(self.provider.read(request))

    def delete(self, token: str, name: str, rid: str, outputs: Mapping[str, PropertyValue]) -> None:
        """Delete."""
        self.run(self.provider.delete(DeleteRequest(self.urn(token, name), rid, dict(outputs), 60)))

    def invoke(self, token: str, **args: Any) -> dict[str, Any]:
        """Invoke; returns plain values."""
        request = InvokeRequest(token, {k: from_plain(v) for k, v in args.items()})
        return to_plain_map(self.run(self.provider.invoke(request)).return_value)
