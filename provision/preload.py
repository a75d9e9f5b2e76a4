"""Import a program's modules in the background while the CLI subprocesses run.

A pool's inline program imports its stack module and the provider SDK's submodules when
``pulumi up`` (or ``preview``) calls it: ~1 s for GCP's, several for AWS's, spent while the
engine waits. :func:`start` begins those imports on a background thread as soon as the pool's
type is known, so they overlap the state read, the Prefect checks and the CLI's own start-up;
the program calls :func:`wait` before it touches any of them.

A stack module loads only the SDK modules it declares (``stacks/sdk_modules.py``), eagerly and
through the import system's per-module locks, so importing it on a thread is safe. What is not
is an SDK's own lazy submodule (``importlib.util.LazyLoader``, not thread-safe before Python
3.12: a thread touching ``pulumi_gcp.artifactregistry`` while another loads it can see it
half-loaded), which no stack leaves to be loaded later. Still, one preload runs at a time, and
programs wait for all of them before they run.
"""

from __future__ import annotations

import contextlib
import importlib
import threading
from collections.abc import Iterable

from stacks import sdk_modules

ENGINE_PARTS = ("grpc", "grpc.aio", "pulumi.automation", "pulumi.dynamic")
"""The deferred parts of the pulumi SDK (``stacks/sdk_modules.PULUMI_DEFERRED``) that every
engine run uses: the gRPC runtime, the Automation API, and dynamic providers (the Prefect
resources)."""

_lock = threading.Lock()
"""Held while a preload imports: never two at once."""
_started: list[threading.Thread] = []


def start(modules: Iterable[str]) -> None:
    """Begin importing ``modules`` on a daemon thread.

    The pulumi SDK's package is imported first, on the caller's thread, with its
    :data:`ENGINE_PARTS`: it has import cycles of its own, and two threads loading it at once
    can each be handed the other's modules half-initialised. (The engine has loaded it by the
    time the service starts a preload, so this usually costs nothing.)
    """
    names = tuple(modules)
    if not names:
        return
    importlib.import_module("pulumi")
    # Its gRPC runtime, Automation API and dynamic providers too, if the console script
    # deferred them (``stacks/sdk_modules.py``): every engine run uses them all, and this
    # keeps their loading off the preload's thread.
    for part in ENGINE_PARTS:
        sdk_modules.complete(part)
    thread = threading.Thread(target=_load, args=(names,), name="provision-preload", daemon=True)
    # Started before it is listed: a ``wait`` on another thread (the API runs pools in
    # parallel) must never join a thread not started yet.
    thread.start()
    _started.append(thread)


def wait() -> None:
    """Return once every started preload is over (a failed import is left for the program's
    own import to report)."""
    while _started:
        _started[0].join()
        with contextlib.suppress(ValueError):
            _started.remove(_started[0])


def _load(names: tuple[str, ...]) -> None:
    with _lock:
        for name in names:
            try:
                importlib.import_module(name)
            except Exception:  # the program imports it again, and reports the failure
                return
