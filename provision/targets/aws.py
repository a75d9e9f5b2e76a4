"""AWS: ECS on Fargate pools (``ecs:push`` and the worker-based ``ecs``) on ``stacks/aws_ecs.py``.

Options come from the flags, then the pool's saved options, then the environment and the AWS
CLI's own configuration file (read, never executed), then defaults. Credentials are the AWS
default chain, left to the provider; ``--profile`` (or ``AWS_PROFILE``) picks a profile.
Pulumi and pulumi-aws are imported only when a program, a grant list or a plan needs them, so
``--help`` stays fast.

With ``--with-worker`` (``ecs`` only) the pool is *keyless*: the worker runs as an ECS service
in the pool's cluster (``stacks/aws_worker.py``) whose task role holds the worker policy, and
no IAM user or access key exists. The ``aws-credentials`` block then holds only the region:
prefect-aws builds ``boto3.Session(aws_access_key_id=None, aws_secret_access_key=None, ...,
region_name=...)`` from it (``AwsCredentials.get_boto3_session``, PrefectHQ/prefect
``src/integrations/prefect-aws/prefect_aws/credentials.py``), so boto3's default chain finds the
task role's short-lived credentials through the ECS container credentials endpoint.
"""

from __future__ import annotations

import functools
import json
import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationInfo, model_validator

from provision.errors import InvalidInputError
from provision.recovery import Untracked
from provision.registry import PoolType
from provision.targets import aws_naming as naming
from provision.targets.aws_errors import AWS_ERROR_RULES, PROPAGATION_ERRORS
from provision.targets.base import (
    PLACEHOLDER,
    BlockSpec,
    CloudProgram,
    Credential,
    Grant,
    NextSteps,
    OptionPicker,
    Outputs,
    Pool,
    RotationOptions,
    WorkerOptions,
    WorkerProgram,
    block_from_outputs,
    block_ref,
    known_or_placeholder,
    rotation_options,
    worker_options,
)

DEFAULT_VPC_CIDR = "10.42.0.0/16"
"""CIDR of the VPC provision creates unless --vpc-cidr says otherwise. A /16 in 10/8 that is
neither AWS's default-VPC range (172.31/16) nor the usual first picks (10.0/16, 10.1/16), so
peering it with an existing network rarely collides."""
DEFAULT_LOG_RETENTION_DAYS = 30
DEFAULT_ECR_KEEP_IMAGES = 30

ACCESS_KEY = "aws:iam/accessKey:AccessKey"

OFFLINE_ACCOUNT = "<account-id>"
"""The account id offline plans show: they run without credentials, so it is unknown."""

# The ARN of each resource type the stack names itself, from its region and ``name`` input:
# offline plans show them with OFFLINE_ACCOUNT, so the policies built from them render. A
# secret's ARN ends in "-" and six characters Secrets Manager picks: shown as "-??????".
_ARN_FORMATS = {
    "aws:secretsmanager/secret:Secret": "arn:aws:secretsmanager:{region}:{account}:secret:{name}"
    "-??????",
    "aws:iam/role:Role": "arn:aws:iam::{account}:role/{name}",
    "aws:iam/user:User": "arn:aws:iam::{account}:user/{name}",
    "aws:iam/policy:Policy": "arn:aws:iam::{account}:policy/{name}",
    "aws:ecs/cluster:Cluster": "arn:aws:ecs:{region}:{account}:cluster/{name}",
    "aws:sqs/queue:Queue": "arn:aws:sqs:{region}:{account}:{name}",
    "aws:cloudwatch/logGroup:LogGroup": "arn:aws:logs:{region}:{account}:log-group:{name}",
    "aws:cloudwatch/eventRule:EventRule": "arn:aws:events:{region}:{account}:rule/{name}",
    "aws:ecr/repository:Repository": "arn:aws:ecr:{region}:{account}:repository/{name}",
}


def offline_outputs(region: str, typ: str, name: str, inputs: Mapping[str, Any]) -> dict:
    """An offline plan's outputs of one resource: its ARN, when its type and name fix it
    (the account shown as ``<account-id>``); nothing otherwise, which stays ``[computed]``."""
    arn = _ARN_FORMATS.get(typ)
    given = inputs.get("name")
    if arn is None or not isinstance(given, str):
        return {}
    return {"arn": arn.format(region=region, account=OFFLINE_ACCOUNT, name=given)}


# prefect-aws's observer settings (PrefectHQ/prefect src/integrations/prefect-aws/prefect_aws/
# settings.py: EcsObserverSqsSettings under ("integrations", "aws", "ecs", "observer", "sqs")).
OBSERVER_QUEUE_ENV = "PREFECT_INTEGRATIONS_AWS_ECS_OBSERVER_SQS_QUEUE_NAME"
OBSERVER_REGION_ENV = "PREFECT_INTEGRATIONS_AWS_ECS_OBSERVER_SQS_QUEUE_REGION"


class AwsOptions(WorkerOptions, RotationOptions):
    """Validated options of an ECS pool; saved verbatim in the pool's stack config."""

    region: str
    profile: str | None = None
    vpc_id: str | None = None
    """An existing VPC (with ``subnet_ids``): nothing network-related is created."""
    subnet_ids: tuple[str, ...] = ()
    vpc_cidr: str | None = DEFAULT_VPC_CIDR
    """CIDR of the VPC provision creates; ``None`` with an existing VPC."""
    log_retention_days: int = DEFAULT_LOG_RETENTION_DAYS
    task_role_policy_arns: tuple[str, ...] = ()
    """Managed policies for the flows' task role; the role exists only when there are some."""
    ecr_keep_images: int = DEFAULT_ECR_KEEP_IMAGES

    @model_validator(mode="before")
    @classmethod
    def _drop_saved_pool(cls, data: Any) -> Any:
        """Ignore the ``pool`` key of options saved by earlier versions.

        Those kept the pool name here for the provider's default tags; ``provider_config`` now
        gets it as an argument. Extra keys are otherwise refused, so without this a pool saved
        then could no longer be previewed, updated or destroyed.
        """
        if isinstance(data, dict) and "pool" in data:
            return {k: v for k, v in data.items() if k != "pool"}
        return data

    @model_validator(mode="before")
    @classmethod
    def _values(cls, data: Any, info: ValidationInfo) -> Any:
        """The checks of each value, on new input (a record was checked when it was written).
        Before pydantic's own type checks, so a bad number gets the message naming its flag."""
        context = info.context or {}
        if "sources" not in context or not isinstance(data, dict):
            return data
        sources = context["sources"]
        naming.validate_region(data["region"], sources.get("region", ""))
        naming.validate_numbers(data["log_retention_days"], data["ecr_keep_images"], sources)
        naming.validate_policy_arns(
            data["task_role_policy_arns"], sources.get("task_role_policy_arns", "")
        )
        return data


def _as_tuple(value: Any) -> tuple[str, ...]:
    """A repeatable flag's values; one string is one value, not its characters."""
    return (value,) if isinstance(value, str) else tuple(value)


def _known_absent(outputs: Mapping[str, Any], key: str) -> bool:
    """True when ``key`` is known not to exist: present with ``None``.

    Plans pass partial outputs: a missing key is unknown (shown as a placeholder); a key that
    is present but ``None`` is known to be absent (no task role, no security group).
    """
    return key in outputs and outputs[key] is None


@dataclass(frozen=True)
class AwsPool(Pool[AwsOptions]):
    """ECS on Fargate pools in one AWS account and region."""

    cloud = "aws"
    options_model = AwsOptions
    block = BlockSpec("aws-credentials", "aws-credentials")
    secret_outputs = frozenset({"secret_access_key"})
    program_modules = ("stacks.aws_ecs",)
    worker_modules = ("stacks.aws_worker",)
    worker_package = "prefect-aws"
    worker_secret_store = "AWS Secrets Manager"
    rotates = True
    rotation_by_trigger = True  # an access key has no input that forces a new one
    # A key the cloud made for a killed run cannot be adopted (IAM returns its secret once),
    # so the rerun deletes it (remove_untracked) rather than naming it.
    removes_untracked = frozenset({ACCESS_KEY})
    error_rules = AWS_ERROR_RULES
    propagation_errors = PROPAGATION_ERRORS
    orphan_hints = {
        ACCESS_KEY: (
            "List the user's keys with `aws iam list-access-keys --user-name "
            "<worker_user_name>` (worker_user_name in `provision show <pool>`) and delete any "
            "whose id is not aws_access_key_id in the Prefect block with `aws iam "
            "delete-access-key --user-name <worker_user_name> --access-key-id <id>` (AWS allows "
            "two keys per user)."
        ),
        "aws:ecs/taskDefinition:TaskDefinition": (
            "A killed run may have registered a revision of the worker's task definition that "
            "the stack does not know: list them with `aws ecs list-task-definitions "
            "--family-prefix <pool>-ecs-worker` and deregister those other than "
            "worker_task_definition_arn in `provision show <pool>` with `aws ecs "
            "deregister-task-definition --task-definition <arn>`."
        ),
        "aws:secretsmanager/secretVersion:SecretVersion": (
            "A killed run may have stored another version of the worker's credential; it is "
            "deleted with its secret (worker_secret_arns in `provision show <pool>`) on destroy, "
            "and `aws secretsmanager list-secret-version-ids --secret-id <arn>` lists them."
        ),
        **dict.fromkeys(
            (
                "aws:ec2/vpc:Vpc",
                "aws:ec2/subnet:Subnet",
                "aws:ec2/internetGateway:InternetGateway",
                "aws:ec2/routeTable:RouteTable",
                "aws:ec2/securityGroup:SecurityGroup",
            ),
            # Network parts get ids AWS picks, so a lost answer can't be adopted; the tags
            # every resource carries find the copy.
            "List the pool's network with `aws resourcegroupstaggingapi get-resources "
            "--tag-filters Key=PrefectWorkPool,Values=<pool>` and delete what `provision show "
            "<pool>` does not list: security groups other than security_group_id, and any VPC "
            "other than vpc_id (its subnets, gateway and route table first).",
        ),
    }

    # -- options ----------------------------------------------------------------------------

    @classmethod
    def resolve_options(
        cls,
        name: str,
        pool_type: PoolType,
        given: Mapping[str, Any],
        env: Mapping[str, str],
        saved: AwsOptions | None,
    ) -> AwsOptions:
        """Flags > saved options > environment / AWS config > defaults, then validate.

        Profile: ``AWS_PROFILE``. Region: ``AWS_REGION``, ``AWS_DEFAULT_REGION``, then the
        ``region`` of the profile (or ``[default]``) in the AWS config file; there is no
        default region. A saved pool keeps its region: moving it means destroying it first.
        Network: ``--vpc-id`` with ``--subnet-ids`` (an existing network), or ``--vpc-cidr``
        (the VPC to create, default :data:`DEFAULT_VPC_CIDR`); either replaces the saved choice.
        """
        pick = OptionPicker(pool_type, given, saved, AwsOptions.keys())
        naming.validate_pool(name, pool_type.name)
        sources = pick.sources
        prior = saved.model_dump() if saved is not None else {}

        profile = pick("profile")
        if profile is None and env.get("AWS_PROFILE"):
            profile, sources["profile"] = env["AWS_PROFILE"], "AWS_PROFILE"
        if profile is not None:
            profile = str(profile).strip()
            naming.validate_profile(profile, sources["profile"], naming.known_profiles(env))

        region = pick("region")
        if region is None:
            region, sources["region"] = naming.environment_region(env, profile)
        if not region:
            raise InvalidInputError(
                "No AWS region: pass --region, set AWS_REGION, or set a region in your AWS "
                "profile (`aws configure set region REGION`)."
            )
        region = str(region).strip()
        if prior and region != prior["region"]:
            raise InvalidInputError(
                f"Pool '{name}' lives in {prior['region']}, not {region}: destroy it first to "
                "move it (IAM names are global, so both cannot exist at once)."
            )

        vpc_id, subnet_ids, vpc_cidr = naming.resolve_network(
            given, prior, sources, DEFAULT_VPC_CIDR
        )

        opts: dict[str, Any] = {
            "region": region,
            "profile": profile,
            "vpc_id": vpc_id,
            "subnet_ids": subnet_ids,
            "vpc_cidr": vpc_cidr,
            "log_retention_days": pick("log_retention_days", DEFAULT_LOG_RETENTION_DAYS),
            "task_role_policy_arns": _as_tuple(pick("task_role_policy_arns", ())),
            "ecr_keep_images": pick("ecr_keep_images", DEFAULT_ECR_KEEP_IMAGES),
            **worker_options(pick),
            **rotation_options(pick),
        }
        return AwsOptions.checked(opts, sources, pool_type=pool_type)

    def provider_config(self) -> dict[str, str]:
        """Region, profile, and the tags every taggable resource gets (provider default_tags)."""
        opts = self.options
        config = {
            "aws:region": opts.region,
            "aws:defaultTags": json.dumps({"tags": tags(self.name)}, sort_keys=True),
        }
        if opts.profile:
            config["aws:profile"] = opts.profile
        return config

    # -- program ----------------------------------------------------------------------------

    def program(self) -> CloudProgram:
        """One ``EcsPool``; the program returns its outputs (the stack's exports).

        The function carries ``offline_invokes`` (see ``provision/offline.py``): what offline
        plans answer for the two data sources the stack reads, since there is no account to ask.
        """
        import pulumi

        from stacks.aws_ecs import EcsPool

        args = self._args()

        def run() -> dict[str, pulumi.Output[Any]]:
            return EcsPool(self.name, args).outputs

        region = args.region
        run.offline_outputs = functools.partial(offline_outputs, region)  # type: ignore[attr-defined]
        run.offline_invokes = {  # type: ignore[attr-defined]
            "aws:index/getCallerIdentity:getCallerIdentity": {
                "accountId": OFFLINE_ACCOUNT,
                "arn": f"arn:aws:iam::{OFFLINE_ACCOUNT}:user/offline",
                "userId": "OFFLINE",
                "id": OFFLINE_ACCOUNT,
            },
            # The real zones come from the account on up; a plan shows the usual first three.
            "aws:index/getAvailabilityZones:getAvailabilityZones": {
                "id": region,
                "names": [f"{region}{z}" for z in "abc"],
                "zoneIds": [],
                "groupNames": [],
            },
        }
        return run

    def worker_program(self) -> WorkerProgram | None:
        """The worker as an ECS service of the pool's cluster (``stacks/aws_worker.py``), as the
        keyless pool's worker role, with the observer's queue in its environment; ``None``
        without a worker to launch.

        Its tasks get public IPs only in the public subnets the stack creates, which have no
        NAT gateway: without one they could not reach Prefect, PyPI or the image registry. In
        subnets you give (``--vpc-id``), reaching out is your network's job (NAT or endpoints).
        """
        if self.worker is None:
            return None
        opts = self.options

        def run(outputs: Mapping[str, Any], after: Any) -> Mapping[str, Any]:
            from stacks.aws_worker import EcsWorker, EcsWorkerArgs, EcsWorkerNames

            container = self.worker_container(extra_env=self._observer_env())
            args = EcsWorkerArgs(
                pool=self.name,
                region=opts.region,
                names=EcsWorkerNames(**naming.worker_names(self.name)),
                cluster_arn=outputs["cluster_arn"],
                subnet_ids=outputs["subnet_ids"],
                security_group_id=outputs["security_group_id"],
                assign_public_ip=not opts.vpc_id,
                # By name, not the output: an offline plan then renders the container (the
                # worker role's ARN already makes it wait for the log group).
                log_group_name=naming.log_group_name(self.name),
                log_stream_prefix=naming.WORKER_LOG_STREAM_PREFIX,
                task_role_arn=outputs["worker_role_arn"],
                image=container.image,
                command=container.command,
                env=container.env,
                secret_env=container.secret_env,
                count=container.count,
                tags=tags(self.name),
            )
            return EcsWorker(f"{self.name}-worker", args, after).outputs

        return run

    def _observer_env(self) -> dict[str, str]:
        """What the worker's ECS observer reads: its queue, and the region for its clients (the
        observer's SQS and ECS clients use the default chain and region, not the block)."""
        region = self.options.region
        return {
            OBSERVER_QUEUE_ENV: naming.events_queue_name(self.name),
            OBSERVER_REGION_ENV: region,
            "AWS_DEFAULT_REGION": region,
        }

    def credential(self) -> Credential:
        """The worker's IAM user and its access key; keyless, none: the task role stands in."""
        if self.options.with_worker:
            role = naming.worker_role_name(self.name)
            service = naming.worker_service_name(self.name)
            return Credential(
                "none",
                f"IAM role {role}",
                False,
                f"the worker runs in ECS service {service} as task role {role}; ECS hands "
                "its tasks short-lived credentials for the role.",
            )
        user = naming.worker_user_name(self.name)
        return Credential(
            "IAM access key",
            f"IAM user {user}",
            True,
            f"in the Prefect block {self.name}-aws-credentials, for the worker you run.",
        )

    def expected_outputs(self) -> dict[str, Any]:
        """The non-secret stack outputs ``up`` will produce, computed without the engine.

        ARNs and the registry need the account id, and created VPC ids come from AWS: those are
        left out. A key present with ``None`` means known absent (no task role, no queue for
        push pools, no security group with an existing VPC, no IAM user when keyless).
        """
        opts, pool = self.options, self.name
        keyless = opts.with_worker
        expected: dict[str, Any] = {
            "region": opts.region,
            "cluster_name": naming.cluster_name(pool),
            "worker_user_name": None if keyless else naming.worker_user_name(pool),
            "log_group_name": naming.log_group_name(pool),
            "events_queue_name": None if self.type.push else naming.events_queue_name(pool),
        }
        if keyless:
            expected["worker_service_name"] = naming.worker_service_name(pool)
        if not opts.task_role_policy_arns:
            expected["task_role_arn"] = None
        if opts.vpc_id:
            expected.update(
                vpc_id=opts.vpc_id, subnet_ids=list(opts.subnet_ids), security_group_id=None
            )
        return expected

    # -- Prefect ----------------------------------------------------------------------------

    def adoptable_id(self, type_token: str, inputs: Mapping[str, Any]) -> str | None:
        """IAM roles, users and policies, the log group and the repository, by their names."""
        return naming.resource_id(type_token, inputs)

    def remove_untracked(self, untracked: Untracked) -> str:
        """Delete the keys of the pool's worker user that an interrupted create may have made
        and the state does not track, through IAM's own API (``aws_keys``), so the rerun's key,
        or a rotation's, fits in IAM's two keys per user.

        IAM generates a key's id, so nothing in the state names the copy; its secret went only
        to the killed engine, so it could never fill the block. The keys the state tracks (an
        old one pending deletion included) are left alone. Another user's keys are never
        touched; when IAM cannot be asked, says so with the commands to do it by hand.
        """
        from provision.targets import aws_keys

        user = naming.worker_user_name(self.name)
        if untracked.inputs.get("user") != user:
            return (
                f"Interrupted while creating an access key of "
                f"{untracked.inputs.get('user') or 'an unknown user'}: not the pool's user "
                f"{user}, so left alone."
            )
        opts = self.options
        try:
            removed = aws_keys.remove_untracked_keys(
                user, untracked.tracked, profile=opts.profile, region=opts.region
            )
        except aws_keys.KeysError as exc:
            return (
                f"Interrupted while creating an access key of IAM user {user}: one may exist "
                f"untracked, and it could not be checked ({exc}). {self.orphan_hints[ACCESS_KEY]}"
            )
        if not removed:
            return (
                f"Interrupted while creating an access key of IAM user {user}: IAM has none "
                "the state does not track."
            )
        keys = (
            f"access key {removed[0]}" if len(removed) == 1 else "access keys " + ", ".join(removed)
        )
        return (
            f"Deleted {keys} of IAM user {user}: an interrupted run made it, and its secret, "
            "which IAM returns only when a key is made, was lost."
        )

    def block_data(self, outputs: Outputs, schema: Mapping[str, Any]) -> dict[str, Any]:
        """The ``aws-credentials`` block: the worker user's key and the pool's region; keyless,
        the region alone, so prefect-aws falls back to the task role (see the module doc)."""
        fields = {"region_name": "region"}
        if not self.options.with_worker:
            fields = {
                "aws_access_key_id": "access_key_id",
                "aws_secret_access_key": "secret_access_key",
                **fields,
            }
        return block_from_outputs(outputs, fields)

    def template_defaults(self, outputs: Outputs, block_document_id: str | None) -> dict[str, Any]:
        """Defaults for variables the ``ecs`` worker's template declares (prefect-aws
        ``ECSVariables``): credentials, cluster, roles, network and CloudWatch logs.

        ``network_configuration`` is the inner ``awsvpcConfiguration`` object: the worker wraps
        it itself, and only uses it when ``vpc_id`` is set beside it. The log options point
        at the pool's log group with ``awslogs-create-group`` off, so tasks never need
        ``logs:CreateLogGroup``; the stream prefix is left to the worker (one per deployment).
        """
        region = known_or_placeholder(outputs, "region")
        # Writing the real pool (a block id exists): Pulumi drops None exports, so a missing
        # key is known to be absent. Only a plan's partial outputs mean "not known yet".
        final = block_document_id is not None

        def absent(key: str) -> bool:
            return _known_absent(outputs, key) or (final and outputs.get(key) in (None, ""))

        network: dict[str, Any] = {"subnets": _subnets(outputs)}
        if not absent("security_group_id"):
            network["securityGroups"] = [known_or_placeholder(outputs, "security_group_id")]
        # Public subnets without a NAT gateway: tasks need a public IP to reach ECR and Prefect.
        network["assignPublicIp"] = "ENABLED"
        defaults: dict[str, Any] = {
            "aws_credentials": block_ref(block_document_id),
            "cluster": known_or_placeholder(outputs, "cluster_arn"),
            "vpc_id": known_or_placeholder(outputs, "vpc_id"),
            "execution_role_arn": known_or_placeholder(outputs, "execution_role_arn"),
            "network_configuration": network,
            "configure_cloudwatch_logs": True,
            "cloudwatch_logs_options": {
                "awslogs-group": known_or_placeholder(outputs, "log_group_name"),
                "awslogs-region": region,
                "awslogs-create-group": "false",
            },
        }
        if not absent("task_role_arn"):
            defaults["task_role_arn"] = known_or_placeholder(outputs, "task_role_arn")
        return defaults

    # -- plan & summary ---------------------------------------------------------------------

    def grants(self) -> list[Grant]:
        """Every statement of the worker policy, then what the roles and the queue hold."""
        from stacks.aws_ecs import EXECUTION_POLICY_ARN, STATEMENT_PURPOSE, worker_policy

        opts, push = self.options, self.type.push
        args = self._args()
        account = OFFLINE_ACCOUNT  # grants are shown before the account is known
        role_arns = [f"arn:aws:iam::{account}:role/{args.names.execution_role}"]
        if opts.task_role_policy_arns:
            role_arns.append(f"arn:aws:iam::{account}:role/{args.names.task_role}")
        doc = worker_policy(
            region=opts.region,
            account=account,
            family_pattern=args.names.family_pattern,
            cluster_name=args.names.cluster,
            cluster_arn=f"arn:aws:ecs:{opts.region}:{account}:cluster/{args.names.cluster}",
            role_arns=role_arns,
            log_group_name=args.names.log_group,
            queue_arn=(
                None if push else f"arn:aws:sqs:{opts.region}:{account}:{args.names.events_queue}"
            ),
        )
        if opts.with_worker:
            worker = (
                f"worker task role {naming.worker_role_name(self.name)} (the worker's ECS tasks)"
            )
        else:
            worker = f"worker IAM user {args.names.worker_user}"
        grants = [
            Grant(
                principal=worker,
                role=f"{args.names.worker_policy}: {s['Sid']}",
                scope=_scope(s),
                permissions=tuple(s["Action"]),
                why=STATEMENT_PURPOSE[s["Sid"]],
            )
            for s in doc["Statement"]
        ]
        grants.append(
            Grant(
                principal=f"execution role {args.names.execution_role} (assumed by ECS tasks)",
                role=f"{EXECUTION_POLICY_ARN.rsplit('/', 1)[-1]} + logs:CreateLogGroup",
                scope=f"ECR pulls, log delivery; log groups in {opts.region}",
                why="ECS pulls the image and ships container logs with it. CreateLogGroup, "
                "missing from AWS's policy, keeps tasks working when a deployment switches "
                "awslogs-create-group back on.",
            )
        )
        if opts.with_worker:
            grants += self._worker_execution_grants()
        if opts.task_role_policy_arns:
            grants.append(
                Grant(
                    principal=f"task role {args.names.task_role} (the flows' own identity)",
                    role=", ".join(opts.task_role_policy_arns),
                    scope="as those policies define",
                    why="Given with --task-role-policy-arn: what your flows need.",
                )
            )
        if not push:
            grants.append(
                Grant(
                    principal="events.amazonaws.com",
                    role="sqs:SendMessage",
                    scope=f"queue {args.names.events_queue}, from rule {args.names.events_rule}",
                    why="Delivers the cluster's task-state changes to the worker's queue.",
                )
            )
        return grants

    def _worker_execution_grants(self) -> list[Grant]:
        """What the worker's own execution role holds: image pulls and logs, and reading the
        worker's credential from Secrets Manager (when the server asks for one)."""
        from stacks.aws_ecs import EXECUTION_POLICY_ARN
        from stacks.aws_worker import read_secrets_policy

        names = naming.worker_names(self.name)
        region = self.options.region
        principal = (
            f"worker execution role {names['execution_role']} (assumed by the worker's ECS tasks)"
        )
        grants = [
            Grant(
                principal=principal,
                role=EXECUTION_POLICY_ARN.rsplit("/", 1)[-1],
                scope=f"ECR pulls, log delivery in {region}",
                why="ECS pulls the worker's image and ships its logs with it.",
            )
        ]
        launch = self.worker
        if launch is not None and launch.credential_env:
            # A secret's ARN ends in "-" and six characters Secrets Manager picks.
            arn = (
                f"arn:aws:secretsmanager:{region}:{OFFLINE_ACCOUNT}:secret:"
                f"{names['secret_prefix']}{launch.credential_env}-??????"
            )
            (statement,) = read_secrets_policy([arn])["Statement"]
            grants.append(
                Grant(
                    principal=principal,
                    role=f"read-worker-secrets: {statement['Sid']}",
                    scope=_scope(statement),
                    permissions=tuple(statement["Action"]),
                    why="ECS reads the worker's Prefect credential when a worker task starts. "
                    "Only this role may, and no flow run can use it: the worker may pass only "
                    "the pool's own roles.",
                )
            )
        return grants

    def next_steps(self, outputs: Outputs) -> NextSteps:
        """ECR login, how to deploy to the pool, and for ``ecs`` the worker and its env (or,
        with ``--with-worker``, where to see the worker that already runs)."""
        region = known_or_placeholder(outputs, "region")
        host = known_or_placeholder(outputs, "registry_host")
        repository = known_or_placeholder(outputs, "repository_url")
        snippet = (
            f'my_flow.deploy(name="my-deployment", work_pool_name={json.dumps(self.name)}, '
            f'image="{repository}:my-deployment")'
        )
        # The password goes through a pipe, never onto a command line.
        commands = [
            f"aws ecr get-login-password --region {region} | docker login --username AWS "
            f"--password-stdin {host}"
        ]
        env: dict[str, str] = {}
        if not self.type.push and self.options.with_worker:
            # The worker already runs, with its observer's settings: say where to watch it.
            logs, cluster, service = (
                known_or_placeholder(outputs, k)
                for k in ("log_group_name", "cluster_name", "worker_service_name")
            )
            commands += [
                f"aws logs tail {logs} --log-stream-name-prefix "
                f"{naming.WORKER_LOG_STREAM_PREFIX} --follow --region {region}",
                f"aws ecs describe-services --cluster {cluster} "
                f"--services {service} --region {region}",
            ]
        elif not self.type.push:
            # The worker's ECS observer polls the queue with the worker's own AWS credentials
            # and default region; without the queue name, failed tasks go unnoticed.
            env = {
                OBSERVER_QUEUE_ENV: known_or_placeholder(outputs, "events_queue_name"),
                OBSERVER_REGION_ENV: region,
                "AWS_DEFAULT_REGION": region,
            }
            commands.append(f"prefect worker start --pool {shlex.quote(self.name)}")
        # ECR's namespace is the registry host: `flow.deploy(image="<pool>-images:tag")` then
        # lands in the pool's repository, as with Prefect's own ECS provisioner.
        return NextSteps(
            image_namespace=host, deploy_snippet=snippet, commands=tuple(commands), env=env
        )

    def location(self) -> str:
        """The region, and the profile when one is pinned."""
        opts = self.options
        return f"{opts.region} (profile {opts.profile})" if opts.profile else opts.region

    # -- helpers ----------------------------------------------------------------------------

    def _args(self) -> Any:
        from stacks.aws_ecs import EcsPoolArgs, EcsPoolNames

        opts = self.options
        names = EcsPoolNames(**naming.resource_names(self.name))
        return EcsPoolArgs(
            pool=self.name,
            region=opts.region,
            names=names,
            task_events=not self.type.push,
            vpc_cidr=opts.vpc_cidr or DEFAULT_VPC_CIDR,
            vpc_id=opts.vpc_id,
            subnet_ids=tuple(opts.subnet_ids),
            log_retention_days=opts.log_retention_days,
            ecr_keep_images=opts.ecr_keep_images,
            task_role_policy_arns=tuple(opts.task_role_policy_arns),
            worker_role=naming.worker_role_name(self.name) if opts.with_worker else None,
            # The zones the last run chose: a rerun does not ask the account again.
            zones=tuple(self.last_outputs.get("availability_zones") or ()),
            credential_rotation=None if opts.with_worker else self.rotation_trigger(),
        )


def tags(pool: str) -> dict[str, str]:
    """The tags on everything the stack creates (provider default_tags, and each resource)."""
    return {"ManagedBy": "provision", "PrefectWorkPool": pool}


def _subnets(outputs: Mapping[str, Any]) -> list[str]:
    subnets = outputs.get("subnet_ids")
    return list(subnets) if subnets else [PLACEHOLDER]


def _scope(statement: Mapping[str, Any]) -> str:
    resources = statement["Resource"]
    text = ", ".join(resources) if isinstance(resources, list) else resources
    for operator, pairs in statement.get("Condition", {}).items():
        for key, value in pairs.items():
            text += f" when {key} {operator} {value}"
    return text
