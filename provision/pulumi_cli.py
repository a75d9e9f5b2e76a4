"""Find the pulumi CLI, or install it the normal way (get.pulumi.com) under PROVISION_HOME.

The Automation API's ``PulumiCommand`` runs ``pulumi version`` every time it is made: one more
CLI process per command, for an answer that only changes with the binary. The version is asked
once per binary (its path, size and modification time) and remembered in the cache directory.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import TYPE_CHECKING

from provision.errors import PulumiCliMissingError
from provision.settings import Settings

if TYPE_CHECKING:
    from pulumi.automation import PulumiCommand

INSTALL_HINT = (
    "Install it with `curl -fsSL https://get.pulumi.com | sh` (or `brew install pulumi`), "
    "or point PROVISION_PULUMI_ROOT at a directory containing bin/pulumi."
)


def find_pulumi(settings: Settings) -> Path | None:
    """The pulumi binary the tool would use, without installing anything.

    An explicit ``PROVISION_PULUMI_ROOT`` is the only candidate: silently using another CLI
    than the one configured would hide a broken setting.
    """
    if settings.pulumi_root:
        binary = settings.pulumi_root / "bin" / "pulumi"
        return binary if binary.is_file() else None
    candidates = []
    on_path = shutil.which("pulumi")
    if on_path:
        candidates.append(Path(on_path))
    candidates.append(settings.home / "pulumi" / "bin" / "pulumi")
    return next((c for c in candidates if c.is_file()), None)


def pulumi_command(
    settings: Settings,
    on_install: Callable[[], AbstractContextManager[object]] | None = None,
) -> PulumiCommand:
    """A ``PulumiCommand`` for the found CLI; installs it under PROVISION_HOME if absent.

    ``on_install`` returns a context manager held while the download runs (a spinner).
    """
    from pulumi.automation import PulumiCommand

    binary = find_pulumi(settings)
    if binary is not None:
        known = _known_command(binary, settings.cache_dir)
        if known is not None:
            return known
        try:
            command = PulumiCommand(root=str(binary.parent.parent))
        except Exception as exc:  # a broken or too-old binary: say which one
            raise PulumiCliMissingError(
                f"The pulumi CLI at {binary} does not work: {exc}", hint=INSTALL_HINT
            ) from exc
        _remember(binary, settings.cache_dir, command)
        return command
    if settings.pulumi_root:
        raise PulumiCliMissingError(
            f"PROVISION_PULUMI_ROOT is set but {settings.pulumi_root}/bin/pulumi does not exist.",
            hint=INSTALL_HINT,
        )
    root = settings.home / "pulumi"
    try:
        with on_install() if on_install else contextlib.nullcontext():
            return PulumiCommand.install(root=str(root))
    except Exception as exc:  # offline, proxy, disk: all end the same way for the user
        raise PulumiCliMissingError(
            f"The pulumi CLI is not installed and installing it failed ({type(exc).__name__}: "
            f"{exc}).",
            hint=INSTALL_HINT,
        ) from exc


_VERSIONS = "pulumi-versions.json"


def checked_binary(settings: Settings) -> Path | None:
    """The CLI ``pulumi_command`` would return, if its version was checked before: found
    without running it or loading the SDK (``None``: ask ``pulumi_command``)."""
    binary = find_pulumi(settings)
    if binary is None or _known_version(binary, settings.cache_dir) is None:
        return None
    return binary


def _identity(binary: Path) -> tuple[str, list[int]] | None:
    """The binary's resolved path, and its size and modification time: a new install (or a
    rebuild) at the same path is another binary."""
    try:
        real = binary.resolve()
        stat = real.stat()
    except OSError:
        return None
    return str(real), [stat.st_size, stat.st_mtime_ns]


def _known_version(binary: Path, cache_dir: Path | None) -> str | None:
    """The version remembered for ``binary`` (this very file: path, size, mtime), if any."""
    identity = _identity(binary)
    if cache_dir is None or identity is None:
        return None
    try:
        entry = json.loads((cache_dir / _VERSIONS).read_text()).get(identity[0]) or {}
    except (OSError, ValueError, AttributeError):
        return None
    if entry.get("stat") != identity[1] or not isinstance(entry.get("version"), str):
        return None
    return entry["version"]


def _known_command(binary: Path, cache_dir: Path | None) -> PulumiCommand | None:
    """A ``PulumiCommand`` for ``binary`` without running it, if its version was checked before."""
    known = _known_version(binary, cache_dir)
    if known is None:
        return None
    from pulumi.automation import PulumiCommand
    from semver import VersionInfo

    try:
        version = VersionInfo.parse(known)
    except ValueError:
        return None
    # PulumiCommand's constructor would run `pulumi version` again: set what it sets instead
    # (the binary it runs, and the version the Automation API reads features from).
    command = PulumiCommand.__new__(PulumiCommand)
    command.command = str(binary)
    command.version = version
    return command


def _remember(binary: Path, cache_dir: Path | None, command: PulumiCommand) -> None:
    """Remember the version ``command`` checked, for the next command. A cache that cannot be
    written only means asking again."""
    identity = _identity(binary)
    if cache_dir is None or identity is None or command.version is None:
        return
    path = cache_dir / _VERSIONS
    with contextlib.suppress(OSError, ValueError):
        cache_dir.mkdir(parents=True, exist_ok=True)
        try:
            known = json.loads(path.read_text())
        except (OSError, ValueError):
            known = {}
        known = known if isinstance(known, dict) else {}
        known[identity[0]] = {"stat": identity[1], "version": str(command.version)}
        # Written whole and renamed: two commands starting at once never see half a file.
        fd, tmp = tempfile.mkstemp(dir=cache_dir, prefix=".pulumi-versions-")
        with os.fdopen(fd, "w") as fh:
            json.dump(known, fh, indent=1, sort_keys=True)
        os.replace(tmp, path)
