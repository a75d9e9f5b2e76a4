"""Every IAM policy the AWS stack writes, linted against AWS's own authorization data.

The documents are taken from the offline plan (``preview --offline --json``), exactly as a pull
request reviewer sees them: the identity policies (``aws:iam/policy:Policy`` and
``aws:iam/rolePolicy:RolePolicy``) and the resource policies' statements (the queue policy),
for each ECS pool shape. ``tests/iam_lint.py`` holds the rules and their source.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.iam_lint import _formats, expand, lint

IDENTITY_POLICIES = {"aws:iam/policy:Policy", "aws:iam/rolePolicy:RolePolicy"}
RESOURCE_POLICIES = {"aws:sqs/queuePolicy:QueuePolicy"}

SHAPES = {
    "ecs:push": ["--type", "ecs:push"],
    "ecs": ["--type", "ecs"],
    "ecs-task-role": [
        "--type",
        "ecs",
        "--task-role-policy-arn",
        "arn:aws:iam::aws:policy/ReadOnlyAccess",
    ],
    "ecs-existing-vpc": [
        "--type",
        "ecs",
        "--vpc-id",
        "vpc-0abc1234",
        "--subnet-ids",
        "subnet-0abc1234,subnet-0def5678",
    ],
    # Keyless: the worker policy on the worker's task role, and its execution role's grant on
    # its secret (read-worker-secrets).
    "ecs-with-worker": ["--type", "ecs", "--with-worker"],
}


def documents(args: list[str], monkeypatch, tmp_path) -> list[tuple[str, dict]]:
    """(resource name, policy document) of every policy in the offline plan for ``args``."""
    from cli.main import app

    monkeypatch.setenv("PROVISION_HOME", str(tmp_path))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    result = CliRunner().invoke(
        app, ["preview", "p1", *args, "--region", "us-east-1", "--offline", "--json"]
    )
    assert result.exit_code == 0, result.output
    plan = json.loads(result.stdout)
    found = []
    for resource in plan["resources"]:
        if resource["type"] in IDENTITY_POLICIES | RESOURCE_POLICIES:
            document = resource["inputs"]["policy"]
            found.append(
                (resource["name"], json.loads(document) if isinstance(document, str) else document)
            )
    return found


@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_every_policy_is_least_privilege_by_aws_reference(shape, monkeypatch, tmp_path):
    docs = documents(SHAPES[shape], monkeypatch, tmp_path)
    # The worker's policy is always there: a plan without it would lint nothing.
    assert any(name.endswith("worker-policy") for name, _ in docs), [n for n, _ in docs]
    problems = [str(f) for name, doc in docs for f in lint(doc, name)]
    assert problems == []


def test_the_docs_name_every_action_whose_only_scope_is_star(monkeypatch, tmp_path):
    # Issue 13: where AWS's data says an action supports only "*", that is its scope, and the
    # docs say so. The table lists exactly the *-only actions the stack grants, with their Sid.
    granted: set[tuple[str, str]] = set()
    for i, shape in enumerate(sorted(SHAPES)):
        for _, doc in documents(SHAPES[shape], monkeypatch, tmp_path / str(i)):
            for statement in doc["Statement"]:
                actions = statement["Action"]
                for action in actions if isinstance(actions, list) else [actions]:
                    granted |= {
                        (a, statement.get("Sid", ""))
                        for a in expand(action)
                        if _formats(a) == ("*",)
                    }
    doc = (Path(__file__).parents[2] / "docs" / "aws-grants.md").read_text()
    section = doc.split("### Actions whose only scope is `*`", 1)[1].split("\n### ", 1)[0]
    listed = set(re.findall(r"^\| `([a-z0-9]+:[A-Za-z0-9]+)` \| `(\w+)` \|", section, re.M))
    assert granted and listed == granted
