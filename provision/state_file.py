"""A stack's state read straight from a ``file://`` backend, without starting the pulumi CLI.

``pulumi stack export`` on a file backend opens the stack's checkpoint file and prints its
``latest`` deployment: a Go start-up and a backend open (~0.15 s) for one file read. This
module reads the same file for the layout it knows, and says :data:`UNKNOWN` for anything else
so that the caller asks the CLI, which stays the authority:

- ``.pulumi/meta.yaml`` says ``version: 1`` (the project-scoped layout every pulumi since 3.61
  writes to a new backend): the stack is ``.pulumi/stacks/<project>/<stack>.json``, and no
  such file means no such stack (the CLI decides the same way);
- a compressed checkpoint (``.json.gz``, ``.json.zst``: the CLI then picks the newest of the
  candidates), the legacy layout (no ``meta.yaml``, or ``version: 0``), a backend URL with
  options, a file that does not parse or a checkpoint version it does not know: unknown.

The file is written by the engine through a temporary file and a rename, so a read sees a
whole checkpoint; a killed run's orphaned engine is waited for by the caller, as before a CLI
read. Nothing is decrypted: secrets stay ciphertext, exactly as ``stack export`` prints them.

Each blob of a file backend has a metadata sidecar, ``<file>.attrs``, that the CLI's blob
library writes in place (truncate, then encode) just before renaming the blob into place, and
decodes before every read of the blob. A writer killed between the two leaves it empty, and
every later CLI command on the stack fails with ``failed to load checkpoint: EOF``.
:func:`repair_torn_sidecars` removes such sidecars once no run holds the stack: a missing
sidecar reads as the defaults, which is all the CLI needs.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Final

UNKNOWN: Final = object()
"""The layout or the file is not one this module reads: ask the CLI."""

_CHECKPOINT_VERSIONS = (3, 4)
"""``apitype`` checkpoint versions whose ``latest`` is a deployment ``stack export`` prints."""
_COMPRESSED = (".gz", ".zst")


def read_checkpoint(backend_url: str, project: str, stack: str) -> dict[str, Any] | object | None:
    """``{"version": N, "deployment": {...}}`` as ``pulumi stack export`` prints it, ``None``
    when the backend has no such stack, or :data:`UNKNOWN`."""
    root = _backend_root(backend_url)
    if root is None:
        return UNKNOWN
    if not (root / ".pulumi").exists():
        return None  # nothing was ever written there: no stack in any layout
    if _layout_version(root / ".pulumi" / "meta.yaml") != 1:
        return UNKNOWN
    path = root / ".pulumi" / "stacks" / project / f"{stack}.json"
    if any(path.with_name(path.name + ext).exists() for ext in _COMPRESSED):
        return UNKNOWN
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except OSError:
        return UNKNOWN  # unreadable: the CLI's error is the one to show
    try:
        checkpoint = json.loads(text)
    except ValueError:
        return UNKNOWN
    if not isinstance(checkpoint, dict) or checkpoint.get("version") not in _CHECKPOINT_VERSIONS:
        return UNKNOWN
    body = checkpoint.get("checkpoint")
    if not isinstance(body, dict):
        return UNKNOWN
    return {"version": 3, "deployment": body.get("latest") or {}}


def repair_torn_sidecars(backend_url: str, project: str, stack: str) -> list[Path]:
    """Remove the ``.attrs`` sidecars of a stack's checkpoint and history files that do not
    parse (a killed writer's), returning them. Only for a file backend in the layout
    :func:`read_checkpoint` reads; call it only when no run holds the stack."""
    root = _backend_root(backend_url)
    if root is None or _layout_version(root / ".pulumi" / "meta.yaml") != 1:
        return []
    candidates = [
        *(root / ".pulumi" / "stacks" / project).glob(f"{stack}.json*.attrs"),
        *(root / ".pulumi" / "history" / project / stack).glob("*.attrs"),
    ]
    torn = [path for path in sorted(candidates) if not _whole_sidecar(path)]
    for path in torn:
        path.unlink(missing_ok=True)
    return torn


def _whole_sidecar(path: Path) -> bool:
    # The blob library always writes one JSON object; anything else is a torn write.
    try:
        return isinstance(json.loads(path.read_text(encoding="utf-8")), dict)
    except (OSError, ValueError):
        return False


def _backend_root(url: str) -> Path | None:
    if not url.startswith("file://") or "?" in url:
        return None
    return Path(url.removeprefix("file://")).expanduser()


def _layout_version(meta: Path) -> int | None:
    # meta.yaml is one line the CLI writes, ``version: 1``; anything else is not ours to read.
    try:
        lines = meta.read_text(encoding="utf-8").splitlines()
    except OSError:
        return None
    for line in lines:
        key, _, value = line.partition(":")
        if key.strip() == "version":
            try:
                return int(value.strip())
            except ValueError:
                return None
    return None
