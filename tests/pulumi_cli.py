"""Where the tests find the pulumi CLI built by scripts/build-pulumi-cli."""

from __future__ import annotations

import os
from pathlib import Path

DEFAULT_ROOT = Path.home() / ".cache" / "provision" / "pulumi-v3.259.0"


def pulumi_root() -> Path:
    """The directory holding ``bin/pulumi``; fails (never skips) when the CLI is missing."""
    root = Path(os.environ.get("PROVISION_PULUMI_ROOT") or DEFAULT_ROOT)
    if not (root / "bin" / "pulumi").is_file():
        raise RuntimeError(
            f"No pulumi CLI at {root}/bin/pulumi: run `bash scripts/build-pulumi-cli` "
            "(scripts/test does it for you)."
        )
    return root
