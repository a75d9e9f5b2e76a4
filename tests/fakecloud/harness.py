"""Running the real pulumi engine against the fake clouds: the pieces e2e tests reuse.

Typical use in a test::

    env = engine_env(tmp_path)                      # PATH, PULUMI_HOME, FAKECLOUD_*...
    stack = inline_stack(tmp_path, env, program, config={"gcp:project": "p"})
    stack.up()                                      # fails the test if the CLI is absent
    cloud = FakeCloud(env["FAKECLOUD_STATE_DIR"])   # what exists now

Code under test that builds its own workspace needs only ``engine_env`` (as
``env_vars``, or merged into ``os.environ``) and ``pulumi_command()``.

The Automation API merges ``env_vars`` over ``os.environ`` for every CLI call,
and the engine passes its environment to the plugins it starts, so the fake
providers see ``FAKECLOUD_*`` from here.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from tests.fakecloud.state import FakeCloud

if TYPE_CHECKING:
    from pulumi.automation import PulumiCommand, Stack

REPO_ROOT = Path(__file__).resolve().parents[2]
BIN_DIR = Path(__file__).resolve().parent / "bin"
"""Holds ``pulumi-resource-<cloud>`` scripts; must come first on PATH."""

PULUMI_CLI_VERSION = "v3.259.0"
BUILD_HINT = "run scripts/build-pulumi-cli (it builds the pulumi CLI from Go modules)"
PASSPHRASE = "test"


def default_pulumi_root() -> Path:
    """Where scripts/build-pulumi-cli puts the CLI (same env rules as the script)."""
    cache = os.environ.get("PROVISION_CACHE_DIR")
    if cache:
        base = Path(cache)
    else:
        base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "provision"
    return base / f"pulumi-{PULUMI_CLI_VERSION}"


def pulumi_root() -> Path | None:
    """``PROVISION_PULUMI_ROOT`` or the build script's cache dir, if it holds bin/pulumi."""
    configured = os.environ.get("PROVISION_PULUMI_ROOT")
    root = Path(configured) if configured else default_pulumi_root()
    return root if (root / "bin" / "pulumi").is_file() else None


def require_pulumi_root() -> Path:
    """:func:`pulumi_root`, or fail the calling test (never skip: a skipped e2e suite
    looks green while testing nothing)."""
    root = pulumi_root()
    if root is None:
        import pytest

        where = os.environ.get("PROVISION_PULUMI_ROOT") or default_pulumi_root()
        pytest.fail(f"pulumi CLI not found at {where}/bin/pulumi: {BUILD_HINT}", pytrace=False)
    return root


def pulumi_command() -> PulumiCommand:
    """A ``PulumiCommand`` for the test CLI (fails the test when it is missing)."""
    from pulumi.automation import PulumiCommand

    return PulumiCommand(root=str(require_pulumi_root()))


def engine_env(
    workdir: str | os.PathLike[str],
    *,
    state_dir: str | os.PathLike[str] | None = None,
    faults: str | None = None,
    extra: Mapping[str, str] | None = None,
    python: str = sys.executable,
) -> dict[str, str]:
    """Environment overrides for running the engine against the fakes.

    ``workdir`` gets ``pulumi-home/`` (PULUMI_HOME), ``backend/`` (the file
    backend) and, unless ``state_dir`` is given, ``cloud/`` (FAKECLOUD_STATE_DIR).
    Share one ``state_dir`` between two sandboxes to run two stacks against the
    same "cloud". ``faults`` sets FAKECLOUD_FAULTS; ``extra`` adds anything else
    (``FAKECLOUD_GCP_PROPAGATION_MS``, ``GOOGLE_PROJECT``...).

    The result holds overrides only: pass it as ``env_vars`` to the Automation
    API, or use ``{**os.environ, **engine_env(...)}`` for a subprocess.
    """
    workdir = Path(workdir)
    home, backend = workdir / "pulumi-home", workdir / "backend"
    cloud = Path(state_dir) if state_dir is not None else workdir / "cloud"
    for path in (home, backend, cloud):
        path.mkdir(parents=True, exist_ok=True)
    env = {
        # The engine finds an executable pulumi-resource-<name> on PATH before its
        # plugin cache; nothing is downloaded (and asking to would fail fast).
        "PATH": os.pathsep.join([str(BIN_DIR), os.environ.get("PATH", "")]),
        "PULUMI_HOME": str(home),
        "PULUMI_BACKEND_URL": backend.as_uri(),
        "PULUMI_CONFIG_PASSPHRASE": PASSPHRASE,
        "PULUMI_SKIP_UPDATE_CHECK": "true",
        "PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION": "true",
        # Ambient plugins are what we rely on; an inherited "true" would hide the fakes.
        "PULUMI_IGNORE_AMBIENT_PLUGINS": "false",
        "FAKECLOUD_STATE_DIR": str(cloud),
        "FAKECLOUD_PYTHON": python,
    }
    if faults is not None:
        env["FAKECLOUD_FAULTS"] = faults
    env.update(extra or {})
    return env


def inline_stack(
    workdir: str | os.PathLike[str],
    env: Mapping[str, str],
    program: Callable[[], None],
    *,
    project: str = "fakecloud",
    stack: str = "dev",
    config: Mapping[str, str] | None = None,
) -> Stack:
    """Create or select an inline-program stack on ``env``'s file backend.

    Each (project, stack) gets its own work dir under ``workdir/work/``, because
    ``select`` rewrites the workspace file and parallel stacks must not share it.
    """
    from pulumi import automation as auto

    work = Path(workdir) / "work" / f"{project}-{stack}"
    work.mkdir(parents=True, exist_ok=True)
    settings = auto.ProjectSettings(
        name=project, runtime="python", backend=auto.ProjectBackend(url=env["PULUMI_BACKEND_URL"])
    )
    options = auto.LocalWorkspaceOptions(
        pulumi_command=pulumi_command(),
        env_vars=dict(env),
        work_dir=str(work),
        project_settings=settings,
    )
    result = auto.create_or_select_stack(
        stack_name=stack, project_name=project, program=program, opts=options
    )
    for key, value in (config or {}).items():
        result.set_config(key, auto.ConfigValue(value))
    return result


def wait_for_call(
    state_dir: str | os.PathLike[str],
    op: str,
    type_token: str | None = None,
    *,
    phase: str = "begin",
    timeout: float = 60.0,
) -> dict[str, object]:
    """Block until the fakes log ``op`` (by default its start), e.g. to SIGKILL mid-create.

    Pair with ``FAKECLOUD_DELAY_MS`` (kill before the cloud write) or
    ``FAKECLOUD_DELAY_AFTER_MS`` (kill after it, before the engine hears back).
    """
    cloud = FakeCloud(state_dir)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        calls = cloud.calls(op, type_token, phase=phase)
        if calls:
            return calls[0]
        time.sleep(0.05)
    raise TimeoutError(f"no {phase} of {op} {type_token or ''} logged within {timeout} s")
