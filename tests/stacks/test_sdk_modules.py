"""stacks/sdk_modules.py: a service package's declared modules only, and never a missing name.

The mechanics run on a small SDK written to ``tmp_path`` in the real SDKs' layout (a top-level
package lazily importing its services with ``pulumi._utils.lazy_import``, a service whose
``__init__`` star-imports every module); the real SDKs are checked in a subprocess each, where
nothing else loaded them before.
"""

from __future__ import annotations

import json
import os
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
    # A package whose __init__ imports parts eagerly, as pulumi's does (``defer``): a package
    # (``api``) and a module imported for its side effect (``inner.effect``).
    "host/__init__.py": """
        from .inner import effect
        from . import api
        HOST = True
    """,
    "host/inner/__init__.py": "",
    "host/inner/effect.py": """
        import builtins
        builtins.effect_runs = getattr(builtins, "effect_runs", 0) + 1
        def hook():
            return "hooked"
    """,
    "host/api/__init__.py": """
        import threading, time
        from .errors import ApiError
        gate = threading.Event()
        WAIT = globals().get("WAIT")
        if WAIT is not None:  # a test holds the code here, part-way through
            WAIT.set()
            gate.wait(5)
        class Client: pass
        RUNS = globals().get("RUNS", 0) + 1
    """,
    "host/api/errors.py": "class ApiError(Exception): pass\n",
    "selfish/__init__.py": "from . import LATER\nLATER = 1\n",
    "toolkit.py": "__all__ = ['tool']\ndef tool():\n    return 1\n",
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


def test_the_top_level_packages_own_modules_are_imported_when_named(sdk):
    # Imported by the stack module, ahead of its program (the preload): an SDK compiled by
    # sdk_bytecode binds their names on the top-level package only when first asked.
    top = sdk_modules.load(sdk, "toolkit", svc=("thing",))

    assert sys.modules[f"{sdk}.toolkit"].tool() == 1
    assert f"{sdk}.svc.thing" in sys.modules
    with pytest.raises(ModuleNotFoundError):
        sdk_modules.load(sdk, "absent")
    assert top.TOP


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


# -- deferred parts (pulumi's own: ``defer_pulumi_parts``) ------------------------------------


def test_a_deferred_part_is_bound_by_its_parent_without_running(sdk):
    import builtins
    import importlib

    sdk_modules.defer(f"{sdk}.host.api")
    sdk_modules.defer(f"{sdk}.host.inner.effect")
    runs = getattr(builtins, "effect_runs", 0)

    host = importlib.import_module(f"{sdk}.host")

    assert host.HOST
    assert host.api is sys.modules[f"{sdk}.host.api"]  # the one object, its code not run
    assert "Client" not in vars(host.api)
    assert host.effect is sys.modules[f"{sdk}.host.inner.effect"]
    assert getattr(builtins, "effect_runs", 0) == runs  # the side effect has not happened
    assert host.effect.hook() == "hooked"  # the first name runs it, once
    assert builtins.effect_runs == runs + 1
    assert type(host.effect) is types.ModuleType
    assert f"{sdk}.host.inner.effect" not in sdk_modules.completed  # not a stack's undeclared name


def test_a_deferred_package_gives_a_submodule_alone_then_runs_on_a_name(sdk):
    import importlib

    sdk_modules.defer(f"{sdk}.host.api")
    api = importlib.import_module(f"{sdk}.host.api")

    errors = importlib.import_module(f"{sdk}.host.api.errors")
    assert api.errors is errors and "Client" not in vars(api)
    assert api.Client and api.RUNS == 1
    assert api.ApiError is errors.ApiError  # submodules already loaded are the ones used
    sdk_modules.complete(f"{sdk}.host.api")  # nothing left to run
    assert api.RUNS == 1


def test_a_dunder_name_of_a_deferred_part_runs_it(sdk):
    # A star import reads ``__all__``, a version check ``__version__``: what the code defines.
    sdk_modules.defer(f"{sdk}.host.api")
    api = sys.modules[f"{sdk}.host.api"]

    assert api.__name__ == f"{sdk}.host.api"  # set on the module: nothing runs
    assert "Client" not in vars(api)
    namespace: dict[str, object] = {}
    exec(f"from {sdk}.host.api import *", namespace)
    assert namespace["Client"] is api.Client and api.RUNS == 1


def test_complete_runs_a_deferred_part_now(sdk):
    sdk_modules.defer(f"{sdk}.host.api")
    sdk_modules.complete(f"{sdk}.host.api")

    api = sys.modules[f"{sdk}.host.api"]
    assert type(api) is types.ModuleType
    assert vars(api)["Client"]


def test_another_thread_asking_while_the_code_runs_waits_for_it(sdk):
    import threading

    sdk_modules.defer(f"{sdk}.host.api")
    api = sys.modules[f"{sdk}.host.api"]
    started = threading.Event()
    api.WAIT = started  # the code sees it and waits on its gate part-way through
    runner = threading.Thread(target=lambda: api.Client)
    runner.start()
    assert started.wait(5)
    got: list[object] = []
    asker = threading.Thread(target=lambda: got.append(api.Client))
    asker.start()
    asker.join(0.3)
    # Until the code is over, the name is not there: the asker waits rather than fail.
    assert asker.is_alive() and not got
    api.gate.set()
    runner.join(5)
    asker.join(5)
    assert got == [api.Client] and api.RUNS == 1


def test_code_asking_itself_for_a_name_not_defined_yet_fails_as_an_import_does(sdk):
    sdk_modules.defer(f"{sdk}.selfish")
    selfish = sys.modules[f"{sdk}.selfish"]

    with pytest.raises(ImportError, match="LATER"):
        _ = selfish.LATER
    assert isinstance(selfish, sdk_modules._PartialPackage)  # as it was: a later use retries


def test_a_top_level_package_is_deferred_too(sdk):
    import importlib

    sdk_modules.defer(sdk)
    top = importlib.import_module(sdk)

    assert "TOP" not in vars(top)
    assert top.TOP  # its __init__ ran on the first name
    assert sys.modules[sdk] is top and type(top) is types.ModuleType


def test_a_module_loaded_before_or_missing_is_not_deferred(sdk):
    import importlib

    host = importlib.import_module(f"{sdk}.host")
    sdk_modules.defer(f"{sdk}.host.api")
    assert sys.modules[f"{sdk}.host.api"] is host.api and "Client" in vars(host.api)

    sdk_modules.defer(f"{sdk}.host.nothing")
    sdk_modules.defer("no_such_package_anywhere.part")
    assert f"{sdk}.host.nothing" not in sys.modules
    assert "no_such_package_anywhere.part" not in sys.modules


# Run in a fresh interpreter: the suite's own loaded pulumi long before.
_PULUMI = """
import json, os, sys
from stacks import sdk_modules
sdk_modules.defer_pulumi_parts(os.environ)

def ran(*names):
    return sorted(n for n in names if n in sys.modules
                  and not isinstance(sys.modules[n], sdk_modules._PartialPackage))

import pulumi
deferred = [n for n in sdk_modules.PULUMI_DEFERRED
            if isinstance(sys.modules.get(n), sdk_modules._PartialPackage)]
seen = {
    "deferred": sorted(deferred),
    "ran": ran("yaml", "opentelemetry.sdk.trace", "urllib.request"),
}
# What the engine uses works, and loads what it needs then: not PyYAML, until it parses.
from pulumi import automation as auto
seen["workspace"] = auto.LocalWorkspace.__module__
seen["ran_after"] = ran("yaml", "urllib.request")
import yaml
seen["parsed"] = yaml.safe_load("a: [1, 2]")
seen["yaml_version"] = yaml.__version__
from opentelemetry import trace
seen["tracer_provider"] = type(trace.get_tracer_provider()).__module__
print(json.dumps(seen))
"""


def _fresh(code: str, env: dict[str, str] | None = None) -> dict:
    """The JSON that ``code`` prints last, run in a fresh interpreter (with ``env``)."""
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env
    )
    return json.loads(proc.stdout.splitlines()[-1])


def _pulumi_parts(environ: dict[str, str]) -> dict:
    """What a fresh interpreter with ``environ`` loads of pulumi's parts, deferred first."""
    return _fresh(_PULUMI, {k: v for k, v in os.environ.items() if k != "TRACEPARENT"} | environ)


def test_import_pulumi_leaves_its_automation_api_and_tracing_set_up_for_later():
    import yaml

    seen = _pulumi_parts({})

    assert seen["deferred"] == sorted(sdk_modules.PULUMI_DEFERRED)
    assert seen["ran"] == []  # no PyYAML, no OpenTelemetry SDK, no urllib.request
    assert seen["workspace"] == "pulumi.automation._local_workspace"
    assert seen["ran_after"] == ["urllib.request"]
    assert seen["parsed"] == {"a": [1, 2]}
    assert seen["yaml_version"] == yaml.__version__  # a dunder name runs it too
    assert not seen["tracer_provider"].startswith("opentelemetry.sdk")


def test_with_tracing_on_the_sdk_sets_it_up_at_import_as_always():
    # TRACEPARENT is how the pulumi CLI asks for spans: the SDK's side effect must happen.
    seen = _pulumi_parts({"TRACEPARENT": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"})

    assert "pulumi.runtime._instrumentation" not in seen["deferred"]
    assert "opentelemetry.sdk.trace" in seen["ran"]
    assert seen["tracer_provider"].startswith("opentelemetry.sdk.trace")


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
    seen = _fresh(_REAL.format(stacks=stacks, sdk=sdk))

    assert seen["completed"] == {}  # the stacks declare every module they take names from
    tokens = dict(seen["rehydrated"])
    assert declared in tokens
    # Undeclared types resolve too (their service's __init__ ran for them), to their own class.
    assert len(tokens) > 20
    assert all(module.startswith(sdk + ".") for module in tokens.values())
