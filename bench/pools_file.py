"""Wall time of ``provision preview -f FILE`` over 4 pools against 4 single-pool previews.

    .venv/bin/python bench/pools_file.py [--runs 5]

Four cloud-run-v2 pools (fake GCP, the real engine, a real Prefect server, a local file
backend) made once with ``up -f``; then, interleaved, ``preview -f provision.toml
--expect-no-changes`` (the pools planned in parallel, ``--parallel 4``) and the four
``preview POOL --expect-no-changes`` one after another, as a CI job did before the pools file.
Reports medians (min/max) and the ratio, and writes ``bench/results/pools_file.json``. Needs
the test extra and the built pulumi CLI. The machine's core count bounds the gain: each
preview runs a pulumi CLI and a provider plugin of its own.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.fakecloud.harness import engine_env, require_pulumi_root  # noqa: E402
from tests.prefect_server import PrefectServer  # noqa: E402

PROVISION = str(Path(sys.executable).parent / "provision")
POOLS = ("bench-a", "bench-b", "bench-c", "bench-d")
FILE = """[defaults]
project = "bench-proj-1"
region = "europe-west1"
""" + "".join(f'\n[pools.{p}]\ntype = "cloud-run-v2"\n' for p in POOLS)


def _run(args: list[str], env: dict[str, str], cwd: Path) -> float:
    start = time.perf_counter()
    proc = subprocess.run([PROVISION, *args], env=env, cwd=cwd, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"provision {' '.join(args)} exited {proc.returncode}:\n{proc.stderr}")
    return elapsed


def main() -> int:
    """Run the benchmark and print a table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="provision-bench-") as tmp:
        root = Path(tmp)
        prefect = PrefectServer(root / "prefect")
        prefect.start()
        try:
            inherited = {
                k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "PULUMI_"))
            }
            env = {
                **inherited,
                **engine_env(root / "engine"),
                "PULUMI_CONFIG_PASSPHRASE": secrets.token_urlsafe(16),
                "PROVISION_PULUMI_ROOT": str(require_pulumi_root()),
                "PROVISION_HOME": str(root / "home"),
                "PREFECT_API_URL": prefect.api_url,
                "CLOUDSDK_CONFIG": str(root / "gcloud"),
            }
            env.pop("CI", None)
            (root / "provision.toml").write_text(FILE)
            _run(["up", "-f", "provision.toml", "--yes"], env, root)
            file_preview = ["preview", "-f", "provision.toml", "--expect-no-changes"]
            _run(file_preview, env, root)  # warm-up
            times: dict[str, list[float]] = {"preview -f (4 pools)": [], "4 x preview POOL": []}
            for _ in range(args.runs):
                times["preview -f (4 pools)"].append(_run(file_preview, env, root))
                times["4 x preview POOL"].append(
                    sum(_run(["preview", p, "--expect-no-changes"], env, root) for p in POOLS)
                )
        finally:
            prefect.stop()

    medians = {k: statistics.median(v) for k, v in times.items()}
    ratio = medians["preview -f (4 pools)"] / medians["4 x preview POOL"]
    print(f"{'4 cloud-run-v2 pools':24} {'median':>8} {'min':>8} {'max':>8}")
    for name, values in times.items():
        print(f"{name:24} {medians[name]:8.2f} {min(values):8.2f} {max(values):8.2f}")
    print(
        f"preview -f / sequential: {ratio:.2f}x over {args.runs} interleaved runs "
        f"({os.cpu_count()} cores)"
    )
    out = ROOT / "bench" / "results" / "pools_file.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"runs": times, "medians": medians, "ratio": ratio}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
