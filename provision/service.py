"""Use cases: plan, up, destroy, list, show. Cloud-agnostic; knows Prefect and the engine.

A pool is its stack, in the backend: the record, the cloud side and the Prefect side are all
resources of it (see ``provision.program``), so any machine that shares the backend operates any
pool by its name. Order of every mutating use case: read the pool's state from the backend,
validate everything (no cloud call, nothing written), check Prefect, then one engine run, which
writes the cloud side and the Prefect side in dependency order and records each step; an
interrupted or failed run is finished by running the same command again, from any machine.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
from collections.abc import Awaitable, Callable, Iterator, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from provision import preload, registry
from provision.engine import Engine, OperationResult, Step
from provision.errors import (
    CloudSideDoneError,
    InvalidInputError,
    PoolNotFoundError,
    PrefectStepError,
    ProvisionError,
)
from provision.events import ProgressCallback, urn_name
from provision.naming import validate_pool_name
from provision.plan import (
    BlockChange,
    Changes,
    Plan,
    ProfileChangePlan,
    ResourceChange,
    RotationPlan,
    WorkerPlan,
    WorkPoolChange,
    mask_inputs,
)
from provision.prefect import profile as prefect_profile
from provision.prefect.profile import ProfileSetting
from provision.prefect.tokens import (
    BLOCK_TYPE,
    ENV_AUTH,
    ENV_FACTS,
    ENV_KEY,
    ENV_OWNED,
    ENV_URL,
    TYPES,
    WORK_POOL_TYPE,
)
from provision.recovery import UntrackedRemoval
from provision.registry import PoolType
from provision.saved import (
    LegacyPool,
    PrefectState,
    SavedPool,
    StackState,
    is_tool_resource,
    read_legacy,
    stack_state,
)
from provision.settings import Settings
from provision.targets.base import (
    CREATED_OUTPUT,
    EXPIRES_OUTPUT,
    EXPIRY_WARNING_DAYS,
    PLACEHOLDER,
    ROTATED_AT_KEY,
    ROTATION_KEY,
    Credential,
    NextSteps,
    Pool,
    TargetOptions,
    WorkerLaunch,
    default_worker_image,
    rotation_count,
)

if TYPE_CHECKING:
    from provision.cli_run import CliRun
    from provision.prefect.config import PrefectApi
    from provision.prefect.writer import PrefectWriter, WorkerStatus


class Cancelled(ProvisionError):
    """The user declined the confirmation; nothing was changed."""

    exit_code = 1


class NothingToRotate(ProvisionError):
    """``rotate`` of a pool whose block holds no credential the tool made: not a failure."""

    exit_code = 0


@dataclass(frozen=True)
class PoolRequest:
    """What the user asked for on the command line (``None`` = not given)."""

    pool: str
    type: str | None = None
    options: Mapping[str, Any] = field(default_factory=dict)
    block_name: str | None = None
    prefect_api_url: str | None = None
    prefect_api_key: str | None = field(default=None, repr=False)
    set_image_namespace: bool | None = None
    """Set the active Prefect profile's image namespace to the pool's registry (``None``: as
    the record says)."""
    rotate: bool = False
    """Replace the pool's credential now (``provision rotate``), whatever its age."""


@dataclass(frozen=True)
class ProfileChange:
    """What ``up`` does to the active Prefect profile's image namespace on this machine."""

    setting: ProfileSetting
    """Where it lives, and its value now."""
    value: str | None
    """What it will hold once ``up`` is done (``None``: unset)."""
    previous: str | None
    """What it held before the pool set it: ``destroy`` puts it back."""
    recorded: bool
    """The pool sets it (kept in the record); ``False``: it is being handed back."""

    @property
    def op(self) -> str:
        """The change as plans show it."""
        if self.value == self.setting.value:
            return "same"
        if self.value is None:
            return "delete"
        return "create" if self.setting.value is None else "update"


@dataclass(frozen=True)
class PoolSpec:
    """A fully validated pool: everything needed to build and apply its stack."""

    target: Pool
    """The pool bound to its target: name, type and options, resolved once."""
    block_name: str | None
    """``None``: the target writes no credentials block."""
    saved: SavedPool | None
    """The record this pool already has (in the backend, or a legacy work dir)."""
    state: StackState | None = None
    """What the backend holds for this pool; ``None``: no stack yet."""
    legacy: LegacyPool | None = None
    """A record an older version kept in this machine's work dir, not yet in the backend."""
    block_schema: Mapping[str, Any] = field(default_factory=dict)
    """The block type's schema as the Prefect server declares it (once Prefect was checked)."""
    prefect_facts: str = ""
    """What the Prefect check read of the server (``ServerFacts.to_json``), for the provider
    process, so that it does not ask again."""
    profile: ProfileChange | None = None
    """``--set-image-namespace`` on this machine (read by ``up``, ``preview`` and ``destroy``)."""
    rotation: RotationPlan | None = None
    """Why this run replaces the credential, when it does."""

    @property
    def pool(self) -> str:
        """The pool's name (also its stack's)."""
        return self.target.name

    @property
    def pool_type(self) -> PoolType:
        """The pool's Prefect type."""
        return self.target.type

    @property
    def options(self) -> TargetOptions:
        """The pool's validated options."""
        return self.target.options

    @property
    def provider_config(self) -> dict[str, str]:
        """The stack config the cloud providers read (``gcp:project``, ...)."""
        return self.target.provider_config()

    def to_saved(self, prefect_api_url: str | None) -> SavedPool:
        """The record this run writes into the stack."""
        return SavedPool(
            type=self.pool_type.name,
            options=self.options.model_dump(mode="json"),
            block_name=self.block_name or "",
            generated=dict(self.target.generated),
            prefect_api_url=prefect_api_url,
            provider_config=self.provider_config,
            image_namespace_profile=(
                {"profile": self.profile.setting.profile, "previous": self.profile.previous}
                if self.profile is not None and self.profile.recorded
                else None
            ),
        )

    def program(self, prefect_api_url: str) -> Callable[[], Awaitable[None]]:
        """The inline Pulumi program: record, cloud side, Prefect side."""
        from provision.program import PrefectSide, pool_program  # loads the pulumi SDK

        return pool_program(
            self.target,
            self.to_saved(prefect_api_url),
            PrefectSide(
                api_url=prefect_api_url, block_name=self.block_name, block_schema=self.block_schema
            ),
        )

    @property
    def prefect(self) -> PrefectState:
        """The Prefect ids and ownership recorded so far."""
        if self.state is not None and self.state.prefect != PrefectState():
            return self.state.prefect
        return self.legacy.prefect if self.legacy else PrefectState()


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
class Runtime:
    """What the use cases run on: the engine and the Prefect writer. The defaults are the real
    ones; in-process tests of the use cases pass in-memory fakes."""

    engine: Callable[[Settings, Hooks], Engine] = field(default=lambda s, h: _engine(s, h))
    prefect: Callable[[PrefectApi], PrefectWriter] = field(default=lambda api: _writer(api))
    clock: Callable[[], datetime] = field(default=lambda: _now(os.environ))
    """Now, in UTC: credential ages and rotation dates are counted from it."""


def _now(env: Mapping[str, str]) -> datetime:
    """The current time, or ``PROVISION_NOW`` (ISO 8601) to see what a later run would do: a
    credential's age and expiry as they will be then."""
    fixed = env.get("PROVISION_NOW", "").strip()
    if fixed:
        when = _when(fixed)
        if when is None:
            raise InvalidInputError(f"Invalid PROVISION_NOW '{fixed}': an ISO 8601 date-time.")
        return when
    return datetime.now(UTC)


def _when(value: Any) -> datetime | None:
    """An ISO 8601 date-time (a ``Z`` suffix allowed) as an aware UTC datetime, else ``None``."""
    if not isinstance(value, str) or not value:
        return None
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


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
    plan: Plan | None = None
    """What the run did, in the plan's contract (the engine's steps, the Prefect objects)."""

    @property
    def credential(self) -> Credential | None:
        """The cloud credential the block holds (``kind: none`` when keyless)."""
        return self.spec.target.credential()

    @property
    def worker(self) -> WorkerPlan | None:
        """The worker run in the cloud, if any."""
        return _worker_plan(self.spec)

    @property
    def rotation(self) -> RotationPlan | None:
        """The credential's rotation this run did, if any."""
        return self.spec.rotation


@dataclass(frozen=True)
class PoolSummary:
    """One row of ``list``."""

    name: str
    type: str
    location: str
    last_update: str | None
    result: str | None
    resource_count: int | None
    credential: CredentialStatus | None = None


@dataclass(frozen=True)
class PoolDetails:
    """What ``show`` prints."""

    name: str
    type: str
    location: str
    outputs: dict[str, Any] = field(repr=False)
    """Stack outputs; secret ones are ``None`` here (they are never read)."""
    secret_outputs: frozenset[str]
    block_name: str | None
    prefect: PrefectState
    prefect_api_url: str | None
    workers: list[WorkerStatus] | None = None
    """The workers Prefect sees polling the pool; ``None``: not asked (a push pool)."""
    workers_error: str | None = None
    """Why ``workers`` could not be read (Prefect unreachable, ...): ``show`` still answers."""
    credential: CredentialStatus | None = None
    """The age and expiry of the credential its block holds (``None``: the tool made none)."""


@dataclass(frozen=True)
class CredentialStatus:
    """A credential's age and expiry as ``list`` and ``show`` report them."""

    created_at: str
    age_days: int
    expires_at: str | None
    expires_in_days: int | None
    due: str | None
    """Why the next ``up`` replaces it, if it does (``--rotate-after``, expiry close)."""


def credential_status(
    target: Pool, outputs: Mapping[str, Any], now: datetime
) -> CredentialStatus | None:
    """What ``list`` and ``show`` say of a pool's credential."""
    age = credential_age(target, outputs)
    if age is None or age.created is None:
        return None
    return CredentialStatus(
        created_at=age.created.isoformat(timespec="seconds"),
        age_days=age.age_days(now) or 0,
        expires_at=age.expires.isoformat(timespec="seconds") if age.expires else None,
        expires_in_days=age.expires_in_days(now),
        due=age.due(now),
    )


# -- validation ---------------------------------------------------------------------------


def read_state(
    pool: str,
    settings: Settings,
    engine: Engine,
    *,
    while_reading: Callable[[], None] | None = None,
) -> tuple[StackState | None, LegacyPool | None]:
    """The pool's state in the backend (``None``: no stack), and a legacy work-dir record when
    the backend has no record yet. ``while_reading`` runs while the CLI reads."""
    deployment = engine.export(pool, while_reading=while_reading)
    state = None if deployment is None else stack_state(deployment)
    legacy = None
    if state is None or state.record is None:
        legacy = read_legacy(settings.legacy_work_dir(pool), pool)
    return state, legacy


def _check_request(request: PoolRequest) -> None:
    """What a request alone can get wrong: the pool's name, an unknown type."""
    validate_pool_name(request.pool)
    if request.type:
        registry.pool_type(request.type)


def resolve(
    request: PoolRequest,
    settings: Settings,
    env: Mapping[str, str] | None = None,
    *,
    state: StackState | None = None,
    legacy: LegacyPool | None = None,
) -> PoolSpec:
    """Validate a request against the pool's record; raises ``InvalidInputError``, writes
    nothing. ``state``/``legacy`` are what :func:`read_state` found (none: a new pool)."""
    env = os.environ if env is None else env
    _check_request(request)
    saved = state.record if state is not None and state.record else None
    saved = saved or (legacy.record if legacy else None)
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
    target = registry.target(pool_type.target).resolve(
        request.pool,
        pool_type,
        request.options,
        env,
        saved.options if saved else None,
        saved.generated if saved else None,
    )
    if state is not None and state.outputs:
        target = replace(target, last_outputs=dict(state.outputs))
    return PoolSpec(target, _block_name(request, target, saved), saved, state, legacy)


def _block_name(request: PoolRequest, target: Pool, saved: SavedPool | None) -> str | None:
    """The credentials block's name: the flag, the record's, else ``<pool>-<suffix>``."""
    if target.block is None:
        if request.block_name:
            raise InvalidInputError(
                f"'{target.type.name}' pools have no credentials block: drop --block-name."
            )
        return None
    name = (
        request.block_name
        or (saved.block_name if saved else None)
        or f"{_block_slug(request.pool)}-{target.block.suffix}"
    )
    _validate_block_name(name)
    return name


def _block_slug(pool: str) -> str:
    """A pool name in the form Prefect block names allow (lowercase, digits, dashes)."""
    return re.sub(r"[^a-z0-9-]", "-", pool.lower())


def _validate_block_name(name: str) -> None:
    # Prefect block names: lowercase letters, digits and dashes.
    if not re.fullmatch(r"[a-z0-9][a-z0-9-]*", name):
        raise InvalidInputError(
            f"Invalid block name '{name}': Prefect allows lowercase letters, digits and dashes."
        )


def _prefect_api(
    request: PoolRequest, spec: PoolSpec, env: Mapping[str, str], *, moving: bool = True
) -> PrefectApi:
    """The Prefect API to use: ``--prefect-api-url`` > ``PREFECT_API_URL``/profile > the URL
    the pool was registered with.

    ``moving=False`` (``up``, ``destroy``): a URL that differs from the registered one stops
    the run unless it was passed explicitly, so a shell pointed at another server never moves
    or orphans a pool by accident.
    """
    from provision.prefect.config import API_URL_FLAG, resolve_api

    recorded = spec.saved.prefect_api_url if spec.saved else None
    api = resolve_api(
        api_url=request.prefect_api_url,
        api_key=request.prefect_api_key,
        env=env,
        recorded_url=recorded,
    )
    if not moving and recorded and api.url != recorded.rstrip("/") and api.source != API_URL_FLAG:
        raise InvalidInputError(
            f"Pool '{spec.pool}' is registered with the Prefect API at {recorded}, but "
            f"{api.url} (from {api.source}) is in use: pass {API_URL_FLAG} {recorded} to use the "
            f"pool's server, or {API_URL_FLAG} {api.url} to move the pool there."
        )
    if spec.pool_type.prefect_cloud_only and not api.is_cloud:
        worker = registry.POOL_TYPES.get(spec.pool_type.worker_type)
        fix = (
            f"use --type {worker.name} (a worker-based pool)"
            if worker is not None and not worker.prefect_cloud_only
            else "point at a Prefect Cloud workspace (`prefect cloud login`)"
        )
        raise InvalidInputError(
            f"'{spec.pool_type.name}' pools need Prefect Cloud, and {api.url} is a self-hosted "
            f"server: {fix}."
        )
    return api


def _writer(api: PrefectApi) -> PrefectWriter:
    from provision.prefect import PrefectWriter

    return PrefectWriter(api)


def _prefect_env(api: PrefectApi | None, spec: PoolSpec) -> dict[str, str]:
    """What the Prefect provider reads during its calls (``dynamic_host.provider_env``): the URL
    in use and its credential (never stack inputs), and, for a legacy pool, the ids its record
    says the tool created."""
    env: dict[str, str] = {}
    if api is not None:
        env[ENV_URL] = api.url
        if api.key:
            env[ENV_KEY] = api.key
        if api.auth_string:
            env[ENV_AUTH] = api.auth_string
        if spec.prefect_facts:
            env[ENV_FACTS] = spec.prefect_facts
    if spec.legacy is not None:
        owned = [
            i
            for i, mine in (
                (spec.legacy.prefect.block_id, spec.legacy.prefect.block_created),
                (spec.legacy.prefect.pool_id, spec.legacy.prefect.pool_created),
            )
            if i and mine
        ]
        env[ENV_OWNED] = ",".join(owned)
    return env


# -- plans --------------------------------------------------------------------------------


def _plan(
    spec: PoolSpec,
    steps: list[Step],
    prefect: list[BlockChange | WorkPoolChange],
    *,
    offline: bool,
) -> Plan:
    cloud = [s for s in steps if not is_tool_resource(s.type)]
    return Plan(
        pool=spec.pool,
        type=spec.pool_type.name,
        stack=spec.pool,
        offline=offline,
        changes=Changes(**_count(cloud)),
        resources=[
            # Engine events carry unknowns as a sentinel and the bridge's __defaults: the
            # contract shows "[computed]" and only real inputs.
            ResourceChange(
                urn=s.urn, type=s.type, name=s.name, op=s.op, inputs=mask_inputs(dict(s.inputs))
            )
            for s in cloud
        ],
        prefect=prefect,
        grants=spec.target.grants(),
        credential=spec.target.credential(),
        worker=_worker_plan(spec),
        profile=_profile_plan(spec.profile),
        rotation=spec.rotation,
        location=spec.target.location(),
    )


# -- the credential's age and rotation -------------------------------------------------------


@dataclass(frozen=True)
class CredentialAge:
    """When a pool's credential was made, when it expires, and when it was last rotated."""

    created: datetime | None
    expires: datetime | None
    rotated: datetime | None
    rotate_after: int | None

    def age_days(self, now: datetime) -> int | None:
        """Whole days since the credential was made."""
        return (now - self.created).days if self.created else None

    def expires_in_days(self, now: datetime) -> int | None:
        """Whole days left before it stops working."""
        return (self.expires - now).days if self.expires else None

    def due(self, now: datetime) -> str | None:
        """Why the credential must be replaced now, or ``None``.

        Older than ``--rotate-after``, or expiring within :data:`EXPIRY_WARNING_DAYS`. Counted
        from the last rotation started too, so a rerun after an interrupted rotation (whose
        outputs still describe the old credential) finishes it instead of starting another.
        """
        since = max((t for t in (self.created, self.rotated) if t is not None), default=None)
        if self.rotate_after and since and now - since >= timedelta(days=self.rotate_after):
            age = self.age_days(now)
            return f"older than --rotate-after {self.rotate_after} days ({age} days old)"
        warn = timedelta(days=EXPIRY_WARNING_DAYS)
        renewing = self.rotated is not None and self.expires and self.rotated >= self.expires - warn
        if self.expires and self.expires - now <= warn and not renewing:
            left = self.expires_in_days(now)
            when = self.expires.date().isoformat()
            return f"expires on {when} ({'in ' + str(left) + ' days' if left >= 0 else 'expired'})"
        return None


def credential_age(target: Pool, outputs: Mapping[str, Any]) -> CredentialAge | None:
    """The age of the credential a pool's block holds, from its stack outputs; ``None`` when
    the tool made none (a keyless pool, a token pool) or the pool has no outputs yet."""
    credential = target.credential()
    if not target.rotates or credential is None or not credential.long_lived:
        return None
    created = _when(outputs.get(CREATED_OUTPUT))
    if created is None:
        return None
    return CredentialAge(
        created=created,
        expires=_when(outputs.get(EXPIRES_OUTPUT)),
        rotated=_when(target.generated.get(ROTATED_AT_KEY)),
        rotate_after=getattr(target.options, "rotate_after", None),
    )


def _rotating(spec: PoolSpec, request: PoolRequest, runtime: Runtime) -> PoolSpec:
    """``spec`` with the rotation this run does: the one asked for, else one that is due."""
    if not request.rotate:
        if _predates_rotation(spec):
            return spec  # this run records the credential's trigger; the next one can rotate
        return _finishing_rotation(spec) or _with_rotation(spec, runtime.clock())
    if spec.state is None or spec.saved is None:
        raise PoolNotFoundError(
            f"No pool named '{spec.pool}' is provisioned: nothing to rotate.",
            hint="`provision list` shows the pools.",
        )
    credential = spec.target.credential()
    if not spec.target.rotates or credential is None or not credential.long_lived:
        why = (
            credential.note
            if credential is not None and credential.note
            else ("its block holds no credential the tool made")
        )
        raise NothingToRotate(f"Nothing to rotate in pool '{spec.pool}': {why}.")
    if _predates_rotation(spec):
        raise InvalidInputError(
            f"Pool '{spec.pool}' was provisioned before its credential could be rotated: run "
            f"`provision up {spec.pool}` once (it records the credential's rotation count and "
            "changes nothing), then rotate it."
        )
    return _finishing_rotation(spec) or _with_rotation(
        spec, runtime.clock(), reason="asked for (provision rotate)"
    )


def _predates_rotation(spec: PoolSpec) -> bool:
    """A keyed pool rotated by its trigger alone (``Pool.rotation_by_trigger``) whose recorded
    credential has none (made by a version before rotation): the engine replaces a resource
    only when both its recorded and its new trigger are set (pulumi ``shouldTriggerReplace``),
    so a rotation now would silently keep the old credential. Any ``up`` records the trigger,
    with no change."""
    credential = spec.target.credential()
    return (
        spec.state is not None
        and bool(spec.state.resources)
        and not spec.state.has_triggers
        and spec.target.rotation_by_trigger
        and credential is not None
        and credential.long_lived
    )


def _finishing_rotation(spec: PoolSpec) -> PoolSpec | None:
    """``spec`` finishing the last rotation, when a killed or failed run left it half done
    (its new credential made, the old one not yet deleted); else ``None``.

    Starting another instead would make a third credential while the block may still hold the
    first, and a cloud with a tight limit refuses it (IAM: two access keys per user). So the
    rerun of ``rotate`` writes the block and deletes the old credential, with the count kept.
    """
    count = rotation_count(spec.target.generated)
    if spec.state is None or not count or str(count) not in spec.state.replacing:
        return None
    started = spec.target.generated.get(ROTATED_AT_KEY)
    age = credential_age(spec.target, spec.state.outputs)
    return replace(
        spec,
        rotation=RotationPlan(
            reason=f"finishing rotation {count}, which an interrupted run started"
            + (f" on {started}" if started else ""),
            rotation=count,
            created_at=age.created.isoformat() if age and age.created else None,
            expires_at=age.expires.isoformat() if age and age.expires else None,
        ),
    )


def _with_rotation(spec: PoolSpec, now: datetime, *, reason: str | None = None) -> PoolSpec:
    """``spec`` with its credential's rotation when one is due (or ``reason`` forces it): the
    next rotation count and its start time in the record's generated values, which the target
    hands its stack as the credential's replacement trigger."""
    age = credential_age(spec.target, spec.state.outputs if spec.state is not None else {})
    reason = reason or (age.due(now) if age else None)
    if reason is None:
        return spec
    generated = dict(spec.target.generated)
    count = rotation_count(generated) + 1
    generated[ROTATION_KEY] = str(count)
    generated[ROTATED_AT_KEY] = now.isoformat(timespec="seconds")
    return replace(
        spec,
        target=replace(spec.target, generated=generated),
        rotation=RotationPlan(
            reason=reason,
            rotation=count,
            created_at=age.created.isoformat() if age and age.created else None,
            expires_at=age.expires.isoformat() if age and age.expires else None,
        ),
    )


def _profile_plan(change: ProfileChange | None) -> ProfileChangePlan | None:
    if change is None:
        return None
    return ProfileChangePlan(
        path=str(change.setting.path),
        profile=change.setting.profile,
        key=change.setting.key,
        op=change.op,
        value=change.value,
        previous=change.previous,
    )


# -- the image namespace in the Prefect profile (--set-image-namespace) ---------------------


def _our_namespace(spec: PoolSpec) -> str | None:
    """The pool's image namespace: from its outputs once it has some, else as predicted."""
    outputs = spec.state.outputs if spec.state is not None and spec.state.outputs else None
    if outputs is None:
        outputs = spec.target.expected_outputs()
    public = {k: v for k, v in outputs.items() if k not in spec.target.secret_outputs}
    return spec.target.next_steps(public).image_namespace


def _namespace_change(spec: PoolSpec, wanted: bool | None, env: Mapping[str, str]) -> PoolSpec:
    """``spec`` with what ``up`` does to the profile's image namespace, read from this machine.

    ``wanted`` is the flag (``None``: as the record says). The value the profile held before
    is kept in the record across reruns (a rerun sees its own value there, not the original);
    turning it off puts the original back only if the profile still holds the pool's.
    """
    saved = spec.saved.image_namespace_profile if spec.saved else None
    wanted = bool(saved) if wanted is None else wanted
    if not wanted and not saved:
        return spec
    ours = _our_namespace(spec)
    if wanted and ours is None:
        raise InvalidInputError(
            f"'{spec.pool_type.name}' pools have no image registry: drop --set-image-namespace."
        )
    setting = prefect_profile.read(env)
    holds_ours = ours is not None and setting.value == ours
    same_profile = bool(saved) and saved["profile"] == setting.profile  # type: ignore[index]
    previous = saved["previous"] if same_profile and holds_ours else setting.value  # type: ignore[index]
    if wanted:
        change = ProfileChange(setting, ours, previous, recorded=True)
    else:
        change = ProfileChange(
            setting, previous if holds_ours else setting.value, previous, recorded=False
        )
    return replace(spec, profile=change)


def _apply_namespace(spec: PoolSpec, outputs: Mapping[str, Any], hooks: Hooks) -> None:
    """Write the profile once ``up`` has run: the pool's namespace from its real outputs (a
    plan may have shown a placeholder), or the value handed back."""
    change = spec.profile
    if change is None:
        return
    value = spec.target.next_steps(outputs).image_namespace if change.recorded else change.value
    if value == change.setting.value or (change.recorded and value in (None, PLACEHOLDER)):
        return
    prefect_profile.write(change.setting, value)
    where = f"Prefect profile '{change.setting.profile}' ({change.setting.path})"
    hooks.notice(
        f"{where}: {change.setting.key} = {value}"
        if value is not None
        else f"{where}: {change.setting.key} removed"
    )


def _worker_plan(spec: PoolSpec) -> WorkerPlan | None:
    """The worker section of a plan or summary, from the pool's launch settings."""
    from provision.targets.base import worker_command

    launch = spec.target.worker
    if launch is None:
        return None
    credential = spec.target.credential()
    return WorkerPlan(
        image=launch.image,
        command=list(worker_command(spec.pool, spec.pool_type.worker_type)),
        count=getattr(spec.options, "worker_count", 1),
        identity=credential.identity if credential else "",
        prefect_credential=launch.credential_env,
        prefect_credential_source=launch.credential_source,
        dedicated=launch.dedicated,
        secret_store=spec.target.worker_secret_store,
    )


# -- the worker ---------------------------------------------------------------------------

API_KEY_ENV = "PREFECT_API_KEY"
AUTH_STRING_ENV = "PREFECT_API_AUTH_STRING"


def _with_worker(
    spec: PoolSpec,
    api: PrefectApi | None,
    env: Mapping[str, str],
    version: str | None = None,
) -> PoolSpec:
    """``spec`` with its worker's launch settings when it runs one (``--with-worker``).

    The worker's Prefect credential: the variable ``--worker-api-key-env`` names (a dedicated
    key, which the plan recommends), else the credential this command itself uses (the user's
    own API key, or the server's auth string), which the plan then says plainly. ``api`` is
    ``None`` for an offline plan: the credential is not read, a placeholder stands in.
    """
    if not getattr(spec.options, "with_worker", False):
        return spec
    var = getattr(spec.options, "worker_api_key_env", None)
    image = getattr(spec.options, "worker_image", None)
    if api is None:
        launch = WorkerLaunch(
            api_url=PLACEHOLDER,
            image=image or default_worker_image(None).replace(":3-", ":<server version>-"),
            credential_env=API_KEY_ENV,
            credential_source=f"${var} (--worker-api-key-env)"
            if var
            else "your own Prefect credential, unless --worker-api-key-env names the worker's",
            dedicated=bool(var),
        )
        return replace(spec, target=replace(spec.target, worker=launch))
    credential_env = API_KEY_ENV if api.is_cloud else AUTH_STRING_ENV
    if var:
        value = (env.get(var) or "").strip()
        what = "API key" if api.is_cloud else "auth string"
        if not value:
            raise InvalidInputError(
                f"--worker-api-key-env names {var}, which is not set here: export the worker's "
                f"Prefect {what} in {var}."
            )
        credential, source, dedicated = value, f"${var} (--worker-api-key-env)", True
    elif api.is_cloud:
        credential, source, dedicated = (
            api.key,
            "YOUR OWN Prefect Cloud API key (the one this command uses); pass "
            "--worker-api-key-env with a service account's key to give the worker its own",
            False,
        )
    elif api.auth_string:
        credential, source, dedicated = (
            api.auth_string,
            "this server's auth string (the one this command uses)",
            False,
        )
    else:
        # An open server: the worker needs no credential, and no secret is stored.
        credential_env, credential, source, dedicated = None, None, "none needed", False
    launch = WorkerLaunch(
        api_url=api.url,
        image=image or default_worker_image(version),
        credential_env=credential_env,
        credential=credential,
        credential_source=source,
        dedicated=dedicated,
    )
    return replace(spec, target=replace(spec.target, worker=launch))


def _launch_worker(
    spec: PoolSpec, api: PrefectApi, writer: PrefectWriter, env: Mapping[str, str], hooks: Hooks
) -> PoolSpec:
    """:func:`_with_worker` with the server's version for the default image, and a notice when
    the worker is to use the user's own credential (said even with ``--yes``)."""
    if not getattr(spec.options, "with_worker", False):
        return spec
    needs_version = getattr(spec.options, "worker_image", None) is None
    spec = _with_worker(spec, api, env, writer.server_version() if needs_version else None)
    launch = spec.target.worker
    if launch is not None and launch.credential_env and not launch.dedicated:
        hooks.notice(f"The worker authenticates to Prefect with {launch.credential_source}.")
    return spec


def _count(steps: list[Step]) -> dict[str, int]:
    """Step counts per op (a replacement counts once)."""
    counts = dict.fromkeys(("create", "update", "replace", "delete", "same"), 0)
    for s in steps:
        if s.op in counts:
            counts[s.op] += 1
    return counts


def _prefect_changes(
    spec: PoolSpec,
    outputs: Mapping[str, Any] | None,
    ops: Mapping[str, str],
    existing: Mapping[str, bool] | None = None,
) -> list[BlockChange | WorkPoolChange]:
    """The Prefect section of a plan: ``ops`` by resource type token (the engine's, or
    ``create`` offline), with the template defaults the work pool gets.

    A ``create`` of an object the server already has is an adoption, written in place: it
    reads ``update`` (``existing`` says which, from the Prefect check).
    """
    block_id = spec.prefect.block_id
    if outputs is None:
        outputs = spec.target.expected_outputs()
    defaults = spec.target.template_defaults(outputs, block_id)
    existing = existing or {}
    return _prefect_objects(
        spec,
        block_op=_as_planned(ops.get(BLOCK_TYPE, "same"), BLOCK_TYPE, existing=existing),
        pool_op=_as_planned(ops.get(WORK_POOL_TYPE, "same"), WORK_POOL_TYPE, existing=existing),
        variables=defaults,
    )


def _as_planned(op: str, token: str, *, existing: Mapping[str, bool]) -> str:
    """The engine's op for a Prefect object as plans and summaries show it: a ``create`` of an
    object the server already had is an adoption, written in place, so an ``update``."""
    return "update" if op == "create" and existing.get(token) else op


def _prefect_objects(
    spec: PoolSpec, *, block_op: str, pool_op: str, variables: Mapping[str, Any] | None = None
) -> list[BlockChange | WorkPoolChange]:
    """The Prefect section of a plan: the block (when the target writes one), then the pool."""
    changes: list[BlockChange | WorkPoolChange] = []
    if spec.target.block is not None and spec.block_name is not None:
        changes.append(
            BlockChange(name=spec.block_name, block_type=spec.target.block.type, op=block_op)
        )
    changes.append(
        WorkPoolChange(
            name=spec.pool, type=spec.pool_type.name, op=pool_op, variables=dict(variables or {})
        )
    )
    return changes


def _check_prefect(
    spec: PoolSpec, writer: PrefectWriter, *, find_block: bool
) -> tuple[PoolSpec, dict[str, bool]]:
    """Everything Prefect (or this machine) could refuse, asked before any cloud call:
    credentials, the block type and its schema, a local token, the pool's type and template.

    Returns the pool with the block type's schema and what was read of the server, and which
    of the two objects exist already. ``find_block``: look the block up by name (only a plan
    shown before the run needs to know that a create will adopt one; the block's own create
    finds out by itself); otherwise it reads as not existing.
    """
    defaults = spec.target.template_defaults(spec.target.expected_outputs(), spec.prefect.block_id)
    exists = {BLOCK_TYPE: False}
    if spec.target.block is not None and spec.block_name is not None:
        schema = writer.block_schema(spec.target.block.type)
        spec.target.check_local(schema)
        spec = replace(spec, block_schema=schema)
        if find_block:
            op = writer.plan_block(spec.target.block.type, spec.block_name, None)
            exists[BLOCK_TYPE] = op != "create"
    pool_op = writer.plan_work_pool(
        spec.pool, spec.pool_type.name, spec.pool_type.worker_type, spec.pool_type.push, defaults
    )
    exists[WORK_POOL_TYPE] = pool_op != "create"
    return replace(spec, prefect_facts=writer.facts.to_json()), exists


def _finds_block(spec: PoolSpec, *, refresh: bool) -> bool:
    """Whether a plan needs to look the block up by name: when the engine may plan its
    create, i.e. the state holds no block, or a refresh may find it gone."""
    return refresh or not spec.prefect.block_id


def plan_offline(request: PoolRequest, settings: Settings) -> Plan:
    """A plan built under Pulumi mocks: no CLI, no credentials, no Prefect, no backend."""
    from provision.offline import offline_steps

    spec = _with_worker(resolve(request, settings), None, os.environ)
    spec = _namespace_change(spec, request.set_image_namespace, os.environ)
    cloud = spec.target.program()
    steps = (
        offline_steps(spec.pool, cloud, spec.target.worker_program()) if cloud is not None else []
    )
    creates = {t: "create" for t in TYPES}
    return _plan(spec, steps, _prefect_changes(spec, None, creates), offline=True)


def plan(
    request: PoolRequest,
    settings: Settings,
    hooks: Hooks | None = None,
    *,
    refresh: bool = False,
    env: Mapping[str, str] | None = None,
    runtime: Runtime | None = None,
) -> Plan:
    """A real preview through the engine, Prefect side included. Changes nothing (but a pool
    recorded by an older version is first migrated into the backend, see ``_migrate``).

    For a pool that does not exist yet, the temporary stack is removed again.
    """
    env = os.environ if env is None else env
    hooks = hooks or Hooks()
    engine = (runtime or Runtime()).engine(settings, hooks)
    resolved = _resolved(request, settings, env, engine, preload_while_reading=False)
    spec = _rotating(resolved, request, runtime or Runtime())
    with _early_run(engine, settings, spec, up=False, refresh=refresh) as started:
        api = _prefect_api(request, spec, env)
        finds = _finds_block(spec, refresh=refresh)
        spec, existing, engine = _checked(
            request, spec, api, engine, settings, env, hooks, runtime, find_block=finds
        )
        return _plan_with(
            engine, settings, spec, api, existing, refresh=refresh, hooks=hooks, started=started
        )


def _checked(
    request: PoolRequest,
    spec: PoolSpec,
    api: PrefectApi,
    engine: Engine,
    settings: Settings,
    env: Mapping[str, str],
    hooks: Hooks,
    runtime: Runtime | None,
    *,
    find_block: bool,
) -> tuple[PoolSpec, dict[str, bool], Engine]:
    """``spec`` after the Prefect checks, what they found existing, and the pool's engine.

    Refused credentials, a block type the server lacks or an unreachable API stop the run
    here, before any cloud call. Then this machine's image-namespace change, and an older
    version's record migrated into the backend."""
    with (runtime or Runtime()).prefect(api) as writer:
        spec, existing = _check_prefect(spec, writer, find_block=find_block)
        spec = _launch_worker(spec, api, writer, env, hooks)
    spec = _namespace_change(spec, request.set_image_namespace, env)
    engine = _pool_engine(engine, settings, spec, api)
    if spec.legacy is not None and spec.state is not None:
        spec = _migrate(engine, spec, api, settings, env)
    return spec, existing, engine


@contextlib.contextmanager
def _early_run(
    engine: Engine,
    settings: Settings,
    spec: PoolSpec,
    *,
    up: bool,
    refresh: bool,
    enabled: bool = True,
) -> Iterator[CliRun | None]:
    """The engine's preview (or update, ``up``) of an existing stack, started now, before the
    Prefect checks: the CLI's start-up, backend read and key derivation overlap them, and the
    loading of the SDK and the program's modules; the run-wide preload starts after it (this
    thread's import of the pulumi package would otherwise delay it). ``None`` when the stack
    does not exist yet, an older record is migrated into it first, or (``up``) a killed
    run's pending operations are recovered first: each changes the state before the run.
    ``enabled=False``: nothing is started (the caller preloaded while reading the state).

    Whatever stops the caller before its run is finished (a bad input, a refused
    credential...), the CLI is not left running; an update's has written nothing, as it waits
    for the program before its update begins."""
    run = None
    if enabled:
        state = spec.state
        if state is not None and spec.legacy is None and not (up and state.pending):
            launcher = _pool_engine(engine, settings, spec, None)
            start = launcher.start_up if up else launcher.start_preview
            run = start(
                spec.pool,
                deployment=state.deployment,
                config=spec.provider_config,
                refresh=refresh,
            )
        preload.start(_RUN_MODULES)
    try:
        yield run
    finally:
        if run is not None:
            run.cancel()  # a no-op once the run has finished


def _plan_with(
    engine: Engine,
    settings: Settings,
    spec: PoolSpec,
    api: PrefectApi,
    existing: Mapping[str, bool],
    *,
    refresh: bool,
    hooks: Hooks,
    recover: bool = False,
    started: CliRun | None = None,
) -> Plan:
    """The engine's plan for ``spec`` (``recover``: after reconciling a killed run's pending
    operations, which writes the state; ``started``: the preview's CLI, already started).
    A pool with no stack yet is planned in a throwaway local backend: a preview never writes
    to the shared backend or to PROVISION_HOME."""
    if spec.state is not None:
        with _StackSession(engine, spec, api.url) as session:
            if recover:
                engine.recover(session.stack)
            return _preview(
                engine, session, spec, existing, refresh=refresh, hooks=hooks, started=started
            )
    with tempfile.TemporaryDirectory(prefix="provision-plan-") as root:
        scratch = _pool_engine(engine, settings.throwaway(Path(root)), spec, api)
        with _StackSession(scratch, spec, api.url) as session:
            return _preview(scratch, session, spec, existing, refresh=refresh, hooks=hooks)


_RUN_MODULES = (
    "provision.prefect.writer",  # the Prefect checks, first after the state read
    "httpcore",  # what httpx loads when the checks' client is made
    "pulumi.automation",
    "provision.engine_stack",
    "provision.program",
)
"""What any engine run loads, whatever the pool type: loaded while the state is read."""


def _resolved(
    request: PoolRequest,
    settings: Settings,
    env: Mapping[str, str],
    engine: Engine,
    *,
    preload_while_reading: bool = True,
) -> PoolSpec:
    _check_request(request)  # before the backend is read
    # What every run needs loads in the background while the state is read (unless the
    # caller starts it itself, after the engine's CLI: see ``_early_run``); the type's own
    # modules once the stack session opens (see there). Started once the engine has loaded the
    # pulumi SDK on this thread (two threads importing its package at once could each see the
    # other's modules half-initialised).
    state, legacy = read_state(
        request.pool,
        settings,
        engine,
        while_reading=(lambda: preload.start(_RUN_MODULES)) if preload_while_reading else None,
    )
    return resolve(request, settings, env, state=state, legacy=legacy)


def _preview(
    engine: Engine,
    session: _StackSession,
    spec: PoolSpec,
    existing: Mapping[str, bool],
    *,
    refresh: bool,
    hooks: Hooks,
    started: CliRun | None = None,
) -> Plan:
    """The engine's preview as a ``Plan``."""
    preview = engine.preview(
        session.stack,
        on_progress=hooks.on_progress,
        refresh=refresh,
        rules=spec.target.error_rules,
        started=started,
    )
    outputs = spec.state.outputs if spec.state is not None and spec.state.outputs else None
    ops = {s.type: s.op for s in preview.steps if s.type in TYPES}
    prefect = _prefect_changes(spec, outputs, ops, existing)
    return _plan(spec, preview.steps, prefect, offline=False)


def _migrate(
    engine: Engine, spec: PoolSpec, api: PrefectApi, settings: Settings, env: Mapping[str, str]
) -> PoolSpec:
    """Move a legacy work-dir record into the backend: one targeted update that registers the
    record and adopts the pool's block and work pool (the ones it made stay its own), touching
    no cloud resource; then the work dir goes. Returns the pool re-read from the backend."""
    assert spec.legacy is not None
    legacy_spec = replace(
        resolve(PoolRequest(spec.pool), settings, env, state=spec.state, legacy=spec.legacy),
        block_schema=spec.block_schema,
    )
    engine.notice(
        f"Moving the record of '{spec.pool}' from {spec.legacy.path} into its stack, so that "
        "every machine sharing the backend can operate it."
    )
    from provision.program import tool_urns

    with _StackSession(engine, legacy_spec, api.url) as session:
        engine.up(session.stack, rules=spec.target.error_rules, targets=tool_urns(spec.pool))
    # Everything it held is in the backend now; a stale copy would only mislead.
    shutil.rmtree(spec.legacy.path.parent, ignore_errors=True)
    state, _ = read_state(spec.pool, settings, engine)
    return replace(spec, state=state, legacy=None, saved=state.record if state else spec.saved)


# -- up -----------------------------------------------------------------------------------


def rotate(
    request: PoolRequest,
    settings: Settings,
    hooks: Hooks | None = None,
    env: Mapping[str, str] | None = None,
    *,
    runtime: Runtime | None = None,
) -> UpOutcome:
    """Replace the pool's credential with no window where its block holds a dead one: the
    new credential is made, the block rewritten with it, then the old one deleted (one engine
    run; the engine orders the create-before-delete replacement by the block's dependency).
    Raises ``NothingToRotate`` for a pool whose block holds no credential the tool made."""
    return up(replace(request, rotate=True), settings, hooks, env, runtime=runtime)


def up(
    request: PoolRequest,
    settings: Settings,
    hooks: Hooks | None = None,
    env: Mapping[str, str] | None = None,
    *,
    refresh: bool = False,
    runtime: Runtime | None = None,
) -> UpOutcome:
    """Provision the cloud side and the Prefect side in one engine run.

    ``refresh`` reads the cloud's (and Prefect's) actual state first, so drift is repaired.
    """
    env = os.environ if env is None else env
    hooks = hooks or Hooks()
    engine = (runtime or Runtime()).engine(settings, hooks)
    # With a plan to confirm, the update's CLI waits for the answer: nothing to start early.
    early = hooks.confirm is None
    resolved = _resolved(request, settings, env, engine, preload_while_reading=not early)
    spec = _rotating(resolved, request, runtime or Runtime())
    with _early_run(engine, settings, spec, up=True, refresh=refresh, enabled=early) as started:
        api = _prefect_api(request, spec, env, moving=False)
        finds = hooks.confirm is not None and _finds_block(spec, refresh=refresh)
        spec, existing, engine = _checked(
            request, spec, api, engine, settings, env, hooks, runtime, find_block=finds
        )

        if hooks.confirm is not None:
            hooks.phase("Planning")
            # A killed run's creates are adopted first (in the plan), so the plan shown is the
            # one applied, not a create of what the cloud already has.
            the_plan = _plan_with(
                engine, settings, spec, api, existing, refresh=refresh, hooks=Hooks(), recover=True
            )
            if not hooks.confirm(the_plan):
                raise Cancelled("Cancelled: nothing was changed.")
        with _StackSession(engine, spec, api.url) as session:
            hooks.phase("Applying")
            try:
                result = engine.up(
                    session.stack,
                    on_progress=hooks.on_progress,
                    rules=spec.target.error_rules,
                    propagation=spec.target.propagation_errors,
                    refresh=refresh,
                    started=started,
                )
            except PrefectStepError as exc:
                raise CloudSideDoneError(exc, spec.pool) from None

    prefect = _prefect_after(result.steps)
    # Whether a create adopted an object the server had: the state says (its provider found
    # out when writing it), which no read before the run needs to.
    adopted = {BLOCK_TYPE: not prefect.block_created, WORK_POOL_TYPE: not prefect.pool_created}
    ops = {
        s.type: _as_planned(s.op, s.type, existing=adopted) for s in result.steps if s.type in TYPES
    }
    public = {k: v for k, v in result.outputs.items() if k not in result.secret_outputs}
    _apply_namespace(spec, public, hooks)
    block_op = ops.get(BLOCK_TYPE, "same")
    work_pool_op = ops.get(WORK_POOL_TYPE, "same")
    done = _plan(
        spec,
        result.steps,
        _prefect_objects(spec, block_op=block_op, pool_op=work_pool_op),
        offline=False,
    )
    return UpOutcome(
        spec=spec,
        result=replace(
            result, changes=_count([s for s in result.steps if not is_tool_resource(s.type)])
        ),
        block_id=prefect.block_id or "",
        block_op=ops.get(BLOCK_TYPE, "same"),
        work_pool_id=prefect.pool_id or "",
        work_pool_op=ops.get(WORK_POOL_TYPE, "same"),
        next_steps=spec.target.next_steps(public),
        prefect_url=api.url,
        plan=done,
    )


# -- destroy ------------------------------------------------------------------------------


def destroy(
    pool: str,
    settings: Settings,
    hooks: Hooks | None = None,
    *,
    prefect_api_url: str | None = None,
    prefect_api_key: str | None = None,
    env: Mapping[str, str] | None = None,
    runtime: Runtime | None = None,
) -> OperationResult:
    """Delete the work pool and block the tool created, the cloud resources, then the stack."""
    env = os.environ if env is None else env
    hooks = hooks or Hooks()
    engine = (runtime or Runtime()).engine(settings, hooks)
    spec = _existing(pool, settings, env, engine)
    request = PoolRequest(pool, prefect_api_url=prefect_api_url, prefect_api_key=prefect_api_key)
    owned = spec.prefect
    owns_pool = bool(owned.pool_created and owned.pool_id)
    owns_block = bool(owned.block_created and owned.block_id)
    # Prefect is needed only if the tool created something there (a first up may have failed
    # before that); resolving it up front makes a bad Prefect setting fail before any deletion.
    api = _prefect_api(request, spec, env, moving=False) if owns_pool or owns_block else None
    url = api.url if api else (spec.saved.prefect_api_url if spec.saved else None) or ""
    engine = _pool_engine(engine, settings, spec, api)
    if spec.legacy is not None and api is not None:
        # The Prefect objects an older version made must be in the stack to be deleted by it.
        spec = _migrate(engine, spec, api, settings, env)
    # The image namespace goes back to what it was, if this machine's profile still holds the
    # pool's; a machine with no profile to read has nothing to put back.
    with contextlib.suppress(InvalidInputError):
        spec = _namespace_change(spec, False, env)
    if hooks.confirm is not None:
        # What the state records is what goes: no engine run is needed to show it.
        steps = [
            Step(urn=r["urn"], type=r["type"], name=urn_name(r["urn"]), op="delete", inputs={})
            for r in (spec.state.resources if spec.state else [])
        ]
        prefect_ops = _prefect_objects(
            spec,
            block_op="delete" if owns_block else "same",
            pool_op="delete" if owns_pool else "same",
        )
        if not hooks.confirm(_plan(spec, steps, prefect_ops, offline=False)):
            raise Cancelled("Cancelled: nothing was changed.")

    hooks.phase("Destroying")
    with _StackSession(engine, spec, url, runs_program=False) as session:
        try:
            result = engine.destroy(
                session.stack, on_progress=hooks.on_progress, rules=spec.target.error_rules
            )
        except PrefectStepError as exc:
            raise ProvisionError(
                f"Prefect objects of '{pool}' could not be removed: {exc.message}",
                hint=f"Rerun `provision destroy {pool}` once Prefect is reachable: what was "
                "deleted is recorded.",
                details=exc.details,
            ) from None
        engine.remove(session.stack)
    _apply_namespace(spec, {}, hooks)
    return result


def _existing(pool: str, settings: Settings, env: Mapping[str, str], engine: Engine) -> PoolSpec:
    validate_pool_name(pool)
    state, legacy = read_state(pool, settings, engine)
    if state is None:
        raise PoolNotFoundError(
            f"No pool named '{pool}' is provisioned in {engine.backend_label()}.",
            hint="`provision list` shows the pools.",
        )
    if state.record is None and legacy is None:
        raise PoolNotFoundError(
            f"The stack '{pool}' in {engine.backend_label()} has no provision record: it was "
            "not made by provision, or its first run stopped before writing anything.",
            hint=f"Run `provision up {pool} --type TYPE ...` again to finish it.",
        )
    return resolve(PoolRequest(pool), settings, env, state=state, legacy=legacy)


# -- read-only ----------------------------------------------------------------------------


def list_pools(
    settings: Settings, hooks: Hooks | None = None, runtime: Runtime | None = None
) -> list[PoolSummary]:
    """Every pool stack in the backend with its type, location and last result."""
    from concurrent.futures import ThreadPoolExecutor

    hooks = hooks or Hooks()
    engine = (runtime or Runtime()).engine(settings, hooks)
    now = (runtime or Runtime()).clock()
    infos = engine.list_stacks()

    def row(info: Any) -> PoolSummary:
        state, legacy = read_state(info.name, settings, engine)
        saved = state.record if state and state.record else (legacy.record if legacy else None)
        type_name, location, credential = "?", "", None
        if saved:
            type_name = saved.type
            try:
                pt = registry.pool_type(saved.type)
                bound = registry.target(pt.target).bind(
                    info.name, pt, saved.options, saved.generated
                )
                location = bound.location()
                outputs = state.outputs if state is not None else {}
                credential = credential_status(bound, outputs, now)
            except (ProvisionError, ValueError):
                pass
        result = "in-progress" if info.update_in_progress else engine.last_result(info.name)
        return PoolSummary(
            name=info.name,
            type=type_name,
            location=location,
            last_update=info.last_update,
            result=result,
            resource_count=info.resource_count,
            credential=credential,
        )

    # Two CLI reads per pool: in parallel, a team's dozens of pools list in seconds.
    with ThreadPoolExecutor(max_workers=4) as pool_:
        return list(pool_.map(row, infos))


def show(
    pool: str, settings: Settings, hooks: Hooks | None = None, runtime: Runtime | None = None
) -> PoolDetails:
    """Outputs (secret ones masked by the caller) and the Prefect ids of one pool."""
    hooks = hooks or Hooks()
    engine = (runtime or Runtime()).engine(settings, hooks)
    spec = _existing(pool, settings, os.environ, engine)
    state = spec.state
    assert state is not None
    workers, workers_error = _workers(spec, runtime or Runtime())
    return PoolDetails(
        name=pool,
        type=spec.pool_type.name,
        location=spec.target.location(),
        outputs=state.outputs,
        secret_outputs=state.secret_outputs,
        block_name=spec.block_name,
        prefect=spec.prefect,
        prefect_api_url=spec.saved.prefect_api_url if spec.saved else None,
        workers=workers,
        workers_error=workers_error,
        credential=credential_status(spec.target, state.outputs, (runtime or Runtime()).clock()),
    )


def _workers(spec: PoolSpec, runtime: Runtime) -> tuple[list[WorkerStatus] | None, str | None]:
    """The workers Prefect sees for a worker-based pool, or why they could not be read: the
    rest of ``show`` comes from the backend and must not depend on Prefect being up."""
    if spec.pool_type.push or spec.pool_type.cloud_only:
        return None, None  # Prefect itself runs these pools' flows: no worker to report
    try:
        api = _prefect_api(PoolRequest(spec.pool), spec, os.environ)
        with runtime.prefect(api) as writer:
            return writer.workers(spec.pool), None
    except ProvisionError as exc:
        return None, str(exc)


@dataclass(frozen=True)
class UnlockOutcome:
    """What ``unlock`` cleared, and the live locks it left."""

    cleared: list[str]
    live: list[str]


def unlock(pool: str, settings: Settings, *, force: bool = False) -> UnlockOutcome:
    """Clear the pool's stale locks (``force``: every lock), on any DIY backend."""
    validate_pool_name(pool)
    engine = Engine(settings)
    if engine.export(pool) is None:
        raise PoolNotFoundError(
            f"No pool named '{pool}' is provisioned in {engine.backend_label()}.",
            hint="`provision list` shows the pools.",
        )
    cleared = engine.locks.unlock(pool, force=force)
    live = [] if cleared or force else engine.locks.holders(pool)
    return UnlockOutcome([h.describe() for h in cleared], [h.describe() for h in live])


# -- helpers ------------------------------------------------------------------------------


def _engine(settings: Settings, hooks: Hooks) -> Engine:
    return Engine(settings, on_install=hooks.on_install, on_notice=hooks.on_notice)


def _pool_engine(
    engine: Engine, settings: Settings, spec: PoolSpec, api: PrefectApi | None
) -> Engine:
    """The engine for ``spec``'s operations: its cloud's recovery hooks, the secrets manager
    its state names, and the Prefect credential in the environment."""
    if spec.state is not None:
        settings = settings.for_stack(spec.state.secrets_type, spec.state.secrets_url)
    return engine.for_pool(
        settings,
        orphan_hints=spec.target.orphan_hints,
        adopt=spec.target.adoptable_id,
        untracked=UntrackedRemoval(spec.target.removes_untracked, spec.target.remove_untracked),
        provider_env=_prefect_env(api, spec),
    )


def _prefect_after(steps: list[Step]) -> PrefectState:
    """The Prefect ids and ownership after an ``up``: outputs of the Prefect resources, which
    the engine's events carried (no second read of the state)."""
    resources = [{"urn": s.urn, "type": s.type, "outputs": dict(s.outputs)} for s in steps]
    return stack_state({"resources": resources}).prefect


def _check_secrets(spec: PoolSpec, settings: Settings) -> None:
    """An existing passphrase stack on a machine with no passphrase: one line, before the
    engine (which would otherwise be handed a fresh passphrase that can only fail)."""
    from provision.engine_errors import SHARE_SECRETS_HINT
    from provision.errors import SecretsConfigError

    passphrase_file = settings.passphrase_file
    if (
        spec.state is not None
        and spec.state.secrets_type in (None, "passphrase")
        and passphrase_file is not None
        and not passphrase_file.exists()
    ):
        raise SecretsConfigError(
            f"Pool '{spec.pool}' keeps its secrets under a passphrase this machine does not "
            "have (no PULUMI_CONFIG_PASSPHRASE, PULUMI_CONFIG_PASSPHRASE_FILE or "
            f"{passphrase_file}).",
            hint=SHARE_SECRETS_HINT,
        )


class _StackSession:
    """The pool's stack for this run, with its program and provider config (created when the
    state read found none); remove a stack this session created if the run fails before
    anything was recorded in it."""

    def __init__(
        self, engine: Engine, spec: PoolSpec, prefect_url: str, *, runs_program: bool = True
    ):
        self.engine = engine
        self.spec = spec
        self.prefect_url = prefect_url
        self.runs_program = runs_program
        """False for ``destroy``: the engine never calls the program, so nothing is preloaded."""
        self.existed = spec.state is not None
        self.stack: Any = None

    def __enter__(self) -> _StackSession:
        _check_secrets(self.spec, self.engine.settings)
        # The program's modules load while the CLI creates the stack (a new pool) or starts
        # up: not earlier, where they would slow down this thread's Prefect checks and steps
        # before the CLI (one interpreter lock), and a big SDK's take longer than a state read.
        if self.runs_program:
            preload.start(self.spec.target.preloads())
        program = self.spec.program(self.prefect_url)
        # The providers read their config from the stack config: written on every run from
        # the record, so a fresh machine needs nothing but the backend.
        self.stack = self.engine.stack(
            self.spec.pool,
            program,
            deployment=self.spec.state.deployment if self.spec.state is not None else None,
            config=self.spec.provider_config,
        )
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if self.existed or exc_type is None or self._has_resources():
            return
        try:
            # Only the root stack and provider records can be left: nothing in the cloud.
            self.engine.remove(self.stack, force=True)
        except Exception as cleanup:
            # Never let the cleanup's failure replace the error the user must see.
            self.engine.notice(
                f"Could not remove the empty stack of '{self.spec.pool}' ({cleanup}); "
                f"`provision destroy {self.spec.pool}` removes it."
            )

    def _has_resources(self) -> bool:
        try:
            return not stack_state(self.engine.export(self.spec.pool)).is_empty
        except Exception:
            return True
