"""The benchmarks' helpers, without running a benchmark: a broken one fails CI here first."""

from __future__ import annotations

import http.client
import json
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from bench.engine import (
    PulumiShim,
    breakdown,
    dependency_depth,
    kind,
    measure,
    subcommand,
    summarize,
)
from bench.latency_proxy import LatencyProxy
from bench.rss import measure_tree, peak_tree_rss


class Echo(BaseHTTPRequestHandler):
    """Answers with what it got: method, path, body and one header."""

    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        answer = json.dumps(
            {
                "method": self.command,
                "path": self.path,
                "body": body.decode(),
                "account": self.headers.get("x-moto-account-id"),
                "host": self.headers.get("Host"),
            }
        ).encode()
        self.send_response(418)
        self.send_header("x-amzn-requestid", "req-1")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    do_GET = do_POST

    def log_message(self, *_: object) -> None:
        pass


@pytest.fixture
def upstream():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Echo)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_the_proxy_forwards_requests_unchanged_after_the_delay(upstream: str):
    with LatencyProxy(upstream, delay_ms=150) as proxy:
        port = int(proxy.endpoint.rsplit(":", 1)[1])
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        times = []
        for body in ("Action=ListUsers", "Action=GetUser"):  # two on one kept-alive connection
            start = time.perf_counter()
            conn.request("POST", "/?x=1", body=body, headers={"x-moto-account-id": "1234"})
            response = conn.getresponse()
            got = json.loads(response.read())
            times.append(time.perf_counter() - start)
        conn.close()
        assert response.status == 418
        assert response.getheader("x-amzn-requestid") == "req-1"
        assert got == {
            "method": "POST",
            "path": "/?x=1",
            "body": "Action=GetUser",
            "account": "1234",
            "host": f"127.0.0.1:{port}",  # the client's Host, as moto would see it
        }
        assert min(times) >= 0.15
        assert proxy.requests == 2


def test_concurrent_requests_wait_together(upstream: str):
    with LatencyProxy(upstream, delay_ms=300) as proxy:
        port = int(proxy.endpoint.rsplit(":", 1)[1])

        def get() -> None:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            conn.request("GET", "/")
            conn.getresponse().read()
            conn.close()

        start = time.perf_counter()
        threads = [threading.Thread(target=get) for _ in range(5)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert 0.3 <= time.perf_counter() - start < 1.2  # not 5 x 0.3 s
        assert proxy.requests == 5


def test_the_pulumi_shim_counts_invocations_and_runs_the_real_cli(tmp_path: Path):
    real = tmp_path / "real" / "bin" / "pulumi"
    real.parent.mkdir(parents=True)
    real.write_text('#!/bin/sh\necho "real pulumi: $*"\nexit 3\n')
    real.chmod(0o755)
    shim = PulumiShim(tmp_path / "shim", tmp_path / "real")
    assert shim.calls() == 0
    for args in (["version"], ["up", "--yes", "--stack", "a b"]):
        proc = subprocess.run(
            [str(shim.root / "bin" / "pulumi"), *args], capture_output=True, text=True
        )
        assert proc.returncode == 3
        assert proc.stdout == f"real pulumi: {' '.join(args)}\n"
    assert shim.calls() == 2
    assert [subcommand(a) for a in shim.invocations()] == ["version", "up"]
    assert subcommand("--non-interactive stack export --show-secrets --stack s") == "stack export"


def test_peak_rss_sums_the_whole_process_tree(tmp_path: Path):
    hold = "import time; x = bytearray(60 * 2**20); x[::4096] = b'1' * len(x[::4096]); "
    hold += "time.sleep(0.6)"
    child = f"import subprocess, sys; subprocess.run([sys.executable, '-c', {hold!r}])"
    # a child holding 60 MB under a parent that holds little: the tree's peak sees both
    code, peak = peak_tree_rss([sys.executable, "-c", child], env={}, cwd=tmp_path)
    assert code == 0
    assert 60 * 2**20 < peak < 400 * 2**20
    run = measure([sys.executable, "-c", "import sys; print('out'); sys.exit(5)"], env={})
    assert (run.returncode, run.output.strip()) == (5, "out")
    assert run.seconds > 0


def test_a_child_not_yet_execd_counts_nothing_its_pages_are_its_parents(tmp_path: Path):
    # A parent holding 80 MB forks a child that never execs (what a Go CLI's clone before it
    # execs a plugin is, for an instant): the child's VmRSS is the parent's pages again.
    code = (
        "import os, time\n"
        "x = bytearray(80 * 2**20); x[::4096] = b'1' * len(x[::4096])\n"
        "pid = os.fork()\n"
        "if pid == 0:\n    time.sleep(0.6); os._exit(0)\n"
        "os.waitpid(pid, 0)\n"
    )
    tree = measure_tree([sys.executable, "-c", code], env={}, cwd=tmp_path)
    assert tree.returncode == 0
    assert len(tree.procs) == 2  # the child was seen...
    parent = max(p.peak for p in tree.procs.values())
    assert parent > 80 * 2**20
    assert tree.peak < parent + 10 * 2**20  # ...and its shared pages were not counted again


def _burn(seconds: float) -> str:
    """Python code spending ``seconds`` of CPU time (not of wall time)."""
    return (
        f"import time\nend = time.process_time() + {seconds}\n"
        "while time.process_time() < end: pass\n"
    )


def _by_role(cmdline: list[str]) -> str:
    return "child" if cmdline[-1] == "child" else "parent"  # the child's last argument


def _run_child(code: str) -> str:
    """Parent code running ``code`` in a child Python process, labelled ``child``."""
    return f"subprocess.run([sys.executable, '-c', {code!r}, 'child'])\n"


def test_the_trees_cpu_time_is_exact_and_split_by_process(tmp_path: Path):
    parent = f"import subprocess, sys\n{_burn(0.2)}{_run_child(_burn(0.4))}"
    tree = measure_tree([sys.executable, "-c", parent], env={}, cwd=tmp_path, label=_by_role)
    assert tree.returncode == 0
    # The whole tree's CPU time comes from the parent's wait4, its child's included.
    assert 0.6 <= tree.cpu_s < 0.6 + 1.0
    cpu = tree.cpu_by_label()
    # Each process as last sampled: what ran after its last sample is in no kind.
    assert 0.4 / 2 <= cpu["child"] <= 0.4 + 0.3  # a busy machine may sample it late
    assert 0.2 - 0.05 <= cpu["parent"] <= 0.2 + 0.5
    assert sum(cpu.values()) + tree.unseen_cpu_s == pytest.approx(tree.cpu_s)
    assert "CPU" in tree.report() and "(between samples)" in tree.report()


def test_a_process_between_two_samples_counts_in_the_tree_only(tmp_path: Path):
    # A child that starts and ends between samples one second apart: no sample sees it.
    parent = f"import subprocess, sys, time\ntime.sleep(0.1)\n{_run_child(_burn(0.15))}"
    tree = measure_tree(
        [sys.executable, "-c", parent], env={}, cwd=tmp_path, interval=5.0, label=_by_role
    )
    assert "child" not in tree.cpu_by_label()
    assert tree.cpu_s >= 0.15
    assert tree.unseen_cpu_s >= 0.1
    assert tree.seconds < 5.0  # back as soon as the command ends, not at the next tick


def test_every_process_is_provision_the_cli_or_a_plugin():
    assert [kind(x) for x in ("provision", "pulumi CLI")] == ["provision", "pulumi CLI"]
    for other in ("fake provider aws", "pulumi-resource-gcp", "sh", "python3 x.py", "?"):
        assert kind(other) == "plugins"


def _sample(seconds: float, rss: float, cpu: dict[str, float], at_peak: dict[str, float]):
    return {
        "seconds": seconds,
        "peak_rss_mb": rss,
        "rss_at_peak_mb": at_peak,
        "cpu_s": sum(cpu.values()),
        "cpu_by_kind_s": cpu,
        "pulumi_cli": 2,
        "pulumi_cli_commands": ["up"],
        "aws_requests": None,
    }


def test_the_summary_takes_medians_of_cpu_and_the_worst_runs_memory():
    kinds = ("provision", "pulumi CLI", "plugins", "between samples")

    def cpu(*seconds: float) -> dict[str, float]:
        return dict(zip(kinds, seconds, strict=True))

    samples = [
        _sample(1.0, 300, cpu(0.5, 0.4, 0.3, 0.0), {"provision": 100}),
        _sample(0.9, 320, cpu(0.6, 0.5, 0.2, 0.1), {"provision": 90}),
        _sample(1.1, 310, cpu(0.4, 0.3, 0.4, 0.0), {"provision": 95}),
    ]
    row = summarize({"aws": {"up": samples}})["aws"]["up"]
    assert row["median_s"] == 1.0
    assert row["cpu_s"] == pytest.approx(1.2)
    assert row["cpu_by_kind_s"] == pytest.approx(cpu(0.5, 0.4, 0.3, 0.0))
    assert list(row["cpu_by_kind_s"]) == list(kinds)  # the kinds first, the rest after
    # The memory of the run with the highest peak, not medians of unrelated samples.
    assert (row["peak_rss_mb"], row["rss_at_peak_mb"]) == (320, {"provision": 90})
    lines = breakdown({"aws": {"up": row}}, cores=2)
    assert lines[0].startswith("aws   up        CPU 1.20 s = provision 0.50 + pulumi CLI 0.40")
    assert "60% of 2 cores over 1.00 s" in lines[0]
    assert lines[1] == "aws   up        RSS at peak 320 MB = provision 90"


def test_a_previews_start_up_is_its_median_less_the_warm_api_calls():
    cpu = {"provision": 0.5}
    previews = [
        {**_sample(0.90, 280, cpu, {}), "warm_s": [0.60, 0.64]},
        {**_sample(0.95, 280, cpu, {}), "warm_s": [0.62, 0.70]},
        {**_sample(0.91, 280, cpu, {}), "warm_s": [0.58, 0.66]},
    ]
    table = summarize({"aws": {"preview": previews, "up": [_sample(2.0, 300, cpu, {})]}})
    # The median of every warm call of every run, not of each run's medians.
    assert table["aws"]["preview"]["warm_median_s"] == pytest.approx(0.63)
    assert "warm_median_s" not in table["aws"]["up"]
    lines = breakdown(table, cores=2)
    assert lines[1] == (
        "aws   preview   0.63 s as a later call of the Python API in one process: "
        "start-up 0.28 s of the command"
    )
    assert not any("Python API" in line for line in lines[2:])


def _res(name: str, kind: str, *deps: str, parent: str = "", custom: bool = True) -> dict:
    return {
        "urn": name,
        "type": kind,
        "custom": custom,
        "parent": parent,
        "dependencies": list(deps),
    }


def test_dependency_depth_counts_cloud_resources_and_expands_components():
    resources = [
        _res("stack", "pulumi:pulumi:Stack", custom=False),
        _res("provider", "pulumi:providers:gcp", parent="stack"),
        _res("pool", "provision:gcp:Pool", parent="stack", custom=False),
        _res("service", "gcp:projects/service:Service", parent="pool"),
        _res("account", "gcp:serviceaccount/account:Account", "service", parent="pool"),
        _res("key", "gcp:serviceaccount/key:Key", "account", parent="pool"),
        _res("grant", "gcp:projects/iAMMember:IAMMember", "account", parent="pool"),
        # depends on the component: waits for everything under it (depth 3 so far)
        _res("after", "aws:sqs/queue:Queue", "pool", parent="stack"),
        _res("prefect", "pulumi-nodejs:dynamic:Resource", "after", parent="stack"),
    ]
    assert dependency_depth(resources) == 4
    assert dependency_depth(resources[:5]) == 2
    assert dependency_depth([]) == 0


def test_prefects_side_gets_a_template_and_a_console_that_never_prompts():
    from bench.peer import _bundled_ecs_template, _prefect_console

    variables = _bundled_ecs_template()["variables"]["properties"]
    # what the ECS provisioner writes into the template
    assert {"aws_credentials", "cluster", "vpc_id", "execution_role_arn"} <= set(variables)
    assert _prefect_console().is_interactive is False


def test_machine_speed_times_each_kind_of_work():
    from bench.common import machine_speed

    speed = machine_speed(repeat=1)
    assert set(speed) == {"python_loop_ms", "import_ms", "pbkdf2_ms"}
    # Real work was timed: none is a constant or a skipped measurement.
    assert all(value > 1.0 for value in speed.values())


def test_the_speed_line_names_each_gauge_before_and_after():
    from bench.common import speed_line

    before = {"python_loop_ms": 74.0, "import_ms": 41.2, "pbkdf2_ms": 310.0}
    after = {"python_loop_ms": 120.4, "import_ms": 66.0, "pbkdf2_ms": 480.9}
    assert speed_line(before, after) == (
        "machine: Python loop 74 ms before, 120 ms after; bytecode load 41 ms, 66 ms; "
        "PBKDF2 310 ms, 481 ms (bench/common.py machine_speed)"
    )


def test_core_speeds_time_the_loop_on_every_core_and_leave_the_affinity_as_it_was():
    import os

    from bench.common import core_speeds

    allowed = os.sched_getaffinity(0)
    speeds = core_speeds(iterations=20_000)
    assert set(speeds) == {str(cpu) for cpu in allowed}
    # In the 2,000,000-iteration loop's units: 100x what 20,000 iterations took, never 0.
    assert all(ms > 1.0 for ms in speeds.values())
    assert os.sched_getaffinity(0) == allowed


def test_a_speed_trace_summarises_each_core_over_its_probes():
    from bench.common import SpeedTrace

    trace = SpeedTrace(
        samples=[{"0": 70.0, "1": 130.0}, {"0": 68.0, "1": 120.0}, {"0": 140.0, "1": 118.0}]
    )
    assert trace.summary() == {
        "0": {"median_ms": 70.0, "min_ms": 68.0, "max_ms": 140.0, "probes": 3},
        "1": {"median_ms": 120.0, "min_ms": 118.0, "max_ms": 130.0, "probes": 3},
    }
    assert trace.line() == (
        "machine during the runs: Python loop per core, probed before each command: "
        "core 0 70 ms median (68-140); core 1 120 ms median (118-130) "
        "(bench/common.py core_speeds)"
    )
    probe = SpeedTrace().sample()  # a real probe of every core
    assert probe and all(ms > 1.0 for ms in probe.values())
