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
PLANS = {
    "gcp": ["--type", "cloud-run-v2", "--project", "my-proj-123", "--region", "europe-west1"],
    "aws": ["--type", "ecs", "--region", "eu-west-1"],
    "azure": [
        "--type",
        "azure-container-instance",
        "--subscription",
        "00000000-0000-0000-0000-000000000000",
        "--resource-group",
        "rg",
        "--location",
        "westeurope",
    ],
}


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
