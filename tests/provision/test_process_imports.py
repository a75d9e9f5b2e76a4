"""What the offline preview loads (issue 15).

Memory and start-up time are spent on modules: these check, each in a fresh interpreter, that
the offline plan of every pool type loads only its own cloud's SDK modules (never a whole
service package) and no terminal rendering for ``--json``. (The Prefect resources' provider has
no process of its own: ``provision.dynamic_host`` serves it from the tool's.)
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
ENGINE_RUNNERS = {
    "provision.cli_run",
    "provision.plugins",
    "provision.late_port",
    "provision.locks",
    "provision.dynamic_host",
}

_OFFLINE = """
import io, json, sys, contextlib
sys.argv = ["provision", *{args!r}]
from cli import extras
extras.defer()  # as the console script does
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
ran = [n for n in sdk_modules.PULUMI_DEFERRED if n in sys.modules
       and not isinstance(sys.modules[n], sdk_modules._PartialPackage)] if sdk_modules else []
print(json.dumps({{"modules": sorted(sys.modules), "completed": completed, "ran": ran}}))
"""


def _env(tmp_path) -> dict[str, str]:
    """A fresh interpreter's environment: nothing of the suite's, the tokens the pool types
    without a cloud SDK read."""
    return {
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp_path),
        "PROVISION_HOME": str(tmp_path / "home"),
        "PREFECT_HOME": str(tmp_path / "prefect"),
        "MODAL_TOKEN_ID": "ak-1",
        "MODAL_TOKEN_SECRET": "as-1",
        "DASK_COILED__TOKEN": "token",
    }


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
    proc = subprocess.run(
        [sys.executable, "-c", _OFFLINE.format(args=args)],
        capture_output=True,
        text=True,
        env=_env(tmp_path),
    )
    assert proc.returncode == 0, proc.stderr
    seen = json.loads(proc.stdout.splitlines()[-1])
    tops = {m.split(".")[0] for m in seen["modules"]}

    assert seen["completed"] == {}  # no service package loaded in full
    assert tops & ALL_SDKS == SDKS.get(target, set())
    assert not tops & {"rich", "httpx"}  # no rendering for --json, no Prefect client offline
    # Nor what runs the engine: its CLI runs, plugins, locks and dynamic-provider host, nor
    # the parts of the pulumi SDK the console script defers (gRPC, the Automation API...).
    assert not set(seen["modules"]) & ENGINE_RUNNERS
    assert seen["ran"] == []


def test_a_rendered_plan_loads_no_emoji_table(tmp_path):
    # rich reads a str panel title as markup with emoji codes on, whatever the console says:
    # the plan's and ``show``'s titles are Text, so the table (~6 ms) is never loaded.
    probe = (
        "import sys\n"
        "sys.argv = ['provision', 'preview', '--offline', 'p1', '--type', 'ecs', "
        "'--region', 'eu-west-1']\n"
        "from cli.main import app\n"
        "try:\n"
        "    app(standalone_mode=False)\n"
        "except SystemExit as exc:\n"
        "    assert not exc.code, exc.code\n"
        "print('EMOJI' if 'rich._emoji_codes' in sys.modules else 'NONE')\n"
    )
    env = {**_env(tmp_path), "COLUMNS": "120"}
    proc = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, env=env, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    assert "27 to create" in proc.stdout  # the plan was rendered, panel and all
    assert proc.stdout.splitlines()[-1] == "NONE"
