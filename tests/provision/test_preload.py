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


def test_the_stack_modules_lazy_submodules_are_loaded_fully():
    out = _run(
        """
        import sys
        from provision import preload
        preload.start(["stacks.gcp_cloud_run"])
        preload.wait()
        def lazy(name):
            return type(sys.modules[name]).__name__ == "_LazyModule"
        # What the stack module uses is loaded; the rest of the SDK stays lazy.
        print(lazy("pulumi_gcp.artifactregistry"), lazy("pulumi_gcp.serviceaccount"))
        print(lazy("pulumi_gcp.bigquery"))
        """
    )
    assert out.split() == ["False", "False", "True"]


def test_an_attribute_of_a_package_the_code_names_is_loaded():
    # stacks/aws_ecs.py does `import pulumi_aws as aws` and names `aws.ec2.Vpc` in its code.
    out = _run(
        """
        import sys
        from provision import preload
        preload.start(["stacks.aws_ecs"])
        preload.wait()
        print(type(sys.modules["pulumi_aws.ec2"]).__name__)
        """
    )
    assert out.strip() == "module"


def test_a_failed_import_is_left_to_the_program():
    preload.start(["no_such_module_here"])
    preload.wait()  # returns: the program's own import reports it


def test_each_cloud_target_names_its_stack_modules():
    gcp = target(pool_type("cloud-run-v2").target)
    assert gcp.program_modules == ("stacks.gcp_cloud_run",)
    assert gcp.worker_modules == ("stacks.gcp_worker",)
    assert target(pool_type("ecs").target).program_modules == ("stacks.aws_ecs",)
    assert target(pool_type("modal:push").target).program_modules == ()
