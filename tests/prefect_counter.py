"""A loopback proxy that records every request a real Prefect server receives through it.

For tests that count or check the requests ``provision`` sends to a self-hosted server (the
service's and the Prefect resources' provider's alike): point ``PREFECT_API_URL`` at
``api_url`` and every request is forwarded unchanged to the real server's API, then recorded.
No emulation, no auth: unlike ``tests/prefect_cloud.py``, the tool sees a self-hosted server.

    with PrefectCounter(prefect_server.api_url) as counter:
        env["PREFECT_API_URL"] = counter.api_url
        ...
        assert len(counter.calls()) <= 6
"""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

import httpx

from tests.prefect_cloud import (
    _REQUEST_HEADERS_DROPPED,
    _RESPONSE_HEADERS_KEPT,
    Recorded,
    _json_or_none,
    _query,
)

_PREFIX = "/api"


class PrefectCounter:
    """A transparent recording proxy in front of ``upstream`` (``http://127.0.0.1:N/api``)."""

    def __init__(self, upstream: str):
        self.upstream = upstream.rstrip("/")
        self._records: list[Recorded] = []
        self._lock = threading.Lock()
        self._http: httpx.Client | None = None
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def api_url(self) -> str:
        """``PREFECT_API_URL`` through the proxy."""
        assert self._server is not None, "the proxy is not started"
        return f"http://127.0.0.1:{self._server.server_address[1]}{_PREFIX}"

    def start(self) -> None:
        """Listen on a free loopback port, in a daemon thread."""
        self._http = httpx.Client(timeout=30)
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="prefect-counter", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        """Stop listening and close the upstream connections."""
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=10)
        if self._http is not None:
            self._http.close()

    def __enter__(self) -> PrefectCounter:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def requests(self) -> list[Recorded]:
        """Every request recorded since the last ``clear()``, oldest first."""
        with self._lock:
            return list(self._records)

    def calls(self) -> list[tuple[str, str]]:
        """``(method, path)`` of each recorded request (path relative to ``/api``)."""
        return [(r.method, r.path) for r in self.requests]

    def clear(self) -> None:
        """Forget the recorded requests."""
        with self._lock:
            self._records.clear()

    def _forward(
        self, method: str, path: str, query: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, dict[str, str], bytes]:
        assert self._http is not None
        url = self.upstream + path + (f"?{query}" if query else "")
        try:
            response = self._http.request(method, url, headers=headers, content=body or None)
        except httpx.TransportError:
            return 502, {"content-type": "application/json"}, b'{"detail": "upstream down"}'
        kept = {k: response.headers[k] for k in _RESPONSE_HEADERS_KEPT if k in response.headers}
        return response.status_code, kept, response.content


def _handler(counter: PrefectCounter) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            self._handle()

        do_POST = do_PUT = do_PATCH = do_DELETE = do_GET

        def _handle(self) -> None:
            parts = urlsplit(self.path)
            length = int(self.headers.get("content-length") or 0)
            body = self.rfile.read(length) if length else b""
            relative = parts.path[len(_PREFIX) :] if parts.path.startswith(_PREFIX) else ""
            headers = {
                k: v for k, v in self.headers.items() if k.lower() not in _REQUEST_HEADERS_DROPPED
            }
            status, kept, payload = counter._forward(
                self.command, relative, parts.query, headers, body
            )
            with counter._lock:
                counter._records.append(
                    Recorded(
                        method=self.command,
                        path=relative,
                        query=_query(parts.query),
                        json=_json_or_none(body),
                        body=body,
                        status=status,
                    )
                )
            self.send_response(status)
            for key, value in kept.items():
                self.send_header(key, value)
            self.send_header("content-length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: Any) -> None:
            return

    return Handler
