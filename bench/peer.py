"""``provision up --type ecs`` against Prefect's own ECS provisioner: same emulated AWS and latency.

    .venv/bin/python bench/peer.py [--runs 3] [--latency 0,200]

Prefect's side is what ``prefect work-pool create POOL --type ecs:push --provision-infra``
runs: ``ElasticContainerServicePushProvisioner().provision(work_pool_name=POOL,
base_job_template=...)`` then ``create_work_pool`` (``overwrite`` on a rerun, as
``--overwrite`` does). Push pool types exist only on Prefect Cloud, so the CLI refuses them on
a self-hosted server; this script's ``--prefect-child`` mode makes those calls itself, in a
process of its own (its wall time counts the interpreter and Prefect's imports, as the CLI's
would), with:

  - the base job template: the ``ecs`` one Prefect bundles
    (``prefect/server/api/collections_data``), the pool created as type ``ecs``;
  - a non-interactive rich console (``force_interactive=False``): the provisioner then prints
    its plan and proceeds without a prompt, as ``--no-prompt`` or no TTY does;
  - boto3's default session pointed at the proxy (``AWS_ENDPOINT_URL``), in the run's account;
  - ``docker login`` answered by a no-op ``docker`` on PATH (there is no registry to log in
    to; a real login would only add to Prefect's time).

Ours: ``provision up POOL --type ecs --region eu-west-1 --yes``, the same command twice (the
real pulumi engine, the fake ``aws`` provider). Both talk to the same moto server through the
same loopback latency proxy (``bench/latency_proxy.py``: every AWS request waits ``--latency``
ms, counted per run), and to the same real Prefect server. Every run gets a fresh moto account
(fresh AWS state) whose default VPC is removed first, so both tools build a network: Prefect
makes a VPC, an internet gateway, 3 subnets, a route and a security group only when no default
VPC exists (``--keep-default-vpc`` measures the other case). What each made is inventoried
once and written with the results: Prefect makes an execution role, a user, a policy, an access
key, a cluster, the network, an ECR repository, a block and the pool; ours also a log group, a
task-events queue and its dead-letter queue with an event rule (the ECS worker's observer), and
tags.

Runs are interleaved (each round: every latency, both tools, their order alternating), after
one untimed warm-up round; reported are medians of ``--runs`` rounds and ours / Prefect's.
Targets: at 200 ms, first run <= 0.6x and no-op rerun <= 0.5x; at 0 ms, first run <= 1.3x.
Prints a table, writes ``bench/results/peer.json``, exits 1 when a target is missed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import statistics
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import PROVISION, compile_bytecode, write_results  # noqa: E402
from bench.engine import (  # noqa: E402
    REGION_AWS,
    PulumiShim,
    measure,
    run_env,
    world_env,
)
from bench.latency_proxy import LatencyProxy  # noqa: E402

TOOLS = ("provision", "prefect")
TARGETS = {(200, "first"): 0.6, (200, "rerun"): 0.5, (0, "first"): 1.3}


def _bundled_ecs_template() -> dict[str, Any]:
    """The ``ecs`` base job template Prefect ships (what a self-hosted server serves)."""
    import prefect

    path = (
        Path(prefect.__file__).parent
        / "server/api/collections_data/views/aggregate-worker-metadata.json"
    )
    return json.loads(path.read_text())["prefect-aws"]["ecs"]["default_base_job_configuration"]


def _prefect_console() -> Any:
    """A console that is not interactive: the provisioner then never asks to confirm."""
    from rich.console import Console

    return Console(force_interactive=False, force_terminal=False, width=120)


async def _prefect_create(pool: str) -> None:
    """``prefect work-pool create POOL --type ecs:push --provision-infra [--overwrite]``."""
    import boto3
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.exceptions import ObjectNotFound
    from prefect.infrastructure.provisioners.ecs import ElasticContainerServicePushProvisioner

    from tests.fakecloud.moto_server import ACCOUNT_ENV, add_account_header

    boto3.setup_default_session()
    add_account_header(boto3.DEFAULT_SESSION, os.environ[ACCOUNT_ENV])
    async with get_client() as client:
        try:
            existing = await client.read_work_pool(work_pool_name=pool)
        except ObjectNotFound:
            existing = None
        provisioner = ElasticContainerServicePushProvisioner()
        provisioner.console = _prefect_console()
        template = await provisioner.provision(
            work_pool_name=pool, base_job_template=_bundled_ecs_template()
        )
        await client.create_work_pool(
            work_pool=WorkPoolCreate(name=pool, type="ecs", base_job_template=template),
            overwrite=existing is not None,
        )


def remove_default_vpc(endpoint: str, account: str, region: str) -> None:
    """Delete the account's default VPC (its subnets and gateway first), straight to moto."""
    from tests.fakecloud.moto_server import client

    ec2 = client("ec2", endpoint, account, region)
    for vpc in ec2.describe_vpcs(Filters=[{"Name": "isDefault", "Values": ["true"]}])["Vpcs"]:
        by_vpc = [{"Name": "vpc-id", "Values": [vpc["VpcId"]]}]
        for subnet in ec2.describe_subnets(Filters=by_vpc)["Subnets"]:
            ec2.delete_subnet(SubnetId=subnet["SubnetId"])
        attached = [{"Name": "attachment.vpc-id", "Values": [vpc["VpcId"]]}]
        for gateway in ec2.describe_internet_gateways(Filters=attached)["InternetGateways"]:
            gid = gateway["InternetGatewayId"]
            ec2.detach_internet_gateway(InternetGatewayId=gid, VpcId=vpc["VpcId"])
            ec2.delete_internet_gateway(InternetGatewayId=gid)
        ec2.delete_vpc(VpcId=vpc["VpcId"])


def inventory(endpoint: str, account: str, region: str) -> dict[str, int]:
    """How many objects of each kind the account holds (AWS's own defaults left out)."""
    from tests.fakecloud.moto_server import client

    def c(service: str) -> Any:
        return client(service, endpoint, account, region)

    iam, ec2 = c("iam"), c("ec2")
    return {
        "iam roles": sum(
            not r["RoleName"].startswith("AWSServiceRole") for r in iam.list_roles()["Roles"]
        ),
        "iam users": len(iam.list_users()["Users"]),
        "iam policies": len(iam.list_policies(Scope="Local")["Policies"]),
        "access keys": sum(
            len(iam.list_access_keys(UserName=u["UserName"])["AccessKeyMetadata"])
            for u in iam.list_users()["Users"]
        ),
        "ecs clusters": len(c("ecs").list_clusters()["clusterArns"]),
        "vpcs": len(ec2.describe_vpcs()["Vpcs"]),
        "subnets": len(ec2.describe_subnets()["Subnets"]),
        "internet gateways": len(ec2.describe_internet_gateways()["InternetGateways"]),
        "security groups": sum(
            g["GroupName"] != "default" for g in ec2.describe_security_groups()["SecurityGroups"]
        ),
        "ecr repositories": len(c("ecr").describe_repositories()["repositories"]),
        "log groups": len(c("logs").describe_log_groups()["logGroups"]),
        "sqs queues": len(c("sqs").list_queues().get("QueueUrls", [])),
        "event rules": len(c("events").list_rules()["Rules"]),
    }


def _docker_shim(directory: Path) -> Path:
    """A ``docker`` that accepts ``docker login`` and does nothing."""
    directory.mkdir(parents=True, exist_ok=True)
    docker = directory / "docker"
    docker.write_text("#!/bin/sh\nexit 0\n")
    docker.chmod(0o755)
    return directory


class Peer:
    """Runs one tool's first run and rerun in a fresh account."""

    def __init__(self, root: Path, base: dict[str, str], moto_endpoint: str, shim: PulumiShim):
        self.root, self.base, self.moto, self.shim = root, base, moto_endpoint, shim
        self.docker = _docker_shim(root / "docker-shim")
        self.keep_default_vpc = False
        self.inventories: dict[str, dict[str, int]] = {}

    def _account(self) -> str:
        from tests.fakecloud.moto_server import new_account

        account = new_account()
        if not self.keep_default_vpc:
            remove_default_vpc(self.moto, account, REGION_AWS)
        return account

    def _timed(self, cmd: list[str], env: Mapping[str, str], proxy: LatencyProxy) -> dict:
        before = proxy.requests
        run = measure(cmd, env)
        if run.returncode != 0:
            raise SystemExit(f"{' '.join(cmd)} exited {run.returncode}:\n{run.output}")
        return {
            "seconds": run.seconds,
            "peak_rss_mb": run.peak_bytes / 2**20,
            "aws_requests": proxy.requests - before,
        }

    def run(self, tool: str, proxy: LatencyProxy, tag: str) -> dict[str, dict]:
        """First run and no-op rerun of ``tool`` in a fresh account behind ``proxy``."""
        from tests.fakecloud.moto_server import ACCOUNT_ENV, CREDENTIALS, ENDPOINT_ENV

        account = self._account()
        pool = "bench" + secrets.token_hex(3)
        workdir = self.root / "runs" / tag
        if tool == "provision":
            extra = {**CREDENTIALS, ENDPOINT_ENV: proxy.endpoint, ACCOUNT_ENV: account}
            env = run_env(self.base, workdir, self.root / "pulumi-home", extra)
            cmd = [PROVISION, "up", pool, "--type", "ecs", "--region", REGION_AWS, "--yes"]
        else:
            env = {
                **self.base,
                **CREDENTIALS,
                "AWS_ENDPOINT_URL": proxy.endpoint,
                "AWS_DEFAULT_REGION": REGION_AWS,
                ACCOUNT_ENV: account,
                "PREFECT_HOME": str(workdir / "prefect-home"),
                "PATH": os.pathsep.join([str(self.docker), self.base.get("PATH", "")]),
            }
            cmd = [sys.executable, __file__, "--prefect-child", pool]
        result = {"first": self._timed(cmd, env, proxy), "rerun": self._timed(cmd, env, proxy)}
        if tool not in self.inventories:
            self.inventories[tool] = inventory(self.moto, account, REGION_AWS)
        return result


def main() -> int:
    """Run the benchmark and print a table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--latency", default="0,200", help="ms per AWS request, comma-separated")
    parser.add_argument("--keep-default-vpc", action="store_true")
    parser.add_argument("--prefect-child", metavar="POOL", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.prefect_child:  # timed as Prefect's run: nothing of ours before it
        asyncio.run(_prefect_create(args.prefect_child))
        return 0
    compile_bytecode()

    from tests.fakecloud.harness import require_pulumi_root
    from tests.fakecloud.moto_server import MotoServer
    from tests.prefect_server import PrefectServer

    latencies = [int(x) for x in args.latency.split(",")]
    started = time.monotonic()
    samples: dict[int, dict[str, dict[str, list[dict]]]] = {
        lat: {tool: {"first": [], "rerun": []} for tool in TOOLS} for lat in latencies
    }
    with tempfile.TemporaryDirectory(prefix="provision-bench-") as tmp:
        root = Path(tmp)
        prefect = PrefectServer(root / "prefect")
        moto = MotoServer().start()
        proxies = {lat: LatencyProxy(moto.endpoint, lat).start() for lat in latencies}
        prefect.start()
        try:
            shim = PulumiShim(root / "pulumi-shim", require_pulumi_root())
            (root / "pulumi-home").mkdir()
            peer = Peer(root, world_env(root, prefect.api_url, shim.root), moto.endpoint, shim)
            peer.keep_default_vpc = args.keep_default_vpc
            for tool in TOOLS:  # warm-up: page cache, plugins; and the inventories
                peer.run(tool, proxies[min(latencies)], f"warm-{tool}")
            for i in range(args.runs):
                for latency in latencies:
                    for tool in TOOLS if i % 2 == 0 else reversed(TOOLS):
                        got = peer.run(tool, proxies[latency], f"{latency}ms-{tool}-{i}")
                        for kind, sample in got.items():
                            samples[latency][tool][kind].append(sample)
                        print(
                            f"  {latency} ms {tool}: first {got['first']['seconds']:.2f} s, "
                            f"rerun {got['rerun']['seconds']:.2f} s",
                            flush=True,
                        )
        finally:
            prefect.stop()
            for proxy in proxies.values():
                proxy.stop()
            moto.stop()

    def med(latency: int, tool: str, kind: str, key: str = "seconds") -> float:
        return statistics.median(s[key] for s in samples[latency][tool][kind])

    table = []
    for latency in latencies:
        for kind in ("first", "rerun"):
            ours, theirs = med(latency, "provision", kind), med(latency, "prefect", kind)
            target = TARGETS.get((latency, kind))
            table.append(
                {
                    "latency_ms": latency,
                    "run": kind,
                    "provision_s": ours,
                    "prefect_s": theirs,
                    "ratio": ours / theirs,
                    "target": target,
                    "ok": None if target is None else ours / theirs <= target,
                    "provision_aws_requests": med(latency, "provision", kind, "aws_requests"),
                    "prefect_aws_requests": med(latency, "prefect", kind, "aws_requests"),
                    "provision_peak_rss_mb": med(latency, "provision", kind, "peak_rss_mb"),
                    "prefect_peak_rss_mb": med(latency, "prefect", kind, "peak_rss_mb"),
                }
            )

    print(
        f"{'latency':>7} {'run':6} {'provision s':>11} {'prefect s':>9} {'ratio':>6} "
        f"{'target':>7} {'AWS requests':>13} {'RSS MB':>9}"
    )
    print(f"{'(provision/prefect)':>70}")
    for row in table:
        target = "" if row["target"] is None else f"<={row['target']}"
        verdict = "" if row["ok"] is None else ("PASS" if row["ok"] else "FAIL")
        print(
            f"{row['latency_ms']:>5}ms {row['run']:6} {row['provision_s']:11.2f} "
            f"{row['prefect_s']:9.2f} {row['ratio']:6.2f} {target:>7} "
            f"{row['provision_aws_requests']:6.0f}/{row['prefect_aws_requests']:<6.0f} "
            f"{row['provision_peak_rss_mb']:4.0f}/{row['prefect_peak_rss_mb']:<4.0f} {verdict}"
        )
    for tool, counts in peer.inventories.items():
        print(f"{tool} made: " + ", ".join(f"{n} {k}" for k, n in counts.items() if n))
    print(
        f"({args.runs} interleaved runs, {os.cpu_count()} cores, "
        f"{time.monotonic() - started:.0f} s)"
    )

    write_results(
        "peer",
        {
            "command": "bench/peer.py " + " ".join(sys.argv[1:]),
            "runs": args.runs,
            "cores": os.cpu_count(),
            "default_vpc_removed": not args.keep_default_vpc,
            "table": table,
            "inventories": peer.inventories,
            "samples": {str(k): v for k, v in samples.items()},
        },
    )
    return 0 if all(row["ok"] is not False for row in table) else 1


if __name__ == "__main__":
    raise SystemExit(main())
