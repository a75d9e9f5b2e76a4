"""A loopback HTTP proxy that adds a fixed delay to every request: a cloud region's round trip.

    with LatencyProxy("http://127.0.0.1:5000", delay_ms=200) as proxy:
        boto3.client("iam", endpoint_url=proxy.endpoint)   # each request now takes 200 ms more

The benchmarks put it in front of the moto server, and point every AWS client at it: the fake
``aws`` provider (``FAKECLOUD_AWS_ENDPOINT``) and Prefect's provisioner (``AWS_ENDPOINT_URL``).
So both tools see the same latency per request, whatever number of requests they make; the
proxy counts them. Each request sleeps in its own thread, so concurrent requests wait together,
as they would over a real network. Bodies, headers (``Host`` too, which moto reads) and status
codes pass through unchanged; only hop-by-hop headers are dropped.
"""

from __future__ import annotations

import http.client
import threading
import time
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import urlsplit

from tests.loopback import LoopbackServer

HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailers",
        "transfer-encoding",
        "upgrade",
        "content-length",  # set again from the body actually sent
    }
)


class LatencyProxy(LoopbackServer):
    """A threaded reverse proxy on 127.0.0.1 (a free port) in front of ``upstream``."""

    thread_name = "latency-proxy"

    def __init__(self, upstream: str, delay_ms: float = 0) -> None:
        super().__init__()
        parts = urlsplit(upstream)
        if parts.scheme != "http" or not parts.hostname or not parts.port:
            raise ValueError(f"upstream must be http://HOST:PORT, not {upstream!r}")
        self.upstream = (parts.hostname, parts.port)
        self.delay = delay_ms / 1000
        self.requests = 0
        """Requests forwarded so far (reset it between runs to count one run's)."""
        self._lock = threading.Lock()

    @property
    def endpoint(self) -> str:
        """``http://127.0.0.1:PORT``: give this to the clients instead of the upstream."""
        return f"http://127.0.0.1:{self.port}"

    def handler(self) -> type[BaseHTTPRequestHandler]:
        """The delaying, forwarding handler."""
        return _handler(self)

    def count(self) -> None:
        with self._lock:
            self.requests += 1


def _handler(proxy: LatencyProxy) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as botocore's connection pool expects

        def _forward(self) -> None:
            proxy.count()
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else None
            headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
            if proxy.delay:
                time.sleep(proxy.delay)
            conn = http.client.HTTPConnection(*proxy.upstream, timeout=120)
            try:
                conn.request(self.command, self.path, body=body, headers=headers)
                response = conn.getresponse()
                data = response.read()
                status, reason, answer = response.status, response.reason, response.getheaders()
            finally:
                conn.close()
            self.send_response(status, reason)
            for key, value in answer:
                if key.lower() not in HOP_BY_HOP:
                    self.send_header(key, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)

        do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = do_PATCH = _forward

        def log_message(self, *_: Any) -> None:  # quiet: one line per request otherwise
            pass

    return Handler
