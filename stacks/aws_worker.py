"""A long-running container on ECS Fargate, as a service of an existing cluster: the job
submitter of an ``EcsPool`` (``stacks/aws_ecs.py``), run in the pool's own cluster.

``EcsWorker`` creates, beside the cluster it is given:

- an *execution* role of its own (trusted by ``ecs-tasks.amazonaws.com``): AWS's
  ``AmazonECSTaskExecutionRolePolicy`` (image pull, log delivery) plus
  ``secretsmanager:GetSecretValue`` on this container's secrets and nothing else. It is not the
  pool's execution role, which every job's task definition names: a job could then read the
  container's credential. And the submitter's policy may pass only the pool's roles
  (``PassPoolRolesToEcsTasks``), so no job can be launched with this one either;
- one Secrets Manager secret per secret variable, holding its value (a ``SecretVersion``),
  encrypted with the account's AWS managed key (``aws/secretsmanager``). The container gets a
  reference (``secrets[].valueFrom``, the secret's ARN), which the ECS agent resolves with the
  execution role when the task starts: the value is never in the task definition, in an
  ``environment`` entry or in a plain stack output. ECS needs ``kms:Decrypt`` only for a
  customer managed key (Amazon ECS developer guide, "Amazon ECS task execution IAM role",
  permissions for Secrets Manager secrets), so none is granted;
- a Fargate task definition (``awsvpc``; CPU and memory per task, default the ``TaskCpu`` and
  ``TaskMemory`` of prefect-aws's own ``ecs-worker deploy-service`` template: 1024 units and
  2048 MiB, PrefectHQ/prefect ``src/integrations/prefect-aws/prefect_aws/templates/ecs/
  service.json``) whose task role is the one given, logging to the given CloudWatch log group
  with the stream prefix it is given;
- a service running ``count`` copies in the given subnets and security group, with the
  deployment circuit breaker (and rollback) that template also turns on, and a new deployment
  whenever a secret's value changes (running tasks read secrets only when they start).

It knows nothing of what the container runs, nor of the tool that drives it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypedDict

import pulumi

from stacks import sdk_modules
from stacks.aws_ecs import ECS_TASKS_PRINCIPAL, EXECUTION_POLICY_ARN

aws = sdk_modules.load(
    "pulumi_aws",
    ecs=("_inputs", "service", "task_definition"),
    iam=("role", "role_policy", "role_policy_attachment"),
    secretsmanager=("secret", "secret_version"),
)

TYPE_TOKEN = "provision:aws:EcsWorker"

WORKER_CPU = 1024
"""CPU units per task (1024 = one vCPU): ``TaskCpu``'s default in prefect-aws's template."""
WORKER_MEMORY = 2048
"""MiB per task: ``TaskMemory``'s default in prefect-aws's template."""
SECRET_READ_ACTION = "secretsmanager:GetSecretValue"


@dataclass(frozen=True)
class EcsWorkerNames:
    """Physical names of the worker's resources; must already satisfy AWS's naming rules."""

    execution_role: str
    family: str
    service: str
    container: str
    secret_prefix: str
    """A secret is named this prefix and its variable's name."""


@dataclass
class EcsWorkerArgs:
    """Inputs of :class:`EcsWorker`: where it runs, as whom, and its container."""

    pool: str
    """Name of the pool it serves; used in tags and descriptions."""
    region: str
    names: EcsWorkerNames
    cluster_arn: pulumi.Input[str]
    subnet_ids: pulumi.Input[Sequence[str]]
    security_group_id: pulumi.Input[str | None]
    """``None``: ECS uses the VPC's default security group."""
    assign_public_ip: bool
    """A public IP per task: needed to reach the internet from public subnets with no NAT."""
    log_group_name: pulumi.Input[str]
    log_stream_prefix: str
    """awslogs stream prefix: the container's streams are ``<prefix>/<container>/<task id>``."""
    task_role_arn: pulumi.Input[str]
    """The identity the container runs as (its AWS credentials come from ECS)."""
    image: str
    command: Sequence[str]
    env: Mapping[str, str]
    """Plain environment values: nothing secret."""
    secret_env: Mapping[str, pulumi.Input[str]] = field(default_factory=dict)
    """Variable name → secret value: stored in Secrets Manager, referenced by the container."""
    count: int = 1
    cpu: int = WORKER_CPU
    memory: int = WORKER_MEMORY
    tags: Mapping[str, str] = field(default_factory=dict)


class EcsWorkerOutputs(TypedDict):
    """What the component registers and the stack exports, one name per value."""

    worker_service_name: pulumi.Output[str]
    worker_service_arn: pulumi.Output[str]
    worker_task_definition_arn: pulumi.Output[str]
    worker_execution_role_arn: pulumi.Output[str]
    worker_secret_arns: pulumi.Output[list[str]]
    """ARNs of the secrets (never their values), in variable-name order."""


def _doc(*statements: Mapping[str, Any]) -> dict[str, Any]:
    return {"Version": "2012-10-17", "Statement": list(statements)}


def container_definitions(
    *,
    name: str,
    image: str,
    command: Sequence[str],
    env: Mapping[str, str],
    secrets: Mapping[str, str],
    log_group: str,
    log_stream_prefix: str,
    region: str,
) -> list[dict[str, Any]]:
    """The task definition's one container: ``secrets`` maps a variable to a secret's ARN,
    which ECS resolves at start; ``env`` holds plain values only. Sorted, so the same inputs
    always render the same document."""
    container: dict[str, Any] = {
        "name": name,
        "image": image,
        "essential": True,
        "command": list(command),
        "environment": [{"name": k, "value": env[k]} for k in sorted(env)],
        "logConfiguration": {
            "logDriver": "awslogs",
            "options": {
                "awslogs-group": log_group,
                "awslogs-region": region,
                "awslogs-stream-prefix": log_stream_prefix,
            },
        },
    }
    if secrets:
        container["secrets"] = [{"name": k, "valueFrom": secrets[k]} for k in sorted(secrets)]
    return [container]


def read_secrets_policy(secret_arns: Sequence[str]) -> dict[str, Any]:
    """The execution role's grant: read exactly these secrets, nothing else."""
    return _doc(
        {
            "Sid": "ReadWorkerSecrets",
            "Effect": "Allow",
            "Action": [SECRET_READ_ACTION],
            "Resource": list(secret_arns),
        }
    )


def _slug(variable: str) -> str:
    """``PREFECT_API_KEY`` → ``prefect-api-key``, for resource names."""
    return re.sub(r"[^a-z0-9]+", "-", variable.lower()).strip("-")


class EcsWorker(pulumi.ComponentResource):
    """A container run as a Fargate service of an existing cluster; see the module doc.

    ``opts.depends_on`` is passed on to every child too: a component's own dependencies do not
    order its children, and the caller may need them to wait (a worker waits for its queue).
    """

    outputs: EcsWorkerOutputs

    def __init__(
        self, name: str, args: EcsWorkerArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__(TYPE_TOKEN, name, None, opts)
        after = pulumi.ResourceOptions(depends_on=opts.depends_on if opts else None)

        def child(**extra: Any) -> pulumi.ResourceOptions:
            return pulumi.ResourceOptions.merge(after, pulumi.ResourceOptions(parent=self, **extra))

        n = args.names
        tags = dict(args.tags)
        trust = json.dumps(
            _doc(
                {
                    "Effect": "Allow",
                    "Principal": {"Service": ECS_TASKS_PRINCIPAL},
                    "Action": "sts:AssumeRole",
                }
            )
        )
        execution_role = aws.iam.Role(
            f"{name}-execution",
            name=n.execution_role,
            description=f"ECS task execution role of the worker of pool {args.pool}: image "
            "pull, logs, and the worker's own secrets. Managed by provision."[:1000],
            assume_role_policy=trust,
            tags=tags,
            opts=child(),
        )
        ready: list[pulumi.Resource] = [
            aws.iam.RolePolicyAttachment(
                f"{name}-execution-managed",
                role=execution_role.name,
                policy_arn=EXECUTION_POLICY_ARN,
                opts=child(),
            )
        ]

        # -- Secrets: one per variable, in a fixed order (the names are known now, not in
        # apply(), so a preview shows every resource).
        arns: dict[str, pulumi.Output[str]] = {}
        versions: list[aws.secretsmanager.SecretVersion] = []
        for variable in sorted(args.secret_env):
            secret = aws.secretsmanager.Secret(
                f"{name}-secret-{_slug(variable)}",
                name=f"{n.secret_prefix}{variable}",
                description=f"{variable} of the worker of pool {args.pool}, read by its ECS "
                "tasks when they start. Managed by provision.",
                # Deleted at once on destroy: a recovery window would keep the name taken (a
                # new up fails with "scheduled for deletion") and the credential recoverable.
                recovery_window_in_days=0,
                tags=tags,
                opts=child(),
            )
            versions.append(
                aws.secretsmanager.SecretVersion(
                    f"{name}-secret-{_slug(variable)}-value",
                    secret_id=secret.arn,
                    # Pulumi keeps it encrypted in the state; marked here too, whatever the
                    # caller passed.
                    secret_string=pulumi.Output.secret(args.secret_env[variable]),
                    opts=child(),
                )
            )
            arns[variable] = secret.arn
        if arns:
            ready.append(
                aws.iam.RolePolicy(
                    f"{name}-read-secrets",
                    name="read-worker-secrets",
                    role=execution_role.name,
                    policy=pulumi.Output.all(*arns.values()).apply(
                        lambda values: json.dumps(read_secrets_policy(values))
                    ),
                    opts=child(),
                )
            )

        definition = aws.ecs.TaskDefinition(
            f"{name}-task-definition",
            family=n.family,
            requires_compatibilities=["FARGATE"],
            network_mode="awsvpc",
            cpu=str(args.cpu),
            memory=str(args.memory),
            execution_role_arn=execution_role.arn,
            task_role_arn=args.task_role_arn,
            container_definitions=pulumi.Output.all(
                pulumi.Output.from_input(args.log_group_name), pulumi.Output.all(**arns)
            ).apply(
                lambda v: json.dumps(
                    container_definitions(
                        name=n.container,
                        image=args.image,
                        command=args.command,
                        env=args.env,
                        secrets=v[1],
                        log_group=v[0],
                        log_stream_prefix=args.log_stream_prefix,
                        region=args.region,
                    )
                )
            ),
            tags=tags,
            opts=child(),
        )

        redeploy: dict[str, Any] = {}
        if versions:
            # ECS reads a secret when a task starts: a new value needs new tasks.
            redeploy = {
                "force_new_deployment": True,
                "triggers": {
                    "secret-versions": pulumi.Output.all(*(v.version_id for v in versions)).apply(
                        ",".join
                    )
                },
            }
        service = aws.ecs.Service(
            f"{name}-service",
            name=n.service,
            cluster=args.cluster_arn,
            task_definition=definition.arn,
            desired_count=args.count,
            launch_type="FARGATE",
            network_configuration=aws.ecs.ServiceNetworkConfigurationArgs(
                subnets=args.subnet_ids,
                security_groups=pulumi.Output.from_input(args.security_group_id).apply(
                    lambda group: [group] if group else []
                ),
                assign_public_ip=args.assign_public_ip,
            ),
            deployment_circuit_breaker=aws.ecs.ServiceDeploymentCircuitBreakerArgs(
                enable=True, rollback=True
            ),
            tags=tags,
            **redeploy,
            # Tasks start only once they can read their secrets and ship their logs.
            opts=child(depends_on=[*ready, *versions]),
        )

        self.outputs = EcsWorkerOutputs(
            worker_service_name=service.name,
            worker_service_arn=service.arn,
            worker_task_definition_arn=definition.arn,
            worker_execution_role_arn=execution_role.arn,
            worker_secret_arns=pulumi.Output.all(*arns.values()).apply(list),
        )
        self.register_outputs(dict(self.outputs))
