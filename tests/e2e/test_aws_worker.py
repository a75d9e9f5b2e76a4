"""ECS pools with ``--with-worker``, end to end: the worker runs as an ECS service of the pool
as the pool's task role, and no long-lived AWS credential exists anywhere.

`provision` CLI → real pulumi engine → fake aws (moto) → a real Prefect server behind
``PREFECT_SERVER_API_AUTH_STRING``, so the worker has a Prefect credential to keep: the server's
auth string, which must end up in Secrets Manager and reach the worker only as a reference.
What exists in AWS is asserted with boto3 against the test's own account.
"""

from __future__ import annotations

import json
import signal
import time
from typing import Any

import httpx
import pytest

from tests.e2e import test_aws as keyed
from tests.e2e.conftest import Sandbox, wait_for
from tests.e2e.test_aws import REGION, UP, Aws, inventory
from tests.fakecloud.aws import SECRET, SERVICE
from tests.prefect_server import PROTECTED_AUTH

pytestmark = pytest.mark.e2e

# The ECS tests' fixtures: the session's moto server, a fresh account, a pool name of its own.
moto = keyed.moto
aws = keyed.aws
pool = keyed.pool

EXECUTION_POLICY = "arn:aws:iam::aws:policy/service-role/AmazonECSTaskExecutionRolePolicy"


@pytest.fixture
def protected(sandbox: Sandbox, aws: Aws, protected_prefect_server) -> str:
    """The sandbox pointed at the protected server (its URL and auth string, in every run);
    the auth string joins the secrets the leak scan looks for. Returns the API URL."""
    url = protected_prefect_server.api_url
    sandbox.env["PREFECT_API_URL"] = url
    sandbox.env["PREFECT_API_AUTH_STRING"] = PROTECTED_AUTH
    sandbox.secrets.add(PROTECTED_AUTH)
    return url


def prefect(url: str, path: str) -> dict[str, Any] | None:
    """GET from the protected server; None for a 404."""
    auth = httpx.BasicAuth(*PROTECTED_AUTH.split(":", 1))
    response = httpx.get(f"{url}{path}", params={"include_secrets": "true"}, auth=auth, timeout=15)
    return None if response.status_code == 404 else response.raise_for_status().json()


def block(url: str, pool: str) -> dict[str, Any] | None:
    return prefect(
        url, f"/block_types/slug/aws-credentials/block_documents/name/{pool}-aws-credentials"
    )


def work_pool(url: str, pool: str) -> dict[str, Any] | None:
    return prefect(url, f"/work_pools/{pool}")


def up(box: Sandbox, pool: str, *extra: str, expect: int | None = 0, **env: str):
    return box.run("up", pool, *UP, "--with-worker", *extra, "--yes", expect=expect, **env)


def credentials(aws: Aws) -> dict[str, list[str]]:
    """Every long-lived AWS credential in the account: IAM users and their access keys."""
    iam = aws.client("iam")
    users = [u["UserName"] for u in iam.list_users()["Users"]]
    keys = [
        k["AccessKeyId"]
        for user in users
        for k in iam.list_access_keys(UserName=user)["AccessKeyMetadata"]
    ]
    return {"users": users, "access_keys": keys}


def worker_inventory(aws: Aws, pool: str) -> dict[str, list[str]]:
    """What a worker adds to :func:`inventory`: services, active task definitions, secrets."""
    ecs, manager = aws.client("ecs"), aws.client("secretsmanager")
    services: list[dict[str, Any]] = []
    try:
        arns = ecs.list_services(cluster=f"{pool}-ecs")["serviceArns"]
    except ecs.exceptions.ClusterNotFoundException:
        arns = []  # the cluster is gone, and its services with it
    if arns:
        services = ecs.describe_services(cluster=f"{pool}-ecs", services=arns)["services"]
    return {
        **inventory(aws),
        "services": [s["serviceName"] for s in services if s["status"] != "INACTIVE"],
        "task_definitions": ecs.list_task_definitions(status="ACTIVE")["taskDefinitionArns"],
        "secrets": [s["Name"] for s in manager.list_secrets()["SecretList"]],
    }


def aws_holds(aws: Aws, pool: str, token: str) -> bool:
    """Whether AWS holds the worker's secret (``SECRET``) or service (``SERVICE``) yet."""
    if token == SECRET:
        return bool(aws.client("secretsmanager").list_secrets()["SecretList"])
    ecs = aws.client("ecs")
    try:
        return bool(ecs.list_services(cluster=f"{pool}-ecs")["serviceArns"])
    except ecs.exceptions.ClusterNotFoundException:
        return False


def the_service(aws: Aws, pool: str) -> dict[str, Any]:
    ecs = aws.client("ecs")
    (service,) = ecs.describe_services(cluster=f"{pool}-ecs", services=[f"{pool}-ecs-worker"])[
        "services"
    ]
    return service


# ---------------------------------------------------------------------------------- up


def test_the_worker_runs_in_ecs_as_the_pools_role_with_no_long_lived_credential(
    sandbox: Sandbox,
    aws: Aws,
    pool: str,
    protected: str,
):
    run = up(sandbox, pool)
    assert f"Pool '{pool}' is ready" in run.stdout
    assert "no long-lived credential" in run.stdout
    # The worker already runs: the next steps say where to watch it, not how to start one.
    steps = run.stdout.split("Next steps", 1)[1]
    assert "prefect worker start" not in steps
    assert f"aws logs tail /prefect/ecs/{pool} --log-stream-name-prefix worker" in steps

    # Zero IAM users, zero access keys: nothing long-lived in the account.
    assert credentials(aws) == {"users": [], "access_keys": []}

    iam, ecs, manager = aws.client("iam"), aws.client("ecs"), aws.client("secretsmanager")
    service = the_service(aws, pool)
    assert (service["status"], service["desiredCount"], service["launchType"]) == (
        "ACTIVE",
        1,
        "FARGATE",
    )
    # In the pool's cluster, subnets and security group, with a public IP: the stack's public
    # subnets have no NAT gateway.
    assert service["clusterArn"].endswith(f":cluster/{pool}-ecs")
    vpc = service["networkConfiguration"]["awsvpcConfiguration"]
    props = work_pool(protected, pool)["base_job_template"]["variables"]["properties"]
    flows = props["network_configuration"]["default"]
    assert sorted(vpc["subnets"]) == sorted(flows["subnets"])
    assert vpc["securityGroups"] == flows["securityGroups"] and vpc["assignPublicIp"] == "ENABLED"

    # The task definition: the pool's worker role, its own execution role, the container.
    definition = ecs.describe_task_definition(taskDefinition=service["taskDefinition"])[
        "taskDefinition"
    ]
    role = iam.get_role(RoleName=f"{pool}-ecs-worker")["Role"]
    execution = iam.get_role(RoleName=f"{pool}-ecs-worker-execution")["Role"]
    assert definition["taskRoleArn"] == role["Arn"]
    assert definition["executionRoleArn"] == execution["Arn"]
    assert (definition["cpu"], definition["memory"]) == ("1024", "2048")
    assert definition["requiresCompatibilities"] == ["FARGATE"]
    (container,) = definition["containerDefinitions"]
    assert container["image"] == "prefecthq/prefect:3.8.8-python3.12"  # the server's version
    assert container["command"] == ["prefect", "worker", "start", "--pool", pool, "--type", "ecs"]
    env = {e["name"]: e["value"] for e in container["environment"]}
    assert env == {
        "PREFECT_API_URL": protected,
        "EXTRA_PIP_PACKAGES": "prefect-aws",
        "PREFECT_INTEGRATIONS_AWS_ECS_OBSERVER_SQS_QUEUE_NAME": f"{pool}-ecs-events",
        "PREFECT_INTEGRATIONS_AWS_ECS_OBSERVER_SQS_QUEUE_REGION": REGION,
        "AWS_DEFAULT_REGION": REGION,
    }
    assert PROTECTED_AUTH not in json.dumps(definition)
    assert container["logConfiguration"]["options"] == {
        "awslogs-group": f"/prefect/ecs/{pool}",
        "awslogs-region": REGION,
        "awslogs-stream-prefix": "worker",
    }

    # The credential: a reference to a secret whose value is the server's auth string.
    (reference,) = container["secrets"]
    assert reference["name"] == "PREFECT_API_AUTH_STRING"
    secret = manager.describe_secret(SecretId=reference["valueFrom"])
    assert secret["Name"] == f"prefect/ecs/{pool}/PREFECT_API_AUTH_STRING"
    assert manager.get_secret_value(SecretId=secret["ARN"])["SecretString"] == PROTECTED_AUTH

    # Grants: the worker policy on the task role, the secret to the worker's execution role only.
    (attached,) = iam.list_attached_role_policies(RoleName=role["RoleName"])["AttachedPolicies"]
    assert attached["PolicyName"] == f"{pool}-ecs-worker"
    document = iam.get_policy_version(
        PolicyArn=attached["PolicyArn"],
        VersionId=iam.get_policy(PolicyArn=attached["PolicyArn"])["Policy"]["DefaultVersionId"],
    )["PolicyVersion"]["Document"]
    sids = {s["Sid"]: s for s in document["Statement"]}
    assert sids["ConsumeTaskStateEvents"]["Resource"].endswith(f":{pool}-ecs-events")
    assert role["AssumeRolePolicyDocument"]["Statement"][0]["Condition"] == {
        "StringEquals": {"aws:SourceAccount": aws.account}
    }
    managed = iam.list_attached_role_policies(RoleName=execution["RoleName"])["AttachedPolicies"]
    assert [p["PolicyArn"] for p in managed] == [EXECUTION_POLICY]
    read = iam.get_role_policy(RoleName=execution["RoleName"], PolicyName="read-worker-secrets")
    assert read["PolicyDocument"]["Statement"] == [
        {
            "Sid": "ReadWorkerSecrets",
            "Effect": "Allow",
            "Action": ["secretsmanager:GetSecretValue"],
            "Resource": [secret["ARN"]],
        }
    ]
    # The flows' execution role, which every job names, cannot read it.
    flows_execution = f"{pool}-ecs-execution"
    assert iam.list_role_policies(RoleName=flows_execution)["PolicyNames"] == ["create-log-groups"]

    # Prefect: the block holds the region and nothing secret; the work pool references it.
    found = block(protected, pool)
    assert found is not None and found["data"] == {"region_name": REGION}
    assert props["aws_credentials"]["default"] == {"$ref": {"block_document_id": found["id"]}}

    shown = json.loads(sandbox.run("show", pool, "--json").stdout)
    assert shown["outputs"]["worker_service_name"] == f"{pool}-ecs-worker"
    assert shown["outputs"]["worker_secret_arns"] == [secret["ARN"]]
    assert "access_key_id" not in shown["outputs"]


def test_rerun_changes_nothing_then_destroy_stops_the_worker_before_the_work_pool(
    sandbox: Sandbox,
    aws: Aws,
    pool: str,
    protected: str,
):
    up(sandbox, pool)
    cloud = sandbox.cloud
    creates, updates = len(cloud.calls("create")), len(cloud.calls("update"))
    block_id = block(protected, pool)["id"]

    run = sandbox.run("up", pool, "--yes")  # the saved options: --with-worker included
    assert "0 created, 0 updated, 0 replaced, 0 deleted" in run.stdout
    assert (len(cloud.calls("create")), len(cloud.calls("update"))) == (creates, updates)
    assert block(protected, pool)["id"] == block_id
    sandbox.run("preview", pool, "--expect-no-changes")
    assert credentials(aws) == {"users": [], "access_keys": []}

    # Destroy: the service's delete is slowed down; the work pool must outlive it.
    args = ["destroy", pool, "--yes"]
    proc = sandbox.start(*args, FAKECLOUD_DELAY_MS_DELETE="1500")
    try:
        wait_for(lambda: cloud.calls("delete", SERVICE, phase="begin"), timeout=180)
        while not cloud.calls("delete", SERVICE):  # until the service's delete has answered
            assert work_pool(protected, pool) is not None, "the work pool went before the worker"
            time.sleep(0.1)
    except BaseException:
        proc.kill()
        raise
    done = sandbox.finish(proc, args)
    assert done.code == 0, done.output
    # And the engine's own account: the worker's service is deleted before the work pool.
    finished = [line for line in done.stdout.splitlines() if line.strip().startswith("done")]

    def when(needle: str) -> int:
        (index,) = [i for i, line in enumerate(finished) if needle in line]
        return index

    assert when(f"{SERVICE} {pool}-worker-service") < when("prefect:WorkPool work-pool")
    assert work_pool(protected, pool) is None and block(protected, pool) is None
    left = worker_inventory(aws, pool)
    assert left == {key: [] for key in left}


def test_the_worker_count_scales_the_service_in_place(
    sandbox: Sandbox,
    aws: Aws,
    pool: str,
    protected: str,
):
    up(sandbox, pool)
    arn = the_service(aws, pool)["serviceArn"]
    run = sandbox.run("up", pool, "--worker-count", "2", "--yes")
    assert "0 created, 1 updated, 0 replaced, 0 deleted" in run.stdout
    service = the_service(aws, pool)
    assert (service["serviceArn"], service["desiredCount"]) == (arn, 2)
    sandbox.run("preview", pool, "--expect-no-changes")


def test_a_keyed_pool_turns_keyless_and_back(
    sandbox: Sandbox,
    aws: Aws,
    pool: str,
    protected: str,
):
    # Today's pool: an IAM user with one access key in the block.
    sandbox.run("up", pool, *UP, "--yes")
    keyed = block(protected, pool)
    sandbox.secrets.add(keyed["data"]["aws_secret_access_key"])
    assert credentials(aws)["users"] == [f"{pool}-ecs-worker"]

    run = sandbox.run("up", pool, "--with-worker", "--yes")
    assert f"Pool '{pool}' is ready" in run.stdout
    assert credentials(aws) == {"users": [], "access_keys": []}
    assert block(protected, pool)["data"] == {"region_name": REGION}
    assert the_service(aws, pool)["status"] == "ACTIVE"
    sandbox.run("preview", pool, "--expect-no-changes")

    # And back: the worker goes, a user and its one key come back into the block.
    sandbox.run("up", pool, "--without-worker", "--yes")
    found = credentials(aws)
    assert found["users"] == [f"{pool}-ecs-worker"] and len(found["access_keys"]) == 1
    data = block(protected, pool)["data"]
    sandbox.secrets.add(data["aws_secret_access_key"])
    assert data["aws_access_key_id"] == found["access_keys"][0]
    gone = worker_inventory(aws, pool)
    assert (gone["services"], gone["secrets"], gone["task_definitions"]) == ([], [], [])
    sandbox.run("destroy", pool, "--yes")
    left = worker_inventory(aws, pool)
    assert left == {key: [] for key in left}


def test_an_open_server_needs_no_secret(
    sandbox: Sandbox,
    aws: Aws,
    pool: str,
):
    # The session's server asks for no credential: no secret, no secret store, no grant.
    up(sandbox, pool)
    (container,) = aws.client("ecs").describe_task_definition(
        taskDefinition=the_service(aws, pool)["taskDefinition"]
    )["taskDefinition"]["containerDefinitions"]
    assert "secrets" not in container or container["secrets"] == []
    assert aws.client("secretsmanager").list_secrets()["SecretList"] == []
    iam = aws.client("iam")
    assert iam.list_role_policies(RoleName=f"{pool}-ecs-worker-execution")["PolicyNames"] == []
    assert credentials(aws) == {"users": [], "access_keys": []}
    sandbox.run("destroy", pool, "--yes")


@pytest.mark.parametrize("token", [SECRET, SERVICE])
def test_sigkill_after_aws_made_the_workers_secret_or_service_adopts_it_on_rerun(
    sandbox: Sandbox,
    aws: Aws,
    pool: str,
    protected: str,
    token: str,
):
    # Both fail on a second create of their name (the secret: ResourceExistsException; the
    # service: "Creation of service was not idempotent"), so the rerun reads back what the
    # killed run made: the secret by its name, the service by the ARN its cluster fixes.
    # The kill comes once AWS holds the object and before the engine hears back (each create
    # answers 1.5 s after its write).
    args = ["up", pool, *UP, "--with-worker", "--yes"]
    proc = sandbox.start(*args, FAKECLOUD_DELAY_AFTER_MS_CREATE="1500")
    try:
        # The fake's call log (a local file) first, then the one AWS call that shows the
        # object: a whole inventory is some twenty calls, which on a loaded machine took longer
        # than the 1.5 s window, and the kill then came after the engine had heard back (CI).
        wait_for(lambda: sandbox.cloud.calls("create", token, phase="begin"), timeout=240)
        wait_for(lambda: aws_holds(aws, pool, token), timeout=30, interval=0.02)
    finally:
        killed = sandbox.kill(proc, args)
    assert killed.code == -signal.SIGKILL, killed.output

    run = sandbox.run("up", pool, "--yes", timeout=300)
    assert "Adopting" in run.stdout and f"Pool '{pool}' is ready" in run.stdout
    assert len(sandbox.cloud.calls("create", token, phase="begin")) == 1, "created once, ever"
    left = worker_inventory(aws, pool)
    assert left["secrets"] == [f"prefect/ecs/{pool}/PREFECT_API_AUTH_STRING"]
    assert left["services"] == [f"{pool}-ecs-worker"]
    assert credentials(aws) == {"users": [], "access_keys": []}
    sandbox.run("preview", pool, "--expect-no-changes")
    sandbox.run("destroy", pool, "--yes")
    left = worker_inventory(aws, pool)
    assert left == {key: [] for key in left}
