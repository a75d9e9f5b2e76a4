"""The Prefect side's dynamic providers against a real Prefect server, called as the engine
calls them (create, diff, update, read, delete), in-process, in the context a
``DynamicProviderHost`` gives its calls (``provider_context``)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import httpx
import pytest

from provision.dynamic_host import provider_context
from provision.prefect.resources import (
    BlockProvider,
    PrefectStepFailed,
    WorkPoolProvider,
    data_hash,
)
from provision.prefect.tokens import ENV_KEY, ENV_OWNED, ENV_URL
from tests.prefect_server import PrefectServer

SECRET = "-----BEGIN PRIVATE KEY-----s3cr3t-0123456789"


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def url(prefect_server: PrefectServer) -> Iterator[str]:
    """The server, and the mapping the service gives the provider for it."""
    env = {ENV_URL: prefect_server.api_url, ENV_KEY: "pnu_never-sent-to-a-self-hosted-server"}
    with provider_context(env):
        yield prefect_server.api_url


@pytest.fixture
def raw(url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=url + "/", timeout=15) as client:
        yield client


def block_props(url: str, name: str, **data: str) -> dict:
    info = {"type": "service_account", "private_key": SECRET, **data}
    return {
        "api_url": url,
        "block_type": "gcp-credentials",
        "name": name,
        "data": {"service_account_info": info},
    }


def test_a_block_is_created_updated_in_place_and_deleted(url: str, raw: httpx.Client):
    provider = BlockProvider()
    props = block_props(url, unique("blk"))
    created = provider.create(props)
    outs = created.outs
    assert outs["created"] is True and outs["block_id"] == created.id
    assert outs["data_hash"] == data_hash(props["data"]) and "data" not in outs

    assert provider.diff(created.id, outs, props).changes is False
    newer = block_props(url, props["name"], client_email="x@y")
    diff = provider.diff(created.id, outs, newer)
    assert diff.changes is True and diff.replaces == []
    assert provider.diff(created.id, outs, {**props, "name": unique("other")}).replaces == ["name"]
    updated = provider.update(created.id, outs, newer)
    assert updated.outs["block_id"] == created.id and updated.outs["created"] is True

    provider.delete(created.id, updated.outs)
    assert raw.get(f"block_documents/{created.id}").status_code == 404


def test_a_block_that_existed_is_adopted_and_never_deleted(url: str, raw: httpx.Client):
    provider = BlockProvider()
    props = block_props(url, unique("blk"))
    theirs = provider.create(props)  # someone else's block of that name
    adopted = provider.create(block_props(url, props["name"], client_email="mine"))
    assert adopted.id == theirs.id and adopted.outs["created"] is False
    provider.delete(adopted.id, adopted.outs)
    assert raw.get(f"block_documents/{theirs.id}").status_code == 200


def test_a_legacy_pools_own_block_is_adopted_as_its_own(url, raw):
    provider = BlockProvider()
    props = block_props(url, unique("blk"))
    made_earlier = provider.create(props)
    with provider_context({ENV_URL: url, ENV_OWNED: f"unrelated,{made_earlier.id}"}):
        again = provider.create(props)
    assert again.id == made_earlier.id and again.outs["created"] is True


def test_read_sees_an_edited_or_deleted_block(url: str, raw: httpx.Client):
    provider = BlockProvider()
    props = block_props(url, unique("blk"))
    created = provider.create(props)
    assert provider.read(created.id, created.outs).outs["data_hash"] == created.outs["data_hash"]
    raw.patch(
        f"block_documents/{created.id}",
        json={
            "data": {"service_account_info": {"edited": "by hand"}},
            "merge_existing_data": False,
        },
    ).raise_for_status()
    drifted = provider.read(created.id, created.outs)
    assert drifted.outs["data_hash"] != created.outs["data_hash"]
    assert provider.diff(created.id, drifted.outs, props).changes is True
    raw.delete(f"block_documents/{created.id}").raise_for_status()
    assert provider.read(created.id, created.outs).id is None


def pool_props(url: str, name: str, region: str = "europe-west1") -> dict:
    return {
        "api_url": url,
        "name": name,
        "type": "cloud-run-v2",
        "worker_type": "cloud-run-v2",
        "push": False,
        "defaults": {"region": region},
    }


def test_a_work_pool_keeps_user_edits_and_reads_back_drift(url: str, raw: httpx.Client):
    provider = WorkPoolProvider()
    props = pool_props(url, unique("pool"))
    created = provider.create(props)
    assert created.outs["created"] is True and created.outs["pool_id"] == created.id
    assert provider.diff(created.id, created.outs, props).changes is False

    # A user edits a key the tool does not own, and one it does.
    pool = raw.get(f"work_pools/{props['name']}").json()
    template = pool["base_job_template"]
    template["variables"]["properties"]["cpu"]["default"] = 2000
    template["variables"]["properties"]["region"]["default"] = "us-east1"
    raw.patch(f"work_pools/{props['name']}", json={"base_job_template": template})

    read = provider.read(created.id, created.outs)
    assert read.outs["defaults"] == {"region": "us-east1"}
    assert provider.diff(created.id, read.outs, props).changes is True
    provider.update(created.id, read.outs, props)
    after = raw.get(f"work_pools/{props['name']}").json()["base_job_template"]
    assert after["variables"]["properties"]["region"]["default"] == "europe-west1"
    assert after["variables"]["properties"]["cpu"]["default"] == 2000

    assert provider.diff(created.id, created.outs, {**props, "type": "cloud-run"}).replaces == [
        "type"
    ]
    provider.delete(created.id, created.outs)
    assert raw.get(f"work_pools/{props['name']}").status_code == 404


def test_an_adopted_work_pool_is_never_deleted(url: str, raw: httpx.Client):
    name = unique("pool")
    raw.post("work_pools/", json={"name": name, "type": "cloud-run-v2"}).raise_for_status()
    provider = WorkPoolProvider()
    adopted = provider.create(pool_props(url, name))
    assert adopted.outs["created"] is False
    provider.delete(adopted.id, adopted.outs)
    assert raw.get(f"work_pools/{name}").status_code == 200
    raw.delete(f"work_pools/{name}")


def test_errors_are_the_tools_one_line_and_no_credential_goes_to_another_server(
    url: str, monkeypatch: pytest.MonkeyPatch
):
    from provision.prefect import resources

    seen = []
    real = resources._writer

    def spy(api_url: str):
        writer = real(api_url)
        seen.append((api_url, writer.api.key))
        return writer

    monkeypatch.setattr(resources, "_writer", spy)
    monkeypatch.setenv("PROVISION_TEST_NOTHING", "1")
    with pytest.raises(PrefectStepFailed, match=r"127\.0\.0\.1:9"):
        BlockProvider().create(block_props("http://127.0.0.1:9/api", unique("blk")))
    assert seen == [("http://127.0.0.1:9/api", None)]


def test_a_preview_with_values_not_known_yet_plans_a_change(url: str):
    from pulumi.runtime import rpc

    class Opaque:  # what a preview may hand over for a value not computed yet
        pass

    props = block_props(url, unique("blk"))
    outs = {**props, "data_hash": data_hash(props["data"])}
    for unknown in (rpc.UNKNOWN, {"service_account_info": rpc.UNKNOWN}, Opaque()):
        assert BlockProvider().diff("id", outs, {**props, "data": unknown}).changes is True
    pool = pool_props(url, unique("pool"))
    for unknown in (rpc.UNKNOWN, {"credentials": {"$ref": {"block_document_id": Opaque()}}}):
        assert WorkPoolProvider().diff("id", pool, {**pool, "defaults": unknown}).changes is True
