"""GCP pools end to end: `provision` CLI → real pulumi engine → fake GCP → real Prefect server."""

from __future__ import annotations

import json
import secrets

import httpx
import pytest

from tests.contract import PREVIEW_KEYS
from tests.e2e.conftest import (
    Expected,
    Sandbox,
    operate_from_another_machine,
    share_backend,
    wait_for,
)
from tests.prefect_server import PROTECTED_AUTH, free_port

pytestmark = pytest.mark.e2e

KEY = "gcp:serviceaccount/key:Key"
ACCOUNT = "gcp:serviceaccount/account:Account"
SERVICE = "gcp:projects/service:Service"
REPOSITORY = "gcp:artifactregistry/repository:Repository"
CUSTOM_ROLE = "gcp:projects/iAMCustomRole:IAMCustomRole"
UP = ["--type", "cloud-run-v2", "--project", "my-proj-123", "--region", "europe-west1"]


@pytest.fixture
def pool() -> str:
    """A pool name of its own: every test shares the session's Prefect server."""
    return "etl" + secrets.token_hex(3)


def up(box: Sandbox, pool: str, *extra: str, expect: int | None = 0, **env: str):
    run = box.run("up", pool, *UP, *extra, "--yes", expect=expect, **env)
    if run.code == 0:
        box.remember_key(box.block("gcp-credentials", f"{pool}-gcp-credentials"))
    return run


def live(box: Sandbox, pool: str) -> list[dict]:
    """Fake-cloud records created for ``pool`` (services outlive pools by design)."""
    return [
        r
        for r in box.cloud.resources(cloud="gcp")
        if r["type"] != SERVICE and pool in json.dumps(r)
    ]


def keys(box: Sandbox) -> list[dict]:
    return box.cloud.resources(KEY)


def test_up_creates_the_cloud_side_and_registers_it_in_prefect(sandbox: Sandbox, pool: str):
    run = up(sandbox, pool)
    assert f"Pool '{pool}' is ready" in run.stdout
    assert f"prefect worker start --pool {pool}" in run.stdout
    assert f"europe-west1-docker.pkg.dev/my-proj-123/{pool}-images" in run.stdout

    cloud = sandbox.cloud
    emails = sorted(a["properties"]["email"] for a in cloud.resources(ACCOUNT))
    assert emails == [
        f"{pool}-runtime@my-proj-123.iam.gserviceaccount.com",
        f"{pool}-worker@my-proj-123.iam.gserviceaccount.com",
    ]
    assert len(keys(sandbox)) == 1
    services = {s["properties"]["service"] for s in cloud.resources(SERVICE)}
    assert {"run.googleapis.com", "iam.googleapis.com", "artifactregistry.googleapis.com"} <= (
        services
    )

    block = sandbox.block("gcp-credentials", f"{pool}-gcp-credentials")
    assert block is not None
    info = block["data"]["service_account_info"]
    # The block holds the key the stack made (GCP keeps only the key's id, not its material).
    assert keys(sandbox)[0]["id"].endswith("/keys/" + info["private_key_id"])
    assert info["private_key"].startswith("-----BEGIN PRIVATE KEY-----")
    assert info["client_email"] == f"{pool}-worker@my-proj-123.iam.gserviceaccount.com"

    work_pool = sandbox.work_pool(pool)
    assert work_pool is not None and work_pool["type"] == "cloud-run-v2"
    props = work_pool["base_job_template"]["variables"]["properties"]
    assert props["credentials"]["default"] == {"$ref": {"block_document_id": block["id"]}}
    assert props["region"]["default"] == "europe-west1"
    assert props["service_account_name"]["default"] == (
        f"{pool}-runtime@my-proj-123.iam.gserviceaccount.com"
    )

    shown = json.loads(sandbox.run("show", pool, "--json").stdout)
    assert shown["outputs"]["service_account_key"] == "[secret]"
    assert shown["prefect"]["block_id"] == block["id"]
    assert shown["prefect"]["work_pool_id"] == work_pool["id"]


def test_rerun_changes_nothing_and_creates_no_credential(sandbox: Sandbox, pool: str):
    up(sandbox, pool)
    key_id = keys(sandbox)[0]["id"]
    block_id = sandbox.block("gcp-credentials", f"{pool}-gcp-credentials")["id"]
    creates_before = len(sandbox.cloud.calls("create"))

    run = sandbox.run("up", pool, "--yes")  # saved options: the pool name is enough
    assert "0 created, 0 updated, 0 replaced, 0 deleted" in run.stdout
    assert len(sandbox.cloud.calls("create")) == creates_before
    assert [k["id"] for k in keys(sandbox)] == [key_id]
    assert sandbox.block("gcp-credentials", f"{pool}-gcp-credentials")["id"] == block_id

    sandbox.run("preview", pool, "--expect-no-changes")
    plan = json.loads(sandbox.run("preview", pool, "--json", "--expect-no-changes").stdout)
    assert plan["changes"]["create"] == plan["changes"]["update"] == 0
    assert [p["op"] for p in plan["prefect"]] == ["same", "same"]


def test_an_option_change_shows_in_preview(sandbox: Sandbox, pool: str):
    up(sandbox, pool)
    run = sandbox.run(
        "preview", pool, "--registry-writer", "--json", "--expect-no-changes", expect=3
    )
    plan = json.loads(run.stdout)
    assert set(plan) == PREVIEW_KEYS
    assert plan["offline"] is False and plan["stack"] == pool
    changed = [r for r in plan["resources"] if r["op"] != "same"]
    assert changed and all(r["type"].endswith("RepositoryIamMember") for r in changed)
    assert changed[0]["inputs"]["role"] == "roles/artifactregistry.writer"
    assert changed[0]["op"] == "replace"  # the role of an IAM member is immutable
    assert plan["changes"]["update"] + plan["changes"]["replace"] >= 1
    # The preview changed nothing.
    sandbox.run("preview", pool, "--expect-no-changes")


def test_destroy_removes_everything_the_tool_made(sandbox: Sandbox, pool: str):
    up(sandbox, pool)
    sandbox.run("destroy", pool, "--yes")
    assert live(sandbox, pool) == []
    # APIs stay on: other workloads may use them.
    assert all(s["properties"].get("enabled", True) for s in sandbox.cloud.resources(SERVICE))
    assert sandbox.block("gcp-credentials", f"{pool}-gcp-credentials") is None
    assert sandbox.work_pool(pool) is None
    listed = json.loads(sandbox.run("list", "--json").stdout)
    assert pool not in [p["name"] for p in listed]


def test_destroy_leaves_prefect_objects_it_did_not_create(sandbox: Sandbox, pool: str):
    # The user made the pool themselves first; provision only fills in its defaults.
    template = sandbox.prefect("GET", "/collections/views/aggregate-worker-metadata").json()
    base = next(
        w["default_base_job_configuration"]
        for c in template.values()
        for w in c.values()
        if w.get("type") == "cloud-run-v2"
    )
    sandbox.prefect(
        "POST",
        "/work_pools/",
        json={"name": pool, "type": "cloud-run-v2", "base_job_template": base},
    ).raise_for_status()
    up(sandbox, pool)
    sandbox.run("destroy", pool, "--yes")
    assert sandbox.work_pool(pool) is not None
    assert sandbox.block("gcp-credentials", f"{pool}-gcp-credentials") is None


# Cloud-agnostic (each run has its own work dir and stack; the engine runs them side by side):
# run here only, for every cloud. Names of two pools never colliding is each cloud's naming
# tests' job (tests/provision/test_*_target.py).
def test_two_pools_in_parallel(sandbox: Sandbox, pool: str):
    args = {p: ["up", p, *UP, "--yes"] for p in (pool + "a", pool + "b")}
    procs = {p: sandbox.start(*a) for p, a in args.items()}
    runs = {p: sandbox.finish(proc, args[p]) for p, proc in procs.items()}
    for p, run in runs.items():
        assert run.code == 0, run.output
        assert sandbox.work_pool(p) is not None
    assert len(keys(sandbox)) == 2


# Cloud-agnostic (the lock is the engine's): run here only, for every cloud. Two machines on a
# shared backend: tests/e2e/test_team.py.
def test_two_ups_on_one_pool_one_wins_the_other_is_locked(sandbox: Sandbox, pool: str):
    slow = {"FAKECLOUD_DELAY_MS": "1500"}
    first_args = ["up", pool, *UP, "--yes"]
    first = sandbox.start(*first_args, **slow)
    wait_for(lambda: sandbox.cloud.calls("create", phase="begin"), timeout=120)
    second = sandbox.run("up", pool, *UP, "--yes", expect=1)
    assert "locked by another run" in second.stderr
    assert f"provision unlock {pool}" in second.stderr
    assert sandbox.finish(first, first_args).code == 0
    assert len(keys(sandbox)) == 1


def test_a_provider_failure_names_the_resource_and_a_rerun_converges(sandbox: Sandbox, pool: str):
    run = up(sandbox, pool, expect=1, FAKECLOUD_FAULTS=f"create:{KEY}@once")
    assert "gcp:serviceaccount/key:Key" in run.stderr and f"{pool}-worker-key" in run.stderr
    assert len(run.stderr.strip().splitlines()) == 1
    assert sandbox.cloud.count(ACCOUNT) == 2  # partial state recorded
    assert keys(sandbox) == []
    assert sandbox.work_pool(pool) is None  # nothing half-written in Prefect

    sandbox.run("up", pool, "--yes")
    assert len(keys(sandbox)) == 1
    assert sandbox.work_pool(pool) is not None


def test_a_pool_that_never_reached_prefect_is_destroyed_without_prefect(
    sandbox: Sandbox, pool: str
):
    up(sandbox, pool, expect=1, FAKECLOUD_FAULTS=f"create:{KEY}@always")
    assert sandbox.cloud.count(ACCOUNT) == 2
    sandbox.run("destroy", pool, "--yes", PREFECT_API_URL="")
    assert live(sandbox, pool) == []


def test_propagation_errors_are_retried(sandbox: Sandbox, pool: str):
    run = up(sandbox, pool, FAKECLOUD_GCP_PROPAGATION_MS="1500")
    assert "propagating" in run.stdout
    assert len(keys(sandbox)) == 1


def test_org_policy_forbidding_keys_is_explained(sandbox: Sandbox, pool: str):
    run = up(sandbox, pool, expect=1, FAKECLOUD_GCP_DISABLE_KEY_CREATION="1")
    assert "iam.disableServiceAccountKeyCreation" in run.stderr
    assert "exempt" in run.stderr and "Traceback" not in run.output


def test_missing_credentials_are_one_clear_line(sandbox: Sandbox, pool: str):
    run = up(sandbox, pool, expect=1, FAKECLOUD_GCP_NO_CREDENTIALS="1")
    assert "No usable GCP credentials" in run.stderr
    assert "gcloud auth application-default login" in run.stderr


# Cloud-agnostic (the Prefect side is the same resources on every cloud): run here only.
def test_prefect_down_during_up_then_rerun_finishes_without_a_new_key(
    sandbox, prefect_server, pool
):
    run = sandbox.run_with_prefect_down_midway(prefect_server, "up", pool, *UP, "--yes")
    assert run.code == 1
    assert f"Cloud resources for '{pool}' are in place" in run.stderr
    assert f"Rerun `provision up {pool}`" in run.stderr
    key_id = keys(sandbox)[0]["id"]

    sandbox.run("up", pool, "--yes")
    sandbox.remember_key(sandbox.block("gcp-credentials", f"{pool}-gcp-credentials"))
    assert [k["id"] for k in keys(sandbox)] == [key_id]
    assert sandbox.work_pool(pool) is not None
    assert sandbox.block("gcp-credentials", f"{pool}-gcp-credentials") is not None


# IAM's keys API where nothing listens: the rerun cannot look for an untracked key (the tool's
# removal of one is tests/e2e/test_gcp_rotation.py's), and no test can reach Google's.
NO_IAM = {"GOOGLE_IAM_CUSTOM_ENDPOINT": "http://127.0.0.1:9/v1/", "GOOGLE_OAUTH_ACCESS_TOKEN": "x"}


def test_sigkill_while_the_key_is_being_created_is_recovered_by_rerunning(
    sandbox: Sandbox, pool: str
):
    sandbox.kill_while_creating(KEY, "up", pool, *UP, "--yes", after_write=False)

    run = sandbox.run("up", pool, "--yes", timeout=300, **NO_IAM)
    sandbox.remember_key(sandbox.block("gcp-credentials", f"{pool}-gcp-credentials"))
    assert f"Pool '{pool}' is ready" in run.stdout
    assert f"Interrupted while creating a key of service account {pool}-worker@" in run.stdout
    assert len(keys(sandbox)) == 1
    assert sandbox.cloud.count(ACCOUNT) == 2
    sandbox.run("preview", pool, "--expect-no-changes")


def test_sigkill_after_the_cloud_wrote_the_key_names_the_untracked_copy(
    sandbox: Sandbox, pool: str
):
    # The killed engine never gets GCP's answer, so the key it made is unknown to the state.
    # With IAM out of reach, the rerun converges with a fresh key and names the possible
    # orphan and how to remove it.
    sandbox.kill_while_creating(KEY, "up", pool, *UP, "--yes", after_write=True)

    run = sandbox.run("up", pool, "--yes", timeout=300, **NO_IAM)
    assert "IAM unreachable at http://127.0.0.1:9/v1/" in run.stdout
    block = sandbox.block("gcp-credentials", f"{pool}-gcp-credentials")
    sandbox.remember_key(block)
    assert f"Pool '{pool}' is ready" in run.stdout
    assert "untracked" in run.stdout and "gcloud iam service-accounts keys list" in run.stdout
    tracked = json.loads(sandbox.run("show", pool, "--json").stdout)
    assert tracked["prefect"]["block_id"] == block["id"]
    live_keys = keys(sandbox)
    assert len(live_keys) == 2  # the orphan the message names, and the tracked one
    assert (
        sum(
            k["id"].endswith(block["data"]["service_account_info"]["private_key_id"])
            for k in live_keys
        )
        == 1
    )
    sandbox.run("preview", pool, "--expect-no-changes")


def test_sigkill_after_the_cloud_wrote_the_accounts_is_adopted_not_recreated(
    sandbox: Sandbox, pool: str
):
    # Accounts, the role and the repository 409 on a second create: the rerun must read back
    # what the killed run made (their ids follow from the pool's names), never re-create it.
    sandbox.kill_while_creating(ACCOUNT, "up", pool, *UP, "--yes", after_write=True)
    made = {r["id"] for t in (ACCOUNT, REPOSITORY, CUSTOM_ROLE) for r in sandbox.cloud.resources(t)}
    assert made, "the kill came before the cloud wrote anything"

    run = sandbox.run("up", pool, "--yes", timeout=300)
    sandbox.remember_key(sandbox.block("gcp-credentials", f"{pool}-gcp-credentials"))
    assert "Adopting" in run.stdout and f"Pool '{pool}' is ready" in run.stdout
    assert sandbox.cloud.count(ACCOUNT) == 2 and sandbox.cloud.count(REPOSITORY) == 1
    assert sandbox.cloud.count(CUSTOM_ROLE) == 1 and len(keys(sandbox)) == 1
    after = {
        r["id"] for t in (ACCOUNT, REPOSITORY, CUSTOM_ROLE) for r in sandbox.cloud.resources(t)
    }
    assert made <= after
    for token in (ACCOUNT, REPOSITORY, CUSTOM_ROLE):  # one create each, ever
        begun = sandbox.cloud.calls("create", token, phase="begin")
        assert len(begun) == sandbox.cloud.count(token), token
    sandbox.run("preview", pool, "--expect-no-changes")
    sandbox.run("destroy", pool, "--yes")
    assert sandbox.cloud.count(ACCOUNT) == 0 and sandbox.cloud.count(REPOSITORY) == 0


def test_a_server_behind_an_auth_string(sandbox: Sandbox, pool: str, protected_prefect_server):
    # A self-hosted server with PREFECT_SERVER_API_AUTH_STRING: without the client's auth
    # string, one line says what to set, before anything is made in the cloud.
    url = protected_prefect_server.api_url
    refused = up(sandbox, pool, expect=None, PREFECT_API_URL=url)
    assert refused.code != 0 and live(sandbox, pool) == []
    assert "PREFECT_API_AUTH_STRING" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1

    sandbox.secrets.add(PROTECTED_AUTH)  # from here on, the leak scan looks for it too
    run = up(sandbox, pool, PREFECT_API_URL=url, PREFECT_API_AUTH_STRING=PROTECTED_AUTH)
    assert f"Pool '{pool}' is ready" in run.stdout
    auth = httpx.BasicAuth(*PROTECTED_AUTH.split(":", 1))
    block = (
        httpx.get(
            f"{url}/block_types/slug/gcp-credentials/block_documents/name/{pool}-gcp-credentials",
            params={"include_secrets": "true"},
            auth=auth,
            timeout=15,
        )
        .raise_for_status()
        .json()
    )
    sandbox.remember_key(block)
    assert httpx.get(f"{url}/work_pools/{pool}", auth=auth, timeout=15).status_code == 200


def test_an_unreachable_prefect_stops_up_before_any_cloud_call(sandbox: Sandbox, pool: str):
    dead = f"http://127.0.0.1:{free_port()}/api"
    run = up(sandbox, pool, expect=None, PREFECT_API_URL=dead)
    assert run.code != 0 and len(run.stderr.strip().splitlines()) == 1
    assert dead in run.stderr
    assert live(sandbox, pool) == [] and not sandbox.cloud.calls("create")
    assert "ready" not in run.stdout


def test_a_team_shares_the_pool_through_an_s3_backend(sandbox: Sandbox, pool: str, s3_backend):
    share_backend(sandbox, s3_backend)
    up(sandbox, pool)
    assert s3_backend.checkpoint_keys("provision")
    expected = Expected(
        "cloud-run-v2", "my-proj-123/europe-west1", "gcp-credentials", f"{pool}-gcp-credentials"
    )
    operate_from_another_machine(sandbox, pool, expected, lambda: keys(sandbox))
