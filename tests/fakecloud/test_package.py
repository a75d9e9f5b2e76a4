"""What importing ``tests.fakecloud`` does: nothing, but in a provider plugin's process.

A plugin process (``python -u -m tests.fakecloud.<cloud>``, as ``bin/pulumi-resource-<name>``
runs it) leaves the parts of the pulumi SDK no provider uses to load on first use
(``stacks.sdk_modules.defer_pulumi_parts``). Every engine test runs the plugins that way, so
the suite checks that nothing a provider does needs them at start-up; these tests check which
processes defer and which do not.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fakecloud import plugin_process

ROOT = Path(__file__).resolve().parents[2]
PYTHON = sys.executable


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        ([PYTHON, "-u", "-m", "tests.fakecloud.gcp", "127.0.0.1:4000"], True),
        ([PYTHON, "-u", "-m", "tests.fakecloud.azure_native"], True),
        ([PYTHON, "-u", "-m", "tests.fakecloud.moto_server"], False),  # a server, not a plugin
        ([PYTHON, "-m", "pytest", "tests/fakecloud"], False),
        ([PYTHON, "-c", "import tests.fakecloud"], False),  # xdist's workers start this way
        ([PYTHON, "-m", "tests.fakecloudish.gcp"], False),
        ([PYTHON, "-m"], False),
    ],
)
def test_which_processes_are_plugins(argv: list[str], expected: bool) -> None:
    assert plugin_process(argv) is expected


# Run in a fresh interpreter: what the package's import does to ``sys.modules`` is only seen
# before anything has imported pulumi. ``sys.orig_argv`` is set as a plugin's would be.
_PROBE = """
import json, sys
if sys.argv[1] == "plugin":
    sys.orig_argv = [sys.executable, "-u", "-m", "tests.fakecloud.gcp", "127.0.0.1:4000"]
import tests.fakecloud
import pulumi
parts = ("pulumi.automation", "pulumi.dynamic", "yaml", "grpc")
before = {name: type(sys.modules[name]).__name__ for name in parts}
from pulumi.provider.experimental.server import ProviderServicer  # what the fakes serve with
import grpc
grpc.insecure_channel  # a name asked of a deferred part loads it
print(json.dumps({"before": before, "grpc": type(sys.modules["grpc"]).__name__}))
"""


def _probe(kind: str) -> dict:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("TRACEPARENT", None)
    done = subprocess.run(
        [PYTHON, "-c", _PROBE, kind], env=env, cwd=ROOT, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_a_plugin_process_defers_what_no_provider_uses() -> None:
    seen = _probe("plugin")
    assert seen["before"] == {
        "pulumi.automation": "_DeferredPart",
        "pulumi.dynamic": "_DeferredPart",
        "yaml": "_DeferredPart",
        "grpc": "_DeferredPart",
    }
    assert seen["grpc"] == "module"  # loaded, in place, once used


def test_a_test_process_imports_pulumi_as_it_is() -> None:
    seen = _probe("test")
    assert set(seen["before"].values()) == {"module"}
