"""The Modal and Coiled API tokens on this machine, found the way their own clients find them.

Neither ``modal`` nor ``coiled`` is imported (both are heavy, and neither is a dependency): the
rules below are read from their sources and mirrored here, so a token that ``modal`` or
``coiled`` would use is the token this module returns, and a configuration they would reject is
an :class:`~provision.errors.InvalidInputError` here. Sources read (commit in brackets):

* modal-labs/modal-client [69519aef] ``py/modal/config.py``: ``user_config_path``,
  ``_read_user_config``, ``_config_active_profile``, ``_check_config``, ``_profile`` and
  ``Config.get``; ``py/modal/client.py``: ``_Client.from_env``.
* dask/dask [817e5ffc] ``dask/config.py``: ``_get_paths`` (``paths``), ``PATH``,
  ``collect_yaml``, ``_load_config_file``, ``collect_env``, ``interpret_value``, ``collect``,
  ``update``, ``canonical_name``, ``set._assign`` and ``get``.
* coiled (the ``coiled`` package on PyPI, a recent release with ``coiled.workspace``; its
  repository is not public): ``coiled/cli/login.py`` ``login`` calls
  ``coiled/utils.py`` ``handle_credentials(save=True)``, whose ``save_config`` writes
  ``coiled.token`` to ``os.path.join(dask.config.PATH, "coiled.yaml")``; ``login_if_required``
  reads it back with ``dask.config.get("coiled.token")`` and ``handle_credentials`` strips it.

Deliberate difference: when the environment alone gives a complete token, the files are not
read. Both clients parse their files at import and would fail on a malformed one even then; a
token we can use should not be refused for a file we do not need.

Error messages are one line and never contain a token value. Everything here is a pure function
of the ``env`` mapping and the files it points at; ``yaml`` is imported only when a dask config
file is actually parsed.
"""

from __future__ import annotations

import ast
import json
import os
import site
import sys
import tomllib
from base64 import urlsafe_b64decode
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from provision.errors import InvalidInputError

MODAL_TOKEN_ID = "MODAL_TOKEN_ID"
MODAL_TOKEN_SECRET = "MODAL_TOKEN_SECRET"
DASK_COILED_TOKEN = "DASK_COILED__TOKEN"


@dataclass(frozen=True)
class ModalToken:
    """A Modal token pair and where it came from; ``repr`` leaves the secret out."""

    token_id: str
    token_secret: str = field(repr=False)
    source: str


@dataclass(frozen=True)
class CoiledToken:
    """A Coiled API token and where it came from; ``repr`` leaves the token out."""

    token: str = field(repr=False)
    source: str


def _one_line(text: str) -> str:
    # Paths and parser messages can carry newlines; the CLI prints errors on one line.
    return " ".join(text.split())


def _error(message: str, hint: str | None = None) -> InvalidInputError:
    return InvalidInputError(_one_line(message), hint=_one_line(hint) if hint else None)


def _home(env: Mapping[str, str]) -> str:
    # Both clients call os.path.expanduser("~"), i.e. $HOME; the env given here wins over the
    # process's so that a caller (or a test) describing another environment sees its files.
    return env.get("HOME") or os.path.expanduser("~")


# --- Modal ---------------------------------------------------------------------------------


def _modal_config_path(env: Mapping[str, str]) -> str:
    # config.py: `os.environ.get("MODAL_CONFIG_PATH") or os.path.expanduser("~/.modal.toml")`,
    # so an empty MODAL_CONFIG_PATH means the default, and the path is not ~-expanded.
    return env.get("MODAL_CONFIG_PATH") or os.path.join(_home(env), ".modal.toml")


def _read_modal_config(path: str, env: Mapping[str, str]) -> dict[str, dict[str, Any]]:
    # _read_user_config: inside a Modal container (MODAL_IS_REMOTE=1) the file is never read,
    # and a missing file is an empty config, not an error.
    if env.get("MODAL_IS_REMOTE") == "1" or not os.path.exists(path):
        return {}
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except OSError as exc:
        raise _error(f"Cannot read the Modal config file {path}: {exc.strerror or exc}.") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        # Modal parses with the `toml` package, not tomllib; the two disagree only on corners of
        # the TOML spec that a file written by `modal token set` does not reach.
        raise _error(f"The Modal config file {path} is not valid TOML: {exc}.") from None
    not_tables = [key for key, value in data.items() if not isinstance(value, dict)]
    if not_tables:
        # Modal: "TOML file must contain table sections for each profile." Name the key, never
        # its value (it may be a stray token).
        raise _error(
            f"The Modal config file {path} must hold one [table] per profile; "
            f"'{not_tables[0]}' is a plain value."
        )
    return data


def _active_profiles(profiles: Mapping[str, Mapping[str, Any]]) -> list[str]:
    # _config_active_profile tests `values.get("active", False) is True`: only a TOML boolean.
    return [name for name, values in profiles.items() if values.get("active", False) is True]


def _modal_value(
    key: str, var: str, env: Mapping[str, str], section: Mapping[str, Any], where: str
) -> tuple[str | None, str]:
    # Config.get: `if env_var_key in os.environ` -- the variable overrides its own key only,
    # and overrides it even when empty; the other key can still come from the profile.
    if var in env:
        return env[var], var
    value = section.get(key)
    if value is not None and not isinstance(value, str):
        raise _error(f"'{key}' in {where} is a TOML {type(value).__name__}, not a string.")
    return value, where


def modal_token(env: Mapping[str, str]) -> ModalToken | None:
    """The Modal token the ``modal`` client would use in ``env``, or None if there is none.

    Mirrors modal-labs/modal-client ``py/modal/config.py`` (``Config.get``,
    ``_config_active_profile``, ``_check_config``) and ``py/modal/client.py``
    (``_Client.from_env``):

    1. ``MODAL_TOKEN_ID`` and ``MODAL_TOKEN_SECRET`` both non-empty: that pair; no file is read.
    2. Otherwise the config file ``MODAL_CONFIG_PATH`` (if non-empty) else ``$HOME/.modal.toml``
       (skipped when ``MODAL_IS_REMOTE=1``; a missing file is an empty config), in the profile
       ``MODAL_PROFILE`` if non-empty, else the first profile with ``active = true``, else
       ``"default"`` -- Modal has no "the only profile" rule: a lone inactive profile not
       named ``default`` is not used.
    3. Each key separately: a variable that is set (even to "") overrides that key, and the
       other key still comes from the profile.

    Raises ``InvalidInputError`` (one line, no token value) where Modal refuses to start: a
    malformed file; more than one active profile; several profiles, none active and the
    profile ``default``; ``MODAL_PROFILE`` naming no profile in the file (when the token is
    not complete without it). Also, unlike Modal's generic "Token missing", for half a token:
    an id without a secret or a secret without an id.
    """
    env_id, env_secret = env.get(MODAL_TOKEN_ID), env.get(MODAL_TOKEN_SECRET)
    if env_id and env_secret:
        return ModalToken(env_id, env_secret, f"{MODAL_TOKEN_ID} and {MODAL_TOKEN_SECRET}")

    path = _modal_config_path(env)
    profiles = _read_modal_config(path, env)
    active = _active_profiles(profiles)
    profile = env.get("MODAL_PROFILE") or (active[0] if active else "default")
    names = ", ".join(profiles)

    # _check_config, which _Client.from_env runs before it looks at any token.
    if len(active) > 1:
        raise _error(
            f"More than one Modal profile is active in {path} ({', '.join(active)}).",
            "Run `modal profile activate NAME` or keep `active = true` on one profile only.",
        )
    if len(profiles) > 1 and not active and profile == "default":
        raise _error(
            f"No Modal profile is active in {path} (profiles: {names}).",
            "Run `modal profile activate NAME` or set MODAL_PROFILE.",
        )

    where = f"{path} (profile '{profile}')"
    section = profiles.get(profile, {})
    token_id, id_from = _modal_value("token_id", MODAL_TOKEN_ID, env, section, where)
    secret, secret_from = _modal_value("token_secret", MODAL_TOKEN_SECRET, env, section, where)
    if token_id and secret:
        source = id_from if id_from == secret_from else f"{id_from} + {secret_from}"
        return ModalToken(token_id, secret, source)

    # _Client.from_env: an explicit MODAL_PROFILE that is not in the file is named as the
    # problem before the generic "Token missing".
    if env.get("MODAL_PROFILE") and profile not in profiles:
        create = f"run `modal token new --profile {profile}`"
        if profiles:
            found, hint = f"its profiles are: {names}", f"Use one of them, or {create}."
        elif env.get("MODAL_IS_REMOTE") == "1":
            found, hint = "MODAL_IS_REMOTE=1 keeps Modal from reading it", "Unset MODAL_PROFILE."
        elif os.path.exists(path):
            found, hint = "it has no profiles", f"To add one, {create}."
        else:
            found, hint = "that file does not exist", f"To create it, {create}."
        raise _error(
            f"MODAL_PROFILE is '{profile}', which is not a profile in {path}; {found}.", hint
        )
    if not token_id and not secret:
        return None

    if token_id:
        have, have_from, lack, lack_var = "token_id", id_from, "token_secret", MODAL_TOKEN_SECRET
    else:
        have, have_from, lack, lack_var = "token_secret", secret_from, "token_id", MODAL_TOKEN_ID
    if lack_var in env:
        lacking = f"{lack_var} is set but empty"
    else:
        lacking = f"neither {lack_var} nor {where} has it"
    raise _error(
        f"Half a Modal token: {have} comes from {have_from}, but there is no {lack} ({lacking}).",
        f"Set both {MODAL_TOKEN_ID} and {MODAL_TOKEN_SECRET}, or run `modal token new`.",
    )


# --- Coiled (dask config) ------------------------------------------------------------------


def _dask_paths(env: Mapping[str, str]) -> list[str]:
    """dask.config._get_paths, lowest priority first, evaluated for ``env``."""
    paths = [
        env.get("DASK_ROOT_CONFIG", "/etc/dask"),
        # This interpreter's prefixes, as dask imported here would use; a coiled installed in
        # another environment would read that environment's etc/dask instead.
        os.path.join(sys.prefix, "etc", "dask"),
        *[os.path.join(prefix, "etc", "dask") for prefix in site.PREFIXES],
        os.path.join(_home(env), ".config", "dask"),
    ]
    # `if "DASK_CONFIG" in os.environ`: presence, not truth. It is also dask.config.PATH, the
    # directory `coiled login` writes coiled.yaml into, so the file it wrote wins over the rest.
    if "DASK_CONFIG" in env:
        paths.append(env["DASK_CONFIG"])
    # Duplicates keep their last (highest-priority) place, as dask's reversed dict.fromkeys.
    return list(reversed(list(dict.fromkeys(reversed(paths)))))


def _dask_files(paths: list[str]) -> Iterator[str]:
    """dask.config.collect_yaml's file list: a directory gives its *.json, *.yaml and *.yml in
    sorted order (later files win), a file is taken whatever its name, a missing path nothing."""
    for path in paths:
        if not os.path.exists(path):
            continue
        if not os.path.isdir(path):
            yield path
            continue
        try:
            names = os.listdir(path)
        except OSError:
            continue  # dask: "Ignore permission errors"
        yield from sorted(
            os.path.join(path, name)
            for name in names
            if os.path.splitext(name)[1].lower() in (".json", ".yaml", ".yml")
        )


def _yaml_problem(exc: Exception) -> str:
    # str() of a YAML error quotes the offending source lines, which may hold the token: keep
    # only the parser's description and the position.
    problem = getattr(exc, "problem", None) or getattr(exc, "context", None)
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    if problem and mark is not None:
        return f"{problem} at line {mark.line + 1}, column {mark.column + 1}"
    return problem or type(exc).__name__


def _load_dask_file(path: str) -> dict[str, Any] | None:
    """dask.config._load_config_file: None for an unreadable or empty file, an error for a
    malformed one (dask raises at import then, so coiled cannot start)."""
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError:
        return None  # dask: "Ignore permission errors" (any OSError)
    except UnicodeDecodeError:
        raise _error(f"The dask config file {path} is malformed: it is not UTF-8 text.") from None
    import yaml  # Deferred: only a machine that has dask config files pays for the import.

    try:
        config = yaml.safe_load(text)
    except Exception as exc:  # dask turns any parse failure into "malformed"
        raise _error(f"The dask config file {path} is malformed: {_yaml_problem(exc)}.") from None
    if config is not None and not isinstance(config, dict):
        raise _error(
            f"The dask config file {path} is malformed: its top level is a "
            f"{type(config).__name__}, not a mapping."
        )
    return config


def _canonical_name(key: Any, config: Any) -> Any:
    """dask.config.canonical_name: ``a_b`` and ``a-b`` are one key, spelled as first set."""
    try:
        if key in config:
            return key
    except TypeError:
        return key
    if not isinstance(key, str):
        return key
    alt = key.replace("_", "-") if "_" in key else key.replace("-", "_")
    return alt if alt in config else key


def _dask_get(config: Any, keys: tuple[str, ...]) -> Any:
    """dask.config.get without a default: KeyError when the key does not resolve."""
    for key in keys:
        try:
            config = config[_canonical_name(key, config)]
        except (TypeError, IndexError, KeyError):
            raise KeyError(".".join(keys)) from None
    return config


def _dask_update_old(old: dict[Any, Any], new: Mapping[Any, Any]) -> None:
    """dask.config.update(old, new, priority="old"): ``old`` (higher priority) keeps its plain
    values, but a mapping in ``new`` replaces a plain value or None in ``old`` -- dask's rule."""
    for key, value in new.items():
        key = _canonical_name(key, old)
        if isinstance(value, Mapping):
            if key not in old or old[key] is None or not isinstance(old[key], dict):
                old[key] = {}
            _dask_update_old(old[key], value)
        elif key not in old:
            old[key] = value


def _interpret_value(value: str) -> Any:
    """dask.config.interpret_value: a Python literal if it parses as one, else YAML-ish words."""
    try:
        return ast.literal_eval(value)
    except (SyntaxError, ValueError):
        pass
    return {"none": None, "null": None, "false": False, "true": True}.get(value.lower(), value)


def _dask_assign(keys: list[str], value: Any, config: dict[str, Any], name: str) -> None:
    """dask.config.set._assign: a dotted key into the nested config, creating levels."""
    key = _canonical_name(keys[0], config)
    if len(keys) == 1:
        config[key] = value
        return
    nested = config.setdefault(key, {})
    if not isinstance(nested, dict):
        # dask raises a TypeError here at import, so coiled cannot start either.
        raise _error(
            f"{name} nests a key under a value another DASK_* variable set; dask cannot load that."
        )
    _dask_assign(keys[1:], value, nested, name)


def _env_coiled_token(env: Mapping[str, str]) -> tuple[Any, str] | None:
    """(value, variable) if dask.config.collect_env(env) defines ``coiled.token``, else None.

    collect_env starts from DASK_INTERNAL_INHERIT_CONFIG, then maps each ``DASK_A__B_C`` to
    ``a.b_c`` (lower-cased, ``__`` for nesting) with its value read by ``interpret_value``, and
    applies them in that order. Only keys under ``coiled`` can reach ``coiled.token``, so only
    those are interpreted.
    """
    entries: dict[str, tuple[Any, str]] = {}
    if "DASK_INTERNAL_INHERIT_CONFIG" in env:
        try:
            inherited = json.loads(urlsafe_b64decode(env["DASK_INTERNAL_INHERIT_CONFIG"]).decode())
        except ValueError:
            raise _error(
                "DASK_INTERNAL_INHERIT_CONFIG is not base64-encoded JSON; dask cannot load it."
            ) from None
        if not isinstance(inherited, dict):
            raise _error("DASK_INTERNAL_INHERIT_CONFIG is not a JSON object; dask cannot load it.")
        entries = {
            key: (value, "DASK_INTERNAL_INHERIT_CONFIG")
            for key, value in inherited.items()
            if isinstance(key, str)
        }
    for name, raw in env.items():
        if name.startswith("DASK_"):
            key = name[5:].lower().replace("__", ".")
            if key.split(".")[0] == "coiled":
                try:
                    entries[key] = (_interpret_value(raw), name)
                except (TypeError, RecursionError, MemoryError):
                    # literal_eval of e.g. "{[]: 1}"; dask does not catch these either.
                    raise _error(f"{name} is not a value dask can read.") from None

    config: dict[str, Any] = {}
    source = ""
    for key, (value, name) in entries.items():
        keys = key.split(".")
        if keys[0] != "coiled":
            continue
        _dask_assign(keys, value, config, name)
        if keys[1:2] in ([], ["token"]):  # replaced `coiled` whole, or set coiled.token (or in it)
            source = name
    try:
        return _dask_get(config, ("coiled", "token")), source
    except KeyError:
        return None


def _coiled_result(value: Any, source: str) -> CoiledToken | None:
    # login_if_required treats a falsy coiled.token as no token; handle_credentials strips it.
    if value is None:
        return None
    if not isinstance(value, str):
        why = " (dask reads DASK_* values as Python literals)" if source.startswith("DASK_") else ""
        raise _error(
            f"coiled.token from {source} is not a string but of type {type(value).__name__}{why}.",
            "Run `coiled login` again, or quote the token.",
        )
    token = value.strip()
    return CoiledToken(token, source) if token else None


def _resolves_to(config: Mapping[str, Any], value: Any) -> bool:
    # Which file gave the merged value: the highest-priority one holding that same value.
    try:
        return _dask_get(config, ("coiled", "token")) == value
    except KeyError:
        return False


def coiled_token(env: Mapping[str, str]) -> CoiledToken | None:
    """The Coiled token the ``coiled`` client would use in ``env``, or None if there is none.

    Coiled reads ``dask.config.get("coiled.token")`` (``coiled/utils.py``
    ``login_if_required``), and ``coiled login`` stores it in ``$DASK_CONFIG/coiled.yaml``, by
    default ``~/.config/dask/coiled.yaml`` (``save_config``, ``dask.config.PATH``). So the
    precedence is dask's (``dask/config.py`` ``collect``), highest first:

    1. The environment (``collect_env``): ``DASK_INTERNAL_INHERIT_CONFIG`` first, then
       ``DASK_COILED__TOKEN`` (any case after ``DASK_``) or a ``DASK_COILED`` dict literal,
       in the environment's order, the last applied winning. Values are read as Python
       literals (``interpret_value``): ``"'x'"`` is ``x``; ``none``, ``null`` or an empty
       value mean no token and, as in dask, hide the files. When set, no file is read.
    2. The YAML/JSON files of ``paths`` (``_get_paths``, ``collect_yaml``), later winning:
       ``$DASK_CONFIG``, ``$HOME/.config/dask``, ``<prefix>/etc/dask`` for ``site.PREFIXES``
       and ``sys.prefix``, ``$DASK_ROOT_CONFIG`` (default ``/etc/dask``). In a directory, the
       ``*.json``/``*.yaml``/``*.yml`` files in sorted order, the later winning. The prefixes
       are this interpreter's; a coiled installed in another environment reads that one's.
       Files merge key by key (``update(priority="old")``): a higher file without
       ``coiled.token`` does not hide a lower one's, but ``token: null`` does.

    An empty or blank token is None (coiled treats it as missing); the token is stripped as
    ``handle_credentials`` does. Raises ``InvalidInputError`` (one line, naming the file or
    variable, never the token) for a malformed dask config file -- dask then fails at import,
    taking coiled with it -- or a ``coiled.token`` that is not a string.
    """
    from_env = _env_coiled_token(env)
    if from_env is not None:
        return _coiled_result(*from_env)

    configs = [
        (path, config)
        for path in _dask_files(_dask_paths(env))
        if (config := _load_dask_file(path)) is not None
    ]
    merged: dict[str, Any] = {}
    for _, config in reversed(configs):  # dask merges highest priority first, priority="old"
        if "coiled" in config:
            _dask_update_old(merged, {"coiled": config["coiled"]})
    try:
        value = _dask_get(merged, ("coiled", "token"))
    except KeyError:
        return None
    source = next(
        (path for path, config in reversed(configs) if _resolves_to(config, value)), "dask config"
    )
    return _coiled_result(value, source)
