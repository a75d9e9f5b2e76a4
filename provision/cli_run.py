"""One ``pulumi preview|up|destroy`` of an inline program, started before its program exists.

The Automation API's ``Stack.up`` (and ``preview``, ``destroy``) starts the program's gRPC
language host first, and only then the CLI; the CLI then spends ~0.25 s starting up, reading
the backend and deriving the passphrase key before it calls the program. That order makes the
CLI wait for everything this process does before (loading the pulumi SDK, the Prefect checks),
and this process wait for the CLI after. Here the CLI starts first: :class:`CliRun` needs only
the arguments and the work dir, and gives the CLI :class:`~provision.late_port.LatePort`
addresses for the language host and the dynamic provider; :meth:`CliRun.serve` starts the real
servers (the SDK's ``LanguageServer``, this process's dynamic-provider host) when the program
is ready, and :meth:`CliRun.finish` waits for the CLI and reports as ``PulumiCommand.run``
does (a ``CommandError`` from the SDK's own classification).

Events come through the CLI's event log file (``--event-log PATH``: one JSON engine event a
line), read while the CLI runs: the file needs no server before the CLI starts, where the
``tcp://`` form would have the CLI's first event wait on one.

Knows nothing of pools or clouds; the engine decides when to start and what to serve.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from provision.dynamic_host import PACKAGE as DYNAMIC_PACKAGE
from provision.late_port import LatePort
from provision.plugins import ATTACH_ENV, Plugin, Plugins, attach_env

Program = Callable[[], Any]
EventCallback = Callable[[Any], None]

_POLL_S = 0.01
"""How often the event log is read while the CLI writes nothing (a read is a syscall)."""


def cli_environment(binary: str, env: Mapping[str, str]) -> dict[str, str]:
    """A CLI process's environment: this process's with ``env`` on top, as the Automation API
    runs it, and the CLI's own directory first on ``PATH`` (it starts its bundled plugins,
    ``pulumi-language-python``..., from there)."""
    full = {**os.environ, **env, "PULUMI_AUTOMATION_API": "true"}
    full["PATH"] = os.pathsep.join([str(Path(binary).parent), full.get("PATH", "")])
    return full


class CliRun:
    """``pulumi COMMAND... --stack STACK`` for an inline program, started in ``work_dir`` when
    this is made; see the module docstring.

    ``command`` is the operation and its flags (``["preview", "--refresh"]``); ``env`` is
    added to this process's environment; ``plugins`` are provider plugins started with it,
    for it to attach to (``plugins.attachable``). The program is served later (:meth:`serve`).
    """

    def __init__(
        self,
        binary: str,
        command: Sequence[str],
        *,
        stack: str,
        work_dir: Path,
        env: Mapping[str, str],
        plugins: Sequence[Plugin] = (),
    ) -> None:
        self.started_at = time.monotonic()
        self.owner: object = None
        """Whatever must live as long as this run (the engine whose scratch dir holds its
        work dir), set by whoever started it."""
        self._language = LatePort()
        self._provider = LatePort()
        self._events_dir = tempfile.mkdtemp(prefix="provision-events-")
        self._event_log = Path(self._events_dir) / "events.jsonl"
        self._event_log.touch()
        self._server: Any = None
        self._plugins: Plugins | None = None
        self._reader: threading.Thread | None = None
        self._exited = threading.Event()
        self._out: list[str] = []
        self._err: list[str] = []
        full_env = cli_environment(binary, {**env, "PULUMI_DEBUG_COMMANDS": "true"})
        # The dynamic provider is this process's (``dynamic_host``), and the plugins are
        # started right after the CLI: the engine attaches to them all.
        self._plugins = Plugins(plugins)
        ports = {**self._plugins.ports, DYNAMIC_PACKAGE: self._provider.port}
        full_env[ATTACH_ENV] = attach_env(ports, full_env.get(ATTACH_ENV))
        args = [
            binary,
            "--non-interactive",
            *command,
            f"--client={self._language.address}",
            "--exec-kind",
            "auto.inline",
            "--event-log",
            str(self._event_log),
            "--stack",
            stack,
        ]
        try:
            self._process = subprocess.Popen(
                args,
                cwd=work_dir,
                env=full_env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                encoding="utf-8",
            )
        except BaseException:
            self._cleanup()
            raise
        # After the CLI, whose start-up (Go, the backend read, the key derivation) is the
        # longer: the engine asks for a plugin only once the program runs.
        try:
            self._plugins.start(work_dir=work_dir, env=full_env)
        except BaseException:
            self._process.kill()
            self._process.wait()
            self._cleanup()
            raise
        streams = ((self._process.stdout, self._out), (self._process.stderr, self._err))
        self._pipes = [
            threading.Thread(target=_collect, args=(stream, lines), daemon=True)
            for stream, lines in streams
        ]
        for thread in self._pipes:
            thread.start()

    @property
    def age(self) -> float:
        """Seconds since the CLI was started."""
        return time.monotonic() - self.started_at

    @property
    def unattached(self) -> bool:
        """Whether a plugin started for the CLI to attach to ended before it could be: the
        run fails then, and is to be run again without (the engine starting its plugins)."""
        return self._plugins is not None and self._plugins.failed

    @property
    def exited(self) -> bool:
        """Whether the CLI has ended (before :meth:`serve`: on its own, with an error)."""
        return self._process.poll() is not None

    def serve(self, program: Program, provider_port: int, on_event: EventCallback) -> None:
        """Start the program's language host, relay the CLI to it and to the dynamic provider
        host on ``provider_port``, and hand each engine event to ``on_event`` from now on."""
        from concurrent import futures

        import grpc
        from pulumi.automation._server import LanguageServer
        from pulumi.runtime._grpc_settings import _GRPC_CHANNEL_OPTIONS
        from pulumi.runtime.proto import language_pb2_grpc

        server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=4, thread_name_prefix="language-host"),
            options=_GRPC_CHANNEL_OPTIONS,
        )
        language_pb2_grpc.add_LanguageRuntimeServicer_to_server(LanguageServer(program), server)
        port = server.add_insecure_port("127.0.0.1:0")
        server.start()
        self._server = server
        self._language.connect_to(port)
        self._provider.connect_to(provider_port)
        self._reader = threading.Thread(
            target=self._read_events, args=(on_event,), name="event-log", daemon=True
        )
        self._reader.start()

    def finish(self) -> Any:
        """Wait for the CLI; its ``CommandResult``, or the SDK's ``CommandError`` for it."""
        from pulumi.automation import CommandResult
        from pulumi.automation.errors import create_command_error

        try:
            self._reap()
            if self._reader is not None:
                self._reader.join()
        finally:
            self._cleanup()
        # A plugin's output is the CLI's own when the engine starts the plugin: keep it so.
        plugin_output = self._plugins.output if self._plugins is not None else []
        result = CommandResult(
            stdout="\n".join(self._out),
            stderr="\n".join([*self._err, *plugin_output]),
            code=self._process.returncode,
        )
        if self._process.returncode:
            raise create_command_error(result)
        return result

    def cancel(self) -> None:
        """End the CLI (a run whose program will never be served) and clean up."""
        if self._process.poll() is None:
            self._process.kill()
        self._reap()
        self._cleanup()

    def _reap(self) -> None:
        """Wait for the CLI and for the last of its output; the event reader then reads the
        log to its end and stops."""
        self._process.wait()
        for thread in self._pipes:
            thread.join()
        self._exited.set()

    def _cleanup(self) -> None:
        if self._server is not None:
            self._server.stop(0)
            self._server = None
        self._language.close()
        self._provider.close()
        if self._plugins is not None:
            self._plugins.close()
        shutil.rmtree(self._events_dir, ignore_errors=True)

    def _read_events(self, on_event: EventCallback) -> None:
        """Hand on each complete line of the event log until the CLI has exited and the file
        is read to its end."""
        from pulumi.automation.events import EngineEvent

        pending = ""
        with open(self._event_log, encoding="utf-8") as log:
            while True:
                # Checked before the read: once the CLI is gone, this read sees all it wrote.
                done = self._exited.is_set()
                chunk = log.read()
                if chunk:
                    lines = (pending + chunk).split("\n")
                    pending = lines.pop()
                    for line in lines:
                        if line.strip():
                            # An event this SDK cannot parse is skipped, as the Automation
                            # API's own reader does: the run's result never depends on one.
                            with contextlib.suppress(Exception):
                                on_event(EngineEvent.from_json(json.loads(line)))
                    continue
                if done:
                    return
                self._exited.wait(_POLL_S)


def _collect(stream: Any, lines: list[str]) -> None:
    """Keep every line of a CLI output stream (its errors are classified from them)."""
    for line in iter(stream.readline, ""):
        lines.append(line.rstrip())
    stream.close()
