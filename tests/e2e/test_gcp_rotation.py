"""GCP key rotation end to end: `provision rotate`, `--rotate-after`, renewal before a key-expiry
policy ends a key, and every interruption of a rotation converging on rerun.

`provision` CLI → real pulumi engine → fake GCP (whose clock moves with `FAKECLOUD_NOW`) → real
Prefect server; the fake IAM keys API (`tests/fakecloud/gcp_iam.py`) answers the tool's own
clean-up of a key an interrupted run left untracked, and signs in only with live keys, so a test
can tell a block's key that works from a dead one. Every test ends with exactly one live key on
the pool's worker account, and it is the one in the Prefect block.
"""

from __future__ import annotations

import json
import secrets
import signal
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from provision.targets import gcp_keys
from tests.e2e.conftest import Sandbox, wait_for
from tests.fakecloud.gcp import key_of_block, keys_of
from tests.fakecloud.gcp_base import KEY
from tests.fakecloud.gcp_iam import FakeIam

pytestmark = pytest.mark.e2e

PROJECT = "my-proj-123"
UP = ["--type", "cloud-run-v2", "--project", PROJECT, "--region", "europe-west1"]
BLOCK_TYPE = "gcp-credentials"


@pytest.fixture
def iam(sandbox: Sandbox) -> Iterator[FakeIam]:
    """IAM's keys API, served by the fake from the sandbox's cloud."""
    server = FakeIam(sandbox.env["FAKECLOUD_STATE_DIR"], token="ya29." + secrets.token_urlsafe(24))
    yield server.start()
    server.stop()


@pytest.fixture
def box(sandbox: Sandbox, iam: FakeIam) -> Sandbox:
    """The sandbox signed in to the fake IAM with an access token (`GOOGLE_OAUTH_ACCESS_TOKEN`,
    as pulumi-gcp takes one), which the leak scan then looks for too."""
    sandbox.env.update(iam.env())
    sandbox.secrets.add(iam.token)
    return sandbox


@pytest.fixture
def pool() -> str:
    return "rot" + secrets.token_hex(3)


def worker(pool: str) -> str:
    return f"{pool}-worker@{PROJECT}.iam.gserviceaccount.com"


def block(box: Sandbox, pool: str) -> dict[str, Any]:
    """The pool's block, its private key added to the secrets checked for leaks."""
    found = box.block(BLOCK_TYPE, f"{pool}-{BLOCK_TYPE}")
    assert found is not None
    box.remember_key(found)
    return found


def key_file(found: dict[str, Any]) -> dict[str, Any]:
    return found["data"]["service_account_info"]


def live(box: Sandbox, pool: str) -> list[dict[str, Any]]:
    """The user-managed keys IAM holds for the pool's worker account, oldest first."""
    return keys_of(box.cloud, worker(pool))


def signs_in(iam: FakeIam, found: dict[str, Any]) -> bool:
    """Whether the block's key file still gets an access token (a deleted key does not)."""
    info = iam.signing_in(key_file(found))
    try:
        gcp_keys.access_token({"GOOGLE_CREDENTIALS": json.dumps(info)})
    except gcp_keys.KeysError:
        return False
    return True


def assert_one_live_key_and_it_is_the_blocks(
    box: Sandbox, iam: FakeIam, pool: str
) -> dict[str, Any]:
    """Exactly one live key on the worker account, the one the Prefect block holds (and it
    signs in); the pool then previews clean. Returns that key's record."""
    (only,) = live(box, pool)
    found = block(box, pool)
    held = key_of_block(box.cloud, key_file(found))
    assert held is not None and held["id"] == only["id"], "the block holds a dead key"
    assert signs_in(iam, found)
    box.run("preview", pool, "--expect-no-changes")
    return only


def assert_the_block_took_the_new_key_before_any_was_deleted(
    box: Sandbox, pool: str, since: float
) -> None:
    """Every key deleted since ``since`` went after the block's last rewrite: a rerun that
    finishes a rotation whose block still held the old key never deletes it first."""
    updated = timestamp(block(box, pool)["updated"])
    deleted = [c["ts"] for c in box.cloud.calls("delete", KEY, phase="begin") if c["ts"] > since]
    assert deleted and all(ts > updated for ts in deleted)


def at(days: float) -> dict[str, str]:
    """The tool's and GCP's clock ``days`` from now (``PROVISION_NOW``, ``FAKECLOUD_NOW``)."""
    moment = (datetime.now(UTC) + timedelta(days=days)).isoformat(timespec="seconds")
    return {"PROVISION_NOW": moment, "FAKECLOUD_NOW": moment}


def iso(rfc3339: str) -> str:
    """A key's ``validAfter`` as the service reports dates (``+00:00``)."""
    return rfc3339.replace("Z", "+00:00")


def provisioned(box: Sandbox, pool: str, *extra: str) -> None:
    """``up`` the pool, then start the cloud's call log afresh: the conftest helpers that wait
    for a call then wait for the rotation's own, not for those of this first ``up``."""
    box.run("up", pool, *UP, *extra, "--yes")
    (Path(box.env["FAKECLOUD_STATE_DIR"]) / "calls.jsonl").unlink()


def kill_once_iam_holds_the_new_key(box: Sandbox, pool: str, *args: str) -> None:
    """SIGKILL ``provision ARGS`` once IAM holds a new key of the pool's account, while the
    engine still waits for IAM's answer (held back 3 s): the key exists, no state knows it.

    ``kill_while_creating(..., after_write=True)`` kills on the create's first log line; the
    fake generates the RSA key between that line and its write, so that kill may land first.
    """
    before = len(live(box, pool))
    proc = box.start(*args, FAKECLOUD_DELAY_AFTER_MS_CREATE="3000")
    try:
        wait_for(lambda: len(live(box, pool)) > before, timeout=180)
    finally:
        run = box.kill(proc, list(args))
    assert run.code == -signal.SIGKILL, run.output


def rotate(box: Sandbox, pool: str, expect: int | None = 0, **env: str):
    return box.run("rotate", pool, "--yes", expect=expect, **env)


def timestamp(iso_time: str) -> float:
    return datetime.fromisoformat(iso_time.replace("Z", "+00:00")).timestamp()


# -- rotate ------------------------------------------------------------------------------


def test_rotate_writes_the_new_key_to_the_block_before_the_old_one_goes(
    box: Sandbox, iam: FakeIam, pool
):
    box.run("up", pool, *UP, "--yes")
    old_block = block(box, pool)
    work_pool = box.work_pool(pool)
    (old,) = live(box, pool)

    # The plan first: the key replaced, the block updated, and nothing done.
    plan = json.loads(box.run("preview", pool, "--rotate", "--json").stdout)
    changed = [(r["type"], r["op"]) for r in plan["resources"] if r["op"] != "same"]
    assert changed == [(KEY, "replace")]
    assert plan["changes"]["replace"] == 1 and plan["changes"]["create"] == 0
    block_plan = plan["prefect"][0]
    assert (block_plan["kind"], block_plan["op"]) == ("block", "update")
    rotation = plan["rotation"]
    assert (rotation["reason"], rotation["rotation"]) == ("asked for (provision rotate)", 1)
    assert rotation["created_at"] == iso(old["properties"]["validAfter"])
    assert rotation["expires_at"] is None, "GCP's keys do not expire by default"
    credential = plan["credential"]
    assert (credential["kind"], credential["long_lived"]) == ("service-account key", True)
    box.run("preview", pool, "--expect-no-changes")  # the preview rotated nothing

    run = rotate(box, pool)
    assert "0 created, 0 updated, 1 replaced, 0 deleted" in run.stdout
    assert "Credential rotated (rotation 1" in run.stdout

    new_block = block(box, pool)
    assert new_block["id"] == old_block["id"], "the same block, updated in place"
    assert box.work_pool(pool)["base_job_template"] == work_pool["base_job_template"]
    assert key_file(new_block)["private_key_id"] != key_file(old_block)["private_key_id"]
    new = assert_one_live_key_and_it_is_the_blocks(box, iam, pool)
    assert new["id"] != old["id"] and box.cloud.get(KEY, old["id"]) is None
    assert not signs_in(iam, old_block), "the old key is dead"
    # Create-before-delete, with the block rewritten in between: it never held a dead key.
    (created,) = [c for c in box.cloud.calls("create", KEY) if c["id"] == new["id"]]
    (deleted,) = box.cloud.calls("delete", KEY, phase="begin")
    assert deleted["id"] == old["id"]
    assert created["ts"] < timestamp(new_block["updated"]) < deleted["ts"]

    # The record keeps the count: a rerun replaces nothing and makes no key.
    creates = len(box.cloud.calls("create"))
    run = box.run("up", pool, "--yes")
    assert "0 created, 0 updated, 0 replaced, 0 deleted" in run.stdout
    assert len(box.cloud.calls("create")) == creates
    assert [k["id"] for k in live(box, pool)] == [new["id"]]


def test_list_and_show_report_the_keys_age(box: Sandbox, pool: str):
    box.run("up", pool, *UP, "--yes")
    (key,) = live(box, pool)

    shown = json.loads(box.run("show", pool, "--json", **at(10)).stdout)["credential"]
    assert shown == {
        "created_at": iso(key["properties"]["validAfter"]),
        "age_days": 10,
        "expires_at": None,
        "expires_in_days": None,
        "due": None,
    }
    rows = json.loads(box.run("list", "--json", **at(10)).stdout)
    (row,) = [r for r in rows if r["name"] == pool]
    assert row["credential"] == shown
    table = box.run("list", COLUMNS="250", **at(10)).stdout  # wide: no cell wraps
    assert "10d old" in table and "expires" not in table and "Warning" not in table
    assert "Credential: made " in box.run("show", pool, **at(10)).stdout


def test_rotating_a_keyless_pool_says_there_is_nothing_to_rotate(box: Sandbox, pool: str):
    box.run("up", pool, *UP, "--with-worker", "--yes")
    creates = len(box.cloud.calls("create"))
    run = rotate(box, pool)
    assert f"Nothing to rotate in pool '{pool}'" in run.output
    assert f"the worker runs in Cloud Run (worker pool {pool}-worker)" in run.output
    assert len(box.cloud.calls("create")) == creates and live(box, pool) == []
    shown = json.loads(box.run("show", pool, "--json").stdout)
    assert shown["credential"] is None


# -- age limits --------------------------------------------------------------------------


def test_rotate_after_makes_a_rotation_due_and_up_does_it(box: Sandbox, iam: FakeIam, pool: str):
    box.run("up", pool, *UP, "--rotate-after", "30", "--yes")
    (old,) = live(box, pool)
    box.run("preview", pool, "--expect-no-changes", **at(29))

    later = at(31.1)
    run = box.run("preview", pool, "--json", "--expect-no-changes", expect=3, **later)
    plan = json.loads(run.stdout)
    assert plan["rotation"]["reason"] == "older than --rotate-after 30 days (31 days old)"
    assert [(r["type"], r["op"]) for r in plan["resources"] if r["op"] != "same"] == [
        (KEY, "replace")
    ]
    listed = box.run("list", **later).stdout
    due = f"Warning: pool '{pool}': its credential is due for rotation"
    assert f"{due} (older than --rotate-after 30 days" in listed

    run = box.run("up", pool, "--yes", **later)
    assert "0 created, 0 updated, 1 replaced, 0 deleted" in run.stdout
    new = assert_one_live_key_and_it_is_the_blocks(box, iam, pool)
    assert new["id"] != old["id"]
    # The new key is valid from then, on GCP's clock: not due again.
    assert iso(new["properties"]["validAfter"]) == later["FAKECLOUD_NOW"]
    box.run("preview", pool, "--expect-no-changes", **later)
    shown = json.loads(box.run("show", pool, "--json", **later).stdout)["credential"]
    assert (shown["age_days"], shown["due"]) == (0, None)


def test_a_key_expiry_policy_makes_the_key_due_before_it_ends(
    box: Sandbox, iam: FakeIam, pool: str
):
    # The organization enforces constraints/iam.serviceAccountKeyExpiryHours at its maximum,
    # 2160 hours: every key the tool makes stops working 90 days after it was made.
    box.env["FAKECLOUD_GCP_KEY_EXPIRY_HOURS"] = "2160"
    box.run("up", pool, *UP, "--yes")
    (old,) = live(box, pool)
    tomorrow = at(1)
    shown = json.loads(box.run("show", pool, "--json", **tomorrow).stdout)["credential"]
    assert shown["expires_at"] == iso(old["properties"]["validBefore"])
    # Whole days left a day after the key was made: 89, less the time since (seconds, in
    # which a fast run may not have crossed a whole second), so 88 or 89, and exactly this.
    left = datetime.fromisoformat(shown["expires_at"]) - datetime.fromisoformat(
        tomorrow["PROVISION_NOW"]
    )
    assert shown["expires_in_days"] == left.days and left.days in (88, 89)
    box.run("preview", pool, "--expect-no-changes", **at(59))  # 31 days left: not yet

    later = at(65)  # 25 days left
    plan = json.loads(
        box.run("preview", pool, "--json", "--expect-no-changes", expect=3, **later).stdout
    )
    assert plan["rotation"]["reason"].startswith("expires on ")
    listed = box.run("list", **later).stdout
    assert f"Warning: pool '{pool}': its credential is due for rotation (expires on" in listed

    run = box.run("up", pool, "--yes", **later)
    assert "1 replaced" in run.stdout
    new = assert_one_live_key_and_it_is_the_blocks(box, iam, pool)
    assert new["id"] != old["id"]
    renewed = json.loads(box.run("show", pool, "--json", **later).stdout)["credential"]
    assert (renewed["age_days"], renewed["expires_in_days"], renewed["due"]) == (0, 90, None)
    box.run("preview", pool, "--expect-no-changes", **later)


# -- interrupted rotations -----------------------------------------------------------------


def test_sigkill_before_iam_made_the_new_key_converges(box: Sandbox, iam: FakeIam, pool: str):
    provisioned(box, pool)
    box.kill_while_creating(KEY, "rotate", pool, "--yes", after_write=False)
    assert len(live(box, pool)) == 1  # the old one, still in the block
    assert signs_in(iam, block(box, pool))

    run = rotate(box, pool)
    assert "IAM has none the state does not track" in run.stdout
    assert box.cloud.calls("deleteKey", KEY) == []
    assert_one_live_key_and_it_is_the_blocks(box, iam, pool)


def test_sigkill_after_iam_made_the_new_key_deletes_the_untracked_one(
    box: Sandbox, iam: FakeIam, pool: str
):
    provisioned(box, pool)
    (old,) = live(box, pool)
    kill_once_iam_holds_the_new_key(box, pool, "rotate", pool, "--yes")
    # IAM made it and returned its private key to the killed engine only: untracked.
    (orphan,) = [k for k in live(box, pool) if k["id"] != old["id"]]

    run = rotate(box, pool)
    orphan_id = orphan["id"].rsplit("/", 1)[-1]
    assert f"Removed 1 key(s) of service account {worker(pool)}" in run.stdout
    assert f"key id {orphan_id}" in run.stdout
    assert [c["id"] for c in box.cloud.calls("deleteKey", KEY)] == [orphan["id"]]
    assert_one_live_key_and_it_is_the_blocks(box, iam, pool)


def test_sigkill_after_the_new_key_before_the_block_was_rewritten_converges(
    box: Sandbox, iam: FakeIam, pool: str, prefect_server
):
    provisioned(box, pool)
    old_block = block(box, pool)
    args = ["rotate", pool, "--yes"]
    proc = box.start(*args, FAKECLOUD_DELAY_AFTER_MS_CREATE="1500")
    try:
        wait_for(lambda: box.cloud.calls("create", KEY, phase="begin"), 180)
        # Prefect goes away while IAM answers: the block's write then retries against a
        # stopped server for seconds, and the kill lands in between.
        prefect_server.stop()
        wait_for(lambda: box.cloud.calls("create", KEY), 60)
        time.sleep(1.5)
        run = box.kill(proc, args)
    finally:
        if proc.poll() is None:
            proc.kill()
        prefect_server.start()
    assert run.code == -signal.SIGKILL, run.output
    # Both keys live, and the block still holds the old one, which works: never a dead one.
    assert len(live(box, pool)) == 2
    still = block(box, pool)
    assert key_file(still)["private_key_id"] == key_file(old_block)["private_key_id"]
    assert signs_in(iam, still)

    rerun = time.time()
    rotate(box, pool)
    assert_one_live_key_and_it_is_the_blocks(box, iam, pool)
    assert_the_block_took_the_new_key_before_any_was_deleted(box, pool, rerun)


def test_prefect_down_between_the_steps_keeps_the_old_key_until_a_rerun(
    box: Sandbox, iam: FakeIam, pool: str, prefect_server
):
    provisioned(box, pool)
    old_block = block(box, pool)
    run = box.run_with_prefect_down_midway(prefect_server, "rotate", pool, "--yes")
    assert run.code == 1, run.output
    # The new key exists, the block could not take it: the old one stays, and works.
    assert len(live(box, pool)) == 2
    still = block(box, pool)
    assert key_file(still)["private_key_id"] == key_file(old_block)["private_key_id"]
    assert signs_in(iam, still)

    rerun = time.time()
    rotate(box, pool)
    assert_one_live_key_and_it_is_the_blocks(box, iam, pool)
    assert_the_block_took_the_new_key_before_any_was_deleted(box, pool, rerun)


@pytest.mark.parametrize("after_write", [False, True], ids=["before", "after"])
def test_sigkill_while_the_old_key_is_deleted_converges(
    box: Sandbox, iam: FakeIam, pool: str, after_write
):
    provisioned(box, pool)
    (old,) = live(box, pool)
    delay = "FAKECLOUD_DELAY_AFTER_MS_DELETE" if after_write else "FAKECLOUD_DELAY_MS_DELETE"
    args = ["rotate", pool, "--yes"]
    proc = box.start(*args, **{delay: "1500"})
    wait_for(lambda: box.cloud.calls("delete", KEY, phase="begin"), 180)
    run = box.kill(proc, args)
    assert run.code == -signal.SIGKILL, run.output
    # By then the block holds the new key, which is live.
    held = key_of_block(box.cloud, key_file(block(box, pool)))
    assert held is not None and held["id"] != old["id"]
    assert (box.cloud.get(KEY, old["id"]) is None) is after_write

    rotate(box, pool)
    assert_one_live_key_and_it_is_the_blocks(box, iam, pool)
