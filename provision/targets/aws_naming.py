"""AWS naming and input rules, as pure functions: names derived from a pool name, checks of
the user's options, and the AWS CLI's configuration files.

ECS pools are named ``[A-Za-z0-9_-]`` (the worker uses the pool name in task-definition family
names, which allow nothing else; see :func:`family_pattern`). AWS names are stricter in other
ways: IAM names are unique *case-insensitively*, ECR repository names must be lowercase with no
doubled or trailing separators, and IAM role and user names stop at 64 characters. Every function
here returns a name AWS accepts for any valid pool name, and is stable: the same pool always maps
to the same names, so a rerun never renames (and so never replaces) anything.

The shared stem is the pool name lowercased, with runs of ``-``/``_`` collapsed to one ``-`` and
edge separators dropped. When that changes the name (``ETL`` and ``etl`` would otherwise share
IAM names), or when a name must be truncated, a 6-hex-char hash of the exact pool name is added.

Nothing here imports pulumi or a cloud SDK: the CLI validates options with these before any
engine call.
"""

from __future__ import annotations

import configparser
import difflib
import ipaddress
import re
from collections.abc import Mapping
from functools import partial
from pathlib import Path
from typing import Any

from provision.errors import InvalidInputError
from provision.targets import naming
from provision.targets.base import text_value

POOL_NAME_RE = re.compile(r"^[A-Za-z0-9_-]+$")
"""Pool names the ECS worker can use: task-definition families allow only these characters."""

# Limits from the AWS API references (CreateRole/CreateUser 64, CreatePolicy 128, SQS queue 80,
# EventBridge rule 64, ECR repository 256, CloudWatch log group 512, ECS cluster 255,
# security group 255).
IAM_NAME_MAX = 64
POLICY_NAME_MAX = 128
QUEUE_NAME_MAX = 80
RULE_NAME_MAX = 64
CLUSTER_NAME_MAX = 255

UUID_PATTERN = "????????-????-????-????-????????????"
"""IAM wildcard for one UUID: ``?`` matches exactly one character."""

_HASH_LEN = 6  # 24 bits: 200 long names sharing a prefix collide with p < 0.2%


def pool_hash(pool: str) -> str:
    """6 lowercase hex chars that identify ``pool`` (stable across runs and machines)."""
    return naming.pool_hash(pool, _HASH_LEN)


def stem(pool: str) -> str:
    """The pool name as a name stem every AWS service accepts (see the module doc)."""
    base = re.sub(r"[-_]{2,}", "-", pool.lower()).strip("-_")
    base = re.sub(r"[^a-z0-9_-]", "-", base) or "p"
    return base if base == pool else f"{base}-{pool_hash(pool)}"


def _bounded(pool: str, suffix: str, limit: int) -> str:
    """``{stem}-{suffix}``, or ``{truncated stem}-{hash}-{suffix}`` when that exceeds ``limit``."""
    return naming.bounded(stem(pool), pool, suffix, limit, hash_len=_HASH_LEN)


def cluster_name(pool: str) -> str:
    """The ECS cluster. CreateCluster returns an existing cluster of the same name instead of
    failing, so the name carries a suffix no hand-made cluster is likely to have."""
    return _bounded(pool, "ecs", CLUSTER_NAME_MAX)


def execution_role_name(pool: str) -> str:
    """The task execution role (image pulls, log delivery)."""
    return _bounded(pool, "ecs-execution", IAM_NAME_MAX)


def task_role_name(pool: str) -> str:
    """The optional task role the flows themselves run as."""
    return _bounded(pool, "ecs-task", IAM_NAME_MAX)


def worker_user_name(pool: str) -> str:
    """The IAM user whose access key is the pool's credential."""
    return _bounded(pool, "ecs-worker", IAM_NAME_MAX)


def worker_policy_name(pool: str) -> str:
    """The worker user's managed policy."""
    return _bounded(pool, "ecs-worker", POLICY_NAME_MAX)


def log_group_name(pool: str) -> str:
    """The CloudWatch log group the flow containers log to."""
    return f"/prefect/ecs/{stem(pool)}"


def repository_name(pool: str) -> str:
    """The ECR repository for the flow images (ECR names are lowercase, hence the stem)."""
    return f"{stem(pool)}-images"


def security_group_name(pool: str) -> str:
    """The tasks' security group. EC2 rejects group names starting with ``sg-``."""
    name = f"{stem(pool)}-ecs-tasks"
    return f"pool-{name}" if name.startswith("sg-") else name


def network_name(pool: str) -> str:
    """``Name`` tag of the VPC, its internet gateway and route table (subnets add the AZ)."""
    return f"{stem(pool)}-ecs"


def events_queue_name(pool: str) -> str:
    """The SQS queue of ECS task-state events (Prefect's own template: ``<pool>-ecs-events``)."""
    return _bounded(pool, "ecs-events", QUEUE_NAME_MAX)


def events_dlq_name(pool: str) -> str:
    """Dead-letter queue of :func:`events_queue_name`."""
    return _bounded(pool, "ecs-events-dlq", QUEUE_NAME_MAX)


def events_rule_name(pool: str) -> str:
    """The EventBridge rule that forwards this cluster's task-state changes."""
    return _bounded(pool, "ecs-task-events", RULE_NAME_MAX)


def resource_names(pool: str) -> dict[str, str]:
    """Every physical name of a pool's stack (``stacks.aws_ecs.EcsPoolNames`` fields)."""
    return {
        "cluster": cluster_name(pool),
        "execution_role": execution_role_name(pool),
        "task_role": task_role_name(pool),
        "worker_user": worker_user_name(pool),
        "worker_policy": worker_policy_name(pool),
        "log_group": log_group_name(pool),
        "repository": repository_name(pool),
        "security_group": security_group_name(pool),
        "network": network_name(pool),
        "events_queue": events_queue_name(pool),
        "events_dlq": events_dlq_name(pool),
        "events_rule": events_rule_name(pool),
        "family_pattern": family_pattern(pool),
    }


# -- the worker service (``--with-worker``) --------------------------------------------------

WORKER_CONTAINER = "prefect-worker"
"""The worker's container name (prefect-aws's ``deploy-service`` template uses the same)."""
WORKER_LOG_STREAM_PREFIX = "worker"
"""The worker's awslogs streams in the pool's log group: ``worker/prefect-worker/<task id>``
(the flows' streams get the prefixes prefect-aws gives them)."""
SECRET_NAME_MAX = 512  # Secrets Manager CreateSecret: 1-512 of [A-Za-z0-9/_+=.@-]
FAMILY_NAME_MAX = 255  # RegisterTaskDefinition family, CreateService serviceName: [A-Za-z0-9_-]


def worker_role_name(pool: str) -> str:
    """Keyless: the worker's task role, holding the worker policy the IAM user holds otherwise.
    IAM users and roles have separate namespaces, so it shares the user's name."""
    return _bounded(pool, "ecs-worker", IAM_NAME_MAX)


def worker_execution_role_name(pool: str) -> str:
    """The worker tasks' own execution role (image pull, logs, the worker's secret only)."""
    return _bounded(pool, "ecs-worker-execution", IAM_NAME_MAX)


def worker_family(pool: str) -> str:
    """The worker's task-definition family. Never ``prefect_<pool>_…``: the worker policy lets
    the worker register and run only those families, so it cannot touch its own."""
    return _bounded(pool, "ecs-worker", FAMILY_NAME_MAX)


def worker_service_name(pool: str) -> str:
    """The worker's ECS service in the pool's cluster."""
    return _bounded(pool, "ecs-worker", FAMILY_NAME_MAX)


def worker_secret_prefix(pool: str) -> str:
    """Secrets Manager names of the worker's secrets: this prefix and the variable's name
    (``prefect/ecs/etl/PREFECT_API_KEY``), beside the pool's ``/prefect/ecs/etl`` logs."""
    return f"prefect/ecs/{stem(pool)}/"


def worker_names(pool: str) -> dict[str, str]:
    """Every physical name of the pool's worker (``stacks.aws_worker.EcsWorkerNames`` fields)."""
    return {
        "execution_role": worker_execution_role_name(pool),
        "family": worker_family(pool),
        "service": worker_service_name(pool),
        "container": WORKER_CONTAINER,
        "secret_prefix": worker_secret_prefix(pool),
    }


def family_pattern(pool: str) -> str:
    """IAM resource pattern of the task-definition families the ECS worker registers.

    prefect-aws names a family ``prefect_<work pool name>_<deployment id or flow id>``
    (``ECSWorker._get_or_generate_family``) and uses the pool name verbatim: its slugify call
    discards its result. The id is a UUID, matched character by character, so pool ``etl``
    does not also match the families of a pool named ``etl_x``. The trailing ``*`` covers
    ``:<revision>``.
    """
    return f"prefect_{pool}_{UUID_PATTERN}*"


# -- validation of user input (one-line InvalidInputError, before any engine call) -----------

# Regions of the commercial partition that offer ECS (botocore 1.44.5's endpoint data, which
# matches AWS's region table; Fargate runs in every ECS region).
AWS_REGIONS: tuple[str, ...] = (
    "af-south-1",
    "ap-east-1",
    "ap-east-2",
    "ap-northeast-1",
    "ap-northeast-2",
    "ap-northeast-3",
    "ap-south-1",
    "ap-south-2",
    "ap-southeast-1",
    "ap-southeast-2",
    "ap-southeast-3",
    "ap-southeast-4",
    "ap-southeast-5",
    "ap-southeast-6",
    "ap-southeast-7",
    "ca-central-1",
    "ca-west-1",
    "eu-central-1",
    "eu-central-2",
    "eu-north-1",
    "eu-south-1",
    "eu-south-2",
    "eu-west-1",
    "eu-west-2",
    "eu-west-3",
    "il-central-1",
    "me-central-1",
    "me-south-1",
    "mx-central-1",
    "sa-east-1",
    "us-east-1",
    "us-east-2",
    "us-west-1",
    "us-west-2",
)

# CloudWatch Logs PutRetentionPolicy accepts exactly these; 0 means "never expire" (pulumi-aws).
LOG_RETENTION_DAYS: tuple[int, ...] = (
    0,
    1,
    3,
    5,
    7,
    14,
    30,
    60,
    90,
    120,
    150,
    180,
    365,
    400,
    545,
    731,
    1096,
    1827,
    2192,
    2557,
    2922,
    3288,
    3653,
)

VPC_ID_RE = re.compile(r"^vpc-[0-9a-f]{8}(?:[0-9a-f]{9})?$")
SUBNET_ID_RE = re.compile(r"^subnet-[0-9a-f]{8}(?:[0-9a-f]{9})?$")
# Managed policies: AWS's own (account "aws") or a 12-digit account's, any path.
POLICY_ARN_RE = re.compile(r"^arn:aws:iam::(?:aws|\d{12}):policy/[\w+=,.@/-]{1,512}$")
PROFILE_RE = re.compile(r"^[^\s\[\]]+$")

MAX_SUBNETS = 16  # awsvpcConfiguration accepts up to 16 subnets
MAX_TASK_ROLE_POLICIES = 20  # IAM's hard ceiling of managed policies per role
MAX_ECR_KEEP = 10000
VPC_PREFIX_RANGE = (16, 24)  # /24 still leaves four /26 subnets of 59 usable addresses
PRIVATE_NETWORKS = tuple(
    ipaddress.ip_network(n) for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16")
)


def _origin(source: str) -> str:
    return f" (from {source})" if source else ""


def validate_pool(pool: str, type_name: str) -> None:
    """The ECS worker puts the pool name in task-definition family names: ``[A-Za-z0-9_-]``."""
    if not POOL_NAME_RE.match(pool):
        raise InvalidInputError(
            f"Pool name '{pool}' can't be used for type '{type_name}': ECS task-definition "
            "families, which the worker names after the pool, allow only letters, digits, "
            "'-' and '_'."
        )


def validate_region(region: str, source: str) -> None:
    """A real AWS region of the commercial partition."""
    if region in AWS_REGIONS:
        return
    close = difflib.get_close_matches(region, AWS_REGIONS, n=1)
    hint = f"did you mean {close[0]}?" if close else f"use one of: {', '.join(AWS_REGIONS)}."
    raise InvalidInputError(f"Unknown AWS region '{region}'{_origin(source)}; {hint}")


def validate_profile(profile: str, source: str, known: set[str]) -> None:
    """A profile name that exists in the AWS config or credentials file."""
    if not PROFILE_RE.match(profile):
        raise InvalidInputError(f"Invalid AWS profile name '{profile}'{_origin(source)}.")
    if profile not in known:
        raise InvalidInputError(
            f"AWS profile '{profile}'{_origin(source)} is in neither the AWS config nor the "
            "credentials file; create it with `aws configure --profile NAME`."
        )


def validate_network(
    vpc_id: str | None, subnet_ids: tuple[str, ...], vpc_cidr: str | None, source: str
) -> None:
    """An existing VPC with its subnets, or a CIDR for the VPC provision creates."""
    if vpc_id is not None and not VPC_ID_RE.match(vpc_id):
        raise InvalidInputError(
            f"Invalid --vpc-id '{vpc_id}'{_origin(source)}: expected vpc- and 8 or 17 "
            "hexadecimal digits."
        )
    for subnet in subnet_ids:
        if not SUBNET_ID_RE.match(subnet):
            raise InvalidInputError(
                f"Invalid subnet id '{subnet}' in --subnet-ids{_origin(source)}: expected "
                "subnet- and 8 or 17 hexadecimal digits."
            )
    if len(set(subnet_ids)) != len(subnet_ids):
        raise InvalidInputError(f"--subnet-ids{_origin(source)} lists a subnet twice.")
    if len(subnet_ids) > MAX_SUBNETS:
        raise InvalidInputError(
            f"--subnet-ids{_origin(source)} lists {len(subnet_ids)} subnets; ECS takes at most "
            f"{MAX_SUBNETS}."
        )
    if vpc_cidr is not None:
        validate_cidr(vpc_cidr, source)


def validate_cidr(cidr: str, source: str) -> None:
    """A private (RFC 1918) IPv4 network of /16 to /24, written as its network address."""
    low, high = VPC_PREFIX_RANGE
    problem = f"Invalid --vpc-cidr '{cidr}'{_origin(source)}"
    try:
        net = ipaddress.ip_network(cidr, strict=True)
    except ValueError:
        raise InvalidInputError(
            f"{problem}: expected a network address such as 10.42.0.0/16."
        ) from None
    if net.version != 4 or not any(net.subnet_of(p) for p in PRIVATE_NETWORKS):
        raise InvalidInputError(
            f"{problem}: use a private range (10.0.0.0/8, 172.16.0.0/12 or 192.168.0.0/16)."
        )
    if not low <= net.prefixlen <= high:
        raise InvalidInputError(f"{problem}: the prefix must be /{low} to /{high}.")


def validate_numbers(log_retention_days: Any, ecr_keep_images: Any, sources: dict) -> None:
    """CloudWatch's retention values; a positive ECR image count."""
    if not _is_int(log_retention_days) or log_retention_days not in LOG_RETENTION_DAYS:
        allowed = ", ".join(str(d) for d in LOG_RETENTION_DAYS)
        raise InvalidInputError(
            f"Invalid --log-retention-days {log_retention_days!r}"
            f"{_origin(sources.get('log_retention_days', ''))}: CloudWatch accepts {allowed} "
            "(0 keeps logs forever)."
        )
    if not _is_int(ecr_keep_images) or not 1 <= ecr_keep_images <= MAX_ECR_KEEP:
        raise InvalidInputError(
            f"Invalid --ecr-keep-images {ecr_keep_images!r}"
            f"{_origin(sources.get('ecr_keep_images', ''))}: a whole number from 1 to "
            f"{MAX_ECR_KEEP}."
        )


def validate_policy_arns(arns: tuple[str, ...], source: str) -> None:
    """Managed policy ARNs for the task role."""
    for arn in arns:
        if not isinstance(arn, str) or not POLICY_ARN_RE.match(arn):
            raise InvalidInputError(
                f"Invalid --task-role-policy-arn '{arn}'{_origin(source)}: expected a managed "
                "policy ARN such as arn:aws:iam::aws:policy/AmazonS3ReadOnlyAccess."
            )
    if len(set(arns)) != len(arns):
        raise InvalidInputError(f"--task-role-policy-arn{_origin(source)} lists a policy twice.")
    if len(arns) > MAX_TASK_ROLE_POLICIES:
        raise InvalidInputError(
            f"{len(arns)} --task-role-policy-arn values; a role holds at most "
            f"{MAX_TASK_ROLE_POLICIES} managed policies."
        )


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


# -- the AWS CLI's configuration files (read, never executed) --------------------------------


def _home(env: Mapping[str, str]) -> Path:
    return Path(env["HOME"]) if env.get("HOME") else Path.home()


def config_file(env: Mapping[str, str]) -> Path:
    """``$AWS_CONFIG_FILE`` or ``~/.aws/config``."""
    if env.get("AWS_CONFIG_FILE"):
        return Path(env["AWS_CONFIG_FILE"]).expanduser()
    return _home(env) / ".aws" / "config"


def credentials_file(env: Mapping[str, str]) -> Path:
    """``$AWS_SHARED_CREDENTIALS_FILE`` or ``~/.aws/credentials``."""
    if env.get("AWS_SHARED_CREDENTIALS_FILE"):
        return Path(env["AWS_SHARED_CREDENTIALS_FILE"]).expanduser()
    return _home(env) / ".aws" / "credentials"


def _sections(path: Path) -> dict[str, dict[str, str]]:
    parser = configparser.ConfigParser(interpolation=None)
    try:
        parser.read(path)
    except (configparser.Error, UnicodeDecodeError):
        return {}
    return {s: {k: v.strip() for k, v in parser.items(s)} for s in parser.sections()}


def config_profiles(env: Mapping[str, str]) -> dict[str, dict[str, str]]:
    """Profiles of the AWS config file, by name: ``[default]`` and ``[profile NAME]``.

    Unreadable or malformed files count as empty: these are only defaults.
    """
    profiles: dict[str, dict[str, str]] = {}
    for section, values in _sections(config_file(env)).items():
        if section == "default":
            profiles.setdefault("default", {}).update(values)
        elif section.startswith("profile "):
            profiles[section[len("profile ") :].strip()] = values
    return profiles


def known_profiles(env: Mapping[str, str]) -> set[str]:
    """Profile names defined in the config file or the credentials file."""
    return set(config_profiles(env)) | set(_sections(credentials_file(env)))


# -- where options come from ----------------------------------------------------------------


def split_ids(value: Any) -> tuple[str, ...]:
    """``--subnet-ids`` as given (comma-separated) or as saved (a list)."""
    if value is None:
        return ()
    items = value.split(",") if isinstance(value, str) else list(value)
    return tuple(str(i).strip() for i in items if str(i).strip())


def environment_region(env: Mapping[str, str], profile: str | None) -> tuple[str | None, str]:
    """``(region, source)`` the way the AWS SDKs find it, or ``(None, "")``.

    ``AWS_REGION``, ``AWS_DEFAULT_REGION``, then ``region`` of the profile (``[default]``
    when none is selected) in the AWS config file.
    """
    name = profile or "default"
    for value, source in (
        (env.get("AWS_REGION"), "AWS_REGION"),
        (env.get("AWS_DEFAULT_REGION"), "AWS_DEFAULT_REGION"),
        (config_profiles(env).get(name, {}).get("region"), f"AWS profile {name}"),
    ):
        if value and value.strip():
            return value.strip(), source
    return None, ""


def resolve_network(
    given: Mapping[str, Any],
    prior: Mapping[str, Any],
    sources: dict[str, str],
    default_cidr: str,
) -> tuple[str | None, tuple[str, ...], str | None]:
    """``(vpc_id, subnet_ids, vpc_cidr)``, validated.

    The network flags count as one choice: ``--vpc-id`` with ``--subnet-ids`` (an existing
    network, nothing created), or ``--vpc-cidr`` (the VPC to create). Either replaces the saved
    choice; with neither, the saved choice stays, else a VPC of ``default_cidr`` is created.
    """
    vpc_id = given.get("vpc_id")
    subnets = split_ids(given.get("subnet_ids"))
    cidr = given.get("vpc_cidr")
    if vpc_id or subnets:
        if not subnets:
            raise InvalidInputError(
                "--vpc-id needs --subnet-ids: the subnets (in that VPC) tasks run in."
            )
        if not vpc_id:
            raise InvalidInputError(
                "--subnet-ids needs --vpc-id: the worker checks the subnets belong to it."
            )
        if cidr:
            raise InvalidInputError(
                "--vpc-cidr is for the VPC provision creates; it does not go with --vpc-id."
            )
        source, cidr = "--vpc-id/--subnet-ids", None
    elif cidr:
        source = "--vpc-cidr"
    elif prior:
        vpc_id, subnets, cidr = prior["vpc_id"], split_ids(prior["subnet_ids"]), prior["vpc_cidr"]
        source = "the pool's saved options"
    else:
        source, cidr = "", default_cidr
    sources["network"] = source
    vpc_id = str(vpc_id).strip() if vpc_id else None
    cidr = str(cidr).strip() if cidr else None
    validate_network(vpc_id, subnets, cidr, source)
    return vpc_id, subnets, cidr


# Types whose create fails on an existing name, and whose provider id is that name.
_NAMED_BY_NAME = frozenset(
    {
        "aws:iam/role:Role",
        "aws:iam/user:User",
        "aws:cloudwatch/logGroup:LogGroup",
        "aws:ecr/repository:Repository",
        # Its recorded id is the ARN, which ends in a suffix AWS picks; but terraform-provider-
        # aws reads a secret with DescribeSecret(SecretId=<id>), which takes the name as well
        # (internal/service/secretsmanager/secret.go, findSecretByID), so the name adopts it.
        "aws:secretsmanager/secret:Secret",
    }
)
_ACCOUNT_ARN_RE = re.compile(
    r"arn:(?P<partition>aws[a-z-]*):[a-z0-9-]+:[a-z0-9-]*:(?P<account>\d{12}):"
)
_CLUSTER_ARN_RE = re.compile(
    r"^arn:(?P<partition>aws[a-z-]*):ecs:(?P<region>[a-z0-9-]+):(?P<account>\d{12}):"
    r"cluster/(?P<cluster>[A-Za-z0-9_-]+)$"
)


def resource_id(type_token: str, inputs: Mapping[str, Any]) -> str | None:
    """The id pulumi-aws records for a create of ``type_token`` with ``inputs``, or ``None``.

    Only creates that fail on an existing name are listed (IAM roles, users and policies, log
    groups, repositories, secrets, ECS services, the default route, route table associations);
    ECS clusters, queues, rules, inline policies and attachments are idempotent, and other VPC
    parts, task-definition revisions and secret versions get ids AWS picks. Routes,
    associations and services are given in their import form (``rtb-…_0.0.0.0/0``,
    ``subnet-…/rtb-…``, ``<cluster>/<service>``), which the read turns into the recorded id.
    A policy's id is its ARN: the account and partition come from the ARNs its own document
    names (the pool's cluster).
    """

    text = partial(text_value, inputs)
    name = text("name")
    if type_token in _NAMED_BY_NAME:
        return name
    if type_token == "aws:ec2/route:Route":
        # The bridged provider's importer form; the read answers with the canonical id.
        table = text("routeTableId")
        destination = text("destinationCidrBlock") or text("destinationIpv6CidrBlock")
        return table and destination and f"{table}_{destination}"
    if type_token == "aws:ec2/routeTableAssociation:RouteTableAssociation":
        table, member = text("routeTableId"), text("subnetId") or text("gatewayId")
        return table and member and f"{member}/{table}"
    if type_token == "aws:ecs/service:Service":
        # CreateService refuses a name that is active in the cluster ("Creation of service was
        # not idempotent"). Given in the importer's form, <cluster name>/<service name>: the
        # read of an adopted resource carries no state, and terraform-provider-aws's importer
        # (resourceServiceImport) turns that form into the cluster and the service's ARN, the
        # recorded id.
        match = _CLUSTER_ARN_RE.match(text("cluster") or "")
        return match and name and f"{match['cluster']}/{name}"
    if type_token == "aws:iam/policy:Policy":
        match = _ACCOUNT_ARN_RE.search(text("policy") or "")
        if not (name and match):
            return None
        path = text("path") or "/"
        return f"arn:{match['partition']}:iam::{match['account']}:policy{path}{name}"
    return None
