"""Offline plans: run a stack program under Pulumi's mocks, no CLI, no cloud credentials.

This is the first command a new user runs, so it must work with nothing but the package
installed. Every resource is planned as a ``create``; provider-computed values show as
placeholders, secrets as ``[secret]``.

Data-source invokes answer ``{}``, unless the program carries an ``offline_invokes`` mapping
(invoke token → result) for the few results it cannot plan without: a program that spreads
subnets over the region's availability zones must know how many there are.

Resources answer no outputs (values derived from them show as ``[computed]``), unless the
program carries ``offline_outputs``: a function of (type token, name, inputs) giving the
outputs a first ``up`` determines but for parts shown as placeholders, such as an ARN with
``<account-id>``. Documents built from them in ``apply()`` (IAM policies) then render, so a
pull request can review them.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Mapping
from typing import Any

from provision.engine import Step
from provision.settings import PROJECT_NAME

_LOCK = threading.Lock()  # the Pulumi runtime's settings are process-global


def offline_steps(
    pool: str,
    program: Callable[[], Mapping[str, Any]],
    worker: Callable[[Mapping[str, Any], Any], Any] | None = None,
) -> list[Step]:
    """Run ``program`` (and ``worker`` on its outputs, for a pool running its worker in the
    cloud) under mocks as a preview and return the steps a first ``up`` takes."""
    import pulumi
    from pulumi.runtime import mocks as pmocks

    from provision import sdk_runtime
    from provision.plan import mask_inputs

    sdk_runtime.install()

    steps: list[Step] = []
    canned: dict[str, dict[str, Any]] = dict(getattr(program, "offline_invokes", None) or {})
    outputs: Callable[[str, str, dict], dict] = getattr(
        program, "offline_outputs", lambda typ, name, inputs: {}
    )

    class _Recorder(pulumi.runtime.Mocks):
        def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict]:
            # Preview semantics: computed outputs are unknown until created, but for those the
            # program can spell out with placeholders.
            return (f"{args.name}-id", dict(outputs(args.typ, args.name, args.inputs)))

        def call(self, args: pulumi.runtime.MockCallArgs) -> tuple[dict, list]:
            return (dict(canned.get(args.token, {})), [])

    class _Monitor(pmocks.MockMonitor):
        def RegisterResource(self, request: Any) -> Any:
            response = super().RegisterResource(request)
            if request.custom:
                inputs = pulumi.runtime.rpc.deserialize_properties(request.object)
                steps.append(
                    Step(
                        urn=response.urn,
                        type=request.type,
                        name=request.name,
                        op="create",
                        inputs=mask_inputs(inputs),
                    )
                )
            return response

    with _LOCK:
        # A fresh root stack per plan (set_mocks reuses an existing one), and a current event
        # loop: an earlier Automation API run in this process may have left none.
        pulumi.runtime.settings.ROOT.set(None)
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        try:
            monitor = _Monitor(_Recorder())
            pulumi.runtime.set_mocks(
                monitor.mocks, project=PROJECT_NAME, stack=pool, preview=True, monitor=monitor
            )

            def run() -> None:
                outputs = program()
                if worker is not None:
                    worker(outputs, pulumi.ResourceOptions())

            pmocks.test(run)()
        finally:
            # Each plan's loop holds a selector and a socket pair: closed here, a process that
            # plans many times (a server, the tests) does not run out of descriptors.
            loop.close()
    # Registration order follows the runtime's scheduling, not the program; a plan that CI
    # diffs must not reorder itself between runs.
    return sorted(steps, key=lambda s: s.urn)
