"""``preview`` of one pool through the Python API, called again and again in one process.

    python bench/warm.py POOL [--repeat 2]      # the engine benchmark runs it after each preview

Prints one JSON object: ``{"first_s": ..., "then_s": [...]}``, the wall time of the first
``provision.api.preview`` call (which imports what a ``preview`` command imports) and of each
call after it, in the same process (modules loaded, the SDK's caches filled). Each call is a
whole ``preview``: the state read, the Prefect checks, a new pulumi CLI and new provider
plugins, the program, the events. So ``preview`` as a command minus a later call here is what
the command's own start-up costs: the interpreter, and the imports of this tool, the pulumi SDK
and the provider SDK's modules. The environment is the caller's (the pool's backend, Prefect
server and fakes); exits non-zero, with the error, if a call fails.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def timed_previews(pool: str, repeat: int) -> dict[str, object]:
    """``1 + repeat`` previews of ``pool`` in this process: the first's seconds and the rest's."""
    from provision import api
    from provision.service import PoolRequest

    times = []
    for _ in range(1 + repeat):
        started = time.perf_counter()
        result = api.preview([PoolRequest(pool)])
        times.append(time.perf_counter() - started)
        failed = result.failed
        if failed:
            raise SystemExit(f"preview {pool} failed: {failed[0].error}")
    return {"first_s": times[0], "then_s": times[1:]}


def main() -> int:
    """Run the previews and print their times as JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("pool")
    parser.add_argument("--repeat", type=int, default=2, help="calls after the first")
    args = parser.parse_args()
    print(json.dumps(timed_previews(args.pool, args.repeat)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
