"""The interactive path: plan panel and confirmation in a real pseudo-terminal, and drift."""

from __future__ import annotations

import json
import os
import pty
import secrets
import select
import subprocess
import time

import pytest

from tests.e2e.conftest import PROVISION, Run, Sandbox

pytestmark = pytest.mark.e2e

UP = ["--type", "cloud-run-v2", "--project", "my-proj-123", "--region", "europe-west1"]


def run_in_terminal(box: Sandbox, args: list[str], answer: str, timeout: float = 240) -> str:
    """Run ``provision ARGS`` on a pty, type ``answer`` at the confirmation, return the screen."""
    leader, follower = pty.openpty()
    proc = subprocess.Popen(
        [PROVISION, *args],
        env={**box.env, "COLUMNS": "120", "TERM": "xterm"},
        stdin=follower,
        stdout=follower,
        stderr=follower,
        close_fds=True,
    )
    os.close(follower)
    screen, answered = b"", False
    deadline = time.time() + timeout
    # poll, not select: a long test process may hold descriptors above select's FD_SETSIZE.
    poller = select.poll()
    poller.register(leader, select.POLLIN)
    try:
        while time.time() < deadline:
            ready = poller.poll(200)
            if ready:
                try:
                    chunk = os.read(leader, 65536)
                except OSError:  # the child closed the terminal
                    break
                if not chunk:
                    break
                screen += chunk
            if not answered and b"these changes to" in screen:
                os.write(leader, answer.encode() + b"\r")
                answered = True
            if proc.poll() is not None and not ready:
                break
        proc.wait(timeout=30)
    finally:
        os.close(leader)
        if proc.poll() is None:
            proc.kill()
    text = screen.decode(errors="replace")
    box.runs.append(Run(args, proc.returncode, text, ""))  # the leak check reads it too
    assert answered, f"no confirmation prompt:\n{text}"
    return text


@pytest.fixture
def pool() -> str:
    return "tty" + secrets.token_hex(3)


def test_declining_the_plan_changes_nothing(sandbox: Sandbox, pool: str):
    screen = run_in_terminal(sandbox, ["up", pool, *UP], "n")
    assert "Permissions granted" in screen and "roles/iam.serviceAccountUser" in screen
    assert "Cancelled: nothing was changed." in screen
    assert sandbox.cloud.resources(cloud="gcp") == []
    assert json.loads(sandbox.run("list", "--json").stdout) == []
    assert sandbox.work_pool(pool) is None


def test_accepting_the_plan_applies_it(sandbox: Sandbox, pool: str):
    screen = run_in_terminal(sandbox, ["up", pool, *UP], "y")
    assert f"Pool '{pool}' is ready" in screen
    assert sandbox.work_pool(pool) is not None
    block = sandbox.block("gcp-credentials", f"{pool}-gcp-credentials")
    sandbox.remember_key(block)
    # destroy asks too, and lists what it deletes.
    screen = run_in_terminal(sandbox, ["destroy", pool], "y")
    assert "- delete" in screen and f"Destroyed '{pool}'" in screen
    assert sandbox.work_pool(pool) is None


def test_preview_refresh_detects_drift(sandbox: Sandbox, pool: str):
    sandbox.run("up", pool, *UP, "--yes")
    sandbox.remember_key(sandbox.block("gcp-credentials", f"{pool}-gcp-credentials"))
    sandbox.run("preview", pool, "--refresh", "--expect-no-changes")
    # Someone edits the repository's labels in the console.
    repo = sandbox.cloud.resources("gcp:artifactregistry/repository:Repository")[0]
    sandbox.cloud.edit(repo["type"], repo["id"], labels={"owner": "someone-else"})
    sandbox.run("preview", pool, "--expect-no-changes")  # without refresh: state unchanged
    run = sandbox.run("preview", pool, "--refresh", "--json", "--expect-no-changes", expect=3)
    changed = [r for r in json.loads(run.stdout)["resources"] if r["op"] != "same"]
    assert [r["type"] for r in changed] == ["gcp:artifactregistry/repository:Repository"]
    sandbox.run("up", pool, "--yes", "--refresh")
    repo = sandbox.cloud.resources("gcp:artifactregistry/repository:Repository")[0]
    assert repo["properties"]["labels"]["managed-by"] == "provision"
    sandbox.run("preview", pool, "--refresh", "--expect-no-changes")


def test_after_a_killed_run_the_plan_shown_already_adopts_what_the_cloud_made(
    sandbox: Sandbox, pool: str
):
    account = "gcp:serviceaccount/account:Account"
    sandbox.kill_while_creating(account, "up", pool, *UP, "--yes", after_write=True)
    made = len(sandbox.cloud.resources(account))
    assert made >= 1

    screen = run_in_terminal(sandbox, ["up", pool], "y")
    plan = screen[: screen.index("these changes to")]
    assert "Adopting" in plan
    # The accounts the killed run made are not planned as creates: only the missing ones are.
    planned = [line for line in plan.splitlines() if account in line and "+ create" in line]
    assert len(planned) == 2 - made
    assert f"Pool '{pool}' is ready" in screen
    sandbox.remember_key(sandbox.block("gcp-credentials", f"{pool}-gcp-credentials"))
    assert len(sandbox.cloud.calls("create", account, phase="begin")) == 2


def home_files(box: Sandbox) -> set[str]:
    """Every file under PROVISION_HOME (none when it does not exist)."""
    return {str(p.relative_to(box.home)) for p in box.home.rglob("*") if p.is_file()}


def test_every_refusal_leaves_provision_home_as_it_was(sandbox: Sandbox, pool: str):
    # A machine that has provisioned before: its home has a backend and a passphrase file.
    sandbox.env.pop("PULUMI_CONFIG_PASSPHRASE")
    sandbox.env["PULUMI_BACKEND_URL"] = (sandbox.home / "state").as_uri()
    other = pool + "x"
    sandbox.run("up", other, *UP, "--yes")
    sandbox.remember_key(sandbox.block("gcp-credentials", f"{other}-gcp-credentials"))
    before = home_files(sandbox)
    assert "passphrase" in before

    # Bad input, exit 2.
    sandbox.run("up", pool, *UP[:2], "--project", "Not A Project!", "--yes", expect=2)
    assert home_files(sandbox) == before
    # An unreachable Prefect, exit 1.
    sandbox.run("up", pool, *UP, "--yes", expect=1, PREFECT_API_URL="http://127.0.0.1:9/api")
    assert home_files(sandbox) == before
    # A declined confirmation, for a new pool and for an existing one.
    run_in_terminal(sandbox, ["up", pool, *UP], "n")
    assert home_files(sandbox) == before
    run_in_terminal(sandbox, ["up", other, "--registry-writer"], "n")
    assert home_files(sandbox) == before
    # A preview of a new pool writes nothing either, here or in the backend.
    sandbox.run("preview", pool, *UP)
    assert home_files(sandbox) == before
    assert [r["name"] for r in json.loads(sandbox.run("list", "--json").stdout)] == [other]


def test_a_fresh_machine_that_refuses_keeps_no_home(sandbox: Sandbox, pool: str):
    sandbox.run("up", pool, *UP, "--yes")
    sandbox.remember_key(sandbox.block("gcp-credentials", f"{pool}-gcp-credentials"))
    bob = sandbox.machine("bob")
    run_in_terminal(bob, ["destroy", pool], "n")
    run_in_terminal(bob, ["up", pool], "n")
    bob.run("preview", pool, "--expect-no-changes")
    assert not bob.home.exists()
