"""The engine's own costs: ``provision up``, no-op rerun, preview and destroy against the fakes.

    .venv/bin/python bench/engine.py [--runs 3] [--latency 0,200] [--delay-ms 1000]

For each stack (``cloud-run-v2`` on fake GCP, ``ecs`` on fake AWS served by moto,
``azure-container-instance`` on fake Azure; ``--stacks`` picks), the real ``provision`` CLI, the
real pulumi engine and a real Prefect server, each run on a fresh cloud (a new fake state dir,
a new moto account) and a fresh Pulumi backend:

  - ``up`` (first run), ``up`` again (the no-op rerun), ``preview`` of the existing pool and
    ``destroy``, in that order, stacks interleaved run by run, medians of ``--runs`` runs after
    one untimed warm-up; at each ``--latency``: every cloud request takes that much longer.
    AWS: every boto3 request of the fake provider goes through a loopback proxy that sleeps
    (``bench/latency_proxy.py``, the same one ``bench/peer.py`` puts in front of Prefect's
    provisioner). GCP's and Azure's fakes have no HTTP: their own delay
    (``FAKECLOUD_DELAY_MS`` and ``FAKECLOUD_DELAY_MS_READ``) sleeps in every create, update,
    delete and read.
  - the critical-path ratio: one more ``up`` (``--critical-runs``) in which every create takes
    ``--delay-ms`` (``FAKECLOUD_DELAY_MS_CREATE``). The shortest such ``up`` could be is the
    stack's dependency depth (the longest chain of cloud resources in the state's
    ``dependencies``, components expanded to their children) times the delay; the ratio is
    (that ``up`` - the median 0 ms ``up``) / (depth x delay). 1.0 is perfect parallelism.
    The fakes' call log gives a second, less noisy one: (first create's start to last
    create's end) / (depth x delay), which leaves out the fixed cost before and after.
  - peak RSS of each command's process tree (``provision``, the pulumi CLI, its language host
    and provider plugins), sampled from /proc every 50 ms, and what each kind of process
    (:data:`KINDS`) held at that peak;
  - CPU time of each command's process tree (exact), and each kind's share (as sampled):
    on a machine with few cores, what a command's wall time cannot go below;
  - the start-up of a ``preview``: after each ``preview`` command, ``bench/warm.py`` runs
    three previews of the same pool through the Python API in one process; the command's
    median minus the median of the later calls (which pay no imports) is what starting a
    process costs;
  - pulumi CLI processes per command: ``PROVISION_PULUMI_ROOT`` points at a shim ``pulumi``
    that logs each invocation and execs the real CLI.

Targets (checked at 0 ms; exit 1 when one is missed): no-op ``up`` <= 1.0 s on GCP and
<= 1.5 s on AWS; ``preview`` <= 0.8 s (every stack); <= 4 pulumi CLI processes per ``up``; peak
RSS of every ``up``'s process tree <= 250 MB. Prints a table and how fast the machine itself
ran: before and after (``bench.common.machine_speed``), and each core before every timed
command (``bench.common.core_speeds``: its speed changes within seconds). Writes
``bench/results/engine.json``. Needs the test extra and the built pulumi CLI
(scripts/build-pulumi-cli).
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
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
    write_results,
)
from bench.latency_proxy import LatencyProxy  # noqa: E402
from bench.rss import measure_tree  # noqa: E402

REGION_GCP = "europe-west1"
REGION_AWS = "eu-west-1"
AZURE_SUBSCRIPTION = "6b1f7c2e-3d4a-4e5b-8c9d-0a1b2c3d4e5f"
AZURE_TENANT = "0c1d2e3f-4a5b-4c6d-8e7f-9a0b1c2d3e4f"
STACKS = ("gcp", "aws", "azure")
COMMANDS = ("up", "no-op up", "preview", "destroy")
CLOUD_PACKAGES = ("gcp", "aws", "azure-native", "azuread")
"""Type-token packages of the fake clouds: the resources whose operations are delayed."""

TARGETS = {
    "no-op up gcp <= 1.0 s": ("gcp", "no-op up", 1.0),
    "no-op up aws <= 1.5 s": ("aws", "no-op up", 1.5),
    "preview gcp <= 0.8 s": ("gcp", "preview", 0.8),
    "preview aws <= 0.8 s": ("aws", "preview", 0.8),
    "preview azure <= 0.8 s": ("azure", "preview", 0.8),
}
MAX_CLI_PER_UP = 4
MAX_RSS_MB = 250
KINDS = ("provision", "pulumi CLI", "plugins")
"""The kinds of process of a command's tree: this tool's own process (which also serves the
program and the Prefect resources' provider), the pulumi CLI, and the provider plugins (the
fake clouds here; a cloud's Go binary for users) with anything else the CLI starts."""


# ------------------------------------------------------------------------ process tree RSS


@dataclass
class Measured:
    """One finished command."""

    returncode: int
    seconds: float
    peak_bytes: int
    output: str = ""
    cpu_s: float = 0.0
    """CPU time of the whole tree (exact)."""
    cpu_by_kind: dict[str, float] = field(default_factory=dict)
    """CPU-seconds per :data:`KINDS` (as sampled), with ``between samples`` for the rest."""
    rss_by_kind: dict[str, int] = field(default_factory=dict)
    """Bytes per :data:`KINDS` in the sample of the tree's peak."""


def kind(label: str) -> str:
    """The :data:`KINDS` entry of a process labelled ``label`` (``bench.rss.process_label``)."""
    return label if label in KINDS[:2] else KINDS[2]


def measure(
    cmd: list[str], env: Mapping[str, str], cwd: str | os.PathLike[str] | None = None
) -> Measured:
    """Run ``cmd``: its wall time, the peak of the summed RSS of its process tree and its CPU
    time (``bench.rss.measure_tree``, sampled every 50 ms), each per kind of process."""
    tree = measure_tree(cmd, env, cwd, interval=0.05)
    output = (tree.stdout + tree.stderr).decode(errors="replace")
    cpu = dict.fromkeys(KINDS, 0.0)
    for label, seconds in tree.cpu_by_label().items():
        cpu[kind(label)] += seconds
    cpu["between samples"] = tree.unseen_cpu_s
    rss = dict.fromkeys(KINDS, 0)
    for pid, rss_bytes in tree.at_peak.items():
        rss[kind(tree.procs[pid].label)] += rss_bytes
    return Measured(tree.returncode, tree.seconds, tree.peak, output, tree.cpu_s, cpu, rss)


# ----------------------------------------------------------------- pulumi CLI processes


class PulumiShim:
    """A ``PROVISION_PULUMI_ROOT`` whose ``bin/pulumi`` logs each invocation, then execs the
    real CLI. :meth:`calls` is the number of invocations so far."""

    def __init__(self, directory: Path, real_root: Path) -> None:
        self.root = directory
        self.log = directory / "invocations.log"
        binary = directory / "bin" / "pulumi"
        binary.parent.mkdir(parents=True, exist_ok=True)
        self.log.touch()
        real = shlex.quote(str(Path(real_root) / "bin" / "pulumi"))
        # one short line per call: O_APPEND writes below PIPE_BUF never interleave
        binary.write_text(
            f'#!/bin/sh\necho "$*" >> {shlex.quote(str(self.log))}\nexec {real} "$@"\n'
        )
        binary.chmod(0o755)

    def invocations(self) -> list[str]:
        """The arguments of every invocation so far, one string each."""
        return self.log.read_text().splitlines()

    def calls(self) -> int:
        """Invocations logged so far."""
        return len(self.invocations())


def subcommand(arguments: str) -> str:
    """``stack export`` from ``--non-interactive stack export --show-secrets --stack s``."""
    words = [w for w in arguments.split() if w != "--non-interactive"]
    taken = []
    for word in words:
        if word.startswith("-"):
            break
        taken.append(word)
    return " ".join(taken[:2])


# --------------------------------------------------------------------------- critical path


def dependency_depth(resources: Iterable[Mapping[str, Any]]) -> int:
    """Longest chain of cloud resources in a Pulumi checkpoint's ``resources``.

    A resource counts 1 if it is a custom resource of a fake cloud (its create is what the
    fakes delay), else 0 (components, providers, the stack). Depending on a component means
    depending on everything under it, as the engine waits for its children.
    """
    resources = list(resources)
    by_urn = {r["urn"]: r for r in resources}
    children: dict[str, list[str]] = defaultdict(list)
    for r in resources:
        if r.get("parent"):
            children[r["parent"]].append(r["urn"])

    def weight(r: Mapping[str, Any]) -> int:
        kind = r.get("type", "")
        return int(bool(r.get("custom")) and kind.split(":")[0] in CLOUD_PACKAGES)

    def expand(urn: str) -> list[str]:
        r = by_urn.get(urn)
        if r is None:
            return []
        if r.get("custom"):
            return [urn]
        return [u for child in children[urn] for u in expand(child)]

    memo: dict[str, int] = {}

    def depth(urn: str, seen: frozenset[str] = frozenset()) -> int:
        if urn in memo:
            return memo[urn]
        if urn in seen:
            raise ValueError(f"dependency cycle through {urn}")
        r = by_urn[urn]
        deps = {d for dep in r.get("dependencies") or () for d in expand(dep)}
        for dep_list in (r.get("propertyDependencies") or {}).values():
            deps.update(d for dep in dep_list for d in expand(dep))
        best = max((depth(d, seen | {urn}) for d in deps if d in by_urn), default=0)
        memo[urn] = weight(r) + best
        return memo[urn]

    return max((depth(u) for u in by_urn), default=0)


def backend_resources(backend: Path) -> list[dict[str, Any]]:
    """The resources of the one stack in a file backend (``file://<backend>``)."""
    found = [
        p for p in (backend / ".pulumi" / "stacks").rglob("*.json") if not p.name.endswith(".bak")
    ]
    if len(found) != 1:
        raise RuntimeError(f"expected one stack checkpoint under {backend}, found {found}")
    checkpoint = json.loads(found[0].read_text())
    return checkpoint["checkpoint"]["latest"]["resources"]


# ------------------------------------------------------------------------------ the runs


@dataclass
class World:
    """What every run shares: the servers, the shim and the inherited environment."""

    root: Path
    base: dict[str, str]
    moto_endpoint: str
    shim: PulumiShim
    samples: dict[str, Any] = field(default_factory=dict)


def world_env(root: Path, prefect_api_url: str, shim_root: Path) -> dict[str, str]:
    """The environment every ``provision`` run starts from (no PREFECT_*/PULUMI_* leak in)."""
    dropped = ("PREFECT_", "PULUMI_", "AWS_", "FAKECLOUD_", "GOOGLE_", "ARM_", "AZURE_")
    inherited = {k: v for k, v in os.environ.items() if not k.startswith(dropped)}
    aws_dir = root / "aws"
    aws_dir.mkdir(parents=True, exist_ok=True)
    (aws_dir / "config").write_text("")
    (aws_dir / "credentials").write_text("")
    (root / "gcloud").mkdir(exist_ok=True)
    env = {
        **inherited,
        "PROVISION_PULUMI_ROOT": str(shim_root),
        "PREFECT_API_URL": prefect_api_url,
        "PREFECT_HOME": str(root / "prefect-home"),
        "CLOUDSDK_CONFIG": str(root / "gcloud"),
        "AWS_CONFIG_FILE": str(aws_dir / "config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(aws_dir / "credentials"),
        "AWS_EC2_METADATA_DISABLED": "true",
        "COLUMNS": "120",
    }
    env.pop("CI", None)
    return env


def run_env(
    base: Mapping[str, str], workdir: Path, pulumi_home: Path, extra: Mapping[str, str]
) -> dict[str, str]:
    """A fresh cloud and backend under ``workdir``; the machine's PULUMI_HOME is shared."""
    from tests.fakecloud.harness import engine_env

    env = {**base, **engine_env(workdir), **extra}
    env["PULUMI_HOME"] = str(pulumi_home)
    env["PULUMI_CONFIG_PASSPHRASE"] = secrets.token_urlsafe(16)
    env["PROVISION_HOME"] = str(workdir / "home")
    return env


def aws_extra(endpoint: str) -> dict[str, str]:
    """A fresh moto account behind ``endpoint`` (the latency proxy)."""
    from tests.fakecloud.moto_server import ACCOUNT_ENV, CREDENTIALS, ENDPOINT_ENV, new_account

    return {**CREDENTIALS, ENDPOINT_ENV: endpoint, ACCOUNT_ENV: new_account()}


def fake_delay_extra(latency_ms: int) -> dict[str, str]:
    """A fake's own per-operation delay for ``latency_ms`` (GCP's and Azure's have no HTTP)."""
    if not latency_ms:
        return {}
    return {"FAKECLOUD_DELAY_MS": str(latency_ms), "FAKECLOUD_DELAY_MS_READ": str(latency_ms)}


def stack_extra(stack: str, root: Path, proxy: LatencyProxy) -> dict[str, str]:
    """What a stack's cloud needs: a fresh moto account, or a fake ``az login``."""
    if stack == "aws":
        return aws_extra(proxy.endpoint)
    if stack == "azure":
        (root / "azure-cli").mkdir(parents=True, exist_ok=True)
        return {"ARM_TENANT_ID": AZURE_TENANT, "AZURE_CONFIG_DIR": str(root / "azure-cli")}
    return {}


def up_args(stack: str, pool: str) -> list[str]:
    """``provision up POOL ...`` for a first run."""
    if stack == "gcp":
        where = ["--type", "cloud-run-v2", "--project", "bench-proj-1", "--region", REGION_GCP]
    elif stack == "azure":
        where = ["--type", "azure-container-instance", "--subscription", AZURE_SUBSCRIPTION]
        where += ["--location", "westeurope"]
    else:
        where = ["--type", "ecs", "--region", REGION_AWS]
    return ["up", pool, *where, "--yes"]


def provision(
    args: list[str], env: Mapping[str, str], shim: PulumiShim, proxy: LatencyProxy | None = None
) -> dict[str, Any]:
    """Run ``provision ARGS``; its time, peak RSS, pulumi CLI processes and AWS requests."""
    calls, requests = shim.calls(), proxy.requests if proxy else 0
    run = measure([PROVISION, *args], env)
    if run.returncode != 0:
        raise SystemExit(f"provision {' '.join(args)} exited {run.returncode}:\n{run.output}")
    invoked = [subcommand(line) for line in shim.invocations()[calls:]]
    return {
        "seconds": run.seconds,
        "peak_rss_mb": run.peak_bytes / 2**20,
        "rss_at_peak_mb": {k: v / 2**20 for k, v in run.rss_by_kind.items()},
        "cpu_s": run.cpu_s,
        "cpu_by_kind_s": run.cpu_by_kind,
        "pulumi_cli": len(invoked),
        "pulumi_cli_commands": invoked,
        "aws_requests": (proxy.requests - requests) if proxy else None,
    }


def sequence(
    stack: str,
    world: World,
    latency_ms: int,
    proxy: LatencyProxy,
    tag: str,
    trace: SpeedTrace | None = None,
) -> dict[str, dict[str, Any]]:
    """up, no-op up, preview, destroy of one pool on a fresh cloud and backend; with a
    ``trace``, each sample also holds the cores' speed probed just before it
    (``core_loop_ms``)."""
    workdir = world.root / "runs" / tag
    pool = "bench" + secrets.token_hex(3)
    extra = stack_extra(stack, workdir, proxy)
    if stack != "aws":
        extra.update(fake_delay_extra(latency_ms))
    env = run_env(world.base, workdir, world.root / "pulumi-home", extra)
    p = proxy if stack == "aws" else None
    commands = {
        "up": up_args(stack, pool),
        "no-op up": ["up", pool, "--yes"],
        "preview": ["preview", pool, "--expect-no-changes"],
        "destroy": ["destroy", pool, "--yes"],
    }
    samples = {}
    for command, args in commands.items():
        probe = trace.sample() if trace is not None else None
        samples[command] = {**provision(args, env, world.shim, p), "core_loop_ms": probe}
        if command == "preview":
            samples[command]["warm_s"] = warm_previews(pool, env)
    return samples


def warm_previews(pool: str, env: Mapping[str, str], repeat: int = 2) -> list[float]:
    """Seconds of each ``preview`` of ``pool`` after the first in one process, through the
    Python API (``bench/warm.py``): the command's time without its start-up."""
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "warm.py"), pool, "--repeat", str(repeat)],
        env=env,
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        raise SystemExit(f"bench/warm.py {pool} exited {done.returncode}:\n{done.stderr}")
    return json.loads(done.stdout)["then_s"]


def critical_path_run(stack: str, world: World, delay_ms: int, proxy: LatencyProxy, tag: str):
    """One ``up`` with every create delayed: its time and the stack's dependency depth."""
    workdir = world.root / "runs" / tag
    pool = "bench" + secrets.token_hex(3)
    extra = stack_extra(stack, workdir, proxy)
    extra["FAKECLOUD_DELAY_MS_CREATE"] = str(delay_ms)
    env = run_env(world.base, workdir, world.root / "pulumi-home", extra)
    up = provision(up_args(stack, pool), env, world.shim)
    depth = dependency_depth(backend_resources(workdir / "backend"))
    provision(["destroy", pool, "--yes"], {**env, "FAKECLOUD_DELAY_MS_CREATE": "0"}, world.shim)
    return up["seconds"], depth, create_span(workdir / "cloud")


def create_span(state_dir: Path) -> float:
    """Seconds from the first create's start to the last create's end, from the fakes' log."""
    from tests.fakecloud.state import FakeCloud

    cloud = FakeCloud(state_dir)
    begins = [c["ts"] for c in cloud.calls("create", phase="begin")]
    ends = [c["ts"] for c in cloud.calls("create")]
    return max(ends) - min(begins)


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def _kind_order(name: str) -> int:
    return KINDS.index(name) if name in KINDS else len(KINDS)


def breakdown(table: Mapping[str, Mapping[str, Mapping[str, Any]]], cores: int) -> list[str]:
    """Lines saying where each stack's commands go: CPU time per kind of process, against
    what ``cores`` cores give in the wall time; for ``preview``, its start-up (against later
    calls of the Python API in one process, ``bench/warm.py``); and what each kind held at
    ``up``'s peak."""
    lines = []
    for stack, by_command in table.items():
        for command, row in by_command.items():
            parts = " + ".join(f"{k} {v:.2f}" for k, v in row["cpu_by_kind_s"].items())
            busy = row["cpu_s"] / (row["median_s"] * cores) if row["median_s"] else float("nan")
            lines.append(
                f"{stack:5} {command:9} CPU {row['cpu_s']:.2f} s = {parts}; "
                f"{busy:.0%} of {cores} cores over {row['median_s']:.2f} s"
            )
            if "warm_median_s" in row:
                warm = row["warm_median_s"]
                lines.append(
                    f"{stack:5} {command:9} {warm:.2f} s as a later call of the Python API in "
                    f"one process: start-up {row['median_s'] - warm:.2f} s of the command"
                )
        for command in ("up", "no-op up"):
            rss = by_command.get(command, {}).get("rss_at_peak_mb")
            if rss:
                parts = " + ".join(f"{k} {v:.0f}" for k, v in rss.items())
                peak = by_command[command]["peak_rss_mb"]
                lines.append(f"{stack:5} {command:9} RSS at peak {peak:.0f} MB = {parts}")
    return lines


def summarize(
    runs: Mapping[str, Mapping[str, list[dict[str, Any]]]],
) -> dict[str, dict[str, dict[str, Any]]]:
    """Per stack and command: median seconds (min, max), worst RSS (with what each kind of
    process held then), median CPU time (and each kind's median), CLI processes, requests;
    and the median of the warm API calls (``warm_s``) where a command has them."""
    table: dict[str, dict[str, dict[str, Any]]] = {}
    for stack, by_command in runs.items():
        table[stack] = {}
        for command, samples in by_command.items():
            seconds = [s["seconds"] for s in samples]
            requests = [s["aws_requests"] for s in samples if s["aws_requests"] is not None]
            worst = max(samples, key=lambda s: s["peak_rss_mb"])
            kinds = {k for s in samples for k in s["cpu_by_kind_s"]}
            warm = [t for s in samples for t in s.get("warm_s", ())]
            table[stack][command] = {
                "median_s": _median(seconds),
                "min_s": min(seconds),
                "max_s": max(seconds),
                "peak_rss_mb": worst["peak_rss_mb"],
                "rss_at_peak_mb": worst["rss_at_peak_mb"],
                "cpu_s": _median([s["cpu_s"] for s in samples]),
                "cpu_by_kind_s": {
                    k: _median([s["cpu_by_kind_s"].get(k, 0.0) for s in samples])
                    for k in sorted(kinds, key=_kind_order)
                },
                "pulumi_cli": max(s["pulumi_cli"] for s in samples),
                "pulumi_cli_commands": samples[-1].get("pulumi_cli_commands"),
                "aws_requests": _median(requests) if requests else None,
            }
            if warm:
                table[stack][command]["warm_median_s"] = _median(warm)
    return table


def check(
    at_zero: Mapping[str, Mapping[str, Mapping[str, Any]]],
    every_latency: Iterable[Mapping[str, Mapping[str, Mapping[str, Any]]]],
) -> dict[str, bool]:
    """The issue's targets: times at 0 ms; CLI processes and RSS of every ``up`` measured."""
    checks = {
        name: at_zero[stack][command]["median_s"] <= limit
        for name, (stack, command, limit) in TARGETS.items()
        if stack in at_zero
    }
    tables = list(every_latency)
    for stack in at_zero:
        ups = [t[stack][c] for t in tables for c in ("up", "no-op up")]
        checks[f"pulumi CLI processes per up {stack} <= {MAX_CLI_PER_UP}"] = all(
            u["pulumi_cli"] <= MAX_CLI_PER_UP for u in ups
        )
        checks[f"peak RSS of up {stack} <= {MAX_RSS_MB} MB"] = all(
            u["peak_rss_mb"] <= MAX_RSS_MB for u in ups
        )
    return checks


def main() -> int:
    """Run the benchmark and print a table."""
    from tests.fakecloud.harness import require_pulumi_root
    from tests.fakecloud.moto_server import MotoServer
    from tests.prefect_server import PrefectServer

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--latency", default="0,200", help="ms per cloud request, comma-separated")
    parser.add_argument("--delay-ms", type=int, default=1000, help="per create, critical path")
    parser.add_argument("--critical-runs", type=int, default=1, help="delayed ups, 0: none")
    parser.add_argument("--stacks", default=",".join(STACKS))
    args = parser.parse_args()
    latencies = [int(x) for x in args.latency.split(",")]
    stacks = [s for s in args.stacks.split(",") if s]
    if 0 not in latencies:
        raise SystemExit("--latency must include 0: the targets are checked there")
    compile_bytecode()
    speed: dict[str, Any] = {"before": machine_speed()}
    trace = SpeedTrace()

    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="provision-bench-") as tmp:
        root = Path(tmp)
        prefect = PrefectServer(root / "prefect")
        moto = MotoServer().start()
        prefect.start()
        try:
            shim = PulumiShim(root / "pulumi-shim", require_pulumi_root())
            world = World(root, world_env(root, prefect.api_url, shim.root), moto.endpoint, shim)
            (root / "pulumi-home").mkdir()
            results: dict[int, dict[str, dict[str, list[dict[str, Any]]]]] = {}
            critical: dict[str, dict[str, Any]] = {s: {"up_s": []} for s in stacks}
            for latency in latencies:
                with LatencyProxy(moto.endpoint, latency) as proxy:
                    runs = {s: {c: [] for c in COMMANDS} for s in stacks}
                    if latency == latencies[0]:  # warm-up: page cache, plugins
                        for stack in stacks:
                            sequence(stack, world, latency, proxy, f"warm-{stack}")
                    for i in range(args.runs):
                        for stack in stacks if i % 2 == 0 else reversed(stacks):
                            tag = f"{latency}ms-{stack}-{i}"
                            for command, sample in sequence(
                                stack, world, latency, proxy, tag, trace
                            ).items():
                                runs[stack][command].append(sample)
                            up = runs[stack]["up"][-1]["seconds"]
                            print(f"  {tag}: up {up:.2f} s", flush=True)
                    results[latency] = runs
            with LatencyProxy(moto.endpoint, 0) as proxy:
                for i in range(args.critical_runs):
                    for stack in stacks:
                        seconds, depth, span = critical_path_run(
                            stack, world, args.delay_ms, proxy, f"critical-{stack}-{i}"
                        )
                        critical[stack]["up_s"].append(seconds)
                        critical[stack].setdefault("create_span_s", []).append(span)
                        critical[stack]["depth"] = depth
        finally:
            prefect.stop()
            moto.stop()

    speed["after"] = machine_speed()
    speed["during"] = trace.summary()
    tables = {latency: summarize(runs) for latency, runs in results.items()}
    if not args.critical_runs:  # --critical-runs 0: the timed commands only
        critical = {}
    for stack in critical:
        c = critical[stack]
        floor = c["depth"] * args.delay_ms / 1000
        baseline = tables[0][stack]["up"]["median_s"]
        c.update(
            delay_ms=args.delay_ms,
            critical_path_s=floor,
            median_up_s=_median(c["up_s"]),
            ratio=(_median(c["up_s"]) - baseline) / floor if floor else float("nan"),
            span_ratio=_median(c["create_span_s"]) / floor if floor else float("nan"),
        )
    checks = check(tables[0], tables.values())

    header = f"{'stack':5} {'latency':>7} {'command':9} {'median s':>8} {'min':>6} {'max':>6}"
    print(f"{header} {'RSS MB':>7} {'CLIs':>4} {'AWS req':>7}")
    for latency, table in tables.items():
        for stack, by_command in table.items():
            for command, row in by_command.items():
                requests = "" if row["aws_requests"] is None else f"{row['aws_requests']:.0f}"
                print(
                    f"{stack:5} {latency:>5}ms {command:9} {row['median_s']:8.2f} "
                    f"{row['min_s']:6.2f} {row['max_s']:6.2f} {row['peak_rss_mb']:7.0f} "
                    f"{row['pulumi_cli']:4} {requests:>7}"
                )
    print("Where the 0 ms runs go (CPU: medians; RSS: each stack's worst up):")
    for line in breakdown(tables[0], os.cpu_count() or 1):
        print("  " + line)
    for stack, c in critical.items():
        print(
            f"critical path {stack}: depth {c['depth']} x {c['delay_ms']} ms; up "
            f"{c['median_up_s']:.2f} s vs {tables[0][stack]['up']['median_s']:.2f} s at 0 ms: "
            f"{c['ratio']:.2f}x the critical path; first create to last "
            f"{_median(c['create_span_s']):.2f} s: {c['span_ratio']:.2f}x"
        )
    for name, ok in checks.items():
        print(f"{'PASS' if ok else 'FAIL'} {name}")
    print(f"({args.runs} runs, {os.cpu_count()} cores, {time.monotonic() - started:.0f} s)")
    print(speed_line(speed["before"], speed["after"]))
    print(trace.line())

    write_results(
        "engine",
        {
            "command": "bench/engine.py " + " ".join(sys.argv[1:]),
            "runs": args.runs,
            "cores": os.cpu_count(),
            "samples": {str(k): v for k, v in results.items()},
            "tables": {str(k): v for k, v in tables.items()},
            "critical_path": critical,
            "checks": checks,
            "machine_speed": speed,
        },
    )
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
