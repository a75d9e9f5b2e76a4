"""The console script itself (``cli.main:main``), in a process of its own.

It ends the process without tearing the interpreter down (``os._exit`` after the exit
handlers): these check that this keeps what matters of a normal exit: the exit code, every
line of output, and nothing left behind under TMPDIR (the engine's scratch dir).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ENTRY = "import sys; from cli.main import main; sys.argv[0] = 'provision'; main()"


def run(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    scratch = tmp_path / "tmp"
    scratch.mkdir(exist_ok=True)
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("PULUMI_", "PREFECT_"))},
        "TMPDIR": str(scratch),
        "PROVISION_HOME": str(tmp_path / "home"),
        "PULUMI_BACKEND_URL": f"file://{tmp_path / 'backend'}",
        "PULUMI_CONFIG_PASSPHRASE": "entry-point-test",
        "PREFECT_API_URL": "http://127.0.0.1:9/api",
    }
    return subprocess.run(
        [sys.executable, "-c", ENTRY, *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_help_exits_0_with_all_of_its_output(tmp_path):
    done = run(tmp_path, "--help")
    assert done.returncode == 0, done.stderr
    assert "Usage" in done.stdout and "preview" in done.stdout


def test_bad_input_exits_2_with_its_line_on_stderr(tmp_path):
    done = run(tmp_path, "up", "Bad Name!", "--type", "ecs", "--yes")
    assert done.returncode == 2
    assert "Bad Name!" in done.stderr


def test_a_command_that_ran_the_engine_leaves_no_scratch_dir(tmp_path):
    (tmp_path / "backend").mkdir()
    done = run(tmp_path, "list", "--json")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().startswith("[")
    # The engine's scratch dir (its finalizer runs when the engine is collected, or else as
    # an exit handler) is gone.
    assert list((tmp_path / "tmp").iterdir()) == []


def test_under_a_profiler_the_interpreter_exits_normally(tmp_path):
    # cProfile, coverage and debuggers write their results once the script returns: with a
    # tracer or profiler set, the console script exits the normal way (SystemExit).
    profile = tmp_path / "out.prof"
    code = f"import cProfile; cProfile.run({ENTRY!r}, {str(profile)!r})"
    done = subprocess.run(
        [sys.executable, "-c", code, "--help"], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert profile.stat().st_size > 0
