"""The plan: what ``up`` would do, in the JSON contract that CI and other tools read.

``Plan.model_dump()`` *is* the contract (``provision preview --json``); ``location`` rides
along for the human panel but is excluded from the JSON.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from provision.targets.base import Credential, Grant

SECRET = "[secret]"
COMPUTED = "[computed]"


class Changes(BaseModel):
    """Resource step counts."""

    create: int = 0
    update: int = 0
    replace: int = 0
    delete: int = 0
    same: int = 0


class ResourceChange(BaseModel):
    """One resource step with its inputs as the engine receives them (wire names)."""

    urn: str
    type: str
    name: str
    op: str
    inputs: dict[str, Any] = Field(default_factory=dict)


class BlockChange(BaseModel):
    """The credentials block the tool writes."""

    kind: Literal["block"] = "block"
    name: str
    block_type: str
    op: str


class WorkPoolChange(BaseModel):
    """The work pool the tool writes, with the template variable defaults it sets."""

    kind: Literal["work_pool"] = "work_pool"
    name: str
    type: str
    op: str
    variables: dict[str, Any] = Field(default_factory=dict)


class WorkerPlan(BaseModel):
    """The worker ``--with-worker`` runs in the cloud, as the plan shows it."""

    image: str
    command: list[str]
    count: int
    identity: str
    """The cloud identity it runs as: its only cloud credential is that identity's."""
    prefect_credential: str | None
    """The variable carrying its Prefect credential (``PREFECT_API_KEY``), from the cloud's
    secret store; ``None``: the server asks for none."""
    prefect_credential_source: str
    """Whose credential that is, said plainly: a dedicated one, or the user's own."""
    dedicated: bool
    secret_store: str = "the cloud's secret store"
    """Where the worker's Prefect credential is kept (Secret Manager, Secrets Manager, ...)."""


class ProfileChangePlan(BaseModel):
    """``--set-image-namespace``: the one key of the active Prefect profile ``up`` writes."""

    path: str
    profile: str
    key: str
    op: str
    """``create``, ``update``, ``delete`` (put back as it was) or ``same``."""
    value: str | None
    """What it will hold (``None``: unset)."""
    previous: str | None
    """What ``destroy`` puts back."""


class RotationPlan(BaseModel):
    """Why this run replaces the pool's credential (create, rewrite the block, then delete)."""

    reason: str
    rotation: int
    """The rotation count once done."""
    created_at: str | None
    """When the credential being replaced was made."""
    expires_at: str | None


class Plan(BaseModel):
    """Everything one ``up`` (or ``destroy``) would do."""

    pool: str
    type: str
    stack: str
    offline: bool
    changes: Changes
    resources: list[ResourceChange]
    prefect: list[BlockChange | WorkPoolChange]
    grants: list[Grant] = Field(default_factory=list)
    """Every permission the stack grants: who, role, scope, permissions, why (as the panel)."""
    credential: Credential | None = None
    """The cloud credential the block holds (``kind: none`` when the worker runs keyless)."""
    worker: WorkerPlan | None = None
    """The worker run in the cloud (``--with-worker``)."""
    rotation: RotationPlan | None = None
    """The credential's rotation, when this run does one (``rotate``, ``--rotate-after``, an
    expiry within 30 days)."""
    profile: ProfileChangePlan | None = None
    """The Prefect profile setting ``--set-image-namespace`` writes on this machine."""
    location: str = Field(default="", exclude=True)

    @property
    def has_changes(self) -> bool:
        """True when any cloud resource or Prefect object would change."""
        c = self.changes
        cloud = any((c.create, c.update, c.replace, c.delete))
        profile = self.profile is not None and self.profile.op != "same"
        rotation = self.rotation is not None  # a replacement, whatever the engine says of it
        return cloud or profile or rotation or any(p.op not in ("same",) for p in self.prefect)


def mask_inputs(value: Any) -> Any:
    """Engine inputs with secrets masked and unknowns shown as placeholders."""
    from pulumi.output import Unknown
    from pulumi.runtime import rpc

    if isinstance(value, Unknown):
        return COMPUTED
    if isinstance(value, dict):
        if value.get(rpc._special_sig_key) == rpc._special_secret_sig:
            return SECRET
        return {k: mask_inputs(v) for k, v in value.items() if not k.startswith("__")}
    if isinstance(value, list | tuple):
        return [mask_inputs(v) for v in value]
    if value == rpc.UNKNOWN:
        return COMPUTED
    return value
