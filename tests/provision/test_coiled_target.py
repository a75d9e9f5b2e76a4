"""CoiledPool (``coiled:push``): options, the local token, the block field, defaults, plan.

No server, no engine. Every test passes an explicit env whose HOME is a temporary directory,
with dask's other config places (``DASK_ROOT_CONFIG``, ``sys.prefix``, ``site.PREFIXES``)
moved there too, so no dask or coiled configuration of this machine leaks in.
"""

from __future__ import annotations

import dataclasses
import os
import site
import sys
from pathlib import Path

import pytest

from provision import registry, service
from provision.errors import InvalidInputError
from provision.plan import BlockChange, Changes, WorkPoolChange
from provision.registry import POOL_TYPES
from provision.service import PoolRequest
from provision.settings import load_settings
from provision.targets.base import PLACEHOLDER, BlockSpec, NextSteps
from provision.targets.coiled import CoiledPool, token_field
from provision.targets.token_push import NoOptions

COILED = POOL_TYPES["coiled:push"]
TOKEN = "abc123-COILEDSECRET"
NONE_GIVEN = dict.fromkeys(registry.all_flags())


def secret_string(title: str) -> dict[str, object]:
    """A ``SecretStr`` field as a Prefect block schema declares it."""
    return {"title": title, "type": "string", "format": "password", "writeOnly": True}


# prefect-coiled's CoiledCredentials, as the server returns its block schema's fields.
SCHEMA = {
    "title": "CoiledCredentials",
    "description": "Credentials for Coiled.",
    "type": "object",
    "properties": {"api_token": {**secret_string("Api Token"), "description": "Coiled token."}},
    "secret_fields": ["api_token"],
    "block_type_slug": "coiled-credentials",
    "block_schema_references": {},
}


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty HOME; the interpreter's dask prefixes moved under the test's directory."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setattr(sys, "prefix", str(tmp_path / "sys-prefix"))
    monkeypatch.setattr(site, "PREFIXES", [str(tmp_path / "site-prefix")])
    return home


def env_for(home: Path, **extra: str) -> dict[str, str]:
    return {"HOME": str(home), "DASK_ROOT_CONFIG": str(home / "no-root-config"), **extra}


def with_token(home: Path) -> dict[str, str]:
    return env_for(home, DASK_COILED__TOKEN=TOKEN)


def pool(env: dict[str, str], name: str = "etl") -> CoiledPool:
    return CoiledPool.resolve(name, COILED, NONE_GIVEN, env)


def one_line(excinfo: pytest.ExceptionInfo[InvalidInputError]) -> str:
    text = str(excinfo.value)
    assert "\n" not in text
    assert TOKEN not in text
    return text


# -- resolve --------------------------------------------------------------------------------


def test_resolve_with_every_flag_unset(home):
    resolved = pool(env_for(home))
    assert isinstance(resolved, CoiledPool)
    assert (resolved.name, resolved.type, resolved.options) == ("etl", COILED, NoOptions())
    assert resolved.generated == {}
    assert NoOptions.keys() == frozenset()


def test_resolve_reads_no_token(home):
    # A malformed dask config would fail any token read: resolving must not read it.
    config = home / ".config" / "dask"
    config.mkdir(parents=True)
    (config / "coiled.yaml").write_text("coiled: {token: [\n")
    assert pool(env_for(home)).options == NoOptions()


@pytest.mark.parametrize(
    ("given", "flag"),
    [
        ({"region": "x"}, "--region"),
        ({"profile": "work"}, "--profile"),
        ({"location": "westeurope"}, "--location"),
        ({"env": ["A=1"]}, "--env"),
    ],
)
def test_resolve_refuses_another_targets_flag(home, given, flag):
    with pytest.raises(InvalidInputError) as excinfo:
        CoiledPool.resolve("etl", COILED, {**NONE_GIVEN, **given}, env_for(home))
    assert one_line(excinfo) == f"Option {flag} does not apply to type 'coiled:push'."


def test_saved_record_round_trips(home):
    resolved = pool(env_for(home))
    saved = resolved.options.model_dump(mode="json")
    assert saved == {}
    assert CoiledPool.bind("etl", COILED, saved, {}).options == resolved.options


# -- token_field: which block field holds the token -----------------------------------------


def test_token_field_is_the_one_secret_field():
    assert token_field(SCHEMA) == "api_token"


def test_token_field_ignores_nested_secret_fields():
    schema = {**SCHEMA, "secret_fields": ["api_token", "nested.secret"]}
    assert token_field(schema) == "api_token"


def test_token_field_refuses_no_secret_field():
    schema = {**SCHEMA, "secret_fields": []}
    with pytest.raises(InvalidInputError) as excinfo:
        token_field(schema)
    text = one_line(excinfo)
    assert text.startswith(
        "The server's 'coiled-credentials' block type declares secret fields none: "
    )
    assert "upgrade provision or report this" in text


def test_token_field_refuses_two_secret_fields():
    schema = {
        "properties": {"api_token": secret_string("A"), "other": secret_string("B")},
        "secret_fields": ["other", "api_token"],
    }
    with pytest.raises(InvalidInputError) as excinfo:
        token_field(schema)
    assert "declares secret fields ['api_token', 'other']: cannot tell which" in one_line(excinfo)


def test_token_field_refuses_a_secret_field_the_schema_does_not_declare():
    with pytest.raises(InvalidInputError, match="cannot tell which holds the Coiled token"):
        token_field({"properties": {}, "secret_fields": ["api_token"]})


# -- check_local and the block --------------------------------------------------------------


def test_check_local_without_a_token_names_coiled_login(home):
    with pytest.raises(InvalidInputError) as excinfo:
        pool(env_for(home)).check_local(SCHEMA)
    text = one_line(excinfo)
    assert "No Coiled token on this machine" in text
    assert "coiled login" in text
    assert excinfo.value.exit_code == 2


def test_check_local_with_dask_coiled_token(home):
    pool(with_token(home)).check_local(SCHEMA)


def test_check_local_with_the_file_coiled_login_writes(home):
    config = home / ".config" / "dask"
    config.mkdir(parents=True)
    (config / "coiled.yaml").write_text(f"coiled:\n  token: {TOKEN}\n  user: me\n")
    resolved = pool(env_for(home))
    resolved.check_local(SCHEMA)
    assert resolved.block_data({}, SCHEMA) == {"api_token": TOKEN}


def test_check_local_refuses_a_schema_it_cannot_fill(home):
    with pytest.raises(InvalidInputError, match="declares secret fields none"):
        pool(with_token(home)).check_local({"properties": {}, "secret_fields": []})


def test_block_data_puts_the_token_under_the_schemas_field(home):
    assert pool(with_token(home)).block_data({}, SCHEMA) == {"api_token": TOKEN}
    # The name is the server's to say, not assumed: another name is used as declared.
    renamed = {"properties": {"token": secret_string("Token")}, "secret_fields": ["token"]}
    assert pool(with_token(home)).block_data({}, renamed) == {"token": TOKEN}


def test_block_data_without_a_token_is_the_same_one_line(home):
    with pytest.raises(InvalidInputError, match="coiled login"):
        pool(env_for(home)).block_data({}, SCHEMA)


def test_block_spec():
    assert CoiledPool.block == BlockSpec("coiled-credentials", "coiled-credentials")
    assert CoiledPool.cloud == "coiled"
    assert CoiledPool.options_model is NoOptions


def test_default_block_name_is_pool_dash_suffix(home, tmp_path):
    settings = load_settings(env={"PROVISION_HOME": str(tmp_path / "provision")})
    spec = service.resolve(PoolRequest("ETL", "coiled:push", NONE_GIVEN), settings, env_for(home))
    assert spec.block_name == "etl-coiled-credentials"


# -- work pool and summary ------------------------------------------------------------------


def test_template_defaults_reference_the_block_as_credentials(home):
    resolved = pool(env_for(home))
    assert resolved.template_defaults({}, None) == {
        "credentials": {"$ref": {"block_document_id": PLACEHOLDER}}
    }
    assert resolved.template_defaults({}, "block-id-1") == {
        "credentials": {"$ref": {"block_document_id": "block-id-1"}}
    }


def test_next_steps_deploy_to_the_pool(home):
    steps = pool(env_for(home), "coiled-etl").next_steps({})
    assert isinstance(steps, NextSteps)
    assert 'work_pool_name="coiled-etl"' in steps.deploy_snippet


def test_no_cloud_side(home):
    resolved = pool(env_for(home))
    assert resolved.program() is None
    assert resolved.expected_outputs() == {}
    assert resolved.grants() == []
    assert resolved.location() == "Coiled"


def test_repr_never_shows_the_token(home):
    resolved = pool(with_token(home))
    assert {f.name: f.repr for f in dataclasses.fields(resolved)}["env"] is False
    assert TOKEN not in repr(resolved)


# -- the offline plan -----------------------------------------------------------------------


@pytest.fixture
def no_token_env(home: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """``os.environ`` (which the offline plan reads) with no Coiled token and HOME in tmp."""
    for name in list(os.environ):
        if name.startswith(("MODAL_", "DASK_", "PREFECT_", "PULUMI_", "PROVISION_")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("DASK_ROOT_CONFIG", str(home / "no-root-config"))
    return home


def test_offline_plan_has_only_the_prefect_side_and_needs_no_token(no_token_env, tmp_path):
    provision_home = tmp_path / "provision"
    settings = load_settings(env={"PROVISION_HOME": str(provision_home)})
    with pytest.raises(InvalidInputError, match="coiled login"):
        pool(dict(os.environ)).check_local(SCHEMA)

    plan = service.plan_offline(PoolRequest("etl", "coiled:push", NONE_GIVEN), settings)

    assert (plan.pool, plan.type, plan.offline) == ("etl", "coiled:push", True)
    assert plan.resources == []
    assert plan.changes == Changes()
    assert plan.grants == []
    assert plan.location == "Coiled"
    assert plan.prefect == [
        BlockChange(name="etl-coiled-credentials", block_type="coiled-credentials", op="create"),
        WorkPoolChange(
            name="etl",
            type="coiled:push",
            op="create",
            variables={"credentials": {"$ref": {"block_document_id": PLACEHOLDER}}},
        ),
    ]
    assert not provision_home.exists()
