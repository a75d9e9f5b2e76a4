"""Provider plugins started by ``provision`` for the CLI to attach to, through the real engine.

For a preview of an existing stack the state names the default providers: ``provision`` starts
their plugins beside the CLI, and the CLI attaches to them instead of starting them when the
program first needs them (one at a time, every registration waiting). The fake GCP plugin is
wrapped by a script that logs how each start was asked for (the engine passes its own address;
a start for attaching passes none) and then runs the fake.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

import pytest

from tests.e2e.conftest import Sandbox

pytestmark = pytest.mark.e2e

UP = ["--type", "cloud-run-v2", "--project", "my-proj-123", "--region", "europe-west1"]
FAKE = Path(__file__).resolve().parents[1] / "fakecloud" / "bin" / "pulumi-resource-gcp"


def wrap_plugin(box: Sandbox, tmp_path: Path, *, refuse_attach: bool = False) -> Path:
    """Put a logging ``pulumi-resource-gcp`` first on the sandbox's PATH; its log's path.

    ``refuse_attach``: a plugin that cannot start without the engine's address (it exits at
    once, as a provider written that way would)."""
    bin_dir = tmp_path / "wrapped-plugins"
    bin_dir.mkdir()
    log = tmp_path / "plugin-starts.log"
    log.write_text("")
    refuse = 'if [ $# -eq 0 ]; then echo "no engine address" >&2; exit 1; fi\n'
    script = bin_dir / "pulumi-resource-gcp"
    script.write_text(
        f'#!/bin/sh\necho "start args=$#" >> "{log}"\n'
        f"{refuse if refuse_attach else ''}"
        f'exec "{FAKE}" "$@"\n'
    )
    script.chmod(0o755)
    box.env["PATH"] = f"{bin_dir}{os.pathsep}{box.env['PATH']}"
    return log


def starts(log: Path) -> list[str]:
    """The plugin starts logged since the last call, the log emptied."""
    lines = log.read_text().splitlines()
    log.write_text("")
    return lines


def writes(box: Sandbox) -> list[dict]:
    return [c for c in box.cloud.calls() if c["op"] in ("create", "update", "delete")]


def test_reruns_attach_to_the_plugin_started_beside_the_cli(sandbox: Sandbox, tmp_path: Path):
    box = sandbox
    log = wrap_plugin(box, tmp_path)
    pool = "att" + secrets.token_hex(3)

    box.run("up", pool, *UP, "--yes")
    box.remember_key(box.block("gcp-credentials", f"{pool}-gcp-credentials"))
    # A new stack: no state names a provider yet, so the engine starts the plugin itself.
    assert starts(log) == ["start args=1"]
    block = box.block("gcp-credentials", f"{pool}-gcp-credentials")
    mutations = writes(box)

    plan = box.run("preview", pool, "--expect-no-changes")
    # One start, for attaching (no engine address), and none by the engine.
    assert starts(log) == ["start args=0"], plan.output

    # Updates and destroys start none: a plugin started here ends with this process, and a
    # killed run's engine must be able to finish its in-flight operations through its own.
    box.run("up", pool, *UP, "--yes")
    assert starts(log) == ["start args=1"]
    assert box.block("gcp-credentials", f"{pool}-gcp-credentials") == block
    assert writes(box) == mutations  # the preview attached and wrote nothing

    box.run("destroy", pool, "--yes")
    assert starts(log) == ["start args=1"]


def test_a_plugin_that_cannot_be_attached_is_started_by_the_engine(
    sandbox: Sandbox, tmp_path: Path
):
    box = sandbox
    pool = "att" + secrets.token_hex(3)
    box.run("up", pool, *UP, "--yes")
    box.remember_key(box.block("gcp-credentials", f"{pool}-gcp-credentials"))

    log = wrap_plugin(box, tmp_path, refuse_attach=True)
    plan = box.run("preview", pool, "--expect-no-changes")
    # The start for attaching failed; the command was run again the engine's own way.
    assert starts(log) == ["start args=0", "start args=1"], plan.output
