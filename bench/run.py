"""Wall-time benchmark of the commands users wait on, against Prefect's CLI as the baseline.

    .venv/bin/python bench/run.py [--runs 7]

Measures, in one go and interleaved (so machine noise hits all commands alike):
  - ``provision --help``                    target: <= 0.15 x ``prefect work-pool --help``
  - ``provision preview --offline ...``     target: <= 1.0 s
Reports medians (and min/max) of ``--runs`` runs after one warm-up each, writes JSON to
``bench/results/latest.json`` and exits 1 if a target is missed.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BIN = Path(sys.executable).parent
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import compile_bytecode  # noqa: E402


def _cmds(home: str) -> dict[str, list[str]]:
    return {
        "prefect work-pool --help (baseline)": [str(BIN / "prefect"), "work-pool", "--help"],
        "provision --help": [str(BIN / "provision"), "--help"],
        "provision preview --offline": [
            str(BIN / "provision"),
            "preview",
            "--offline",
            "bench-pool",
            "--type",
            "cloud-run-v2:push",
            "--project",
            "bench-project",
            "--region",
            "europe-west1",
            "--json",
        ],
    }


def _time(cmd: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    proc = subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed: {proc.stderr.decode()[-500:]}")
    return elapsed


def main() -> int:
    """Run the benchmark and print a table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    compile_bytecode()

    with tempfile.TemporaryDirectory() as home:
        env = {**os.environ, "PROVISION_HOME": home, "PREFECT_HOME": home, "COLUMNS": "100"}
        cmds = _cmds(home)
        for cmd in cmds.values():  # warm-up: page cache
            _time(cmd, env)
        samples: dict[str, list[float]] = {name: [] for name in cmds}
        for _ in range(args.runs):
            for name, cmd in cmds.items():
                samples[name].append(_time(cmd, env))

    medians = {name: statistics.median(s) for name, s in samples.items()}
    baseline = medians["prefect work-pool --help (baseline)"]
    help_ratio = medians["provision --help"] / baseline
    preview = medians["provision preview --offline"]
    checks = {
        "help_ratio<=0.15": help_ratio <= 0.15,
        "offline_preview<=1.0s": preview <= 1.0,
    }

    print(f"{'command':42} {'median':>8} {'min':>8} {'max':>8} {'x baseline':>10}")
    for name, s in samples.items():
        print(
            f"{name:42} {medians[name]:8.3f} {min(s):8.3f} {max(s):8.3f} "
            f"{medians[name] / baseline:10.2f}"
        )
    for check, ok in checks.items():
        print(f"{'PASS' if ok else 'FAIL'} {check}")

    out = Path(__file__).parent / "results"
    out.mkdir(exist_ok=True)
    (out / "latest.json").write_text(
        json.dumps(
            {
                "runs": args.runs,
                "samples": samples,
                "medians": medians,
                "help_ratio": help_ratio,
                "checks": checks,
            },
            indent=2,
        )
    )
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
