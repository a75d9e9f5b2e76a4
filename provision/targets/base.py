"""The contract every target implements, declared once.

A *target* is the glue between one stack module (``stacks/``, pure Pulumi, knows nothing of
Prefect) and the rest of the tool. Its class is a :class:`Pool`: :meth:`Pool.resolve` validates
the user's options once and returns a frozen pool object bound to its name, type and options,
which gives the service everything else: the inline program's cloud part (or none), the
credentials block's data (or no block), the work pool's base-job-template defaults, the grants
the plan shows and what to do next. The use cases (``service.py``) reach a cloud only through
this object; the engine and the CLI never see one.

Adding a pool type = one ``Pool`` subclass (and, with cloud resources, one stack module) plus
its lines in ``registry.py`` (see ``docs/adding-a-target.md``).
"""

from __future__ import annotations

import abc
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Generic, Self, TypeVar

from pydantic import (
    BaseModel,
    ConfigDict,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from provision.engine_errors import ErrorRule
from provision.errors import EngineError, InvalidInputError
from provision.recovery import Untracked
from provision.registry import PoolType, flag

CloudProgram = Callable[[], Mapping[str, Any]]
"""A target's part of the inline program: declares its cloud resources and returns the outputs
(name → ``pulumi.Output``) that become the stack's exports: the stack's typed outputs mapping."""

WorkerProgram = Callable[[Mapping[str, Any], Any], Mapping[str, Any]]
"""A target's worker part of the inline program, declared after the work pool exists: called
with the cloud part's outputs and the ``pulumi.ResourceOptions`` every worker resource must be
created with (they make it wait for the work pool, and ``destroy`` remove it first); returns
the worker's outputs, exported beside the cloud part's."""

PLACEHOLDER = "<created on up>"
"""Stands in for values that exist only once ``up`` has run (plans, dry runs)."""


class OptionPicker:
    """Option precedence shared by every target: flags, then the pool's saved options.

    Construction rejects options of another cloud with one line. ``sources`` records where
    each picked value came from, for error messages ("from --region").
    """

    def __init__(
        self,
        pool_type: PoolType,
        given: Mapping[str, Any],
        saved: TargetOptions | None,
        keys: Iterable[str],
    ):
        keys = frozenset(keys)
        for key, value in given.items():
            if value is not None and key not in keys:
                raise InvalidInputError(
                    f"Option {flag(key)} does not apply to type '{pool_type.name}'."
                )
        self._given = given
        self._prior = saved.model_dump() if saved is not None else {}
        self.sources: dict[str, str] = {}

    def __call__(self, key: str, default: Any = None) -> Any:
        """The value of ``key``: given, else saved, else ``default``."""
        if self._given.get(key) is not None:
            self.sources[key] = flag(key)
            return self._given[key]
        if self._prior.get(key) is not None:
            self.sources[key] = "the pool's saved options"
            return self._prior[key]
        return default


class TargetOptions(BaseModel):
    """Base of each target's validated options, saved verbatim in the pool's record.

    The model is the one declaration of a target's options: the keys a target accepts are its
    fields, and the checks of each value are its validators. A validator names where a bad
    value came from with :func:`origin` (the sources travel in the validation context).
    """

    # Every target's model is defined when the registry loads, one is validated per command:
    # each builds its validator on first use (defer_build), not as its class is made.
    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)

    internal: ClassVar[frozenset[str]] = frozenset()
    """Fields the tool finds out itself and saves with the options, but no flag sets."""

    @classmethod
    def keys(cls) -> frozenset[str]:
        """The option keys (and so the flags) this target accepts."""
        return frozenset(cls.model_fields) - cls.internal

    @classmethod
    def checked(
        cls, values: Mapping[str, Any], sources: Mapping[str, str] | None = None, **context: Any
    ) -> Self:
        """``values`` validated, or ``InvalidInputError`` with one line for the first problem.

        ``sources`` maps keys to where their values came from (``--region``, ``AWS_REGION``);
        ``context`` is what else validators may read (the pool type's flavor).
        """
        try:
            return cls.model_validate(
                dict(values), context={**context, "sources": dict(sources or {})}
            )
        except ValidationError as exc:
            raise InvalidInputError(_first_problem(exc)) from None


WORKER_COUNT_MAX = 10
"""A pool needs one worker, a few for availability; more is a typo, not a plan."""

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_IMAGE = re.compile(r"^[a-z0-9][a-z0-9._/:@-]*$", re.IGNORECASE)


class WorkerOptions(TargetOptions):
    """The options of a target that can run the pool's worker in its cloud (``--with-worker``).

    A mixin of the GCP, AWS and Azure options: same flags, same checks, saved with the pool.
    The worker runs as the pool's own cloud identity, so no long-lived cloud credential is made.
    """

    with_worker: bool = False
    worker_image: str | None = None
    worker_count: int = 1
    worker_api_key_env: str | None = None

    @field_validator("with_worker", mode="before")
    @classmethod
    def _with_worker(cls, value: Any) -> Any:
        if not isinstance(value, bool):
            raise ValueError(f"--with-worker must be true or false, not {value!r}.")
        return value

    @field_validator("worker_count")
    @classmethod
    def _worker_count(cls, value: int, info: ValidationInfo) -> int:
        if not 1 <= value <= WORKER_COUNT_MAX:
            raise ValueError(
                f"Invalid --worker-count {value}{origin(info)}: 1 to {WORKER_COUNT_MAX} workers."
            )
        return value

    @field_validator("worker_image")
    @classmethod
    def _worker_image(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is not None and (not _IMAGE.match(value) or len(value) > 512):
            raise ValueError(
                f"Invalid --worker-image '{value}'{origin(info)}: an image reference such as "
                "prefecthq/prefect:3-python3.12 or REGISTRY/REPOSITORY:TAG."
            )
        return value

    @field_validator("worker_api_key_env")
    @classmethod
    def _worker_api_key_env(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is not None and not _ENV_NAME.match(value):
            raise ValueError(
                f"Invalid --worker-api-key-env '{value}'{origin(info)}: the name of an "
                "environment variable (letters, digits, _), not the key itself."
            )
        return value

    @model_validator(mode="after")
    def _worker_fits(self, info: ValidationInfo) -> Self:
        context = info.context or {}
        pool_type: PoolType | None = context.get("pool_type")
        if not self.with_worker:
            sources = context.get("sources", {})
            for key in ("worker_image", "worker_count", "worker_api_key_env"):
                if sources.get(key) == flag(key):
                    raise ValueError(f"{flag(key)} needs --with-worker.")
        elif pool_type is not None and pool_type.push:
            worker = pool_type.worker_type
            raise ValueError(
                f"--with-worker runs a worker, and '{pool_type.name}' pools have none (Prefect "
                f"Cloud submits their runs): drop --with-worker, or use --type {worker}."
            )
        return self


ROTATION_KEY = "credential_rotation"
"""``generated`` key: how many times the pool's credential was rotated. A stack gives it to
the credential as its ``replacement_trigger``: a new value replaces the credential,
create-before-delete, so the block is written with the new one before the old one is deleted."""
ROTATED_AT_KEY = "credential_rotated_at"
"""``generated`` key: when the last rotation was started (ISO 8601, UTC). A rerun after an
interrupted rotation counts the credential's age from here, so it does not rotate twice."""
CREATED_OUTPUT = "credential_created_at"
EXPIRES_OUTPUT = "credential_expires_at"
"""Stack outputs (ISO 8601) of a target whose credential has an age: when the cloud made it,
and when it stops working (a credential with a lifetime: Azure's client secret)."""
EXPIRY_WARNING_DAYS = 30
"""A credential this close to its expiry is renewed by ``up`` and reported by ``preview``."""
ROTATE_AFTER_MAX = 3650


class RotationOptions(TargetOptions):
    """``--rotate-after DAYS``: a mixin of the options of targets whose block holds a credential
    the tool makes (saved with the pool)."""

    rotate_after: int | None = None

    @field_validator("rotate_after")
    @classmethod
    def _rotate_after(cls, value: int | None, info: ValidationInfo) -> int | None:
        if value is not None and not 1 <= value <= ROTATE_AFTER_MAX:
            raise ValueError(
                f"Invalid --rotate-after {value}{origin(info)}: 1 to {ROTATE_AFTER_MAX} days."
            )
        return value

    @model_validator(mode="after")
    def _rotation_needs_a_credential(self, info: ValidationInfo) -> Self:
        sources = (info.context or {}).get("sources", {})
        given = sources.get("rotate_after") == flag("rotate_after")
        if given and getattr(self, "with_worker", False):
            raise ValueError(
                "--rotate-after ages a credential, and --with-worker makes none: drop one."
            )
        return self


def rotation_options(pick: OptionPicker) -> dict[str, Any]:
    """The rotation options a target's ``resolve_options`` picks (flag > saved)."""
    value = pick("rotate_after")
    return {} if value is None else {"rotate_after": value}


def rotation_count(generated: Mapping[str, str]) -> int:
    """How many times the credential was rotated (0 for a pool never rotated)."""
    value = generated.get(ROTATION_KEY, "0")
    return int(value) if value.isdigit() else 0


def worker_options(pick: OptionPicker) -> dict[str, Any]:
    """The worker options a target's ``resolve_options`` picks (flag > saved > default)."""
    values: dict[str, Any] = {"with_worker": bool(pick("with_worker", False))}
    for key in ("worker_image", "worker_count", "worker_api_key_env"):
        value = pick(key)
        if value is not None:
            values[key] = value
    return values


@dataclass(frozen=True)
class WorkerLaunch:
    """How the pool's worker reaches Prefect, decided by the service once the API is known.

    ``credential`` is the worker's Prefect API key (Prefect Cloud) or auth string (a server
    behind ``PREFECT_SERVER_API_AUTH_STRING``): it goes into the cloud's secret store, never
    into a plain environment value. ``None`` with ``credential_env`` set: not known here (an
    offline plan); ``credential_env`` ``None``: the server asks for no credential.
    """

    api_url: str
    image: str
    credential_env: str | None = None
    """``PREFECT_API_KEY`` or ``PREFECT_API_AUTH_STRING``: the variable the worker reads."""
    credential: str | None = field(default=None, repr=False)
    credential_source: str = ""
    """Where the credential came from, for the plan: ``$PREFECT_WORKER_KEY (--worker-api-key-
    env)`` or ``your own API key (PREFECT_API_KEY)``."""
    dedicated: bool = False
    """The credential is one the user named for the worker, not their own."""


DEFAULT_WORKER_PYTHON = "3.12"


def default_worker_image(prefect_version: str | None) -> str:
    """Prefect's official image for a server's version (``prefecthq/prefect:3.8.8-python3.12``),
    or the newest 3.x when the version is not known."""
    known = prefect_version and re.fullmatch(r"[0-9][0-9A-Za-z.]*", prefect_version)
    tag = prefect_version if known else "3"
    return f"prefecthq/prefect:{tag}-python{DEFAULT_WORKER_PYTHON}"


def worker_command(pool: str, worker_type: str) -> tuple[str, ...]:
    """The worker's command: poll ``pool`` as a ``worker_type`` worker."""
    return ("prefect", "worker", "start", "--pool", pool, "--type", worker_type)


@dataclass(frozen=True)
class WorkerContainer:
    """What a cloud's worker runs, in the terms every container service shares: the stacks
    take this (they know nothing of Prefect), the plan and ``show`` print it."""

    image: str
    command: tuple[str, ...]
    env: Mapping[str, str]
    """Plain environment values: nothing secret."""
    secret_env: Mapping[str, Any] = field(default_factory=dict, repr=False)
    """Variable name → secret value (a ``pulumi.Output`` marked secret in a program): the stack
    puts each in the cloud's secret store and passes a reference to the container."""
    count: int = 1


def origin(info: ValidationInfo, key: str | None = None) -> str:
    """`` (from --region)``: where the value a validator checks came from, or ``""``."""
    sources = (info.context or {}).get("sources", {})
    source = sources.get(key or info.field_name or "")
    return f" (from {source})" if source else ""


def _first_problem(exc: ValidationError) -> str:
    """One line for a ``ValidationError``: a validator's own message as it wrote it (they name
    the flag and the fix); pydantic's own checks as ``Invalid --flag: reason``."""
    error = exc.errors()[0]
    raised = (error.get("ctx") or {}).get("error")
    if isinstance(raised, ValueError | AssertionError) and str(raised):
        return str(raised)
    where = ", ".join(flag(str(p)) for p in error["loc"][:1]) or "options"
    return f"Invalid {where}: {error['msg']}."


def generated_suffix(generated: Mapping[str, str], key: str) -> str:
    """The random suffix ``generated_config`` chose under ``key``: 8 lowercase hex chars.

    Raises ``ValueError`` otherwise: the value is read back from stack config, which users can
    edit, and is checked here rather than left for the cloud to refuse halfway through ``up``.
    """
    suffix = generated.get(key, "")
    if not re.fullmatch(r"[0-9a-f]{8}", suffix):
        raise ValueError(f"generated {key} must be 8 lowercase hex chars, not {suffix!r}")
    return suffix


def bad_outputs(message: str) -> EngineError:
    """The error for stack outputs that a finished ``up`` should have produced, but did not."""
    # Every up rewrites the outputs, so a rerun is the user's fix; a gap that lasts is a bug.
    return EngineError(
        message, hint="Rerun `provision up` for the pool; if it persists, report a bug."
    )


def known_or_placeholder(outputs: Mapping[str, Any], key: str) -> Any:
    """``outputs[key]``, or :data:`PLACEHOLDER` where a plan does not know it yet (missing,
    ``None``, empty)."""
    value = outputs.get(key)
    return PLACEHOLDER if value in (None, "", []) else value


def text_value(values: Mapping[str, Any], key: str) -> str | None:
    """``values[key]`` if it is a non-empty string, else ``None`` (missing, a secret's envelope,
    an unknown, another type)."""
    value = values.get(key)
    return value if isinstance(value, str) and value else None


def block_from_outputs(outputs: Mapping[str, Any], fields: Mapping[str, str]) -> dict[str, str]:
    """Credentials block data: each of ``fields`` (block field → stack output key) filled in.

    Every output must be a non-empty string, else :func:`bad_outputs` names each output key at
    fault (never a value: some are secrets).
    """
    data: dict[str, str] = {}
    missing: list[str] = []
    for name, key in fields.items():
        value = text_value(outputs, key)
        if value is None:
            missing.append(key)
        else:
            data[name] = value
    if missing:
        raise bad_outputs(f"The stack outputs lack {', '.join(missing)} for the credentials block.")
    return data


@dataclass(frozen=True)
class Grant:
    """One permission the stack grants, for the plan panel and the README."""

    principal: str
    """Who gets it, e.g. ``worker service account``."""
    role: str
    """Role or policy name, e.g. ``roles/iam.serviceAccountUser``."""
    scope: str
    """Where it applies, e.g. ``runtime service account only``."""
    permissions: tuple[str, ...] = ()
    """The individual actions/permissions, when the role is ours to spell out."""
    why: str = ""


@dataclass(frozen=True)
class Credential:
    """The credential a pool's block holds, for the plan and the summary."""

    kind: str
    """``service-account key``, ``IAM access key``, ``client secret``; ``none`` when keyless."""
    identity: str
    """Whose it is (keyed), or the identity the worker runs as (keyless)."""
    long_lived: bool
    note: str = ""
    """One sentence: what uses it, or what stands in for it."""


@dataclass(frozen=True)
class NextSteps:
    """What the summary prints once a pool is ready."""

    image_namespace: str | None = None
    deploy_snippet: str | None = None
    commands: tuple[str, ...] = ()
    """Shell commands to run next, in order (docker login, worker start, ...)."""
    env: Mapping[str, str] = field(default_factory=dict)
    """Environment variables the worker needs."""


@dataclass(frozen=True)
class BlockSpec:
    """The Prefect credentials block a target writes."""

    type: str
    """Block type slug, e.g. ``gcp-credentials``."""
    suffix: str
    """The default block name is ``<pool>-<suffix>``."""


Outputs = Mapping[str, Any]
"""Stack outputs as the service sees them: the target's typed outputs mapping, possibly partial
(plans), with secret values left out where they are not needed."""

OptionsT = TypeVar("OptionsT", bound=TargetOptions)


@dataclass(frozen=True)
class Pool(abc.ABC, Generic[OptionsT]):
    """One work pool bound to its target: name, type and validated options, resolved once.

    Subclasses set the class attributes and implement the methods marked abstract; everything
    else has a default for a target without cloud resources or without a block.
    """

    name: str
    type: PoolType
    options: OptionsT
    generated: Mapping[str, str] = field(default_factory=dict)
    """Values chosen once per stack and then kept in its record (random suffixes)."""
    env: Mapping[str, str] = field(default_factory=dict, repr=False, compare=False)
    """The environment it was resolved in: where local credentials are read, when needed."""
    worker: WorkerLaunch | None = field(default=None, repr=False, compare=False)
    """Set by the service on a ``--with-worker`` pool once the Prefect API is known."""
    last_outputs: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)
    """The stack outputs of the pool's last run, set by the service (empty for a new pool):
    what a program may reuse rather than ask the cloud again."""

    cloud: ClassVar[str]
    """Short name used in messages and ``list``: ``gcp``, ``aws``, ``modal``."""
    options_model: ClassVar[type[TargetOptions]]
    block: ClassVar[BlockSpec | None] = None
    """The credentials block it writes; ``None``: no block."""
    error_rules: ClassVar[tuple[ErrorRule, ...]] = ()
    """This cloud's error texts mapped to typed errors (credentials, APIs, permissions, ...)."""
    orphan_hints: ClassVar[dict[str, str]] = {}
    """Type token → how to find and remove a copy a killed run may have left untracked."""
    removes_untracked: ClassVar[frozenset[str]] = frozenset()
    """Type tokens whose untracked copy (a create killed after the cloud made it)
    :meth:`remove_untracked` deletes, instead of a hint: credentials whose secret the cloud
    hands out only once, so adopting the copy could never fill the block."""
    secret_outputs: ClassVar[frozenset[str]] = frozenset()
    """Output names holding a credential: never passed to template defaults or next steps."""
    program_modules: ClassVar[tuple[str, ...]] = ()
    """The modules :meth:`program` imports (its stack module), and ``worker_modules`` those
    :meth:`worker_program` adds: imported in the background while the CLI runs, see
    :meth:`preloads`."""
    worker_modules: ClassVar[tuple[str, ...]] = ()
    rotates: ClassVar[bool] = False
    """Its block holds a credential its stack makes and ``rotate`` replaces: the stack puts the
    rotation count (:meth:`rotation_trigger`) into an input that forces the credential's
    replacement, and exports :data:`CREATED_OUTPUT` (and :data:`EXPIRES_OUTPUT` if it has a
    lifetime)."""
    rotation_by_trigger: ClassVar[bool] = False
    """Its credential has no input that forces a replacement (an IAM access key's only input is
    its user), so the count goes into the ``replacement_trigger`` option alone. The engine
    replaces only when both the recorded and the new trigger are set and differ (pulumi
    pkg/v3@v3.259.0 ``resource/deploy/step_generator.go``, ``shouldTriggerReplace``: "Nulls
    mean there is no replacement trigger"), so such a trigger is ``"0"`` from the start, and a
    pool made before rotation existed (no trigger recorded) needs one ``up``, which records it
    in a "same" step, before its first rotation. Otherwise the trigger is ``None`` until the
    first rotation: a ForceNew input (a key's ``keepers``, a secret's end date) changing from
    nothing to ``"0"`` would replace the credential of every pool made before rotation."""
    worker_secret_store: ClassVar[str] = "the cloud's secret store"
    """Where its worker's Prefect credential is kept, as plans name it."""
    worker_package: ClassVar[str] = ""
    """The integration a worker of this target needs (``prefect-gcp``); empty: no worker."""
    propagation_errors: ClassVar[tuple[str, ...]] = ()
    """Regexes over engine output meaning "a new identity/grant is not visible yet": the engine
    retries ``up`` with backoff when a failure matches one of these."""

    # -- binding ----------------------------------------------------------------------------

    @classmethod
    def resolve(
        cls,
        name: str,
        pool_type: PoolType,
        given: Mapping[str, Any],
        env: Mapping[str, str],
        saved: Mapping[str, Any] | None = None,
        generated: Mapping[str, str] | None = None,
    ) -> Self:
        """The pool for ``given`` (flags; ``None`` for unset) on top of ``saved`` options.

        Defaults come from ``saved`` first, then the environment and the cloud's own CLI
        configuration. Raises ``InvalidInputError`` with one line; never calls a cloud API.
        """
        prior = cls.saved_options(name, saved) if saved else None
        options = cls.resolve_options(name, pool_type, given, env, prior)
        chosen = dict(generated or {}) or cls.generate(name, options)
        return cls(name, pool_type, options, chosen, env)

    @classmethod
    def saved_options(cls, name: str, saved: Mapping[str, Any]) -> OptionsT:
        """The options a record holds, or one line saying the record is unusable (an edited
        state, or one written by a version with other rules)."""
        try:
            return cls.options_model.model_validate(dict(saved))  # type: ignore[return-value]
        except ValidationError as exc:
            raise InvalidInputError(
                f"The record of pool '{name}' holds options this version cannot use "
                f"({_first_problem(exc)}): destroy the pool and create it again."
            ) from None

    @classmethod
    def bind(
        cls,
        name: str,
        pool_type: PoolType,
        saved: Mapping[str, Any],
        generated: Mapping[str, str] | None = None,
    ) -> Self:
        """The pool of a record, as saved: no environment, no defaults (``list``)."""
        return cls(name, pool_type, cls.saved_options(name, saved), dict(generated or {}))

    @classmethod
    @abc.abstractmethod
    def resolve_options(
        cls,
        name: str,
        pool_type: PoolType,
        given: Mapping[str, Any],
        env: Mapping[str, str],
        saved: OptionsT | None,
    ) -> OptionsT:
        """Pick each option (flag > saved > environment > default) and validate them."""

    @classmethod
    def generate(cls, name: str, options: OptionsT) -> dict[str, str]:
        """Values to choose once per stack (random suffixes). Default: none."""
        return {}

    # -- the cloud side ---------------------------------------------------------------------

    def provider_config(self) -> dict[str, str]:
        """Pulumi provider config for the stack, e.g. ``{"gcp:project": ...}``."""
        return {}

    def program(self) -> CloudProgram | None:
        """The cloud part of the inline program (imports its stack module lazily), or ``None``
        for a target without cloud resources."""
        return None

    def rotation_trigger(self) -> str | None:
        """The credential's rotation count as a string: what forces its replacement when it
        changes. ``None`` until the first rotation unless :attr:`rotation_by_trigger`, then
        ``"0"`` from the start (see there)."""
        count = rotation_count(self.generated)
        return str(count) if count or self.rotation_by_trigger else None

    def worker_program(self) -> WorkerProgram | None:
        """The worker part of the inline program (``--with-worker``), or ``None``."""
        return None

    def preloads(self) -> tuple[str, ...]:
        """The modules this pool's program will import, for ``provision.preload``."""
        worker = bool(getattr(self.options, "with_worker", False))
        return self.program_modules + (self.worker_modules if worker else ())

    def worker_container(self, extra_env: Mapping[str, str] | None = None) -> WorkerContainer:
        """The worker's container: the image, ``prefect worker start`` for this pool and type,
        the API URL, the integration to install, ``extra_env``, and the Prefect credential as a
        secret (``pulumi.Output.secret``: only call this inside a program).

        The container gets no secret variable when the server asks for no credential; in an
        offline plan, where the credential is not read, a placeholder stands in for it.
        """
        launch = self.worker
        if launch is None:
            raise ValueError(f"pool '{self.name}' runs no worker")
        env = {
            "PREFECT_API_URL": launch.api_url,
            # The official image's entrypoint installs these before running the command.
            "EXTRA_PIP_PACKAGES": self.worker_package,
            **(extra_env or {}),
        }
        secret_env: dict[str, Any] = {}
        if launch.credential_env:
            import pulumi

            secret_env[launch.credential_env] = pulumi.Output.secret(
                launch.credential or PLACEHOLDER
            )
        return WorkerContainer(
            image=launch.image,
            command=worker_command(self.name, self.type.worker_type),
            env=env,
            secret_env=secret_env,
            count=getattr(self.options, "worker_count", 1),
        )

    def credential(self) -> Credential | None:
        """The credential the block holds (``none`` when keyless); ``None``: no block."""
        return None

    def expected_outputs(self) -> dict[str, Any]:
        """The non-secret outputs ``up`` will produce, predicted without the engine (plans).
        Anything unpredictable is left out; :meth:`template_defaults` copes with missing keys."""
        return {}

    def adoptable_id(self, type_token: str, inputs: Mapping[str, Any]) -> str | None:
        """The cloud id a create of ``type_token`` with ``inputs`` gets, when the inputs fix it.

        After a killed run, a create the engine never heard back from is adopted by this id
        (read back, or dropped if the cloud has nothing there) instead of being re-created: a
        cloud whose names are unique refuses the second create. ``None``: not computable.
        """
        return None

    def remove_untracked(self, untracked: Untracked) -> str:
        """After a killed run, delete what the interrupted create ``untracked`` (of a type in
        :attr:`removes_untracked`) may have made that the state does not track; one line for the
        user: what was removed, or why nothing could be, with how to do it by hand."""
        raise NotImplementedError(f"{type(self).__name__} removes no untracked copies")

    def grants(self) -> list[Grant]:
        """Every permission the stack grants, with its scope."""
        return []

    def location(self) -> str:
        """Human-readable location for ``list`` (``project/region``)."""
        return ""

    # -- the Prefect side -------------------------------------------------------------------

    def block_data(self, outputs: Outputs, schema: Mapping[str, Any]) -> dict[str, Any]:
        """The credentials block document (contains secrets), from stack outputs.

        ``schema`` is the block type's schema as the Prefect server declares it (its
        ``properties`` and ``secret_fields``), for targets whose field names are the server's
        to say. Only called when :attr:`block` is set.
        """
        raise NotImplementedError(f"{type(self).__name__} writes no block")

    def check_local(self, schema: Mapping[str, Any]) -> None:
        """Fail with one line, before any change, if something this machine must supply for
        ``up``/``preview`` is missing or unusable (a local token). Default: nothing needed."""

    @abc.abstractmethod
    def template_defaults(self, outputs: Outputs, block_document_id: str | None) -> dict[str, Any]:
        """Base-job-template ``variables.properties.<key>.default`` values the tool owns.

        For plans, ``outputs`` may be partial and ``block_document_id`` is ``None``: use
        placeholders for what is not known yet.
        """

    @abc.abstractmethod
    def next_steps(self, outputs: Outputs) -> NextSteps:
        """What to do once the pool is ready."""


def block_ref(block_document_id: str | None) -> dict[str, Any]:
    """A template default referencing the pool's block (a placeholder before it exists)."""
    return {"$ref": {"block_document_id": block_document_id or PLACEHOLDER}}


def require_block_fields(
    block: BlockSpec | None, schema: Mapping[str, Any], names: Iterable[str]
) -> None:
    """Fail with one line if the server's schema of ``block`` lacks a field the tool writes
    (a block type registered from another integration version); an empty schema is unknown."""
    properties = schema.get("properties")
    if block is None or not isinstance(properties, Mapping):
        return
    missing = [n for n in names if n not in properties]
    if missing:
        raise InvalidInputError(
            f"The server's '{block.type}' block type has no field {', '.join(missing)}: "
            "re-register its integration's blocks, or report this."
        )
