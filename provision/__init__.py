"""provision: the cloud side of Prefect work pools as Pulumi stacks, registered in Prefect.

The Python API (``provision.preview``, ``provision.up``, ``provision.destroy``, their typed
requests and results) is in :mod:`provision.api`; its names are loaded on first use, so that
importing the package (``provision --help``) stays fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_API = {
    "preview": "provision.api",
    "up": "provision.api",
    "destroy": "provision.api",
    "PlanSet": "provision.api",
    "PoolPlan": "provision.api",
    "ApplySet": "provision.api",
    "PoolApplied": "provision.api",
    "PoolRequest": "provision.service",
    "Cancelled": "provision.service",
    "load_pools_file": "provision.pools_file",
}

__all__ = [  # noqa: RUF022 (grouped as the API reads)
    "__version__",
    "preview",
    "up",
    "destroy",
    "PlanSet",
    "PoolPlan",
    "ApplySet",
    "PoolApplied",
    "PoolRequest",
    "Cancelled",
    "load_pools_file",
]

if TYPE_CHECKING:
    from provision.api import ApplySet, PlanSet, PoolApplied, PoolPlan, destroy, preview, up
    from provision.pools_file import load as load_pools_file
    from provision.service import Cancelled, PoolRequest


def __getattr__(name: str) -> Any:
    import importlib

    module = _API.get(name)
    if module is None:
        raise AttributeError(f"module 'provision' has no attribute {name!r}")
    attr = "load" if name == "load_pools_file" else name
    return getattr(importlib.import_module(module), attr)
