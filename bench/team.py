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
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import (  # noqa: E402
    compile_bytecode,
    engine_base_env,
    report,
    timed,
    write_results,
)
from tests.fakecloud.moto_server import MotoServer  # noqa: E402
from tests.prefect_server import PrefectServer  # noqa: E402
from tests.shared_backend import make_backend  # noqa: E402

UP = ["--type", "cloud-run-v2", "--project", "bench-proj-1", "--region", "europe-west1"]


def main() -> int:
    """Run the benchmark and print a table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    compile_bytecode()

    with tempfile.TemporaryDirectory(prefix="provision-bench-") as tmp:
        root = Path(tmp)
        prefect = PrefectServer(root / "prefect")
        moto = MotoServer().start()
        prefect.start()
        try:
            backend = make_backend(moto, config_dir=root)
            base = {
                **engine_base_env(root, prefect.api_url),
                **backend.env,
                "PULUMI_BACKEND_URL": backend.url,
            }

            def machine(name: str) -> dict[str, str]:
                (root / name / "pulumi-home").mkdir(parents=True, exist_ok=True)
                return {
                    **base,
                    "PROVISION_HOME": str(root / name / "home"),
                    "PULUMI_HOME": str(root / name / "pulumi-home"),
                }

            warm = machine("warm")
            timed(["up", "bench", *UP, "--yes"], warm)
            preview = ["preview", "bench", "--expect-no-changes"]
            timed(preview, warm)  # warm-up: the work dir and plugin caches exist from here on
            times: dict[str, list[float]] = {"warm machine": [], "fresh machine": []}
            for i in range(args.runs):
                times["warm machine"].append(timed(preview, warm))
                times["fresh machine"].append(timed(preview, machine(f"fresh-{i}")))
        finally:
            prefect.stop()
            moto.stop()

    medians = report("preview POOL (S3 backend)", times)
    ratio = medians["fresh machine"] / medians["warm machine"]
    print(f"fresh / warm: {ratio:.2f}x over {args.runs} interleaved runs")
    write_results("team", {"runs": times, "medians": medians, "ratio": ratio})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
