"""ContainerInstanceWorker under Pulumi mocks: the container groups, their identity and secure
values, the Log Analytics workspace and diagnostic settings, and their order against what the
worker must wait for.

Azure's mock answers are ``tests/stacks/test_azure_aci.py``'s (the worker runs beside that
component in the same stack).
"""

from __future__ import annotations

from typing import Any

import pulumi
import pytest
from pulumi.runtime.rpc import is_rpc_secret, unwrap_rpc_secret

from stacks.azure_aci import ContainerInstancePool
from stacks.azure_worker import (
    DEFAULT_CPU,
    DEFAULT_MEMORY_GB,
    LOG_CATEGORIES,
    TYPE_TOKEN,
    ContainerInstanceWorker,
    ContainerInstanceWorkerArgs,
    ContainerInstanceWorkerOutputs,
    environment,
)
from tests.pulumi_mocks import assert_component_tree, check_when_resolved, monitor_fixture
from tests.stacks.test_azure_aci import (
    LOCATION,
    RG,
    RG_ID,
    T_ASSIGNMENT,
    T_DIAGNOSTICS,
    T_GROUP,
    T_WORKSPACE,
    AzureMocks,
    fake_guid,
    make_args,
)

mon = monitor_fixture(AzureMocks)
preview_mon = monitor_fixture(AzureMocks, preview=True)

IDENTITY = f"{RG_ID}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/etl-worker"
AUTH = "admin:s3cr3t-pass"
COMMAND = ["prefect", "worker", "start", "--pool", "etl"]
WORKSPACE_ID = f"{RG_ID}/providers/Microsoft.OperationalInsights/workspaces/etl-logs"


def group_id(name: str) -> str:
    return f"{RG_ID}/providers/Microsoft.ContainerInstance/containerGroups/{name}"


def worker_args(**overrides: Any) -> ContainerInstanceWorkerArgs:
    values: dict[str, Any] = {
        "pool": "etl",
        "location": LOCATION,
        "resource_group_name": RG,
        "group_names": ["etl-worker-0"],
        "workspace_name": "etl-logs",
        "identity_id": IDENTITY,
        "image": "prefecthq/prefect:3.8.8-python3.12",
        "command": COMMAND,
        "env": {"PREFECT_API_URL": "http://prefect.example/api"},
        "secret_env": {"PREFECT_API_AUTH_STRING": pulumi.Output.secret(AUTH)},
    }
    values.update(overrides)
    return ContainerInstanceWorkerArgs(**values)


def make_worker(opts: pulumi.ResourceOptions | None = None, **overrides: Any):
    return ContainerInstanceWorker("etl-worker", worker_args(**overrides), opts)


def after_all(worker: ContainerInstanceWorker, mon, check):
    """The workspace's customer id resolves last but one; the diagnostic settings depend on the
    groups and the workspace, so wait for the customer id and every group registration."""
    return check_when_resolved(mon, dict(worker.outputs), check)


def containers_of(group) -> list[dict[str, Any]]:
    """The group's containers; the SDK sends the whole property secret when a secret is in it."""
    return unwrap_rpc_secret(group.inputs["containers"])


def env_of(group) -> dict[str, dict[str, Any]]:
    (container,) = containers_of(group)
    return {e["name"]: e for e in container["environmentVariables"]}


@pulumi.runtime.test
def test_every_resource_type_name_and_parent(mon):
    worker = make_worker(group_names=["etl-worker-0", "etl-worker-1"])

    def check(_):
        assert_component_tree(
            mon,
            TYPE_TOKEN,
            "etl-worker",
            {
                (T_WORKSPACE, "etl-worker-logs"),
                (T_GROUP, "etl-worker-0"),
                (T_GROUP, "etl-worker-1"),
                (T_DIAGNOSTICS, "etl-worker-0-logs"),
                (T_DIAGNOSTICS, "etl-worker-1-logs"),
            },
        )

    return after_all(worker, mon, check)


@pulumi.runtime.test
def test_the_container_group_runs_the_command_as_the_identity(mon):
    worker = make_worker()

    def check(_):
        group = mon.one(T_GROUP)
        assert group.inputs["containerGroupName"] == "etl-worker-0"
        assert group.inputs["resourceGroupName"] == RG
        assert group.inputs["location"] == LOCATION
        assert group.inputs["osType"] == "Linux"
        assert group.inputs["restartPolicy"] == "Always"
        assert group.inputs["identity"] == {
            "type": "UserAssigned",
            "userAssignedIdentities": [IDENTITY],
        }
        assert group.inputs["tags"] == {"managed-by": "provision", "prefect-work-pool": "etl"}
        # Outbound only, a public image: no IP address, no registry credential.
        assert "ipAddress" not in group.inputs
        assert "imageRegistryCredentials" not in group.inputs
        (container,) = containers_of(group)
        assert container["name"] == "worker"
        assert container["image"] == "prefecthq/prefect:3.8.8-python3.12"
        assert container["command"] == COMMAND
        assert container["resources"] == {
            "requests": {"cpu": DEFAULT_CPU, "memoryInGB": DEFAULT_MEMORY_GB}
        }
        assert (DEFAULT_CPU, DEFAULT_MEMORY_GB) == (1.0, 1.5)

    return after_all(worker, mon, check)


@pulumi.runtime.test
def test_the_credential_is_a_secret_secure_value_never_a_plain_one(mon):
    worker = make_worker()

    def check(_):
        env = env_of(mon.one(T_GROUP))
        assert env["PREFECT_API_URL"] == {
            "name": "PREFECT_API_URL",
            "value": "http://prefect.example/api",
        }
        secret = env["PREFECT_API_AUTH_STRING"]
        assert set(secret) == {"name", "secureValue"}
        assert unwrap_rpc_secret(secret["secureValue"]) == AUTH
        # Sent to the engine as a secret (the SDK lifts it to the whole property), so the state
        # holds it encrypted.
        assert is_rpc_secret(mon.one(T_GROUP).inputs["containers"])
        plain = [e.get("value") for e in env.values()]
        assert not any(AUTH in str(v) for v in plain)

    return after_all(worker, mon, check)


@pulumi.runtime.test
def test_an_open_server_gets_no_secure_value_at_all(mon):
    worker = make_worker(secret_env={})

    def check(_):
        env = env_of(mon.one(T_GROUP))
        assert list(env) == ["PREFECT_API_URL"]
        assert not any("secureValue" in e for e in env.values())
        # Nothing secret in it: the container spec stays readable in plans.
        assert not is_rpc_secret(mon.one(T_GROUP).inputs["containers"])

    return after_all(worker, mon, check)


@pulumi.runtime.test
def test_logs_go_to_log_analytics_through_a_diagnostic_setting_without_a_key(mon):
    worker = make_worker(group_names=["etl-worker-0", "etl-worker-1"])

    def check(values):
        workspace = mon.one(T_WORKSPACE)
        assert workspace.inputs == {
            "workspaceName": "etl-logs",
            "resourceGroupName": RG,
            "location": LOCATION,
            "sku": {"name": "PerGB2018"},
            "retentionInDays": 30,
            "tags": {"managed-by": "provision", "prefect-work-pool": "etl"},
        }
        for index in (0, 1):
            setting = mon.one(T_DIAGNOSTICS, f"etl-worker-{index}-logs")
            assert setting.inputs == {
                "name": "worker-logs",
                "resourceUri": group_id(f"etl-worker-{index}"),
                "workspaceId": WORKSPACE_ID,
                "logAnalyticsDestinationType": "Dedicated",
                "logs": [{"category": c, "enabled": True} for c in LOG_CATEGORIES],
            }
            assert mon.one(T_GROUP, f"etl-worker-{index}").urn in setting.dependencies
        # The legacy integration would put the workspace's shared key in the group.
        for group in mon.of_type(T_GROUP):
            assert "diagnostics" not in group.inputs
        assert values["worker_log_workspace_id"] == WORKSPACE_ID
        assert values["worker_log_workspace_customer_id"] == fake_guid("workspace", WORKSPACE_ID)

    return after_all(worker, mon, check)


@pulumi.runtime.test
def test_replicas_are_separate_groups_with_the_same_container(mon):
    names = ["etl-worker-0", "etl-worker-1", "etl-worker-2"]
    worker = make_worker(group_names=names)

    def check(values):
        groups = {g.inputs["containerGroupName"]: g for g in mon.of_type(T_GROUP)}
        assert sorted(groups) == names
        containers = [containers_of(g) for g in groups.values()]
        assert all(c == containers[0] for c in containers)
        assert values["worker_container_groups"] == names

    return after_all(worker, mon, check)


@pulumi.runtime.test
def test_outputs(mon):
    worker = make_worker()

    def check(values):
        names = (
            "worker_container_groups",
            "worker_log_workspace_id",
            "worker_log_workspace_customer_id",
        )
        assert tuple(worker.outputs) == names
        assert tuple(ContainerInstanceWorkerOutputs.__annotations__) == names
        assert values["worker_container_groups"] == ["etl-worker-0"]

    return after_all(worker, mon, check)


@pulumi.runtime.test
def test_the_groups_wait_for_what_the_component_depends_on(mon):
    # The work pool, in the real program: the worker must start after it and stop before it.
    pool = ContainerInstancePool("etl", make_args(worker_identity_name="etl-worker"))
    gate = pulumi.CustomResource("test:index:Gate", "gate", {})
    worker = make_worker(
        opts=pulumi.ResourceOptions(depends_on=[gate]),
        identity_id=pool.outputs["worker_identity_id"],
    )

    def check(_):
        group = mon.one(T_GROUP)
        assert mon.one("test:index:Gate").urn in group.dependencies
        # Its identity's id carries the identity's role assignment: the worker starts with
        # its permissions in place.
        assert mon.one(T_ASSIGNMENT, "etl-worker-role").urn in group.dependencies
        assert mon.one(TYPE_TOKEN).urn in {r.urn for r in mon.registrations.values()}

    return check_when_resolved(mon, {**worker.outputs, **pool.outputs}, check)


@pulumi.runtime.test
def test_preview_registers_the_same_resources(preview_mon):
    worker = make_worker(group_names=["etl-worker-0", "etl-worker-1"])

    def check(_):
        assert preview_mon.registered(besides=TYPE_TOKEN) == {
            (T_WORKSPACE, "etl-worker-logs"),
            (T_GROUP, "etl-worker-0"),
            (T_GROUP, "etl-worker-1"),
            (T_DIAGNOSTICS, "etl-worker-0-logs"),
            (T_DIAGNOSTICS, "etl-worker-1-logs"),
        }

    return after_all(worker, preview_mon, check)


def test_a_variable_both_plain_and_secret_is_refused():
    with pytest.raises(ValueError, match="both plain and secret: TOKEN"):
        environment({"TOKEN": "a"}, {"TOKEN": "b"})


@pulumi.runtime.test
def test_a_worker_needs_a_group(mon):
    # Run by the mocks' event loop: the args' secret is an Output whose coroutine must be
    # awaited, or it warns as "never awaited" from whichever test the collector runs in.
    mon.checked = True  # nothing to resolve: the constructor refuses
    with pytest.raises(ValueError, match="at least one container group"):
        make_worker(group_names=[])
