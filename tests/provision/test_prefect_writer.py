"""The Prefect writer and client against a real Prefect server (``prefect_server`` fixture).

Every test uses its own names, so tests are independent of each other and of order.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Iterator

import httpx
import pytest

from provision.errors import InvalidInputError, PrefectError, PrefectUnreachableError
from provision.prefect import PrefectApi, PrefectClient, PrefectHttpError, PrefectWriter
from provision.prefect.writer import ServerFacts
from tests.prefect_server import PROTECTED_AUTH as AUTH
from tests.prefect_server import PrefectServer, free_port

SECRET = "-----BEGIN PRIVATE KEY-----s3cr3t-material-0123456789"
GCP = "gcp-credentials"


def unique(prefix: str) -> str:
    """A fresh, Prefect-valid name (lowercase letters, digits, dashes)."""
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def sa_info(**extra: str) -> dict[str, object]:
    """Block data shaped like a service-account key, with a secret in it."""
    return {
        "service_account_info": {
            "type": "service_account",
            "client_email": "runner@proj.iam.gserviceaccount.com",
            "private_key": SECRET,
            **extra,
        }
    }


@pytest.fixture
def writer(prefect_server: PrefectServer) -> Iterator[PrefectWriter]:
    api = PrefectApi(url=prefect_server.api_url, key=None, is_cloud=False, source="test")
    with PrefectWriter(api, attempts=3, backoff=0.05) as w:
        yield w


@pytest.fixture
def raw(prefect_server: PrefectServer) -> Iterator[httpx.Client]:
    """Plain HTTP to the server, for what a user would do by hand (UI edits) and for reads."""
    with httpx.Client(base_url=prefect_server.api_url + "/", timeout=15) as client:
        yield client


# -- server ------------------------------------------------------------------------------------


def test_default_template_for_worker_types(writer: PrefectWriter) -> None:
    for worker_type in (
        "cloud-run",
        "cloud-run-v2",
        "vertex-ai",
        "ecs",
        "azure-container-instance",
    ):
        template = writer.default_base_job_template(worker_type, push=False)
        assert set(template) >= {"job_configuration", "variables"}
    template = writer.default_base_job_template("cloud-run-v2", push=False)
    assert {"credentials", "region", "image", "service_account_name"} <= set(
        template["variables"]["properties"]
    )
    # Callers get a copy: editing it must not change what the next call returns.
    template["variables"]["properties"].clear()
    again = writer.default_base_job_template("cloud-run-v2", push=False)
    assert again["variables"]["properties"]


def test_server_version_is_the_servers_prefect_version(writer: PrefectWriter) -> None:
    from importlib.metadata import version

    # The default worker image follows it: prefecthq/prefect:<version>-python3.12.
    assert writer.server_version() == version("prefect")


def test_workers_are_the_ones_that_heartbeat_for_the_pool(
    writer: PrefectWriter, raw: httpx.Client
) -> None:
    name = unique("workers")
    writer.upsert_work_pool(name, "cloud-run-v2", "cloud-run-v2", False, {})
    assert writer.workers(name) == []
    # What `prefect worker start` sends every heartbeat interval.
    for worker in ("w-old", "w-new"):
        raw.post(
            f"work_pools/{name}/workers/heartbeat",
            json={"name": worker, "heartbeat_interval_seconds": 30},
        ).raise_for_status()
        time.sleep(0.05)
    workers = writer.workers(name)
    assert [w.name for w in workers] == ["w-new", "w-old"]  # newest heartbeat first
    assert {w.status for w in workers} == {"ONLINE"}
    assert all(w.last_heartbeat for w in workers)


def test_push_types_only_on_cloud(writer: PrefectWriter) -> None:
    with pytest.raises(PrefectError, match=r"'cloud-run-v2:push' exists only on Prefect Cloud"):
        writer.default_base_job_template("cloud-run-v2", push=True)


def test_unknown_worker_type(writer: PrefectWriter) -> None:
    with pytest.raises(PrefectError, match="does not offer work pool type 'no-such-worker'"):
        writer.default_base_job_template("no-such-worker", push=False)


# -- blocks ------------------------------------------------------------------------------------


def test_block_create_update_in_place_and_same(writer: PrefectWriter, raw: httpx.Client) -> None:
    name = unique("blk")
    assert writer.plan_block(GCP, name, sa_info()) == "create"
    assert writer.find_block(GCP, name) is None

    created = writer.upsert_block(GCP, name, sa_info(old_field="x"))
    assert created.op == "create"
    assert writer.upsert_block(GCP, name, sa_info(old_field="x")) == (created.__class__)(
        created.id, "same"
    )
    assert writer.plan_block(GCP, name, sa_info(old_field="x")) == "same"
    assert writer.plan_block(GCP, name, sa_info()) == "update"
    assert writer.plan_block(GCP, name, None) == "update"

    updated = writer.upsert_block(GCP, name, sa_info())
    assert (updated.id, updated.op) == (created.id, "update")
    # Replaced, not merged: the field we stopped setting is gone.
    stored = raw.get(f"block_documents/{created.id}", params={"include_secrets": "true"}).json()
    assert stored["data"] == sa_info()

    found = writer.find_block(GCP, name)
    assert found is not None
    assert found["id"] == created.id
    assert SECRET not in repr(found)  # read without secrets: obfuscated
    assert writer.get_block(created.id)["id"] == created.id  # type: ignore[index]


def test_block_type_not_registered(writer: PrefectWriter) -> None:
    with pytest.raises(PrefectError) as info:
        writer.upsert_block("aws-nonexistent-credentials", unique("blk"), {"a": "b"})
    assert "Block type 'aws-nonexistent-credentials' is not registered" in info.value.message
    assert "prefect block register -m prefect_aws" in str(info.value.hint)
    with pytest.raises(PrefectError, match="not registered"):
        writer.plan_block("aws-nonexistent-credentials", unique("blk"), None)


def test_delete_block_is_idempotent(writer: PrefectWriter) -> None:
    result = writer.upsert_block(GCP, unique("blk"), sa_info())
    assert writer.delete_block(result.id) is True
    assert writer.delete_block(result.id) is False
    assert writer.get_block(result.id) is None


# -- work pools --------------------------------------------------------------------------------


def make_block(writer: PrefectWriter) -> str:
    return writer.upsert_block(GCP, unique("creds"), sa_info()).id


def ref(block_id: str) -> dict[str, object]:
    return {"$ref": {"block_document_id": block_id}}


def test_pool_create_from_server_default_with_ref(writer: PrefectWriter) -> None:
    block_id = make_block(writer)
    name = unique("pool")
    defaults = {"credentials": ref(block_id), "region": "europe-west1"}
    assert writer.plan_work_pool(name, "cloud-run-v2", "cloud-run-v2", False, defaults) == "create"

    result = writer.upsert_work_pool(name, "cloud-run-v2", "cloud-run-v2", False, defaults)
    assert result.op == "create"

    pool = writer.get_work_pool(name)
    assert pool is not None
    assert pool["id"] == result.id
    assert pool["type"] == "cloud-run-v2"
    default = writer.default_base_job_template("cloud-run-v2", push=False)
    template = pool["base_job_template"]
    assert template["job_configuration"] == default["job_configuration"]
    props = template["variables"]["properties"]
    assert props["credentials"]["default"] == ref(block_id)
    assert props["region"]["default"] == "europe-west1"
    # Everything we don't own is the server default, untouched.
    assert props["image"] == default["variables"]["properties"]["image"]

    again = writer.upsert_work_pool(name, "cloud-run-v2", "cloud-run-v2", False, defaults)
    assert (again.id, again.op) == (result.id, "same")
    assert writer.plan_work_pool(name, "cloud-run-v2", "cloud-run-v2", False, defaults) == "same"


def test_server_rejects_ref_to_missing_block_on_create(writer: PrefectWriter) -> None:
    name = unique("pool")
    missing = str(uuid.uuid4())
    with pytest.raises(PrefectError) as info:
        writer.upsert_work_pool(
            name, "cloud-run-v2", "cloud-run-v2", False, {"credentials": ref(missing)}
        )
    assert "references a block document that does not exist" in info.value.message
    assert writer.get_work_pool(name) is None


def test_update_checks_refs_itself(writer: PrefectWriter) -> None:
    # The 3.8.8 server validates defaults on create only; a PATCH with a dangling $ref would
    # be accepted and fail at flow-run time, so the writer checks before writing.
    name = unique("pool")
    writer.upsert_work_pool(name, "cloud-run-v2", "cloud-run-v2", False, {"region": "us-east1"})
    missing = str(uuid.uuid4())
    with pytest.raises(PrefectError, match=f"block document {missing}, which does not exist"):
        writer.upsert_work_pool(
            name, "cloud-run-v2", "cloud-run-v2", False, {"credentials": ref(missing)}
        )


def test_update_keeps_user_edits_and_id(writer: PrefectWriter, raw: httpx.Client) -> None:
    block_id = make_block(writer)
    name = unique("pool")
    created = writer.upsert_work_pool(
        name, "cloud-run-v2", "cloud-run-v2", False, {"credentials": ref(block_id)}
    )
    # The user edits keys we don't own, as the UI would.
    pool = raw.get(f"work_pools/{name}").json()
    template = pool["base_job_template"]
    template["variables"]["properties"]["cpu"]["default"] = "2000m"
    template["job_configuration"]["job_body"]["metadata"] = {"labels": {"team": "data"}}
    assert raw.patch(f"work_pools/{name}", json={"base_job_template": template}).status_code == 204

    defaults = {"credentials": ref(block_id), "region": "asia-east1"}
    assert writer.plan_work_pool(name, "cloud-run-v2", "cloud-run-v2", False, defaults) == "update"
    updated = writer.upsert_work_pool(name, "cloud-run-v2", "cloud-run-v2", False, defaults)
    assert (updated.id, updated.op) == (created.id, "update")

    after = raw.get(f"work_pools/{name}").json()["base_job_template"]
    assert after["variables"]["properties"]["cpu"]["default"] == "2000m"
    assert after["job_configuration"]["job_body"]["metadata"] == {"labels": {"team": "data"}}
    assert after["variables"]["properties"]["region"]["default"] == "asia-east1"

    # None removes a default we set before (an option the user dropped).
    writer.upsert_work_pool(
        name, "cloud-run-v2", "cloud-run-v2", False, {"credentials": ref(block_id), "region": None}
    )
    final = raw.get(f"work_pools/{name}").json()["base_job_template"]
    assert "default" not in final["variables"]["properties"]["region"]
    assert final["variables"]["properties"]["cpu"]["default"] == "2000m"


def test_type_mismatch(writer: PrefectWriter) -> None:
    name = unique("pool")
    writer.upsert_work_pool(name, "cloud-run", "cloud-run", False, {})
    message = f"Work pool '{name}' exists with type 'cloud-run'"
    with pytest.raises(PrefectError, match=message):
        writer.upsert_work_pool(name, "cloud-run-v2", "cloud-run-v2", False, {})
    with pytest.raises(PrefectError, match=message):
        writer.plan_work_pool(name, "cloud-run-v2", "cloud-run-v2", False, {})


def test_undeclared_default_is_an_error(writer: PrefectWriter) -> None:
    name = unique("pool")
    defaults = {"region": "us-east1", "not_a_variable": 1, "also_not": 2}
    with pytest.raises(PrefectError, match="does not declare 'also_not', 'not_a_variable'"):
        writer.plan_work_pool(name, "cloud-run-v2", "cloud-run-v2", False, defaults)
    with pytest.raises(PrefectError, match="does not declare 'also_not', 'not_a_variable'"):
        writer.upsert_work_pool(name, "cloud-run-v2", "cloud-run-v2", False, defaults)
    assert writer.get_work_pool(name) is None


def test_invalid_default_is_rejected_by_the_server(writer: PrefectWriter) -> None:
    name = unique("pool")
    with pytest.raises(PrefectError, match="rejected the base job template") as info:
        writer.upsert_work_pool(name, "cloud-run-v2", "cloud-run-v2", False, {"timeout": "lots"})
    assert "\n" not in info.value.message  # one line; the full detail is in .details
    assert info.value.details


@pytest.mark.parametrize("prefix", ["prefect", "Prefect"])
def test_reserved_pool_names(writer: PrefectWriter, prefix: str) -> None:
    name = unique(prefix)
    # upsert relies on the server's 403, plan on the same rule checked locally.
    with pytest.raises(PrefectError, match="reserved") as info:
        writer.upsert_work_pool(name, "cloud-run-v2", "cloud-run-v2", False, {})
    assert not isinstance(info.value, PrefectHttpError)
    with pytest.raises(PrefectError, match="reserved"):
        writer.plan_work_pool(name, "cloud-run-v2", "cloud-run-v2", False, {})


def test_names_the_server_refuses(writer: PrefectWriter) -> None:
    with pytest.raises(PrefectError, match=r"rejected the work pool name 'a/b': name: "):
        writer.upsert_work_pool("a/b", "cloud-run-v2", "cloud-run-v2", False, {})
    with pytest.raises(PrefectError, match=r"rejected the block name 'Upper_Case': name: "):
        writer.upsert_block(GCP, "Upper_Case", sa_info())
    with pytest.raises(InvalidInputError):
        writer.get_work_pool("")
    with pytest.raises(InvalidInputError):
        writer.delete_block("")


def test_delete_pool_idempotent_and_only_our_own(writer: PrefectWriter) -> None:
    name = unique("pool")
    created = writer.upsert_work_pool(name, "cloud-run-v2", "cloud-run-v2", False, {})
    # Someone else's pool of the same name (another id): left alone.
    assert writer.delete_work_pool(name, expected_id=str(uuid.uuid4())) is False
    assert writer.get_work_pool(name) is not None
    assert writer.delete_work_pool(name, expected_id=created.id) is True
    assert writer.get_work_pool(name) is None
    assert writer.delete_work_pool(name, expected_id=created.id) is False
    assert writer.delete_work_pool(name) is False


def test_create_after_lost_response_converges(writer: PrefectWriter) -> None:
    # A create whose answer was lost (timeout) is retried and gets a 409: the writer must
    # converge to the existing objects instead of failing.
    block_name, pool_name = unique("blk"), unique("pool")
    first = writer.upsert_block(GCP, block_name, sa_info())
    writer.upsert_work_pool(pool_name, "cloud-run-v2", "cloud-run-v2", False, {})
    real_read, real_get = writer._read_block, writer.get_work_pool
    calls = {"block": 0, "pool": 0}

    def read_block_once_missing(*args: object, **kwargs: object) -> object:
        calls["block"] += 1
        return None if calls["block"] == 1 else real_read(*args, **kwargs)  # type: ignore[arg-type]

    def get_pool_once_missing(name: str) -> object:
        calls["pool"] += 1
        return None if calls["pool"] == 1 else real_get(name)

    writer._read_block = read_block_once_missing  # type: ignore[method-assign]
    writer.get_work_pool = get_pool_once_missing  # type: ignore[method-assign]
    block = writer.upsert_block(GCP, block_name, sa_info(extra="y"))
    assert (block.id, block.op) == (first.id, "update")
    pool = writer.upsert_work_pool(
        pool_name, "cloud-run-v2", "cloud-run-v2", False, {"region": "us-west1"}
    )
    assert pool.op == "update"


def counted(prefect_server: PrefectServer, facts: ServerFacts | None = None):
    """A writer whose every request is recorded as ``(method, path)``, and that record."""
    seen: list[tuple[str, str]] = []

    class Counting(httpx.HTTPTransport):
        def handle_request(self, request: httpx.Request) -> httpx.Response:
            seen.append((request.method, request.url.path.removeprefix("/api")))
            return super().handle_request(request)

    api = PrefectApi(url=prefect_server.api_url, key=None, is_cloud=False, source="test")
    client = PrefectClient(api, attempts=3, backoff=0.05, transport=Counting())
    return PrefectWriter(client, facts=facts), seen


def test_creates_and_writes_by_id_take_one_request_once_the_server_is_known(
    prefect_server: PrefectServer, raw: httpx.Client
) -> None:
    block_name, pool_name = unique("blk"), unique("pool")
    checker, _ = counted(prefect_server)
    with checker:
        checker.block_schema(GCP)
        checker.plan_work_pool(pool_name, "cloud-run-v2", "cloud-run-v2", False, {})
    # Another process, handed what the checks read: it asks for none of it again.
    facts = ServerFacts.from_json(checker.facts.to_json())
    assert not facts.blocks
    writer, seen = counted(prefect_server, facts)
    with writer:
        block = writer.create_block(GCP, block_name, sa_info())
        pool = writer.create_work_pool(
            pool_name, "cloud-run-v2", "cloud-run-v2", False, {"credentials": ref(block.id)}
        )
        assert seen == [("POST", "/block_documents/"), ("POST", "/work_pools/")]
        assert (block.op, pool.op) == ("create", "create")

        seen.clear()
        assert writer.write_block(block.id, GCP, block_name, sa_info(extra="x")).op == "update"
        assert seen == [("PATCH", f"/block_documents/{block.id}")]
        stored = raw.get(f"block_documents/{block.id}", params={"include_secrets": "true"})
        assert stored.json()["data"] == sa_info(extra="x")

        # The block was written by this process: the pool's update does not ask for it.
        seen.clear()
        update = writer.upsert_work_pool(
            pool_name, "cloud-run-v2", "cloud-run-v2", False, {"region": "us-east1"}
        )
        assert update.op == "update"
        assert seen == [("GET", f"/work_pools/{pool_name}"), ("PATCH", f"/work_pools/{pool_name}")]

    # A pool the check saw existing is updated, without a create the server would refuse.
    writer, seen = counted(prefect_server, ServerFacts.from_json(writer.facts.to_json()))
    with writer:
        same = writer.create_work_pool(
            pool_name, "cloud-run-v2", "cloud-run-v2", False, {"region": "us-east1"}
        )
        assert (same.id, same.op) == (pool.id, "same")
        assert seen == [("GET", f"/work_pools/{pool_name}")]


def test_create_of_a_taken_name_adopts_and_a_write_of_a_deleted_block_recreates_it(
    writer: PrefectWriter, raw: httpx.Client
) -> None:
    block_name, pool_name = unique("blk"), unique("pool")
    theirs = writer.upsert_block(GCP, block_name, sa_info())
    assert writer.create_block(GCP, block_name, sa_info()) == theirs.__class__(theirs.id, "same")
    adopted = writer.create_block(GCP, block_name, sa_info(extra="y"))
    assert (adopted.id, adopted.op) == (theirs.id, "update")

    pool = writer.upsert_work_pool(pool_name, "cloud-run-v2", "cloud-run-v2", False, {})
    # A writer that has not seen it tries to create it, and updates it on the 409.
    unaware = PrefectWriter(writer._client)
    again = unaware.create_work_pool(
        pool_name, "cloud-run-v2", "cloud-run-v2", False, {"region": "us-west1"}
    )
    assert (again.id, again.op) == (pool.id, "update")
    with pytest.raises(PrefectError, match="exists with type 'cloud-run-v2'"):
        PrefectWriter(writer._client).create_work_pool(pool_name, "ecs", "ecs", False, {})

    raw.delete(f"block_documents/{theirs.id}").raise_for_status()
    recreated = writer.write_block(theirs.id, GCP, block_name, sa_info())
    assert recreated.op == "create" and recreated.id != theirs.id
    assert writer.find_block(GCP, block_name)["id"] == recreated.id  # type: ignore[index]


def test_facts_from_a_bad_value_are_empty() -> None:
    for text in ("", "not json", "[1]", '{"templates": 3}'):
        assert ServerFacts.from_json(text) == ServerFacts()


# -- client: retries and errors ----------------------------------------------------------------


def test_unreachable_after_fast_retries() -> None:
    port = free_port()  # nothing listens there
    api = PrefectApi(url=f"http://127.0.0.1:{port}/api", key=SECRET, is_cloud=False, source="t")
    sleeps: list[float] = []

    def record(delay: float) -> None:
        sleeps.append(delay)
        time.sleep(delay)

    started = time.monotonic()
    client = PrefectClient(api, attempts=4, backoff=0.01, max_backoff=0.02, sleep=record)
    with PrefectWriter(client) as w, pytest.raises(PrefectUnreachableError) as info:
        w.get_work_pool("etl")
    assert time.monotonic() - started < 5
    assert len(sleeps) == 3
    assert all(0.005 <= s <= 0.02 for s in sleeps)  # exponential, jittered, capped
    assert info.value.message.startswith(
        f"Prefect API at http://127.0.0.1:{port}/api is unreachable: "
    )
    assert SECRET not in str(info.value)
    assert SECRET not in repr(info.value)
    assert SECRET not in repr(client)


def test_retries_ride_out_a_server_restart(prefect_server: PrefectServer) -> None:
    api = PrefectApi(url=prefect_server.api_url, key=None, is_cloud=False, source="t")
    prefect_server.stop()
    restarter = threading.Timer(0.3, prefect_server.start)
    restarter.start()
    try:
        # A window far longer than a restart: the server takes ~3 s alone, but 30 s or more
        # when the suite's parallel workers load both cores.
        with PrefectClient(api, attempts=400, backoff=0.2, max_backoff=0.5) as client:
            assert client.get("/health") is True
    finally:
        restarter.join()
        prefect_server.start()  # no-op when running; restores it if the timer failed


def test_retry_policy_statuses_and_retry_after() -> None:
    # Our retry policy over plain HTTP statuses; Prefect's API itself is never faked here.
    answers = [
        httpx.Response(503, json={"exception_message": "Service Unavailable"}),
        httpx.Response(429, headers={"Retry-After": "0.03"}, json={"detail": "slow down"}),
        httpx.Response(502, text="<html>bad gateway</html>"),
        httpx.Response(200, json={"ok": True}),
    ]
    seen: list[str] = []
    sleeps: list[float] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.path)
        return answers.pop(0)

    api = PrefectApi(url="http://prefect.test/api", key=SECRET, is_cloud=False, source="t")
    client = PrefectClient(
        api, attempts=5, backoff=0.01, transport=httpx.MockTransport(handler), sleep=sleeps.append
    )
    assert client.get("/thing") == {"ok": True}
    assert seen == ["/api/thing"] * 4
    assert sleeps[1] == pytest.approx(0.03)  # Retry-After honoured

    client = PrefectClient(
        api,
        attempts=2,
        transport=httpx.MockTransport(lambda r: httpx.Response(404, json={"detail": "nope"})),
        sleep=sleeps.append,
    )
    with pytest.raises(PrefectHttpError) as info:
        client.get("/missing")
    assert info.value.status_code == 404
    assert "nope" in info.value.message


def test_redirects_are_errors_not_followed() -> None:
    # Following would send the bearer key to wherever the redirect points.
    def handler(request: httpx.Request) -> httpx.Response:
        assert "elsewhere" not in str(request.url)
        return httpx.Response(307, headers={"Location": "https://elsewhere.test/api/health"})

    api = PrefectApi(url="http://prefect.test/api", key=SECRET, is_cloud=False, source="t")
    client = PrefectClient(api, attempts=1, transport=httpx.MockTransport(handler))
    with pytest.raises(PrefectError, match=r"redirected GET /health to https://elsewhere\.test"):
        client.get("/health")


def test_secrets_never_in_errors_logs_or_reprs(
    writer: PrefectWriter, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    # An invalid block name makes the server answer 422 with our whole request body echoed
    # back ("request_body", checked below): none of it may reach the error.
    with pytest.raises(PrefectError) as info:
        writer.upsert_block(GCP, "Upper_Name", sa_info())
    error = info.value
    for text in (str(error), repr(error), error.message, error.hint or "", error.details or ""):
        assert SECRET not in text
    assert error.message.startswith("Prefect rejected the block name 'Upper_Name': name: ")

    echoed = httpx.post(
        f"{writer.api.url}/block_documents/",
        json={
            "name": "Upper_Name",
            "data": sa_info(),
            "block_schema_id": str(uuid.uuid4()),
            "block_type_id": str(uuid.uuid4()),
        },
    )
    assert echoed.status_code == 422 and SECRET in echoed.text  # what we must not repeat

    result = writer.upsert_block(GCP, unique("blk"), sa_info())
    for obj in (writer, writer.api, result, writer._client):
        assert SECRET not in repr(obj)
        assert SECRET not in str(obj)
    assert SECRET not in caplog.text


def test_patch_errors_are_scrubbed_too() -> None:
    # A server that echoes the body in its detail (as some proxies do): the writer marks block
    # writes as secret and the client scrubs every string of the body from the message.
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(400, json={"detail": f"bad body: {request.content.decode()}"})

    api = PrefectApi(url="http://prefect.test/api", key=None, is_cloud=False, source="t")
    client = PrefectClient(api, attempts=1, transport=httpx.MockTransport(handler))
    with pytest.raises(PrefectHttpError) as info:
        client.patch("/block_documents/x", {"data": sa_info()}, secret=True)
    assert SECRET not in str(info.value)
    assert "bad body" in str(info.value)


# -- a server protected by PREFECT_SERVER_API_AUTH_STRING ---------------------------------------


def test_basic_auth_reaches_a_protected_server(protected_prefect_server: PrefectServer) -> None:
    api = PrefectApi(
        url=protected_prefect_server.api_url,
        key=None,
        is_cloud=False,
        source="test",
        auth_string=AUTH,
    )
    name = unique("auth")
    with PrefectWriter(api, attempts=2, backoff=0.05) as w:
        result = w.upsert_block(GCP, name, sa_info())
        assert result.op == "create" and result.id
        assert w.upsert_block(GCP, name, sa_info()).op == "same"


@pytest.mark.parametrize("auth_string", [None, "admin:wrong"])
def test_a_protected_server_refusal_says_what_to_set(
    protected_prefect_server: PrefectServer, auth_string: str | None
) -> None:
    api = PrefectApi(
        url=protected_prefect_server.api_url,
        key=None,
        is_cloud=False,
        source="test",
        auth_string=auth_string,
    )
    with PrefectWriter(api, attempts=1) as w, pytest.raises(PrefectHttpError) as info:
        w.upsert_block(GCP, unique("auth"), sa_info())
    assert info.value.status_code == 401
    assert "PREFECT_SERVER_API_AUTH_STRING" in (info.value.hint or "")
    assert "wrong" not in str(info.value) + (info.value.hint or "")
