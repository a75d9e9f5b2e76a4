"""AwsPool: option resolution, naming, Prefect block and template wiring, grants, program."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pulumi
import pytest
from pulumi.runtime import settings as pulumi_settings
from pulumi.runtime.rpc import _special_secret_sig, _special_sig_key

from provision import service
from provision.engine_errors import classify, propagation_rules
from provision.errors import (
    CloudCredentialsError,
    EngineError,
    InvalidInputError,
    PermissionDeniedError,
    QuotaExceededError,
)
from provision.recovery import Untracked
from provision.registry import POOL_TYPES
from provision.saved import RECORD_TYPE, SavedPool, stack_state
from provision.service import PoolRequest
from provision.settings import load_settings
from provision.targets import aws_naming as naming
from provision.targets.aws import (
    DEFAULT_VPC_CIDR,
    PLACEHOLDER,
    AwsOptions,
    AwsPool,
)
from provision.targets.aws_errors import AWS_ERROR_RULES, PROPAGATION_ERRORS
from provision.targets.base import BlockSpec, WorkerLaunch

ECS = POOL_TYPES["ecs"]
PUSH = POOL_TYPES["ecs:push"]
ACCOUNT = "123456789012"

NONE_GIVEN = dict.fromkeys(AwsOptions.keys())

# Variables the ecs worker's default base job template declares (prefect-aws
# workers/ecs_worker.py ECSVariables, plus BaseVariables): the tool may only set these.
ECS_VARIABLES = {
    "name",
    "env",
    "labels",
    "command",
    "task_definition_arn",
    "aws_credentials",
    "cluster",
    "family",
    "launch_type",
    "capacity_provider_strategy",
    "image",
    "cpu",
    "memory",
    "container_name",
    "prefect_api_key_secret_arn",
    "prefect_api_auth_string_secret_arn",
    "task_role_arn",
    "execution_role_arn",
    "vpc_id",
    "configure_cloudwatch_logs",
    "cloudwatch_logs_options",
    "cloudwatch_logs_prefix",
    "network_configuration",
    "auto_deregister_task_definition",
    "match_latest_revision_in_family",
}

SUBNETS = "subnet-0123456789abcdef0,subnet-0fedcba9876543210"
VPC = "vpc-0a1b2c3d4e5f60718"


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """An empty HOME, so the developer's own AWS config never leaks into a test."""
    path = tmp_path / "home"
    path.mkdir()
    return path


def aws_files(home: Path, config: str = "", credentials: str = "") -> Path:
    """Write ``~/.aws/config`` and ``~/.aws/credentials`` like the AWS CLI does."""
    (home / ".aws").mkdir(exist_ok=True)
    (home / ".aws" / "config").write_text(config)
    (home / ".aws" / "credentials").write_text(credentials)
    return home


def resolve_pool(
    *, pool="etl", pool_type=ECS, given=None, env=None, saved=None, home=None
) -> AwsPool:
    """``AwsPool.resolve`` as the service calls it: ``saved`` options as the record keeps them."""
    env = dict(env or {})
    if home is not None:
        env.setdefault("HOME", str(home))
    prior = saved.model_dump(mode="json") if isinstance(saved, AwsOptions) else saved
    return AwsPool.resolve(pool, pool_type, {**NONE_GIVEN, **(given or {})}, env, prior)


def resolve(**kw) -> AwsOptions:
    """The options :func:`resolve_pool` binds."""
    return resolve_pool(**kw).options


# -- resolve: sources and precedence ---------------------------------------------------------


def test_defaults(home):
    opts = resolve(given={"region": "eu-west-1"}, home=home)
    assert opts == AwsOptions(
        region="eu-west-1",
        profile=None,
        vpc_id=None,
        subnet_ids=(),
        vpc_cidr="10.42.0.0/16",
        log_retention_days=30,
        task_role_policy_arns=(),
        ecr_keep_images=30,
    )
    assert DEFAULT_VPC_CIDR == "10.42.0.0/16"


def test_region_precedence(home):
    aws_files(
        home,
        config="[default]\nregion = ap-south-1\n[profile work]\nregion = ca-central-1\n",
        credentials="[work]\naws_access_key_id = AKIAEXAMPLE\n",
    )
    env = {"AWS_REGION": "us-east-2", "AWS_DEFAULT_REGION": "us-west-2", "AWS_PROFILE": "work"}
    saved = resolve(given={"region": "eu-central-1"}, home=home)

    def region(**kw):
        return resolve(home=home, **kw).region

    assert region(given={"region": "eu-central-1"}, env=env, saved=saved) == "eu-central-1"
    assert region(env=env, saved=saved) == "eu-central-1"
    assert region(env=env) == "us-east-2"
    del env["AWS_REGION"]
    assert region(env=env) == "us-west-2"
    del env["AWS_DEFAULT_REGION"]
    assert region(env=env) == "ca-central-1"  # the selected profile's region
    del env["AWS_PROFILE"]
    assert region(env=env) == "ap-south-1"  # [default]
    assert region(env=env, given={"profile": "work"}) == "ca-central-1"


def test_region_source_is_named(home):
    aws_files(home, config="[default]\nregion = mars-1\n")
    with pytest.raises(InvalidInputError, match=r"'mars-1' \(from AWS profile default\)"):
        resolve(home=home)
    with pytest.raises(InvalidInputError, match=r"\(from AWS_DEFAULT_REGION\)"):
        resolve(env={"AWS_DEFAULT_REGION": "eu-west-7"}, home=home)


def test_aws_config_file_env(tmp_path, home):
    config = tmp_path / "elsewhere.ini"
    config.write_text("[profile ci]\nregion = sa-east-1\n")
    env = {"AWS_CONFIG_FILE": str(config), "AWS_PROFILE": "ci"}
    opts = resolve(env=env, home=home)
    assert (opts.region, opts.profile) == ("sa-east-1", "ci")


def test_profile_precedence_and_existence(home):
    aws_files(
        home,
        config="[profile a]\nregion = eu-west-1\n[profile b]\nregion = eu-west-2\n",
        credentials="[c]\naws_access_key_id = AKIAEXAMPLE\n",
    )
    saved = resolve(given={"profile": "a"}, home=home)
    assert saved.profile == "a"
    env = {"AWS_PROFILE": "b"}
    assert resolve(given={"profile": "c", "region": "eu-west-1"}, home=home).profile == "c"
    assert resolve(env=env, saved=saved, home=home).profile == "a"
    assert resolve(env=env, home=home).profile == "b"
    with pytest.raises(InvalidInputError) as info:
        resolve(given={"profile": "nope", "region": "eu-west-1"}, home=home)
    assert info.value.message == (
        "AWS profile 'nope' (from --profile) is in neither the AWS config nor the credentials "
        "file; create it with `aws configure --profile NAME`."
    )
    with pytest.raises(InvalidInputError, match=r"\(from AWS_PROFILE\)"):
        resolve(env={"AWS_PROFILE": "gone", "AWS_REGION": "eu-west-1"}, home=home)


def test_empty_env_values_count_as_unset(home):
    aws_files(home, config="[default]\nregion = eu-north-1\n")
    env = {"AWS_REGION": "", "AWS_DEFAULT_REGION": " ", "AWS_PROFILE": ""}
    opts = resolve(env=env, home=home)
    assert (opts.region, opts.profile) == ("eu-north-1", None)


def test_malformed_aws_config_is_ignored(home):
    (home / ".aws").mkdir()
    (home / ".aws" / "config").write_text("not an ini [file\n= =")
    with pytest.raises(InvalidInputError, match="No AWS region"):
        resolve(home=home)


def test_missing_region_message(home):
    with pytest.raises(InvalidInputError) as info:
        resolve(home=home)
    assert info.value.message == (
        "No AWS region: pass --region, set AWS_REGION, or set a region in your AWS profile "
        "(`aws configure set region REGION`)."
    )


def test_saved_options_are_reused(home):
    saved = resolve(
        given={
            "region": "eu-west-1",
            "vpc_id": VPC,
            "subnet_ids": SUBNETS,
            "log_retention_days": 90,
            "task_role_policy_arns": ["arn:aws:iam::aws:policy/AmazonS3ReadOnlyAccess"],
            "ecr_keep_images": 5,
        },
        home=home,
    )
    again = resolve(saved=saved, home=home)
    assert again == saved
    assert again.subnet_ids == ("subnet-0123456789abcdef0", "subnet-0fedcba9876543210")
    # Round trip through stack config (JSON) too.
    reloaded = AwsOptions.model_validate(json.loads(json.dumps(saved.model_dump(mode="json"))))
    assert resolve(saved=reloaded, home=home) == saved
    # A flag still wins.
    assert resolve(saved=saved, given={"ecr_keep_images": 7}, home=home).ecr_keep_images == 7


def test_a_saved_pool_keeps_its_region(home):
    saved = resolve(given={"region": "eu-west-1"}, home=home)
    with pytest.raises(InvalidInputError) as info:
        resolve(saved=saved, given={"region": "us-east-1"}, home=home)
    assert info.value.message.startswith(
        "Pool 'etl' lives in eu-west-1, not us-east-1: destroy it first"
    )
    # The environment never moves a saved pool either: the saved region wins over it.
    assert resolve(saved=saved, env={"AWS_REGION": "us-east-1"}, home=home).region == ("eu-west-1")


def test_network_choices(home):
    base = {"region": "eu-west-1"}
    existing = resolve(given={**base, "vpc_id": VPC, "subnet_ids": SUBNETS}, home=home)
    assert existing.vpc_id == VPC
    assert existing.subnet_ids == tuple(SUBNETS.split(","))
    assert existing.vpc_cidr is None
    # Spaces and empty items in the comma-separated list are tolerated.
    spaced = resolve(
        given={**base, "vpc_id": VPC, "subnet_ids": " subnet-0123456789abcdef0 , ,"},
        home=home,
    )
    assert spaced.subnet_ids == ("subnet-0123456789abcdef0",)
    # Saved existing network stays; --vpc-cidr switches to a created VPC.
    assert resolve(saved=existing, home=home).vpc_id == VPC
    switched = resolve(saved=existing, given={"vpc_cidr": "172.20.0.0/20"}, home=home)
    assert (switched.vpc_id, switched.subnet_ids, switched.vpc_cidr) == (None, (), "172.20.0.0/20")
    # And new --vpc-id/--subnet-ids replace a saved created VPC.
    created = resolve(given={**base, "vpc_cidr": "192.168.0.0/24"}, home=home)
    moved = resolve(saved=created, given={"vpc_id": VPC, "subnet_ids": SUBNETS}, home=home)
    assert (moved.vpc_id, moved.vpc_cidr) == (VPC, None)
    # 8-hex-digit (old-style) ids are valid too.
    old = resolve(given={**base, "vpc_id": "vpc-1a2b3c4d", "subnet_ids": "subnet-1a2b3c4d"})
    assert old.vpc_id == "vpc-1a2b3c4d"


def test_one_policy_arn_as_a_string(home):
    arn = "arn:aws:iam::aws:policy/AmazonS3ReadOnlyAccess"
    opts = resolve(given={"region": "eu-west-1", "task_role_policy_arns": arn}, home=home)
    assert opts.task_role_policy_arns == (arn,)


def test_unset_unknown_keys_are_ignored(home):
    opts = resolve(given={"region": "eu-west-1", "project": None}, home=home)
    assert opts.region == "eu-west-1"


# -- resolve: bad input, one line each -----------------------------------------------

BAD_INPUTS = [
    ({"project": "acme"}, "Option --project does not apply to type 'ecs'."),
    ({"subscription": "x"}, "Option --subscription does not apply to type 'ecs'."),
    ({"region": "eu-west-9"}, "Unknown AWS region 'eu-west-9' (from --region); did you mean"),
    ({"region": "moon-1"}, "Unknown AWS region 'moon-1' (from --region); use one of: af-south-1"),
    ({"region": "cn-north-1"}, "Unknown AWS region 'cn-north-1'"),
    ({"vpc_id": "vpc-123", "subnet_ids": SUBNETS}, "Invalid --vpc-id 'vpc-123' (from --vpc-id"),
    ({"vpc_id": "vpc-0A1B2C3D", "subnet_ids": SUBNETS}, "Invalid --vpc-id"),
    ({"vpc_id": "sg-0a1b2c3d4e5f60718", "subnet_ids": SUBNETS}, "Invalid --vpc-id"),
    ({"vpc_id": VPC, "subnet_ids": "subnet-xyz"}, "Invalid subnet id 'subnet-xyz' in --subnet-ids"),
    ({"vpc_id": VPC, "subnet_ids": f"{SUBNETS},vpc-1a2b3c4d"}, "Invalid subnet id 'vpc-1a2b3c4d'"),
    ({"subnet_ids": SUBNETS}, "--subnet-ids needs --vpc-id"),
    ({"vpc_id": VPC}, "--vpc-id needs --subnet-ids"),
    (
        {"vpc_id": VPC, "subnet_ids": SUBNETS, "vpc_cidr": "10.0.0.0/16"},
        "--vpc-cidr is for the VPC provision creates; it does not go with --vpc-id.",
    ),
    (
        {"vpc_id": VPC, "subnet_ids": "subnet-1a2b3c4d,subnet-1a2b3c4d"},
        "--subnet-ids (from --vpc-id/--subnet-ids) lists a subnet twice.",
    ),
    (
        {"vpc_id": VPC, "subnet_ids": ",".join(f"subnet-{i:08x}" for i in range(17))},
        "lists 17 subnets; ECS takes at most 16.",
    ),
    (
        {"vpc_cidr": "8.8.0.0/16"},
        "Invalid --vpc-cidr '8.8.0.0/16' (from --vpc-cidr): use a private",
    ),
    ({"vpc_cidr": "172.32.0.0/16"}, "use a private range"),
    ({"vpc_cidr": "10.0.0.0/8"}, "the prefix must be /16 to /24."),
    ({"vpc_cidr": "10.0.0.0/25"}, "the prefix must be /16 to /24."),
    ({"vpc_cidr": "10.42.0.1/16"}, "expected a network address such as 10.42.0.0/16."),
    ({"vpc_cidr": "fd00::/56"}, "use a private range"),
    ({"vpc_cidr": "ten.0.0.0/16"}, "expected a network address"),
    ({"log_retention_days": 31}, "Invalid --log-retention-days 31 (from --log-retention-days)"),
    ({"log_retention_days": "30"}, "Invalid --log-retention-days '30'"),
    ({"log_retention_days": True}, "Invalid --log-retention-days True"),
    ({"log_retention_days": -1}, "CloudWatch accepts 0, 1, 3, 5, 7, 14, 30"),
    ({"ecr_keep_images": 0}, "Invalid --ecr-keep-images 0 (from --ecr-keep-images)"),
    ({"ecr_keep_images": 10001}, "a whole number from 1 to 10000."),
    ({"task_role_policy_arns": ["AmazonS3ReadOnlyAccess"]}, "Invalid --task-role-policy-arn"),
    (
        {"task_role_policy_arns": ["arn:aws:iam::12345:policy/x"]},
        "Invalid --task-role-policy-arn 'arn:aws:iam::12345:policy/x'",
    ),
    (
        {"task_role_policy_arns": ["arn:aws:iam::123456789012:role/x"]},
        "Invalid --task-role-policy-arn",
    ),
    (
        {"task_role_policy_arns": ["arn:aws:iam::aws:policy/A", "arn:aws:iam::aws:policy/A"]},
        "lists a policy twice.",
    ),
    (
        {"task_role_policy_arns": [f"arn:aws:iam::aws:policy/P{i}" for i in range(21)]},
        "21 --task-role-policy-arn values; a role holds at most 20 managed policies.",
    ),
    ({"profile": "has space"}, "Invalid AWS profile name 'has space' (from --profile)."),
]


@pytest.mark.parametrize(("given", "needle"), BAD_INPUTS)
def test_bad_inputs_are_one_line_errors(home, given, needle):
    with pytest.raises(InvalidInputError) as info:
        resolve(given={"region": "eu-west-1", **given}, home=home)
    message = info.value.message
    assert needle in message
    assert "\n" not in message
    assert info.value.exit_code == 2


@pytest.mark.parametrize("pool", ["my pool", "etl.prod", "data/team", "pööl", "a:b"])
def test_pool_names_outside_the_family_alphabet(home, pool):
    with pytest.raises(InvalidInputError) as info:
        resolve(pool=pool, given={"region": "eu-west-1"}, home=home)
    assert info.value.message == (
        f"Pool name '{pool}' can't be used for type 'ecs': ECS task-definition families, which "
        "the worker names after the pool, allow only letters, digits, '-' and '_'."
    )


def test_checks_never_touch_the_network(home, monkeypatch):
    import socket

    def refuse(*a, **k):
        raise AssertionError("resolve_options opened a connection")

    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    assert resolve(given={"region": "eu-west-1"}, home=home)
    with pytest.raises(InvalidInputError):
        resolve(given={"region": "nowhere-1"}, home=home)


def test_region_list():
    for region in ("us-east-1", "eu-west-1", "ap-northeast-1", "us-west-1", "mx-central-1"):
        assert region in naming.AWS_REGIONS
    assert len(set(naming.AWS_REGIONS)) == len(naming.AWS_REGIONS) == 34
    assert all(re.fullmatch(r"[a-z]{2}-[a-z]+-\d", r) for r in naming.AWS_REGIONS)


# -- naming ----------------------------------------------------------------------------------

TRICKY_POOLS = [
    "a",
    "etl",
    "ETL",
    "my_pool",
    "My-Pool_2",
    "9lives",
    "-leading-dash",
    "trailing-dash-",
    "___",
    "a__b",
    "a-_-b",
    "sg-pool",
    "UPPER_and_lower_123",
    "x" * 63,
    "the-quick-brown-fox-jumps-over-the-lazy-dog-and-keeps-running-on",
    "the-quick-brown-fox-jumps-over-the-lazy-dog-and-keeps-running-off",
]

ECR_RE = re.compile(r"^(?:[a-z0-9]+(?:[._-][a-z0-9]+)*/)*[a-z0-9]+(?:[._-][a-z0-9]+)*$")
IAM_RE = re.compile(r"^[\w+=,.@-]{1,64}$")
SQS_RE = re.compile(r"^[A-Za-z0-9_-]{1,80}$")
RULE_RE = re.compile(r"^[.\-_A-Za-z0-9]{1,64}$")
CLUSTER_RE = re.compile(r"^[A-Za-z0-9_-]{1,255}$")
LOG_GROUP_RE = re.compile(r"^[.\-_/#A-Za-z0-9]{1,512}$")


@pytest.mark.parametrize("pool", TRICKY_POOLS)
def test_derived_names_are_always_valid_and_stable(pool):
    names = naming.resource_names(pool)
    assert names == naming.resource_names(pool)  # stable: a rerun never renames anything
    for key in ("execution_role", "task_role", "worker_user"):
        assert IAM_RE.match(names[key]), names[key]
    assert IAM_RE.match(names["worker_policy"][:64]) and len(names["worker_policy"]) <= 128
    assert ECR_RE.match(names["repository"]), names["repository"]
    assert SQS_RE.match(names["events_queue"]) and SQS_RE.match(names["events_dlq"])
    assert RULE_RE.match(names["events_rule"])
    assert CLUSTER_RE.match(names["cluster"])
    assert LOG_GROUP_RE.match(names["log_group"])
    assert not names["security_group"].startswith("sg-")
    assert len(names["security_group"]) <= 255
    assert names["family_pattern"] == f"prefect_{pool}_????????-????-????-????-????????????*"


@pytest.mark.parametrize("pool", TRICKY_POOLS)
def test_derived_defaults_pass_resolve_options(home, pool):
    assert resolve(pool=pool, given={"region": "eu-west-1"}, home=home)


def test_short_names_are_readable():
    assert naming.resource_names("etl") == {
        "cluster": "etl-ecs",
        "execution_role": "etl-ecs-execution",
        "task_role": "etl-ecs-task",
        "worker_user": "etl-ecs-worker",
        "worker_policy": "etl-ecs-worker",
        "log_group": "/prefect/ecs/etl",
        "repository": "etl-images",
        "security_group": "etl-ecs-tasks",
        "network": "etl-ecs",
        "events_queue": "etl-ecs-events",
        "events_dlq": "etl-ecs-events-dlq",
        "events_rule": "etl-ecs-task-events",
        "family_pattern": "prefect_etl_????????-????-????-????-????????????*",
    }
    assert naming.repository_name("data_team") == "data_team-images"
    assert naming.security_group_name("sg-x") == "pool-sg-x-ecs-tasks"


def test_names_differing_only_in_case_do_not_collide():
    # IAM names are unique case-insensitively, and ECR names are lowercase.
    lower, upper = naming.resource_names("etl"), naming.resource_names("ETL")
    for key in ("execution_role", "worker_user", "repository", "cluster"):
        assert lower[key].lower() != upper[key].lower(), key
    assert upper["worker_user"] == f"etl-{naming.pool_hash('ETL')}-ecs-worker"


def test_long_names_get_a_hash_only_when_truncated():
    fits = "a" * 50  # 50 + len("-ecs-worker") == 61
    assert naming.worker_user_name(fits) == f"{fits}-ecs-worker"
    long_a = "the-quick-brown-fox-jumps-over-the-lazy-dog-and-keeps-running-on"
    long_b = "the-quick-brown-fox-jumps-over-the-lazy-dog-and-keeps-running-off"
    a, b = naming.execution_role_name(long_a), naming.execution_role_name(long_b)
    assert len(a) == len(b) == 64
    assert a != b
    assert naming.pool_hash(long_a) in a


def test_many_long_names_do_not_collide():
    pools = [f"shared-prefix-for-every-pool-of-the-data-platform-{i}" for i in range(200)]
    assert len({naming.execution_role_name(p) for p in pools}) == len(pools)
    assert len({naming.worker_user_name(p) for p in pools}) == len(pools)


def test_family_pattern_matches_only_the_pools_families():
    pattern = naming.family_pattern("etl")
    regex = re.compile(
        "^" + re.escape(pattern).replace(r"\?", ".").replace(r"\*", ".*") + "$", re.DOTALL
    )
    uuid = "0f4e7a8c-1b2d-4e5f-9a0b-1c2d3e4f5a6b"
    assert regex.match(f"prefect_etl_{uuid}")
    assert regex.match(f"prefect_etl_{uuid}:12")
    assert not regex.match(f"prefect_etl_x_{uuid}:1")  # pool "etl_x"
    assert not regex.match(f"prefect_etl2_{uuid}:1")
    assert not regex.match(f"prefect_other_{uuid}:1")


# -- config, provider, generated -------------------------------------------------------------


def test_provider_config_and_generated(home):
    aws_files(home, credentials="[work]\naws_access_key_id = AKIAEXAMPLE\n")
    pool = resolve_pool(pool="ETL", given={"region": "eu-west-1"}, home=home)
    config = pool.provider_config()
    assert config == {
        "aws:region": "eu-west-1",
        "aws:defaultTags": '{"tags": {"ManagedBy": "provision", "PrefectWorkPool": "ETL"}}',
    }
    assert json.loads(config["aws:defaultTags"]) == {
        "tags": {"ManagedBy": "provision", "PrefectWorkPool": "ETL"}
    }
    with_profile = resolve_pool(
        pool="ETL", given={"region": "eu-west-1", "profile": "work"}, home=home
    )
    assert with_profile.provider_config()["aws:profile"] == "work"
    assert AwsPool.generate("etl", pool.options) == {}
    assert pool.generated == {}
    assert pool.location() == "eu-west-1"
    assert with_profile.location() == "eu-west-1 (profile work)"


def test_options_saved_with_the_pool_name_still_load(home, tmp_path):
    # Earlier versions kept the pool name among the saved options, and the model refuses
    # unknown keys: such a pool must still resolve, and is saved again without it.
    legacy = {"pool": "etl", **AwsOptions(region="eu-west-1").model_dump(mode="json")}
    assert AwsPool.options_model.model_validate(legacy) == AwsOptions(region="eu-west-1")
    settings = load_settings(env={"PROVISION_HOME": str(tmp_path / "provision")})
    saved = SavedPool("ecs", legacy, "etl-aws-credentials", {}, None)
    state = stack_state({"resources": [{"type": RECORD_TYPE, "outputs": saved.to_outputs()}]})

    spec = service.resolve(PoolRequest("etl"), settings, {"HOME": str(home)}, state=state)
    assert spec.options == AwsOptions(region="eu-west-1")
    again = spec.to_saved(None)
    assert "pool" not in again.options
    assert json.loads(again.provider_config["aws:defaultTags"]) == {
        "tags": {"ManagedBy": "provision", "PrefectWorkPool": "etl"}
    }


def test_target_attributes():
    assert AwsPool.cloud == "aws"
    assert AwsPool.block == BlockSpec(type="aws-credentials", suffix="aws-credentials")
    assert AwsPool.block.type == "aws-credentials"
    assert AwsPool.block.suffix == "aws-credentials"
    assert AwsPool.options_model is AwsOptions
    assert AwsPool.error_rules == AWS_ERROR_RULES
    assert "aws:iam/accessKey:AccessKey" in AwsPool.orphan_hints
    assert "aws iam list-access-keys" in AwsPool.orphan_hints["aws:iam/accessKey:AccessKey"]


# -- propagation and error texts -------------------------------------------------------------

PROPAGATING = [
    "creating ECS Cluster (etl-ecs): operation error ECS: CreateCluster, https response error "
    "StatusCode: 400, RequestID: x, InvalidParameterException: Unable to assume the service "
    "linked role. Please verify that the ECS service linked role exists.",
    "An error occurred (ClientException) when calling the RegisterTaskDefinition operation: "
    "ClientException: Role is not valid",
    "ECS was unable to assume the role 'arn:aws:iam::123456789012:role/etl-ecs-execution' that "
    "was provided for this task. Please verify that the role being passed has the proper trust "
    "relationship and permissions and that your IAM user has permissions to pass this role.",
    "attaching IAM Policy (arn:aws:iam::123456789012:policy/etl-ecs-worker) to IAM User "
    "(etl-ecs-worker): operation error IAM: AttachUserPolicy, https response error StatusCode: "
    "404, RequestID: x, NoSuchEntity: The user with name etl-ecs-worker cannot be found.",
    "creating IAM Access Key (etl-ecs-worker): NoSuchEntity: The user with name etl-ecs-worker "
    "cannot be found.",
    "operation error SQS: GetQueueUrl, https response error StatusCode: 403, RequestID: x, api "
    "error InvalidClientTokenId: The security token included in the request is invalid.",
]

NOT_PROPAGATING = [
    # The provider's own credentials being rejected is a credentials problem, never retried.
    "error: pulumi:providers:aws resource 'default_7_51_1' has a problem: unable to validate "
    "AWS credentials.\nDetails: validating provider credentials: retrieving caller identity "
    "from STS: operation error STS: GetCallerIdentity, https response error StatusCode: 403, "
    "RequestID: x, api error InvalidClientTokenId: The security token included in the request "
    "is invalid.\nMake sure you have set your AWS region, e.g. `pulumi config set aws:region "
    "us-west-2`.",
    "No valid credential sources found. Error: failed to refresh cached credentials, no EC2 "
    "IMDS role found",
    "creating IAM Role (etl-ecs-execution): EntityAlreadyExists: Role with name "
    "etl-ecs-execution already exists.",
    "attaching IAM Policy (arn:aws:iam::aws:policy/Nope) to IAM Role (etl-ecs-task): "
    "NoSuchEntity: Policy arn:aws:iam::aws:policy/Nope does not exist or is not attachable.",
    "User: arn:aws:iam::123456789012:user/dev is not authorized to perform: iam:CreateRole on "
    "resource: arn:aws:iam::123456789012:role/etl-ecs-execution",
    "LimitExceeded: Cannot exceed quota for AccessKeysPerUser: 2",
    # Across lines nothing may chain: "The user with name" and "cannot be found" on two lines.
    "NoSuchEntity\nThe user with name x cannot be found",
]


def _propagating(text: str) -> bool:
    """As ``up`` decides whether to retry."""
    return any(rule.match(text) for rule in propagation_rules(PROPAGATION_ERRORS))


@pytest.mark.parametrize("text", PROPAGATING)
def test_propagation_errors_match_real_texts(text):
    assert _propagating(text)


@pytest.mark.parametrize("text", NOT_PROPAGATING)
def test_propagation_errors_leave_real_failures_alone(text):
    assert not _propagating(text)


def test_target_exposes_the_propagation_regexes():
    assert AwsPool.propagation_errors == PROPAGATION_ERRORS
    for pattern in PROPAGATION_ERRORS:
        re.compile(pattern)


CLASSIFIED = [
    (
        "error: pulumi:providers:aws resource 'default' has a problem: No valid credential "
        "sources found.",
        CloudCredentialsError,
        "No usable AWS credentials.",
    ),
    (
        "NoCredentialProviders: no valid providers in chain",
        CloudCredentialsError,
        "No usable AWS credentials.",
    ),
    (
        "failed to get shared config profile, staging",
        CloudCredentialsError,
        "AWS profile 'staging' is not in ~/.aws/config or ~/.aws/credentials.",
    ),
    (
        "api error InvalidClientTokenId: The security token included in the request is invalid.",
        CloudCredentialsError,
        "AWS rejected the credentials (invalid, expired, or the region is not enabled for the "
        "account).",
    ),
    (
        "UnrecognizedClientException: The security token included in the request is invalid",
        CloudCredentialsError,
        "AWS rejected the credentials",
    ),
    (
        "creating IAM Role (etl-ecs-execution): operation error IAM: CreateRole, https response "
        "error StatusCode: 403, RequestID: x, api error AccessDenied: User: "
        "arn:aws:iam::123456789012:user/dev is not authorized to perform: iam:CreateRole on "
        "resource: arn:aws:iam::123456789012:role/etl-ecs-execution because no identity-based "
        "policy allows the iam:CreateRole action",
        PermissionDeniedError,
        "Permission denied in AWS: iam:CreateRole is missing.",
    ),
    (
        "creating EC2 VPC: operation error EC2: CreateVpc, UnauthorizedOperation: You are not "
        "authorized to perform this operation.",
        PermissionDeniedError,
        "Permission denied in AWS.",
    ),
    (
        "creating IAM Access Key (etl-ecs-worker): LimitExceeded: Cannot exceed quota for "
        "AccessKeysPerUser: 2",
        QuotaExceededError,
        "The pool's IAM user already has two access keys, the most AWS allows.",
    ),
    (
        "attaching IAM Policy to IAM Role (etl-ecs-task): LimitExceeded: Cannot exceed quota "
        "for PoliciesPerRole: 10",
        QuotaExceededError,
        "An AWS quota or limit was hit (PoliciesPerRole).",
    ),
    (
        "creating EC2 VPC: VpcLimitExceeded: The maximum number of VPCs has been reached.",
        QuotaExceededError,
        "An AWS quota or limit was hit.",
    ),
    (
        "creating IAM Role (etl-ecs-execution): EntityAlreadyExists: Role with name "
        "etl-ecs-execution already exists.",
        EngineError,
        "An AWS resource with the name provision chose already exists: Role with name "
        "etl-ecs-execution.",
    ),
    (
        "creating ECR Repository (etl-images): RepositoryAlreadyExistsException: The repository "
        "with name 'etl-images' already exists",
        EngineError,
        "already exists: RepositoryAlreadyExistsException.",
    ),
    (
        "creating EC2 Subnet: operation error EC2: CreateSubnet, https response error StatusCode: "
        "400, RequestID: r, api error InvalidSubnet.Conflict: The CIDR '10.42.0.0/18' conflicts "
        "with another subnet",
        EngineError,
        "A subnet with CIDR 10.42.0.0/18 already exists in the pool's VPC",
    ),
    (
        "creating Secrets Manager Secret (prefect/ecs/etl/PREFECT_API_KEY): operation error "
        "Secrets Manager: CreateSecret, https response error StatusCode: 400, RequestID: r, "
        "InvalidRequestException: You can't create this secret because a secret with this name "
        "is already scheduled for deletion.",
        EngineError,
        "Secrets Manager secret prefect/ecs/etl/PREFECT_API_KEY was deleted with a recovery window",
    ),
    (
        "creating Secrets Manager Secret (prefect/ecs/etl/PREFECT_API_KEY): operation error "
        "Secrets Manager: CreateSecret, https response error StatusCode: 400, RequestID: r, "
        "ResourceExistsException: The operation failed because the secret "
        "prefect/ecs/etl/PREFECT_API_KEY already exists.",
        EngineError,
        "already exists: the secret prefect/ecs/etl/PREFECT_API_KEY.",
    ),
    (
        "creating ECS Service (etl-ecs-worker): operation error ECS: CreateService, https "
        "response error StatusCode: 400, RequestID: r, InvalidParameterException: Creation of "
        "service was not idempotent.",
        EngineError,
        "already exists: etl-ecs-worker.",
    ),
]


@pytest.mark.parametrize(("text", "error", "message"), CLASSIFIED)
def test_error_rules(text, error, message):
    exc = classify(text, pool="etl", rules=AWS_ERROR_RULES)
    assert type(exc) is error
    assert message in exc.message
    assert "\n" not in exc.message
    assert exc.hint


# -- Prefect block and template ---------------------------------------------------------------

OUTPUTS = {
    "region": "eu-west-1",
    "account_id": ACCOUNT,
    "cluster_name": "etl-ecs",
    "cluster_arn": f"arn:aws:ecs:eu-west-1:{ACCOUNT}:cluster/etl-ecs",
    "execution_role_arn": f"arn:aws:iam::{ACCOUNT}:role/etl-ecs-execution",
    "task_role_arn": None,
    "worker_user_name": "etl-ecs-worker",
    "vpc_id": "vpc-0123456789abcdef0",
    "subnet_ids": ["subnet-0123456789abcdef0", "subnet-0123456789abcdef1"],
    "availability_zones": ["eu-west-1a", "eu-west-1b"],
    "security_group_id": "sg-0123456789abcdef0",
    "log_group_name": "/prefect/ecs/etl",
    "registry_host": f"{ACCOUNT}.dkr.ecr.eu-west-1.amazonaws.com",
    "repository_url": f"{ACCOUNT}.dkr.ecr.eu-west-1.amazonaws.com/etl-images",
    "events_queue_name": "etl-ecs-events",
    "access_key_id": "AKIAIOSFODNN7EXAMPLE",
    "secret_access_key": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
    "credential_created_at": "2026-01-01T00:00:00Z",
    "worker_role_arn": None,
}
BLOCK_ID = "8c1d6c1e-0000-4000-8000-000000000001"


def test_the_last_runs_zones_go_back_to_the_stack(etl):
    import dataclasses

    assert etl._args().zones == ()
    rerun = dataclasses.replace(etl, last_outputs={"availability_zones": ["eu-west-1b"]})
    assert rerun._args().zones == ("eu-west-1b",)


def test_block_data(etl):
    assert etl.block_data(OUTPUTS, {}) == {
        "aws_access_key_id": "AKIAIOSFODNN7EXAMPLE",
        "aws_secret_access_key": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        "region_name": "eu-west-1",
    }


@pytest.mark.parametrize("key", ["access_key_id", "secret_access_key", "region"])
def test_block_data_rejects_missing_outputs(etl, key):
    with pytest.raises(EngineError) as info:
        etl.block_data({**OUTPUTS, key: None}, {})
    assert "\n" not in info.value.message
    assert key in info.value.message
    assert OUTPUTS["secret_access_key"] not in info.value.message
    assert "Rerun `provision up`" in (info.value.hint or "")


@pytest.mark.parametrize("pool_type", [ECS, PUSH])
def test_template_defaults_created_network(opts, pool_type):
    defaults = AwsPool("etl", pool_type, opts).template_defaults(OUTPUTS, BLOCK_ID)
    assert defaults == {
        "aws_credentials": {"$ref": {"block_document_id": BLOCK_ID}},
        "cluster": f"arn:aws:ecs:eu-west-1:{ACCOUNT}:cluster/etl-ecs",
        "vpc_id": "vpc-0123456789abcdef0",
        "execution_role_arn": f"arn:aws:iam::{ACCOUNT}:role/etl-ecs-execution",
        # The inner awsvpcConfiguration object: the worker wraps it itself.
        "network_configuration": {
            "subnets": ["subnet-0123456789abcdef0", "subnet-0123456789abcdef1"],
            "securityGroups": ["sg-0123456789abcdef0"],
            "assignPublicIp": "ENABLED",
        },
        "configure_cloudwatch_logs": True,
        "cloudwatch_logs_options": {
            "awslogs-group": "/prefect/ecs/etl",
            "awslogs-region": "eu-west-1",
            "awslogs-create-group": "false",
        },
    }
    assert set(defaults) <= ECS_VARIABLES
    assert "awsvpcConfiguration" not in json.dumps(defaults)
    # cloudwatch_logs_options is Dict[str, str] in the worker: strings only.
    assert all(isinstance(v, str) for v in defaults["cloudwatch_logs_options"].values())


def test_template_defaults_existing_network_and_task_role(etl):
    outputs = {
        **OUTPUTS,
        "security_group_id": None,
        "task_role_arn": f"arn:aws:iam::{ACCOUNT}:role/etl-ecs-task",
    }
    defaults = etl.template_defaults(outputs, BLOCK_ID)
    # No group of ours: ECS uses the VPC's default security group.
    assert defaults["network_configuration"] == {
        "subnets": ["subnet-0123456789abcdef0", "subnet-0123456789abcdef1"],
        "assignPublicIp": "ENABLED",
    }
    assert defaults["task_role_arn"] == f"arn:aws:iam::{ACCOUNT}:role/etl-ecs-task"
    assert set(defaults) <= ECS_VARIABLES


def test_template_defaults_for_a_plan(home):
    pool = resolve_pool(given={"region": "eu-west-1"}, home=home)
    expected = pool.expected_outputs()
    defaults = pool.template_defaults(expected, None)
    assert defaults["aws_credentials"] == {"$ref": {"block_document_id": PLACEHOLDER}}
    assert defaults["cluster"] == PLACEHOLDER
    assert defaults["network_configuration"] == {
        "subnets": [PLACEHOLDER],
        "securityGroups": [PLACEHOLDER],
        "assignPublicIp": "ENABLED",
    }
    assert defaults["cloudwatch_logs_options"]["awslogs-group"] == "/prefect/ecs/etl"
    assert "task_role_arn" not in defaults  # known absent: no --task-role-policy-arn

    with_role = resolve_pool(
        given={
            "region": "eu-west-1",
            "task_role_policy_arns": ["arn:aws:iam::aws:policy/AmazonS3ReadOnlyAccess"],
            "vpc_id": VPC,
            "subnet_ids": SUBNETS,
        },
        home=home,
    )
    plan = with_role.template_defaults(with_role.expected_outputs(), None)
    assert plan["task_role_arn"] == PLACEHOLDER  # planned, ARN unknown until up
    assert plan["vpc_id"] == VPC
    assert plan["network_configuration"] == {
        "subnets": SUBNETS.split(","),
        "assignPublicIp": "ENABLED",
    }


def test_expected_outputs(home):
    pool = resolve_pool(given={"region": "eu-west-1"}, home=home)
    expected = pool.expected_outputs()
    assert expected == {
        "region": "eu-west-1",
        "cluster_name": "etl-ecs",
        "worker_user_name": "etl-ecs-worker",
        "log_group_name": "/prefect/ecs/etl",
        "events_queue_name": "etl-ecs-events",
        "task_role_arn": None,
    }
    # They agree with what the program exports.
    assert {k: v for k, v in OUTPUTS.items() if k in expected} == expected
    push = resolve_pool(pool_type=PUSH, given={"region": "eu-west-1"}, home=home)
    assert push.expected_outputs()["events_queue_name"] is None
    # No secret, and nothing that needs the account id.
    assert not {"secret_access_key", "registry_host", "cluster_arn"} & set(expected)


# -- plan, grants, next steps -----------------------------------------------------------------


@pytest.fixture
def opts(home) -> AwsOptions:
    return resolve(given={"region": "eu-west-1"}, home=home)


@pytest.fixture
def etl(opts) -> AwsPool:
    """The worker-based ECS pool ``etl`` in eu-west-1."""
    return AwsPool("etl", ECS, opts)


def test_grants_worker_based(etl):
    grants = etl.grants()
    worker = [g for g in grants if g.principal == "worker IAM user etl-ecs-worker"]
    assert [g.role for g in worker] == [
        "etl-ecs-worker: RegisterPoolTaskDefinitions",
        "etl-ecs-worker: ReadAndRetireTaskDefinitions",
        "etl-ecs-worker: RunPoolTasksOnCluster",
        "etl-ecs-worker: ManageClusterTasks",
        "etl-ecs-worker: TagTasksAtLaunch",
        "etl-ecs-worker: PassPoolRolesToEcsTasks",
        "etl-ecs-worker: CheckNetworkConfiguration",
        "etl-ecs-worker: ReadPoolLogs",
        "etl-ecs-worker: ConsumeTaskStateEvents",
    ]
    by_role = {g.role.split(": ")[1]: g for g in worker}
    assert by_role["RunPoolTasksOnCluster"].permissions == ("ecs:RunTask",)
    assert by_role["RunPoolTasksOnCluster"].scope == (
        "arn:aws:ecs:eu-west-1:<account-id>:task-definition/prefect_etl_????????-????-????-"
        "????-????????????* when ecs:cluster ArnEquals "
        "arn:aws:ecs:eu-west-1:<account-id>:cluster/etl-ecs"
    )
    assert by_role["TagTasksAtLaunch"].scope.endswith("when ecs:CreateAction StringEquals RunTask")
    assert by_role["PassPoolRolesToEcsTasks"].scope == (
        "arn:aws:iam::<account-id>:role/etl-ecs-execution when iam:PassedToService "
        "StringEquals ecs-tasks.amazonaws.com"
    )
    assert by_role["ConsumeTaskStateEvents"].permissions == (
        "sqs:GetQueueUrl",
        "sqs:ReceiveMessage",
        "sqs:DeleteMessage",
        "sqs:ChangeMessageVisibility",
    )
    assert all(g.why for g in grants)
    others = [g.principal for g in grants if g not in worker]
    assert others == [
        "execution role etl-ecs-execution (assumed by ECS tasks)",
        "events.amazonaws.com",
    ]


def test_grants_push_with_task_role(home):
    pool = resolve_pool(
        pool_type=PUSH,
        given={
            "region": "eu-west-1",
            "task_role_policy_arns": ["arn:aws:iam::aws:policy/AmazonS3ReadOnlyAccess"],
        },
        home=home,
    )
    grants = pool.grants()
    assert not any(p.startswith("sqs:") for g in grants for p in g.permissions)
    assert "events.amazonaws.com" not in [g.principal for g in grants]
    passrole = next(g for g in grants if g.role.endswith("PassPoolRolesToEcsTasks"))
    assert "role/etl-ecs-task" in passrole.scope
    task = next(g for g in grants if g.principal.startswith("task role"))
    assert task.role == "arn:aws:iam::aws:policy/AmazonS3ReadOnlyAccess"


def test_next_steps_worker_pool(etl):
    steps = etl.next_steps(OUTPUTS)
    assert steps.image_namespace == "123456789012.dkr.ecr.eu-west-1.amazonaws.com"
    assert steps.deploy_snippet == (
        'my_flow.deploy(name="my-deployment", work_pool_name="etl", '
        f'image="{ACCOUNT}.dkr.ecr.eu-west-1.amazonaws.com/etl-images:my-deployment")'
    )
    assert steps.commands == (
        "aws ecr get-login-password --region eu-west-1 | docker login --username AWS "
        f"--password-stdin {ACCOUNT}.dkr.ecr.eu-west-1.amazonaws.com",
        "prefect worker start --pool etl",
    )
    assert dict(steps.env) == {
        "PREFECT_INTEGRATIONS_AWS_ECS_OBSERVER_SQS_QUEUE_NAME": "etl-ecs-events",
        "PREFECT_INTEGRATIONS_AWS_ECS_OBSERVER_SQS_QUEUE_REGION": "eu-west-1",
        "AWS_DEFAULT_REGION": "eu-west-1",
    }
    # Never a secret on a command line or in the env.
    text = " ".join([*steps.commands, *steps.env.values(), steps.deploy_snippet or ""])
    assert OUTPUTS["secret_access_key"] not in text


def test_next_steps_push_pool_has_no_worker(opts):
    steps = AwsPool("etl", PUSH, opts).next_steps(OUTPUTS)
    assert len(steps.commands) == 1
    assert steps.commands[0].startswith("aws ecr get-login-password --region eu-west-1 | ")
    assert dict(steps.env) == {}


def test_next_steps_for_a_plan(etl):
    steps = etl.next_steps(etl.expected_outputs())
    assert f"--password-stdin {PLACEHOLDER}" in steps.commands[0]
    assert steps.env["PREFECT_INTEGRATIONS_AWS_ECS_OBSERVER_SQS_QUEUE_NAME"] == "etl-ecs-events"


# -- the program under mocks -------------------------------------------------------------------


class ProgramMocks(pulumi.runtime.Mocks):
    """Just enough provider behaviour for the exports (see tests/stacks for the full set)."""

    def __init__(self) -> None:
        self.created: list[tuple[str, dict, dict]] = []
        """(type, inputs, outputs) of every resource, in order."""

    def new_resource(self, args):
        rid, out = self._new(args)
        self.created.append((args.typ, dict(args.inputs), out))
        return rid, out

    def _new(self, args):
        out = dict(args.inputs)
        name = args.inputs.get("name", args.name)
        t = args.typ
        if t == "aws:ecs/cluster:Cluster":
            out["arn"] = f"arn:aws:ecs:eu-west-1:{ACCOUNT}:cluster/{name}"
        elif t == "aws:iam/role:Role":
            out["arn"] = f"arn:aws:iam::{ACCOUNT}:role/{name}"
        elif t == "aws:iam/policy:Policy":
            out["arn"] = f"arn:aws:iam::{ACCOUNT}:policy/{name}"
        elif t == "aws:sqs/queue:Queue":
            out["arn"] = f"arn:aws:sqs:eu-west-1:{ACCOUNT}:{name}"
            out["url"] = f"https://sqs.eu-west-1.amazonaws.com/{ACCOUNT}/{name}"
        elif t == "aws:cloudwatch/eventRule:EventRule":
            out["arn"] = f"arn:aws:events:eu-west-1:{ACCOUNT}:rule/{name}"
        elif t == "aws:ecr/repository:Repository":
            out["repositoryUrl"] = f"{ACCOUNT}.dkr.ecr.eu-west-1.amazonaws.com/{name}"
        elif t == "aws:iam/accessKey:AccessKey":
            out["secret"] = OUTPUTS["secret_access_key"]
            out["createDate"] = OUTPUTS["credential_created_at"]
            return OUTPUTS["access_key_id"], out
        elif t == "aws:ec2/vpc:Vpc":
            return OUTPUTS["vpc_id"], out
        elif t == "aws:ec2/subnet:Subnet":
            return f"subnet-0123456789abcdef{args.name[-1] == 'b':d}", out
        elif t == "aws:ec2/securityGroup:SecurityGroup":
            return OUTPUTS["security_group_id"], out
        elif t == "aws:secretsmanager/secret:Secret":
            out["arn"] = f"arn:aws:secretsmanager:eu-west-1:{ACCOUNT}:secret:{name}-AbCdEf"
            return out["arn"], out
        elif t == "aws:secretsmanager/secretVersion:SecretVersion":
            out["versionId"] = "00000000-0000-4000-8000-000000000001"
        elif t == "aws:ecs/taskDefinition:TaskDefinition":
            family = args.inputs["family"]
            out["arn"] = f"arn:aws:ecs:eu-west-1:{ACCOUNT}:task-definition/{family}:1"
        elif t == "aws:ecs/service:Service":
            cluster = args.inputs["cluster"].rsplit("/", 1)[-1]
            out["arn"] = f"arn:aws:ecs:eu-west-1:{ACCOUNT}:service/{cluster}/{name}"
            return out["arn"], out
        return f"{args.name}-id", out

    def call(self, args):
        if args.token == "aws:index/getCallerIdentity:getCallerIdentity":
            return {"accountId": ACCOUNT, "arn": "arn:aws:iam::123456789012:user/x", "id": "x"}
        if args.token == "aws:index/getAvailabilityZones:getAvailabilityZones":
            return {"names": ["eu-west-1a", "eu-west-1b"], "id": "eu-west-1"}
        return {}


@pytest.fixture
def program_mocks():
    pulumi_settings.ROOT.set(None)  # fresh root stack: exports must not carry over
    # Engine tests run the Automation API in this process and leave no current loop behind.
    asyncio.set_event_loop(asyncio.new_event_loop())
    mocks = ProgramMocks()
    pulumi.runtime.set_mocks(mocks, project="provision", stack="etl", preview=False)
    state = {"checked": False, "mocks": mocks}
    yield state
    assert state["checked"], "the assertions inside apply() never ran"


@pulumi.runtime.test
def test_program_exports(etl, program_mocks):
    exports = etl.program()()
    assert list(exports) == list(OUTPUTS)

    def check(values):
        program_mocks["checked"] = True
        values = dict(values)
        assert values.pop("_secret") is True
        assert values == OUTPUTS
        assert etl.block_data(values, {})["aws_access_key_id"] == OUTPUTS["access_key_id"]
        expected = etl.expected_outputs()
        assert {k: values[k] for k in expected} == expected

    key = pulumi.Output.from_input(exports["secret_access_key"])
    return pulumi.Output.all(_secret=key.is_secret(), **exports).apply(check)


def test_offline_plan_uses_the_programs_canned_invokes(etl):
    from provision.offline import offline_steps

    program = etl.program()
    assert set(program.offline_invokes) == {
        "aws:index/getCallerIdentity:getCallerIdentity",
        "aws:index/getAvailabilityZones:getAvailabilityZones",
    }
    steps = offline_steps("etl", program)
    subnets = [s for s in steps if s.type == "aws:ec2/subnet:Subnet"]
    assert [s.inputs["availabilityZone"] for s in subnets] == [
        "eu-west-1a",
        "eu-west-1b",
        "eu-west-1c",
    ]
    logs = next(s for s in steps if s.type == "aws:iam/rolePolicy:RolePolicy")
    assert "<account-id>" in logs.inputs["policy"]
    assert len(steps) == 27
    # A plain program (no canned results) still gets {} for every invoke.
    assert offline_steps("p", lambda: None) == []


def test_import_stays_light():
    # The CLI imports targets for --help: no pulumi, no pulumi_aws at import time.
    code = (
        "import sys, provision.targets.aws; "
        "print(any(m == 'pulumi' or m.startswith(('pulumi.', 'pulumi_aws')) for m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_grants_doc_lists_every_action():
    from stacks.aws_ecs import EXECUTION_POLICY_ARN, worker_policy

    doc = (Path(__file__).parents[2] / "docs" / "aws-grants.md").read_text()
    policy = worker_policy(
        region="r",
        account="a",
        family_pattern="f",
        cluster_name="c",
        cluster_arn="c",
        role_arns=["r"],
        log_group_name="g",
        queue_arn="q",
    )
    for statement in policy["Statement"]:
        for action in statement["Action"]:
            assert f"`{action}`" in doc, action
        assert f"`{statement['Sid']}`" in doc, statement["Sid"]
    for extra in ("logs:CreateLogGroup", "sqs:SendMessage", "iam:CreateServiceLinkedRole"):
        assert f"`{extra}`" in doc, extra
    assert EXECUTION_POLICY_ARN.rsplit("/", 1)[-1] in doc


@pulumi.runtime.test
def test_creates_that_fail_on_an_existing_name_are_adoptable_by_id(opts, program_mocks):
    # A killed run may leave these created but unrecorded; the rerun must adopt, not re-create.
    pool = AwsPool("etl", PUSH, opts)
    exports = pool.program()()
    by_name = {
        "aws:iam/role:Role",
        "aws:iam/user:User",
        "aws:cloudwatch/logGroup:LogGroup",
        "aws:ecr/repository:Repository",
    }

    def check(_):
        program_mocks["checked"] = True
        seen = set()
        for typ, inputs, outputs in program_mocks["mocks"].created:
            got = pool.adoptable_id(typ, inputs)
            if typ in by_name:
                assert got == inputs["name"], typ
            elif typ == "aws:iam/policy:Policy":
                assert got == outputs["arn"]
            elif typ == "aws:ec2/route:Route":  # import forms: the read canonicalises them
                assert got == f"{inputs['routeTableId']}_{inputs['destinationCidrBlock']}"
            elif typ == "aws:ec2/routeTableAssociation:RouteTableAssociation":
                assert got == f"{inputs['subnetId']}/{inputs['routeTableId']}"
            else:  # idempotent creates, or ids AWS picks: nothing to adopt
                assert got is None, typ
                continue
            seen.add(typ)
        assert seen == by_name | {
            "aws:iam/policy:Policy",
            "aws:ec2/route:Route",
            "aws:ec2/routeTableAssociation:RouteTableAssociation",
        }

    return pulumi.Output.all(*exports.values()).apply(check)


def test_a_policy_id_needs_an_account_arn_in_its_document(etl):
    policy = "aws:iam/policy:Policy"
    doc = '{"Statement": [{"Resource": "arn:aws-cn:ecs:cn-north-1:210987654321:cluster/c"}]}'
    got = etl.adoptable_id(policy, {"name": "p", "path": "/team/", "policy": doc})
    assert got == "arn:aws-cn:iam::210987654321:policy/team/p"
    assert etl.adoptable_id(policy, {"name": "p", "policy": '{"Resource": "*"}'}) is None
    assert etl.adoptable_id("aws:iam/role:Role", {"name": {"secret": 1}}) is None


# -- --with-worker: keyless, the worker runs as an ECS service ----------------------------------

AUTH = "admin:s3cret-auth-string"
API = "http://prefect.example:4200/api"
IMAGE = "prefecthq/prefect:3.8.8-python3.12"
KEYLESS_OUTPUTS = {
    **OUTPUTS,
    "worker_user_name": None,
    "access_key_id": None,
    "secret_access_key": None,
    "credential_created_at": None,
    "worker_role_arn": f"arn:aws:iam::{ACCOUNT}:role/etl-ecs-worker",
    "worker_service_name": "etl-ecs-worker",
}


def launch(credential_env: str | None = "PREFECT_API_AUTH_STRING", credential=AUTH):
    return WorkerLaunch(
        api_url=API,
        image=IMAGE,
        credential_env=credential_env,
        credential=credential if credential_env else None,
        credential_source="PREFECT_API_AUTH_STRING",
    )


@pytest.fixture
def keyless(home) -> AwsPool:
    """``etl`` with ``--with-worker``, launched against a server behind an auth string."""
    pool = resolve_pool(given={"region": "eu-west-1", "with_worker": True}, home=home)
    return replace(pool, worker=launch())


def test_worker_options_resolve_and_are_saved(home):
    given = {"region": "eu-west-1", "with_worker": True, "worker_count": 3}
    opts = resolve(given={**given, "worker_image": IMAGE}, home=home)
    assert (opts.with_worker, opts.worker_count, opts.worker_image) == (True, 3, IMAGE)
    # Saved with the pool: a later up keeps them, a flag overrides.
    again = resolve(saved=opts, home=home)
    assert (again.with_worker, again.worker_count) == (True, 3)
    assert resolve(given={"with_worker": False}, saved=opts, home=home).with_worker is False


def test_with_worker_is_refused_for_push_pools(home):
    with pytest.raises(InvalidInputError) as info:
        resolve(pool_type=PUSH, given={"region": "eu-west-1", "with_worker": True}, home=home)
    assert "--type ecs" in info.value.message and "\n" not in info.value.message


def test_the_worker_package_and_secret_store():
    assert AwsPool.worker_package == "prefect-aws"
    assert AwsPool.worker_secret_store == "AWS Secrets Manager"


def test_keyless_block_holds_only_the_region(keyless):
    # prefect-aws's AwsCredentials.get_boto3_session passes None keys to boto3.Session, so the
    # default chain, in ECS the task role, is used.
    assert keyless.block_data(KEYLESS_OUTPUTS, {}) == {"region_name": "eu-west-1"}
    with pytest.raises(EngineError):
        keyless.block_data({**KEYLESS_OUTPUTS, "region": None}, {})


def test_credential(etl, keyless):
    keyed = etl.credential()
    assert (keyed.kind, keyed.identity, keyed.long_lived) == (
        "IAM access key",
        "IAM user etl-ecs-worker",
        True,
    )
    none = keyless.credential()
    assert (none.kind, none.identity, none.long_lived) == ("none", "IAM role etl-ecs-worker", False)
    assert none.note.startswith(
        "the worker runs in ECS service etl-ecs-worker as task role etl-ecs-worker;"
    )
    assert "etl-aws-credentials" in keyed.note


def test_keyless_grants_go_to_the_worker_role_and_its_execution_role(etl, keyless):
    grants = keyless.grants()
    assert not [g for g in grants if "IAM user" in g.principal]
    role = "worker task role etl-ecs-worker (the worker's ECS tasks)"
    # The same statements the user holds otherwise, now the role's.
    keyed = [g for g in etl.grants() if g.principal == "worker IAM user etl-ecs-worker"]
    mine = [g for g in grants if g.principal == role]
    assert [(g.role, g.scope, g.permissions) for g in mine] == [
        (g.role, g.scope, g.permissions) for g in keyed
    ]
    assert "etl-ecs-worker: ConsumeTaskStateEvents" in [g.role for g in mine]
    execution = "worker execution role etl-ecs-worker-execution (assumed by the worker's ECS tasks)"
    managed, read = [g for g in grants if g.principal == execution]
    assert managed.role == "AmazonECSTaskExecutionRolePolicy"
    assert read.role == "read-worker-secrets: ReadWorkerSecrets"
    assert read.permissions == ("secretsmanager:GetSecretValue",)
    assert read.scope == (
        "arn:aws:secretsmanager:eu-west-1:<account-id>:secret:prefect/ecs/etl/"
        "PREFECT_API_AUTH_STRING-??????"
    )
    assert all(g.why for g in grants)
    # The flows' execution role keeps its own grant, unchanged.
    assert "execution role etl-ecs-execution (assumed by ECS tasks)" in [
        g.principal for g in grants
    ]


def test_an_open_server_needs_no_secret_grant(keyless):
    open_server = replace(keyless, worker=launch(credential_env=None))
    assert not [g for g in open_server.grants() if "secretsmanager" in " ".join(g.permissions)]


def test_keyless_expected_outputs(keyless):
    expected = keyless.expected_outputs()
    assert expected["worker_user_name"] is None
    assert expected["worker_service_name"] == "etl-ecs-worker"
    assert {k: v for k, v in KEYLESS_OUTPUTS.items() if k in expected} == expected


def test_keyless_next_steps_show_the_running_worker_not_a_command_to_start_one(keyless):
    steps = keyless.next_steps(KEYLESS_OUTPUTS)
    assert not any("prefect worker start" in c for c in steps.commands)
    assert steps.commands[1:] == (
        "aws logs tail /prefect/ecs/etl --log-stream-name-prefix worker --follow "
        "--region eu-west-1",
        "aws ecs describe-services --cluster etl-ecs --services etl-ecs-worker --region eu-west-1",
    )
    assert steps.commands[0].startswith("aws ecr get-login-password --region eu-west-1 | ")
    assert dict(steps.env) == {}, "the worker already has its observer's settings"
    assert steps.deploy_snippet and "etl-images" in steps.deploy_snippet


def test_no_worker_program_without_a_launch(etl, home):
    assert etl.worker_program() is None
    unlaunched = resolve_pool(given={"region": "eu-west-1", "with_worker": True}, home=home)
    assert unlaunched.worker_program() is None


def _worker_run(pool: AwsPool, program_mocks, check):
    """Run the pool's program, then its worker program after a stand-in work pool, as
    ``provision/program.py`` does; ``check(created, exports)`` once everything resolved."""
    exports = dict(pool.program()())
    work_pool = pulumi.CustomResource("test:index:WorkPool", "work-pool", {})
    worker = pool.worker_program()(exports, pulumi.ResourceOptions(depends_on=[work_pool]))

    def run(values):
        program_mocks["checked"] = True
        check(program_mocks["mocks"].created, values)

    return pulumi.Output.all(**exports, **worker).apply(run)


def _one(created, typ):
    found = [(inputs, outputs) for t, inputs, outputs in created if t == typ]
    assert len(found) == 1, (typ, len(found))
    return found[0]


@pulumi.runtime.test
def test_worker_program_runs_the_worker_as_the_pools_role(keyless, program_mocks):
    def check(created, values):
        types = [t for t, _, _ in created]
        for absent in ("aws:iam/user:User", "aws:iam/accessKey:AccessKey"):
            assert absent not in types
        definition, _ = _one(created, "aws:ecs/taskDefinition:TaskDefinition")
        assert definition["taskRoleArn"] == f"arn:aws:iam::{ACCOUNT}:role/etl-ecs-worker"
        (container,) = json.loads(definition["containerDefinitions"])
        assert container["image"] == IMAGE
        assert container["command"] == [
            "prefect", "worker", "start", "--pool", "etl", "--type", "ecs"
        ]  # fmt: skip
        env = {e["name"]: e["value"] for e in container["environment"]}
        assert env == {
            "PREFECT_API_URL": API,
            "EXTRA_PIP_PACKAGES": "prefect-aws",
            "PREFECT_INTEGRATIONS_AWS_ECS_OBSERVER_SQS_QUEUE_NAME": "etl-ecs-events",
            "PREFECT_INTEGRATIONS_AWS_ECS_OBSERVER_SQS_QUEUE_REGION": "eu-west-1",
            "AWS_DEFAULT_REGION": "eu-west-1",
        }
        secret, _ = _one(created, "aws:secretsmanager/secret:Secret")
        assert secret["name"] == "prefect/ecs/etl/PREFECT_API_AUTH_STRING"
        arn = f"arn:aws:secretsmanager:eu-west-1:{ACCOUNT}:secret:{secret['name']}-AbCdEf"
        assert container["secrets"] == [{"name": "PREFECT_API_AUTH_STRING", "valueFrom": arn}]
        version, _ = _one(created, "aws:secretsmanager/secretVersion:SecretVersion")
        # The value reaches the engine marked secret (the mocks keep the marker).
        assert version["secretString"] == {_special_sig_key: _special_secret_sig, "value": AUTH}
        assert AUTH not in definition["containerDefinitions"]
        service, _ = _one(created, "aws:ecs/service:Service")
        assert service["name"] == "etl-ecs-worker"
        assert service["cluster"] == OUTPUTS["cluster_arn"]
        assert service["desiredCount"] == 1
        assert service["networkConfiguration"] == {
            "subnets": OUTPUTS["subnet_ids"],
            "securityGroups": [OUTPUTS["security_group_id"]],
            # The stack's public subnets have no NAT gateway.
            "assignPublicIp": True,
        }
        assert values["worker_service_name"] == "etl-ecs-worker"
        assert values["worker_secret_arns"] == [arn]
        assert values["worker_role_arn"] == KEYLESS_OUTPUTS["worker_role_arn"]
        assert keyless.block_data(values, {}) == {"region_name": "eu-west-1"}
        expected = keyless.expected_outputs()
        assert {k: values[k] for k in expected} == expected

    return _worker_run(keyless, program_mocks, check)


@pulumi.runtime.test
def test_worker_in_your_own_subnets_gets_no_public_ip(home, program_mocks):
    pool = resolve_pool(
        given={
            "region": "eu-west-1",
            "with_worker": True,
            "worker_count": 2,
            "vpc_id": VPC,
            "subnet_ids": SUBNETS,
        },
        home=home,
    )
    pool = replace(pool, worker=launch(credential_env=None))

    def check(created, values):
        service, _ = _one(created, "aws:ecs/service:Service")
        assert service["networkConfiguration"] == {
            "subnets": SUBNETS.split(","),
            "securityGroups": [],
            "assignPublicIp": False,
        }
        assert service["desiredCount"] == 2
        # An open server: no secret, no secret store.
        types = [t for t, _, _ in created]
        assert "aws:secretsmanager/secret:Secret" not in types
        definition, _ = _one(created, "aws:ecs/taskDefinition:TaskDefinition")
        assert "secrets" not in json.loads(definition["containerDefinitions"])[0]
        assert values["worker_secret_arns"] == []

    return _worker_run(pool, program_mocks, check)


def test_offline_plan_of_a_keyless_pool_and_its_worker(home):
    from provision.offline import offline_steps

    pool = resolve_pool(given={"region": "eu-west-1", "with_worker": True}, home=home)
    pool = replace(pool, worker=launch(credential=None))  # offline: the credential is not read
    cloud = pool.program()

    def program():
        pool.worker_program()(cloud(), pulumi.ResourceOptions())

    program.offline_invokes = cloud.offline_invokes
    program.offline_outputs = cloud.offline_outputs
    steps = offline_steps("etl", program)
    types = [s.type for s in steps]
    assert "aws:iam/user:User" not in types and "aws:iam/accessKey:AccessKey" not in types
    for typ in (
        "aws:ecs/service:Service",
        "aws:ecs/taskDefinition:TaskDefinition",
        "aws:secretsmanager/secret:Secret",
        "aws:secretsmanager/secretVersion:SecretVersion",
    ):
        assert typ in types, typ
    version = next(s for s in steps if s.type == "aws:secretsmanager/secretVersion:SecretVersion")
    assert version.inputs["secretString"] == "[secret]"
    role = next(s for s in steps if s.name == "etl-worker-role")
    assert '"aws:SourceAccount": "<account-id>"' in role.inputs["assumeRolePolicy"]


@pulumi.runtime.test
def test_keyless_creates_that_fail_on_an_existing_name_are_adoptable(keyless, program_mocks):
    def check(created, values):
        secret, _ = _one(created, "aws:secretsmanager/secret:Secret")
        # By name: DescribeSecret, which terraform-provider-aws reads it with, takes a name.
        assert keyless.adoptable_id("aws:secretsmanager/secret:Secret", secret) == secret["name"]
        service, _ = _one(created, "aws:ecs/service:Service")
        # The importer's form, which the read turns into the ARN it records.
        got = keyless.adoptable_id("aws:ecs/service:Service", service)
        assert got == "etl-ecs/etl-ecs-worker"
        role, _ = next(
            (i, o)
            for t, i, o in created
            if t == "aws:iam/role:Role" and i["name"].endswith("worker")
        )
        assert keyless.adoptable_id("aws:iam/role:Role", role) == "etl-ecs-worker"
        for typ in (
            "aws:ecs/taskDefinition:TaskDefinition",
            "aws:secretsmanager/secretVersion:SecretVersion",
        ):
            inputs, _ = _one(created, typ)
            assert keyless.adoptable_id(typ, inputs) is None, typ
            assert typ in AwsPool.orphan_hints

    return _worker_run(keyless, program_mocks, check)


def test_a_service_is_adopted_by_its_clusters_name_and_its_own(keyless):
    service = "aws:ecs/service:Service"
    assert keyless.adoptable_id(service, {"name": "s", "cluster": "etl-ecs"}) is None
    assert keyless.adoptable_id(service, {"cluster": OUTPUTS["cluster_arn"]}) is None
    got = keyless.adoptable_id(service, {"name": "s", "cluster": OUTPUTS["cluster_arn"]})
    assert got == "etl-ecs/s"


def test_grants_doc_covers_the_keyless_worker():
    doc = (Path(__file__).parents[2] / "docs" / "aws-grants.md").read_text()
    for needle in (
        "`--with-worker`",
        "`secretsmanager:GetSecretValue`",
        "`ReadWorkerSecrets`",
        "`<pool>-ecs-worker-execution`",
        "credentials.py",
    ):
        assert needle in doc, needle


# -- credential rotation (issue 13) -----------------------------------------------------------


def test_rotate_after_is_an_option_saved_with_the_pool(home):
    opts = resolve(given={"region": "eu-west-1", "rotate_after": 90}, home=home)
    assert opts.rotate_after == 90
    assert resolve(saved=opts, home=home).rotate_after == 90  # a later up keeps it
    assert resolve(given={"rotate_after": 30}, saved=opts, home=home).rotate_after == 30
    assert resolve(given={"region": "eu-west-1"}, home=home).rotate_after is None


@pytest.mark.parametrize(
    ("given", "needle"),
    [
        ({"rotate_after": 0}, "Invalid --rotate-after 0 (from --rotate-after): 1 to 3650 days."),
        ({"rotate_after": 90, "with_worker": True}, "--with-worker makes none"),
    ],
)
def test_rotate_after_mistakes_are_one_line(home, given, needle):
    with pytest.raises(InvalidInputError) as info:
        resolve(given={"region": "eu-west-1", **given}, home=home)
    assert needle in info.value.message and "\n" not in info.value.message


def test_the_access_key_is_replaced_by_each_rotation_and_a_keyless_pool_has_none(etl, keyless):
    assert AwsPool.rotates is True
    # "0" from the start, never None: the engine never replaces a credential made without one.
    assert etl._args().credential_rotation == "0"
    rotated = replace(etl, generated={**etl.generated, "credential_rotation": "2"})
    assert rotated._args().credential_rotation == "2"
    assert keyless._args().credential_rotation is None


def test_only_the_pools_own_access_keys_are_removed_after_a_killed_create(etl, monkeypatch):
    from provision.targets import aws_keys

    calls = []

    def remove(user, tracked, *, profile, region):
        calls.append((user, tracked, profile, region))
        return ["AKIAORPHAN"]

    monkeypatch.setattr(aws_keys, "remove_untracked_keys", remove)
    key = "aws:iam/accessKey:AccessKey"
    assert AwsPool.removes_untracked == {key}
    tracked = frozenset({"AKIAOLD"})

    said = etl.remove_untracked(
        Untracked(key, "etl-worker-key", {"user": "etl-ecs-worker"}, tracked)
    )

    assert said.startswith("Deleted access key AKIAORPHAN of IAM user etl-ecs-worker: ")
    assert calls == [("etl-ecs-worker", tracked, None, "eu-west-1")]
    # Another user's keys: never touched.
    other = etl.remove_untracked(Untracked(key, "k", {"user": "someone-else"}, frozenset()))
    assert "left alone" in other
    assert len(calls) == 1


def test_a_failed_cleanup_says_why_and_how_by_hand_in_one_line(etl, monkeypatch):
    from provision.targets import aws_keys

    def refuse(user, tracked, *, profile, region):
        raise aws_keys.KeysError("AccessDenied: not allowed")

    monkeypatch.setattr(aws_keys, "remove_untracked_keys", refuse)
    key = "aws:iam/accessKey:AccessKey"
    said = etl.remove_untracked(Untracked(key, "k", {"user": "etl-ecs-worker"}, frozenset()))

    assert "could not be checked (AccessDenied: not allowed)" in said
    assert "aws iam list-access-keys" in said and "\n" not in said
