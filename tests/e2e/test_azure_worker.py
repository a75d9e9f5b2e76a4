"""`provision up --with-worker` on Azure end to end: `provision` CLI → real pulumi engine → fake
azure-native and azuread → a real Prefect server behind an auth string.

The worker runs in ACI as its own managed identity: no app registration, no service principal,
no client secret anywhere; the server's auth string reaches the container as a secure value.
"""

from __future__ import annotations

import json
import secrets
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import Sandbox, wait_for
from tests.e2e.test_azure import LOCATION, SUBSCRIPTION, TENANT
from tests.fakecloud.azure_native import (
    CONTAINER_GROUP,
    DIAGNOSTIC_SETTING,
    IDENTITY,
    ROLE_ASSIGNMENT,
    ROLE_DEFINITION,
    WORKSPACE,
    secure_value_matches,
)
from tests.prefect_server import PROTECTED_AUTH

pytestmark = pytest.mark.e2e

BLOCK_TYPE = "azure-container-instance-credentials"
ACR_PULL = "7f951dda-4ed3-4680-a7ca-43fe172d538d"


@pytest.fixture
def box(sandbox: Sandbox) -> Sandbox:
    """The sandbox as an Azure user (a fake ``az login`` in TENANT) of a server behind an auth
    string: from here on the leak scan looks for the auth string too."""
    for key in list(sandbox.env):
        if key.startswith(("ARM_", "AZURE_", "FAKECLOUD_AZURE_")):
            del sandbox.env[key]
    azure_dir = sandbox.root / "azure-cli"
    azure_dir.mkdir()
    sandbox.env.update({"ARM_TENANT_ID": TENANT, "AZURE_CONFIG_DIR": str(azure_dir)})
    sandbox.secrets.add(PROTECTED_AUTH)
    return sandbox


@pytest.fixture
def pool() -> str:
    """A pool name of its own: every test shares the session's Prefect servers."""
    return "wrk" + secrets.token_hex(3)


class Protected:
    """The protected server, as the tool and as a test reach it."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.env = {"PREFECT_API_URL": url, "PREFECT_API_AUTH_STRING": PROTECTED_AUTH}
        self.auth = httpx.BasicAuth(*PROTECTED_AUTH.split(":", 1))

    def get(self, path: str, **params: Any) -> httpx.Response:
        return httpx.get(self.url + path, params=params, auth=self.auth, timeout=15)

    def block(self, pool: str) -> dict[str, Any] | None:
        r = self.get(
            f"/block_types/slug/{BLOCK_TYPE}/block_documents/name/{pool}-aci-credentials",
            include_secrets="true",
        )
        return None if r.status_code == 404 else r.raise_for_status().json()

    def work_pool(self, pool: str) -> dict[str, Any] | None:
        r = self.get(f"/work_pools/{pool}")
        return None if r.status_code == 404 else r.raise_for_status().json()

    def work_pool_gone(self, pool: str) -> bool:
        """Whether the server answers 404 for the pool. Prefect's server answers a read racing
        the pool's delete with a 500 at times (once in CI, this test polling every 50 ms while
        ``destroy`` deleted the pool; 32 of 402 reads in 60 deletes polled by 3 threads against
        the test server): not gone yet, the next poll asks again. Any other error fails."""
        r = self.get(f"/work_pools/{pool}")
        if r.status_code == 404:
            return True
        if not r.is_server_error:
            r.raise_for_status()
        return False


@pytest.fixture
def prefect(protected_prefect_server) -> Protected:
    return Protected(protected_prefect_server.api_url)


def up(box: Sandbox, prefect: Protected, pool: str, *extra: str, **env: str):
    args = ["up", pool, "--type", "azure-container-instance", "--subscription", SUBSCRIPTION]
    return box.run(*args, "--location", LOCATION, *extra, "--yes", **prefect.env, **env)


def by_name(record: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The worker container's environment variables by name, as ARM answers them."""
    (container,) = record["properties"]["containers"]
    return {e["name"]: e for e in container["environmentVariables"]}


def test_up_runs_the_worker_as_its_identity_with_no_credential_anywhere(
    box: Sandbox, prefect: Protected, pool: str
):
    run = up(box, prefect, pool, "--with-worker", "--worker-count", "2")
    assert f"Pool '{pool}' is ready" in run.stdout
    next_steps = run.stdout.split("Next steps", 1)[1]
    assert "prefect worker start" not in next_steps  # it runs in Azure already
    assert "az container logs" in next_steps
    cloud = box.cloud
    rg_id = f"/subscriptions/{SUBSCRIPTION}/resourceGroups/{pool}-rg"

    # No Entra ID object at all: no app, no service principal, no client secret.
    assert cloud.resources(cloud="azuread") == []
    assert not [c for c in cloud.calls() if c["cloud"] == "azuread" and c["op"] == "create"]

    # The worker identity holds the submitter role on the resource group; the jobs' identity
    # only AcrPull.
    identities = {r["properties"]["name"]: r for r in cloud.resources(IDENTITY)}
    assert set(identities) == {f"{pool}-identity", f"{pool}-worker"}
    worker = identities[f"{pool}-worker"]["properties"]
    (role,) = cloud.resources(ROLE_DEFINITION)
    grants = {
        a["properties"]["principalId"]: a["properties"] for a in cloud.resources(ROLE_ASSIGNMENT)
    }
    assert grants[worker["principalId"]]["scope"] == rg_id
    assert grants[worker["principalId"]]["roleDefinitionId"] == role["id"]
    jobs = identities[f"{pool}-identity"]["properties"]
    assert grants[jobs["principalId"]]["roleDefinitionId"].endswith(ACR_PULL)
    assert len(grants) == 2

    # The worker: one container group per replica, running as that identity, the auth string a
    # secure value (never a plain one, never returned), its logs routed to Log Analytics.
    groups = sorted(cloud.resources(CONTAINER_GROUP), key=lambda r: r["properties"]["name"])
    assert [g["properties"]["name"] for g in groups] == [f"{pool}-worker-0", f"{pool}-worker-1"]
    for group in groups:
        props = group["properties"]
        assert list(props["identity"]["userAssignedIdentities"]) == [worker["id"]]
        assert (
            props["identity"]["userAssignedIdentities"][worker["id"]]["clientId"]
            == (worker["clientId"])
        )
        assert (props["osType"], props["restartPolicy"]) == ("Linux", "Always")
        (container,) = props["containers"]
        assert container["image"] == "prefecthq/prefect:3.8.8-python3.12"
        assert container["command"] == [
            "/opt/prefect/entrypoint.sh",
            *("prefect", "worker", "start", "--pool", pool, "--type", "azure-container-instance"),
        ]
        assert container["resources"] == {"requests": {"cpu": 1.0, "memoryInGB": 1.5}}
        env = by_name(group)
        assert env["PREFECT_API_URL"]["value"] == prefect.url
        assert env["EXTRA_PIP_PACKAGES"]["value"] == "prefect-azure"
        assert env["AZURE_CLIENT_ID"]["value"] == worker["clientId"]
        assert env["PREFECT_API_AUTH_STRING"] == {"name": "PREFECT_API_AUTH_STRING"}
        assert secure_value_matches(group, "worker", "PREFECT_API_AUTH_STRING", PROTECTED_AUTH)
        assert not any(PROTECTED_AUTH in str(e.get("value")) for e in env.values())
    (workspace,) = cloud.resources(WORKSPACE)
    assert workspace["properties"]["name"] == f"{pool}-logs"
    settings = cloud.resources(DIAGNOSTIC_SETTING)
    assert sorted(s["meta"]["resource"] for s in settings) == [g["id"] for g in groups]
    assert all(s["properties"]["workspaceId"] == workspace["id"] for s in settings)

    # The block holds which identity to use, and no secret.
    block = prefect.block(pool)
    assert block is not None
    assert block["data"] == {
        "credential_kwargs": {"managed_identity_client_id": worker["clientId"]}
    }
    work_pool = prefect.work_pool(pool)
    assert work_pool is not None
    variables = work_pool["base_job_template"]["variables"]["properties"]
    assert variables["aci_credentials"]["default"] == {"$ref": {"block_document_id": block["id"]}}
    assert variables["identities"]["default"] == [identities[f"{pool}-identity"]["id"]]

    shown = json.loads(box.run("show", pool, "--json", **prefect.env).stdout)
    assert shown["outputs"]["worker_container_groups"] == [f"{pool}-worker-0", f"{pool}-worker-1"]
    assert "client_secret" not in shown["outputs"]

    # A rerun changes nothing: no create, no update, in the cloud or in Prefect.
    creates = len(cloud.calls("create")) + len(cloud.calls("update"))
    run = box.run("up", pool, "--yes", **prefect.env)
    assert "0 created, 0 updated, 0 replaced, 0 deleted" in run.stdout
    assert len(cloud.calls("create")) + len(cloud.calls("update")) == creates
    assert prefect.block(pool)["id"] == block["id"]
    box.run("preview", pool, "--expect-no-changes", **prefect.env)

    # destroy stops the worker before it deletes the work pool, then leaves nothing. Each
    # container group's delete takes 1.5 s after ARM's write: the pool must outlive them.
    args = ["destroy", pool, "--yes"]
    proc = box.start(*args, FAKECLOUD_DELAY_AFTER_MS_DELETE="1500", **prefect.env)
    try:
        wait_for(lambda: cloud.calls("delete", CONTAINER_GROUP, phase="begin"), timeout=240)
        assert prefect.work_pool(pool) is not None, "the work pool went before its worker"
        wait_for(lambda: prefect.work_pool_gone(pool), timeout=240, interval=0.05)
        stopped = [c for c in cloud.calls("delete", CONTAINER_GROUP) if c["outcome"] == "ok"]
        assert len(stopped) == 2, "the work pool was deleted while a worker still ran"
    finally:
        run = box.finish(proc, args)
    assert run.code == 0, run.output
    assert cloud.resources(cloud="azure-native") == []
    assert [r["type"] for r in cloud.resources(include_deleted=True)] == [WORKSPACE]  # soft
    assert cloud.resources(cloud="azuread") == []
    assert prefect.block(pool) is None


def test_an_open_server_gives_the_worker_no_secret(box: Sandbox, pool: str):
    # The sandbox's own server asks for no credential: no secure value, nothing to store.
    args = ["up", pool, "--type", "azure-container-instance", "--subscription", SUBSCRIPTION]
    box.run(*args, "--location", LOCATION, "--with-worker", "--yes")
    (group,) = box.cloud.resources(CONTAINER_GROUP)
    env = by_name(group)
    assert set(env) == {"PREFECT_API_URL", "EXTRA_PIP_PACKAGES", "AZURE_CLIENT_ID"}
    assert all("value" in e for e in env.values())
    assert group["meta"]["secureEnvironment"] == {}
    assert box.cloud.resources(cloud="azuread") == []
    box.run("destroy", pool, "--yes")
    assert box.cloud.resources(cloud="azure-native") == []
