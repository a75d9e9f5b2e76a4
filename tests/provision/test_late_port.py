"""LatePort with plain sockets: connections made before the server exists are relayed to it."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pytest

from provision.late_port import LatePort


class EchoServer:
    """A loopback server answering ``b"echo:" + data`` per read, counting its connections."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.accepted = 0
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted += 1
            threading.Thread(target=self._echo, args=(conn,), daemon=True).start()

    @staticmethod
    def _echo(conn: socket.socket) -> None:
        with conn:
            while data := conn.recv(65536):
                conn.sendall(b"echo:" + data)
            # The client ended its side: one last word, then end ours.
            conn.sendall(b"bye")

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def echo() -> Iterator[EchoServer]:
    server = EchoServer()
    yield server
    server.close()


@pytest.fixture
def port() -> Iterator[LatePort]:
    late = LatePort()
    yield late
    late.close()


def connect(late: LatePort) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", late.port), timeout=5)
    return sock


def ended(sock: socket.socket) -> bool:
    """Whether the peer has ended the connection (closed, or reset: both are a cut)."""
    try:
        return sock.recv(10) == b""
    except ConnectionResetError:
        return True


def read_exactly(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        assert chunk, f"connection ended after {data!r}"
        data += chunk
    return data


def test_a_connection_made_before_the_server_exists_is_served_once_it_does(port, echo):
    client = connect(port)  # accepted by the kernel: nothing listens behind the port yet
    client.sendall(b"hello")
    client.settimeout(0.3)
    with pytest.raises(TimeoutError):
        client.recv(10)  # nobody answers: the bytes wait
    assert echo.accepted == 0

    port.connect_to(echo.port)
    client.settimeout(5)
    assert read_exactly(client, 10) == b"echo:hello"
    client.sendall(b"again")
    assert read_exactly(client, 10) == b"echo:again"
    assert echo.accepted == 1


def test_connections_after_the_server_is_named_go_straight_through(port, echo):
    port.connect_to(echo.port)
    clients = [connect(port) for _ in range(3)]
    for i, client in enumerate(clients):
        client.sendall(f"c{i}".encode())
    assert [read_exactly(c, 7) for c in clients] == [b"echo:c0", b"echo:c1", b"echo:c2"]
    assert port.address == f"127.0.0.1:{port.port}"


def test_the_end_of_one_side_reaches_the_other(port, echo):
    """A half-close is relayed: the server sees the client's end and can still answer."""
    port.connect_to(echo.port)
    client = connect(port)
    client.sendall(b"last")
    assert read_exactly(client, 9) == b"echo:last"
    client.shutdown(socket.SHUT_WR)
    assert read_exactly(client, 3) == b"bye"
    assert client.recv(10) == b""  # and then the server's end


def test_close_cuts_waiting_and_relayed_connections_and_stops_listening(echo):
    late = LatePort()
    waiting = connect(late)
    late.close()
    assert ended(waiting)  # the waiting connection is closed, never relayed
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", late.port), timeout=5)
    late.close()  # again: nothing to do

    late = LatePort()
    late.connect_to(echo.port)
    relayed = connect(late)
    relayed.sendall(b"x")
    assert read_exactly(relayed, 6) == b"echo:x"
    late.close()
    assert ended(relayed)
    assert echo.accepted == 1


def test_a_server_that_is_gone_closes_the_client(port):
    gone = socket.create_server(("127.0.0.1", 0))
    gone_port = gone.getsockname()[1]
    gone.close()
    port.connect_to(gone_port)
    client = connect(port)
    assert ended(client)


def test_the_server_is_named_once(port, echo):
    port.connect_to(echo.port)
    with pytest.raises(RuntimeError, match="already"):
        port.connect_to(echo.port)


def test_naming_a_server_after_close_does_nothing(echo):
    # A plugin may announce its port after its run was cancelled: too late, and no error.
    late = LatePort()
    late.close()
    late.connect_to(echo.port)
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", late.port), timeout=2)
