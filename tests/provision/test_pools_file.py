"""The pools file: parsing, one-line errors naming the file, line and key, and its schema."""

from __future__ import annotations

import tomllib
from pathlib import Path

import jsonschema
import pytest

from provision.errors import InvalidInputError
from provision.pools_file import parse
from provision.pools_schema import schema

GOOD = """\
# the team's pools
[defaults]
region = "europe-west1"
log-retention-days = 14

[pools.etl-gcp]
type = "cloud-run-v2"
project = "my-proj-123"
with-worker = true

[pools.etl-aws]
type = "ecs"
region = "us-east-1"
task-role-policy-arn = ["arn:aws:iam::aws:policy/AmazonS3ReadOnlyAccess"]
subnet-ids = ["subnet-0abc1234", "subnet-0def5678"]
vpc-id = "vpc-0abc1234"

[pools.ml-azure]
type = "azure-container-instance"
location = "westeurope"
block-name = "ml-aci"
"""

PATH = Path("provision.toml")


def test_a_good_file_gives_each_pool_its_type_and_options_defaults_merged():
    pools = {p.name: p for p in parse(GOOD, PATH).pools}
    assert list(pools) == ["etl-gcp", "etl-aws", "ml-azure"]
    gcp, aws, azure = pools.values()
    assert gcp.type == "cloud-run-v2" and gcp.line == 6
    # A default applies where the type has the option, and a pool's own value wins.
    assert gcp.options == {"region": "europe-west1", "project": "my-proj-123", "with_worker": True}
    assert aws.options["region"] == "us-east-1" and aws.options["log_retention_days"] == 14
    assert aws.options["task_role_policy_arns"] == (
        "arn:aws:iam::aws:policy/AmazonS3ReadOnlyAccess",
    )
    assert aws.options["subnet_ids"] == "subnet-0abc1234,subnet-0def5678"  # as the flag takes it
    assert "region" not in azure.options and azure.block_name == "ml-aci"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            GOOD.replace('type = "ecs"', 'type = "k8s"'),
            "provision.toml:12: pool 'etl-aws': unknown type 'k8s'",
        ),
        (
            GOOD.replace("with-worker", "with-workers"),
            "provision.toml:9: pool 'etl-gcp': unknown key 'with-workers' "
            "(did you mean 'with-worker'?)",
        ),
        (
            GOOD + '\n[pools.etl-gcp]\ntype = "ecs"\n',
            "provision.toml:23: duplicate pool 'etl-gcp' (first declared at line 6)",
        ),
        (
            GOOD.replace('region = "us-east-1"', 'region = "us-east-1'),
            "provision.toml:13: invalid TOML",
        ),
        (
            GOOD.replace('project = "my-proj-123"', 'location = "westeurope"'),
            "provision.toml:8: pool 'etl-gcp': location does not apply to type 'cloud-run-v2'",
        ),
        (
            GOOD.replace("log-retention-days = 14", 'log-retention-days = "14"'),
            "provision.toml:4: log-retention-days must be an integer",
        ),
        (
            GOOD.replace("with-worker = true", "with-worker = 1"),
            "provision.toml:9: with-worker must be true or false",
        ),
        (
            GOOD.replace("[defaults]\n", "[defaults]\nbogus = 1\n"),
            "provision.toml:3: defaults: unknown key 'bogus'",
        ),
        ('[pool.etl]\ntype = "ecs"\n', "provision.toml:1: unknown table or key 'pool'"),
        ("[defaults]\n", "provision.toml:1: no pools"),
        ('[pools.etl]\nregion = "us-east-1"\n', "provision.toml:1: pool 'etl' has no type"),
        ('[pools."a.b"]\ntype = "ecs"\n', "provision.toml:1: Invalid pool name 'a.b'"),
    ],
    ids=[
        "type",
        "key",
        "duplicate",
        "toml",
        "applies",
        "kind",
        "bool",
        "default-key",
        "table",
        "none",
        "no-type",
        "name",
    ],
)
def test_a_bad_file_is_one_line_naming_file_line_and_key(text, message):
    with pytest.raises(InvalidInputError) as err:
        parse(text, PATH)
    assert str(err.value).startswith(message), str(err.value)
    assert "\n" not in str(err.value)


def test_the_schema_accepts_what_the_loader_accepts_and_refuses_what_it_refuses():
    the_schema = schema()
    jsonschema.Draft202012Validator.check_schema(the_schema)
    validator = jsonschema.Draft202012Validator(the_schema)
    assert not list(validator.iter_errors(tomllib.loads(GOOD)))
    bad = [
        GOOD.replace("with-worker", "with-workers"),
        GOOD.replace('project = "my-proj-123"', 'location = "westeurope"'),
        GOOD.replace('type = "ecs"', 'type = "k8s"'),
        GOOD.replace("log-retention-days = 14", 'log-retention-days = "14"'),
    ]
    for text in bad:
        assert list(validator.iter_errors(tomllib.loads(text))), text
        with pytest.raises(InvalidInputError):
            parse(text, PATH)
