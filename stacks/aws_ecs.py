"""An AWS account's side of an ECS-on-Fargate job pool: cluster, roles, least grants, network.

``EcsPool`` creates, in one account and region:

- an ECS cluster;
- a task *execution* role (trusted by ``ecs-tasks.amazonaws.com``): AWS's
  ``AmazonECSTaskExecutionRolePolicy`` for image pulls and log delivery, plus
  ``logs:CreateLogGroup``, which that policy lacks and the awslogs driver needs whenever a task
  definition asks for ``awslogs-create-group`` (prefect#20237);
- optionally a task role the flows run as, holding only the managed policies it is given;
- the job submitter's identity, with one managed policy holding exactly the calls an ECS job
  submitter makes (:func:`worker_policy`), each scoped to this pool's cluster, task-definition
  family, roles, log group and queue. Either an IAM user with one access key (never replaced by
  a rerun, only by a new ``credential_rotation``, the new key made before the old one is
  deleted), the credential handed to a submitter that runs elsewhere; or, *keyless*
  (``worker_role``), an IAM role that ECS tasks assume, for a submitter that runs in the pool's
  own cluster (``stacks/aws_worker.py``): no user and no access key exist at all;
- networking: a VPC with one public subnet in each of up to three availability zones, an
  internet gateway, a route table with a default route, and a security group with no ingress
  and all egress; or nothing at all when an existing VPC and subnets are given;
- a CloudWatch log group with a retention period, so tasks never have to create one;
- an ECR repository (scan on push, a lifecycle policy keeping the last N images);
- for worker-based pools, task-state events: an EventBridge rule for this cluster's ECS task
  state changes feeding an SQS queue (with a dead-letter queue), which the worker polls to
  notice tasks that stop or fail to start.

Everything that takes tags gets ``ManagedBy=provision`` and ``PrefectWorkPool=<pool>``.
It is plain Pulumi: it knows nothing of the tool that drives it or of what submits the jobs.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypedDict

import pulumi

from stacks import sdk_modules

aws = sdk_modules.load(
    "pulumi_aws",
    "_inputs",
    "get_availability_zones",
    "get_caller_identity",
    cloudwatch=("event_rule", "event_target", "log_group"),
    ec2=(
        "_inputs",
        "internet_gateway",
        "route",
        "route_table",
        "route_table_association",
        "security_group",
        "subnet",
        "vpc",
    ),
    ecr=("_inputs", "lifecycle_policy", "repository"),
    ecs=("cluster",),
    iam=(
        "access_key",
        "policy",
        "role",
        "role_policy",
        "role_policy_attachment",
        "user",
        "user_policy_attachment",
    ),
    sqs=("queue", "queue_policy"),
)

TYPE_TOKEN = "provision:aws:EcsPool"

PARTITION = "aws"
"""Only the commercial partition is supported (regions are validated against it)."""

EXECUTION_POLICY_ARN = "arn:aws:iam::aws:policy/service-role/AmazonECSTaskExecutionRolePolicy"
ECS_TASKS_PRINCIPAL = "ecs-tasks.amazonaws.com"
MAX_AZS = 3

# Task-state events: the values of prefect-aws's own ``events-only`` CloudFormation template
# (templates/ecs/events-only.json): messages kept 7 days (dead letters 14), a visibility
# timeout matching the observer's own 300 s, and 3 receives before a message is dead-lettered.
EVENTS_RETENTION_SECONDS = 7 * 24 * 3600
EVENTS_DLQ_RETENTION_SECONDS = 14 * 24 * 3600
EVENTS_VISIBILITY_SECONDS = 300
EVENTS_MAX_RECEIVES = 3

WORKER_SQS_ACTIONS: tuple[str, ...] = (
    # prefect_aws.observers.ecs.SqsSubscriber: get_queue_url once, then receive_message,
    # delete_message (ack) and change_message_visibility (while a handler runs).
    "sqs:GetQueueUrl",
    "sqs:ReceiveMessage",
    "sqs:DeleteMessage",
    "sqs:ChangeMessageVisibility",
)


def _doc(*statements: Mapping[str, Any]) -> dict[str, Any]:
    return {"Version": "2012-10-17", "Statement": list(statements)}


def ecs_arn(region: str, account: str, resource: str) -> str:
    """``arn:aws:ecs:<region>:<account>:<resource>``."""
    return f"arn:{PARTITION}:ecs:{region}:{account}:{resource}"


def ecs_task_trust(account: str) -> dict[str, Any]:
    """Trust policy of a task role: ECS tasks of ``account`` only (``aws:SourceAccount`` keeps
    another account's ECS from assuming it: confused-deputy protection, as AWS documents)."""
    return _doc(
        {
            "Effect": "Allow",
            "Principal": {"Service": ECS_TASKS_PRINCIPAL},
            "Action": "sts:AssumeRole",
            "Condition": {"StringEquals": {"aws:SourceAccount": account}},
        }
    )


def registry_host(account: str, region: str) -> str:
    """The Docker host of an account's private ECR registry in ``region``."""
    return f"{account}.dkr.ecr.{region}.amazonaws.com"


def subnet_cidrs(vpc_cidr: str, count: int) -> list[str]:
    """``count`` equal subnets of ``vpc_cidr``, each a quarter of it (room for a fourth AZ)."""
    net = ipaddress.ip_network(vpc_cidr)
    return [str(s) for s in list(net.subnets(prefixlen_diff=2))[:count]]


def worker_policy(
    *,
    region: str,
    account: str,
    family_pattern: str,
    cluster_name: str,
    cluster_arn: str,
    role_arns: Sequence[str],
    log_group_name: str,
    queue_arn: str | None,
) -> dict[str, Any]:
    """The job submitter's policy: the calls prefect-aws's ECS worker and its observer make.

    Each statement is scoped as narrowly as AWS allows for its actions (the service
    authorization reference's resource types and condition keys); ``Resource: "*"`` appears
    only where the action has no resource type at all. ``queue_arn`` is ``None`` for push
    pools (no observer, no queue).
    """
    tasks = ecs_arn(region, account, f"task/{cluster_name}/*")
    statements: list[dict[str, Any]] = [
        {
            # _register_task_definition; scoped to the families the worker generates.
            "Sid": "RegisterPoolTaskDefinitions",
            "Effect": "Allow",
            "Action": ["ecs:RegisterTaskDefinition"],
            "Resource": ecs_arn(region, account, f"task-definition/{family_pattern}"),
        },
        {
            # _retrieve_task_definition (cached ARNs, match_latest_revision_in_family), the
            # observer's log forwarding, and auto_deregister_task_definition. Neither action
            # has a resource type: "*" is the only accepted resource.
            "Sid": "ReadAndRetireTaskDefinitions",
            "Effect": "Allow",
            "Action": ["ecs:DescribeTaskDefinition", "ecs:DeregisterTaskDefinition"],
            "Resource": "*",
        },
        {
            # _create_task_run: only the pool's families, only on this cluster.
            "Sid": "RunPoolTasksOnCluster",
            "Effect": "Allow",
            "Action": ["ecs:RunTask"],
            "Resource": ecs_arn(region, account, f"task-definition/{family_pattern}"),
            "Condition": {"ArnEquals": {"ecs:cluster": cluster_arn}},
        },
        {
            # kill_infrastructure (cancellation) and the observer's tag lookups.
            "Sid": "ManageClusterTasks",
            "Effect": "Allow",
            "Action": ["ecs:StopTask", "ecs:DescribeTasks"],
            "Resource": tasks,
        },
        {
            # RunTask carries the flow-run labels as tags, which needs TagResource; only as
            # part of RunTask, never on existing resources.
            "Sid": "TagTasksAtLaunch",
            "Effect": "Allow",
            "Action": ["ecs:TagResource"],
            "Resource": tasks,
            "Condition": {"StringEquals": {"ecs:CreateAction": "RunTask"}},
        },
        {
            # Task definitions name the execution (and task) role; passing them needs PassRole,
            # and only to ECS tasks.
            "Sid": "PassPoolRolesToEcsTasks",
            "Effect": "Allow",
            "Action": ["iam:PassRole"],
            "Resource": list(role_arns),
            "Condition": {"StringEquals": {"iam:PassedToService": ECS_TASKS_PRINCIPAL}},
        },
        {
            # _custom_network_configuration checks the subnets belong to vpc_id. Describe calls
            # have no resource type; the region condition is all that narrows them.
            "Sid": "CheckNetworkConfiguration",
            "Effect": "Allow",
            "Action": ["ec2:DescribeVpcs", "ec2:DescribeSubnets"],
            "Resource": "*",
            "Condition": {"StringEquals": {"ec2:Region": region}},
        },
        {
            # The observer forwards a crashed run's last container log lines.
            "Sid": "ReadPoolLogs",
            "Effect": "Allow",
            "Action": ["logs:GetLogEvents"],
            "Resource": (
                f"arn:{PARTITION}:logs:{region}:{account}:log-group:{log_group_name}:log-stream:*"
            ),
        },
    ]
    if queue_arn is not None:
        statements.append(
            {
                "Sid": "ConsumeTaskStateEvents",
                "Effect": "Allow",
                "Action": list(WORKER_SQS_ACTIONS),
                "Resource": queue_arn,
            }
        )
    return _doc(*statements)


STATEMENT_PURPOSE: dict[str, str] = {
    "RegisterPoolTaskDefinitions": "The worker registers a task definition per deployment, in "
    "families named prefect_<pool>_<deployment id>; only those families.",
    "ReadAndRetireTaskDefinitions": "Reusing a registered definition, forwarding a crashed "
    "run's logs and auto-deregistration read or retire definitions; AWS offers no resource "
    "type for these two actions, so they cannot be scoped.",
    "RunPoolTasksOnCluster": "Starting a flow run: only the pool's task definitions, and only "
    "on the pool's cluster.",
    "ManageClusterTasks": "Cancelling a flow run stops its task; the worker's observer reads "
    "task tags to match ECS events to flow runs. Only tasks of the pool's cluster.",
    "TagTasksAtLaunch": "RunTask carries the flow-run labels as tags; tagging is allowed only "
    "as part of RunTask, never on existing resources.",
    "PassPoolRolesToEcsTasks": "Task definitions name the pool's execution (and task) role; "
    "only those roles, and only to ECS tasks.",
    "CheckNetworkConfiguration": "The worker checks that the template's subnets belong to its "
    "VPC; EC2 describe calls cannot be scoped beyond the region.",
    "ReadPoolLogs": "The observer forwards a crashed run's last log lines to Prefect; only the "
    "pool's log group.",
    "ConsumeTaskStateEvents": "The worker's observer polls the pool's task-state queue to "
    "notice tasks that stop or never start; only that queue.",
}
"""Why each statement of :func:`worker_policy` exists, by ``Sid`` (for plans and docs)."""


def lifecycle_policy(keep_images: int) -> dict[str, Any]:
    """ECR lifecycle policy: expire everything but the ``keep_images`` newest images."""
    return {
        "rules": [
            {
                "rulePriority": 1,
                "description": f"Keep the last {keep_images} images",
                "selection": {
                    "tagStatus": "any",
                    "countType": "imageCountMoreThan",
                    "countNumber": keep_images,
                },
                "action": {"type": "expire"},
            }
        ]
    }


def task_events_pattern(cluster_arn: str) -> dict[str, Any]:
    """EventBridge pattern: ECS task state changes of one cluster (as prefect-aws's template)."""
    return {
        "source": ["aws.ecs"],
        "detail-type": ["ECS Task State Change"],
        "detail": {"clusterArn": [cluster_arn]},
    }


@dataclass(frozen=True)
class EcsPoolNames:
    """Physical names of the pool's resources; must already satisfy AWS's naming rules."""

    cluster: str
    execution_role: str
    task_role: str
    worker_user: str
    worker_policy: str
    log_group: str
    repository: str
    security_group: str
    network: str
    """``Name`` tag of the VPC, internet gateway and route table; subnets add their AZ."""
    events_queue: str
    events_dlq: str
    events_rule: str
    family_pattern: str
    """IAM pattern of the task-definition families the submitter may register and run."""


@dataclass
class EcsPoolArgs:
    """Inputs of :class:`EcsPool`."""

    pool: str
    """Name of the pool these resources serve; used in tags and descriptions."""
    region: str
    names: EcsPoolNames
    task_events: bool
    """Create the EventBridge rule and SQS queues (worker-based pools: the worker polls them)."""
    vpc_cidr: str = "10.42.0.0/16"
    vpc_id: str | None = None
    """An existing VPC: nothing network-related is created (give ``subnet_ids`` too)."""
    subnet_ids: Sequence[str] = ()
    log_retention_days: int = 30
    ecr_keep_images: int = 30
    task_role_policy_arns: Sequence[str] = field(default_factory=tuple)
    """Managed policies for the flows' task role; the role exists only when this is non-empty."""
    worker_role: str | None = None
    """Keyless: the submitter is an IAM role of this name that ECS tasks assume (the task role
    of a submitter running in the pool's cluster), instead of an IAM user with an access key."""
    zones: Sequence[str] = ()
    """The availability zones an earlier run chose (its ``availability_zones`` output), used as
    they are: a rerun neither asks the account again nor reshapes the network when the
    account's list of zones changes. Empty: ask (the first run)."""
    credential_rotation: str | None = None
    """The access key's ``replacement_trigger``: a new value replaces the key, the new one
    created before the old one is deleted. ``None``: no trigger (a pool never rotated)."""


class EcsPoolOutputs(TypedDict):
    """What the component registers and the stack exports, one name per value."""

    region: str
    account_id: pulumi.Output[str]
    cluster_name: pulumi.Output[str]
    cluster_arn: pulumi.Output[str]
    execution_role_arn: pulumi.Output[str]
    task_role_arn: pulumi.Output[str | None]
    worker_user_name: pulumi.Output[str | None]
    """The submitter's IAM user; ``None`` when keyless."""
    vpc_id: pulumi.Output[str]
    subnet_ids: pulumi.Output[list[str]]
    availability_zones: pulumi.Output[list[str]]
    """The zones of the subnets the stack made (empty with ``vpc_id``): the next run's ``zones``."""
    security_group_id: pulumi.Output[str | None]
    log_group_name: pulumi.Output[str]
    registry_host: pulumi.Output[str]
    repository_url: pulumi.Output[str]
    events_queue_name: pulumi.Output[str | None]
    access_key_id: pulumi.Output[str | None]
    secret_access_key: pulumi.Output[str | None]
    """The worker's secret access key. Secret. ``None`` when keyless."""
    credential_created_at: pulumi.Output[str | None]
    """When IAM made the access key (RFC 3339, UTC): its age. ``None`` when keyless."""
    worker_role_arn: pulumi.Output[str | None]
    """Keyless: the submitter's role, resolved once its policy is attached; else ``None``."""


class EcsPool(pulumi.ComponentResource):
    """Everything an ECS job submitter needs in one account and region; see the module doc."""

    outputs: EcsPoolOutputs

    def __init__(
        self, name: str, args: EcsPoolArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        if bool(args.vpc_id) != bool(args.subnet_ids):
            raise ValueError("vpc_id and subnet_ids go together: give both or neither")
        super().__init__(TYPE_TOKEN, name, None, opts)

        def child(**extra) -> pulumi.ResourceOptions:
            return pulumi.ResourceOptions(parent=self, **extra)

        n = args.names
        region = args.region
        # Also set as the provider's default_tags; passed explicitly too so the tags do not
        # depend on provider configuration (and tests under mocks can see them).
        tags = {"ManagedBy": "provision", "PrefectWorkPool": args.pool}

        def named(value: str) -> dict[str, str]:
            return {**tags, "Name": value}

        account = aws.get_caller_identity_output(opts=pulumi.InvokeOutputOptions(parent=self))
        account_id = account.account_id

        # -- Cluster and logs.
        cluster = aws.ecs.Cluster(f"{name}-cluster", name=n.cluster, tags=tags, opts=child())
        log_group = aws.cloudwatch.LogGroup(
            f"{name}-logs",
            name=n.log_group,
            retention_in_days=args.log_retention_days,
            tags=tags,
            opts=child(),
        )

        # -- Roles the tasks run with.
        execution_role = aws.iam.Role(
            f"{name}-execution",
            name=n.execution_role,
            description=f"ECS task execution role of pool {args.pool}. Managed by provision."[
                :1000
            ],
            assume_role_policy=json.dumps(
                _doc(
                    {
                        "Effect": "Allow",
                        "Principal": {"Service": ECS_TASKS_PRINCIPAL},
                        "Action": "sts:AssumeRole",
                    }
                )
            ),
            tags=tags,
            opts=child(),
        )
        execution_managed = aws.iam.RolePolicyAttachment(
            f"{name}-execution-managed",
            role=execution_role.name,
            policy_arn=EXECUTION_POLICY_ARN,
            opts=child(),
        )
        execution_logs = aws.iam.RolePolicy(
            f"{name}-execution-logs",
            name="create-log-groups",
            role=execution_role.name,
            policy=account_id.apply(
                lambda acct: json.dumps(
                    _doc(
                        {
                            "Effect": "Allow",
                            "Action": ["logs:CreateLogGroup"],
                            "Resource": f"arn:{PARTITION}:logs:{region}:{acct}:log-group:*",
                        }
                    )
                )
            ),
            opts=child(),
        )

        task_role: aws.iam.Role | None = None
        task_grants: list[pulumi.Resource] = []
        if args.task_role_policy_arns:
            task_role = aws.iam.Role(
                f"{name}-task",
                name=n.task_role,
                description=f"Role the flows of pool {args.pool} run as. Managed by provision."[
                    :1000
                ],
                assume_role_policy=account_id.apply(lambda acct: json.dumps(ecs_task_trust(acct))),
                tags=tags,
                opts=child(),
            )
            task_grants = [
                aws.iam.RolePolicyAttachment(
                    f"{name}-task-policy-{i}",
                    role=task_role.name,
                    policy_arn=arn,
                    opts=child(),
                )
                for i, arn in enumerate(args.task_role_policy_arns)
            ]

        # -- Network.
        if args.vpc_id:
            vpc_id: pulumi.Output[str] = pulumi.Output.from_input(args.vpc_id)
            subnet_ids: pulumi.Output[list[str]] = pulumi.Output.from_input(list(args.subnet_ids))
            security_group_id: pulumi.Output[str | None] = pulumi.Output.from_input(None)
            network: list[pulumi.Resource] = []
            zones: list[str] = []
        else:
            vpc_id, subnet_ids, security_group_id, network, zones = self._network(
                name, args, named, child
            )

        # -- Image registry.
        repository = aws.ecr.Repository(
            f"{name}-repository",
            name=n.repository,
            image_scanning_configuration=aws.ecr.RepositoryImageScanningConfigurationArgs(
                scan_on_push=True
            ),
            image_tag_mutability="MUTABLE",
            # destroy removes the pool's images with it, as deleting the pool should.
            force_delete=True,
            tags=tags,
            opts=child(),
        )
        lifecycle = aws.ecr.LifecyclePolicy(
            f"{name}-repository-lifecycle",
            repository=repository.name,
            policy=json.dumps(lifecycle_policy(args.ecr_keep_images)),
            opts=child(),
        )

        # -- Task-state events for the worker's observer.
        queue: aws.sqs.Queue | None = None
        events: list[pulumi.Resource] = []
        if args.task_events:
            queue, events = self._task_events(name, args, cluster, tags, child)

        # -- The submitter's least-privilege policy, then its identity.
        role_arns = [execution_role.arn] + ([task_role.arn] if task_role else [])
        policy = aws.iam.Policy(
            f"{name}-worker-policy",
            name=n.worker_policy,
            description=f"Exactly the ECS calls the submitter of pool {args.pool} makes. "
            "Managed by provision.",
            policy=pulumi.Output.all(
                account_id,
                cluster.arn,
                queue.arn if queue else None,
                *role_arns,
            ).apply(
                lambda v: json.dumps(
                    worker_policy(
                        region=region,
                        account=v[0],
                        family_pattern=n.family_pattern,
                        cluster_name=n.cluster,
                        cluster_arn=v[1],
                        role_arns=v[3:],
                        log_group_name=n.log_group,
                        queue_arn=v[2],
                    )
                )
            ),
            tags=tags,
            opts=child(),
        )
        # Everything the identity is for: it is completed last, so an identity that can act
        # means the pool it acts on exists (and a failed run never leaves a usable credential
        # to a half-built pool).
        ready = [
            execution_managed,
            execution_logs,
            *task_grants,
            log_group,
            repository,
            lifecycle,
            *network,
            *events,
        ]
        if args.worker_role is None:
            identity = self._user_and_key(name, args, policy, ready, tags, child)
        else:
            identity = self._worker_role(name, args, account_id, policy, ready, tags, child)

        self.outputs = EcsPoolOutputs(
            region=region,
            account_id=account_id,
            cluster_name=cluster.name,
            cluster_arn=cluster.arn,
            execution_role_arn=execution_role.arn,
            task_role_arn=task_role.arn if task_role else pulumi.Output.from_input(None),
            worker_user_name=identity["worker_user_name"],
            vpc_id=vpc_id,
            subnet_ids=subnet_ids,
            availability_zones=pulumi.Output.from_input(zones),
            security_group_id=security_group_id,
            log_group_name=log_group.name,
            # From the repository's own URL, so it names the registry that really holds it.
            registry_host=repository.repository_url.apply(lambda url: url.split("/", 1)[0]),
            repository_url=repository.repository_url,
            events_queue_name=queue.name if queue else pulumi.Output.from_input(None),
            access_key_id=identity["access_key_id"],
            secret_access_key=identity["secret_access_key"],
            credential_created_at=identity["credential_created_at"],
            worker_role_arn=identity["worker_role_arn"],
        )
        self.register_outputs(dict(self.outputs))

    def _user_and_key(self, name, args: EcsPoolArgs, policy, ready, tags, child) -> dict:
        """The submitter as an IAM user holding the policy, and its one access key."""
        n = args.names
        user = aws.iam.User(
            f"{name}-worker",
            name=n.worker_user,
            # The user is ours alone: destroy must also remove an access key a killed run made
            # but never recorded, or IAM refuses to delete the user (DeleteConflict).
            force_destroy=True,
            tags=tags,
            opts=child(),
        )
        attachment = aws.iam.UserPolicyAttachment(
            f"{name}-worker-policy-attachment",
            user=user.name,
            policy_arn=policy.arn,
            opts=child(),
        )
        # The credential, last. Its only input is the user's name, so a rerun never replaces it
        # (a new key would invalidate the one stored downstream). Only a new rotation count
        # does: the replacement is create-before-delete (Pulumi's default, never
        # delete_before_replace), so the new key exists before whatever holds the old one is
        # rewritten, and the old one is deleted last. IAM allows two keys per user, which that
        # order respects as long as the user has one key before a rotation.
        key = aws.iam.AccessKey(
            f"{name}-worker-key",
            user=user.name,
            opts=child(
                depends_on=[attachment, *ready],
                replacement_trigger=args.credential_rotation,
            ),
        )
        return {
            "worker_user_name": user.name,
            "access_key_id": key.id,
            # pulumi-aws already marks the secret secret; wrap anyway so no refactor can leak it.
            "secret_access_key": pulumi.Output.secret(key.secret),
            "credential_created_at": key.create_date,
            "worker_role_arn": pulumi.Output.from_input(None),
        }

    def _worker_role(self, name, args: EcsPoolArgs, account_id, policy, ready, tags, child) -> dict:
        """Keyless: the submitter as a role ECS tasks assume, holding the policy. ECS hands
        the role's short-lived credentials to the task's containers; nothing long-lived exists."""
        role = aws.iam.Role(
            f"{name}-worker-role",
            name=args.worker_role,
            description=f"Task role of the ECS worker of pool {args.pool}: the submitter's "
            "identity, with no access key. Managed by provision."[:1000],
            assume_role_policy=account_id.apply(lambda acct: json.dumps(ecs_task_trust(acct))),
            tags=tags,
            opts=child(),
        )
        attachment = aws.iam.RolePolicyAttachment(
            f"{name}-worker-role-policy",
            role=role.name,
            policy_arn=policy.arn,
            opts=child(depends_on=ready),
        )
        return {
            "worker_user_name": pulumi.Output.from_input(None),
            "access_key_id": pulumi.Output.from_input(None),
            "secret_access_key": pulumi.Output.from_input(None),
            "credential_created_at": pulumi.Output.from_input(None),
            # Resolved only once the policy is attached: whatever runs as the role waits for it.
            "worker_role_arn": pulumi.Output.all(role.arn, attachment.id).apply(lambda v: v[0]),
        }

    def _zones(self, args: EcsPoolArgs) -> list[str]:
        """Up to three zones for the subnets: the ones an earlier run chose, else the account's.

        Only zones that need no opt-in: Local and Wavelength Zones don't run Fargate. A
        synchronous invoke, because the number of subnets must be known now, not in apply().
        """
        if args.zones:
            return list(args.zones)[:MAX_AZS]
        zones = aws.get_availability_zones(
            state="available",
            filters=[
                aws.GetAvailabilityZonesFilterArgs(
                    name="opt-in-status", values=["opt-in-not-required"]
                )
            ],
            opts=pulumi.InvokeOptions(parent=self),
        )
        azs = list(zones.names or [])[:MAX_AZS]
        if not azs:
            raise ValueError(f"no availability zone without opt-in in {args.region}")
        return azs

    def _network(self, name, args: EcsPoolArgs, named, child):
        """VPC, public subnets in up to three zones, internet gateway, routes, security group;
        and the zones."""
        n = args.names
        vpc = aws.ec2.Vpc(
            f"{name}-vpc",
            cidr_block=args.vpc_cidr,
            # Tasks resolve ECR, CloudWatch and Prefect by name.
            enable_dns_support=True,
            enable_dns_hostnames=True,
            tags=named(n.network),
            opts=child(),
        )
        gateway = aws.ec2.InternetGateway(
            f"{name}-igw", vpc_id=vpc.id, tags=named(n.network), opts=child()
        )
        table = aws.ec2.RouteTable(
            f"{name}-public", vpc_id=vpc.id, tags=named(n.network), opts=child()
        )
        route = aws.ec2.Route(
            f"{name}-default-route",
            route_table_id=table.id,
            destination_cidr_block="0.0.0.0/0",
            gateway_id=gateway.id,
            opts=child(),
        )
        made: list[pulumi.Resource] = [vpc, gateway, table]
        # Asked only now: on a first run the account's answer comes while the VPC, the gateway
        # and the route table are being created, not before.
        azs = self._zones(args)
        subnets = []
        for az, cidr in zip(azs, subnet_cidrs(args.vpc_cidr, len(azs)), strict=True):
            subnet = aws.ec2.Subnet(
                f"{name}-public-{az}",
                vpc_id=vpc.id,
                cidr_block=cidr,
                availability_zone=az,
                # Fargate tasks reach ECR and Prefect through the internet gateway; without a
                # NAT gateway (which costs by the hour) that needs public IPs.
                map_public_ip_on_launch=True,
                tags=named(f"{n.network}-public-{az}"),
                opts=child(),
            )
            association = aws.ec2.RouteTableAssociation(
                f"{name}-public-{az}", subnet_id=subnet.id, route_table_id=table.id, opts=child()
            )
            subnets.append(subnet)
            made += [subnet, association]
        group = aws.ec2.SecurityGroup(
            f"{name}-tasks",
            # A prefix, not a name: EC2 picks the group's id, so a create whose answer a
            # killed run lost can't be adopted, and a fixed name would block the rerun with
            # InvalidGroup.Duplicate. The Name tag still carries the derived name.
            name_prefix=f"{n.security_group}-",
            description=f"ECS tasks of pool {args.pool}: no inbound, all outbound",
            vpc_id=vpc.id,
            ingress=[],
            egress=[
                aws.ec2.SecurityGroupEgressArgs(
                    protocol="-1", from_port=0, to_port=0, cidr_blocks=["0.0.0.0/0"]
                )
            ],
            tags=named(n.security_group),
            opts=child(),
        )
        made += [route, group]
        return vpc.id, pulumi.Output.all(*(s.id for s in subnets)), group.id, made, azs

    def _task_events(self, name, args: EcsPoolArgs, cluster, tags, child):
        """EventBridge rule → SQS queue (+ dead letters) with a policy for that rule only."""
        n = args.names
        dlq = aws.sqs.Queue(
            f"{name}-events-dlq",
            name=n.events_dlq,
            message_retention_seconds=EVENTS_DLQ_RETENTION_SECONDS,
            sqs_managed_sse_enabled=True,
            tags=tags,
            opts=child(),
        )
        queue = aws.sqs.Queue(
            f"{name}-events",
            name=n.events_queue,
            message_retention_seconds=EVENTS_RETENTION_SECONDS,
            visibility_timeout_seconds=EVENTS_VISIBILITY_SECONDS,
            # SSE-SQS, not KMS: EventBridge can write to it without key grants.
            sqs_managed_sse_enabled=True,
            redrive_policy=dlq.arn.apply(
                lambda arn: json.dumps(
                    {"deadLetterTargetArn": arn, "maxReceiveCount": EVENTS_MAX_RECEIVES}
                )
            ),
            tags=tags,
            opts=child(),
        )
        rule = aws.cloudwatch.EventRule(
            f"{name}-task-events",
            name=n.events_rule,
            description=f"ECS task state changes of pool {args.pool}, for its Prefect worker",
            event_pattern=cluster.arn.apply(lambda arn: json.dumps(task_events_pattern(arn))),
            tags=tags,
            opts=child(),
        )
        queue_policy = aws.sqs.QueuePolicy(
            f"{name}-events-policy",
            queue_url=queue.url,
            policy=pulumi.Output.all(queue.arn, rule.arn).apply(
                lambda v: json.dumps(
                    _doc(
                        {
                            # Only EventBridge, only on behalf of this rule.
                            "Sid": "TaskEventsFromRule",
                            "Effect": "Allow",
                            "Principal": {"Service": "events.amazonaws.com"},
                            "Action": "sqs:SendMessage",
                            "Resource": v[0],
                            "Condition": {"ArnEquals": {"aws:SourceArn": v[1]}},
                        }
                    )
                )
            ),
            opts=child(),
        )
        target = aws.cloudwatch.EventTarget(
            f"{name}-task-events-target",
            rule=rule.name,
            target_id="sqs",
            arn=queue.arn,
            # Targeted only once the queue accepts the rule's messages: none are dropped.
            opts=child(depends_on=[queue_policy]),
        )
        return queue, [dlq, queue, rule, queue_policy, target]
