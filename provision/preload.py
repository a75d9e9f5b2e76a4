"""Import a program's modules in the background while the CLI subprocesses run.

A pool's inline program imports its stack module and the provider SDK's submodules when
``pulumi up`` (or ``preview``) calls it: ~1 s for GCP's, several for AWS's, spent while the
engine waits. :func:`start` begins those imports on a background thread as soon as the pool's
type is known, so they overlap the state read, the Prefect checks and the CLI's own start-up;
the program calls :func:`wait` before it touches any of them.

The provider SDKs load submodules lazily (``importlib.util.LazyLoader``), which is not
thread-safe before Python 3.12: a thread touching ``pulumi_gcp.artifactregistry`` while another
is loading it can see it half-loaded. So the preload loads every lazy submodule a stack module
refers to fully (not leaving it lazy), one preload at a time, and programs wait for all of them.
"""

from __future__ import annotations

import contextlib
import importlib
import threading
import types
from collections.abc import Iterable

_lock = threading.Lock()
"""Held while a preload imports: never two at once."""
_started: list[threading.Thread] = []


def start(modules: Iterable[str]) -> None:
    """Begin importing ``modules`` (and the lazy submodules they use) on a daemon thread."""
    names = tuple(modules)
    if not names:
        return
    thread = threading.Thread(target=_load, args=(names,), name="provision-preload", daemon=True)
    _started.append(thread)
    thread.start()


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
                _load_fully(importlib.import_module(name))
            except Exception:  # the program imports it again, and reports the failure
                return


def _load_fully(module: types.ModuleType) -> None:
    """Load the lazy modules ``module`` uses: those bound in its namespace, and the lazy
    attributes of its packages that its code names (``aws.ec2.Vpc`` names ``ec2``)."""
    names = _code_names(module)
    for value in list(vars(module).values()):
        if not isinstance(value, types.ModuleType):
            continue
        if _is_lazy(value):
            _touch(value)
            continue
        for attr in names:
            sub = value.__dict__.get(attr)
            if isinstance(sub, types.ModuleType) and _is_lazy(sub):
                _touch(sub)


def _is_lazy(module: types.ModuleType) -> bool:
    # importlib's, or the copy the pulumi SDK uses instead (``pulumi._utils._LazyModule``).
    return type(module) is not types.ModuleType and type(module).__name__ == "_LazyModule"


def _touch(module: types.ModuleType) -> None:
    # Accessing an attribute other than the introspection ones (__name__, __spec__...) runs
    # a lazy module's body, and turns it into a plain module.
    getattr(module, "__all__", None)


def _code_names(module: types.ModuleType) -> set[str]:
    """Every attribute or global name the module's code (functions and classes included)
    refers to."""
    names: set[str] = set()
    seen: set[int] = set()

    def walk(code: types.CodeType) -> None:
        if id(code) in seen:
            return
        seen.add(id(code))
        names.update(code.co_names)
        for const in code.co_consts:
            if isinstance(const, types.CodeType):
                walk(const)

    for value in list(vars(module).values()):
        code = getattr(value, "__code__", None)
        if isinstance(code, types.CodeType):
            walk(code)
        elif isinstance(value, type) and value.__module__ == module.__name__:
            for member in vars(value).values():
                inner = getattr(member, "__code__", None) or getattr(
                    getattr(member, "__func__", None), "__code__", None
                )
                if isinstance(inner, types.CodeType):
                    walk(inner)
    return names
