"""The IAM lint itself, on documents whose verdict AWS's reference makes plain."""

from __future__ import annotations

import pytest

from tests.iam_lint import expand, lint, overlaps

ACCOUNT = "arn:aws:{service}:us-east-1:123456789012:{resource}"


def arn(service: str, resource: str) -> str:
    return ACCOUNT.format(service=service, resource=resource)


def findings(*statements: dict) -> list[str]:
    return [str(f) for f in lint({"Version": "2012-10-17", "Statement": list(statements)})]


def allow(actions: list[str], resources: list[str] | str, sid: str = "S") -> dict:
    return {"Sid": sid, "Effect": "Allow", "Action": actions, "Resource": resources}


@pytest.mark.parametrize(
    ("resource", "arn_format", "expected"),
    [
        # A placeholder stands for a name; a statement's * for anything.
        (
            "arn:aws:ecs:r:1:cluster/pool",
            "arn:${Partition}:ecs:${Region}:${Account}:cluster/${ClusterName}",
            True,
        ),
        (
            "arn:aws:ecs:r:1:cluster/*",
            "arn:${Partition}:ecs:${Region}:${Account}:cluster/${ClusterName}",
            True,
        ),
        # A log group ARN ending in :* covers its streams.
        (
            "arn:aws:logs:r:1:log-group:/ecs/pool:*",
            "arn:${Partition}:logs:${Region}:${Account}:log-group:${LogGroupName}:log-stream:${LogStreamName}",
            True,
        ),
        # A cluster is not a task definition.
        (
            "arn:aws:ecs:r:1:cluster/pool",
            "arn:${Partition}:ecs:${Region}:${Account}:task-definition/${TaskDefinitionFamilyName}:${TaskDefinitionRevisionNumber}",
            False,
        ),
        # A placeholder stands for at least one character.
        (
            "arn:aws:ecs:r:1:cluster/",
            "arn:${Partition}:ecs:${Region}:${Account}:cluster/${ClusterName}",
            False,
        ),
    ],
    ids=["exact", "star", "log-streams", "wrong-type", "empty-name"],
)
def test_overlaps(resource, arn_format, expected):
    assert overlaps(resource, arn_format) is expected


def test_a_scoped_policy_with_the_right_resource_types_passes():
    assert not findings(
        allow(["ecs:RunTask"], arn("ecs", "task-definition/pool-flows:*")),
        allow(["ecs:StopTask", "ecs:DescribeTasks"], arn("ecs", "task/pool/*")),
        allow(["logs:GetLogEvents"], arn("logs", "log-group:/ecs/pool:*")),
        # Supports no resource type: * is its scope.
        allow(["ec2:DescribeSubnets", "ec2:DescribeVpcs"], "*"),
        allow(["sqs:ReceiveMessage"], arn("sqs", "pool-events")),
    )


def test_an_unknown_action_is_a_finding():
    assert findings(allow(["ecs:RunTasks"], "*")) == [
        "[policy/S] ecs:RunTasks: no such action in AWS's authorization reference"
    ]


def test_an_arn_the_action_cannot_be_authorized_on_is_a_finding():
    (finding,) = findings(allow(["ecs:RunTask"], arn("ecs", "cluster/pool")))
    assert "ecs:RunTask: scoped to arn:aws:ecs:us-east-1:123456789012:cluster/pool" in finding
    assert "task-definition/" in finding


def test_scoping_an_action_that_supports_only_star_is_a_finding():
    (finding,) = findings(allow(["ec2:DescribeSubnets"], arn("ec2", "subnet/subnet-1")))
    assert "supports only *" in finding


def test_a_scopable_action_on_star_is_a_finding():
    (finding,) = findings(allow(["iam:PassRole"], "*"))
    assert "iam:PassRole: granted on * although it supports resource-level scoping" in finding


def test_wildcard_actions_are_checked_one_by_one_and_denies_are_not_grants():
    assert "ecs:DescribeTasks" in expand("ecs:Describe*")
    assert findings(allow(["ecs:Describe*"], arn("ecs", "task/pool/*")))  # clusters, services...
    assert not findings({"Effect": "Deny", "Action": ["ecs:Nope"], "Resource": "*"})
