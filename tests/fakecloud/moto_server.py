"""A moto server (AWS emulator) in a child process, and boto3 clients for one fake account.

The fake ``aws`` provider (``tests/fakecloud/aws.py``) turns every Pulumi operation into boto3
calls against this server, so AWS rules (ids, ARNs, CIDR conflicts, two access keys per user,
dependency violations) are moto's. Tests assert with :func:`client` what exists.

One server serves a whole pytest session; tests are isolated by **account**: moto keeps a
separate backend per account id and takes it from the ``x-moto-account-id`` request header,
which the provider (``FAKECLOUD_AWS_ACCOUNT_ID``) and :func:`client` add to every request.
:func:`new_account` draws a fresh 12-digit id, so no reset between tests is needed, ARNs carry
a test's own account, and a leftover process of one test cannot touch another's objects.

Run as ``python -m tests.fakecloud.moto_server``: it prints its port on the first line of
stdout (like a provider plugin) and serves until stdin closes or it is signalled. The child
gets ``MOTO_IAM_LOAD_MANAGED_POLICIES=true`` (AWS managed policies such as
AmazonECSTaskExecutionRolePolicy exist, as in AWS) and never ``MOTO_ACCOUNT_ID``, which would
override the header.

After the port, everything the child writes goes to its log file (:attr:`MotoServer.log_path`):
errors, and on SIGUSR1 every thread's stack (:meth:`MotoServer.threads`), which the test
session adds to a test that timed out on a request (``tests/conftest.py``). Nothing reads the
child's stdout after the port: a pipe left to fill would block the first thread to print, and
moto prints from inside the lock every request takes.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import threading
import time
import weakref
from pathlib import Path
from typing import Any

ENDPOINT_ENV = "FAKECLOUD_AWS_ENDPOINT"
ACCOUNT_ENV = "FAKECLOUD_AWS_ACCOUNT_ID"
ACCOUNT_HEADER = "x-moto-account-id"
CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
}
"""What the tests' environment holds; moto accepts any credentials."""

REPO_ROOT = Path(__file__).resolve().parents[2]


def new_account() -> str:
    """A fresh 12-digit account id (never moto's default 123456789012)."""
    return str(10**11 + secrets.randbelow(9 * 10**11))


def add_account_header(session_or_client: Any, account: str) -> None:
    """Make every request of a boto3 client or session go to ``account``'s backends."""

    def add(request: Any, **_: Any) -> None:
        request.headers[ACCOUNT_HEADER] = account

    events = (
        session_or_client.meta.events
        if hasattr(session_or_client, "meta")
        else session_or_client.events
    )
    events.register("before-sign.*.*", add)


def client(service: str, endpoint: str, account: str, region: str = "us-east-1") -> Any:
    """A boto3 client for ``service`` against the moto server, in ``account``."""
    import boto3
    from botocore.config import Config

    made = boto3.client(
        service,
        region_name=region,
        endpoint_url=endpoint,
        aws_access_key_id=CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        aws_session_token=CREDENTIALS["AWS_SESSION_TOKEN"],
        config=Config(retries={"max_attempts": 2, "mode": "standard"}),
    )
    add_account_header(made, account)
    return made


def access_keys(endpoint: str, account: str, user: str) -> list[dict[str, Any]]:
    """The live access keys of IAM user ``user`` in ``account``, oldest first (IAM's own
    ``AccessKeyMetadata``: ``AccessKeyId``, ``Status``, ``CreateDate``); none for a user that
    does not exist."""
    iam = client("iam", endpoint, account)
    try:
        keys = iam.list_access_keys(UserName=user)["AccessKeyMetadata"]
    except iam.exceptions.NoSuchEntityException:
        return []
    return sorted(keys, key=lambda k: k["CreateDate"])


class MotoServer:
    """A moto server child process on a free loopback port."""

    running: weakref.WeakSet[MotoServer] = weakref.WeakSet()
    """The servers this process started and has not stopped (for failure reports)."""

    def __init__(self) -> None:
        self.proc: subprocess.Popen[str] | None = None
        self.port: int | None = None
        self.log_path: Path | None = None

    @property
    def endpoint(self) -> str:
        """``http://127.0.0.1:PORT``."""
        if self.port is None:
            raise RuntimeError("the moto server is not running")
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60) -> MotoServer:
        """Start the child and wait for its port."""
        env = {k: v for k, v in os.environ.items() if k != "MOTO_ACCOUNT_ID"}
        env["MOTO_IAM_LOAD_MANAGED_POLICIES"] = "true"
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
        fd, log = tempfile.mkstemp(prefix="moto-server-", suffix=".log")
        self.log_path = Path(log)
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-u", "-m", "tests.fakecloud.moto_server"],
                env=env,
                cwd=REPO_ROOT,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=fd,
                text=True,
            )
        finally:
            os.close(fd)
        port: list[str] = []
        reader = threading.Thread(target=lambda: port.append(self.proc.stdout.readline()))
        reader.start()
        reader.join(timeout)
        if not port or not port[0].strip().isdigit():
            self.stop()
            raise RuntimeError(f"moto server did not report a port within {timeout} s")
        self.port = int(port[0])
        MotoServer.running.add(self)
        return self

    def threads(self, wait: float = 5.0) -> str:
        """Every thread's stack in the child now (faulthandler, on SIGUSR1), with the errors
        it logged before: what a request that got no answer was waiting on."""
        if self.proc is None or self.log_path is None:
            return "(not running)"
        if self.proc.poll() is not None:
            return f"(exited with {self.proc.returncode})\n{self._log_tail()}"
        size = self.log_path.stat().st_size
        self.proc.send_signal(signal.SIGUSR1)
        deadline = time.monotonic() + wait
        while self.log_path.stat().st_size == size and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.2)  # the dump is written thread by thread
        return self._log_tail()

    def _log_tail(self, chars: int = 20_000) -> str:
        assert self.log_path is not None
        return self.log_path.read_text(errors="replace")[-chars:]

    def stop(self) -> None:
        """Stop the child (closing its stdin; SIGKILL if it lingers)."""
        MotoServer.running.discard(self)
        if self.proc is not None:
            with contextlib.suppress(OSError):
                self.proc.stdin.close()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None
        self.port = None
        if self.log_path is not None:
            self.log_path.unlink(missing_ok=True)
            self.log_path = None


def main() -> None:
    """Serve on 127.0.0.1, a free port, printed first; exit when stdin closes."""
    import faulthandler
    import logging

    from moto.moto_server.threaded_moto_server import ThreadedMotoServer

    # stderr is the log file: errors only, not a line per request.
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    faulthandler.register(signal.SIGUSR1, file=sys.stderr, all_threads=True)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    sys.stdout.write(f"{server.get_host_and_port()[1]}\n")
    sys.stdout.flush()
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())  # see the module docstring
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    sys.stdin.read()  # returns when the parent closes our stdin or dies
    os._exit(0)


if __name__ == "__main__":
    main()
