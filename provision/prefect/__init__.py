"""The Prefect side: which API to use, a small REST client, the block/work-pool writer, and the
block and work pool as resources of a pool's stack (``provision.prefect.resources``).

Talks to Prefect over HTTP only; ``prefect`` itself is never imported. The names below load on
first use, so that importing a submodule (the resources' type tokens, say) does not import
httpx.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from provision.prefect.client import PrefectClient, PrefectHttpError
    from provision.prefect.config import PrefectApi, resolve_api
    from provision.prefect.writer import PrefectWriter

_WHERE = {
    "PrefectClient": "client",
    "PrefectHttpError": "client",
    "PrefectApi": "config",
    "resolve_api": "config",
    "PrefectWriter": "writer",
}

__all__ = [
    "PrefectApi",
    "PrefectClient",
    "PrefectHttpError",
    "PrefectWriter",
    "resolve_api",
]


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_WHERE[name]}"), name)
