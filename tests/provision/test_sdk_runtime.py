"""``provision.sdk_runtime``: the SDK's per-resource work, the same results for less.

The stack trace sent with each resource is the SDK's, frame for frame: every comparison calls
the SDK's function and ours from one helper frame, so both see the same stack (the helper, like
the SDK's own frame, is below the constructors and never sent). The getters' return annotations
are the SDK's, class for class, however many classes share an annotation's string.
"""

from __future__ import annotations

import linecache
import sys
import threading
import types
import typing
from pathlib import Path

import pytest
from pulumi import _types
from pulumi.runtime import resource
from typer.testing import CliRunner

from cli.main import app
from provision import sdk_runtime
from tests.offline_plans import PLANS

# Installed in this process before anything compares: the SDK's own functions are then kept.
sdk_runtime.install()
assert set(sdk_runtime.replaced) == {"_get_stack_trace", "_raw_return_hints"}, (
    "the installed pulumi SDK's functions are the ones matched"
)
SDK = sdk_runtime.replaced["_get_stack_trace"]
SDK_HINTS = sdk_runtime.replaced["_raw_return_hints"]


def both():
    """The SDK's trace and ours, taken from the same frame."""
    return SDK(), sdk_runtime.stack_trace()


# A resource's constructor chain, three ``__init__`` frames deep as the SDK's classes are
# (the concrete resource, CustomResource or ComponentResource, Resource).
class Base:
    def __init__(self, depth: int, out: list):
        if depth > 1:
            Middle(depth - 1, out)  # never reached for depth 1: the trace is taken here
        else:
            out.append(both())


class Middle:
    def __init__(self, depth: int, out: list):
        Base(depth, out)


class Concrete:
    def __init__(self, depth: int, out: list):
        Middle(depth, out)


def user_code(depth: int = 1) -> tuple:
    out: list = []
    Concrete(depth, out)
    return out[0]


def test_install_replaces_the_sdks_functions_once():
    assert resource._get_stack_trace is sdk_runtime.stack_trace
    assert _types._raw_return_hints is sdk_runtime.return_hints
    sdk_runtime.install()
    assert sdk_runtime.replaced == {"_get_stack_trace": SDK, "_raw_return_hints": SDK_HINTS}
    assert SDK.__module__ == "pulumi.runtime.resource"
    assert SDK_HINTS.__module__ == "pulumi._types"


def test_the_frames_above_the_third_init_are_the_sdks():
    sdk, ours = user_code()
    assert ours == sdk
    uris = [frame.pc.uri for frame in ours.frames]
    # Innermost first: the code that made the resource, then this test, then pytest's.
    assert uris[0] == Path(__file__).as_uri()
    assert ours.frames[0].pc.line == user_code.__code__.co_firstlineno + 2
    assert len(ours.frames) > 5


def test_deeper_constructor_chains_count_from_the_innermost_init():
    # Five ``__init__`` frames: the third from the inside is a Middle, so the two outer
    # constructors are sent as frames, as the SDK sends them.
    sdk, ours = user_code(depth=2)
    assert ours == sdk
    assert Path(__file__).as_uri() == ours.frames[0].pc.uri


def test_fewer_than_three_inits_send_no_frames():
    class Lone:
        def __init__(self, out: list):
            out.append(both())

    out: list = []
    Lone(out)
    sdk, ours = out[0]
    assert ours == sdk
    assert list(ours.frames) == []


def test_a_trace_taken_on_a_thread_is_the_sdks():
    # A thread's outermost frames are threading's bootstrap: the frames above the chain.
    out: list = []
    thread = threading.Thread(target=Concrete, args=(1, out))
    thread.start()
    thread.join()
    sdk, ours = out[0]
    assert ours == sdk
    assert ours.frames[0].pc.uri.endswith("/threading.py")


def fake_stack(*names: str) -> types.SimpleNamespace:
    """A chain of frame-like objects, innermost first (what ``sys._getframe`` would return)."""
    frame = None
    for line, name in reversed(list(enumerate(names, start=1))):
        code = types.SimpleNamespace(co_name=name, co_filename="/src/app.py")
        frame = types.SimpleNamespace(f_code=code, f_lineno=line, f_back=frame)
    return frame


@pytest.mark.parametrize(
    ("names", "sent"),
    [
        # The third ``__init__`` is the outermost frame: nothing above it, nothing sent.
        (("register", "__init__", "__init__", "__init__"), []),
        (("register", "__init__", "__init__", "__init__", "main"), [5]),
        (("register", "__init__", "helper", "__init__", "__init__", "a", "b"), [6, 7]),
        (("register", "__init__", "__init__", "main"), []),
    ],
)
def test_where_the_frames_sent_begin(names, sent, monkeypatch):
    # The branch no Python stack reaches (every thread has outer frames), on frames made up:
    # the rule is the SDK's, which sends nothing when its third ``__init__`` is the outermost.
    chain = fake_stack(*names)
    monkeypatch.setattr(sdk_runtime, "sys", types.SimpleNamespace(_getframe=lambda depth: chain))
    trace = sdk_runtime.stack_trace()
    assert [frame.pc.line for frame in trace.frames] == sent
    assert all(frame.pc.uri == "file:///src/app.py" for frame in trace.frames)


def test_frames_without_a_file_are_sent_without_a_position():
    # Code compiled from a string has no absolute path: the SDK sends an empty frame for it.
    namespace = {"Concrete": Concrete}
    exec(
        compile(
            "def made():\n    out = []\n    Concrete(1, out)\n    return out[0]\n",
            "<string>",
            "exec",
        ),
        namespace,
    )
    sdk, ours = namespace["made"]()
    assert ours == sdk
    assert not ours.frames[0].HasField("pc")
    assert ours.frames[1].pc.uri == Path(__file__).as_uri()


def test_source_files_are_not_read(tmp_path):
    # The SDK's trace reads every file on the stack into linecache (and keeps it); ours, none.
    module = tmp_path / "made_here.py"
    module.write_text("def make(cls):\n    out = []\n    cls(1, out)\n    return out[0]\n")
    namespace: dict = {}
    exec(compile(module.read_text(), str(module), "exec"), namespace)
    linecache.cache.pop(str(module), None)

    class OursOnly:
        def __init__(self, depth: int, sink: list):
            OursMiddle(sink)

    class OursMiddle:
        def __init__(self, sink: list):
            OursBase(sink)

    class OursBase:
        def __init__(self, sink: list):
            sink.append(sdk_runtime.stack_trace())

    trace = namespace["make"](OursOnly)
    assert trace.frames[0].pc.uri == module.as_uri()
    assert str(module) not in linecache.cache

    namespace["make"](Concrete)  # both traces: the SDK's reads the file
    assert str(module) in linecache.cache


def test_a_changed_sdk_function_is_left_in_place(monkeypatch):
    # A pulumi release whose function differs (here: a fourth __init__) keeps its own.
    source = "def _get_stack_trace():\n    n = 4\n    return n\n"
    changed = types.FunctionType(compile(source, "x", "exec").co_consts[0], {})
    monkeypatch.setattr(resource, "_get_stack_trace", changed)
    monkeypatch.setattr(_types, "_raw_return_hints", changed)
    sdk_runtime.install()
    assert resource._get_stack_trace is changed
    assert _types._raw_return_hints is changed


def test_a_changed_position_helper_keeps_the_sdks_function(monkeypatch):
    monkeypatch.setattr(resource, "_get_stack_trace", SDK)
    monkeypatch.setattr(resource, "_get_source_position_for_frame", lambda frame: None)
    sdk_runtime.install()
    assert resource._get_stack_trace is SDK


def test_the_fingerprint_ignores_the_docstring_and_sees_constants():
    def one():
        """Doc."""
        return 3

    def other():
        """Another doc."""
        return 3

    def changed():
        """Doc."""
        return 4

    assert sdk_runtime._fingerprint(one)[1:] == sdk_runtime._fingerprint(other)[1:]
    assert sdk_runtime._fingerprint(one)[2] != sdk_runtime._fingerprint(changed)[2]
    assert sdk_runtime._fingerprint(len) is None


@pytest.mark.parametrize("cloud", sorted(PLANS))
def test_every_resource_of_a_real_stack_gets_the_sdks_trace_and_hints(cloud, monkeypatch, tmp_path):
    # Every registration of an offline plan takes both traces: the real SDK classes, the real
    # stacks, their component resources and the runtime's thread pool.
    seen: list = []

    def compare():
        sdk, ours = both()
        seen.append((sdk, ours))
        return ours

    hints: list = []

    def compare_hints(cls):
        # Uncached on both sides: the SDK's resolves afresh, ours may reuse what it resolved
        # for other classes (which is what is checked).
        sdk, ours = SDK_HINTS.__wrapped__(cls), sdk_runtime.return_hints.__wrapped__(cls)
        hints.append((cls, sdk, ours))
        return ours

    monkeypatch.setattr(resource, "_get_stack_trace", compare)
    monkeypatch.setattr(_types, "_raw_return_hints", compare_hints)
    # Its callers keep what they made per class: cleared, so that an earlier test of this
    # process that planned the same stack does not leave nothing to compare.
    _types._types_from_py_properties.cache_clear()
    _types._required_property_names.cache_clear()
    env = {"PROVISION_HOME": str(tmp_path / "home"), "PROVISION_CACHE_DIR": str(tmp_path)}
    result = CliRunner().invoke(
        app, ["preview", "p1", *PLANS[cloud], "--with-worker", "--offline", "--json"], env=env
    )
    assert result.exit_code == 0, result.output
    assert len(seen) >= 10
    for sdk, ours in seen:
        assert ours == sdk
    # The stack modules' own lines are among the frames sent (not only the runtime's).
    assert any("/stacks/" in frame.pc.uri for _, ours in seen for frame in ours.frames)
    assert resource._get_stack_trace is compare, "install() leaves a function it does not know"
    assert len(hints) >= 10
    for cls, sdk, ours in hints:
        assert ours == sdk, cls
    assert sum(len(sdk) for _, sdk, _ in hints) >= 100


# -- the getters' return annotations ----------------------------------------------------------


def made_module(name: str, annotation: str, monkeypatch, **names) -> types.ModuleType:
    """A module ``name`` binding ``names``, with an output-like class ``Made`` whose one getter
    returns ``annotation`` (a string, as in the SDKs compiled with postponed annotations)."""
    module = types.ModuleType(name)
    module.__dict__.update(names)
    monkeypatch.setitem(sys.modules, name, module)
    source = (
        "import pulumi\n"
        "class Made:\n"
        "    @property\n"
        "    @pulumi.getter(name='theValue')\n"
        f"    def the_value(self) -> {annotation!r}: ...\n"
    )
    # Not compiled with this file's postponed annotations: the annotation is the string given.
    exec(compile(source, f"<{name}>", "exec", dont_inherit=True), module.__dict__)
    assert module.Made.the_value.fget.__annotations__ == {"return": annotation}
    return module


def test_one_string_in_two_modules_is_each_modules_own(monkeypatch):
    one = made_module("made_one", "Thing", monkeypatch, Thing=int)
    two = made_module("made_two", "Thing", monkeypatch, Thing=str)
    assert sdk_runtime.return_hints(one.Made) == {"theValue": int} == SDK_HINTS(one.Made)
    assert sdk_runtime.return_hints(two.Made) == {"theValue": str} == SDK_HINTS(two.Made)


def test_the_names_of_a_quoted_part_count_too(monkeypatch):
    # typing resolves 'Inner' as a forward reference in the same globals: a reuse keyed on the
    # outer names only would hand the second module the first one's type.
    optional = typing.Optional  # as the SDKs write them
    one = made_module("quoted_one", "Optional['Inner']", monkeypatch, Inner=int, Optional=optional)
    two = made_module("quoted_two", "Optional['Inner']", monkeypatch, Inner=str, Optional=optional)
    assert sdk_runtime.return_hints(one.Made) == {"theValue": optional[int]}
    assert sdk_runtime.return_hints(two.Made) == {"theValue": optional[str]}
    assert sdk_runtime._names("Optional['Inner']") == ("Inner", "Optional")


def test_a_rebound_name_is_resolved_again(monkeypatch):
    module = made_module("rebound", "Thing", monkeypatch, Thing=int)
    first = module.Made
    assert sdk_runtime.return_hints(first) == {"theValue": int}
    module.Thing = str
    exec("class Again(Made): pass", module.__dict__)
    assert sdk_runtime.return_hints(module.Again) == {"theValue": str} == SDK_HINTS(module.Again)


def test_a_string_is_resolved_once_for_the_same_objects(monkeypatch):
    one = made_module("same_one", "list[Thing]", monkeypatch, Thing=float)
    two = made_module("same_two", "list[Thing]", monkeypatch, Thing=float)
    calls: list = []
    resolve = typing.get_type_hints

    def counted(*args, **kwargs):
        calls.append(args[0])
        return resolve(*args, **kwargs)

    monkeypatch.setattr(typing, "get_type_hints", counted)
    assert sdk_runtime.return_hints(one.Made) == {"theValue": list[float]}
    assert sdk_runtime.return_hints(two.Made) == {"theValue": list[float]}
    assert len(calls) == 1


def test_what_is_not_a_lone_string_is_resolved_as_the_sdk_does(monkeypatch):
    module = made_module("not_lone", "Thing", monkeypatch, Thing=int)
    evaluated = module.Made.the_value.fget
    evaluated.__annotations__ = {"return": bytes}  # an annotation evaluated as it was made
    assert sdk_runtime.return_hints(module.Made) == {"theValue": bytes} == SDK_HINTS(module.Made)

    broken = made_module("broken", "not an expression", monkeypatch)
    with pytest.raises(SyntaxError):
        SDK_HINTS(broken.Made)
    with pytest.raises(SyntaxError):
        sdk_runtime.return_hints(broken.Made)

    unbound = made_module("unbound", "Missing", monkeypatch)
    with pytest.raises(NameError):
        sdk_runtime.return_hints(unbound.Made)
    assert not any(key[0] == "Missing" for key in sdk_runtime._hints), "a failure is not kept"
