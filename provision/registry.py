"""The explicit mapping from Prefect work-pool type to the target that provisions it.

Kept as plain data on purpose: one line per pool type, one lazily-imported target per cloud.
"""

from __future__ import annotations

import importlib
from functools import cache

from provision.errors import InvalidInputError
from provision.targets.base import PoolType, Target

POOL_TYPES: dict[str, PoolType] = {
    p.name: p
    for p in (
        PoolType("cloud-run:push", "gcp", "cloud-run", True, "Cloud Run jobs (v1 API), push"),
        PoolType("cloud-run-v2:push", "gcp", "cloud-run-v2", True, "Google Cloud Run jobs, push"),
        PoolType("cloud-run", "gcp", "cloud-run", False, "Cloud Run jobs (v1 API), worker"),
        PoolType("cloud-run-v2", "gcp", "cloud-run-v2", False, "Google Cloud Run jobs, worker"),
        PoolType("vertex-ai", "gcp", "vertex-ai", False, "Google Vertex AI custom jobs, worker"),
        PoolType("ecs:push", "aws", "ecs", True, "AWS ECS tasks on Fargate, push"),
        PoolType("ecs", "aws", "ecs", False, "AWS ECS tasks on Fargate, worker"),
        PoolType(
            "azure-container-instance:push",
            "azure",
            "azure-container-instance",
            True,
            "Azure Container Instances, push",
        ),
        PoolType(
            "azure-container-instance",
            "azure",
            "azure-container-instance",
            False,
            "Azure Container Instances, worker",
        ),
    )
}

# target key -> "module:Class"; imported only when a pool of that cloud is used.
TARGETS: dict[str, str] = {
    "gcp": "provision.targets.gcp:GcpTarget",
    "aws": "provision.targets.aws:AwsTarget",
    "azure": "provision.targets.azure:AzureTarget",
}


def pool_type(name: str) -> PoolType:
    """Look up a pool type, or fail with the list of supported ones."""
    try:
        return POOL_TYPES[name]
    except KeyError:
        known = ", ".join(POOL_TYPES)
        raise InvalidInputError(f"Unknown work pool type '{name}'. Supported: {known}.") from None


@cache
def target(key: str) -> Target:
    """The target instance for a registry key."""
    module_name, _, cls_name = TARGETS[key].partition(":")
    return getattr(importlib.import_module(module_name), cls_name)()
