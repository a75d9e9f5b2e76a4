"""stacks/sdk_modules.py: a service package's declared modules only, and never a missing name.

The mechanics run on a small SDK written to ``tmp_path`` in the real SDKs' layout (a top-level
package lazily importing its services with ``pulumi._utils.lazy_import``, a service whose
``__init__`` star-imports every module); the real SDKs are checked in a subprocess each, where
nothing else loaded them before.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import types
from pathlib import Path

import pytest

from stacks import sdk_modules

FILES = {
    "__init__.py": """
        from pulumi import _utils
        svc = _utils.lazy_import(__name__ + ".svc")
        TOP = True
    """,
    "svc/__init__.py": """
        from ._enums import *
        from ._inputs import *
        from .thing import *
        from .other import *
        from . import outputs
        INIT_RAN = True
    """,
    "svc/_enums.py": "__all__ = ['Color']\nclass Color: pass\n",
    "svc/_inputs.py": """
        from ._enums import *
        __all__ = ['ThingPartArgs']
        class ThingPartArgs: pass
    """,
    "svc/outputs.py": "from . import outputs\n__all__ = ['ThingPart']\nclass ThingPart: pass\n",
    "svc/thing.py": """
        from . import outputs
        from ._inputs import *
        __all__ = ['ThingArgs', 'Thing']
        class ThingArgs: pass
        class Thing:
            part = outputs.ThingPart
    """,
    "svc/other.py": "__all__ = ['Other']\nclass Other: pass\n",
    "plain/__init__.py": "from .x import *\nINIT_RAN = True\n",
    "plain/x.py": "__all__ = ['X']\nX = 1\n",
}


@pytest.fixture
def sdk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> str:
    """The name of a fresh fake SDK package, importable, removed from sys.modules after."""
    name = "fakesdk_" + request.node.name.replace("[", "_").replace("]", "_").replace("-", "_")
    for path, text in FILES.items():
        file = tmp_path / name / path
        file.parent.mkdir(parents=True, exist_ok=True)
        file.write_text(textwrap.dedent(text))
    monkeypatch.syspath_prepend(str(tmp_path))
    yield name
    for module in [m for m in sys.modules if m == name or m.startswith(name + ".")]:
        del sys.modules[module]


def test_only_the_declared_modules_are_imported_and_their_names_exported(sdk):
    top = sdk_modules.load(sdk, svc=("_inputs", "thing"))
    svc = top.svc

    assert sys.modules[f"{sdk}.svc"] is svc  # one object, wherever it is reached from
    assert top.TOP
    assert svc.Thing is sys.modules[f"{sdk}.svc.thing"].Thing
    assert svc.ThingArgs is sys.modules[f"{sdk}.svc.thing"].ThingArgs
    assert svc.ThingPartArgs is sys.modules[f"{sdk}.svc._inputs"].ThingPartArgs
    assert svc.Thing.part is svc.outputs.ThingPart  # `from . import outputs` in a module
    assert f"{sdk}.svc.other" not in sys.modules
    assert "INIT_RAN" not in vars(svc)
    assert f"{sdk}.svc" not in sdk_modules.completed


def test_a_name_not_declared_runs_the_package_init_on_the_same_object(sdk):
    top = sdk_modules.load(sdk, svc=("thing",))
    svc = top.svc
    thing = svc.Thing

    assert svc.Other is sys.modules[f"{sdk}.svc.other"].Other  # loaded now, not missing
    assert svc.INIT_RAN
    assert type(svc) is types.ModuleType
    assert sys.modules[f"{sdk}.svc"] is svc
    assert svc.Thing is thing  # the classes stay the ones already in use
    assert sdk_modules.completed[f"{sdk}.svc"] == "Other"
    with pytest.raises(AttributeError):
        _ = svc.Nothing


def test_a_submodule_or_a_dunder_probe_does_not_load_the_whole_package(sdk):
    svc = sdk_modules.load(sdk, svc=("thing",)).svc

    assert svc._enums.Color is sys.modules[f"{sdk}.svc._enums"].Color
    assert not hasattr(svc, "__all__")
    assert not hasattr(svc, "__wrapped__")
    assert "INIT_RAN" not in vars(svc)
    assert f"{sdk}.svc" not in sdk_modules.completed


def test_a_package_loaded_in_full_before_is_used_as_it_is(sdk):
    import importlib

    top = importlib.import_module(sdk)
    assert top.svc.INIT_RAN  # the SDK's lazy module, loaded by a first use

    again = sdk_modules.load(sdk, svc=("thing",))
    assert type(again.svc) is types.ModuleType
    assert again.svc.Other


def test_a_service_the_sdk_does_not_import_lazily_gets_a_partial_package(sdk):
    top = sdk_modules.load(sdk, plain=("x",))

    assert top.plain.X == 1
    assert sys.modules[f"{sdk}.plain"] is top.plain
    assert "INIT_RAN" not in vars(top.plain)


def test_a_missing_service_or_module_fails_as_an_import_does(sdk):
    with pytest.raises(ImportError, match="nope"):
        sdk_modules.load(sdk, nope=("x",))
    with pytest.raises(ModuleNotFoundError, match="missing"):
        sdk_modules.load(sdk, svc=("missing",))


# -- the real SDKs --------------------------------------------------------------------------

_REAL = """
import json, sys
import {stacks}
from stacks import sdk_modules

out = {{"completed": dict(sdk_modules.completed), "rehydrated": []}}
# What the runtime does to rehydrate a resource reference (the SDK's _utilities.Module.construct):
# the class of every registered type of a service the stacks use, partially loaded or not.
from pulumi.runtime import rpc
sdk = sys.modules["{sdk}"]
services = {{m.split(".")[1] for m in sys.modules if m.startswith("{sdk}.") and m.count(".") == 2}}
for key, modules in rpc._RESOURCE_MODULES.items():
    for module in modules:
        info = getattr(module, "mod_info", None)
        if not info or info["fqn"].split(".")[-1] not in services:
            continue
        package = sdk._utilities.lazy_import(info["fqn"])
        for token, cls in info.get("classes", {{}}).items():
            resolved = getattr(package, cls)
            out["rehydrated"].append([token, resolved.__module__])
print(json.dumps(out))
"""


@pytest.mark.parametrize(
    ("stacks", "sdk", "declared"),
    [
        ("stacks.gcp_cloud_run, stacks.gcp_worker", "pulumi_gcp", "gcp:projects/service:Service"),
        ("stacks.aws_ecs, stacks.aws_worker", "pulumi_aws", "aws:ec2/vpc:Vpc"),
        (
            "stacks.azure_aci, stacks.azure_worker",
            "pulumi_azure_native",
            "azure-native:resources:ResourceGroup",
        ),
    ],
)
def test_every_registered_type_of_a_used_service_still_resolves(stacks, sdk, declared):
    code = _REAL.format(stacks=stacks, sdk=sdk)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    seen = json.loads(proc.stdout.splitlines()[-1])

    assert seen["completed"] == {}  # the stacks declare every module they take names from
    tokens = dict(seen["rehydrated"])
    assert declared in tokens
    # Undeclared types resolve too (their service's __init__ ran for them), to their own class.
    assert len(tokens) > 20
    assert all(module.startswith(sdk + ".") for module in tokens.values())
