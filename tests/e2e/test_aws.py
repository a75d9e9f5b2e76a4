"""ECS pools end to end: `provision` CLI → real pulumi engine → fake aws (moto) → real Prefect.

One moto server serves the module; every test gets a fresh AWS account of its own (moto keeps
one backend per account id), so tests never see each other's objects and need no reset. What
exists in AWS is asserted with boto3 against that account.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.contract import PREVIEW_KEYS
from tests.e2e.conftest import (
    Expected,
    Sandbox,
    operate_from_another_machine,
    share_backend,
)
from tests.fakecloud.moto_server import (
    ACCOUNT_ENV,
    CREDENTIALS,
    ENDPOINT_ENV,
    MotoServer,
    client,
    new_account,
)

pytestmark = pytest.mark.e2e

REGION = "eu-west-1"
UP = ["--type", "ecs", "--region", REGION]
KEY = "aws:iam/accessKey:AccessKey"
CLUSTER = "aws:ecs/cluster:Cluster"
EXECUTION_POLICY = "arn:aws:iam::aws:policy/service-role/AmazonECSTaskExecutionRolePolicy"
ECS_SERVICE_ROLE = "AWSServiceRoleForECS"  # the account's, made by its first cluster


@pytest.fixture(scope="module")
def moto(moto_server: MotoServer) -> MotoServer:
    """The session's moto server (tests/shared_backend.py); tests are isolated by account."""
    return moto_server


@dataclass
class Aws:
    """The test's own AWS account on the moto server."""

    endpoint: str
    account: str

    def client(self, service: str, region: str = REGION) -> Any:
        """A boto3 client in this account."""
        return client(service, self.endpoint, self.account, region)


@pytest.fixture
def aws(sandbox: Sandbox, moto: MotoServer, tmp_path: Path) -> Aws:
    """A fresh account, and the sandbox's AWS environment pointing at it.

    The AWS CLI files are the sandbox's own (empty), so the machine's profiles and regions
    never leak in. The secret key is random and joins the secrets checked for leaks.
    """
    account = new_account()
    aws_dir = tmp_path / "aws"
    aws_dir.mkdir()
    (aws_dir / "config").write_text("")
    (aws_dir / "credentials").write_text("")
    for name in ("AWS_PROFILE", "AWS_REGION", "AWS_DEFAULT_REGION", "AWS_ENDPOINT_URL"):
        sandbox.env.pop(name, None)
    secret = secrets.token_urlsafe(30)
    sandbox.env.update(
        {
            **CREDENTIALS,
            "AWS_SECRET_ACCESS_KEY": secret,
            "AWS_CONFIG_FILE": str(aws_dir / "config"),
            "AWS_SHARED_CREDENTIALS_FILE": str(aws_dir / "credentials"),
            ENDPOINT_ENV: moto.endpoint,
            ACCOUNT_ENV: account,
        }
    )
    sandbox.secrets.add(secret)
    return Aws(moto.endpoint, account)


OPERATOR = "provision-operator"
"""The IAM user whose key ``operator`` gives the sandbox (left out of :func:`inventory`)."""


@pytest.fixture
def operator(sandbox: Sandbox, aws: Aws) -> str:
    """The sandbox signed in as an IAM user of the test's account, and pointed at moto with
    the SDKs' own ``AWS_ENDPOINT_URL``: for the tool's own AWS calls (boto3, which cannot send
    moto's account header; moto then finds the account from the access key). The fake provider
    still sends the header. Returns the user's name."""
    iam = aws.client("iam")
    iam.create_user(UserName=OPERATOR)
    key = iam.create_access_key(UserName=OPERATOR)["AccessKey"]
    sandbox.env.pop("AWS_SESSION_TOKEN", None)
    sandbox.env.update(
        {
            "AWS_ACCESS_KEY_ID": key["AccessKeyId"],
            "AWS_SECRET_ACCESS_KEY": key["SecretAccessKey"],
            "AWS_ENDPOINT_URL": aws.endpoint,
        }
    )
    sandbox.secrets.add(key["SecretAccessKey"])
    return OPERATOR


@pytest.fixture
def pool() -> str:
    """A pool name of its own: every test shares the session's Prefect server."""
    return "etl" + secrets.token_hex(3)


def block(box: Sandbox, pool: str) -> dict[str, Any] | None:
    """The pool's aws-credentials block, with its secrets (remembered for the leak check)."""
    found = box.block("aws-credentials", f"{pool}-aws-credentials")
    secret = ((found or {}).get("data") or {}).get("aws_secret_access_key")
    if secret:
        box.secrets.add(secret)
    return found


def up(box: Sandbox, pool: str, *extra: str, expect: int | None = 0, **env: str):
    run = box.run("up", pool, *UP, *extra, "--yes", expect=expect, **env)
    if run.code == 0:
        block(box, pool)
    return run


def keys(aws: Aws, pool: str) -> list[str]:
    """Access key ids of the pool's worker user."""
    iam = aws.client("iam")
    try:
        found = iam.list_access_keys(UserName=f"{pool}-ecs-worker")["AccessKeyMetadata"]
    except iam.exceptions.NoSuchEntityException:
        return []
    return [k["AccessKeyId"] for k in found]


def inventory(aws: Aws) -> dict[str, list[str]]:
    """Everything in the account that a stack can make (AWS's own defaults left out)."""
    iam, ec2 = aws.client("iam"), aws.client("ec2")
    ecs, logs, ecr = aws.client("ecs"), aws.client("logs"), aws.client("ecr")
    sqs, events = aws.client("sqs"), aws.client("events")
    clusters = ecs.describe_clusters(clusters=ecs.list_clusters()["clusterArns"])["clusters"]
    vpcs = [v for v in ec2.describe_vpcs()["Vpcs"] if not v.get("IsDefault")]
    mine = [v["VpcId"] for v in vpcs]
    by_vpc = [{"Name": "vpc-id", "Values": mine}] if mine else None
    return {
        "clusters": [c["clusterName"] for c in clusters if c["status"] == "ACTIVE"],
        "roles": [
            r["RoleName"] for r in iam.list_roles()["Roles"] if r["RoleName"] != ECS_SERVICE_ROLE
        ],
        "users": [u["UserName"] for u in iam.list_users()["Users"] if u["UserName"] != OPERATOR],
        "policies": [p["PolicyName"] for p in iam.list_policies(Scope="Local")["Policies"]],
        "vpcs": mine,
        "subnets": [s["SubnetId"] for s in ec2.describe_subnets(Filters=by_vpc)["Subnets"]]
        if by_vpc
        else [],
        "internet_gateways": [
            g["InternetGatewayId"]
            for g in ec2.describe_internet_gateways()["InternetGateways"]
            if not any(a["VpcId"] not in mine for a in g.get("Attachments") or []) and g.get("Tags")
        ],
        "security_groups": [
            g["GroupName"]
            for g in ec2.describe_security_groups()["SecurityGroups"]
            if g["GroupName"] != "default"
        ],
        "log_groups": [g["logGroupName"] for g in logs.describe_log_groups()["logGroups"]],
        "repositories": [r["repositoryName"] for r in ecr.describe_repositories()["repositories"]],
        "queues": sqs.list_queues().get("QueueUrls", []),
        "rules": [r["Name"] for r in events.list_rules()["Rules"]],
    }


# ---------------------------------------------------------------------------------- up


def test_up_creates_the_cloud_side_and_registers_it_in_prefect(
    sandbox: Sandbox, aws: Aws, pool: str
):
    run = up(sandbox, pool)
    assert f"Pool '{pool}' is ready" in run.stdout
    host = f"{aws.account}.dkr.ecr.{REGION}.amazonaws.com"
    login = f"aws ecr get-login-password --region {REGION} | docker login --username AWS"
    assert f"{login} --password-stdin {host}" in run.stdout
    queue = f"export PREFECT_INTEGRATIONS_AWS_ECS_OBSERVER_SQS_QUEUE_NAME={pool}-ecs-events"
    assert queue in run.stdout.splitlines()
    assert f"prefect worker start --pool {pool}" in run.stdout

    iam, ec2, ecs = aws.client("iam"), aws.client("ec2"), aws.client("ecs")
    # ECS cluster, tagged.
    (cluster,) = ecs.describe_clusters(clusters=[f"{pool}-ecs"], include=["TAGS"])["clusters"]
    assert cluster["status"] == "ACTIVE"
    assert {"key": "PrefectWorkPool", "value": pool} in cluster["tags"]
    # Roles and their policies.
    execution = f"{pool}-ecs-execution"
    attached = iam.list_attached_role_policies(RoleName=execution)["AttachedPolicies"]
    assert [p["PolicyArn"] for p in attached] == [EXECUTION_POLICY]
    assert iam.list_role_policies(RoleName=execution)["PolicyNames"] == ["create-log-groups"]
    trust = iam.get_role(RoleName=execution)["Role"]["AssumeRolePolicyDocument"]
    assert trust["Statement"][0]["Principal"] == {"Service": "ecs-tasks.amazonaws.com"}
    # The worker user, its one policy and exactly one access key.
    user = f"{pool}-ecs-worker"
    (policy,) = iam.list_attached_user_policies(UserName=user)["AttachedPolicies"]
    assert policy["PolicyName"] == f"{pool}-ecs-worker"
    assert len(keys(aws, pool)) == 1
    # Network: a VPC with subnets in three zones, an internet gateway, a security group.
    (vpc,) = [v for v in ec2.describe_vpcs()["Vpcs"] if not v["IsDefault"]]
    assert vpc["CidrBlock"] == "10.42.0.0/16"
    by_vpc = [{"Name": "vpc-id", "Values": [vpc["VpcId"]]}]
    subnets = ec2.describe_subnets(Filters=by_vpc)["Subnets"]
    assert sorted(s["AvailabilityZone"] for s in subnets) == [f"{REGION}{z}" for z in "abc"]
    assert all(s["MapPublicIpOnLaunch"] for s in subnets)
    gateways = ec2.describe_internet_gateways(
        Filters=[{"Name": "attachment.vpc-id", "Values": [vpc["VpcId"]]}]
    )["InternetGateways"]
    assert len(gateways) == 1
    (group,) = ec2.describe_security_groups(
        Filters=[*by_vpc, {"Name": "tag:Name", "Values": [f"{pool}-ecs-tasks"]}]
    )["SecurityGroups"]
    assert group["GroupName"].startswith(f"{pool}-ecs-tasks-")  # a prefix: see the stack
    assert group["IpPermissions"] == []
    # Logs with retention, ECR with scan-on-push and a lifecycle policy.
    (logs,) = aws.client("logs").describe_log_groups(logGroupNamePrefix="/prefect/ecs/")[
        "logGroups"
    ]
    assert logs["logGroupName"] == f"/prefect/ecs/{pool}" and logs["retentionInDays"] == 30
    ecr = aws.client("ecr")
    (repo,) = ecr.describe_repositories()["repositories"]
    assert repo["repositoryName"] == f"{pool}-images"
    assert repo["imageScanningConfiguration"] == {"scanOnPush": True}
    lifecycle = json.loads(
        ecr.get_lifecycle_policy(repositoryName=repo["repositoryName"])["lifecyclePolicyText"]
    )
    assert lifecycle["rules"][0]["selection"]["countNumber"] == 30
    # Task-state events: rule → queue (with its dead letters).
    events = aws.client("events")
    rule = events.describe_rule(Name=f"{pool}-ecs-task-events")
    assert cluster["clusterArn"] in rule["EventPattern"]
    (target,) = events.list_targets_by_rule(Rule=rule["Name"])["Targets"]
    sqs = aws.client("sqs")
    url = sqs.get_queue_url(QueueName=f"{pool}-ecs-events")["QueueUrl"]
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    assert target["Arn"] == attributes["QueueArn"]
    assert f"{pool}-ecs-events-dlq" in attributes["RedrivePolicy"]
    assert rule["Arn"] in attributes["Policy"]

    # Prefect: the block holds the key the stack made; the pool's $ref resolves to it.
    found = block(sandbox, pool)
    assert found is not None
    assert found["data"]["aws_access_key_id"] == keys(aws, pool)[0]
    assert found["data"]["region_name"] == REGION
    work_pool = sandbox.work_pool(pool)
    assert work_pool is not None and work_pool["type"] == "ecs"
    props = work_pool["base_job_template"]["variables"]["properties"]
    assert props["aws_credentials"]["default"] == {"$ref": {"block_document_id": found["id"]}}
    assert props["cluster"]["default"] == cluster["clusterArn"]
    assert props["vpc_id"]["default"] == vpc["VpcId"]
    network = props["network_configuration"]["default"]
    assert sorted(network["subnets"]) == sorted(s["SubnetId"] for s in subnets)
    assert network["securityGroups"] == [group["GroupId"]]
    assert network["assignPublicIp"] == "ENABLED"
    execution_arn = iam.get_role(RoleName=execution)["Role"]["Arn"]
    assert props["execution_role_arn"]["default"] == execution_arn


def test_rerun_changes_nothing_and_creates_no_credential(sandbox: Sandbox, aws: Aws, pool: str):
    up(sandbox, pool)
    key_ids = keys(aws, pool)
    block_id = block(sandbox, pool)["id"]
    creates_before = len(sandbox.cloud.calls("create"))
    zones = "aws:index/getAvailabilityZones:getAvailabilityZones"
    assert len(sandbox.cloud.calls("invoke", zones)) == 1

    run = sandbox.run("up", pool, "--yes")  # saved options: the pool name is enough
    assert "0 created, 0 updated, 0 replaced, 0 deleted" in run.stdout
    assert len(sandbox.cloud.calls("create")) == creates_before
    # The zones the first run chose come back from the state: the account is not asked again.
    assert len(sandbox.cloud.calls("invoke", zones)) == 1
    assert keys(aws, pool) == key_ids
    assert block(sandbox, pool)["id"] == block_id

    sandbox.run("preview", pool, "--expect-no-changes")
    plan = json.loads(sandbox.run("preview", pool, "--json", "--expect-no-changes").stdout)
    assert plan["changes"]["create"] == plan["changes"]["update"] == 0
    assert [p["op"] for p in plan["prefect"]] == ["same", "same"]

    # Drift: a refresh reads every resource back from AWS; only the edited one is repaired.
    logs = aws.client("logs")
    logs.put_retention_policy(logGroupName=f"/prefect/ecs/{pool}", retentionInDays=7)
    run = sandbox.run("up", pool, "--refresh", "--yes")
    assert "0 created, 1 updated, 0 replaced, 0 deleted" in run.stdout
    (group,) = logs.describe_log_groups(logGroupNamePrefix=f"/prefect/ecs/{pool}")["logGroups"]
    assert group["retentionInDays"] == 30
    assert keys(aws, pool) == key_ids
    sandbox.run("up", pool, "--refresh", "--yes")
    sandbox.run("preview", pool, "--expect-no-changes")


def test_an_option_change_shows_in_preview(sandbox: Sandbox, aws: Aws, pool: str):
    up(sandbox, pool)
    run = sandbox.run(
        "preview", pool, "--log-retention-days", "60", "--json", "--expect-no-changes", expect=3
    )
    plan = json.loads(run.stdout)
    assert set(plan) == PREVIEW_KEYS
    assert plan["offline"] is False and plan["stack"] == pool and plan["type"] == "ecs"
    changed = [r for r in plan["resources"] if r["op"] != "same"]
    assert [(r["type"], r["op"]) for r in changed] == [
        ("aws:cloudwatch/logGroup:LogGroup", "update")
    ]
    assert changed[0]["inputs"]["retentionInDays"] == 60
    assert plan["changes"]["update"] == 1 and plan["changes"]["create"] == 0
    # The preview changed nothing, in AWS or in the saved options.
    sandbox.run("preview", pool, "--expect-no-changes")

    run = sandbox.run("up", pool, "--log-retention-days", "60", "--yes")
    assert "0 created, 1 updated, 0 replaced, 0 deleted" in run.stdout
    (group,) = aws.client("logs").describe_log_groups(logGroupNamePrefix="/prefect/ecs/")[
        "logGroups"
    ]
    assert group["retentionInDays"] == 60


def test_destroy_removes_everything_the_tool_made(sandbox: Sandbox, aws: Aws, pool: str):
    up(sandbox, pool)
    assert inventory(aws)["users"] == [f"{pool}-ecs-worker"]
    sandbox.run("destroy", pool, "--yes")
    assert inventory(aws) == {key: [] for key in inventory(aws)}
    assert block(sandbox, pool) is None
    assert sandbox.work_pool(pool) is None
    listed = json.loads(sandbox.run("list", "--json").stdout)
    assert pool not in [p["name"] for p in listed]


def test_a_provider_failure_names_the_resource_and_a_rerun_converges(
    sandbox: Sandbox, aws: Aws, pool: str
):
    fault = "create:aws:iam/policy:Policy@once"
    run = up(sandbox, pool, expect=1, FAKECLOUD_FAULTS=fault)
    assert "aws:iam/policy:Policy" in run.stderr and f"{pool}-worker-policy" in run.stderr
    assert len(run.stderr.strip().splitlines()) == 1
    # Partial state: what came before the policy exists; the key, which comes after, does not.
    assert inventory(aws)["clusters"] == [f"{pool}-ecs"]
    assert inventory(aws)["policies"] == []
    assert keys(aws, pool) == []
    assert sandbox.work_pool(pool) is None  # nothing half-written in Prefect
    shown = json.loads(sandbox.run("show", pool, "--json").stdout)
    assert shown["outputs"] == {} or "access_key_id" not in shown["outputs"]

    sandbox.run("up", pool, "--yes")
    block(sandbox, pool)
    assert len(keys(aws, pool)) == 1
    assert inventory(aws)["policies"] == [f"{pool}-ecs-worker"]
    assert sandbox.work_pool(pool) is not None


def test_iam_propagation_errors_are_retried(sandbox: Sandbox, aws: Aws, pool: str):
    # The account's first cluster creates ECS's service-linked role; until it propagates,
    # CreateCluster fails, and so do attachments and keys for a role or user just made.
    run = up(sandbox, pool, FAKECLOUD_AWS_PROPAGATION_MS="1500")
    assert "propagating" in run.stdout
    assert len(keys(aws, pool)) == 1
    assert any(
        "Unable to assume the service linked role" in (c.get("error") or "")
        for c in sandbox.cloud.calls("create", CLUSTER)
    )


def test_missing_credentials_are_one_clear_line(sandbox: Sandbox, aws: Aws, pool: str):
    run = up(sandbox, pool, expect=1, FAKECLOUD_AWS_NO_CREDENTIALS="1")
    assert "No usable AWS credentials" in run.stderr
    assert "aws configure" in run.stderr and "Traceback" not in run.output
    assert inventory(aws) == {key: [] for key in inventory(aws)}


def test_sigkill_while_the_key_is_being_created_is_recovered_by_rerunning(
    sandbox: Sandbox, aws: Aws, pool: str, operator: str
):
    sandbox.kill_while_creating(KEY, "up", pool, *UP, "--yes", after_write=False)

    run = sandbox.run("up", pool, "--yes", timeout=300)
    block(sandbox, pool)
    assert f"Pool '{pool}' is ready" in run.stdout
    # The rerun asked IAM for the user's keys: none was made, so none is deleted.
    assert (
        f"Interrupted while creating an access key of IAM user {pool}-ecs-worker: IAM has none "
        "the state does not track." in run.stdout
    )
    assert len(keys(aws, pool)) == 1
    assert block(sandbox, pool)["data"]["aws_access_key_id"] == keys(aws, pool)[0]
    sandbox.run("preview", pool, "--expect-no-changes")


def test_sigkill_after_aws_made_the_key_deletes_the_untracked_copy_on_rerun(
    sandbox: Sandbox, aws: Aws, pool: str, operator: str
):
    # The killed run never hears CreateAccessKey's answer, so the key AWS made is unknown to
    # the state, and its secret (returned only then) is lost: it cannot be adopted. The rerun
    # deletes it before making the pool's key, so the user ends with one.
    sandbox.kill_while_creating(KEY, "up", pool, *UP, "--yes", after_write=True)
    (orphan,) = keys(aws, pool)

    run = sandbox.run("up", pool, "--yes", timeout=300)
    found = block(sandbox, pool)
    assert f"Pool '{pool}' is ready" in run.stdout
    assert f"Deleted access key {orphan} of IAM user {pool}-ecs-worker" in run.stdout
    assert keys(aws, pool) == [found["data"]["aws_access_key_id"]] != [orphan]
    tracked = json.loads(sandbox.run("show", pool, "--json").stdout)
    assert tracked["outputs"]["access_key_id"] == found["data"]["aws_access_key_id"]
    sandbox.run("preview", pool, "--expect-no-changes")

    sandbox.run("destroy", pool, "--yes")
    assert inventory(aws) == {key: [] for key in inventory(aws)}


def test_an_existing_vpc_and_subnets_are_used_as_they_are(sandbox: Sandbox, aws: Aws, pool: str):
    ec2 = aws.client("ec2")
    vpc = ec2.create_vpc(CidrBlock="10.9.0.0/16")["Vpc"]["VpcId"]
    subnets = [
        ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.9.{i}.0/24", AvailabilityZone=f"{REGION}{z}")[
            "Subnet"
        ]["SubnetId"]
        for i, z in enumerate("ab")
    ]
    before = inventory(aws)

    s3_read = "arn:aws:iam::aws:policy/AmazonS3ReadOnlyAccess"
    up(
        sandbox,
        pool,
        *("--vpc-id", vpc, "--subnet-ids", ",".join(subnets)),
        *("--task-role-policy-arn", s3_read),
    )
    after = inventory(aws)
    for network in ("vpcs", "subnets", "internet_gateways", "security_groups"):
        assert after[network] == before[network], network
    types = {c["type"] for c in sandbox.cloud.calls("create")}
    assert not any(t.startswith("aws:ec2/") for t in types)
    props = sandbox.work_pool(pool)["base_job_template"]["variables"]["properties"]
    assert props["vpc_id"]["default"] == vpc
    network = props["network_configuration"]["default"]
    assert network["subnets"] == subnets and network["assignPublicIp"] == "ENABLED"
    # The task role exists only because a policy was given, and holds exactly that one.
    iam = aws.client("iam")
    task_role = iam.get_role(RoleName=f"{pool}-ecs-task")["Role"]
    attached = iam.list_attached_role_policies(RoleName=task_role["RoleName"])
    assert [p["PolicyArn"] for p in attached["AttachedPolicies"]] == [s3_read]
    assert props["task_role_arn"]["default"] == task_role["Arn"]

    sandbox.run("destroy", pool, "--yes")  # the network is not the tool's to delete
    assert inventory(aws)["subnets"] == before["subnets"]


def test_the_work_pool_never_gets_plan_placeholders(sandbox: Sandbox, aws: Aws, pool: str):
    ec2 = aws.client("ec2")
    vpc = ec2.create_vpc(CidrBlock="10.9.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.9.0.0/24")["Subnet"]["SubnetId"]
    up(sandbox, pool, "--vpc-id", vpc, "--subnet-ids", subnet)
    props = sandbox.work_pool(pool)["base_job_template"]["variables"]["properties"]
    defaults = {key: value.get("default") for key, value in props.items()}
    assert "<created on up>" not in json.dumps(defaults)
    # No task role was asked for, and ECS rejects a security group that does not exist.
    assert defaults["task_role_arn"] is None
    assert "securityGroups" not in defaults["network_configuration"]


@pytest.mark.parametrize(
    ("flags", "words"),
    [
        (["--vpc-id", "vpc-NOT-HEX", "--subnet-ids", "subnet-0123abcd"], "vpc-NOT-HEX"),
        (["--subnet-ids", "subnet-0123abcd"], "--vpc-id"),
        (["--vpc-cidr", "10.0.0.0/33"], "10.0.0.0/33"),
        (["--region", "mars-north-1"], "mars-north-1"),
    ],
    ids=["malformed-vpc-id", "subnets-without-vpc", "bad-cidr", "unknown-region"],
)
def test_bad_inputs_fail_before_anything_is_written(
    sandbox: Sandbox, aws: Aws, pool: str, flags: list[str], words: str
):
    run = sandbox.run("up", pool, *UP, *flags, "--yes", expect=2)
    assert words in run.stderr
    assert len(run.stderr.strip().splitlines()) == 1, run.stderr
    assert sandbox.cloud.calls(phase=None, include_preview=True) == []
    assert not (sandbox.home / "stacks" / pool).exists()
    assert sandbox.work_pool(pool) is None
    assert inventory(aws) == {key: [] for key in inventory(aws)}


def test_push_pools_need_prefect_cloud(sandbox: Sandbox, aws: Aws, pool: str):
    run = sandbox.run("up", pool, "--type", "ecs:push", "--region", REGION, "--yes", expect=2)
    assert "--type ecs" in run.stderr
    assert len(run.stderr.strip().splitlines()) == 1, run.stderr
    assert sandbox.cloud.calls(phase=None, include_preview=True) == []
    assert inventory(aws) == {key: [] for key in inventory(aws)}


def test_sigkill_after_aws_made_named_resources_adopts_them_on_rerun(
    sandbox: Sandbox, aws: Aws, pool: str
):
    # Roles, the user, the policy, the log group and the repository fail on a second create:
    # the rerun reads back by name (the policy by ARN) what the killed run made. An existing
    # network keeps the kill window free of subnets, whose ids AWS picks (see the notes).
    ec2 = aws.client("ec2")
    vpc = ec2.create_vpc(CidrBlock="10.8.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.8.1.0/24")["Subnet"]["SubnetId"]
    in_flight = "aws:iam/policy:Policy"
    args = ("up", pool, *UP, "--vpc-id", vpc, "--subnet-ids", subnet, "--yes")
    sandbox.kill_while_creating(in_flight, *args, after_write=True)
    made = inventory(aws)
    assert made["policies"] and made["roles"] and made["users"]

    run = sandbox.run("up", pool, "--yes", timeout=300)
    block(sandbox, pool)
    assert "Adopting" in run.stdout and f"Pool '{pool}' is ready" in run.stdout
    (adopting,) = [line for line in run.stdout.splitlines() if line.startswith("Adopting")]
    assert f"{pool}-worker-policy" in adopting
    after = inventory(aws)
    # One create each, ever: a second would be the re-create adoption avoids.
    assert len(sandbox.cloud.calls("create", in_flight, phase="begin")) == 1
    for kind in ("roles", "users", "policies", "log_groups", "repositories", "clusters"):
        assert len(after[kind]) == len(set(after[kind])) and set(made[kind]) <= set(after[kind])
    assert len(after["policies"]) == 1 and len(after["users"]) == 1
    assert len(keys(aws, pool)) == 1
    sandbox.run("preview", pool, "--expect-no-changes")
    sandbox.run("destroy", pool, "--yes")
    assert inventory(aws) == {**{key: [] for key in made}, "vpcs": [vpc], "subnets": [subnet]}


def test_a_team_shares_the_pool_through_an_s3_backend(
    sandbox: Sandbox, aws: Aws, pool: str, s3_backend
):
    share_backend(sandbox, s3_backend)
    up(sandbox, pool)
    assert s3_backend.checkpoint_keys("provision")  # the state is in the bucket, not here
    expected = Expected("ecs", f"{REGION}", "aws-credentials", f"{pool}-aws-credentials")
    operate_from_another_machine(sandbox, pool, expected, lambda: keys(aws, pool))
