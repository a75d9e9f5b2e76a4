"""``provision.sdk_trace``: the stack trace sent with each resource is the SDK's, frame for frame.

Every comparison calls the SDK's function and ours from one helper frame, so both see the same
stack (the helper, like the SDK's own frame, is below the constructors and never sent).
"""

from __future__ import annotations

import linecache
import threading
import types
from pathlib import Path

import pytest
from pulumi.runtime import resource
from typer.testing import CliRunner

from cli.main import app
from provision import sdk_trace

# Installed in this process before anything compares: the SDK's own function is then kept.
assert sdk_trace.install(), "the installed pulumi SDK's _get_stack_trace is the one matched"
SDK = sdk_trace.sdk_stack_trace


def both():
    """The SDK's trace and ours, taken from the same frame."""
    return SDK(), sdk_trace.stack_trace()


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


def test_install_replaces_the_sdks_function_once():
    assert resource._get_stack_trace is sdk_trace.stack_trace
    assert sdk_trace.install() is True
    assert sdk_trace.sdk_stack_trace is SDK
    assert SDK.__module__ == "pulumi.runtime.resource"


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
    monkeypatch.setattr(sdk_trace, "sys", types.SimpleNamespace(_getframe=lambda depth: chain))
    trace = sdk_trace.stack_trace()
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
            sink.append(sdk_trace.stack_trace())

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
    assert sdk_trace.install() is False
    assert resource._get_stack_trace is changed


def test_a_changed_position_helper_keeps_the_sdks_function(monkeypatch):
    monkeypatch.setattr(resource, "_get_stack_trace", SDK)
    monkeypatch.setattr(resource, "_get_source_position_for_frame", lambda frame: None)
    assert sdk_trace.install() is False
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

    assert sdk_trace._fingerprint(one)[1:] == sdk_trace._fingerprint(other)[1:]
    assert sdk_trace._fingerprint(one)[2] != sdk_trace._fingerprint(changed)[2]
    assert sdk_trace._fingerprint(len) is None


PLANS = {
    "gcp": ["--type", "cloud-run-v2:push", "--project", "proj-123456", "--region", "us-central1"],
    "aws": ["--type", "ecs", "--region", "eu-west-1", "--with-worker"],
    "azure": [
        "--type",
        "azure-container-instance",
        "--subscription",
        "00000000-0000-0000-0000-000000000000",
        "--resource-group",
        "rg",
        "--location",
        "westeurope",
    ],
}


@pytest.mark.parametrize("cloud", sorted(PLANS))
def test_every_resource_of_a_real_stack_gets_the_sdks_trace(cloud, monkeypatch, tmp_path):
    # Every registration of an offline plan takes both traces: the real SDK classes, the real
    # stacks, their component resources and the runtime's thread pool.
    seen: list = []

    def compare():
        sdk, ours = both()
        seen.append((sdk, ours))
        return ours

    monkeypatch.setattr(resource, "_get_stack_trace", compare)
    env = {"PROVISION_HOME": str(tmp_path / "home"), "PROVISION_CACHE_DIR": str(tmp_path)}
    result = CliRunner().invoke(
        app, ["preview", "p1", *PLANS[cloud], "--offline", "--json"], env=env
    )
    assert result.exit_code == 0, result.output
    assert len(seen) >= 10
    for sdk, ours in seen:
        assert ours == sdk
    # The stack modules' own lines are among the frames sent (not only the runtime's).
    assert any("/stacks/" in frame.pc.uri for _, ours in seen for frame in ours.frames)
    assert resource._get_stack_trace is compare, "install() leaves a function it does not know"
