"""`--set-image-namespace` end to end: the real engine, fake GCP, the real Prefect server and
this machine's Prefect profile."""

from __future__ import annotations

import json
import secrets
import tomllib
from pathlib import Path

import pytest

from tests.e2e.conftest import Sandbox

pytestmark = pytest.mark.e2e

UP = ["--type", "cloud-run-v2", "--project", "my-proj-123", "--region", "europe-west1"]
KEY = "PREFECT_DEFAULT_DOCKER_BUILD_NAMESPACE"
PROFILES = f"""\
# kept as written
active = "work"

[profiles.work]
PREFECT_API_TIMEOUT = 60
{KEY} = "docker.io/me"
"""


def profiles(box: Sandbox) -> Path:
    path = Path(box.env["PREFECT_HOME"]) / "profiles.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def namespace(box: Sandbox) -> str | None:
    return tomllib.loads(profiles(box).read_text())["profiles"]["work"].get(KEY)


def test_up_sets_the_namespace_a_rerun_keeps_it_and_destroy_puts_the_old_one_back(
    sandbox: Sandbox,
):
    pool = "ns" + secrets.token_hex(3)
    profiles(sandbox).write_text(PROFILES)
    ours = f"europe-west1-docker.pkg.dev/my-proj-123/{pool}-images"

    plan = json.loads(sandbox.run("preview", pool, *UP, "--set-image-namespace", "--json").stdout)[
        "profile"
    ]
    assert (plan["op"], plan["value"], plan["previous"]) == ("update", ours, "docker.io/me")
    assert namespace(sandbox) == "docker.io/me"  # the preview wrote nothing

    run = sandbox.run("up", pool, *UP, "--set-image-namespace", "--yes")
    assert f"{KEY} = {ours}" in run.output
    assert namespace(sandbox) == ours
    assert profiles(sandbox).read_text() == PROFILES.replace("docker.io/me", ours)

    # The rerun reads the record (no flag) and changes nothing, the profile included.
    run = sandbox.run("preview", pool, "--json", "--expect-no-changes")
    assert json.loads(run.stdout)["profile"]["op"] == "same"

    sandbox.run("destroy", pool, "--yes")
    assert profiles(sandbox).read_text() == PROFILES
