"""What the offline preview and the Prefect resources' provider process load (issue 15).

Memory and start-up time are spent on modules: these check, each in a fresh interpreter, that
the offline plan of every pool type loads only its own cloud's SDK modules (never a whole
service package) and no terminal rendering for ``--json``; and that the dynamic provider
process serving the Prefect resources loads neither an SDK, the stacks, nor the CLI.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from provision.registry import POOL_TYPES

FLAGS = {
    "gcp": ["--project", "my-proj-123", "--region", "europe-west1"],
    "aws": ["--region", "eu-west-1"],
    "azure": ["--subscription", "00000000-0000-0000-0000-000000000000", "--location", "westeurope"],
}
SDKS = {
    "gcp": {"pulumi_gcp"},
    "aws": {"pulumi_aws"},
    "azure": {"pulumi_azure_native", "pulumi_azuread"},
}
ALL_SDKS = set().union(*SDKS.values())

_OFFLINE = """
import io, json, sys, contextlib
sys.argv = ["provision", *{args!r}]
from cli.main import app
out = io.StringIO()
with contextlib.redirect_stdout(out):
    try:
        app(standalone_mode=False)
    except SystemExit as exc:
        assert not exc.code, exc.code
json.loads(out.getvalue())
sdk_modules = sys.modules.get("stacks.sdk_modules")
completed = dict(sdk_modules.completed) if sdk_modules else {{}}
print(json.dumps({{"modules": sorted(sys.modules), "completed": completed}}))
"""


def _cases() -> list[tuple[str, bool]]:
    cases = []
    for name, pool_type in POOL_TYPES.items():
        cases.append((name, False))
        if not pool_type.push and pool_type.target in FLAGS:
            cases.append((name, True))
    return cases


@pytest.mark.parametrize(("type_name", "with_worker"), _cases())
def test_the_offline_plan_loads_only_its_own_sdk_modules(type_name, with_worker, tmp_path):
    target = POOL_TYPES[type_name].target
    args = [
        "preview",
        "--offline",
        "p1",
        "--type",
        type_name,
        *FLAGS.get(target, []),
        *(["--with-worker"] if with_worker else []),
        "--json",
    ]
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp_path),
        "PROVISION_HOME": str(tmp_path / "home"),
        "PREFECT_HOME": str(tmp_path / "prefect"),
        "MODAL_TOKEN_ID": "ak-1",
        "MODAL_TOKEN_SECRET": "as-1",
        "DASK_COILED__TOKEN": "token",
    }
    proc = subprocess.run(
        [sys.executable, "-c", _OFFLINE.format(args=args)],
        capture_output=True,
        text=True,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr
    seen = json.loads(proc.stdout.splitlines()[-1])
    tops = {m.split(".")[0] for m in seen["modules"]}

    assert seen["completed"] == {}  # no service package loaded in full
    assert tops & ALL_SDKS == SDKS.get(target, set())
    assert not tops & {"rich", "httpx"}  # no rendering for --json, no Prefect client offline


_PROVIDER = """
import base64, json, sys
import dill
import pulumi.dynamic  # what `python -m pulumi.dynamic` imports before any request

provider = dill.loads(base64.b64decode(sys.argv[1]))  # as get_provider() does
provider.diff("id", {"api_url": "u", "block_type": "t", "name": "n", "data_hash": "h"},
              {"api_url": "u", "block_type": "t", "name": "n", "data": {"k": "v"}})
from provision.prefect import resources
with resources._writer("http://127.0.0.1:9/api"):  # what create/read/update/delete use
    pass
print(json.dumps(sorted(sys.modules)))
"""

HEAVY_FOR_PROVIDER = (
    *sorted(ALL_SDKS),
    "stacks",
    "cli",
    "rich",
    "typer",
    "pydantic",
    "provision.service",
    "provision.engine",
    "provision.targets",
    "provision.plan",
)
"""Never in the dynamic provider process: it serves two Prefect resources over HTTP."""
PREFIXES = tuple(h + "." for h in HEAVY_FOR_PROVIDER)


@pytest.mark.parametrize("cls", ["BlockProvider", "WorkPoolProvider"])
def test_the_dynamic_provider_process_loads_no_sdk_stack_or_cli(cls):
    from pulumi.dynamic.dynamic import serialize_provider

    from provision.prefect import resources

    blob = serialize_provider(getattr(resources, cls)())
    proc = subprocess.run(
        [sys.executable, "-c", _PROVIDER, blob], capture_output=True, text=True, check=True
    )
    modules = json.loads(proc.stdout.splitlines()[-1])

    heavy = [m for m in modules if m in HEAVY_FOR_PROVIDER or m.startswith(PREFIXES)]
    assert heavy == []
