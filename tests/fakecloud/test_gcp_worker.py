"""The GCP fake's Secret Manager and Cloud Run worker pools, called directly (no engine)."""

from __future__ import annotations

import base64
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.fakecloud.driver import PROJECT, REGION, Driver
from tests.fakecloud.gcp import ACCOUNT, KEY, PROJECT_IAM_MEMBER, SERVICE, project_number
from tests.fakecloud.gcp_base import SECRET, SECRET_IAM_MEMBER, SECRET_VERSION, WORKER_POOL
from tests.fakecloud.gcp_run import container, memory_bytes, resolved_env
from tests.fakecloud.gcp_secrets import access
from tests.fakecloud.harness import engine_env, inline_stack, require_pulumi_root
from tests.fakecloud.provider import UNKNOWN, CloudError, from_plain, to_plain_map
from tests.fakecloud.state import FakeCloud

EMAIL = f"etl-worker@{PROJECT}.iam.gserviceaccount.com"
MEMBER = f"serviceAccount:{EMAIL}"
NUMBER = project_number(PROJECT)
SECRET_ID = "etl-worker-PREFECT_API_KEY"
SECRET_RID = f"projects/{PROJECT}/secrets/{SECRET_ID}"
TOKEN = "pnu_fake-token-0123456789"
IN_REGION = {"userManaged": {"replicas": [{"location": REGION}]}}
SECRET_INPUTS = {"secretId": SECRET_ID, "replication": IN_REGION}
ACCESSOR = {"secretId": SECRET_RID, "role": "roles/secretmanager.secretAccessor", "member": MEMBER}


def plain(outputs: dict[str, Any]) -> dict[str, Any]:
    return to_plain_map(outputs)


def failures(gcp: Driver, token: str, inputs: dict[str, Any]) -> list[tuple[str, str]]:
    return [(f.property, f.reason) for f in gcp.check(token, "r", inputs).failures]


def enable(gcp: Driver, *apis: str) -> None:
    for api in apis:
        gcp.up(SERVICE, api.split(".")[0], {"service": api})


def template(*, version: str = "1", secret: str = SECRET_ID, **extra: Any) -> dict[str, Any]:
    """A worker's template: the Prefect worker, one plain and one secret variable."""
    return {
        "serviceAccount": EMAIL,
        "containers": [
            {
                "name": "worker",
                "image": "prefecthq/prefect:3.8.8-python3.12",
                "args": ["prefect", "worker", "start", "--pool", "etl", "--type", "cloud-run-v2"],
                "envs": [
                    {"name": "PREFECT_API_URL", "value": "https://api.example/api"},
                    {
                        "name": "PREFECT_API_KEY",
                        "valueSource": {"secretKeyRef": {"secret": secret, "version": version}},
                    },
                ],
                "resources": {"limits": {"cpu": "1", "memory": "2Gi"}},
            }
        ],
        **extra,
    }


def pool_inputs(**extra: Any) -> dict[str, Any]:
    return {
        "name": "etl-worker",
        "location": REGION,
        "deletionProtection": False,
        "scaling": {"scalingMode": "MANUAL", "manualInstanceCount": 1},
        "template": template(),
        **extra,
    }


@pytest.fixture
def ready(gcp: Driver) -> Driver:
    """APIs on, the worker account, its secret with one version, the accessor grant."""
    enable(gcp, "run.googleapis.com", "secretmanager.googleapis.com")
    gcp.up(ACCOUNT, "worker", {"accountId": "etl-worker"})
    gcp.up(SECRET, "secret", SECRET_INPUTS)
    gcp.up(SECRET_VERSION, "version", {"secret": SECRET_RID, "secretData": TOKEN})
    gcp.up(SECRET_IAM_MEMBER, "accessor", ACCESSOR)
    return gcp


# ------------------------------------------------------------------ secrets
def test_secret_shape_and_one_id_per_project(gcp: Driver, cloud: FakeCloud) -> None:
    enable(gcp, "secretmanager.googleapis.com")
    rid, outputs = gcp.up(SECRET, "s", {**SECRET_INPUTS, "labels": {"managed-by": "provision"}})
    out = plain(outputs)
    assert rid == out["id"] == SECRET_RID
    assert out["name"] == f"projects/{NUMBER}/secrets/{SECRET_ID}", "the API answers with numbers"
    assert out["replication"] == IN_REGION and out["deletionProtection"] is False
    assert out["effectiveLabels"] == {"managed-by": "provision", "goog-pulumi-provisioned": "true"}
    assert outputs["effectiveLabels"].is_secret
    with pytest.raises(CloudError) as info:
        gcp.up(SECRET, "again", SECRET_INPUTS)
    assert str(info.value) == (
        f"Error creating Secret: googleapi: Error 409: Secret [projects/{NUMBER}/secrets/"
        f"{SECRET_ID}] already exists., alreadyExists"
    )
    assert cloud.count(SECRET) == 1


def test_secret_manager_must_be_enabled(gcp: Driver) -> None:
    with pytest.raises(CloudError) as info:
        gcp.up(SECRET, "s", SECRET_INPUTS)
    text = str(info.value)
    assert text.startswith(
        f"Error creating Secret: googleapi: Error 403: Secret Manager API has not been used in "
        f"project {NUMBER} before or it is disabled."
    )
    assert "api/secretmanager.googleapis.com/overview" in text
    assert text.endswith(", accessNotConfigured")


@pytest.mark.parametrize(
    ("replication", "reason"),
    [
        (None, "Missing required argument"),
        ({"auto": {}, **IN_REGION}, "only one of `replication.0.auto,replication.0.user_managed`"),
        ({}, "only one of"),
        ({"userManaged": {"replicas": []}}, "requires 1 item minimum"),
    ],
)
def test_replication_rules(gcp: Driver, replication: Any, reason: str) -> None:
    inputs = {"secretId": SECRET_ID, "replication": replication}
    if replication is None:
        del inputs["replication"]
    ((prop, found),) = failures(gcp, SECRET, inputs)
    assert prop == "replication" and reason in found


@pytest.mark.parametrize(
    ("inputs", "message"),
    [
        ({"secretId": "no.dots", "replication": IN_REGION}, "does not match the expected format"),
        (
            {
                "secretId": SECRET_ID,
                "replication": {"userManaged": {"replicas": [{"location": "x"}]}},
            },
            "Location [x] is not a valid location.",
        ),
    ],
)
def test_secret_ids_and_locations_are_the_apis_to_refuse(
    gcp: Driver, inputs: dict[str, Any], message: str
) -> None:
    enable(gcp, "secretmanager.googleapis.com")
    with pytest.raises(CloudError, match=re.escape(message)):
        gcp.up(SECRET, "s", inputs)


def test_versions_are_numbered_by_gcp_and_never_reused(gcp: Driver, cloud: FakeCloud) -> None:
    enable(gcp, "secretmanager.googleapis.com")
    gcp.up(SECRET, "s", SECRET_INPUTS)
    first, outputs = gcp.up(SECRET_VERSION, "v1", {"secret": SECRET_RID, "secretData": TOKEN})
    out = plain(outputs)
    assert first == out["name"] == f"projects/{NUMBER}/secrets/{SECRET_ID}/versions/1"
    assert out["version"] == "1" and out["enabled"] is True and out["secret"] == SECRET_RID
    assert outputs["secretData"].is_secret and out["secretData"] == TOKEN
    record = cloud.get(SECRET_VERSION, first)
    assert "secretData" not in record["properties"], "the value is the secret store's alone"
    assert TOKEN not in repr(record), "held as the API returns it (base64), never in plain"
    assert base64.b64decode(record["meta"]["payload"]).decode() == TOKEN

    gcp.delete(SECRET_VERSION, "v1", first, outputs)
    assert gcp.read(SECRET_VERSION, "v1", first, outputs).resource_id in (None, ""), "destroyed"
    tombstone = cloud.get(SECRET_VERSION, first, include_deleted=True)
    assert tombstone["meta"]["state"] == "DESTROYED" and tombstone["meta"]["payload"] == ""
    second, _ = gcp.up(SECRET_VERSION, "v2", {"secret": SECRET_RID, "secretData": "other"})
    assert second.endswith("/versions/2")
    assert access(cloud, SECRET_ID, "latest", PROJECT) == "other"
    with pytest.raises(LookupError):
        access(cloud, SECRET_ID, "1", PROJECT)


def test_a_version_reads_back_its_data_and_a_new_value_replaces_it(gcp: Driver) -> None:
    enable(gcp, "secretmanager.googleapis.com")
    gcp.up(SECRET, "s", SECRET_INPUTS)
    inputs = {"secret": SECRET_RID, "secretData": TOKEN}
    rid, outputs = gcp.up(SECRET_VERSION, "v", inputs)
    refreshed = gcp.read(SECRET_VERSION, "v", rid, outputs).properties
    assert refreshed["secretData"].value == TOKEN and refreshed["secretData"].is_secret
    assert gcp.diff(SECRET_VERSION, "v", rid, outputs, inputs).changes is False
    changed = gcp.diff(SECRET_VERSION, "v", rid, outputs, {**inputs, "secretData": "rotated"})
    assert changed.replaces == ["secretData"]
    disabled = gcp.update(SECRET_VERSION, "v", rid, outputs, {**inputs, "enabled": False})
    assert plain(disabled)["enabled"] is False


def test_a_version_needs_its_secret_and_a_payload(gcp: Driver) -> None:
    enable(gcp, "secretmanager.googleapis.com")
    with pytest.raises(CloudError) as info:
        gcp.up(SECRET_VERSION, "v", {"secret": SECRET_RID, "secretData": TOKEN})
    assert str(info.value) == (
        f"Error creating SecretVersion: googleapi: Error 404: Secret [projects/{NUMBER}/secrets/"
        f"{SECRET_ID}] not found or has no versions., notFound"
    )
    assert failures(gcp, SECRET_VERSION, {"secret": SECRET_RID}) == [
        (
            "secretData",
            "one of `secret_data,secret_data_wo` must be specified. "
            "Examine values at 'r.secretData'.",
        )
    ]
    big = {"secret": SECRET_RID, "secretData": "x" * (64 * 1024 + 1)}
    assert "no larger than 64KiB" in failures(gcp, SECRET_VERSION, big)[0][1]


def test_deleting_a_secret_deletes_its_versions_and_grants(ready: Driver, cloud: FakeCloud) -> None:
    record = cloud.get(SECRET, SECRET_RID)
    olds = {k: from_plain(v) for k, v in record["properties"].items()}
    ready.delete(SECRET, "secret", SECRET_RID, olds)
    assert cloud.count(SECRET) == cloud.count(SECRET_VERSION) == cloud.count(SECRET_IAM_MEMBER) == 0


def test_accessor_grant_on_one_secret(gcp: Driver, cloud: FakeCloud) -> None:
    enable(gcp, "secretmanager.googleapis.com")
    short = {**ACCESSOR, "secretId": SECRET_ID}
    with pytest.raises(CloudError, match="Error retrieving IAM policy for secretmanager secret"):
        gcp.up(SECRET_IAM_MEMBER, "a", short)
    gcp.up(SECRET, "s", SECRET_INPUTS)
    with pytest.raises(CloudError, match=f"Service account {EMAIL} does not exist"):
        gcp.up(SECRET_IAM_MEMBER, "a", short)
    gcp.up(ACCOUNT, "worker", {"accountId": "etl-worker"})
    rid, outputs = gcp.up(SECRET_IAM_MEMBER, "a", short)
    assert rid == f"{SECRET_RID}/roles/secretmanager.secretAccessor/{MEMBER}"
    assert plain(outputs)["secretId"] == SECRET_RID, "comes back in full form"
    assert gcp.diff(SECRET_IAM_MEMBER, "a", rid, outputs, short).changes is False
    assert cloud.get(SECRET_IAM_MEMBER, rid)["meta"]["secret"] == SECRET_RID


# ------------------------------------------------------------- worker pools
def test_worker_pool_runs_as_its_account_and_reads_its_secret(
    ready: Driver, cloud: FakeCloud
) -> None:
    rid, outputs = ready.up(WORKER_POOL, "pool", pool_inputs())
    out = plain(outputs)
    assert rid == out["id"] == f"projects/{PROJECT}/locations/{REGION}/workerPools/etl-worker"
    assert re.fullmatch(
        rf"{re.escape(rid)}/revisions/etl-worker-00001-[a-z]{{3}}", out["latestReadyRevision"]
    )
    assert out["generation"] == "1" and out["launchStage"] == "GA"
    record = cloud.get(WORKER_POOL, rid)
    assert record["meta"]["serviceAccount"] == EMAIL
    assert record["meta"]["secrets"] == [f"projects/{NUMBER}/secrets/{SECRET_ID}/versions/1"]
    spec = container(cloud, "etl-worker")
    assert spec["args"][:3] == ["prefect", "worker", "start"]
    assert TOKEN not in repr(record), "a reference, not the value"
    assert resolved_env(cloud, "etl-worker") == {
        "PREFECT_API_URL": "https://api.example/api",
        "PREFECT_API_KEY": TOKEN,
    }


def test_worker_pool_needs_cloud_run_enabled(gcp: Driver) -> None:
    with pytest.raises(CloudError, match=r"Cloud Run Admin API has not been used in project"):
        gcp.up(WORKER_POOL, "pool", pool_inputs())


def test_its_account_must_exist_and_be_visible(make_driver: Callable[..., Driver]) -> None:
    gcp = make_driver(FAKECLOUD_GCP_PROPAGATION_MS="300")
    enable(gcp, "run.googleapis.com")
    no_secret = pool_inputs(
        template={**template(), "containers": [template()["containers"][0] | {"envs": []}]}
    )
    denied = (
        f"Error creating WorkerPool: googleapi: Error 403: Permission 'iam.serviceaccounts.actAs' "
        f"denied on service account {EMAIL} (or it may not exist)., forbidden"
    )
    with pytest.raises(CloudError) as info:
        gcp.up(WORKER_POOL, "pool", no_secret)
    assert str(info.value) == denied
    gcp.up(ACCOUNT, "worker", {"accountId": "etl-worker"})
    with pytest.raises(CloudError, match=re.escape(denied)):
        gcp.up(WORKER_POOL, "pool", no_secret)  # created moments ago: IAM cannot see it yet
    time.sleep(0.35)
    gcp.up(WORKER_POOL, "pool", no_secret)


def test_the_secret_version_must_exist_and_be_enabled(ready: Driver, cloud: FakeCloud) -> None:
    name = f"projects/{NUMBER}/secrets/{SECRET_ID}/versions/2"
    with pytest.raises(CloudError) as info:
        ready.up(WORKER_POOL, "pool", pool_inputs(template=template(version="2")))
    assert str(info.value) == (
        "Error creating WorkerPool: googleapi: Error 400: template.containers[0].env[1]."
        f"value_source.secret_key_ref.secret: Secret {name} was not found, badRequest"
    )
    with pytest.raises(CloudError, match="was not found"):
        ready.up(WORKER_POOL, "pool", pool_inputs(template=template(secret="other-secret")))
    assert cloud.count(WORKER_POOL) == 0


def test_the_account_must_be_allowed_to_read_the_secret(gcp: Driver, cloud: FakeCloud) -> None:
    enable(gcp, "run.googleapis.com", "secretmanager.googleapis.com")
    gcp.up(ACCOUNT, "worker", {"accountId": "etl-worker"})
    gcp.up(SECRET, "secret", SECRET_INPUTS)
    gcp.up(SECRET_VERSION, "version", {"secret": SECRET_RID, "secretData": TOKEN})
    with pytest.raises(CloudError) as info:
        gcp.up(WORKER_POOL, "pool", pool_inputs())
    text = str(info.value)
    assert text.startswith("Error waiting to create WorkerPool: Error waiting for Creating ")
    assert (
        f"Permission denied on secret: projects/{NUMBER}/secrets/{SECRET_ID}/versions/1 for "
        f"Revision service account {EMAIL}. The service account used must be granted the "
        "'Secret Manager Secret Accessor' role (roles/secretmanager.secretAccessor)"
    ) in text
    assert cloud.count(WORKER_POOL) == 0
    # A project-wide grant would do too (the stack never makes one; the cloud allows it).
    gcp.up(
        PROJECT_IAM_MEMBER,
        "p",
        {"project": PROJECT, "role": "roles/secretmanager.secretAccessor", "member": MEMBER},
    )
    gcp.up(WORKER_POOL, "pool", pool_inputs())


def test_a_grant_counts_once_propagated(make_driver: Callable[..., Driver]) -> None:
    gcp = make_driver()
    enable(gcp, "run.googleapis.com", "secretmanager.googleapis.com")
    gcp.up(ACCOUNT, "worker", {"accountId": "etl-worker"})
    gcp.up(SECRET, "secret", SECRET_INPUTS)
    gcp.up(SECRET_VERSION, "version", {"secret": SECRET_RID, "secretData": TOKEN})
    slow = make_driver(FAKECLOUD_GCP_PROPAGATION_MS="300")
    time.sleep(0.35)  # the account is old enough; the grant made next is not
    slow.up(SECRET_IAM_MEMBER, "accessor", ACCESSOR)
    with pytest.raises(CloudError, match="Permission denied on secret"):
        slow.up(WORKER_POOL, "pool", pool_inputs())
    time.sleep(0.35)
    slow.up(WORKER_POOL, "pool", pool_inputs())


def test_one_name_per_region_and_deletion_protection(ready: Driver, cloud: FakeCloud) -> None:
    rid, outputs = ready.up(WORKER_POOL, "pool", pool_inputs())
    with pytest.raises(CloudError) as info:
        ready.up(WORKER_POOL, "again", pool_inputs())
    assert str(info.value) == (
        "Error creating WorkerPool: googleapi: Error 409: Resource 'etl-worker' already "
        "exists., alreadyExists"
    )
    guarded = {k: v for k, v in pool_inputs().items() if k != "deletionProtection"}
    assert plain(ready.checked(WORKER_POOL, "p", guarded))["deletionProtection"] is True
    protected = ready.update(WORKER_POOL, "pool", rid, outputs, guarded)
    with pytest.raises(CloudError) as info:
        ready.delete(WORKER_POOL, "pool", rid, protected)
    assert str(info.value) == (
        "cannot destroy WorkerPool without setting deletion_protection=false and running "
        "`terraform apply`"
    )
    ready.delete(WORKER_POOL, "pool", rid, outputs)
    assert cloud.count(WORKER_POOL) == 0


def test_a_template_change_is_a_new_revision_checked_again(ready: Driver, cloud: FakeCloud) -> None:
    rid, outputs = ready.up(WORKER_POOL, "pool", pool_inputs())
    reordered = pool_inputs()
    reordered["template"]["containers"][0]["envs"].reverse()
    assert ready.diff(WORKER_POOL, "pool", rid, outputs, reordered).changes is False, "a set"

    ready.up(SECRET_VERSION, "v2", {"secret": SECRET_RID, "secretData": "rotated"})
    rolled = pool_inputs(template=template(version="2"))
    diff = ready.diff(WORKER_POOL, "pool", rid, outputs, rolled)
    assert diff.diffs == ["template"] and diff.replaces == []
    outputs = ready.update(WORKER_POOL, "pool", rid, outputs, rolled)
    updated = plain(outputs)
    assert updated["generation"] == "2" and "-00002-" in updated["latestReadyRevision"]
    assert resolved_env(cloud, "etl-worker")["PREFECT_API_KEY"] == "rotated"

    moved = ready.diff(WORKER_POOL, "pool", rid, outputs, pool_inputs(location="us-east1"))
    assert moved.replaces == ["location"]
    grant = cloud.resources(SECRET_IAM_MEMBER)[0]
    cloud.remove(SECRET_IAM_MEMBER, grant["id"])
    with pytest.raises(CloudError, match=r"Error waiting to update WorkerPool.*Permission denied"):
        ready.update(WORKER_POOL, "pool", rid, outputs, pool_inputs(template=template(version="1")))


@pytest.mark.parametrize(
    ("change", "prop", "reason"),
    [
        ({"name": "Etl-Worker"}, "name", "must begin with a letter"),
        ({"name": "etl-worker-"}, "name", "not end with a hyphen"),
        ({"name": "w" * 50}, "name", "fewer than 50 characters"),
        ({"template": None}, "template", "Missing required argument"),
        ({"template": {"containers": []}}, "template", "at least one container"),
        ({"template": {"containers": [{"name": "w"}]}}, "template", ".image: Missing required"),
        (
            {
                "template": template()
                | {"containers": [{"image": "i", "envs": [{"name": "A-B", "value": "x"}]}]}
            },
            "template",
            "'A-B' is not a valid environment variable name",
        ),
        (
            {
                "template": {
                    "containers": [
                        {
                            "image": "i",
                            "envs": [
                                {
                                    "name": "K",
                                    "value": "plain",
                                    "valueSource": {"secretKeyRef": {"secret": "s"}},
                                }
                            ],
                        }
                    ]
                }
            },
            "template",
            "only one of value and value_source",
        ),
        (
            {"template": {"containers": [{"image": "i", "resources": {"limits": {"cpu": "0.5"}}}]}},
            "template",
            "worker pools take 1, 2, 4, 6 or 8 CPUs",
        ),
        (
            {
                "template": {
                    "containers": [
                        {"image": "i", "resources": {"limits": {"cpu": "1", "memory": "8Gi"}}}
                    ]
                }
            },
            "template",
            "memory 8Gi is outside 128Mi-4096Mi for 1 CPU",
        ),
        ({"scaling": {"scalingMode": "SOMETIMES"}}, "scaling", 'one of ["AUTOMATIC" "MANUAL"]'),
        ({"scaling": {"manualInstanceCount": -1}}, "scaling", "whole number >= 0"),
    ],
)
def test_worker_pool_schema_rules(
    gcp: Driver, change: dict[str, Any], prop: str, reason: str
) -> None:
    inputs = {k: v for k, v in {**pool_inputs(), **change}.items() if v is not None}
    found = failures(gcp, WORKER_POOL, inputs)
    assert [p for p, _ in found] == [prop], found
    assert reason in found[0][1]


def test_unknown_values_wait_for_apply(gcp: Driver) -> None:
    inputs = pool_inputs(template={"serviceAccount": UNKNOWN, "containers": UNKNOWN}, name=UNKNOWN)
    assert failures(gcp, WORKER_POOL, inputs) == []


def test_memory_quantities() -> None:
    assert memory_bytes("2Gi") == 2 * 1024**3
    assert memory_bytes("512Mi") == 512 * 1024**2
    assert memory_bytes("1G") == 10**9
    assert memory_bytes("two") is None


# --------------------------------------------------------------- the engine
@pytest.mark.e2e
def test_the_keyless_pool_and_its_worker_through_the_engine(tmp_path: Path) -> None:
    """stacks/gcp_cloud_run.py (keyless) and stacks/gcp_worker.py, real engine, this fake: up,
    a rerun that changes nothing, a refresh with no drift, a new credential rolling the worker,
    destroy. Org policy forbids keys all along."""
    import pulumi

    from stacks.gcp_cloud_run import CloudRunPool, CloudRunPoolArgs
    from stacks.gcp_worker import CloudRunWorker, CloudRunWorkerArgs

    require_pulumi_root()
    env = engine_env(tmp_path, extra={"FAKECLOUD_GCP_DISABLE_KEY_CREATION": "1"})
    cloud = FakeCloud(env["FAKECLOUD_STATE_DIR"])
    credential = {"value": TOKEN}

    def program() -> None:
        pool = CloudRunPool(
            "etl",
            CloudRunPoolArgs(
                pool="etl",
                project=PROJECT,
                region=REGION,
                flavor="cloud-run-v2",
                worker_account_id="etl-worker",
                runtime_account_id="etl-runtime",
                repository_id="etl-images",
                role_id="provision_etl_0a1b2c3d",
                keyless=True,
            ),
        )
        worker = CloudRunWorker(
            "etl",
            CloudRunWorkerArgs(
                pool="etl",
                project=PROJECT,
                region=REGION,
                worker_pool_id="etl-worker",
                service_account_email=pool.outputs["worker_service_account_email"],
                image="prefecthq/prefect:3.8.8-python3.12",
                args=("prefect", "worker", "start", "--pool", "etl", "--type", "cloud-run-v2"),
                env={"PREFECT_API_URL": "https://api.example/api"},
                secret_env={"PREFECT_API_KEY": pulumi.Output.secret(credential["value"])},
                secret_ids={"PREFECT_API_KEY": SECRET_ID},
                services=("secretmanager.googleapis.com",),
            ),
        )
        for key, value in {**pool.outputs, **worker.outputs}.items():
            pulumi.export(key, value)

    stack = inline_stack(
        tmp_path, env, program, config={"gcp:project": PROJECT, "gcp:region": REGION}
    )
    up = stack.up()
    assert "service_account_key" not in up.outputs
    assert cloud.count(KEY) == 0 and cloud.calls("create", KEY, phase="begin") == []
    assert resolved_env(cloud, "etl-worker")["PREFECT_API_KEY"] == TOKEN
    (pool,) = cloud.resources(WORKER_POOL)
    assert pool["meta"]["serviceAccount"] == EMAIL
    # The checkpoint on the backend, as stored (export_stack would decrypt it).
    backend = Path(env["PULUMI_BACKEND_URL"].removeprefix("file://"))
    checkpoints = [p.read_text() for p in backend.rglob("*.json")]
    assert any("SecretVersion" in text for text in checkpoints)
    assert not any(TOKEN in text for text in checkpoints), "ciphertext in the state, only"

    writes = len([c for c in cloud.calls() if c["op"] in ("create", "update", "delete")])
    assert stack.up().summary.resource_changes.keys() == {"same"}
    assert stack.refresh().summary.resource_changes.keys() == {"same"}
    assert stack.preview().change_summary.keys() == {"same"}
    assert len([c for c in cloud.calls() if c["op"] in ("create", "update", "delete")]) == writes

    credential["value"] = "pnu_rotated"
    rolled = stack.up().summary.resource_changes
    assert rolled.get("replace") == 1 and rolled.get("update") == 1, rolled
    assert resolved_env(cloud, "etl-worker")["PREFECT_API_KEY"] == "pnu_rotated"
    assert "-00002-" in cloud.resources(WORKER_POOL)[0]["properties"]["latestReadyRevision"]

    stack.destroy()
    left = [r for r in cloud.resources(cloud="gcp") if r["type"] != SERVICE]
    assert left == []
