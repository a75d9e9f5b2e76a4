"""What the benchmarks of whole ``provision`` commands share.

Each runs the venv's ``provision`` (:data:`PROVISION`), its bytecode written first
(:func:`compile_bytecode`); the engine, peer, team and
pools-file benchmarks write their results with :func:`write_results`. ``bench/team.py`` and
``bench/pools_file.py`` also run it against the fake GCP, the real engine and a real Prefect
server, time commands, and report medians and a ratio:

    env = engine_base_env(root, prefect.api_url)      # + the benchmark's own variables
    seconds = timed(["preview", "bench", "--expect-no-changes"], env)
    medians = report("preview POOL", times)           # prints the table, returns the medians
    write_results("team", {...})                      # bench/results/team.json
"""

from __future__ import annotations

import json
import os
import secrets
import statistics
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
PROVISION = str(Path(sys.executable).parent / "provision")
"""The console script of the interpreter running the benchmark (its venv's)."""


PACKAGES = ("cli", "provision", "stacks", "tests")
"""This checkout's packages: the product, and the fakes' and test servers' code."""


def compile_bytecode() -> None:
    """Write the bytecode of this checkout's packages (:data:`PACKAGES`), as installing a
    package does: run from an editable install where ``PYTHONDONTWRITEBYTECODE`` is set (as on
    the machine these benchmarks were written on), every ``provision`` run would compile the
    modules it loads from source, and the benchmarks would time that. Each benchmark calls it
    first; it writes only ``__pycache__`` files that are missing or stale."""
    import compileall

    for package in PACKAGES:
        compileall.compile_dir(ROOT / package, quiet=1)


def engine_base_env(root: Path, prefect_api_url: str) -> dict[str, str]:
    """This process's environment without its Prefect and Pulumi settings (and ``CI``), plus
    a fresh engine under ``root`` (``tests.fakecloud.harness.engine_env``: a local backend,
    the fakes' state dir and plugins), a new passphrase, the built pulumi CLI, the Prefect
    server and an empty gcloud config."""
    from tests.fakecloud.harness import engine_env, require_pulumi_root

    inherited = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "PULUMI_"))}
    inherited.pop("CI", None)
    return {
        **inherited,
        **engine_env(root / "engine"),
        "PULUMI_CONFIG_PASSPHRASE": secrets.token_urlsafe(16),
        "PROVISION_PULUMI_ROOT": str(require_pulumi_root()),
        "PREFECT_API_URL": prefect_api_url,
        "CLOUDSDK_CONFIG": str(root / "gcloud"),
    }


def timed(args: list[str], env: Mapping[str, str], cwd: Path | None = None) -> float:
    """Wall time of ``provision ARGS``, in seconds; the benchmark stops if it fails."""
    start = time.perf_counter()
    proc = subprocess.run(
        [PROVISION, *args], env=dict(env), cwd=cwd, capture_output=True, text=True
    )
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"provision {' '.join(args)} exited {proc.returncode}:\n{proc.stderr}")
    return elapsed


def report(title: str, times: Mapping[str, list[float]]) -> dict[str, float]:
    """Print each series' median, min and max under ``title``; return the medians."""
    width = max(len(title), *(len(name) for name in times)) + 2
    print(f"{title:{width}} {'median':>8} {'min':>8} {'max':>8}")
    medians = {name: statistics.median(values) for name, values in times.items()}
    for name, values in times.items():
        print(f"{name:{width}} {medians[name]:8.2f} {min(values):8.2f} {max(values):8.2f}")
    return medians


LOOP_ITERATIONS = 2_000_000
"""The pure-Python loop of :func:`machine_speed`; :func:`core_speeds` reports in its units."""

PROBE_ITERATIONS = 500_000
"""A quarter of that loop (~20 ms per core): short enough to run before every command."""


def _loop(iterations: int) -> None:
    total = 0
    for i in range(iterations):
        total += i


def machine_speed(repeat: int = 3) -> dict[str, float]:
    """How fast this machine runs, now: milliseconds (medians of ``repeat``) for each kind of
    work a ``provision`` command is made of, to tell a change of the machine's speed (hour to
    hour, host to host) from a change of the code when results are compared:

    - ``python_loop_ms``: 2,000,000 iterations of a pure-Python loop (the interpreter alone);
    - ``import_ms``: 3,000 small classes loaded from marshalled bytecode and executed, what
      importing a module from its ``.pyc`` does (allocation-heavy: a machine whose memory is
      slow or contended is slower at this than at the loop);
    - ``pbkdf2_ms``: PBKDF2-HMAC-SHA256 with 1,000,000 iterations, what the pulumi CLI does to
      derive a passphrase stack's key, once per process that decrypts its secrets.
    """
    import hashlib
    import marshal

    module = marshal.dumps(
        compile(
            "".join(
                f"class C{i}:\n"
                f"    def __init__(self, a: int = {i}, b: str = 'b{i}') -> None:\n"
                "        self.a, self.b = a, b\n"
                "    @property\n"
                "    def value(self) -> int:\n"
                "        return self.a\n"
                for i in range(3000)
            ),
            "<machine_speed>",
            "exec",
        )
    )

    def loop() -> None:
        _loop(LOOP_ITERATIONS)

    def load() -> None:
        exec(marshal.loads(module), {})

    def pbkdf2() -> None:
        hashlib.pbkdf2_hmac("sha256", b"passphrase", b"0123456789abcdef", 1_000_000)

    out = {}
    work_kinds = (("python_loop_ms", loop), ("import_ms", load), ("pbkdf2_ms", pbkdf2))
    for name, work in work_kinds:
        times = []
        for _ in range(repeat):
            start = time.perf_counter()
            work()
            times.append((time.perf_counter() - start) * 1000)
        out[name] = round(statistics.median(times), 1)
    return out


def core_speeds(iterations: int = PROBE_ITERATIONS) -> dict[str, float]:
    """How fast each core runs now: the pure-Python loop of :func:`machine_speed`, pinned to
    each core this process may use in turn, in milliseconds per :data:`LOOP_ITERATIONS`.

    Why per core, and why often: on the machine the README's figures come from, the cores did
    not keep one speed (the same loop took 67-75 ms at one moment and 115-145 ms at another, on
    either core, changing within seconds), so a gauge taken once before and once after a
    five-minute benchmark can read as usual while the commands ran far slower. Keyed by core
    number; ``"any"`` where the process cannot be pinned (not Linux).
    """
    scale = LOOP_ITERATIONS / iterations

    def timed_loop() -> float:
        start = time.perf_counter()
        _loop(iterations)
        return round((time.perf_counter() - start) * 1000 * scale, 1)

    if not hasattr(os, "sched_setaffinity"):
        return {"any": timed_loop()}
    allowed = os.sched_getaffinity(0)
    out = {}
    try:
        for cpu in sorted(allowed):
            os.sched_setaffinity(0, {cpu})  # this thread only: the commands are not pinned
            out[str(cpu)] = timed_loop()
    finally:
        os.sched_setaffinity(0, allowed)
    return out


@dataclass
class SpeedTrace:
    """:func:`core_speeds` sampled through a benchmark, before each command it times."""

    samples: list[dict[str, float]] = field(default_factory=list)

    def sample(self) -> dict[str, float]:
        """Probe the cores now; the probe (also kept for :meth:`summary`)."""
        speeds = core_speeds()
        self.samples.append(speeds)
        return speeds

    def summary(self) -> dict[str, dict[str, float]]:
        """Per core: the median, fastest and slowest probe (ms) and how many were taken."""
        by_core: dict[str, list[float]] = {}
        for speeds in self.samples:
            for core, ms in speeds.items():
                by_core.setdefault(core, []).append(ms)
        return {
            core: {
                "median_ms": round(statistics.median(values), 1),
                "min_ms": min(values),
                "max_ms": max(values),
                "probes": len(values),
            }
            for core, values in sorted(by_core.items())
        }

    def line(self) -> str:
        """One line for the report: each core's speed while the commands ran."""
        cores = "; ".join(
            f"core {core} {s['median_ms']:.0f} ms median ({s['min_ms']:.0f}-{s['max_ms']:.0f})"
            for core, s in self.summary().items()
        )
        return (
            f"machine during the runs: Python loop per core, probed before each command: "
            f"{cores or 'no probe taken'} (bench/common.py core_speeds)"
        )


def speed_line(before: Mapping[str, float], after: Mapping[str, float]) -> str:
    """One line for the report: :func:`machine_speed` before and after a benchmark."""
    return (
        f"machine: Python loop {before['python_loop_ms']:.0f} ms before, "
        f"{after['python_loop_ms']:.0f} ms after; bytecode load {before['import_ms']:.0f} ms, "
        f"{after['import_ms']:.0f} ms; PBKDF2 {before['pbkdf2_ms']:.0f} ms, "
        f"{after['pbkdf2_ms']:.0f} ms (bench/common.py machine_speed)"
    )


def write_results(name: str, results: Mapping[str, Any]) -> Path:
    """Write ``bench/results/NAME.json``; its path."""
    out = ROOT / "bench" / "results" / f"{name}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    return out
