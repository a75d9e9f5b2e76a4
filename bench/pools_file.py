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
import os
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
from tests.prefect_server import PrefectServer  # noqa: E402

POOLS = ("bench-a", "bench-b", "bench-c", "bench-d")
FILE = """[defaults]
project = "bench-proj-1"
region = "europe-west1"
""" + "".join(f'\n[pools.{p}]\ntype = "cloud-run-v2"\n' for p in POOLS)


def main() -> int:
    """Run the benchmark and print a table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    compile_bytecode()

    with tempfile.TemporaryDirectory(prefix="provision-bench-") as tmp:
        root = Path(tmp)
        prefect = PrefectServer(root / "prefect")
        prefect.start()
        try:
            env = {**engine_base_env(root, prefect.api_url), "PROVISION_HOME": str(root / "home")}
            (root / "provision.toml").write_text(FILE)
            timed(["up", "-f", "provision.toml", "--yes"], env, root)
            file_preview = ["preview", "-f", "provision.toml", "--expect-no-changes"]
            timed(file_preview, env, root)  # warm-up
            times: dict[str, list[float]] = {"preview -f (4 pools)": [], "4 x preview POOL": []}
            for _ in range(args.runs):
                times["preview -f (4 pools)"].append(timed(file_preview, env, root))
                times["4 x preview POOL"].append(
                    sum(timed(["preview", p, "--expect-no-changes"], env, root) for p in POOLS)
                )
        finally:
            prefect.stop()

    medians = report("4 cloud-run-v2 pools", times)
    ratio = medians["preview -f (4 pools)"] / medians["4 x preview POOL"]
    print(
        f"preview -f / sequential: {ratio:.2f}x over {args.runs} interleaved runs "
        f"({os.cpu_count()} cores)"
    )
    write_results("pools_file", {"runs": times, "medians": medians, "ratio": ratio})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
