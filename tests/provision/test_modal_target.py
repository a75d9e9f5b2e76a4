"""ModalPool (``modal:push``): options, the local token, the block, template defaults, plan.

No server, no engine. Every test passes an explicit env whose HOME is a temporary directory,
so the ``~/.modal.toml`` and ``MODAL_*`` variables of this machine never leak in; the offline
plan, which reads ``os.environ``, runs with that environment patched the same way.
"""

from __future__ import annotations

import dataclasses
import os
import textwrap
from pathlib import Path

import pytest

from provision import registry, service
from provision.errors import InvalidInputError
from provision.plan import BlockChange, Changes, WorkPoolChange
from provision.registry import POOL_TYPES
from provision.service import PoolRequest
from provision.settings import load_settings
from provision.targets.base import PLACEHOLDER, BlockSpec, NextSteps, Pool
from provision.targets.modal import ModalPool
from provision.targets.token_push import NoOptions

MODAL = POOL_TYPES["modal:push"]
SECRET = "as-MODALSECRET"
# Every flag the CLI has, unset: what the CLI passes when the user gives none.
NONE_GIVEN = dict.fromkeys(registry.all_flags())
# The block type's fields as Prefect Cloud declares them (ModalCredentials).
SCHEMA = {
    "properties": {
        "token_id": {"title": "Token Id", "type": "string"},
        "token_secret": {
            "title": "Token Secret",
            "type": "string",
            "format": "password",
            "writeOnly": True,
        },
    },
    "secret_fields": ["token_secret"],
}


@pytest.fixture
def home(tmp_path: Path) -> Path:
    home = tmp_path / "home"
    home.mkdir()
    return home


def env_for(home: Path, **extra: str) -> dict[str, str]:
    return {"HOME": str(home), **extra}


def with_token(home: Path) -> dict[str, str]:
    return env_for(home, MODAL_TOKEN_ID="ak-env", MODAL_TOKEN_SECRET=SECRET)


def pool(env: dict[str, str], name: str = "etl") -> ModalPool:
    return ModalPool.resolve(name, MODAL, NONE_GIVEN, env)


def one_line(excinfo: pytest.ExceptionInfo[InvalidInputError]) -> str:
    text = str(excinfo.value)
    assert "\n" not in text
    assert SECRET not in text
    return text


# -- resolve --------------------------------------------------------------------------------


def test_resolve_with_every_flag_unset(home):
    resolved = pool(env_for(home))
    assert isinstance(resolved, ModalPool)
    assert (resolved.name, resolved.type, resolved.options) == ("etl", MODAL, NoOptions())
    assert resolved.generated == {}
    assert NoOptions.keys() == frozenset()


def test_resolve_reads_no_token(home):
    # A malformed ~/.modal.toml would fail any token read: resolving must not read it, so that
    # list, show and destroy work on a machine without (or with a broken) Modal setup.
    (home / ".modal.toml").write_text("this is [not toml")
    assert pool(env_for(home)).options == NoOptions()


@pytest.mark.parametrize(
    ("given", "flag"),
    [
        ({"region": "x"}, "--region"),
        ({"project": "p"}, "--project"),
        ({"subscription": "s"}, "--subscription"),
        ({"env": ["A=1"]}, "--env"),
    ],
)
def test_resolve_refuses_another_targets_flag(home, given, flag):
    with pytest.raises(InvalidInputError) as excinfo:
        ModalPool.resolve("etl", MODAL, {**NONE_GIVEN, **given}, env_for(home))
    assert one_line(excinfo) == f"Option {flag} does not apply to type 'modal:push'."


def test_saved_record_round_trips(home):
    resolved = pool(env_for(home))
    saved = resolved.options.model_dump(mode="json")
    assert saved == {}
    bound = ModalPool.bind("etl", MODAL, saved, {})
    assert bound.options == resolved.options
    assert ModalPool.resolve("etl", MODAL, NONE_GIVEN, env_for(home), saved).options == (
        resolved.options
    )


# -- check_local: the token on this machine -------------------------------------------------


def test_check_local_without_a_token_names_modal_token_new(home):
    with pytest.raises(InvalidInputError) as excinfo:
        pool(env_for(home)).check_local(SCHEMA)
    text = one_line(excinfo)
    assert "No Modal token on this machine" in text
    assert "modal token new" in text
    assert excinfo.value.exit_code == 2


def test_check_local_with_the_env_pair(home):
    pool(with_token(home)).check_local(SCHEMA)


def test_check_local_with_the_active_profile_of_modal_toml(home):
    (home / ".modal.toml").write_text(
        textwrap.dedent(
            f"""
            [default]
            token_id = "ak-default"
            token_secret = "as-default"

            [work]
            token_id = "ak-work"
            token_secret = "{SECRET}"
            active = true
            """
        )
    )
    resolved = pool(env_for(home))
    resolved.check_local(SCHEMA)
    assert resolved.block_data({}, SCHEMA) == {"token_id": "ak-work", "token_secret": SECRET}


def test_check_local_refuses_a_schema_without_token_secret(home):
    schema = {"properties": {"token_id": {"type": "string"}}, "secret_fields": []}
    with pytest.raises(InvalidInputError) as excinfo:
        pool(with_token(home)).check_local(schema)
    assert one_line(excinfo) == (
        "The server's 'modal-credentials' block type has no field token_secret: "
        "re-register its integration's blocks, or report this."
    )


def test_check_local_takes_an_empty_schema_as_unknown(home):
    # A server that does not say which fields it has is not refused for it.
    pool(with_token(home)).check_local({})


def test_check_local_passes_a_malformed_config_on_as_one_line(home):
    (home / ".modal.toml").write_text(f'[default]\ntoken_secret = "{SECRET}\n')
    with pytest.raises(InvalidInputError) as excinfo:
        pool(env_for(home)).check_local(SCHEMA)
    assert "is not valid TOML" in one_line(excinfo)


# -- the block ------------------------------------------------------------------------------


def test_block_data_is_exactly_the_token_pair(home):
    data = pool(with_token(home)).block_data({}, SCHEMA)
    assert data == {"token_id": "ak-env", "token_secret": SECRET}
    assert set(data) == {"token_id", "token_secret"}


def test_block_data_without_a_token_is_the_same_one_line(home):
    with pytest.raises(InvalidInputError, match="modal token new"):
        pool(env_for(home)).block_data({}, SCHEMA)


def test_block_spec():
    assert ModalPool.block == BlockSpec("modal-credentials", "modal-credentials")
    assert ModalPool.block.type == "modal-credentials"
    assert ModalPool.cloud == "modal"
    assert ModalPool.options_model is NoOptions


def test_default_block_name_is_pool_dash_suffix(home, tmp_path):
    settings = load_settings(env={"PROVISION_HOME": str(tmp_path / "provision")})
    spec = service.resolve(PoolRequest("ETL_1", "modal:push", NONE_GIVEN), settings, env_for(home))
    assert spec.block_name == "etl-1-modal-credentials"
    named = service.resolve(
        PoolRequest("etl", "modal:push", NONE_GIVEN, block_name="my-modal"),
        settings,
        env_for(home),
    )
    assert named.block_name == "my-modal"


# -- work pool and summary ------------------------------------------------------------------


def test_template_defaults_reference_the_block(home):
    resolved = pool(env_for(home))
    assert resolved.template_defaults({}, None) == {
        "modal_credentials": {"$ref": {"block_document_id": PLACEHOLDER}}
    }
    assert resolved.template_defaults({}, "0b6c7e4e-block-id") == {
        "modal_credentials": {"$ref": {"block_document_id": "0b6c7e4e-block-id"}}
    }


def test_next_steps_deploy_to_the_pool(home):
    steps = pool(env_for(home), "modal-etl").next_steps({})
    assert isinstance(steps, NextSteps)
    assert 'work_pool_name="modal-etl"' in steps.deploy_snippet
    assert ".from_source(" in steps.deploy_snippet
    assert (steps.commands, dict(steps.env), steps.image_namespace) == ((), {}, None)


def test_no_cloud_side(home):
    resolved = pool(env_for(home))
    assert resolved.program() is None
    assert resolved.expected_outputs() == {}
    assert resolved.provider_config() == {}
    assert resolved.grants() == []
    assert resolved.location() == "Modal"


def test_repr_never_shows_the_secret(home):
    resolved = pool(with_token(home))
    env_field = {f.name: f for f in dataclasses.fields(Pool)}["env"]
    assert env_field.repr is False
    assert env_field.compare is False
    assert SECRET not in repr(resolved)
    assert SECRET not in str(resolved)
    assert "etl" in repr(resolved)


# -- the offline plan -----------------------------------------------------------------------


@pytest.fixture
def no_token_env(home: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """``os.environ`` (which the offline plan reads) with no Modal token and HOME in tmp."""
    for name in list(os.environ):
        if name.startswith(("MODAL_", "DASK_", "PREFECT_", "PULUMI_", "PROVISION_")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("HOME", str(home))
    return home


def test_offline_plan_has_only_the_prefect_side_and_needs_no_token(no_token_env, tmp_path):
    provision_home = tmp_path / "provision"
    settings = load_settings(env={"PROVISION_HOME": str(provision_home)})
    # This environment really has no token: up would stop here.
    with pytest.raises(InvalidInputError, match="modal token new"):
        pool(dict(os.environ)).check_local(SCHEMA)

    plan = service.plan_offline(PoolRequest("etl", "modal:push", NONE_GIVEN), settings)

    assert (plan.pool, plan.type, plan.stack, plan.offline) == ("etl", "modal:push", "etl", True)
    assert plan.resources == []
    assert plan.changes == Changes()
    assert plan.grants == []
    assert plan.location == "Modal"
    assert plan.prefect == [
        BlockChange(name="etl-modal-credentials", block_type="modal-credentials", op="create"),
        WorkPoolChange(
            name="etl",
            type="modal:push",
            op="create",
            variables={"modal_credentials": {"$ref": {"block_document_id": PLACEHOLDER}}},
        ),
    ]
    assert plan.has_changes
    assert not provision_home.exists()  # a plan writes nothing
