"""Azure client secret rotation end to end: `provision rotate`, `--rotate-after`, renewal before
expiry, and every interruption of a rotation converging on rerun.

`provision` CLI → real pulumi engine → fake azure-native and azuread (whose clock moves with
`FAKECLOUD_NOW`) → real Prefect server; the fake Microsoft Graph (`tests/fakecloud/graph.py`)
answers the tool's own clean-up of a secret an interrupted run left untracked. Every test ends
with exactly one live client secret on the pool's app, and it is the one in the Prefect block.
"""

from __future__ import annotations

import json
import re
import secrets
import signal
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import Sandbox, wait_for
from tests.fakecloud.azuread import (
    APPLICATION,
    APPLICATION_PASSWORD,
    password_holding,
    passwords_of,
)
from tests.fakecloud.graph import FakeGraph

pytestmark = pytest.mark.e2e

SUBSCRIPTION = "6b1f7c2e-3d4a-4e5b-8c9d-0a1b2c3d4e5f"
TENANT = "0c1d2e3f-4a5b-4c6d-8e7f-9a0b1c2d3e4f"
CLIENT = "3a7d1e5c-9b2f-4c8d-a6e1-0f4b7c2d9e83"
UP = [
    "--type",
    "azure-container-instance",
    "--subscription",
    SUBSCRIPTION,
    "--location",
    "westeurope",
]
BLOCK_TYPE = "azure-container-instance-credentials"


@pytest.fixture
def box(sandbox: Sandbox) -> Iterator[Sandbox]:
    """The sandbox signed in to TENANT as a service principal (ARM_CLIENT_ID/SECRET), as a CI
    job is: the providers and the tool's own Graph calls (the fake Graph) use that sign-in."""
    for key in list(sandbox.env):
        if key.startswith(("ARM_", "AZURE_", "FAKECLOUD_AZURE_")):
            del sandbox.env[key]
    client_secret = "ci~" + secrets.token_urlsafe(24)
    graph = FakeGraph(
        sandbox.env["FAKECLOUD_STATE_DIR"],
        tenant=TENANT,
        client_id=CLIENT,
        client_secret=client_secret,
    ).start()
    azure_dir = sandbox.root / "azure-cli"
    azure_dir.mkdir()
    sandbox.env.update(
        {
            "ARM_TENANT_ID": TENANT,
            "ARM_CLIENT_ID": CLIENT,
            "ARM_CLIENT_SECRET": client_secret,
            "AZURE_CONFIG_DIR": str(azure_dir),
            **graph.env(),
        }
    )
    sandbox.secrets.add(client_secret)
    yield sandbox
    graph.stop()


@pytest.fixture
def pool() -> str:
    return "rot" + secrets.token_hex(3)


def block_name(pool: str) -> str:
    return f"{pool}-aci-credentials"


def block(box: Sandbox, pool: str) -> dict[str, Any]:
    """The pool's block, its client secret added to the secrets checked for leaks."""
    found = box.block(BLOCK_TYPE, block_name(pool))
    assert found is not None
    box.secrets.add(found["data"]["client_secret"])
    return found


def app_object_id(box: Sandbox, pool: str) -> str:
    (app,) = [
        a
        for a in box.cloud.resources(APPLICATION)
        if a["properties"]["displayName"] == f"provision-aci-{pool}"
    ]
    return app["properties"]["objectId"]


def live(box: Sandbox, pool: str) -> list[dict[str, Any]]:
    """The client secrets Entra ID holds for the pool's app, oldest first."""
    return passwords_of(box.cloud, app_object_id(box, pool))


def assert_one_live_secret_and_it_is_the_blocks(box: Sandbox, pool: str) -> dict[str, Any]:
    """Exactly one live client secret on the app, the one the Prefect block holds; the pool
    then previews clean. Returns that password's record."""
    (only,) = live(box, pool)
    held = password_holding(box.cloud, block(box, pool)["data"]["client_secret"])
    assert held is not None and held["id"] == only["id"], "the block holds a dead secret"
    box.run("preview", pool, "--expect-no-changes")
    return only


def at(days: float) -> dict[str, str]:
    """The tool's and Entra ID's clock ``days`` from now (``PROVISION_NOW``, ``FAKECLOUD_NOW``)."""
    moment = (datetime.now(UTC) + timedelta(days=days)).isoformat(timespec="seconds")
    return {"PROVISION_NOW": moment, "FAKECLOUD_NOW": moment}


def provisioned(box: Sandbox, pool: str, *extra: str) -> None:
    """``up`` the pool, then start the cloud's call log afresh, so that a test waiting for a
    call waits for the rotation's own, not for those of this first ``up``."""
    box.run("up", pool, *UP, *extra, "--yes")
    (Path(box.env["FAKECLOUD_STATE_DIR"]) / "calls.jsonl").unlink()


def rotate(box: Sandbox, pool: str, expect: int | None = 0, **env: str):
    return box.run("rotate", pool, "--yes", expect=expect, **env)


def timestamp(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


# -- rotate ------------------------------------------------------------------------------


def test_rotate_writes_the_new_secret_to_the_block_before_the_old_one_goes(box: Sandbox, pool):
    box.run("up", pool, *UP, "--yes")
    old_block = block(box, pool)
    work_pool = box.work_pool(pool)
    (old,) = live(box, pool)

    # The plan first: the secret replaced, the block updated, and nothing done.
    plan = json.loads(box.run("preview", pool, "--rotate", "--json").stdout)
    changed = [(r["type"], r["op"]) for r in plan["resources"] if r["op"] != "same"]
    assert changed == [(APPLICATION_PASSWORD, "replace")]
    assert plan["changes"]["replace"] == 1 and plan["changes"]["create"] == 0
    # (The work pool shows as a possible update: during a preview the rewritten block's id is
    # not known yet, and the work pool's template references it.)
    block_plan = plan["prefect"][0]
    assert (block_plan["kind"], block_plan["op"]) == ("block", "update")
    rotation = plan["rotation"]
    assert (rotation["reason"], rotation["rotation"]) == ("asked for (provision rotate)", 1)
    assert rotation["created_at"] == old["properties"]["startDate"].replace("Z", "+00:00")
    assert rotation["expires_at"] == old["properties"]["endDate"].replace("Z", "+00:00")
    assert plan["credential"]["kind"] == "client secret" and plan["credential"]["long_lived"]
    box.run("preview", pool, "--expect-no-changes")  # the preview rotated nothing

    run = rotate(box, pool)
    assert "0 created, 0 updated, 1 replaced, 0 deleted" in run.stdout
    assert "Credential rotated (rotation 1" in run.stdout

    new_block = block(box, pool)
    assert new_block["id"] == old_block["id"], "the same block, updated in place"
    assert box.work_pool(pool)["base_job_template"] == work_pool["base_job_template"]
    assert new_block["data"]["client_secret"] != old_block["data"]["client_secret"]
    new = assert_one_live_secret_and_it_is_the_blocks(box, pool)
    assert new["id"] != old["id"] and box.cloud.get(APPLICATION_PASSWORD, old["id"]) is None
    # Create-before-delete, with the block rewritten in between: it never held a dead secret.
    (created,) = [
        c for c in box.cloud.calls("create", APPLICATION_PASSWORD) if c["id"] == new["id"]
    ]
    (deleted,) = box.cloud.calls("delete", APPLICATION_PASSWORD, phase="begin")
    assert deleted["id"] == old["id"]
    assert created["ts"] < timestamp(new_block["updated"]) < deleted["ts"]

    # A fresh lifetime from the rotation, fixed in the record: a rerun replaces nothing.
    creates = len(box.cloud.calls("create"))
    run = box.run("up", pool, "--yes")
    assert "0 created, 0 updated, 0 replaced, 0 deleted" in run.stdout
    assert len(box.cloud.calls("create")) == creates
    assert [p["id"] for p in live(box, pool)] == [new["id"]]


def test_list_and_show_report_the_secrets_age_and_expiry(box: Sandbox, pool: str):
    box.run("up", pool, *UP, "--secret-days", "400", "--yes")
    (password,) = live(box, pool)

    shown = json.loads(box.run("show", pool, "--json", **at(10)).stdout)["credential"]
    assert shown["created_at"] == password["properties"]["startDate"].replace("Z", "+00:00")
    assert shown["expires_at"] == password["properties"]["endDate"].replace("Z", "+00:00")
    # Ten days on (and the seconds since): its end date was fixed before it was made.
    assert (shown["age_days"], shown["expires_in_days"], shown["due"]) == (10, 389, None)
    rows = json.loads(box.run("list", "--json", **at(10)).stdout)
    (row,) = [r for r in rows if r["name"] == pool]
    assert row["credential"] == shown
    table = box.run("list", COLUMNS="250", **at(10)).stdout  # wide: no cell wraps
    assert "10d old, expires in 389d" in table and "Warning" not in table
    assert "Credential: made " in box.run("show", pool, **at(10)).stdout


# -- age limits --------------------------------------------------------------------------


def test_rotate_after_makes_a_rotation_due_and_up_does_it(box: Sandbox, pool: str):
    box.run("up", pool, *UP, "--rotate-after", "30", "--yes")
    (old,) = live(box, pool)
    box.run("preview", pool, "--expect-no-changes", **at(29))

    later = at(31.1)
    run = box.run("preview", pool, "--json", "--expect-no-changes", expect=3, **later)
    plan = json.loads(run.stdout)
    assert plan["rotation"]["reason"] == "older than --rotate-after 30 days (31 days old)"
    assert [(r["type"], r["op"]) for r in plan["resources"] if r["op"] != "same"] == [
        (APPLICATION_PASSWORD, "replace")
    ]
    listed = box.run("list", **later).stdout
    due = f"Warning: pool '{pool}': its credential is due for rotation"
    assert f"{due} (older than --rotate-after 30 days" in listed

    run = box.run("up", pool, "--yes", **later)
    assert "0 created, 0 updated, 1 replaced, 0 deleted" in run.stdout
    new = assert_one_live_secret_and_it_is_the_blocks(box, pool)
    assert new["id"] != old["id"]
    # The new secret starts then, on Entra ID's clock, and lives --secret-days from there.
    assert new["properties"]["startDate"] == later["FAKECLOUD_NOW"].replace("+00:00", "Z")
    end = datetime.fromisoformat(later["PROVISION_NOW"]) + timedelta(days=365)
    assert new["properties"]["endDate"] == end.strftime("%Y-%m-%dT%H:%M:%SZ")
    box.run("preview", pool, "--expect-no-changes", **later)  # not due again


def test_a_secret_close_to_its_end_date_is_reported_then_renewed(box: Sandbox, pool: str):
    box.run("up", pool, *UP, "--secret-days", "40", "--yes")
    (old,) = live(box, pool)
    box.run("preview", pool, "--expect-no-changes", **at(9))  # 31 days left: not yet

    later = at(15)  # 25 days left
    listed = box.run("list", **later).stdout
    assert f"Warning: pool '{pool}': its credential is due for rotation (expires on" in listed
    shown = json.loads(box.run("show", pool, "--json", **later).stdout)["credential"]
    assert re.fullmatch(r"expires on \d{4}-\d\d-\d\d \(in 2[45] days\)", shown["due"])
    box.run("preview", pool, "--expect-no-changes", expect=3, **later)

    run = box.run("up", pool, "--yes", **later)
    assert "1 replaced" in run.stdout
    new = assert_one_live_secret_and_it_is_the_blocks(box, pool)
    assert new["id"] != old["id"]
    renewed = json.loads(box.run("show", pool, "--json", **later).stdout)["credential"]
    assert (renewed["age_days"], renewed["expires_in_days"], renewed["due"]) == (0, 40, None)
    assert "Warning" not in box.run("list", **later).stdout
    box.run("preview", pool, "--expect-no-changes", **later)


# -- interrupted rotations -----------------------------------------------------------------


def test_sigkill_before_entra_id_made_the_new_secret_converges(box: Sandbox, pool: str):
    provisioned(box, pool)
    box.kill_while_creating(APPLICATION_PASSWORD, "rotate", pool, "--yes", after_write=False)
    assert len(live(box, pool)) == 1  # the old one, still in the block

    run = rotate(box, pool)
    assert "Entra ID has none the state does not track" in run.stdout
    assert_one_live_secret_and_it_is_the_blocks(box, pool)


def test_sigkill_after_entra_id_made_the_new_secret_removes_the_untracked_one(
    box: Sandbox, pool: str
):
    provisioned(box, pool)
    (old,) = live(box, pool)
    box.kill_while_creating(APPLICATION_PASSWORD, "rotate", pool, "--yes", after_write=True)
    # Entra ID made it and returned its value to the killed engine only: untracked.
    (orphan,) = [p for p in live(box, pool) if p["id"] != old["id"]]

    run = rotate(box, pool)
    assert "Removed 1 client secret(s) that an interrupted run added" in run.stdout
    assert orphan["properties"]["keyId"] in run.stdout
    assert [c["id"] for c in box.cloud.calls("removePassword")] == [orphan["id"]]
    assert_one_live_secret_and_it_is_the_blocks(box, pool)


def test_sigkill_after_the_new_secret_before_the_block_was_rewritten_converges(
    box: Sandbox, pool: str, prefect_server
):
    provisioned(box, pool)
    old_block = block(box, pool)
    args = ["rotate", pool, "--yes"]
    proc = box.start(*args, FAKECLOUD_DELAY_AFTER_MS_CREATE="1500")
    try:
        wait_for(lambda: box.cloud.calls("create", APPLICATION_PASSWORD, phase="begin"), 180)
        # Prefect goes away while Entra ID answers: the block's write then retries against a
        # stopped server for seconds, and the kill lands in between.
        prefect_server.stop()
        wait_for(lambda: box.cloud.calls("create", APPLICATION_PASSWORD), 60)
        time.sleep(1.5)
        run = box.kill(proc, args)
    finally:
        if proc.poll() is None:
            proc.kill()
        prefect_server.start()
    assert run.code == -signal.SIGKILL, run.output
    # Both secrets live, and the block still holds the old one: never a dead one.
    assert len(live(box, pool)) == 2
    assert block(box, pool)["data"]["client_secret"] == old_block["data"]["client_secret"]
    assert password_holding(box.cloud, old_block["data"]["client_secret"]) is not None

    rotate(box, pool)
    assert_one_live_secret_and_it_is_the_blocks(box, pool)


def test_prefect_down_between_the_steps_keeps_the_old_secret_until_a_rerun(
    box: Sandbox, pool: str, prefect_server
):
    provisioned(box, pool)
    old_block = block(box, pool)
    run = box.run_with_prefect_down_midway(prefect_server, "rotate", pool, "--yes")
    assert run.code == 1, run.output
    # The new secret exists, the block could not take it: the old one stays, and works.
    assert len(live(box, pool)) == 2
    assert block(box, pool)["data"]["client_secret"] == old_block["data"]["client_secret"]

    rotate(box, pool)
    assert_one_live_secret_and_it_is_the_blocks(box, pool)


@pytest.mark.parametrize("after_write", [False, True], ids=["before", "after"])
def test_sigkill_while_the_old_secret_is_deleted_converges(
    box: Sandbox, pool: str, after_write: bool
):
    provisioned(box, pool)
    (old,) = live(box, pool)
    delay = "FAKECLOUD_DELAY_AFTER_MS_DELETE" if after_write else "FAKECLOUD_DELAY_MS_DELETE"
    args = ["rotate", pool, "--yes"]
    proc = box.start(*args, **{delay: "1500"})
    wait_for(lambda: box.cloud.calls("delete", APPLICATION_PASSWORD, phase="begin"), 180)
    run = box.kill(proc, args)
    assert run.code == -signal.SIGKILL, run.output
    # By then the block holds the new secret, which is live.
    held = password_holding(box.cloud, block(box, pool)["data"]["client_secret"])
    assert held is not None and held["id"] != old["id"]
    assert (box.cloud.get(APPLICATION_PASSWORD, old["id"]) is None) is after_write

    rotate(box, pool)
    assert_one_live_secret_and_it_is_the_blocks(box, pool)
