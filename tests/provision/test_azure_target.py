"""AzurePool: option resolution, naming, Prefect block and template wiring, grants, program."""

from __future__ import annotations

import asyncio
import codecs
import dataclasses
import json
import re
import subprocess
import sys
import uuid
from pathlib import Path

import pulumi
import pytest
from pulumi.runtime import settings as pulumi_settings

from provision.engine_errors import classify, propagation_rules
from provision.errors import (
    ApiNotEnabledError,
    CloudCredentialsError,
    EngineError,
    InvalidInputError,
    OrgPolicyError,
    PermissionDeniedError,
    QuotaExceededError,
)
from provision.registry import POOL_TYPES, target
from provision.targets import azure_naming as naming
from provision.targets.azure import (
    PROPAGATION_ERRORS,
    AzureOptions,
    AzurePool,
    cli_default_subscription,
    secret_end_date,
    secret_lifetime_start,
    worker_command,
)
from provision.targets.base import PLACEHOLDER, BlockSpec, Credential, Pool, WorkerLaunch
from stacks.azure_aci import resource_group_id, role_definition_arm_id, role_definition_guid

ACI = POOL_TYPES["azure-container-instance"]
ACI_PUSH = POOL_TYPES["azure-container-instance:push"]

SUB = "11111111-2222-3333-4444-555555555555"
OTHER_SUB = "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"
TENANT = "99999999-8888-7777-6666-555555555555"

NONE_GIVEN = dict.fromkeys(
    ("subscription", "location", "resource_group", "registry_name", "registry_sku", "secret_days")
)

# Variables the azure-container-instance worker's template declares (prefect-azure
# workers/container_instance.py AzureContainerVariables, plus BaseVariables); the tool may set
# defaults only for these.
TEMPLATE_VARIABLES = {
    "name",
    "env",
    "labels",
    "command",
    "image",
    "resource_group_name",
    "subscription_id",
    "identities",
    "entrypoint",
    "image_registry",
    "cpu",
    "gpu_count",
    "gpu_sku",
    "memory",
    "subnet_ids",
    "dns_servers",
    "aci_credentials",
    "stream_output",
    "task_start_timeout_seconds",
    "task_watch_poll_interval",
    "keep_container_group",
}

TRICKY_POOLS = [
    "a",
    "etl",
    "ETL",
    "my_pool",
    "My Pool #2",
    "9lives",
    "-leading-dash",
    "trailing-dash-",
    "___",
    "😀 emoji pool",
    "ünïcödé-pööl",
    "data-team/prod",
    "a" * 41,
    "a" * 42,
    "a" * 43,
    "x" * 200,
    "the-quick-brown-fox-jumps-over-the-lazy-dog-and-then-some-more",
    "the-quick-brown-fox-jumps-over-the-lazy-cat-and-then-some-more",
    "a-b" * 40,
    "1",
    "--",
    "p",
    "UPPER_and_lower_123",
]


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """An empty HOME, so the developer's own Azure CLI profile never leaks into a test."""
    return tmp_path / "home"


def azure_profile(base: Path, *subs: tuple[str, bool], bom: bool = True) -> Path:
    """Write ``azureProfile.json`` the way the Azure CLI does (UTF-8 with a BOM)."""
    base.mkdir(parents=True, exist_ok=True)
    profile = {
        "installationId": "d0a1b2c3-0000-4000-8000-000000000000",
        "subscriptions": [
            {
                "id": sub,
                "name": f"sub {i}",
                "state": "Enabled",
                "user": {"name": "dev@contoso.com", "type": "user"},
                "isDefault": default,
                "tenantId": TENANT,
                "environmentName": "AzureCloud",
            }
            for i, (sub, default) in enumerate(subs)
        ],
    }
    raw = json.dumps(profile, indent=2).encode("utf-8")
    (base / "azureProfile.json").write_bytes((codecs.BOM_UTF8 if bom else b"") + raw)
    return base


GENERATED = {"registry_suffix": "0a1b2c3d", "secret_start": "2026-01-01T00:00:00Z"}
ROTATED = {"credential_rotation": "2", "credential_rotated_at": "2026-03-02T12:30:00+00:00"}
"""What the service adds to the record when it rotates the secret (the second time here)."""


def resolve_pool(
    *, pool="etl", pool_type=ACI, given=None, env=None, saved=None, home=None, generated=None
) -> AzurePool:
    """``AzurePool.resolve`` as the service calls it: ``saved`` options as the record keeps
    them."""
    env = dict(env or {})
    if home is not None:
        env.setdefault("HOME", str(home))
    prior = saved.model_dump(mode="json") if isinstance(saved, AzureOptions) else saved
    given = {**NONE_GIVEN, **(given or {})}
    return AzurePool.resolve(pool, pool_type, given, env, prior, generated)


def resolve(**kw) -> AzureOptions:
    """The options :func:`resolve_pool` binds."""
    return resolve_pool(**kw).options


def pool_ok(home, pool_type=ACI, **given) -> AzurePool:
    """The pool ``etl`` with a valid subscription and location, plus ``given``; its
    generated values fixed."""
    return resolve_pool(
        pool_type=pool_type,
        given={"subscription": SUB, "location": "westeurope", **given},
        home=home,
        generated=GENERATED,
    )


def resolve_ok(home, **given) -> AzureOptions:
    """Resolve with a valid subscription and location, plus ``given``."""
    return pool_ok(home, **given).options


# -- resolve: sources and precedence ---------------------------------------------------------


def test_defaults_derive_from_the_pool_name(home):
    opts = resolve(
        pool="My_Pool",
        given={"location": "westeurope"},
        env={"AZURE_SUBSCRIPTION_ID": SUB},
        home=home,
    )
    assert opts == AzureOptions(
        subscription=SUB,
        location="westeurope",
        resource_group="my-pool-rg",
        registry_name=None,
        registry_sku="Basic",
        secret_days=365,
    )


def test_subscription_precedence(tmp_path, home):
    conf = azure_profile(
        tmp_path / "az", (OTHER_SUB, False), ("cccccccc-0000-0000-0000-000000000001", True)
    )
    env = {
        "AZURE_SUBSCRIPTION_ID": "dddddddd-0000-0000-0000-000000000002",
        "AZURE_CONFIG_DIR": str(conf),
    }
    loc = {"location": "westeurope"}
    saved = resolve(
        given={**loc, "subscription": "eeeeeeee-0000-0000-0000-000000000003"},
        home=home,
    )

    def subscription(**kw):
        return resolve(home=home, **kw).subscription

    assert subscription(given={**loc, "subscription": SUB}, env=env, saved=saved) == SUB
    assert subscription(env=env, saved=saved) == "eeeeeeee-0000-0000-0000-000000000003"
    assert subscription(given=loc, env=env) == "dddddddd-0000-0000-0000-000000000002"
    del env["AZURE_SUBSCRIPTION_ID"]
    assert subscription(given=loc, env=env) == "cccccccc-0000-0000-0000-000000000001"


def test_empty_env_values_count_as_unset(tmp_path, home):
    conf = azure_profile(tmp_path / "az", (SUB, True))
    env = {"AZURE_SUBSCRIPTION_ID": "  ", "AZURE_CONFIG_DIR": str(conf)}
    assert resolve(given={"location": "westeurope"}, env=env).subscription == SUB


def test_cli_profile_in_home(home):
    azure_profile(home / ".azure", (OTHER_SUB, False), (SUB, True))
    assert resolve(given={"location": "westeurope"}, home=home).subscription == SUB


@pytest.mark.parametrize("bom", [True, False])
def test_cli_profile_with_or_without_bom(tmp_path, bom):
    conf = azure_profile(tmp_path / "az", (SUB, True), bom=bom)
    assert (conf / "azureProfile.json").read_bytes().startswith(codecs.BOM_UTF8) is bom
    assert cli_default_subscription({"AZURE_CONFIG_DIR": str(conf)}) == SUB


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"\xef\xbb\xbfnot json",
        b"\xff\xfe\x00garbage",
        b"[]",
        b'{"subscriptions": {}}',
        b'{"subscriptions": [{"id": "x", "isDefault": false}, "junk"]}',
        b'{"subscriptions": [{"isDefault": true}]}',
    ],
)
def test_malformed_or_default_less_profile_is_ignored(tmp_path, home, content):
    base = tmp_path / "az"
    base.mkdir()
    (base / "azureProfile.json").write_bytes(content)
    env = {"AZURE_CONFIG_DIR": str(base)}
    assert cli_default_subscription(env) is None
    with pytest.raises(InvalidInputError, match="No Azure subscription"):
        resolve(given={"location": "westeurope"}, env=env, home=home)


def test_missing_subscription_message(home):
    with pytest.raises(InvalidInputError) as info:
        resolve(given={"location": "westeurope"}, home=home)
    assert info.value.message == (
        "No Azure subscription: pass --subscription, set AZURE_SUBSCRIPTION_ID or run "
        "`az account set --subscription ID`."
    )
    assert info.value.exit_code == 2


def test_missing_location_names_the_flag(home):
    with pytest.raises(InvalidInputError) as info:
        resolve(given={"subscription": SUB}, home=home)
    assert info.value.message == "No Azure location: pass --location (e.g. westeurope)."
    assert info.value.exit_code == 2


@pytest.mark.parametrize("spelling", ["westeurope", "WestEurope", "West Europe", " westeurope "])
def test_location_spellings_normalise(home, spelling):
    assert resolve_ok(home, location=spelling).location == "westeurope"


def test_subscription_is_lowercased(home):
    assert resolve_ok(home, subscription=SUB.upper()).subscription == SUB


@pytest.mark.parametrize(("given", "canonical"), [("basic", "Basic"), ("PREMIUM", "Premium")])
def test_sku_case_is_forgiven(home, given, canonical):
    assert resolve_ok(home, registry_sku=given).registry_sku == canonical


def test_saved_options_are_reused_and_flags_win(home):
    saved = AzureOptions(
        subscription=SUB,
        location="northeurope",
        resource_group="custom-rg",
        registry_name="customregistry",
        registry_sku="Premium",
        secret_days=90,
    )
    assert resolve(saved=saved, home=home) == saved
    again = resolve(saved=saved, given={"secret_days": 60, "location": "uksouth"})
    assert (again.secret_days, again.location) == (60, "uksouth")
    assert again.resource_group == "custom-rg" and again.registry_name == "customregistry"


def test_unset_options_of_other_clouds_are_ignored(home):
    opts = resolve_ok(home, project=None, vpc_id=None, region=None)
    assert opts.subscription == SUB


def test_explicit_values(home):
    opts = resolve_ok(
        home,
        resource_group="Team.Data(prod)_1",
        registry_name="TeamRegistry01",
        registry_sku="Standard",
        secret_days=730,
    )
    assert opts.resource_group == "Team.Data(prod)_1"
    assert opts.registry_name == "TeamRegistry01"
    assert (opts.registry_sku, opts.secret_days) == ("Standard", 730)
    assert resolve_ok(home, secret_days=31).secret_days == 31
    # No secret with the worker in Azure: its lifetime is not held to the renewal window.
    assert resolve_ok(home, secret_days=1, with_worker=True).secret_days == 1


# -- resolve: bad input, one line each -----------------------------------------------

OPTION_OF = "does not apply to type 'azure-container-instance'."
BAD_INPUTS = [
    ({"project": "acme-prod"}, f"Option --project {OPTION_OF}"),
    ({"vpc_id": "vpc-123"}, f"Option --vpc-id {OPTION_OF}"),
    ({"region": "us-east-1"}, f"Option --region {OPTION_OF}"),
    ({"registry_writer": True}, f"Option --registry-writer {OPTION_OF}"),
    ({"subscription": "not-a-guid"}, "Invalid Azure subscription id 'not-a-guid' (from --sub"),
    ({"subscription": SUB[:-1]}, "Invalid Azure subscription id"),
    ({"subscription": SUB + "0"}, "Invalid Azure subscription id"),
    ({"subscription": "{" + SUB + "}"}, "Invalid Azure subscription id"),
    ({"location": "westeurop"}, "Unknown Azure location 'westeurop' (from --location); did you"),
    ({"location": "westeurop"}, "did you mean westeurope?"),
    ({"location": "mars"}, "see `az account list-locations -o table`."),
    ({"location": "europe-west1"}, "Unknown Azure location 'europe-west1'"),
    ({"resource_group": "r" * 91}, "Invalid --resource-group"),
    ({"resource_group": "ends-with-period."}, "Invalid --resource-group 'ends-with-period.'"),
    ({"resource_group": "has space"}, "Invalid --resource-group"),
    ({"resource_group": "slash/rg"}, "Invalid --resource-group"),
    ({"resource_group": "hash#rg"}, "Invalid --resource-group"),
    ({"registry_name": "abcd"}, "Invalid --registry-name 'abcd' (from --registry-name): 5-50"),
    ({"registry_name": "a" * 51}, "Invalid --registry-name"),
    ({"registry_name": "my-registry"}, "Invalid --registry-name"),
    ({"registry_name": "my_registry"}, "Invalid --registry-name"),
    ({"registry_name": "régistry1"}, "Invalid --registry-name"),
    ({"registry_sku": "Free"}, "Invalid --registry-sku 'Free' (from --registry-sku): use one of"),
    ({"registry_sku": "Classic"}, "Basic, Standard, Premium."),
    ({"secret_days": 0}, "Invalid --secret-days 0 (from --secret-days): a whole number"),
    ({"secret_days": 731}, "Invalid --secret-days 731"),
    ({"secret_days": -5}, "from 31 to 730."),
    ({"secret_days": 30}, "Invalid --secret-days 30 (from --secret-days): a client secret living"),
    ({"secret_days": 1}, "renewal window, so every run would replace it; use 31 to 730 days"),
    (
        {"rotate_after": 365},
        "--rotate-after 365 (from --rotate-after) is not shorter than the client secret's "
        "lifetime of 365 days: the secret would expire before it is old enough to rotate.",
    ),
    (
        {"rotate_after": 91, "secret_days": 90},
        "of 90 days (from --secret-days): the secret would expire before it is old enough to "
        "rotate. Use a --rotate-after below 90, or a longer --secret-days.",
    ),
    ({"rotate_after": 0}, "Invalid --rotate-after 0 (from --rotate-after): 1 to 3650 days."),
    ({"secret_days": True}, "Invalid --secret-days True"),
    ({"secret_days": "30"}, "Invalid --secret-days '30'"),
    ({"secret_days": 30.5}, "Invalid --secret-days 30.5"),
]


@pytest.mark.parametrize(("given", "needle"), BAD_INPUTS)
def test_bad_inputs_are_one_line_errors(home, given, needle):
    with pytest.raises(InvalidInputError) as info:
        resolve_ok(home, **given)
    message = info.value.message
    assert needle in message
    assert "\n" not in message
    assert info.value.exit_code == 2


def test_bad_subscription_names_its_source(tmp_path, home):
    with pytest.raises(InvalidInputError, match=r"'nope' \(from AZURE_SUBSCRIPTION_ID\)"):
        resolve(given={"location": "westeurope"}, env={"AZURE_SUBSCRIPTION_ID": "nope"})
    conf = azure_profile(tmp_path / "az", ("bad", True))
    with pytest.raises(InvalidInputError, match=r"\(from the Azure CLI's default subscription\)"):
        resolve(given={"location": "westeurope"}, env={"AZURE_CONFIG_DIR": str(conf)})


def test_bad_saved_location_names_its_source(home):
    saved = AzureOptions.model_construct(
        subscription=SUB,
        location="atlantis",
        resource_group="etl-rg",
        registry_sku="Basic",
        registry_name=None,
        secret_days=365,
    )
    with pytest.raises(InvalidInputError, match=r"\(from the pool's saved options\)"):
        resolve(saved=saved, home=home)


def test_locations_list():
    for loc in ("westeurope", "northeurope", "eastus", "eastus2", "uksouth", "westus2"):
        assert loc in naming.AZURE_LOCATIONS
    assert len(set(naming.AZURE_LOCATIONS)) == len(naming.AZURE_LOCATIONS)
    assert all(re.fullmatch(r"[a-z]+[0-9]?", loc) for loc in naming.AZURE_LOCATIONS)
    assert list(naming.AZURE_LOCATIONS) == sorted(naming.AZURE_LOCATIONS)


# -- naming ----------------------------------------------------------------------------------


@pytest.mark.parametrize("pool", TRICKY_POOLS)
def test_derived_names_are_always_valid_and_stable(pool):
    suffix = "0a1b2c3d"
    registry = naming.registry_name(pool, suffix)
    assert naming.REGISTRY_NAME_RE.match(registry), registry
    assert registry.endswith(suffix) and registry == registry.lower()
    assert registry == naming.registry_name(pool, suffix)  # stable
    rg = naming.resource_group(pool)
    assert naming.RESOURCE_GROUP_RE.match(rg), rg
    assert rg.endswith("-rg") and rg == naming.resource_group(pool)
    identity = naming.identity_name(pool)
    assert naming.IDENTITY_NAME_RE.match(identity), identity
    assert naming.login_server(registry) == f"{registry}.azurecr.io"


@pytest.mark.parametrize("pool", TRICKY_POOLS)
def test_derived_defaults_pass_resolve_options(home, pool):
    opts = resolve(pool=pool, given={"subscription": SUB, "location": "eastus"}, home=home)
    assert opts.resource_group == naming.resource_group(pool)


def test_registry_names_over_many_pools():
    pools = [f"pool-{i}" for i in range(300)] + [f"Team_{i}_ETL" for i in range(300)]
    suffixes = [f"{i:08x}" for i in range(len(pools))]
    names = [naming.registry_name(p, s) for p, s in zip(pools, suffixes, strict=True)]
    assert all(naming.REGISTRY_NAME_RE.match(n) for n in names)
    assert len(set(names)) == len(names)
    # The suffix makes two stacks of the same pool (other subscriptions) distinct.
    assert naming.registry_name("etl", "00000001") != naming.registry_name("etl", "00000002")


def test_registry_name_shapes():
    assert naming.registry_name("etl", "0a1b2c3d") == "etl0a1b2c3d"
    assert naming.registry_name("My Pool #2", "0a1b2c3d") == "mypool20a1b2c3d"
    assert naming.registry_name("___", "0a1b2c3d") == "pool0a1b2c3d"
    assert naming.registry_name("😀", "0a1b2c3d") == "pool0a1b2c3d"
    long = naming.registry_name("x" * 200, "0a1b2c3d")
    assert len(long) == 50 and long.endswith("0a1b2c3d")
    with pytest.raises(ValueError, match="registry suffix"):
        naming.registry_name("etl", "XYZ")


def test_other_names():
    assert naming.resource_group("etl") == "etl-rg"
    assert naming.resource_group("My Pool #2") == "my-pool-2-rg"
    assert naming.identity_name("data_team") == "data-team-identity"
    assert naming.app_display_name("etl") == "provision-aci-etl"
    long_rg = naming.resource_group("y" * 300)
    assert len(long_rg) == 90 and naming.pool_hash("y" * 300) in long_rg
    assert naming.identity_id(SUB, "etl-rg", "etl-identity") == (
        f"/subscriptions/{SUB}/resourceGroups/etl-rg/providers/"
        "Microsoft.ManagedIdentity/userAssignedIdentities/etl-identity"
    )


# -- generated & provider config --------------------------------------------------------------


def test_generated_config_is_chosen_once(home):
    opts = resolve_ok(home)
    first = AzurePool.generate("etl", opts)
    second = AzurePool.generate("etl", opts)
    assert set(first) == {"registry_suffix", "secret_start"}
    assert naming.REGISTRY_SUFFIX_RE.match(first["registry_suffix"])
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", first["secret_start"])
    assert first["registry_suffix"] != second["registry_suffix"]  # random: kept by the engine
    # resolve() chooses them for a new stack only; a saved stack keeps its own.
    given = {"subscription": SUB, "location": "westeurope"}
    fresh = resolve_pool(given=given, home=home).generated
    assert set(fresh) == {"registry_suffix", "secret_start"}
    assert resolve_pool(given=given, home=home, generated=GENERATED).generated == GENERATED


def test_provider_config_and_location(home):
    pool = pool_ok(home)
    assert pool.provider_config() == {
        "azure-native:subscriptionId": SUB,
        "azure-native:location": "westeurope",
    }
    assert pool.location() == f"{SUB}/etl-rg (westeurope)"


OTHER_TENANT = "12121212-3434-4565-8787-909090909090"


def test_the_subscriptions_tenant_pins_both_providers(tmp_path, home):
    # A user signed in to two tenants: the profile knows which one owns the subscription.
    profile = azure_profile(tmp_path / "az", (OTHER_SUB, True), (SUB, False))
    env = {"AZURE_CONFIG_DIR": str(profile)}
    given = {"subscription": SUB, "location": "westeurope"}
    pool = resolve_pool(given=given, env=env, home=home)
    assert pool.options.tenant == TENANT
    config = pool.provider_config()
    assert config["azure-native:tenantId"] == config["azuread:tenantId"] == TENANT
    # The environment names the tenant the providers authenticate to: it wins.
    opts = resolve(given=given, env={**env, "ARM_TENANT_ID": OTHER_TENANT})
    assert opts.tenant == OTHER_TENANT


def test_an_unknown_or_non_guid_tenant_leaves_the_providers_unpinned(home):
    given = {"subscription": SUB, "location": "westeurope"}
    for env in ({}, {"ARM_TENANT_ID": "contoso.onmicrosoft.com"}):
        pool = resolve_pool(given=given, env=env, home=home)
        assert pool.options.tenant is None
        assert not any("tenantId" in k for k in pool.provider_config())


def test_a_saved_tenant_stays_with_its_subscription(home):
    saved = AzureOptions(
        subscription=SUB, location="westeurope", resource_group="etl-rg", tenant=OTHER_TENANT
    )
    assert resolve(saved=saved, home=home).tenant == OTHER_TENANT
    moved = resolve(saved=saved, given={"subscription": OTHER_SUB}, home=home)
    assert moved.tenant is None  # another subscription: its tenant is looked up afresh
    # Options saved before tenants were recorded still load.
    assert AzureOptions.model_validate(saved.model_dump(exclude={"tenant"})).tenant is None


def test_secret_end_date():
    assert secret_end_date("2026-01-01T00:00:00Z", 365) == "2027-01-01T00:00:00Z"
    assert secret_end_date("2026-02-28T13:14:15Z", 1) == "2026-03-01T13:14:15Z"
    with pytest.raises(ValueError):
        secret_end_date("yesterday", 1)


def test_target_attributes():
    assert target("azure") is AzurePool
    assert issubclass(AzurePool, Pool)
    assert AzurePool.cloud == "azure"
    assert AzurePool.block == BlockSpec(
        type="azure-container-instance-credentials", suffix="aci-credentials"
    )
    assert AzurePool.block.type == "azure-container-instance-credentials"
    assert AzurePool.block.suffix == "aci-credentials"
    assert AzurePool.options_model is AzureOptions
    assert AzurePool.error_rules
    assert "azuread:index/applicationPassword:ApplicationPassword" in AzurePool.orphan_hints


# -- errors and propagation -------------------------------------------------------------------

CLASSIFIED = [
    (
        "error: building auth config: obtain subscription() from Azure CLI: parsing json result "
        "from the Azure CLI: waiting for the Azure CLI: exit status 1: ERROR: Please run 'az "
        "login' to setup account.",
        CloudCredentialsError,
        "No usable Azure credentials.",
    ),
    (
        "DefaultAzureCredential failed to retrieve a token from the included credentials.",
        CloudCredentialsError,
        "No usable Azure credentials.",
    ),
    (
        "AADSTS700082: The refresh token has expired due to inactivity.",
        CloudCredentialsError,
        "No usable Azure credentials.",
    ),
    (
        'Status=403 Code="AuthorizationFailed" Message="The client \'dev@contoso.com\' with '
        "object id '0bf7' does not have authorization to perform action "
        "'Microsoft.Authorization/roleDefinitions/write' over scope '/subscriptions/x' or the "
        'scope is invalid."',
        PermissionDeniedError,
        "Permission denied in Azure: Microsoft.Authorization/roleDefinitions/write is missing.",
    ),
    (
        "Could not create application: ApplicationsClient.BaseClient.Post(): unexpected status "
        "403 with OData error: Authorization_RequestDenied: Insufficient privileges to complete "
        "the operation.",
        PermissionDeniedError,
        "Entra ID refused to create the app registration",
    ),
    (
        'Code="MissingSubscriptionRegistration" Message="The subscription is not registered '
        "to use namespace 'Microsoft.ContainerRegistry'. See https://aka.ms/rps-not-found\"",
        ApiNotEnabledError,
        "(Microsoft.ContainerRegistry)",
    ),
    (
        'Code="AlreadyInUse" Message="The registry DNS name etl0a1b2c3d.azurecr.io is already '
        'in use. You can check if the name is already claimed using following API: ..."',
        EngineError,
        "The container registry name (etl0a1b2c3d.azurecr.io) is taken",
    ),
    (
        'Code="QuotaExceeded" Message="Operation could not be completed as it results in '
        'exceeding approved Total Regional Cores quota."',
        QuotaExceededError,
        "An Azure quota or limit was hit.",
    ),
    (
        'Code="RequestDisallowedByPolicy" Message="Resource \'etl0a1b2c3d\' was disallowed by '
        'policy. Policy identifiers: \'[{"policyAssignment":{"name":"Allowed locations"}}]\'"',
        OrgPolicyError,
        "An Azure Policy assignment forbids",
    ),
    (
        "cannot create already existing resource '/subscriptions/x/resourceGroups/etl-rg'",
        EngineError,
        "already exists outside it: /subscriptions/x/resourceGroups/etl-rg.",
    ),
]


@pytest.mark.parametrize(("text", "error", "needle"), CLASSIFIED)
def test_error_rules_classify_azure_texts(text, error, needle):
    err = classify(text, pool="etl", rules=AzurePool.error_rules)
    assert type(err) is error, err.message
    assert needle in err.message
    assert "\n" not in err.message and err.hint


PROPAGATING = [
    'Code="PrincipalNotFound" Message="Principal 0f14a80d42e54d57afe046acf9dfae05 does not '
    "exist in the directory c7cb8e56-3c8d-431c-a94c-866e27a25b45. Check that you have the "
    "correct principal ID. If you are creating this principal and then immediately assigning "
    'a role, this error might be related to a replication delay."',
    "Principal 0f14a80d42e54d57afe046acf9dfae05 does not exist in the directory c7cb8e56.",
    'Code="RoleDefinitionDoesNotExist" Message="The specified role definition with ID '
    "'4789425d-7124-5abc-89ce-ac33c0def8a4' does not exist.\"",
    "Could not create service principal: unexpected status 400 with OData error: "
    "Request_BadRequest: The appId '1b2c' of the service principal does not reference a valid "
    "application object.",
    "unexpected status 404 with OData error: Request_ResourceNotFound: Resource "
    "'0a1b2c3d-0000-4000-8000-000000000000' does not exist or one of its queried "
    "reference-property objects are not present.",
]

NOT_PROPAGATING = [
    "does not have authorization to perform action 'Microsoft.Authorization/roleAssignments/"
    "write' over scope '/subscriptions/x'",
    "Authorization_RequestDenied: Insufficient privileges to complete the operation.",
    "The registry DNS name etl.azurecr.io is already in use.",
    "Please run 'az login' to setup account.",
    'Code="RoleAssignmentExists" Message="The role assignment already exists."',
    "The subscription is not registered to use namespace 'Microsoft.ContainerInstance'.",
    # Across lines nothing may chain: the engine matches with DOTALL.
    "Principal abc\ndoes not exist in the directory",
]


def _propagating(text: str) -> bool:
    """As ``up`` decides whether to retry."""
    return any(rule.match(text) for rule in propagation_rules(PROPAGATION_ERRORS))


@pytest.mark.parametrize("text", PROPAGATING)
def test_propagation_errors_match_real_texts(text):
    assert _propagating(text)


@pytest.mark.parametrize("text", NOT_PROPAGATING)
def test_propagation_errors_leave_real_failures_alone(text):
    assert not _propagating(text)


def test_target_exposes_the_propagation_regexes():
    assert AzurePool.propagation_errors == PROPAGATION_ERRORS


# -- Prefect block and template ---------------------------------------------------------------

IDENTITY_ID = naming.identity_id(SUB, "etl-rg", "etl-identity")
WORKER_IDENTITY_ID = naming.identity_id(SUB, "etl-rg", "etl-worker")
WORKER_CLIENT_ID = "d2d2d2d2-0000-4000-8000-000000000000"
WORKSPACE_CUSTOMER_ID = "e3e3e3e3-0000-4000-8000-000000000000"
OUTPUTS = {
    "subscription_id": SUB,
    "tenant_id": TENANT,
    "location": "westeurope",
    "resource_group_name": "etl-rg",
    "registry_name": "etl0a1b2c3d",
    "registry_login_server": "etl0a1b2c3d.azurecr.io",
    "identity_id": IDENTITY_ID,
    "identity_client_id": "c1c1c1c1-0000-4000-8000-000000000000",
    "client_id": "a1a1a1a1-0000-4000-8000-000000000000",
    "client_secret": "Qx8Q~fake.client.secret",
    "client_secret_end_date": "2027-01-01T00:00:00Z",
    "credential_created_at": "2026-01-01T00:00:07Z",
    "credential_expires_at": "2027-01-01T00:00:00Z",
    "role_definition_id": role_definition_arm_id(
        SUB, role_definition_guid(resource_group_id(SUB, "etl-rg"))
    ),
}


def test_block_data(home):
    assert pool_ok(home).block_data(OUTPUTS, {}) == {
        "client_id": OUTPUTS["client_id"],
        "tenant_id": TENANT,
        "client_secret": OUTPUTS["client_secret"],
    }


@pytest.mark.parametrize("missing", ["client_id", "tenant_id", "client_secret"])
def test_block_data_rejects_missing_credentials(home, missing):
    with pytest.raises(EngineError) as info:
        pool_ok(home).block_data({**OUTPUTS, missing: None}, {})
    assert missing in info.value.message and "\n" not in info.value.message
    assert OUTPUTS["client_secret"] not in info.value.message


@pytest.mark.parametrize("pool_type", [ACI, ACI_PUSH])
def test_template_defaults(home, pool_type):
    block_id = "8c1d6c1e-0000-4000-8000-000000000001"
    defaults = pool_ok(home, pool_type).template_defaults(OUTPUTS, block_id)
    assert defaults == {
        "aci_credentials": {"$ref": {"block_document_id": block_id}},
        "resource_group_name": "etl-rg",
        "subscription_id": SUB,
        "identities": [IDENTITY_ID],
        "image_registry": {"registry_url": "etl0a1b2c3d.azurecr.io", "identity": IDENTITY_ID},
    }
    assert set(defaults) <= TEMPLATE_VARIABLES


def test_template_defaults_for_a_plan(home):
    pool = pool_ok(home)
    expected = pool.expected_outputs()
    defaults = pool.template_defaults(expected, None)
    assert defaults["aci_credentials"] == {"$ref": {"block_document_id": PLACEHOLDER}}
    assert defaults["image_registry"] == {"registry_url": PLACEHOLDER, "identity": IDENTITY_ID}
    assert defaults["identities"] == [IDENTITY_ID]


def test_expected_outputs_predict_the_real_ones(home):
    expected = pool_ok(home).expected_outputs()
    assert expected == {k: v for k, v in OUTPUTS.items() if k in expected}
    assert {"client_secret", "tenant_id", "client_id", "registry_name"}.isdisjoint(expected)
    named = pool_ok(home, registry_name="etl0a1b2c3d").expected_outputs()
    assert named == {k: v for k, v in OUTPUTS.items() if k in named}
    assert named["registry_login_server"] == "etl0a1b2c3d.azurecr.io"


# -- plan, grants, next steps -----------------------------------------------------------------


def test_grants(home):
    from stacks.azure_aci import ROLE_ACTIONS

    role, pull = pool_ok(home).grants()
    assert role.principal == "service principal provision-aci-etl"
    assert role.role == f"provision ACI submitter etl-rg {SUB}"
    assert role.scope == "resource group etl-rg only"
    assert role.permissions == tuple(ROLE_ACTIONS)
    assert "Microsoft.ManagedIdentity/userAssignedIdentities/assign/action" in role.permissions
    assert pull.principal == "managed identity etl-identity"
    assert pull.role == "AcrPull"
    assert pull.scope == "registry etl<random> only"
    assert all(g.why for g in (role, pull))
    named = pool_ok(home, registry_name="teamreg01")
    assert named.grants()[1].scope == "registry teamreg01 only"


def test_next_steps_worker_pool(home):
    steps = resolve_pool(
        pool="my pool", given={"subscription": SUB, "location": "westeurope"}, home=home
    ).next_steps(OUTPUTS)
    assert steps.image_namespace == "etl0a1b2c3d.azurecr.io"
    assert steps.deploy_snippet == (
        'my_flow.deploy(name="my-deployment", work_pool_name="my pool", '
        'image="etl0a1b2c3d.azurecr.io/my-image:latest")'
    )
    assert steps.commands == (
        "az provider register --namespace Microsoft.ContainerInstance",
        "az acr login --name etl0a1b2c3d",
        "prefect worker start --pool 'my pool'",
    )
    # Never a password on a command line.
    assert not any("password" in c or OUTPUTS["client_secret"] in c for c in steps.commands)


def test_next_steps_push_pool_has_no_worker(home):
    steps = pool_ok(home, ACI_PUSH).next_steps(OUTPUTS)
    assert not any("prefect worker" in c for c in steps.commands)
    assert "az acr login --name etl0a1b2c3d" in steps.commands


def test_next_steps_for_a_plan(home):
    steps = pool_ok(home).next_steps({})
    assert steps.image_namespace == PLACEHOLDER
    assert "az acr login --name '<created on up>'" in steps.commands


# -- the program under mocks -------------------------------------------------------------------


class ProgramMocks(pulumi.runtime.Mocks):
    """Just enough provider behaviour for the exports (see tests/stacks for the full set)."""

    def new_resource(self, args):
        out = dict(args.inputs)
        rid = f"{args.name}-id"
        rg_id = f"/subscriptions/{SUB}/resourceGroups/{args.inputs.get('resourceGroupName')}"
        if args.typ == "azure-native:resources:ResourceGroup":
            rid, out["name"] = rg_id, args.inputs["resourceGroupName"]
        elif args.typ == "azure-native:containerregistry:Registry":
            name = args.inputs["registryName"]
            rid = f"{rg_id}/providers/Microsoft.ContainerRegistry/registries/{name}"
            out.update(name=name, loginServer=f"{name.lower()}.azurecr.io")
        elif args.typ == "azure-native:managedidentity:UserAssignedIdentity":
            name = args.inputs["resourceName"]
            rid = naming.identity_id(SUB, args.inputs["resourceGroupName"], name)
            client = WORKER_CLIENT_ID if name == "etl-worker" else OUTPUTS["identity_client_id"]
            out.update(principalId=str(uuid.uuid4()), clientId=client)
        elif args.typ == "azure-native:containerinstance:ContainerGroup":
            name = args.inputs["containerGroupName"]
            rid = f"{rg_id}/providers/Microsoft.ContainerInstance/containerGroups/{name}"
            # ARM answers with a map of the identities; an echo of the input list won't do.
            out.update(name=name, identity={"type": "UserAssigned"})
        elif args.typ == "azure-native:operationalinsights:Workspace":
            name = args.inputs["workspaceName"]
            rid = f"{rg_id}/providers/Microsoft.OperationalInsights/workspaces/{name}"
            out.update(name=name, customerId=WORKSPACE_CUSTOMER_ID)
        elif args.typ == "azure-native:monitor:DiagnosticSetting":
            rid = (
                f"{args.inputs['resourceUri']}/providers/Microsoft.Insights/diagnosticSettings/"
                f"{args.inputs['name']}"
            )
        elif args.typ == "azuread:index/application:Application":
            rid = "/applications/0a0a0a0a-0000-4000-8000-000000000000"
            out.update(clientId=OUTPUTS["client_id"], objectId=rid.rsplit("/", 1)[-1])
        elif args.typ == "azuread:index/servicePrincipal:ServicePrincipal":
            out["objectId"] = "5b5b5b5b-0000-4000-8000-000000000000"
        elif args.typ == "azuread:index/applicationPassword:ApplicationPassword":
            out.update(
                value=OUTPUTS["client_secret"],
                keyId="6c6c6c6c-0000-4000-8000-0000000000",
                startDate=OUTPUTS["credential_created_at"],
            )
        return rid, out

    def call(self, args):
        if args.token == "azure-native:authorization:getClientConfig":
            return {"tenantId": TENANT, "objectId": "7d7d7d7d-0000-4000-8000-000000000000"}
        return {}


class Recorder(pulumi.runtime.Mocks):
    """Wraps ProgramMocks and keeps every resource's inputs by type."""

    def __init__(self) -> None:
        self.inner = ProgramMocks()
        self.inputs: dict[str, dict] = {}
        self.created: list[tuple[str, dict]] = []

    def new_resource(self, args):
        self.inputs[args.typ] = dict(args.inputs)
        self.created.append((args.typ, dict(args.inputs)))
        return self.inner.new_resource(args)

    def call(self, args):
        return self.inner.call(args)


@pytest.fixture
def program_mocks():
    pulumi_settings.ROOT.set(None)  # fresh root stack: exports must not carry over
    # Engine tests run the Automation API in this process and leave no current loop behind.
    asyncio.set_event_loop(asyncio.new_event_loop())
    recorder = Recorder()
    pulumi.runtime.set_mocks(recorder, project="provision", stack="etl", preview=False)
    state = {"checked": False, "recorder": recorder}
    yield state
    assert state["checked"], "the assertions inside apply() never ran"


@pulumi.runtime.test
def test_program_exports(home, program_mocks):
    pool = pool_ok(home)
    exports = pool.program()()
    assert set(exports) == set(OUTPUTS)

    def check(values):
        program_mocks["checked"] = True
        values = dict(values)
        assert values.pop("_secret") is True
        assert values == OUTPUTS
        assert pool.block_data(values, {})["client_secret"] == OUTPUTS["client_secret"]

    secret = pulumi.Output.from_input(exports["client_secret"])
    return pulumi.Output.all(_secret=secret.is_secret(), **exports).apply(check)


@pulumi.runtime.test
def test_program_names_and_end_date_never_depend_on_now(home, program_mocks, monkeypatch):
    import provision.targets.azure as azure_module

    class NoNow:
        """Any call to now() from the program would be a per-run value: forbid it."""

        @staticmethod
        def now(*_a, **_k):
            raise AssertionError("the program must not read the clock")

        strptime = staticmethod(azure_module.datetime.strptime)

    monkeypatch.setattr(azure_module, "datetime", NoNow)
    exports = pool_ok(home, secret_days=90, registry_sku="Premium").program()()

    def check(values):
        program_mocks["checked"] = True
        recorded = program_mocks["recorder"].inputs
        password = recorded["azuread:index/applicationPassword:ApplicationPassword"]
        assert password["endDate"] == "2026-04-01T00:00:00Z" == values["end"]
        registry = recorded["azure-native:containerregistry:Registry"]
        assert registry["registryName"] == "etl0a1b2c3d"
        assert registry["sku"] == {"name": "Premium"}
        assert recorded["azure-native:managedidentity:UserAssignedIdentity"]["resourceName"] == (
            "etl-identity"
        )
        assert recorded["azuread:index/application:Application"]["displayName"] == (
            "provision-aci-etl"
        )

    return pulumi.Output.all(end=exports["client_secret_end_date"]).apply(check)


@pulumi.runtime.test
def test_program_uses_a_given_registry_name(home, program_mocks):
    pool = pool_ok(home, registry_name="TeamRegistry01", resource_group="team-rg")
    exports = pool.program()()

    def check(values):
        program_mocks["checked"] = True
        assert values["registry_name"] == "TeamRegistry01"
        assert values["registry_login_server"] == "teamregistry01.azurecr.io"
        assert values["resource_group_name"] == "team-rg"

    return pulumi.Output.all(**exports).apply(check)


@pytest.mark.parametrize(
    ("generated", "needle"),
    [
        ({}, "registry_suffix"),
        ({**GENERATED, "registry_suffix": "XYZ"}, "registry_suffix"),
        ({"registry_suffix": "0a1b2c3d"}, "secret_start"),
        ({**GENERATED, "secret_start": "2026-01-01"}, "secret_start"),
    ],
)
def test_program_rejects_bad_generated_config(home, generated, needle):
    with pytest.raises(ValueError, match=needle):
        AzurePool("etl", ACI, resolve_ok(home), generated).program()


def test_import_stays_light():
    # The CLI imports targets for --help: no pulumi, no Azure SDK at import time.
    code = (
        "import sys, provision.targets.azure; "
        "print(any(m == 'pulumi' or m.startswith(('pulumi.', 'pulumi_azure')) "
        "for m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_grants_doc_lists_every_action_and_role():
    from stacks.azure_aci import ACR_PULL_ROLE_GUID, ROLE_ACTIONS

    doc = (Path(__file__).parents[2] / "docs" / "azure-grants.md").read_text()
    for action in ROLE_ACTIONS:
        assert f"`{action}`" in doc, action
    assert "`AcrPull`" in doc and ACR_PULL_ROLE_GUID in doc


@pulumi.runtime.test
def test_every_arm_resource_of_the_program_is_adoptable_by_id(home, program_mocks):
    # After a killed run, ARM's "cannot create already existing" would block the rerun of any
    # create whose answer was lost: each ARM resource must have an id computable from inputs.
    pool = pool_ok(home)
    exports = pool.program()()

    def check(_):
        program_mocks["checked"] = True
        created = program_mocks["recorder"].created
        arm = [(t, i) for t, i in created if t.startswith("azure-native:")]
        assert {t for t, _ in arm} == {
            "azure-native:resources:ResourceGroup",
            "azure-native:containerregistry:Registry",
            "azure-native:managedidentity:UserAssignedIdentity",
            "azure-native:authorization:RoleDefinition",
            "azure-native:authorization:RoleAssignment",
        }
        ids = {t: pool.adoptable_id(t, i) for t, i in arm}
        group = f"/subscriptions/{SUB}/resourceGroups/etl-rg"
        assert ids["azure-native:resources:ResourceGroup"] == group
        assert ids["azure-native:containerregistry:Registry"] == (
            f"{group}/providers/Microsoft.ContainerRegistry/registries/etl0a1b2c3d"
        )
        assert ids["azure-native:managedidentity:UserAssignedIdentity"] == naming.identity_id(
            SUB, "etl-rg", "etl-identity"
        )
        assert ids["azure-native:authorization:RoleDefinition"] == role_definition_arm_id(
            SUB, role_definition_guid(group)
        )
        for t, i in arm:
            if t == "azure-native:authorization:RoleAssignment":
                assert pool.adoptable_id(t, i) == (
                    f"{i['scope']}/providers/Microsoft.Authorization/roleAssignments/"
                    f"{i['roleAssignmentName']}"
                )
        # Entra ID objects get server-made ids: never guessed.
        for t, i in created:
            if t.startswith("azuread:"):
                assert pool.adoptable_id(t, i) is None

    return pulumi.Output.all(*exports.values()).apply(check)


@pytest.mark.parametrize(
    ("token", "inputs"),
    [
        ("azure-native:resources:ResourceGroup", {}),
        ("azure-native:containerregistry:Registry", {"resourceGroupName": "rg"}),
        ("azure-native:authorization:RoleAssignment", {"scope": "/subscriptions/x/rg"}),
        (
            "azure-native:authorization:RoleDefinition",
            {"scope": "not-an-arm-scope", "roleDefinitionId": "g"},
        ),
        # A secret's ciphertext or an unknown is never an id.
        ("azure-native:resources:ResourceGroup", {"resourceGroupName": {"ciphertext": "x"}}),
        ("azure-native:storage:StorageAccount", {"resourceGroupName": "rg", "accountName": "a"}),
    ],
)
def test_ids_are_only_computed_from_complete_plain_inputs(home, token, inputs):
    assert pool_ok(home).adoptable_id(token, inputs) is None


# -- --with-worker: the worker runs in ACI as its own managed identity -------------------------

KEYLESS_OUTPUTS = {
    **{k: v for k, v in OUTPUTS.items() if not k.startswith(("client_", "credential_"))},
    "worker_identity_id": WORKER_IDENTITY_ID,
    "worker_identity_client_id": WORKER_CLIENT_ID,
    "worker_identity_principal_id": "f4f4f4f4-0000-4000-8000-000000000000",
}
# The block type's schema as Prefect 3.8.8's server registers it for prefect-azure
# (prefect/server/collection_blocks_data.json): the fields the block may hold, and the secret.
ACI_BLOCK_SCHEMA = {
    "properties": {
        "client_id": {"type": "string"},
        "tenant_id": {"type": "string"},
        "client_secret": {"type": "string", "format": "password", "writeOnly": True},
        "credential_kwargs": {"type": "object"},
    },
    "secret_fields": ["client_secret"],
}
AUTH = "admin:s3cr3t-pass"
LAUNCH = WorkerLaunch(
    api_url="https://prefect.example/api",
    image="prefecthq/prefect:3.8.8-python3.12",
    credential_env="PREFECT_API_AUTH_STRING",
    credential=AUTH,
    credential_source="your own auth string (PREFECT_API_AUTH_STRING)",
)
T_GROUP = "azure-native:containerinstance:ContainerGroup"
T_WORKSPACE = "azure-native:operationalinsights:Workspace"
T_DIAGNOSTICS = "azure-native:monitor:DiagnosticSetting"


def keyless(home, **given) -> AzurePool:
    """The pool ``etl`` with ``--with-worker``."""
    return pool_ok(home, with_worker=True, **given)


def test_the_worker_needs_prefect_azure():
    assert AzurePool.worker_package == "prefect-azure"


def test_worker_options_are_resolved_and_kept(home):
    opts = keyless(home, worker_count=2, worker_image="myacr.azurecr.io/worker:1").options
    assert (opts.with_worker, opts.worker_count, opts.worker_image) == (
        True,
        2,
        "myacr.azurecr.io/worker:1",
    )
    again = resolve(saved=opts, home=home)
    assert again == opts  # the pool name is enough on a rerun
    assert resolve_ok(home).with_worker is False


def test_with_worker_is_refused_on_the_push_type(home):
    with pytest.raises(InvalidInputError, match="--with-worker runs a worker") as info:
        pool_ok(home, ACI_PUSH, with_worker=True)
    assert "--type azure-container-instance" in str(info.value)


def test_keyless_block_data_names_the_identity_and_holds_no_secret(home):
    data = keyless(home).block_data(KEYLESS_OUTPUTS, ACI_BLOCK_SCHEMA)
    assert data == {"credential_kwargs": {"managed_identity_client_id": WORKER_CLIENT_ID}}
    # client_id, tenant_id and client_secret all unset: prefect-azure falls back to
    # DefaultAzureCredential(**credential_kwargs), which asks for this managed identity.
    assert not set(data) & {"client_id", "tenant_id", "client_secret"}
    assert not set(data) & set(ACI_BLOCK_SCHEMA["secret_fields"])


def test_keyless_block_data_needs_the_identity_and_the_field(home):
    with pytest.raises(EngineError, match="worker_identity_client_id"):
        keyless(home).block_data({**KEYLESS_OUTPUTS, "worker_identity_client_id": None}, {})
    old = {
        "properties": {
            k: v for k, v in ACI_BLOCK_SCHEMA["properties"].items() if k != "credential_kwargs"
        }
    }
    with pytest.raises(InvalidInputError, match="no field credential_kwargs"):
        keyless(home).block_data(KEYLESS_OUTPUTS, old)


def test_keyless_template_defaults_are_the_keyed_ones(home):
    # The jobs run as the jobs' identity (AcrPull only), never as the worker's.
    block_id = "8c1d6c1e-0000-4000-8000-000000000001"
    assert keyless(home).template_defaults(KEYLESS_OUTPUTS, block_id) == pool_ok(
        home
    ).template_defaults(OUTPUTS, block_id)


def test_keyless_expected_outputs_predict_the_real_ones(home):
    expected = keyless(home, worker_count=2).expected_outputs()
    assert expected["worker_identity_id"] == WORKER_IDENTITY_ID
    assert expected["worker_container_groups"] == ["etl-worker-0", "etl-worker-1"]
    known = {k: v for k, v in KEYLESS_OUTPUTS.items() if k in expected}
    assert {k: v for k, v in expected.items() if k in KEYLESS_OUTPUTS} == known
    assert not {"client_id", "client_secret", "client_secret_end_date"} & set(expected)


def test_keyless_grants_go_to_the_worker_identity(home):
    from stacks.azure_aci import ROLE_ACTIONS

    role, pull = keyless(home).grants()
    assert role.principal == "managed identity etl-worker (the worker's)"
    assert role.role == f"provision ACI submitter etl-rg {SUB}"
    assert role.scope == "resource group etl-rg only"
    assert role.permissions == tuple(ROLE_ACTIONS)
    assert "no secret" in role.why
    assert (pull.principal, pull.role) == ("managed identity etl-identity", "AcrPull")
    assert "service principal" not in " ".join(g.principal for g in keyless(home).grants())


def test_credential(home):
    assert keyless(home).credential() == Credential(
        "none",
        "managed identity etl-worker",
        False,
        "the worker runs in Azure Container Instances as managed identity etl-worker: no "
        "long-lived credential",
    )
    keyed = pool_ok(home, secret_days=90).credential()
    assert (keyed.kind, keyed.identity, keyed.long_lived) == (
        "client secret",
        "app registration provision-aci-etl",
        True,
    )
    # The lifetime starts at the stack's fixed secret_start (GENERATED): its end is known.
    assert keyed.note == (
        "held by the Prefect block for the worker to sign in with; it expires on 2026-04-01 "
        "(90-day lifetime); renewed by `provision up` in its last 30 days"
    )
    rotated = pool_ok(home, secret_days=90, rotate_after=30)
    rotated = dataclasses.replace(rotated, generated={**GENERATED, **ROTATED})
    assert rotated.credential().note.endswith(
        "it expires on 2026-05-31 (90-day lifetime); replaced once 30 days old (--rotate-after)"
    )
    # From a record alone (list, show on another machine): no environment needed.
    bound = AzurePool.bind("etl", ACI, keyless(home).options.model_dump())
    assert bound.credential().kind == "none"


def test_keyless_next_steps_read_the_workers_logs_instead_of_starting_one(home):
    outputs = {
        **KEYLESS_OUTPUTS,
        "worker_container_groups": ["etl-worker-0", "etl-worker-1"],
        "worker_log_workspace_customer_id": WORKSPACE_CUSTOMER_ID,
    }
    steps = keyless(home, worker_count=2).next_steps(outputs)
    assert not any("prefect worker start" in c for c in steps.commands)
    assert steps.commands[0] == "az acr login --name etl0a1b2c3d"
    assert steps.commands[1] == "az container logs --resource-group etl-rg --name etl-worker-0"
    query = steps.commands[2]
    assert query.startswith(f"az monitor log-analytics query --workspace {WORKSPACE_CUSTOMER_ID} ")
    assert (
        """'ContainerInstanceLog | where ContainerGroup in ("etl-worker-0", "etl-worker-1") """
        in query
    )
    assert steps.deploy_snippet and steps.image_namespace == "etl0a1b2c3d.azurecr.io"


def test_keyless_next_steps_for_a_plan(home):
    steps = keyless(home).next_steps({})
    assert "az container logs --resource-group '<created on up>' --name etl-worker-0" in (
        steps.commands
    )
    assert any("--workspace '<created on up>'" in c for c in steps.commands)


def test_no_worker_program_without_a_launch(home):
    assert pool_ok(home).worker_program() is None
    assert keyless(home).worker_program() is None  # the service sets the launch
    stray = dataclasses.replace(pool_ok(home), worker=LAUNCH)
    with pytest.raises(ValueError, match="without --with-worker"):
        stray.worker_program()


def test_the_worker_command_puts_prefects_entrypoint_back():
    command = ("prefect", "worker", "start", "--pool", "etl", "--type", "azure-container-instance")
    assert worker_command("prefecthq/prefect:3.8.8-python3.12", command) == [
        "/opt/prefect/entrypoint.sh",
        *command,
    ]
    assert worker_command("docker.io/prefecthq/prefect:3-python3.12", command)[0] == (
        "/opt/prefect/entrypoint.sh"
    )
    # Another image brings prefect-azure itself and runs the command as given.
    assert worker_command("myacr.azurecr.io/worker:1", command) == list(command)


def _run_worker(pool: AzurePool):
    """The program as provision/program.py runs it: cloud side, then the worker."""
    exports = pool.program()()
    worker = pool.worker_program()
    assert worker is not None
    return exports, worker(exports, pulumi.ResourceOptions())


def _unwrap(value):
    from pulumi.runtime.rpc import unwrap_rpc_secret

    return unwrap_rpc_secret(value)


@pulumi.runtime.test
def test_keyless_program_makes_no_entra_object(home, program_mocks):
    pool = keyless(home)
    exports = pool.program()()
    assert set(exports) == set(KEYLESS_OUTPUTS)

    def check(values):
        program_mocks["checked"] = True
        created = program_mocks["recorder"].created
        assert not [t for t, _ in created if t.startswith("azuread:")]
        identities = [i["resourceName"] for t, i in created if t.endswith("UserAssignedIdentity")]
        assert sorted(identities) == ["etl-identity", "etl-worker"]
        assert values["worker_identity_id"] == WORKER_IDENTITY_ID
        assert pool.block_data(values, ACI_BLOCK_SCHEMA) == {
            "credential_kwargs": {"managed_identity_client_id": WORKER_CLIENT_ID}
        }

    return pulumi.Output.all(**exports).apply(check)


@pulumi.runtime.test
def test_worker_program_runs_prefect_as_the_worker_identity(home, program_mocks):
    pool = dataclasses.replace(keyless(home, worker_count=2), worker=LAUNCH)
    _, worker = _run_worker(pool)
    assert set(worker) == {
        "worker_container_groups",
        "worker_log_workspace_id",
        "worker_log_workspace_customer_id",
    }

    def check(values):
        program_mocks["checked"] = True
        created = program_mocks["recorder"].created
        groups = {i["containerGroupName"]: i for t, i in created if t == T_GROUP}
        assert sorted(groups) == ["etl-worker-0", "etl-worker-1"]
        group = groups["etl-worker-0"]
        assert group["identity"] == {
            "type": "UserAssigned",
            "userAssignedIdentities": [WORKER_IDENTITY_ID],
        }
        assert (group["osType"], group["restartPolicy"]) == ("Linux", "Always")
        (container,) = _unwrap(group["containers"])
        assert container["image"] == "prefecthq/prefect:3.8.8-python3.12"
        assert container["command"] == [
            "/opt/prefect/entrypoint.sh",
            "prefect",
            "worker",
            "start",
            "--pool",
            "etl",
            "--type",
            "azure-container-instance",
        ]
        env = {e["name"]: e for e in container["environmentVariables"]}
        assert env["PREFECT_API_URL"] == {"name": "PREFECT_API_URL", "value": LAUNCH.api_url}
        assert env["EXTRA_PIP_PACKAGES"]["value"] == "prefect-azure"
        assert env["AZURE_CLIENT_ID"]["value"] == WORKER_CLIENT_ID
        secret = env["PREFECT_API_AUTH_STRING"]
        assert set(secret) == {"name", "secureValue"} and _unwrap(secret["secureValue"]) == AUTH
        assert not any(AUTH in str(e.get("value")) for e in env.values())
        assert [t for t, _ in created].count(T_WORKSPACE) == 1
        assert [t for t, _ in created].count(T_DIAGNOSTICS) == 2
        assert values["worker_container_groups"] == ["etl-worker-0", "etl-worker-1"]
        assert values["worker_log_workspace_customer_id"] == WORKSPACE_CUSTOMER_ID

    return pulumi.Output.all(**worker).apply(check)


@pulumi.runtime.test
def test_worker_program_for_an_open_server_has_no_secure_value(home, program_mocks):
    launch = WorkerLaunch(api_url="http://127.0.0.1:4200/api", image="myacr.azurecr.io/w:1")
    pool = dataclasses.replace(keyless(home), worker=launch)
    _, worker = _run_worker(pool)

    def check(_):
        program_mocks["checked"] = True
        (group,) = [i for t, i in program_mocks["recorder"].created if t == T_GROUP]
        (container,) = _unwrap(group["containers"])
        assert not any("secureValue" in e for e in container["environmentVariables"])
        assert container["command"][0] == "prefect"  # a custom image: no Prefect entrypoint

    return pulumi.Output.all(**worker).apply(check)


@pulumi.runtime.test
def test_every_arm_resource_of_the_worker_is_adoptable_by_id(home, program_mocks):
    pool = dataclasses.replace(keyless(home), worker=LAUNCH)
    _, worker = _run_worker(pool)

    def check(_):
        program_mocks["checked"] = True
        created = [
            (t, i) for t, i in program_mocks["recorder"].created if not t.startswith("provision:")
        ]
        assert all(t.startswith("azure-native:") for t, _ in created)
        group = f"/subscriptions/{SUB}/resourceGroups/etl-rg"
        for t, i in created:
            assert pool.adoptable_id(t, i) is not None, t
        ids = {t: pool.adoptable_id(t, i) for t, i in created}
        container_group = (
            f"{group}/providers/Microsoft.ContainerInstance/containerGroups/etl-worker-0"
        )
        assert ids[T_GROUP] == container_group
        assert ids[T_WORKSPACE] == (
            f"{group}/providers/Microsoft.OperationalInsights/workspaces/etl-logs"
        )
        assert ids[T_DIAGNOSTICS] == (
            f"{container_group}/providers/Microsoft.Insights/diagnosticSettings/worker-logs"
        )

    return pulumi.Output.all(**worker).apply(check)


@pytest.mark.parametrize("pool", TRICKY_POOLS)
def test_worker_names_are_always_valid_and_stable(pool):
    identity = naming.worker_identity_name(pool)
    assert naming.IDENTITY_NAME_RE.match(identity) and identity != naming.identity_name(pool)
    for index in (0, 9):
        group = naming.worker_group_name(pool, index)
        assert naming.CONTAINER_GROUP_NAME_RE.match(group), group
        assert group.endswith(f"-worker-{index}") and group == naming.worker_group_name(pool, index)
    workspace = naming.log_workspace_name(pool)
    assert naming.WORKSPACE_NAME_RE.match(workspace), workspace
    assert len(set(naming.worker_group_names(pool, 10))) == 10


def test_worker_names():
    assert naming.worker_identity_name("data_team") == "data-team-worker"
    assert naming.worker_group_names("etl", 2) == ["etl-worker-0", "etl-worker-1"]
    assert naming.log_workspace_name("My Pool #2") == "my-pool-2-logs"
    long = naming.worker_group_name("z" * 100, 3)
    assert len(long) == 63 and naming.pool_hash("z" * 100) in long


# -- rotation ------------------------------------------------------------------------------


def test_the_client_secret_rotates_and_the_keyless_pool_has_nothing_to():
    assert AzurePool.rotates is True


def test_a_rotation_starts_a_fresh_lifetime_from_its_own_start():
    # Never rotated: the stack's fixed start. Rotated: the rotation's start, in the form Entra
    # ID takes and gives back (so a rerun computes the same end date and replaces nothing).
    assert secret_lifetime_start(GENERATED) == "2026-01-01T00:00:00Z"
    assert secret_lifetime_start({**GENERATED, **ROTATED}) == "2026-03-02T12:30:00Z"
    other_offset = {**ROTATED, "credential_rotated_at": "2026-03-02T14:30:00+02:00"}
    assert secret_lifetime_start({**GENERATED, **other_offset}) == "2026-03-02T12:30:00Z"
    assert secret_end_date(secret_lifetime_start({**GENERATED, **ROTATED}), 90) == (
        "2026-05-31T12:30:00Z"
    )


@pytest.mark.parametrize("rotated_at", ["2026-03-02", "2026-03-02T12:30:00", "yesterday", ""])
def test_a_rotation_start_without_a_time_and_offset_is_refused(rotated_at):
    with pytest.raises(ValueError, match="credential_rotated_at must be an ISO 8601 time"):
        secret_lifetime_start({**GENERATED, "credential_rotated_at": rotated_at})


@pulumi.runtime.test
def test_program_hands_the_rotation_to_the_secret(home, program_mocks):
    pool = dataclasses.replace(pool_ok(home, secret_days=90), generated={**GENERATED, **ROTATED})
    assert pool.rotation_trigger() == "2"
    exports = pool.program()()

    def check(values):
        program_mocks["checked"] = True
        password = program_mocks["recorder"].inputs[
            "azuread:index/applicationPassword:ApplicationPassword"
        ]
        # No start date: Entra ID's own clock starts the new secret.
        assert password == {
            "applicationId": "/applications/0a0a0a0a-0000-4000-8000-000000000000",
            "displayName": "provision: Prefect credentials block",
            "endDate": "2026-05-31T12:30:00Z",
        }
        assert values["end"] == "2026-05-31T12:30:00Z"

    return pulumi.Output.all(end=exports["credential_expires_at"]).apply(check)


def test_program_hands_the_trigger_to_the_stack(home, monkeypatch):
    import stacks.azure_aci as stack

    seen = []

    class Stub:
        def __init__(self, _name, args):
            seen.append(args)
            self.outputs = {}

    monkeypatch.setattr(stack, "ContainerInstancePool", Stub)
    pool_ok(home).program()()
    rotated = dataclasses.replace(pool_ok(home), generated={**GENERATED, **ROTATED})
    rotated.program()()
    # Never rotated: no trigger (pools made before rotation existed keep their secret).
    assert [(a.credential_rotation, a.secret_end_date) for a in seen] == [
        (None, "2027-01-01T00:00:00Z"),
        ("2", "2027-03-02T12:30:00Z"),
    ]


def test_a_shorter_secret_later_must_still_outlive_the_saved_rotate_after(home):
    saved = AzureOptions(
        subscription=SUB, location="westeurope", resource_group="etl-rg", rotate_after=200
    )
    with pytest.raises(InvalidInputError) as info:
        resolve(saved=saved, given={"secret_days": 100}, home=home)
    assert str(info.value) == (
        "--rotate-after 200 (from the pool's saved options) is not shorter than the client "
        "secret's lifetime of 100 days (from --secret-days): the secret would expire before it "
        "is old enough to rotate. Use a --rotate-after below 100, or a longer --secret-days."
    )
    assert resolve(saved=saved, given={"secret_days": 201}, home=home).rotate_after == 200
