"""CloudRunWorker under Pulumi mocks: the worker pool, its identity, its secret and the order.

Same machinery as ``test_gcp_cloud_run.py`` (``tests/pulumi_mocks.py``): a fresh runtime and a
recording monitor per test, assertions inside ``apply`` callbacks that must run.
"""

from __future__ import annotations

from typing import Any

import pulumi
import pytest
from pulumi.runtime import rpc

from stacks.gcp_worker import (
    DEFAULT_CPU,
    DEFAULT_MEMORY,
    SECRET_ACCESSOR,
    TYPE_TOKEN,
    CloudRunWorker,
    CloudRunWorkerArgs,
    CloudRunWorkerOutputs,
)
from tests.pulumi_mocks import assert_component_tree, check_when_resolved, monitor_fixture

PROJECT = "acme-data-prod"
REGION = "europe-west1"
EMAIL = f"etl-worker@{PROJECT}.iam.gserviceaccount.com"
COMMAND = ("prefect", "worker", "start", "--pool", "etl", "--type", "cloud-run-v2")
TOKEN = "pnu_0123456789abcdefghijklmnopqrstuvwxyz"  # fake: what must never be a plain value

T_SERVICE = "gcp:projects/service:Service"
T_SECRET = "gcp:secretmanager/secret:Secret"
T_VERSION = "gcp:secretmanager/secretVersion:SecretVersion"
T_ACCESSOR = "gcp:secretmanager/secretIamMember:SecretIamMember"
T_POOL = "gcp:cloudrunv2/workerPool:WorkerPool"
T_KEY = "gcp:serviceaccount/key:Key"
T_ANCHOR = "test:index:WorkPool"


class WorkerMocks(pulumi.runtime.Mocks):
    """Echo inputs and add what Secret Manager and Cloud Run compute, shaped like theirs."""

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict]:
        inputs = args.inputs
        out: dict[str, Any] = dict(inputs)
        if args.typ == T_SERVICE:
            return f"{PROJECT}/{inputs['service']}", out
        if args.typ == T_SECRET:
            rid = f"projects/{PROJECT}/secrets/{inputs['secretId']}"
            out.update(name=f"projects/123456789012/secrets/{inputs['secretId']}")
            return rid, out
        if args.typ == T_VERSION:
            name = f"{inputs['secret']}/versions/1"
            out.update(name=name, version="1")
            return name, out
        if args.typ == T_POOL:
            rid = f"projects/{PROJECT}/locations/{inputs['location']}/workerPools/{inputs['name']}"
            out.update(uid="0000-fake", latestReadyRevision=f"{rid}/revisions/x-00001-abc")
            return rid, out
        return f"{args.name}-id", out

    def call(self, args: pulumi.runtime.MockCallArgs) -> dict:
        return {}


mon = monitor_fixture(WorkerMocks)
preview_mon = monitor_fixture(WorkerMocks, preview=True)


class Anchor(pulumi.CustomResource):
    """Stands in for the Prefect work pool the worker must wait for."""

    def __init__(self) -> None:
        super().__init__(T_ANCHOR, "work-pool", {})


def make_worker(
    *,
    secret_env: dict[str, Any] | None = None,
    services: tuple[str, ...] = ("secretmanager.googleapis.com",),
    count: int = 1,
    opts: pulumi.ResourceOptions | None = None,
) -> CloudRunWorker:
    secrets = {"PREFECT_API_KEY": pulumi.Output.secret(TOKEN)} if secret_env is None else secret_env
    return CloudRunWorker(
        "etl",
        CloudRunWorkerArgs(
            pool="ETL Pool_#1",
            project=PROJECT,
            region=REGION,
            worker_pool_id="etl-worker",
            service_account_email=pulumi.Output.from_input(EMAIL),
            image="prefecthq/prefect:3.8.8-python3.12",
            args=COMMAND,
            env={"PREFECT_API_URL": "https://api.example/api", "EXTRA_PIP_PACKAGES": "prefect-gcp"},
            secret_env=secrets,
            secret_ids={k: f"etl-worker-{k}" for k in secrets},
            count=count,
            services=services,
        ),
        opts,
    )


def after_all(worker: CloudRunWorker, mon, check):
    """The pool depends on every other child: once its outputs resolve, all are registered."""
    return check_when_resolved(mon, dict(worker.outputs), check)


def container(mon) -> dict[str, Any]:
    (only,) = mon.one(T_POOL).inputs["template"]["containers"]
    return only


EXPECTED_CHILDREN = {
    (T_SERVICE, "etl-api-secretmanager"),
    (T_SECRET, "etl-secret-prefect-api-key"),
    (T_VERSION, "etl-secret-prefect-api-key-version"),
    (T_ACCESSOR, "etl-secret-prefect-api-key-accessor"),
    (T_POOL, "etl-pool"),
}


@pulumi.runtime.test
def test_every_resource_type_name_and_parent(mon):
    worker = make_worker()

    def check(_):
        assert_component_tree(mon, TYPE_TOKEN, "etl", EXPECTED_CHILDREN)
        assert mon.of_type(T_KEY) == [], "a worker needs no service-account key"

    return after_all(worker, mon, check)


@pulumi.runtime.test
def test_the_worker_pool_runs_the_command_as_the_account(mon):
    worker = make_worker(count=3)

    def check(values):
        pool = mon.one(T_POOL)
        inputs = pool.inputs
        assert inputs["name"] == values["worker_pool_name"] == "etl-worker"
        assert inputs["location"] == REGION and inputs["project"] == PROJECT
        assert inputs["template"]["serviceAccount"] == EMAIL
        assert inputs["deletionProtection"] is False, "destroy must be able to delete it"
        assert inputs["scaling"] == {"scalingMode": "MANUAL", "manualInstanceCount": 3}
        assert inputs["labels"] == {"managed-by": "provision", "prefect-work-pool": "etl-pool_-1"}
        spec = container(mon)
        assert spec["image"] == "prefecthq/prefect:3.8.8-python3.12"
        # The command is the entrypoint's arguments: the image's entrypoint still runs.
        assert spec["args"] == list(COMMAND)
        assert "commands" not in spec
        assert spec["resources"] == {"limits": {"cpu": DEFAULT_CPU, "memory": DEFAULT_MEMORY}}
        assert values["worker_pool_id"] == (
            f"projects/{PROJECT}/locations/{REGION}/workerPools/etl-worker"
        )
        assert values["worker_secret_ids"] == ["etl-worker-PREFECT_API_KEY"]

    return after_all(worker, mon, check)


@pulumi.runtime.test
def test_the_credential_reaches_the_container_only_as_a_secret_reference(mon):
    worker = make_worker()

    def check(_):
        envs = {e["name"]: e for e in container(mon)["envs"]}
        assert envs["PREFECT_API_URL"] == {
            "name": "PREFECT_API_URL",
            "value": "https://api.example/api",
        }
        assert envs["EXTRA_PIP_PACKAGES"]["value"] == "prefect-gcp"
        secret = mon.one(T_SECRET)
        assert envs["PREFECT_API_KEY"] == {
            "name": "PREFECT_API_KEY",
            "valueSource": {
                # The short id (same project) and the version the stack made, not "latest".
                "secretKeyRef": {"secret": "etl-worker-PREFECT_API_KEY", "version": "1"}
            },
        }
        assert secret.inputs["secretId"] == "etl-worker-PREFECT_API_KEY"
        # No plain value anywhere in the worker pool holds the credential.
        assert TOKEN not in repr(mon.one(T_POOL).inputs)
        # The value is in the version, marked secret (ciphertext in the state).
        data = mon.one(T_VERSION).inputs["secretData"]
        assert rpc.is_rpc_secret(data) and rpc.unwrap_rpc_secret(data) == TOKEN
        assert mon.one(T_VERSION).inputs["secret"] == f"projects/{PROJECT}/secrets/" + (
            "etl-worker-PREFECT_API_KEY"
        )

    return after_all(worker, mon, check)


@pulumi.runtime.test
def test_the_secret_stays_in_the_region(mon):
    worker = make_worker()

    def check(_):
        replication = mon.one(T_SECRET).inputs["replication"]
        assert replication == {"userManaged": {"replicas": [{"location": REGION}]}}
        assert mon.one(T_SECRET).inputs["project"] == PROJECT

    return after_all(worker, mon, check)


@pulumi.runtime.test
def test_only_the_account_may_read_only_this_secret(mon):
    worker = make_worker()

    def check(_):
        grant = mon.one(T_ACCESSOR)
        assert grant.inputs["role"] == SECRET_ACCESSOR == "roles/secretmanager.secretAccessor"
        assert grant.inputs["member"] == f"serviceAccount:{EMAIL}"
        # On the secret's own policy, never the project's.
        assert grant.inputs["secretId"] == f"projects/{PROJECT}/secrets/etl-worker-PREFECT_API_KEY"
        assert grant.custom_timeouts.get("create")

    return after_all(worker, mon, check)


@pulumi.runtime.test
def test_the_worker_waits_for_the_work_pool_its_grants_and_apis(mon):
    anchor = Anchor()
    worker = make_worker(
        services=("run.googleapis.com", "secretmanager.googleapis.com"),
        opts=pulumi.ResourceOptions(depends_on=[anchor]),
    )

    def check(_):
        pool = mon.one(T_POOL)
        deps = set(pool.dependencies)
        assert mon.one(T_ANCHOR).urn in deps, "created after, so destroyed before, the work pool"
        assert mon.one(T_ACCESSOR).urn in deps, "its revision reads the secret at deploy time"
        assert {s.urn for s in mon.of_type(T_SERVICE)} <= deps
        assert mon.one(T_SERVICE, "etl-api-secretmanager").urn in mon.one(T_SECRET).dependencies
        assert mon.one(T_VERSION).urn in deps  # through the pinned version
        for child in (T_SECRET, T_VERSION, T_ACCESSOR):
            assert mon.one(T_ANCHOR).urn in mon.one(child).dependencies, child

    return after_all(worker, mon, check)


@pulumi.runtime.test
def test_an_open_server_needs_no_secret_store(mon):
    worker = make_worker(secret_env={}, services=())

    def check(values):
        assert mon.of_type(T_SECRET) == mon.of_type(T_VERSION) == mon.of_type(T_ACCESSOR) == []
        assert mon.of_type(T_SERVICE) == []
        assert [e["name"] for e in container(mon)["envs"]] == [
            "EXTRA_PIP_PACKAGES",
            "PREFECT_API_URL",
        ]
        assert values["worker_secret_ids"] == []

    return after_all(worker, mon, check)


@pulumi.runtime.test
def test_outputs_are_declared(mon):
    worker = make_worker()

    def check(_):
        assert list(worker.outputs) == list(CloudRunWorkerOutputs.__annotations__)

    return after_all(worker, mon, check)


@pulumi.runtime.test
def test_preview_registers_the_same_resources(preview_mon):
    worker = make_worker()

    def check(_):
        assert preview_mon.registered(besides=TYPE_TOKEN) == EXPECTED_CHILDREN

    return check_when_resolved(preview_mon, {"id": worker.outputs["worker_pool_id"]}, check)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"count": 0}, "count must be at least 1"),
        ({"secret_ids": {}}, "no secret id for PREFECT_API_KEY"),
    ],
)
def test_bad_args_are_refused(kwargs, message):
    args = {
        "pool": "etl",
        "project": PROJECT,
        "region": REGION,
        "worker_pool_id": "etl-worker",
        "service_account_email": EMAIL,
        "image": "prefecthq/prefect:3",
        "args": ("prefect",),
        "secret_env": {"PREFECT_API_KEY": "x"},
        "secret_ids": {"PREFECT_API_KEY": "etl-worker-PREFECT_API_KEY"},
        **kwargs,
    }
    with pytest.raises(ValueError, match=message):
        CloudRunWorker("x", CloudRunWorkerArgs(**args))
