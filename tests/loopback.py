"""A threaded HTTP server on a free 127.0.0.1 port, serving from a daemon thread.

What the test and benchmark proxies share (``tests/prefect_cloud.py``, ``tests/prefect_counter.py``,
``bench/latency_proxy.py``): listening, the serving thread, stopping, the context manager. Each
gives its request handler (:meth:`LoopbackServer.handler`) and, if it needs one, what to set
up before listening or tear down after (:meth:`on_start`, :meth:`on_stop`).
"""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Self


class LoopbackServer:
    """Start with ``start()`` or as a context manager; ``port`` once started."""

    thread_name = "loopback-server"

    def __init__(self) -> None:
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def handler(self) -> type[BaseHTTPRequestHandler]:
        """The request handler class, bound to this server's state."""
        raise NotImplementedError

    def on_start(self) -> None:
        """Called before listening (open clients, register fixtures)."""

    def on_stop(self) -> None:
        """Called after the server stopped (close clients)."""

    @property
    def running(self) -> bool:
        """Whether it is listening."""
        return self._server is not None

    @property
    def port(self) -> int:
        """The port it listens on."""
        if self._server is None:
            raise RuntimeError(f"{type(self).__name__} is not started")
        return self._server.server_address[1]

    def start(self) -> Self:
        """Listen on a free loopback port and serve in a daemon thread (no-op if started)."""
        if self._server is not None:
            return self
        self.on_start()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self.handler())
        # Request threads must not keep a finished run alive.
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, name=self.thread_name, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop listening, close the socket, then ``on_stop``."""
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
        self.on_stop()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
