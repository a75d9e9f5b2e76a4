"""The pools file: every pool of a team, declared in one TOML file (``provision.toml``).

```toml
[defaults]                 # options every pool gets, where they apply to its type
region = "europe-west1"

[pools.etl-gcp]
type = "cloud-run-v2"
project = "my-proj-123"
with-worker = true

[pools.etl-aws]
type = "ecs"
region = "us-east-1"       # a pool's own value wins over the defaults
task-role-policy-arn = ["arn:aws:iam::aws:policy/AmazonS3ReadOnlyAccess"]
```

A pool's keys are its flags as ``--help`` spells them, without the dashes (plus ``type``,
``block-name`` and ``set-image-namespace``), and their values are checked by the same option
models as the flags. Every problem is one line naming the file, the line and the key, found
before anything is touched. ``provision schema`` prints the JSON Schema of the format.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from provision import registry
from provision.errors import InvalidInputError
from provision.naming import validate_pool_name

DEFAULT_FILE = "provision.toml"

POOL_KEYS: dict[str, str] = {
    "type": "str",
    "block-name": "str",
    "set-image-namespace": "bool",
}
"""Keys of a pool besides its target's flags, with their kinds."""


def option_keys() -> dict[str, tuple[str, registry.Flag]]:
    """Every target flag as a file key (``worker-account-id``) → (option key, flag)."""
    return {
        declared[0][1].name.removeprefix("--"): (key, declared[0][1])
        for key, declared in registry.all_flags().items()
    }


@dataclass(frozen=True)
class PoolEntry:
    """One pool of the file, as a request's parts: its type, options and Prefect settings."""

    name: str
    type: str
    options: Mapping[str, Any]
    """Option key (``worker_account_id``) → value, defaults merged in where they apply."""
    block_name: str | None = None
    set_image_namespace: bool | None = None
    line: int = 0
    """The line of its ``[pools.NAME]`` header."""


@dataclass(frozen=True)
class PoolsFile:
    """A parsed, checked pools file."""

    path: Path
    pools: tuple[PoolEntry, ...]
    lines: Mapping[tuple[str, str], int] = field(default_factory=dict, repr=False)
    """(table, key) → line: where each key was written, for messages naming a line."""

    def names(self) -> list[str]:
        """The pools' names, in file order."""
        return [p.name for p in self.pools]

    def where(self, pool: str, message: str) -> str:
        """``message`` about ``pool`` prefixed with the file and the line it concerns: the
        line of the key whose flag the message names, else the pool's header."""
        table = f"pools.{pool}"
        line = next((p.line for p in self.pools if p.name == pool), 0)
        named = [
            (message.find(f"--{key}"), at)
            for key in option_keys()
            if re.search(rf"--{re.escape(key)}\b(?!-)", message)
            for at in [self.lines.get((table, key)) or self.lines.get(("defaults", key))]
            if at is not None
        ]
        if named:
            line = min(named)[1]  # the first flag the message names that the file sets
        return f"{self.path}:{line}: pool '{pool}': {message}"


def load(path: str | Path) -> PoolsFile:
    """Read and check ``path``; raises ``InvalidInputError`` with ``FILE:LINE: ...``."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InvalidInputError(
            f"No pools file at {path}: create it (see `provision schema`) or pass -f PATH."
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidInputError(f"Cannot read pools file {path}: {exc}.") from None
    return parse(text, path)


def parse(text: str, path: Path) -> PoolsFile:
    """Check and parse a pools file's ``text`` (``path`` names it in messages)."""
    lines = _key_lines(text, path)
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        # tomllib's message ends in "(at line N, column M)": lift the line to the front.
        found = re.search(r"\(at line (\d+), column \d+\)$", str(exc))
        line = found.group(1) if found else "?"
        reason = re.sub(r"\s*\(at line \d+, column \d+\)$", "", str(exc))
        raise InvalidInputError(f"{path}:{line}: invalid TOML: {reason}.") from None

    def fail(table: str, key: str | None, message: str) -> InvalidInputError:
        line = (
            lines.get((table, key or ""))
            or lines.get((table, ""))
            or lines.get(("", table))  # a top-level key
            or 1
        )
        return InvalidInputError(f"{path}:{line}: {message}")

    for top in doc:
        if top not in ("defaults", "pools"):
            raise fail(top, "", f"unknown table or key '{top}': use [defaults] and [pools.NAME].")
    defaults = doc.get("defaults", {})
    pools = doc.get("pools", {})
    if not isinstance(defaults, dict):
        raise fail("defaults", "", "'defaults' must be a table.")
    if not isinstance(pools, dict) or not pools:
        raise fail("pools", "", "no pools: declare each as a [pools.NAME] table.")
    known = option_keys()
    for key, value in defaults.items():
        if key == "type" or key not in {**known, **POOL_KEYS}:
            raise fail("defaults", key, _unknown("defaults", key))
        _check_kind("defaults", key, value, known, fail)

    entries = []
    for name, table in pools.items():
        where = f"pools.{name}"
        if not isinstance(table, dict):
            raise fail("pools", name, f"pool '{name}' must be a table: [pools.{name}].")
        try:
            validate_pool_name(name)
        except InvalidInputError as exc:
            raise fail(where, "", str(exc)) from None
        for key, value in table.items():
            if key not in known and key not in POOL_KEYS:
                raise fail(where, key, _unknown(f"pool '{name}'", key))
            _check_kind(where, key, value, known, fail)
        type_name = table.get("type")
        if type_name is None:
            raise fail(where, "", f"pool '{name}' has no type: add type = \"...\".")
        if type_name not in registry.POOL_TYPES:
            known_types = ", ".join(registry.POOL_TYPES)
            raise fail(where, "type", f"pool '{name}': unknown type '{type_name}' ({known_types}).")
        pool_type = registry.pool_type(type_name)
        applies = {f.key for f in registry.TARGETS[pool_type.target].flags}
        options: dict[str, Any] = {}
        for source in (defaults, table):
            for key, value in source.items():
                if key in POOL_KEYS:
                    continue
                option, flag = known[key]
                if option not in applies:
                    if source is table:
                        raise fail(
                            where,
                            key,
                            f"pool '{name}': {key} does not apply to type '{type_name}'.",
                        )
                    continue  # a default for other pools' types
                options[option] = _value(value, flag)
        entries.append(
            PoolEntry(
                name=name,
                type=type_name,
                options=options,
                block_name=table.get("block-name", defaults.get("block-name")),
                set_image_namespace=table.get(
                    "set-image-namespace", defaults.get("set-image-namespace")
                ),
                line=lines.get((where, ""), 1),
            )
        )
    return PoolsFile(path, tuple(entries), lines)


def _unknown(where: str, key: str) -> str:
    close = _close(key)
    hint = f" (did you mean '{close}'?)" if close else " (see `provision schema`)"
    return f"{where}: unknown key '{key}'{hint}."


def _close(key: str) -> str | None:
    import difflib

    names = [*option_keys(), *POOL_KEYS]
    found = difflib.get_close_matches(key.replace("_", "-"), names, n=1)
    return found[0] if found else None


_KINDS = {"str": str, "int": int, "bool": bool}


def _check_kind(table: str, key: str, value: Any, known: Mapping, fail: Any) -> None:
    """The TOML type a key takes: a string, an integer, a boolean, or an array of strings
    (repeatable flags; also a comma-separated option such as ``subnet-ids``)."""
    kind = POOL_KEYS.get(key) or known[key][1].kind
    strings = isinstance(value, list) and all(isinstance(v, str) for v in value)
    if kind == "list":
        good = strings
    elif kind == "str":
        good = isinstance(value, str) or (strings and key == "subnet-ids")
    else:
        expected = _KINDS[kind]
        good = isinstance(value, expected) and not (expected is int and isinstance(value, bool))
    if not good:
        what = {
            "str": "a string",
            "int": "an integer",
            "bool": "true or false",
            "list": "an array of strings",
        }[kind]
        raise fail(table, key, f"{key} must be {what}, not {value!r}.")


def _value(value: Any, flag: registry.Flag) -> Any:
    """A file value as the flag would give it (arrays of a comma-separated option joined)."""
    if flag.kind == "list":
        return tuple(value) if isinstance(value, list) else (value,)
    if isinstance(value, list):
        return ",".join(value)
    return value


_HEADER = re.compile(r"^\s*\[\s*([^\[\]]+?)\s*\]\s*(?:#.*)?$")
_KEY = re.compile(r"""^\s*("[^"]*"|'[^']*'|[A-Za-z0-9_-]+)\s*=""")


def _key_lines(text: str, path: Path) -> dict[tuple[str, str], int]:
    """Where each table header and key is: ``(table, "")`` and ``(table, key)`` → line.

    Also the one check TOML's own message words poorly: a pool declared twice.
    """
    lines: dict[tuple[str, str], int] = {}
    table = ""
    for number, line in enumerate(text.splitlines(), start=1):
        header = _HEADER.match(line)
        if header:
            table = ".".join(_unquote(p) for p in _split_dotted(header.group(1)))
            if (table, "") in lines and table.startswith("pools."):
                first = lines[(table, "")]
                pool = table.removeprefix("pools.")
                raise InvalidInputError(
                    f"{path}:{number}: duplicate pool '{pool}' (first declared at line {first})."
                )
            lines.setdefault((table, ""), number)
            continue
        key = _KEY.match(line)
        if key:
            lines.setdefault((table, _unquote(key.group(1))), number)
    return lines


def _split_dotted(name: str) -> Sequence[str]:
    return re.findall(r'"[^"]*"|\'[^\']*\'|[^.\s]+', name)


def _unquote(part: str) -> str:
    part = part.strip()
    return part[1:-1] if len(part) >= 2 and part[0] == part[-1] and part[0] in "\"'" else part
