"""How many requests one ``provision`` command sends to Prefect (issue 15: at most 6 per ``up``).

The real command and engine, fake GCP, the session's real Prefect server behind a loopback proxy
that records every request it forwards (``tests/prefect_counter.py``): the service's own and
those of the Prefect resources' provider (served by the same process) are both counted, at the
server's door.
"""

from __future__ import annotations

import json
import secrets
from collections import Counter
from collections.abc import Iterator

import pytest

from tests.e2e.conftest import Sandbox
from tests.prefect_counter import PrefectCounter

pytestmark = pytest.mark.e2e

UP = ["--type", "cloud-run-v2", "--project", "my-proj-123", "--region", "europe-west1"]
MAX_PER_UP = 6


@pytest.fixture
def counter(sandbox: Sandbox, prefect_server) -> Iterator[PrefectCounter]:
    """The sandbox's Prefect URL pointed at a counting proxy in front of the real server."""
    with PrefectCounter(prefect_server.api_url) as proxy:
        sandbox.env["PREFECT_API_URL"] = proxy.api_url
        yield proxy


def kinds(counter: PrefectCounter) -> str:
    """The recorded requests by method and path, for the failure message."""
    counts = Counter(f"{m} {p}" for m, p in counter.calls())
    return "\n".join(f"{n} x {call}" for call, n in counts.most_common())


def test_up_then_a_no_op_rerun_send_at_most_six_requests_each(
    sandbox: Sandbox, counter: PrefectCounter
):
    pool = "reqs" + secrets.token_hex(3)

    sandbox.run("up", pool, *UP, "--yes")
    sandbox.remember_key(sandbox.block("gcp-credentials", f"{pool}-gcp-credentials"))
    assert len(counter.calls()) <= MAX_PER_UP, f"new up:\n{kinds(counter)}"
    assert sandbox.work_pool(pool) is not None

    counter.clear()
    run = sandbox.run("up", pool, "--yes")
    assert "0 created, 0 updated, 0 replaced, 0 deleted" in run.stdout
    assert len(counter.calls()) <= MAX_PER_UP, f"no-op up:\n{kinds(counter)}"
    assert not [c for c in counter.calls() if c[0] in ("PATCH", "DELETE")]

    counter.clear()
    plan = json.loads(sandbox.run("preview", pool, "--json", "--expect-no-changes").stdout)
    assert [p["op"] for p in plan["prefect"]] == ["same", "same"]
    assert len(counter.calls()) <= MAX_PER_UP, f"preview:\n{kinds(counter)}"


def test_prefect_side_drift_shows_in_a_refreshed_preview_and_up_repairs_it(
    sandbox: Sandbox, counter: PrefectCounter
):
    # The writes that skip their reads must still see, and repair, what someone did by hand.
    pool = "drift" + secrets.token_hex(3)
    slug, block_name = "gcp-credentials", f"{pool}-gcp-credentials"
    sandbox.run("up", pool, *UP, "--yes")
    block = sandbox.block(slug, block_name)
    sandbox.remember_key(block)
    work_pool = sandbox.work_pool(pool)
    assert block is not None and work_pool is not None

    # Someone edits the block's data and the pool's region in the UI.
    info = {**block["data"]["service_account_info"], "client_email": "someone@else.example"}
    sandbox.prefect(
        "PATCH",
        f"/block_documents/{block['id']}",
        json={"data": {"service_account_info": info}, "merge_existing_data": False},
    ).raise_for_status()
    template = work_pool["base_job_template"]
    template["variables"]["properties"]["region"]["default"] = "us-east1"
    sandbox.prefect(
        "PATCH", f"/work_pools/{pool}", json={"base_job_template": template}
    ).raise_for_status()
    sandbox.run("preview", pool, "--expect-no-changes")  # without refresh: the state's view
    run = sandbox.run("preview", pool, "--refresh", "--json", "--expect-no-changes", expect=3)
    assert [p["op"] for p in json.loads(run.stdout)["prefect"]] == ["update", "update"]
    sandbox.run("up", pool, "--refresh", "--yes")
    repaired = sandbox.block(slug, block_name)
    assert repaired is not None and repaired["id"] == block["id"]
    assert repaired["data"] == block["data"]
    repaired_pool = sandbox.work_pool(pool)
    assert repaired_pool is not None and repaired_pool["id"] == work_pool["id"]
    props = repaired_pool["base_job_template"]["variables"]["properties"]
    assert props["region"]["default"] == "europe-west1"
    sandbox.run("preview", pool, "--refresh", "--expect-no-changes")

    # Then deletes both: a refreshed preview plans them again, and up makes them again.
    sandbox.prefect("DELETE", f"/work_pools/{pool}").raise_for_status()
    sandbox.prefect("DELETE", f"/block_documents/{block['id']}").raise_for_status()
    run = sandbox.run("preview", pool, "--refresh", "--json", "--expect-no-changes", expect=3)
    assert [p["op"] for p in json.loads(run.stdout)["prefect"]] == ["create", "create"]
    run = sandbox.run("up", pool, "--refresh", "--yes")
    remade = sandbox.block(slug, block_name)
    assert remade is not None and remade["id"] != block["id"]
    assert remade["data"] == block["data"]
    remade_pool = sandbox.work_pool(pool)
    assert remade_pool is not None
    props = remade_pool["base_job_template"]["variables"]["properties"]
    assert props["credentials"]["default"] == {"$ref": {"block_document_id": remade["id"]}}
    sandbox.run("preview", pool, "--refresh", "--expect-no-changes")
    shown = json.loads(sandbox.run("show", pool, "--json").stdout)
    assert shown["prefect"]["block_id"] == remade["id"]
    assert shown["prefect"]["work_pool_id"] == remade_pool["id"]
