"""Azure naming rules and regions, as pure data and functions.

Default names are derived from the pool name and are valid whatever the pool name is, and
stable (the same pool always maps to the same name, so a rerun never renames anything). When a
name would be too long, the base is truncated and a 4-hex-char hash of the full pool name is
added, so two long pool names sharing a prefix still get different names.

Nothing here imports pulumi or a cloud SDK: the CLI validates options with these before any
engine call.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from functools import partial
from typing import Any

from provision.targets import naming
from provision.targets.base import text_value

# Physical regions that accept resources (`az account list-locations`, regionType Physical).
# Some are restricted to customers with a presence in the country (e.g. germanynorth,
# norwaywest, switzerlandwest, uaecentral, southafricawest, australiacentral2, francesouth,
# brazilsoutheast, jioindiacentral, jioindiawest, westindia); the cloud answers those. Container
# Instances is not offered in every region either: this list catches typos, Azure has the
# final word.
AZURE_LOCATIONS: tuple[str, ...] = (
    "australiacentral",
    "australiacentral2",
    "australiaeast",
    "australiasoutheast",
    "belgiumcentral",
    "brazilsouth",
    "brazilsoutheast",
    "canadacentral",
    "canadaeast",
    "centralindia",
    "centralus",
    "chilecentral",
    "eastasia",
    "eastus",
    "eastus2",
    "francecentral",
    "francesouth",
    "germanynorth",
    "germanywestcentral",
    "indonesiacentral",
    "israelcentral",
    "italynorth",
    "japaneast",
    "japanwest",
    "jioindiacentral",
    "jioindiawest",
    "koreacentral",
    "koreasouth",
    "malaysiawest",
    "mexicocentral",
    "newzealandnorth",
    "northcentralus",
    "northeurope",
    "norwayeast",
    "norwaywest",
    "polandcentral",
    "qatarcentral",
    "southafricanorth",
    "southafricawest",
    "southcentralus",
    "southeastasia",
    "southindia",
    "spaincentral",
    "swedencentral",
    "switzerlandnorth",
    "switzerlandwest",
    "uaecentral",
    "uaenorth",
    "uksouth",
    "ukwest",
    "westcentralus",
    "westeurope",
    "westindia",
    "westus",
    "westus2",
    "westus3",
)

REGISTRY_SKUS: tuple[str, ...] = ("Basic", "Standard", "Premium")

SECRET_DAYS_MIN = 1
SECRET_DAYS_MAX = 730
"""Entra ID's portal caps client secrets at 24 months; longer ones are a tenant-policy risk."""
DEFAULT_SECRET_DAYS = 365

# Subscription and tenant ids are GUIDs.
GUID_RE = re.compile(
    r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
)
# Resource groups: 1-90 chars, Unicode letters/digits, '_', '-', '.', '(', ')'; no trailing '.'
# (learn.microsoft.com/azure/azure-resource-manager/management/resource-name-rules).
RESOURCE_GROUP_RE = re.compile(r"^[\w().-]{0,89}[\w()-]$")
RESOURCE_GROUP_MAX = 90
# Container registries: 5-50 alphanumerics; globally unique, case-insensitive.
REGISTRY_NAME_RE = re.compile(r"^[a-zA-Z0-9]{5,50}$")
REGISTRY_NAME_MAX = 50
REGISTRY_SUFFIX_RE = re.compile(r"^[0-9a-f]{8}$")
# User-assigned identities: 3-128 chars, alphanumerics, '-' and '_', alphanumeric first.
IDENTITY_NAME_RE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_-]{2,127}$")
IDENTITY_NAME_MAX = 128
# Container groups (and the containers in them): 1-63 lowercase letters, digits and '-', not at
# either end, never doubled (learn.microsoft.com/azure/azure-resource-manager/management/
# resource-name-rules, Microsoft.ContainerInstance).
CONTAINER_GROUP_NAME_RE = re.compile(r"^(?!.*--)[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
CONTAINER_GROUP_NAME_MAX = 63
# Log Analytics workspaces: 4-63 letters, digits and '-', alphanumeric at both ends (same
# page, Microsoft.OperationalInsights).
WORKSPACE_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]{2,61}[A-Za-z0-9]$")
WORKSPACE_NAME_MAX = 63

_HASH_LEN = 4


def pool_hash(pool: str) -> str:
    """4 lowercase hex chars that identify ``pool`` (stable across runs and machines)."""
    return naming.pool_hash(pool, _HASH_LEN)


def base_name(pool: str) -> str:
    """The pool name as an ASCII stem of ``[a-z0-9-]``, starting with a letter or digit.

    Everything else becomes ``-``; runs of ``-`` collapse and edge hyphens go. An empty stem
    becomes ``pool``.
    """
    stem = re.sub(r"[^a-z0-9-]", "-", pool.lower())
    stem = re.sub(r"-{2,}", "-", stem).strip("-")
    return stem or "pool"


def _bounded(pool: str, suffix: str, limit: int) -> str:
    """``{base}-{suffix}``, or ``{truncated base}-{hash}-{suffix}`` when that exceeds ``limit``."""
    return naming.bounded(base_name(pool), pool, suffix, limit, hash_len=_HASH_LEN)


def resource_group(pool: str) -> str:
    """Default resource group name: ``<pool>-rg``."""
    return _bounded(pool, "rg", RESOURCE_GROUP_MAX)


def identity_name(pool: str) -> str:
    """Name of the user-assigned identity the pool's container groups run as."""
    return _bounded(pool, "identity", IDENTITY_NAME_MAX)


def worker_identity_name(pool: str) -> str:
    """Name of the user-assigned identity the pool's worker runs as (``--with-worker``).

    Not the jobs' identity (:func:`identity_name`): the worker's may create container groups in
    the resource group, the flow runs' code may not.
    """
    return _bounded(pool, "worker", IDENTITY_NAME_MAX)


def worker_group_name(pool: str, index: int) -> str:
    """Name of the container group running the pool's worker number ``index`` (from 0)."""
    return _bounded(pool, f"worker-{index}", CONTAINER_GROUP_NAME_MAX)


def worker_group_names(pool: str, count: int) -> list[str]:
    """The container groups of ``count`` workers."""
    return [worker_group_name(pool, i) for i in range(count)]


def log_workspace_name(pool: str) -> str:
    """Name of the Log Analytics workspace the pool's worker logs go to."""
    return _bounded(pool, "logs", WORKSPACE_NAME_MAX)


def app_display_name(pool: str) -> str:
    """Display name of the pool's Entra ID app registration (find it with ``az ad app list``)."""
    return f"provision-aci-{pool}"


def registry_name(pool: str, suffix: str) -> str:
    """Default registry name: the pool's alphanumerics, then the stack's random suffix.

    ``suffix`` (8 hex chars) is chosen once per stack and kept: registry names are global
    across Azure, so a name from the pool alone would collide with anyone's pool of that name.
    """
    if not REGISTRY_SUFFIX_RE.match(suffix):
        raise ValueError(f"registry suffix must be 8 lowercase hex chars, not {suffix!r}")
    stem = re.sub(r"[^a-z0-9]", "", pool.lower()) or "pool"
    return stem[: REGISTRY_NAME_MAX - len(suffix)] + suffix


def login_server(registry: str) -> str:
    """The Docker host of a registry (Azure lowercases it)."""
    return f"{registry.lower()}.azurecr.io"


def normalize_location(location: str) -> str:
    """``West Europe`` / ``WestEurope`` / ``westeurope`` → ``westeurope``."""
    return re.sub(r"\s+", "", location).lower()


def identity_id(subscription: str, resource_group_name: str, identity: str) -> str:
    """The ARM id Azure gives a user-assigned identity."""
    return (
        f"/subscriptions/{subscription}/resourceGroups/{resource_group_name}/providers/"
        f"Microsoft.ManagedIdentity/userAssignedIdentities/{identity}"
    )


# Where each ARM resource of the stack lives, by Pulumi type token: (ARM type, name input).
_ARM_CHILDREN = {
    "azure-native:containerregistry:Registry": (
        "Microsoft.ContainerRegistry/registries",
        "registryName",
    ),
    "azure-native:managedidentity:UserAssignedIdentity": (
        "Microsoft.ManagedIdentity/userAssignedIdentities",
        "resourceName",
    ),
    "azure-native:containerinstance:ContainerGroup": (
        "Microsoft.ContainerInstance/containerGroups",
        "containerGroupName",
    ),
    "azure-native:operationalinsights:Workspace": (
        "Microsoft.OperationalInsights/workspaces",
        "workspaceName",
    ),
}
DIAGNOSTIC_SETTING = "azure-native:monitor:DiagnosticSetting"
_SCOPE_SUBSCRIPTION_RE = re.compile(r"^/subscriptions/(?P<sub>[^/]+)", re.IGNORECASE)


def arm_id(subscription: str, type_token: str, inputs: Mapping[str, Any]) -> str | None:
    """The ARM id a create of ``type_token`` with ``inputs`` answers with, or ``None``.

    Every ARM resource of the stack has a name fixed before its create (names from the pool,
    GUIDs from uuid5), so its id is known even when the create's answer was lost. Inputs that
    are not plain strings (secrets, unknowns) give ``None``.
    """

    text = partial(text_value, inputs)
    group = text("resourceGroupName")
    if type_token == "azure-native:resources:ResourceGroup":
        return group and f"/subscriptions/{subscription}/resourceGroups/{group}"
    if type_token in _ARM_CHILDREN:
        arm_type, name_key = _ARM_CHILDREN[type_token]
        name = text(name_key)
        if not (group and name):
            return None
        return f"/subscriptions/{subscription}/resourceGroups/{group}/providers/{arm_type}/{name}"
    if type_token == DIAGNOSTIC_SETTING:
        # An extension resource: it lives under the resource whose logs it routes.
        target, name = text("resourceUri"), text("name")
        settings = "Microsoft.Insights/diagnosticSettings"
        return target and name and f"{target.rstrip('/')}/providers/{settings}/{name}"
    scope = text("scope")
    if not scope:
        return None
    if type_token == "azure-native:authorization:RoleAssignment":
        name = text("roleAssignmentName")
        roles = "Microsoft.Authorization/roleAssignments"
        return name and f"{scope.rstrip('/')}/providers/{roles}/{name}"
    if type_token == "azure-native:authorization:RoleDefinition":
        # ARM answers with the subscription-level id whatever scope the PUT went to.
        guid, match = text("roleDefinitionId"), _SCOPE_SUBSCRIPTION_RE.match(scope)
        if not (guid and match):
            return None
        return (
            f"/subscriptions/{match['sub']}/providers/Microsoft.Authorization/"
            f"roleDefinitions/{guid}"
        )
    return None
