"""The contract every cloud target implements, declared once.

A *target* is the glue between one stack module (``stacks/``, pure Pulumi, knows nothing of
Prefect) and the rest of the tool: it validates the user's options, builds the inline Pulumi
program, turns stack outputs into the Prefect credentials block and the work pool's
base-job-template defaults, and lists the grants the plan shows. The use cases
(``service.py``) reach a cloud only through this interface; the engine and the CLI never see
a target.

Adding a cloud = one stack module + one ``Target`` subclass + its entries in ``registry.py``.
"""

from __future__ import annotations

import abc
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict

from provision.engine_errors import ErrorRule
from provision.errors import EngineError, InvalidInputError

CloudProgram = Callable[[], Mapping[str, Any]]
"""A target's part of the inline program: declares its cloud resources and returns the outputs
(name → ``pulumi.Output``) that become the stack's exports."""


@dataclass(frozen=True)
class PoolType:
    """One Prefect work-pool type the tool can provision."""

    name: str
    """Prefect's type string, e.g. ``cloud-run-v2:push``."""
    target: str
    """Key of the :class:`Target` in the registry, e.g. ``gcp``."""
    worker_type: str
    """The worker type whose default base job template the pool starts from (``cloud-run-v2``)."""
    push: bool
    """Push pools exist only on Prefect Cloud."""
    description: str


def flag(key: str) -> str:
    """The CLI flag of an option key (``vpc_id`` → ``--vpc-id``)."""
    return "--" + key.replace("_", "-")


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
    """Base of each target's validated options. Saved verbatim in stack config."""

    model_config = ConfigDict(extra="forbid", frozen=True)


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
class NextSteps:
    """What the summary prints once a pool is ready."""

    image_namespace: str | None = None
    deploy_snippet: str | None = None
    commands: tuple[str, ...] = ()
    """Shell commands to run next, in order (docker login, worker start, ...)."""
    env: Mapping[str, str] = field(default_factory=dict)
    """Environment variables the worker needs."""


class Target(abc.ABC):
    """Glue between one cloud's stack and the engine, the Prefect writer and the CLI."""

    cloud: ClassVar[str]
    """Short cloud name used in messages: ``gcp``, ``aws``, ``azure``."""
    options_model: ClassVar[type[TargetOptions]]
    block_type: ClassVar[str]
    """Prefect block type slug, e.g. ``gcp-credentials``."""
    block_suffix: ClassVar[str]
    """Default block name is ``<pool>-<block_suffix>``."""
    error_rules: ClassVar[tuple[ErrorRule, ...]] = ()
    """This cloud's error texts mapped to typed errors (credentials, APIs, permissions, ...)."""
    orphan_hints: ClassVar[dict[str, str]] = {}
    """Type token → how to find and remove a copy a killed run may have left untracked."""
    secret_outputs: ClassVar[frozenset[str]] = frozenset()
    """Output names holding a credential: never passed to template defaults or next steps."""
    propagation_errors: ClassVar[tuple[str, ...]] = ()
    """Regexes over engine output meaning "a new identity/grant is not visible yet": the engine
    retries ``up`` with backoff when a failure matches one of these."""

    @abc.abstractmethod
    def resolve_options(
        self,
        pool: str,
        pool_type: PoolType,
        given: Mapping[str, Any],
        env: Mapping[str, str],
        saved: TargetOptions | None = None,
    ) -> TargetOptions:
        """Validate ``given`` (CLI flags, ``None`` for unset) and fill defaults.

        Defaults come from ``saved`` (the options of an existing stack) first, then from the
        environment and the cloud's own CLI configuration. Raises ``InvalidInputError`` with one
        line naming the problem; never calls a cloud API.
        """

    @abc.abstractmethod
    def generated_config(self, pool: str, options: TargetOptions) -> dict[str, str]:
        """Values chosen once per stack and then kept in stack config (random suffixes)."""

    @abc.abstractmethod
    def provider_config(self, pool: str, options: TargetOptions) -> dict[str, str]:
        """Pulumi provider config for ``pool``'s stack, e.g. ``{"gcp:project": ...}``."""

    @abc.abstractmethod
    def program(
        self,
        pool: str,
        pool_type: PoolType,
        options: TargetOptions,
        generated: Mapping[str, str],
    ) -> CloudProgram:
        """The cloud part of the inline program. Imports its stack module (and SDK) lazily."""

    def expected_outputs(
        self, pool: str, pool_type: PoolType, options: TargetOptions
    ) -> dict[str, Any]:
        """The non-secret outputs ``up`` will produce, predicted without the engine (for plans).

        Anything unpredictable is left out; ``template_defaults`` must cope with missing keys.
        """
        return {}

    def adoptable_id(
        self, options: TargetOptions, type_token: str, inputs: Mapping[str, Any]
    ) -> str | None:
        """The cloud id a create of ``type_token`` with ``inputs`` gets, when the inputs fix it.

        After a killed run, a create the engine never heard back from is adopted by this id
        (read back, or dropped if the cloud has nothing there) instead of being re-created: a
        cloud whose names are unique refuses the second create. ``None``: not computable.
        """
        return None

    @abc.abstractmethod
    def block_data(self, outputs: Mapping[str, Any]) -> dict[str, Any]:
        """The credentials block document built from stack outputs (contains secrets)."""

    @abc.abstractmethod
    def template_defaults(
        self, pool_type: PoolType, outputs: Mapping[str, Any], block_document_id: str | None
    ) -> dict[str, Any]:
        """Base-job-template ``variables.properties.<key>.default`` values the tool owns.

        For plans, ``outputs`` may be partial and ``block_document_id`` is ``None``: use
        placeholders for what is not known yet.
        """

    @abc.abstractmethod
    def grants(self, pool: str, pool_type: PoolType, options: TargetOptions) -> list[Grant]:
        """Every permission the stack grants, with its scope."""

    @abc.abstractmethod
    def next_steps(self, pool: str, pool_type: PoolType, outputs: Mapping[str, Any]) -> NextSteps:
        """What to do once the pool is ready."""

    def location(self, options: TargetOptions) -> str:
        """Human-readable location for ``list`` (``project/region``)."""
        return ""
