"""ManagedPool (``prefect:managed``): --pip-package and --env, the saved record, defaults, plan.

Also the registry lines of the three types without a cloud stack. No server, no engine; every
env given is a fresh one with HOME in a temporary directory.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from provision import registry, service
from provision.errors import InvalidInputError
from provision.plan import Changes, WorkPoolChange
from provision.registry import POOL_TYPES, TARGETS
from provision.service import PoolRequest
from provision.settings import load_settings
from provision.targets.coiled import CoiledPool
from provision.targets.managed import ManagedOptions, ManagedPool
from provision.targets.modal import ModalPool

MANAGED = POOL_TYPES["prefect:managed"]
NONE_GIVEN = dict.fromkeys(registry.all_flags())


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    home = tmp_path / "home"
    home.mkdir()
    return {"HOME": str(home)}


def resolve(env: dict[str, str], saved: dict | None = None, /, **given: object) -> ManagedPool:
    """The pool for the flags ``given`` (an option named ``env`` too) over ``saved``."""
    return ManagedPool.resolve("etl", MANAGED, {**NONE_GIVEN, **given}, env, saved)


def refused(env: dict[str, str], saved: dict | None = None, /, **given: object) -> str:
    """The one-line message resolving ``given`` fails with."""
    with pytest.raises(InvalidInputError) as excinfo:
        resolve(env, saved, **given)
    text = str(excinfo.value)
    assert "\n" not in text
    assert excinfo.value.exit_code == 2
    return text


# -- resolve: flags -------------------------------------------------------------------------


def test_resolve_with_every_flag_unset(env):
    resolved = resolve(env)
    assert resolved.options == ManagedOptions()
    assert resolved.options.pip_packages == ()
    assert resolved.options.env == {}
    assert resolved.generated == {}
    assert ManagedOptions.keys() == {"pip_packages", "env"}


def test_resolve_parses_packages_and_env(env):
    resolved = resolve(
        env,
        pip_packages=["pandas==2.2", "prefect-aws>=0.5", " numpy "],
        env=["A=1", "URL=https://x/?a=b", "EMPTY=", "_under_9=ok"],
    )
    assert resolved.options.pip_packages == ("pandas==2.2", "prefect-aws>=0.5", "numpy")
    assert resolved.options.env == {
        "A": "1",
        "URL": "https://x/?a=b",  # split at the first '=' only
        "EMPTY": "",
        "_under_9": "ok",
    }


def test_resolve_refuses_another_targets_flag(env):
    assert refused(env, region="x") == "Option --region does not apply to type 'prefect:managed'."
    assert refused(env, project="p") == "Option --project does not apply to type 'prefect:managed'."


def test_the_managed_flags_do_not_apply_to_modal_or_coiled(env):
    for cls, type_name in ((ModalPool, "modal:push"), (CoiledPool, "coiled:push")):
        for given, flag in ((["pandas"], "--pip-package"), (["A=1"], "--env")):
            key = "pip_packages" if flag == "--pip-package" else "env"
            with pytest.raises(InvalidInputError) as excinfo:
                cls.resolve("etl", POOL_TYPES[type_name], {**NONE_GIVEN, key: given}, env)
            assert str(excinfo.value) == f"Option {flag} does not apply to type '{type_name}'."


@pytest.mark.parametrize("item", ["A", "=1", "1A=1", "A-B=1", "A B=1", "é=1", " A=1"], ids=repr)
def test_env_refuses_a_bad_pair(env, item):
    assert refused(env, env=[item]) == (
        f"Invalid --env {item!r} (from --env): expected KEY=VALUE with KEY a variable name "
        "(letters, digits, '_')."
    )


def test_env_refuses_a_key_set_twice(env):
    text = refused(env, env=["A=1", "B=2", "A=1"])
    assert text == "--env (from --env) sets A twice."


@pytest.mark.parametrize(
    "package", ["-r x", "--index-url=https://x", "", "   ", "a b", "pandas ==2.2"]
)
def test_pip_package_refuses_options_blanks_and_spaces(env, package):
    assert refused(env, pip_packages=["numpy", package]) == (
        f"Invalid --pip-package {package!r} (from --pip-package): one requirement such as "
        "pandas or 'pandas>=2.2', no pip options or spaces."
    )


def test_pip_package_refuses_a_package_twice(env):
    assert refused(env, pip_packages=["pandas", "numpy", "pandas"]) == (
        "--pip-package (from --pip-package) lists a package twice."
    )


def test_pip_package_twice_is_found_after_stripping(env):
    # The packages are saved stripped: " pandas" and "pandas" would be saved as one twice.
    assert "lists a package twice" in refused(env, pip_packages=[" pandas", "pandas"])


# -- resolve: the saved record --------------------------------------------------------------


SAVED = {"pip_packages": ["pandas==2.2"], "env": {"STAGE": "prod"}}


def test_saved_options_are_kept_when_no_flag_is_given(env):
    assert resolve(env, SAVED).options == ManagedOptions(
        pip_packages=("pandas==2.2",), env={"STAGE": "prod"}
    )


def test_a_flag_given_again_replaces_the_saved_value_whole(env):
    pip = resolve(env, SAVED, pip_packages=["polars"]).options
    assert pip == ManagedOptions(pip_packages=("polars",), env={"STAGE": "prod"})
    both = resolve(env, SAVED, env=["REGION=eu"]).options
    assert both == ManagedOptions(pip_packages=("pandas==2.2",), env={"REGION": "eu"})


def test_a_bad_flag_over_saved_options_names_the_flag(env):
    assert "(from --env)" in refused(env, SAVED, env=["bad"])


def test_saved_record_round_trips(env):
    resolved = resolve(env, pip_packages=["pandas==2.2", "numpy"], env=["A=1", "B=two words"])
    saved = resolved.options.model_dump(mode="json")
    assert saved == {"pip_packages": ["pandas==2.2", "numpy"], "env": {"A": "1", "B": "two words"}}
    assert ManagedPool.bind("etl", MANAGED, saved, {}).options == resolved.options
    # and a later `up` with no flags resolves to the same options
    assert resolve(env, saved).options == resolved.options


def test_empty_options_round_trip(env):
    saved = resolve(env).options.model_dump(mode="json")
    assert saved == {"pip_packages": [], "env": {}}
    assert ManagedPool.bind("etl", MANAGED, saved, {}).options == ManagedOptions()


# -- no block, no cloud side ----------------------------------------------------------------


def test_no_block_and_no_cloud_side(env):
    resolved = resolve(env)
    assert ManagedPool.block is None
    assert ManagedPool.cloud == "prefect"
    assert resolved.program() is None
    assert resolved.expected_outputs() == {}
    assert resolved.provider_config() == {}
    assert resolved.grants() == []
    assert resolved.location() == "Prefect Cloud"
    resolved.check_local({})  # nothing this machine must supply


def test_block_name_is_refused(env, tmp_path):
    settings = load_settings(env={"PROVISION_HOME": str(tmp_path / "provision")})
    request = PoolRequest("etl", "prefect:managed", NONE_GIVEN, block_name="x")
    with pytest.raises(InvalidInputError) as excinfo:
        service.resolve(request, settings, env)
    assert (
        str(excinfo.value)
        == "'prefect:managed' pools have no credentials block: drop --block-name."
    )
    assert service.resolve(PoolRequest("etl", "prefect:managed"), settings, env).block_name is None


# -- template defaults and next steps -------------------------------------------------------


def test_template_defaults_are_empty_without_options(env):
    assert resolve(env).template_defaults({}, None) == {}


def test_template_defaults_only_for_given_options(env):
    packages = resolve(env, pip_packages=["pandas"]).template_defaults({}, None)
    assert packages == {"pip_packages": ["pandas"]}
    variables = resolve(env, env=["A=1"]).template_defaults({}, "ignored-block-id")
    assert variables == {"env": {"A": "1"}}


def test_template_defaults_are_a_list_and_a_dict_as_given(env):
    resolved = resolve(env, pip_packages=["b", "a"], env=["Z=1", "A=2"])
    defaults = resolved.template_defaults({}, None)
    assert defaults == {"pip_packages": ["b", "a"], "env": {"Z": "1", "A": "2"}}
    assert type(defaults["pip_packages"]) is list  # JSON arrays, in the order given
    assert list(defaults["env"]) == ["Z", "A"]
    defaults["env"]["X"] = "changed"  # a copy: the pool's options stay as resolved
    assert resolved.options.env == {"Z": "1", "A": "2"}


def test_next_steps_deploy_to_the_pool(env):
    steps = resolve(env).next_steps({})
    assert 'work_pool_name="etl"' in steps.deploy_snippet
    assert steps.commands == ()


# -- registry -------------------------------------------------------------------------------


def test_registry_holds_every_type():
    assert list(POOL_TYPES) == [
        "cloud-run:push",
        "cloud-run-v2:push",
        "cloud-run",
        "cloud-run-v2",
        "vertex-ai",
        "ecs:push",
        "ecs",
        "azure-container-instance:push",
        "azure-container-instance",
        "modal:push",
        "coiled:push",
        "prefect:managed",
    ]
    assert len(POOL_TYPES) == 12


@pytest.mark.parametrize(
    ("name", "target", "cls", "worker_type", "push"),
    [
        ("modal:push", "modal", ModalPool, "modal", True),
        ("coiled:push", "coiled", CoiledPool, "coiled", True),
        ("prefect:managed", "prefect", ManagedPool, "prefect:managed", False),
    ],
)
def test_registry_lines_of_the_types_without_a_cloud_stack(name, target, cls, worker_type, push):
    pool_type = registry.pool_type(name)
    assert (pool_type.target, pool_type.worker_type, pool_type.push) == (target, worker_type, push)
    assert pool_type.prefect_cloud_only is True
    assert registry.target(target) is cls
    assert set(cls.options_model.keys()) == {f.key for f in TARGETS[target].flags}


def test_managed_flags_are_declared_singular():
    names = {f.key: f.name for f in TARGETS["prefect"].flags}
    assert names == {"pip_packages": "--pip-package", "env": "--env"}


# -- the offline plan -----------------------------------------------------------------------


@pytest.fixture
def clean_environ(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith(("MODAL_", "DASK_", "PREFECT_", "PULUMI_", "PROVISION_")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("HOME", env["HOME"])


def test_offline_plan_is_the_work_pool_only(clean_environ, tmp_path):
    provision_home = tmp_path / "provision"
    settings = load_settings(env={"PROVISION_HOME": str(provision_home)})
    request = PoolRequest(
        "etl", "prefect:managed", {**NONE_GIVEN, "pip_packages": ["pandas"], "env": ["A=1"]}
    )

    plan = service.plan_offline(request, settings)

    assert (plan.pool, plan.type, plan.offline) == ("etl", "prefect:managed", True)
    assert plan.resources == []
    assert plan.changes == Changes()
    assert plan.grants == []
    assert plan.location == "Prefect Cloud"
    assert plan.prefect == [
        WorkPoolChange(
            name="etl",
            type="prefect:managed",
            op="create",
            variables={"pip_packages": ["pandas"], "env": {"A": "1"}},
        )
    ]
    assert not provision_home.exists()


def test_offline_plan_without_options_sets_no_defaults(clean_environ, tmp_path):
    settings = load_settings(env={"PROVISION_HOME": str(tmp_path / "provision")})
    plan = service.plan_offline(PoolRequest("etl", "prefect:managed", NONE_GIVEN), settings)
    assert plan.prefect == [
        WorkPoolChange(name="etl", type="prefect:managed", op="create", variables={})
    ]


# -- records that this version cannot use ---------------------------------------------------


@pytest.mark.parametrize(
    "saved",
    [
        {"pip_packages": ["-r requirements.txt"], "env": {}},  # an option pip would obey
        {"pip_packages": [], "env": {"1bad": "x"}},  # not a variable name
        {"pip_packages": [], "env": {}, "unknown": 1},  # a key this version does not know
    ],
)
def test_an_unusable_record_is_one_line_not_a_traceback(saved):
    # A record is plain state: an edit by hand, or an older version's looser rules, must not
    # crash resolve or bind, and must not be written to the work pool.
    for make in (
        lambda: ManagedPool.resolve("etl", MANAGED, {}, {}, saved),
        lambda: ManagedPool.bind("etl", MANAGED, saved),
    ):
        with pytest.raises(InvalidInputError) as err:
            make()
        message = str(err.value)
        assert "\n" not in message
        assert message.startswith("The record of pool 'etl' holds options this version cannot")
        assert "destroy the pool and create it again" in message
