"""Cheaper equivalents of two things the pulumi runtime does for every resource, each put in the
SDK's place only over the function it was written against.

**The stack trace sent with each resource** (:func:`stack_trace`, over
``pulumi.runtime.resource._get_stack_trace``): the SDK takes ``traceback.extract_stack()`` over
the whole stack (30 to 40 frames here) and turns each frame's file name into a URI.
``extract_stack`` also looks up the source line of every frame, which reads each file on the
stack into ``linecache`` and keeps it there (the SDK's generated resource modules, asyncio's,
the runtime's), and the SDK never uses the lines: only file names and line numbers reach the
engine (the stack trace, and the source position the engine stores in the state). Here: the
same frames, walked from ``sys._getframe``, each file's URI made once. ~70 million instructions
of an offline ``ecs`` plan (2.57 to 2.50 billion, ``valgrind --tool=cachegrind``) and ~1.8 MB of
source text held by the process.

**The return annotations of a class's property getters** (:func:`return_hints`, over
``pulumi._types._raw_return_hints``): what the runtime reads before it turns a resource's
outputs, or an input or output type, into Python values. The SDK calls
``typing.get_type_hints`` for each getter, every string compiled and evaluated anew, though the
generated SDKs use a few dozen strings for hundreds of getters (``pulumi.Output[_builtins.str]``
113 times in an ``ecs`` plan, 459 getters in all, 69 distinct strings). Here a string's result
is kept with the objects its names were bound to (in the globals of the class's modules, the
SDK's locals and the builtins, names inside quoted parts of it included), and reused only where
the same string finds the very same objects, so the same attributes of them (``outputs.X``:
module and class attributes, which nothing rebinds once loaded): an equal result to the one
``get_type_hints`` would compute again. 389 of an ``ecs`` plan's 459 getters reuse one; ~68
million instructions (2.50 to 2.43 billion).

:func:`install` puts them in place, each only if the SDK's function has the fingerprint it was
written against (:func:`_fingerprint`: the names and constants it uses); a pulumi release that
changes one keeps its own. Process-wide: the results are the SDK's, for any program.
"""

from __future__ import annotations

import builtins as _builtins_module
import contextlib
import functools
import pathlib
import sys
import types
import typing
from typing import Any

_BUILTINS = vars(_builtins_module)

_UPSTREAM_TRACE = (
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


_UPSTREAM_HINTS = (
    "_raw_return_hints",
    frozenset(
        {
            "",  # ``from . import Output``
            "_py_properties",
            "get_type_hints",
            "_globals_for_cls",
            "type",
            "Output",
            "get",
            "fget",
        }
    ),
    frozenset({1, ("globalns", "localns"), "return", ("Output", "T"), ("Output",), None}),
)
"""The same for ``pulumi._types._raw_return_hints`` (the function under its cache)."""

replaced: dict[str, Any] = {}
"""The SDK's own functions :func:`install` replaced, by name (what the tests compare with)."""


def install() -> None:
    """Put :func:`stack_trace` and :func:`return_hints` in the SDK's place, each where the
    SDK's function is the one it was written against (:data:`replaced` names them)."""
    from pulumi import _types
    from pulumi.runtime import resource

    position = getattr(resource, "_get_source_position_for_frame", None)
    if _fingerprint(position) == _UPSTREAM_POSITION:
        _replace(resource, "_get_stack_trace", stack_trace, _UPSTREAM_TRACE)
    _replace(_types, "_raw_return_hints", return_hints, _UPSTREAM_HINTS)


def _replace(module: types.ModuleType, name: str, ours: Any, fingerprint: tuple) -> None:
    current = getattr(module, name, None)
    if current is ours or _fingerprint(current) != fingerprint:
        return
    replaced[name] = current
    setattr(module, name, ours)


def _fingerprint(function: Any) -> tuple[Any, ...] | None:
    """What a function does, as far as its names and constants tell, in a form that does not
    depend on the Python version's bytecode: its name, the names it uses, its constants (a
    nested function's fingerprint in place of its code, its docstring left out)."""
    function = getattr(function, "__wrapped__", function)  # under functools.cache
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


_UNBOUND = object()
"""What a name no namespace binds is bound to, in a key."""

_hints: dict[tuple[str, tuple[int, ...]], tuple[Any, tuple[Any, ...]]] = {}
"""(string, ids of what its names were bound to) → (the resolved hint, those objects): a few
hundred entries for a process's stacks, every one kept alive with its objects."""


@functools.cache
def return_hints(cls: type) -> dict[str, Any]:
    """The SDK's ``_raw_return_hints``: the Pulumi name of each property getter of ``cls``,
    to its return annotation resolved as ``typing.get_type_hints`` resolves it in the globals
    of ``cls``'s classes (with ``Output`` and ``T`` as locals), getters without one left out."""
    from pulumi import Output, _types

    globalns = _types._globals_for_cls(cls)
    localns = {"Output": Output, "T": type(None)}
    hints: dict[str, Any] = {}
    for _, pulumi_name, prop in _types._py_properties(cls):
        hint = _return_hint(prop.fget, globalns, localns)
        if hint is not None:
            hints[pulumi_name] = hint
    return hints


def _return_hint(function: Any, globalns: dict[str, Any], localns: dict[str, Any]) -> Any:
    """``get_type_hints(function, globalns, localns).get("return")``, reused for a string
    annotation whose names are bound to the same objects as when it was last resolved."""
    annotations = getattr(function, "__annotations__", None)
    text = annotations.get("return") if annotations and len(annotations) == 1 else None
    names = _names(text) if isinstance(text, str) else None
    if names is None:  # not a lone string annotation: as the SDK does
        return typing.get_type_hints(function, globalns=globalns, localns=localns).get("return")
    builtins = globalns.get("__builtins__", _BUILTINS)
    if isinstance(builtins, types.ModuleType):
        builtins = vars(builtins)
    bound = (
        builtins,
        *(localns.get(name, globalns.get(name, builtins.get(name, _UNBOUND))) for name in names),
    )
    key = (text, tuple(map(id, bound)))
    known = _hints.get(key)
    # The objects are kept with the result: an id alone could be a later object's.
    if known is not None and all(a is b for a, b in zip(known[1], bound, strict=True)):
        return known[0]
    hint = typing.get_type_hints(function, globalns=globalns, localns=localns).get("return")
    _hints[key] = (hint, bound)
    return hint


@functools.cache
def _names(text: str) -> tuple[str, ...] | None:
    """Every name evaluating ``text`` can look up: its own, and those of the strings in it
    (``typing`` evaluates a quoted part as a forward reference in the same namespaces);
    ``None`` if it is not an expression."""
    try:
        return _code_names(compile(text, "<annotation>", "eval"))
    except SyntaxError:
        return None


def _code_names(code: types.CodeType) -> tuple[str, ...]:
    names: set[str] = set()
    todo = [code]
    while todo:
        code = todo.pop()
        names.update(code.co_names)
        for const in code.co_consts:
            if isinstance(const, types.CodeType):
                todo.append(const)
            elif isinstance(const, str):
                # Not an expression: typing either fails on it (and nothing is kept) or does
                # not evaluate it (a ``Literal``'s value).
                with contextlib.suppress(SyntaxError):
                    todo.append(compile(const, "<annotation>", "eval"))
    return tuple(sorted(names))
