"""A loopback port that takes connections before the server behind it exists.

The pulumi CLI is told the addresses of this process's gRPC servers (the inline program's
language host, the dynamic provider) on its command line, and its first tenth of a second
or more goes to starting up and decrypting the stack, not to calling them. A ``LatePort``
lets the CLI start first: it listens at once (the kernel completes a client's TCP handshake
into the listen backlog), and each connection waits, its bytes unread, until
:meth:`LatePort.connect_to` names the real server's port; from then on both directions are
copied as they come. A gRPC client meanwhile sees a connection whose HTTP/2 handshake has not
finished yet: its calls wait (they are not failed), for up to its connect timeout (20 s for
the CLI's Go client).

Standard library only, so that the port exists before gRPC is even imported.
"""

from __future__ import annotations

import contextlib
import socket
import threading

HOST = "127.0.0.1"
_CHUNK = 65536


class LatePort:
    """A listening loopback port relaying to a server named later.

    ``port`` is bound when the object is made; :meth:`connect_to` names the server (once);
    :meth:`close` stops listening and cuts every relayed connection.
    """

    def __init__(self) -> None:
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.bind((HOST, 0))
        self._listener.listen(16)
        self.port: int = self._listener.getsockname()[1]
        self._target: int | None = None
        self._named = threading.Event()
        self._closed = False
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        threading.Thread(target=self._accept, name="late-port", daemon=True).start()

    @property
    def address(self) -> str:
        """``127.0.0.1:<port>``, as gRPC clients are given it."""
        return f"{HOST}:{self.port}"

    def connect_to(self, port: int) -> None:
        """Relay every connection, waiting or to come, to ``port`` on the loopback (nothing,
        once closed: a server may come up after its user has given up on it)."""
        with self._lock:
            if self._closed:
                return
            if self._named.is_set():
                raise RuntimeError("this port is already relayed to a server")
            self._target = port
            self._named.set()

    def close(self) -> None:
        """Stop listening and close every relayed connection (idempotent)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            sockets, self._sockets = self._sockets, []
        self._named.set()  # connections still waiting give up
        # shutdown() wakes the thread blocked in accept(); close() alone would not on Linux.
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)
        self._listener.close()
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def _keep(self, sock: socket.socket) -> bool:
        """Track ``sock`` for ``close``; ``False`` (and ``sock`` closed) once closed."""
        with self._lock:
            if not self._closed:
                self._sockets.append(sock)
                return True
        sock.close()
        return False

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:  # closed
                return
            if self._keep(client):
                threading.Thread(
                    target=self._relay, args=(client,), name="late-port-relay", daemon=True
                ).start()

    def _relay(self, client: socket.socket) -> None:
        self._named.wait()
        if self._closed or self._target is None:
            client.close()
            return
        try:
            server = socket.create_connection((HOST, self._target))
        except OSError:
            # The server is gone: the client sees its connection closed, as it would have.
            client.close()
            return
        if not self._keep(server):
            client.close()
            return
        for sock in (client, server):
            # gRPC's small frames must not wait for Nagle's delayed ACK (tens of ms a call).
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        threading.Thread(
            target=_pump, args=(server, client), name="late-port-relay", daemon=True
        ).start()
        _pump(client, server)


def _pump(source: socket.socket, sink: socket.socket) -> None:
    """Copy ``source`` to ``sink`` until ``source`` ends, then end ``sink``'s writing side."""
    try:
        while True:
            data = source.recv(_CHUNK)
            if not data:
                break
            sink.sendall(data)
    except OSError:
        pass
    with contextlib.suppress(OSError):
        sink.shutdown(socket.SHUT_WR)
