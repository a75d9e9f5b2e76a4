"""The fakes under the real pulumi engine (CLI built by scripts/build-pulumi-cli).

These tests fail, never skip, when the CLI is missing: a skipped engine suite
looks green while proving nothing.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pulumi
import pulumi_gcp as gcp
import pytest
from pulumi import automation as auto

from tests.fakecloud import gcp as fake
from tests.fakecloud.harness import (
    engine_env,
    inline_stack,
    require_pulumi_root,
    wait_for_call,
)
from tests.fakecloud.state import FakeCloud

pytestmark = pytest.mark.e2e

PROJECT = "fake-project"
CONFIG = {"gcp:project": PROJECT, "gcp:region": "us-central1"}


def test_missing_cli_fails_with_the_build_hint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PROVISION_PULUMI_ROOT", str(tmp_path))
    with pytest.raises(pytest.fail.Exception, match="run scripts/build-pulumi-cli"):
        require_pulumi_root()


def test_smoke_up_rerun_destroy(tmp_path: Path) -> None:
    """One account: created by up, untouched by a second up, gone after destroy."""
    require_pulumi_root()
    env = engine_env(tmp_path)
    cloud = FakeCloud(env["FAKECLOUD_STATE_DIR"])

    def program() -> None:
        account = gcp.serviceaccount.Account(
            "runner", account_id="smoke-runner", display_name="Smoke"
        )
        pulumi.export("email", account.email)
        pulumi.export("number", gcp.organizations.get_project().number)

    stack = inline_stack(tmp_path, env, program, config=CONFIG)

    first = stack.up()
    assert first.summary.resource_changes == {"create": 2}
    email = f"smoke-runner@{PROJECT}.iam.gserviceaccount.com"
    assert first.outputs["email"].value == email
    assert first.outputs["number"].value == fake.project_number(PROJECT)
    (record,) = cloud.resources(fake.ACCOUNT)
    assert record["properties"]["email"] == email and record["name"] == "runner"
    called = {c["op"] for c in cloud.calls()}
    assert {"check_config", "configure", "invoke", "check", "create"} <= called

    seen = len(cloud.calls(phase=None, include_preview=True))
    second = stack.up()
    assert second.summary.resource_changes == {"same": 2}
    rerun = cloud.calls(phase=None, include_preview=True)[seen:]
    assert [c for c in rerun if c["op"] in ("create", "update", "delete")] == []
    assert [c["changes"] for c in rerun if c["op"] == "diff"] == [False]

    stack.destroy()
    assert cloud.resources() == []


def test_every_gcp_type_through_preview_rerun_refresh_update_destroy(tmp_path: Path) -> None:
    """The gotchas: preview unknowns, no-change reruns with defaults and secrets, drift."""
    require_pulumi_root()
    env = engine_env(tmp_path)
    cloud = FakeCloud(env["FAKECLOUD_STATE_DIR"])
    display = {"name": "Pool runner"}

    def program() -> None:
        api = gcp.projects.Service("iam", service="iam.googleapis.com", disable_on_destroy=True)
        account = gcp.serviceaccount.Account(
            "runner",
            account_id="pool-runner",
            display_name=display["name"],
            description=pulumi.Output.secret("secret description"),
            opts=pulumi.ResourceOptions(depends_on=[api]),
        )
        key = gcp.serviceaccount.Key("key", service_account_id=account.name)
        role = gcp.projects.IAMCustomRole(
            "role", role_id="poolRole", title="Pool", permissions=["run.jobs.run", "a.b.c"]
        )
        gcp.projects.IAMMember("grant", project=PROJECT, role=role.name, member=account.member)
        gcp.serviceaccount.IAMMember(
            "actas",
            service_account_id=account.name,
            role="roles/iam.serviceAccountUser",
            member=account.member,
        )
        repo = gcp.artifactregistry.Repository(
            "repo", repository_id="pool-images", format="DOCKER", labels={"team": "data"}
        )
        gcp.artifactregistry.RepositoryIamMember(
            "pull",
            repository=repo.name,
            location=repo.location,
            role="roles/artifactregistry.reader",
            member=account.member,
        )
        pulumi.export("key", key.private_key)
        pulumi.export("repo", repo.name)
        pulumi.export("zone", gcp.organizations.get_client_config().region)

    stack = inline_stack(tmp_path, env, program, config=CONFIG)

    preview = stack.preview()
    assert preview.change_summary == {"create": 9}
    assert cloud.resources() == [] and cloud.calls("create") == []
    assert len(cloud.calls("create", include_preview=True)) == 8

    up = stack.up()
    assert up.summary.resource_changes == {"create": 9}
    assert up.outputs["key"].secret and up.outputs["repo"].value == "pool-images"
    assert cloud.count() == 8  # the stack itself is not a cloud object

    assert stack.up().summary.resource_changes == {"same": 9}

    account = cloud.find(fake.ACCOUNT)[0]
    cloud.edit(fake.ACCOUNT, account["id"], displayName="Changed in the console")
    refresh = stack.refresh()
    assert refresh.summary.resource_changes == {"same": 8, "update": 1}
    fixed = stack.up()
    assert fixed.summary.resource_changes == {"same": 8, "update": 1}
    assert cloud.get(fake.ACCOUNT, account["id"])["properties"]["displayName"] == "Pool runner"

    display["name"] = "Renamed"
    assert stack.up().summary.resource_changes == {"same": 8, "update": 1}

    stack.destroy()
    left = {(r["type"], r["deleted"]) for r in cloud.resources(include_deleted=True)}
    assert left == {(fake.SERVICE, True), (fake.CUSTOM_ROLE, True)}, "disabled API, role tombstone"


def test_provider_errors_reach_the_automation_api_verbatim(tmp_path: Path) -> None:
    """A once-fault fails the first up with the fake's text; the rerun converges."""
    require_pulumi_root()
    fault = f"create:{fake.ACCOUNT}@once"
    env = engine_env(tmp_path, faults=fault)
    cloud = FakeCloud(env["FAKECLOUD_STATE_DIR"])

    def program() -> None:
        gcp.serviceaccount.Account("runner", account_id="pool-runner")

    stack = inline_stack(tmp_path, env, program, config=CONFIG)
    with pytest.raises(auto.CommandError) as info:
        stack.up()
    message = str(info.value)
    assert (
        "error: Error creating service account 'runner': googleapi: Error 503: The service is "
        f"currently unavailable., backendError (injected by FAKECLOUD_FAULTS: {fault})"
    ) in message
    assert "Traceback" not in message and "Unexpected <class" not in message
    assert cloud.resources() == []

    assert stack.up().summary.resource_changes == {"create": 1, "same": 1}
    assert cloud.count(fake.ACCOUNT) == 1


def _providers_serving(state_dir: str) -> list[int]:
    """Pids of fake provider processes whose FAKECLOUD_STATE_DIR is ``state_dir``."""
    pids = []
    for proc in Path("/proc").iterdir():
        try:
            cmdline = (proc / "cmdline").read_bytes()
            environ = (proc / "environ").read_bytes().split(b"\0")
        except (OSError, ValueError):  # not a pid, gone meanwhile, or not ours to read
            continue
        if (
            b"tests.fakecloud." in cmdline
            and f"FAKECLOUD_STATE_DIR={state_dir}".encode() in environ
        ):
            pids.append(int(proc.name))
    return pids


_UP_IN_CHILD = """
import json, sys
import pulumi_gcp as gcp
from tests.fakecloud.harness import inline_stack
workdir, env, config = sys.argv[1], json.loads(sys.argv[2]), json.loads(sys.argv[3])
def program():
    gcp.serviceaccount.Account("runner", account_id="pool-runner")
inline_stack(workdir, env, program, config=config).up()
"""


@pytest.mark.parametrize(
    ("delay", "orphaned"),
    [("FAKECLOUD_DELAY_MS_CREATE", False), ("FAKECLOUD_DELAY_AFTER_MS_CREATE", True)],
)
def test_sigkill_during_a_create(tmp_path: Path, delay: str, orphaned: bool) -> None:
    """Kill ``up`` mid-create: before the cloud write nothing exists; after it, an orphan.

    Also what recovery then meets: a stale lock, then a rerun that only warns about
    the pending CREATE and creates again, which for the orphan is GCP's 409.
    """
    require_pulumi_root()
    env = engine_env(tmp_path, extra={delay: "1500"})
    cloud = FakeCloud(env["FAKECLOUD_STATE_DIR"])
    child = subprocess.Popen(
        [sys.executable, "-c", _UP_IN_CHILD, str(tmp_path), json.dumps(env), json.dumps(CONFIG)],
        cwd=Path(__file__).resolve().parents[2],
        start_new_session=True,  # the CLI and the program die with the group
    )
    try:
        wait_for_call(env["FAKECLOUD_STATE_DIR"], "create", fake.ACCOUNT, timeout=120)
        time.sleep(0.3)
        assert _providers_serving(env["FAKECLOUD_STATE_DIR"]), "the create is in flight"
    finally:
        os.killpg(child.pid, signal.SIGKILL)
        child.wait()
    time.sleep(2.0)  # past the 1.5 s delay: a surviving provider would have written by now

    assert cloud.count(fake.ACCOUNT) == (1 if orphaned else 0)
    assert cloud.calls("create") == [], "the engine never heard back"
    assert _providers_serving(env["FAKECLOUD_STATE_DIR"]) == [], "plugins died with the engine"

    locks = list(Path(env["PULUMI_BACKEND_URL"][len("file://") :]).rglob("locks/**/*.json"))
    assert len(locks) == 1, "a killed update leaves its lock"
    locks[0].unlink()
    calm = {k: v for k, v in env.items() if not k.startswith("FAKECLOUD_DELAY")}

    def program() -> None:
        gcp.serviceaccount.Account("runner", account_id="pool-runner")

    stack = inline_stack(tmp_path, calm, program, config=CONFIG)
    output: list[str] = []
    if orphaned:  # the engine only warns about the pending CREATE and creates again
        with pytest.raises(auto.CommandError, match="Error 409: Service account pool-runner"):
            stack.up(on_output=output.append)
    else:
        assert stack.up(on_output=output.append).summary.resource_changes == {
            "create": 1,
            "same": 1,
        }
    assert any("1 pending operations from previous deployment" in line for line in output)


def test_a_plugin_closed_by_the_engine_exits_at_once_and_quietly(tmp_path: Path) -> None:
    """The engine closes a plugin with SIGINT to its process group and waits for it to exit
    before finishing the command: the fake must go as a Go provider does, not after tearing
    down its interpreter with tracebacks about a closed event loop."""
    env = {**engine_env(tmp_path), "FAKECLOUD_PYTHON": sys.executable}
    plugin = Path(__file__).resolve().parent / "bin" / "pulumi-resource-gcp"
    proc = subprocess.Popen(
        [str(plugin), "127.0.0.1:1"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own group, as the engine starts plugins
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip().isdigit()  # its port
        os.killpg(proc.pid, signal.SIGINT)
        _, stderr = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    # Exit 0 with nothing on stderr: the handler's exit, before any teardown could print
    # (the time it saves is bench/engine.py's to measure).
    assert proc.returncode == 0
    assert stderr == ""
