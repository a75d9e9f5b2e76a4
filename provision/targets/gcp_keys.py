"""IAM's service-account keys API, for the one clean-up Pulumi cannot do: an untracked key.

A run killed while IAM creates the worker's key can leave a key the Pulumi state never heard
of: IAM made it, but the engine died before the answer came back. Its private key was returned
once, to that engine (IAM keeps only the public half), so the key cannot be adopted into the
state (the block could never be filled from it), and it counts against GCP's 10 keys per
account. IAM generates a key's id, so nothing in the state can name it: the rerun lists the
account's user-managed keys and deletes those the state does not track.

- list: ``GET {iam}/projects/{p}/serviceAccounts/{email}/keys?keyTypes=USER_MANAGED``
  (``projects.serviceAccounts.keys.list``, permission ``iam.serviceAccountKeys.list``);
- delete: ``DELETE {iam}/projects/{p}/serviceAccounts/{email}/keys/{key id}``
  (``projects.serviceAccounts.keys.delete``, ``iam.serviceAccountKeys.delete``), answering
  ``{}`` (cloud.google.com/iam/docs/reference/rest/v1/projects.serviceAccounts.keys).

Signed in the way pulumi-gcp (terraform-provider-google) is: ``GOOGLE_OAUTH_ACCESS_TOKEN``,
else a key file's JSON (or path) in ``GOOGLE_CREDENTIALS``, ``GOOGLE_CLOUD_KEYFILE_JSON`` or
``GCLOUD_KEYFILE_JSON``, else Application Default Credentials (``google-auth``), each acting as
``GOOGLE_IMPERSONATE_SERVICE_ACCOUNT`` when set. ``GOOGLE_IAM_CUSTOM_ENDPOINT``, the provider's
own ``iam_custom_endpoint`` variable, points elsewhere than ``https://iam.googleapis.com/v1/``
(a private endpoint; the tests' fake IAM). Tokens and keys never reach a message.
"""

from __future__ import annotations

import json
import re
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from provision.targets.rest import json_object

IAM_URL = "https://iam.googleapis.com/v1/"
ENDPOINT_ENV = "GOOGLE_IAM_CUSTOM_ENDPOINT"
ACCESS_TOKEN_ENV = "GOOGLE_OAUTH_ACCESS_TOKEN"
CREDENTIALS_ENVS = ("GOOGLE_CREDENTIALS", "GOOGLE_CLOUD_KEYFILE_JSON", "GCLOUD_KEYFILE_JSON")
IMPERSONATE_ENV = "GOOGLE_IMPERSONATE_SERVICE_ACCOUNT"
SCOPE = "https://www.googleapis.com/auth/cloud-platform"
TIMEOUT_S = 30.0
GOOGLE_PROVIDED = "GOOGLE_PROVIDED"
"""``keyOrigin`` of a key IAM generated (``keys.create``, what the stack calls); an uploaded
public key is ``USER_PROVIDED``: someone else holds its private half, and it is never ours."""

_ACCOUNT_NAME = re.compile(r"^projects/[^/]+/serviceAccounts/[^/]+$")


class KeysError(Exception):
    """A sign-in or IAM call that failed: one line, never a token or a key."""


@dataclass(frozen=True)
class AccountKey:
    """One user-managed key of a service account, as IAM lists it (no private material)."""

    name: str
    """``projects/<p>/serviceAccounts/<email>/keys/<key id>``: the stack's id for it too."""
    valid_after: str | None
    origin: str

    @property
    def key_id(self) -> str:
        """The key's id, what a key file calls ``private_key_id``."""
        return self.name.rsplit("/", 1)[-1]


def is_account_name(value: Any) -> bool:
    """``projects/<p>/serviceAccounts/<email or id>``: a key's ``serviceAccountId`` in full."""
    return isinstance(value, str) and bool(_ACCOUNT_NAME.match(value))


def iam_url(env: Mapping[str, str]) -> str:
    """IAM's base URL (with its ``v1/``): ``GOOGLE_IAM_CUSTOM_ENDPOINT`` or Google's."""
    url = (env.get(ENDPOINT_ENV) or "").strip() or IAM_URL
    return url if url.endswith("/") else url + "/"


class IamKeys:
    """The two key calls the clean-up needs, with a bearer token."""

    def __init__(self, token: str, base_url: str, client: httpx.Client | None = None) -> None:
        self._base = base_url if base_url.endswith("/") else base_url + "/"
        self._client = client or httpx.Client(timeout=TIMEOUT_S)
        self._headers = {"Authorization": f"Bearer {token}"}

    def user_managed(self, account_name: str) -> list[AccountKey]:
        """The account's user-managed keys; ``KeysError`` if they cannot be listed."""
        response = self._call("GET", f"{account_name}/keys", params={"keyTypes": "USER_MANAGED"})
        if response.status_code != 200:
            raise KeysError(f"listing the keys of {account_name}: {_google_error(response)}")
        listed = json_object(response).get("keys") or []
        if not isinstance(listed, list):
            raise KeysError(f"listing the keys of {account_name}: no key list in the answer")
        return [
            AccountKey(
                name=str(item["name"]),
                valid_after=item.get("validAfterTime"),
                origin=str(item.get("keyOrigin") or ""),
            )
            for item in listed
            if isinstance(item, dict) and item.get("name")
        ]

    def delete(self, key_name: str) -> bool:
        """Delete one key; ``False`` when IAM no longer has it."""
        response = self._call("DELETE", key_name)
        if response.status_code == 200:
            return True
        if response.status_code == 404:
            return False
        raise KeysError(f"deleting key {key_name.rsplit('/', 1)[-1]}: {_google_error(response)}")

    def _call(self, method: str, path: str, **kw: Any) -> httpx.Response:
        try:
            return self._client.request(method, self._base + path, headers=self._headers, **kw)
        except httpx.HTTPError as exc:
            raise KeysError(f"IAM unreachable at {self._base} ({type(exc).__name__})") from None


def access_token(env: Mapping[str, str]) -> str:
    """An OAuth access token for IAM, found as pulumi-gcp finds its credentials."""
    token = (env.get(ACCESS_TOKEN_ENV) or "").strip()
    if token:
        return token
    try:
        import google.auth
        import google.auth.exceptions
    except ImportError:  # a dependency of this package; only a broken install lacks it
        raise KeysError("google-auth is not installed (pip install google-auth)") from None
    try:
        credentials = _credentials(env)
        target = (env.get(IMPERSONATE_ENV) or "").strip()
        if target:
            from google.auth import impersonated_credentials

            credentials = impersonated_credentials.Credentials(
                source_credentials=credentials, target_principal=target, target_scopes=[SCOPE]
            )
        credentials.refresh(HttpxRequest())
    except google.auth.exceptions.GoogleAuthError as exc:
        raise KeysError(f"no usable GCP credentials ({_first_line(exc)})") from None
    if not credentials.token:
        raise KeysError("the GCP credentials gave no access token")
    return str(credentials.token)


def _credentials(env: Mapping[str, str]) -> Any:
    """The configured credentials: a key file from the provider's variables, else ADC."""
    import google.auth

    for name in CREDENTIALS_ENVS:
        value = (env.get(name) or "").strip()
        if not value:
            continue
        # The provider takes the JSON itself or a path to it.
        text = value if value.startswith("{") else _read(Path(value).expanduser(), name)
        try:
            info = json.loads(text)
        except ValueError:
            raise KeysError(f"{name} holds neither a key file's JSON nor its path") from None
        # google-auth warns that its generic loader must not take credential configurations
        # from untrusted sources; this is the user's own provider configuration, which
        # pulumi-gcp loads the same way.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            credentials, _ = google.auth.load_credentials_from_dict(info, scopes=[SCOPE])
        return credentials
    credentials, _ = google.auth.default(scopes=[SCOPE])
    return credentials


def _read(path: Path, name: str) -> str:
    try:
        return path.read_text()
    except OSError as exc:
        raise KeysError(f"{name} names {path}, which cannot be read ({exc.strerror})") from None


class HttpxRequest:
    """google-auth's transport interface over httpx (this package's HTTP client), so the
    token refresh needs neither ``requests`` nor ``urllib3``."""

    def __init__(self, client: httpx.Client | None = None) -> None:
        self._client = client or httpx.Client(timeout=TIMEOUT_S)

    def __call__(
        self,
        url: str,
        method: str = "GET",
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float | None = None,
        **_: Any,
    ) -> _Response:
        from google.auth import exceptions

        try:
            response = self._client.request(
                method, url, content=body, headers=dict(headers or {}), timeout=timeout or TIMEOUT_S
            )
        except httpx.HTTPError as exc:
            raise exceptions.TransportError(f"{type(exc).__name__} calling {url}") from None
        return _Response(response.status_code, dict(response.headers), response.content)


@dataclass(frozen=True)
class _Response:
    """google-auth's ``transport.Response``: status, headers, data."""

    status: int
    headers: Mapping[str, str]
    data: bytes


def _google_error(response: httpx.Response) -> str:
    """``<code> <status>: <message>`` from a Google API error body."""
    error = json_object(response).get("error")
    if isinstance(error, dict):
        return f"{error.get('code', response.status_code)} {error.get('status', '')}: " + str(
            error.get("message", "")
        )
    return f"HTTP {response.status_code}"


def _first_line(exc: Exception) -> str:
    """An exception's first line, bounded: google-auth's texts name the problem, not secrets."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text[:300]
