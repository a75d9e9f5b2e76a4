"""Pools as code end to end: one file declares pools on all three clouds; `preview -f` and
`up -f` converge them, in parallel, through the real engine, the fake clouds, a team's S3
backend (moto) and the real Prefect server."""

from __future__ import annotations

import itertools
import json
import secrets
from pathlib import Path

import pytest

from tests.e2e.conftest import Sandbox, share_backend, sign_in_everywhere

pytestmark = pytest.mark.e2e

SUBSCRIPTION = "6b1f7c2e-3d4a-4e5b-8c9d-0a1b2c3d4e5f"


def pools_file(names: dict[str, str], *, ecs_retention: int = 30, drop: str = "") -> str:
    """The team's file: two GCP pools, an ECS pool and an ACI pool (``drop`` leaves one out)."""
    tables = {
        "gcp": f"""
[pools.{names["gcp"]}]
type = "cloud-run-v2"
""",
        "vertex": f"""
[pools.{names["vertex"]}]
type = "vertex-ai"
with-worker = false
""",
        "ecs": f"""
[pools.{names["ecs"]}]
type = "ecs"
region = "eu-west-1"   # its own: the default is a GCP region
log-retention-days = {ecs_retention}
""",
        "aci": f"""
[pools.{names["aci"]}]
type = "azure-container-instance"
subscription = "{SUBSCRIPTION}"
location = "westeurope"
""",
    }
    head = '# the team\'s pools\n[defaults]\nproject = "my-proj-123"\nregion = "europe-west1"\n'
    return head + "".join(text for key, text in tables.items() if key != drop)


@pytest.fixture
def team(sandbox: Sandbox, moto_server, s3_backend) -> Sandbox:
    """A machine with all three clouds signed in (fakes) and the team's S3 backend."""
    sign_in_everywhere(sandbox, moto_server)
    share_backend(sandbox, s3_backend)
    return sandbox


def test_a_pools_file_converges_every_pool_in_parallel(team: Sandbox, tmp_path: Path):
    tag = secrets.token_hex(2)
    names = {k: f"{k}{tag}" for k in ("gcp", "vertex", "ecs", "aci")}
    path = tmp_path / "provision.toml"
    path.write_text(pools_file(names))

    run = team.run("up", "-f", str(path), "--yes")
    assert "All 4 pools converged." in run.stdout
    listed = {r["name"]: r for r in json.loads(team.run("list", "--json").stdout)}
    assert set(names.values()) <= set(listed)
    assert listed[names["ecs"]]["location"].startswith("eu-west-1")
    assert team.work_pool(names["aci"]) is not None
    # In parallel: the pools' engines wrote to the clouds at the same time.
    windows = []
    for name in names.values():
        stamps = [c["ts"] for c in team.cloud.calls("create") if name in c.get("name", "")]
        windows.append((min(stamps), max(stamps)))
    windows.sort()
    assert any(later[0] < earlier[1] for earlier, later in itertools.pairwise(windows))

    # Converged: the drift check passes.
    team.run("preview", "-f", str(path), "--expect-no-changes")

    # One option edited: exit 3, and only that pool changes.
    path.write_text(pools_file(names, ecs_retention=14))
    run = team.run("preview", "-f", str(path), "--json", "--expect-no-changes", expect=3)
    plans = json.loads(run.stdout)
    changing = [p["pool"] for p in plans["pools"] if _changes(p)]
    assert changing == [names["ecs"]]
    assert plans["summary"]["changing"] == 1 and plans["summary"]["unchanged"] == 3

    # A pool dropped from the file is listed, and left alone without --prune.
    path.write_text(pools_file(names, ecs_retention=14, drop="aci"))
    plans = json.loads(team.run("preview", "-f", str(path), "--json", expect=None).stdout)
    assert plans["not_in_file"] == [names["aci"]]
    run = team.run("up", "-f", str(path), "--yes")
    assert "All 3 pools converged." in run.stdout
    assert "not in file: left untouched" in run.stdout
    assert team.work_pool(names["aci"]) is not None
    run = team.run("preview", "-f", str(path), "--json", "--expect-no-changes")
    assert json.loads(run.stdout)["not_in_file"] == [names["aci"]]  # still there, unchanged

    # --prune destroys it, after saying so in the plan.
    run = team.run("up", "-f", str(path), "--prune", "--yes")
    assert "not in file: destroy (--prune)" in run.stdout
    assert f"{names['aci']}: destroyed" in run.stdout
    assert team.work_pool(names["aci"]) is None
    assert names["aci"] not in team.run("list").stdout

    # One pool's provider failure: the others converge, and the exit code says not all did.
    path.write_text(
        pools_file(names, ecs_retention=30, drop="aci").replace(
            'type = "vertex-ai"\nwith-worker = false', 'type = "vertex-ai"\nregistry-writer = true'
        )
    )
    member = "gcp:artifactregistry/repositoryIamMember:RepositoryIamMember"
    fault = f"create:{member}:{names['vertex']}@always"
    run = team.run("up", "-f", str(path), "--yes", expect=1, FAKECLOUD_FAULTS=fault)
    assert "1 of 3 pools did not converge." in run.stdout
    assert f"{names['ecs']}: ready" in run.stdout
    run = team.run("preview", "-f", str(path), "--json", "--expect-no-changes", expect=3)
    plans = json.loads(run.stdout)
    assert [p["pool"] for p in plans["pools"] if _changes(p)] == [names["vertex"]]

    run = team.run("destroy", "-f", str(path), "--yes")
    assert "All 3 pools converged." in run.stdout
    assert not set(names.values()) & set(team.run("list").stdout.split())


def _changes(plan: dict) -> bool:
    c = plan["changes"]
    cloud = c["create"] + c["update"] + c["replace"] + c["delete"]
    return bool(cloud) or any(p["op"] != "same" for p in plan["prefect"])


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ('[pools.a1]\ntype = "k8s"\n', "provision.toml:2: pool 'a1': unknown type 'k8s'"),
        (
            '[pools.a1]\ntype = "ecs"\nregoin = "x"\n',
            "provision.toml:3: pool 'a1': unknown key 'regoin'",
        ),
        (
            '[pools.a1]\ntype = "ecs"\n[pools.a1]\ntype = "ecs"\n',
            "provision.toml:3: duplicate pool 'a1'",
        ),
        ('[pools.a1]\ntype = "ecs\n', "provision.toml:2: invalid TOML"),
        (
            '[pools.a1]\ntype = "cloud-run-v2"\nproject = "Bad_Project"\n',
            "provision.toml:3: pool 'a1': Invalid GCP project id 'Bad_Project'",
        ),
    ],
    ids=["type", "key", "duplicate", "toml", "value"],
)
@pytest.mark.parametrize("command", ["preview", "up", "destroy"])
def test_a_bad_file_is_one_line_exit_2_and_nothing_touched(
    sandbox: Sandbox, tmp_path, text, needle, command
):
    path = tmp_path / "provision.toml"
    path.write_text(text)
    yes = ["--yes"] if command != "preview" else []
    run = sandbox.run(command, "-f", str(path), *yes, expect=2)
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and needle.replace("provision.toml", str(path)) in lines[0], run.stderr
    assert sandbox.cloud.calls() == []
    assert not (tmp_path / "backend" / ".pulumi" / "stacks").exists()
