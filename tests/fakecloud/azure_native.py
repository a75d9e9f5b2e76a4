"""Fake ``azure-native`` provider plugin (pulumi-azure-native 3.29.0): the ARM side of provision.

Run by ``tests/fakecloud/bin/pulumi-resource-azure-native`` as
``python -m tests.fakecloud.azure_native``.

pulumi-azure-native is not a bridged provider, and the fake follows it where the generic
framework's defaults (modelled on bridged pulumi-gcp) differ:

* **Check** adds no ``__defaults``. It fills ``azureApiVersion``, a missing ``location`` (old
  inputs, then ``azure-native:location``, then the resource group's location) and a missing
  name (autonaming: ``<name><8 hex>``, or a GUID for role definitions and assignments, which
  also sets ``__createBeforeDelete``). Failures read as the provider's: ``missing required
  property 'location'``, ``'registryName' does not match expression '^[a-zA-Z0-9]*$'``.
* **Diff** compares old *inputs* with new inputs (pulumi-azure-native v3 gets old inputs
  from the engine; the Python provider SDK does not pass them on, so the fake keeps them in
  the state under a secret ``__inputs``, as azure-native v2 did). Locations compare
  normalized (``West Europe`` = ``westeurope``). Path parameters (names, resource group,
  scope) and ``location`` force a replacement, which is **delete-before-replace** unless the
  name was auto-generated, as in the provider.
* **Create** first GETs the resource: an existing one fails with ``cannot create already
  existing resource '<id>'`` (the provider's CanCreate), even if this stack made it in a run
  that was killed. ARM errors read ``Status=<code> Code="<code>" Message="<message>"``.
* **Read** projects the cloud's outputs back onto the old inputs (only changed values move).

ARM rules emulated: resource ids and case-insensitive lookups; registry names 5-50
alphanumerics and globally unique (across subscriptions and stacks sharing the state dir:
``AlreadyInUse``); custom role definitions named by a GUID, their ``roleName`` unique in the
tenant, their actions and assignable scopes checked; role assignments named by a GUID, unique
in the tenant (reusing a name for another grant: ``RoleAssignmentUpdateNotPermitted``; the
same grant under another name: ``RoleAssignmentExists``), naming an existing role visible at
the scope and an existing principal of the given ``principalType``; deleting a resource group
deletes everything in it (and the role assignments on it); a role definition with
assignments cannot be deleted.

Env variables (see README.md for the generic ones):

* ``FAKECLOUD_AZURE_PROPAGATION_MS``: a role assignment naming a principal created less than
  this long ago fails with ARM's ``PrincipalNotFound`` unless its ``principalType`` is the
  principal's type (the SDK defaults it to ``User``, so a service principal needs
  ``ServicePrincipal``);
* ``FAKECLOUD_AZURE_ROLE_PROPAGATION_MS``: the same for assigning a custom role created less
  than this long ago (``RoleDefinitionDoesNotExist``);
* ``FAKECLOUD_AZURE_NO_CREDENTIALS=1``: Configure fails as the provider does without
  ``az login`` or ``ARM_*`` credentials;
* ``ARM_SUBSCRIPTION_ID`` / ``azure-native:subscriptionId``, ``ARM_TENANT_ID``,
  ``ARM_CLIENT_ID`` + ``ARM_CLIENT_SECRET``, ``azure-native:location``: read like the provider.
"""

from __future__ import annotations

import copy
import hashlib
import re
import time
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from pulumi.provider.experimental.property_value import PropertyValue
from pulumi.provider.experimental.provider import (
    CheckFailure,
    CheckRequest,
    CheckResponse,
    ConfigureRequest,
    ConfigureResponse,
    CreateRequest,
    CreateResponse,
    DiffRequest,
    DiffResponse,
    ReadRequest,
    ReadResponse,
    UpdateRequest,
    UpdateResponse,
)

from tests.fakecloud import azuread
from tests.fakecloud.azuread import caller, find_principal, is_guid, new_guid, tenant_id, truthy
from tests.fakecloud.provider import (
    UNKNOWN,
    Cloud,
    CloudError,
    Context,
    FakeProvider,
    ResourceType,
    from_plain,
    is_unknown,
    names,
    own_type,
    secret_keys,
    to_plain,
    to_plain_map,
)

NAME = "azure-native"
VERSION = "3.29.0"  # pulumi_azure_native/pulumi-plugin.json

RESOURCE_GROUP = "azure-native:resources:ResourceGroup"
REGISTRY = "azure-native:containerregistry:Registry"
IDENTITY = "azure-native:managedidentity:UserAssignedIdentity"
ROLE_DEFINITION = "azure-native:authorization:RoleDefinition"
ROLE_ASSIGNMENT = "azure-native:authorization:RoleAssignment"
CONTAINER_GROUP = "azure-native:containerinstance:ContainerGroup"
WORKSPACE = "azure-native:operationalinsights:Workspace"
DIAGNOSTIC_SETTING = "azure-native:monitor:DiagnosticSetting"
GET_CLIENT_CONFIG = "azure-native:authorization:getClientConfig"

PROPAGATION_ENV = "FAKECLOUD_AZURE_PROPAGATION_MS"
ROLE_PROPAGATION_ENV = "FAKECLOUD_AZURE_ROLE_PROPAGATION_MS"
NO_CREDENTIALS_ENV = azuread.NO_CREDENTIALS_ENV

DEFAULT_SUBSCRIPTION_ID = str(uuid.uuid5(uuid.UUID(int=0x5EED), "fakecloud subscription"))
"""The default subscription of the fake ``az login`` session (no subscriptionId configured)."""
INPUTS_KEY = "__inputs"
CREATE_BEFORE_DELETE = "__createBeforeDelete"

# pulumi-azure-native's Configure on a machine without az login or ARM_* credentials: the
# Azure CLI credential runs `az account show`, whose stderr the provider returns verbatim.
NO_CREDENTIALS_TEXT = "ERROR: Please run 'az login' to setup account."

# Built-in roles: the same GUIDs in every tenant, assignable at any scope.
BUILTIN_ROLES: dict[str, str] = {
    "7f951dda-4ed3-4680-a7ca-43fe172d538d": "AcrPull",
    "8311e382-0749-4cb8-b61a-304f252e45ec": "AcrPush",
    "b24988ac-6180-42a0-ab88-20f7382dd24c": "Contributor",
    "8e3af657-a8ff-443c-a75c-2fe8c4bcb635": "Owner",
    "acdd72a7-3385-48ef-bd42-f606fba81ae7": "Reader",
    "18d7d88d-d35e-4fb5-a5c3-7773c20a72d9": "User Access Administrator",
    "f1a07417-d97a-45cb-824c-7a7467783830": "Managed Identity Operator",
}

# Physical regions (`az account list-locations --query "[?metadata.regionType=='Physical']"`).
LOCATIONS: tuple[str, ...] = (
    "australiacentral", "australiacentral2", "australiaeast", "australiasoutheast",
    "austriaeast", "belgiumcentral", "brazilsouth", "brazilsoutheast", "canadacentral",
    "canadaeast", "centralindia", "centralus", "chilecentral", "denmarkeast", "eastasia",
    "eastus", "eastus2", "francecentral", "francesouth", "germanynorth", "germanywestcentral",
    "indonesiacentral", "israelcentral", "italynorth", "japaneast", "japanwest",
    "jioindiacentral", "jioindiawest", "koreacentral", "koreasouth", "malaysiawest",
    "mexicocentral", "newzealandnorth", "northcentralus", "northeurope", "norwayeast",
    "norwaywest", "polandcentral", "qatarcentral", "southafricanorth", "southafricawest",
    "southcentralus", "southeastasia", "southindia", "spaincentral", "swedencentral",
    "switzerlandnorth", "switzerlandwest", "uaecentral", "uaenorth", "uksouth", "ukwest",
    "westcentralus", "westeurope", "westindia", "westus", "westus2", "westus3",
)  # fmt: skip

# Resource provider namespaces whose actions a custom role may name (those provision uses,
# and common ones); anything else is InvalidActionOrNotAction, as ARM answers.
KNOWN_NAMESPACES = frozenset(
    n.lower()
    for n in names(
        "Microsoft.Authorization Microsoft.Resources Microsoft.ContainerInstance "
        "Microsoft.ContainerRegistry Microsoft.ManagedIdentity Microsoft.Network "
        "Microsoft.Storage Microsoft.Compute Microsoft.Insights Microsoft.KeyVault "
        "Microsoft.OperationalInsights Microsoft.Web Microsoft.App Microsoft.Support"
    )
)

_VERBS = {"create": "creating", "update": "updating", "delete": "deleting", "read": "reading"}
_RG_PATTERN = r"^[-\w\._\(\)]+$"  # the spec's resourceGroupName pattern (Go: \w is ASCII)
_REGISTRY_PATTERN = "^[a-zA-Z0-9]*$"
_IDENTITY_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_-]{2,127}$")
_ACTION = re.compile(r"^[A-Za-z0-9.]+(/[A-Za-z0-9_.*-]+)+$|^\*$")
_ROLE_DEF_ID = re.compile(
    r"^(?:/subscriptions/(?P<sub>[^/]+))?/providers/Microsoft\.Authorization/roleDefinitions/"
    r"(?P<guid>[^/]+)$",
    re.IGNORECASE,
)
_SCOPE = re.compile(
    r"^/subscriptions/(?P<sub>[^/]+)(?:/resourceGroups/(?P<rg>[^/]+)"
    r"(?:/providers/(?P<ns>[^/]+)/(?P<type>[^/]+)/(?P<name>[^/]+))?)?/?$",
    re.IGNORECASE,
)


# ------------------------------------------------------------------- helpers
def arm_error(status: int, code: str, message: str) -> CloudError:
    """An ARM error as pulumi-azure-native v3 prints it (PulumiAzcoreResponseError)."""
    return CloudError(f'Status={status} Code="{code}" Message="{message}"')


def already_exists(rid: str) -> CloudError:
    """The provider's CanCreate: the GET before the PUT found the resource."""
    return CloudError(f"cannot create already existing resource '{rid}'")


def normalize_location(location: str) -> str:
    """``West Europe``/``WestEurope`` -> ``westeurope``, as ARM stores and the provider diffs."""
    return location.replace(" ", "").lower()


def subscription_id(ctx: Context) -> str:
    """``azure-native:subscriptionId``, ARM_SUBSCRIPTION_ID, else the az-login default."""
    value = ctx.config.get("subscriptionId")
    if isinstance(value, str) and value:
        return value
    return ctx.env.get("ARM_SUBSCRIPTION_ID") or DEFAULT_SUBSCRIPTION_ID


def _env_number(ctx: Context, name: str) -> float:
    value = ctx.env.get(name)
    try:
        return float(value) if value else 0.0
    except ValueError:
        raise CloudError(f"{name}: {value!r} is not a number") from None


def _young(ctx: Context, created_at: float, env_name: str) -> bool:
    return (time.time() - created_at) * 1000 < _env_number(ctx, env_name)


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f") + "Z"


def system_data(ctx: Context) -> dict[str, Any]:
    """ARM's ``systemData`` for an object the caller just wrote."""
    me, now = caller(ctx), _now()
    kind = "User" if me.principal_type == "User" else "Application"
    return {
        "createdAt": now,
        "createdBy": me.object_id,
        "createdByType": kind,
        "lastModifiedAt": now,
        "lastModifiedBy": me.object_id,
        "lastModifiedByType": kind,
    }


def find_ci(ctx: Context, token: str, rid: str) -> dict[str, Any] | None:
    """A live record by ARM id; ARM ids are case-insensitive."""
    record = ctx.store.get(token, rid)
    if record is not None:
        return record
    lowered = rid.lower().rstrip("/")
    return next((r for r in ctx.store.resources(token) if r["id"].lower() == lowered), None)


def resource_group_id(sub: str, group: str) -> str:
    """``/subscriptions/<sub>/resourceGroups/<group>``."""
    return f"/subscriptions/{sub}/resourceGroups/{group}"


def _known_str(inputs: Mapping[str, Any], key: str) -> str | None:
    value = inputs.get(key)
    return value if isinstance(value, str) and not is_unknown(value) else None


def _string_rules(key: str, value: str, pattern: str | None, lo: int, hi: int) -> list[str]:
    """validateProperty's string checks, in the provider's words."""
    reasons = []
    if len(value) < lo:
        reasons.append(f"'{key}' is too short ({len(value)}): at least {lo} characters required")
    if len(value) > hi:
        reasons.append(f"'{key}' is too long ({len(value)}): at most {hi} characters allowed")
    if pattern and not re.match(pattern, value, re.ASCII):
        reasons.append(f"'{key}' does not match expression '{pattern}'")
    return reasons


def scope_exists(ctx: Context, scope: str) -> CloudError | None:
    """None if ``scope`` names a subscription, or an existing group or resource; else ARM's 404."""
    match = _SCOPE.match(scope)
    if match is None:
        return arm_error(400, "InvalidScope", f"The scope '{scope}' is not valid.")
    group = match["rg"]
    if group is None:
        return None
    if find_ci(ctx, RESOURCE_GROUP, resource_group_id(match["sub"], group)) is None:
        return arm_error(
            404, "ResourceGroupNotFound", f"Resource group '{group}' could not be found."
        )
    if match["name"] is None:
        return None
    for rtype in ARM_TYPES:
        if rtype.arm_type.lower() == f"{match['ns']}/{match['type']}".lower() and find_ci(
            ctx, rtype.token, scope.rstrip("/")
        ):
            return None
    return arm_error(
        404,
        "ResourceNotFound",
        f"The Resource '{match['ns']}/{match['type']}/{match['name']}' under resource group "
        f"'{group}' was not found. For more details please go to "
        "https://aka.ms/ARMResourceNotFoundFix",
    )


def within(scope: str, parent: str) -> bool:
    """Whether ``scope`` is ``parent`` or below it (ARM ids, case-insensitive)."""
    scope, parent = scope.lower().rstrip("/"), parent.lower().rstrip("/")
    return scope == parent or scope.startswith(parent + "/")


# ------------------------------------------------------------------ base type
class ArmResource(ResourceType):
    """One ARM resource type, as pulumi-azure-native exposes it.

    Beyond the framework's facts: ``arm_type`` and ``api_version`` (ARM's), ``name_key`` (the
    path parameter holding the resource's own name), ``autoname`` (``random`` or ``uuid``),
    ``has_location``, ``required`` (Check's "missing required property" list), ``body``
    (inputs that are body properties and come back as outputs of the same name).
    """

    arm_type: str
    api_version: str
    name_key: str
    autoname: str = "random"
    has_location: bool = False
    required: tuple[str, ...] = ()
    body: frozenset[str] = frozenset()
    server_defaults: Mapping[str, Any] = {}
    """Body values ARM fills in when the PUT leaves them out."""
    has_system_data: bool = True
    """Whether the SDK's outputs include ``systemData``."""

    # ---- ids
    def resource_id(self, ctx: Context, inputs: Mapping[str, Any]) -> str:
        """The ARM id the PUT goes to (and, unless overridden, the id ARM answers with)."""
        group = resource_group_id(subscription_id(ctx), inputs["resourceGroupName"])
        return f"{group}/providers/{self.arm_type}/{inputs[self.name_key]}"

    # ---- check
    def check_inputs(self, ctx: Context, inputs: Mapping[str, Any]) -> list[str]:
        """Check's failure reasons: required properties, then the schema's string rules."""
        reasons = []
        for key in self.required:
            if key not in inputs or inputs[key] is None:
                reason = f"missing required property '{key}'"
                if key == "location":
                    reason += (
                        ". Either set it explicitly or configure it with 'pulumi config set "
                        "azure-native:location <value>'."
                    )
                reasons.append(reason)
        group = _known_str(inputs, "resourceGroupName")
        if group is not None and "resourceGroupName" in self.inputs:
            reasons += _string_rules("resourceGroupName", group, _RG_PATTERN, 1, 90)
        return reasons

    # ---- outputs
    def plan(self, ctx: Context, inputs: Mapping[str, Any]) -> dict[str, Any]:
        """The body as outputs (the provider's PreviewOutputs), plus azureApiVersion."""
        outputs = {k: inputs[k] for k in self.body if inputs.get(k) is not None}
        if isinstance(outputs.get("location"), str) and not is_unknown(outputs["location"]):
            outputs["location"] = normalize_location(outputs["location"])
        outputs["azureApiVersion"] = self.api_version
        return outputs

    def project_inputs(self, outputs: Mapping[str, Any]) -> dict[str, Any]:
        """Outputs in input shape (SdkOutputsToSdkInputs): what a refresh may copy to inputs."""
        return {k: outputs[k] for k in self.body if k in outputs}

    def equal(self, key: str, old: Any, new: Any) -> bool:
        """Locations compare normalized, as applyAzureSpecificDiff does."""
        if key == "location" and isinstance(old, str) and isinstance(new, str):
            return normalize_location(old) == normalize_location(new)
        return old == new

    def outputs_for(
        self, ctx: Context, rid: str, inputs: Mapping[str, Any], extra: Mapping[str, Any]
    ) -> dict[str, Any]:
        """A fresh object's outputs: server defaults, the body, ARM's common fields."""
        outputs = {
            **self.server_defaults,
            **self.plan(ctx, inputs),
            "id": rid,
            "name": rid.rsplit("/", 1)[-1],
            "type": self.arm_type,
            **extra,
        }
        if self.has_system_data:
            outputs["systemData"] = system_data(ctx)
        return outputs

    def update(
        self, ctx: Context, rid: str, olds: Mapping[str, Any], news: Mapping[str, Any]
    ) -> dict[str, Any]:
        """A PUT of the whole body: what the new inputs leave out goes back to ARM's default."""
        with ctx.store.transaction():
            record = find_ci(ctx, self.token, rid)
            if record is None:
                raise CloudError(self.missing_error("update", rid))
            self.validate_put(ctx, news, existing=record)
            props = record["properties"]
            for key in self.body:
                if key in self.server_defaults:
                    props[key] = self.server_defaults[key]
                else:
                    props.pop(key, None)
            props.update(self.plan(ctx, news))
            if self.has_system_data:
                props["systemData"] = {**props.get("systemData", {}), **_modified(ctx)}
            self.after_update(ctx, record, news)
            record["updatedAt"] = time.time()
            ctx.store.save(record)
            return dict(props)

    def validate_put(
        self, ctx: Context, inputs: Mapping[str, Any], *, existing: dict | None = None
    ) -> None:
        """ARM's own validation of a PUT (raise CloudError)."""

    def delete(self, ctx: Context, rid: str, olds: Mapping[str, Any]) -> None:
        """DELETE; a 404 is success, as in the provider."""
        with ctx.store.transaction():
            record = find_ci(ctx, self.token, rid)
            if record is not None:
                self.destroy(ctx, record)

    def destroy(self, ctx: Context, record: dict[str, Any]) -> None:
        """Remove the object (and what goes with it)."""
        ctx.store.remove(self.token, record["id"])

    def read(self, ctx: Context, rid: str, olds: Mapping[str, Any]) -> dict[str, Any] | None:
        """GET by id (case-insensitive)."""
        record = find_ci(ctx, self.token, rid)
        return dict(record["properties"]) if record else None

    # ---- error texts
    def missing_error(self, op: str, rid: str) -> str:
        """ARM's 404 for a resource that is gone."""
        match = _SCOPE.match(rid)
        group = match["rg"] if match else "?"
        return str(
            arm_error(
                404,
                "ResourceNotFound",
                f"The Resource '{self.arm_type}/{rid.rsplit('/', 1)[-1]}' under resource group "
                f"'{group}' was not found. For more details please go to "
                "https://aka.ms/ARMResourceNotFoundFix",
            )
        )

    def fault_error(self, op: str, ident: str) -> str:
        """An injected failure reads like a resource provider outage."""
        return str(
            arm_error(
                503,
                "ServiceUnavailable",
                f"The service is temporarily unavailable while {_VERBS[op]} '{ident}'. Please "
                "retry.",
            )
        )


def _modified(ctx: Context) -> dict[str, Any]:
    data = system_data(ctx)
    return {k: v for k, v in data.items() if k.startswith("lastModified")}


def _tags_equal(old: Any, new: Any) -> bool:
    return (old or {}) == (new or {})


# ------------------------------------------------------------------ resource groups
class ResourceGroup(ArmResource):
    """A resource group. Deleting it deletes everything in it, and the assignments on it."""

    token = RESOURCE_GROUP
    kind = "resource group"
    arm_type = "Microsoft.Resources/resourceGroups"
    api_version = "2024-03-01"
    name_key = "resourceGroupName"
    has_location = True
    inputs = names("location managedBy resourceGroupName tags azureApiVersion")
    force_new = names("resourceGroupName location")
    required = ("location",)
    body = names("location managedBy tags")
    computed = names("id name type properties")
    has_system_data = False

    def resource_id(self, ctx: Context, inputs: Mapping[str, Any]) -> str:
        """``/subscriptions/<sub>/resourceGroups/<name>``."""
        return resource_group_id(subscription_id(ctx), inputs["resourceGroupName"])

    def equal(self, key: str, old: Any, new: Any) -> bool:
        """Tags: an absent map equals an empty one."""
        return _tags_equal(old, new) if key == "tags" else super().equal(key, old, new)

    def validate_put(
        self, ctx: Context, inputs: Mapping[str, Any], *, existing: dict | None = None
    ) -> None:
        """ARM refuses unknown locations and moving a group."""
        location = normalize_location(inputs["location"])
        if location not in LOCATIONS:
            raise arm_error(
                400,
                "LocationNotAvailableForResourceGroup",
                f"The provided location '{inputs['location']}' is not available for resource "
                f"group. List of available regions is '{','.join(LOCATIONS)}'.",
            )
        if existing is not None and existing["properties"]["location"] != location:
            raise arm_error(
                409,
                "InvalidResourceGroupLocation",
                f"Invalid resource group location '{location}'. The Resource group already "
                f"exists in location '{existing['properties']['location']}'.",
            )

    def create(self, ctx: Context, inputs: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
        """CanCreate, then PUT."""
        rid = self.resource_id(ctx, inputs)
        with ctx.store.transaction():
            if find_ci(ctx, self.token, rid) is not None:
                raise already_exists(rid)
            self.validate_put(ctx, inputs)
            outputs = self.outputs_for(
                ctx, rid, inputs, {"properties": {"provisioningState": "Succeeded"}}
            )
            outputs.setdefault("tags", {})
            self.store_record(ctx, rid, outputs, meta={"subscription": subscription_id(ctx)})
        return rid, outputs

    def destroy(self, ctx: Context, record: dict[str, Any]) -> None:
        """Everything in the group goes, and every role assignment on it or on its contents.

        Custom role definitions live at the subscription and stay, their assignable scope
        dangling, as in Azure; so do diagnostic settings (extension resources that outlive
        their resource, see :class:`DiagnosticSetting`).
        """
        rid = record["id"]
        for token in (REGISTRY, IDENTITY, CONTAINER_GROUP, WORKSPACE):
            for child in ctx.store.resources(token):
                if within(child["id"], rid):
                    # A workspace is only soft-deleted, with its group too (see Workspace).
                    ctx.store.remove(token, child["id"], tombstone=token == WORKSPACE)
        for assignment in ctx.store.resources(ROLE_ASSIGNMENT):
            if within(assignment["properties"].get("scope", ""), rid):
                ctx.store.remove(ROLE_ASSIGNMENT, assignment["id"])
        ctx.store.remove(self.token, rid)


class TrackedResource(ArmResource):
    """A resource inside a group, with a location and tags."""

    has_location = True

    def equal(self, key: str, old: Any, new: Any) -> bool:
        """Tags: an absent map equals an empty one."""
        return _tags_equal(old, new) if key == "tags" else super().equal(key, old, new)

    def check_group(self, ctx: Context, inputs: Mapping[str, Any]) -> None:
        """The PUT's group must exist (ARM's 404 otherwise)."""
        group = inputs["resourceGroupName"]
        if find_ci(ctx, RESOURCE_GROUP, resource_group_id(subscription_id(ctx), group)) is None:
            raise arm_error(
                404, "ResourceGroupNotFound", f"Resource group '{group}' could not be found."
            )


# ------------------------------------------------------------------ registries
class Registry(TrackedResource):
    """An Azure Container Registry: 5-50 alphanumerics, unique across all of Azure."""

    token = REGISTRY
    kind = "container registry"
    arm_type = "Microsoft.ContainerRegistry/registries"
    api_version = "2023-01-01-preview"
    name_key = "registryName"
    inputs = names(
        "adminUserEnabled anonymousPullEnabled dataEndpointEnabled encryption identity location "
        "networkRuleBypassOptions networkRuleSet policies publicNetworkAccess registryName "
        "resourceGroupName sku tags zoneRedundancy azureApiVersion"
    )
    force_new = names("registryName resourceGroupName location zoneRedundancy")
    required = ("resourceGroupName", "sku", "location")
    body = names(
        "adminUserEnabled anonymousPullEnabled dataEndpointEnabled encryption identity location "
        "networkRuleBypassOptions networkRuleSet policies publicNetworkAccess sku tags "
        "zoneRedundancy"
    )
    computed = names(
        "id name type loginServer creationDate provisioningState status systemData "
        "dataEndpointHostNames privateEndpointConnections"
    )
    server_defaults = {
        "adminUserEnabled": False,
        "anonymousPullEnabled": False,
        "dataEndpointEnabled": False,
        "encryption": {"status": "disabled"},
        "networkRuleBypassOptions": "AzureServices",
        "publicNetworkAccess": "Enabled",
        "zoneRedundancy": "Disabled",
        "policies": {
            "exportPolicy": {"status": "enabled"},
            "quarantinePolicy": {"status": "disabled"},
            "retentionPolicy": {"days": 7, "status": "disabled"},
            "trustPolicy": {"status": "disabled", "type": "Notary"},
            "azureADAuthenticationAsArmPolicy": {"status": "enabled"},
        },
    }
    SKUS = ("Basic", "Standard", "Premium")

    def check_inputs(self, ctx: Context, inputs: Mapping[str, Any]) -> list[str]:
        """registryName: ``^[a-zA-Z0-9]*$``, 5 to 50 characters; ``sku.name`` required."""
        reasons = super().check_inputs(ctx, inputs)
        name = _known_str(inputs, "registryName")
        if name is not None:
            reasons += _string_rules("registryName", name, _REGISTRY_PATTERN, 5, 50)
        sku = inputs.get("sku")
        if isinstance(sku, Mapping) and sku.get("name") is None:
            reasons.append("missing required property 'sku.name'")
        return reasons

    def plan(self, ctx: Context, inputs: Mapping[str, Any]) -> dict[str, Any]:
        """``sku`` comes back with its tier."""
        outputs = super().plan(ctx, inputs)
        sku = inputs.get("sku")
        if isinstance(sku, Mapping) and isinstance(sku.get("name"), str):
            name = sku["name"]
            outputs["sku"] = {"name": name, "tier": UNKNOWN if is_unknown(name) else name}
        return outputs

    def project_inputs(self, outputs: Mapping[str, Any]) -> dict[str, Any]:
        """``sku.tier`` is read-only: inputs hold only the name."""
        projected = super().project_inputs(outputs)
        if isinstance(projected.get("sku"), Mapping):
            projected["sku"] = {"name": projected["sku"].get("name")}
        return projected

    def validate_put(
        self, ctx: Context, inputs: Mapping[str, Any], *, existing: dict | None = None
    ) -> None:
        """The SKU must exist; Premium-only features need Premium."""
        sku = (inputs.get("sku") or {}).get("name")
        if sku not in self.SKUS:
            raise arm_error(
                400,
                "InvalidSkuName",
                f"The SKU '{sku}' is not valid. Valid SKUs are: {', '.join(self.SKUS)}.",
            )
        if sku != "Premium" and (
            inputs.get("networkRuleSet") or inputs.get("zoneRedundancy") == "Enabled"
        ):
            raise arm_error(
                400,
                "FeatureNotSupportedForSku",
                f"The feature is not supported for SKU '{sku}'; it requires the Premium SKU.",
            )

    def create(self, ctx: Context, inputs: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
        """CanCreate; then the name must be free across all of Azure (every subscription)."""
        rid = self.resource_id(ctx, inputs)
        name = inputs["registryName"]
        with ctx.store.transaction():
            if find_ci(ctx, self.token, rid) is not None:
                raise already_exists(rid)
            self.check_group(ctx, inputs)
            self.validate_put(ctx, inputs)
            if any(
                str(r["properties"].get("name", "")).lower() == name.lower()
                for r in ctx.store.resources(self.token)
            ):
                raise arm_error(
                    400,
                    "AlreadyInUse",
                    f"The registry DNS name {name.lower()}.azurecr.io is already in use. You can "
                    "check if the name is already claimed using following API: "
                    "https://docs.microsoft.com/en-us/rest/api/containerregistry/registries/"
                    "checknameavailability",
                )
            outputs = self.outputs_for(
                ctx,
                rid,
                inputs,
                {
                    "loginServer": f"{name.lower()}.azurecr.io",
                    "creationDate": _now(),
                    "provisioningState": "Succeeded",
                    "dataEndpointHostNames": [],
                    "privateEndpointConnections": [],
                },
            )
            outputs.setdefault("tags", {})
            self.store_record(ctx, rid, outputs, meta={"subscription": subscription_id(ctx)})
        return rid, outputs

    def destroy(self, ctx: Context, record: dict[str, Any]) -> None:
        """Role assignments on the registry go with it."""
        for assignment in ctx.store.resources(ROLE_ASSIGNMENT):
            if within(assignment["properties"].get("scope", ""), record["id"]):
                ctx.store.remove(ROLE_ASSIGNMENT, assignment["id"])
        ctx.store.remove(self.token, record["id"])


# ------------------------------------------------------------------ identities
class UserAssignedIdentity(TrackedResource):
    """A user-assigned managed identity: a service principal in the tenant's directory."""

    token = IDENTITY
    kind = "user assigned identity"
    arm_type = "Microsoft.ManagedIdentity/userAssignedIdentities"
    api_version = "2023-01-31"
    name_key = "resourceName"
    inputs = names("location resourceGroupName resourceName tags azureApiVersion")
    force_new = names("resourceName resourceGroupName location")
    required = ("resourceGroupName", "location")
    body = names("location tags")
    computed = names("id name type principalId clientId tenantId systemData")

    def validate_put(
        self, ctx: Context, inputs: Mapping[str, Any], *, existing: dict | None = None
    ) -> None:
        """The managed identity RP's name rule."""
        name = inputs["resourceName"]
        if not _IDENTITY_NAME.match(name):
            raise arm_error(
                400,
                "InvalidResourceName",
                f"Resource name {name} is invalid. The name can be up to 128 characters long. "
                "It can contain only alphanumeric characters, hyphens, and underscores. The "
                "first character must be alphanumeric.",
            )

    def create(self, ctx: Context, inputs: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
        """CanCreate, then PUT: Entra ID creates the identity's service principal."""
        rid = self.resource_id(ctx, inputs)
        with ctx.store.transaction():
            if find_ci(ctx, self.token, rid) is not None:
                raise already_exists(rid)
            self.check_group(ctx, inputs)
            self.validate_put(ctx, inputs)
            tenant = tenant_id(ctx)
            outputs = self.outputs_for(
                ctx,
                rid,
                inputs,
                {"principalId": new_guid(), "clientId": new_guid(), "tenantId": tenant},
            )
            outputs.setdefault("tags", {})
            meta = {"subscription": subscription_id(ctx), "tenant": tenant}
            self.store_record(ctx, rid, outputs, meta=meta)
        return rid, outputs


# ------------------------------------------------------------------ role definitions
class RoleDefinition(ArmResource):
    """A custom role: a GUID name, a display name unique in the tenant, assignable scopes."""

    token = ROLE_DEFINITION
    kind = "role definition"
    arm_type = "Microsoft.Authorization/roleDefinitions"
    api_version = "2022-05-01-preview"
    name_key = "roleDefinitionId"
    autoname = "uuid"
    inputs = names(
        "assignableScopes description permissions roleDefinitionId roleName roleType scope "
        "azureApiVersion"
    )
    force_new = names("roleDefinitionId scope")
    required = ("scope",)
    body = names("assignableScopes description permissions roleName roleType")
    computed = names("id name type createdBy createdOn updatedBy updatedOn systemData")

    def resource_id(self, ctx: Context, inputs: Mapping[str, Any]) -> str:
        """ARM answers with the subscription-level id, whatever scope the PUT went to."""
        match = _SCOPE.match(inputs["scope"])
        sub = match["sub"] if match else subscription_id(ctx)
        return f"/subscriptions/{sub}/providers/{self.arm_type}/{inputs['roleDefinitionId']}"

    def plan(self, ctx: Context, inputs: Mapping[str, Any]) -> dict[str, Any]:
        """Permissions come back with every list present; roleType defaults to CustomRole."""
        outputs = super().plan(ctx, inputs)
        permissions = inputs.get("permissions")
        if isinstance(permissions, list):
            outputs["permissions"] = [
                {
                    k: (p.get(k) or []) if isinstance(p, Mapping) else UNKNOWN
                    for k in ("actions", "notActions", "dataActions", "notDataActions")
                }
                for p in permissions
            ]
        outputs.setdefault("roleType", "CustomRole")
        return outputs

    def project_inputs(self, outputs: Mapping[str, Any]) -> dict[str, Any]:
        """Empty permission lists are the service's default, not an input."""
        projected = super().project_inputs(outputs)
        if isinstance(projected.get("permissions"), list):
            projected["permissions"] = [
                {k: v for k, v in p.items() if v} for p in projected["permissions"]
            ]
        return projected

    def equal(self, key: str, old: Any, new: Any) -> bool:
        """Empty permission lists equal absent ones."""
        if key == "permissions" and isinstance(old, list) and isinstance(new, list):
            strip = [[{k: v for k, v in p.items() if v} for p in x] for x in (old, new)]
            return strip[0] == strip[1]
        return super().equal(key, old, new)

    def validate_put(
        self, ctx: Context, inputs: Mapping[str, Any], *, existing: dict | None = None
    ) -> None:
        """GUID name, unique role name, valid actions, existing assignable scopes."""
        guid = inputs["roleDefinitionId"]
        if not is_guid(guid):
            raise arm_error(
                400, "InvalidRoleDefinitionId", "The role definition ID must be a GUID."
            )
        scope = inputs["scope"]
        problem = scope_exists(ctx, scope)
        if problem is not None:
            raise problem
        role_name = inputs.get("roleName") or ""
        for record in ctx.store.resources(self.token):
            if existing is not None and record["id"] == existing["id"]:
                continue
            if str(record["properties"].get("roleName", "")).lower() == role_name.lower():
                raise arm_error(
                    409,
                    "RoleDefinitionWithSameNameExists",
                    "A custom role with the same name already exists in this directory. Use a "
                    "different name.",
                )
        scopes = inputs.get("assignableScopes") or []
        if not scopes:
            raise arm_error(
                400,
                "InvalidAssignableScopes",
                "The role definition must have at least one assignable scope.",
            )
        for assignable in scopes:
            if assignable == "/" or not assignable.lower().startswith("/subscriptions/"):
                raise arm_error(
                    400,
                    "InvalidAssignableScopes",
                    f"The assignable scope '{assignable}' is not valid for a custom role: use "
                    "subscriptions, resource groups or resources.",
                )
            problem = scope_exists(ctx, assignable)
            if problem is not None:
                raise problem
        for permission in inputs.get("permissions") or []:
            for key in ("actions", "notActions"):
                for action in permission.get(key) or []:
                    namespace = action.split("/", 1)[0].lower()
                    if not _ACTION.match(action) or (
                        action != "*" and namespace not in KNOWN_NAMESPACES
                    ):
                        raise arm_error(
                            400,
                            "InvalidActionOrNotAction",
                            f"'{action}' does not match any of the actions supported by the "
                            "providers.",
                        )

    def create(self, ctx: Context, inputs: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
        """CanCreate (a GUID is unique in the tenant), then PUT at the scope."""
        rid = self.resource_id(ctx, inputs)
        guid = str(inputs["roleDefinitionId"])
        with ctx.store.transaction():
            for record in ctx.store.resources(self.token):
                if record["id"].rsplit("/", 1)[-1].lower() == guid.lower():
                    raise already_exists(
                        f"{inputs['scope'].rstrip('/')}/providers/{self.arm_type}/{guid}"
                    )
            self.validate_put(ctx, inputs)
            me, now = caller(ctx), _now()
            outputs = self.outputs_for(
                ctx,
                rid,
                inputs,
                {
                    "createdBy": me.object_id,
                    "createdOn": now,
                    "updatedBy": me.object_id,
                    "updatedOn": now,
                },
            )
            outputs.setdefault("description", "")
            meta = {"subscription": subscription_id(ctx), "tenant": tenant_id(ctx)}
            self.store_record(ctx, rid, outputs, meta=meta)
        return rid, outputs

    def after_update(self, ctx: Context, record: dict[str, Any], news: Mapping[str, Any]) -> None:
        """``updatedOn``/``updatedBy`` follow the PUT."""
        record["properties"].update(updatedOn=_now(), updatedBy=caller(ctx).object_id)

    def destroy(self, ctx: Context, record: dict[str, Any]) -> None:
        """ARM refuses while assignments still use the role."""
        guid = record["id"].rsplit("/", 1)[-1].lower()
        for assignment in ctx.store.resources(ROLE_ASSIGNMENT):
            if assignment["properties"].get("roleDefinitionId", "").lower().endswith("/" + guid):
                raise arm_error(
                    409,
                    "RoleDefinitionHasAssignments",
                    "There are existing role assignments referencing role (code: "
                    "RoleDefinitionHasAssignments).",
                )
        ctx.store.remove(self.token, record["id"])


# ------------------------------------------------------------------ role assignments
class RoleAssignment(ArmResource):
    """A role assignment: a GUID name unique in the tenant, an existing principal and role."""

    token = ROLE_ASSIGNMENT
    kind = "role assignment"
    arm_type = "Microsoft.Authorization/roleAssignments"
    api_version = "2022-04-01"
    name_key = "roleAssignmentName"
    autoname = "uuid"
    inputs = names(
        "condition conditionVersion delegatedManagedIdentityResourceId description principalId "
        "principalType roleAssignmentName roleDefinitionId scope azureApiVersion"
    )
    force_new = names("roleAssignmentName scope principalId roleDefinitionId principalType")
    required = ("principalId", "roleDefinitionId", "scope")
    body = names(
        "condition conditionVersion delegatedManagedIdentityResourceId description principalId "
        "principalType roleDefinitionId"
    )
    computed = names("id name type scope createdBy createdOn updatedBy updatedOn systemData")

    def resource_id(self, ctx: Context, inputs: Mapping[str, Any]) -> str:
        """``<scope>/providers/Microsoft.Authorization/roleAssignments/<name>``."""
        return f"{inputs['scope'].rstrip('/')}/providers/{self.arm_type}/{inputs[self.name_key]}"

    def _principal_problem(self, ctx: Context, inputs: Mapping[str, Any]) -> CloudError | None:
        """PrincipalNotFound / UnmatchedPrincipalType, with replication delays."""
        principal_id = str(inputs["principalId"])
        principal = find_principal(ctx, principal_id)
        wanted = inputs.get("principalType")
        not_found = arm_error(
            400,
            "PrincipalNotFound",
            f"Principal {principal_id.replace('-', '')} does not exist in the directory "
            f"{tenant_id(ctx)}. Check that you have the correct principal ID. If you are "
            "creating this principal and then immediately assigning a role, this error might "
            "be related to a replication delay. In this case, set the role assignment "
            "principalType property to a value, such as ServicePrincipal, User, or Group.  See "
            "https://aka.ms/docs-principaltype",
        )
        if principal is None:
            return not_found
        if wanted == principal.principal_type:
            return None  # ARM trusts the given type: no directory lookup, no replication wait
        if _young(ctx, principal.created_at, PROPAGATION_ENV):
            return not_found
        if wanted:
            return arm_error(
                400,
                "UnmatchedPrincipalType",
                f"The PrincipalId '{principal_id.replace('-', '')}' has type "
                f"'{principal.principal_type}' , which is different from specified PrinciaplType "
                f"'{wanted}'.",
            )
        return None

    def _role_problem(self, ctx: Context, inputs: Mapping[str, Any]) -> CloudError | None:
        """The role must exist and be assignable at the scope (RoleDefinitionDoesNotExist)."""
        role_id = str(inputs["roleDefinitionId"])
        match = _ROLE_DEF_ID.match(role_id)
        if match is None or not is_guid(match["guid"]):
            return arm_error(
                400, "InvalidRoleDefinitionId", f"The role definition ID '{role_id}' is not valid."
            )
        guid = match["guid"].lower()
        missing = arm_error(
            400,
            "RoleDefinitionDoesNotExist",
            f"The specified role definition with ID '{guid}' does not exist.",
        )
        if guid in BUILTIN_ROLES:
            return None
        scope = inputs["scope"]
        for record in ctx.store.resources(ROLE_DEFINITION):
            if record["id"].rsplit("/", 1)[-1].lower() != guid:
                continue
            if (
                match["sub"]
                and match["sub"].lower() != record["meta"].get("subscription", "").lower()
            ):
                return missing
            if _young(ctx, record["createdAt"], ROLE_PROPAGATION_ENV):
                return missing
            if any(within(scope, s) for s in record["properties"].get("assignableScopes") or []):
                return None
            return missing  # not visible at this scope
        return missing

    def create(self, ctx: Context, inputs: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
        """The provider's CanCreate (an existing id fails, even for the same grant), then PUT."""
        rid = self.resource_id(ctx, inputs)
        with ctx.store.transaction():
            if find_ci(ctx, self.token, rid) is not None:
                raise already_exists(rid)
            return self.put(ctx, inputs)

    def put(self, ctx: Context, inputs: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
        """ARM's PUT: GUID name, scope, role, principal; names are unique in the tenant.

        A PUT of the very grant a name already holds succeeds (ARM is idempotent); the same
        name for another grant, at any scope, is RoleAssignmentUpdateNotPermitted; the same
        grant under another name is RoleAssignmentExists. Through the provider, CanCreate
        answers first for an existing id, so only races reach the idempotent path.
        """
        name, scope = str(inputs["roleAssignmentName"]), str(inputs["scope"])
        rid = self.resource_id(ctx, inputs)
        with ctx.store.transaction():
            if not is_guid(name):
                raise arm_error(
                    400, "InvalidRoleAssignmentId", "The role assignment ID must be a GUID."
                )
            problem = (
                scope_exists(ctx, scope)
                or self._role_problem(ctx, inputs)
                or self._principal_problem(ctx, inputs)
            )
            if problem is not None:
                raise problem
            role_guid = str(inputs["roleDefinitionId"]).rsplit("/", 1)[-1].lower()
            for record in ctx.store.resources(self.token):
                props = record["properties"]
                same_grant = (
                    props["principalId"].lower() == str(inputs["principalId"]).lower()
                    and props["roleDefinitionId"].rsplit("/", 1)[-1].lower() == role_guid
                    and props["scope"].lower().rstrip("/") == scope.lower().rstrip("/")
                )
                if record["id"].rsplit("/", 1)[-1].lower() == name.lower():
                    if same_grant:
                        return record["id"], dict(props)
                    raise arm_error(
                        400,
                        "RoleAssignmentUpdateNotPermitted",
                        "Tenant ID, application ID, principal ID, and scope are not allowed to "
                        "be updated.",
                    )
                if same_grant:
                    raise arm_error(
                        409, "RoleAssignmentExists", "The role assignment already exists."
                    )
            principal = find_principal(ctx, str(inputs["principalId"]))
            me, now = caller(ctx), _now()
            extra = {
                "scope": scope,
                "principalType": inputs.get("principalType")
                or (principal.principal_type if principal else "Unknown"),
                "createdBy": me.object_id,
                "createdOn": now,
                "updatedBy": me.object_id,
                "updatedOn": now,
            }
            outputs = self.outputs_for(ctx, rid, inputs, extra)
            meta = {"subscription": subscription_id(ctx), "tenant": tenant_id(ctx)}
            self.store_record(ctx, rid, outputs, meta=meta)
        return rid, outputs


# ------------------------------------------------------------------ container groups
_CONTAINER_NAME = re.compile(r"^(?!.*--)[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
_RESTART_POLICIES = ("Always", "OnFailure", "Never")
_OS_TYPES = ("Linux", "Windows")


def _secure_digest(value: Any) -> str:
    """What the fake keeps of a secure value: its SHA-256, never the value (ACI encrypts it at
    rest; the test-facing store is plain JSON on disk, scanned for leaked secrets)."""
    return "sha256:" + hashlib.sha256(str(value).encode()).hexdigest()


def secure_value_matches(record: Mapping[str, Any], container: str, name: str, value: str) -> bool:
    """Whether the container group ``record`` holds ``value`` as the secure value ``name`` of its
    container ``container`` (tests: the secret reached the worker, without being stored)."""
    held = (record.get("meta") or {}).get("secureEnvironment", {}).get(container, {})
    return held.get(name) == _secure_digest(value)


class ContainerGroup(TrackedResource):
    """A container group (ACI). Secure environment values are never returned, the identities it
    names must exist, and the properties ACI cannot change in place refuse an update.

    * **Names** (group and containers): 1-63 lowercase letters, digits and ``-``, not at either
      end, never doubled (MicrosoftDocs ``resource-name-rules``, Microsoft.ContainerInstance;
      ACI's code ``InvalidContainerGroupName``; the message is the fake's own wording).
    * **Secure values** come back as the variable's name only ("container properties ... display
      only a secure variable's name, not its value", ``container-instances-environment-
      variables.md``). The record keeps their SHA-256 under ``meta.secureEnvironment``.
    * **Identities**: every user-assigned identity must exist, else ARM's
      ``FailedIdentityOperation`` wrapping the managed-identity RP's 404; the answer is the map
      ``{id: {principalId, clientId}}``.
    * **Update**: OS type, CPU, memory, restart policy and ports "require container group
      deletion prior to redeployment" (``container-instances-update.md``); a PUT changing them
      is refused (the code and wording are the fake's: the page gives none).
    """

    token = CONTAINER_GROUP
    kind = "container group"
    arm_type = "Microsoft.ContainerInstance/containerGroups"
    api_version = "2024-05-01-preview"
    name_key = "containerGroupName"
    inputs = names(
        "confidentialComputeProperties containerGroupName containerGroupProfile containers "
        "diagnostics dnsConfig encryptionProperties extensions identity imageRegistryCredentials "
        "initContainers ipAddress location osType priority resourceGroupName restartPolicy sku "
        "standbyPoolProfile subnetIds tags volumes zones azureApiVersion"
    )
    force_new = names("containerGroupName resourceGroupName location")
    required = ("resourceGroupName", "containers", "location")
    body = names(
        "confidentialComputeProperties containerGroupProfile containers diagnostics dnsConfig "
        "encryptionProperties extensions identity imageRegistryCredentials initContainers "
        "ipAddress location osType priority restartPolicy sku standbyPoolProfile subnetIds tags "
        "volumes zones"
    )
    computed = names("id name type provisioningState instanceView isCreatedFromStandbyPool")
    server_defaults = {"sku": "Standard"}
    has_system_data = False

    def check_inputs(self, ctx: Context, inputs: Mapping[str, Any]) -> list[str]:
        """The schema's required nested properties (``containers[0].name``...)."""
        reasons = super().check_inputs(ctx, inputs)
        containers = inputs.get("containers")
        if not isinstance(containers, list):
            return reasons
        for index, container in enumerate(containers):
            if not isinstance(container, Mapping):
                continue
            where = f"containers[{index}]"
            if container.get("name") is None:
                reasons.append(f"missing required property '{where}.name'")
            requests = (container.get("resources") or {}).get("requests")
            if isinstance(requests, Mapping):
                for key in ("cpu", "memoryInGB"):
                    if requests.get(key) is None:
                        reasons.append(
                            f"missing required property '{where}.resources.requests.{key}'"
                        )
            for j, variable in enumerate(container.get("environmentVariables") or []):
                if isinstance(variable, Mapping) and variable.get("name") is None:
                    reasons.append(
                        f"missing required property '{where}.environmentVariables[{j}].name'"
                    )
        return reasons

    # ---- what ARM answers
    def plan(self, ctx: Context, inputs: Mapping[str, Any]) -> dict[str, Any]:
        """The body, with secure values dropped and identities as ARM's map."""
        outputs = super().plan(ctx, inputs)
        if isinstance(outputs.get("containers"), list):
            outputs["containers"] = [_public_container(c) for c in outputs["containers"]]
        identity = inputs.get("identity")
        if isinstance(identity, Mapping):
            outputs["identity"] = _identity_output(ctx, identity)
        return outputs

    def project_inputs(self, outputs: Mapping[str, Any]) -> dict[str, Any]:
        """Identities back to the list the SDK takes."""
        projected = super().project_inputs(outputs)
        identity = projected.get("identity")
        if isinstance(identity, Mapping):
            found = {"type": identity.get("type")}
            if isinstance(identity.get("userAssignedIdentities"), Mapping):
                found["userAssignedIdentities"] = list(identity["userAssignedIdentities"])
            projected["identity"] = found
        return projected

    # ---- ARM's checks
    def validate_put(
        self, ctx: Context, inputs: Mapping[str, Any], *, existing: dict | None = None
    ) -> None:
        """Names, restart policy, OS type, identities; on an update, the immutable properties."""
        name = str(inputs["containerGroupName"])
        if not _CONTAINER_NAME.match(name):
            raise arm_error(
                400,
                "InvalidContainerGroupName",
                f"The container group name '{name}' is invalid. A container group name must "
                "contain no more than 63 characters and must match the regex "
                "'[a-z0-9]([-a-z0-9]*[a-z0-9])?' (e.g. 'my-name').",
            )
        containers = inputs.get("containers") or []
        if not containers:
            raise arm_error(
                400, "NoContainersInContainerGroup", "The container group has no containers."
            )
        seen: set[str] = set()
        for container in containers:
            cname = str(container.get("name"))
            if not _CONTAINER_NAME.match(cname):
                raise arm_error(
                    400,
                    "InvalidContainerName",
                    f"The container name '{cname}' in container group '{name}' is invalid. A "
                    "container name must contain no more than 63 characters and must match the "
                    "regex '[a-z0-9]([-a-z0-9]*[a-z0-9])?' (e.g. 'my-name').",
                )
            if cname in seen:
                raise arm_error(
                    400,
                    "DuplicateContainerName",
                    f"Duplicate container name '{cname}' in container group '{name}'.",
                )
            seen.add(cname)
        for key, allowed in (("restartPolicy", _RESTART_POLICIES), ("osType", _OS_TYPES)):
            value = inputs.get(key)
            if value is not None and value not in allowed:
                raise arm_error(
                    400,
                    "InvalidRequestContent",
                    f"The value '{value}' of '{key}' is not valid: use one of "
                    f"{', '.join(allowed)}.",
                )
        self._check_identities(ctx, inputs)
        if existing is not None:
            self._check_updatable(existing, inputs)

    def _check_identities(self, ctx: Context, inputs: Mapping[str, Any]) -> None:
        identity = inputs.get("identity") or {}
        for identity_id in identity.get("userAssignedIdentities") or []:
            if find_ci(ctx, IDENTITY, str(identity_id)) is not None:
                continue
            match = _SCOPE.match(str(identity_id))
            group, name = (match["rg"], match["name"]) if match else ("?", identity_id)
            not_found = (
                f"The Resource 'Microsoft.ManagedIdentity/userAssignedIdentities/{name}' under "
                f"resource group '{group}' was not found."
            )
            raise arm_error(
                400,
                "FailedIdentityOperation",
                f"Identity operation for resource '{self.resource_id(ctx, inputs)}' failed with "
                "error 'Failed to perform resource identity operation. Status: 'NotFound'. "
                f'Response: \'{{"error":{{"code":"NotFound","message":"{not_found}"}}}}\'.\'.',
            )

    @staticmethod
    def _check_updatable(existing: dict[str, Any], inputs: Mapping[str, Any]) -> None:
        old = existing["properties"]
        changed = [k for k in ("osType", "restartPolicy") if old.get(k) != inputs.get(k)]
        if _sizes(old.get("containers")) != _sizes(inputs.get("containers")):
            changed.append("CPU, memory or ports")
        if changed:
            raise arm_error(
                409,
                "ContainerGroupUpdateNotSupported",
                f"The container group '{existing['id'].rsplit('/', 1)[-1]}' cannot be updated: "
                f"{', '.join(changed)} can only be changed by deleting the container group and "
                "creating it again.",
            )

    def create(self, ctx: Context, inputs: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
        """CanCreate, then PUT: the group starts (``instanceView.state``: ``Running``)."""
        rid = self.resource_id(ctx, inputs)
        with ctx.store.transaction():
            if find_ci(ctx, self.token, rid) is not None:
                raise already_exists(rid)
            self.check_group(ctx, inputs)
            self.validate_put(ctx, inputs)
            outputs = self.outputs_for(
                ctx,
                rid,
                inputs,
                {"provisioningState": "Succeeded", "instanceView": {"state": "Running"}},
            )
            outputs.setdefault("tags", {})
            meta = {
                "subscription": subscription_id(ctx),
                "secureEnvironment": _secure_environment(inputs),
            }
            self.store_record(ctx, rid, outputs, meta=meta)
        return rid, outputs

    def after_update(self, ctx: Context, record: dict[str, Any], news: Mapping[str, Any]) -> None:
        """A redeployment: the containers restart with the new secure values."""
        record["meta"]["secureEnvironment"] = _secure_environment(news)
        record["properties"]["instanceView"] = {"state": "Running"}
        record["properties"]["provisioningState"] = "Succeeded"


def _public_container(container: Any) -> Any:
    """A container as ARM returns it: secure values reduced to the variable's name."""
    if not isinstance(container, Mapping):
        return container
    public = copy.deepcopy(dict(container))
    variables = public.get("environmentVariables")
    if isinstance(variables, list):
        public["environmentVariables"] = [
            {k: v for k, v in e.items() if k not in ("secureValue", "secureValueReference")}
            if isinstance(e, Mapping)
            else e
            for e in variables
        ]
    return public


def _secure_environment(inputs: Mapping[str, Any]) -> dict[str, dict[str, str]]:
    """container name -> variable -> digest of its secure value."""
    held: dict[str, dict[str, str]] = {}
    for container in inputs.get("containers") or []:
        for variable in container.get("environmentVariables") or []:
            if variable.get("secureValue") is not None:
                held.setdefault(str(container.get("name")), {})[str(variable["name"])] = (
                    _secure_digest(variable["secureValue"])
                )
    return held


def _sizes(containers: Any) -> list[Any]:
    """What of each container ACI cannot change in place: its resources and ports."""
    return [
        ((c.get("resources") or {}), c.get("ports") or [])
        for c in containers or []
        if isinstance(c, Mapping)
    ]


def _identity_output(ctx: Context, identity: Mapping[str, Any]) -> dict[str, Any]:
    """ARM's identity block: each user-assigned identity with its principal and client ids."""
    found: dict[str, Any] = {"type": identity.get("type")}
    ids = identity.get("userAssignedIdentities")
    if isinstance(ids, list):
        found["userAssignedIdentities"] = {}
        for identity_id in ids:
            record = None if is_unknown(identity_id) else find_ci(ctx, IDENTITY, identity_id)
            props = record["properties"] if record else {}
            found["userAssignedIdentities"][identity_id] = {
                "principalId": props.get("principalId", UNKNOWN),
                "clientId": props.get("clientId", UNKNOWN),
            }
    elif is_unknown(ids):
        found["userAssignedIdentities"] = UNKNOWN
    return found


# ------------------------------------------------------------------ Log Analytics workspaces
_WORKSPACE_PATTERN = "^[A-Za-z0-9][A-Za-z0-9-]+[A-Za-z0-9]$"


class Workspace(TrackedResource):
    """A Log Analytics workspace. Deleting one only soft-deletes it for 14 days; creating the
    same workspace again in that time recovers it, with its ``customerId`` ("Recover a
    workspace in a soft-delete state within 14 days", ``az monitor log-analytics workspace
    recover``). A deleted record is a tombstone: ``FakeCloud.resources()`` no longer lists it.

    Check enforces the spec's ``workspaceName`` rule: 4-63 characters,
    ``^[A-Za-z0-9][A-Za-z0-9-]+[A-Za-z0-9]$``.
    """

    token = WORKSPACE
    kind = "workspace"
    arm_type = "Microsoft.OperationalInsights/workspaces"
    api_version = "2023-09-01"
    name_key = "workspaceName"
    inputs = names(
        "defaultDataCollectionRuleResourceId features forceCmkForQuery identity location "
        "publicNetworkAccessForIngestion publicNetworkAccessForQuery resourceGroupName "
        "retentionInDays sku tags workspaceCapping workspaceName azureApiVersion"
    )
    force_new = names("workspaceName resourceGroupName location")
    required = ("resourceGroupName", "location")
    body = names(
        "defaultDataCollectionRuleResourceId features forceCmkForQuery identity location "
        "publicNetworkAccessForIngestion publicNetworkAccessForQuery retentionInDays sku tags "
        "workspaceCapping"
    )
    computed = names(
        "id name type customerId createdDate modifiedDate provisioningState etag systemData "
        "privateLinkScopedResources"
    )
    server_defaults = {
        "sku": {"name": "PerGB2018"},
        "retentionInDays": 30,
        "publicNetworkAccessForIngestion": "Enabled",
        "publicNetworkAccessForQuery": "Enabled",
        "workspaceCapping": {"dailyQuotaGb": -1},
    }

    def check_inputs(self, ctx: Context, inputs: Mapping[str, Any]) -> list[str]:
        """``workspaceName``: 4 to 63 characters of the spec's pattern."""
        reasons = super().check_inputs(ctx, inputs)
        name = _known_str(inputs, "workspaceName")
        if name is not None:
            reasons += _string_rules("workspaceName", name, _WORKSPACE_PATTERN, 4, 63)
        return reasons

    def plan(self, ctx: Context, inputs: Mapping[str, Any]) -> dict[str, Any]:
        """``sku`` comes back with the date of its last change."""
        outputs = super().plan(ctx, inputs)
        sku = outputs.get("sku")
        if isinstance(sku, Mapping) and not is_unknown(sku):
            outputs["sku"] = {**sku, "lastSkuUpdate": _now()}
        return outputs

    def project_inputs(self, outputs: Mapping[str, Any]) -> dict[str, Any]:
        """``sku.lastSkuUpdate`` is read-only."""
        projected = super().project_inputs(outputs)
        if isinstance(projected.get("sku"), Mapping):
            projected["sku"] = {k: v for k, v in projected["sku"].items() if k != "lastSkuUpdate"}
        return projected

    def equal(self, key: str, old: Any, new: Any) -> bool:
        """A read-only ``lastSkuUpdate`` never counts."""
        if key == "sku" and isinstance(old, Mapping) and isinstance(new, Mapping):
            old = {k: v for k, v in old.items() if k != "lastSkuUpdate"}
        return super().equal(key, old, new)

    def create(self, ctx: Context, inputs: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
        """CanCreate (a soft-deleted workspace GETs as 404), then PUT, which recovers one."""
        rid = self.resource_id(ctx, inputs)
        with ctx.store.transaction():
            if find_ci(ctx, self.token, rid) is not None:
                raise already_exists(rid)
            self.check_group(ctx, inputs)
            deleted = next(
                (
                    r
                    for r in ctx.store.resources(self.token, include_deleted=True)
                    if r.get("deleted") and r["id"].lower() == rid.lower()
                ),
                None,
            )
            customer = deleted["properties"]["customerId"] if deleted else new_guid()
            now = _now()
            outputs = self.outputs_for(
                ctx,
                rid,
                inputs,
                {
                    "customerId": customer,
                    "createdDate": deleted["properties"]["createdDate"] if deleted else now,
                    "modifiedDate": now,
                    "provisioningState": "Succeeded",
                    "etag": f'"{uuid.uuid4().hex[:16]}"',
                },
            )
            outputs.setdefault("tags", {})
            meta = {"subscription": subscription_id(ctx), "recovered": deleted is not None}
            self.store_record(ctx, rid, outputs, meta=meta)
        return rid, outputs

    def destroy(self, ctx: Context, record: dict[str, Any]) -> None:
        """Soft delete: the workspace is kept, recoverable, for 14 days."""
        ctx.store.remove(self.token, record["id"], tombstone=True)


# ------------------------------------------------------------------ diagnostic settings
DIAGNOSTIC_CATEGORIES: dict[str, frozenset[str]] = {
    # MicrosoftDocs/azure-compute-docs monitor-azure-container-instances-reference.md.
    "microsoft.containerinstance/containergroups": frozenset(
        {"ContainerInstanceLog", "ContainerEvent"}
    ),
}
"""The log categories each resource type can route; another category or type is refused."""


class DiagnosticSetting(ArmResource):
    """A diagnostic setting: an extension resource under the resource whose logs it routes.

    * The resource and the destination workspace must exist (ARM's 404s).
    * Each log category must be one the resource type offers, else ``Status=400
      Code="BadRequest" Message="Category 'X' is not supported."`` (as quoted in
      hashicorp/terraform-provider-azurerm#2985).
    * It **outlives its resource**: deleting the resource (or its group) leaves the setting,
      and a new resource of the same name picks it up (MicrosoftDocs/azure-docs#100347, the
      warning in ``diagnostic-settings.md``). Delete the setting first.
    """

    token = DIAGNOSTIC_SETTING
    kind = "diagnostic setting"
    arm_type = "Microsoft.Insights/diagnosticSettings"
    api_version = "2021-05-01-preview"
    name_key = "name"
    inputs = names(
        "eventHubAuthorizationRuleId eventHubName logAnalyticsDestinationType logs "
        "marketplacePartnerId metrics name resourceUri serviceBusRuleId storageAccountId "
        "workspaceId azureApiVersion"
    )
    force_new = names("name resourceUri")
    required = ("resourceUri",)
    body = names(
        "eventHubAuthorizationRuleId eventHubName logAnalyticsDestinationType logs "
        "marketplacePartnerId metrics serviceBusRuleId storageAccountId workspaceId"
    )
    computed = names("id name type systemData")

    def resource_id(self, ctx: Context, inputs: Mapping[str, Any]) -> str:
        """``<resourceUri>/providers/Microsoft.Insights/diagnosticSettings/<name>``."""
        return (
            f"{str(inputs['resourceUri']).rstrip('/')}/providers/{self.arm_type}/{inputs['name']}"
        )

    def validate_put(
        self, ctx: Context, inputs: Mapping[str, Any], *, existing: dict | None = None
    ) -> None:
        """The resource, the workspace and the categories."""
        target = str(inputs["resourceUri"])
        for scope in (target, inputs.get("workspaceId")):
            problem = scope_exists(ctx, str(scope)) if scope else None
            if problem is not None:
                raise problem
        match = _SCOPE.match(target)
        arm_type = f"{match['ns']}/{match['type']}".lower() if match and match["ns"] else ""
        offered = DIAGNOSTIC_CATEGORIES.get(arm_type, frozenset())
        for log in inputs.get("logs") or []:
            category = log.get("category")
            if category is not None and category not in offered:
                raise arm_error(400, "BadRequest", f"Category '{category}' is not supported.")

    def create(self, ctx: Context, inputs: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
        """CanCreate (a setting left by a deleted resource of the same name counts), then PUT."""
        rid = self.resource_id(ctx, inputs)
        with ctx.store.transaction():
            if find_ci(ctx, self.token, rid) is not None:
                raise already_exists(rid)
            self.validate_put(ctx, inputs)
            outputs = self.outputs_for(ctx, rid, inputs, {})
            meta = {"subscription": subscription_id(ctx), "resource": inputs["resourceUri"]}
            self.store_record(ctx, rid, outputs, meta=meta)
        return rid, outputs


ARM_TYPES: tuple[ArmResource, ...] = (
    ResourceGroup(),
    Registry(),
    UserAssignedIdentity(),
    RoleDefinition(),
    RoleAssignment(),
    ContainerGroup(),
    Workspace(),
    DiagnosticSetting(),
)


# ------------------------------------------------------------------- invokes
def get_client_config(ctx: Context, args: Mapping[str, Any]) -> dict[str, Any]:
    """``authorization.get_client_config``: the credential's ids and the subscription."""
    me = caller(ctx)
    return {
        "clientId": me.client_id,
        "objectId": me.object_id,
        "subscriptionId": subscription_id(ctx),
        "tenantId": tenant_id(ctx),
    }


class AzureNative(Cloud):
    """The ARM fake. Credentials fail in Configure (CheckConfig accepts anything), as in v3."""

    def check_config(self, config: Mapping[str, Any], env: Mapping[str, str]) -> None:
        """Nothing: pulumi-azure-native's CheckConfig returns its inputs."""

    def configure_check(self, config: Mapping[str, Any], env: Mapping[str, str]) -> None:
        """Configure's credential resolution: no ARM secret and no ``az login`` fails."""
        has_secret = bool(
            (config.get("clientSecret") or env.get("ARM_CLIENT_SECRET"))
            and (config.get("clientId") or env.get("ARM_CLIENT_ID"))
        )
        if truthy(env.get(NO_CREDENTIALS_ENV)) and not has_secret:
            raise CloudError(NO_CREDENTIALS_TEXT)


AZURE_NATIVE = AzureNative(NAME, VERSION, ARM_TYPES, {GET_CLIENT_CONFIG: get_client_config})


# ------------------------------------------------------------------ the provider
class ArmProvider(FakeProvider):
    """The framework's provider with pulumi-azure-native's Check, Diff and state shape."""

    async def configure(self, request: ConfigureRequest) -> ConfigureResponse:
        """As the framework, then credentials (resolved here, not in CheckConfig)."""
        response = await super().configure(request)
        try:
            self.cloud.configure_check(self.config, self.env)  # type: ignore[attr-defined]
        except CloudError as exc:
            self._log("configure", outcome="error", error=str(exc))
            raise
        return response

    async def check(self, request: CheckRequest) -> CheckResponse:
        """Defaults (azureApiVersion, location, autonames) and the provider's validation."""
        rtype = self.cloud.resources.get(own_type(request.type))
        if not isinstance(rtype, ArmResource):
            return CheckResponse(inputs=request.new_inputs)
        ctx = self._ctx(request.urn)
        olds = request.old_inputs or {}
        news = {k: v for k, v in request.new_inputs.items() if not k.startswith("__")}
        if news.get(rtype.name_key) is None or news[rtype.name_key].value is None:
            if rtype.name_key in olds:
                news[rtype.name_key] = olds[rtype.name_key]
                if CREATE_BEFORE_DELETE in olds:
                    news[CREATE_BEFORE_DELETE] = olds[CREATE_BEFORE_DELETE]
            else:
                news[rtype.name_key] = from_plain(self._autoname(rtype, request))
                news[CREATE_BEFORE_DELETE] = PropertyValue(True)
        if rtype.has_location and (news.get("location") is None or news["location"].value is None):
            location = self._default_location(ctx, olds, news)
            if location is not None:
                news["location"] = location
        if news.get("azureApiVersion") is None:
            news["azureApiVersion"] = PropertyValue(rtype.api_version)
        reasons = rtype.check_inputs(ctx, to_plain_map(news))
        self._log("check", type=rtype.token, name=request.name, failures=len(reasons))
        return CheckResponse(inputs=news, failures=[CheckFailure("", r) for r in reasons])

    @staticmethod
    def _autoname(rtype: ArmResource, request: CheckRequest) -> str:
        seed = hashlib.sha256(bytes(request.random_seed or b"") + request.urn.encode()).hexdigest()
        if rtype.autoname == "uuid":
            return str(uuid.UUID(seed[:32]))
        return f"{request.name}{seed[:8]}"

    def _default_location(
        self, ctx: Context, olds: Mapping[str, PropertyValue], news: Mapping[str, PropertyValue]
    ) -> PropertyValue | None:
        """getDefaultLocation: old inputs, provider config, then the resource group's location."""
        if "location" in olds:
            return olds["location"]
        if self.config.get("location"):
            return PropertyValue(str(self.config["location"]))
        group = news.get("resourceGroupName")
        if group is None:
            return None
        name = to_plain(group)
        if is_unknown(name):
            return PropertyValue(UNKNOWN)
        record = find_ci(ctx, RESOURCE_GROUP, resource_group_id(subscription_id(ctx), name))
        return PropertyValue(record["properties"]["location"]) if record else None

    async def diff(self, request: DiffRequest) -> DiffResponse:
        """Old inputs against new inputs; replacements delete first unless autonamed."""
        old_inputs = request.old_state.get(INPUTS_KEY)
        olds = (
            dict(old_inputs.value)
            if old_inputs is not None and isinstance(old_inputs.value, Mapping)
            else request.old_state
        )
        response = await super().diff(
            DiffRequest(
                request.urn, request.resource_id, olds, request.new_inputs, request.ignore_changes
            )
        )
        create_before_delete = olds.get(CREATE_BEFORE_DELETE)
        response.delete_before_replace = bool(response.replaces) and not (
            create_before_delete is not None and create_before_delete.value is True
        )
        return response

    @staticmethod
    def _with_inputs(
        properties: dict[str, PropertyValue], inputs: Mapping[str, PropertyValue]
    ) -> dict[str, PropertyValue]:
        return {**properties, INPUTS_KEY: PropertyValue(dict(inputs), is_secret=True)}

    async def create(self, request: CreateRequest) -> CreateResponse:
        """As the framework; the state keeps the inputs (``__inputs``) for the next Diff."""
        response = await super().create(request)
        if not request.preview:
            response.properties = self._with_inputs(response.properties, request.properties)
        return response

    async def update(self, request: UpdateRequest) -> UpdateResponse:
        """As the framework, keeping the new inputs in the state."""
        response = await super().update(request)
        response.properties = self._with_inputs(response.properties, request.news)
        return response

    async def read(self, request: ReadRequest) -> ReadResponse:
        """GET, then move only the values that changed in the cloud onto the old inputs."""
        rtype = self._type(own_type(request.type))
        assert isinstance(rtype, ArmResource)
        state = request.properties
        olds = to_plain_map(state)
        ctx = self._ctx(request.urn)
        outputs = await self._operate(
            "read",
            rtype,
            request.urn,
            request.resource_id,
            lambda: rtype.read(ctx, request.resource_id, olds),
        )
        if outputs is None:
            return ReadResponse()
        previous = dict(request.inputs) if request.inputs else None
        if previous is None and state.get(INPUTS_KEY) is not None:
            previous = dict(state[INPUTS_KEY].value)
        if previous is None:  # an import: inputs from the outputs and the id
            previous = {k: from_plain(v) for k, v in rtype.project_inputs(outputs).items()}
        old_projection = rtype.project_inputs(olds)
        new_projection = rtype.project_inputs(outputs)
        inputs = dict(previous)
        for key in old_projection.keys() | new_projection.keys():
            if old_projection.get(key) == new_projection.get(key):
                continue
            if key in new_projection:
                inputs[key] = from_plain(new_projection[key])
            else:
                inputs.pop(key, None)
        secret = secret_keys(state) - {INPUTS_KEY}
        properties = self._outputs(rtype, outputs, secret)
        return ReadResponse(request.resource_id, self._with_inputs(properties, inputs), inputs)


def serve_arm() -> None:
    """Serve the fake through the framework's ``serve()``, with :class:`ArmProvider`.

    ``serve()`` builds a :class:`FakeProvider`; in this (plugin) process that name is
    pointed at the subclass, so the server, the watchdog and the error wrapping stay the
    framework's.
    """
    from tests.fakecloud import provider as framework

    framework.FakeProvider = ArmProvider  # type: ignore[misc]
    framework.serve(AZURE_NATIVE)


if __name__ == "__main__":
    serve_arm()
