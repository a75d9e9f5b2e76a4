"""EcsPool under Pulumi mocks: every resource, its parent, inputs, tags, policies and outputs.

Each test gets a fresh root stack and a fresh recording monitor from ``tests/pulumi_mocks.py``
(this module adds only AWS's mock answers), so nothing registered by one test is seen by
another. Assertions run inside ``apply`` callbacks once the access key (which depends on every
other child) has resolved; the fixture fails the test if they never ran (under mocks an apply
over an unknown value is skipped silently, which would pass vacuously).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pulumi
import pytest

from stacks.aws_ecs import (
    EXECUTION_POLICY_ARN,
    STATEMENT_PURPOSE,
    TYPE_TOKEN,
    EcsPool,
    EcsPoolArgs,
    EcsPoolNames,
    EcsPoolOutputs,
    lifecycle_policy,
    subnet_cidrs,
    worker_policy,
)
from tests.pulumi_mocks import (
    RecordingMonitor,
    assert_component_tree,
    check_when_resolved,
    install_mocks,
    monitor_fixture,
)

ACCOUNT = "123456789012"
REGION = "eu-west-1"
AZS = ["eu-west-1a", "eu-west-1b", "eu-west-1c", "eu-west-1d"]
POOL = "etl"
TAGS = {"ManagedBy": "provision", "PrefectWorkPool": POOL}
UUID = "????????-????-????-????-????????????"

T_CLUSTER = "aws:ecs/cluster:Cluster"
T_LOGS = "aws:cloudwatch/logGroup:LogGroup"
T_ROLE = "aws:iam/role:Role"
T_ROLE_ATTACH = "aws:iam/rolePolicyAttachment:RolePolicyAttachment"
T_ROLE_POLICY = "aws:iam/rolePolicy:RolePolicy"
T_USER = "aws:iam/user:User"
T_POLICY = "aws:iam/policy:Policy"
T_USER_ATTACH = "aws:iam/userPolicyAttachment:UserPolicyAttachment"
T_KEY = "aws:iam/accessKey:AccessKey"
T_VPC = "aws:ec2/vpc:Vpc"
T_SUBNET = "aws:ec2/subnet:Subnet"
T_IGW = "aws:ec2/internetGateway:InternetGateway"
T_RTB = "aws:ec2/routeTable:RouteTable"
T_ROUTE = "aws:ec2/route:Route"
T_RTB_ASSOC = "aws:ec2/routeTableAssociation:RouteTableAssociation"
T_SG = "aws:ec2/securityGroup:SecurityGroup"
T_REPO = "aws:ecr/repository:Repository"
T_LIFECYCLE = "aws:ecr/lifecyclePolicy:LifecyclePolicy"
T_QUEUE = "aws:sqs/queue:Queue"
T_QUEUE_POLICY = "aws:sqs/queuePolicy:QueuePolicy"
T_RULE = "aws:cloudwatch/eventRule:EventRule"
T_TARGET = "aws:cloudwatch/eventTarget:EventTarget"
T_SECRET = "aws:secretsmanager/secret:Secret"
T_SECRET_VERSION = "aws:secretsmanager/secretVersion:SecretVersion"
T_TASK_DEFINITION = "aws:ecs/taskDefinition:TaskDefinition"
T_SERVICE = "aws:ecs/service:Service"

TAGGABLE = {T_CLUSTER, T_LOGS, T_ROLE, T_USER, T_POLICY, T_VPC, T_SUBNET, T_IGW, T_RTB, T_SG}
TAGGABLE |= {T_REPO, T_QUEUE, T_RULE}

NAMES = EcsPoolNames(
    cluster="etl-ecs",
    execution_role="etl-ecs-execution",
    task_role="etl-ecs-task",
    worker_user="etl-ecs-worker",
    worker_policy="etl-ecs-worker",
    log_group="/prefect/ecs/etl",
    repository="etl-images",
    security_group="etl-ecs-tasks",
    network="etl-ecs",
    events_queue="etl-ecs-events",
    events_dlq="etl-ecs-events-dlq",
    events_rule="etl-ecs-task-events",
    family_pattern=f"prefect_etl_{UUID}*",
)

TASK_POLICIES = [
    "arn:aws:iam::aws:policy/AmazonS3ReadOnlyAccess",
    f"arn:aws:iam::{ACCOUNT}:policy/etl-data",
]


def _hex(name: str, n: int = 17) -> str:
    """A stable fake hex id for ``name`` (AWS ids are 17 hex chars)."""
    return f"{abs(hash(name)) % 16**n:0{n}x}"


class AwsMocks(pulumi.runtime.Mocks):
    """Echo inputs and add what pulumi-aws computes, shaped like the real values."""

    def __init__(self, zones: list[str] | None = None) -> None:
        self.zones = AZS if zones is None else zones
        self.invokes: list[tuple[str, dict]] = []

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict]:
        inputs = args.inputs
        out: dict[str, Any] = dict(inputs)
        name = inputs.get("name", args.name)
        t = args.typ
        if "tags" in inputs:
            out["tagsAll"] = dict(inputs["tags"])
        if t == T_CLUSTER:
            arn = f"arn:aws:ecs:{REGION}:{ACCOUNT}:cluster/{name}"
            out.update(arn=arn)
            return arn, out
        if t == T_LOGS:
            out.update(arn=f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:{name}")
            return name, out
        if t == T_ROLE:
            out.update(arn=f"arn:aws:iam::{ACCOUNT}:role/{name}", uniqueId="AROA" + "X" * 17)
            return name, out
        if t == T_USER:
            out.update(arn=f"arn:aws:iam::{ACCOUNT}:user/{name}", uniqueId="AIDA" + "X" * 17)
            return name, out
        if t == T_POLICY:
            arn = f"arn:aws:iam::{ACCOUNT}:policy/{name}"
            out.update(arn=arn, policyId="ANPA" + "X" * 17, attachmentCount=0)
            return arn, out
        if t == T_KEY:
            out.update(
                secret="wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
                status="Active",
                createDate="2026-01-01T00:00:00Z",
            )
            return "AKIAIOSFODNN7EXAMPLE", out
        if t == T_VPC:
            vid = f"vpc-{_hex(args.name)}"
            out.update(
                arn=f"arn:aws:ec2:{REGION}:{ACCOUNT}:vpc/{vid}",
                defaultSecurityGroupId=f"sg-{_hex(vid)}",
                mainRouteTableId=f"rtb-{_hex(vid)}",
            )
            return vid, out
        if t == T_SUBNET:
            sid = f"subnet-{_hex(args.name)}"
            out.update(arn=f"arn:aws:ec2:{REGION}:{ACCOUNT}:subnet/{sid}")
            return sid, out
        if t == T_IGW:
            return f"igw-{_hex(args.name)}", out
        if t == T_RTB:
            return f"rtb-{_hex(args.name)}", out
        if t == T_ROUTE:
            return f"r-{inputs['routeTableId']}1080289494", out
        if t == T_RTB_ASSOC:
            return f"rtbassoc-{_hex(args.name)}", out
        if t == T_SG:
            gid = f"sg-{_hex(args.name)}"
            out.update(arn=f"arn:aws:ec2:{REGION}:{ACCOUNT}:security-group/{gid}")
            return gid, out
        if t == T_REPO:
            out.update(
                arn=f"arn:aws:ecr:{REGION}:{ACCOUNT}:repository/{name}",
                registryId=ACCOUNT,
                repositoryUrl=f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/{name}",
            )
            return name, out
        if t == T_LIFECYCLE:
            out.update(registryId=ACCOUNT)
            return inputs["repository"], out
        if t == T_QUEUE:
            url = f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT}/{name}"
            out.update(arn=f"arn:aws:sqs:{REGION}:{ACCOUNT}:{name}", url=url)
            return url, out
        if t == T_QUEUE_POLICY:
            return inputs["queueUrl"], out
        if t == T_RULE:
            out.update(arn=f"arn:aws:events:{REGION}:{ACCOUNT}:rule/{name}")
            return name, out
        if t == T_TARGET:
            return f"{inputs['rule']}-{inputs['targetId']}", out
        if t == T_SECRET:
            # Secrets Manager appends "-" and six characters of its own to the name.
            arn = f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:{name}-AbCdEf"
            out.update(arn=arn)
            return arn, out
        if t == T_SECRET_VERSION:
            version = f"00000000-0000-4000-8000-{_hex(args.name, 12)}"
            out.update(versionId=version, arn=inputs["secretId"])
            return f"{inputs['secretId']}|{version}", out
        if t == T_TASK_DEFINITION:
            arn = f"arn:aws:ecs:{REGION}:{ACCOUNT}:task-definition/{inputs['family']}:1"
            out.update(arn=arn, arnWithoutRevision=arn.rsplit(":", 1)[0], revision=1)
            return inputs["family"], out
        if t == T_SERVICE:
            cluster = inputs["cluster"].rsplit("/", 1)[-1]
            arn = f"arn:aws:ecs:{REGION}:{ACCOUNT}:service/{cluster}/{name}"
            out.update(arn=arn)
            return arn, out
        return f"{args.name}-id", out

    def call(self, args: pulumi.runtime.MockCallArgs) -> dict:
        self.invokes.append((args.token, dict(args.args)))
        if args.token == "aws:index/getCallerIdentity:getCallerIdentity":
            return {
                "accountId": ACCOUNT,
                "arn": f"arn:aws:iam::{ACCOUNT}:user/admin",
                "userId": "AIDAEXAMPLE",
                "id": ACCOUNT,
            }
        if args.token == "aws:index/getAvailabilityZones:getAvailabilityZones":
            return {
                "id": REGION,
                "names": list(self.zones),
                "zoneIds": [f"euw1-az{i + 1}" for i in range(len(self.zones))],
                "groupNames": [REGION] * len(self.zones),
            }
        return {}


mon = monitor_fixture(AwsMocks)
two_az_mon = monitor_fixture(lambda: AwsMocks(zones=["us-west-1a", "us-west-1c"]))
preview_mon = monitor_fixture(AwsMocks, preview=True)


def policy_doc(mon: RecordingMonitor, typ: str) -> dict:
    """The JSON policy document of the one resource of type ``typ``."""
    return json.loads(mon.one(typ).inputs["policy"])


def make_args(**overrides: Any) -> EcsPoolArgs:
    base = EcsPoolArgs(pool=POOL, region=REGION, names=NAMES, task_events=True)
    return replace(base, **overrides)


def make_pool(**overrides: Any) -> EcsPool:
    return EcsPool("etl", make_args(**overrides))


EXPORTS = [
    "region",
    "account_id",
    "cluster_name",
    "cluster_arn",
    "execution_role_arn",
    "task_role_arn",
    "worker_user_name",
    "vpc_id",
    "subnet_ids",
    "availability_zones",
    "security_group_id",
    "log_group_name",
    "registry_host",
    "repository_url",
    "events_queue_name",
    "access_key_id",
    "secret_access_key",
    "credential_created_at",
    "worker_role_arn",
]
"""The stack-export names: the e2e tests and the target read these, so they never change."""


def after_all(pool: EcsPool, mon: RecordingMonitor, check: Callable[..., None]):
    """Run ``check(values)`` once every resource is registered and every output resolved.

    The access key depends on every other child, so once its id resolves all of them have been
    registered with the monitor.
    """
    return check_when_resolved(mon, dict(pool.outputs), check)


CORE = {
    (T_CLUSTER, "etl-cluster"),
    (T_LOGS, "etl-logs"),
    (T_ROLE, "etl-execution"),
    (T_ROLE_ATTACH, "etl-execution-managed"),
    (T_ROLE_POLICY, "etl-execution-logs"),
    (T_REPO, "etl-repository"),
    (T_LIFECYCLE, "etl-repository-lifecycle"),
    (T_USER, "etl-worker"),
    (T_POLICY, "etl-worker-policy"),
    (T_USER_ATTACH, "etl-worker-policy-attachment"),
    (T_KEY, "etl-worker-key"),
}
NETWORK = {
    (T_VPC, "etl-vpc"),
    (T_IGW, "etl-igw"),
    (T_RTB, "etl-public"),
    (T_ROUTE, "etl-default-route"),
    *((T_SUBNET, f"etl-public-{az}") for az in AZS[:3]),
    *((T_RTB_ASSOC, f"etl-public-{az}") for az in AZS[:3]),
    (T_SG, "etl-tasks"),
}
EVENTS = {
    (T_QUEUE, "etl-events"),
    (T_QUEUE, "etl-events-dlq"),
    (T_RULE, "etl-task-events"),
    (T_QUEUE_POLICY, "etl-events-policy"),
    (T_TARGET, "etl-task-events-target"),
}
TASK_ROLE = {
    (T_ROLE, "etl-task"),
    (T_ROLE_ATTACH, "etl-task-policy-0"),
    (T_ROLE_ATTACH, "etl-task-policy-1"),
}


def _children(mon: RecordingMonitor) -> set[tuple[str, str]]:
    return mon.children(mon.one(TYPE_TOKEN))


# -- resources, per mode --------------------------------------------------------------------


@pulumi.runtime.test
def test_every_resource_type_name_and_parent(mon):
    pool = make_pool(task_role_policy_arns=TASK_POLICIES)

    def check(_):
        assert_component_tree(mon, TYPE_TOKEN, "etl", CORE | NETWORK | EVENTS | TASK_ROLE)

    return after_all(pool, mon, check)


@pulumi.runtime.test
def test_push_pool_has_no_task_events(mon):
    pool = make_pool(task_events=False)

    def check(values):
        assert _children(mon) == CORE | NETWORK
        assert values["events_queue_name"] is None
        statements = policy_doc(mon, T_POLICY)["Statement"]
        assert not any(a.startswith("sqs:") for s in statements for a in s["Action"])

    return after_all(pool, mon, check)


@pulumi.runtime.test
def test_existing_network_creates_nothing_network_related(mon):
    subnets = ["subnet-0123456789abcdef0", "subnet-0fedcba9876543210"]
    pool = make_pool(vpc_id="vpc-0a1b2c3d4e5f60718", subnet_ids=subnets)

    def check(values):
        assert _children(mon) == CORE | EVENTS
        assert values["vpc_id"] == "vpc-0a1b2c3d4e5f60718"
        assert values["subnet_ids"] == subnets
        assert values["security_group_id"] is None
        # Not even the availability zones are looked up.
        tokens = [t for t, _ in mon.mocks.invokes]
        assert "aws:index/getAvailabilityZones:getAvailabilityZones" not in tokens

    return after_all(pool, mon, check)


def test_vpc_without_subnets_is_rejected():
    with pytest.raises(ValueError, match="give both or neither"):
        EcsPool("x", make_args(vpc_id="vpc-0a1b2c3d4e5f60718"))
    with pytest.raises(ValueError, match="give both or neither"):
        EcsPool("x", make_args(subnet_ids=["subnet-0123456789abcdef0"]))


@pulumi.runtime.test
def test_no_task_role_unless_policies_are_given(mon):
    pool = make_pool()

    def check(values):
        assert not _children(mon) & TASK_ROLE
        assert [r.inputs["name"] for r in mon.of_type(T_ROLE)] == ["etl-ecs-execution"]
        assert values["task_role_arn"] is None
        passrole = _statement(policy_doc(mon, T_POLICY), "PassPoolRolesToEcsTasks")
        assert passrole["Resource"] == [values["execution_role_arn"]]

    return after_all(pool, mon, check)


# -- tags -----------------------------------------------------------------------------------


@pulumi.runtime.test
def test_everything_taggable_is_tagged(mon):
    pool = make_pool(task_role_policy_arns=TASK_POLICIES)

    def check(_):
        for r in mon.registrations.values():
            if r.type == TYPE_TOKEN:
                continue
            if r.type in TAGGABLE:
                tags = r.inputs.get("tags")
                assert tags is not None, r.name
                assert {k: tags[k] for k in TAGS} == TAGS, r.name
                assert set(tags) <= {*TAGS, "Name"}, r.name
            else:
                # Attachments, routes, policies of queues... have no tags in AWS.
                assert "tags" not in r.inputs, r.name
        assert mon.one(T_VPC).inputs["tags"]["Name"] == "etl-ecs"
        assert mon.one(T_SUBNET, "etl-public-eu-west-1b").inputs["tags"]["Name"] == (
            "etl-ecs-public-eu-west-1b"
        )
        assert mon.one(T_SG).inputs["tags"]["Name"] == "etl-ecs-tasks"
        assert "Name" not in mon.one(T_CLUSTER).inputs["tags"]

    return after_all(pool, mon, check)


# -- IAM -------------------------------------------------------------------------------------


def _statement(doc: dict, sid: str) -> dict:
    found = [s for s in doc["Statement"] if s.get("Sid") == sid]
    assert len(found) == 1, sid
    return found[0]


ECS = f"arn:aws:ecs:{REGION}:{ACCOUNT}"


@pulumi.runtime.test
def test_worker_policy_statements_exactly(mon):
    pool = make_pool(task_role_policy_arns=TASK_POLICIES)

    def check(values):
        doc = policy_doc(mon, T_POLICY)
        assert doc["Version"] == "2012-10-17"
        family = f"{ECS}:task-definition/prefect_etl_{UUID}*"
        tasks = f"{ECS}:task/etl-ecs/*"
        expected = [
            {
                "Sid": "RegisterPoolTaskDefinitions",
                "Effect": "Allow",
                "Action": ["ecs:RegisterTaskDefinition"],
                "Resource": family,
            },
            {
                "Sid": "ReadAndRetireTaskDefinitions",
                "Effect": "Allow",
                "Action": ["ecs:DescribeTaskDefinition", "ecs:DeregisterTaskDefinition"],
                "Resource": "*",
            },
            {
                "Sid": "RunPoolTasksOnCluster",
                "Effect": "Allow",
                "Action": ["ecs:RunTask"],
                "Resource": family,
                "Condition": {"ArnEquals": {"ecs:cluster": f"{ECS}:cluster/etl-ecs"}},
            },
            {
                "Sid": "ManageClusterTasks",
                "Effect": "Allow",
                "Action": ["ecs:StopTask", "ecs:DescribeTasks"],
                "Resource": tasks,
            },
            {
                "Sid": "TagTasksAtLaunch",
                "Effect": "Allow",
                "Action": ["ecs:TagResource"],
                "Resource": tasks,
                "Condition": {"StringEquals": {"ecs:CreateAction": "RunTask"}},
            },
            {
                "Sid": "PassPoolRolesToEcsTasks",
                "Effect": "Allow",
                "Action": ["iam:PassRole"],
                "Resource": [
                    f"arn:aws:iam::{ACCOUNT}:role/etl-ecs-execution",
                    f"arn:aws:iam::{ACCOUNT}:role/etl-ecs-task",
                ],
                "Condition": {"StringEquals": {"iam:PassedToService": "ecs-tasks.amazonaws.com"}},
            },
            {
                "Sid": "CheckNetworkConfiguration",
                "Effect": "Allow",
                "Action": ["ec2:DescribeVpcs", "ec2:DescribeSubnets"],
                "Resource": "*",
                "Condition": {"StringEquals": {"ec2:Region": REGION}},
            },
            {
                "Sid": "ReadPoolLogs",
                "Effect": "Allow",
                "Action": ["logs:GetLogEvents"],
                "Resource": f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:/prefect/ecs/etl"
                ":log-stream:*",
            },
            {
                "Sid": "ConsumeTaskStateEvents",
                "Effect": "Allow",
                "Action": [
                    "sqs:GetQueueUrl",
                    "sqs:ReceiveMessage",
                    "sqs:DeleteMessage",
                    "sqs:ChangeMessageVisibility",
                ],
                "Resource": f"arn:aws:sqs:{REGION}:{ACCOUNT}:etl-ecs-events",
            },
        ]
        assert doc["Statement"] == expected
        # "*" only where AWS offers no resource type: task-definition reads and EC2 describes.
        wildcard = {a for s in doc["Statement"] if s["Resource"] == "*" for a in s["Action"]}
        assert wildcard == {
            "ecs:DescribeTaskDefinition",
            "ecs:DeregisterTaskDefinition",
            "ec2:DescribeVpcs",
            "ec2:DescribeSubnets",
        }
        policy = mon.one(T_POLICY)
        assert policy.inputs["name"] == "etl-ecs-worker"
        attach = mon.one(T_USER_ATTACH)
        assert attach.inputs == {
            "user": "etl-ecs-worker",
            "policyArn": f"arn:aws:iam::{ACCOUNT}:policy/etl-ecs-worker",
        }
        assert mon.one(T_USER).inputs["name"] == "etl-ecs-worker"
        assert values["worker_user_name"] == "etl-ecs-worker"

    return after_all(pool, mon, check)


@pulumi.runtime.test
def test_execution_role(mon):
    pool = make_pool()

    def check(values):
        role = mon.one(T_ROLE, "etl-execution")
        assert role.inputs["name"] == "etl-ecs-execution"
        assert json.loads(role.inputs["assumeRolePolicy"]) == {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {"Service": "ecs-tasks.amazonaws.com"},
                    "Action": "sts:AssumeRole",
                }
            ],
        }
        managed = mon.one(T_ROLE_ATTACH, "etl-execution-managed")
        assert managed.inputs == {"role": "etl-ecs-execution", "policyArn": EXECUTION_POLICY_ARN}
        assert EXECUTION_POLICY_ARN == (
            "arn:aws:iam::aws:policy/service-role/AmazonECSTaskExecutionRolePolicy"
        )
        logs = mon.one(T_ROLE_POLICY)
        assert logs.inputs["role"] == "etl-ecs-execution"
        assert json.loads(logs.inputs["policy"]) == {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Action": ["logs:CreateLogGroup"],
                    "Resource": f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:*",
                }
            ],
        }
        assert values["execution_role_arn"] == f"arn:aws:iam::{ACCOUNT}:role/etl-ecs-execution"

    return after_all(pool, mon, check)


@pulumi.runtime.test
def test_task_role_gets_exactly_the_given_policies(mon):
    pool = make_pool(task_role_policy_arns=TASK_POLICIES)

    def check(values):
        role = mon.one(T_ROLE, "etl-task")
        assert role.inputs["name"] == "etl-ecs-task"
        assert json.loads(role.inputs["assumeRolePolicy"])["Statement"] == [
            {
                "Effect": "Allow",
                "Principal": {"Service": "ecs-tasks.amazonaws.com"},
                "Action": "sts:AssumeRole",
                "Condition": {"StringEquals": {"aws:SourceAccount": ACCOUNT}},
            }
        ]
        attached = [
            r.inputs for r in mon.of_type(T_ROLE_ATTACH) if r.name.startswith("etl-task-policy")
        ]
        assert sorted(a["policyArn"] for a in attached) == sorted(TASK_POLICIES)
        assert {a["role"] for a in attached} == {"etl-ecs-task"}
        assert values["task_role_arn"] == f"arn:aws:iam::{ACCOUNT}:role/etl-ecs-task"

    return after_all(pool, mon, check)


@pulumi.runtime.test
def test_key_comes_last_and_its_inputs_are_constant(mon):
    pool = make_pool(task_role_policy_arns=TASK_POLICIES)

    def check(values):
        key = mon.one(T_KEY)
        # Only the user's name: nothing that changes between runs, so a rerun never replaces
        # the key (AWS allows two per user).
        assert key.inputs == {"user": "etl-ecs-worker"}
        # Transitively, the key waits for every other child.
        seen: set[str] = set()
        todo = list(key.dependencies)
        while todo:
            urn = todo.pop()
            if urn not in seen:
                seen.add(urn)
                todo += mon.registrations[urn].dependencies
        others = {r.urn for r in mon.registrations.values() if r.type not in (TYPE_TOKEN, T_KEY)}
        assert others == seen
        assert values["access_key_id"] == "AKIAIOSFODNN7EXAMPLE"

    return after_all(pool, mon, check)


@pulumi.runtime.test
def test_only_a_new_rotation_count_replaces_the_key_and_the_new_one_comes_first(mon):
    pool = make_pool(credential_rotation="3")

    def check(values):
        key = mon.one(T_KEY)
        # The count is the key's replacement trigger; its inputs stay the user's name alone.
        assert key.replacement_trigger == "3"
        assert key.inputs == {"user": "etl-ecs-worker"}
        # Create-before-delete: the block (which depends on the key) is rewritten with the new
        # key before the old one goes, and the user never needs a third key.
        assert key.delete_before_replace is False
        # Its age: when IAM made it.
        assert values["credential_created_at"] == "2026-01-01T00:00:00Z"

    return after_all(pool, mon, check)


@pulumi.runtime.test
def test_a_stack_given_no_rotation_sets_no_trigger(mon):
    pool = make_pool()

    def check(_):
        assert mon.one(T_KEY).replacement_trigger is None

    return after_all(pool, mon, check)


@pulumi.runtime.test
def test_secret_access_key_is_secret(mon):
    pool = make_pool()

    def check(values):
        is_secret, value = values
        assert is_secret is True
        assert value == "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"

    return pulumi.Output.all(
        pool.outputs["secret_access_key"].is_secret(),
        pulumi.Output.unsecret(pool.outputs["secret_access_key"]),
        after_all(pool, mon, lambda _: None),
    ).apply(lambda v: check(v[:2]))


# -- network ---------------------------------------------------------------------------------


@pulumi.runtime.test
def test_network(mon):
    pool = make_pool(vpc_cidr="10.42.0.0/16")

    def check(values):
        vpc = mon.one(T_VPC)
        assert vpc.inputs["cidrBlock"] == "10.42.0.0/16"
        assert vpc.inputs["enableDnsSupport"] is True
        assert vpc.inputs["enableDnsHostnames"] is True
        vpc_id = values["vpc_id"]
        assert vpc_id.startswith("vpc-")
        subnets = sorted(mon.of_type(T_SUBNET), key=lambda r: r.inputs["availabilityZone"])
        assert [s.inputs["availabilityZone"] for s in subnets] == AZS[:3]
        assert [s.inputs["cidrBlock"] for s in subnets] == [
            "10.42.0.0/18",
            "10.42.64.0/18",
            "10.42.128.0/18",
        ]
        assert all(s.inputs["vpcId"] == vpc_id for s in subnets)
        assert all(s.inputs["mapPublicIpOnLaunch"] is True for s in subnets)
        assert len(values["subnet_ids"]) == 3
        assert all(i.startswith("subnet-") for i in values["subnet_ids"])

        igw = mon.one(T_IGW)
        assert igw.inputs["vpcId"] == vpc_id
        table = mon.one(T_RTB)
        assert table.inputs["vpcId"] == vpc_id
        route = mon.one(T_ROUTE)
        assert route.inputs["destinationCidrBlock"] == "0.0.0.0/0"
        assert route.inputs["gatewayId"].startswith("igw-")
        assert route.inputs["routeTableId"].startswith("rtb-")
        assocs = mon.of_type(T_RTB_ASSOC)
        assert {a.inputs["subnetId"] for a in assocs} == set(values["subnet_ids"])
        assert {a.inputs["routeTableId"] for a in assocs} == {route.inputs["routeTableId"]}

        sg = mon.one(T_SG)
        assert sg.inputs["vpcId"] == vpc_id
        assert sg.inputs["namePrefix"] == "etl-ecs-tasks-" and "name" not in sg.inputs
        assert sg.inputs["ingress"] == []
        assert sg.inputs["egress"] == [
            {"protocol": "-1", "fromPort": 0, "toPort": 0, "cidrBlocks": ["0.0.0.0/0"]}
        ]
        assert values["security_group_id"].startswith("sg-")

        # Only AZs that need no opt-in (no Local or Wavelength Zones).
        (azs_args,) = [
            a
            for t, a in mon.mocks.invokes
            if t.endswith("getAvailabilityZones:getAvailabilityZones")
        ]
        assert azs_args["state"] == "available"
        assert azs_args["filters"] == [{"name": "opt-in-status", "values": ["opt-in-not-required"]}]

    return after_all(pool, mon, check)


@pulumi.runtime.test
def test_region_with_two_zones_gets_two_subnets(two_az_mon):
    pool = make_pool(region="us-west-1", vpc_cidr="192.168.10.0/24")

    def check(values):
        subnets = two_az_mon.of_type(T_SUBNET)
        assert sorted(s.inputs["availabilityZone"] for s in subnets) == ["us-west-1a", "us-west-1c"]
        assert sorted(s.inputs["cidrBlock"] for s in subnets) == [
            "192.168.10.0/26",
            "192.168.10.64/26",
        ]
        assert len(values["subnet_ids"]) == 2
        assert len(two_az_mon.of_type(T_RTB_ASSOC)) == 2

    return after_all(pool, two_az_mon, check)


@pulumi.runtime.test
def test_the_zones_a_last_run_chose_are_kept_without_asking_the_account(mon):
    # The target passes the last run's `availability_zones` output back: a rerun makes no
    # invoke (one cloud call fewer), and the network keeps its shape whatever the account's
    # zone list has become.
    pool = make_pool(zones=("eu-west-1c", "eu-west-1b"))

    def check(values):
        tokens = [t for t, _ in mon.mocks.invokes]
        assert "aws:index/getAvailabilityZones:getAvailabilityZones" not in tokens
        subnets = mon.of_type(T_SUBNET)
        # (registrations reach the monitor in no fixed order; the export keeps the given one)
        assert sorted(s.inputs["availabilityZone"] for s in subnets) == ["eu-west-1b", "eu-west-1c"]
        assert values["availability_zones"] == ["eu-west-1c", "eu-west-1b"]

    return after_all(pool, mon, check)


@pulumi.runtime.test
def test_the_zones_asked_on_a_first_run_are_exported_for_the_next(mon):
    pool = make_pool()

    def check(values):
        subnets = mon.of_type(T_SUBNET)
        zones = values["availability_zones"]
        assert sorted(zones) == sorted(s.inputs["availabilityZone"] for s in subnets)
        assert len(zones) == 3

    return after_all(pool, mon, check)


@pulumi.runtime.test
def test_no_zones_is_an_error():
    # Under the runtime's test wrapper, so what registered before the error is awaited, not
    # left pending on a discarded event loop.
    install_mocks(AwsMocks(zones=[]), preview=False)
    with pytest.raises(ValueError, match="no availability zone"):
        EcsPool("x", make_args())


def test_subnet_cidrs():
    assert subnet_cidrs("10.0.0.0/16", 3) == ["10.0.0.0/18", "10.0.64.0/18", "10.0.128.0/18"]
    assert subnet_cidrs("172.20.4.0/22", 1) == ["172.20.4.0/24"]
    assert subnet_cidrs("192.168.0.0/24", 3) == [
        "192.168.0.0/26",
        "192.168.0.64/26",
        "192.168.0.128/26",
    ]


# -- logs, registry, events ------------------------------------------------------------------


@pulumi.runtime.test
def test_log_group(mon):
    pool = make_pool(log_retention_days=90)

    def check(values):
        logs = mon.one(T_LOGS)
        assert logs.inputs["name"] == "/prefect/ecs/etl"
        assert logs.inputs["retentionInDays"] == 90
        assert values["log_group_name"] == "/prefect/ecs/etl"

    return after_all(pool, mon, check)


@pulumi.runtime.test
def test_repository_and_lifecycle(mon):
    pool = make_pool(ecr_keep_images=12)

    def check(values):
        repo = mon.one(T_REPO)
        assert repo.inputs["name"] == "etl-images"
        assert repo.inputs["imageScanningConfiguration"] == {"scanOnPush": True}
        assert repo.inputs["imageTagMutability"] == "MUTABLE"
        assert repo.inputs["forceDelete"] is True
        lifecycle = mon.one(T_LIFECYCLE)
        assert lifecycle.inputs["repository"] == "etl-images"
        assert json.loads(lifecycle.inputs["policy"]) == {
            "rules": [
                {
                    "rulePriority": 1,
                    "description": "Keep the last 12 images",
                    "selection": {
                        "tagStatus": "any",
                        "countType": "imageCountMoreThan",
                        "countNumber": 12,
                    },
                    "action": {"type": "expire"},
                }
            ]
        }
        assert values["repository_url"] == f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/etl-images"
        assert values["registry_host"] == f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com"

    return after_all(pool, mon, check)


@pulumi.runtime.test
def test_task_events(mon):
    pool = make_pool()

    def check(values):
        queue_arn = f"arn:aws:sqs:{REGION}:{ACCOUNT}:etl-ecs-events"
        dlq_arn = f"arn:aws:sqs:{REGION}:{ACCOUNT}:etl-ecs-events-dlq"
        rule_arn = f"arn:aws:events:{REGION}:{ACCOUNT}:rule/etl-ecs-task-events"
        queue = mon.one(T_QUEUE, "etl-events")
        assert queue.inputs["name"] == "etl-ecs-events"
        assert queue.inputs["messageRetentionSeconds"] == 604800
        assert queue.inputs["visibilityTimeoutSeconds"] == 300
        assert queue.inputs["sqsManagedSseEnabled"] is True
        assert json.loads(queue.inputs["redrivePolicy"]) == {
            "deadLetterTargetArn": dlq_arn,
            "maxReceiveCount": 3,
        }
        dlq = mon.one(T_QUEUE, "etl-events-dlq")
        assert dlq.inputs["name"] == "etl-ecs-events-dlq"
        assert dlq.inputs["messageRetentionSeconds"] == 1209600

        rule = mon.one(T_RULE)
        assert rule.inputs["name"] == "etl-ecs-task-events"
        assert json.loads(rule.inputs["eventPattern"]) == {
            "source": ["aws.ecs"],
            "detail-type": ["ECS Task State Change"],
            "detail": {"clusterArn": [f"{ECS}:cluster/etl-ecs"]},
        }
        target = mon.one(T_TARGET)
        assert target.inputs == {"rule": "etl-ecs-task-events", "targetId": "sqs", "arn": queue_arn}
        policy = mon.one(T_QUEUE_POLICY)
        assert policy.inputs["queueUrl"] == (
            f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT}/etl-ecs-events"
        )
        assert json.loads(policy.inputs["policy"]) == {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": "TaskEventsFromRule",
                    "Effect": "Allow",
                    "Principal": {"Service": "events.amazonaws.com"},
                    "Action": "sqs:SendMessage",
                    "Resource": queue_arn,
                    "Condition": {"ArnEquals": {"aws:SourceArn": rule_arn}},
                }
            ],
        }
        # The rule only targets the queue once the queue accepts its messages.
        assert policy.urn in target.dependencies
        assert values["events_queue_name"] == "etl-ecs-events"

    return after_all(pool, mon, check)


# -- outputs ---------------------------------------------------------------------------------


@pulumi.runtime.test
def test_outputs(mon):
    pool = make_pool()

    def check(values):
        assert list(pool.outputs) == EXPORTS
        assert list(EcsPoolOutputs.__annotations__) == EXPORTS  # declared as exported
        assert values["region"] == REGION
        assert values["account_id"] == ACCOUNT
        assert values["cluster_name"] == "etl-ecs"
        assert values["cluster_arn"] == f"{ECS}:cluster/etl-ecs"
        assert mon.one(T_CLUSTER).inputs == {"name": "etl-ecs", "tags": TAGS}

    return after_all(pool, mon, check)


@pulumi.runtime.test
def test_preview_registers_the_same_resources(preview_mon):
    # Under preview nothing may hide inside apply(): the same children must register.
    pool = make_pool(task_role_policy_arns=TASK_POLICIES)

    def check(_):
        assert _children(preview_mon) == CORE | NETWORK | EVENTS | TASK_ROLE

    return after_all(pool, preview_mon, check)


# -- pure helpers ----------------------------------------------------------------------------


def test_worker_policy_without_queue_or_task_role():
    doc = worker_policy(
        region="us-east-1",
        account="210987654321",
        family_pattern="prefect_p_x*",
        cluster_name="c",
        cluster_arn="arn:aws:ecs:us-east-1:210987654321:cluster/c",
        role_arns=["arn:aws:iam::210987654321:role/r"],
        log_group_name="/g",
        queue_arn=None,
    )
    sids = [s["Sid"] for s in doc["Statement"]]
    assert sids == [
        "RegisterPoolTaskDefinitions",
        "ReadAndRetireTaskDefinitions",
        "RunPoolTasksOnCluster",
        "ManageClusterTasks",
        "TagTasksAtLaunch",
        "PassPoolRolesToEcsTasks",
        "CheckNetworkConfiguration",
        "ReadPoolLogs",
    ]
    assert all(s["Effect"] == "Allow" for s in doc["Statement"])


def test_every_statement_has_a_purpose():
    doc = worker_policy(
        region="us-east-1",
        account="210987654321",
        family_pattern="f*",
        cluster_name="c",
        cluster_arn="arn:aws:ecs:us-east-1:210987654321:cluster/c",
        role_arns=[],
        log_group_name="/g",
        queue_arn="arn:aws:sqs:us-east-1:210987654321:q",
    )
    assert [s["Sid"] for s in doc["Statement"]] == list(STATEMENT_PURPOSE)


def test_lifecycle_policy_count():
    assert lifecycle_policy(1)["rules"][0]["selection"]["countNumber"] == 1


# -- keyless: the submitter is a role ECS tasks assume ----------------------------------------

KEYED = {
    (T_USER, "etl-worker"),
    (T_USER_ATTACH, "etl-worker-policy-attachment"),
    (T_KEY, "etl-worker-key"),
}
KEYLESS = {
    (T_ROLE, "etl-worker-role"),
    (T_ROLE_ATTACH, "etl-worker-role-policy"),
}


@pulumi.runtime.test
def test_keyless_pool_makes_a_worker_role_and_no_user_nor_key(mon):
    pool = make_pool(worker_role="etl-ecs-worker", task_role_policy_arns=TASK_POLICIES)

    def check(values):
        assert _children(mon) == (CORE - KEYED) | KEYLESS | NETWORK | EVENTS | TASK_ROLE
        # Not just absent from the component: nowhere in the program.
        for typ in (T_USER, T_USER_ATTACH, T_KEY):
            assert mon.of_type(typ) == [], typ
        role = mon.one(T_ROLE, "etl-worker-role")
        assert role.inputs["name"] == "etl-ecs-worker"
        assert role.inputs["tags"] == TAGS
        assert json.loads(role.inputs["assumeRolePolicy"])["Statement"] == [
            {
                "Effect": "Allow",
                "Principal": {"Service": "ecs-tasks.amazonaws.com"},
                "Action": "sts:AssumeRole",
                "Condition": {"StringEquals": {"aws:SourceAccount": ACCOUNT}},
            }
        ]
        # The same policy the user would hold, attached to the role.
        attach = mon.one(T_ROLE_ATTACH, "etl-worker-role-policy")
        assert attach.inputs == {
            "role": "etl-ecs-worker",
            "policyArn": f"arn:aws:iam::{ACCOUNT}:policy/etl-ecs-worker",
        }
        statements = {s["Sid"]: s for s in policy_doc(mon, T_POLICY)["Statement"]}
        assert list(statements) == list(STATEMENT_PURPOSE)
        # The observer polls the queue as the role: the SQS grant comes with the policy.
        assert statements["ConsumeTaskStateEvents"]["Resource"] == (
            f"arn:aws:sqs:{REGION}:{ACCOUNT}:etl-ecs-events"
        )
        # The worker passes the pool's roles, never its own.
        assert statements["PassPoolRolesToEcsTasks"]["Resource"] == [
            f"arn:aws:iam::{ACCOUNT}:role/etl-ecs-execution",
            f"arn:aws:iam::{ACCOUNT}:role/etl-ecs-task",
        ]
        assert values["worker_role_arn"] == f"arn:aws:iam::{ACCOUNT}:role/etl-ecs-worker"
        assert values["worker_user_name"] is None
        assert values["access_key_id"] is None and values["secret_access_key"] is None
        assert values["credential_created_at"] is None  # no credential, no age
        assert list(pool.outputs) == EXPORTS

    return after_all(pool, mon, check)


@pulumi.runtime.test
def test_keyless_role_is_ready_last_and_its_arn_waits_for_the_policy(mon):
    pool = make_pool(worker_role="etl-ecs-worker")
    # What runs as the role takes its ARN as an input: it must wait for the attachment.
    consumer = pulumi.CustomResource(
        "test:index:Consumer", "consumer", {"role": pool.outputs["worker_role_arn"]}
    )

    def check(_):
        attach = mon.one(T_ROLE_ATTACH, "etl-worker-role-policy")
        assert attach.urn in mon.one("test:index:Consumer").dependencies
        # Transitively, the attachment waits for every other child but the role itself.
        seen: set[str] = set()
        todo = list(attach.dependencies)
        while todo:
            urn = todo.pop()
            if urn not in seen:
                seen.add(urn)
                todo += mon.registrations[urn].dependencies
        others = {
            r.urn
            for r in mon.registrations.values()
            if r.type not in (TYPE_TOKEN, "test:index:Consumer") and r.urn != attach.urn
        }
        assert others == seen

    return check_when_resolved(mon, {"consumer": consumer.urn, **pool.outputs}, check)


@pulumi.runtime.test
def test_keyless_preview_registers_the_same_resources(preview_mon):
    pool = make_pool(worker_role="etl-ecs-worker")

    def check(_):
        assert _children(preview_mon) == (CORE - KEYED) | KEYLESS | NETWORK | EVENTS

    return after_all(pool, preview_mon, check)
