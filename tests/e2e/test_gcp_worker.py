"""GCP pools with ``--with-worker`` end to end: the worker as a Cloud Run worker pool running as
the worker account, no key anywhere, its Prefect credential in Secret Manager.

`provision` CLI → real pulumi engine → fake GCP (``tests/fakecloud/gcp_run.py``,
``gcp_secrets.py``) → a real Prefect server behind ``PREFECT_SERVER_API_AUTH_STRING``, so the
worker has a credential to keep. The last test runs the container the fake cloud recorded, as
Cloud Run would (image aside), and watches the worker register with the pool.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import Run, Sandbox, wait_for
from tests.fakecloud.gcp_base import (
    ACCOUNT,
    KEY,
    SECRET,
    SECRET_IAM_MEMBER,
    SECRET_VERSION,
    SERVICE,
    WORKER_POOL,
)
from tests.fakecloud.gcp_run import container, resolved_env
from tests.prefect_server import PROTECTED_AUTH

pytestmark = pytest.mark.e2e

PROJECT = "my-proj-123"
REGION = "europe-west1"
UP = ["--type", "cloud-run-v2", "--project", PROJECT, "--region", REGION, "--with-worker"]
CREDENTIAL_ENV = "PREFECT_API_AUTH_STRING"
WRITES = ("create", "update", "delete")


@pytest.fixture
def pool() -> str:
    """A pool name of its own: every test shares the session's Prefect servers."""
    return "wk" + secrets.token_hex(3)


@pytest.fixture
def protected(sandbox: Sandbox, protected_prefect_server: Any) -> Sandbox:
    """The sandbox pointed at the server behind an auth string, for every run of the test."""
    sandbox.secrets.add(PROTECTED_AUTH)  # the leak scan looks for it in every output and file
    sandbox.prefect_url = protected_prefect_server.api_url
    sandbox.env["PREFECT_API_URL"] = protected_prefect_server.api_url
    sandbox.env["PREFECT_API_AUTH_STRING"] = PROTECTED_AUTH
    return sandbox


def prefect(box: Sandbox, method: str, path: str, **kw: Any) -> httpx.Response:
    """The Prefect API as a client with the auth string calls it."""
    auth = httpx.BasicAuth(*PROTECTED_AUTH.split(":", 1))
    return httpx.request(method, box.prefect_url + path, auth=auth, timeout=15, **kw)


def block(box: Sandbox, pool: str) -> dict[str, Any] | None:
    """The pool's ``gcp-credentials`` block with its secret fields, or None."""
    path = f"/block_types/slug/gcp-credentials/block_documents/name/{pool}-gcp-credentials"
    r = prefect(box, "GET", path, params={"include_secrets": "true"})
    return None if r.status_code == 404 else r.raise_for_status().json()


def work_pool(box: Sandbox, pool: str) -> dict[str, Any] | None:
    r = prefect(box, "GET", f"/work_pools/{pool}")
    return None if r.status_code == 404 else r.raise_for_status().json()


def live(box: Sandbox, pool: str) -> list[dict[str, Any]]:
    """Fake-cloud records made for ``pool`` (enabled APIs outlive pools by design)."""
    return [
        r
        for r in box.cloud.resources(cloud="gcp")
        if r["type"] != SERVICE and pool in json.dumps(r)
    ]


def up(box: Sandbox, pool: str, *extra: str, expect: int | None = 0, **env: str) -> Run:
    return box.run("up", pool, *UP, *extra, "--yes", expect=expect, **env)


def test_up_runs_the_worker_keyless_rerun_is_a_no_op_destroy_stops_it_first(
    protected: Sandbox, pool: str
):
    box = protected
    run = up(box, pool)
    worker_email = f"{pool}-worker@{PROJECT}.iam.gserviceaccount.com"
    assert f"Pool '{pool}' is ready" in run.stdout
    assert "no long-lived credential" in run.stdout
    steps = run.stdout.split("Next steps", 1)[1]
    assert f"gcloud run worker-pools logs read {pool}-worker --region {REGION}" in steps
    assert "prefect worker start" not in steps, "the worker runs in the cloud already"

    cloud = box.cloud
    # Zero keys: none exists, and none was ever asked for.
    assert cloud.count(KEY) == 0 and cloud.calls("create", KEY, phase="begin") == []
    assert cloud.calls("create", KEY, include_preview=True) == []

    # The worker: a worker pool running as the worker account.
    (record,) = cloud.resources(WORKER_POOL)
    props = record["properties"]
    assert props["name"] == f"{pool}-worker" and props["location"] == REGION
    assert props["template"]["serviceAccount"] == worker_email
    assert record["meta"]["serviceAccount"] == worker_email
    assert props["scaling"]["manualInstanceCount"] == 1
    spec = container(cloud, f"{pool}-worker")
    assert spec["args"] == ["prefect", "worker", "start", "--pool", pool, "--type", "cloud-run-v2"]
    assert spec["image"].startswith("prefecthq/prefect:3.8.8-python")
    env = {e["name"]: e for e in spec["envs"]}
    assert env["PREFECT_API_URL"]["value"] == box.prefect_url
    assert env["EXTRA_PIP_PACKAGES"]["value"] == "prefect-gcp"
    # The credential: a reference to a version of the secret, never a value...
    secret_id = f"{pool}-worker-{CREDENTIAL_ENV}"
    assert env[CREDENTIAL_ENV] == {
        "name": CREDENTIAL_ENV,
        "valueSource": {"secretKeyRef": {"secret": secret_id, "version": "1"}},
    }
    assert PROTECTED_AUTH not in json.dumps(record)
    # ...whose stored value is the server's auth string, readable by the worker account only.
    assert resolved_env(cloud, f"{pool}-worker")[CREDENTIAL_ENV] == PROTECTED_AUTH
    (secret,) = cloud.resources(SECRET)
    assert secret["id"] == f"projects/{PROJECT}/secrets/{secret_id}"
    assert secret["properties"]["replication"] == {
        "userManaged": {"replicas": [{"location": REGION}]}
    }
    (grant,) = cloud.resources(SECRET_IAM_MEMBER)
    assert grant["properties"]["member"] == f"serviceAccount:{worker_email}"
    assert grant["properties"]["role"] == "roles/secretmanager.secretAccessor"
    assert grant["meta"]["secret"] == secret["id"]

    # The block holds no secret: prefect-gcp uses the worker pool's own identity.
    written = block(box, pool)
    assert written is not None and written["data"] == {"project": PROJECT}
    made = work_pool(box, pool)
    assert made is not None and made["type"] == "cloud-run-v2"
    defaults = made["base_job_template"]["variables"]["properties"]
    assert defaults["credentials"]["default"] == {"$ref": {"block_document_id": written["id"]}}

    # A rerun changes nothing: no write reaches the cloud.
    writes = len([c for c in cloud.calls() if c["op"] in WRITES])
    rerun = box.run("up", pool, "--yes")
    assert "0 created, 0 updated, 0 replaced, 0 deleted" in rerun.stdout
    assert len([c for c in cloud.calls() if c["op"] in WRITES]) == writes
    box.run("preview", pool, "--expect-no-changes")

    # destroy stops the worker before it removes the work pool: with the worker's deletion
    # failing, the work pool (and the block) are still there.
    fault = f"delete:{WORKER_POOL}@once"
    failed = box.run("destroy", pool, "--yes", expect=1, FAKECLOUD_FAULTS=fault)
    assert WORKER_POOL in failed.stderr
    assert cloud.count(WORKER_POOL) == 1
    assert work_pool(box, pool) is not None and block(box, pool) is not None

    box.run("destroy", pool, "--yes")
    deleted = [c for c in cloud.calls("delete", WORKER_POOL) if c["outcome"] == "ok"]
    assert len(deleted) == 1
    assert live(box, pool) == []
    assert work_pool(box, pool) is None and block(box, pool) is None
    assert cloud.count(KEY) == 0


def test_keys_forbidden_by_org_policy_are_no_obstacle_to_a_keyless_pool(
    protected: Sandbox, pool: str
):
    box = protected
    keyed = ["--type", "cloud-run-v2", "--project", PROJECT, "--region", REGION]
    forbidden = {"FAKECLOUD_GCP_DISABLE_KEY_CREATION": "1"}
    # As today without --with-worker: the key is refused, and the message says what to do.
    refused = box.run("up", pool, *keyed, "--yes", expect=1, **forbidden)
    assert "iam.disableServiceAccountKeyCreation" in refused.stderr
    assert "--with-worker" in refused.stderr and "Traceback" not in refused.output
    assert work_pool(box, pool) is None

    # The same pool with --with-worker converges from there: no key, a running worker.
    run = up(box, pool, **forbidden)
    assert f"Pool '{pool}' is ready" in run.stdout
    assert box.cloud.count(KEY) == 0 and box.cloud.count(WORKER_POOL) == 1
    assert box.cloud.count(ACCOUNT) == 2
    assert block(box, pool)["data"] == {"project": PROJECT}
    box.run("destroy", pool, "--yes")
    assert live(box, pool) == []


def test_an_open_server_needs_no_secret_store(sandbox: Sandbox, pool: str):
    # The session's server asks for no credential: the worker gets none, and nothing is kept.
    sandbox.run("up", pool, *UP, "--yes")
    cloud = sandbox.cloud
    assert cloud.count(WORKER_POOL) == 1 and cloud.count(KEY) == 0
    assert cloud.count(SECRET) == cloud.count(SECRET_VERSION) == cloud.count(SECRET_IAM_MEMBER) == 0
    apis = {s["properties"]["service"] for s in cloud.resources(SERVICE)}
    assert "secretmanager.googleapis.com" not in apis
    assert set(resolved_env(cloud, f"{pool}-worker")) == {"PREFECT_API_URL", "EXTRA_PIP_PACKAGES"}
    sandbox.run("destroy", pool, "--yes")
    assert live(sandbox, pool) == []


def test_an_existing_pool_turns_keyless(sandbox: Sandbox, pool: str):
    keyed = ["--type", "cloud-run-v2", "--project", PROJECT, "--region", REGION]
    sandbox.run("up", pool, *keyed, "--yes")
    before = sandbox.block("gcp-credentials", f"{pool}-gcp-credentials")
    sandbox.remember_key(before)
    assert sandbox.cloud.count(KEY) == 1 and "service_account_info" in before["data"]

    sandbox.run("up", pool, "--with-worker", "--yes")
    after = sandbox.block("gcp-credentials", f"{pool}-gcp-credentials")
    assert sandbox.cloud.count(KEY) == 0, "the key is deleted, not left behind"
    assert after["id"] == before["id"] and after["data"] == {"project": PROJECT}
    assert sandbox.cloud.count(WORKER_POOL) == 1
    sandbox.run("preview", pool, "--expect-no-changes")
    sandbox.run("destroy", pool, "--yes")
    assert live(sandbox, pool) == []


def test_a_killed_run_leaves_no_second_worker_pool(protected: Sandbox, pool: str):
    # The worker pool's name is the pool's: the rerun reads back the one the killed run made.
    box = protected
    box.kill_while_creating(WORKER_POOL, "up", pool, *UP, "--yes", after_write=True)
    assert box.cloud.count(WORKER_POOL) == 1, "the kill came before the cloud wrote it"
    run = box.run("up", pool, "--yes", timeout=300)
    assert "Adopting" in run.stdout and f"Pool '{pool}' is ready" in run.stdout
    assert box.cloud.count(WORKER_POOL) == 1
    assert len(box.cloud.calls("create", WORKER_POOL, phase="begin")) == 1, "one create, ever"
    box.run("preview", pool, "--expect-no-changes")
    box.run("destroy", pool, "--yes")
    assert live(box, pool) == []


def test_a_killed_run_names_the_secret_version_it_may_have_left(protected: Sandbox, pool: str):
    # GCP numbers versions itself: the rerun cannot find the killed run's version by id, makes
    # another, and says how to find the untracked one. destroy removes both with the secret.
    box = protected
    box.kill_while_creating(SECRET_VERSION, "up", pool, *UP, "--yes", after_write=True)
    run = box.run("up", pool, "--yes", timeout=300)
    assert f"Pool '{pool}' is ready" in run.stdout
    assert "untracked" in run.stdout and "gcloud secrets versions list" in run.stdout
    versions = sorted(r["properties"]["version"] for r in box.cloud.resources(SECRET_VERSION))
    assert versions == ["1", "2"]
    env = {e["name"]: e for e in container(box.cloud, f"{pool}-worker")["envs"]}
    assert env[CREDENTIAL_ENV]["valueSource"]["secretKeyRef"]["version"] == "2"
    box.run("preview", pool, "--expect-no-changes")
    box.run("destroy", pool, "--yes")
    assert live(box, pool) == [] and box.cloud.count(SECRET_VERSION) == 0


# -- the worker really starts --------------------------------------------------------------


@pytest.fixture
def started() -> Iterator[list[subprocess.Popen[str]]]:
    """Processes a test starts: always stopped, the whole process group, even on failure."""
    procs: list[subprocess.Popen[str]] = []
    yield procs
    for proc in procs:
        if proc.returncode is None:
            stop(proc)


def stop(proc: subprocess.Popen[str]) -> tuple[str, str]:
    """SIGTERM the worker's process group, SIGKILL it if it lingers; its output."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            return proc.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
    return proc.communicate(timeout=20)


def workers(box: Sandbox, pool: str) -> list[dict[str, Any]]:
    """The workers Prefect sees polling ``pool``."""
    return (
        prefect(box, "POST", f"/work_pools/{pool}/workers/filter", json={})
        .raise_for_status()
        .json()
    )


def test_the_recorded_worker_starts_and_registers_with_the_pool(
    protected: Sandbox, pool: str, tmp_path: Path, started: list[subprocess.Popen[str]]
):
    box = protected
    up(box, pool)
    assert workers(box, pool) == []

    # What Cloud Run would run, image aside: the container's arguments (the image's entrypoint
    # execs them) with its environment, the secret read from Secret Manager by its reference.
    spec = container(box.cloud, f"{pool}-worker")
    env = resolved_env(box.cloud, f"{pool}-worker")
    assert env[CREDENTIAL_ENV] == PROTECTED_AUTH and env["PREFECT_API_URL"] == box.prefect_url
    command = [str(Path(sys.executable).parent / spec["args"][0]), *spec["args"][1:]]
    home = tmp_path / "worker-prefect-home"
    home.mkdir()
    base = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "PULUMI_"))}
    proc = subprocess.Popen(
        command,
        env={**base, **env, "PREFECT_HOME": str(home)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
        start_new_session=True,
    )
    started.append(proc)

    seen: list[dict[str, Any]] = []

    def registered() -> bool:
        assert proc.poll() is None, "the worker exited:\n" + "".join(stop(proc))
        seen[:] = workers(box, pool)
        return bool(seen)

    wait_for(registered, timeout=120, interval=1)
    (worker,) = seen
    heartbeat = datetime.fromisoformat(worker["last_heartbeat_time"])
    assert abs((datetime.now(UTC) - heartbeat).total_seconds()) < 60
    assert worker["status"] == "ONLINE"

    # provision show reports it, from Prefect's API.
    shown = json.loads(box.run("show", pool, "--json").stdout)
    assert [w["name"] for w in shown["workers"]] == [worker["name"]]
    assert shown["workers"][0]["status"] == "ONLINE"

    out, err = stop(proc)
    box.runs.append(Run(command, proc.returncode, out, err))  # scanned for leaks too
    box.run("destroy", pool, "--yes")
    assert live(box, pool) == []
