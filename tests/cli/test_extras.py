"""Optional third-party parts the console script keeps out of its process (``cli/extras.py``).

Each case runs in a fresh interpreter: what is loaded is a property of the whole process.
The test environment has click, pygments and h2 (Prefect requires them), which is what makes
httpx load its command-line client and httpcore its HTTP/2 connections, so the control case
shows the parts do load without ``leave_out``.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from tests.cli.fresh import run_console_script, run_python

HTTPX_CLI_PARTS = {"click", "pygments.lexers", "rich.syntax"}
HTTP2_PARTS = {"h2", "hpack", "hyperframe"}
UNUSED_PARTS = HTTPX_CLI_PARTS | HTTP2_PARTS

# Uses httpx as the Prefect writer does (HTTP/1.1, httpx's default), then reports what the
# process loaded.
_USE = """
import json, sys
{setup}
import httpx

with httpx.Client(timeout=5) as client:  # the default transport: httpcore's pool
    assert client.build_request("GET", "http://127.0.0.1/api/health").url.port is None
print(json.dumps(sorted(sys.modules)))
"""


def loaded(setup: str) -> set[str]:
    """The modules of a process that ran ``setup``, then used httpx."""
    return set(json.loads(run_python(_USE.format(setup=setup)).splitlines()[-1]))


@pytest.fixture(scope="module", autouse=True)
def _extras_installed() -> None:
    # Without them httpx has no CLI to load and the control case would prove nothing.
    for name in ("click", "pygments", "h2"):
        assert importlib.util.find_spec(name), f"{name} is a test dependency (via prefect)"


def test_without_it_httpx_loads_its_cli_and_httpcore_its_http2() -> None:
    assert loaded("") >= UNUSED_PARTS


def test_httpx_works_without_them() -> None:
    modules = loaded("from cli import extras; extras.leave_out()")
    assert "httpx" in modules
    assert not UNUSED_PARTS & modules


def test_http2_without_them_is_refused_by_httpcore_not_downgraded() -> None:
    # httpcore's own fallback for an install without h2, should anything ask for HTTP/2.
    setup = (
        "from cli import extras; extras.leave_out()\n"
        "import httpcore\n"
        "try:\n"
        "    httpcore.HTTP2Connection(origin=httpcore.Origin(b'https', b'x', 443))\n"
        "except RuntimeError as exc:\n"
        "    assert 'h2' in str(exc), exc\n"
        "else:\n"
        "    raise AssertionError('HTTP/2 was not refused')\n"
    )
    assert not HTTP2_PARTS & loaded(setup)


def test_parts_a_host_loaded_first_are_left_alone() -> None:
    # A process that already has httpx's CLI (a test runner, an embedding program) keeps it.
    setup = "import httpx._main, httpcore\nfrom cli import extras; extras.leave_out()"
    modules = loaded(setup)
    assert modules >= UNUSED_PARTS
    assert "httpx._main" in modules


def test_the_console_script_leaves_them_out_for_the_command() -> None:
    # ``main`` is the console script's entry; the probe stands in for the command.
    out = run_console_script(
        "import json, sys\n"
        "def app():\n"
        "    import httpx\n"
        "    httpx.Client().close()\n"
        "    print(json.dumps(sorted(sys.modules)))\n"
    )
    modules = set(json.loads(out.splitlines()[-1]))
    assert "httpx" in modules and not UNUSED_PARTS & modules


def test_the_console_script_defers_pulumis_unused_parts_until_used() -> None:
    # ``stacks/sdk_modules.py`` tests the mechanism; this, that the console script sets it up
    # before the command imports pulumi, and that the engine's use of the Automation API works.
    out = run_console_script(
        "import json, sys\n"
        "def app():\n"
        "    from stacks.sdk_modules import _PartialPackage\n"
        "    import pulumi\n"
        "    from pulumi import automation as auto\n"
        "    names = ('yaml', 'opentelemetry.sdk.trace')\n"
        "    ran = [n for n in names if not isinstance(sys.modules.get(n), (_PartialPackage, "
        "type(None)))]\n"
        "    print(json.dumps([ran, auto.Stack.__module__]))\n"
    )
    ran, stack_module = json.loads(out.splitlines()[-1])
    assert ran == []
    assert stack_module == "pulumi.automation._stack"


def test_the_console_script_compiles_the_provider_sdks_with_postponed_annotations(tmp_path):
    # ``stacks/sdk_bytecode.py`` tests the mechanism; this, that the console script installs it
    # before the command imports a provider SDK, with the machine's cache directory.
    out = run_console_script(
        "import json, os\n"
        f"os.environ['PROVISION_CACHE_DIR'] = {str(tmp_path)!r}\n"
        "def app():\n"
        "    import pulumi_aws.ec2.vpc as vpc\n"
        "    hint = vpc.VpcArgs.__init__.__annotations__['cidr_block']\n"
        "    print(json.dumps([hint, vpc.__spec__.cached]))\n"
    )
    hint, cached = json.loads(out.splitlines()[-1])
    assert hint == "pulumi.Input[Optional[_builtins.str]]"
    assert cached.startswith(str(tmp_path / "sdk-bytecode")) and Path(cached).is_file()
