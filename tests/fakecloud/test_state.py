"""The state store: layout, queries, tombstones, and safety across processes."""

from __future__ import annotations

import json
import multiprocessing
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from tests.fakecloud.state import FakeCloud, split_token

ACCOUNT = "gcp:serviceaccount/account:Account"


def test_one_json_file_per_object_under_cloud_and_type(cloud: FakeCloud, state_dir: Path) -> None:
    rid = "projects/p/serviceAccounts/a@p.iam.gserviceaccount.com"
    cloud.put(ACCOUNT, rid, {"email": "a@p.iam.gserviceaccount.com"}, name="sa")

    path = cloud.path_for(ACCOUNT, rid)
    assert path.parent == state_dir / "gcp" / "serviceaccount.account.Account"
    record = json.loads(path.read_text())
    assert record["id"] == rid and record["name"] == "sa" and record["deleted"] is False
    assert cloud.get(ACCOUNT, rid)["properties"]["email"] == "a@p.iam.gserviceaccount.com"


def test_split_token_handles_every_cloud_naming() -> None:
    assert split_token("aws:iam/role:Role") == ("aws", "iam.role.Role")
    assert split_token("azure-native:resources:ResourceGroup") == (
        "azure-native",
        "resources.ResourceGroup",
    )


def test_long_ids_get_short_unique_file_names(cloud: FakeCloud) -> None:
    base = "projects/p/serviceAccounts/" + "a" * 200
    first, second = cloud.path_for(ACCOUNT, base + "1"), cloud.path_for(ACCOUNT, base + "2")
    assert first != second and len(first.name) < 255 and len(second.name) < 255
    cloud.put(ACCOUNT, base + "1", {})
    assert cloud.get(ACCOUNT, base + "1")["id"] == base + "1"


def test_queries_filter_by_type_and_properties(cloud: FakeCloud) -> None:
    cloud.put(ACCOUNT, "b", {"email": "b@x"})
    cloud.put(ACCOUNT, "a", {"email": "a@x"})
    cloud.put("gcp:projects/service:Service", "p/run.googleapis.com", {})

    assert [r["id"] for r in cloud.resources(ACCOUNT)] == ["a", "b"]
    assert cloud.count() == 3 and cloud.count(ACCOUNT) == 2 and cloud.count(cloud="aws") == 0
    assert [r["id"] for r in cloud.find(ACCOUNT, email="b@x")] == ["b"]


def test_tombstones_are_hidden_unless_asked_for(cloud: FakeCloud) -> None:
    cloud.put(ACCOUNT, "a", {})
    assert cloud.remove(ACCOUNT, "a", tombstone=True)

    assert cloud.get(ACCOUNT, "a") is None and cloud.count() == 0
    assert cloud.get(ACCOUNT, "a", include_deleted=True)["deletedAt"] is not None
    assert not cloud.remove(ACCOUNT, "a"), "removing a tombstone again is a no-op"


def test_edit_changes_and_removes_properties_out_of_band(cloud: FakeCloud) -> None:
    cloud.put(ACCOUNT, "a", {"displayName": "x", "description": "d"})
    cloud.edit(ACCOUNT, "a", displayName="drifted", description=None)
    assert cloud.get(ACCOUNT, "a")["properties"] == {"displayName": "drifted"}


def test_calls_filter_by_op_type_phase_and_preview(cloud: FakeCloud) -> None:
    cloud.log_call({"op": "create", "type": ACCOUNT, "phase": "begin"})
    cloud.log_call({"op": "create", "type": ACCOUNT, "phase": "end"})
    cloud.log_call({"op": "create", "type": ACCOUNT, "phase": "end", "preview": True})
    cloud.log_call({"op": "delete", "type": ACCOUNT, "phase": "end"})

    assert len(cloud.calls("create")) == 1
    assert len(cloud.calls("create", include_preview=True)) == 2
    assert len(cloud.calls("create", phase="begin")) == 1
    assert len(cloud.calls(type_token=ACCOUNT, phase=None, include_preview=True)) == 4


def test_calls_leave_a_line_still_being_appended_for_the_next_read(
    cloud: FakeCloud, state_dir: Path
) -> None:
    # What a poll saw in CI: a provider's append was visible up to a page boundary.
    cloud.log_call({"op": "create", "type": ACCOUNT, "phase": "begin"})
    with (state_dir / "calls.jsonl").open("a") as log:
        log.write('{"cloud": "aws", "id": "/prefect/ecs/p", "name": "p-logs",')
    assert len(cloud.calls("create", phase="begin")) == 1

    with (state_dir / "calls.jsonl").open("a") as log:
        log.write(' "op": "create", "phase": "begin"}\n')
    assert [c.get("name") for c in cloud.calls("create", phase="begin")] == [None, "p-logs"]


def _worker(state_dir: str, index: int, results: multiprocessing.Queue) -> None:
    cloud = FakeCloud(state_dir)
    claimed = 0
    for n in range(20):
        with cloud.transaction():  # check-then-write, like a create that must not collide
            if cloud.get(ACCOUNT, f"shared-{n}") is None:
                cloud.put(ACCOUNT, f"shared-{n}", {"owner": index})
        cloud.put(ACCOUNT, f"own-{index}-{n}", {"n": n})
        claimed += cloud.claim_once("fault-x")
        cloud.log_call({"op": "create", "phase": "end", "worker": index})
    results.put(claimed)


def test_parallel_processes_neither_corrupt_nor_double_claim(state_dir: Path) -> None:
    """Two stacks run their providers in parallel against one state dir."""
    ctx = multiprocessing.get_context("fork")
    results = ctx.Queue()
    workers = [ctx.Process(target=_worker, args=(str(state_dir), i, results)) for i in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=60)
        assert worker.exitcode == 0

    cloud = FakeCloud(state_dir)
    assert sum(results.get() for _ in workers) == 1, "a once-fault fires exactly once"
    assert cloud.count(ACCOUNT) == 20 + 4 * 20  # every file parses: no torn writes
    assert len(cloud.calls("create")) == 80  # no interleaved log lines
    assert not list(state_dir.rglob("*.tmp")), "temp files are always renamed into place"


def test_threads_of_one_process_exclude_each_other(cloud: FakeCloud) -> None:
    """A provider may run its handlers in worker threads (``Cloud.blocking_io``), all on one
    FakeCloud: a transaction must shut out the other threads too, not only other processes."""
    cloud.put(ACCOUNT, "counter", {"n": 0})

    def increment() -> None:
        with cloud.transaction():
            n = cloud.get(ACCOUNT, "counter")["properties"]["n"]
            time.sleep(0.005)  # room for another thread's lost update
            cloud.put(ACCOUNT, "counter", {"n": n + 1})  # re-enters the transaction

    with ThreadPoolExecutor(8) as pool:
        for future in [pool.submit(increment) for _ in range(40)]:
            future.result()
    assert cloud.get(ACCOUNT, "counter")["properties"]["n"] == 40
