"""One setting of the active Prefect profile, read and written as Prefect's own provisioners do.

``prefect work-pool create --provision-infra`` sets ``PREFECT_DEFAULT_DOCKER_BUILD_NAMESPACE`` in
the active profile to the registry it made, so ``flow.deploy(image="name")`` builds and pushes
there (``update_current_profile`` in ``prefect/infrastructure/provisioners/*.py``). This module
does the same for ``provision up --set-image-namespace``, with two differences: only that key of
that profile is touched (the file is edited in place, comments and other keys as they were), and
the value it replaced is returned so that ``destroy`` can put it back.

The file is ``PREFECT_PROFILES_PATH``, else ``$PREFECT_HOME/profiles.toml``; the profile is
``PREFECT_PROFILE``, else the file's ``active``, as ``provision.prefect.config`` resolves them.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from provision.errors import InvalidInputError
from provision.prefect.config import _clean, _profiles_path

NAMESPACE_SETTING = "PREFECT_DEFAULT_DOCKER_BUILD_NAMESPACE"


@dataclass(frozen=True)
class ProfileSetting:
    """Where one setting lives, and its value there now (``None``: unset)."""

    path: Path
    profile: str
    key: str
    value: str | None


def read(env: Mapping[str, str], key: str = NAMESPACE_SETTING) -> ProfileSetting:
    """``key`` in the active profile; one line when there is no active profile to write to.

    A missing file or an ``active`` naming no profile is refused rather than created: Prefect
    merges its built-in profiles with the file, and a profile written from scratch here would
    hide the built-in one's settings.
    """
    path = _profiles_path(env)
    doc = _load(path)
    selected = _clean(env.get("PREFECT_PROFILE"))
    name = selected or _clean(doc.get("active"))
    profiles = doc.get("profiles")
    table = profiles.get(name) if name and isinstance(profiles, Mapping) else None
    if not isinstance(table, Mapping):
        which = f"profile '{name}'" if name else "active profile"
        raise InvalidInputError(
            f"No {which} in {path} to set {key} in: run `prefect profile create NAME` and "
            "`prefect profile use NAME` first, or drop --set-image-namespace."
        )
    value = table.get(key)
    return ProfileSetting(path, str(name), key, None if value is None else str(value))


def write(setting: ProfileSetting, value: str | None) -> None:
    """Set ``setting.key`` in its profile to ``value`` (``None``: remove it), nothing else.

    The file is replaced atomically, so a crash never leaves a half-written profiles file.
    """
    import tomlkit

    doc = _load(setting.path)
    table = doc["profiles"][setting.profile]  # type: ignore[index]
    if value is None:
        table.pop(setting.key, None)  # type: ignore[union-attr]
    else:
        table[setting.key] = value  # type: ignore[index]
    text = tomlkit.dumps(doc)
    fd, tmp = tempfile.mkstemp(prefix=".profiles-", dir=setting.path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.chmod(tmp, setting.path.stat().st_mode & 0o777)
        os.replace(tmp, setting.path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _load(path: Path):  # -> tomlkit.TOMLDocument
    import tomlkit
    from tomlkit.exceptions import TOMLKitError

    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InvalidInputError(
            f"No Prefect profiles file at {path}: run `prefect profile create NAME` first, or "
            "drop --set-image-namespace."
        ) from None
    except OSError as exc:
        raise InvalidInputError(f"Cannot read Prefect profiles {path}: {exc.strerror}.") from None
    try:
        return tomlkit.parse(text)
    except TOMLKitError as exc:
        # Only a position, never the offending text (which could be a key).
        line = getattr(exc, "line", "?")
        raise InvalidInputError(f"Cannot parse Prefect profiles {path} (line {line}).") from None
