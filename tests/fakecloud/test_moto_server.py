"""The moto server child: what it leaves to read when a request to it gets no answer."""

from __future__ import annotations

import os

import pytest
from botocore.exceptions import ReadTimeoutError

from tests.conftest import _timed_out_on_moto
from tests.fakecloud.moto_server import MotoServer


def test_threads_are_dumped_from_the_running_child(moto_server: MotoServer) -> None:
    assert moto_server in MotoServer.running
    dump = moto_server.threads()
    # The thread that accepts connections, where a stalled server would show what it waits on.
    assert "serve_forever" in dump
    assert "Thread 0x" in dump


def test_nothing_the_child_prints_can_fill_a_pipe(moto_server: MotoServer) -> None:
    # After the port line, stdout is the log file, which nobody has to read for it to go on.
    assert moto_server.proc is not None and moto_server.log_path is not None
    stdout = os.readlink(f"/proc/{moto_server.proc.pid}/fd/1")
    assert stdout == str(moto_server.log_path)


def test_a_stopped_server_leaves_no_log_behind() -> None:
    server = MotoServer().start()
    log = server.log_path
    assert log is not None and log.exists()
    server.stop()
    assert not log.exists()
    assert server not in MotoServer.running


@pytest.mark.parametrize("chained", [False, True])
def test_a_request_timeout_is_recognised_however_it_was_raised(chained: bool) -> None:
    timeout = ReadTimeoutError(endpoint_url="http://127.0.0.1:1/bucket")
    if not chained:
        assert _timed_out_on_moto(timeout)
        return
    try:
        try:
            raise timeout
        except ReadTimeoutError as exc:
            raise RuntimeError("the backend could not be made") from exc
    except RuntimeError as outer:
        assert _timed_out_on_moto(outer)
    assert not _timed_out_on_moto(RuntimeError("unrelated"))
