"""Wall and CPU time of ``provision preview --offline`` for every pool type.

    .venv/bin/python bench/offline.py [--runs 7] [--types ecs,cloud-run-v2:push]
    .venv/bin/python bench/offline.py --instructions [--types ...]

Target (issue 15): a median wall time <= 0.5 s per type. The runs are interleaved over the
types (so machine noise hits them alike), after one warm-up each. Besides the wall time it
reports the CPU time (user + system) of the process, which a loaded machine inflates less,
and how fast the machine itself ran: before and after (``bench.common.machine_speed``), and
each core before every run (``bench.common.core_speeds``).
Writes ``bench/results/offline.json`` and exits 1 if a type misses the target.

``--instructions`` counts the instructions of one run per type instead (valgrind's cachegrind,
some 50 times slower): the same count however loaded the machine is, to compare two versions
on a shared one. No target applies to it.
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
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import (  # noqa: E402
    PROVISION,
    SpeedTrace,
    compile_bytecode,
    machine_speed,
    speed_line,
)
from provision.registry import POOL_TYPES  # noqa: E402

TARGET_S = 0.5

FLAGS = {
    "gcp": ["--project", "bench-project", "--region", "europe-west1"],
    "aws": ["--region", "eu-west-1"],
    "azure": ["--subscription", "00000000-0000-0000-0000-000000000000", "--location", "westeurope"],
}
"""The flags a type's target needs offline; Modal and Coiled read their token from ``ENV``."""

ENV = {
    "MODAL_TOKEN_ID": "ak-bench",
    "MODAL_TOKEN_SECRET": "as-bench",
    "DASK_COILED__TOKEN": "bench-token",
}


def command(type_name: str) -> list[str]:
    """The offline preview of a pool of ``type_name``, as a user types it."""
    target = POOL_TYPES[type_name].target
    return [
        PROVISION,
        "preview",
        "--offline",
        "bench-pool",
        "--type",
        type_name,
        *FLAGS.get(target, []),
        "--json",
    ]


def run_once(cmd: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Wall and CPU seconds of one run of ``cmd`` (fails loudly if it fails)."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    stderr = proc.stderr.read().decode() if proc.stderr else ""
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}): {stderr[-500:]}")
    return wall, usage.ru_utime + usage.ru_stime


VALGRIND = ("valgrind", "--tool=cachegrind", "--cache-sim=no", "--cachegrind-out-file=/dev/null")


def instructions(cmd: list[str], env: dict[str, str]) -> int:
    """Instructions executed by one run of ``cmd`` (valgrind's ``I refs``)."""
    proc = subprocess.run(
        [*VALGRIND, *cmd],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}): {proc.stderr[-500:]}")
    line = next(x for x in proc.stderr.splitlines() if "I   refs:" in x or "I refs:" in x)
    return int(line.rsplit(":", 1)[1].replace(",", ""))


def main() -> int:
    """Run the benchmark and print a table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--types", default=",".join(POOL_TYPES), help="comma-separated")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "offline.json"))
    parser.add_argument("--instructions", action="store_true", help="count (valgrind)")
    args = parser.parse_args()
    compile_bytecode()
    types = [t for t in args.types.split(",") if t]
    if args.instructions:
        with tempfile.TemporaryDirectory() as home:
            env = {**os.environ, **ENV, "PROVISION_HOME": home, "PREFECT_HOME": home}
            counts = {}
            for t in types:
                run_once(command(t), env)  # page cache
                counts[t] = instructions(command(t), env)
                print(f"{t:32} {counts[t] / 1e9:8.3f} G instructions", flush=True)
        return 0

    speed: dict[str, Any] = {"before": machine_speed()}
    trace = SpeedTrace()
    with tempfile.TemporaryDirectory() as home:
        env = {**os.environ, **ENV, "PROVISION_HOME": home, "PREFECT_HOME": home}
        for t in types:  # warm-up: page cache
            run_once(command(t), env)
        wall: dict[str, list[float]] = {t: [] for t in types}
        cpu: dict[str, list[float]] = {t: [] for t in types}
        for _ in range(args.runs):
            for t in types:
                trace.sample()
                w, c = run_once(command(t), env)
                wall[t].append(w)
                cpu[t].append(c)

    speed["after"] = machine_speed()
    speed["during"] = trace.summary()
    medians = {t: statistics.median(s) for t, s in wall.items()}
    print(f"{'type':32} {'wall med':>8} {'min':>7} {'max':>7} {'cpu med':>8}")
    for t in types:
        print(
            f"{t:32} {medians[t]:8.3f} {min(wall[t]):7.3f} {max(wall[t]):7.3f} "
            f"{statistics.median(cpu[t]):8.3f}"
        )
    misses = [t for t, m in medians.items() if m > TARGET_S]
    print(
        f"{'FAIL' if misses else 'PASS'} every type <= {TARGET_S} s"
        + (f": {misses}" * bool(misses))
    )
    print(speed_line(speed["before"], speed["after"]))
    print(trace.line())

    out = Path(args.out)
    out.parent.mkdir(exist_ok=True)
    out.write_text(
        json.dumps(
            {
                "runs": args.runs,
                "wall": wall,
                "cpu": cpu,
                "medians": medians,
                "misses": misses,
                "machine_speed": speed,
            },
            indent=2,
        )
    )
    return 1 if misses else 0


if __name__ == "__main__":
    sys.exit(main())
