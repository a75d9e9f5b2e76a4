"""Removing a client secret an interrupted run left untracked: the Graph client
(``provision/targets/azure_graph.py``) and ``AzurePool.remove_untracked``, against the fake
Graph (``tests/fakecloud/graph.py``) over passwords the fake azuread provider made.

tests/e2e/test_azure_rotation.py reaches the same through real SIGKILLs and the engine.
"""

from __future__ import annotations

import os
import stat
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from provision.recovery import Untracked
from provision.registry import POOL_TYPES
from provision.targets import azure_graph
from provision.targets.azure import APPLICATION_PASSWORD, PASSWORD_DISPLAY_NAME, AzurePool
from provision.targets.azure_graph import Graph, GraphError, access_token
from tests.fakecloud.azuread import APPLICATION, AZUREAD, passwords_of
from tests.fakecloud.driver import Driver
from tests.fakecloud.graph import FakeGraph
from tests.fakecloud.provider import FakeProvider, to_plain_map
from tests.fakecloud.state import FakeCloud

TENANT = "0c1d2e3f-4a5b-4c6d-8e7f-9a0b1c2d3e4f"
SUB = "6b1f7c2e-3d4a-4e5b-8c9d-0a1b2c3d4e5f"
CLIENT = "5e0c8a1b-2c3d-4e5f-8a9b-0c1d2e3f4a5b"
CLIENT_SECRET = "sp~Secret.for-the-fake-graph_42"
ACI = POOL_TYPES["azure-container-instance"]


@pytest.fixture
def state_dir(tmp_path: Path) -> Path:
    return tmp_path / "cloud"


@pytest.fixture
def graph(state_dir: Path) -> Iterator[FakeGraph]:
    server = FakeGraph(
        state_dir, tenant=TENANT, client_id=CLIENT, client_secret=CLIENT_SECRET
    ).start()
    yield server
    server.stop()


@pytest.fixture
def ad(state_dir: Path) -> Driver:
    driver = Driver(FakeProvider(AZUREAD, state_dir=state_dir, env={"ARM_TENANT_ID": TENANT}))
    driver.configure()
    return driver


def signed_in(graph: FakeGraph, **extra: str) -> dict[str, str]:
    """The environment of a machine signed in as the service principal, aimed at ``graph``."""
    return {
        "ARM_CLIENT_ID": CLIENT,
        "ARM_CLIENT_SECRET": CLIENT_SECRET,
        "ARM_TENANT_ID": TENANT,
        "PATH": os.environ.get("PATH", ""),
        **graph.env(),
        **extra,
    }


def app_with_passwords(ad: Driver, *names: str, other: str = "") -> tuple[dict, list[dict]]:
    """The pool's app and passwords made the way the stack makes them (display name and all);
    ``other``: one more, added to the app by someone else."""
    _, app = ad.up(APPLICATION, "etl-app", {"displayName": "provision-aci-etl"})
    app = to_plain_map(app)
    made = []
    for name in names:
        inputs = {"applicationId": app["id"], "displayName": PASSWORD_DISPLAY_NAME}
        made.append(to_plain_map(ad.up(APPLICATION_PASSWORD, name, inputs)[1]))
    if other:
        ad.up(APPLICATION_PASSWORD, "hand", {"applicationId": app["id"], "displayName": other})
    return app, made


def pool(env: dict[str, str]) -> AzurePool:
    given = {"subscription": SUB, "location": "westeurope"}
    return AzurePool.resolve("etl", ACI, given, {**env, "HOME": "/nonexistent"})


def untracked(app: dict, *tracked: dict) -> Untracked:
    """The pending create recovery hands over: its inputs, and the ids the state holds."""
    inputs = {"applicationId": app["id"], "displayName": PASSWORD_DISPLAY_NAME}
    return Untracked(
        APPLICATION_PASSWORD, "etl-secret", inputs, frozenset(t["id"] for t in tracked)
    )


# -- signing in ---------------------------------------------------------------------------------


def test_a_service_principal_signs_in_with_the_client_credentials_grant(graph: FakeGraph):
    token = access_token(signed_in(graph), TENANT)
    assert token in graph.tokens


def test_a_refused_sign_in_is_one_line_without_the_secret(graph: FakeGraph):
    with pytest.raises(GraphError) as info:
        access_token(signed_in(graph, ARM_CLIENT_SECRET="wrong~secret"), TENANT)
    assert str(info.value) == ("the service principal ARM_CLIENT_ID could not sign in ([7000215])")
    with pytest.raises(GraphError, match="90002"):
        access_token(signed_in(graph), "11111111-1111-4111-8111-111111111111")
    with pytest.raises(GraphError, match="no tenant is known"):
        access_token({**signed_in(graph), "ARM_TENANT_ID": ""}, None)


def fake_az(tmp_path: Path, script: str) -> str:
    """A directory holding an ``az`` that runs ``script`` (Python), for PATH."""
    bin_dir = tmp_path / "az-bin"
    bin_dir.mkdir()
    az = bin_dir / "az"
    az.write_text(f"#!{sys.executable}\n{script}\n")
    az.chmod(az.stat().st_mode | stat.S_IXUSR)
    return str(bin_dir)


def test_without_a_service_principal_the_azure_clis_login_is_used(tmp_path: Path):
    # What terraform-provider-azuread's CLI authorizer runs, with the pool's tenant.
    path = fake_az(
        tmp_path,
        "import json, sys\n"
        "assert sys.argv[1:5] == ['account', 'get-access-token', '--resource-type', 'ms-graph']\n"
        f"assert sys.argv[-2:] == ['--tenant', '{TENANT}']\n"
        "print(json.dumps({'accessToken': 'cli-token', 'tokenType': 'Bearer'}))",
    )
    assert access_token({"PATH": path}, TENANT) == "cli-token"


def test_an_azure_cli_without_a_login_says_why(tmp_path: Path):
    path = fake_az(
        tmp_path,
        "import sys\n"
        "sys.stderr.write(\"WARNING: stale\\nERROR: Please run 'az login' to setup account.\\n\")\n"
        "sys.exit(1)",
    )
    with pytest.raises(GraphError) as info:
        access_token({"PATH": path}, TENANT)
    assert str(info.value) == (
        "`az account get-access-token` gave no token: ERROR: Please run 'az login' to setup "
        "account."
    )
    with pytest.raises(GraphError, match="nor the Azure CLI"):
        access_token({"PATH": str(tmp_path / "empty")}, TENANT)


# -- the two Graph calls ------------------------------------------------------------------------


def test_passwords_are_listed_without_values_and_removed_once(
    graph: FakeGraph, ad: Driver, state_dir: Path
):
    app, (first, second) = app_with_passwords(ad, "one", "two")
    client = Graph(access_token(signed_in(graph), TENANT), graph.url)

    listed = client.passwords(app["objectId"])
    assert [(p.key_id, p.display_name, p.end) for p in listed] == [
        (first["keyId"], PASSWORD_DISPLAY_NAME, first["endDate"]),
        (second["keyId"], PASSWORD_DISPLAY_NAME, second["endDate"]),
    ]
    assert client.remove_password(app["objectId"], first["keyId"]) is True
    assert client.remove_password(app["objectId"], first["keyId"]) is False  # gone already
    remaining = passwords_of(FakeCloud(state_dir), app["objectId"])
    assert [r["id"] for r in remaining] == [second["id"]]


def test_graph_errors_are_one_line(graph: FakeGraph, ad: Driver):
    ghost = "99999999-9999-4999-8999-999999999999"
    client = Graph(access_token(signed_in(graph), TENANT), graph.url)
    with pytest.raises(GraphError) as info:
        client.passwords(ghost)
    assert str(info.value) == (
        f"reading application {ghost}: 404 Request_ResourceNotFound: Resource '{ghost}' does "
        "not exist or one of its queried reference-property objects are not present."
    )
    with pytest.raises(GraphError, match="401 InvalidAuthenticationToken"):
        Graph("not-a-token", graph.url).passwords(ghost)
    with pytest.raises(GraphError, match="Microsoft Graph unreachable"):
        Graph("t", "http://127.0.0.1:9").passwords(ghost)


# -- the target's clean-up ----------------------------------------------------------------------


def test_only_the_tools_untracked_secrets_are_removed(
    graph: FakeGraph, ad: Driver, state_dir: Path
):
    # The state tracks `kept`; `stray` is what a killed create left; someone's own secret on
    # the app (another display name) is not the tool's to remove.
    app, (kept, stray) = app_with_passwords(ad, "kept", "stray", other="deploy pipeline")

    message = pool(signed_in(graph)).remove_untracked(untracked(app, kept))

    assert message == (
        "Removed 1 client secret(s) that an interrupted run added to app registration "
        f"provision-aci-etl but never recorded (key id {stray['keyId']}): their value went "
        "only to that run."
    )
    cloud = FakeCloud(state_dir)
    left = {r["properties"]["displayName"]: r["id"] for r in passwords_of(cloud, app["objectId"])}
    assert left == {PASSWORD_DISPLAY_NAME: kept["id"], "deploy pipeline": left["deploy pipeline"]}
    assert [c["id"] for c in cloud.calls("removePassword")] == [stray["id"]]


def test_nothing_untracked_is_said_so(graph: FakeGraph, ad: Driver, state_dir: Path):
    # Killed before Entra ID wrote the secret: every secret of the app is tracked.
    app, (old, new) = app_with_passwords(ad, "old", "new")

    message = pool(signed_in(graph)).remove_untracked(untracked(app, old, new))

    assert message.endswith("Entra ID has none the state does not track.")
    assert len(passwords_of(FakeCloud(state_dir), app["objectId"])) == 2
    assert FakeCloud(state_dir).calls("removePassword") == []


def test_without_a_sign_in_the_hint_says_how_by_hand(ad: Driver, tmp_path: Path):
    app, (kept, _stray) = app_with_passwords(ad, "kept", "stray")
    no_az = {"PATH": str(tmp_path / "nothing-here")}

    message = pool(no_az).remove_untracked(untracked(app, kept))

    assert message.startswith(
        "Interrupted while adding a client secret to app registration provision-aci-etl: one "
        "may exist untracked, and it could not be checked (no sign-in for Microsoft Graph"
    )
    assert "az ad app credential list" in message and "\n" not in message


def test_a_create_before_the_app_existed_needs_no_call():
    lost = Untracked(
        APPLICATION_PASSWORD, "etl-secret", {"applicationId": "[unknown]"}, frozenset()
    )
    assert pool({}).remove_untracked(lost) == (
        "Interrupted before a client secret of app registration provision-aci-etl was added."
    )


def test_the_display_name_is_the_stacks():
    from stacks.azure_aci import PASSWORD_DISPLAY_NAME as STACKS

    assert PASSWORD_DISPLAY_NAME == STACKS
    assert AzurePool.removes_untracked == frozenset({APPLICATION_PASSWORD})
    assert azure_graph.graph_url({}) == "https://graph.microsoft.com"
