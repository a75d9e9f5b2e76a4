"""A fake Microsoft Graph and Entra ID sign-in, over the fake azuread's store.

The Pulumi providers never call it: it serves what the tool itself calls to remove a client
secret an interrupted run left untracked (``provision/targets/azure_graph.py``), on the same
state dir the azuread plugin writes, so it sees and deletes the very passwords the engine made.
A test starts one and points the tool at it:

```python
graph = FakeGraph(state_dir, tenant=TENANT, client_id=CLIENT, client_secret=SECRET).start()
env |= graph.env()  # PROVISION_AZURE_GRAPH_URL, AZURE_AUTHORITY_HOST
...
graph.stop()
```

What it answers, as Entra ID and Graph do:

- ``POST /{tenant}/oauth2/v2.0/token``, the client-credentials grant with the Graph scope:
  ``{"token_type": "Bearer", "access_token": ...}``; another client or secret gets Entra ID's
  ``401 invalid_client`` with ``AADSTS7000215`` (invalid secret), another tenant
  ``400 invalid_request`` with ``AADSTS90002``.
- ``GET /v1.0/applications/{object id}?$select=passwordCredentials``: each password's
  ``keyId``, ``displayName``, ``startDateTime``, ``endDateTime``, ``hint`` and a null
  ``secretText`` (Graph never returns a value after creation); an unknown app is Graph's 404
  ``Request_ResourceNotFound``.
- ``POST /v1.0/applications/{object id}/removePassword`` with ``{"keyId": ...}``: ``204``
  (microsoftgraph/microsoft-graph-docs-contrib ``api-reference/v1.0/api/
  application-removepassword.md``). A key the app does not have is a 404 here; Graph does not
  document that answer, and the tool reads a 404 as "already gone".
- Anything without the bearer token it issued: ``401 InvalidAuthenticationToken``.

Each Graph call is logged in ``calls.jsonl`` (cloud ``graph``, op ``listPasswords`` or
``removePassword``), so tests see what the tool asked for.
"""

from __future__ import annotations

import json
import re
import secrets
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.fakecloud.azuread import APPLICATION, APPLICATION_PASSWORD, passwords_of
from tests.fakecloud.state import FakeCloud

GRAPH_SCOPE = "https://graph.microsoft.com/.default"
_TOKEN_PATH = re.compile(r"^/([^/]+)/oauth2/v2\.0/token$")
_APP_PATH = re.compile(r"^/v1\.0/applications/([0-9a-fA-F-]{36})(/removePassword)?$")


class FakeGraph:
    """A loopback HTTP server answering Graph's application-password calls from ``state_dir``."""

    def __init__(
        self, state_dir: str | Path, *, tenant: str, client_id: str, client_secret: str
    ) -> None:
        self.cloud = FakeCloud(state_dir)
        self.tenant = tenant.lower()
        self.client_id = client_id.lower()
        self.client_secret = client_secret
        self.tokens: set[str] = set()
        self._server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT``: Graph and the sign-in host at once."""
        assert self._server is not None, "start() first"
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def env(self) -> dict[str, str]:
        """What points the tool's Graph client here."""
        return {"PROVISION_AZURE_GRAPH_URL": self.url, "AZURE_AUTHORITY_HOST": self.url}

    def start(self) -> FakeGraph:
        """Serve on a free loopback port, in a daemon thread."""
        graph = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                graph._answer(self, "GET")

            def do_POST(self) -> None:
                graph._answer(self, "POST")

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
        token = _TOKEN_PATH.match(url.path)
        if method == "POST" and token:
            status, answer = self._token(token.group(1), parse_qs(body))
        else:
            status, answer = self._graph(request, method, url.path, url.query, body)
        payload = b"" if answer is None else json.dumps(answer).encode()
        request.send_response(status)
        if payload:
            request.send_header("Content-Type", "application/json")
        request.send_header("Content-Length", str(len(payload)))
        request.end_headers()
        request.wfile.write(payload)

    def _token(self, tenant: str, form: dict[str, list[str]]) -> tuple[int, dict]:
        def field(name: str) -> str:
            return (form.get(name) or [""])[0]

        if tenant.lower() != self.tenant:
            return 400, _aad_error("invalid_request", 90002, f"Tenant '{tenant}' not found.")
        # The scope is Graph's App ID URI, or this server's when a test points the tool here.
        scopes = (GRAPH_SCOPE, f"{self.url}/.default")
        if field("grant_type") != "client_credentials" or field("scope") not in scopes:
            return 400, _aad_error("invalid_request", 900144, "Unsupported grant or scope.")
        if field("client_id").lower() != self.client_id or field("client_secret") != (
            self.client_secret
        ):
            return 401, _aad_error(
                "invalid_client",
                7000215,
                "Invalid client secret provided. Ensure the secret being sent in the request "
                "is the client secret value, not the client secret ID.",
            )
        issued = secrets.token_urlsafe(32)
        self.tokens.add(issued)
        return 200, {"token_type": "Bearer", "expires_in": 3599, "access_token": issued}

    def _graph(
        self, request: BaseHTTPRequestHandler, method: str, path: str, query: str, body: str
    ) -> tuple[int, dict | None]:
        auth = request.headers.get("Authorization", "")
        if not auth.startswith("Bearer ") or auth.removeprefix("Bearer ") not in self.tokens:
            return 401, _graph_error(
                "InvalidAuthenticationToken", "Access token is empty or invalid."
            )
        match = _APP_PATH.match(path)
        if match is None:
            return 404, _graph_error("UnknownError", f"Unsupported path {path}")
        object_id, remove = match.group(1).lower(), bool(match.group(2))
        if self.cloud.get(APPLICATION, f"/applications/{object_id}") is None:
            return 404, _graph_error(
                "Request_ResourceNotFound",
                f"Resource '{object_id}' does not exist or one of its queried "
                "reference-property objects are not present.",
            )
        if method == "GET" and not remove:
            if parse_qs(query).get("$select") != ["passwordCredentials"]:
                return 400, _graph_error("BadRequest", "Only $select=passwordCredentials here.")
            listed = [_credential(r) for r in passwords_of(self.cloud, object_id)]
            self._log("listPasswords", f"/applications/{object_id}", outcome="ok")
            return 200, {"id": object_id, "passwordCredentials": listed}
        if method == "POST" and remove:
            key_id = str(json.loads(body or "{}").get("keyId", "")).lower()
            rid = f"{object_id}/password/{key_id}"
            if not self.cloud.remove(APPLICATION_PASSWORD, rid):
                self._log("removePassword", rid, outcome="gone")
                return 404, _graph_error(
                    "Request_ResourceNotFound", f"No password credential with keyId {key_id}."
                )
            self._log("removePassword", rid, outcome="ok")
            return 204, None
        return 405, _graph_error("Request_BadRequest", f"{method} is not supported here.")

    def _log(self, op: str, rid: str, **entry: Any) -> None:
        self.cloud.log_call(
            {"cloud": "graph", "op": op, "phase": "end", "type": APPLICATION_PASSWORD, "id": rid}
            | entry
        )


def _credential(record: dict[str, Any]) -> dict[str, Any]:
    props = record["properties"]
    return {
        "customKeyIdentifier": None,
        "displayName": props.get("displayName") or None,
        "endDateTime": props.get("endDate"),
        "hint": record["meta"].get("hint"),
        "keyId": props.get("keyId"),
        "secretText": None,
        "startDateTime": props.get("startDate"),
    }


def _graph_error(code: str, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message}}


def _aad_error(error: str, code: int, description: str) -> dict[str, Any]:
    return {
        "error": error,
        "error_description": f"AADSTS{code}: {description}",
        "error_codes": [code],
    }
