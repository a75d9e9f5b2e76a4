"""stacks/sdk_bytecode.py: provider SDK modules compiled with postponed annotations, cached.

The mechanics run on a small package written to ``tmp_path`` (``fakesdk``), imported in a
fresh interpreter each time: which finder loaded a module is a property of the process. The
real SDKs are checked through the console script: every cloud stack's offline plan is the same
whether its SDK modules come from this cache or from the SDK's own bytecode.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from stacks import sdk_bytecode
from tests.cli.fresh import ROOT
from tests.offline_plans import PLANS

# ``Missing`` is defined nowhere: evaluated as the module loads, the annotation raises.
SOURCE = """
def make(size: "int", part: Missing[int] = None) -> Missing:
    return size

class Args:
    name: Missing[str]

    def __init__(self, name: Missing) -> None:
        self.name = name

MARK = "source"
"""


def run_json(args: list[str], **env: str) -> dict:
    """The JSON a fresh interpreter running ``args`` prints (the repository importable, ``env``
    added to this environment); a non-zero exit fails the test with its stderr."""
    done = subprocess.run(
        [sys.executable, *args],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT), **env},
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@pytest.fixture
def sdk(tmp_path: Path) -> Path:
    """A package ``fakesdk`` with one module, ``fakesdk.mod``, under ``tmp_path / 'site'``."""
    package = tmp_path / "site" / "fakesdk"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("TOP = True\n")
    (package / "mod.py").write_text(SOURCE)
    return package


def probe(sdk: Path, cache: Path, code: str = "") -> dict:
    """Import ``fakesdk.mod`` in a fresh interpreter with the finder installed for ``fakesdk``
    (cache ``cache``); what ``code`` adds to ``seen``, and the annotations and spec seen."""
    script = f"""
import json, sys
from pathlib import Path
sys.path.insert(0, {str(sdk.parent)!r})
from stacks import sdk_bytecode
sdk_bytecode.install(Path({str(cache)!r}), packages=("fakesdk",))
import fakesdk.mod as mod
def shown(annotations):  # a string as it is, an evaluated annotation as <its repr>
    return {{k: v if isinstance(v, str) else f"<{{v!r}}>" for k, v in annotations.items()}}
seen = {{
    "annotations": shown(mod.make.__annotations__),
    "fields": shown(mod.Args.__annotations__),
    "mark": mod.MARK,
    "cached": mod.__spec__.cached,
    "loader": type(mod.__spec__.loader).__name__,
}}
{code}
print(json.dumps(seen))
"""
    return run_json(["-c", script])


def test_annotations_are_strings_and_nothing_evaluates_them(sdk, tmp_path):
    seen = probe(sdk, tmp_path / "cache")

    assert seen["annotations"] == {"size": "'int'", "part": "Missing[int]", "return": "Missing"}
    assert seen["fields"] == {"name": "Missing[str]"}
    assert seen["loader"] == "_PostponedLoader"


def test_the_package_without_the_finder_evaluates_them_as_it_loads(sdk, tmp_path):
    # The control case: the same source imported plainly fails on the undefined name, which
    # is what shows the probe's import ran none of the annotations.
    done = subprocess.run(
        [sys.executable, "-c", "import fakesdk.mod"],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(sdk.parent)},
    )
    assert done.returncode == 1 and "NameError: name 'Missing'" in done.stderr


def test_the_compiled_module_is_cached_as_a_pyc_at_its_source_path(sdk, tmp_path):
    cache = tmp_path / "cache"
    seen = probe(sdk, cache)

    cached = Path(sdk_bytecode.cache_path(cache, str(sdk / "mod.py")))
    assert seen["cached"] == str(cached)
    tag = sys.implementation.cache_tag
    assert cached == cache.joinpath(sdk_bytecode.FORMAT, *sdk.parts[1:], f"mod.{tag}.pyc")
    data = cached.read_bytes()
    stat = (sdk / "mod.py").stat()
    assert data[:4] == importlib.util.MAGIC_NUMBER
    assert int.from_bytes(data[8:12], "little") == int(stat.st_mtime) & 0xFFFFFFFF
    assert int.from_bytes(data[12:16], "little") == stat.st_size
    # The package's __init__ too; nothing else, and no temporary file left behind.
    assert sorted(p.name for p in cached.parent.iterdir()) == sorted(
        [cached.name, f"__init__.{tag}.pyc"]
    )


def test_the_next_import_runs_the_cached_code_without_compiling(sdk, tmp_path):
    cache = tmp_path / "cache"
    probe(sdk, cache)
    cached = Path(sdk_bytecode.cache_path(cache, str(sdk / "mod.py")))
    # A cached file whose code differs from the source (same header): served as it is, which
    # shows the source was not compiled again.
    code = compile(SOURCE.replace('MARK = "source"', 'MARK = "cache"'), "mod.py", "exec")
    import marshal

    cached.write_bytes(cached.read_bytes()[:16] + marshal.dumps(code))

    assert probe(sdk, cache)["mark"] == "cache"


def test_a_changed_source_is_compiled_again(sdk, tmp_path):
    cache = tmp_path / "cache"
    probe(sdk, cache)
    source = sdk / "mod.py"
    source.write_text(SOURCE.replace('MARK = "source"', 'MARK = "upgraded"'))
    os.utime(source, (1_700_000_000, 1_700_000_000))  # a release's files keep their own times

    assert probe(sdk, cache)["mark"] == "upgraded"
    assert probe(sdk, cache)["mark"] == "upgraded"  # and cached as such


def test_a_damaged_cache_file_is_compiled_again_and_replaced(sdk, tmp_path):
    cache = tmp_path / "cache"
    probe(sdk, cache)
    cached = Path(sdk_bytecode.cache_path(cache, str(sdk / "mod.py")))
    cached.write_bytes(cached.read_bytes()[:20])  # cut short, as by a full disk

    assert probe(sdk, cache)["mark"] == "source"
    assert len(cached.read_bytes()) > 100


def test_an_unwritable_cache_loads_the_sdks_own_bytecode(sdk, tmp_path):
    # Compiling a module like ``pulumi_aws.ec2._inputs`` on every command would cost more than
    # its annotations: without a cache, the import is the plain one (annotations evaluated).
    (sdk / "mod.py").write_text(SOURCE.replace("Missing", "list"))
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")

    seen = probe(sdk, blocker / "cache")

    assert seen["annotations"] == {
        "size": "int",
        "part": "<list[int]>",
        "return": "<<class 'list'>>",
    }
    assert seen["loader"] == "_PostponedLoader" and seen["mark"] == "source"


def test_only_the_named_packages_and_only_once(sdk, tmp_path):
    seen = probe(
        sdk,
        tmp_path / "cache",
        "import json as other\n"
        "sdk_bytecode.install(Path('elsewhere'))\n"
        "finders = [f for f in sys.meta_path if type(f).__name__ == '_Finder']\n"
        "seen['finders'] = len(finders)\n"
        "seen['other'] = type(other.__spec__.loader).__name__\n"
        "sdk_bytecode.uninstall()\n"
        "seen['after'] = sum(type(f).__name__ == '_Finder' for f in sys.meta_path)\n",
    )

    assert seen["finders"] == 1
    assert seen["other"] == "SourceFileLoader"
    assert seen["after"] == 0


TYPED_DICTS = '''
from typing import NotRequired, Required, TypedDict
import typing

class PartArgsDict(TypedDict):
    name: Missing[str]
    """A docstring between fields, as the SDKs write them."""
    size: NotRequired[Missing[int]]

class LooseArgsDict(typing.TypedDict, total=False):
    kind: Required[Missing]
    note: Missing

class EmptyArgsDict(TypedDict):
    """No fields."""
'''


def test_a_typed_dicts_fields_are_set_as_typed_dict_would_without_compiling_them(sdk, tmp_path):
    # ``TypedDict`` turns each string annotation into a ForwardRef (compiling it) as the class
    # is made: the fields move after the class, as the strings with the keys' required-ness.
    (sdk / "mod.py").write_text(SOURCE + TYPED_DICTS)
    code = (
        "import typing\n"
        "seen['typed'] = {\n"
        "    c.__name__: [c.__annotations__, sorted(c.__required_keys__),\n"
        "                 sorted(c.__optional_keys__), c.__total__]\n"
        "    for c in (mod.PartArgsDict, mod.LooseArgsDict, mod.EmptyArgsDict)\n"
        "}\n"
        "seen['is_typeddict'] = typing.is_typeddict(mod.PartArgsDict)\n"
    )
    seen = probe(sdk, tmp_path / "cache", code)

    assert seen["typed"] == {
        "PartArgsDict": [
            {"name": "Missing[str]", "size": "NotRequired[Missing[int]]"},
            ["name"],
            ["size"],
            True,
        ],
        "LooseArgsDict": [
            {"kind": "Required[Missing]", "note": "Missing"},
            ["kind"],
            ["note"],
            False,
        ],
        "EmptyArgsDict": [{}, [], [], True],
    }
    assert seen["is_typeddict"] is True


# The real SDKs' TypedDicts (each input type's ``...ArgsDict`` twin), of the services the
# stacks use: what a plain import records, and the resolved hints, are what this gives.
_TYPED_DICT_PROBE = """
import json, sys, typing, importlib
from pathlib import Path
import pulumi
if sys.argv[1] != "-":
    from stacks import sdk_bytecode
    sdk_bytecode.install(Path(sys.argv[1]))
module = importlib.import_module(sys.argv[2])
seen = {}
for name, obj in vars(module).items():
    if typing.is_typeddict(obj) and obj.__module__ == module.__name__:
        # As pulumi._types resolves hints: Input[T]'s "Output[T]" needs Output and T.
        local = {"Output": pulumi.Output, "T": type(None)}
        hints = typing.get_type_hints(obj, localns=local, include_extras=True)
        seen[name] = [sorted(obj.__required_keys__), sorted(obj.__optional_keys__),
                      {k: repr(v) for k, v in hints.items()}, obj.__total__]
print(json.dumps(seen))
"""


@pytest.mark.parametrize(
    "module",
    [
        "pulumi_aws.ec2._inputs",
        "pulumi_gcp.cloudrunv2._inputs",
        "pulumi_azure_native.containerinstance._inputs",
    ],
)
def test_the_real_sdks_typed_dicts_are_what_a_plain_import_makes(module, tmp_path):
    def typed_dicts(cache: str) -> dict:
        return run_json(["-c", _TYPED_DICT_PROBE, cache, module])

    plain = typed_dicts("-")
    assert len(plain) > 50  # the service's ArgsDicts, not an empty comparison
    assert typed_dicts(str(tmp_path / "cache")) == plain


# Every cloud stack, with and without its worker's stack: the plan is the same from the cache
# (annotations as strings, resolved by the pulumi runtime when it serialises a type) as from
# the SDK's own bytecode. Under mocks the runtime serialises every input and deserialises every
# output through the types' hints.
FLAGS = ("--offline", "--json")

# What every plan draws afresh: a new pool's globally unique names end in a random suffix (a
# GCP custom role's id, an Azure registry's name), and a credential's end date is a year from
# now (Azure's application password).
_SUFFIX = re.compile(r"[0-9a-f]{8}$")
_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")


def unsuffixed(value: object) -> object:
    """``value`` with every string's random suffix replaced by ``<suffix>``, every timestamp
    by ``<time>``."""
    if isinstance(value, dict):
        return {key: unsuffixed(item) for key, item in value.items()}
    if isinstance(value, list):
        return [unsuffixed(item) for item in value]
    if isinstance(value, str):
        return _TIME.sub("<time>", _SUFFIX.sub("<suffix>", value))
    return value


def offline_plan(args: list[str], tmp_path: Path, cache: Path) -> dict:
    """``provision preview p1 ARGS --offline --json`` through the console script."""
    return run_json(
        ["-c", "import cli.main as m; m.main()", "preview", "p1", *args, *FLAGS],
        PROVISION_HOME=str(tmp_path / "home"),
        PROVISION_CACHE_DIR=str(cache),
    )


@pytest.mark.parametrize("worker", [False, True], ids=["pool", "with-worker"])
@pytest.mark.parametrize("cloud", sorted(PLANS))
def test_every_stacks_plan_is_the_same_from_the_cache(cloud, worker, tmp_path):
    args = PLANS[cloud] + (["--with-worker"] if worker else [])
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    cache = tmp_path / "cache"

    plain = offline_plan(args, tmp_path, blocker / "cache")
    postponed = offline_plan(args, tmp_path, cache)

    assert unsuffixed(postponed) == unsuffixed(plain)
    assert postponed["resources"]  # a real plan, not two empty ones
    sdk = {"gcp": "pulumi_gcp", "aws": "pulumi_aws", "azure": "pulumi_azure_native"}[cloud]
    assert any(sdk in p.parts for p in (cache / "sdk-bytecode").rglob("*.pyc")), (
        "the plan's SDK modules came from the cache"
    )


def test_every_sdk_a_stack_loads_is_compiled_this_way():
    # A new stack's SDK missing from PACKAGES would load as shipped: correct, but slow.
    loaded = set()
    for path in (ROOT / "stacks").glob("*.py"):
        source = path.read_text()
        loaded |= set(re.findall(r'sdk_modules\.load\(\s*"(\w+)"', source))
        loaded |= set(re.findall(r"^import (pulumi_\w+)", source, re.MULTILINE))
    assert loaded == {"pulumi_aws", "pulumi_gcp", "pulumi_azure_native", "pulumi_azuread"}
    assert loaded <= set(sdk_bytecode.PACKAGES)


# -- an SDK's top-level package binds its own modules' names and its services on first use --

# In the real SDKs' layout: star imports of the package's own modules, one of which exports a
# name that is also a module (``get_value``, as pulumi_aws's ``get_region`` does), and the
# services bound by ``_utilities.lazy_import`` outside the type checker's branch.
LAZY_FILES = {
    "__init__.py": """
import typing
from . import _utilities
from .thing import *
from .other import *
from .get_value import *
from ._inputs import *
if typing.TYPE_CHECKING:
    import lazysdk.svc as __svc
    svc = __svc
else:
    svc = _utilities.lazy_import('lazysdk.svc')
_utilities.register("lazysdk")
""",
    "_utilities.py": """
import importlib.util, sys, time
REGISTERED = []
SLOW = 0
def register(name):
    REGISTERED.append(name)
def lazy_import(fullname):  # the SDK's: a module whose code runs on its first attribute
    m = sys.modules.get(fullname)
    if m is not None:
        return m
    time.sleep(SLOW)  # a test widens the window between the check and the insertion
    spec = importlib.util.find_spec(fullname)
    loader = importlib.util.LazyLoader(spec.loader)
    spec.loader = loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[fullname] = module
    loader.exec_module(module)
    return module
""",
    "thing.py": "__all__ = ['Thing', 'ThingArgs']\nclass Thing: pass\nclass ThingArgs: pass\n",
    "other.py": "__all__ = ['Other', 'Thing']\nclass Other: pass\nclass Thing: pass\n",
    "get_value.py": "__all__ = ['get_value']\ndef get_value():\n    return 42\n",
    "_inputs.py": "__all__ = ['ValueArgs']\nclass ValueArgs: pass\n",
    "svc/__init__.py": "from .res import *\nINIT_RAN = True\n",
    "svc/res.py": "__all__ = ['Res']\nclass Res: pass\n",
}


def lazy_probe(tmp_path: Path, code: str, files: dict[str, str] | None = None) -> dict:
    """``lazysdk`` (``LAZY_FILES``, or these) imported in a fresh interpreter with the finder
    installed for it; ``code`` fills ``seen``, ``loaded(name)`` tells whether
    ``lazysdk.<name>`` is in ``sys.modules``."""
    site = tmp_path / "site"
    for path, text in (files or LAZY_FILES).items():
        file = site / "lazysdk" / path
        file.parent.mkdir(parents=True, exist_ok=True)
        file.write_text(text)
    script = f"""
import json, sys
from pathlib import Path
sys.path.insert(0, {str(site)!r})
from stacks import sdk_bytecode
sdk_bytecode.install(Path({str(tmp_path / "cache")!r}), packages=("lazysdk",))
def loaded(name):
    return "lazysdk." + name in sys.modules
import lazysdk
seen = {{}}
{code}
print(json.dumps(seen))
"""
    return run_json(["-c", script])


def test_the_top_levels_modules_and_services_load_on_first_use(tmp_path):
    seen = lazy_probe(
        tmp_path,
        """
seen["at import"] = {n: loaded(n) for n in ("thing", "other", "_inputs", "get_value", "svc")}
seen["registered"] = lazysdk._utilities.REGISTERED
args = lazysdk.ThingArgs
seen["after a name"] = {n: loaded(n) for n in ("thing", "other")}
seen["thing"] = [args.__module__, lazysdk.Thing.__module__]  # `other` exports Thing last
from lazysdk import Other, ValueArgs
seen["from import"] = [Other.__module__, ValueArgs.__module__]
svc_dict = object.__getattribute__(lazysdk.svc, "__dict__")  # no attribute: it would load
seen["svc"] = [type(lazysdk.svc).__name__, "INIT_RAN" in svc_dict]
seen["svc res"] = [lazysdk.svc.Res.__module__, lazysdk.svc.INIT_RAN]
seen["dir"] = sorted(n for n in dir(lazysdk) if not n.startswith("_"))
try:
    lazysdk.Missing
except AttributeError as exc:
    seen["missing"] = str(exc)
""",
    )

    # Star imports of modules exporting no module's name, and the service, wait for a name;
    # the one exporting a module's name (get_value) is made as it loads, as before.
    assert seen["at import"] == {
        "thing": False,
        "other": False,
        "_inputs": False,
        "get_value": True,
        "svc": False,
    }
    assert seen["registered"] == ["lazysdk"]  # the rest of __init__ ran
    assert seen["after a name"] == {"thing": True, "other": False}
    assert seen["thing"] == ["lazysdk.thing", "lazysdk.other"]
    assert seen["from import"] == ["lazysdk.other", "lazysdk._inputs"]
    # The service is the SDK's own lazy module: its code runs on its first attribute.
    assert seen["svc"] == ["_LazyModule", False]
    assert seen["svc res"] == ["lazysdk.svc.res", True]
    # What a plain import binds (the modules loaded by then too) and, before its first use, the
    # name deferred: here every name has been used.
    assert seen["dir"] == [
        "Other", "Thing", "ThingArgs", "ValueArgs", "get_value", "other", "svc", "thing", "typing",
    ]  # fmt: skip
    assert seen["missing"] == "module 'lazysdk' has no attribute 'Missing'"


def test_threads_asking_for_a_service_at_once_get_one_module(tmp_path):
    # The SDK made every lazy module as its package loaded, under the import lock; made on
    # first use, two threads racing through lazy_import would each make one.
    seen = lazy_probe(
        tmp_path,
        """
import threading
lazysdk._utilities.SLOW = 0.05
got, start = [], threading.Barrier(4)
def ask():
    start.wait()
    got.append(lazysdk.svc)
threads = [threading.Thread(target=ask) for _ in range(4)]
for t in threads:
    t.start()
for t in threads:
    t.join()
seen["one"] = len({id(m) for m in got}) == 1 and got[0] is sys.modules["lazysdk.svc"]
""",
    )
    assert seen["one"]


def test_a_module_exporting_a_modules_name_keeps_it_after_that_module_is_imported(tmp_path):
    # `import lazysdk.get_value` binds the module on the package: the star import ran first,
    # as in the SDK, so the name is still the function.
    seen = lazy_probe(
        tmp_path,
        """
import lazysdk.get_value
seen["value"] = lazysdk.get_value()
""",
    )
    assert seen["value"] == 42


@pytest.mark.parametrize(
    "change",
    [
        # A star import whose module's names are unknown: its names could be any.
        ("other.py", "class Other: pass\nclass Thing: pass\n"),
        # The rest of __init__ reads a name a star import binds: it must be there.
        ("__init__.py", LAZY_FILES["__init__.py"] + "ALIAS = Thing\n"),
        # ...or binds one after it: the later binding must win.
        ("__init__.py", LAZY_FILES["__init__.py"] + "def Other():\n    pass\n"),
    ],
    ids=["no-literal-all", "reads-a-name", "binds-a-name"],
)
def test_a_top_level_whose_order_of_bindings_could_change_is_left_as_it_is(change, tmp_path):
    path, text = change
    seen = lazy_probe(
        tmp_path,
        'seen["loaded"] = [loaded("thing"), loaded("svc"), "__getattr__" in vars(lazysdk)]',
        {**LAZY_FILES, path: text},
    )
    assert seen["loaded"] == [True, True, False]


def test_a_service_packages_init_is_compiled_as_it_is(tmp_path):
    # Its star imports run as it loads (sdk_modules is what loads a service's modules alone).
    code = 'lazysdk.svc.INIT_RAN\nseen["res"] = [loaded("svc.res"), "__getattr__" in vars(svc)]'
    seen = lazy_probe(tmp_path, "svc = lazysdk.svc\n" + code)
    assert seen["res"] == [True, False]


_TOP_LEVEL_PROBE = """
import json, sys, types
if sys.argv[1] != "-":
    from pathlib import Path
    from stacks import sdk_bytecode
    sdk_bytecode.install(Path(sys.argv[1]))
import importlib
import pulumi.runtime.rpc as rpc
sdk = sys.argv[2]
top = importlib.import_module(sdk)
if sys.argv[3:]:
    names = json.loads(sys.argv[3])
else:
    names = sorted(n for n in vars(top) if not n.startswith("_"))
values = {n: getattr(top, n) for n in names}
modules = {id(m): name for name, m in sys.modules.items()}
def shown(value):  # never an attribute of a lazy module: that would load the service
    if isinstance(value, types.ModuleType):
        return ["module", modules.get(id(value))]
    named = [getattr(value, "__module__", None), getattr(value, "__qualname__", None)]
    return [type(value).__name__, *named]
seen = {"names": {n: shown(v) for n, v in values.items()},
        "registered": sorted(rpc._RESOURCE_MODULES), "packages": sorted(rpc._RESOURCE_PACKAGES)}
print(json.dumps(seen))
"""


@pytest.mark.parametrize("sdk", sdk_bytecode.PACKAGES)
def test_a_real_sdks_top_level_gives_every_name_a_plain_import_binds(sdk, tmp_path):
    plain = run_json(["-c", _TOP_LEVEL_PROBE, "-", sdk])
    names = sorted(plain["names"])
    assert len(names) > 5 and plain["registered"] and plain["packages"]

    lazy = run_json(["-c", _TOP_LEVEL_PROBE, str(tmp_path / "cache"), sdk, json.dumps(names)])

    assert lazy == plain  # the same objects by name, the same registrations with the runtime
