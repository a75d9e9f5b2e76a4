"""Removing the access keys a killed run left untracked, against moto (IAM's own API).

The tool's boto3 cannot send moto's account header, so each test signs in as an IAM user of
its own account (moto finds the account from the access key) and reaches moto through the SDKs'
``AWS_ENDPOINT_URL``, as the end-to-end tests do.
"""

from __future__ import annotations

from typing import Any

import pytest

from provision.targets.aws_keys import KeysError, remove_untracked_keys
from tests.fakecloud.moto_server import MotoServer, client, new_account

USER = "etl-ecs-worker"


@pytest.fixture
def iam(moto_server: MotoServer, monkeypatch: pytest.MonkeyPatch) -> Any:
    """A fresh account's IAM, and this process's AWS environment signed in to it."""
    account = new_account()
    iam = client("iam", moto_server.endpoint, account)
    iam.create_user(UserName="operator")
    key = iam.create_access_key(UserName="operator")["AccessKey"]
    for name in ("AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_DEFAULT_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", key["AccessKeyId"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", key["SecretAccessKey"])
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_server.endpoint)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
    return iam


def live(iam: Any) -> list[str]:
    return [k["AccessKeyId"] for k in iam.list_access_keys(UserName=USER)["AccessKeyMetadata"]]


def test_keys_the_state_does_not_track_are_deleted_the_tracked_ones_kept(iam):
    iam.create_user(UserName=USER)
    tracked = iam.create_access_key(UserName=USER)["AccessKey"]["AccessKeyId"]
    orphan = iam.create_access_key(UserName=USER)["AccessKey"]["AccessKeyId"]

    said = remove_untracked_keys(USER, frozenset({tracked}), profile=None, region="eu-west-1")

    assert live(iam) == [tracked]
    assert said == [orphan]
    # Now there is room for the rerun's key: IAM allows two.
    iam.create_access_key(UserName=USER)


def test_an_old_key_still_pending_deletion_is_tracked_and_kept(iam):
    # A rotation killed after its new key was made: both keys are in the state, the block
    # may still hold the old one.
    iam.create_user(UserName=USER)
    both = frozenset(iam.create_access_key(UserName=USER)["AccessKey"]["AccessKeyId"] for _ in "ab")

    assert remove_untracked_keys(USER, both, profile=None, region="eu-west-1") == []
    assert set(live(iam)) == both


def test_a_user_that_does_not_exist_has_no_keys(iam):
    assert remove_untracked_keys(USER, frozenset(), profile=None, region="eu-west-1") == []


def test_when_iam_cannot_be_asked_it_raises_with_what_went_wrong(iam, monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # nothing listens there

    with pytest.raises(KeysError, match=r"127\.0\.0\.1:9"):
        remove_untracked_keys(USER, frozenset(), profile=None, region="eu-west-1")
