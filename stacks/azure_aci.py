"""An Azure subscription's side of an Azure Container Instances job pool: identities, least grants.

``ContainerInstancePool`` creates, in one subscription and location:

- a resource group holding everything below and every container group the jobs create;
- the job submitter's identity, one of two kinds:
  - an Entra ID application, its service principal and one client secret with a fixed end
    date: the credential handed to a submitter running anywhere (ARM cannot create app
    registrations, so these come from pulumi-azuread; everything else from
    pulumi-azure-native). A new ``credential_rotation`` replaces the secret,
    create-before-delete, and its start and end dates are exported
    (``credential_created_at``, ``credential_expires_at``);
  - or, when the submitter runs in Azure itself (``worker_identity_name``), a second
    user-assigned managed identity it runs as: no application, no service principal, no
    secret, nothing from pulumi-azuread at all;
- a custom role holding exactly the ARM actions the submitter needs (an ARM template
  deployment that creates a container group, then get/poll, logs, stop and delete), assignable
  and assigned on the resource group only, to the submitter;
- a user-assigned managed identity the container groups run as, with ``AcrPull`` on the
  registry only, so jobs pull their images without any registry password;
- an Azure Container Registry (admin user disabled) for the job images.

Role definitions and role assignments are named by GUIDs derived from what they are
(:func:`role_definition_guid`, :func:`role_assignment_guid`), so a rerun, or a rerun after an
interrupted one, addresses the same object instead of adding a duplicate. Assignments name
``principal_type`` because ARM otherwise looks a brand-new principal up in Entra ID, which may
not have replicated yet.

It is plain Pulumi: it knows nothing of the tool that drives it or of what submits the jobs.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from typing import TypedDict

import pulumi

from stacks import sdk_modules

azuread = sdk_modules.load(
    "pulumi_azuread", "application", "application_password", "service_principal"
)
_azure = sdk_modules.load(
    "pulumi_azure_native",
    authorization=("_inputs", "get_client_config", "role_assignment", "role_definition"),
    containerregistry=("_inputs", "registry"),
    managedidentity=("user_assigned_identity",),
    resources=("resource_group",),
)
authorization = _azure.authorization
containerregistry = _azure.containerregistry
managedidentity = _azure.managedidentity
resources = _azure.resources

TYPE_TOKEN = "provision:azure:ContainerInstancePool"

ROLE_ACTIONS: dict[str, str] = {
    # ARM template deployment: the submitter creates each container group by deploying a
    # template into the resource group (deployments.begin_create_or_update) and polls that
    # deployment. ``*`` = write, read, delete, validate/action, operationstatuses/read,
    # whatIf/cancel/exportTemplate of deployment records; what a template may create is still
    # checked action by action against the caller's other permissions.
    "Microsoft.Resources/deployments/*": (
        "Create each run's container group through an ARM template deployment and poll it."
    ),
    "Microsoft.Resources/subscriptions/resourceGroups/read": (
        "The template resolves [resourceGroup().location]; deployments read their group."
    ),
    "Microsoft.ContainerInstance/containerGroups/read": (
        "container_groups.get: poll the container's state and exit code; check a group still "
        "exists before cancelling it."
    ),
    "Microsoft.ContainerInstance/containerGroups/write": (
        "The deployment creates (PUTs) the container group as the caller."
    ),
    "Microsoft.ContainerInstance/containerGroups/delete": (
        "container_groups.begin_delete after every run and on cancellation."
    ),
    "Microsoft.ContainerInstance/containerGroups/stop/action": (
        "container_groups.stop: with keep_container_group, a finished run's group is stopped "
        "instead of deleted."
    ),
    "Microsoft.ContainerInstance/containerGroups/containers/logs/read": (
        "containers.list_logs: stream the job's output (stream_output)."
    ),
    "Microsoft.ManagedIdentity/userAssignedIdentities/read": (
        "ARM reads the user-assigned identity the template attaches to the group."
    ),
    "Microsoft.ManagedIdentity/userAssignedIdentities/assign/action": (
        "Attaching a user-assigned identity to a container group requires assign on it; the "
        "group pulls its image from the registry as that identity."
    ),
}
"""Every action of the submitter's custom role, with the worker call that needs it."""

ACR_PULL_ROLE_GUID = "7f951dda-4ed3-4680-a7ca-43fe172d538d"
"""Built-in ``AcrPull`` (the same GUID in every Azure tenant)."""

PASSWORD_DISPLAY_NAME = "provision: Prefect credentials block"
"""The client secret's display name: how the secrets this tool makes are told apart from
others on the app (an untracked one left by an interrupted run is removed by it)."""

PRINCIPAL_TYPE = "ServicePrincipal"
"""Both principals granted here are service principals (an app's and a managed identity's)."""

# Our own namespace for uuid5: GUIDs derived from resource ids never collide with anyone
# else's deterministic GUIDs (e.g. Bicep's guid()) for the same ids.
_GUID_NAMESPACE = uuid.UUID("4f1f3c8e-6a53-5b0c-9f0e-3d2a1c7b9e21")

# Role assignments hit ARM right after Entra ID created the principal they name; give the
# provider room to retry its own eventual-consistency errors (and a bound, so a stuck call
# fails instead of hanging the run).
_RBAC_TIMEOUTS = pulumi.CustomTimeouts(create="10m", update="10m", delete="10m")

_TAG_VALUE_MAX = 256


def tags(pool: str) -> dict[str, str]:
    """The ARM tags every taggable resource gets."""
    return {"managed-by": "provision", "prefect-work-pool": pool[:_TAG_VALUE_MAX]}


def entra_tags(pool: str) -> list[str]:
    """Entra ID objects take a list of strings, not a map: the same tags as ``key=value``."""
    return [f"{k}={v}" for k, v in tags(pool).items()]


def resource_group_id(subscription_id: str, resource_group: str) -> str:
    """The ARM id of a resource group."""
    return f"/subscriptions/{subscription_id}/resourceGroups/{resource_group}"


def role_definition_guid(resource_group_scope: str) -> str:
    """The custom role's GUID name: one role per resource group, stable across runs."""
    return str(uuid.uuid5(_GUID_NAMESPACE, f"role-definition|{resource_group_scope.lower()}"))


def role_definition_arm_id(subscription_id: str, guid: str) -> str:
    """A role definition id in the form role assignments take (custom and built-in alike)."""
    return (
        f"/subscriptions/{subscription_id}/providers/Microsoft.Authorization/roleDefinitions/{guid}"
    )


def role_assignment_guid(scope: str, principal_id: str, role_definition_id: str) -> str:
    """A role assignment's GUID name from what it grants: same grant, same name, every run.

    ARM ids are case-insensitive and come back in varying case; lowercase them first.
    """
    key = "|".join(str(part).lower() for part in (scope, principal_id, role_definition_id))
    return str(uuid.uuid5(_GUID_NAMESPACE, key))


def role_name(subscription_id: str, resource_group: str) -> str:
    """The custom role's display name, unique in the tenant as Azure requires."""
    safe = re.sub(r"[^A-Za-z0-9 _-]", "-", resource_group)
    return f"provision ACI submitter {safe} {subscription_id}"


@dataclass
class ContainerInstancePoolArgs:
    """Inputs of :class:`ContainerInstancePool`. Names must already satisfy Azure's rules."""

    pool: str
    """Name of the pool these resources serve; used in tags and descriptions."""
    subscription_id: str
    location: str
    resource_group_name: str
    registry_name: str
    """5-50 alphanumerics, globally unique."""
    identity_name: str
    app_display_name: str
    secret_end_date: str
    """RFC 3339 end of the client secret. Computed once by the caller and kept: the secret is
    re-created whenever this changes."""
    credential_rotation: str | None = None
    """The client secret's ``replacement_trigger``: a new value makes a new secret (created
    before the old one is deleted, so whatever reads it can switch first). ``None``: no trigger,
    as for a secret never rotated."""
    registry_sku: str = "Basic"
    worker_identity_name: str | None = None
    """``None``: the submitter is an app registration with a client secret (``app_display_name``,
    ``secret_end_date``). A name: the submitter runs in Azure as a user-assigned identity of
    that name, which gets the custom role; no app registration and no secret are made."""


class _PoolOutputs(TypedDict):
    """What both kinds of submitter share."""

    subscription_id: str
    tenant_id: pulumi.Output[str]
    location: str
    resource_group_name: pulumi.Output[str]
    registry_name: pulumi.Output[str]
    registry_login_server: pulumi.Output[str]
    identity_id: pulumi.Output[str]
    """ARM id of the user-assigned identity the container groups run as."""
    identity_client_id: pulumi.Output[str]


class ContainerInstancePoolOutputs(_PoolOutputs):
    """What the component registers and the stack exports, one name per value (app
    registration submitter)."""

    client_id: pulumi.Output[str]
    """The application (client) id of the submitter's app registration."""
    client_secret: pulumi.Output[str]
    """The submitter's client secret. Secret."""
    client_secret_end_date: pulumi.Output[str]
    credential_created_at: pulumi.Output[str]
    """When Entra ID made the secret (its start date, RFC 3339 UTC): its age counts from here."""
    credential_expires_at: pulumi.Output[str]
    """When the secret stops working (its end date, RFC 3339 UTC)."""
    role_definition_id: str


class KeylessPoolOutputs(_PoolOutputs):
    """What the component registers and the stack exports when the submitter runs in Azure as a
    managed identity: no client id, no secret."""

    role_definition_id: str
    worker_identity_id: pulumi.Output[str]
    """ARM id of the identity the submitter runs as; resolves once the pool's role assignments
    exist, so whatever runs as it waits for its permissions."""
    worker_identity_client_id: pulumi.Output[str]
    """Its client id: how Azure SDKs running as it pick it (``AZURE_CLIENT_ID``)."""
    worker_identity_principal_id: pulumi.Output[str]


@dataclass(frozen=True)
class _Grant:
    """The custom role as its assignment needs it."""

    role: authorization.RoleDefinition
    role_id: str
    """The subscription-level id assignments take."""
    scope: pulumi.Output[str]
    """The resource group's ARM id: where the role is defined and assigned."""


class ContainerInstancePool(pulumi.ComponentResource):
    """Everything a container-group submitter needs in one resource group; see the module doc."""

    outputs: ContainerInstancePoolOutputs | KeylessPoolOutputs

    def __init__(
        self,
        name: str,
        args: ContainerInstancePoolArgs,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__(TYPE_TOKEN, name, None, opts)

        sub = args.subscription_id
        arm_tags = tags(args.pool)
        # Who runs this program: its tenant is the credential's tenant, and it becomes owner of
        # the app registration so it can manage it later without a directory-wide admin role.
        # Offline plans answer invokes with {}: every field is then None, and tolerated.
        caller = authorization.get_client_config_output(
            opts=pulumi.InvokeOutputOptions(parent=self)
        )

        group = resources.ResourceGroup(
            f"{name}-rg",
            resource_group_name=args.resource_group_name,
            location=args.location,
            tags=arm_tags,
            opts=self._child(),
        )

        # -- Images: a registry and the identity the container groups pull them as.
        registry = containerregistry.Registry(
            f"{name}-registry",
            registry_name=args.registry_name,
            resource_group_name=group.name,
            location=args.location,
            sku=containerregistry.SkuArgs(name=args.registry_sku),
            # No shared admin password: pushes use the pusher's own Entra identity, pulls the
            # managed identity below.
            admin_user_enabled=False,
            anonymous_pull_enabled=False,
            tags=arm_tags,
            opts=self._child(),
        )
        identity = managedidentity.UserAssignedIdentity(
            f"{name}-identity",
            resource_name_=args.identity_name,
            resource_group_name=group.name,
            location=args.location,
            tags=arm_tags,
            opts=self._child(),
        )
        acr_pull_id = role_definition_arm_id(sub, ACR_PULL_ROLE_GUID)
        acr_pull = authorization.RoleAssignment(
            f"{name}-identity-acrpull",
            role_assignment_name=pulumi.Output.all(registry.id, identity.principal_id).apply(
                lambda v: role_assignment_guid(v[0], v[1], acr_pull_id)
            ),
            scope=registry.id,
            principal_id=identity.principal_id,
            principal_type=PRINCIPAL_TYPE,
            role_definition_id=acr_pull_id,
            description=f"Container groups of pool {args.pool} pull their images.",
            opts=self._child(depends_on=[registry, identity], custom_timeouts=_RBAC_TIMEOUTS),
        )

        # -- Least privilege for the submitter, on the resource group only.
        scope = group.id
        role_guid = role_definition_guid(resource_group_id(sub, args.resource_group_name))
        role_id = role_definition_arm_id(sub, role_guid)
        role = authorization.RoleDefinition(
            f"{name}-role",
            role_definition_id=role_guid,
            role_name=role_name(sub, args.resource_group_name),
            description=(
                "Exactly the ARM actions a Prefect ACI worker makes: deploy, watch, read logs "
                f"of, stop and delete container groups. Pool {args.pool}; managed by provision."
            ),
            scope=scope,
            assignable_scopes=[scope],
            permissions=[authorization.PermissionArgs(actions=list(ROLE_ACTIONS))],
            opts=self._child(depends_on=[group]),
        )
        common = _PoolOutputs(
            subscription_id=sub,
            tenant_id=caller.tenant_id,
            location=args.location,
            resource_group_name=group.name,
            registry_name=registry.name,
            registry_login_server=registry.login_server,
            identity_id=identity.id,
            identity_client_id=identity.client_id,
        )
        grant = _Grant(role, role_id, scope)
        if args.worker_identity_name is None:
            self.outputs = self._app_submitter(name, args, caller, grant, acr_pull, common)
        else:
            self.outputs = self._identity_submitter(name, args, grant, acr_pull, common)
        self.register_outputs(dict(self.outputs))

    def _child(self, **extra) -> pulumi.ResourceOptions:
        return pulumi.ResourceOptions(parent=self, **extra)

    def _app_submitter(
        self,
        name: str,
        args: ContainerInstancePoolArgs,
        caller: pulumi.Output,
        grant: _Grant,
        acr_pull: authorization.RoleAssignment,
        common: _PoolOutputs,
    ) -> ContainerInstancePoolOutputs:
        """An app registration, its service principal with the custom role, and its secret."""

        # The caller owns what it creates, so it can manage it later without a directory-wide
        # admin role (offline plans answer invokes with {}: no owner then).
        owners = caller.object_id.apply(lambda oid: [oid] if oid else [])
        app = azuread.Application(
            f"{name}-app",
            display_name=args.app_display_name,
            description=f"Submits the container groups of Prefect pool {args.pool}. "
            "Managed by provision.",
            sign_in_audience="AzureADMyOrg",
            owners=owners,
            tags=entra_tags(args.pool),
            opts=self._child(),
        )
        principal = azuread.ServicePrincipal(
            f"{name}-sp",
            client_id=app.client_id,
            # An application has at most one principal: if a killed run created it but never
            # recorded it, adopt it instead of failing with "already exists".
            use_existing=True,
            owners=owners,
            tags=entra_tags(args.pool),
            opts=self._child(),
        )
        role_id = grant.role_id
        role_grant = authorization.RoleAssignment(
            f"{name}-sp-role",
            role_assignment_name=pulumi.Output.all(grant.scope, principal.object_id).apply(
                lambda v: role_assignment_guid(v[0], v[1], role_id)
            ),
            scope=grant.scope,
            principal_id=principal.object_id,
            principal_type=PRINCIPAL_TYPE,
            # Assignments take the subscription-level form of a custom role's id, whatever
            # scope the definition was created at; depends_on keeps the ordering.
            role_definition_id=role_id,
            description=f"Pool {args.pool} submits its container groups.",
            opts=self._child(depends_on=[grant.role, principal], custom_timeouts=_RBAC_TIMEOUTS),
        )

        # -- The credential, last: a secret that exists means its grants exist. Its inputs are
        # the app's id, a constant and a date fixed by the caller, so a rerun never replaces it
        # (a new secret would invalidate the one stored downstream). A rotation is the
        # replacement trigger changing (rather than the provider's rotate_when_changed input):
        # the engine then creates the new secret, updates what depends on it, and only then
        # deletes the old one, the same way for every cloud's credential. No start date: Entra
        # ID's "now" is the one clock that cannot make a new secret not yet valid.
        password = azuread.ApplicationPassword(
            f"{name}-secret",
            application_id=app.id,
            display_name=PASSWORD_DISPLAY_NAME,
            end_date=args.secret_end_date,
            opts=self._child(
                depends_on=[principal, role_grant, acr_pull],
                custom_timeouts=_RBAC_TIMEOUTS,
                replacement_trigger=args.credential_rotation,
            ),
        )
        return ContainerInstancePoolOutputs(
            **common,
            client_id=app.client_id,
            # pulumi-azuread already marks value secret; wrap anyway so no refactor can leak it.
            client_secret=pulumi.Output.secret(password.value),
            client_secret_end_date=password.end_date,
            credential_created_at=password.start_date,
            credential_expires_at=password.end_date,
            role_definition_id=role_id,
        )

    def _identity_submitter(
        self,
        name: str,
        args: ContainerInstancePoolArgs,
        grant: _Grant,
        acr_pull: authorization.RoleAssignment,
        common: _PoolOutputs,
    ) -> KeylessPoolOutputs:
        """A user-assigned identity with the custom role: the submitter runs in Azure as it and
        gets its tokens from the platform, so there is no credential to make, store or rotate."""

        assert args.worker_identity_name is not None
        role_id = grant.role_id
        worker = managedidentity.UserAssignedIdentity(
            f"{name}-worker-identity",
            resource_name_=args.worker_identity_name,
            resource_group_name=common["resource_group_name"],
            location=args.location,
            tags=tags(args.pool),
            opts=self._child(),
        )
        role_grant = authorization.RoleAssignment(
            f"{name}-worker-role",
            role_assignment_name=pulumi.Output.all(grant.scope, worker.principal_id).apply(
                lambda v: role_assignment_guid(v[0], v[1], role_id)
            ),
            scope=grant.scope,
            principal_id=worker.principal_id,
            principal_type=PRINCIPAL_TYPE,
            role_definition_id=role_id,
            description=f"The worker of pool {args.pool} submits its container groups.",
            opts=self._child(depends_on=[grant.role, worker], custom_timeouts=_RBAC_TIMEOUTS),
        )
        # Whatever runs as the identity takes its id from here, so it waits for every grant (its
        # own, and the jobs' AcrPull it will rely on), as the client secret does on the other
        # path.
        granted_id = pulumi.Output.all(worker.id, role_grant.id, acr_pull.id).apply(lambda v: v[0])
        return KeylessPoolOutputs(
            **common,
            role_definition_id=role_id,
            worker_identity_id=granted_id,
            worker_identity_client_id=worker.client_id,
            worker_identity_principal_id=worker.principal_id,
        )
