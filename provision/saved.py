"""A pool's record, and what its stack's state says, read from the backend.

Everything needed to operate a pool lives in its stack, in the shared backend: the record
(type, options, generated suffixes, block name, Prefect URL, provider config) is the outputs of
a ``provision:index:PoolRecord`` component registered first by the program, and the Prefect ids
and ownership are the outputs of the Prefect resources (``provision.prefect.resources``). Any
machine with the backend URL and the secrets configuration reads them with one ``stack
export``, which needs no decryption: none of these values is secret.

Pools made before the record moved into the backend kept it in the work dir's
``Pulumi.<pool>.yaml`` (``provision:*`` keys); :func:`read_legacy` reads that once, so the first
run on that machine can migrate the pool.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from provision.events import is_internal, is_secret
from provision.prefect.tokens import BLOCK_TYPE, TYPES, WORK_POOL_TYPE

RECORD_TYPE = "provision:index:PoolRecord"
"""The component whose outputs are the record. Never rename it: states carry the token."""
RECORD_NAME = "record"

_NS = "provision"
_LEGACY_KEYS = {
    "type": f"{_NS}:type",
    "options": f"{_NS}:options",
    "block_name": f"{_NS}:blockName",
    "generated": f"{_NS}:generated",
    "prefect_api_url": f"{_NS}:prefectApiUrl",
    "prefect": f"{_NS}:prefectState",
}


@dataclass(frozen=True)
class PrefectState:
    """Ids of the Prefect objects written for a pool, and whether the tool created them."""

    block_id: str | None = None
    pool_id: str | None = None
    block_created: bool = False
    pool_created: bool = False


@dataclass(frozen=True)
class SavedPool:
    """A pool's record: what every later command needs besides the pool name."""

    type: str
    options: dict[str, Any]
    block_name: str
    generated: dict[str, str]
    prefect_api_url: str | None
    provider_config: dict[str, str] = field(default_factory=dict)
    image_namespace_profile: dict[str, Any] | None = None
    """``--set-image-namespace``: the Prefect profile whose image namespace ``up`` sets, and the
    value it had before (``{"profile": str, "previous": str | None}``), for ``destroy`` to put
    back; ``None``: the pool sets none."""

    def to_outputs(self) -> dict[str, Any]:
        """The record as the component's outputs (plain JSON values)."""
        return asdict(self)

    @classmethod
    def from_outputs(cls, outputs: dict[str, Any]) -> SavedPool | None:
        """Rebuild from the component's outputs; ``None`` if they are not a record."""
        if not isinstance(outputs.get("type"), str):
            return None
        return cls(
            type=outputs["type"],
            options=dict(outputs.get("options") or {}),
            block_name=str(outputs.get("block_name") or ""),
            generated={k: str(v) for k, v in (outputs.get("generated") or {}).items()},
            prefect_api_url=outputs.get("prefect_api_url") or None,
            provider_config={k: str(v) for k, v in (outputs.get("provider_config") or {}).items()},
            image_namespace_profile=_profile_entry(outputs.get("image_namespace_profile")),
        )


@dataclass(frozen=True)
class StackState:
    """What one ``stack export`` says about a pool (no secret is decrypted or kept)."""

    record: SavedPool | None
    prefect: PrefectState
    outputs: dict[str, Any] = field(repr=False)
    """Stack outputs; secret ones are replaced by ``None`` (see ``secret_outputs``)."""
    secret_outputs: frozenset[str]
    resources: list[dict[str, Any]]
    """Recorded cloud resources (``urn``, ``type``, ``id``): no engine bookkeeping, no record,
    no Prefect objects."""
    pending: list[dict[str, Any]]
    """Operations a killed run left in flight."""
    has_triggers: bool = False
    """Some recorded resource carries a ``replacementTrigger``: its credential was made (or last
    updated) by a version that gives it one, so a new rotation count replaces it."""
    replacing: frozenset[str] = frozenset()
    """The ``replacementTrigger`` of each resource whose create-before-delete replacement a
    killed or failed run left half done: the new copy recorded, the old one still pending
    deletion (``delete: true``), so whatever the new copy feeds may not be rewritten yet."""
    secrets: dict[str, Any] = field(default_factory=dict)
    """The state's secrets manager: ``{"type": "passphrase", "state": {"salt": ...}}`` or
    ``{"type": "cloud", "state": {"url": "awskms://...", "encryptedkey": ...}}``."""
    deployment: dict[str, Any] = field(default_factory=dict, repr=False)
    """The exported deployment all this was read from: the engine starts this run's stack
    from it (its secrets manager, and whether a killed run left operations in flight)."""

    @property
    def secrets_type(self) -> str | None:
        """``passphrase``, ``cloud`` (a KMS/Vault URL), or ``None`` for an empty stack."""
        return self.secrets.get("type")

    @property
    def secrets_url(self) -> str | None:
        """A ``cloud`` secrets manager's provider URL."""
        return (self.secrets.get("state") or {}).get("url")

    @property
    def is_empty(self) -> bool:
        """True when nothing at all is recorded in the cloud or in Prefect."""
        return not self.resources and self.prefect == PrefectState()


def _profile_entry(value: Any) -> dict[str, Any] | None:
    """A record's profile entry, if well formed (an edited state may hold anything)."""
    if not isinstance(value, dict) or not isinstance(value.get("profile"), str):
        return None
    previous = value.get("previous")
    previous = previous if isinstance(previous, str) else None
    return {"profile": value["profile"], "previous": previous}


def stack_state(deployment: dict[str, Any] | None) -> StackState:
    """Parse an exported deployment (``None``/empty: a stack with nothing recorded)."""
    deployment = deployment or {}
    secrets = deployment.get("secrets_providers") or {}
    record = None
    prefect: dict[str, Any] = {}
    outputs: dict[str, Any] = {}
    secret: set[str] = set()
    resources = []
    for r in deployment.get("resources") or []:
        rtype = r.get("type", "")
        outs = r.get("outputs") or {}
        if rtype == "pulumi:pulumi:Stack":
            for key, value in outs.items():
                if is_secret(value):
                    secret.add(key)
                    outputs[key] = None
                else:
                    outputs[key] = value
        elif rtype == RECORD_TYPE:
            record = SavedPool.from_outputs(outs)
        elif rtype == BLOCK_TYPE:
            prefect.update(block_id=outs.get("block_id"), block_created=bool(outs.get("created")))
        elif rtype == WORK_POOL_TYPE:
            prefect.update(pool_id=outs.get("pool_id"), pool_created=bool(outs.get("created")))
        elif not is_internal(rtype):
            resources.append({"urn": r.get("urn"), "type": rtype, "id": r.get("id")})
    return StackState(
        record=record,
        prefect=PrefectState(**prefect),
        outputs=outputs,
        secret_outputs=frozenset(secret),
        resources=resources,
        pending=list(deployment.get("pending_operations") or []),
        has_triggers=any(
            r.get("replacementTrigger") is not None for r in deployment.get("resources") or []
        ),
        replacing=_replacing(deployment.get("resources") or []),
        secrets=dict(secrets),
        deployment=dict(deployment),
    )


def _replacing(resources: list[dict[str, Any]]) -> frozenset[str]:
    """The triggers of the live resources whose old copy is still pending deletion."""
    old = {r.get("urn") for r in resources if r.get("delete")}
    return frozenset(
        r["replacementTrigger"]
        for r in resources
        if not r.get("delete")
        and r.get("urn") in old
        and isinstance(r.get("replacementTrigger"), str)
    )


def is_tool_resource(type_token: str) -> bool:
    """The record and the Prefect objects: the tool's own resources, not the cloud's."""
    return type_token == RECORD_TYPE or type_token in TYPES


@dataclass(frozen=True)
class LegacyPool:
    """A record kept in a work dir by versions before the record moved into the backend."""

    record: SavedPool
    prefect: PrefectState
    path: Path


def read_legacy(work_dir: Path, pool: str) -> LegacyPool | None:
    """The work dir's ``provision:*`` config of ``pool``, or ``None`` if there is none."""
    path = work_dir / f"Pulumi.{pool}.yaml"
    if not path.is_file():
        return None
    import yaml

    data = yaml.safe_load(path.read_text()) or {}
    config = {k: v for k, v in (data.get("config") or {}).items() if not isinstance(v, dict)}
    keys = _LEGACY_KEYS
    if keys["type"] not in config:
        return None
    state = json.loads(config.get(keys["prefect"]) or "{}")
    return LegacyPool(
        record=SavedPool(
            type=str(config[keys["type"]]),
            options=json.loads(config.get(keys["options"]) or "{}"),
            block_name=str(config.get(keys["block_name"]) or ""),
            generated=json.loads(config.get(keys["generated"]) or "{}"),
            prefect_api_url=config.get(keys["prefect_api_url"]) or None,
            provider_config={k: str(v) for k, v in config.items() if not k.startswith(f"{_NS}:")},
        ),
        prefect=PrefectState(**{k: state.get(k) for k in asdict(PrefectState()) if k in state}),
        path=path,
    )
