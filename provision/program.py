"""A pool's whole inline program: its record, its cloud side and its Prefect side.

The order matters for crash safety: the record is registered first (so even a first run killed
halfway leaves a stack that says what it is), then the target's cloud resources, then the
credentials block (which depends on the credential), the work pool (which references the
block) and, with ``--with-worker``, the worker (which polls the work pool). The engine orders
every create, update and delete by those dependencies: a block is written only once its
credential exists, and ``destroy`` removes the worker, the work pool, then the block, then the
cloud side.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi.log

from provision import preload, sdk_runtime
from provision.prefect.resources import PrefectBlock, PrefectWorkPool
from provision.prefect.tokens import BLOCK_TYPE, WORK_POOL_TYPE
from provision.saved import RECORD_NAME, RECORD_TYPE, SavedPool
from provision.settings import PROJECT_NAME
from provision.targets.base import Pool

BLOCK_RESOURCE = "credentials-block"
WORK_POOL_RESOURCE = "work-pool"
"""The Prefect resources' logical names: part of their URNs, so never renamed."""


@dataclass(frozen=True)
class PrefectSide:
    """Where the pool's Prefect objects live, and their names."""

    api_url: str
    block_name: str | None
    """``None``: the target writes no credentials block."""
    block_schema: Mapping[str, Any] = field(default_factory=dict)
    """The block type's schema on that server (targets whose field names it decides)."""


def pool_program(
    pool: Pool, record: SavedPool, prefect: PrefectSide
) -> Callable[[], Awaitable[None]]:
    """The inline program for ``pool``: record, cloud resources, block, work pool, exports."""
    # Before the engine runs it: the runtime registers the root stack resource first.
    # (The SDK's stack traces and getter annotations, done cheaper: ``sdk_runtime``.)
    sdk_runtime.install()

    async def run() -> None:
        quiet_sdk_debug()
        # Its modules may still be loading in the background (see ``provision.preload``).
        preload.wait()
        # Registered, not just declared, before anything else: the runtime sends registrations
        # from a thread pool in no fixed order, and the record must come first.
        await PoolRecord(record.to_outputs()).urn.future()
        cloud = pool.program()
        outputs = dict(cloud()) if cloud is not None else {}
        for key, value in outputs.items():
            pulumi.export(key, value)

        block_id: pulumi.Output[str | None] = pulumi.Output.from_input(None)
        if pool.block is not None and prefect.block_name is not None:
            block = PrefectBlock(
                BLOCK_RESOURCE,
                api_url=prefect.api_url,
                block_type=pool.block.type,
                block_name=prefect.block_name,
                data=pulumi.Output.all(**outputs).apply(
                    lambda values: pool.block_data(values, prefect.block_schema)
                ),
            )
            block_id = block.block_id
        # Only non-secret outputs feed the defaults: a secret in them would make the whole
        # template a secret, and no default may ever hold a credential.
        public = {k: v for k, v in outputs.items() if k not in pool.secret_outputs}
        defaults = pulumi.Output.all(block_id, pulumi.Output.all(**public)).apply(
            lambda v: pool.template_defaults(v[1], v[0])
        )
        work_pool = PrefectWorkPool(
            WORK_POOL_RESOURCE,
            api_url=prefect.api_url,
            pool_name=pool.name,
            pool_type=pool.type.name,
            worker_type=pool.type.worker_type,
            push=pool.type.push,
            defaults=defaults,
        )
        worker = pool.worker_program()
        if worker is not None:
            # After the work pool: a worker started before it would create the pool itself,
            # with Prefect's default template. And so ``destroy`` stops the worker first.
            after = pulumi.ResourceOptions(depends_on=[work_pool])
            for key, value in worker(outputs, after).items():
                pulumi.export(key, value)

    return run


_SDK_DEBUG: ContextVar[bool] = ContextVar("provision_sdk_debug", default=True)
"""Whether the pulumi SDK's debug messages reach the engine in this context."""


def quiet_sdk_debug() -> None:
    """Keep the pulumi SDK's debug messages of this program (and of the registrations it
    starts) from the engine.

    The SDK logs "registering resource", "resource registration prepared" and "resource
    registration successful" for every resource, each a synchronous ``Log`` call to the engine
    made on the program's event loop, and the engine drops debug messages unless the CLI runs
    with ``--debug``, which ``provision`` never passes. That is ~0.65 ms per call, 80 to 150 per
    run: 50 to 90 ms of an ``up`` or ``preview`` (median of 9, fake clouds, 2 cores).

    Scoped by a context variable, which the runtime's tasks inherit from the program that
    created them: the SDK's debug messages of other programs in the same process (the library
    used from a program of one's own) still reach their engine.
    """
    _SDK_DEBUG.set(False)
    if getattr(pulumi.log.debug, "provision_scoped", False):
        return
    sdk_debug = pulumi.log.debug

    def debug(
        msg: str,
        resource: pulumi.Resource | None = None,
        stream_id: int | None = None,
        ephemeral: bool | None = None,
    ) -> None:
        if _SDK_DEBUG.get():
            sdk_debug(msg, resource, stream_id, ephemeral)

    debug.provision_scoped = True  # type: ignore[attr-defined]
    # The runtime's modules call ``log.debug`` through the module at each call.
    pulumi.log.debug = debug


def tool_urns(pool: str) -> list[str]:
    """URNs of the record and the Prefect objects in ``pool``'s stack (a migration's targets)."""
    prefix = f"urn:pulumi:{pool}::{PROJECT_NAME}::"
    return [
        f"{prefix}{RECORD_TYPE}::{RECORD_NAME}",
        f"{prefix}{BLOCK_TYPE}::{BLOCK_RESOURCE}",
        f"{prefix}{WORK_POOL_TYPE}::{WORK_POOL_RESOURCE}",
    ]


class PoolRecord(pulumi.ComponentResource):
    """Holds the pool's record as its outputs: in the state, so in the shared backend."""

    def __init__(self, values: Mapping[str, Any]):
        super().__init__(RECORD_TYPE, RECORD_NAME, None, None)
        self.register_outputs(dict(values))
