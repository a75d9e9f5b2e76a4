"""The test Prefect server's port handling: a restart must find its port free."""

from __future__ import annotations

import socket
import threading
import time

import pytest

from tests.prefect_server import PrefectServer, _ephemeral_range, restartable_port


def test_a_restartable_port_is_outside_the_kernels_ephemeral_range_and_free():
    low, high = _ephemeral_range()
    for _ in range(20):
        port = restartable_port()
        # Nothing on the machine is given this port by bind(0) or connect() while the
        # server is down between stop() and start().
        assert not low <= port <= high
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", port))


def test_start_waits_for_a_port_still_held_after_stop(tmp_path):
    server = PrefectServer(tmp_path)
    holder = socket.socket()
    holder.bind(("127.0.0.1", server.port))
    holder.listen()
    threading.Timer(0.5, holder.close).start()
    started = time.monotonic()
    server._wait_port_free(timeout=10)
    assert time.monotonic() - started >= 0.4


def test_a_port_never_freed_is_one_clear_error(tmp_path):
    server = PrefectServer(tmp_path)
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", server.port))
        holder.listen()
        with pytest.raises(RuntimeError, match=f"port {server.port} still in use"):
            server._wait_port_free(timeout=0.3)
