"""Code run in a fresh interpreter: what a command loads or switches off is a property of its
whole process, which the suite's own has long since changed."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def run_python(code: str, timeout: float = 120) -> str:
    """Run ``code`` with the repository importable; its stdout. A non-zero exit fails the
    calling test with the interpreter's stderr."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=timeout
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def run_console_script(app: str) -> str:
    """``cli.main.main``, the console script's entry, with ``app`` (the source of a function
    ``app()``) standing in for the command; its stdout."""
    return run_python(f"import cli.main as m\n{app}\nm.app = app\nm.main()\n")
