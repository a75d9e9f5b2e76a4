"""The GCP target's clean-up of a key an interrupted run left untracked, against the fake IAM.

``GcpPool.remove_untracked`` lists the worker account's keys in IAM (``gcp_keys``) and deletes
the user-managed keys IAM generated that the state does not track. The keys are made by the
fake gcp provider (driven as the engine drives it), so the fake IAM answers for the same keys;
sign-in is tested on its own paths (an access token, a key file's JSON, Application Default
Credentials refreshed through the fake token endpoint).
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from provision.recovery import Untracked
from provision.registry import POOL_TYPES
from provision.targets import gcp_keys
from provision.targets.gcp import KEY, GcpPool
from tests.fakecloud.driver import Driver
from tests.fakecloud.gcp import ACCOUNT, GCP, keys_of
from tests.fakecloud.gcp_iam import FakeIam
from tests.fakecloud.provider import FakeProvider, to_plain_map
from tests.fakecloud.state import FakeCloud

PROJECT = "acme-prod"
WORKER = f"etl-worker@{PROJECT}.iam.gserviceaccount.com"
WORKER_NAME = f"projects/{PROJECT}/serviceAccounts/{WORKER}"
TOKEN = "ya29.test-" + "x" * 20


@pytest.fixture
def cloud_dir(tmp_path: Path) -> Path:
    return tmp_path / "cloud"


@pytest.fixture
def gcp(cloud_dir: Path) -> Iterator[Driver]:
    """The fake gcp provider, with the pool's worker account and one other account."""
    asyncio.set_event_loop(asyncio.new_event_loop())
    driver = Driver(FakeProvider(GCP, state_dir=cloud_dir, env={}))
    driver.configure(project=PROJECT, region="europe-west1")
    driver.up(ACCOUNT, "etl-worker", {"accountId": "etl-worker"})
    driver.up(ACCOUNT, "other", {"accountId": "someone-else"})
    yield driver


@pytest.fixture
def iam(cloud_dir: Path) -> Iterator[FakeIam]:
    server = FakeIam(cloud_dir, token=TOKEN).start()
    yield server
    server.stop()


def pool(env: dict[str, str]) -> GcpPool:
    return GcpPool.resolve(
        "etl",
        POOL_TYPES["cloud-run-v2"],
        {"project": PROJECT, "region": "europe-west1"},
        env,
        generated={"role_suffix": "0a1b2c3d"},
    )


def make_key(gcp: Driver, name: str = "etl-worker-key", account: str = WORKER_NAME) -> str:
    rid, _ = gcp.up(KEY, name, {"serviceAccountId": account})
    return rid


def interrupted(*tracked: str) -> Untracked:
    """The key create a killed run left pending, as recovery hands it to the target."""
    return Untracked(KEY, "etl-worker-key", {"serviceAccountId": WORKER_NAME}, frozenset(tracked))


def test_the_untracked_key_is_deleted_and_nothing_else(gcp, iam, cloud_dir):
    cloud = FakeCloud(cloud_dir)
    kept = make_key(gcp)  # the key the state tracks (and the block holds)
    other = f"projects/{PROJECT}/serviceAccounts/someone-else@{PROJECT}.iam.gserviceaccount.com"
    theirs = make_key(gcp, "theirs", other)
    orphan = make_key(gcp)  # what the killed run's create made
    # A public key someone uploaded: its private half is theirs, never the tool's to delete.
    uploaded, _ = gcp.up(
        KEY, "uploaded", {"serviceAccountId": WORKER_NAME, "publicKeyData": "LS0tLS1CRUdJTg=="}
    )

    message = pool(iam.env()).remove_untracked(interrupted(kept))

    orphan_id = orphan.rsplit("/", 1)[-1]
    assert message == (
        f"Removed 1 key(s) of service account {WORKER} that an interrupted run made but never "
        f"recorded (key id {orphan_id}): their private key went only to that run."
    )
    assert [k["id"] for k in keys_of(cloud, WORKER)] == [kept, uploaded]
    assert cloud.get(KEY, theirs) is not None
    # One listing, of user-managed keys only (GCP's own system key is never a candidate).
    (listed,) = cloud.calls("listKeys", KEY)
    assert (listed["id"], listed["keyTypes"]) == (WORKER_NAME, ["USER_MANAGED"])
    assert [c["id"] for c in cloud.calls("deleteKey", KEY)] == [orphan]


def test_a_replacements_both_halves_are_kept(gcp, iam, cloud_dir):
    # Killed mid-rotation after the new key was recorded: the old one (pending delete) and the
    # new one are both tracked; only a third, untracked one goes.
    old, new, orphan = make_key(gcp), make_key(gcp), make_key(gcp)
    message = pool(iam.env()).remove_untracked(interrupted(old, new))
    assert "Removed 1 key(s)" in message
    assert [k["id"] for k in keys_of(FakeCloud(cloud_dir), WORKER)] == [old, new]
    assert orphan.rsplit("/", 1)[-1] in message


def test_nothing_untracked_is_said_so(gcp, iam, cloud_dir):
    kept = make_key(gcp)
    message = pool(iam.env()).remove_untracked(interrupted(kept))
    assert message == (
        f"Interrupted while creating a key of service account {WORKER}: IAM has none the state "
        "does not track."
    )
    assert FakeCloud(cloud_dir).calls("deleteKey", KEY) == []


def test_no_account_yet_means_no_key_could_exist(iam):
    untracked = Untracked(KEY, "etl-worker-key", {}, frozenset())
    message = pool(iam.env()).remove_untracked(untracked)
    assert message == f"Interrupted before a key of service account {WORKER} was requested."


@pytest.mark.parametrize("why", ["refused", "unreachable"])
def test_when_iam_cannot_be_asked_the_hint_says_how(gcp, iam, why):
    make_key(gcp)
    env = iam.env()
    if why == "refused":
        env["GOOGLE_OAUTH_ACCESS_TOKEN"] = "ya29.expired-token-value"
    else:
        env["GOOGLE_IAM_CUSTOM_ENDPOINT"] = "http://127.0.0.1:9/v1/"  # discard: nothing listens
    message = pool(env).remove_untracked(interrupted())
    assert message.startswith(
        f"Interrupted while creating a key of service account {WORKER}: one may exist untracked, "
        "and it could not be checked ("
    )
    assert "gcloud iam service-accounts keys list --iam-account <worker email>" in message
    assert ("401 UNAUTHENTICATED" if why == "refused" else "IAM unreachable") in message
    assert "ya29." not in message and "\n" not in message


# -- sign-in -----------------------------------------------------------------------------


def key_file(gcp: Driver, iam: FakeIam, name: str = "ci-key") -> dict[str, str]:
    """A key file of the worker account (a CI identity's, say), signing in at the fake."""
    _, outputs = gcp.up(KEY, name, {"serviceAccountId": WORKER_NAME})
    info = json.loads(base64.b64decode(to_plain_map(outputs)["privateKey"]))
    return iam.signing_in(info)


def test_an_access_token_is_used_as_given():
    assert gcp_keys.access_token({"GOOGLE_OAUTH_ACCESS_TOKEN": " ya29.abc "}) == "ya29.abc"


def test_a_key_file_in_the_providers_variables_signs_in(gcp, iam, tmp_path):
    info = key_file(gcp, iam)
    as_json = gcp_keys.access_token({"GOOGLE_CREDENTIALS": json.dumps(info)})
    path = tmp_path / "creds.json"
    path.write_text(json.dumps(info))
    as_path = gcp_keys.access_token({"GCLOUD_KEYFILE_JSON": str(path)})
    assert {as_json, as_path} <= iam.tokens and TOKEN not in (as_json, as_path)
    with pytest.raises(gcp_keys.KeysError, match="GOOGLE_CREDENTIALS holds neither"):
        gcp_keys.access_token({"GOOGLE_CREDENTIALS": "{not json"})
    with pytest.raises(gcp_keys.KeysError, match=r"names .*missing\.json, which cannot be read"):
        gcp_keys.access_token({"GOOGLE_CLOUD_KEYFILE_JSON": str(tmp_path / "missing.json")})


def test_application_default_credentials_sign_in_through_httpx(gcp, iam, tmp_path, monkeypatch):
    adc = tmp_path / "adc.json"
    adc.write_text(json.dumps(key_file(gcp, iam)))
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(adc))
    token = gcp_keys.access_token({})
    assert token in iam.tokens and token != TOKEN
    # And that token works against IAM.
    listed = gcp_keys.IamKeys(token, f"{iam.url}/v1/").user_managed(WORKER_NAME)
    assert [(k.key_id, k.origin) for k in listed] == [
        (json.loads(adc.read_text())["private_key_id"], "GOOGLE_PROVIDED")
    ]


def test_refused_credentials_are_one_line_without_secrets(gcp, iam, cloud_dir):
    info = key_file(gcp, iam)
    FakeCloud(cloud_dir).remove(KEY, f"{WORKER_NAME}/keys/{info['private_key_id']}")
    with pytest.raises(gcp_keys.KeysError) as caught:
        gcp_keys.access_token({"GOOGLE_CREDENTIALS": json.dumps(info)})
    text = str(caught.value)
    assert text.startswith("no usable GCP credentials (") and "Invalid JWT Signature" in text
    assert "PRIVATE KEY" not in text and "\n" not in text


def test_iam_url_follows_the_providers_custom_endpoint():
    assert gcp_keys.iam_url({}) == "https://iam.googleapis.com/v1/"
    assert gcp_keys.iam_url({"GOOGLE_IAM_CUSTOM_ENDPOINT": "https://iam.p.example/v1"}) == (
        "https://iam.p.example/v1/"
    )


def test_a_key_iam_no_longer_has_is_already_gone(gcp, iam):
    rid = make_key(gcp)
    keys = gcp_keys.IamKeys(TOKEN, gcp_keys.iam_url(iam.env()))
    assert keys.delete(rid) is True
    assert keys.delete(rid) is False
    assert keys.user_managed(WORKER_NAME) == []
    with pytest.raises(gcp_keys.KeysError, match=r"404 NOT_FOUND: Service account .* not exist"):
        keys.user_managed(f"projects/{PROJECT}/serviceAccounts/nobody@x.iam.gserviceaccount.com")


def test_the_transport_speaks_google_auths_interface(iam):
    from google.auth import exceptions

    request = gcp_keys.HttpxRequest()
    answer = request(
        f"{iam.url}/token",
        method="POST",
        body=b"grant_type=password",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert answer.status == 400
    assert json.loads(answer.data)["error"] == "unsupported_grant_type"
    assert answer.headers["content-type"].startswith("application/json")
    with pytest.raises(exceptions.TransportError):
        request("http://127.0.0.1:9/token", method="POST")
