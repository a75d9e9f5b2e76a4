"""The JSON Schema of the pools file (``provision schema``), generated from the option models.

Each key's type and default come from its target's pydantic model, its description from the
flag's help; which keys a pool may have depends on its ``type`` (``if``/``then`` per target).
Editors that read JSON Schema (VS Code's Even Better TOML, taplo, JetBrains) then complete and
check a ``provision.toml`` as it is typed; ``provision`` itself checks it the same way.
"""

from __future__ import annotations

from typing import Any

from provision import registry
from provision.pools_file import POOL_KEYS, option_keys

SCHEMA_ID = "https://github.com/prefect-provision/provision/schemas/pools-file.json"

_POOL_KEY_SCHEMAS: dict[str, dict[str, Any]] = {
    "type": {
        "description": "Work pool type (see `provision types`).",
        "enum": list(registry.POOL_TYPES),
    },
    "block-name": {
        "description": "Credentials block name (default: <pool>-<cloud>-credentials).",
        "type": "string",
        "pattern": "^[a-z0-9][a-z0-9-]*$",
    },
    "set-image-namespace": {
        "description": "Set PREFECT_DEFAULT_DOCKER_BUILD_NAMESPACE in the active Prefect "
        "profile to the pool's registry.",
        "type": "boolean",
    },
}


def schema() -> dict[str, Any]:
    """The pools file's JSON Schema (draft 2020-12)."""
    keys = option_keys()
    properties: dict[str, Any] = {
        name: _property(option, flag) for name, (option, flag) in sorted(keys.items())
    }
    assert set(POOL_KEYS) == set(_POOL_KEY_SCHEMAS)
    pool_properties = {**_POOL_KEY_SCHEMAS, **properties}
    defaults = {k: v for k, v in pool_properties.items() if k != "type"}
    per_target = []
    for spec in registry.TARGETS.values():
        types = [p.name for p in registry.POOL_TYPES.values() if p.target == spec.key]
        allowed = [*POOL_KEYS, *(f.name.removeprefix("--") for f in spec.flags)]
        per_target.append(
            {
                "if": {"properties": {"type": {"enum": types}}, "required": ["type"]},
                "then": {"propertyNames": {"enum": allowed}},
            }
        )
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        "title": "provision pools file (provision.toml)",
        "description": "Every work pool `provision preview -f` and `provision up -f` converge.",
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "defaults": {
                "description": "Options every pool gets where they apply to its type; a pool's "
                "own value wins.",
                "type": "object",
                "additionalProperties": False,
                "properties": defaults,
            },
            "pools": {
                "description": "One table per pool, named as the pool (and its stack).",
                "type": "object",
                "minProperties": 1,
                "propertyNames": {"pattern": "^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$"},
                "additionalProperties": {"$ref": "#/$defs/pool"},
            },
        },
        "required": ["pools"],
        "$defs": {
            "pool": {
                "type": "object",
                "required": ["type"],
                "additionalProperties": False,
                "properties": pool_properties,
                "allOf": per_target,
            }
        },
    }


def _property(option: str, flag: registry.Flag) -> dict[str, Any]:
    """A key's schema: its type and default from the first model declaring the option."""
    field_schema: dict[str, Any] = {}
    for spec in registry.TARGETS.values():
        if any(f.key == option for f in spec.flags):
            model = registry.target(spec.key).options_model
            field_schema = dict(model.model_json_schema()["properties"].get(option, {}))
            break
    field_schema.pop("title", None)
    # TOML has no null: an optional option is simply left out.
    variants = [v for v in field_schema.pop("anyOf", []) if v.get("type") != "null"]
    if len(variants) == 1:
        field_schema.update(variants[0])
    if field_schema.get("default") is None:
        field_schema.pop("default", None)
    if flag.kind == "list":
        # Repeatable flags: an array of the strings the flag takes (``--env KEY=VALUE``).
        field_schema = {"type": "array", "items": {"type": "string"}}
    elif option == "subnet_ids":
        # A comma-separated flag: in the file, also an array of ids.
        return {
            "description": flag.help,
            "anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}],
        }
    helps = dict.fromkeys(f.help for _, f in registry.all_flags()[option])
    return {"description": " ".join(helps), **field_schema}
