"""Access keys a killed run left untracked: found and deleted with IAM's own API.

CreateAccessKey returns the key's secret once, in its answer ("the secret access key is
accessible only during key and user creation", IAM API reference, CreateAccessKey). A run
killed after IAM made a key but before the engine recorded it leaves a key the state does not
know and that cannot be adopted: its secret is gone. IAM allows two access keys per user
("Access keys assigned to an IAM user: 2", not adjustable: IAM User Guide, "IAM and AWS STS
quotas"), so while the pool's tracked key is still in use, the rerun's own create (or a
rotation's new key) would fail with ``LimitExceeded: Cannot exceed quota for
AccessKeysPerUser: 2``. The recovery therefore deletes every key of the pool's user that the
state does not track, before the rerun goes on.

The keys the state tracks include an old key still pending deletion (a rotation interrupted
after its new key was made): the Prefect block may still hold it, so it is never touched here.
The block only ever holds a key the state tracks: the engine writes it from the key's recorded
outputs, after the key's create was recorded.

boto3 is imported here only, when a recovery needs it, so ``--help`` stays fast; credentials
are the AWS default chain with the pool's profile, as the provider's.
"""

from __future__ import annotations

from typing import Any

_TIMEOUTS = {"connect_timeout": 10, "read_timeout": 30}


class KeysError(Exception):
    """IAM could not be asked, or refused: the message says what it answered."""


def remove_untracked_keys(
    user: str, tracked: frozenset[str], *, profile: str | None, region: str
) -> list[str]:
    """Delete the access keys of IAM user ``user`` whose ids are not in ``tracked``; return the
    ids deleted. A user that does not exist has no keys. Raises :class:`KeysError`."""
    try:
        import boto3
        from botocore.config import Config
        from botocore.exceptions import BotoCoreError, ClientError
    except ImportError:  # pragma: no cover - boto3 is a dependency
        raise KeysError("boto3 is not installed: pip install boto3") from None
    try:
        session = boto3.Session(profile_name=profile, region_name=region)
        iam = session.client(
            "iam", config=Config(retries={"max_attempts": 3, "mode": "standard"}, **_TIMEOUTS)
        )
        keys = iam.list_access_keys(UserName=user)["AccessKeyMetadata"]
        removed = []
        for key in keys:
            key_id = key["AccessKeyId"]
            if key_id in tracked:
                continue
            iam.delete_access_key(UserName=user, AccessKeyId=key_id)
            removed.append(key_id)
        return removed
    except ClientError as exc:
        if _code(exc) == "NoSuchEntity":
            return []
        raise KeysError(f"{_code(exc)}: {_message(exc)}") from None
    except BotoCoreError as exc:
        raise KeysError(str(exc)) from None


def _code(exc: Any) -> str:
    return str(exc.response.get("Error", {}).get("Code", "")) or "error"


def _message(exc: Any) -> str:
    return str(exc.response.get("Error", {}).get("Message", "")) or str(exc)
