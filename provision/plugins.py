"""Provider plugins started by this process, for the pulumi CLI to attach to.

The engine starts a provider plugin only when the program first needs it, and one plugin at
a time: every registration waits while a plugin starts (``pulumi/pkg/host``'s load queue),
and a cloud provider's start is a large binary loading its schema. For an existing stack the
plugins are known before the CLI even starts: the state names each package's default provider
and its version. :func:`attachable` finds those, resolved to the very binary the engine would
run; :class:`Plugins` starts them next to the CLI, and the CLI attaches to them
(``PULUMI_DEBUG_PROVIDERS=<package>:<port>``, its supported way to use a provider that is
already running) instead of starting them, so their start-up overlaps the CLI's and the
program's.

A package is attached only when that is exactly what the engine would do on its own:

- the state has one provider of the package, its default provider (``default_<version>``),
  at the version the program's SDK asks for (``pulumi-plugin.json`` of ``pulumi_<package>``):
  the CLI attaches every provider of a package to the one process, so a second provider
  (another version, an explicit one) would share its configuration;
- its binary is found as ``workspace.GetPluginPath`` finds it: on ``PATH`` unless
  ``PULUMI_IGNORE_AMBIENT_PLUGINS``, else in the plugin cache at exactly that version
  (``$PULUMI_HOME/plugins/resource-<package>-v<version>``, not a partial download);
- nobody attached it already (a ``PULUMI_DEBUG_PROVIDERS`` entry of the user's).

Anything else is left to the engine, as before. A plugin is started as the engine starts one
(in the program's directory, outside this process group, with ``PULUMI_PROJECT`` and the
package's config as ``PULUMI_CONFIG``), but without the engine's address on its command line,
as providers are started for debugging: attaching hands it over (the ``Attach`` call). One
that will not start that way fails the attach at once, and the engine runs the command again
with the engine starting its plugins (``Engine._operate``). Its output joins the CLI's, as
the engine's does with a plugin it started; it ends when the command is over, and on Linux
with this process even if that is killed, which is why the engine starts them for previews
only (a killed update's engine must finish its in-flight operations). Knows nothing of any cloud.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import cache, partial
from pathlib import Path
from typing import Any

from provision.late_port import LatePort

PROVIDER_TYPE_PREFIX = "pulumi:providers:"
ATTACH_ENV = "PULUMI_DEBUG_PROVIDERS"
_ENGINE_OWN = frozenset({"pulumi", "pulumi-python", "pulumi-nodejs"})
"""Packages the engine serves itself or this process serves (the dynamic provider)."""


@dataclass(frozen=True)
class Plugin:
    """A provider plugin to start: its package, version, executable, and the variables the
    engine sets for it (``PULUMI_PROJECT``, ``PULUMI_CONFIG``)."""

    package: str
    version: str
    binary: Path
    env: Mapping[str, str]


def attachable(
    deployment: Mapping[str, Any],
    *,
    project: str,
    config: Mapping[str, str],
    env: Mapping[str, str],
) -> list[Plugin]:
    """The plugins of ``deployment``'s default providers that can be started here for the
    CLI to attach to (see the module docstring): for the CLI's environment ``env``, in
    ``project`` whose stack has ``config``."""
    by_package: dict[str, list[Mapping[str, Any]]] = {}
    for resource in deployment.get("resources") or ():
        kind = str(resource.get("type") or "")
        if kind.startswith(PROVIDER_TYPE_PREFIX):
            by_package.setdefault(kind[len(PROVIDER_TYPE_PREFIX) :], []).append(resource)
    attached = {e.split(":", 1)[0] for e in (env.get(ATTACH_ENV) or "").split(",") if e}
    plugins = []
    for package, providers in sorted(by_package.items()):
        if package in _ENGINE_OWN or package in attached or len(providers) != 1:
            continue
        provider = providers[0]
        if not str(provider.get("urn") or "").rsplit("::", 1)[-1].startswith("default"):
            continue
        version = (provider.get("inputs") or {}).get("version")
        if not isinstance(version, str) or version != sdk_version(package):
            continue
        binary = plugin_binary(package, version, env)
        if binary is not None:
            plugin_env = {"PULUMI_PROJECT": project, "PULUMI_CONFIG": _config(config, package)}
            plugins.append(Plugin(package, version, binary, plugin_env))
    return plugins


def sdk_version(package: str) -> str | None:
    """The plugin version the installed Python SDK of ``package`` asks for (its
    ``pulumi-plugin.json``), without importing it; ``None`` without one."""
    try:
        spec = importlib.util.find_spec("pulumi_" + package.replace("-", "_"))
    except (ImportError, ValueError):
        return None
    for location in (spec.submodule_search_locations or ()) if spec else ():
        try:
            meta = json.loads((Path(location) / "pulumi-plugin.json").read_text())
        except (OSError, ValueError):
            continue
        if meta.get("resource") and meta.get("name", package) == package:
            version = meta.get("version")
            return str(version).removeprefix("v") if version else None
    return None


def plugin_binary(package: str, version: str, env: Mapping[str, str]) -> Path | None:
    """The executable the engine would run for ``package`` at ``version`` under ``env``, or
    ``None`` when only the engine can tell (it would install it, or choose among others)."""
    filename = f"pulumi-resource-{package}"
    if (env.get("PULUMI_IGNORE_AMBIENT_PLUGINS") or "").lower() not in ("1", "true"):
        found = shutil.which(filename, path=env.get("PATH", ""))
        if found is not None:
            # Go's LookPath refuses a match in the current directory (a relative PATH entry).
            return Path(found) if os.path.isabs(found) else None
    home = Path(env.get("PULUMI_HOME") or Path.home() / ".pulumi")
    directory = home / "plugins" / f"resource-{package}-v{version}"
    binary = directory / filename
    if directory.with_name(directory.name + ".partial").exists():
        return None  # a download that did not finish: the engine would install it again
    return binary if os.access(binary, os.X_OK) and binary.is_file() else None


def attach_env(ports: Mapping[str, int], inherited: str | None) -> str:
    """``PULUMI_DEBUG_PROVIDERS`` naming ``ports`` (package → port), keeping the entries of
    other packages (one a user attaches on purpose)."""
    others = [e for e in (inherited or "").split(",") if e and e.split(":", 1)[0] not in ports]
    return ",".join([*others, *(f"{package}:{port}" for package, port in ports.items())])


def _config(config: Mapping[str, str], package: str) -> str:
    """The ``PULUMI_CONFIG`` the engine gives ``package``'s plugin: its config keys, bare."""
    prefix = f"{package}:"
    return json.dumps({k[len(prefix) :]: v for k, v in config.items() if k.startswith(prefix)})


class Plugins:
    """Provider plugins to start, each behind a :class:`LatePort` whose port (:attr:`ports`)
    the CLI is given before :meth:`start` (a plugin names its own port only once it has
    started, and the CLI, whose start-up is the longer, is started first).

    :meth:`close` ends them; a plugin that cannot be started, or ends before naming its port
    (:attr:`failed`), leaves its late port to a server without the provider service, where
    the CLI's attach fails at once. Their output lines, prefixed as the engine prefixes a
    plugin's, are in :attr:`output`.
    """

    def __init__(self, plugins: Iterable[Plugin]) -> None:
        self.output: list[str] = []
        self.failed = False
        """Whether a plugin could not be started or ended before naming its port (one that
        cannot start without the engine's address on its command line, or at all)."""
        self._plugins = [(plugin, LatePort()) for plugin in plugins]
        self.ports: dict[str, int] = {plugin.package: late.port for plugin, late in self._plugins}
        self._running: list[subprocess.Popen[str]] = []
        self._readers: list[threading.Thread] = []

    def start(self, *, work_dir: Path, env: Mapping[str, str]) -> None:
        """Start every plugin in ``work_dir`` with ``env`` (the CLI's) and its own variables."""
        for plugin, late in self._plugins:
            self._start(plugin, late, work_dir, env)

    def _start(
        self, plugin: Plugin, late: LatePort, work_dir: Path, env: Mapping[str, str]
    ) -> None:
        prefix = f"{plugin.package} (resource)"
        try:
            process = _spawn(
                [str(plugin.binary)],
                cwd=work_dir,
                env={**env, **plugin.env},
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                stdin=subprocess.DEVNULL,
                encoding="utf-8",
                errors="replace",
                # Outside this process group, as the engine starts plugins: a Ctrl-C reaches
                # the CLI, which cancels the providers' work, not the providers themselves.
                start_new_session=True,
            )
        except OSError as exc:
            # Gone since it was found: the engine's own start will say so, on the rerun.
            self.output.append(f"{prefix}: could not start {plugin.binary}: {exc}")
            self._refuse(late)
            return
        self._running.append(process)
        self._readers += [
            threading.Thread(target=self._announce, args=(process, late, prefix), daemon=True),
            threading.Thread(target=self._collect, args=(process.stderr, prefix), daemon=True),
        ]
        for reader in self._readers[-2:]:
            reader.start()

    def _refuse(self, late: LatePort) -> None:
        self.failed = True
        # A closed port would have the CLI retry its connection for 10 s before it gives up;
        # a server without the provider service fails its attach at once.
        late.connect_to(_no_provider_port())

    def _announce(self, process: subprocess.Popen[str], late: LatePort, prefix: str) -> None:
        """Relay the late port to the port the plugin prints first, then keep its output."""
        assert process.stdout is not None
        first = process.stdout.readline().strip()
        if first.isdigit():
            late.connect_to(int(first))
        else:
            if first:
                self.output.append(f"{prefix}: {first}")
            self._refuse(late)
        self._collect(process.stdout, prefix)

    def _collect(self, stream: Any, prefix: str) -> None:
        for line in iter(stream.readline, ""):
            if line.strip():
                self.output.append(f"{prefix}: {line.rstrip()}")
        stream.close()

    @property
    def pids(self) -> list[int]:
        """The started plugins' process ids."""
        return [process.pid for process in self._running]

    def close(self) -> None:
        """End every plugin (once the CLI is done with them) and close their ports."""
        for _, late in self._plugins:
            late.close()
        for process in self._running:
            if process.poll() is None:
                # What the engine does with a plugin it started, once the command is over
                # (Windows has no SIGINT for a process: it terminates it).
                with contextlib.suppress(OSError):
                    if os.name == "nt":
                        process.terminate()
                    else:
                        process.send_signal(signal.SIGINT)
        for process in self._running:
            try:
                process.wait(timeout=_EXIT_WAIT_S)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        for reader in self._readers:
            reader.join(_EXIT_WAIT_S)  # the last of their output (a child could hold a pipe)
        self._running, self._readers = [], []


_EXIT_WAIT_S = 5.0
"""How long a plugin has to exit after SIGINT before it is killed."""


@cache
def _no_provider_port() -> int:
    """A loopback gRPC server answering every call ``UNIMPLEMENTED``; its port."""
    import grpc

    server = grpc.server(ThreadPoolExecutor(max_workers=1, thread_name_prefix="no-provider"))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    _NO_PROVIDER.append(server)  # kept alive with the process
    return port


_NO_PROVIDER: list[Any] = []


def _spawn(args: list[str], **kwargs: Any) -> subprocess.Popen[str]:
    """``Popen``, the plugin dying with this process (Linux).

    A plugin the CLI starts ends with the CLI; one started here must not outlive this process
    when it is killed (SIGKILL runs no cleanup). Linux's parent-death signal does that, but is
    sent when the *thread* that started the child ends: the spawns are therefore made by one
    thread that lives as long as the process.
    """
    if not sys.platform.startswith("linux"):
        return subprocess.Popen(args, **kwargs)
    # Run in the child between fork and exec: the C function alone (resolved here, before
    # the fork), nothing that imports or takes a Python lock.
    die_with_parent = partial(_prctl(), _PR_SET_PDEATHSIG, signal.SIGTERM)
    spawn = partial(subprocess.Popen, args, preexec_fn=die_with_parent, **kwargs)
    return _spawner().submit(spawn).result()


_PR_SET_PDEATHSIG = 1


@cache
def _spawner() -> ThreadPoolExecutor:
    # One worker, never shut down before the interpreter exits: the thread lives as long as
    # the process.
    return ThreadPoolExecutor(max_workers=1, thread_name_prefix="plugin-spawner")


@cache
def _prctl() -> Any:
    import ctypes

    return ctypes.CDLL(None, use_errno=True).prctl
