"""The registry is the one place a target is declared: its module, its pool types, its flags.

These hold the declarations together: each flag is a field of its target's options model (and
each field a flag), every pool type names a target that imports as a ``Pool``, and a key two
targets share is one CLI flag.
"""

from __future__ import annotations

import inspect
import subprocess
import sys
import typing

import pytest
import typer

from provision import registry
from provision.errors import InvalidInputError
from provision.targets.base import BlockSpec, Pool, TargetOptions


@pytest.mark.parametrize("key", list(registry.TARGETS))
def test_a_targets_flags_are_exactly_its_options(key):
    # An option is declared once: a field of the model, a Flag line here; neither without the
    # other (a field with no flag could never be set, a flag with no field always refused).
    declared = [f.key for f in registry.TARGETS[key].flags]
    assert len(declared) == len(set(declared)), f"{key} declares a flag twice"
    options = registry.target(key).options_model
    assert set(declared) == options.keys()
    # Internal fields are real fields the tool fills in itself, and never flags.
    assert options.internal <= set(options.model_fields)
    assert not options.internal & set(declared)


@pytest.mark.parametrize("key", list(registry.TARGETS))
def test_registry_target_returns_a_concrete_pool_class(key):
    cls = registry.target(key)
    assert isinstance(cls, type) and issubclass(cls, Pool)
    assert not inspect.isabstract(cls), inspect.getattr_static(cls, "__abstractmethods__")
    assert registry.target(key) is cls  # imported once
    assert cls.__name__ == registry.TARGETS[key].impl.partition(":")[2]
    assert issubclass(cls.options_model, TargetOptions)
    assert isinstance(cls.cloud, str) and cls.cloud
    assert cls.block is None or isinstance(cls.block, BlockSpec)


def test_targets_are_keyed_by_their_own_key_and_labelled():
    for key, spec in registry.TARGETS.items():
        assert spec.key == key
        assert spec.label.strip()
        module, _, cls = spec.impl.partition(":")
        assert module.startswith("provision.targets.") and cls, spec.impl


def test_every_pool_type_names_a_registered_target():
    for name, pool_type in registry.POOL_TYPES.items():
        assert pool_type.name == name
        assert pool_type.target in registry.TARGETS, name
        assert registry.pool_type(name) is pool_type
        # A push type is Prefect Cloud's: a self-hosted server has none.
        assert pool_type.prefect_cloud_only or not pool_type.push, name
    # And no target is registered that no pool type uses.
    assert {p.target for p in registry.POOL_TYPES.values()} == set(registry.TARGETS)


def test_an_unknown_pool_type_lists_the_supported_ones():
    with pytest.raises(InvalidInputError) as info:
        registry.pool_type("k8s")
    assert info.value.message.startswith("Unknown work pool type 'k8s'. Supported: ")
    for name in registry.POOL_TYPES:
        assert name in info.value.message


def test_flags_are_well_formed():
    kinds = set(typing.get_args(registry.FlagKind))
    for spec in registry.TARGETS.values():
        for f in spec.flags:
            assert f.kind in kinds, (spec.key, f.key)
            assert f.help.strip(), (spec.key, f.key)
            assert f.name.startswith("--") and " " not in f.name
            if f.kind == "bool":  # a switch both ways: a saved True can be turned off
                assert len(f.decls) == 1 and "/" in f.decls[0], f.key
    flags = {f.key: f for spec in registry.TARGETS.values() for f in spec.flags}
    assert flags["vpc_id"].name == registry.flag("vpc_id") == "--vpc-id"
    assert flags["registry_writer"].name == "--registry-writer"
    assert flags["task_role_policy_arns"].name == "--task-role-policy-arn"


def test_a_shared_key_is_one_flag_whose_help_joins_each_targets():
    merged = registry.all_flags()
    assert set(merged) == {f.key for s in registry.TARGETS.values() for f in s.flags}
    shared = {key: declared for key, declared in merged.items() if len(declared) > 1}
    assert [label for label, _ in shared["region"]] == ["GCP", "AWS"]
    for key, declared in shared.items():
        # The CLI declares the flag as the first target does: the others must agree.
        assert len({(f.kind, f.decls) for _, f in declared}) == 1, key

    from cli.main import TARGET_FLAGS

    assert set(TARGET_FLAGS) == set(merged)
    for key, declared in merged.items():
        _, option = typing.get_args(TARGET_FLAGS[key])
        labels = [label for label, _ in declared]
        panel = declared[0][1].panel or " and ".join(labels)
        assert option.rich_help_panel == panel, key
        for _, f in declared:
            assert f.help in option.help, (key, f.help)
    # The worker's (and rotation's) flags are one declaration shared by every target that
    # takes them: one panel, the help said once.
    for f in registry.WORKER_FLAGS:
        _, option = typing.get_args(TARGET_FLAGS[f.key])
        assert [label for label, _ in merged[f.key]] == ["GCP", "AWS", "Azure"]
        assert option.rich_help_panel == "Worker" and option.help == f.help
    _, region = typing.get_args(TARGET_FLAGS["region"])
    assert region.rich_help_panel == "GCP and AWS"
    assert region.help == " ".join(f.help for _, f in merged["region"])


@pytest.mark.parametrize("command", ["up", "preview"])
def test_target_flags_never_collide_with_each_other_or_a_commands_own(command):
    from cli.main import app

    click_command = typer.main.get_command(app).commands[command]  # type: ignore[attr-defined]
    seen: dict[str, str] = {}
    for param in click_command.params:
        for opt in [*param.opts, *param.secondary_opts]:
            assert opt not in seen, f"{opt} is both {seen[opt]} and {param.name}"
            seen[opt] = str(param.name)


def test_the_registry_imports_no_pydantic_nor_any_target():
    code = (
        "import sys, provision.registry as r; r.all_flags(); r.pool_type('ecs'); "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('pydantic', 'pulumi') "
        "or m.startswith('provision.targets')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
