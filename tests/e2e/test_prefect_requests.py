"""How many requests one ``provision`` command sends to Prefect (issue 15: at most 6 per ``up``).

The real command and engine, fake GCP, the session's real Prefect server behind a loopback proxy
that records every request it forwards (``tests/prefect_counter.py``): the service process and
the engine's dynamic-provider process are both counted, at the server's door.
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
