"""The moto-backed AWS fake: direct provider calls (shapes, AWS rules, diff, refresh, faults),
then one smoke test through the real engine.

One moto server serves the module; each test has an account of its own.
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
import json
import re
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from pulumi.provider.experimental.provider import (
    CheckRequest,
    CreateRequest,
    DeleteRequest,
    PropertyDiffKind,
    ReadRequest,
)

from tests.fakecloud import aws as fake
from tests.fakecloud.aws import (
    ACCESS_KEY,
    AWS,
    CLUSTER,
    EVENT_RULE,
    GET_AVAILABILITY_ZONES,
    GET_CALLER_IDENTITY,
    INTERNET_GATEWAY,
    LOG_GROUP,
    POLICY,
    REPOSITORY,
    ROLE,
    ROLE_POLICY_ATTACHMENT,
    ROUTE,
    ROUTE_TABLE,
    ROUTE_TABLE_ASSOCIATION,
    SECURITY_GROUP,
    SUBNET,
    USER,
    VPC,
    AwsProvider,
)
from tests.fakecloud.driver import Driver
from tests.fakecloud.moto_server import (
    ACCOUNT_ENV,
    ENDPOINT_ENV,
    MotoServer,
    access_keys,
    client,
    new_account,
)
from tests.fakecloud.provider import UNKNOWN, CloudError, from_plain, to_plain_map, urn_name
from tests.fakecloud.sdk_source import class_source
from tests.fakecloud.state import FakeCloud

REGION = "eu-west-1"
TAGS = {"ManagedBy": "provision", "PrefectWorkPool": "etl"}
TRUST = json.dumps(
    {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Service": "ecs-tasks.amazonaws.com"},
                "Action": "sts:AssumeRole",
            }
        ],
    }
)
POLICY_DOC = json.dumps(
    {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": ["ecs:DescribeTasks"], "Resource": "*"}],
    }
)


@pytest.fixture(scope="module")
def moto(moto_server: MotoServer) -> MotoServer:
    """The session's moto server (tests/shared_backend.py); tests are isolated by account."""
    return moto_server


@pytest.fixture
def account() -> str:
    """The test's own AWS account."""
    return new_account()


@pytest.fixture
def make_aws(moto: MotoServer, account: str, state_dir: Path) -> Callable[..., Driver]:
    """``make_aws(region=..., **env)``: a configured provider in the test's account."""

    def make(region: str | None = REGION, **env: str) -> Driver:
        env = {ENDPOINT_ENV: moto.endpoint, ACCOUNT_ENV: account, **env}
        driver = Driver(AwsProvider(AWS, state_dir=state_dir, env=env))
        driver.configure(**({"region": region} if region else {}))
        return driver

    return make


@pytest.fixture
def aws(make_aws: Callable[..., Driver]) -> Driver:
    """An AWS provider in eu-west-1, no env knobs."""
    return make_aws()


@pytest.fixture
def boto(moto: MotoServer, account: str) -> Callable[..., Any]:
    """``boto("iam")``: a boto3 client in the test's account."""
    return lambda service, region=REGION: client(service, moto.endpoint, account, region)


def plain(outputs: dict[str, Any]) -> dict[str, Any]:
    return to_plain_map(outputs)


def no_diff(aws: Driver, token: str, made: tuple[str, dict], inputs: dict) -> None:
    """The rerun contract: the same inputs against the create's outputs change nothing."""
    rid, outputs = made
    diff = aws.diff(token, "r", rid, outputs, inputs)
    assert not diff.changes, (token, diff.diffs)


def network(aws: Driver) -> dict[str, Any]:
    """A VPC with one subnet, as the ECS stack makes it."""
    vpc = aws.up(VPC, "vpc", {"cidrBlock": "10.42.0.0/16", "enableDnsHostnames": True})
    subnet_inputs = {
        "vpcId": vpc[0],
        "cidrBlock": "10.42.0.0/18",
        "availabilityZone": f"{REGION}a",
        "mapPublicIpOnLaunch": True,
        "tags": TAGS,
    }
    return {"vpc": vpc, "subnet": aws.up(SUBNET, "subnet", subnet_inputs), "inputs": subnet_inputs}


# ------------------------------------------------------- faithful to pulumi-aws
_RESOURCE_BASE_PROPERTIES = {"urn", "pulumi_resource_name", "pulumi_resource_type"}


def _sdk_class(token: str) -> type:
    module, _, cls = token.split(":", 1)[1].partition("/")
    return getattr(importlib.import_module(f"pulumi_aws.{module}"), cls.rsplit(":", 1)[-1])


def _wire_names(cls: type) -> set[str]:
    found = set()
    for attr, member in inspect.getmembers(cls):
        if isinstance(member, property) and attr not in _RESOURCE_BASE_PROPERTIES:
            found.add(getattr(member.fget, "_pulumi_name", None) or attr)
    return found


def test_the_plugin_version_is_the_one_pulumi_aws_asks_for() -> None:
    sdk = Path(importlib.import_module("pulumi_aws").__file__).parent
    assert json.loads((sdk / "pulumi-plugin.json").read_text())["version"] == fake.VERSION


# Importing pulumi_aws.ec2 warns about the SDK's own deprecated EncryptionControl.
@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.parametrize("token", sorted(AWS.resources))
def test_token_and_names_match_the_installed_pulumi_aws(token: str) -> None:
    cls = _sdk_class(token)
    assert f"'{token}'" in class_source(cls), "the SDK registers exactly this token"
    args = getattr(importlib.import_module(cls.__module__), cls.__name__ + "Args")
    rtype = AWS.resources[token]
    assert rtype.inputs == _wire_names(args)
    assert rtype.computed <= _wire_names(cls)


@pytest.mark.parametrize("stack", ["stacks.aws_ecs", "stacks.aws_worker"])
def test_the_ecs_stacks_use_only_emulated_types_and_invokes(stack: str) -> None:
    source = Path(importlib.import_module(stack).__file__).read_text()
    used = set(re.findall(r"aws\.(\w+)\.(\w+)\(", source))
    emulated = {(t.split(":")[1].split("/")[0], t.rsplit(":", 1)[-1]) for t in AWS.resources}
    assert {(module, name) for module, name in used if not name.endswith("Args")} <= emulated
    functions = set(re.findall(r"aws\.(get_\w+?)(?:_output)?\(", source))
    invokes = {re.sub(r"(?<!^)([A-Z])", r"_\1", t.rsplit(":", 1)[-1]).lower() for t in AWS.invokes}
    assert functions <= invokes


# ----------------------------------------------------------- every type, reruns
def test_every_type_the_stack_uses_reruns_without_changes_and_refreshes_clean(
    aws: Driver,
) -> None:
    """Create each type with the stack's inputs; Diff with the same inputs and Read find
    nothing to change (the idempotency tests depend on it)."""
    made: dict[str, tuple[str, dict, dict]] = {}

    def up(token: str, inputs: dict[str, Any]) -> dict[str, Any]:
        rid, outputs = aws.up(token, token.rsplit(":", 1)[-1], inputs)
        no_diff(aws, token, (rid, outputs), inputs)
        made.setdefault(token, (rid, outputs, inputs))
        return plain(outputs)

    cluster = up(CLUSTER, {"name": "etl-ecs", "tags": TAGS})
    up(LOG_GROUP, {"name": "/prefect/ecs/etl", "retentionInDays": 30, "tags": TAGS})
    role = up(ROLE, {"name": "etl-ecs-execution", "assumeRolePolicy": TRUST, "tags": TAGS})
    up(ROLE_POLICY_ATTACHMENT, {"role": role["id"], "policyArn": POLICY_ARN})
    up(fake.ROLE_POLICY, {"name": "logs", "role": role["id"], "policy": POLICY_DOC})
    vpc = up(VPC, {"cidrBlock": "10.42.0.0/16", "enableDnsSupport": True, "tags": TAGS})
    igw = up(fake.INTERNET_GATEWAY, {"vpcId": vpc["id"], "tags": TAGS})
    table = up(fake.ROUTE_TABLE, {"vpcId": vpc["id"], "tags": TAGS})
    up(
        fake.ROUTE,
        {"routeTableId": table["id"], "destinationCidrBlock": "0.0.0.0/0", "gatewayId": igw["id"]},
    )
    subnet = up(
        SUBNET,
        {"vpcId": vpc["id"], "cidrBlock": "10.42.0.0/18", "mapPublicIpOnLaunch": True},
    )
    up(fake.ROUTE_TABLE_ASSOCIATION, {"subnetId": subnet["id"], "routeTableId": table["id"]})
    up(
        SECURITY_GROUP,
        {
            "name": "etl-ecs-tasks",
            "vpcId": vpc["id"],
            "ingress": [],
            "egress": [{"protocol": "-1", "fromPort": 0, "toPort": 0, "cidrBlocks": ["0.0.0.0/0"]}],
        },
    )
    repo = up(
        REPOSITORY,
        {"name": "etl-images", "imageScanningConfiguration": {"scanOnPush": True}, "tags": TAGS},
    )
    up(fake.LIFECYCLE_POLICY, {"repository": repo["id"], "policy": LIFECYCLE})
    dlq = up(fake.QUEUE, {"name": "etl-dlq", "sqsManagedSseEnabled": True})
    redrive = json.dumps({"deadLetterTargetArn": dlq["arn"], "maxReceiveCount": 3})
    queue = up(fake.QUEUE, {"name": "etl-events", "redrivePolicy": redrive, "tags": TAGS})
    pattern = json.dumps({"source": ["aws.ecs"], "detail": {"clusterArn": [cluster["arn"]]}})
    rule = up(EVENT_RULE, {"name": "etl-task-events", "eventPattern": pattern, "tags": TAGS})
    up(fake.QUEUE_POLICY, {"queueUrl": queue["url"], "policy": queue_policy(queue, rule)})
    up(fake.EVENT_TARGET, {"rule": rule["id"], "targetId": "sqs", "arn": queue["arn"]})
    user = up(USER, {"name": "etl-ecs-worker", "tags": TAGS})
    policy = up(POLICY, {"name": "etl-ecs-worker", "policy": POLICY_DOC, "tags": TAGS})
    up(fake.USER_POLICY_ATTACHMENT, {"user": user["id"], "policyArn": policy["arn"]})
    up(ACCESS_KEY, {"user": user["id"]})
    # The worker: its secret, task definition and service (keyless pools).
    secret = up(fake.SECRET, {"name": "prefect/ecs/etl/KEY", "recoveryWindowInDays": 0})
    up(fake.SECRET_VERSION, {"secretId": secret["arn"], "secretString": "s3cret"})
    execution = up(ROLE, {"name": "etl-ecs-worker-execution", "assumeRolePolicy": TRUST})
    up(
        fake.ROLE_POLICY,
        {"name": "read", "role": execution["id"], "policy": read_policy(secret["arn"])},
    )
    definition = up(
        fake.TASK_DEFINITION,
        worker_definition(execution["arn"], role["arn"], secret["arn"], "/prefect/ecs/etl"),
    )
    up(
        fake.SERVICE,
        worker_service(cluster["arn"], definition["arn"], subnet["id"]),
    )
    assert set(made) == set(AWS.resources)

    for token, (rid, outputs, inputs) in made.items():
        assert outputs.keys() <= _wire_names(_sdk_class(token)), token
        assert plain(outputs)["id"] == rid, token
        read = aws.read(token, "r", rid, outputs)
        assert read.resource_id == rid, token
        no_diff(aws, token, (rid, read.properties), inputs)


POLICY_ARN = "arn:aws:iam::aws:policy/service-role/AmazonECSTaskExecutionRolePolicy"


def read_policy(*arns: str) -> str:
    """The worker execution role's grant: read exactly these secrets."""
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Action": ["secretsmanager:GetSecretValue"],
                    "Resource": list(arns),
                }
            ],
        }
    )


def containers(secret_arn: str | None, log_group: str, **extra: Any) -> str:
    """One worker container, as stacks/aws_worker.py writes it."""
    container: dict[str, Any] = {
        "name": "prefect-worker",
        "image": "prefecthq/prefect:3.8.8-python3.12",
        "essential": True,
        "command": ["prefect", "worker", "start", "--pool", "etl"],
        "environment": [{"name": "PREFECT_API_URL", "value": "http://prefect/api"}],
        "logConfiguration": {
            "logDriver": "awslogs",
            "options": {
                "awslogs-group": log_group,
                "awslogs-region": REGION,
                "awslogs-stream-prefix": "worker",
            },
        },
        **extra,
    }
    if secret_arn:
        container["secrets"] = [{"name": "PREFECT_API_KEY", "valueFrom": secret_arn}]
    return json.dumps([container])


def worker_definition(
    execution_arn: str, task_role_arn: str, secret_arn: str | None, log_group: str, **over: Any
) -> dict[str, Any]:
    """A Fargate task definition for the worker."""
    return {
        "family": "etl-ecs-worker",
        "requiresCompatibilities": ["FARGATE"],
        "networkMode": "awsvpc",
        "cpu": "1024",
        "memory": "2048",
        "executionRoleArn": execution_arn,
        "taskRoleArn": task_role_arn,
        "containerDefinitions": containers(secret_arn, log_group),
        "tags": TAGS,
        **over,
    }


def worker_service(cluster_arn: str, definition_arn: str, subnet: str, **over: Any) -> dict:
    """The worker's Fargate service, as stacks/aws_worker.py declares it."""
    return {
        "name": "etl-ecs-worker",
        "cluster": cluster_arn,
        "taskDefinition": definition_arn,
        "desiredCount": 1,
        "launchType": "FARGATE",
        "networkConfiguration": {"subnets": [subnet], "securityGroups": [], "assignPublicIp": True},
        "deploymentCircuitBreaker": {"enable": True, "rollback": True},
        "tags": TAGS,
        **over,
    }


LIFECYCLE = json.dumps(
    {
        "rules": [
            {
                "rulePriority": 1,
                "selection": {
                    "tagStatus": "any",
                    "countType": "imageCountMoreThan",
                    "countNumber": 30,
                },
                "action": {"type": "expire"},
            }
        ]
    }
)


def queue_policy(queue: dict[str, Any], rule: dict[str, Any]) -> str:
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {"Service": "events.amazonaws.com"},
                    "Action": "sqs:SendMessage",
                    "Resource": queue["arn"],
                    "Condition": {"ArnEquals": {"aws:SourceArn": rule["arn"]}},
                }
            ],
        }
    )


def test_outputs_are_aws_answers(aws: Driver, account: str, boto: Callable[..., Any]) -> None:
    role = plain(aws.up(ROLE, "r", {"name": "etl-role", "assumeRolePolicy": TRUST})[1])
    assert role["arn"] == f"arn:aws:iam::{account}:role/etl-role"
    assert role["uniqueId"] == boto("iam").get_role(RoleName="etl-role")["Role"]["RoleId"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", role["createDate"])
    assert role["path"] == "/" and role["maxSessionDuration"] == 3600, "schema defaults"
    made = network(aws)
    vpc, subnet = plain(made["vpc"][1]), plain(made["subnet"][1])
    assert re.fullmatch(r"vpc-[0-9a-f]{17}", vpc["id"])
    assert vpc["arn"] == f"arn:aws:ec2:{REGION}:{account}:vpc/{vpc['id']}"
    assert vpc["ownerId"] == account and vpc["mainRouteTableId"].startswith("rtb-")
    assert vpc["defaultSecurityGroupId"].startswith("sg-")
    assert subnet["arn"] == f"arn:aws:ec2:{REGION}:{account}:subnet/{subnet['id']}"
    assert subnet["availabilityZoneId"].startswith("euw1-az")
    queue = plain(aws.up(fake.QUEUE, "q", {"name": "etl-q"})[1])
    assert queue["url"] == f"https://sqs.{REGION}.amazonaws.com/{account}/etl-q" == queue["id"]
    assert queue["arn"] == f"arn:aws:sqs:{REGION}:{account}:etl-q"
    repo = plain(aws.up(REPOSITORY, "repo", {"name": "etl-images"})[1])
    assert repo["repositoryUrl"] == f"{account}.dkr.ecr.{REGION}.amazonaws.com/etl-images"
    assert repo["registryId"] == account


def test_provider_default_tags_reach_tags_all_and_aws(
    make_aws: Callable[..., Driver], boto: Callable[..., Any]
) -> None:
    aws = make_aws()
    aws.configure(region=REGION, defaultTags=json.dumps({"tags": {"ManagedBy": "provision"}}))
    rid, outputs = aws.up(USER, "u", {"name": "etl-user", "tags": {"Team": "data"}})
    assert plain(outputs)["tagsAll"] == {"ManagedBy": "provision", "Team": "data"}
    tags = boto("iam").list_user_tags(UserName=rid)["Tags"]
    assert {t["Key"]: t["Value"] for t in tags} == {"ManagedBy": "provision", "Team": "data"}
    read = plain(aws.read(USER, "u", rid, outputs).properties)
    assert read["tags"] == {"Team": "data"}, "own tags are AWS's minus the provider's"


# ---------------------------------------------------------------- diff semantics
@pytest.mark.parametrize(
    ("token", "key", "value"),
    [
        (VPC, "cidrBlock", "10.43.0.0/16"),
        (SUBNET, "cidrBlock", "10.42.64.0/18"),
        (SUBNET, "availabilityZone", f"{REGION}b"),
    ],
)
def test_immutable_network_properties_replace(aws: Driver, token: str, key: str, value: str):
    made = network(aws)
    if token == VPC:
        inputs, (rid, outputs) = {"cidrBlock": "10.42.0.0/16"}, made["vpc"]
    else:
        inputs, (rid, outputs) = made["inputs"], made["subnet"]
    diff = aws.diff(token, "r", rid, outputs, {**inputs, key: value})
    assert diff.replaces == [key]
    assert diff.detailed_diff[key].kind == PropertyDiffKind.UPDATE_REPLACE


@pytest.mark.parametrize(
    ("token", "inputs", "key", "value"),
    [
        (USER, {"name": "etl-user"}, "name", "etl-user2"),
        (REPOSITORY, {"name": "etl-images"}, "name", "etl-images2"),
        (CLUSTER, {"name": "etl-ecs"}, "name", "etl-ecs2"),
        (ROLE, {"name": "etl-role", "assumeRolePolicy": TRUST}, "name", "etl-role2"),
    ],
)
def test_renames_replace(aws: Driver, token: str, inputs: dict, key: str, value: str) -> None:
    rid, outputs = aws.up(token, "r", inputs)
    assert aws.diff(token, "r", rid, outputs, {**inputs, key: value}).replaces == [key]


def test_an_access_key_for_another_user_is_a_new_key(aws: Driver) -> None:
    aws.up(USER, "u", {"name": "etl-user"})
    rid, outputs = aws.up(ACCESS_KEY, "k", {"user": "etl-user"})
    assert aws.diff(ACCESS_KEY, "k", rid, outputs, {"user": "other"}).replaces == ["user"]
    assert not aws.diff(ACCESS_KEY, "k", rid, outputs, {"user": "etl-user"}).changes


def test_log_retention_updates_in_place(aws: Driver, boto: Callable[..., Any]) -> None:
    inputs = {"name": "/prefect/ecs/etl", "retentionInDays": 30}
    rid, outputs = aws.up(LOG_GROUP, "logs", inputs)
    diff = aws.diff(LOG_GROUP, "logs", rid, outputs, {**inputs, "retentionInDays": 60})
    assert diff.diffs == ["retentionInDays"] and diff.replaces == []
    updated = aws.update(LOG_GROUP, "logs", rid, outputs, {**inputs, "retentionInDays": 60})
    assert plain(updated)["retentionInDays"] == 60
    (group,) = boto("logs").describe_log_groups(logGroupNamePrefix=rid)["logGroups"]
    assert group["retentionInDays"] == 60
    assert not aws.diff(LOG_GROUP, "logs", rid, updated, {**inputs, "retentionInDays": 60}).changes


def test_documents_compare_by_meaning(aws: Driver, boto: Callable[..., Any]) -> None:
    inputs = {"name": "etl-role", "assumeRolePolicy": TRUST}
    rid, outputs = aws.up(ROLE, "r", inputs)
    doc = json.loads(TRUST)
    doc["Statement"][0]["Action"] = ["sts:AssumeRole"]  # a one-element list is the value
    respelled = {**inputs, "assumeRolePolicy": json.dumps(doc, indent=2, sort_keys=True)}
    assert not aws.diff(ROLE, "r", rid, outputs, respelled).changes
    doc["Statement"][0]["Action"] = "sts:TagSession"
    changed = {**inputs, "assumeRolePolicy": json.dumps(doc)}
    assert aws.diff(ROLE, "r", rid, outputs, changed).diffs == ["assumeRolePolicy"]
    aws.update(ROLE, "r", rid, outputs, changed)
    trust = boto("iam").get_role(RoleName=rid)["Role"]["AssumeRolePolicyDocument"]
    assert trust["Statement"][0]["Action"] == "sts:TagSession"


def test_security_group_rules_are_sets_and_updates_reach_ec2(
    aws: Driver, boto: Callable[..., Any]
) -> None:
    vpc = aws.up(VPC, "vpc", {"cidrBlock": "10.42.0.0/16"})[0]
    egress = [{"protocol": "-1", "fromPort": 0, "toPort": 0, "cidrBlocks": ["0.0.0.0/0"]}]
    inputs = {"name": "etl-tasks", "vpcId": vpc, "ingress": [], "egress": egress}
    rid, outputs = aws.up(SECURITY_GROUP, "sg", inputs)
    (group,) = boto("ec2").describe_security_groups(GroupIds=[rid])["SecurityGroups"]
    assert group["IpPermissions"] == []
    assert [p["IpProtocol"] for p in group["IpPermissionsEgress"]] == ["-1"]
    spelled = [{"protocol": "all", "fromPort": 0, "toPort": 0, "cidrBlocks": ["0.0.0.0/0"]}]
    assert not aws.diff(SECURITY_GROUP, "sg", rid, outputs, {**inputs, "egress": spelled}).changes

    https = [{"protocol": "tcp", "fromPort": 443, "toPort": 443, "cidrBlocks": ["0.0.0.0/0"]}]
    changed = {**inputs, "egress": https}
    assert aws.diff(SECURITY_GROUP, "sg", rid, outputs, changed).diffs == ["egress"]
    aws.update(SECURITY_GROUP, "sg", rid, outputs, changed)
    (group,) = boto("ec2").describe_security_groups(GroupIds=[rid])["SecurityGroups"]
    assert [(p["IpProtocol"], p.get("FromPort")) for p in group["IpPermissionsEgress"]] == [
        ("tcp", 443)
    ]


def test_check_fills_defaults_autonames_and_validates(aws: Driver) -> None:
    checked = to_plain_map(aws.check(USER, "worker", {}).inputs, internal=True)
    assert re.fullmatch(r"worker-[0-9a-f]{7}", checked["name"])
    assert checked["path"] == "/" and checked["forceDestroy"] is False
    assert checked["__defaults"] == ["forceDestroy", "path"]
    olds = {"name": from_plain(checked["name"])}
    again = aws.run(aws.provider.check(CheckRequest(aws.urn(USER, "worker"), olds, {}, b""))).inputs
    assert to_plain_map(again)["name"] == checked["name"], "kept across updates"

    def failures(token: str, inputs: dict) -> list[tuple[str, str]]:
        return [(f.property, f.reason) for f in aws.check(token, "r", inputs).failures]

    assert failures(LOG_GROUP, {"name": "g", "retentionInDays": 45})[0][1].startswith(
        "expected retention_in_days to be one of [0 1 3 5 7 14 30 60"
    )
    assert failures(VPC, {"cidrBlock": "10.42.0.1/16"}) == [
        (
            "cidrBlock",
            '"cidr_block" must contain a valid network CIDR, expected "10.42.0.0/16", got '
            "\"10.42.0.1/16\". Examine values at 'r.cidrBlock'.",
        )
    ]
    assert failures(VPC, {"cidrBlock": UNKNOWN}) == []
    assert failures(ROLE, {"name": "x" * 65, "assumeRolePolicy": "{"})[0][0] == "name"
    assert failures(SECURITY_GROUP, {"name": "sg-tasks"}) == [
        ("name", "invalid value for name (cannot begin with sg-). Examine values at 'r.name'.")
    ]


def test_preview_creates_nothing_and_leaves_computed_outputs_unknown(
    aws: Driver, boto: Callable[..., Any]
) -> None:
    rid, outputs = aws.up(ROLE, "r", {"name": "etl-role", "assumeRolePolicy": TRUST}, preview=True)
    assert rid == ""
    out = plain(outputs)
    assert out["arn"] == UNKNOWN and out["uniqueId"] == UNKNOWN and out["name"] == "etl-role"
    assert boto("iam").list_roles()["Roles"] == []
    vpc = plain(aws.up(VPC, "vpc", {"cidrBlock": "10.42.0.0/16"}, preview=True)[1])
    assert vpc["region"] == REGION, "known at plan time"


# ------------------------------------------------------------------ AWS's rules
def error_of(call: Callable[[], Any]) -> str:
    with pytest.raises(CloudError) as info:
        call()
    return str(info.value)


def test_errors_read_like_pulumi_aws(aws: Driver) -> None:
    aws.up(ROLE, "r", {"name": "etl-role", "assumeRolePolicy": TRUST})
    text = error_of(lambda: aws.up(ROLE, "r2", {"name": "etl-role", "assumeRolePolicy": TRUST}))
    assert re.fullmatch(
        r"creating IAM Role \(etl-role\): operation error IAM: CreateRole, https response error "
        r"StatusCode: 409, RequestID: \S+, EntityAlreadyExists: Role with name etl-role already "
        r"exists\.",
        text,
    ), text


def test_subnets_must_fit_their_vpc_and_not_overlap(aws: Driver) -> None:
    made = network(aws)
    vpc = made["vpc"][0]
    outside = {"vpcId": vpc, "cidrBlock": "10.99.0.0/24"}
    assert "api error InvalidSubnet.Range: The CIDR '10.99.0.0/24' is invalid." in error_of(
        lambda: aws.up(SUBNET, "s2", outside)
    )
    overlap = {"vpcId": vpc, "cidrBlock": "10.42.0.0/24"}
    assert "InvalidSubnet.Conflict" in error_of(lambda: aws.up(SUBNET, "s3", overlap))
    assert "InvalidVpc.Range" in error_of(lambda: aws.up(VPC, "big", {"cidrBlock": "10.0.0.0/8"}))
    # VPCs may overlap: AWS only refuses to peer them.
    aws.up(VPC, "twin", {"cidrBlock": "10.42.0.0/16"})


def test_routes_and_associations_read_by_import_id_answer_with_their_id(aws: Driver) -> None:
    # What adopting an interrupted create relies on: the bridged provider's Read accepts the
    # importer's form and hands back the id the create would have recorded.
    made = network(aws)
    vpc, subnet = made["vpc"][0], made["subnet"][0]
    gateway = aws.up(INTERNET_GATEWAY, "igw", {"vpcId": vpc})[0]
    table = aws.up(ROUTE_TABLE, "rt", {"vpcId": vpc})[0]
    route = {"routeTableId": table, "destinationCidrBlock": "0.0.0.0/0", "gatewayId": gateway}
    route_id, _ = aws.up(ROUTE, "route", route)
    assoc = {"subnetId": subnet, "routeTableId": table}
    assoc_id, _ = aws.up(ROUTE_TABLE_ASSOCIATION, "assoc", assoc)

    wire = {k: from_plain(v) for k, v in route.items()}
    read = aws.read(ROUTE, "route", f"{table}_0.0.0.0/0", {}, wire)
    assert read.resource_id == route_id
    assert plain(read.properties)["routeTableId"] == table
    assert plain(read.properties)["gatewayId"] == gateway
    wire = {k: from_plain(v) for k, v in assoc.items()}
    read = aws.read(ROUTE_TABLE_ASSOCIATION, "assoc", f"{subnet}/{table}", {}, wire)
    assert read.resource_id == assoc_id and assoc_id.startswith("rtbassoc-")
    # Nothing there: gone, so recovery lets the rerun create it.
    other = aws.up(ROUTE_TABLE, "rt2", {"vpcId": vpc})[0]
    assert not aws.read(ROUTE, "route", f"{other}_0.0.0.0/0", {}, {}).resource_id
    assert not aws.read(ROUTE_TABLE_ASSOCIATION, "assoc", f"{subnet}/{other}", {}, {}).resource_id


def test_a_security_group_name_prefix_gets_a_unique_name_per_create(aws: Driver) -> None:
    vpc = network(aws)["vpc"][0]
    inputs = {"vpcId": vpc, "namePrefix": "etl-ecs-tasks-", "description": "d"}
    names = {plain(aws.up(SECURITY_GROUP, f"sg{i}", inputs)[1])["name"] for i in range(2)}
    assert len(names) == 2
    assert all(re.fullmatch(r"etl-ecs-tasks-\d{26}", n) for n in names)


def test_a_vpc_with_subnets_cannot_be_deleted(aws: Driver, boto: Callable[..., Any]) -> None:
    made = network(aws)
    vpc, outputs = made["vpc"]
    text = error_of(lambda: aws.delete(VPC, "vpc", vpc, outputs))
    assert text.startswith(f"deleting EC2 VPC ({vpc}): operation error EC2: DeleteVpc")
    assert "api error DependencyViolation" in text
    aws.delete(SUBNET, "subnet", *made["subnet"])
    aws.delete(VPC, "vpc", vpc, outputs)
    assert boto("ec2").describe_vpcs(Filters=[{"Name": "vpc-id", "Values": [vpc]}])["Vpcs"] == []


def test_two_access_keys_per_user_and_no_user_deletion_while_keys_remain(
    aws: Driver, boto: Callable[..., Any]
) -> None:
    user = aws.up(USER, "u", {"name": "etl-worker"})
    first = aws.up(ACCESS_KEY, "k1", {"user": "etl-worker"})
    aws.up(ACCESS_KEY, "k2", {"user": "etl-worker"})
    assert "LimitExceeded: Cannot exceed quota for AccessKeysPerUser: 2" in error_of(
        lambda: aws.up(ACCESS_KEY, "k3", {"user": "etl-worker"})
    )
    assert "DeleteConflict: Cannot delete entity, must delete access keys first." in error_of(
        lambda: aws.delete(USER, "u", *user)
    )
    assert len(boto("iam").list_access_keys(UserName="etl-worker")["AccessKeyMetadata"]) == 2
    aws.delete(ACCESS_KEY, "k1", *first)
    assert len(boto("iam").list_access_keys(UserName="etl-worker")["AccessKeyMetadata"]) == 1


def test_a_keys_create_date_is_iams_the_third_key_is_iams_409_and_delete_removes_it(
    aws: Driver, moto: MotoServer, account: str
) -> None:
    # What a rotation relies on: the key's age (createDate, exported as credential_created_at)
    # is when IAM made it; IAM refuses a third key with its own error; a delete frees a slot.
    from datetime import UTC, datetime, timedelta

    aws.up(USER, "u", {"name": "etl-worker"})
    before = datetime.now(UTC).replace(microsecond=0)
    rid, outputs = aws.up(ACCESS_KEY, "k1", {"user": "etl-worker"})
    created = datetime.fromisoformat(outputs["createDate"].value.replace("Z", "+00:00"))
    assert before <= created <= datetime.now(UTC) + timedelta(seconds=1)
    (live,) = access_keys(moto.endpoint, account, "etl-worker")
    assert live["AccessKeyId"] == rid and live["CreateDate"].replace(microsecond=0) == created
    assert aws.read(ACCESS_KEY, "k1", rid, outputs).properties["createDate"].value == (
        outputs["createDate"].value
    )

    second = aws.up(ACCESS_KEY, "k2", {"user": "etl-worker"})
    text = error_of(lambda: aws.up(ACCESS_KEY, "k3", {"user": "etl-worker"}))
    assert text.startswith(
        "creating IAM Access Key (etl-worker): operation error IAM: CreateAccessKey, https "
        "response error StatusCode: 409, RequestID: "
    )
    assert text.endswith("LimitExceeded: Cannot exceed quota for AccessKeysPerUser: 2")

    aws.delete(ACCESS_KEY, "k1", rid, outputs)
    assert [k["AccessKeyId"] for k in access_keys(moto.endpoint, account, "etl-worker")] == [
        second[0]
    ]
    assert not aws.read(ACCESS_KEY, "k1", rid, outputs).resource_id
    aws.up(ACCESS_KEY, "k3", {"user": "etl-worker"})  # the slot is free again
    assert access_keys(moto.endpoint, account, "nobody") == []


def test_the_secret_is_secret_returned_once_and_kept_by_refresh(
    aws: Driver, boto: Callable[..., Any]
) -> None:
    aws.up(USER, "u", {"name": "etl-worker"})
    rid, outputs = aws.up(ACCESS_KEY, "k", {"user": "etl-worker"})
    assert outputs["secret"].is_secret and outputs["sesSmtpPasswordV4"].is_secret
    assert re.fullmatch(r"AKIA[A-Z0-9]{16}", rid)
    assert [
        k["AccessKeyId"]
        for k in boto("iam").list_access_keys(UserName="etl-worker")["AccessKeyMetadata"]
    ] == [rid]
    read = aws.read(ACCESS_KEY, "k", rid, outputs)
    assert read.properties["secret"].value == outputs["secret"].value
    assert read.properties["secret"].is_secret


def test_deleted_behind_pulumis_back_reads_as_gone_and_deletes_quietly(
    aws: Driver, boto: Callable[..., Any]
) -> None:
    rid, outputs = aws.up(LOG_GROUP, "logs", {"name": "/prefect/ecs/etl"})
    boto("logs").delete_log_group(logGroupName=rid)
    assert not aws.read(LOG_GROUP, "logs", rid, outputs).resource_id
    aws.delete(LOG_GROUP, "logs", rid, outputs)
    user = aws.up(USER, "u", {"name": "etl-user"})
    boto("iam").delete_user(UserName="etl-user")
    assert not aws.read(USER, "u", *user).resource_id


def test_accounts_are_isolated(make_aws: Callable[..., Driver], moto: MotoServer) -> None:
    make_aws().up(USER, "u", {"name": "etl-user"})
    other = new_account()
    assert client("iam", moto.endpoint, other).list_users()["Users"] == []
    identity = make_aws(**{ACCOUNT_ENV: other}).invoke(GET_CALLER_IDENTITY)
    assert identity["accountId"] == identity["id"] == other


def test_invokes(aws: Driver, account: str) -> None:
    assert aws.invoke(GET_CALLER_IDENTITY)["accountId"] == account
    zones = aws.invoke(
        GET_AVAILABILITY_ZONES,
        state="available",
        filters=[{"name": "opt-in-status", "values": ["opt-in-not-required"]}],
    )
    assert zones["names"] == [f"{REGION}{z}" for z in "abc"] and zones["id"] == REGION
    none = aws.invoke(
        GET_AVAILABILITY_ZONES, filters=[{"name": "opt-in-status", "values": ["opted-in"]}]
    )
    assert none["names"] == []
    module = importlib.import_module("pulumi_aws.get_availability_zones")
    assert zones.keys() <= _wire_names(module.GetAvailabilityZonesResult)


# ------------------------------------------------------ credentials, faults, IAM lag
def check_config(aws: Driver, **config: str) -> list[str]:
    """CheckConfig's failure reasons (the engine calls it before Configure)."""
    request = CheckRequest(
        "urn:pulumi:dev::test::pulumi:providers:aws::default",
        {},
        {k: from_plain(v) for k, v in config.items()},
        b"",
    )
    return [f.reason for f in asyncio.run(aws.provider.check_config(request)).failures]


def test_missing_credentials_and_region_fail_check_config_like_pulumi_aws(
    moto: MotoServer, state_dir: Path
) -> None:
    def unconfigured(**env: str) -> Driver:
        return Driver(
            AwsProvider(AWS, state_dir=state_dir, env={ENDPOINT_ENV: moto.endpoint, **env})
        )

    (reason,) = check_config(unconfigured(FAKECLOUD_AWS_NO_CREDENTIALS="1"), region=REGION)
    assert reason.startswith("No valid credential sources found.\nPlease see https://www.pulumi")
    (reason,) = check_config(unconfigured())
    assert reason.startswith("missing region information")
    assert check_config(unconfigured(AWS_REGION=REGION)) == []
    with pytest.raises(CloudError, match=r"^No valid credential sources found"):
        unconfigured(FAKECLOUD_AWS_NO_CREDENTIALS="1").configure(region=REGION)


def test_an_unknown_region_fails_like_a_dns_lookup(make_aws: Callable[..., Driver]) -> None:
    aws = make_aws(region="mars-north-1")
    assert "lookup iam.mars-north-1.amazonaws.com: no such host" in error_of(
        lambda: aws.up(USER, "u", {"name": "etl-user"})
    )


def test_the_region_list_is_read_once_however_many_threads_ask(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The engine's first operations arrive together. Each asking a fresh botocore session
    # parsed EC2's ~20 MB model once per thread: the plugin peaked at 222 MB instead of 120.
    import boto3

    monkeypatch.setattr(fake, "_REGIONS", [])
    monkeypatch.setattr(fake, "_SESSION", [])
    reads: list[str] = []
    real = boto3.session.Session.get_available_regions

    def counted(self: Any, service: str, *args: Any, **kwargs: Any) -> list[str]:
        reads.append(service)
        time.sleep(0.05)  # hold the read open while the other threads arrive
        return real(self, service, *args, **kwargs)

    monkeypatch.setattr(boto3.session.Session, "get_available_regions", counted)
    barrier = threading.Barrier(8)

    def ask(region: str) -> bool:
        barrier.wait()
        return fake.known_region(region)

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(ask, ["eu-west-1"] * 7 + ["mars-north-1"]))
    assert answers == [True] * 7 + [False]
    assert reads == ["ec2"]
    assert len(fake._SESSION) == 1  # the clients' session, so EC2's model is shared with them


def test_injected_faults_name_the_resource_and_are_logged(
    make_aws: Callable[..., Driver], cloud: FakeCloud, boto: Callable[..., Any]
) -> None:
    fault = f"create:{ROLE}@once"
    aws = make_aws(FAKECLOUD_FAULTS=fault)
    inputs = {"name": "etl-role", "assumeRolePolicy": TRUST}
    assert error_of(lambda: aws.up(ROLE, "execution", inputs)).endswith(
        f"api error ServiceUnavailable: Service Unavailable (injected by FAKECLOUD_FAULTS: {fault})"
    )
    assert boto("iam").list_roles()["Roles"] == []
    aws.up(ROLE, "execution", inputs)
    creates = cloud.calls("create", ROLE)
    assert [(c["outcome"], c["name"]) for c in creates] == [
        ("error", "execution"),
        ("ok", "execution"),
    ]
    assert creates[1]["cloud"] == "aws" and creates[1]["id"] == "etl-role"


def test_iam_propagation(make_aws: Callable[..., Driver]) -> None:
    aws = make_aws(FAKECLOUD_AWS_PROPAGATION_MS="60000")
    aws.up(ROLE, "r", {"name": "etl-role", "assumeRolePolicy": TRUST})
    text = error_of(
        lambda: aws.up(ROLE_POLICY_ATTACHMENT, "a", {"role": "etl-role", "policyArn": POLICY_ARN})
    )
    assert "NoSuchEntity: The role with name etl-role cannot be found." in text
    aws.up(USER, "u", {"name": "etl-user"})
    text = error_of(lambda: aws.up(ACCESS_KEY, "k", {"user": "etl-user"}))
    assert "NoSuchEntity: The user with name etl-user cannot be found." in text
    text = error_of(lambda: aws.up(CLUSTER, "c", {"name": "etl-ecs"}))
    assert "InvalidParameterException: Unable to assume the service linked role." in text
    # Once propagated (no lag configured), the same calls succeed.
    patient = make_aws()
    patient.up(ROLE_POLICY_ATTACHMENT, "a", {"role": "etl-role", "policyArn": POLICY_ARN})
    patient.up(CLUSTER, "c", {"name": "etl-ecs"})


# ------------------------------------------------------------------ concurrency
def max_in_flight(spans: list[tuple[float, float]]) -> int:
    """The most ``(start, end)`` spans open at one moment (touching spans do not overlap)."""
    events = sorted([(start, 1) for start, _ in spans] + [(end, -1) for _, end in spans])
    level = peak = 0
    for _, step in events:  # at equal times an end (-1) sorts before a start
        level += step
        peak = max(peak, level)
    return peak


def test_concurrent_operations_overlap_at_aws(
    make_aws: Callable[..., Driver],
    cloud: FakeCloud,
    boto: Callable[..., Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The engine sends up to --parallel Create/Read/Delete calls at once, and the plugin's
    grpc.aio server runs each as a coroutine on its one event loop, as ``asyncio.gather``
    does here. pulumi-aws serves them concurrently, so the fake must too: with every AWS
    request lagging FAKECLOUD_AWS_LATENCY_MS, the operations' boto3 calls overlap instead of
    queueing behind each other, and FAKECLOUD_DELAY_MS still holds each operation back."""
    latency, delay = 0.2, 0.15
    spans: dict[str, list[tuple[float, float]]] = {"create": [], "read": [], "delete": []}

    def timed(op: str, action: Callable[..., Any], *args: Any) -> Any:
        start = time.monotonic()
        try:
            return action(*args)
        finally:
            spans[op].append((start, time.monotonic()))

    class TimedLogGroup(fake.LogGroup):
        """The fake's log group, recording when each operation's AWS calls start and end."""

        def create(self, ctx: Any, inputs: Any) -> Any:
            return timed("create", super().create, ctx, inputs)

        def read(self, ctx: Any, rid: str, olds: Any) -> Any:
            return timed("read", super().read, ctx, rid, olds)

        def delete(self, ctx: Any, rid: str, olds: Any) -> None:
            timed("delete", super().delete, ctx, rid, olds)

    monkeypatch.setitem(AWS.resources, LOG_GROUP, TimedLogGroup())
    aws = make_aws(
        FAKECLOUD_AWS_LATENCY_MS=str(int(latency * 1000)), FAKECLOUD_DELAY_MS=str(int(delay * 1000))
    )
    provider = aws.provider

    def at_once(*calls: Any) -> tuple[list[Any], float]:
        async def gather() -> list[Any]:
            return await asyncio.gather(*calls)

        start = time.monotonic()
        results = asyncio.run(gather())
        return results, time.monotonic() - start

    def check_overlap(done: list[tuple[float, float]], wall: float) -> None:
        """The operations' AWS calls ran side by side: the whole batch took about as long
        as its slowest operation plus the injected delay, not the sum of all of them."""
        serial = sum(end - start for start, end in done)
        busy = max(end for _, end in done) - min(start for start, _ in done)
        assert max_in_flight(done) >= 2, done
        assert busy < serial / 2, (busy, serial)
        assert delay <= wall < delay + serial / 2, (wall, serial)

    # Four creates; each is CreateLogGroup, PutRetentionPolicy, DescribeLogGroups and
    # ListTagsForResource: 0.8 s of AWS round trips, 3.2 s one after another.
    groups = [f"/prefect/pool-{i}" for i in range(4)]
    creates = [
        CreateRequest(
            aws.urn(LOG_GROUP, name),
            aws.checked(LOG_GROUP, name, {"name": name, "retentionInDays": 7}),
            60,
            False,
        )
        for name in groups
    ]
    created, wall = at_once(*(provider.create(request) for request in creates))
    assert [response.resource_id for response in created] == groups
    assert len(spans["create"]) == len(groups)
    check_overlap(spans["create"], wall)
    listed = boto("logs").describe_log_groups(logGroupNamePrefix="/prefect/")["logGroups"]
    assert [(g["logGroupName"], g["retentionInDays"]) for g in listed] == [(g, 7) for g in groups]
    # The call log still brackets each create, and each waited out its injected delay.
    begins = {c["name"]: c["ts"] for c in cloud.calls("create", LOG_GROUP, phase="begin")}
    ends = {c["name"]: c["ts"] for c in cloud.calls("create", LOG_GROUP)}
    assert begins.keys() == ends.keys() == {urn_name(r.urn) for r in creates}
    assert all(ends[name] - begins[name] >= delay for name in begins)

    # Then reads and deletes at once, as a refresh and a destroy send them.
    rows = list(zip(creates, created, strict=True))
    reads = [ReadRequest(q.urn, r.resource_id, r.properties, q.properties) for q, r in rows[:2]]
    deletes = [DeleteRequest(q.urn, r.resource_id, r.properties, 60) for q, r in rows[2:]]
    answers, wall = at_once(
        *(provider.read(request) for request in reads),
        *(provider.delete(request) for request in deletes),
    )
    assert [answer.resource_id for answer in answers[:2]] == groups[:2]
    check_overlap(spans["read"] + spans["delete"], wall)
    listed = boto("logs").describe_log_groups(logGroupNamePrefix="/prefect/")["logGroups"]
    assert [g["logGroupName"] for g in listed] == groups[:2]


# --------------------------------------------------------------- the real engine
@pytest.mark.e2e
def test_smoke_through_the_engine(tmp_path: Path, moto: MotoServer, account: str) -> None:
    """A user with a key and a VPC with a subnet: up, an unchanged rerun, refresh, destroy."""
    import pulumi
    import pulumi_aws

    from tests.fakecloud.harness import engine_env, inline_stack, require_pulumi_root

    require_pulumi_root()
    env = engine_env(
        tmp_path,
        extra={
            ENDPOINT_ENV: moto.endpoint,
            ACCOUNT_ENV: account,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
        },
    )
    cloud = FakeCloud(env["FAKECLOUD_STATE_DIR"])

    def program() -> None:
        identity = pulumi_aws.get_caller_identity_output()
        user = pulumi_aws.iam.User("worker", name="smoke-worker", tags=TAGS)
        key = pulumi_aws.iam.AccessKey("key", user=user.name)
        vpc = pulumi_aws.ec2.Vpc("vpc", cidr_block="10.42.0.0/16", tags=TAGS)
        pulumi_aws.ec2.Subnet("subnet", vpc_id=vpc.id, cidr_block="10.42.0.0/24")
        pulumi.export("account", identity.account_id)
        pulumi.export("key", key.id)
        pulumi.export("secret", key.secret)

    config = {
        "aws:region": REGION,
        "aws:defaultTags": json.dumps({"tags": {"ManagedBy": "provision"}}),
    }
    stack = inline_stack(tmp_path, env, program, config=config)
    first = stack.up()
    assert first.summary.resource_changes == {"create": 5}
    assert first.outputs["account"].value == account and first.outputs["secret"].secret
    iam = client("iam", moto.endpoint, account)
    keys = iam.list_access_keys(UserName="smoke-worker")["AccessKeyMetadata"]
    assert [k["AccessKeyId"] for k in keys] == [first.outputs["key"].value]

    assert stack.up().summary.resource_changes == {"same": 5}
    assert stack.refresh().summary.resource_changes == {"same": 5}
    assert stack.preview().change_summary == {"same": 5}
    assert {"check_config", "configure", "invoke", "check", "diff", "create", "read"} <= {
        c["op"] for c in cloud.calls()
    }

    stack.destroy()
    assert iam.list_users()["Users"] == []
    ec2 = client("ec2", moto.endpoint, account, REGION)
    assert [v for v in ec2.describe_vpcs()["Vpcs"] if not v["IsDefault"]] == []


# ------------------------------------------------- the worker: secrets, tasks, service
def test_a_secret_holds_its_value_marked_secret_and_reads_it_back(
    aws: Driver, boto: Callable[..., Any], account: str
) -> None:
    rid, outputs = aws.up(
        fake.SECRET, "s", {"name": "prefect/ecs/etl/KEY", "recoveryWindowInDays": 0, "tags": TAGS}
    )
    secret = plain(outputs)
    assert re.fullmatch(
        rf"arn:aws:secretsmanager:{REGION}:{account}:secret:prefect/ecs/etl/KEY-\w{{6}}", rid
    )
    assert secret["arn"] == secret["id"] == rid and secret["name"] == "prefect/ecs/etl/KEY"
    vid, version = aws.up(fake.SECRET_VERSION, "v", {"secretId": rid, "secretString": "s3cret"})
    assert version["secretString"].is_secret, "never a plain output"
    assert vid == f"{rid}|{plain(version)['versionId']}"
    assert plain(version)["versionStages"] == ["AWSCURRENT"]
    assert boto("secretsmanager").get_secret_value(SecretId=rid)["SecretString"] == "s3cret"
    read = aws.read(fake.SECRET_VERSION, "v", vid, version)
    assert read.properties["secretString"].is_secret
    assert read.properties["secretString"].value == "s3cret"
    # A new value is a new version: the value forces a replacement.
    diff = aws.diff(fake.SECRET_VERSION, "v", vid, version, {"secretId": rid, "secretString": "x"})
    assert diff.replaces == ["secretString"]


def test_a_secret_reads_by_its_name_too(aws: Driver) -> None:
    # What adopting a killed run's secret relies on: DescribeSecret takes the name.
    rid, _ = aws.up(fake.SECRET, "s", {"name": "prefect/ecs/etl/KEY"})
    read = aws.read(fake.SECRET, "s", "prefect/ecs/etl/KEY", {})
    assert read.resource_id == "prefect/ecs/etl/KEY"
    assert plain(read.properties)["arn"] == rid


def test_a_deleted_secrets_name_stays_taken_for_its_recovery_window(
    aws: Driver, boto: Callable[..., Any]
) -> None:
    inputs = {"name": "prefect/ecs/etl/KEY", "recoveryWindowInDays": 7}
    rid, outputs = aws.up(fake.SECRET, "s", inputs)
    aws.delete(fake.SECRET, "s", rid, outputs)
    assert not aws.read(fake.SECRET, "s", rid, outputs).resource_id, "scheduled is gone"
    text = error_of(lambda: aws.up(fake.SECRET, "s2", inputs))
    assert re.fullmatch(
        r"creating Secrets Manager Secret \(prefect/ecs/etl/KEY\): operation error Secrets "
        r"Manager: CreateSecret, https response error StatusCode: 400, RequestID: \S+, "
        r"InvalidRequestException: You can't create this secret because a secret with this name "
        r"is already scheduled for deletion\.",
        text,
    ), text
    # With no recovery window the name is free at once.
    now = {"name": "prefect/ecs/etl/OTHER", "recoveryWindowInDays": 0}
    rid, outputs = aws.up(fake.SECRET, "s3", now)
    aws.delete(fake.SECRET, "s3", rid, outputs)
    aws.up(fake.SECRET, "s4", now)
    assert "already exists" in error_of(lambda: aws.up(fake.SECRET, "s5", now))
    assert [(p, r) for p, r in check_failures(aws, fake.SECRET, {"recoveryWindowInDays": 3})]
    assert check_failures(aws, fake.SECRET, {"name": "bad name!"})[0][0] == "name"


def check_failures(aws: Driver, token: str, inputs: dict) -> list[tuple[str, str]]:
    return [(f.property, f.reason) for f in aws.check(token, "r", inputs).failures]


def worker_roles(aws: Driver) -> tuple[str, str]:
    """The worker's execution role and task role ARNs (both trust ECS tasks)."""
    execution = plain(
        aws.up(ROLE, "e", {"name": "etl-ecs-worker-execution", "assumeRolePolicy": TRUST})[1]
    )
    task = plain(aws.up(ROLE, "t", {"name": "etl-ecs-worker", "assumeRolePolicy": TRUST})[1])
    return execution["arn"], task["arn"]


@pytest.mark.parametrize(
    ("over", "message"),
    [
        (
            {"networkMode": "bridge"},
            "ClientException: Fargate only supports network mode 'awsvpc'.",
        ),
        (
            {"memory": "1024"},
            "ClientException: No Fargate configuration exists for given values: 1024 CPU, 1024 "
            "memory. See the Amazon ECS documentation for the valid values.",
        ),
        ({"cpu": None}, "ClientException: Fargate requires that 'cpu' be defined"),
        (
            {"executionRoleArn": None},
            "ClientException: When you are specifying container secrets, you must also specify "
            "a value for 'executionRoleArn'.",
        ),
        (
            {"taskRoleArn": "arn:aws:iam::123456789012:role/nope"},
            "ClientException: Role is not valid",
        ),
    ],
    ids=["not-awsvpc", "no-such-size", "no-cpu", "secrets-without-execution-role", "no-such-role"],
)
def test_task_definitions_are_refused_as_ecs_does(aws: Driver, over: dict, message: str) -> None:
    execution, task = worker_roles(aws)
    inputs = worker_definition(execution, task, "arn:aws:secretsmanager:x", "/g", **over)
    inputs = {k: v for k, v in inputs.items() if v is not None}
    text = error_of(lambda: aws.up(fake.TASK_DEFINITION, "td", inputs))
    assert text.startswith(
        "creating ECS Task Definition (etl-ecs-worker): operation error ECS: "
        "RegisterTaskDefinition, https response error StatusCode: 400"
    ), text
    assert message in text


def test_awslogs_on_fargate_needs_an_execution_role(aws: Driver) -> None:
    _, task = worker_roles(aws)
    inputs = worker_definition("", task, None, "/g")
    inputs.pop("executionRoleArn")
    assert (
        "ClientException: Fargate requires task definition to have execution role ARN to "
        "support log driver awslogs."
        in error_of(lambda: aws.up(fake.TASK_DEFINITION, "td", inputs))
    )


def test_a_role_made_moments_ago_is_not_valid_to_ecs_yet(make_aws: Callable[..., Driver]) -> None:
    aws = make_aws(FAKECLOUD_AWS_PROPAGATION_MS="60000")
    execution, task = worker_roles(aws)
    inputs = worker_definition(execution, task, None, "/g")
    assert "ClientException: Role is not valid" in error_of(
        lambda: aws.up(fake.TASK_DEFINITION, "td", inputs)
    )


def test_a_task_definition_is_a_revision_replaced_on_change_and_deregistered(
    aws: Driver, boto: Callable[..., Any], account: str
) -> None:
    execution, task = worker_roles(aws)
    inputs = worker_definition(execution, task, None, "/g")
    rid, outputs = aws.up(fake.TASK_DEFINITION, "td", inputs)
    out = plain(outputs)
    assert rid == out["id"] == "etl-ecs-worker" and out["revision"] == 1
    assert out["arn"] == f"arn:aws:ecs:{REGION}:{account}:task-definition/etl-ecs-worker:1"
    registered = boto("ecs").describe_task_definition(taskDefinition=out["arn"])["taskDefinition"]
    assert registered["taskRoleArn"] == task and registered["executionRoleArn"] == execution
    # ECS's own spelling (defaults added, fields reordered) is the same document.
    (container,) = json.loads(inputs["containerDefinitions"])
    respelled = {"cpu": 0, "mountPoints": [], **{k: container[k] for k in reversed(container)}}
    respelled.pop("essential")
    same = {**inputs, "containerDefinitions": json.dumps([respelled])}
    assert not aws.diff(fake.TASK_DEFINITION, "td", rid, outputs, same).changes
    changed = {**inputs, "containerDefinitions": containers(None, "/g", image="other:1")}
    assert aws.diff(fake.TASK_DEFINITION, "td", rid, outputs, changed).replaces == [
        "containerDefinitions"
    ]
    aws.delete(fake.TASK_DEFINITION, "td", rid, outputs)
    assert boto("ecs").list_task_definitions(status="ACTIVE")["taskDefinitionArns"] == []
    assert not aws.read(fake.TASK_DEFINITION, "td", rid, outputs).resource_id


def worker_setup(aws: Driver, *, grant: bool = True) -> dict[str, Any]:
    """Everything a worker service needs, made through the fake: returns their ids."""
    cluster = plain(aws.up(CLUSTER, "c", {"name": "etl-ecs"})[1])
    aws.up(LOG_GROUP, "logs", {"name": "/prefect/ecs/etl"})
    subnet = network(aws)["subnet"][0]
    execution, task = worker_roles(aws)
    secret = plain(
        aws.up(fake.SECRET, "s", {"name": "prefect/ecs/etl/KEY", "recoveryWindowInDays": 0})[1]
    )
    version = aws.up(fake.SECRET_VERSION, "v", {"secretId": secret["arn"], "secretString": "k"})
    if grant:
        policy = {
            "name": "read",
            "role": "etl-ecs-worker-execution",
            "policy": read_policy(secret["arn"]),
        }
        aws.up(fake.ROLE_POLICY, "read", policy)
    return {
        "cluster": cluster["arn"],
        "subnet": subnet,
        "execution": execution,
        "task": task,
        "secret": secret["arn"],
        "version": version,
    }


def worker_task_definition(aws: Driver, made: dict, **over: Any) -> str:
    inputs = worker_definition(
        made["execution"], made["task"], made["secret"], "/prefect/ecs/etl", **over
    )
    return plain(aws.up(fake.TASK_DEFINITION, f"td{len(over)}", inputs)[1])["arn"]


def test_a_service_runs_its_task_definition_in_the_cluster(
    aws: Driver, boto: Callable[..., Any], account: str
) -> None:
    made = worker_setup(aws)
    definition = worker_task_definition(aws, made)
    inputs = worker_service(made["cluster"], definition, made["subnet"])
    rid, outputs = aws.up(fake.SERVICE, "svc", inputs)
    assert rid == f"arn:aws:ecs:{REGION}:{account}:service/etl-ecs/etl-ecs-worker"
    (service,) = boto("ecs").describe_services(cluster="etl-ecs", services=[rid])["services"]
    assert (service["status"], service["desiredCount"], service["launchType"]) == (
        "ACTIVE",
        1,
        "FARGATE",
    )
    assert service["taskDefinition"] == definition
    assert service["networkConfiguration"]["awsvpcConfiguration"]["assignPublicIp"] == "ENABLED"
    no_diff(aws, fake.SERVICE, (rid, outputs), inputs)
    read = aws.read(fake.SERVICE, "svc", rid, outputs)
    no_diff(aws, fake.SERVICE, (rid, read.properties), inputs)
    # Adoption: the importer's <cluster>/<name>, with no state, reads back as the ARN.
    adopted = aws.read(fake.SERVICE, "svc", "etl-ecs/etl-ecs-worker", {})
    assert adopted.resource_id == rid
    assert plain(adopted.properties)["cluster"] == made["cluster"]
    assert not aws.read(fake.SERVICE, "svc", "etl-ecs/nothing-here", {}).resource_id
    # Subnets and security groups are sets.
    spelled = {**inputs, "networkConfiguration": {**inputs["networkConfiguration"]}}
    assert not aws.diff(fake.SERVICE, "svc", rid, outputs, spelled).changes

    # The same name again, while the first is active: ECS refuses (moto would replace it).
    text = error_of(lambda: aws.up(fake.SERVICE, "svc2", inputs))
    assert "InvalidParameterException: Creation of service was not idempotent." in text
    assert text.startswith("creating ECS Service (etl-ecs-worker): operation error ECS")

    # Scaling and a new deployment reach ECS.
    more = {**inputs, "desiredCount": 2, "forceNewDeployment": True, "triggers": {"v": "2"}}
    before = service["deployments"][0]["id"]
    aws.update(fake.SERVICE, "svc", rid, outputs, more)
    (service,) = boto("ecs").describe_services(cluster="etl-ecs", services=[rid])["services"]
    assert service["desiredCount"] == 2 and service["deployments"][0]["id"] != before

    # Delete drains it first (ECS refuses to delete a service scaled above 0).
    aws.delete(fake.SERVICE, "svc", rid, outputs)
    (service,) = boto("ecs").describe_services(cluster="etl-ecs", services=[rid])["services"]
    assert service["status"] == "INACTIVE"
    assert not aws.read(fake.SERVICE, "svc", rid, outputs).resource_id
    aws.up(fake.SERVICE, "svc3", inputs)  # the name is free again


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("no-grant", "is not authorized to perform: secretsmanager:GetSecretValue on resource"),
        ("deleted-secret", "unable to pull secrets or registry auth"),
        ("no-log-group", "The specified log group does not exist."),
        ("untrusted-role", "ECS was unable to assume the role"),
        ("no-network", "Network Configuration must be provided when networkMode 'awsvpc'"),
        ("no-cluster", "ClusterNotFoundException"),
    ],
)
def test_a_service_whose_tasks_cannot_start_fails_its_create(
    aws: Driver, boto: Callable[..., Any], case: str, message: str
) -> None:
    made = worker_setup(aws, grant=case != "no-grant")
    definition = worker_task_definition(aws, made)
    inputs = worker_service(made["cluster"], definition, made["subnet"])
    if case == "deleted-secret":
        boto("secretsmanager").delete_secret(SecretId=made["secret"], RecoveryWindowInDays=7)
    elif case == "no-log-group":
        boto("logs").delete_log_group(logGroupName="/prefect/ecs/etl")
    elif case == "untrusted-role":
        other = json.loads(TRUST)
        other["Statement"][0]["Principal"] = {"Service": "ec2.amazonaws.com"}
        boto("iam").update_assume_role_policy(
            RoleName="etl-ecs-worker", PolicyDocument=json.dumps(other)
        )
    elif case == "no-network":
        inputs.pop("networkConfiguration")
    elif case == "no-cluster":
        inputs["cluster"] = made["cluster"].replace("etl-ecs", "gone")
    text = error_of(lambda: aws.up(fake.SERVICE, "svc", inputs))
    assert message in text, text
    assert boto("ecs").list_services(cluster="etl-ecs")["serviceArns"] == []


def test_a_grant_on_another_secret_does_not_count(aws: Driver) -> None:
    made = worker_setup(aws, grant=False)
    other = made["secret"].replace("KEY", "OTHER")
    aws.up(
        fake.ROLE_POLICY,
        "read",
        {"name": "read", "role": "etl-ecs-worker-execution", "policy": read_policy(other)},
    )
    definition = worker_task_definition(aws, made)
    inputs = worker_service(made["cluster"], definition, made["subnet"])
    assert "AccessDeniedException" in error_of(lambda: aws.up(fake.SERVICE, "svc", inputs))


def test_policies_allow_as_iam_does() -> None:
    arn = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:prefect/ecs/etl/KEY-AbCdEf"
    allow = {"Statement": [{"Effect": "Allow", "Action": "secretsmanager:Get*", "Resource": "*"}]}
    deny = {"Statement": {"Effect": "Deny", "Action": ["*"], "Resource": [arn]}}
    scoped = json.loads(read_policy(arn.replace("-AbCdEf", "-??????")))
    assert fake.policies_allow([allow], "secretsmanager:GetSecretValue", arn)
    assert fake.policies_allow([scoped], "SecretsManager:GetSecretValue", arn)
    assert not fake.policies_allow([allow, deny], "secretsmanager:GetSecretValue", arn)
    assert not fake.policies_allow([], "secretsmanager:GetSecretValue", arn)
    assert not fake.policies_allow([scoped], "secretsmanager:PutSecretValue", arn)


def test_a_call_moto_answers_with_an_html_500_is_retried_as_the_real_sdk_retries_a_500(
    monkeypatch: pytest.MonkeyPatch,
):
    # moto turns an exception inside its server into an HTML page botocore cannot parse; the
    # real provider's SDK retries any 500, so the fake's wrapper does too, a bounded number of
    # times, and then reports it as a provider error.
    from botocore.parsers import ResponseParserError

    from tests.fakecloud import aws as fake_aws

    monkeypatch.setattr(fake_aws.time, "sleep", lambda _s: None)

    class Flaky:
        def __init__(self, failures: int) -> None:
            self.failures, self.calls = failures, 0

        def attach_role_policy(self, **params):
            self.calls += 1
            if self.calls <= self.failures:
                raise ResponseParserError("invalid XML received")
            return {"ok": params}

    recovers = Flaky(fake_aws.SERVER_ERROR_ATTEMPTS - 1)
    call = fake_aws.AwsCall(recovers, "attaching")
    assert call("attach_role_policy", RoleName="r") == {"ok": {"RoleName": "r"}}
    assert recovers.calls == fake_aws.SERVER_ERROR_ATTEMPTS

    never = Flaky(fake_aws.SERVER_ERROR_ATTEMPTS)
    with pytest.raises(fake_aws.AwsError, match="attaching: request send failed"):
        fake_aws.AwsCall(never, "attaching")("attach_role_policy", RoleName="r")
    assert never.calls == fake_aws.SERVER_ERROR_ATTEMPTS
