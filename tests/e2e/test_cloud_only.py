"""Cloud-only pool types end to end: ``modal:push``, ``coiled:push`` and ``prefect:managed``.

The real ``provision`` command and the real pulumi engine, against the Cloud-like workspace of
``tests/prefect_cloud.py`` (the session's real Prefect server behind a loopback proxy that
records every request). The tokens come from the sandbox user's own environment or files, as
the ``modal`` and ``coiled`` CLIs leave them; that home lies outside the sandbox root, so the
leak scan of every file under the root (state, work dirs, logs) finds them nowhere.

Each type's life cycle shares one pool across its assertions: offline and online previews,
``up``, the exact requests that reach Cloud, a rerun that changes nothing, ``list``/``show``,
and ``destroy``.
"""

from __future__ import annotations

import copy
import json
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from provision.prefect.tokens import BLOCK_TYPE
from tests.contract import PREVIEW_KEYS
from tests.e2e.conftest import Run, Sandbox, share_backend
from tests.prefect_cloud import PrefectCloud, Recorded, iter_workers, work_pool_types
from tests.prefect_server import free_port

pytestmark = pytest.mark.e2e

SECRET_SIG = "4dabf18193072939515e22adb298388d"
"""The key Pulumi marks a secret value with in state (``resource.SecretSig``)."""

# Environment the developer running the tests may have, which would hand the tool a token.
_TOKEN_ENV_PREFIXES = ("MODAL_", "DASK_", "COILED_")


@dataclass(frozen=True)
class Kind:
    """One Cloud-only pool type, as the tests drive and check it."""

    type: str
    args: tuple[str, ...]
    """``up``'s flags besides ``--type``."""
    location: str
    """The ``list`` column."""
    block_type: str | None
    fields: tuple[str, ...] = ()
    """The block's data keys."""

    def defaults(self, block_id: str | None) -> dict[str, Any]:
        """The template defaults the tool owns (``block_id`` None: the plan's placeholder)."""
        ref = {"$ref": {"block_document_id": block_id or "<created on up>"}}
        if self.type == "modal:push":
            return {"modal_credentials": ref}
        if self.type == "coiled:push":
            return {"credentials": ref}
        return {"pip_packages": ["a", "b"], "env": {"K": "V"}}


MODAL = Kind("modal:push", (), "Modal", "modal-credentials", ("token_id", "token_secret"))
COILED = Kind("coiled:push", (), "Coiled", "coiled-credentials", ("api_token",))
MANAGED = Kind(
    "prefect:managed",
    ("--pip-package", "a", "--pip-package", "b", "--env", "K=V"),
    "Prefect Cloud",
    None,
)
KINDS = (MODAL, COILED, MANAGED)


# -- the user's machine ---------------------------------------------------------------------


@pytest.fixture
def box(
    sandbox: Sandbox, prefect_cloud: PrefectCloud, tmp_path_factory: pytest.TempPathFactory
) -> Sandbox:
    """The sandbox pointed at the Cloud-like workspace, with a home of its own and no token."""
    for key in [k for k in sandbox.env if k.startswith(_TOKEN_ENV_PREFIXES)]:
        del sandbox.env[key]
    sandbox.env.update(prefect_cloud.env)
    home = tmp_path_factory.mktemp("user-home")
    sandbox.env["HOME"] = str(home)
    # dask reads /etc/dask too: an empty directory instead, so only this home counts.
    sandbox.env["DASK_ROOT_CONFIG"] = str(home / "no-etc-dask")
    return sandbox


@pytest.fixture
def pool() -> str:
    """A pool name of its own: every test shares the session's Prefect server."""
    return "cloud" + secrets.token_hex(3)


def modal_token(box: Sandbox) -> dict[str, str]:
    """A fresh Modal token, its values remembered for the leak scan."""
    token = {
        "token_id": "ak-" + secrets.token_hex(10),
        "token_secret": "as-" + secrets.token_hex(16),
    }
    box.secrets.update(token.values())
    return token


def modal_env(token: dict[str, str]) -> dict[str, str]:
    return {"MODAL_TOKEN_ID": token["token_id"], "MODAL_TOKEN_SECRET": token["token_secret"]}


def write_modal_toml(home: Path, token: dict[str, str]) -> None:
    """``~/.modal.toml`` as ``modal token new`` writes it."""
    home.mkdir(parents=True, exist_ok=True)
    (home / ".modal.toml").write_text(
        f'[default]\ntoken_id = "{token["token_id"]}"\n'
        f'token_secret = "{token["token_secret"]}"\nactive = true\n'
    )


def give_token(box: Sandbox, kind: Kind) -> dict[str, str]:
    """Put a token for ``kind`` on the machine as its CLI would; the block data it makes.

    Modal through the environment; Coiled in the dask config file ``coiled login`` writes.
    """
    if kind is MODAL:
        token = modal_token(box)
        box.env.update(modal_env(token))
        return token
    if kind is COILED:
        value = secrets.token_hex(20)
        box.secrets.add(value)
        dask = Path(box.env["HOME"]) / ".config" / "dask"
        dask.mkdir(parents=True, exist_ok=True)
        (dask / "coiled.yaml").write_text(f"coiled:\n  token: {value}\n  user: someone\n")
        return {"api_token": value}
    return {}


def same_secret(actual: Any, expected: Any) -> bool:
    """Compared outside an ``assert``, so a failure never prints a token."""
    return actual == expected


# -- what the tool wrote --------------------------------------------------------------------


def writes(cloud: PrefectCloud) -> list[Recorded]:
    """Requests that change something (a schema filter is a read, sent as POST)."""
    return [r for r in cloud.requests if r.method != "GET" and not r.path.endswith("/filter")]


def checkpoint_path(box: Sandbox, pool: str) -> Path:
    """The pool's state file in the sandbox's local backend."""
    return box.local_backend / ".pulumi" / "stacks" / "provision" / f"{pool}.json"


def default_template(pool_type: str) -> dict[str, Any]:
    """The fixture's default base job template for ``pool_type`` (what Cloud serves)."""
    (entry,) = [e for _, _, e in iter_workers(work_pool_types()) if e["type"] == pool_type]
    return copy.deepcopy(entry["default_base_job_configuration"])


def with_defaults(template: dict[str, Any], defaults: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``template`` with ``defaults`` set as its variables' defaults."""
    template = copy.deepcopy(template)
    for key, value in defaults.items():
        template["variables"]["properties"][key]["default"] = value
    return template


def latest_schema_id(server_url: str, block_type_id: str) -> str:
    """The block type's newest schema on the real server."""
    found = httpx.post(
        f"{server_url}/block_schemas/filter",
        json={"block_schemas": {"block_type_id": {"any_": [block_type_id]}}, "limit": 1},
        timeout=15,
    ).raise_for_status()
    return found.json()[0]["id"]


def one_line(run: Run) -> str:
    """The single line a refused command prints, asserted to be one line."""
    line = run.stderr.strip()
    assert line and "\n" not in line, run.stderr
    assert "Traceback" not in run.output
    return line


# -- the life cycle of each type ------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.type)
def test_life_cycle(box: Sandbox, prefect_cloud: PrefectCloud, pool: str, kind: Kind) -> None:
    up_args = ["--type", kind.type, *kind.args]
    ops = ["block", "work_pool"] if kind.block_type else ["work_pool"]

    # Offline: no token, no Prefect (a dead URL), no engine.
    dead = f"http://127.0.0.1:{free_port()}/api"
    run = box.run("preview", pool, *up_args, "--offline", "--json", PREFECT_API_URL=dead)
    plan = json.loads(run.stdout)
    assert set(plan) == PREVIEW_KEYS and plan["offline"] is True
    assert (plan["pool"], plan["type"], plan["resources"], plan["grants"]) == (
        pool,
        kind.type,
        [],
        [],
    )
    assert [(p["kind"], p["op"]) for p in plan["prefect"]] == [(o, "create") for o in ops]
    assert plan["prefect"][-1]["variables"] == kind.defaults(None)
    assert prefect_cloud.requests == []

    token = give_token(box, kind)

    # Online preview: Prefect is read, nothing is written anywhere.
    plan = json.loads(box.run("preview", pool, *up_args, "--json").stdout)
    assert set(plan) == PREVIEW_KEYS and plan["offline"] is False
    assert plan["resources"] == [] and set(plan["changes"].values()) == {0}
    assert [(p["kind"], p["op"]) for p in plan["prefect"]] == [(o, "create") for o in ops]
    if kind.block_type:
        assert plan["prefect"][0]["block_type"] == kind.block_type
    assert plan["prefect"][-1]["type"] == kind.type
    assert plan["prefect"][-1]["variables"] == kind.defaults(None)
    assert writes(prefect_cloud) == []
    assert ("GET", "/collections/work_pool_types") in prefect_cloud.calls()
    assert not checkpoint_path(box, pool).exists()
    assert box.work_pool(pool) is None

    # up: the block, then the work pool from Cloud's template, in one engine run.
    prefect_cloud.clear()
    run = box.run("up", pool, *up_args, "--yes")
    assert f"Pool '{pool}' is ready ({kind.type})" in run.stdout
    block_name = f"{pool}-{kind.block_type}"
    block = box.block(kind.block_type, block_name) if kind.block_type else None
    work_pool = box.work_pool(pool)
    assert work_pool is not None and work_pool["type"] == kind.type
    block_id = block["id"] if block else None
    props = work_pool["base_job_template"]["variables"]["properties"]
    for key, value in kind.defaults(block_id).items():
        assert props[key]["default"] == value, key
    if block is not None:
        assert sorted(block["data"]) == sorted(kind.fields)
        assert same_secret(block["data"], token), "the block does not hold the local token"
        assert block["block_type"]["slug"] == kind.block_type

    # The exact requests of the Cloud-only parts.
    calls = prefect_cloud.calls()
    assert ("GET", "/collections/work_pool_types") in calls
    posted = [r for r in writes(prefect_cloud) if r.path == "/work_pools/"]
    assert [r.method for r in posted] == ["POST"]
    assert posted[0].json == {
        "name": pool,
        "type": kind.type,
        "base_job_template": with_defaults(default_template(kind.type), kind.defaults(block_id)),
        "is_paused": False,
    }
    assert posted[0].status == 201
    documents = [r for r in writes(prefect_cloud) if r.path == "/block_documents/"]
    if kind.block_type is None:
        assert documents == []
        assert not any("/block_types/" in path for _, path in calls)
    else:
        (document,) = documents
        body = document.json
        block_type_id = prefect_cloud.block_type_ids[kind.block_type]
        assert sorted(body) == ["block_schema_id", "block_type_id", "data", "name"]
        assert body["name"] == block_name and body["block_type_id"] == block_type_id
        assert body["block_schema_id"] == latest_schema_id(box.prefect_url, block_type_id)
        assert sorted(body["data"]) == sorted(kind.fields)
        assert same_secret(body["data"], token), "the POSTed block data is not the token"
        # The block is written before the work pool that references it.
        assert calls.index(("POST", "/block_documents/")) < calls.index(("POST", "/work_pools/"))
    # Nothing else was written.
    assert len(writes(prefect_cloud)) == 1 + len(documents)

    # The state holds the token only as ciphertext.
    state = json.loads(checkpoint_path(box, pool).read_text())
    resources = state["checkpoint"]["latest"]["resources"]
    blocks = [r for r in resources if r["type"] == BLOCK_TYPE]
    assert len(blocks) == (1 if kind.block_type else 0)
    for resource in blocks:
        data = resource["inputs"]["data"]
        assert data[SECRET_SIG] and data["ciphertext"], "block data is not a secret in state"

    # A rerun changes nothing: no write reaches Prefect, no new block document.
    prefect_cloud.clear()
    run = box.run("up", pool, "--yes")
    assert "0 created, 0 updated, 0 replaced, 0 deleted" in run.stdout
    assert f"work pool '{pool}' same (id {work_pool['id']})" in run.stdout
    assert writes(prefect_cloud) == []
    if kind.block_type:
        assert box.block(kind.block_type, block_name)["id"] == block_id
    plan = json.loads(box.run("preview", pool, "--json", "--expect-no-changes").stdout)
    assert [(p["kind"], p["op"]) for p in plan["prefect"]] == [(o, "same") for o in ops]

    # list and show, from the backend alone.
    rows = json.loads(box.run("list", "--json").stdout)
    (row,) = [r for r in rows if r["name"] == pool]
    assert (row["type"], row["location"], row["result"]) == (kind.type, kind.location, "succeeded")
    shown = json.loads(box.run("show", pool, "--json").stdout)
    assert (shown["type"], shown["location"]) == (kind.type, kind.location)
    assert shown["prefect"]["work_pool_id"] == work_pool["id"]
    assert shown["prefect"]["block_id"] == block_id
    for value in token.values():
        assert value not in json.dumps(shown) and value not in json.dumps(rows)

    # destroy: exactly what the tool made.
    prefect_cloud.clear()
    box.run("destroy", pool, "--yes")
    assert box.work_pool(pool) is None
    if kind.block_type:
        assert box.block(kind.block_type, block_name) is None
    deleted = [(r.method, r.path) for r in writes(prefect_cloud)]
    expected = [("DELETE", f"/work_pools/{pool}")]
    if block_id:
        expected.append(("DELETE", f"/block_documents/{block_id}"))
    assert deleted == expected
    assert not checkpoint_path(box, pool).exists()


def test_an_adopted_work_pool_stays_after_destroy(
    box: Sandbox, prefect_cloud: PrefectCloud, pool: str
) -> None:
    # Someone made the managed pool in the UI first: `up` sets only the tool's defaults in its
    # own template, and `destroy` leaves the pool (and so its other settings) alone.
    template = default_template(MANAGED.type)
    template["variables"]["properties"]["image"]["default"] = "my/own:image"
    made = (
        box.prefect(
            "POST",
            "/work_pools/",
            json={"name": pool, "type": MANAGED.type, "base_job_template": template},
        )
        .raise_for_status()
        .json()
    )
    try:
        prefect_cloud.clear()
        run = box.run("up", pool, "--type", MANAGED.type, "--pip-package", "pandas", "--yes")
        # Adopted, not made: the same pool, reported as the update the plan showed.
        assert f"work pool '{pool}' update (id {made['id']})" in run.stdout
        (patch,) = writes(prefect_cloud)
        assert (patch.method, patch.path) == ("PATCH", f"/work_pools/{pool}")
        assert patch.json == {
            "base_job_template": with_defaults(template, {"pip_packages": ["pandas"]})
        }

        prefect_cloud.clear()
        box.run("destroy", pool, "--yes")
        assert writes(prefect_cloud) == []
        kept = box.work_pool(pool)
        assert kept is not None and kept["id"] == made["id"]
        assert kept["base_job_template"]["variables"]["properties"]["image"]["default"] == (
            "my/own:image"
        )
        assert not checkpoint_path(box, pool).exists()
    finally:
        box.prefect("DELETE", f"/work_pools/{pool}")


# -- refused before anything is written -----------------------------------------------------


def test_bad_input_is_one_line_exit_2_and_writes_nothing(
    box: Sandbox, prefect_cloud: PrefectCloud, prefect_server: Any, pool: str
) -> None:
    def refused(*args: str, **env: str) -> str:
        return one_line(box.run("up", pool, *args, "--yes", expect=2, **env))

    # No token on this machine: the CLI that makes one is named.
    line = refused("--type", MODAL.type)
    assert "No Modal token" in line and "`modal token new`" in line
    line = refused("--type", COILED.type)
    assert "No Coiled token" in line and "`coiled login`" in line

    # Flags that are not the type's.
    give_token(box, MODAL)
    give_token(box, COILED)
    line = refused("--type", MODAL.type, "--region", "us-east-1")
    assert line == "Error: Option --region does not apply to type 'modal:push'."
    line = refused("--type", MANAGED.type, "--block-name", "mine")
    assert "no credentials block" in line and "--block-name" in line
    line = refused("--type", MANAGED.type, "--env", "NOT-A-NAME=1")
    assert "Invalid --env 'NOT-A-NAME=1'" in line and "KEY=VALUE" in line

    # A self-hosted server, even with every token at hand.
    for kind in KINDS:
        line = refused("--type", kind.type, *kind.args, PREFECT_API_URL=prefect_server.api_url)
        assert f"'{kind.type}' pools need Prefect Cloud" in line, line
        assert prefect_server.api_url in line and "self-hosted" in line

    # Nothing anywhere: no stack, no Prefect object, no write through the Cloud workspace;
    # not even a passphrase in PROVISION_HOME.
    assert not box.home.exists()
    assert not checkpoint_path(box, pool).exists()
    assert json.loads(box.run("list", "--json").stdout) == []
    assert writes(prefect_cloud) == []
    assert box.work_pool(pool) is None
    for kind in (MODAL, COILED):
        assert box.block(kind.block_type, f"{pool}-{kind.block_type}") is None


# -- a team on a shared backend -------------------------------------------------------------


def test_a_machine_without_a_modal_token_operates_the_pool_by_name(
    box: Sandbox,
    prefect_cloud: PrefectCloud,
    pool: str,
    s3_backend: Any,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    share_backend(box, s3_backend)
    token = modal_token(box)
    write_modal_toml(Path(box.env["HOME"]), token)  # as `modal token new` leaves it
    box.run("up", pool, "--type", MODAL.type, "--yes")
    block_name = f"{pool}-modal-credentials"
    block = box.block(MODAL.block_type, block_name)
    work_pool = box.work_pool(pool)
    assert block is not None and work_pool is not None
    assert same_secret(block["data"], token), "the block does not hold ~/.modal.toml's token"
    assert s3_backend.checkpoint_keys("provision") == [s3_backend.checkpoint_key("provision", pool)]

    # Bob shares the backend and the passphrase, but has no Modal token.
    bob = box.machine("bob", HOME=str(tmp_path_factory.mktemp("bob-home")))
    rows = json.loads(bob.run("list", "--json").stdout)
    (row,) = [r for r in rows if r["name"] == pool]
    assert (row["type"], row["location"], row["result"]) == (MODAL.type, "Modal", "succeeded")
    shown = json.loads(bob.run("show", pool, "--json").stdout)
    assert shown["prefect"]["block_id"] == block["id"]
    assert shown["prefect"]["work_pool_id"] == work_pool["id"]

    line = one_line(bob.run("preview", pool, expect=2))
    assert "No Modal token" in line and "`modal token new`" in line
    # With the team's token, the pool is as Alice left it.
    plan = json.loads(
        bob.run("preview", pool, "--json", "--expect-no-changes", **modal_env(token)).stdout
    )
    assert [(p["kind"], p["op"]) for p in plan["prefect"]] == [
        ("block", "same"),
        ("work_pool", "same"),
    ]

    prefect_cloud.clear()
    bob.run("destroy", pool, "--yes")
    assert box.block(MODAL.block_type, block_name) is None
    assert box.work_pool(pool) is None
    assert sorted((r.method, r.path) for r in writes(prefect_cloud)) == [
        ("DELETE", f"/block_documents/{block['id']}"),
        ("DELETE", f"/work_pools/{pool}"),
    ]
    assert s3_backend.checkpoint_keys("provision") == []
