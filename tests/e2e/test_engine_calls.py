"""How many pulumi CLI processes each command starts, through the real engine and the fakes.

Every CLI process costs a Go start-up, a backend read and, for a passphrase stack, a key
derivation (~0.15 s each): an ``up`` makes at most four, its own ``pulumi up`` included. On a
file backend (the sandbox's) the state is read from its checkpoint file, so there is no
``stack export`` at all; other backends add that one read. The
CLI is wrapped by a script that logs each call's arguments and execs the real one; a plugin
process for the Prefect resources would be logged too (there must be none).
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

import pytest

from tests.e2e.conftest import Sandbox
from tests.fakecloud.harness import require_pulumi_root

pytestmark = pytest.mark.e2e

UP = ["--type", "cloud-run-v2", "--project", "my-proj-123", "--region", "europe-west1"]


@pytest.fixture
def counted(sandbox: Sandbox, tmp_path: Path) -> Sandbox:
    """The sandbox with its CLI wrapped: ``calls()`` returns the commands since the last call."""
    real = require_pulumi_root() / "bin" / "pulumi"
    bin_dir = tmp_path / "counted-pulumi" / "bin"
    bin_dir.mkdir(parents=True)
    log = tmp_path / "pulumi-calls.log"
    log.write_text("")
    script = bin_dir / "pulumi"
    script.write_text(f'#!/bin/sh\necho "$*" >> "{log}"\nexec "{real}" "$@"\n')
    script.chmod(0o755)
    # A tripwire: the Prefect resources' provider is served by the tool's own process
    # (``provision.dynamic_host``), so the engine must never start Pulumi's Python one.
    plugin = bin_dir / "pulumi-resource-pulumi-python"
    plugin.write_text(f'#!/bin/sh\necho "plugin pulumi-python" >> "{log}"\nexit 1\n')
    plugin.chmod(0o755)
    sandbox.env["PATH"] = f"{bin_dir}{os.pathsep}{sandbox.env.get('PATH', os.environ['PATH'])}"
    sandbox.env["PROVISION_PULUMI_ROOT"] = str(bin_dir.parent)
    sandbox.env["PROVISION_CACHE_DIR"] = str(tmp_path / "cache")
    sandbox.log = log  # type: ignore[attr-defined]
    return sandbox


def calls(box: Sandbox) -> list[list[str]]:
    """The CLI calls logged since the previous call of this function (``--non-interactive``
    dropped), and the log emptied."""
    log: Path = box.log  # type: ignore[attr-defined]
    lines = log.read_text().splitlines()
    log.write_text("")
    return [[a for a in line.split() if a != "--non-interactive"] for line in lines]


def commands(found: list[list[str]]) -> list[str]:
    """Each call as its subcommand words (``stack export``, ``up``...)."""
    out = []
    for args in found:
        words = [a for a in args if not a.startswith("-")]
        out.append(" ".join(words[:2]) if words and words[0] in ("stack", "config") else words[0])
    return out


def test_up_preview_and_destroy_start_few_cli_processes(counted: Sandbox):
    box = counted
    pool = "etl" + secrets.token_hex(3)
    box.run("list")  # the CLI's version is asked once per binary, then known
    calls(box)

    box.run("up", pool, *UP, "--yes")
    box.remember_key(box.block("gcp-credentials", f"{pool}-gcp-credentials"))
    new = calls(box)
    # The stack's creation and the update itself: the state read (nothing there) is a file
    # lookup.
    assert commands(new) == ["stack init", "up"], new
    assert not [c for c in new if "--show-secrets" in c]

    box.run("up", pool, "--yes")
    assert commands(calls(box)) == ["up"]

    box.run("preview", pool, "--expect-no-changes")
    assert commands(calls(box)) == ["preview"]

    box.run("show", pool)
    assert commands(calls(box)) == []

    box.run("destroy", pool, "--yes")
    assert commands(calls(box)) == ["destroy", "stack rm"]
