"""The stack trace the pulumi SDK sends with every resource, without reading source files.

The SDK's ``pulumi.runtime.resource._get_stack_trace`` runs for each resource a program
declares: ``traceback.extract_stack()`` over the whole stack (30 to 40 frames here), then each
frame's file name turned into a URI. ``extract_stack`` also looks up the source line of every
frame, which reads each file on the stack into ``linecache`` and keeps it there (the SDK's
generated resource modules, asyncio's, the runtime's), and the SDK never uses the lines: only
file names and line numbers reach the engine (the stack trace, and the source position the
engine stores in the state). ~70 million instructions of an offline ``ecs`` plan (2.57 to 2.50
billion, ``valgrind --tool=cachegrind``) and ~1.8 MB of source text held by the process.

:func:`install` puts :func:`stack_trace` in its place: the same frames, walked from
``sys._getframe``, with each file's URI made once. Only over the SDK function it was written
against (:func:`_fingerprint`: the names and constants of it and of the helper it calls); a
pulumi release that changes either keeps its own.
"""

from __future__ import annotations

import functools
import pathlib
import sys
import types
from typing import Any

_UPSTREAM = (
    "_get_stack_trace",
    frozenset(
        {
            "traceback",
            "extract_stack",
            "range",
            "len",
            "name",
            "source_pb2",
            "StackTrace",
            "FrameSummary",
            "StackFrame",
            "list",
            "map",
            "reversed",
        }
    ),
    frozenset(
        {
            0,
            1,
            -1,
            "__init__",
            3,
            "frame",
            "return",
            None,
            ("frames",),
            (
                "rpc_frame",
                frozenset({"_get_source_position_for_frame", "source_pb2", "StackFrame"}),
                frozenset({None, ("pc",)}),
            ),
        }
    ),
)
"""The fingerprint (:func:`_fingerprint`) of the SDK's ``_get_stack_trace`` that
:func:`stack_trace` was written against (pulumi 3.259)."""

_UPSTREAM_POSITION = (
    "_get_source_position_for_frame",
    frozenset(
        {
            "filename",
            "lineno",
            "pathlib",
            "Path",
            "as_uri",
            "BaseException",
            "source_pb2",
            "SourcePosition",
        }
    ),
    frozenset({"", None, ("uri", "line")}),
)
"""The same for the helper it maps over the frames, ``_get_source_position_for_frame``."""


sdk_stack_trace: Any = None
"""The SDK's own function, once :func:`install` replaced it (what the tests compare with)."""


def install() -> bool:
    """Put :func:`stack_trace` in the SDK's place, if the SDK's functions are the ones it was
    written against; whether it is in place."""
    from pulumi.runtime import resource

    current = resource._get_stack_trace
    if current is stack_trace:
        return True
    position = getattr(resource, "_get_source_position_for_frame", None)
    if _fingerprint(current) != _UPSTREAM or _fingerprint(position) != _UPSTREAM_POSITION:
        return False
    global sdk_stack_trace
    sdk_stack_trace = current
    resource._get_stack_trace = stack_trace
    return True


def _fingerprint(function: Any) -> tuple[Any, ...] | None:
    """What a function does, as far as its names and constants tell, in a form that does not
    depend on the Python version's bytecode: its name, the names it uses, its constants (a
    nested function's fingerprint in place of its code, its docstring left out)."""
    code = getattr(function, "__code__", None)
    if code is None:
        return None
    return _code_fingerprint(code, function.__doc__)


def _code_fingerprint(code: types.CodeType, doc: str | None = None) -> tuple[Any, ...]:
    consts = frozenset(
        _code_fingerprint(c) if isinstance(c, types.CodeType) else c
        for c in code.co_consts
        if doc is None or c is not doc
    )
    return (code.co_name, frozenset(code.co_names), consts)


def stack_trace() -> Any:
    """The SDK's ``_get_stack_trace``, frame for frame: the frames above the third
    ``__init__`` up the stack (the resource's own constructor, under ``CustomResource`` or
    ``ComponentResource`` and ``Resource``), innermost first, each with its file's URI and
    line, or none for a file that is not an absolute path (``<string>``, frozen modules); no
    frames at all if there is no such ``__init__``, or nothing above it."""
    from pulumi.runtime.proto import source_pb2

    frames: list[types.FrameType] = []
    frame: types.FrameType | None = sys._getframe(1)
    while frame is not None:
        frames.append(frame)
        frame = frame.f_back
    # ``above``: where the frames sent begin, one past the third ``__init__``.
    above, inits = 0, 0
    while inits < 3 and above < len(frames):
        inits += frames[above].f_code.co_name == "__init__"
        above += 1
    # No frames when there are fewer than three (and none, from the slice, when the third is
    # the outermost frame: the SDK's ``i < 1``).
    if inits < 3:
        return source_pb2.StackTrace()
    out = []
    for frame in frames[above:]:
        uri = _uri(frame.f_code.co_filename)
        line = frame.f_lineno
        position = (
            None if uri is None or line is None else source_pb2.SourcePosition(uri=uri, line=line)
        )
        out.append(source_pb2.StackFrame(pc=position))
    return source_pb2.StackTrace(frames=out)


@functools.lru_cache(maxsize=1024)
def _uri(filename: str) -> str | None:
    """A source file's URI, as the SDK makes it; ``None`` where the SDK gives no position."""
    if filename == "":
        return None
    try:
        return pathlib.Path(filename).as_uri()
    except ValueError:  # a relative path: the SDK catches any exception, this is the one
        return None
