"""Peak memory (RSS) and CPU time of a process tree: a command and every process it starts.

As a library (``bench/engine.py`` imports it)::

    from bench.rss import peak_tree_rss, measure_tree
    code, peak = peak_tree_rss(["provision", "up", ...], env)         # bytes
    tree = measure_tree(cmd, env)       # the same, per process: tree.report()
    tree.cpu_s, tree.cpu_by_label()     # CPU-seconds: the whole tree's, and per kind

As a command, ``provision up`` of one pool against the fake clouds (the tree of issue 15's
"<= 250 MB for every stack": provision's process, which serves the Prefect resources' provider
too, the pulumi CLI, the cloud provider plugins — fakes here, Go binaries for users)::

    .venv/bin/python bench/rss.py gcp            # cloud-run-v2:push on the fake GCP
    .venv/bin/python bench/rss.py ecs            # ecs on the fake AWS (moto)
    .venv/bin/python bench/rss.py -- CMD [ARGS]  # any command

The tree is sampled every ``interval`` seconds (20 ms): every process whose parent chain leads
to the command's, its ``VmRSS`` from ``/proc/<pid>/status``, summed; a child not yet exec'd
counts nothing (its pages are its parent's: ``_tree_sample``). A process living less
than one interval can be missed, and a process that leaves the tree (a daemon re-parented to
init) is no longer counted. Linux only.

CPU time (user + system) is exact for the tree as a whole: the command's own resource usage
once it is reaped (``wait4``), which holds every descendant it and they waited for, as each
process of an ``up`` tree waits for its children. Per process it is the last sample's
(``/proc/<pid>/stat``): what a process spends in its last interval before it exits, or a
process living less than one interval, is in the whole but in no kind
(:attr:`TreeRss.unseen_cpu_s`).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

MB = 1024 * 1024


@dataclass
class Proc:
    """One process of the tree, as last seen."""

    pid: int
    label: str
    peak: int = 0
    """Its own highest RSS, bytes."""
    cpu: float = 0.0
    """Its CPU time (user + system) at the last sample, seconds."""


@dataclass
class TreeRss:
    """What :func:`measure_tree` saw."""

    returncode: int
    peak: int
    """The highest sum of the tree's RSS at one sample, bytes."""
    at_peak: dict[int, int] = field(default_factory=dict)
    """Each process's RSS in the sample of that peak (pid → bytes)."""
    procs: dict[int, Proc] = field(default_factory=dict)
    """Every process seen, with its own peak."""
    samples: int = 0
    seconds: float = 0.0
    """Wall time from start to exit (not rounded up to a sampling tick)."""
    cpu_s: float = 0.0
    """CPU time (user + system) of the whole tree, seconds: the command's own and every
    descendant's it waited for (its ``wait4`` resource usage)."""
    stdout: bytes = b""
    stderr: bytes = b""

    def by_label(self) -> dict[str, tuple[int, int, int]]:
        """Per kind of process: (how many, summed RSS at the tree's peak, highest own peak)."""
        out: dict[str, tuple[int, int, int]] = {}
        for pid, proc in self.procs.items():
            n, at, own = out.get(proc.label, (0, 0, 0))
            out[proc.label] = (n + 1, at + self.at_peak.get(pid, 0), max(own, proc.peak))
        return out

    def cpu_by_label(self) -> dict[str, float]:
        """CPU-seconds per kind of process, as last sampled (see :attr:`unseen_cpu_s`)."""
        out: dict[str, float] = {}
        for proc in self.procs.values():
            out[proc.label] = out.get(proc.label, 0.0) + proc.cpu
        return out

    @property
    def unseen_cpu_s(self) -> float:
        """The tree's CPU time that no sample saw (a process's last interval, or a process
        shorter than one): :attr:`cpu_s` less the sampled sum."""
        return max(0.0, self.cpu_s - sum(p.cpu for p in self.procs.values()))

    def report(self) -> str:
        """A table: the tree's peak and CPU time, then each kind of process."""
        lines = [
            f"peak tree RSS {self.peak / MB:7.1f} MB, CPU {self.cpu_s:.2f} s in "
            f"{self.seconds:.2f} s ({self.samples} samples)"
        ]
        cpu = self.cpu_by_label()
        lines.append(
            f"  {'process':44} {'n':>2} {'at peak MB':>10} {'own peak MB':>11} {'CPU s':>6}"
        )
        rows = sorted(self.by_label().items(), key=lambda kv: -kv[1][2])
        for label, (n, at, own) in rows:
            lines.append(f"  {label:44} {n:2d} {at / MB:10.1f} {own / MB:11.1f} {cpu[label]:6.2f}")
        lines.append(f"  {'(between samples)':44} {'':2} {'':10} {'':11} {self.unseen_cpu_s:6.2f}")
        return "\n".join(lines)


def peak_tree_rss(
    cmd: Sequence[str], env: Mapping[str, str], cwd: str | os.PathLike[str] | None = None
) -> tuple[int, int]:
    """Run ``cmd`` to completion and return (its exit code, the peak RSS of its process tree
    in bytes): the highest sum, over samples taken every ~20 ms, of the RSS of the process
    and all its descendants. Its output is discarded."""
    tree = measure_tree(cmd, env, cwd)
    return tree.returncode, tree.peak


def measure_tree(
    cmd: Sequence[str],
    env: Mapping[str, str],
    cwd: str | os.PathLike[str] | None = None,
    *,
    interval: float = 0.02,
    label: Callable[[list[str]], str] | None = None,
) -> TreeRss:
    """Run ``cmd`` to completion, sampling its process tree; see :class:`TreeRss`.

    ``label(cmdline)`` names a process in the per-kind table (default: :func:`process_label`).
    """
    name = label or process_label
    start = time.perf_counter()
    proc = subprocess.Popen(
        list(cmd),
        env=dict(env),
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    # Drained in threads: a child blocked on a full pipe would stall the measured run.
    outputs: dict[str, bytes] = {}
    readers = [
        threading.Thread(target=lambda k=k, s=s: outputs.__setitem__(k, s.read()), daemon=True)
        for k, s in (("stdout", proc.stdout), ("stderr", proc.stderr))
    ]
    for r in readers:
        r.start()
    tree = TreeRss(returncode=0, peak=0)
    # Reaped by a thread of its own as it exits, not by Popen: the wall time ends at the exit,
    # and the resource usage that comes with the reap is the whole tree's CPU time.
    exited = threading.Event()
    reaped: list[Any] = []

    def reap() -> None:
        try:
            _, status, usage = os.wait4(proc.pid, 0)
            reaped[:] = [time.perf_counter(), status, usage]
        finally:
            exited.set()  # even if it failed: the loop below must end

    threading.Thread(target=reap, daemon=True).start()
    while True:
        done = exited.is_set()
        sample, cpu, cmdlines = _tree_sample(proc.pid)
        tree.samples += 1
        for pid, rss in sample.items():
            seen = tree.procs.setdefault(pid, Proc(pid, "?"))
            # Read each time: a process may exec another program (a plugin's shell script).
            cmdline = cmdlines[pid]
            if cmdline:
                seen.label = name(cmdline)
            seen.peak = max(seen.peak, rss)
            seen.cpu = max(seen.cpu, cpu[pid])
        total = sum(sample.values())
        if total > tree.peak:
            tree.peak, tree.at_peak = total, sample
        if done:
            break
        exited.wait(interval)
    if not reaped:
        raise RuntimeError(f"could not reap {cmd[0]} (pid {proc.pid}): see the error above")
    ended, status, usage = reaped
    tree.seconds = ended - start
    tree.cpu_s = usage.ru_utime + usage.ru_stime
    proc.returncode = os.waitstatus_to_exitcode(status)
    for r in readers:
        r.join()
    tree.returncode = proc.returncode
    tree.stdout, tree.stderr = outputs.get("stdout", b""), outputs.get("stderr", b"")
    return tree


def process_label(cmdline: list[str]) -> str:
    """A short name for a process of an ``up`` tree, from its command line."""
    if not cmdline:
        return "?"
    text = " ".join(cmdline)
    if "tests.fakecloud." in text:
        return "fake provider " + text.split("tests.fakecloud.", 1)[1].split()[0]
    exe = os.path.basename(cmdline[0])
    if exe == "pulumi":
        return "pulumi CLI"
    if exe.startswith("pulumi-"):
        return exe
    if any(os.path.basename(a) == "provision" for a in cmdline[:2]):
        return "provision"
    if exe.startswith("python") and len(cmdline) > 1:
        return f"{exe} {os.path.basename(cmdline[1])}"
    return exe


_TICK = os.sysconf("SC_CLK_TCK")
"""Clock ticks per second: the unit of ``/proc/<pid>/stat``'s times."""


def _processes() -> tuple[dict[int, list[int]], dict[int, float]]:
    """Every process's children, and its CPU time so far (user + system, seconds), from one
    read of each ``/proc/<pid>/stat``."""
    kids: dict[int, list[int]] = {}
    cpu: dict[int, float] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue  # gone meanwhile
        # The command name (field 2) may hold spaces and parentheses: split after the last ')'.
        # Then field 4 is the parent, 14 and 15 the user and system time.
        fields = stat[stat.rindex(b")") + 2 :].split()
        pid = int(entry.name)
        kids.setdefault(int(fields[1]), []).append(pid)
        cpu[pid] = (int(fields[11]) + int(fields[12])) / _TICK
    return kids, cpu


def _tree_sample(root: int) -> tuple[dict[int, int], dict[int, float], dict[int, list[str]]]:
    """RSS (bytes), CPU time so far (seconds) and command line of ``root`` and its descendants
    now.

    A child still running its parent's program (forked, not yet exec'd: its command line is
    its parent's) counts 0 bytes: its pages are its parent's, shared (copy-on-write, or the
    very same ones after Go's ``clone(CLONE_VM)`` or Python's ``vfork``), and summing both
    would count them twice: the pulumi CLI starting a plugin looked like a second CLI.
    """
    kids, cpu = _processes()
    rss_by_pid: dict[int, int] = {}
    cmdlines: dict[int, list[str]] = {}
    todo: list[tuple[int, int | None]] = [(root, None)]
    while todo:
        pid, parent = todo.pop()
        rss = _rss(pid)
        if rss is not None:
            cmdline = _cmdline(pid)
            if parent is not None and cmdline and cmdline == cmdlines.get(parent):
                rss = 0
            rss_by_pid[pid], cmdlines[pid] = rss, cmdline
        todo.extend((kid, pid) for kid in kids.get(pid, ()))
    return rss_by_pid, {pid: cpu.get(pid, 0.0) for pid in rss_by_pid}, cmdlines


def _rss(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/status", "rb") as f:
            for line in f:
                if line.startswith(b"VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return 0  # a zombie has no VmRSS line


def _cmdline(pid: int) -> list[str]:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return [a.decode(errors="replace") for a in f.read().split(b"\0") if a]
    except OSError:
        return []


# -- the `up` scenarios ---------------------------------------------------------------------

ROOT = Path(__file__).resolve().parents[1]
SCENARIOS = {
    "gcp": ["--type", "cloud-run-v2:push", "--project", "bench-proj-1", "--region", "europe-west1"],
    "ecs": ["--type", "ecs", "--region", "eu-west-1"],
}
"""``up`` flags of each scenario. Push pools need Prefect Cloud: the GCP one gets the proxy
that makes the test server look like a Cloud workspace (``tests/prefect_cloud.py``)."""


def _scenario(name: str, runs: int) -> int:
    import secrets
    import tempfile

    sys.path.insert(0, str(ROOT))
    from bench.common import PROVISION, compile_bytecode
    from tests.fakecloud.harness import engine_env, require_pulumi_root
    from tests.prefect_server import PrefectServer

    compile_bytecode()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        server = PrefectServer(work / "prefect-server", startup_timeout=300)
        server.start()
        stack = contextlib.ExitStack()
        try:
            api_url = server.api_url
            extra: dict[str, str] = {}
            if name == "gcp":
                from tests.prefect_cloud import PrefectCloud

                cloud = stack.enter_context(PrefectCloud(server.api_url))
                api_url, extra = cloud.api_url, {"PREFECT_API_KEY": cloud.api_key}
            if name == "ecs":
                from tests.fakecloud.moto_server import (
                    ACCOUNT_ENV,
                    CREDENTIALS,
                    ENDPOINT_ENV,
                    MotoServer,
                    new_account,
                )

                moto = MotoServer().start()
                stack.callback(moto.stop)
                (work / "aws").mkdir()
                (work / "aws" / "config").write_text("")
                (work / "aws" / "credentials").write_text("")
                extra = {
                    **CREDENTIALS,
                    "AWS_CONFIG_FILE": str(work / "aws" / "config"),
                    "AWS_SHARED_CREDENTIALS_FILE": str(work / "aws" / "credentials"),
                    ENDPOINT_ENV: moto.endpoint,
                    ACCOUNT_ENV: new_account(),
                }
            for i in range(runs):
                box = work / f"run{i}"
                env = {
                    **{
                        k: v
                        for k, v in os.environ.items()
                        if not k.startswith(("PREFECT_", "PULUMI_", "AWS_"))
                    },
                    **engine_env(box),
                    "PROVISION_HOME": str(box / "home"),
                    "PROVISION_PULUMI_ROOT": str(require_pulumi_root()),
                    "PREFECT_API_URL": api_url,
                    "PREFECT_HOME": str(box / "prefect-home"),
                    "PULUMI_CONFIG_PASSPHRASE": secrets.token_urlsafe(24),
                    **extra,
                }
                pool = f"rss{name}{i}"
                tree = measure_tree([PROVISION, "up", pool, *SCENARIOS[name], "--yes"], env)
                if tree.returncode != 0:
                    print(tree.stderr.decode(errors="replace")[-2000:], file=sys.stderr)
                    return 1
                print(f"== provision up {pool} {' '.join(SCENARIOS[name])}  (run {i + 1})")
                print(tree.report())
        finally:
            stack.close()
            server.stop()
    return 0


def main() -> int:
    """Measure a scenario (``gcp``, ``ecs``) or the command after ``--``."""
    argv = sys.argv[1:]
    if "--" in argv:
        cmd = argv[argv.index("--") + 1 :]
        tree = measure_tree(cmd, os.environ)
        print(tree.report())
        return tree.returncode
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("scenario", choices=sorted(SCENARIOS))
    parser.add_argument("--runs", type=int, default=1)
    args = parser.parse_args(argv)
    return _scenario(args.scenario, args.runs)


if __name__ == "__main__":
    sys.exit(main())
