"""A Prefect Cloud workspace on loopback: a small HTTP proxy in front of a real Prefect server.

``provision`` treats Prefect Cloud differently from a self-hosted server (push and managed pool
types, default templates from ``/collections/work_pool_types``, bearer keys), and Cloud cannot be
reached from the tests. So this proxy makes the session's real self-hosted server look like a
Cloud workspace, and adds only what Cloud has and the server lacks:

- the URL: ``http://127.0.0.1:PORT/api/accounts/<uuid>/workspaces/<uuid>``, which
  ``provision.prefect.config`` recognises as Cloud by its path;
- authentication: every request needs ``Authorization: Bearer <key>``, else 401, as Cloud does
  (its clients map 401/403 to "bad key"; the body here is ours, Cloud's own is not published);
- ``GET /collections/work_pool_types``: Cloud's default base job templates, push and managed
  types included, served from ``tests/fixtures/cloud/work_pool_types.json``;
- the block types only Cloud registers, ``modal-credentials`` and ``coiled-credentials``:
  registered on the real server when the proxy starts, from ``tests/fixtures/cloud/<slug>.json``.

Everything else under the workspace prefix goes to the real server's ``/api/...`` unchanged
(method, query, body; status and body back), so blocks and work pools are validated and stored
by real Prefect code, never by a mock. What the fixtures are based on, with sources:
``tests/fixtures/cloud/README.md``.

Checked against prefect 3.8.8 (``tests/test_prefect_cloud.py``): the server accepts work pools
of type ``modal:push``, ``coiled:push`` and ``prefect:managed`` with their Cloud templates
(``WorkPoolCreate.type`` is a free string; ``create_work_pool`` only reserves names starting
with "prefect"), so no part of the work pool API needed emulating.

Every request under the workspace prefix is recorded (:class:`Recorded`), so tests can assert
the exact requests the tool sends. Requests outside the prefix get 404 and are not recorded.
A request is recorded before its answer is sent, so a client that has its answer can assert.

Fixtures (``tests/conftest.py``): ``prefect_cloud_proxy`` (session) runs one proxy over the
session's ``prefect_server``; ``prefect_cloud`` is that proxy with its record cleared for the
test. In a test::

    def test_modal_pool(prefect_cloud):
        api = resolve_api(prefect_cloud.api_url, prefect_cloud.api_key, env={})
        with PrefectWriter(api) as writer:
            writer.upsert_block("modal-credentials", "m", {"token_id": "ak-1", "token_secret": "s"})
        assert ("POST", "/block_documents/") in prefect_cloud.calls()

and for a ``provision`` subprocess, ``env.update(prefect_cloud.env)`` (``PREFECT_API_URL`` and
``PREFECT_API_KEY``). The real server's own URL still reads the same database, without a key.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx

from tests.loopback import LoopbackServer

FIXTURES = Path(__file__).parent / "fixtures" / "cloud"
BLOCK_TYPE_SLUGS = ("modal-credentials", "coiled-credentials")
"""The Cloud-only block types the proxy registers on the real server."""

# Headers that describe one hop (RFC 9110 §7.6.1), or that httpx sets itself for the upstream
# request, are not forwarded; neither is the Cloud key, which the self-hosted server never needs.
_REQUEST_HEADERS_DROPPED = frozenset(
    {
        "authorization",
        "connection",
        "content-length",
        "host",
        "keep-alive",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "accept-encoding",
    }
)
# Upstream response headers passed back. httpx has already decoded the body, so the upstream's
# content-encoding and content-length no longer apply; the proxy sets its own length.
_RESPONSE_HEADERS_KEPT = ("content-type", "retry-after", "location")


@dataclass(frozen=True)
class Recorded:
    """One request the proxy received under the workspace prefix."""

    method: str
    path: str
    """Relative to the workspace prefix, e.g. ``/work_pools/`` (``""`` for the prefix itself)."""
    query: dict[str, str | list[str]]
    """Query parameters; a parameter given more than once maps to the list of its values."""
    json: Any
    """The parsed JSON body, ``None`` without a body (or with a non-JSON one, see ``body``)."""
    body: bytes
    status: int
    """The status the proxy answered with."""


class PrefectProxy(LoopbackServer):
    """A loopback proxy in front of a real Prefect server's API (``upstream``,
    ``http://127.0.0.1:N/api``) that records every request it answers: what the Cloud emulation
    and the request counter (``tests/prefect_counter.py``) share."""

    def __init__(self, upstream: str) -> None:
        super().__init__()
        self.upstream = upstream.rstrip("/")
        self._records: list[Recorded] = []
        self._lock = threading.Lock()
        self._http: httpx.Client | None = None

    def on_start(self) -> None:
        """Open the upstream client."""
        self._http = httpx.Client(timeout=30)

    def on_stop(self) -> None:
        """Close the upstream connections."""
        if self._http is not None:
            self._http.close()
            self._http = None

    @property
    def requests(self) -> list[Recorded]:
        """Every request recorded since the last ``clear()``, oldest first (a copy)."""
        with self._lock:
            return list(self._records)

    def calls(self) -> list[tuple[str, str]]:
        """``(method, path)`` of each recorded request, for compact assertions."""
        return [(r.method, r.path) for r in self.requests]

    def clear(self) -> None:
        """Forget the recorded requests (the ``prefect_cloud`` fixture does it per test)."""
        with self._lock:
            self._records.clear()

    def _record(self, method: str, path: str, query: str, body: bytes, status: int) -> None:
        entry = Recorded(
            method=method,
            path=path,
            query=_query(query),
            json=_json_or_none(body),
            body=body,
            status=status,
        )
        with self._lock:
            self._records.append(entry)

    def _forward(
        self, method: str, path: str, query: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, dict[str, str], bytes]:
        """Send the request to the real server; (status, headers, body) of its answer. An
        unreachable server is a 502, as a load balancer in front of Cloud would answer."""
        assert self._http is not None
        url = self.upstream + path + (f"?{query}" if query else "")
        try:
            response = self._http.request(method, url, headers=headers, content=body or None)
        except httpx.TransportError as exc:
            detail = {"detail": f"upstream Prefect server unreachable: {type(exc).__name__}"}
            return 502, {"content-type": "application/json"}, json.dumps(detail).encode()
        kept = {k: response.headers[k] for k in _RESPONSE_HEADERS_KEPT if k in response.headers}
        return response.status_code, kept, response.content


class PrefectCloud(PrefectProxy):
    """A Cloud-like workspace URL in front of a self-hosted Prefect server's API.

    ``upstream`` is the real server's API URL (``http://127.0.0.1:N/api``). Use as a context
    manager, or ``start()``/``stop()``. ``api_url`` and ``api_key`` are what a Cloud user puts
    in ``PREFECT_API_URL``/``PREFECT_API_KEY``.
    """

    def __init__(
        self,
        upstream: str,
        *,
        api_key: str | None = None,
        account_id: str | None = None,
        workspace_id: str | None = None,
        fixtures: Path = FIXTURES,
    ):
        super().__init__(upstream)
        self.api_key = api_key or "pnu_" + uuid.uuid4().hex
        self.account_id = account_id or str(uuid.uuid4())
        self.workspace_id = workspace_id or str(uuid.uuid4())
        self.prefix = f"/api/accounts/{self.account_id}/workspaces/{self.workspace_id}"
        # Read once: a test that edits the fixture files mid-session must not change answers.
        self.work_pool_types_body = (fixtures / "work_pool_types.json").read_bytes()
        self._block_types = {
            slug: json.loads((fixtures / f"{slug}.json").read_text()) for slug in BLOCK_TYPE_SLUGS
        }
        self.block_type_ids: dict[str, str] = {}
        """Slug -> id on the real server of the block types registered at ``start()``."""

    # -- life cycle (start/stop/port: ``LoopbackServer``) --------------------------------------

    thread_name = "prefect-cloud-proxy"

    @property
    def api_url(self) -> str:
        """The workspace's API URL, without a trailing slash."""
        return f"http://127.0.0.1:{self.port}{self.prefix}"

    @property
    def env(self) -> dict[str, str]:
        """``PREFECT_API_URL`` and ``PREFECT_API_KEY`` for a process that should use it."""
        return {"PREFECT_API_URL": self.api_url, "PREFECT_API_KEY": self.api_key}

    def on_start(self) -> None:
        """Register the Cloud-only block types on the real server (before listening)."""
        super().on_start()
        self.block_type_ids = self._register_block_types()

    def handler(self) -> type[BaseHTTPRequestHandler]:
        """The Cloud emulation's request handler."""
        return _handler(self)

    def __repr__(self) -> str:
        where = self.api_url if self.running else "stopped"
        return f"PrefectCloud({where!r}, upstream={self.upstream!r})"

    # -- upstream ------------------------------------------------------------------------------

    def _register_block_types(self) -> dict[str, str]:
        """Create each Cloud-only block type and its schema on the real server, as Cloud has
        them (the API calls ``Block.register_type_and_schema`` makes). Idempotent: a type that
        exists (a restarted proxy on the same database) is reused, and the server answers 200
        with the existing schema when one with the same checksum and version exists."""
        assert self._http is not None
        ids: dict[str, str] = {}
        for slug, doc in self._block_types.items():
            created = self._http.post(f"{self.upstream}/block_types/", json=doc["block_type"])
            if created.status_code == 409:
                created = self._http.get(f"{self.upstream}/block_types/slug/{slug}")
            created.raise_for_status()
            block_type_id = created.json()["id"]
            schema = self._http.post(
                f"{self.upstream}/block_schemas/",
                json={**doc["block_schema"], "block_type_id": block_type_id},
            )
            schema.raise_for_status()
            ids[slug] = block_type_id
        return ids


def _handler(cloud: PrefectCloud) -> type[BaseHTTPRequestHandler]:
    """The request handler class, bound to one proxy."""

    class Handler(BaseHTTPRequestHandler):
        # HTTP/1.1 keeps the tool's connections open between requests, as Cloud does; every
        # answer therefore carries a Content-Length.
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            self._handle()

        def do_POST(self) -> None:
            self._handle()

        def do_PUT(self) -> None:
            self._handle()

        def do_PATCH(self) -> None:
            self._handle()

        def do_DELETE(self) -> None:
            self._handle()

        def _handle(self) -> None:
            parts = urlsplit(self.path)
            # Clients send a Content-Length with every JSON body (httpx does); chunked request
            # bodies are not needed by any client under test.
            length = int(self.headers.get("content-length") or 0)
            body = self.rfile.read(length) if length else b""
            path = parts.path
            if path != cloud.prefix and not path.startswith(cloud.prefix + "/"):
                self._reply(404, {"detail": "Not Found"})
                return
            # Paths stay percent-encoded as sent: recorded and forwarded exactly as on the wire.
            relative = path[len(cloud.prefix) :]
            status, headers, payload = self._answer(relative, parts.query, body)
            cloud._record(self.command, relative, parts.query, body, status)
            self._send(status, headers, payload)

        def _answer(self, relative: str, query: str, body: bytes) -> tuple[int, dict, bytes]:
            if self.headers.get("authorization", "") != f"Bearer {cloud.api_key}":
                return _json_reply(401, {"detail": "Unauthorized"})
            if self.command == "GET" and relative.rstrip("/") == "/collections/work_pool_types":
                # Cloud-only: the default templates of every type Cloud offers.
                return 200, {"content-type": "application/json"}, cloud.work_pool_types_body
            headers = {
                k: v for k, v in self.headers.items() if k.lower() not in _REQUEST_HEADERS_DROPPED
            }
            return cloud._forward(self.command, relative, query, headers, body)

        def _reply(self, status: int, payload: Any) -> None:
            self._send(*_json_reply(status, payload))

        def _send(self, status: int, headers: dict[str, str], payload: bytes) -> None:
            self.send_response(status)
            for key, value in headers.items():
                self.send_header(key, value)
            self.send_header("content-length", str(len(payload)))
            self.end_headers()
            if payload and self.command != "HEAD":
                self.wfile.write(payload)

        def log_message(self, format: str, *args: Any) -> None:
            # The record is the log; stderr noise would only clutter pytest's output.
            return

    return Handler


def _json_reply(status: int, payload: Any) -> tuple[int, dict[str, str], bytes]:
    return status, {"content-type": "application/json"}, json.dumps(payload).encode()


def _query(raw: str) -> dict[str, str | list[str]]:
    query: dict[str, str | list[str]] = {}
    for key, value in parse_qsl(raw, keep_blank_values=True):
        if key not in query:
            query[key] = value
        else:
            previous = query[key]
            query[key] = [*previous, value] if isinstance(previous, list) else [previous, value]
    return query


def _json_or_none(body: bytes) -> Any:
    if not body:
        return None
    try:
        return json.loads(body)
    except ValueError:
        return None


def work_pool_types(fixtures: Path = FIXTURES) -> dict[str, dict[str, Any]]:
    """The fixture's ``/collections/work_pool_types`` document (a fresh copy)."""
    return json.loads((fixtures / "work_pool_types.json").read_text())


def iter_workers(document: dict[str, dict[str, Any]]) -> Iterator[tuple[str, str, dict]]:
    """``(collection, key, entry)`` for every worker entry of a worker-metadata document."""
    for collection, workers in document.items():
        for key, entry in workers.items():
            yield collection, key, entry
