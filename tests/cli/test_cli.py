"""CLI tests through typer's runner: exit codes, one-line errors, JSON contract, nothing written."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from cli.main import app
from provision.service import PoolRequest, resolve
from provision.settings import load_settings
from tests.contract import PREVIEW_KEYS

GOOD = ["--type", "cloud-run-v2:push", "--project", "my-proj-123", "--region", "europe-west1"]
WORKER = ["--type", "cloud-run-v2", "--project", "my-proj-123", "--region", "europe-west1"]


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    gcloud = tmp_path / "gcloud"
    gcloud.mkdir()
    return {
        "PROVISION_HOME": str(tmp_path / "home"),
        "PREFECT_HOME": str(tmp_path / "prefect"),
        "CLOUDSDK_CONFIG": str(gcloud),
        "GOOGLE_CLOUD_PROJECT": "",
        "CLOUDSDK_CORE_PROJECT": "",
        "PREFECT_API_URL": "",
        "PREFECT_API_KEY": "",
        "PREFECT_PROFILE": "",
        "PULUMI_BACKEND_URL": "",
        "COLUMNS": "120",
        "CI": "",
    }


def run(env: dict[str, str], *args: str):
    return CliRunner().invoke(app, list(args), env=env, catch_exceptions=False)


def assert_one_line_error(result, code: int, *needles: str) -> None:
    assert result.exit_code == code, result.output
    lines = [ln for ln in result.output.splitlines() if ln.strip()]
    assert len(lines) == 1, result.output
    assert lines[0].startswith("Error: ")
    for needle in needles:
        assert needle in lines[0], lines[0]


def assert_nothing_written(env: dict[str, str]) -> None:
    home = Path(env["PROVISION_HOME"])
    assert not (home / "stacks").exists()
    assert not (home / "state").exists()


@pytest.mark.parametrize(
    ("args", "needles"),
    [
        (["p1", "--type", "k8s", "--project", "my-proj-123"], ["Unknown work pool type 'k8s'"]),
        (["bad name", *GOOD], ["Invalid pool name 'bad name'"]),
        (["-lead", *GOOD], ["No such option: -l"]),  # typer reads it as options
        (["prefect-pool", *GOOD], ["reserves names starting with 'prefect'"]),
        (["PrefectX", *GOOD], ["reserves names starting with 'prefect'"]),
        (["p1", "--type", "cloud-run-v2:push", "--project", "Bad_Project"], ["project"]),
        (
            ["p1", "--type", "cloud-run-v2:push", "--project", "my-proj-123", "--region", "mars-1"],
            ["mars-1"],
        ),
        (["p1", "--type", "cloud-run-v2:push", "--region", "europe-west1"], ["No GCP project"]),
        ([*["p1", *GOOD], "--worker-account-id", "w" * 31], ["w" * 31]),
        ([*["p1", *GOOD], "--runtime-account-id", "1abcdef"], ["1abcdef"]),
        ([*["p1", *GOOD], "--block-name", "Bad Name"], ["Invalid block name"]),
        (["p1", *GOOD, "--offline", "--refresh"], ["--refresh"]),
        (["p1", *GOOD, "--vpc-id", "vpc-0abc"], ["--vpc-id does not apply to type"]),
        (["p1", *GOOD, "--subscription", "x"], ["--subscription does not apply to type"]),
        (["p1", *GOOD, "--with-worker"], ["'cloud-run-v2:push' pools have none", "cloud-run-v2"]),
        (["p1", *WORKER, "--worker-count", "2"], ["--worker-count needs --with-worker"]),
        (["p1", *WORKER, "--with-worker", "--worker-count", "0"], ["--worker-count 0"]),
        (["p1", *WORKER, "--with-worker", "--worker-image", "no spaces"], ["--worker-image"]),
        (
            ["p1", *WORKER, "--with-worker", "--worker-api-key-env", "pnu_abc-123"],
            ["not the key itself"],
        ),
        (["p1", "--type", "modal:push", "--set-image-namespace"], ["have no image registry"]),
        (["p1", *WORKER, "--set-image-namespace"], ["No Prefect profiles file at"]),
    ],
)
def test_bad_input_is_one_line_exit_2_and_nothing_written(env, args, needles):
    offline = [] if "--offline" in args else ["--offline"]
    result = run(env, "preview", *args, *offline)
    if needles:
        assert_one_line_error(result, 2, *needles)
    else:
        assert result.exit_code == 2
    assert_nothing_written(env)


@pytest.mark.parametrize(
    ("args", "message", "command"),
    [
        (["show"], "Missing argument 'pool'", "provision show"),
        (["preview", "p", "--bogus-flag"], "No such option: --bogus-flag", "provision preview"),
        (["preview", "p", "--type"], "Option '--type' requires an argument", "provision preview"),
        (["up", "p", "--log-retention-days", "x"], "'--log-retention-days'", "provision up"),
        (["bogus"], "No such command 'bogus'", "provision"),
        (["--bogus"], "No such option: --bogus", "provision"),
    ],
)
def test_usage_error_is_one_line_on_stderr_naming_the_help(env, args, message, command):
    result = run(env, *args)
    assert_one_line_error(result, 2, message, f"(see `{command} --help`)")
    assert result.stdout == ""
    assert_nothing_written(env)


@pytest.mark.parametrize("command", ["preview", "up", "destroy"])
def test_no_pool_and_no_pools_file_is_one_line(env, command, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no provision.toml here
    result = run(env, command, *(["--yes"] if command != "preview" else []))
    assert_one_line_error(result, 2, "No pool named and no provision.toml here")
    assert_nothing_written(env)


def test_no_arguments_still_prints_the_help(env):
    result = run(env)
    assert result.exit_code == 2
    assert "Usage: provision" in result.output and "preview" in result.output


def _string_flags() -> list[str]:
    """Every string flag of ``preview``, read from the declarations (new flags are covered)."""
    import typing

    from cli import main

    declared = {
        **main.TARGET_FLAGS,
        "type": main.PoolType,
        "block_name": main.BlockName,
        "prefect_api_url": main.PrefectUrl,
        "prefect_api_key": main.PrefectKey,
        "backend_url": main.BackendUrl,
        "secrets_provider": main.SecretsProvider,
    }
    flags = []
    for key, annotation in declared.items():
        kind, option = typing.get_args(annotation)
        if kind in (str | None, list[str] | None):
            # In Annotated, typer reads Option's first positional (its `default`) as a decl.
            first = option.default if isinstance(option.default, str) else None
            flags.append(first or "--" + key.replace("_", "-"))
    return flags


@pytest.mark.parametrize("flag", _string_flags())
@pytest.mark.parametrize("value", ["", "  "])
def test_an_empty_string_flag_is_a_usage_error_naming_it(env, flag, value):
    result = run(env, "preview", "p1", *GOOD, flag, value, "--offline")
    assert_one_line_error(result, 2, f"'{flag}'", "must not be empty", "provision preview --help")
    assert_nothing_written(env)


@pytest.mark.parametrize(
    "args",
    [
        ["up", "p1", "--type", "ecs", "--region", ""],  # before the --yes refusal
        ["destroy", "p1", "--yes", "--backend-url", ""],
        ["list", "--backend-url", " "],
    ],
)
def test_empty_flags_are_refused_on_every_command(env, args):
    result = run(env, *args)
    assert_one_line_error(result, 2, "must not be empty")
    assert_nothing_written(env)


def test_up_refuses_without_yes_when_not_interactive(env):
    result = run(env, "up", "p1", *GOOD)  # CliRunner's stdin is not a TTY
    assert_one_line_error(result, 2, "--yes")
    assert_nothing_written(env)
    result = run({**env, "CI": "true"}, "destroy", "p1")
    assert_one_line_error(result, 2, "--yes")


def test_bad_input_on_up_fails_before_any_engine_call(env):
    result = run(env, "up", "p1", "--yes", "--type", "cloud-run-v2:push", "--project", "X")
    assert_one_line_error(result, 2)
    assert_nothing_written(env)


def test_push_pool_on_a_self_hosted_server_names_the_worker_type(env):
    env = {**env, "PREFECT_API_URL": "http://127.0.0.1:9/api"}
    result = run(env, "up", "p1", "--yes", *GOOD)
    assert_one_line_error(result, 2, "Prefect Cloud", "--type cloud-run-v2")
    assert_nothing_written(env)


def test_no_prefect_api_configured_is_one_line(env):
    result = run(env, "up", "p1", "--yes", "--type", "cloud-run-v2", "--project", "my-proj-123")
    assert_one_line_error(result, 2, "PREFECT_API_URL")
    assert_nothing_written(env)


def test_unknown_pool_for_destroy_and_show(env):
    assert_one_line_error(run(env, "destroy", "ghost", "--yes"), 2, "ghost")
    assert_one_line_error(run(env, "show", "ghost"), 2, "ghost")


def test_preview_offline_json_matches_the_contract(env):
    result = run(env, "preview", "p1", *GOOD, "--offline", "--json")
    assert result.exit_code == 0, result.output
    plan = json.loads(result.stdout)
    assert set(plan) == PREVIEW_KEYS
    assert plan["pool"] == plan["stack"] == "p1"
    assert plan["type"] == "cloud-run-v2:push" and plan["offline"] is True
    assert set(plan["changes"]) == {"create", "update", "replace", "delete", "same"}
    assert plan["changes"]["create"] == len(plan["resources"]) > 0
    for r in plan["resources"]:
        assert set(r) == {"urn", "type", "name", "op", "inputs"}
        assert r["op"] == "create" and r["urn"].startswith("urn:pulumi:p1::provision::")
    by_type = {r["type"]: r for r in plan["resources"]}
    account = by_type["gcp:serviceaccount/account:Account"]["inputs"]
    assert "accountId" in account  # wire names, as the engine receives them
    services = [r for r in plan["resources"] if r["type"] == "gcp:projects/service:Service"]
    assert services and all(s["inputs"]["disableOnDestroy"] is False for s in services)
    block, pool = plan["prefect"]
    assert block == {
        "kind": "block",
        "name": "p1-gcp-credentials",
        "block_type": "gcp-credentials",
        "op": "create",
    }
    assert pool["kind"] == "work_pool" and pool["name"] == "p1" and pool["op"] == "create"
    assert pool["type"] == "cloud-run-v2:push"
    assert pool["variables"]["region"] == "europe-west1"
    assert pool["variables"]["service_account_name"].startswith("p1-runtime@my-proj-123.")
    assert "$ref" in pool["variables"]["credentials"]
    for g in plan["grants"]:
        assert set(g) == {"principal", "role", "scope", "permissions", "why"}
    role = next(g for g in plan["grants"] if g["role"].endswith("/roles/provision_p1_<random>"))
    assert role["principal"].startswith("worker service account")
    assert "run.jobs.run" in role["permissions"] and role["why"]
    assert_nothing_written(env)


def test_preview_offline_shows_the_worker_and_whose_credential_it_uses(env):
    result = run(env, "preview", "p1", *WORKER, "--with-worker", "--offline", "--json")
    assert result.exit_code == 0, result.output
    worker = json.loads(result.stdout)["worker"]
    assert " ".join(worker["command"]) == "prefect worker start --pool p1 --type cloud-run-v2"
    assert worker["count"] == 1 and worker["image"].startswith("prefecthq/prefect:")
    # Offline nothing is read: the plan says whose credential `up` will use.
    assert "your own Prefect credential" in worker["prefect_credential_source"]
    panel = run(env, "preview", "p1", *WORKER, "--with-worker", "--offline").stdout
    assert "Worker" in panel and "prefect worker start --pool p1" in panel
    # Without the worker there is no worker section.
    plain = json.loads(run(env, "preview", "p1", *WORKER, "--offline", "--json").stdout)
    assert plain["worker"] is None


def test_offline_ecs_json_reviews_iam_policies_and_grants(env):
    result = run(
        env, "preview", "p1", "--type", "ecs", "--region", "eu-west-1", "--offline", "--json"
    )
    assert result.exit_code == 0, result.output
    plan = json.loads(result.stdout)
    by_name = {r["name"]: r["inputs"] for r in plan["resources"]}
    # The worker policy names ARNs not known before up: placeholders, not "[computed]".
    doc = json.loads(by_name["p1-worker-policy"]["policy"])
    actions = {a for s in doc["Statement"] for a in s["Action"]}
    assert {"ecs:RunTask", "ecs:RegisterTaskDefinition", "iam:PassRole"} <= actions
    assert {"sqs:ReceiveMessage", "logs:GetLogEvents"} <= actions
    pass_role = next(s for s in doc["Statement"] if s["Sid"] == "PassPoolRolesToEcsTasks")
    assert pass_role["Resource"] == ["arn:aws:iam::<account-id>:role/p1-ecs-execution"]
    run_task = next(s for s in doc["Statement"] if s["Sid"] == "RunPoolTasksOnCluster")
    assert run_task["Condition"]["ArnEquals"]["ecs:cluster"] == (
        "arn:aws:ecs:eu-west-1:<account-id>:cluster/p1-ecs"
    )
    queue_policy = json.loads(by_name["p1-events-policy"]["policy"])
    assert (
        queue_policy["Statement"][0]["Resource"]
        == "arn:aws:sqs:eu-west-1:<account-id>:p1-ecs-events"
    )
    # Values no name determines stay unknown.
    assert by_name["p1-events-policy"]["queueUrl"] == "[computed]"
    assert by_name["p1-worker-key"]["user"] == "[computed]"

    worker = [g for g in plan["grants"] if g["principal"] == "worker IAM user p1-ecs-worker"]
    granted = {p for g in worker for p in g["permissions"]}
    assert granted == actions  # the grants list every action of the policy, nothing more
    assert all(g["scope"] and g["why"] for g in worker)


def test_default_block_name_is_valid_for_any_valid_pool_name(env):
    result = run(
        env, "preview", "ETL_x", "--type", "ecs", "--region", "eu-west-1", "--offline", "--json"
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["prefect"][0]["name"] == "etl-x-aws-credentials"


def test_preview_expect_no_changes_exits_3_on_changes(env):
    result = run(env, "preview", "p1", *GOOD, "--offline", "--expect-no-changes", "--json")
    assert result.exit_code == 3


def test_preview_offline_panel_lists_resources_grants_and_prefect(env):
    result = run(env, "preview", "p1", *GOOD, "--offline")
    assert result.exit_code == 0, result.output
    out = result.output
    for needle in (
        "gcp:serviceaccount/key:Key",
        "roles/iam.serviceAccountUser",
        "p1-runtime@my-proj-123.iam.gserviceaccount.com only",
        "run.executions.delete",
        "gcp-credentials",
        "work pool (cloud-run-v2:push)",
        "12 to create",
    ):
        assert needle in out, needle


def test_vertex_ai_offline_plan_uses_the_vertex_role(env):
    result = run(
        env,
        "preview",
        "v1",
        "--type",
        "vertex-ai",
        "--project",
        "my-proj-123",
        "--region",
        "europe-west4",
        "--offline",
        "--json",
    )
    assert result.exit_code == 0, result.output
    plan = json.loads(result.stdout)
    role = next(r for r in plan["resources"] if r["type"].endswith("IAMCustomRole"))
    assert sorted(role["inputs"]["permissions"]) == [
        "aiplatform.customJobs.cancel",
        "aiplatform.customJobs.create",
        "aiplatform.customJobs.get",
    ]


def test_types_lists_every_pool_type(env):
    result = run(env, "types", "--json")
    assert result.exit_code == 0
    types = {t["type"]: t for t in json.loads(result.stdout)}
    assert {"cloud-run:push", "cloud-run-v2:push", "cloud-run", "cloud-run-v2", "vertex-ai"} <= set(
        types
    )
    assert types["cloud-run-v2:push"]["push"] is True and types["vertex-ai"]["push"] is False


def test_type_option_mismatch_is_rejected_before_the_engine(env, tmp_path):
    settings = load_settings(env={"PROVISION_HOME": str(tmp_path / "h")})
    from provision.errors import InvalidInputError

    with pytest.raises(InvalidInputError, match="does not apply to type 'cloud-run-v2'"):
        resolve(
            PoolRequest("p1", "cloud-run-v2", {"project": "my-proj-123", "subscription": "x"}),
            settings,
            env,
        )


HEAVY = (
    "pulumi",
    "pulumi_gcp",
    "pulumi_aws",
    "pulumi_azure_native",
    "pulumi_azuread",
    "httpx",
    "grpc",
    "stacks",
)
"""Top-level packages ``--help`` must never import: the SDKs, the engine's, the stack modules."""


@pytest.mark.parametrize(
    ("args", "also_heavy"),
    [
        (["--help"], ("pydantic", "pydantic_core")),
        (["--version"], ("pydantic", "pydantic_core")),
        # A command's help lists every target's flags: they come from the registry, never from
        # the targets' modules (and their pydantic models). typer itself loads pydantic here.
        (["up", "--help"], ()),
        (["preview", "--help"], ()),
    ],
)
def test_help_imports_no_cloud_sdk(args, also_heavy):
    code = (
        "import json, sys\n"
        "from typer.testing import CliRunner\n"
        "from cli.main import app\n"
        f"r = CliRunner().invoke(app, {args!r}, env={{'COLUMNS': '200'}})\n"
        "assert r.exit_code == 0, r.output\n"
        f"heavy = [m for m in sys.modules if m.split('.')[0] in {HEAVY + also_heavy!r}]\n"
        "ours = sorted(m for m in sys.modules if m.split('.')[0] in ('provision', 'cli'))\n"
        "print(json.dumps({'heavy': heavy, 'ours': ours, 'output': r.output}))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    seen = json.loads(out.stdout)
    assert seen["heavy"] == []
    # Of our own modules only the plain-data ones: no target, service, engine or settings.
    assert seen["ours"] == [
        "cli",
        "cli.main",
        "provision",
        "provision.errors",
        "provision.registry",
    ]
    if args[0] == "up":
        for flag in ("--project", "--vpc-id", "--task-role-policy-arn", "--subscription"):
            assert flag in seen["output"], flag


def test_version_prints_the_installed_distribution():
    from importlib.metadata import distribution

    dist = distribution("prefect-provision")  # `provision` on PyPI is another project
    scripts = {e.name: e.value for e in dist.entry_points if e.group == "console_scripts"}
    assert scripts == {"provision": "cli.main:main"}
    result = CliRunner().invoke(app, ["--version"])
    assert result.exit_code == 0, result.output
    assert result.output == f"prefect-provision {dist.version}\n"


PLANS = {
    "cloud-run-v2:push": ["--project", "my-proj-123", "--region", "europe-west1"],
    "ecs": ["--region", "eu-west-1"],
    "azure-container-instance": [
        "--subscription",
        "00000000-0000-0000-0000-000000000000",
        "--location",
        "westeurope",
    ],
}


@pytest.mark.parametrize("columns", [80, 200])
@pytest.mark.parametrize("pool_type", sorted(PLANS))
def test_plan_panel_reads_whole_at_80_and_200_columns(env, tmp_path, pool_type, columns):
    args = ["preview", "p1", "--type", pool_type, *PLANS[pool_type], "--offline"]
    env = {**env, "COLUMNS": str(columns)}
    types = {r["type"] for r in json.loads(run(env, *args, "--json").stdout)["resources"]}
    flags = PLANS[pool_type]
    options = {k[2:]: v for k, v in zip(flags[::2], flags[1::2], strict=True)}
    spec = resolve(
        PoolRequest("p1", pool_type, options),
        load_settings(env={"PROVISION_HOME": str(tmp_path / "h")}),
        env,
    )
    grants = spec.target.grants()
    permissions = {p for g in grants for p in g.permissions}
    assert permissions

    result = run(env, *args)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert all(len(line) <= columns for line in lines), max(lines, key=len)
    words = {w.strip(",") for line in lines for w in line.strip("│ ").split()}
    assert types <= words, types - words  # every type token whole, on one line
    assert permissions <= words, permissions - words


def test_show_renders_the_workers_prefect_sees_or_why_it_could_not_ask():
    from io import StringIO

    from rich.console import Console

    from cli import render
    from provision.prefect.writer import WorkerStatus
    from provision.saved import PrefectState
    from provision.service import PoolDetails

    def shown(**workers: Any) -> tuple[str, dict[str, Any]]:
        details = PoolDetails(
            name="p1",
            type="cloud-run-v2",
            location="my-proj-123/europe-west1",
            outputs={"region": "europe-west1"},
            secret_outputs=frozenset(),
            block_name="p1-gcp-credentials",
            prefect=PrefectState(block_id="b", pool_id="w"),
            prefect_api_url="http://127.0.0.1:4200/api",
            **workers,
        )
        out = StringIO()
        render.details(Console(file=out, width=120), details)
        return out.getvalue(), render.details_dict(details)

    beat = "2026-12-02T03:00:00Z"
    text, data = shown(
        workers=[WorkerStatus("cloud-run-v2-abc", "ONLINE", beat)], workers_error=None
    )
    assert "cloud-run-v2-abc" in text and "ONLINE" in text and beat in text
    assert data["workers"] == [
        {"name": "cloud-run-v2-abc", "status": "ONLINE", "last_heartbeat": beat}
    ]
    text, _ = shown(workers=[], workers_error=None)
    assert "none has polled this pool yet" in text
    text, data = shown(workers=None, workers_error="Prefect at http://127.0.0.1:4200/api is down")
    assert "Workers: unknown (Prefect at http://127.0.0.1:4200/api is down)" in text
    assert data["workers"] is None and "down" in data["workers_error"]


def test_cloud_values_print_as_written_not_as_emoji_or_markup(monkeypatch, capsys):
    # rich turns ":secret:" into "㊙" and ":key:" into a key, even with markup off, and reads
    # "[bold]" in a table cell as a style: an ECS worker's secret ARN once showed up in
    # `provision show` as "...:123456789012㊙prefect/ecs/p1".
    from cli import render
    from provision.prefect.writer import WorkerStatus
    from provision.saved import PrefectState
    from provision.service import PoolDetails

    monkeypatch.setenv("COLUMNS", "200")
    arn = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:prefect/ecs/p1-AbCdEf"
    details = PoolDetails(
        name="p1",
        type="ecs",
        location="123456789012/eu-west-1",
        outputs={
            "worker_secret_arns": [arn],
            "key_arn": "arn:aws:iam::123456789012:key:x",
            "label": "[bold]kept[/bold]",
        },
        secret_outputs=frozenset(),
        block_name="p1-aws-credentials",
        prefect=PrefectState(block_id="b", pool_id="w"),
        prefect_api_url="http://127.0.0.1:4200/api",
        workers=[WorkerStatus("worker[1]:x:", "ONLINE", None)],
        workers_error=None,
    )
    render.details(render.console(), details)
    out = capsys.readouterr().out
    assert json.dumps([arn]) in out
    assert "arn:aws:iam::123456789012:key:x" in out
    assert "[bold]kept[/bold]" in out
    assert "worker[1]:x:" in out
    assert not {"㊙", "🔑", "❌"} & set(out)
