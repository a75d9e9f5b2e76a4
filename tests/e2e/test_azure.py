"""Azure pools end to end: `provision` CLI → real pulumi engine → fake azure-native and azuread
→ real Prefect server."""

from __future__ import annotations

import json
import re
import secrets
import uuid
from pathlib import Path

import pytest

from tests.contract import PREVIEW_KEYS
from tests.e2e.conftest import (
    Expected,
    Sandbox,
    operate_from_another_machine,
    share_backend,
)
from tests.fakecloud.azure_native import (
    IDENTITY,
    REGISTRY,
    RESOURCE_GROUP,
    ROLE_ASSIGNMENT,
    ROLE_DEFINITION,
)
from tests.fakecloud.azuread import APPLICATION, APPLICATION_PASSWORD, SERVICE_PRINCIPAL

pytestmark = pytest.mark.e2e

SUBSCRIPTION = "6b1f7c2e-3d4a-4e5b-8c9d-0a1b2c3d4e5f"
TENANT = "0c1d2e3f-4a5b-4c6d-8e7f-9a0b1c2d3e4f"
LOCATION = "westeurope"
UP = ["--type", "azure-container-instance", "--subscription", SUBSCRIPTION, "--location", LOCATION]
BLOCK_TYPE = "azure-container-instance-credentials"
ACR_PULL = (
    f"/subscriptions/{SUBSCRIPTION}/providers/Microsoft.Authorization/roleDefinitions/"
    "7f951dda-4ed3-4680-a7ca-43fe172d538d"
)
# The submitter's custom role: exactly these ARM actions (the issue's list), nothing else.
ROLE_ACTIONS = {
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
TAGGABLE = (RESOURCE_GROUP, REGISTRY, IDENTITY)


@pytest.fixture
def box(sandbox: Sandbox) -> Sandbox:
    """The sandbox as an Azure user: a fake ``az login`` in TENANT, no real Azure config."""
    for key in list(sandbox.env):
        if key.startswith(("ARM_", "AZURE_", "FAKECLOUD_AZURE_")):
            del sandbox.env[key]
    azure_dir = sandbox.root / "azure-cli"
    azure_dir.mkdir()
    sandbox.env.update({"ARM_TENANT_ID": TENANT, "AZURE_CONFIG_DIR": str(azure_dir)})
    return sandbox


@pytest.fixture
def pool() -> str:
    """A pool name of its own: every test shares the session's Prefect server."""
    return "aci" + secrets.token_hex(3)


def block_name(pool: str) -> str:
    return f"{pool}-aci-credentials"


def up(box: Sandbox, pool: str, *extra: str, expect: int | None = 0, **env: str):
    run = box.run("up", pool, *UP, *extra, "--yes", expect=expect, **env)
    if run.code == 0:
        remember(box, pool)
    return run


def remember(box: Sandbox, pool: str) -> dict | None:
    """The pool's block, its client secret added to the secrets checked for leaks."""
    block = box.block(BLOCK_TYPE, block_name(pool))
    secret = ((block or {}).get("data") or {}).get("client_secret")
    if secret:
        box.secrets.add(secret)
    return block


def passwords(box: Sandbox) -> list[dict]:
    return box.cloud.resources(APPLICATION_PASSWORD)


def live(box: Sandbox, pool: str) -> list[dict]:
    """Every fake-cloud object made for ``pool`` (its name is in all of them)."""
    return [
        r
        for r in box.cloud.resources()
        if r["cloud"] in ("azure-native", "azuread") and pool in json.dumps(r)
    ]


def test_up_creates_the_cloud_side_and_registers_it_in_prefect(box: Sandbox, pool: str):
    run = up(box, pool)
    assert f"Pool '{pool}' is ready" in run.stdout
    assert f"prefect worker start --pool {pool}" in run.stdout

    cloud = box.cloud
    rg_id = f"/subscriptions/{SUBSCRIPTION}/resourceGroups/{pool}-rg"
    (group,) = cloud.resources(RESOURCE_GROUP)
    assert group["id"] == rg_id and group["properties"]["location"] == LOCATION

    (app,) = cloud.resources(APPLICATION)
    (principal,) = cloud.resources(SERVICE_PRINCIPAL)
    assert principal["properties"]["clientId"] == app["properties"]["clientId"]
    (password,) = passwords(box)
    assert password["meta"]["application"] == app["properties"]["objectId"]

    (role,) = cloud.resources(ROLE_DEFINITION)
    assert role["properties"]["assignableScopes"] == [rg_id]
    (permission,) = role["properties"]["permissions"]
    assert set(permission["actions"]) == ROLE_ACTIONS
    assert len(permission["actions"]) == len(ROLE_ACTIONS)
    assert not any(permission[k] for k in ("notActions", "dataActions", "notDataActions"))

    (registry,) = cloud.resources(REGISTRY)
    props = registry["properties"]
    assert props["sku"]["name"] == "Basic" and props["adminUserEnabled"] is False
    assert props["anonymousPullEnabled"] is False
    assert props["loginServer"] == f"{props['name'].lower()}.azurecr.io"
    (identity,) = cloud.resources(IDENTITY)

    assignments = {a["properties"]["principalId"]: a for a in cloud.resources(ROLE_ASSIGNMENT)}
    assert set(assignments) == {
        principal["properties"]["objectId"],
        identity["properties"]["principalId"],
    }
    for assignment in assignments.values():
        uuid.UUID(assignment["properties"]["name"])  # a GUID name
        assert assignment["properties"]["principalType"] == "ServicePrincipal"
    submitter = assignments[principal["properties"]["objectId"]]["properties"]
    assert submitter["scope"] == rg_id and submitter["roleDefinitionId"] == role["id"]
    puller = assignments[identity["properties"]["principalId"]]["properties"]
    assert puller["scope"] == registry["id"] and puller["roleDefinitionId"] == ACR_PULL

    for token in TAGGABLE:
        for record in cloud.resources(token):
            assert record["properties"]["tags"] == {
                "managed-by": "provision",
                "prefect-work-pool": pool,
            }, token
    for record in (app, principal):
        assert sorted(record["properties"]["tags"]) == [
            "managed-by=provision",
            f"prefect-work-pool={pool}",
        ]

    block = remember(box, pool)
    assert block is not None
    assert set(block["data"]) >= {"client_id", "tenant_id", "client_secret"}
    assert block["data"]["client_id"] == app["properties"]["clientId"]
    assert block["data"]["tenant_id"] == TENANT
    assert re.fullmatch(r"[A-Za-z0-9]{3}\dQ~[A-Za-z0-9~_.-]{34}", block["data"]["client_secret"])

    work_pool = box.work_pool(pool)
    assert work_pool is not None and work_pool["type"] == "azure-container-instance"
    variables = work_pool["base_job_template"]["variables"]["properties"]
    assert variables["aci_credentials"]["default"] == {"$ref": {"block_document_id": block["id"]}}
    assert variables["resource_group_name"]["default"] == f"{pool}-rg"
    assert variables["subscription_id"]["default"] == SUBSCRIPTION
    assert variables["identities"]["default"] == [identity["id"]]
    assert variables["image_registry"]["default"] == {
        "registry_url": props["loginServer"],
        "identity": identity["id"],
    }

    shown = json.loads(box.run("show", pool, "--json").stdout)
    assert shown["outputs"]["client_secret"] == "[secret]"
    assert shown["prefect"]["block_id"] == block["id"]
    assert shown["prefect"]["work_pool_id"] == work_pool["id"]


def test_rerun_changes_nothing_and_creates_no_secret(box: Sandbox, pool: str):
    up(box, pool)
    (password,) = passwords(box)
    block_id = box.block(BLOCK_TYPE, block_name(pool))["id"]
    creates_before = len(box.cloud.calls("create"))

    run = box.run("up", pool, "--yes")  # saved options: the pool name is enough
    assert "0 created, 0 updated, 0 replaced, 0 deleted" in run.stdout
    assert len(box.cloud.calls("create")) == creates_before
    assert [p["id"] for p in passwords(box)] == [password["id"]]
    assert box.block(BLOCK_TYPE, block_name(pool))["id"] == block_id

    box.run("preview", pool, "--expect-no-changes")
    plan = json.loads(box.run("preview", pool, "--json", "--expect-no-changes").stdout)
    assert plan["changes"]["create"] == plan["changes"]["update"] == 0
    assert [p["op"] for p in plan["prefect"]] == ["same", "same"]


def test_an_option_change_shows_in_preview_then_applies_in_place(box: Sandbox, pool: str):
    up(box, pool)
    (password,) = passwords(box)
    run = box.run(
        "preview", pool, "--registry-sku", "Standard", "--json", "--expect-no-changes", expect=3
    )
    plan = json.loads(run.stdout)
    assert set(plan) == PREVIEW_KEYS
    assert plan["offline"] is False and plan["stack"] == pool
    assert plan["type"] == "azure-container-instance"
    changed = [r for r in plan["resources"] if r["op"] != "same"]
    assert [(r["type"], r["op"]) for r in changed] == [(REGISTRY, "update")]
    assert changed[0]["inputs"]["sku"] == {"name": "Standard"}
    assert plan["changes"]["update"] == 1
    assert plan["changes"]["create"] == plan["changes"]["replace"] == plan["changes"]["delete"] == 0
    box.run("preview", pool, "--expect-no-changes")  # the preview changed nothing

    run = box.run("up", pool, "--registry-sku", "Standard", "--yes")
    assert "0 created, 1 updated, 0 replaced, 0 deleted" in run.stdout
    (registry,) = box.cloud.resources(REGISTRY)
    assert registry["properties"]["sku"] == {"name": "Standard", "tier": "Standard"}
    assert [p["id"] for p in passwords(box)] == [password["id"]]
    box.run("preview", pool, "--expect-no-changes")


def test_a_shorter_secret_lifetime_rotates_the_secret_and_the_block(box: Sandbox, pool: str):
    up(box, pool)
    old = remember(box, pool)
    plan = json.loads(box.run("preview", pool, "--secret-days", "60", "--json").stdout)
    changed = [(r["type"], r["op"]) for r in plan["resources"] if r["op"] != "same"]
    assert changed == [(APPLICATION_PASSWORD, "replace")]

    run = box.run("up", pool, "--secret-days", "60", "--yes")
    assert "0 created, 0 updated, 1 replaced, 0 deleted" in run.stdout
    new = remember(box, pool)
    assert new["id"] == old["id"], "the same block, updated"
    assert new["data"]["client_secret"] != old["data"]["client_secret"]
    (password,) = passwords(box)  # the old secret is gone
    assert password["meta"]["hint"] == new["data"]["client_secret"][:3]


def test_drift_is_invisible_until_refresh_then_repaired(box: Sandbox, pool: str):
    # azure-native diffs inputs against inputs: only a refresh sees what changed in Azure.
    up(box, pool)
    cloud = box.cloud
    (registry,) = cloud.resources(REGISTRY)
    cloud.edit(REGISTRY, registry["id"], adminUserEnabled=True)  # someone enabled it by hand
    (grant,) = [g for g in cloud.resources(ROLE_ASSIGNMENT) if g["name"].endswith("-sp-role")]
    cloud.remove(ROLE_ASSIGNMENT, grant["id"])  # and deleted a grant
    box.run("preview", pool, "--expect-no-changes")

    run = box.run("up", pool, "--refresh", "--yes")
    assert "1 created, 1 updated, 0 replaced, 0 deleted" in run.stdout
    assert cloud.resources(REGISTRY)[0]["properties"]["adminUserEnabled"] is False
    assert cloud.get(ROLE_ASSIGNMENT, grant["id"]) is not None, "the same deterministic name"
    box.run("preview", pool, "--expect-no-changes")


def test_a_new_pools_preview_follows_the_contract_and_writes_nothing(box: Sandbox, pool: str):
    plan = json.loads(box.run("preview", pool, *UP, "--json").stdout)
    # Every cloud resource and the component that holds them (the Prefect objects are listed
    # apart, under "prefect").
    assert plan["offline"] is False and plan["changes"]["create"] == 10
    types = sorted(r["type"] for r in plan["resources"] if r["op"] == "create")
    assert types.count(ROLE_ASSIGNMENT) == 2 and APPLICATION_PASSWORD in types
    assert [p["op"] for p in plan["prefect"]] == ["create", "create"]
    # The contract: what only up will know reads "[computed]", and internal keys stay out.
    grants = [r for r in plan["resources"] if r["type"] == ROLE_ASSIGNMENT]
    assert all(g["inputs"]["scope"] == "[computed]" for g in grants)
    text = json.dumps(plan["resources"])
    assert "04da6b54-80e4-46f7-96ec-b56ff0331ba9" not in text and '"__' not in text
    assert box.cloud.resources() == []
    assert [c for c in box.cloud.calls() if c["op"] in ("create", "update", "delete")] == []
    assert json.loads(box.run("list", "--json").stdout) == []


def test_destroy_removes_everything_the_tool_made(box: Sandbox, pool: str):
    up(box, pool)
    box.run("destroy", pool, "--yes")
    assert live(box, pool) == []
    assert box.cloud.resources(cloud="azure-native") == []
    assert box.cloud.resources(cloud="azuread") == []
    assert box.block(BLOCK_TYPE, block_name(pool)) is None
    assert box.work_pool(pool) is None
    listed = json.loads(box.run("list", "--json").stdout)
    assert pool not in [p["name"] for p in listed]


def test_push_type_needs_prefect_cloud(box: Sandbox, pool: str):
    args = ["up", pool, "--type", "azure-container-instance:push", "--subscription"]
    run = box.run(*args, SUBSCRIPTION, "--location", LOCATION, "--yes", expect=2)
    assert "pools need Prefect Cloud" in run.stderr
    assert "use --type azure-container-instance " in run.stderr
    assert len(run.stderr.strip().splitlines()) == 1
    assert box.cloud.calls() == []
    assert box.work_pool(pool) is None


@pytest.mark.parametrize(
    ("flag", "value", "words"),
    [
        ("--subscription", "not-a-guid", "Invalid Azure subscription id 'not-a-guid'"),
        ("--location", "westeurop", "Unknown Azure location 'westeurop'"),
        ("--registry-name", "my-registry", "Invalid --registry-name 'my-registry'"),
    ],
)
def test_bad_inputs_are_one_line_and_write_nothing(
    box: Sandbox, pool: str, flag: str, value: str, words: str
):
    args = [a for a in UP]
    if flag in args:
        args[args.index(flag) + 1] = value
    else:
        args += [flag, value]
    run = box.run("up", pool, *args, "--yes", expect=2)
    assert words in run.stderr
    assert len(run.stderr.strip().splitlines()) == 1 and "Traceback" not in run.output
    assert box.cloud.calls() == [] and box.cloud.resources() == []
    assert box.work_pool(pool) is None
    assert not any((box.root / "backend").rglob("*.json"))
    assert not list((box.home).rglob(f"*{pool}*"))


def test_a_provider_failure_names_the_resource_and_a_rerun_converges(box: Sandbox, pool: str):
    run = up(box, pool, expect=1, FAKECLOUD_FAULTS=f"create:{ROLE_ASSIGNMENT}:sp-role@once")
    assert ROLE_ASSIGNMENT in run.stderr and f"{pool}-sp-role" in run.stderr
    assert len(run.stderr.strip().splitlines()) == 1
    cloud = box.cloud
    assert cloud.count(RESOURCE_GROUP) == 1 and cloud.count(SERVICE_PRINCIPAL) == 1  # partial
    assert passwords(box) == []  # the secret waits for its grants
    assert box.work_pool(pool) is None  # nothing half-written in Prefect

    box.run("up", pool, "--yes")
    remember(box, pool)
    assert len(passwords(box)) == 1 and cloud.count(ROLE_ASSIGNMENT) == 2
    assert box.work_pool(pool) is not None
    box.run("preview", pool, "--expect-no-changes")


def test_principal_type_rides_out_replication_and_a_new_role_is_retried(box: Sandbox, pool: str):
    # Entra ID replication: an assignment to a brand-new principal without principalType
    # would fail with PrincipalNotFound; a custom role assigned seconds after its creation
    # is RoleDefinitionDoesNotExist for a while, which the engine retries.
    run = up(
        box,
        pool,
        FAKECLOUD_AZURE_PROPAGATION_MS="600000",
        FAKECLOUD_AZURE_ROLE_PROPAGATION_MS="1500",
    )
    assert "propagating" in run.stdout
    failed = [c for c in box.cloud.calls("create", ROLE_ASSIGNMENT) if c["outcome"] == "error"]
    assert failed and all("RoleDefinitionDoesNotExist" in c["error"] for c in failed)
    assert box.cloud.count(ROLE_ASSIGNMENT) == 2 and len(passwords(box)) == 1


def test_missing_credentials_are_one_clear_line(box: Sandbox, pool: str):
    run = up(box, pool, expect=1, FAKECLOUD_AZURE_NO_CREDENTIALS="1")
    assert "No usable Azure credentials" in run.stderr and "az login" in run.stderr
    assert "Traceback" not in run.output and len(run.stderr.strip().splitlines()) == 1
    assert box.cloud.resources() == []


def test_a_registry_name_taken_anywhere_in_azure_is_explained(box: Sandbox, pool: str):
    # Someone else's registry, in another subscription, already has the name.
    name = "taken" + secrets.token_hex(4)
    other = f"/subscriptions/{uuid.uuid4()}/resourceGroups/theirs"
    box.cloud.put(
        REGISTRY,
        f"{other}/providers/Microsoft.ContainerRegistry/registries/{name}",
        {"name": name, "loginServer": f"{name}.azurecr.io"},
    )
    run = up(box, pool, "--registry-name", name.upper(), expect=1)
    assert "is taken" in run.stderr and "--registry-name" in run.stderr
    assert box.work_pool(pool) is None


def test_sigkill_while_the_secret_is_being_created_is_recovered_by_rerunning(
    box: Sandbox, pool: str
):
    box.kill_while_creating(APPLICATION_PASSWORD, "up", pool, *UP, "--yes", after_write=False)

    run = box.run("up", pool, "--yes", timeout=300)
    remember(box, pool)
    assert f"Pool '{pool}' is ready" in run.stdout
    assert len(passwords(box)) == 1
    assert box.cloud.count(APPLICATION) == 1 and box.cloud.count(ROLE_ASSIGNMENT) == 2
    box.run("preview", pool, "--expect-no-changes")


def test_sigkill_after_the_cloud_wrote_the_secret_names_the_untracked_copy(box: Sandbox, pool: str):
    # The killed engine never gets Entra ID's answer, so the secret it made is unknown to the
    # state. The rerun would remove it through Microsoft Graph, but this machine's only sign-in
    # is an `az login` and there is no `az` here: it converges with a fresh secret and names
    # the orphan and how to delete it (tests/e2e/test_azure_rotation.py: the removal).
    box.kill_while_creating(APPLICATION_PASSWORD, "up", pool, *UP, "--yes", after_write=True)

    run = box.run("up", pool, "--yes", timeout=300)
    block = remember(box, pool)
    assert f"Pool '{pool}' is ready" in run.stdout
    assert "could not be checked (" in run.stdout
    assert "untracked" in run.stdout and "az ad app credential list" in run.stdout
    live_passwords = passwords(box)
    assert len(live_passwords) == 2  # the orphan the message names, and the tracked one
    hint = block["data"]["client_secret"][:3]
    assert [p["meta"]["hint"] for p in live_passwords].count(hint) >= 1
    assert box.cloud.count(APPLICATION) == box.cloud.count(SERVICE_PRINCIPAL) == 1
    box.run("preview", pool, "--expect-no-changes")


def test_sigkill_after_the_cloud_wrote_the_principal_and_a_grant_is_recovered(
    box: Sandbox, pool: str
):
    box.kill_while_creating(ROLE_ASSIGNMENT, "up", pool, *UP, "--yes", after_write=True)

    # ARM has the assignment under its deterministic GUID, the state only a pending create:
    # the rerun adopts it by id instead of failing on "cannot create already existing".
    assert box.cloud.count(ROLE_ASSIGNMENT) >= 1
    in_cloud = {r["id"].lower() for r in box.cloud.resources(ROLE_ASSIGNMENT)}
    run = box.run("up", pool, "--yes", timeout=300)
    remember(box, pool)
    assert "Adopting" in run.stdout and "reads each back by its id" in run.stdout
    assert box.cloud.count(SERVICE_PRINCIPAL) == 1 and box.cloud.count(ROLE_ASSIGNMENT) == 2
    assert in_cloud <= {r["id"].lower() for r in box.cloud.resources(ROLE_ASSIGNMENT)}
    assert len(passwords(box)) == 1
    assert not box.cloud.calls("delete", ROLE_ASSIGNMENT)
    box.run("preview", pool, "--expect-no-changes")


def test_the_app_is_registered_in_the_subscriptions_tenant_not_the_logins_default(
    box: Sandbox, pool: str
):
    # Signed in to two tenants, default elsewhere: the Azure CLI's profile says which tenant
    # owns the subscription, and both providers are pinned to it.
    del box.env["ARM_TENANT_ID"]
    profile = {
        "subscriptions": [
            {"id": SUBSCRIPTION, "isDefault": False, "tenantId": TENANT},
            {"id": str(uuid.uuid4()), "isDefault": True, "tenantId": str(uuid.uuid4())},
        ]
    }
    config_dir = Path(box.env["AZURE_CONFIG_DIR"])
    (config_dir / "azureProfile.json").write_text("\ufeff" + json.dumps(profile), "utf-8")

    up(box, pool)
    block = remember(box, pool)
    assert block["data"]["tenant_id"] == TENANT
    (app,) = box.cloud.resources(APPLICATION)
    assert app["meta"]["tenant"] == TENANT


def test_a_team_shares_the_pool_through_an_s3_backend(box: Sandbox, pool: str, s3_backend):
    share_backend(box, s3_backend)
    up(box, pool)
    assert s3_backend.checkpoint_keys("provision")
    expected = Expected(
        "azure-container-instance",
        f"{SUBSCRIPTION}/{pool}-rg ({LOCATION})",
        BLOCK_TYPE,
        block_name(pool),
    )
    operate_from_another_machine(box, pool, expected, lambda: passwords(box))
