"""Rotating an ECS pool's access key end to end (issue 13, points 1 to 3).

`provision rotate`, `preview --rotate`, `--rotate-after` and every interrupted rotation, through
the `provision` CLI, the real pulumi engine, the fake aws provider on moto and the session's
Prefect server. What IAM holds is asserted with boto3 against the test's own account.

A rotation replaces the key create-before-delete: the new key is made, the Prefect block
rewritten with it, then the old key deleted. IAM allows two keys per user (a third is
`LimitExceeded: Cannot exceed quota for AccessKeysPerUser: 2`, which moto enforces), so every
test also checks that no create ever hit that limit.

The sandbox is signed in as an IAM user of the test's account (`operator`): the tool's own IAM
calls (deleting a key a killed run left untracked) reach moto's account like the provider's.
"""

from __future__ import annotations

import json
import signal
import time
from datetime import datetime, timedelta
from typing import Any

import pytest

from tests.e2e import test_aws as keyed
from tests.e2e.conftest import Run, Sandbox, wait_for
from tests.e2e.test_aws import KEY, UP, Aws, block
from tests.fakecloud.moto_server import access_keys

pytestmark = pytest.mark.e2e

# The ECS tests' fixtures: the session's moto server, a fresh account (signed in to by
# `operator`), a pool name of its own.
moto = keyed.moto
aws = keyed.aws
pool = keyed.pool
operator = keyed.operator


def rotate(box: Sandbox, pool: str, **env: str) -> Run:
    """``provision rotate POOL --yes``: expected to succeed."""
    return box.run("rotate", pool, "--yes", **env)


def live(aws: Aws, pool: str) -> list[str]:
    """The worker user's access keys in IAM, oldest first."""
    return [k["AccessKeyId"] for k in access_keys(aws.endpoint, aws.account, f"{pool}-ecs-worker")]


def held(box: Sandbox, pool: str) -> tuple[str, str]:
    """The access key id and secret the pool's block holds (the secret joins the leak scan)."""
    data = block(box, pool)["data"]
    return data["aws_access_key_id"], data["aws_secret_access_key"]


def begun(box: Sandbox, op: str) -> int:
    """How many ``op`` calls on an access key the fake cloud has begun, over all runs."""
    return len(box.cloud.calls(op, KEY, phase="begin"))


def limit_hits(box: Sandbox) -> list[dict[str, Any]]:
    """Key creates IAM refused for its two-keys-per-user limit."""
    return [
        c for c in box.cloud.calls("create", KEY) if "AccessKeysPerUser" in (c.get("error") or "")
    ]


def state_keys(box: Sandbox, pool: str) -> list[tuple[str, bool]]:
    """(id, pending deletion) of each access key the pool's stack records."""
    path = box.root / "backend" / ".pulumi" / "stacks" / "provision" / f"{pool}.json"
    deployment = json.loads(path.read_text())["checkpoint"]["latest"]
    return [(r["id"], bool(r.get("delete"))) for r in deployment["resources"] if r["type"] == KEY]


def provisioned(box: Sandbox, aws: Aws, pool: str, *extra: str) -> tuple[str, str]:
    """An ECS pool with its one key; returns the key id and secret its block holds."""
    box.run("up", pool, *UP, *extra, "--yes")
    key = held(box, pool)
    assert live(aws, pool) == [key[0]]
    return key


def assert_converged(box: Sandbox, aws: Aws, pool: str, old: str) -> str:
    """Exactly one live key, a new one, and the block holds it; IAM's limit was never hit;
    the state holds that key alone; a rerun changes nothing. Returns the key's id."""
    (key,) = live(aws, pool)
    assert key != old
    assert held(box, pool)[0] == key
    assert limit_hits(box) == []
    assert state_keys(box, pool) == [(key, False)]
    shown = json.loads(box.run("show", pool, "--json").stdout)
    assert shown["outputs"]["access_key_id"] == key
    run = box.run("up", pool, "--yes")
    assert "0 created, 0 updated, 0 replaced, 0 deleted" in run.stdout
    box.run("preview", pool, "--expect-no-changes")
    assert live(aws, pool) == [key]
    return key


def kill_during(box: Sandbox, aws: Aws, pool: str, op: str, *, after_write: bool) -> Run:
    """``provision rotate POOL --yes``, SIGKILLed while the fake cloud runs the rotation's
    ``op`` (``create``: the new key; ``delete``: the old one): before IAM's write, or after it
    (seen in IAM) and before the engine hears back."""
    before, keys = begun(box, op), live(aws, pool)
    delay = f"FAKECLOUD_DELAY_{'AFTER_' if after_write else ''}MS_{op.upper()}"
    proc = box.start("rotate", pool, "--yes", **{delay: "1500"})
    wait_for(lambda: begun(box, op) > before, timeout=180)
    if after_write:  # IAM has the new key, or no longer the old one
        wait_for(
            lambda: (
                len(live(aws, pool)) > len(keys)
                if op == "create"
                else not set(keys) & set(live(aws, pool))
            ),
            timeout=30,
        )
    run = box.kill(proc, ["rotate", pool, "--yes"])
    assert run.code == -signal.SIGKILL, run.output
    return run


# ------------------------------------------------------------------------------- rotate


def test_rotate_puts_a_new_key_in_the_block_then_deletes_the_old_one(
    sandbox: Sandbox, aws: Aws, pool: str, operator: str
):
    old_id, old_secret = provisioned(sandbox, aws, pool)
    block_id = block(sandbox, pool)["id"]
    work_pool = sandbox.work_pool(pool)

    run = rotate(sandbox, pool)

    assert "Credential rotated (rotation 1: asked for (provision rotate))" in run.stdout
    new_id, new_secret = held(sandbox, pool)
    assert (new_id, new_secret) != (old_id, old_secret) and new_secret != old_secret
    assert live(aws, pool) == [new_id]  # the old key is gone from IAM
    # The engine's order: the new key, then the block (updated in place), then the old key.
    lines = run.stdout.splitlines()
    order = [
        next(i for i, line in enumerate(lines) if line.startswith(f"   done {step}"))
        for step in (
            f"+- create-replacement {KEY}",
            "~ update pulumi-python:dynamic/prefect:Block",
            f"+- delete-replaced {KEY}",
        )
    ]
    assert order == sorted(order)
    assert "0 created, 0 updated, 1 replaced, 0 deleted" in run.stdout
    assert block(sandbox, pool)["id"] == block_id
    assert sandbox.work_pool(pool)["base_job_template"] == work_pool["base_job_template"]
    record = json.loads(sandbox.run("show", pool, "--json").stdout)
    assert record["credential"]["age_days"] == 0
    assert_converged(sandbox, aws, pool, old_id)

    # Each rotate is a new key.
    rotate(sandbox, pool)
    assert live(aws, pool) == [held(sandbox, pool)[0]] != [new_id]
    assert limit_hits(sandbox) == []


def test_preview_rotate_shows_the_replacement_and_changes_nothing(
    sandbox: Sandbox, aws: Aws, pool: str, operator: str
):
    old_id, _ = provisioned(sandbox, aws, pool)

    for _ in range(2):  # a preview records nothing: the second one plans rotation 1 again
        plan = json.loads(sandbox.run("preview", pool, "--rotate", "--json").stdout)
        assert plan["rotation"]["reason"] == "asked for (provision rotate)"
        assert plan["rotation"]["rotation"] == 1
        assert plan["rotation"]["created_at"].startswith(str(datetime.now().year))
        changed = [(r["type"], r["op"]) for r in plan["resources"] if r["op"] != "same"]
        assert changed == [(KEY, "replace")]
        assert plan["changes"]["replace"] == 1 and plan["changes"]["delete"] == 0
        block_plan, pool_plan = plan["prefect"]
        assert (block_plan["kind"], block_plan["op"]) == ("block", "update")
        # Its template defaults are computed over the stack's outputs, which the replacement
        # makes unknown until up: the preview cannot say "same" (up leaves it as it is).
        assert (pool_plan["kind"], pool_plan["op"]) in (
            ("work_pool", "same"),
            ("work_pool", "update"),
        )
        assert plan["credential"]["long_lived"] is True
        assert plan["credential"]["identity"] == f"IAM user {pool}-ecs-worker"

    run = sandbox.run("preview", pool, "--rotate", "--expect-no-changes", expect=3)
    assert "rotation 1" in run.stdout
    assert live(aws, pool) == [old_id] and held(sandbox, pool)[0] == old_id
    sandbox.run("preview", pool, "--expect-no-changes")  # nothing was recorded


def test_rotate_after_rotates_on_up_once_due_and_list_and_show_report_the_age(
    sandbox: Sandbox, aws: Aws, pool: str, operator: str
):
    old_id, _ = provisioned(sandbox, aws, pool, "--rotate-after", "30")
    shown = json.loads(sandbox.run("show", pool, "--json").stdout)
    created = datetime.fromisoformat(shown["credential"]["created_at"])
    assert shown["outputs"]["credential_created_at"].endswith("Z")  # IAM's CreateDate
    assert (shown["credential"]["age_days"], shown["credential"]["due"]) == (0, None)
    assert shown["credential"]["expires_at"] is None  # an access key never expires

    # 29 days on: not due yet.
    soon = (created + timedelta(days=29)).isoformat()
    sandbox.run("preview", pool, "--expect-no-changes", PROVISION_NOW=soon)

    # 31 days on: due. preview --expect-no-changes says so (a CI drift job fails), and list.
    later = (created + timedelta(days=31)).isoformat()
    run = sandbox.run(
        "preview", pool, "--json", "--expect-no-changes", expect=3, PROVISION_NOW=later
    )
    plan = json.loads(run.stdout)
    assert plan["rotation"]["reason"] == "older than --rotate-after 30 days (31 days old)"
    assert [(r["type"], r["op"]) for r in plan["resources"] if r["op"] != "same"] == [
        (KEY, "replace")
    ]
    (row,) = [r for r in json.loads(sandbox.run("list", "--json", PROVISION_NOW=later).stdout)]
    assert row["name"] == pool and row["credential"]["age_days"] == 31
    assert row["credential"]["due"] == "older than --rotate-after 30 days (31 days old)"
    listed = sandbox.run("list", PROVISION_NOW=later).output
    assert f"Warning: pool '{pool}': its credential is due for rotation (older than" in listed

    # Any up rotates it; its rerun, at the same time, does not rotate again.
    run = sandbox.run("up", pool, "--yes", PROVISION_NOW=later)
    assert "rotation 1: older than --rotate-after 30 days" in run.stdout
    new_id = assert_converged(sandbox, aws, pool, old_id)
    sandbox.run("preview", pool, "--expect-no-changes", PROVISION_NOW=later)
    (row,) = json.loads(sandbox.run("list", "--json", PROVISION_NOW=later).stdout)
    assert row["credential"]["due"] is None
    assert live(aws, pool) == [new_id]


def test_a_pool_made_before_rotation_records_its_trigger_on_up_then_rotates(
    sandbox: Sandbox, aws: Aws, pool: str, operator: str
):
    # Its key has no replacement trigger in the state: the engine replaces a resource only
    # when both the recorded and the new trigger are set, so a rotation now would keep the key.
    old_id, _ = provisioned(sandbox, aws, pool)
    path = sandbox.root / "backend" / ".pulumi" / "stacks" / "provision" / f"{pool}.json"
    checkpoint = json.loads(path.read_text())
    for resource in checkpoint["checkpoint"]["latest"]["resources"]:
        resource.pop("replacementTrigger", None)
    path.write_text(json.dumps(checkpoint))
    calls = len(sandbox.cloud.calls(phase=None, include_preview=True))

    run = sandbox.run("rotate", pool, "--yes", expect=2)
    assert f"run `provision up {pool}` once" in run.stderr
    assert len(sandbox.cloud.calls(phase=None, include_preview=True)) == calls

    run = sandbox.run("up", pool, "--yes")  # records "0" on the key, in a same step
    assert "0 created, 0 updated, 0 replaced, 0 deleted" in run.stdout
    assert live(aws, pool) == [old_id]
    rotate(sandbox, pool)
    assert_converged(sandbox, aws, pool, old_id)


def test_rotating_a_keyless_pool_says_there_is_nothing_to_rotate(
    sandbox: Sandbox, aws: Aws, pool: str, operator: str
):
    sandbox.run("up", pool, *UP, "--with-worker", "--yes")
    calls = len(sandbox.cloud.calls(phase=None, include_preview=True))

    run = sandbox.run("rotate", pool, "--yes")

    assert f"Nothing to rotate in pool '{pool}'" in run.output
    assert "task role" in run.output
    assert len(sandbox.cloud.calls(phase=None, include_preview=True)) == calls
    assert live(aws, pool) == []
    rotate_after = sandbox.run("up", pool, "--rotate-after", "30", "--yes", expect=2)
    assert "--with-worker makes none" in rotate_after.stderr


# ------------------------------------------------------------- interrupted rotations


@pytest.mark.parametrize("after_write", [False, True], ids=["before-iam-write", "after-iam-write"])
def test_sigkill_while_the_new_key_is_made_converges_on_rerun(
    sandbox: Sandbox, aws: Aws, pool: str, operator: str, after_write: bool
):
    old_id, _ = provisioned(sandbox, aws, pool)
    kill_during(sandbox, aws, pool, "create", after_write=after_write)
    orphans = [k for k in live(aws, pool) if k != old_id]
    assert len(orphans) == (1 if after_write else 0)
    assert held(sandbox, pool)[0] == old_id  # the block was never touched

    run = rotate(sandbox, pool)

    if after_write:
        # Its secret was only in IAM's answer, which the killed run never got: the rerun
        # deletes it first, so its own new key is the user's second, not a third.
        assert f"Deleted access key {orphans[0]} of IAM user {pool}-ecs-worker" in run.stdout
    else:
        assert "Deleted access key" not in run.stdout
        assert f"access key of IAM user {pool}-ecs-worker: IAM has none" in run.stdout
    new_id = assert_converged(sandbox, aws, pool, old_id)
    assert new_id not in orphans


def test_sigkill_after_the_new_key_before_the_block_is_rewritten_converges_on_rerun(
    sandbox: Sandbox, aws: Aws, pool: str, operator: str, prefect_server
):
    old_id, _ = provisioned(sandbox, aws, pool)
    made = begun(sandbox, "create")
    proc = sandbox.start("rotate", pool, "--yes", FAKECLOUD_DELAY_MS_CREATE="300")
    try:
        wait_for(lambda: begun(sandbox, "create") > made, timeout=180)
        # Prefect frozen: the block's update goes out and is never answered.
        prefect_server.freeze()
        wait_for(lambda: len(sandbox.cloud.calls("create", KEY)) > made, timeout=60)
        time.sleep(1)  # the engine records the new key and starts the block's update
        run = sandbox.kill(proc, ["rotate", pool, "--yes"])
        assert run.code == -signal.SIGKILL
    finally:
        prefect_server.kill()  # the request it held is dropped, never applied
        prefect_server.start()
    (new_id,) = [k for k in live(aws, pool) if k != old_id]
    # The new key is recorded, the old one pending deletion, and the block still has the old.
    wait_for(lambda: sorted(state_keys(sandbox, pool)) == sorted([(new_id, False), (old_id, True)]))
    assert held(sandbox, pool)[0] == old_id

    run = rotate(sandbox, pool)

    # The interrupted rotation is finished, not another one started: a new key now would be
    # the user's third while the block still holds the first.
    assert "Credential rotated (rotation 1: finishing rotation 1" in run.stdout
    assert begun(sandbox, "create") == made + 1
    assert assert_converged(sandbox, aws, pool, old_id) == new_id


def test_prefect_down_between_the_new_key_and_the_block_converges_on_rerun(
    sandbox: Sandbox, aws: Aws, pool: str, operator: str, prefect_server
):
    old_id, _ = provisioned(sandbox, aws, pool)
    made = begun(sandbox, "create")
    proc = sandbox.start("rotate", pool, "--yes", FAKECLOUD_DELAY_MS_CREATE="300")
    try:
        wait_for(lambda: begun(sandbox, "create") > made, timeout=180)
        prefect_server.stop()
        run = sandbox.finish(proc, ["rotate", pool, "--yes"])
    finally:
        prefect_server.start()
    assert run.code == 1
    assert "Prefect could not be updated" in run.stderr
    assert len(run.stderr.strip().splitlines()) == 1, run.stderr
    (new_id,) = [k for k in live(aws, pool) if k != old_id]
    assert held(sandbox, pool)[0] == old_id  # the old key still works: nothing broke

    run = rotate(sandbox, pool)

    assert "finishing rotation 1" in run.stdout
    assert begun(sandbox, "create") == made + 1
    assert assert_converged(sandbox, aws, pool, old_id) == new_id


@pytest.mark.parametrize("after_write", [False, True], ids=["before-iam-write", "after-iam-write"])
def test_sigkill_while_the_old_key_is_deleted_converges_on_rerun(
    sandbox: Sandbox, aws: Aws, pool: str, operator: str, after_write: bool
):
    old_id, _ = provisioned(sandbox, aws, pool)
    kill_during(sandbox, aws, pool, "delete", after_write=after_write)
    new_id = held(sandbox, pool)[0]  # the block was rewritten before the delete began
    assert new_id != old_id
    assert live(aws, pool) == ([new_id] if after_write else [old_id, new_id])

    run = rotate(sandbox, pool)

    assert "finishing rotation 1" in run.stdout
    assert assert_converged(sandbox, aws, pool, old_id) == new_id
