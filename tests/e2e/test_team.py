"""A pool lives in its backend: two machines share one backend and operate the same pools.

"Alice" provisions; "Bob" has the same backend URL and secrets configuration but an empty
PROVISION_HOME and PULUMI_HOME, and must be able to list, preview, show, rerun and destroy the
pool by its name alone, on each cloud.
"""

from __future__ import annotations

import json
import secrets
import shutil
import socket
from datetime import UTC, datetime, timedelta

import pytest

from tests.e2e.conftest import Sandbox, share_backend, wait_for

pytestmark = pytest.mark.e2e

GCP = ["--type", "cloud-run-v2", "--project", "team-proj-1", "--region", "europe-west1"]
KEY = "gcp:serviceaccount/key:Key"


@pytest.fixture
def pool() -> str:
    return "team" + secrets.token_hex(3)


def test_another_machine_operates_the_pool_by_name(sandbox: Sandbox, pool: str):
    alice = sandbox
    alice.run("up", pool, *GCP, "--yes")
    block = alice.block("gcp-credentials", f"{pool}-gcp-credentials")
    alice.remember_key(block)
    work_pool = alice.work_pool(pool)
    keys_before = alice.cloud.resources("gcp:serviceaccount/key:Key")

    bob = alice.machine("bob")
    assert not bob.home.exists()

    rows = json.loads(bob.run("list", "--json").stdout)
    (row,) = [r for r in rows if r["name"] == pool]
    assert row["type"] == "cloud-run-v2"
    assert row["location"] == "team-proj-1/europe-west1"
    assert row["result"] == "succeeded" and row["last_update"]

    plan = json.loads(bob.run("preview", pool, "--json", "--expect-no-changes").stdout)
    assert plan["type"] == "cloud-run-v2"
    changes = plan["changes"]
    assert changes["same"] == len(plan["resources"]) > 10
    assert changes["create"] == changes["update"] == changes["replace"] == changes["delete"] == 0
    assert [p["op"] for p in plan["prefect"]] == ["same", "same"]

    shown = json.loads(bob.run("show", pool, "--json").stdout)
    assert shown["prefect"]["block_id"] == block["id"]
    assert shown["prefect"]["work_pool_id"] == work_pool["id"]
    assert shown["outputs"]["service_account_key"] == "[secret]"

    run = bob.run("up", pool, "--yes")
    assert "0 created, 0 updated, 0 replaced, 0 deleted" in run.stdout
    assert alice.cloud.resources("gcp:serviceaccount/key:Key") == keys_before
    assert alice.block("gcp-credentials", f"{pool}-gcp-credentials")["id"] == block["id"]

    bob.run("destroy", pool, "--yes")
    assert alice.block("gcp-credentials", f"{pool}-gcp-credentials") is None
    assert alice.work_pool(pool) is None
    assert not [
        r
        for r in alice.cloud.resources(cloud="gcp")
        if pool in json.dumps(r) and r["type"] != "gcp:projects/service:Service"
    ]
    assert pool not in alice.run("list").stdout


def test_destroy_from_another_machine_leaves_adopted_prefect_objects(sandbox: Sandbox, pool: str):
    # A work pool that existed before `up` is adopted, and no machine's destroy deletes it.
    sandbox.prefect(
        "POST", "/work_pools/", json={"name": pool, "type": "cloud-run-v2"}
    ).raise_for_status()
    sandbox.run("up", pool, *GCP, "--yes")
    sandbox.remember_key(sandbox.block("gcp-credentials", f"{pool}-gcp-credentials"))

    bob = sandbox.machine("bob")
    bob.run("destroy", pool, "--yes")
    assert sandbox.work_pool(pool) is not None
    assert sandbox.block("gcp-credentials", f"{pool}-gcp-credentials") is None
    sandbox.prefect("DELETE", f"/work_pools/{pool}")


def test_a_machine_without_the_passphrase_gets_one_line(sandbox: Sandbox, pool: str):
    sandbox.run("up", pool, *GCP, "--yes")
    sandbox.remember_key(sandbox.block("gcp-credentials", f"{pool}-gcp-credentials"))

    wrong = sandbox.machine("wrong", PULUMI_CONFIG_PASSPHRASE="not-the-teams-passphrase")
    run = wrong.run("preview", pool, expect=1)
    assert run.stderr.count("\n") == 1, run.stderr
    assert "passphrase" in run.stderr and "PULUMI_CONFIG_PASSPHRASE" in run.stderr

    missing = sandbox.machine("missing")
    missing.env.pop("PULUMI_CONFIG_PASSPHRASE")
    run = missing.run("up", pool, "--yes", expect=1)
    assert run.stderr.count("\n") == 1, run.stderr
    assert "passphrase" in run.stderr
    # Nothing was generated for it: a fresh passphrase would only fail later.
    assert not (missing.home / "passphrase").exists()


def test_the_prefect_url_in_use_must_match_the_pools_unless_passed(sandbox: Sandbox, pool: str):
    sandbox.run("up", pool, *GCP, "--yes")
    sandbox.remember_key(sandbox.block("gcp-credentials", f"{pool}-gcp-credentials"))
    elsewhere = "http://127.0.0.1:9/api"

    run = sandbox.run("up", pool, "--yes", expect=2, PREFECT_API_URL=elsewhere)
    assert run.stderr.count("\n") == 1
    assert sandbox.prefect_url in run.stderr and elsewhere in run.stderr
    assert "(from PREFECT_API_URL)" in run.stderr
    run = sandbox.run("destroy", pool, "--yes", expect=2, PREFECT_API_URL=elsewhere)
    assert "--prefect-api-url" in run.stderr

    # With no URL configured at all, the pool's own URL is used (and named as such on error).
    bare = {k: v for k, v in sandbox.env.items() if k != "PREFECT_API_URL"}
    box = Sandbox(
        sandbox.root, bare, sandbox.prefect_url, runs=sandbox.runs, secrets=sandbox.secrets
    )
    box.run("preview", pool, "--expect-no-changes")


def test_two_machines_up_one_pool_one_wins_the_other_is_told_who(
    sandbox: Sandbox, pool: str, s3_backend
):
    share_backend(sandbox, s3_backend)
    bob = sandbox.machine("bob")
    args = ["up", pool, *GCP, "--yes"]
    first = sandbox.start(*args, FAKECLOUD_DELAY_MS="1500")
    wait_for(lambda: sandbox.cloud.calls("create", phase="begin"), timeout=120)
    second = bob.run(*args, expect=1)
    line = second.stderr.strip()
    assert "\n" not in line
    assert f"Pool '{pool}' is locked by another run: " in line
    assert f"@{socket.gethostname()}, pid " in line and ", since 20" in line
    assert f"provision unlock {pool}" in line
    assert sandbox.finish(first, args).code == 0
    sandbox.remember_key(sandbox.block("gcp-credentials", f"{pool}-gcp-credentials"))
    assert len(sandbox.cloud.resources(KEY)) == 1


def test_unlock_clears_a_remote_lock_only_when_stale_or_forced(
    sandbox: Sandbox, pool: str, s3_backend
):
    share_backend(sandbox, s3_backend)
    sandbox.run("up", pool, *GCP, "--yes")
    sandbox.remember_key(sandbox.block("gcp-credentials", f"{pool}-gcp-credentials"))
    lock_key = (
        f".pulumi/locks/organization/provision/{pool}/0b7c1d4e-0000-4000-8000-0000000000aa.json"
    )

    def lock(**content: object) -> None:
        body = {"pid": 4242, "username": "alice", "hostname": "laptop-a", **content}
        s3_backend.client().put_object(
            Bucket=s3_backend.bucket, Key=lock_key, Body=json.dumps(body).encode()
        )

    # A run on another host, started a minute ago: it may be alive, so it stays.
    recent = datetime.now(UTC) - timedelta(minutes=1)
    lock(timestamp=recent.isoformat())
    bob = sandbox.machine("bob")
    run = bob.run("unlock", pool)
    assert "locked by alice@laptop-a (pid 4242)" in run.stdout and "--force" in run.stdout
    assert s3_backend.lock_keys("provision", pool) == [lock_key]
    # ...and it blocks an up, which names it.
    blocked = bob.run("up", pool, "--yes", expect=1)
    assert "locked by another run: alice@laptop-a, pid 4242" in blocked.stderr

    # The same lock a day old is a killed run's: cleared without --force.
    lock(timestamp=(datetime.now(UTC) - timedelta(days=1)).isoformat())
    run = bob.run("unlock", pool)
    assert "Removed the lock of alice@laptop-a (pid 4242)" in run.stdout
    assert s3_backend.lock_keys("provision", pool) == []

    lock(timestamp=recent.isoformat())
    bob.run("unlock", pool, "--force")
    assert s3_backend.lock_keys("provision", pool) == []
    assert "No lock" in bob.run("unlock", pool).stdout
    bob.run("up", pool, "--yes")


def test_a_kms_secrets_provider_needs_no_passphrase_on_any_machine(
    sandbox: Sandbox, pool: str, s3_backend
):
    share_backend(sandbox, s3_backend)
    kms = s3_backend.kms_key_url()
    sandbox.env.pop("PULUMI_CONFIG_PASSPHRASE")
    sandbox.run("up", pool, *GCP, "--secrets-provider", kms, "--yes")
    sandbox.remember_key(sandbox.block("gcp-credentials", f"{pool}-gcp-credentials"))
    assert not (sandbox.home / "passphrase").exists()
    state = s3_backend.checkpoint("provision", pool)["checkpoint"]["latest"]
    assert state["secrets_providers"]["type"] == "cloud"
    assert state["secrets_providers"]["state"]["url"].startswith("awskms://")

    bob = sandbox.machine("bob")
    bob.run("preview", pool, "--expect-no-changes")
    shown = json.loads(bob.run("show", pool, "--json").stdout)
    assert shown["outputs"]["service_account_key"] == "[secret]"
    bob.run("destroy", pool, "--yes")


def legacy_pool(box: Sandbox, pool: str) -> dict:
    """A pool as the version before the record moved into the backend left it: a stack with
    the cloud side only, the record and the Prefect ids in the work dir's stack config, and the
    block and work pool written after the engine run. Built here with that code path's pieces
    (target program, engine, writer), so the test needs no old release."""
    import dataclasses

    import pulumi
    from pulumi.automation import ConfigValue

    from provision import service
    from provision.engine import Engine
    from provision.prefect import PrefectWriter, resolve_api
    from provision.settings import load_settings

    settings = load_settings(env=box.env)
    settings = dataclasses.replace(settings, engine_env={**settings.engine_env, **box.env})
    request = service.PoolRequest(
        pool, "cloud-run-v2", {"project": "team-proj-1", "region": "europe-west1"}
    )
    spec = service.resolve(request, settings, box.env)
    cloud = spec.target.program()
    assert cloud is not None and spec.target.block is not None and spec.block_name is not None

    def program() -> None:
        for key, value in cloud().items():
            pulumi.export(key, value)

    engine = Engine(settings)
    settings.create_passphrase()
    record = {
        "provision:type": "cloud-run-v2",
        "provision:options": json.dumps(spec.options.model_dump(mode="json"), sort_keys=True),
        "provision:blockName": spec.block_name,
        "provision:generated": json.dumps(dict(spec.target.generated), sort_keys=True),
        "provision:prefectApiUrl": box.prefect_url,
    }
    stack = engine.stack(pool, program, deployment=None, config={**record, **spec.provider_config})
    engine.up(stack)
    # That version read the outputs back with their secrets, for the block.
    outputs = {k: v.value for k, v in stack.workspace.stack_outputs(pool).items()}
    with PrefectWriter(resolve_api(env=box.env)) as writer:
        slug = spec.target.block.type
        data = spec.target.block_data(outputs, writer.block_schema(slug))
        block = writer.upsert_block(slug, spec.block_name, data)
        defaults = spec.target.template_defaults(outputs, block.id)
        work_pool = writer.upsert_work_pool(pool, "cloud-run-v2", "cloud-run-v2", False, defaults)
    state = {
        "block_id": block.id,
        "pool_id": work_pool.id,
        "block_created": True,
        "pool_created": True,
    }
    stack.set_config("provision:prefectState", ConfigValue(json.dumps(state, sort_keys=True)))
    # That version kept its work dir under PROVISION_HOME.
    shutil.copytree(stack.workspace.work_dir, settings.legacy_work_dir(pool))
    return state


def test_a_pool_recorded_by_the_previous_version_is_migrated_without_a_change(
    sandbox: Sandbox, pool: str
):
    state = legacy_pool(sandbox, pool)
    block = sandbox.block("gcp-credentials", f"{pool}-gcp-credentials")
    sandbox.remember_key(block)
    keys = sandbox.cloud.resources(KEY)
    creates = len(sandbox.cloud.calls("create"))

    # The first preview on the machine that has the record moves it into the backend...
    run = sandbox.run("preview", pool, "--json", "--expect-no-changes")
    assert "Moving the record" in run.stderr
    plan = json.loads(run.stdout)
    assert [p["op"] for p in plan["prefect"]] == ["same", "same"]
    assert not (sandbox.home / "stacks" / pool).exists()  # its record is in the backend now
    # ...touching no cloud resource and making no credential.
    assert len(sandbox.cloud.calls("create")) == creates
    assert sandbox.cloud.resources(KEY) == keys
    assert sandbox.block("gcp-credentials", f"{pool}-gcp-credentials")["id"] == block["id"]

    # Every machine now operates it, and destroy removes the objects that version made.
    bob = sandbox.machine("bob")
    shown = json.loads(bob.run("show", pool, "--json").stdout)
    assert shown["prefect"]["block_id"] == state["block_id"]
    assert shown["prefect"]["work_pool_id"] == state["pool_id"]
    run = bob.run("up", pool, "--yes")
    assert "0 created, 0 updated, 0 replaced, 0 deleted" in run.stdout
    bob.run("destroy", pool, "--yes")
    assert sandbox.work_pool(pool) is None
    assert sandbox.block("gcp-credentials", f"{pool}-gcp-credentials") is None
    assert sandbox.cloud.resources(KEY) == []


def test_a_legacy_pools_first_up_migrates_it(sandbox: Sandbox, pool: str):
    legacy_pool(sandbox, pool)
    sandbox.remember_key(sandbox.block("gcp-credentials", f"{pool}-gcp-credentials"))
    keys = sandbox.cloud.resources(KEY)
    run = sandbox.run("up", pool, "--yes")
    assert "Moving the record" in run.output
    assert "0 created, 0 updated, 0 replaced, 0 deleted" in run.stdout
    assert sandbox.cloud.resources(KEY) == keys
    sandbox.machine("bob").run("preview", pool, "--expect-no-changes")


def test_a_secrets_provider_that_cannot_be_used_is_one_line_and_writes_nothing(
    sandbox: Sandbox, pool: str, s3_backend
):
    share_backend(sandbox, s3_backend)
    missing = f"awskms://alias/no-such-key?region=us-east-1&endpoint={s3_backend.endpoint}"
    run = sandbox.run("up", pool, *GCP, "--secrets-provider", missing, "--yes", expect=1)
    line = run.stderr.strip()
    assert "\n" not in line, line
    assert "secrets provider" in line and "alias/no-such-key" in line
    assert "KMS/Vault" in line
    assert s3_backend.checkpoint_keys("provision") == []
    assert sandbox.cloud.resources(cloud="gcp") == []
