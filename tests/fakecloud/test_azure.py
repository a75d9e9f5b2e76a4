"""The azure-native and azuread fakes, called directly (no engine), and once through the engine."""

from __future__ import annotations

import importlib
import inspect
import json
import re
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pulumi
import pulumi_azure_native
import pulumi_azuread
import pytest
from pulumi.provider.experimental.provider import PropertyDiffKind

from tests.fakecloud import azure_native as arm
from tests.fakecloud import azuread as aad
from tests.fakecloud.azure_native import (
    AZURE_NATIVE,
    CONTAINER_GROUP,
    DIAGNOSTIC_SETTING,
    IDENTITY,
    REGISTRY,
    RESOURCE_GROUP,
    ROLE_ASSIGNMENT,
    ROLE_DEFINITION,
    WORKSPACE,
    ArmProvider,
    secure_value_matches,
)
from tests.fakecloud.azuread import (
    APPLICATION,
    APPLICATION_PASSWORD,
    AZUREAD,
    SERVICE_PRINCIPAL,
)
from tests.fakecloud.driver import Driver
from tests.fakecloud.harness import engine_env, inline_stack, require_pulumi_root
from tests.fakecloud.provider import UNKNOWN, CloudError, FakeProvider, Secret, to_plain_map
from tests.fakecloud.sdk_source import class_source
from tests.fakecloud.state import FakeCloud

SUB = "6b1f7c2e-3d4a-4e5b-8c9d-0a1b2c3d4e5f"
OTHER_SUB = "0f0e0d0c-0b0a-4909-8807-060504030201"
TENANT = "0c1d2e3f-4a5b-4c6d-8e7f-9a0b1c2d3e4f"
RG = "pool-rg"
RG_ID = f"/subscriptions/{SUB}/resourceGroups/{RG}"
ACR_PULL = f"/subscriptions/{SUB}/providers/Microsoft.Authorization/roleDefinitions/" + (
    "7f951dda-4ed3-4680-a7ca-43fe172d538d"
)
ROLE_GUID = "3d2c1b0a-9f8e-4d7c-8b6a-5f4e3d2c1b0a"
ROLE_ID = f"/subscriptions/{SUB}/providers/Microsoft.Authorization/roleDefinitions/{ROLE_GUID}"
GRANT_NAME = "11111111-2222-4333-8444-555555555555"
REGISTRY_INPUTS = {
    "registryName": "poolImages1",
    "resourceGroupName": RG,
    "location": "westeurope",
    "sku": {"name": "Basic"},
    # The SDK's own defaults, sent by every program.
    "adminUserEnabled": False,
    "anonymousPullEnabled": False,
    "networkRuleBypassOptions": "AzureServices",
    "publicNetworkAccess": "Enabled",
    "zoneRedundancy": "Disabled",
    "tags": {"managed-by": "provision"},
}
ROLE_INPUTS = {
    "roleDefinitionId": ROLE_GUID,
    "roleName": "pool submitter",
    "scope": RG_ID,
    "assignableScopes": [RG_ID],
    "permissions": [{"actions": ["Microsoft.ContainerInstance/containerGroups/read"]}],
}


def plain(outputs: dict[str, Any]) -> dict[str, Any]:
    """Outputs without the PropertyValue wrapping (and without ``__inputs``)."""
    return to_plain_map(outputs)


def reasons(driver: Driver, token: str, inputs: dict[str, Any]) -> list[str]:
    """Check's failure reasons (azure-native names no property)."""
    found = driver.check(token, "r", inputs).failures
    assert all(f.property == "" for f in found)
    return [f.reason for f in found]


def raises(fn: Callable[[], Any]) -> str:
    """The CloudError text ``fn`` fails with."""
    with pytest.raises(CloudError) as info:
        fn()
    return str(info.value)


@pytest.fixture
def make_arm(state_dir: Path) -> Callable[..., Driver]:
    """``make_arm(config=None, **env)``: an azure-native provider process of its own."""

    def make(config: dict[str, Any] | None = None, **env: str) -> Driver:
        env = {"ARM_TENANT_ID": TENANT, **env}
        driver = Driver(ArmProvider(AZURE_NATIVE, state_dir=state_dir, env=env))
        driver.configure(**({"subscriptionId": SUB} if config is None else config))
        return driver

    return make


@pytest.fixture
def make_aad(state_dir: Path) -> Callable[..., Driver]:
    """``make_aad(**env)``: an azuread provider process of its own."""

    def make(**env: str) -> Driver:
        driver = Driver(
            FakeProvider(AZUREAD, state_dir=state_dir, env={"ARM_TENANT_ID": TENANT, **env})
        )
        driver.configure()
        return driver

    return make


@pytest.fixture
def az(make_arm: Callable[..., Driver]) -> Driver:
    """azure-native in subscription SUB of tenant TENANT."""
    return make_arm()


@pytest.fixture
def ad(make_aad: Callable[..., Driver]) -> Driver:
    """azuread in tenant TENANT."""
    return make_aad()


def group(az: Driver, name: str = RG, location: str = "westeurope") -> tuple[str, dict]:
    return az.up(RESOURCE_GROUP, name, {"resourceGroupName": name, "location": location})


def app_and_sp(ad: Driver, name: str = "pool") -> tuple[dict, dict]:
    _, app = ad.up(APPLICATION, f"{name}-app", {"displayName": f"provision-aci-{name}"})
    _, sp = ad.up(SERVICE_PRINCIPAL, f"{name}-sp", {"clientId": plain(app)["clientId"]})
    return plain(app), plain(sp)


AUTH = "admin:s3cr3t-pass"
WORKSPACE_INPUTS = {
    "workspaceName": "pool-logs",
    "resourceGroupName": RG,
    "sku": {"name": "PerGB2018"},
    "retentionInDays": 30,
}
WORKSPACE_ID = f"{RG_ID}/providers/Microsoft.OperationalInsights/workspaces/pool-logs"
GROUP_ID = f"{RG_ID}/providers/Microsoft.ContainerInstance/containerGroups/pool-worker-0"


def worker_group(
    identity_id: str, *, secret: str = AUTH, cpu: float = 1.0, **extra: Any
) -> dict[str, Any]:
    """A worker's container group: plain and secure variables, one user-assigned identity."""
    return {
        "containerGroupName": "pool-worker-0",
        "resourceGroupName": RG,
        "osType": "Linux",
        "restartPolicy": "Always",
        "identity": {"type": "UserAssigned", "userAssignedIdentities": [identity_id]},
        "containers": Secret(
            [
                {
                    "name": "worker",
                    "image": "prefecthq/prefect:3.8.8-python3.12",
                    "command": ["prefect", "worker", "start", "--pool", "pool"],
                    "environmentVariables": [
                        {"name": "PREFECT_API_URL", "value": "http://127.0.0.1:4200/api"},
                        {"name": "PREFECT_API_AUTH_STRING", "secureValue": secret},
                    ],
                    "resources": {"requests": {"cpu": cpu, "memoryInGB": 1.5}},
                }
            ]
        ),
        **extra,
    }


def diagnostics(resource_id: str, *categories: str) -> dict[str, Any]:
    """A diagnostic setting routing ``categories`` of ``resource_id`` to the pool's workspace."""
    return {
        "name": "worker-logs",
        "resourceUri": resource_id,
        "workspaceId": WORKSPACE_ID,
        "logAnalyticsDestinationType": "Dedicated",
        "logs": [
            {"category": c, "enabled": True}
            for c in categories or ("ContainerInstanceLog", "ContainerEvent")
        ],
    }


def worker_identity(az: Driver) -> str:
    """The group RG and an identity in it; returns the identity's ARM id."""
    group(az)
    rid, _ = az.up(IDENTITY, "worker-id", {"resourceName": "pool-worker", "resourceGroupName": RG})
    return rid


def grant(principal_id: str, *, role: str = ACR_PULL, scope: str = RG_ID, **extra: Any) -> dict:
    return {
        "roleAssignmentName": GRANT_NAME,
        "scope": scope,
        "principalId": principal_id,
        "principalType": "ServicePrincipal",
        "roleDefinitionId": role,
        **extra,
    }


# ------------------------------------------------------- faithful to the SDKs
_BASE_PROPERTIES = {"urn", "pulumi_resource_name", "pulumi_resource_type"}


def _wire_names(cls: type) -> set[str]:
    found = set()
    for attr, member in inspect.getmembers(cls):
        if isinstance(member, property) and attr not in _BASE_PROPERTIES:
            found.add(getattr(member.fget, "_pulumi_name", None) or attr)
    return found


def _sdk_class(token: str) -> tuple[type, type]:
    """The resource class and its args class for a token."""
    package, module, name = token.split(":")
    if package == "azuread":
        file = re.sub(r"(?<!^)([A-Z])", r"_\1", module.split("/")[1]).lower()
        mod = importlib.import_module(f"pulumi_azuread.{file}")
    else:
        mod = importlib.import_module(f"pulumi_azure_native.{module}")
    cls = getattr(mod, name)
    args = getattr(importlib.import_module(cls.__module__), name + "Args", None)
    args = args or getattr(importlib.import_module(cls.__module__), name + "InitArgs")
    return cls, args


@pytest.mark.parametrize("token", sorted([*AZURE_NATIVE.resources, *AZUREAD.resources]))
def test_tokens_and_input_names_match_the_installed_sdks(token: str) -> None:
    cls, args = _sdk_class(token)
    assert f"'{token}'" in class_source(cls), "the SDK registers exactly this token"
    extra = {"azureApiVersion"} if token.startswith("azure-native:") else set()
    fake = {**AZURE_NATIVE.resources, **AZUREAD.resources}[token]
    assert fake.inputs == _wire_names(args) | extra


def test_plugin_versions_are_the_ones_the_sdks_ask_for() -> None:
    for package, cloud in ((pulumi_azure_native, AZURE_NATIVE), (pulumi_azuread, AZUREAD)):
        plugin = json.loads((Path(package.__file__).parent / "pulumi-plugin.json").read_text())
        assert (plugin["name"], plugin["version"]) == (cloud.name, cloud.version)


def test_every_output_is_an_output_of_the_sdk_resource(az: Driver, ad: Driver) -> None:
    made = {RESOURCE_GROUP: group(az)}
    made[REGISTRY] = az.up(REGISTRY, "registry", REGISTRY_INPUTS)
    made[IDENTITY] = az.up(
        IDENTITY, "identity", {"resourceName": "pool-identity", "resourceGroupName": RG}
    )
    made[ROLE_DEFINITION] = az.up(ROLE_DEFINITION, "role", ROLE_INPUTS)
    app, sp = app_and_sp(ad)
    made[APPLICATION] = (app["id"], ad.read(APPLICATION, "pool-app", app["id"], {}).properties)
    made[SERVICE_PRINCIPAL] = (
        sp["id"],
        ad.read(SERVICE_PRINCIPAL, "pool-sp", sp["id"], {}).properties,
    )
    made[ROLE_ASSIGNMENT] = az.up(ROLE_ASSIGNMENT, "grant", grant(sp["objectId"], role=ROLE_ID))
    made[APPLICATION_PASSWORD] = ad.up(APPLICATION_PASSWORD, "secret", {"applicationId": app["id"]})
    identity_id = made[IDENTITY][0]
    made[CONTAINER_GROUP] = az.up(CONTAINER_GROUP, "worker", worker_group(identity_id))
    made[WORKSPACE] = az.up(WORKSPACE, "logs", WORKSPACE_INPUTS)
    made[DIAGNOSTIC_SETTING] = az.up(
        DIAGNOSTIC_SETTING, "worker-logs", diagnostics(made[CONTAINER_GROUP][0])
    )
    assert set(made) == {*AZURE_NATIVE.resources, *AZUREAD.resources}
    for token, (rid, outputs) in made.items():
        sdk = _wire_names(_sdk_class(token)[0]) | {"id"}
        assert plain(outputs).keys() <= sdk, (token, plain(outputs).keys() - sdk)
        assert plain(outputs)["id"] == rid


def test_invoke_results_are_fields_of_the_sdk_results(az: Driver, ad: Driver) -> None:
    native = importlib.import_module("pulumi_azure_native.authorization.get_client_config")
    entra = importlib.import_module("pulumi_azuread.get_client_config")
    assert az.invoke(arm.GET_CLIENT_CONFIG).keys() == _wire_names(native.GetClientConfigResult)
    assert ad.invoke(aad.GET_CLIENT_CONFIG).keys() == _wire_names(entra.GetClientConfigResult)


# --------------------------------------------------------------- credentials
def test_client_config_is_the_az_login_session_in_both_providers(az: Driver, ad: Driver) -> None:
    native, entra = az.invoke(arm.GET_CLIENT_CONFIG), ad.invoke(aad.GET_CLIENT_CONFIG)
    assert native == {
        "clientId": aad.AZURE_CLI_CLIENT_ID,
        "objectId": native["objectId"],
        "subscriptionId": SUB,
        "tenantId": TENANT,
    }
    uuid.UUID(native["objectId"])
    assert entra["objectId"] == native["objectId"] and entra["tenantId"] == TENANT
    assert entra["id"] == f"{TENANT}-{aad.AZURE_CLI_CLIENT_ID}-{native['objectId']}"


def test_a_service_principal_login_is_its_client_id(make_arm: Callable[..., Driver]) -> None:
    az = make_arm(ARM_CLIENT_ID="AAAAAAAA-0000-4000-8000-000000000001", ARM_CLIENT_SECRET="s")
    assert az.invoke(arm.GET_CLIENT_CONFIG)["clientId"] == "aaaaaaaa-0000-4000-8000-000000000001"


def test_subscription_comes_from_config_then_env_then_the_cli_default(
    make_arm: Callable[..., Driver],
) -> None:
    assert (
        make_arm(ARM_SUBSCRIPTION_ID=OTHER_SUB).invoke(arm.GET_CLIENT_CONFIG)["subscriptionId"]
        == SUB
    )
    assert (
        make_arm({}, ARM_SUBSCRIPTION_ID=OTHER_SUB).invoke(arm.GET_CLIENT_CONFIG)["subscriptionId"]
        == OTHER_SUB
    )
    assert make_arm({}).invoke(arm.GET_CLIENT_CONFIG)["subscriptionId"] == (
        arm.DEFAULT_SUBSCRIPTION_ID
    )


def test_no_credentials_fail_like_each_provider(
    make_arm: Callable[..., Driver], make_aad: Callable[..., Driver]
) -> None:
    assert raises(lambda: make_arm(FAKECLOUD_AZURE_NO_CREDENTIALS="1")) == (
        "ERROR: Please run 'az login' to setup account."
    )
    text = raises(lambda: make_aad(FAKECLOUD_AZURE_NO_CREDENTIALS="1"))
    assert text.startswith("failed to load application credentials:\n")
    assert "Please run 'az login' to setup account." in text
    # A service principal secret is credentials enough.
    make_arm(FAKECLOUD_AZURE_NO_CREDENTIALS="1", ARM_CLIENT_ID="x", ARM_CLIENT_SECRET="y")


# ------------------------------------------------------------------- check
def test_check_fills_api_version_and_location_but_no_defaults_list(
    make_arm: Callable[..., Driver],
) -> None:
    az = make_arm({"subscriptionId": SUB, "location": "northeurope"})
    checked = to_plain_map(
        az.check(IDENTITY, "i", {"resourceName": "pool-id", "resourceGroupName": RG}).inputs,
        internal=True,
    )
    assert checked == {
        "resourceName": "pool-id",
        "resourceGroupName": RG,
        "location": "northeurope",
        "azureApiVersion": "2023-01-31",
    }


def test_location_defaults_to_the_resource_groups_or_is_required(az: Driver) -> None:
    inputs = {"resourceName": "pool-id", "resourceGroupName": RG}
    assert reasons(az, IDENTITY, inputs) == [
        "missing required property 'location'. Either set it explicitly or configure it with "
        "'pulumi config set azure-native:location <value>'."
    ]
    assert reasons(az, IDENTITY, {**inputs, "resourceGroupName": UNKNOWN}) == []
    group(az, location="swedencentral")
    assert to_plain_map(az.check(IDENTITY, "i", inputs).inputs)["location"] == "swedencentral"


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("acr", ["'registryName' is too short (3): at least 5 characters required"]),
        ("a" * 51, ["'registryName' is too long (51): at most 50 characters allowed"]),
        ("pool-images", ["'registryName' does not match expression '^[a-zA-Z0-9]*$'"]),
        ("PoolImages01", []),
    ],
)
def test_registry_name_rules(az: Driver, name: str, expected: list[str]) -> None:
    assert reasons(az, REGISTRY, {**REGISTRY_INPUTS, "registryName": name}) == expected


def test_resource_group_name_rules(az: Driver) -> None:
    assert reasons(az, RESOURCE_GROUP, {"resourceGroupName": "a/b", "location": "westus"}) == [
        "'resourceGroupName' does not match expression '^[-\\w\\._\\(\\)]+$'"
    ]
    assert reasons(az, RESOURCE_GROUP, {"resourceGroupName": "g" * 91, "location": "westus"})


def test_autonamed_roles_get_guids_and_create_before_delete(az: Driver) -> None:
    inputs = {k: v for k, v in ROLE_INPUTS.items() if k != "roleDefinitionId"}
    checked = to_plain_map(az.check(ROLE_DEFINITION, "role", inputs).inputs, internal=True)
    uuid.UUID(checked["roleDefinitionId"])
    assert checked["__createBeforeDelete"] is True
    olds = az.check(ROLE_DEFINITION, "role", inputs).inputs
    again = az.check(ROLE_DEFINITION, "role", inputs, olds=olds).inputs
    assert to_plain_map(again)["roleDefinitionId"] == to_plain_map(olds)["roleDefinitionId"]


# ------------------------------------------------------------ resource groups
def test_resource_group_shape(az: Driver, cloud: FakeCloud) -> None:
    rid, outputs = az.up(
        RESOURCE_GROUP,
        "rg",
        {"resourceGroupName": RG, "location": "West Europe", "tags": {"a": "b"}},
    )
    out = plain(outputs)
    assert rid == out["id"] == RG_ID
    assert out["name"] == RG and out["location"] == "westeurope" and out["tags"] == {"a": "b"}
    assert out["type"] == "Microsoft.Resources/resourceGroups"
    assert out["properties"] == {"provisioningState": "Succeeded"}
    assert out["azureApiVersion"] == "2024-03-01"
    assert outputs["__inputs"].is_secret  # the state keeps the inputs, for Diff
    assert cloud.get(RESOURCE_GROUP, rid)["name"] == "rg"


def test_an_existing_resource_cannot_be_created_again(
    az: Driver, make_arm: Callable[..., Driver]
) -> None:
    group(az)
    assert raises(
        lambda: make_arm().up(
            RESOURCE_GROUP, "other", {"resourceGroupName": RG.upper(), "location": "westeurope"}
        )
    ) == (
        f"cannot create already existing resource '/subscriptions/{SUB}/resourceGroups/"
        f"{RG.upper()}'"
    )


def test_unknown_location_is_refused_by_arm(az: Driver) -> None:
    text = raises(lambda: group(az, location="mars"))
    assert text.startswith(
        'Status=400 Code="LocationNotAvailableForResourceGroup" Message="The provided location '
        "'mars' is not available for resource group. List of available regions is "
        "'australiacentral,"
    )


def test_deleting_a_group_deletes_its_contents_and_the_grants_on_them(
    az: Driver, ad: Driver, cloud: FakeCloud
) -> None:
    rid, outputs = group(az)
    registry_id, _ = az.up(REGISTRY, "registry", REGISTRY_INPUTS)
    _, identity = az.up(IDENTITY, "id", {"resourceName": "pool-id", "resourceGroupName": RG})
    az.up(ROLE_DEFINITION, "role", ROLE_INPUTS)
    _, sp = app_and_sp(ad)
    az.up(ROLE_ASSIGNMENT, "g1", grant(sp["objectId"], role=ROLE_ID))
    az.up(
        ROLE_ASSIGNMENT,
        "g2",
        grant(
            plain(identity)["principalId"], scope=registry_id, roleAssignmentName=str(uuid.uuid4())
        ),
    )
    other_rid, _ = group(az, "other-rg")

    az.delete(RESOURCE_GROUP, "rg", rid, outputs)
    left = {r["type"] for r in cloud.resources(cloud="azure-native")}
    assert left == {RESOURCE_GROUP, ROLE_DEFINITION}  # the role stays, its scope dangling
    assert cloud.resources(RESOURCE_GROUP)[0]["id"] == other_rid
    az.delete(RESOURCE_GROUP, "rg", rid, outputs)  # gone already: success


# ---------------------------------------------------------------- registries
def test_registry_shape(az: Driver) -> None:
    group(az)
    rid, outputs = az.up(REGISTRY, "registry", REGISTRY_INPUTS)
    out = plain(outputs)
    assert rid == f"{RG_ID}/providers/Microsoft.ContainerRegistry/registries/poolImages1"
    assert out["name"] == "poolImages1" and out["loginServer"] == "poolimages1.azurecr.io"
    assert out["sku"] == {"name": "Basic", "tier": "Basic"}
    assert out["adminUserEnabled"] is False and out["provisioningState"] == "Succeeded"
    assert out["policies"]["retentionPolicy"] == {"days": 7, "status": "disabled"}


def test_registry_names_are_global_across_subscriptions_and_stacks(
    make_arm: Callable[..., Driver], cloud: FakeCloud
) -> None:
    mine = make_arm()
    group(mine)
    mine.up(REGISTRY, "registry", REGISTRY_INPUTS)
    theirs = make_arm({"subscriptionId": OTHER_SUB})
    group(theirs, "their-rg")
    text = raises(
        lambda: theirs.up(
            REGISTRY,
            "r",
            {**REGISTRY_INPUTS, "resourceGroupName": "their-rg", "registryName": "POOLIMAGES1"},
        )
    )
    assert text == (
        'Status=400 Code="AlreadyInUse" Message="The registry DNS name poolimages1.azurecr.io is '
        "already in use. You can check if the name is already claimed using following API: "
        'https://docs.microsoft.com/en-us/rest/api/containerregistry/registries/checknameavailability"'
    )
    assert cloud.count(REGISTRY) == 1


def test_registry_needs_its_group_and_a_real_sku(az: Driver) -> None:
    assert raises(lambda: az.up(REGISTRY, "r", REGISTRY_INPUTS)) == (
        'Status=404 Code="ResourceGroupNotFound" '
        f"Message=\"Resource group '{RG}' could not be found.\""
    )
    group(az)
    assert "InvalidSkuName" in raises(
        lambda: az.up(REGISTRY, "r", {**REGISTRY_INPUTS, "sku": {"name": "Gold"}})
    )


# ------------------------------------------------------------------ diffs
def test_no_diff_on_an_unchanged_rerun_despite_sdk_defaults_and_normalization(az: Driver) -> None:
    group(az)
    rid, outputs = az.up(REGISTRY, "registry", REGISTRY_INPUTS)
    assert not az.diff(REGISTRY, "registry", rid, outputs, REGISTRY_INPUTS).changes
    same = {**REGISTRY_INPUTS, "location": "West Europe"}
    assert not az.diff(REGISTRY, "registry", rid, outputs, same).changes


def test_registry_sku_updates_in_place_and_names_replace_deleting_first(
    az: Driver, cloud: FakeCloud
) -> None:
    group(az)
    rid, outputs = az.up(REGISTRY, "registry", REGISTRY_INPUTS)
    standard = {**REGISTRY_INPUTS, "sku": {"name": "Standard"}}
    diff = az.diff(REGISTRY, "registry", rid, outputs, standard)
    assert diff.changes and diff.replaces == [] and diff.diffs == ["sku"]
    assert diff.detailed_diff["sku"].kind == PropertyDiffKind.UPDATE
    updated = plain(az.update(REGISTRY, "registry", rid, outputs, standard))
    assert updated["sku"] == {"name": "Standard", "tier": "Standard"}
    assert cloud.get(REGISTRY, rid)["properties"]["sku"]["name"] == "Standard"

    for key, value in (
        ("registryName", "other1"),
        ("resourceGroupName", "rg2"),
        ("location", "westus"),
    ):
        diff = az.diff(REGISTRY, "registry", rid, outputs, {**REGISTRY_INPUTS, key: value})
        assert diff.replaces == [key] and diff.delete_before_replace is True, key


def test_role_assignment_replaces_on_principal_role_or_scope(az: Driver, ad: Driver) -> None:
    group(az)
    _, sp = app_and_sp(ad)
    inputs = grant(sp["objectId"])
    rid, outputs = az.up(ROLE_ASSIGNMENT, "grant", inputs)
    assert not az.diff(ROLE_ASSIGNMENT, "grant", rid, outputs, inputs).changes
    for key, value in (
        ("principalId", str(uuid.uuid4())),
        ("roleDefinitionId", ROLE_ID),
        ("scope", f"/subscriptions/{SUB}"),
    ):
        assert az.diff(ROLE_ASSIGNMENT, "grant", rid, outputs, {**inputs, key: value}).replaces == [
            key
        ]
    assert (
        az.diff(ROLE_ASSIGNMENT, "grant", rid, outputs, {**inputs, "description": "x"}).replaces
        == []
    )


IMMUTABLE_CASES = {
    RESOURCE_GROUP: {"resourceGroupName": "g2", "location": "westeurope"},
    IDENTITY: {"resourceName": "pool-id", "resourceGroupName": RG, "location": "westeurope"},
    ROLE_DEFINITION: ROLE_INPUTS,
}


@pytest.mark.parametrize(
    ("token", "key", "value"),
    [
        (RESOURCE_GROUP, "resourceGroupName", "g3"),
        (RESOURCE_GROUP, "location", "westus"),
        (IDENTITY, "resourceName", "id2"),
        (IDENTITY, "resourceGroupName", "g3"),
        (IDENTITY, "location", "westus"),
        # A fixed id: parallel test workers must collect the same test ids.
        (ROLE_DEFINITION, "roleDefinitionId", "0e0137bf-e3dc-4e39-af1e-d8535ad16448"),
        (ROLE_DEFINITION, "scope", f"/subscriptions/{SUB}"),
    ],
)
def test_immutable_arm_properties_replace_deleting_first(
    az: Driver, token: str, key: str, value: str
) -> None:
    group(az)
    inputs = IMMUTABLE_CASES[token]
    rid, outputs = az.up(token, "r", inputs)
    diff = az.diff(token, "r", rid, outputs, {**inputs, key: value})
    assert diff.replaces == [key] and diff.delete_before_replace is True


def test_autonamed_replacements_create_before_delete(az: Driver) -> None:
    group(az)
    inputs = {k: v for k, v in ROLE_INPUTS.items() if k != "roleDefinitionId"}
    rid, outputs = az.up(ROLE_DEFINITION, "role", inputs)
    diff = az.diff(
        ROLE_DEFINITION, "role", rid, outputs, {**inputs, "scope": f"/subscriptions/{SUB}"}
    )
    assert diff.replaces == ["scope"] and diff.delete_before_replace is False


def test_preview_leaves_computed_outputs_unknown_and_writes_nothing(
    az: Driver, cloud: FakeCloud
) -> None:
    _, outputs = az.up(
        REGISTRY, "registry", {**REGISTRY_INPUTS, "resourceGroupName": UNKNOWN}, preview=True
    )
    out = plain(outputs)
    assert out["loginServer"] == out["id"] == out["name"] == UNKNOWN
    assert out["sku"] == {"name": "Basic", "tier": "Basic"} and out["location"] == "westeurope"
    assert cloud.resources() == []


# ------------------------------------------------------------------ refresh
def test_refresh_projects_drift_onto_inputs_and_notices_deletion(
    az: Driver, cloud: FakeCloud
) -> None:
    group(az)
    rid, outputs = az.up(REGISTRY, "registry", REGISTRY_INPUTS)
    same = az.read(REGISTRY, "registry", rid, outputs)
    assert to_plain_map(same.inputs)["sku"] == {"name": "Basic"}  # tier is read-only

    cloud.edit(REGISTRY, rid, adminUserEnabled=True, tags={"changed": "by hand"})
    drifted = az.read(REGISTRY, "registry", rid, outputs)
    inputs = to_plain_map(drifted.inputs)
    assert inputs["adminUserEnabled"] is True and inputs["tags"] == {"changed": "by hand"}
    diff = az.diff(REGISTRY, "registry", rid, drifted.properties, REGISTRY_INPUTS)
    assert set(diff.diffs) == {"adminUserEnabled", "tags"} and not diff.replaces

    cloud.remove(REGISTRY, rid)
    assert az.read(REGISTRY, "registry", rid, outputs).resource_id in (None, "")
    az.delete(REGISTRY, "registry", rid, outputs)  # a 404 on delete is success


# ---------------------------------------------------------------- identities
def test_identity_is_a_service_principal_in_the_tenant(az: Driver) -> None:
    group(az)
    rid, outputs = az.up(IDENTITY, "id", {"resourceName": "pool-id", "resourceGroupName": RG})
    out = plain(outputs)
    assert rid == f"{RG_ID}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/pool-id"
    assert out["tenantId"] == TENANT and out["location"] == "westeurope"
    assert uuid.UUID(out["principalId"]) != uuid.UUID(out["clientId"])
    assert "InvalidResourceName" in raises(
        lambda: az.up(IDENTITY, "bad", {"resourceName": "-x", "resourceGroupName": RG})
    )


# ---------------------------------------------------------------- container groups
def test_container_group_shape_and_secure_values_never_come_back(
    az: Driver, cloud: FakeCloud, state_dir: Path
) -> None:
    identity_id = worker_identity(az)
    rid, outputs = az.up(CONTAINER_GROUP, "worker", worker_group(identity_id))
    out = plain(outputs)
    assert rid == out["id"] == GROUP_ID
    assert (out["name"], out["type"]) == (
        "pool-worker-0",
        "Microsoft.ContainerInstance/containerGroups",
    )
    assert (out["osType"], out["restartPolicy"], out["sku"]) == ("Linux", "Always", "Standard")
    assert out["provisioningState"] == "Succeeded" and out["instanceView"] == {"state": "Running"}
    identity = cloud.get(IDENTITY, identity_id)["properties"]
    assert out["identity"] == {
        "type": "UserAssigned",
        "userAssignedIdentities": {
            identity_id: {"principalId": identity["principalId"], "clientId": identity["clientId"]}
        },
    }
    (container,) = out["containers"]
    assert container["environmentVariables"] == [
        {"name": "PREFECT_API_URL", "value": "http://127.0.0.1:4200/api"},
        {"name": "PREFECT_API_AUTH_STRING"},  # the name only, as ARM answers
    ]
    assert outputs["containers"].is_secret  # its input was: the state encrypts it
    record = cloud.get(CONTAINER_GROUP, rid)
    assert secure_value_matches(record, "worker", "PREFECT_API_AUTH_STRING", AUTH)
    assert not secure_value_matches(record, "worker", "PREFECT_API_AUTH_STRING", "other")
    # The store keeps a digest, never the value: not in any file of the fake cloud.
    for path in state_dir.rglob("*"):
        if path.is_file():
            assert AUTH not in path.read_text(errors="replace"), path


def test_container_group_rerun_and_refresh_see_no_change(az: Driver) -> None:
    identity_id = worker_identity(az)
    rid, outputs = az.up(CONTAINER_GROUP, "worker", worker_group(identity_id))
    diff = az.diff(CONTAINER_GROUP, "worker", rid, outputs, worker_group(identity_id))
    assert not diff.changes
    refreshed = az.read(CONTAINER_GROUP, "worker", rid, outputs)
    inputs = to_plain_map(refreshed.inputs)
    assert inputs["identity"] == {"type": "UserAssigned", "userAssignedIdentities": [identity_id]}
    (container,) = inputs["containers"]
    secure = container["environmentVariables"][1]
    assert secure == {"name": "PREFECT_API_AUTH_STRING", "secureValue": AUTH}  # kept from state
    assert not az.diff(
        CONTAINER_GROUP, "worker", rid, refreshed.properties, worker_group(identity_id)
    ).changes


def test_a_new_secure_value_redeploys_in_place(az: Driver, cloud: FakeCloud) -> None:
    identity_id = worker_identity(az)
    rid, outputs = az.up(CONTAINER_GROUP, "worker", worker_group(identity_id))
    diff = az.diff(CONTAINER_GROUP, "worker", rid, outputs, worker_group(identity_id, secret="new"))
    assert diff.diffs == ["containers"] and not diff.replaces
    az.update(CONTAINER_GROUP, "worker", rid, outputs, worker_group(identity_id, secret="new"))
    assert secure_value_matches(
        cloud.get(CONTAINER_GROUP, rid), "worker", "PREFECT_API_AUTH_STRING", "new"
    )


@pytest.mark.parametrize(
    ("change", "what"),
    [
        ({"cpu": 2.0}, "CPU, memory or ports"),
        ({"restartPolicy": "OnFailure"}, "restartPolicy"),
        ({"osType": "Windows"}, "osType"),
    ],
)
def test_what_aci_cannot_change_in_place_is_refused(
    az: Driver, change: dict[str, Any], what: str
) -> None:
    identity_id = worker_identity(az)
    rid, outputs = az.up(CONTAINER_GROUP, "worker", worker_group(identity_id))
    text = raises(
        lambda: az.update(
            CONTAINER_GROUP, "worker", rid, outputs, worker_group(identity_id, **change)
        )
    )
    assert 'Code="ContainerGroupUpdateNotSupported"' in text and what in text


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"containerGroupName": "Pool_Worker"}, "InvalidContainerGroupName"),
        ({"containerGroupName": "pool--worker"}, "InvalidContainerGroupName"),
        ({"containerGroupName": "-pool"}, "InvalidContainerGroupName"),
        ({"containerGroupName": "x" * 64}, "InvalidContainerGroupName"),
        ({"restartPolicy": "Sometimes"}, "InvalidRequestContent"),
    ],
)
def test_container_group_rules(az: Driver, change: dict[str, Any], code: str) -> None:
    identity_id = worker_identity(az)
    assert f'Code="{code}"' in raises(
        lambda: az.up(CONTAINER_GROUP, "worker", {**worker_group(identity_id), **change})
    )


def test_container_names_follow_the_same_rule(az: Driver) -> None:
    identity_id = worker_identity(az)
    inputs = worker_group(identity_id)
    (container,) = inputs["containers"].value
    inputs["containers"] = Secret([{**container, "name": "Worker_1"}])
    text = raises(lambda: az.up(CONTAINER_GROUP, "worker", inputs))
    assert 'Code="InvalidContainerName"' in text and "'Worker_1'" in text


def test_the_identity_must_exist(az: Driver) -> None:
    worker_identity(az)
    missing = f"{RG_ID}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/gone"
    text = raises(lambda: az.up(CONTAINER_GROUP, "worker", worker_group(missing)))
    assert text.startswith(
        f'Status=400 Code="FailedIdentityOperation" Message="Identity operation for resource '
        f"'{GROUP_ID}' failed with error 'Failed to perform resource identity operation. "
        "Status: 'NotFound'."
    )
    assert "userAssignedIdentities/gone' under resource group 'pool-rg' was not found" in text


def test_container_group_needs_its_group_and_its_required_properties(az: Driver) -> None:
    identity_id = f"{RG_ID}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/x"
    assert 'Code="ResourceGroupNotFound"' in raises(
        lambda: az.up(
            CONTAINER_GROUP, "worker", {**worker_group(identity_id), "location": "westeurope"}
        )
    )
    group(az)
    inputs = worker_group(identity_id)
    (container,) = inputs["containers"].value
    inputs["containers"] = [{**container, "resources": {"requests": {"memoryInGB": 1.5}}}]
    assert reasons(az, CONTAINER_GROUP, inputs) == [
        "missing required property 'containers[0].resources.requests.cpu'"
    ]
    assert reasons(az, CONTAINER_GROUP, {"resourceGroupName": RG, "containerGroupName": "x"}) == [
        "missing required property 'containers'"
    ]


def test_deleting_the_resource_group_deletes_its_container_groups(
    az: Driver, cloud: FakeCloud
) -> None:
    identity_id = worker_identity(az)
    az.up(CONTAINER_GROUP, "worker", worker_group(identity_id))
    az.delete(RESOURCE_GROUP, "rg", RG_ID, {})
    assert cloud.resources(CONTAINER_GROUP) == [] and cloud.resources(IDENTITY) == []


# ------------------------------------------------------------ Log Analytics
def test_workspace_shape_and_no_diff_on_rerun(az: Driver) -> None:
    group(az)
    rid, outputs = az.up(WORKSPACE, "logs", WORKSPACE_INPUTS)
    out = plain(outputs)
    assert rid == out["id"] == WORKSPACE_ID
    uuid.UUID(out["customerId"])
    assert out["sku"]["name"] == "PerGB2018" and out["sku"]["lastSkuUpdate"]
    assert out["retentionInDays"] == 30 and out["location"] == "westeurope"
    assert not az.diff(WORKSPACE, "logs", rid, outputs, WORKSPACE_INPUTS).changes
    refreshed = az.read(WORKSPACE, "logs", rid, outputs)
    assert to_plain_map(refreshed.inputs)["sku"] == {"name": "PerGB2018"}


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("abc", ["'workspaceName' is too short (3): at least 4 characters required"]),
        (
            "-pool-logs",
            ["'workspaceName' does not match expression '^[A-Za-z0-9][A-Za-z0-9-]+[A-Za-z0-9]$'"],
        ),
        (
            "pool_logs",
            ["'workspaceName' does not match expression '^[A-Za-z0-9][A-Za-z0-9-]+[A-Za-z0-9]$'"],
        ),
        ("pool-logs", []),
    ],
)
def test_workspace_name_rules(az: Driver, name: str, expected: list[str]) -> None:
    inputs = {**WORKSPACE_INPUTS, "workspaceName": name, "location": "westeurope"}
    assert reasons(az, WORKSPACE, inputs) == expected


def test_a_deleted_workspace_is_soft_deleted_and_recovered_by_creating_it_again(
    az: Driver, cloud: FakeCloud
) -> None:
    group(az)
    rid, outputs = az.up(WORKSPACE, "logs", WORKSPACE_INPUTS)
    customer = plain(outputs)["customerId"]
    az.delete(WORKSPACE, "logs", rid, outputs)
    assert cloud.resources(WORKSPACE) == []  # gone for ARM's GET
    (kept,) = cloud.resources(WORKSPACE, include_deleted=True)
    assert kept["deleted"] is True
    rid, outputs = az.up(WORKSPACE, "logs", WORKSPACE_INPUTS)
    assert plain(outputs)["customerId"] == customer  # the same workspace, recovered
    assert cloud.get(WORKSPACE, rid)["meta"]["recovered"] is True


# ------------------------------------------------------------ diagnostic settings
def test_diagnostic_setting_shape(az: Driver) -> None:
    identity_id = worker_identity(az)
    az.up(WORKSPACE, "logs", WORKSPACE_INPUTS)
    group_id, _ = az.up(CONTAINER_GROUP, "worker", worker_group(identity_id))
    rid, outputs = az.up(DIAGNOSTIC_SETTING, "worker-logs", diagnostics(group_id))
    out = plain(outputs)
    assert (
        rid
        == out["id"]
        == f"{GROUP_ID}/providers/Microsoft.Insights/diagnosticSettings/worker-logs"
    )
    assert out["name"] == "worker-logs" and out["workspaceId"] == WORKSPACE_ID
    assert out["type"] == "Microsoft.Insights/diagnosticSettings" and "resourceUri" not in out
    assert not az.diff(
        DIAGNOSTIC_SETTING, "worker-logs", rid, outputs, diagnostics(group_id)
    ).changes


def test_diagnostic_setting_categories_must_be_the_resources(az: Driver) -> None:
    identity_id = worker_identity(az)
    az.up(WORKSPACE, "logs", WORKSPACE_INPUTS)
    group_id, _ = az.up(CONTAINER_GROUP, "worker", worker_group(identity_id))
    assert (
        raises(lambda: az.up(DIAGNOSTIC_SETTING, "s", diagnostics(group_id, "AuditEvent")))
        == 'Status=400 Code="BadRequest" Message="Category \'AuditEvent\' is not supported."'
    )


def test_diagnostic_setting_needs_its_resource_and_workspace(az: Driver) -> None:
    identity_id = worker_identity(az)
    assert 'Code="ResourceNotFound"' in raises(
        lambda: az.up(DIAGNOSTIC_SETTING, "s", diagnostics(GROUP_ID))
    )
    group_id, _ = az.up(CONTAINER_GROUP, "worker", worker_group(identity_id))
    text = raises(lambda: az.up(DIAGNOSTIC_SETTING, "s", diagnostics(group_id)))
    assert (
        "Microsoft.OperationalInsights/workspaces/pool-logs" in text and "ResourceNotFound" in text
    )


def test_a_diagnostic_setting_outlives_its_resource(az: Driver, cloud: FakeCloud) -> None:
    # Deleting a resource leaves its settings; a resource made again under the same name
    # finds the old one in the way of a new create. Delete the setting first.
    identity_id = worker_identity(az)
    az.up(WORKSPACE, "logs", WORKSPACE_INPUTS)
    group_id, group_out = az.up(CONTAINER_GROUP, "worker", worker_group(identity_id))
    setting_id, _ = az.up(DIAGNOSTIC_SETTING, "worker-logs", diagnostics(group_id))
    az.delete(CONTAINER_GROUP, "worker", group_id, group_out)
    assert cloud.get(DIAGNOSTIC_SETTING, setting_id) is not None
    az.up(CONTAINER_GROUP, "worker", worker_group(identity_id))
    assert raises(lambda: az.up(DIAGNOSTIC_SETTING, "worker-logs", diagnostics(group_id))) == (
        f"cannot create already existing resource '{setting_id}'"
    )


# ------------------------------------------------------------ role definitions
def test_custom_role_shape(az: Driver) -> None:
    group(az)
    rid, outputs = az.up(ROLE_DEFINITION, "role", ROLE_INPUTS)
    out = plain(outputs)
    assert rid == ROLE_ID, "the subscription-level id, whatever the scope"
    assert out["name"] == ROLE_GUID and out["roleType"] == "CustomRole"
    assert out["permissions"] == [
        {
            "actions": ["Microsoft.ContainerInstance/containerGroups/read"],
            "notActions": [],
            "dataActions": [],
            "notDataActions": [],
        }
    ]
    assert out["assignableScopes"] == [RG_ID]
    assert not az.diff(ROLE_DEFINITION, "role", rid, outputs, ROLE_INPUTS).changes


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"roleDefinitionId": "pool-role"}, "InvalidRoleDefinitionId"),
        ({"assignableScopes": []}, "InvalidAssignableScopes"),
        ({"assignableScopes": ["/"]}, "InvalidAssignableScopes"),
        (
            {"assignableScopes": [f"/subscriptions/{SUB}/resourceGroups/nope"]},
            "ResourceGroupNotFound",
        ),
        (
            {"permissions": [{"actions": ["Microsoft.Bogus/things/read"]}]},
            "InvalidActionOrNotAction",
        ),
    ],
)
def test_custom_role_rules(az: Driver, change: dict[str, Any], code: str) -> None:
    group(az)
    assert f'Code="{code}"' in raises(
        lambda: az.up(ROLE_DEFINITION, "role", {**ROLE_INPUTS, **change})
    )


def test_role_names_are_unique_in_the_tenant_and_guids_too(
    az: Driver, make_arm: Callable[..., Driver]
) -> None:
    group(az)
    az.up(ROLE_DEFINITION, "role", ROLE_INPUTS)
    other = {**ROLE_INPUTS, "roleDefinitionId": str(uuid.uuid4()), "roleName": "POOL SUBMITTER"}
    assert raises(lambda: az.up(ROLE_DEFINITION, "other", other)) == (
        'Status=409 Code="RoleDefinitionWithSameNameExists" Message="A custom role with the same '
        'name already exists in this directory. Use a different name."'
    )
    assert raises(
        lambda: az.up(ROLE_DEFINITION, "again", {**ROLE_INPUTS, "roleName": "x"})
    ).startswith(
        f"cannot create already existing resource '{RG_ID}/providers/Microsoft.Authorization/"
    )


def test_a_role_in_use_cannot_be_deleted(az: Driver, ad: Driver) -> None:
    group(az)
    rid, outputs = az.up(ROLE_DEFINITION, "role", ROLE_INPUTS)
    _, sp = app_and_sp(ad)
    grant_id, grant_out = az.up(ROLE_ASSIGNMENT, "grant", grant(sp["objectId"], role=ROLE_ID))
    assert "RoleDefinitionHasAssignments" in raises(
        lambda: az.delete(ROLE_DEFINITION, "role", rid, outputs)
    )
    az.delete(ROLE_ASSIGNMENT, "grant", grant_id, grant_out)
    az.delete(ROLE_DEFINITION, "role", rid, outputs)


# ------------------------------------------------------------ role assignments
def test_role_assignment_shape(az: Driver, ad: Driver) -> None:
    group(az)
    _, sp = app_and_sp(ad)
    rid, outputs = az.up(ROLE_ASSIGNMENT, "grant", grant(sp["objectId"]))
    out = plain(outputs)
    assert rid == f"{RG_ID}/providers/Microsoft.Authorization/roleAssignments/{GRANT_NAME}"
    assert out["name"] == GRANT_NAME and out["scope"] == RG_ID
    assert out["principalType"] == "ServicePrincipal" and out["roleDefinitionId"] == ACR_PULL
    assert out["createdBy"] == az.invoke(arm.GET_CLIENT_CONFIG)["objectId"]


def test_a_principal_that_does_not_exist_is_principal_not_found(az: Driver) -> None:
    group(az)
    ghost = "0f14a80d-42e5-4d57-afe0-46acf9dfae05"
    assert raises(lambda: az.up(ROLE_ASSIGNMENT, "grant", grant(ghost))) == (
        'Status=400 Code="PrincipalNotFound" Message="Principal 0f14a80d42e54d57afe046acf9dfae05 '
        f"does not exist in the directory {TENANT}. Check that you have the correct principal "
        "ID. If you are creating this principal and then immediately assigning a role, this "
        "error might be related to a replication delay. In this case, set the role assignment "
        "principalType property to a value, such as ServicePrincipal, User, or Group.  See "
        'https://aka.ms/docs-principaltype"'
    )


def test_new_principals_need_their_principal_type_until_replicated(
    make_arm: Callable[..., Driver], ad: Driver
) -> None:
    az = make_arm(FAKECLOUD_AZURE_PROPAGATION_MS="60000")
    group(az)
    _, sp = app_and_sp(ad)
    # The SDK's default principalType is "User": replication makes that a PrincipalNotFound.
    assert '"PrincipalNotFound"' in raises(
        lambda: az.up(ROLE_ASSIGNMENT, "g", grant(sp["objectId"], principalType="User"))
    )
    assert '"PrincipalNotFound"' in raises(
        lambda: az.up(ROLE_ASSIGNMENT, "g", grant(sp["objectId"], principalType=None))
    )
    az.up(ROLE_ASSIGNMENT, "g", grant(sp["objectId"]))  # ServicePrincipal: fine at once


def test_a_wrong_principal_type_is_refused_once_replicated(az: Driver, ad: Driver) -> None:
    group(az)
    _, sp = app_and_sp(ad)
    assert raises(
        lambda: az.up(ROLE_ASSIGNMENT, "g", grant(sp["objectId"], principalType="User"))
    ) == (
        'Status=400 Code="UnmatchedPrincipalType" Message="The PrincipalId '
        f"'{sp['objectId'].replace('-', '')}' has type 'ServicePrincipal' , which is different "
        "from specified PrinciaplType 'User'.\""
    )
    me = az.invoke(arm.GET_CLIENT_CONFIG)["objectId"]
    az.up(ROLE_ASSIGNMENT, "me", grant(me, principalType="User"))  # the signed-in user


def test_role_assignment_names_are_guids_unique_in_the_tenant(az: Driver, ad: Driver) -> None:
    group(az)
    group(az, "other-rg")
    _, sp = app_and_sp(ad)
    assert raises(
        lambda: az.up(ROLE_ASSIGNMENT, "g", grant(sp["objectId"], roleAssignmentName="acrpull"))
    ) == (
        'Status=400 Code="InvalidRoleAssignmentId" Message="The role assignment ID must be a GUID."'
    )
    az.up(ROLE_ASSIGNMENT, "g", grant(sp["objectId"]))
    # The same id again: the provider's GET before the PUT finds it.
    assert raises(lambda: az.up(ROLE_ASSIGNMENT, "g2", grant(sp["objectId"]))).startswith(
        "cannot create already existing resource '"
    )
    # The same name for another grant, even at another scope.
    other_scope = grant(sp["objectId"], scope=f"/subscriptions/{SUB}/resourceGroups/other-rg")
    assert raises(lambda: az.up(ROLE_ASSIGNMENT, "g3", other_scope)) == (
        'Status=400 Code="RoleAssignmentUpdateNotPermitted" Message="Tenant ID, application ID, '
        'principal ID, and scope are not allowed to be updated."'
    )
    # The same grant under another name.
    renamed = grant(sp["objectId"], roleAssignmentName=str(uuid.uuid4()))
    assert raises(lambda: az.up(ROLE_ASSIGNMENT, "g4", renamed)) == (
        'Status=409 Code="RoleAssignmentExists" Message="The role assignment already exists."'
    )


def test_arm_puts_of_the_same_grant_are_idempotent(
    az: Driver, ad: Driver, cloud: FakeCloud
) -> None:
    # Two runs racing past the provider's existence check both PUT: ARM accepts the same grant.
    group(az)
    _, sp = app_and_sp(ad)
    rid, _ = az.up(ROLE_ASSIGNMENT, "g", grant(sp["objectId"]))
    ctx = az.provider._ctx()
    inputs = to_plain_map(az.checked(ROLE_ASSIGNMENT, "g", grant(sp["objectId"])))
    again, _ = AZURE_NATIVE.resources[ROLE_ASSIGNMENT].put(ctx, inputs)  # type: ignore[attr-defined]
    assert again == rid and cloud.count(ROLE_ASSIGNMENT) == 1


def test_the_role_must_exist_and_be_assignable_at_the_scope(
    make_arm: Callable[..., Driver], ad: Driver
) -> None:
    az = make_arm(FAKECLOUD_AZURE_ROLE_PROPAGATION_MS="60000")
    group(az)
    group(az, "other-rg")
    _, sp = app_and_sp(ad)
    missing = (
        'Status=400 Code="RoleDefinitionDoesNotExist" Message="The specified role definition '
        f"with ID '{ROLE_GUID}' does not exist.\""
    )
    assert (
        raises(lambda: az.up(ROLE_ASSIGNMENT, "g", grant(sp["objectId"], role=ROLE_ID))) == missing
    )
    az.up(ROLE_DEFINITION, "role", ROLE_INPUTS)
    assert (
        raises(lambda: az.up(ROLE_ASSIGNMENT, "g", grant(sp["objectId"], role=ROLE_ID))) == missing
    )
    settled = make_arm()
    other = f"/subscriptions/{SUB}/resourceGroups/other-rg"
    assert (
        raises(
            lambda: settled.up(
                ROLE_ASSIGNMENT, "g", grant(sp["objectId"], role=ROLE_ID, scope=other)
            )
        )
        == missing
    )
    settled.up(ROLE_ASSIGNMENT, "g", grant(sp["objectId"], role=ROLE_ID))


def test_a_missing_scope_is_a_404(az: Driver, ad: Driver) -> None:
    _, sp = app_and_sp(ad)
    assert raises(lambda: az.up(ROLE_ASSIGNMENT, "g", grant(sp["objectId"]))) == (
        'Status=404 Code="ResourceGroupNotFound" '
        f"Message=\"Resource group '{RG}' could not be found.\""
    )
    group(az)
    scope = f"{RG_ID}/providers/Microsoft.ContainerRegistry/registries/nope1"
    assert (
        "The Resource 'Microsoft.ContainerRegistry/registries/nope1' under resource group"
        in raises(lambda: az.up(ROLE_ASSIGNMENT, "g", grant(sp["objectId"], scope=scope)))
    )


# ---------------------------------------------------------- faults and the log
def test_faults_read_like_arm_and_the_log_names_the_cloud(
    make_arm: Callable[..., Driver], cloud: FakeCloud
) -> None:
    az = make_arm(FAKECLOUD_FAULTS=f"create:{RESOURCE_GROUP}:rg@once")
    assert raises(lambda: group(az)) == (
        'Status=503 Code="ServiceUnavailable" Message="The service is temporarily unavailable '
        f"while creating '{RG}'. Please retry.\" (injected by FAKECLOUD_FAULTS: "
        f"create:{RESOURCE_GROUP}:rg@once)"
    )
    group(az)
    created = cloud.calls("create", RESOURCE_GROUP)
    assert [c["outcome"] for c in created] == ["error", "ok"]
    assert {c["cloud"] for c in cloud.calls(phase=None)} == {"azure-native"}


# ------------------------------------------------------------------ Entra ID
def test_application_shape_and_defaults(ad: Driver, cloud: FakeCloud) -> None:
    inputs = {"displayName": "provision-aci-pool", "tags": ["b=2", "a=1"], "owners": []}
    checked = to_plain_map(ad.check(APPLICATION, "app", inputs).inputs, internal=True)
    assert checked["__defaults"] == ["preventDuplicateNames", "signInAudience"]
    rid, outputs = ad.up(APPLICATION, "app", inputs)
    out = plain(outputs)
    assert rid == out["id"] == f"/applications/{out['objectId']}"
    assert uuid.UUID(out["clientId"]) != uuid.UUID(out["objectId"])
    assert out["signInAudience"] == "AzureADMyOrg" and out["tags"] == ["a=1", "b=2"]
    reordered = {**inputs, "tags": ["a=1", "b=2"]}
    assert not ad.diff(APPLICATION, "app", rid, outputs, reordered).changes
    assert ad.diff(APPLICATION, "app", rid, outputs, {**inputs, "displayName": "x"}).replaces == []


def test_application_validation_and_duplicate_names(ad: Driver) -> None:
    found = {
        f.property: f.reason
        for f in ad.check(
            APPLICATION, "a", {"displayName": "x", "signInAudience": "Everyone", "owners": ["me"]}
        ).failures
    }
    assert found["signInAudience"].startswith(
        'expected sign_in_audience to be one of ["AzureADMyOrg"'
    )
    assert found["owners"].startswith('expected "owners.0" to be a valid UUID, got me')
    ad.up(APPLICATION, "app", {"displayName": "dup"})
    ad.up(APPLICATION, "app2", {"displayName": "dup"})  # display names are not unique...
    text = raises(
        lambda: ad.up(APPLICATION, "app3", {"displayName": "DUP", "preventDuplicateNames": True})
    )
    assert text.startswith('An existing "azuread_application" with name "DUP" (ID: "')


def test_one_service_principal_per_app(ad: Driver, cloud: FakeCloud) -> None:
    app, sp = app_and_sp(ad)
    assert sp["id"] == sp["objectId"] and sp["clientId"] == app["clientId"]
    assert sp["displayName"] == app["displayName"] and sp["applicationTenantId"] == TENANT
    assert sp["accountEnabled"] is True and sp["type"] == "Application"
    assert raises(lambda: ad.up(SERVICE_PRINCIPAL, "again", {"clientId": app["clientId"]})) == (
        f'A resource with the ID "{sp["id"]}" already exists: To be managed via Terraform, this '
        "resource needs to be imported into the State. Please see the resource documentation for "
        '"azuread_service_principal" for more information.'
    )
    adopted, _ = ad.up(
        SERVICE_PRINCIPAL, "adopt", {"clientId": app["clientId"], "useExisting": True}
    )
    assert adopted == sp["id"] and cloud.count(SERVICE_PRINCIPAL) == 1
    ghost = str(uuid.uuid4())
    assert raises(lambda: ad.up(SERVICE_PRINCIPAL, "ghost", {"clientId": ghost})).endswith(
        f"Request_BadRequest: The appId '{ghost}' of the service principal does not reference a "
        "valid application object."
    )


def test_password_value_is_a_fresh_secret_returned_once(ad: Driver, cloud: FakeCloud) -> None:
    app, _ = app_and_sp(ad)
    inputs = {"applicationId": app["id"], "displayName": "d", "endDate": "2030-01-02T03:04:05Z"}
    rid, outputs = ad.up(APPLICATION_PASSWORD, "secret", inputs)
    _, again = ad.up(APPLICATION_PASSWORD, "secret2", inputs)
    out = plain(outputs)
    assert outputs["value"].is_secret
    assert rid == f"{app['objectId']}/password/{out['keyId']}" and uuid.UUID(out["keyId"])
    assert re.fullmatch(r"[A-Za-z0-9]{3}\dQ~[A-Za-z0-9~_.-]{34}", out["value"])
    assert plain(again)["value"] != out["value"], "every password is new"
    assert out["endDate"] == "2030-01-02T03:04:05Z"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", out["startDate"])
    assert "value" not in cloud.get(APPLICATION_PASSWORD, rid)["properties"]
    assert out["value"] not in (Path(cloud.root) / "calls.jsonl").read_text()
    refreshed = ad.read(APPLICATION_PASSWORD, "secret", rid, outputs).properties
    assert refreshed["value"] == outputs["value"] and refreshed["value"].is_secret
    assert not ad.diff(APPLICATION_PASSWORD, "secret", rid, outputs, inputs).changes


def test_password_dates_come_back_normalized_so_other_spellings_replace(ad: Driver) -> None:
    app, _ = app_and_sp(ad)
    inputs = {"applicationId": app["id"], "endDate": "2030-01-02T04:04:05+01:00"}
    rid, outputs = ad.up(APPLICATION_PASSWORD, "secret", inputs)
    assert plain(outputs)["endDate"] == "2030-01-02T03:04:05Z"
    diff = ad.diff(APPLICATION_PASSWORD, "secret", rid, outputs, inputs)
    assert diff.replaces == ["endDate"], "as with the real provider: a new secret every run"
    default = plain(ad.up(APPLICATION_PASSWORD, "default", {"applicationId": app["id"]})[1])
    assert default["endDate"][:4] == str(int(default["startDate"][:4]) + 2)


def test_password_replaces_on_any_change_app_included(ad: Driver) -> None:
    app, _ = app_and_sp(ad)
    other, _ = app_and_sp(ad, "other")
    inputs = {"applicationId": app["id"], "endDate": "2030-01-02T03:04:05Z"}
    rid, outputs = ad.up(APPLICATION_PASSWORD, "secret", inputs)
    for key, value in (("applicationId", other["id"]), ("displayName", "x")):
        diff = ad.diff(APPLICATION_PASSWORD, "secret", rid, outputs, {**inputs, key: value})
        assert diff.replaces == [key] and diff.delete_before_replace is False


def test_password_validation_and_missing_app(ad: Driver) -> None:
    found = {
        f.property: f.reason
        for f in ad.check(
            APPLICATION_PASSWORD,
            "p",
            {"applicationId": "abc", "endDate": "tomorrow", "endDateRelative": "10d"},
        ).failures
    }
    assert found["applicationId"].startswith('parsing "abc": expected the application ID')
    assert (
        found["endDate"].startswith('expected "end_date" to be a valid RFC3339 date')
        or "conflicts" in found["endDate"]
    )
    assert found["endDateRelative"].startswith('time: invalid duration "10d" for end_date_relative')
    ghost = str(uuid.uuid4())
    assert raises(
        lambda: ad.up(APPLICATION_PASSWORD, "p", {"applicationId": f"/applications/{ghost}"})
    ) == (f'Application with object ID "{ghost}" was not found')


def test_deleting_an_app_deletes_its_passwords_and_service_principal(
    ad: Driver, cloud: FakeCloud
) -> None:
    app, _ = app_and_sp(ad)
    ad.up(APPLICATION_PASSWORD, "secret", {"applicationId": app["id"]})
    outputs = ad.read(APPLICATION, "pool-app", app["id"], {}).properties
    ad.delete(APPLICATION, "pool-app", app["id"], outputs)
    assert cloud.resources(cloud="azuread") == []


def test_a_password_starts_on_entra_ids_clock_and_keeps_its_key_id(
    make_aad: Callable[..., Driver], cloud: FakeCloud
) -> None:
    # A test looking at a pool 40 days on moves Entra ID's clock with it.
    later = make_aad(FAKECLOUD_NOW="2031-05-06T07:08:09Z")
    app, _ = app_and_sp(later)
    inputs = {"applicationId": app["id"], "displayName": "d", "endDate": "2031-07-01T00:00:00Z"}
    rid, outputs = later.up(APPLICATION_PASSWORD, "secret", inputs)
    out = plain(outputs)
    assert (out["startDate"], out["endDate"]) == ("2031-05-06T07:08:09Z", "2031-07-01T00:00:00Z")
    (live,) = aad.passwords_of(cloud, app["objectId"])
    assert live["id"] == rid and live["properties"]["keyId"] == out["keyId"]
    assert live["properties"]["startDate"] == "2031-05-06T07:08:09Z"
    # Which password a block holds: by its value's digest (the value itself is never stored).
    assert aad.password_holding(cloud, out["value"])["id"] == rid
    assert aad.password_holding(cloud, out["value"] + "x") is None
    assert out["value"] not in json.dumps(cloud.resources())
    bad = make_aad(FAKECLOUD_NOW="next tuesday")
    assert "FAKECLOUD_NOW='next tuesday' is not an RFC 3339 time" in raises(
        lambda: bad.up(APPLICATION_PASSWORD, "again", inputs)
    )


def test_deleting_a_password_removes_it_and_only_it(ad: Driver, cloud: FakeCloud) -> None:
    app, _ = app_and_sp(ad)
    old_id, old = ad.up(APPLICATION_PASSWORD, "old", {"applicationId": app["id"]})
    new_id, _ = ad.up(APPLICATION_PASSWORD, "new", {"applicationId": app["id"]})
    assert [p["id"] for p in aad.passwords_of(cloud, app["objectId"])] == [old_id, new_id]
    ad.delete(APPLICATION_PASSWORD, "old", old_id, old)
    assert [p["id"] for p in aad.passwords_of(cloud, app["objectId"])] == [new_id]
    assert not ad.read(APPLICATION_PASSWORD, "old", old_id, old).resource_id, "read as gone"
    ad.delete(APPLICATION_PASSWORD, "old", old_id, old)  # gone already: not an error


def test_personal_account_apps_hold_two_passwords_others_any_number(
    ad: Driver, cloud: FakeCloud
) -> None:
    _, personal = ad.up(
        APPLICATION,
        "msa-app",
        {"displayName": "msa", "signInAudience": "AzureADandPersonalMicrosoftAccount"},
    )
    app_id = plain(personal)["id"]
    first, _ = ad.up(APPLICATION_PASSWORD, "p1", {"applicationId": app_id})
    ad.up(APPLICATION_PASSWORD, "p2", {"applicationId": app_id})
    # Graph's words (Azure/azure-cli#12946), as terraform-provider-azuread wraps them.
    object_id = plain(personal)["objectId"]
    assert raises(lambda: ad.up(APPLICATION_PASSWORD, "p3", {"applicationId": app_id})) == (
        f'Adding password for application with object ID "{object_id}": unexpected status 400 '
        "(400 Bad Request) with error: TooManyAppPasswords: Not allowed to add 3 passwords. "
        "You can only add a maximum of 2 passwords."
    )
    # Create-before-delete stays within two: the old one goes, and a new one fits again.
    ad.delete(
        APPLICATION_PASSWORD, "p1", first, ad.read(APPLICATION_PASSWORD, "p1", first, {}).properties
    )
    ad.up(APPLICATION_PASSWORD, "p3", {"applicationId": app_id})
    # A single-tenant app (what the pool's stack registers) has no such limit.
    mine, _ = app_and_sp(ad, "mine")
    for n in range(4):
        ad.up(APPLICATION_PASSWORD, f"m{n}", {"applicationId": mine["id"]})
    assert len(aad.passwords_of(cloud, mine["objectId"])) == 4


# ---------------------------------------------------------------- the engine
@pytest.mark.e2e
def test_engine_smoke_every_type_up_rerun_update_refresh_destroy(tmp_path: Path) -> None:
    """Both plugins under the real engine: create, a no-op rerun, an in-place update, destroy."""
    import pulumi_azuread as azuread
    from pulumi_azure_native import authorization, containerregistry, managedidentity, resources

    require_pulumi_root()
    env = engine_env(
        tmp_path,
        extra={"ARM_TENANT_ID": TENANT, "FAKECLOUD_AZURE_PROPAGATION_MS": "600000"},
    )
    cloud = FakeCloud(env["FAKECLOUD_STATE_DIR"])
    sku = {"name": "Basic"}

    def program() -> None:
        me = authorization.get_client_config_output()
        rg = resources.ResourceGroup("rg", resource_group_name=RG, location="westeurope")
        registry = containerregistry.Registry(
            "registry",
            registry_name="smokeImages1",
            resource_group_name=rg.name,
            location="westeurope",
            sku=containerregistry.SkuArgs(name=sku["name"]),
        )
        identity = managedidentity.UserAssignedIdentity(
            "identity", resource_name_="smoke-id", resource_group_name=rg.name
        )
        app = azuread.Application(
            "app", display_name="smoke", owners=me.object_id.apply(lambda o: [o])
        )
        principal = azuread.ServicePrincipal("sp", client_id=app.client_id)
        role = authorization.RoleDefinition(
            "role",
            role_definition_id=ROLE_GUID,
            role_name="smoke role",
            scope=rg.id,
            assignable_scopes=[rg.id],
            permissions=[
                authorization.PermissionArgs(actions=["Microsoft.Resources/deployments/*"])
            ],
        )
        grants = [
            authorization.RoleAssignment(
                "sp-role",
                role_assignment_name=GRANT_NAME,
                scope=rg.id,
                principal_id=principal.object_id,
                principal_type="ServicePrincipal",
                role_definition_id=role.id,
            ),
            authorization.RoleAssignment(
                "acrpull",  # autonamed: a GUID
                scope=registry.id,
                principal_id=identity.principal_id,
                principal_type="ServicePrincipal",
                role_definition_id=ACR_PULL,
            ),
        ]
        secret = azuread.ApplicationPassword(
            "secret",
            application_id=app.id,
            end_date="2030-01-01T00:00:00Z",
            opts=pulumi.ResourceOptions(depends_on=grants),
        )
        pulumi.export("login_server", registry.login_server)
        pulumi.export("tenant", azuread.get_client_config_output().tenant_id)
        pulumi.export("secret", secret.value)

    stack = inline_stack(tmp_path, env, program, config={"azure-native:subscriptionId": SUB})
    first = stack.up()
    assert first.summary.resource_changes == {"create": 10}
    assert first.outputs["login_server"].value == "smokeimages1.azurecr.io"
    assert first.outputs["tenant"].value == TENANT and first.outputs["secret"].secret
    assert cloud.count(ROLE_ASSIGNMENT) == 2 and cloud.count(APPLICATION_PASSWORD) == 1
    (identity,) = cloud.resources(IDENTITY)
    assert identity["properties"]["location"] == "westeurope", "from the resource group"

    seen = len(cloud.calls(phase=None, include_preview=True))
    assert stack.up().summary.resource_changes == {"same": 10}
    rerun = cloud.calls(phase=None, include_preview=True)[seen:]
    assert [c for c in rerun if c["op"] in ("create", "update", "delete")] == []

    sku["name"] = "Premium"
    assert stack.up().summary.resource_changes == {"same": 9, "update": 1}
    assert cloud.resources(REGISTRY)[0]["properties"]["sku"]["tier"] == "Premium"
    assert stack.refresh().summary.resource_changes == {"same": 10}
    assert stack.preview().change_summary == {"same": 10}

    stack.destroy()
    assert cloud.resources() == []


@pytest.mark.e2e
def test_engine_smoke_a_worker_up_rerun_refresh_destroy(tmp_path: Path) -> None:
    """The worker's types under the real engine: the secure value is a secret in the state,
    ARM never answers it, a rerun and a refresh change nothing, destroy leaves nothing."""
    from pulumi_azure_native import containerinstance, managedidentity, monitor, resources
    from pulumi_azure_native import operationalinsights as insights

    require_pulumi_root()
    env = engine_env(tmp_path, extra={"ARM_TENANT_ID": TENANT})
    cloud = FakeCloud(env["FAKECLOUD_STATE_DIR"])

    def program() -> None:
        rg = resources.ResourceGroup("rg", resource_group_name=RG, location="westeurope")
        identity = managedidentity.UserAssignedIdentity(
            "identity", resource_name_="pool-worker", resource_group_name=rg.name
        )
        workspace = insights.Workspace(
            "logs",
            workspace_name="pool-logs",
            resource_group_name=rg.name,
            sku=insights.WorkspaceSkuArgs(name="PerGB2018"),
            retention_in_days=30,
        )
        worker = containerinstance.ContainerGroup(
            "worker",
            container_group_name="pool-worker-0",
            resource_group_name=rg.name,
            os_type="Linux",
            restart_policy="Always",
            identity=containerinstance.ContainerGroupIdentityArgs(
                type="UserAssigned", user_assigned_identities=[identity.id]
            ),
            containers=[
                containerinstance.ContainerArgs(
                    name="worker",
                    image="prefecthq/prefect:3.8.8-python3.12",
                    command=["prefect", "worker", "start", "--pool", "pool"],
                    environment_variables=[
                        containerinstance.EnvironmentVariableArgs(
                            name="PREFECT_API_AUTH_STRING", secure_value=pulumi.Output.secret(AUTH)
                        )
                    ],
                    resources=containerinstance.ResourceRequirementsArgs(
                        requests=containerinstance.ResourceRequestsArgs(cpu=1.0, memory_in_gb=1.5)
                    ),
                )
            ],
        )
        monitor.DiagnosticSetting(
            "worker-logs",
            name="worker-logs",
            resource_uri=worker.id,
            workspace_id=workspace.id,
            logs=[
                monitor.DiagnosticsLogSettingsArgs(category="ContainerInstanceLog", enabled=True)
            ],
        )
        pulumi.export("principal", worker.identity.apply(lambda i: i.user_assigned_identities))

    stack = inline_stack(tmp_path, env, program, config={"azure-native:subscriptionId": SUB})
    first = stack.up()
    assert first.summary.resource_changes == {"create": 6}  # and the stack
    (record,) = cloud.resources(CONTAINER_GROUP)
    assert secure_value_matches(record, "worker", "PREFECT_API_AUTH_STRING", AUTH)
    (identity,) = cloud.resources(IDENTITY)
    assert list(first.outputs["principal"].value) == [identity["id"]]

    seen = len(cloud.calls(phase=None, include_preview=True))
    assert stack.up().summary.resource_changes == {"same": 6}
    assert stack.refresh().summary.resource_changes == {"same": 6}
    assert stack.preview().change_summary == {"same": 6}
    later = cloud.calls(phase=None, include_preview=True)[seen:]
    assert [c for c in later if c["op"] in ("create", "update", "delete")] == []
    # The state (and everything else on disk) holds the secure value only as ciphertext.
    for path in tmp_path.rglob("*"):
        if path.is_file() and path.stat().st_size < 5_000_000:
            assert AUTH not in path.read_text(errors="replace"), path

    stack.destroy()
    assert cloud.resources() == []  # the workspace is a soft-deleted tombstone
    assert [r["type"] for r in cloud.resources(include_deleted=True)] == [WORKSPACE]
