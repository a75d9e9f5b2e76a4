"""What the tool keeps in each pool's stack config, and reading it back without the engine.

Every option the user gave is saved, so ``preview``, ``destroy`` and ``show`` need only the pool
name. Reading goes straight to the work dir's ``Pulumi.<pool>.yaml`` (plain YAML; the values we
read are never secret), which keeps validation free of engine calls.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

NS = "provision"
KEY_TYPE = f"{NS}:type"
KEY_OPTIONS = f"{NS}:options"
KEY_BLOCK_NAME = f"{NS}:blockName"
KEY_GENERATED = f"{NS}:generated"
KEY_PREFECT_URL = f"{NS}:prefectApiUrl"
KEY_PREFECT_STATE = f"{NS}:prefectState"


@dataclass(frozen=True)
class PrefectState:
    """Ids of the Prefect objects written for a pool, and whether the tool created them."""

    block_id: str | None = None
    pool_id: str | None = None
    block_created: bool = False
    pool_created: bool = False

    def to_json(self) -> str:
        """Stable JSON for stack config."""
        return json.dumps(self.__dict__, sort_keys=True)

    @classmethod
    def from_json(cls, raw: str | None) -> PrefectState:
        """Parse, tolerating absence."""
        return cls(**json.loads(raw)) if raw else cls()


@dataclass(frozen=True)
class SavedPool:
    """A pool's saved configuration."""

    type: str
    options: dict[str, Any]
    block_name: str
    generated: dict[str, str]
    prefect_api_url: str | None
    prefect: PrefectState = field(default_factory=PrefectState)
    provider_config: dict[str, str] = field(default_factory=dict)

    def to_config(self) -> dict[str, str]:
        """Flat stack-config values (provider config included)."""
        values = {
            KEY_TYPE: self.type,
            KEY_OPTIONS: json.dumps(self.options, sort_keys=True),
            KEY_BLOCK_NAME: self.block_name,
            KEY_GENERATED: json.dumps(self.generated, sort_keys=True),
            KEY_PREFECT_STATE: self.prefect.to_json(),
            **self.provider_config,
        }
        if self.prefect_api_url:
            values[KEY_PREFECT_URL] = self.prefect_api_url
        return values

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> SavedPool | None:
        """Rebuild from stack-config values; ``None`` if this is not a pool stack."""
        if KEY_TYPE not in config:
            return None
        provider = {k: str(v) for k, v in config.items() if not k.startswith(f"{NS}:")}
        return cls(
            type=str(config[KEY_TYPE]),
            options=json.loads(config.get(KEY_OPTIONS) or "{}"),
            block_name=str(config.get(KEY_BLOCK_NAME) or ""),
            generated=json.loads(config.get(KEY_GENERATED) or "{}"),
            prefect_api_url=config.get(KEY_PREFECT_URL) or None,
            prefect=PrefectState.from_json(config.get(KEY_PREFECT_STATE)),
            provider_config=provider,
        )


def read_saved(work_dir: Path, pool: str) -> SavedPool | None:
    """The saved config of ``pool`` from its work dir, or ``None`` if there is none."""
    path = work_dir / f"Pulumi.{pool}.yaml"
    if not path.is_file():
        return None
    import yaml

    data = yaml.safe_load(path.read_text()) or {}
    config = {k: v for k, v in (data.get("config") or {}).items() if not isinstance(v, dict)}
    return SavedPool.from_config(config)
