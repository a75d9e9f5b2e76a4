"""The background import of a program's modules: what it loads, and that programs wait for it."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from provision import preload
from provision.registry import pool_type, target


def _run(code: str) -> str:
    """``code`` in a fresh interpreter (nothing imported yet), its stdout."""
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout


def test_a_stack_module_is_loaded_with_only_the_sdk_modules_it_declares():
    # The preload imports the stack module on a thread; its SDK modules come with it
    # (stacks/sdk_modules.py), and no whole service package (thread-safe: no lazy module left
    # for the program to finish).
    out = _run(
        """
        import sys
        from provision import preload
        from stacks import sdk_modules
        preload.start(["stacks.aws_ecs"])
        preload.wait()
        print("stacks.aws_ecs" in sys.modules, "pulumi_aws.ec2.vpc" in sys.modules)
        print("pulumi_aws.ec2.instance" in sys.modules, sdk_modules.completed)
        """
    )
    assert out.split() == ["True", "True", "False", "{}"]


def test_deferred_engine_parts_are_loaded_on_the_callers_thread_first():
    # The console script defers them (stacks/sdk_modules.py); the engine's next calls use
    # them, and loading them on the preload's thread while this one uses them would race.
    out = _run(
        """
        import os, sys, threading
        from stacks import sdk_modules
        sdk_modules.defer_pulumi_parts(os.environ)
        loaded_on = []
        real = sdk_modules._complete
        def complete(package, wanted):
            loaded_on.append((package.__name__, threading.current_thread().name))
            real(package, wanted)
        sdk_modules._complete = complete
        from provision import preload
        preload.start(["provision.engine_stack"])
        preload.wait()
        print(loaded_on, type(sys.modules["pulumi.automation"]).__name__)
        """
    )
    assert out.split("\n")[0] == (
        "[('grpc', 'MainThread'), ('grpc.aio', 'MainThread'), "
        "('pulumi.automation', 'MainThread'), ('pulumi.dynamic', 'MainThread')] module"
    )


def test_a_failed_import_is_left_to_the_program():
    preload.start(["no_such_module_here"])
    preload.wait()  # returns: the program's own import reports it


def test_each_cloud_target_names_its_stack_modules():
    gcp = target(pool_type("cloud-run-v2").target)
    assert gcp.program_modules == ("stacks.gcp_cloud_run",)
    assert gcp.worker_modules == ("stacks.gcp_worker",)
    assert target(pool_type("ecs").target).program_modules == ("stacks.aws_ecs",)
    assert target(pool_type("modal:push").target).program_modules == ()


def test_a_wait_on_another_thread_never_joins_a_preload_not_started_yet(monkeypatch):
    # The API plans pools on several threads: one may wait while another starts a preload.
    # A thread listed before it had started made that wait fail ("cannot join thread before
    # it is started"); a slow start makes the window wide.
    import threading
    import time

    real_start = threading.Thread.start
    waited: list[BaseException | None] = []

    def slow_start(self):
        if self.name == "provision-preload":
            waiter = threading.Thread(target=lambda: waited.append(_wait_error()))
            waiter.start()
            time.sleep(0.2)
            real_start(self)
            waiter.join()
        else:
            real_start(self)

    monkeypatch.setattr(threading.Thread, "start", slow_start)
    preload.start(["json"])
    preload.wait()
    assert waited == [None]


def _wait_error() -> BaseException | None:
    try:
        preload.wait()
    except BaseException as exc:  # what the waiting thread would have died of
        return exc
    return None
