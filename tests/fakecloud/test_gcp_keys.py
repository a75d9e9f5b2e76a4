"""The fake's service-account keys over their lifecycle: GCP's clock, an expiry policy, the
10-key limit as rotations meet it, deletion, the test queries, and the fake IAM keys API and
token endpoint the tool itself calls (``gcp_iam.FakeIam``)."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tests.fakecloud.driver import PROJECT, Driver
from tests.fakecloud.gcp import ACCOUNT, KEY, NO_EXPIRY, key_of_block, keys_of
from tests.fakecloud.gcp_iam import FakeIam
from tests.fakecloud.provider import CloudError, to_plain_map
from tests.fakecloud.state import FakeCloud

SA_INPUTS = {"accountId": "pool-runner", "displayName": "Pool runner"}
SA_EMAIL = f"pool-runner@{PROJECT}.iam.gserviceaccount.com"
SA_NAME = f"projects/{PROJECT}/serviceAccounts/{SA_EMAIL}"
TOKEN = "ya29.fake-test-token"


def key_file(outputs) -> dict:
    return json.loads(base64.b64decode(to_plain_map(outputs)["privateKey"]))


# -- the key's dates -------------------------------------------------------------------------


def test_a_key_is_valid_from_gcps_clock_and_never_expires_by_default(
    make_driver: Callable[..., Driver],
) -> None:
    gcp = make_driver(FAKECLOUD_NOW="2027-03-04T05:06:07.891+00:00")
    gcp.up(ACCOUNT, "runner", SA_INPUTS)
    _, outputs = gcp.up(KEY, "key", {"serviceAccountId": SA_NAME})
    out = to_plain_map(outputs)
    # RFC 3339 in seconds, as the provider reads validAfterTime back.
    assert out["validAfter"] == "2027-03-04T05:06:07Z"
    assert out["validBefore"] == NO_EXPIRY == "9999-12-31T23:59:59Z"


def test_an_expiry_policy_bounds_new_keys(make_driver: Callable[..., Driver]) -> None:
    # constraints/iam.serviceAccountKeyExpiryHours: 2160 hours (90 days) is its maximum.
    gcp = make_driver(FAKECLOUD_NOW="2027-03-04T00:00:00Z", FAKECLOUD_GCP_KEY_EXPIRY_HOURS="2160")
    gcp.up(ACCOUNT, "runner", SA_INPUTS)
    _, outputs = gcp.up(KEY, "key", {"serviceAccountId": SA_NAME})
    assert to_plain_map(outputs)["validBefore"] == "2027-06-02T00:00:00Z"


def test_a_bad_clock_names_itself(make_driver: Callable[..., Driver]) -> None:
    gcp = make_driver(FAKECLOUD_NOW="next tuesday")
    gcp.up(ACCOUNT, "runner", SA_INPUTS)
    with pytest.raises(CloudError, match="FAKECLOUD_NOW='next tuesday' is not an ISO 8601"):
        gcp.up(KEY, "key", {"serviceAccountId": SA_NAME})


# -- rotations against the limit, deletion, queries ------------------------------------------


def test_rotations_stay_under_the_limit_only_if_old_keys_are_deleted(
    gcp: Driver, cloud: FakeCloud
) -> None:
    # Create-before-delete holds two keys for a moment; ten at once is GCP's limit.
    gcp.up(ACCOUNT, "runner", SA_INPUTS)
    rid, outputs = gcp.up(KEY, "key", {"serviceAccountId": SA_NAME})
    for _ in range(12):
        new_rid, new_outputs = gcp.up(KEY, "key", {"serviceAccountId": SA_NAME})
        assert len(keys_of(cloud, SA_EMAIL)) == 2
        gcp.delete(KEY, "key", rid, outputs)
        assert cloud.get(KEY, rid) is None, "deleting a key removes it"
        assert gcp.read(KEY, "key", rid, outputs).resource_id in (None, ""), "it reads as gone"
        rid, outputs = new_rid, new_outputs
    assert [k["id"] for k in keys_of(cloud, SA_NAME)] == [rid]
    # Never deleted, they pile up until the eleventh is refused.
    for n in range(9):
        gcp.up(KEY, f"leak{n}", {"serviceAccountId": SA_NAME})
    with pytest.raises(CloudError, match=r"Error 400: Precondition check failed\."):
        gcp.up(KEY, "one-too-many", {"serviceAccountId": SA_NAME})


def test_keys_of_an_account_oldest_first_and_the_key_a_block_holds(
    make_driver: Callable[..., Driver], cloud: FakeCloud
) -> None:
    first = make_driver(FAKECLOUD_NOW="2027-01-01T00:00:00Z")
    first.up(ACCOUNT, "runner", SA_INPUTS)
    first.up(ACCOUNT, "other", {"accountId": "other-runner"})
    old_rid, old = first.up(KEY, "key", {"serviceAccountId": SA_NAME})
    first.up(KEY, "theirs", {"serviceAccountId": f"other-runner@{PROJECT}.iam.gserviceaccount.com"})
    new_rid, new = make_driver(FAKECLOUD_NOW="2027-02-01T00:00:00Z").up(
        KEY, "key", {"serviceAccountId": SA_NAME}
    )

    assert [k["id"] for k in keys_of(cloud, SA_EMAIL)] == [old_rid, new_rid]
    assert [k["id"] for k in keys_of(cloud, SA_NAME)] == [old_rid, new_rid]
    assert key_of_block(cloud, key_file(new))["id"] == new_rid
    first.delete(KEY, "key", old_rid, old)
    assert key_of_block(cloud, key_file(old)) is None, "a block holding a deleted key"


def test_an_uploaded_key_is_marked_user_provided(gcp: Driver, cloud: FakeCloud) -> None:
    gcp.up(ACCOUNT, "runner", SA_INPUTS)
    made, _ = gcp.up(KEY, "made", {"serviceAccountId": SA_NAME})
    pem = base64.b64encode(b"-----BEGIN CERTIFICATE-----\nMIIfake\n").decode()
    uploaded, _ = gcp.up(KEY, "uploaded", {"serviceAccountId": SA_NAME, "publicKeyData": pem})
    assert cloud.get(KEY, made)["meta"]["keyOrigin"] == "GOOGLE_PROVIDED"
    assert cloud.get(KEY, uploaded)["meta"]["keyOrigin"] == "USER_PROVIDED"


# -- the fake IAM keys API -------------------------------------------------------------------


@pytest.fixture
def iam(state_dir: Path) -> Iterator[FakeIam]:
    server = FakeIam(state_dir, token=TOKEN).start()
    yield server
    server.stop()


def call(iam: FakeIam, method: str, path: str, token: str = TOKEN, **kw) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.request(method, f"{iam.url}/v1/{path}", headers=headers, timeout=10, **kw)


def test_iam_lists_an_accounts_keys_as_the_api_does(
    gcp: Driver, cloud: FakeCloud, iam: FakeIam
) -> None:
    gcp.up(ACCOUNT, "runner", SA_INPUTS)
    rid, outputs = gcp.up(KEY, "key", {"serviceAccountId": SA_NAME})

    user = call(iam, "GET", f"{SA_NAME}/keys", params={"keyTypes": "USER_MANAGED"})
    assert user.status_code == 200
    (key,) = user.json()["keys"]
    props = to_plain_map(outputs)
    assert key == {
        "name": rid,
        "validAfterTime": props["validAfter"],
        "validBeforeTime": NO_EXPIRY,
        "keyAlgorithm": "KEY_ALG_RSA_2048",
        "keyOrigin": "GOOGLE_PROVIDED",
        "keyType": "USER_MANAGED",
        "disabled": False,
    }
    assert "privateKeyData" not in user.text
    # Unfiltered, GCP's own system-managed key is listed too.
    every = call(iam, "GET", f"{SA_NAME}/keys").json()["keys"]
    assert [k["keyType"] for k in every] == ["USER_MANAGED", "SYSTEM_MANAGED"]
    listed = cloud.calls("listKeys", KEY)
    assert [c["keyTypes"] for c in listed] == [["USER_MANAGED"], []]

    missing = call(iam, "GET", f"projects/{PROJECT}/serviceAccounts/nobody@x.com/keys")
    assert missing.status_code == 404
    assert missing.json()["error"]["message"] == (
        f"Service account projects/{PROJECT}/serviceAccounts/nobody@x.com does not exist."
    )


def test_iam_deletes_a_key_once(gcp: Driver, cloud: FakeCloud, iam: FakeIam) -> None:
    gcp.up(ACCOUNT, "runner", SA_INPUTS)
    rid, outputs = gcp.up(KEY, "key", {"serviceAccountId": SA_NAME})

    gone = call(iam, "DELETE", rid)
    assert (gone.status_code, gone.json()) == (200, {})
    assert cloud.get(KEY, rid) is None
    assert gcp.read(KEY, "key", rid, outputs).resource_id in (None, "")
    again = call(iam, "DELETE", rid)
    assert again.status_code == 404 and again.json()["error"]["status"] == "NOT_FOUND"
    assert [c["outcome"] for c in cloud.calls("deleteKey", KEY)] == ["ok", "gone"]


def test_iam_wants_a_token_it_knows(gcp: Driver, iam: FakeIam) -> None:
    gcp.up(ACCOUNT, "runner", SA_INPUTS)
    for token in ("", "ya29.someone-elses"):
        refused = call(iam, "GET", f"{SA_NAME}/keys", token=token)
        assert refused.status_code == 401
        assert refused.json()["error"]["status"] == "UNAUTHENTICATED"


def test_only_a_live_key_signs_in(gcp: Driver, cloud: FakeCloud, iam: FakeIam) -> None:
    from google.auth import exceptions
    from google.oauth2 import service_account

    from provision.targets.gcp_keys import HttpxRequest

    gcp.up(ACCOUNT, "runner", SA_INPUTS)
    rid, outputs = gcp.up(KEY, "key", {"serviceAccountId": SA_NAME})
    info = iam.signing_in(key_file(outputs))

    def sign_in() -> str:
        credentials = service_account.Credentials.from_service_account_info(
            info, scopes=["https://www.googleapis.com/auth/cloud-platform"]
        )
        credentials.refresh(HttpxRequest())  # the JWT-bearer grant, signed with the key
        return credentials.token

    token = sign_in()
    assert token in iam.tokens
    assert call(iam, "GET", f"{SA_NAME}/keys", token=token).status_code == 200
    assert [c["id"] for c in cloud.calls("token", KEY)] == [rid]

    call(iam, "DELETE", rid)
    with pytest.raises(exceptions.RefreshError, match="Invalid JWT Signature"):
        sign_in()
    # A signature by another key of the account does not pass for this one either.
    _, other = gcp.up(KEY, "other", {"serviceAccountId": SA_NAME})
    forged = {**iam.signing_in(key_file(other)), "private_key_id": info["private_key_id"]}
    info = forged
    with pytest.raises(exceptions.RefreshError, match="Invalid JWT Signature"):
        sign_in()
    assert iam.env() == {
        "GOOGLE_IAM_CUSTOM_ENDPOINT": f"{iam.url}/v1/",
        "GOOGLE_OAUTH_ACCESS_TOKEN": TOKEN,
    }
