"""A fake IAM keys API and Google OAuth token endpoint, over the fake gcp provider's store.

The Pulumi provider never calls it: it serves what the tool itself calls to delete a key an
interrupted run left untracked (``provision/targets/gcp_keys.py``), on the same state dir the
gcp plugin writes, so it lists and deletes the very keys the engine made. A test starts one and
points the tool at it:

```python
iam = FakeIam(state_dir, token=TOKEN).start()
env |= iam.env()  # GOOGLE_IAM_CUSTOM_ENDPOINT, GOOGLE_OAUTH_ACCESS_TOKEN
...
iam.stop()
```

What it answers, as IAM does (cloud.google.com/iam/docs/reference/rest/v1/
projects.serviceAccounts.keys):

- ``GET /v1/projects/{p}/serviceAccounts/{email}/keys[?keyTypes=USER_MANAGED]``: ``{"keys":
  [...]}`` with each key's ``name``, ``validAfterTime``, ``validBeforeTime``, ``keyAlgorithm``,
  ``keyOrigin``, ``keyType`` and ``disabled`` (never private material). Unfiltered, or with
  ``keyTypes=SYSTEM_MANAGED``, the list also holds the system-managed key GCP keeps for every
  account (Google signs with it; it can never be deleted, and this fake has nothing to delete
  under its id). An account that does not exist is IAM's 404 ``Service account <name> does not
  exist.`` (terraform-provider-google#18087's text).
- ``DELETE /v1/projects/{p}/serviceAccounts/{email}/keys/{id}``: ``200 {}``; a key that is not
  there is a 404 ``NOT_FOUND`` (wording: the fake's).
- ``POST /token``, OAuth's JWT-bearer grant (RFC 7523) that a service-account key file signs
  when its ``token_uri`` points here: the assertion's ``kid`` must be a live user-managed key of
  the account in ``iss`` and its RS256 signature must verify with that key's certificate, else
  Google's ``400 invalid_grant`` ``Invalid JWT Signature.`` (what a deleted key gets); then
  ``{"access_token", "expires_in", "token_type": "Bearer"}``. So a test can tell a block's key
  that still signs in from a dead one.
- Anything without a token it knows: Google's ``401 UNAUTHENTICATED``.

Each call is logged in ``calls.jsonl`` (cloud ``gcp``, op ``listKeys`` or ``deleteKey``, type
the key's), so tests see what the tool asked for.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
import secrets
import threading
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from tests.fakecloud.gcp import keys_of
from tests.fakecloud.gcp_base import ACCOUNT, KEY
from tests.fakecloud.state import FakeCloud

JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
_ACCOUNT = r"projects/[^/]+/serviceAccounts/[^/]+"
_KEYS_PATH = re.compile(rf"^/v1/({_ACCOUNT})/keys$")
_KEY_PATH = re.compile(rf"^/v1/({_ACCOUNT})/keys/([^/]+)$")
_UNAUTHENTICATED = (
    "Request had invalid authentication credentials. Expected OAuth 2 access token, login "
    "cookie or other valid authentication credential. See "
    "https://developers.google.com/identity/sign-in/web/devconsole-project."
)


class FakeIam:
    """A loopback HTTP server answering IAM's key calls and OAuth's token grant."""

    def __init__(self, state_dir: str | Path, *, token: str) -> None:
        self.cloud = FakeCloud(state_dir)
        self.tokens: set[str] = {token}
        self.token = token
        self._server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT``: IAM (under ``/v1/``) and the token endpoint at once."""
        assert self._server is not None, "start() first"
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def env(self) -> dict[str, str]:
        """What points the tool's IAM client here, signed in with the fake's token."""
        return {
            "GOOGLE_IAM_CUSTOM_ENDPOINT": f"{self.url}/v1/",
            "GOOGLE_OAUTH_ACCESS_TOKEN": self.token,
        }

    def signing_in(self, key_file: Mapping[str, Any]) -> dict[str, Any]:
        """``key_file`` (a block's ``service_account_info``) with its ``token_uri`` here, so
        signing in with it asks this fake, which answers only for live keys."""
        return {**key_file, "token_uri": f"{self.url}/token"}

    def start(self) -> FakeIam:
        """Serve on a free loopback port, in a daemon thread."""
        iam = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                iam._answer(self, "GET")

            def do_POST(self) -> None:
                iam._answer(self, "POST")

            def do_DELETE(self) -> None:
                iam._answer(self, "DELETE")

            def log_message(self, *_args: Any) -> None:
                """Quiet: the call log says what happened."""

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        """Stop serving."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    # -- requests -------------------------------------------------------------------------

    def _answer(self, request: BaseHTTPRequestHandler, method: str) -> None:
        url = urlsplit(request.path)
        length = int(request.headers.get("Content-Length") or 0)
        body = request.rfile.read(length).decode() if length else ""
        if method == "POST" and url.path == "/token":
            status, answer = self._token(parse_qs(body))
        else:
            status, answer = self._iam(request, method, unquote(url.path), parse_qs(url.query))
        payload = json.dumps(answer).encode()
        request.send_response(status)
        request.send_header("Content-Type", "application/json; charset=UTF-8")
        request.send_header("Content-Length", str(len(payload)))
        request.end_headers()
        request.wfile.write(payload)

    def _token(self, form: dict[str, list[str]]) -> tuple[int, dict[str, Any]]:
        grant = (form.get("grant_type") or [""])[0]
        if grant != JWT_BEARER:
            return 400, {"error": "unsupported_grant_type", "error_description": grant}
        signer = self._signing_key((form.get("assertion") or [""])[0])
        if signer is None:
            return 400, {"error": "invalid_grant", "error_description": "Invalid JWT Signature."}
        issued = "ya29." + secrets.token_urlsafe(32)
        self.tokens.add(issued)
        self.cloud.log_call(
            {"cloud": "gcp", "op": "token", "phase": "end", "type": KEY, "id": signer}
        )
        return 200, {"access_token": issued, "expires_in": 3599, "token_type": "Bearer"}

    def _signing_key(self, assertion: str) -> str | None:
        """The live key that signed ``assertion`` (``kid`` of the account in ``iss``), if any."""
        try:
            head, body, signature = (_unb64(part) for part in assertion.split("."))
            header, claims = json.loads(head), json.loads(body)
        except ValueError:
            return None
        for key in keys_of(self.cloud, str(claims.get("iss", ""))):
            if key["id"].rsplit("/", 1)[-1] != header.get("kid"):
                continue
            signed = assertion.rsplit(".", 1)[0].encode()
            return key["id"] if _verifies(key, signed, signature) else None
        return None

    def _iam(
        self,
        request: BaseHTTPRequestHandler,
        method: str,
        path: str,
        query: dict[str, list[str]],
    ) -> tuple[int, dict[str, Any]]:
        auth = request.headers.get("Authorization", "")
        if not auth.startswith("Bearer ") or auth.removeprefix("Bearer ") not in self.tokens:
            return 401, _error(401, "UNAUTHENTICATED", _UNAUTHENTICATED)
        listing, deleting = _KEYS_PATH.match(path), _KEY_PATH.match(path)
        if method == "GET" and listing:
            return self._list(listing.group(1), query.get("keyTypes") or [])
        if method == "DELETE" and deleting:
            return self._delete(deleting.group(1), deleting.group(2))
        return 404, _error(404, "NOT_FOUND", f"Unsupported {method} {path}")

    def _list(self, account_name: str, key_types: list[str]) -> tuple[int, dict[str, Any]]:
        account = self.cloud.get(ACCOUNT, account_name)
        if account is None:
            self._log("listKeys", account_name, outcome="missing", keyTypes=key_types)
            return 404, _error(404, "NOT_FOUND", f"Service account {account_name} does not exist.")
        listed: list[dict[str, Any]] = []
        if not key_types or "USER_MANAGED" in key_types:
            listed += [_user_managed(r) for r in keys_of(self.cloud, account_name)]
        if not key_types or "SYSTEM_MANAGED" in key_types:
            listed.append(_system_managed(account))
        self._log("listKeys", account_name, outcome="ok", keyTypes=key_types)
        return 200, {"keys": listed} if listed else {}

    def _delete(self, account_name: str, key_id: str) -> tuple[int, dict[str, Any]]:
        rid = f"{account_name}/keys/{key_id}"
        if not self.cloud.remove(KEY, rid):
            self._log("deleteKey", rid, outcome="gone")
            return 404, _error(404, "NOT_FOUND", f"Service account key {rid} does not exist.")
        self._log("deleteKey", rid, outcome="ok")
        return 200, {}

    def _log(self, op: str, rid: str, **entry: Any) -> None:
        self.cloud.log_call(
            {"cloud": "gcp", "op": op, "phase": "end", "type": KEY, "id": rid} | entry
        )


def _user_managed(record: dict[str, Any]) -> dict[str, Any]:
    props = record["properties"]
    return {
        "name": record["id"],
        "validAfterTime": props.get("validAfter"),
        "validBeforeTime": props.get("validBefore"),
        "keyAlgorithm": props.get("keyAlgorithm", "KEY_ALG_RSA_2048"),
        "keyOrigin": record["meta"].get("keyOrigin", "GOOGLE_PROVIDED"),
        "keyType": "USER_MANAGED",
        "disabled": False,
    }


def _system_managed(account: dict[str, Any]) -> dict[str, Any]:
    """The key Google signs the account's tokens with: rotated by Google, never deletable."""
    name = account["id"]
    made = datetime.fromtimestamp(account["createdAt"], UTC).replace(microsecond=0)
    return {
        "name": f"{name}/keys/{hashlib.sha1(name.encode()).hexdigest()}",
        "validAfterTime": made.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "validBeforeTime": (made + timedelta(days=14)).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "keyAlgorithm": "KEY_ALG_RSA_2048",
        "keyOrigin": "GOOGLE_PROVIDED",
        "keyType": "SYSTEM_MANAGED",
    }


def _unb64(part: str) -> bytes:
    """base64url without padding, as JWTs write it (``ValueError`` on anything else)."""
    try:
        return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))
    except (binascii.Error, ValueError) as exc:
        raise ValueError(str(exc)) from None


def _verifies(key: dict[str, Any], signed: bytes, signature: bytes) -> bool:
    """RS256 over ``signed`` checks out with the key's X.509 certificate (``publicKey``)."""
    from cryptography import x509
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding

    try:
        cert = x509.load_pem_x509_certificate(base64.b64decode(key["properties"]["publicKey"]))
        cert.public_key().verify(signature, signed, padding.PKCS1v15(), hashes.SHA256())
    except (InvalidSignature, ValueError, KeyError, TypeError):
        return False
    return True


def _error(code: int, status: str, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "status": status}}
