"""Find the pulumi CLI, or install it the normal way (get.pulumi.com) under PROVISION_HOME."""

from __future__ import annotations

import contextlib
import shutil
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
        try:
            return PulumiCommand(root=str(binary.parent.parent))
        except Exception as exc:  # a broken or too-old binary: say which one
            raise PulumiCliMissingError(
                f"The pulumi CLI at {binary} does not work: {exc}", hint=INSTALL_HINT
            ) from exc
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
