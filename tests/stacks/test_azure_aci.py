"""ContainerInstancePool under Pulumi mocks: every resource, its parent, inputs, ordering, outputs.

Each test gets a fresh root stack and a fresh recording monitor from ``tests/pulumi_mocks.py``
(this module adds only Azure's mock answers), so nothing registered by one test is seen by
another. Assertions run inside ``apply`` callbacks; the fixtures fail the test if those
callbacks never ran (under mocks an apply over an unknown value is skipped silently, which would
make a test pass vacuously). The mocks return what Azure returns — ARM ids, principal and client
ids, login servers — because an output a mock forgets resolves to None and silently drops every
input that depends on it.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from typing import Any

import pulumi
import pytest
from pulumi.runtime.rpc import unwrap_rpc_secret

from stacks.azure_aci import (
    ACR_PULL_ROLE_GUID,
    ROLE_ACTIONS,
    TYPE_TOKEN,
    ContainerInstancePool,
    ContainerInstancePoolArgs,
    ContainerInstancePoolOutputs,
    KeylessPoolOutputs,
    entra_tags,
    resource_group_id,
    role_assignment_guid,
    role_definition_arm_id,
    role_definition_guid,
    role_name,
    tags,
)
from tests.pulumi_mocks import (
    RecordingMonitor,
    assert_component_tree,
    assert_secret,
    check_when_resolved,
    monitor_fixture,
)

SUB = "11111111-2222-3333-4444-555555555555"
TENANT = "99999999-8888-7777-6666-555555555555"
CALLER = "0bf7c2a1-0000-4000-8000-00000000ca11"
LOCATION = "westeurope"
RG = "etl-rg"
RG_ID = f"/subscriptions/{SUB}/resourceGroups/{RG}"
REGISTRY = "etl0a1b2c3d"
END_DATE = "2027-01-01T00:00:00Z"

T_RG = "azure-native:resources:ResourceGroup"
T_REGISTRY = "azure-native:containerregistry:Registry"
T_IDENTITY = "azure-native:managedidentity:UserAssignedIdentity"
T_ROLE = "azure-native:authorization:RoleDefinition"
T_ASSIGNMENT = "azure-native:authorization:RoleAssignment"
T_APP = "azuread:index/application:Application"
T_SP = "azuread:index/servicePrincipal:ServicePrincipal"
T_PASSWORD = "azuread:index/applicationPassword:ApplicationPassword"
T_GROUP = "azure-native:containerinstance:ContainerGroup"
T_WORKSPACE = "azure-native:operationalinsights:Workspace"
T_DIAGNOSTICS = "azure-native:monitor:DiagnosticSetting"

EXPECTED_ACTIONS = {
    "Microsoft.Resources/deployments/*",
    "Microsoft.Resources/subscriptions/resourceGroups/read",
    "Microsoft.ContainerInstance/containerGroups/read",
    "Microsoft.ContainerInstance/containerGroups/write",
    "Microsoft.ContainerInstance/containerGroups/delete",
    "Microsoft.ContainerInstance/containerGroups/stop/action",
    "Microsoft.ContainerInstance/containerGroups/containers/logs/read",
    "Microsoft.ManagedIdentity/userAssignedIdentities/read",
    "Microsoft.ManagedIdentity/userAssignedIdentities/assign/action",
}


def fake_guid(*parts: str) -> str:
    """A stable, GUID-shaped id standing in for one Azure generates."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, "|".join(parts)))


class AzureMocks(pulumi.runtime.Mocks):
    """Echo inputs; add what azure-native and azuread compute, shaped like the real values."""

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict]:
        inputs = args.inputs
        out: dict[str, Any] = dict(inputs)
        if args.typ == T_RG:
            rid = resource_group_id(SUB, inputs["resourceGroupName"])
            out.update(name=inputs["resourceGroupName"], properties={"provisioningState": "Ok"})
            return rid, out
        if args.typ == T_REGISTRY:
            rid = (
                f"{resource_group_id(SUB, inputs['resourceGroupName'])}/providers/"
                f"Microsoft.ContainerRegistry/registries/{inputs['registryName']}"
            )
            out.update(
                name=inputs["registryName"],
                loginServer=f"{inputs['registryName'].lower()}.azurecr.io",
                provisioningState="Succeeded",
            )
            return rid, out
        if args.typ == T_IDENTITY:
            rid = (
                f"{resource_group_id(SUB, inputs['resourceGroupName'])}/providers/"
                f"Microsoft.ManagedIdentity/userAssignedIdentities/{inputs['resourceName']}"
            )
            out.update(
                name=inputs["resourceName"],
                principalId=fake_guid("identity-principal", rid),
                clientId=fake_guid("identity-client", rid),
                tenantId=TENANT,
            )
            return rid, out
        if args.typ == T_ROLE:
            rid = (
                f"{inputs['scope']}/providers/Microsoft.Authorization/roleDefinitions/"
                f"{inputs['roleDefinitionId']}"
            )
            out.update(name=inputs["roleDefinitionId"], roleType="CustomRole")
            return rid, out
        if args.typ == T_ASSIGNMENT:
            rid = (
                f"{inputs['scope']}/providers/Microsoft.Authorization/roleAssignments/"
                f"{inputs['roleAssignmentName']}"
            )
            out.update(name=inputs["roleAssignmentName"])
            return rid, out
        if args.typ == T_GROUP:
            rid = (
                f"{resource_group_id(SUB, inputs['resourceGroupName'])}/providers/"
                f"Microsoft.ContainerInstance/containerGroups/{inputs['containerGroupName']}"
            )
            # ARM never returns a secure value: only the variable's name comes back.
            containers = [
                {
                    **c,
                    "environmentVariables": [
                        {k: v for k, v in e.items() if k != "secureValue"}
                        for e in c.get("environmentVariables", [])
                    ],
                }
                # A secret anywhere in a property makes the SDK send the whole property secret.
                for c in unwrap_rpc_secret(inputs["containers"])
            ]
            # ARM answers with a map: identity id -> its principal and client ids.
            identity = dict(inputs.get("identity") or {})
            identity["userAssignedIdentities"] = {
                i: {
                    "principalId": fake_guid("identity-principal", i),
                    "clientId": fake_guid("identity-client", i),
                }
                for i in identity.get("userAssignedIdentities", [])
            }
            out.update(
                name=inputs["containerGroupName"],
                containers=containers,
                identity={**identity, "principalId": "", "tenantId": TENANT},
                provisioningState="Succeeded",
            )
            return rid, out
        if args.typ == T_WORKSPACE:
            rid = (
                f"{resource_group_id(SUB, inputs['resourceGroupName'])}/providers/"
                f"Microsoft.OperationalInsights/workspaces/{inputs['workspaceName']}"
            )
            out.update(name=inputs["workspaceName"], customerId=fake_guid("workspace", rid))
            return rid, out
        if args.typ == T_DIAGNOSTICS:
            rid = (
                f"{inputs['resourceUri']}/providers/Microsoft.Insights/diagnosticSettings/"
                f"{inputs['name']}"
            )
            return rid, out
        if args.typ == T_APP:
            object_id = fake_guid("app-object", inputs["displayName"])
            out.update(
                objectId=object_id,
                clientId=fake_guid("app-client", inputs["displayName"]),
                publisherDomain="contoso.onmicrosoft.com",
            )
            return f"/applications/{object_id}", out
        if args.typ == T_SP:
            object_id = fake_guid("sp-object", inputs["clientId"])
            out.update(objectId=object_id, applicationTenantId=TENANT, type="Application")
            return f"/servicePrincipals/{object_id}", out
        if args.typ == T_PASSWORD:
            key_id = fake_guid("password", inputs["applicationId"])
            out.update(
                keyId=key_id,
                value="Qx8Q~fake.client.secret",
                startDate="2026-01-01T00:00:00Z",
            )
            return f"{inputs['applicationId']}/password/{key_id}", out
        return f"{args.name}-id", out

    def call(self, args: pulumi.runtime.MockCallArgs) -> dict:
        if args.token == "azure-native:authorization:getClientConfig":
            return {
                "clientId": "04b07795-8ddb-461a-bbee-02f9e1bf7b46",  # the Azure CLI's app
                "objectId": CALLER,
                "subscriptionId": SUB,
                "tenantId": TENANT,
            }
        return {}


mon = monitor_fixture(AzureMocks)
preview_mon = monitor_fixture(AzureMocks, preview=True)


def make_args(**overrides: Any) -> ContainerInstancePoolArgs:
    values: dict[str, Any] = {
        "pool": "etl",
        "subscription_id": SUB,
        "location": LOCATION,
        "resource_group_name": RG,
        "registry_name": REGISTRY,
        "identity_name": "etl-identity",
        "app_display_name": "provision-aci-etl",
        "secret_end_date": END_DATE,
    }
    values.update(overrides)
    return ContainerInstancePoolArgs(**values)


def make_pool(name: str = "etl", **overrides: Any) -> ContainerInstancePool:
    return ContainerInstancePool(name, make_args(**overrides))


OUTPUT_NAMES = (
    "subscription_id",
    "tenant_id",
    "location",
    "resource_group_name",
    "registry_name",
    "registry_login_server",
    "identity_id",
    "identity_client_id",
    "client_id",
    "client_secret",
    "client_secret_end_date",
    "credential_created_at",
    "credential_expires_at",
    "role_definition_id",
)


def after_all(pool: ContainerInstancePool, mon: RecordingMonitor, check: Callable[..., None]):
    """Run ``check(values)`` once every resource is registered and every output resolved.

    The secret depends on every grant and the grants on everything else, so once its output
    resolves all children have been registered with the monitor.
    """
    return check_when_resolved(mon, dict(pool.outputs), check)


EXPECTED_CHILDREN = {
    (T_RG, "etl-rg"),
    (T_REGISTRY, "etl-registry"),
    (T_IDENTITY, "etl-identity"),
    (T_ASSIGNMENT, "etl-identity-acrpull"),
    (T_APP, "etl-app"),
    (T_SP, "etl-sp"),
    (T_ROLE, "etl-role"),
    (T_ASSIGNMENT, "etl-sp-role"),
    (T_PASSWORD, "etl-secret"),
}

IDENTITY_ID = f"{RG_ID}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/etl-identity"
REGISTRY_ID = f"{RG_ID}/providers/Microsoft.ContainerRegistry/registries/{REGISTRY}"


@pulumi.runtime.test
def test_every_resource_type_name_and_parent(mon):
    pool = make_pool()

    def check(_):
        assert_component_tree(mon, TYPE_TOKEN, "etl", EXPECTED_CHILDREN)

    return after_all(pool, mon, check)


@pulumi.runtime.test
def test_resource_group(mon):
    pool = make_pool()

    def check(values):
        rg = mon.one(T_RG)
        assert rg.inputs == {
            "resourceGroupName": RG,
            "location": LOCATION,
            "tags": {"managed-by": "provision", "prefect-work-pool": "etl"},
        }
        assert values["resource_group_name"] == RG

    return after_all(pool, mon, check)


@pulumi.runtime.test
def test_registry(mon):
    pool = make_pool()

    def check(values):
        registry = mon.one(T_REGISTRY)
        assert registry.inputs["registryName"] == REGISTRY
        assert registry.inputs["resourceGroupName"] == RG
        assert registry.inputs["location"] == LOCATION
        assert registry.inputs["sku"] == {"name": "Basic"}
        assert registry.inputs["adminUserEnabled"] is False
        assert registry.inputs["anonymousPullEnabled"] is False
        assert mon.one(T_RG).urn in registry.dependencies
        assert values["registry_name"] == REGISTRY
        assert values["registry_login_server"] == "etl0a1b2c3d.azurecr.io"

    return after_all(pool, mon, check)


@pytest.mark.parametrize("sku", ["Standard", "Premium"])
@pulumi.runtime.test
def test_registry_sku(mon, sku):
    pool = make_pool(registry_sku=sku)

    def check(_):
        assert mon.one(T_REGISTRY).inputs["sku"] == {"name": sku}

    return after_all(pool, mon, check)


@pulumi.runtime.test
def test_tags_on_everything_that_takes_tags(mon):
    pool = make_pool(pool="ETL_pool-2")

    def check(_):
        arm = {"managed-by": "provision", "prefect-work-pool": "ETL_pool-2"}
        for typ in (T_RG, T_REGISTRY, T_IDENTITY):
            assert mon.one(typ).inputs["tags"] == arm, typ
        entra = ["managed-by=provision", "prefect-work-pool=ETL_pool-2"]
        for typ in (T_APP, T_SP):
            assert mon.one(typ).inputs["tags"] == entra, typ
        # Role definitions, assignments and passwords take no tags.
        for typ in (T_ROLE, T_ASSIGNMENT, T_PASSWORD):
            assert all("tags" not in r.inputs for r in mon.of_type(typ)), typ

    return after_all(pool, mon, check)


@pulumi.runtime.test
def test_custom_role_has_exactly_the_worker_actions_on_the_group_only(mon):
    pool = make_pool()

    def check(values):
        role = mon.one(T_ROLE)
        (permission,) = role.inputs["permissions"]
        assert set(permission["actions"]) == EXPECTED_ACTIONS
        assert len(permission["actions"]) == len(EXPECTED_ACTIONS)  # no duplicates
        assert set(ROLE_ACTIONS) == EXPECTED_ACTIONS
        assert not permission.get("notActions") and not permission.get("dataActions")
        # Not Contributor: nothing but these actions, and nothing beyond the group.
        assert not any(a in ("*", "*/read") for a in permission["actions"])
        assert role.inputs["scope"] == RG_ID
        assert role.inputs["assignableScopes"] == [RG_ID]
        guid = role.inputs["roleDefinitionId"]
        assert uuid.UUID(guid) and guid == role_definition_guid(RG_ID)
        assert role.inputs["roleName"] == f"provision ACI submitter etl-rg {SUB}"
        assert values["role_definition_id"] == (
            f"/subscriptions/{SUB}/providers/Microsoft.Authorization/roleDefinitions/{guid}"
        )

    return after_all(pool, mon, check)


@pulumi.runtime.test
def test_service_principal_gets_the_custom_role_on_the_group(mon):
    pool = make_pool()

    def check(values):
        grant = mon.one(T_ASSIGNMENT, "etl-sp-role")
        sp_object = fake_guid("sp-object", values["client_id"])
        role_id = values["role_definition_id"]
        assert grant.inputs["scope"] == RG_ID
        assert grant.inputs["principalId"] == sp_object
        assert grant.inputs["principalType"] == "ServicePrincipal"
        assert grant.inputs["roleDefinitionId"] == role_id
        assert grant.inputs["roleAssignmentName"] == role_assignment_guid(RG_ID, sp_object, role_id)
        assert uuid.UUID(grant.inputs["roleAssignmentName"])
        assert {mon.one(T_ROLE).urn, mon.one(T_SP).urn} <= set(grant.dependencies)
        assert grant.custom_timeouts.get("create")

    return after_all(pool, mon, check)


@pulumi.runtime.test
def test_identity_gets_acr_pull_on_the_registry_only(mon):
    pool = make_pool()

    def check(values):
        identity = mon.one(T_IDENTITY)
        assert identity.inputs == {
            "resourceName": "etl-identity",
            "resourceGroupName": RG,
            "location": LOCATION,
            "tags": tags("etl"),
        }
        assert values["identity_id"] == IDENTITY_ID
        assert values["identity_client_id"] == fake_guid("identity-client", IDENTITY_ID)
        pull = mon.one(T_ASSIGNMENT, "etl-identity-acrpull")
        principal = fake_guid("identity-principal", IDENTITY_ID)
        acr_pull = (
            f"/subscriptions/{SUB}/providers/Microsoft.Authorization/roleDefinitions/"
            "7f951dda-4ed3-4680-a7ca-43fe172d538d"
        )
        assert pull.inputs["scope"] == REGISTRY_ID
        assert pull.inputs["principalId"] == principal
        assert pull.inputs["principalType"] == "ServicePrincipal"
        assert pull.inputs["roleDefinitionId"] == acr_pull
        assert pull.inputs["roleAssignmentName"] == role_assignment_guid(
            REGISTRY_ID, principal, acr_pull
        )
        assert {mon.one(T_REGISTRY).urn, identity.urn} <= set(pull.dependencies)
        # Exactly two grants: nothing subscription-wide, nothing for anyone else.
        assert {a.inputs["scope"] for a in mon.of_type(T_ASSIGNMENT)} == {RG_ID, REGISTRY_ID}

    return after_all(pool, mon, check)


@pulumi.runtime.test
def test_app_and_service_principal(mon):
    pool = make_pool()

    def check(values):
        app = mon.one(T_APP)
        assert app.inputs["displayName"] == "provision-aci-etl"
        assert app.inputs["signInAudience"] == "AzureADMyOrg"
        # The caller owns what it created, so it can manage it without a directory role.
        assert app.inputs["owners"] == [CALLER]
        assert "etl" in app.inputs["description"]
        sp = mon.one(T_SP)
        assert sp.inputs["clientId"] == values["client_id"]
        assert sp.inputs["owners"] == [CALLER]
        assert values["client_id"] == fake_guid("app-client", "provision-aci-etl")
        assert values["tenant_id"] == TENANT

    return after_all(pool, mon, check)


@pulumi.runtime.test
def test_secret_inputs_are_constant_and_it_comes_last(mon):
    pool = make_pool()

    def check(values):
        password = mon.one(T_PASSWORD)
        app_object = fake_guid("app-object", "provision-aci-etl")
        # Only the app's id, a constant and the caller's fixed end date: nothing that changes
        # between runs, so a rerun never replaces the secret.
        assert password.inputs == {
            "applicationId": f"/applications/{app_object}",
            "displayName": "provision: Prefect credentials block",
            "endDate": END_DATE,
        }
        assert values["client_secret_end_date"] == END_DATE
        grants = {r.urn for r in mon.of_type(T_ASSIGNMENT)}
        assert grants | {mon.one(T_SP).urn} <= set(password.dependencies)
        # Never rotated: no trigger at all, so pools made before rotation keep their secret.
        assert password.replacement_trigger is None

    return after_all(pool, mon, check)


@pulumi.runtime.test
def test_a_rotation_is_the_secrets_replacement_trigger(mon):
    pool = make_pool(credential_rotation="3", secret_end_date="2027-03-01T00:00:00Z")

    def check(values):
        password = mon.one(T_PASSWORD)
        # The engine replaces it when the value changes: create-before-delete, as no option
        # here asks otherwise, so the block is rewritten before the old secret goes.
        assert password.replacement_trigger == "3"
        assert password.inputs["endDate"] == "2027-03-01T00:00:00Z"
        assert values["credential_expires_at"] == "2027-03-01T00:00:00Z"
        # Nothing else carries the trigger: the app, its principal and grants stay.
        others = [r for r in mon.registrations.values() if r.type != T_PASSWORD]
        assert all(r.replacement_trigger is None for r in others)

    return after_all(pool, mon, check)


@pulumi.runtime.test
def test_the_secrets_dates_are_plain_outputs(mon):
    # list and show read them from the state without a passphrase: never secret.
    pool = make_pool()
    resolved = after_all(pool, mon, lambda v: None)

    def check(values):
        created_is_secret, expires_is_secret, _ = values
        assert created_is_secret is False and expires_is_secret is False

    return pulumi.Output.all(
        pool.outputs["credential_created_at"].is_secret(),
        pool.outputs["credential_expires_at"].is_secret(),
        resolved,
    ).apply(check)


@pulumi.runtime.test
def test_outputs(mon):
    pool = make_pool()

    def check(values):
        assert tuple(pool.outputs) == OUTPUT_NAMES
        assert tuple(ContainerInstancePoolOutputs.__annotations__) == OUTPUT_NAMES
        assert values == {
            "subscription_id": SUB,
            "tenant_id": TENANT,
            "location": LOCATION,
            "resource_group_name": RG,
            "registry_name": REGISTRY,
            "registry_login_server": "etl0a1b2c3d.azurecr.io",
            "identity_id": IDENTITY_ID,
            "identity_client_id": fake_guid("identity-client", IDENTITY_ID),
            "client_id": fake_guid("app-client", "provision-aci-etl"),
            "client_secret": "Qx8Q~fake.client.secret",
            "client_secret_end_date": END_DATE,
            "credential_created_at": "2026-01-01T00:00:00Z",
            "credential_expires_at": END_DATE,
            "role_definition_id": role_definition_arm_id(SUB, role_definition_guid(RG_ID)),
        }

    return after_all(pool, mon, check)


@pulumi.runtime.test
def test_client_secret_is_secret(mon):
    pool = make_pool()
    return assert_secret(pool.outputs["client_secret"], after_all(pool, mon, lambda _: None))


@pulumi.runtime.test
def test_preview_registers_the_same_resources(preview_mon):
    # Under preview nothing may hide inside apply(): the same children must register.
    pool = make_pool()

    def check(_):
        assert preview_mon.registered(besides=TYPE_TOKEN) == EXPECTED_CHILDREN

    return after_all(pool, preview_mon, check)


class EmptyInvokeMocks(AzureMocks):
    """What offline plans do: every invoke answers {} (no credentials, no tenant)."""

    def call(self, args: pulumi.runtime.MockCallArgs) -> dict:
        return {}


offline_mon = monitor_fixture(EmptyInvokeMocks, preview=True)


@pulumi.runtime.test
def test_tolerates_an_empty_client_config(offline_mon):
    mon = offline_mon
    pool = make_pool()

    def check(values):
        assert values["tenant_id"] is None
        assert mon.one(T_APP).inputs["owners"] == []
        assert mon.registered() >= EXPECTED_CHILDREN

    return after_all(pool, mon, check)


# -- pure helpers -------------------------------------------------------------------------------


def test_assignment_guids_are_deterministic_and_distinct():
    role = role_definition_arm_id(SUB, ACR_PULL_ROLE_GUID)
    a = role_assignment_guid(REGISTRY_ID, "p1", role)
    assert a == role_assignment_guid(REGISTRY_ID, "p1", role)
    # ARM ids come back in any case: same grant, same name.
    assert a == role_assignment_guid(REGISTRY_ID.upper(), "P1", role.upper())
    others = {
        role_assignment_guid(RG_ID, "p1", role),  # another scope
        role_assignment_guid(REGISTRY_ID, "p2", role),  # another principal
        role_assignment_guid(REGISTRY_ID, "p1", role_definition_arm_id(SUB, "x")),  # role
    }
    assert len(others) == 3 and a not in others
    assert re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}", a)


def test_role_definition_guid_per_group():
    assert role_definition_guid(RG_ID) == role_definition_guid(RG_ID.lower())
    other = resource_group_id(SUB, "other-rg")
    assert role_definition_guid(RG_ID) != role_definition_guid(other)


def test_role_name_is_unique_per_group_and_subscription():
    assert role_name(SUB, RG) != role_name(SUB, "other-rg")
    assert role_name(SUB, RG) != role_name("0" * 8 + SUB[8:], RG)
    assert role_name(SUB, "odd.(group)") == f"provision ACI submitter odd--group- {SUB}"


def test_tags():
    assert tags("etl") == {"managed-by": "provision", "prefect-work-pool": "etl"}
    assert len(tags("x" * 300)["prefect-work-pool"]) == 256
    assert entra_tags("etl") == ["managed-by=provision", "prefect-work-pool=etl"]


# -- keyless: the submitter is the worker's managed identity ------------------------------------

KEYLESS_CHILDREN = {
    (T_RG, "etl-rg"),
    (T_REGISTRY, "etl-registry"),
    (T_IDENTITY, "etl-identity"),
    (T_ASSIGNMENT, "etl-identity-acrpull"),
    (T_ROLE, "etl-role"),
    (T_IDENTITY, "etl-worker-identity"),
    (T_ASSIGNMENT, "etl-worker-role"),
}
KEYLESS_OUTPUT_NAMES = (
    "subscription_id",
    "tenant_id",
    "location",
    "resource_group_name",
    "registry_name",
    "registry_login_server",
    "identity_id",
    "identity_client_id",
    "role_definition_id",
    "worker_identity_id",
    "worker_identity_client_id",
    "worker_identity_principal_id",
)
WORKER_IDENTITY_ID = (
    f"{RG_ID}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/etl-worker"
)


def make_keyless_pool(name: str = "etl", **overrides: Any) -> ContainerInstancePool:
    return ContainerInstancePool(name, make_args(worker_identity_name="etl-worker", **overrides))


@pulumi.runtime.test
def test_keyless_makes_no_entra_object_and_no_credential(mon):
    pool = make_keyless_pool()

    def check(values):
        assert_component_tree(mon, TYPE_TOKEN, "etl", KEYLESS_CHILDREN)
        # No application, no service principal, no password: nothing from azuread at all.
        for typ in (T_APP, T_SP, T_PASSWORD):
            assert mon.of_type(typ) == [], typ
        assert not any(r.type.startswith("azuread:") for r in mon.registrations.values())
        credential = {"client_id", "client_secret", "client_secret_end_date"}
        assert not (credential | {"credential_created_at", "credential_expires_at"}) & set(values)

    return check_when_resolved(mon, dict(pool.outputs), check)


@pulumi.runtime.test
def test_keyless_worker_identity_gets_the_custom_role_on_the_group(mon):
    pool = make_keyless_pool()

    def check(values):
        worker = mon.one(T_IDENTITY, "etl-worker-identity")
        assert worker.inputs == {
            "resourceName": "etl-worker",
            "resourceGroupName": RG,
            "location": LOCATION,
            "tags": tags("etl"),
        }
        principal = fake_guid("identity-principal", WORKER_IDENTITY_ID)
        role_id = values["role_definition_id"]
        grant = mon.one(T_ASSIGNMENT, "etl-worker-role")
        assert grant.inputs["scope"] == RG_ID
        assert grant.inputs["principalId"] == principal
        assert grant.inputs["principalType"] == "ServicePrincipal"
        assert grant.inputs["roleDefinitionId"] == role_id
        assert grant.inputs["roleAssignmentName"] == role_assignment_guid(RG_ID, principal, role_id)
        assert {mon.one(T_ROLE).urn, worker.urn} <= set(grant.dependencies)
        assert grant.custom_timeouts.get("create")
        # The same role as the app would get, and the jobs' identity keeps only AcrPull.
        (permission,) = mon.one(T_ROLE).inputs["permissions"]
        assert set(permission["actions"]) == EXPECTED_ACTIONS
        job_principal = fake_guid("identity-principal", IDENTITY_ID)
        assert [
            a.name for a in mon.of_type(T_ASSIGNMENT) if a.inputs["principalId"] == job_principal
        ] == ["etl-identity-acrpull"]

    return check_when_resolved(mon, dict(pool.outputs), check)


@pulumi.runtime.test
def test_keyless_outputs(mon):
    pool = make_keyless_pool()

    def check(values):
        assert tuple(pool.outputs) == KEYLESS_OUTPUT_NAMES
        assert tuple(KeylessPoolOutputs.__annotations__) == KEYLESS_OUTPUT_NAMES
        assert values == {
            "subscription_id": SUB,
            "tenant_id": TENANT,
            "location": LOCATION,
            "resource_group_name": RG,
            "registry_name": REGISTRY,
            "registry_login_server": "etl0a1b2c3d.azurecr.io",
            "identity_id": IDENTITY_ID,
            "identity_client_id": fake_guid("identity-client", IDENTITY_ID),
            "role_definition_id": role_definition_arm_id(SUB, role_definition_guid(RG_ID)),
            "worker_identity_id": WORKER_IDENTITY_ID,
            "worker_identity_client_id": fake_guid("identity-client", WORKER_IDENTITY_ID),
            "worker_identity_principal_id": fake_guid("identity-principal", WORKER_IDENTITY_ID),
        }

    return check_when_resolved(mon, dict(pool.outputs), check)


@pulumi.runtime.test
def test_keyless_worker_identity_id_carries_its_grant(mon):
    # Whatever runs as the identity takes its id from this output: it must wait for the grant.
    pool = make_keyless_pool()

    async def resources() -> set[str]:
        found = await pool.outputs["worker_identity_id"].resources()
        return {r.pulumi_resource_name for r in found}

    names = pulumi.Output.from_input(resources())

    def check(values):
        assert {"etl-worker-identity", "etl-worker-role", "etl-identity-acrpull"} <= values["names"]

    return check_when_resolved(mon, {**pool.outputs, "names": names}, check)


@pulumi.runtime.test
def test_keyless_preview_registers_the_same_resources(preview_mon):
    pool = make_keyless_pool()

    def check(_):
        assert preview_mon.registered(besides=TYPE_TOKEN) == KEYLESS_CHILDREN

    return check_when_resolved(preview_mon, dict(pool.outputs), check)
