"""The Cloud-like workspace (``tests/prefect_cloud.py``) behaves as Prefect Cloud does for the tool.

Through it, the real ``PrefectWriter`` reads Cloud's default templates (push and managed types),
writes ``modal-credentials`` and ``coiled-credentials`` blocks, and creates, updates and deletes
work pools of the Cloud-only types on a real Prefect server; every request is recorded.
"""

from __future__ import annotations

import copy
import json
import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import prefect
import pytest

from provision.errors import InvalidInputError, PrefectError
from provision.prefect import PrefectHttpError, PrefectWriter
from provision.prefect.config import resolve_api
from tests.prefect_cloud import FIXTURES, PrefectCloud, iter_workers, work_pool_types

MASK = "********"
"""What Prefect returns for a secret field read without ``include_secrets``."""

# (worker_type, push) per pool type, as PrefectWriter takes them, and the template variable the
# tool fills in for each.
POOL_TYPES = {
    "cloud-run:push": ("cloud-run", True, "credentials"),
    "cloud-run-v2:push": ("cloud-run-v2", True, "credentials"),
    "ecs:push": ("ecs", True, "aws_credentials"),
    "azure-container-instance:push": ("azure-container-instance", True, "aci_credentials"),
    "modal:push": ("modal", True, "modal_credentials"),
    "coiled:push": ("coiled", True, "credentials"),
    "prefect:managed": ("prefect:managed", False, "pip_packages"),
}


def unique(prefix: str) -> str:
    """A fresh, Prefect-valid name: the session's server is shared by every test."""
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def ref(block_id: str) -> dict[str, Any]:
    """A template default that points at a block document."""
    return {"$ref": {"block_document_id": block_id}}


@pytest.fixture
def writer(prefect_cloud: PrefectCloud) -> Iterator[PrefectWriter]:
    api = resolve_api(prefect_cloud.api_url, prefect_cloud.api_key, env={})
    with PrefectWriter(api, attempts=2, backoff=0.05) as w:
        yield w


@pytest.fixture
def raw(prefect_cloud: PrefectCloud) -> Iterator[httpx.Client]:
    """Plain HTTP to the workspace with its key, for reads the writer does not do."""
    with httpx.Client(
        base_url=prefect_cloud.api_url + "/",
        headers={"Authorization": f"Bearer {prefect_cloud.api_key}"},
        timeout=15,
    ) as client:
        yield client


# -- the workspace -----------------------------------------------------------------------------


def test_the_url_counts_as_cloud(prefect_cloud: PrefectCloud) -> None:
    api = resolve_api(prefect_cloud.api_url, prefect_cloud.api_key, env={})
    assert api.is_cloud
    assert api.url == prefect_cloud.api_url
    assert re.fullmatch(
        r"http://127\.0\.0\.1:\d+/api/accounts/[0-9a-f-]{36}/workspaces/[0-9a-f-]{36}",
        prefect_cloud.api_url,
    )
    # Cloud needs a key: the URL alone is refused before any request.
    with pytest.raises(InvalidInputError, match="needs an API key"):
        resolve_api(prefect_cloud.api_url, None, env={})
    assert prefect_cloud.env == {
        "PREFECT_API_URL": prefect_cloud.api_url,
        "PREFECT_API_KEY": prefect_cloud.api_key,
    }


def test_requests_without_the_key_get_401(prefect_cloud: PrefectCloud) -> None:
    url = prefect_cloud.api_url + "/health"
    wrong = {"Authorization": "Bearer pnu_wrong"}
    assert httpx.get(url, timeout=10).status_code == 401
    assert httpx.get(url, headers=wrong, timeout=10).status_code == 401
    # Basic auth is a self-hosted server's; Cloud takes keys only.
    assert httpx.get(url, auth=("admin", "x"), timeout=10).status_code == 401
    ok = httpx.get(url, headers={"Authorization": f"Bearer {prefect_cloud.api_key}"}, timeout=10)
    assert ok.status_code == 200
    assert [(r.path, r.status) for r in prefect_cloud.requests] == [
        ("/health", 401),
        ("/health", 401),
        ("/health", 401),
        ("/health", 200),
    ]

    api = resolve_api(prefect_cloud.api_url, "pnu_wrong", env={})
    with PrefectWriter(api, attempts=1) as w, pytest.raises(PrefectHttpError) as caught:
        w.default_base_job_template("modal", push=True)
    assert caught.value.status_code == 401
    assert "PREFECT_API_KEY" in (caught.value.hint or "")


def test_only_the_workspace_prefix_is_served(prefect_cloud: PrefectCloud) -> None:
    other = prefect_cloud.api_url.replace(prefect_cloud.workspace_id, str(uuid.uuid4()))
    headers = {"Authorization": f"Bearer {prefect_cloud.api_key}"}
    assert httpx.get(other + "/health", headers=headers, timeout=10).status_code == 404
    root = f"http://127.0.0.1:{prefect_cloud.port}/api/health"
    assert httpx.get(root, headers=headers, timeout=10).status_code == 404
    assert prefect_cloud.requests == []


# -- default templates -------------------------------------------------------------------------


def test_default_template_of_every_push_and_managed_type(
    writer: PrefectWriter, prefect_cloud: PrefectCloud
) -> None:
    expected_variables = {
        "cloud-run:push": {"credentials", "region", "image", "service_account_name"},
        "cloud-run-v2:push": {"credentials", "region", "image", "service_account_name"},
        "ecs:push": {"aws_credentials", "cluster", "vpc_id", "execution_role_arn"},
        "azure-container-instance:push": {
            "aci_credentials",
            "resource_group_name",
            "subscription_id",
            "identities",
            "image_registry",
        },
        "modal:push": {"modal_credentials", "env"},
        "coiled:push": {"credentials", "image", "software", "workspace"},
        "prefect:managed": {"pip_packages", "env", "image"},
    }
    for pool_type, (worker_type, push, _) in POOL_TYPES.items():
        template = writer.default_base_job_template(worker_type, push)
        assert set(template) == {"job_configuration", "variables"}
        assert expected_variables[pool_type] <= set(template["variables"]["properties"])
    # One read per type (the writer caches per type), each answered from the fixture.
    assert prefect_cloud.calls() == [("GET", "/collections/work_pool_types")] * len(POOL_TYPES)
    assert {r.status for r in prefect_cloud.requests} == {200}


def test_the_push_copies_are_the_bundled_worker_templates() -> None:
    """The fixture's pull-type push variants are the installed prefect's bundled worker
    templates; when prefect is upgraded this says the fixture needs regenerating."""
    bundled_path = (
        Path(prefect.__file__).parent
        / "server/api/collections_data/views/aggregate-worker-metadata.json"
    )
    bundled = json.loads(bundled_path.read_text())
    served = work_pool_types()
    for collection, worker in (
        ("prefect-gcp", "cloud-run"),
        ("prefect-gcp", "cloud-run-v2"),
        ("prefect-aws", "ecs"),
        ("prefect-azure", "azure-container-instance"),
    ):
        push = served[collection][f"{worker}:push"]
        original = bundled[collection][worker]
        assert push["type"] == f"{worker}:push"
        assert push["is_push_pool"] is True
        assert push["default_base_job_configuration"] == original["default_base_job_configuration"]
        # Cloud lists the worker types too, unchanged.
        assert served[collection][worker] == original
    # Every entry is keyed by its type, as Cloud's document is (terraform-provider-prefect's
    # prefect_worker_metadata indexes Cloud's answer by those keys).
    assert all(key == entry["type"] for _, key, entry in iter_workers(served))


@pytest.mark.parametrize(
    ("pool_type", "variable", "slug", "definition"),
    [
        ("modal:push", "modal_credentials", "modal-credentials", "ModalCredentials"),
        ("coiled:push", "credentials", "coiled-credentials", "CoiledCredentials"),
    ],
)
def test_credential_variables_reference_the_block_types(
    pool_type: str, variable: str, slug: str, definition: str
) -> None:
    """The template's credentials variable is a block of the type the proxy registers, with
    the same fields, so the UI (and the server's default validation) see one schema."""
    (entry,) = [e for _, _, e in iter_workers(work_pool_types()) if e["type"] == pool_type]
    variables = entry["default_base_job_configuration"]["variables"]
    assert variables["properties"][variable]["$ref"] == f"#/definitions/{definition}"
    schema = json.loads((FIXTURES / f"{slug}.json").read_text())["block_schema"]["fields"]
    without_positions = copy.deepcopy(schema)
    for prop in without_positions["properties"].values():
        prop.pop("position", None)
    assert variables["definitions"][definition] == without_positions
    assert schema["block_type_slug"] == slug


def test_every_placeholder_of_the_cloud_only_templates_is_declared() -> None:
    for _, _, entry in iter_workers(work_pool_types()):
        if entry["type"] not in ("modal:push", "coiled:push", "prefect:managed"):
            continue
        template = entry["default_base_job_configuration"]
        used = set(re.findall(r"{{\s*(\w+)\s*}}", json.dumps(template["job_configuration"])))
        assert used == set(template["variables"]["properties"])


# -- blocks ------------------------------------------------------------------------------------


def test_modal_credentials_block_round_trips_with_its_secret_masked(
    writer: PrefectWriter, prefect_cloud: PrefectCloud, raw: httpx.Client
) -> None:
    name = unique("modal")
    data = {"token_id": "ak-" + uuid.uuid4().hex, "token_secret": "as-" + uuid.uuid4().hex}
    created = writer.upsert_block("modal-credentials", name, data)
    assert created.op == "create"

    # Exactly what the tool sent, in order.
    schema_filter = prefect_cloud.requests[1]
    assert prefect_cloud.calls() == [
        ("GET", "/block_types/slug/modal-credentials"),
        ("POST", "/block_schemas/filter"),
        ("GET", f"/block_types/slug/modal-credentials/block_documents/name/{name}"),
        ("POST", "/block_documents/"),
    ]
    block_type_id = prefect_cloud.block_type_ids["modal-credentials"]
    assert schema_filter.json == {
        "block_schemas": {"block_type_id": {"any_": [block_type_id]}},
        "limit": 1,
    }
    assert prefect_cloud.requests[2].query == {"include_secrets": "true"}
    post = prefect_cloud.requests[3]
    assert post.json["name"] == name
    assert post.json["data"] == data
    assert post.json["block_type_id"] == block_type_id
    assert post.status == 201

    stored = raw.get(f"block_documents/{created.id}", params={"include_secrets": "true"}).json()
    assert stored["data"] == data
    assert stored["block_type"]["slug"] == "modal-credentials"
    assert stored["block_schema"]["fields"]["secret_fields"] == ["token_secret"]

    found = writer.find_block("modal-credentials", name)
    assert found is not None
    assert found["data"] == {"token_id": data["token_id"], "token_secret": MASK}
    assert data["token_secret"] not in json.dumps(found)

    rotated = {**data, "token_secret": "as-" + uuid.uuid4().hex}
    assert writer.upsert_block("modal-credentials", name, rotated) == type(created)(
        created.id, "update"
    )
    assert writer.upsert_block("modal-credentials", name, rotated).op == "same"
    assert writer.delete_block(created.id)


def test_coiled_credentials_block_round_trips_with_its_secret_masked(
    writer: PrefectWriter, prefect_cloud: PrefectCloud, raw: httpx.Client
) -> None:
    name = unique("coiled")
    data = {"api_token": "coiled-" + uuid.uuid4().hex}
    created = writer.upsert_block("coiled-credentials", name, data)
    assert created.op == "create"
    assert prefect_cloud.requests[-1].json["data"] == data

    # The field to write is read from the schema on the server, as the tool does for Coiled.
    block_type = raw.get("block_types/slug/coiled-credentials").json()
    (schema,) = raw.post(
        "block_schemas/filter",
        json={"block_schemas": {"block_type_id": {"any_": [block_type["id"]]}}, "limit": 1},
    ).json()
    assert list(schema["fields"]["properties"]) == ["api_token"]
    assert schema["fields"]["secret_fields"] == ["api_token"]

    stored = raw.get(f"block_documents/{created.id}", params={"include_secrets": "true"}).json()
    assert stored["data"] == data
    found = writer.find_block("coiled-credentials", name)
    assert found is not None
    assert found["data"] == {"api_token": MASK}
    assert writer.delete_block(created.id)


# -- work pools --------------------------------------------------------------------------------


def _defaults(pool_type: str, writer: PrefectWriter, generation: int) -> dict[str, Any]:
    """Template defaults the tool would set for a pool of ``pool_type`` (a new block for the
    credentials types, so each generation changes the pool)."""
    if pool_type == "modal:push":
        block = writer.upsert_block(
            "modal-credentials",
            unique("modal"),
            {"token_id": f"ak-{generation}", "token_secret": f"as-{uuid.uuid4().hex}"},
        )
        return {"modal_credentials": ref(block.id)}
    if pool_type == "coiled:push":
        block = writer.upsert_block(
            "coiled-credentials", unique("coiled"), {"api_token": uuid.uuid4().hex}
        )
        return {"credentials": ref(block.id), "image": ""}
    return {
        "pip_packages": ["pandas", f"prefect-aws=={generation}.0"],
        "env": {"GENERATION": str(generation)},
    }


@pytest.mark.parametrize("pool_type", ["modal:push", "coiled:push", "prefect:managed"])
def test_work_pool_of_each_cloud_only_type_is_created_updated_and_deleted(
    pool_type: str, writer: PrefectWriter, prefect_cloud: PrefectCloud, raw: httpx.Client
) -> None:
    worker_type, push, _ = POOL_TYPES[pool_type]
    name = unique("pool")
    first = _defaults(pool_type, writer, 1)
    prefect_cloud.clear()

    assert writer.plan_work_pool(name, pool_type, worker_type, push, first) == "create"
    created = writer.upsert_work_pool(name, pool_type, worker_type, push, first)
    assert created.op == "create"
    (post,) = [r for r in prefect_cloud.requests if r.method == "POST"]
    assert post.path == "/work_pools/"
    assert (post.json["name"], post.json["type"], post.status) == (name, pool_type, 201)
    sent = post.json["base_job_template"]["variables"]["properties"]
    assert {key: sent[key]["default"] for key in first} == first

    pool = raw.get(f"work_pools/{name}").json()
    assert pool["type"] == pool_type
    assert pool["id"] == created.id
    properties = pool["base_job_template"]["variables"]["properties"]
    assert {key: properties[key]["default"] for key in first} == first

    second = _defaults(pool_type, writer, 2)
    assert writer.plan_work_pool(name, pool_type, worker_type, push, second) == "update"
    prefect_cloud.clear()
    updated = writer.upsert_work_pool(name, pool_type, worker_type, push, second)
    assert (updated.id, updated.op) == (created.id, "update")
    (patch,) = [r for r in prefect_cloud.requests if r.method == "PATCH"]
    assert (patch.path, patch.status) == (f"/work_pools/{name}", 204)
    properties = raw.get(f"work_pools/{name}").json()["base_job_template"]["variables"][
        "properties"
    ]
    assert {key: properties[key]["default"] for key in second} == second
    assert writer.upsert_work_pool(name, pool_type, worker_type, push, second).op == "same"

    prefect_cloud.clear()
    assert writer.delete_work_pool(name, expected_id=created.id)
    assert prefect_cloud.calls() == [
        ("GET", f"/work_pools/{name}"),
        ("DELETE", f"/work_pools/{name}"),
    ]
    assert writer.get_work_pool(name) is None
    assert not writer.delete_work_pool(name)


def test_a_pool_referencing_a_missing_block_is_refused(writer: PrefectWriter) -> None:
    """The server resolves ``$ref`` defaults on create, through the proxy as on Cloud."""
    with pytest.raises(PrefectError, match="references a block document that does not exist"):
        writer.upsert_work_pool(
            unique("pool"),
            "modal:push",
            "modal",
            True,
            {"modal_credentials": ref(str(uuid.uuid4()))},
        )
