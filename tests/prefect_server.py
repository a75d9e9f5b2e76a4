"""A real Prefect server for tests: ``prefect server start`` on a free port, SQLite in a temp dir.

Tests talk to the same server Prefect users run, never to a mock of its API. The server can be
stopped and started again on the same port and database, for "Prefect went down" scenarios.

Startup (prefect 3.8.8, this machine): ~7.5 s on a fresh database, of which ~4 s are migrations
and block-type registration; ~3 s from a seeded database (the floor: importing the CLI and the
server app). So the first server of a test run saves a migrated database in ``seed_dir`` (keyed
by Prefect version) and later runs copy it instead of migrating again.
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib.metadata
import os
import random
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx

_DB = "prefect.db"
PROTECTED_AUTH = "admin:s3cr3t-pass"
"""The ``user:password`` of the ``protected_prefect_server`` fixture's server."""
# Prefect memoises block-type registration here: copied with the seed, the server skips it.
_MEMO = "memo_store.toml"


def free_port() -> int:
    """A TCP port nothing listens on right now (the OS picks it)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _ephemeral_range() -> tuple[int, int]:
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999  # Linux's default


def _bindable(port: int) -> bool:
    # The same test ``prefect server start`` makes before it binds (SO_REUSEADDR, so a
    # TIME_WAIT connection of the last run does not count as "in use").
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def restartable_port() -> int:
    """A free port the kernel never hands out by itself, for a server stopped and started
    again on it.

    A port from :func:`free_port` is in the ephemeral range: while its server is down, any
    ``bind(0)`` or outgoing connection on the machine (the run under test opens several) may
    take it, and the restart fails with "Port ... is already in use" (seen in CI, once).
    Below the range only another caller of this function can take it.
    """
    low, high = _ephemeral_range()
    candidates = range(10000, low) if low > 11000 else range(high + 1, 65536)
    for _ in range(200):
        port = random.choice(candidates)
        if _bindable(port):
            return port
    return free_port()


class PrefectServer:
    """One ``prefect server start`` process with its own ``PREFECT_HOME`` and database."""

    def __init__(
        self,
        home: Path,
        *,
        port: int | None = None,
        seed_dir: Path | None = None,
        startup_timeout: float = 90.0,
        extra_env: dict[str, str] | None = None,
    ):
        self.home = Path(home)
        self.port = port or restartable_port()
        self.seed_dir = seed_dir
        self.startup_timeout = startup_timeout
        self.extra_env = dict(extra_env or {})
        self.startup_seconds: float | None = None
        """Wall time of the last ``start()``, from spawn to a healthy ``/api/health``."""
        self.log_path = self.home / "server.log"
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def api_url(self) -> str:
        """``PREFECT_API_URL`` for this server."""
        return f"http://127.0.0.1:{self.port}/api"

    @property
    def running(self) -> bool:
        """Whether the server process is alive."""
        return self._proc is not None and self._proc.poll() is None

    def __repr__(self) -> str:
        return f"PrefectServer(api_url={self.api_url!r}, running={self.running})"

    def start(self) -> None:
        """Start the server (same port and database as before, if it ran already) and wait
        until it is healthy. No-op if it is running."""
        if self.running:
            return
        self.home.mkdir(parents=True, exist_ok=True)
        self._wait_port_free()
        seeded = self._restore_seed()
        prefect = Path(sys.executable).parent / "prefect"
        started = time.monotonic()
        with self.log_path.open("ab") as log:
            self._proc = subprocess.Popen(
                [
                    str(prefect),
                    "server",
                    "start",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(self.port),
                    # Scheduler, late runs, event persister, triggers, ...: none is needed to
                    # read and write blocks and work pools.
                    "--no-services",
                    "--no-ui",
                    "--analytics-off",
                ],
                env=self._env(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.home,
                # PR_SET_PDEATHSIG fires when the *thread* that spawned the child exits, so
                # it is only safe from the main thread (a restart from a helper thread would
                # otherwise kill the server as soon as that thread returns).
                preexec_fn=_die_with_parent
                if threading.current_thread() is threading.main_thread()
                else None,
            )
        self._wait_healthy()
        self.startup_seconds = time.monotonic() - started
        if not seeded:
            self._save_seed()

    def stop(self) -> None:
        """Stop the server: SIGTERM, then SIGKILL if it does not exit within 10 s."""
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)

    def freeze(self) -> None:
        """Stop the process in its tracks (SIGSTOP): the kernel still accepts connections, so a
        client's request goes out and waits, unanswered, until :meth:`kill`."""
        if self.running:
            os.kill(self._proc.pid, signal.SIGSTOP)

    def kill(self) -> None:
        """SIGKILL the server (frozen or not): a request it had received is never answered.
        :meth:`start` brings it back on the same port and database."""
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)

    def restart(self) -> None:
        """Stop, then start on the same port and database."""
        self.stop()
        self.start()

    def log_tail(self, chars: int = 6000) -> str:
        """The end of the server's log (all runs), for failure messages."""
        try:
            text = self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return "(no server log)"
        return text[-chars:]

    def _env(self) -> dict[str, str]:
        # Nothing of the developer's own Prefect configuration may leak in (an API key, a
        # Postgres URL, a profile): drop every PREFECT_* variable and set what we need.
        env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
        env.update(
            PREFECT_HOME=str(self.home),
            PREFECT_SERVER_DATABASE_CONNECTION_URL=f"sqlite+aiosqlite:///{self.home / _DB}",
            PREFECT_SERVER_ANALYTICS_ENABLED="false",
            PREFECT_SERVER_UI_ENABLED="false",
            DO_NOT_TRACK="1",
        )
        env.update(self.extra_env)
        return env

    def _wait_port_free(self, timeout: float = 30.0) -> None:
        # A restart right after stop(): a connection the kernel has not let go of yet must not
        # make the new server exit with "already in use".
        deadline = time.monotonic() + timeout
        while not _bindable(self.port):
            if time.monotonic() > deadline:
                raise RuntimeError(f"port {self.port} still in use {timeout:.0f}s after stop")
            time.sleep(0.1)

    def _wait_healthy(self) -> None:
        assert self._proc is not None
        deadline = time.monotonic() + self.startup_timeout
        while True:
            code = self._proc.poll()
            if code is not None:
                self._proc = None
                raise RuntimeError(
                    f"prefect server exited with code {code} during startup.\n"
                    f"--- server log ---\n{self.log_tail()}"
                )
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.api_url}/health", timeout=2).status_code == 200:
                    return
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(
                    f"prefect server at {self.api_url} not healthy after "
                    f"{self.startup_timeout:.0f}s.\n--- server log ---\n{self.log_tail()}"
                )
            time.sleep(0.05)

    def _seed_path(self) -> Path | None:
        if self.seed_dir is None:
            return None
        return Path(self.seed_dir) / f"prefect-{importlib.metadata.version('prefect')}"

    def _restore_seed(self) -> bool:
        """Copy the seeded database in, on the first start only. True if the DB exists now."""
        if (self.home / _DB).exists():
            return True
        seed = self._seed_path()
        if seed is None or not (seed / _DB).exists() or not (seed / _MEMO).exists():
            return False
        shutil.copyfile(seed / _DB, self.home / _DB)
        shutil.copyfile(seed / _MEMO, self.home / _MEMO)
        return True

    def _save_seed(self) -> None:
        """Snapshot the freshly migrated database (before any test wrote to it)."""
        seed = self._seed_path()
        if seed is None or not (self.home / _MEMO).exists():
            return
        seed.mkdir(parents=True, exist_ok=True)
        # The server is live and in WAL mode: sqlite's backup API gives a consistent single
        # file. Write to temp names and rename, so a parallel run never sees half a seed.
        tmp_db = seed / f"{_DB}.{os.getpid()}.tmp"
        source = sqlite3.connect(self.home / _DB)
        try:
            target = sqlite3.connect(tmp_db)
            try:
                source.backup(target)
            finally:
                target.close()
        finally:
            source.close()
        tmp_memo = seed / f"{_MEMO}.{os.getpid()}.tmp"
        shutil.copyfile(self.home / _MEMO, tmp_memo)
        os.replace(tmp_db, seed / _DB)
        os.replace(tmp_memo, seed / _MEMO)


def _die_with_parent() -> None:
    """Linux: have the kernel SIGTERM the server if the test process dies without cleanup
    (``kill -9``, a crashed interpreter), so no server outlives its test run."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            libc = ctypes.CDLL("libc.so.6", use_errno=True)
            pr_set_pdeathsig = 1
            libc.prctl(pr_set_pdeathsig, signal.SIGTERM)
