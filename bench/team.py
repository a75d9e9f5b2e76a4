"""Wall time of ``provision preview POOL`` on a fresh machine against a warm one.

    .venv/bin/python bench/team.py [--runs 5]

A pool lives in its backend, so a CI runner that has never seen it previews it with nothing but
the backend URL and the passphrase. This measures what that costs: one pool (cloud-run-v2, fake
GCP) on an S3 backend served by moto on loopback, a real Prefect server, the real engine; then,
interleaved, ``preview POOL --expect-no-changes`` from the machine that made it (warm work dir)
and from a fresh PROVISION_HOME and PULUMI_HOME each time. Reports medians (min/max) and the
ratio, and writes ``bench/results/team.json``. Needs the test extra and the built pulumi CLI.
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
from tests.fakecloud.moto_server import MotoServer  # noqa: E402
from tests.prefect_server import PrefectServer  # noqa: E402
from tests.shared_backend import make_backend  # noqa: E402

PROVISION = str(Path(sys.executable).parent / "provision")
UP = ["--type", "cloud-run-v2", "--project", "bench-proj-1", "--region", "europe-west1"]


def _run(args: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    proc = subprocess.run([PROVISION, *args], env=env, capture_output=True, text=True)
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
        moto = MotoServer().start()
        prefect.start()
        try:
            backend = make_backend(moto, config_dir=root)
            inherited = {
                k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "PULUMI_"))
            }
            base = {
                **inherited,
                **engine_env(root / "engine"),
                **backend.env,
                "PULUMI_BACKEND_URL": backend.url,
                "PULUMI_CONFIG_PASSPHRASE": secrets.token_urlsafe(16),
                "PROVISION_PULUMI_ROOT": str(require_pulumi_root()),
                "PREFECT_API_URL": prefect.api_url,
                "CLOUDSDK_CONFIG": str(root / "gcloud"),
            }
            base.pop("CI", None)

            def machine(name: str) -> dict[str, str]:
                (root / name / "pulumi-home").mkdir(parents=True, exist_ok=True)
                return {
                    **base,
                    "PROVISION_HOME": str(root / name / "home"),
                    "PULUMI_HOME": str(root / name / "pulumi-home"),
                }

            warm = machine("warm")
            _run(["up", "bench", *UP, "--yes"], warm)
            preview = ["preview", "bench", "--expect-no-changes"]
            _run(preview, warm)  # warm-up: the work dir and plugin caches exist from here on
            times: dict[str, list[float]] = {"warm machine": [], "fresh machine": []}
            for i in range(args.runs):
                times["warm machine"].append(_run(preview, warm))
                times["fresh machine"].append(_run(preview, machine(f"fresh-{i}")))
        finally:
            prefect.stop()
            moto.stop()

    medians = {k: statistics.median(v) for k, v in times.items()}
    ratio = medians["fresh machine"] / medians["warm machine"]
    print(f"{'preview POOL (S3 backend)':28} {'median':>8} {'min':>8} {'max':>8}")
    for name, values in times.items():
        print(f"{name:28} {medians[name]:8.2f} {min(values):8.2f} {max(values):8.2f}")
    print(f"fresh / warm: {ratio:.2f}x over {args.runs} interleaved runs")
    out = ROOT / "bench" / "results" / "team.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"runs": times, "medians": medians, "ratio": ratio}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
