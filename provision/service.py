"""Use cases: plan, up, destroy, list, show. Cloud-agnostic; knows Prefect and the engine.

Order of every mutating use case: validate everything (no engine, no cloud, nothing written),
then the engine, then Prefect, recording what was written in stack config after each step so
that an interrupted or failed run is finished by running the same command again.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from provision import registry
from provision.engine import Engine, OperationResult, Step
from provision.errors import (
    CloudSideDoneError,
    InvalidInputError,
    PoolNotFoundError,
    PrefectError,
    ProvisionError,
)
from provision.events import ProgressCallback
from provision.plan import (
    BlockChange,
    Changes,
    Plan,
    ResourceChange,
    WorkPoolChange,
    mask_inputs,
)
from provision.saved import KEY_PREFECT_STATE, PrefectState, SavedPool, read_saved
from provision.settings import Settings
from provision.targets.base import NextSteps, PoolType, Target, TargetOptions

_POOL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$")


class Cancelled(ProvisionError):
    """The user declined the confirmation; nothing was changed."""

    exit_code = 1


@dataclass(frozen=True)
class PoolRequest:
    """What the user asked for on the command line (``None`` = not given)."""

    pool: str
    type: str | None = None
    options: Mapping[str, Any] = field(default_factory=dict)
    block_name: str | None = None
    prefect_api_url: str | None = None
    prefect_api_key: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class PoolSpec:
    """A fully validated pool: everything needed to build and apply its stack."""

    pool: str
    pool_type: PoolType
    target: Target
    options: TargetOptions
    block_name: str
    generated: dict[str, str]
    saved: SavedPool | None

    def program(self) -> Callable[[], None]:
        """The inline Pulumi program."""
        return self.target.program(self.pool, self.pool_type, self.options, self.generated)

    def to_saved(self, prefect_api_url: str | None, prefect: PrefectState) -> SavedPool:
        """What goes into stack config."""
        return SavedPool(
            type=self.pool_type.name,
            options=self.options.model_dump(mode="json"),
            block_name=self.block_name,
            generated=self.generated,
            prefect_api_url=prefect_api_url,
            prefect=prefect,
            provider_config=self.target.provider_config(self.pool, self.options),
        )


@dataclass
class Hooks:
    """How the use cases talk back to a UI, without knowing it."""

    confirm: Callable[[Plan], bool] | None = None
    """Asked with the plan before anything changes; ``None`` approves (``--yes``)."""
    on_progress: ProgressCallback | None = None
    on_notice: Callable[[str], None] | None = None
    on_install: Callable[[], AbstractContextManager[object]] | None = None
    on_phase: Callable[[str], None] | None = None

    def notice(self, message: str) -> None:
        """Forward an informational message."""
        if self.on_notice:
            self.on_notice(message)

    def phase(self, message: str) -> None:
        """Announce a new phase (engine, Prefect, cleanup)."""
        if self.on_phase:
            self.on_phase(message)


@dataclass(frozen=True)
class UpOutcome:
    """Result of ``up``."""

    spec: PoolSpec
    result: OperationResult
    block_id: str
    block_op: str
    work_pool_id: str
    work_pool_op: str
    next_steps: NextSteps
    prefect_url: str


@dataclass(frozen=True)
class PoolSummary:
    """One row of ``list``."""

    name: str
    type: str
    location: str
    last_update: str | None
    result: str | None
    resource_count: int | None


@dataclass(frozen=True)
class PoolDetails:
    """What ``show`` prints."""

    name: str
    type: str
    location: str
    outputs: dict[str, Any] = field(repr=False)
    secret_outputs: frozenset[str]
    block_name: str
    prefect: PrefectState
    prefect_api_url: str | None


# -- validation ---------------------------------------------------------------------------


def validate_pool_name(pool: str) -> None:
    """Pool names become stack names and seed cloud resource names."""
    if not _POOL_NAME.match(pool or ""):
        raise InvalidInputError(
            f"Invalid pool name '{pool}': use 1-63 letters, digits, '-' or '_', starting with a "
            "letter or digit."
        )
    if pool.lower().startswith("prefect"):
        raise InvalidInputError(
            f"Invalid pool name '{pool}': Prefect reserves names starting with 'prefect'."
        )


def resolve(
    request: PoolRequest, settings: Settings, env: Mapping[str, str] | None = None
) -> PoolSpec:
    """Validate a request against saved config; raises ``InvalidInputError``, writes nothing."""
    env = os.environ if env is None else env
    validate_pool_name(request.pool)
    saved = read_saved(settings.work_dir(request.pool), request.pool)
    type_name = request.type or (saved.type if saved else None)
    if not type_name:
        raise InvalidInputError(
            f"Pool '{request.pool}' is not provisioned yet: pass --type (see `provision types`)."
        )
    if saved and request.type and request.type != saved.type:
        raise InvalidInputError(
            f"Pool '{request.pool}' was provisioned as '{saved.type}', not '{request.type}': "
            f"destroy it first to change its type."
        )
    pool_type = registry.pool_type(type_name)
    target = registry.target(pool_type.target)
    saved_options = target.options_model.model_validate(saved.options) if saved else None
    options = target.resolve_options(request.pool, pool_type, request.options, env, saved_options)
    block_name = (
        request.block_name
        or (saved.block_name if saved else None)
        or f"{_block_slug(request.pool)}-{target.block_suffix}"
    )
    _validate_block_name(block_name)
    generated = dict(saved.generated) if saved and saved.generated else {}
    if not generated:
        generated = target.generated_config(request.pool, options)
    return PoolSpec(request.pool, pool_type, target, options, block_name, generated, saved)


def _block_slug(pool: str) -> str:
    """A pool name in the form Prefect block names allow (lowercase, digits, dashes)."""
    return re.sub(r"[^a-z0-9-]", "-", pool.lower())


def _validate_block_name(name: str) -> None:
    # Prefect block names: lowercase letters, digits and dashes.
    if not re.fullmatch(r"[a-z0-9][a-z0-9-]*", name):
        raise InvalidInputError(
            f"Invalid block name '{name}': Prefect allows lowercase letters, digits and dashes."
        )


def _prefect_api(request: PoolRequest, spec: PoolSpec, env: Mapping[str, str]) -> Any:
    from provision.prefect import resolve_api

    url = request.prefect_api_url or (spec.saved.prefect_api_url if spec.saved else None)
    api = resolve_api(api_url=url, api_key=request.prefect_api_key, env=env)
    if spec.pool_type.push and not api.is_cloud:
        raise InvalidInputError(
            f"'{spec.pool_type.name}' pools exist only on Prefect Cloud, and {api.url} is a "
            f"self-hosted server: use --type {spec.pool_type.worker_type} (a worker-based pool)."
        )
    return api


def _writer(api: Any) -> Any:
    from provision.prefect import PrefectWriter

    return PrefectWriter(api)


# -- plans --------------------------------------------------------------------------------


def _plan(
    spec: PoolSpec,
    steps: list[Step],
    changes: Mapping[str, int],
    prefect: list[BlockChange | WorkPoolChange],
    *,
    offline: bool,
) -> Plan:
    return Plan(
        pool=spec.pool,
        type=spec.pool_type.name,
        stack=spec.pool,
        offline=offline,
        changes=Changes(**changes),
        resources=[
            # Engine events carry unknowns as a sentinel and the bridge's __defaults: the
            # contract shows "[computed]" and only real inputs.
            ResourceChange(
                urn=s.urn, type=s.type, name=s.name, op=s.op, inputs=mask_inputs(dict(s.inputs))
            )
            for s in steps
        ],
        prefect=prefect,
        grants=spec.target.grants(spec.pool, spec.pool_type, spec.options),
        planned=spec.target.planned_resources(spec.pool, spec.pool_type, spec.options),
        location=spec.target.location(spec.options),
    )


def _prefect_plan(
    spec: PoolSpec, writer: Any, outputs: Mapping[str, Any] | None
) -> list[BlockChange | WorkPoolChange]:
    """Prefect ops; with ``writer=None`` (offline) everything is a create."""
    block_op = pool_op = "create"
    block_id = None
    if outputs:
        data = spec.target.block_data(outputs)
    else:
        data = None
        outputs = spec.target.expected_outputs(spec.pool, spec.pool_type, spec.options)
    if writer is not None:
        existing = writer.find_block(spec.target.block_type, spec.block_name)
        block_id = existing["id"] if existing else None
        block_op = writer.plan_block(spec.target.block_type, spec.block_name, data)
    defaults = spec.target.template_defaults(spec.pool_type, outputs, block_id)
    if writer is not None:
        pool_op = writer.plan_work_pool(
            spec.pool,
            spec.pool_type.name,
            spec.pool_type.worker_type,
            spec.pool_type.push,
            defaults,
        )
    return [
        BlockChange(name=spec.block_name, block_type=spec.target.block_type, op=block_op),
        WorkPoolChange(name=spec.pool, type=spec.pool_type.name, op=pool_op, variables=defaults),
    ]


def plan_offline(request: PoolRequest, settings: Settings) -> Plan:
    """A plan built under Pulumi mocks: no CLI, no credentials, no Prefect."""
    from provision.offline import offline_steps

    spec = resolve(request, settings)
    steps = offline_steps(spec.pool, spec.program())
    return _plan(spec, steps, {"create": len(steps)}, _prefect_plan(spec, None, None), offline=True)


def plan(
    request: PoolRequest,
    settings: Settings,
    hooks: Hooks | None = None,
    *,
    refresh: bool = False,
    env: Mapping[str, str] | None = None,
) -> Plan:
    """A real preview through the engine, plus what Prefect would get. Changes nothing.

    For a pool that does not exist yet, the temporary stack is removed again.
    """
    env = os.environ if env is None else env
    hooks = hooks or Hooks()
    spec = resolve(request, settings, env)
    writer = _writer(_prefect_api(request, spec, env))
    engine = _engine(settings, hooks, spec)
    with _StackSession(engine, spec, keep=False) as session:
        return _preview(engine, session, spec, writer, refresh=refresh, hooks=hooks)


def _preview(
    engine: Engine,
    session: _StackSession,
    spec: PoolSpec,
    writer: Any,
    *,
    refresh: bool,
    hooks: Hooks,
) -> Plan:
    """The engine's preview plus the Prefect ops, as a ``Plan``."""
    preview = engine.preview(
        session.stack,
        spec.pool,
        on_progress=hooks.on_progress,
        refresh=refresh,
        rules=spec.target.error_rules,
    )
    outputs = engine.outputs(session.stack)[0] if session.existed else None
    prefect = _prefect_plan(spec, writer, outputs)
    return _plan(spec, preview.steps, preview.changes, prefect, offline=False)


# -- up -----------------------------------------------------------------------------------


def up(
    request: PoolRequest,
    settings: Settings,
    hooks: Hooks | None = None,
    env: Mapping[str, str] | None = None,
    *,
    refresh: bool = False,
) -> UpOutcome:
    """Provision the cloud side, then write the block and the pool into Prefect.

    ``refresh`` reads the cloud's actual state first, so drift is repaired.
    """
    env = os.environ if env is None else env
    hooks = hooks or Hooks()
    spec = resolve(request, settings, env)
    api = _prefect_api(request, spec, env)
    writer = _writer(api)
    engine = _engine(settings, hooks, spec)

    with _StackSession(engine, spec, keep=True) as session:
        if hooks.confirm is not None:
            hooks.phase("Planning")
            if session.existed:
                # A killed run's creates are adopted first, so the plan shown is the one applied
                # (not a create of what the cloud already has).
                engine.recover(session.stack, spec.pool)
            the_plan = _preview(engine, session, spec, writer, refresh=refresh, hooks=Hooks())
            if not hooks.confirm(the_plan):
                session.discard()
                raise Cancelled("Cancelled: nothing was changed.")
        else:
            # No plan to confirm, but the same Prefect reads: refused credentials, a block type
            # the server lacks or an unreachable API stop the run before any cloud call.
            _prefect_plan(spec, writer, None)
        prior = spec.saved.prefect if spec.saved else PrefectState()
        engine.set_config(session.stack, spec.to_saved(api.url, prior).to_config())
        hooks.phase("Applying")
        result = engine.up(
            session.stack,
            spec.pool,
            on_progress=hooks.on_progress,
            rules=spec.target.error_rules,
            propagation=spec.target.propagation_errors,
            refresh=refresh,
        )

        hooks.phase("Writing to Prefect")
        try:
            state, block_op, pool_op = _write_prefect(
                spec, writer, result.outputs, prior, engine, session.stack
            )
        except PrefectError as exc:
            raise CloudSideDoneError(exc, spec.pool) from None

    return UpOutcome(
        spec=spec,
        result=result,
        block_id=state.block_id or "",
        block_op=block_op,
        work_pool_id=state.pool_id or "",
        work_pool_op=pool_op,
        next_steps=spec.target.next_steps(spec.pool, spec.pool_type, result.outputs),
        prefect_url=api.url,
    )


def _write_prefect(
    spec: PoolSpec,
    writer: Any,
    outputs: Mapping[str, Any],
    prior: PrefectState,
    engine: Engine,
    stack: Any,
) -> tuple[PrefectState, str, str]:
    """Upsert the block, then the pool; returns the new state and both ops."""
    block = writer.upsert_block(
        spec.target.block_type, spec.block_name, spec.target.block_data(outputs)
    )
    # Record after each write, so a failure in between still knows what the tool created.
    state = PrefectState(
        block_id=block.id,
        pool_id=prior.pool_id,
        block_created=(prior.block_created and prior.block_id == block.id) or block.op == "create",
        pool_created=prior.pool_created,
    )
    engine.set_config(stack, {KEY_PREFECT_STATE: state.to_json()})
    defaults = spec.target.template_defaults(spec.pool_type, outputs, block.id)
    pool = writer.upsert_work_pool(
        spec.pool, spec.pool_type.name, spec.pool_type.worker_type, spec.pool_type.push, defaults
    )
    state = PrefectState(
        block_id=block.id,
        pool_id=pool.id,
        block_created=state.block_created,
        pool_created=(prior.pool_created and prior.pool_id == pool.id) or pool.op == "create",
    )
    engine.set_config(stack, {KEY_PREFECT_STATE: state.to_json()})
    return state, block.op, pool.op


# -- destroy ------------------------------------------------------------------------------


def destroy(
    pool: str,
    settings: Settings,
    hooks: Hooks | None = None,
    *,
    prefect_api_url: str | None = None,
    prefect_api_key: str | None = None,
    env: Mapping[str, str] | None = None,
) -> OperationResult:
    """Delete the cloud resources, then the Prefect objects the tool created, then the stack."""
    env = os.environ if env is None else env
    hooks = hooks or Hooks()
    spec = _existing(pool, settings, env)
    request = PoolRequest(pool, prefect_api_url=prefect_api_url, prefect_api_key=prefect_api_key)
    state = spec.saved.prefect if spec.saved else PrefectState()
    owns_pool = bool(state.pool_created and state.pool_id)
    owns_block = bool(state.block_created and state.block_id)
    # Prefect is needed only if the tool wrote something there (a first up may have failed
    # before that); resolving it up front makes a bad Prefect setting fail before any deletion.
    writer = _writer(_prefect_api(request, spec, env)) if owns_pool or owns_block else None
    engine = _engine(settings, hooks, spec)
    stack = engine.stack(pool, spec.program(), create=False)

    if hooks.confirm is not None:
        resources = engine.resources(stack)
        steps = [
            Step(
                urn=r["urn"],
                type=r["type"],
                name=r["urn"].rsplit("::", 1)[-1],
                op="delete",
                inputs={},
            )
            for r in resources
        ]
        prefect_ops: list[BlockChange | WorkPoolChange] = [
            BlockChange(
                name=spec.block_name,
                block_type=spec.target.block_type,
                op="delete" if owns_block else "same",
            ),
            WorkPoolChange(
                name=pool,
                type=spec.pool_type.name,
                op="delete" if owns_pool else "same",
            ),
        ]
        the_plan = _plan(spec, steps, {"delete": len(steps)}, prefect_ops, offline=False)
        if not hooks.confirm(the_plan):
            raise Cancelled("Cancelled: nothing was changed.")

    hooks.phase("Destroying")
    result = engine.destroy(
        stack, pool, on_progress=hooks.on_progress, rules=spec.target.error_rules
    )
    hooks.phase("Removing Prefect objects")
    try:
        if owns_pool:
            writer.delete_work_pool(pool, expected_id=state.pool_id)
        if owns_block:
            writer.delete_block(state.block_id)
    except PrefectError as exc:
        raise ProvisionError(
            f"Cloud resources of '{pool}' are deleted, but Prefect could not be cleaned up: "
            f"{exc.message}",
            hint=f"Rerun `provision destroy {pool}` once Prefect is reachable.",
        ) from None
    engine.remove(stack, pool)
    return result


def _existing(pool: str, settings: Settings, env: Mapping[str, str]) -> PoolSpec:
    validate_pool_name(pool)
    if read_saved(settings.work_dir(pool), pool) is None:
        raise PoolNotFoundError(
            f"No pool named '{pool}' is provisioned here ({settings.home}).",
            hint="`provision list` shows the pools.",
        )
    return resolve(PoolRequest(pool), settings, env)


# -- read-only ----------------------------------------------------------------------------


def list_pools(settings: Settings, hooks: Hooks | None = None) -> list[PoolSummary]:
    """Every pool stack in the backend with its type, location and last result."""
    hooks = hooks or Hooks()
    engine = _engine(settings, hooks)
    rows = []
    for info in engine.list_stacks():
        saved = read_saved(settings.work_dir(info.name), info.name)
        type_name, location, result = "?", "", None
        if saved:
            type_name = saved.type
            try:
                pt = registry.pool_type(saved.type)
                target = registry.target(pt.target)
                location = target.location(target.options_model.model_validate(saved.options))
            except (ProvisionError, ValueError):
                pass
        if info.update_in_progress:
            result = "in-progress"
        else:
            try:
                stack = engine.stack(info.name, lambda: None, create=False)
                result, _ = engine.last_result(stack)
            except ProvisionError:
                result = None
        rows.append(
            PoolSummary(
                name=info.name,
                type=type_name,
                location=location,
                last_update=info.last_update,
                result=result,
                resource_count=info.resource_count,
            )
        )
    return rows


def show(pool: str, settings: Settings, hooks: Hooks | None = None) -> PoolDetails:
    """Outputs (the caller masks secrets) and the Prefect ids of one pool."""
    hooks = hooks or Hooks()
    spec = _existing(pool, settings, os.environ)
    engine = _engine(settings, hooks)
    stack = engine.stack(pool, spec.program(), create=False)
    outputs, secret = engine.outputs(stack)
    saved = spec.saved
    return PoolDetails(
        name=pool,
        type=spec.pool_type.name,
        location=spec.target.location(spec.options),
        outputs=outputs,
        secret_outputs=secret,
        block_name=spec.block_name,
        prefect=saved.prefect if saved else PrefectState(),
        prefect_api_url=saved.prefect_api_url if saved else None,
    )


def unlock(pool: str, settings: Settings, *, force: bool = False) -> list[str]:
    """Remove stale (``force``: all) locks of a pool's stack in a local backend."""
    validate_pool_name(pool)
    engine = Engine(settings)
    if not settings.is_local_backend:
        raise InvalidInputError(
            "unlock only manages file:// backends; for other backends run `pulumi cancel` in "
            f"{settings.work_dir(pool)}."
        )
    return [str(p) for p in engine.unlock(pool, force=force)]


# -- helpers ------------------------------------------------------------------------------


def _engine(settings: Settings, hooks: Hooks, spec: PoolSpec | None = None) -> Engine:
    return Engine(
        settings,
        on_install=hooks.on_install,
        on_notice=hooks.on_notice,
        orphan_hints=spec.target.orphan_hints if spec else None,
        adopt=partial(spec.target.adoptable_id, spec.options) if spec else None,
    )


class _StackSession:
    """Select-or-create a pool's stack; undo the creation if the run stops before ``up``."""

    def __init__(self, engine: Engine, spec: PoolSpec, *, keep: bool):
        self.engine = engine
        self.spec = spec
        self.keep = keep
        self.existed = spec.saved is not None
        self.stack: Any = None
        self._discard = False

    def discard(self) -> None:
        """Ask for the stack to be removed at exit if this session created it."""
        self._discard = True

    def __enter__(self) -> _StackSession:
        self.stack = self.engine.stack(self.spec.pool, self.spec.program(), create=True)
        if not self.existed:
            # A fresh stack needs its config before any preview runs the program.
            prefect = PrefectState()
            self.engine.set_config(self.stack, self.spec.to_saved(None, prefect).to_config())
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        created_here = not self.existed
        drop = created_here and (self._discard or not self.keep or exc_type is not None)
        if not drop or self._has_resources():
            return
        try:
            # Only the root stack and provider records can be left: nothing in the cloud.
            self.engine.remove(self.stack, self.spec.pool, force=True)
        except Exception as cleanup:
            if exc_type is None:
                raise
            # Never let the cleanup's failure replace the error the user must see.
            self.engine.notice(
                f"Could not remove the empty stack of '{self.spec.pool}' ({cleanup}); "
                f"`provision destroy {self.spec.pool}` removes it."
            )

    def _has_resources(self) -> bool:
        try:
            return bool(self.engine.resources(self.stack))
        except Exception:
            return True
