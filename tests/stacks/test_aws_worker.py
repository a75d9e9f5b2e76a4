"""EcsWorker under Pulumi mocks: the worker's execution role, secrets, task definition and
service; that a secret reaches the container only as a reference; and that a pool built for it
holds no IAM user and no access key.

Same machinery as ``test_aws_ecs.py`` (its AWS mock answers, ``tests/pulumi_mocks.py``'s
recording monitor); assertions run once the service, which depends on every other child, has
resolved.
"""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import pulumi
from pulumi.runtime.rpc import _special_secret_sig, _special_sig_key

from stacks.aws_ecs import EXECUTION_POLICY_ARN, EcsPool
from stacks.aws_worker import (
    TYPE_TOKEN,
    WORKER_CPU,
    WORKER_MEMORY,
    EcsWorker,
    EcsWorkerArgs,
    EcsWorkerNames,
    EcsWorkerOutputs,
    container_definitions,
    read_secrets_policy,
)
from tests.pulumi_mocks import (
    RecordingMonitor,
    assert_component_tree,
    check_when_resolved,
    monitor_fixture,
)
from tests.stacks.test_aws_ecs import (
    ACCOUNT,
    REGION,
    T_KEY,
    T_ROLE,
    T_ROLE_ATTACH,
    T_ROLE_POLICY,
    T_SECRET,
    T_SECRET_VERSION,
    T_SERVICE,
    T_TASK_DEFINITION,
    T_USER,
    T_USER_ATTACH,
    AwsMocks,
    _hex,
    make_args,
)

POOL = "etl"
AUTH = "admin:correct-horse-battery-staple"
CLUSTER_ARN = f"arn:aws:ecs:{REGION}:{ACCOUNT}:cluster/etl-ecs"
ROLE_ARN = f"arn:aws:iam::{ACCOUNT}:role/etl-ecs-worker"
SUBNETS = ["subnet-0123456789abcdef0", "subnet-0123456789abcdef1"]
GROUP = "sg-0123456789abcdef0"
SECRET_NAME = "prefect/ecs/etl/PREFECT_API_AUTH_STRING"
SECRET_ARN = f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:{SECRET_NAME}-AbCdEf"
COMMAND = ["prefect", "worker", "start", "--pool", "etl", "--type", "ecs"]
ENV = {
    "PREFECT_API_URL": "http://prefect.example:4200/api",
    "EXTRA_PIP_PACKAGES": "prefect-aws",
    "PREFECT_INTEGRATIONS_AWS_ECS_OBSERVER_SQS_QUEUE_NAME": "etl-ecs-events",
}
NAMES = EcsWorkerNames(
    execution_role="etl-ecs-worker-execution",
    family="etl-ecs-worker",
    service="etl-ecs-worker",
    container="prefect-worker",
    secret_prefix="prefect/ecs/etl/",
)
TAGS = {"ManagedBy": "provision", "PrefectWorkPool": POOL}

mon = monitor_fixture(AwsMocks)
preview_mon = monitor_fixture(AwsMocks, preview=True)


def make_args_for_worker(**overrides: Any) -> EcsWorkerArgs:
    base = EcsWorkerArgs(
        pool=POOL,
        region=REGION,
        names=NAMES,
        cluster_arn=CLUSTER_ARN,
        subnet_ids=SUBNETS,
        security_group_id=GROUP,
        assign_public_ip=True,
        log_group_name="/prefect/ecs/etl",
        log_stream_prefix="worker",
        task_role_arn=ROLE_ARN,
        image="prefecthq/prefect:3.8.8-python3.12",
        command=COMMAND,
        env=ENV,
        secret_env={"PREFECT_API_AUTH_STRING": pulumi.Output.secret(AUTH)},
        count=2,
        tags=TAGS,
    )
    return replace(base, **overrides)


def make_worker(opts: pulumi.ResourceOptions | None = None, **overrides: Any) -> EcsWorker:
    return EcsWorker("etl-worker", make_args_for_worker(**overrides), opts)


def after_all(worker: EcsWorker, mon: RecordingMonitor, check: Any) -> pulumi.Output:
    """``check(values)`` once the service (which waits for every other child) has resolved."""
    return check_when_resolved(mon, dict(worker.outputs), check)


def is_secret(value: Any) -> bool:
    """A recorded input the engine would receive marked secret."""
    return isinstance(value, dict) and value.get(_special_sig_key) == _special_secret_sig


def containers(mon: RecordingMonitor) -> list[dict[str, Any]]:
    return json.loads(mon.one(T_TASK_DEFINITION).inputs["containerDefinitions"])


WITH_SECRET = {
    (T_ROLE, "etl-worker-execution"),
    (T_ROLE_ATTACH, "etl-worker-execution-managed"),
    (T_SECRET, "etl-worker-secret-prefect-api-auth-string"),
    (T_SECRET_VERSION, "etl-worker-secret-prefect-api-auth-string-value"),
    (T_ROLE_POLICY, "etl-worker-read-secrets"),
    (T_TASK_DEFINITION, "etl-worker-task-definition"),
    (T_SERVICE, "etl-worker-service"),
}


# -- resources --------------------------------------------------------------------------------


@pulumi.runtime.test
def test_every_resource_type_name_and_parent(mon):
    worker = make_worker()

    def check(_):
        assert_component_tree(mon, TYPE_TOKEN, "etl-worker", WITH_SECRET)

    return after_all(worker, mon, check)


@pulumi.runtime.test
def test_an_open_server_gets_no_secret_resources(mon):
    worker = make_worker(secret_env={})

    def check(values):
        assert_component_tree(
            mon,
            TYPE_TOKEN,
            "etl-worker",
            {
                (T_ROLE, "etl-worker-execution"),
                (T_ROLE_ATTACH, "etl-worker-execution-managed"),
                (T_TASK_DEFINITION, "etl-worker-task-definition"),
                (T_SERVICE, "etl-worker-service"),
            },
        )
        assert "secrets" not in containers(mon)[0]
        service = mon.one(T_SERVICE).inputs
        assert "triggers" not in service and "forceNewDeployment" not in service
        assert values["worker_secret_arns"] == []

    return after_all(worker, mon, check)


@pulumi.runtime.test
def test_the_execution_role_reads_only_the_workers_secret(mon):
    worker = make_worker()

    def check(values):
        role = mon.one(T_ROLE)
        assert role.inputs["name"] == "etl-ecs-worker-execution"
        assert json.loads(role.inputs["assumeRolePolicy"])["Statement"] == [
            {
                "Effect": "Allow",
                "Principal": {"Service": "ecs-tasks.amazonaws.com"},
                "Action": "sts:AssumeRole",
            }
        ]
        assert mon.one(T_ROLE_ATTACH).inputs == {
            "role": "etl-ecs-worker-execution",
            "policyArn": EXECUTION_POLICY_ARN,
        }
        read = mon.one(T_ROLE_POLICY).inputs
        assert read["role"] == "etl-ecs-worker-execution"
        assert json.loads(read["policy"]) == {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": "ReadWorkerSecrets",
                    "Effect": "Allow",
                    "Action": ["secretsmanager:GetSecretValue"],
                    "Resource": [SECRET_ARN],
                }
            ],
        }
        # No kms:Decrypt: the secret uses the AWS managed key.
        assert "kmsKeyId" not in mon.one(T_SECRET).inputs
        assert values["worker_execution_role_arn"] == (
            f"arn:aws:iam::{ACCOUNT}:role/etl-ecs-worker-execution"
        )

    return after_all(worker, mon, check)


@pulumi.runtime.test
def test_the_secret_holds_the_value_marked_secret_and_is_deleted_at_once(mon):
    worker = make_worker()

    def check(values):
        secret = mon.one(T_SECRET).inputs
        assert secret["name"] == SECRET_NAME
        assert secret["recoveryWindowInDays"] == 0
        assert secret["tags"] == TAGS
        version = mon.one(T_SECRET_VERSION).inputs
        assert version["secretId"] == SECRET_ARN
        assert is_secret(version["secretString"]), "the value reaches the engine as a secret"
        assert version["secretString"]["value"] == AUTH
        assert values["worker_secret_arns"] == [SECRET_ARN]
        # The value appears in no other input of any resource.
        for r in mon.registrations.values():
            if r.type != T_SECRET_VERSION:
                assert AUTH not in json.dumps(r.inputs, default=str), r.name

    return after_all(worker, mon, check)


@pulumi.runtime.test
def test_even_a_plain_value_is_stored_as_a_secret(mon):
    worker = make_worker(secret_env={"PREFECT_API_KEY": "pnu_plain"})

    def check(_):
        assert is_secret(mon.one(T_SECRET_VERSION).inputs["secretString"])

    return after_all(worker, mon, check)


@pulumi.runtime.test
def test_task_definition(mon):
    worker = make_worker()

    def check(values):
        definition = mon.one(T_TASK_DEFINITION).inputs
        assert definition["family"] == "etl-ecs-worker"
        assert definition["requiresCompatibilities"] == ["FARGATE"]
        assert definition["networkMode"] == "awsvpc"
        assert (definition["cpu"], definition["memory"]) == ("1024", "2048")
        assert (WORKER_CPU, WORKER_MEMORY) == (1024, 2048)  # prefect-aws's template defaults
        assert definition["taskRoleArn"] == ROLE_ARN
        assert definition["executionRoleArn"] == (
            f"arn:aws:iam::{ACCOUNT}:role/etl-ecs-worker-execution"
        )
        assert definition["tags"] == TAGS
        (container,) = containers(mon)
        assert container == {
            "name": "prefect-worker",
            "image": "prefecthq/prefect:3.8.8-python3.12",
            "essential": True,
            "command": COMMAND,
            "environment": [{"name": k, "value": ENV[k]} for k in sorted(ENV)],
            "secrets": [{"name": "PREFECT_API_AUTH_STRING", "valueFrom": SECRET_ARN}],
            "logConfiguration": {
                "logDriver": "awslogs",
                "options": {
                    "awslogs-group": "/prefect/ecs/etl",
                    "awslogs-region": REGION,
                    "awslogs-stream-prefix": "worker",
                },
            },
        }
        # The secret is a reference, never a plain environment value.
        assert "PREFECT_API_AUTH_STRING" not in {e["name"] for e in container["environment"]}
        assert not is_secret(mon.one(T_TASK_DEFINITION).inputs["containerDefinitions"])
        assert values["worker_task_definition_arn"] == (
            f"arn:aws:ecs:{REGION}:{ACCOUNT}:task-definition/etl-ecs-worker:1"
        )

    return after_all(worker, mon, check)


@pulumi.runtime.test
def test_service(mon):
    worker = make_worker()

    def check(values):
        service = mon.one(T_SERVICE)
        inputs = service.inputs
        assert inputs["name"] == "etl-ecs-worker"
        assert inputs["cluster"] == CLUSTER_ARN
        assert inputs["taskDefinition"] == values["worker_task_definition_arn"]
        assert inputs["desiredCount"] == 2
        assert inputs["launchType"] == "FARGATE"
        assert inputs["networkConfiguration"] == {
            "subnets": SUBNETS,
            "securityGroups": [GROUP],
            "assignPublicIp": True,
        }
        assert inputs["deploymentCircuitBreaker"] == {"enable": True, "rollback": True}
        assert inputs["tags"] == TAGS
        # A new credential value means new tasks: they read secrets only when they start.
        version = mon.one(T_SECRET_VERSION)
        assert inputs["forceNewDeployment"] is True
        assert inputs["triggers"] == {
            "secret-versions": f"00000000-0000-4000-8000-{_hex(version.name, 12)}"
        }
        # Tasks start only once they can read the secret and ship logs.
        for dep in (mon.one(T_ROLE_POLICY), mon.one(T_ROLE_ATTACH), version):
            assert dep.urn in service.dependencies, dep.name
        assert values["worker_service_name"] == "etl-ecs-worker"
        assert values["worker_service_arn"] == (
            f"arn:aws:ecs:{REGION}:{ACCOUNT}:service/etl-ecs/etl-ecs-worker"
        )

    return after_all(worker, mon, check)


@pulumi.runtime.test
def test_no_security_group_and_no_public_ip(mon):
    worker = make_worker(security_group_id=None, assign_public_ip=False)

    def check(_):
        assert mon.one(T_SERVICE).inputs["networkConfiguration"] == {
            "subnets": SUBNETS,
            "securityGroups": [],
            "assignPublicIp": False,
        }

    return after_all(worker, mon, check)


@pulumi.runtime.test
def test_every_child_waits_for_what_the_worker_waits_for(mon):
    # The program passes depends_on=[work pool]: the children must wait for it too.
    first = pulumi.CustomResource("test:index:WorkPool", "work-pool", {})
    worker = make_worker(pulumi.ResourceOptions(depends_on=[first]))

    def check(_):
        pool = mon.one("test:index:WorkPool")
        component = mon.one(TYPE_TOKEN)
        assert pool.urn in component.dependencies
        for r in mon.registrations.values():
            if r.parent == component.urn:
                assert pool.urn in r.dependencies, r.name

    return after_all(worker, mon, check)


@pulumi.runtime.test
def test_outputs(mon):
    worker = make_worker()

    def check(values):
        names = list(EcsWorkerOutputs.__annotations__)
        assert list(worker.outputs) == names
        assert all(name.startswith("worker_") for name in names)
        assert AUTH not in json.dumps(values)

    return after_all(worker, mon, check)


@pulumi.runtime.test
def test_preview_registers_the_same_resources(preview_mon):
    worker = make_worker()

    def check(_):
        assert preview_mon.children(preview_mon.one(TYPE_TOKEN)) == WITH_SECRET

    return after_all(worker, preview_mon, check)


# -- a keyless pool and its worker, together ---------------------------------------------------


@pulumi.runtime.test
def test_a_keyless_pool_and_its_worker_hold_no_user_and_no_key(mon):
    pool = EcsPool("etl", make_args(worker_role="etl-ecs-worker"))
    outputs = pool.outputs
    worker = make_worker(
        cluster_arn=outputs["cluster_arn"],
        subnet_ids=outputs["subnet_ids"],
        security_group_id=outputs["security_group_id"],
        log_group_name=outputs["log_group_name"],
        task_role_arn=outputs["worker_role_arn"],
    )

    def check(_):
        for typ in (T_USER, T_USER_ATTACH, T_KEY):
            assert mon.of_type(typ) == [], typ
        definition = mon.one(T_TASK_DEFINITION)
        # The task role is the pool's worker role, which holds the worker policy.
        assert definition.inputs["taskRoleArn"] == ROLE_ARN
        attach = mon.one(T_ROLE_ATTACH, "etl-worker-role-policy")
        assert attach.inputs["role"] == "etl-ecs-worker"
        assert attach.urn in definition.dependencies
        network = mon.one(T_SERVICE).inputs["networkConfiguration"]
        assert len(network["subnets"]) == 3 and network["securityGroups"][0].startswith("sg-")

    return check_when_resolved(mon, {**pool.outputs, **worker.outputs}, check)


# -- pure helpers -----------------------------------------------------------------------------


def test_container_definitions_without_secrets():
    (container,) = container_definitions(
        name="c",
        image="i",
        command=["x"],
        env={"B": "2", "A": "1"},
        secrets={},
        log_group="/g",
        log_stream_prefix="p",
        region="us-east-1",
    )
    assert "secrets" not in container
    assert container["environment"] == [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]


def test_read_secrets_policy_lists_exactly_the_given_arns():
    doc = read_secrets_policy(["arn:1", "arn:2"])
    (statement,) = doc["Statement"]
    assert statement["Action"] == ["secretsmanager:GetSecretValue"]
    assert statement["Resource"] == ["arn:1", "arn:2"]
