"""The CI recipe (docs/ci.md) runs as written: examples/github-actions.yml's own scripts.

The workflow file is the source: the test reads its jobs, matrix, ``env:`` maps and ``run:``
scripts with yaml and runs those scripts with bash as a GitHub runner would, on a fresh
machine that shares only the team's backend and secrets with the machine that made the pool.
Only the steps that use actions (checkout, setup-python, cloud sign-in, upload) are not run:
the harness stands in for them (the venv's ``provision``, the fake clouds' credentials).
No network, no GitHub.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.e2e.conftest import Run, Sandbox, share_backend, sign_in_everywhere

pytestmark = pytest.mark.e2e

WORKFLOW = Path(__file__).resolve().parents[2] / "examples" / "github-actions.yml"
EXAMPLE = WORKFLOW.with_name("provision.toml")
SECRETS = ("PULUMI_BACKEND_URL", "PULUMI_CONFIG_PASSPHRASE", "PREFECT_API_URL", "PREFECT_API_KEY")
EXPRESSION = re.compile(r"\$\{\{\s*(\w+)\.([\w-]+)\s*\}\}")


def load_workflow() -> dict[str, Any]:
    """The workflow as GitHub reads it (YAML 1.1 turns the ``on`` key into True)."""
    workflow = yaml.safe_load(WORKFLOW.read_text())
    if True in workflow:
        workflow["on"] = workflow.pop(True)
    return workflow


def step(job: dict[str, Any], *, id_: str | None = None, running: str | None = None) -> dict:
    """The job's one step with this ``id``, or whose ``run:`` contains ``running``."""
    found = [
        s
        for s in job["steps"]
        if (id_ is not None and s.get("id") == id_)
        or (running is not None and running in s.get("run", ""))
    ]
    assert len(found) == 1, f"expected one step for {id_ or running!r}, found {len(found)}"
    return found[0]


def shell_args(workflow: dict[str, Any], job: dict[str, Any], the_step: dict[str, Any]) -> list:
    """How GitHub's ubuntu runner starts a ``run:`` script: ``bash -e {0}`` by default, and
    ``bash --noprofile --norc -eo pipefail {0}`` when ``shell: bash`` is explicit."""
    shell = (
        the_step.get("shell")
        or job.get("defaults", {}).get("run", {}).get("shell")
        or workflow.get("defaults", {}).get("run", {}).get("shell")
    )
    assert shell in (None, "bash"), f"the test knows bash only, not {shell!r}"
    return ["bash", "-e"] if shell is None else ["bash", "--noprofile", "--norc", "-eo", "pipefail"]


def step_env(
    workflow: dict[str, Any], job: dict[str, Any], the_step: dict[str, Any], **contexts: dict
) -> dict[str, str]:
    """The ``env:`` the step gets (workflow, then job, then step), expressions resolved from
    ``contexts`` (``secrets``, ``matrix``, ``inputs``).

    A value that is not a plain ``${{ context.name }}`` is left out, and the script must not
    read it: the test runs only what it can resolve exactly.
    """
    env: dict[str, str] = {}
    for layer in (workflow.get("env", {}), job.get("env", {}), the_step.get("env", {})):
        for name, value in layer.items():
            value = str(value)
            match = EXPRESSION.fullmatch(value.strip())
            if match:
                env[name] = str(contexts[match[1]][match[2]])
            elif "${{" not in value:
                env[name] = value
            else:
                assert not re.search(rf"\${name}\b|\${{{name}}}", the_step["run"]), name
    return env


class Runner:
    """Fresh GitHub-hosted runners sharing only the team's backend and the fake clouds."""

    def __init__(self, alice: Sandbox, pools_file: str) -> None:
        self.alice = alice
        self.pools_file = pools_file
        """The repository's provision.toml, which ``actions/checkout`` would bring."""
        self.count = 0

    def run(
        self, workflow: dict[str, Any], job: dict[str, Any], the_step: dict[str, Any], **ctx: dict
    ) -> tuple[Run, Path, dict[str, str]]:
        """Run one step's script on a new runner; returns the run, its workspace and the
        step's ``GITHUB_OUTPUT`` values."""
        self.count += 1
        machine = self.alice.machine(f"ci-runner-{self.count}")
        workspace = self.alice.root / f"ci-runner-{self.count}" / "workspace"
        workspace.mkdir(parents=True)
        (workspace / "provision.toml").write_text(self.pools_file)
        home = workspace.parent / "home"
        home.mkdir()
        files = {"GITHUB_OUTPUT": workspace.parent / "output", "GITHUB_STEP_SUMMARY": home / "sum"}
        for path in files.values():
            path.touch()
        # The machine's own copies of the team settings go: the workflow's env must bring them.
        base = {k: v for k, v in machine.env.items() if k not in SECRETS}
        env = {
            **base,
            # The venv's command stands in for `pip install prefect-provision`.
            "PATH": f"{Path(sys.executable).parent}:{base['PATH']}",
            "HOME": str(home),
            "CI": "true",
            "GITHUB_ACTIONS": "true",
            **{k: str(v) for k, v in files.items()},
            **step_env(workflow, job, the_step, **ctx),
        }
        script = workspace.parent / "step.sh"
        script.write_text(the_step["run"])
        proc = subprocess.run(
            [*shell_args(workflow, job, the_step), str(script)],
            cwd=workspace,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
            stdin=subprocess.DEVNULL,
        )
        # Recorded with the sandbox's runs, so its leak scan reads this output too.
        run = Run(["bash", the_step.get("name", "step")], proc.returncode, proc.stdout, proc.stderr)
        self.alice.runs.append(run)
        outputs = dict(
            line.split("=", 1) for line in files["GITHUB_OUTPUT"].read_text().splitlines() if line
        )
        return run, workspace, outputs


def test_the_workflow_is_the_recipe_the_docs_describe():
    workflow = load_workflow()
    assert set(workflow["on"]) == {"pull_request", "workflow_dispatch"}
    preview, apply = workflow["jobs"]["preview"], workflow["jobs"]["apply"]
    assert workflow["on"]["workflow_dispatch"]["inputs"]["prune"]["type"] == "boolean"
    # Forks get no secrets: the check runs for the repository's own branches only.
    assert "head.repo.full_name == github.repository" in preview["if"]

    # The pools are the repository's file: both jobs check it out and pass it.
    script = step(preview, id_="preview")["run"]
    assert (
        "provision preview -f provision.toml --refresh --json --expect-no-changes > plan.json"
        in script
    )
    uploads = [s for s in preview["steps"] if s.get("uses", "").startswith("actions/upload-")]
    (upload,) = uploads
    assert upload["if"] == "always()"  # a failed check still leaves its plan to read
    assert upload["with"]["path"] == "plan.json"

    # The apply job is manual and gated by an environment (required reviewers live there).
    assert apply["if"] == "github.event_name == 'workflow_dispatch'"
    assert apply["environment"]
    assert "provision up -f provision.toml --refresh" in step(apply, running="provision up")["run"]

    # Secrets reach the scripts through env, never pasted into a script (no injection).
    for job in (preview, apply):
        for s in job["steps"]:
            assert "${{" not in s.get("run", "")
        uses = {s["uses"].split("@")[0] for s in job["steps"] if "uses" in s}
        assert {
            "actions/checkout",
            "pulumi/actions",
            "aws-actions/configure-aws-credentials",
            "google-github-actions/auth",
            "azure/login",
        } <= uses
        provision_steps = [s for s in job["steps"] if "provision " in s.get("run", "")]
        for s in provision_steps:
            assert {k: s["env"][k] for k in SECRETS} == {
                k: f"${{{{ secrets.{k} }}}}" for k in SECRETS
            }
    assert workflow["permissions"]["id-token"] == "write"  # OIDC to the clouds
    # The example file is one the tool accepts, with pools on every cloud.
    from provision.pools_file import load

    example = load(EXAMPLE)
    assert {p.type for p in example.pools} == {"cloud-run-v2", "ecs", "azure-container-instance"}


def test_the_preview_job_passes_fails_on_drift_and_the_apply_job_repairs_it(
    sandbox: Sandbox, moto_server, s3_backend
):
    workflow = load_workflow()
    preview, apply = workflow["jobs"]["preview"], workflow["jobs"]["apply"]
    check, summarize = step(preview, id_="preview"), step(preview, running="GITHUB_STEP_SUMMARY")
    repair = step(apply, running="provision up")
    secrets = {k: sandbox.env[k] for k in SECRETS if k != "PULUMI_BACKEND_URL"}
    secrets["PULUMI_BACKEND_URL"] = s3_backend.url
    # The team's file, pools on all three clouds (checkout stands in: it is in the workspace).
    tag = re.sub(r"[^a-z0-9]", "", sandbox.root.name)[-6:]
    pools_file = EXAMPLE.read_text().replace("etl-", f"ci{tag}-")
    names = [p.name for p in _parse(pools_file)]
    gcp_pool = names[0]

    # Alice makes the pools from her laptop; CI knows only the backend and the secrets.
    sign_in_everywhere(sandbox, moto_server)
    share_backend(sandbox, s3_backend)
    laptop = sandbox.root / "laptop.toml"
    laptop.write_text(pools_file)
    sandbox.run("up", "-f", str(laptop), "--yes")
    runner = Runner(sandbox, pools_file)
    try:
        run, workspace, outputs = runner.run(workflow, preview, check, secrets=secrets)
        assert run.code == 0, run.output
        assert outputs["exit-code"] == "0"
        plans = json.loads((workspace / "plan.json").read_text())
        assert [p["pool"] for p in plans["pools"]] == names
        for plan in plans["pools"]:
            changes = plan["changes"]
            assert changes["create"] == changes["update"] == changes["replace"] == 0
            assert changes["delete"] == 0 and changes["same"] == len(plan["resources"]) > 0

        # Someone deletes a work pool in the Prefect UI: only a refresh sees it.
        sandbox.prefect("DELETE", f"/work_pools/{gcp_pool}").raise_for_status()
        run, workspace, outputs = runner.run(workflow, preview, check, secrets=secrets)
        assert run.code == 3, run.output
        assert outputs["exit-code"] == "3"
        assert "::error title=Pools have changes::" in run.stdout
        plans = json.loads((workspace / "plan.json").read_text())
        changed = [
            p["pool"] for p in plans["pools"] if any(x["op"] != "same" for x in p["prefect"])
        ]
        assert changed == [gcp_pool]
        # The summary step reads the plan the check left (jq, as on GitHub's runners).
        summary = workspace.parent / "home" / "sum"
        subprocess.run(
            [*shell_args(workflow, preview, summarize), "-c", summarize["run"]],
            cwd=workspace,
            env={"PATH": "/usr/bin:/bin", "GITHUB_STEP_SUMMARY": str(summary)},
            check=True,
            timeout=30,
        )
        assert f"- `create` {gcp_pool}: Prefect work_pool {gcp_pool}" in summary.read_text()

        # The apply job (after its reviewers approve) puts the pool back...
        run, _, _ = runner.run(workflow, apply, repair, secrets=secrets, inputs={"prune": False})
        assert run.code == 0, run.output
        assert sandbox.work_pool(gcp_pool) is not None
        # ...and the next pull request's check is green again.
        run, _, outputs = runner.run(workflow, preview, check, secrets=secrets)
        assert run.code == 0, run.output
    finally:
        sandbox.run("destroy", "-f", str(laptop), "--yes", expect=None)
    assert sandbox.work_pool(gcp_pool) is None


def _parse(text: str):
    from provision.pools_file import parse

    return parse(text, Path("provision.toml")).pools
