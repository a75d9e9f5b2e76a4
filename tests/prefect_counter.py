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

from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import urlsplit

from tests.prefect_cloud import (
    _REQUEST_HEADERS_DROPPED,
    PrefectProxy,
)

_PREFIX = "/api"


class PrefectCounter(PrefectProxy):
    """A transparent recording proxy in front of ``upstream`` (``http://127.0.0.1:N/api``)."""

    thread_name = "prefect-counter"

    @property
    def api_url(self) -> str:
        """``PREFECT_API_URL`` through the proxy."""
        return f"http://127.0.0.1:{self.port}{_PREFIX}"

    def handler(self) -> type[BaseHTTPRequestHandler]:
        """The recording handler."""
        return _handler(self)


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
            counter._record(self.command, relative, parts.query, body, status)
            self.send_response(status)
            for key, value in kept.items():
                self.send_header(key, value)
            self.send_header("content-length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: Any) -> None:
            return

    return Handler
