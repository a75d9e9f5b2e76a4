"""A long-running container on Azure Container Instances, as a managed identity, logging to Log
Analytics, with its secrets as secure environment values.

``ContainerInstanceWorker`` creates, in an existing resource group:

- a Log Analytics workspace for the containers' output and events;
- one container group per replica (``group_names``): one Linux container running ``command``
  in ``image``, restart policy ``Always``, no IP address (it only calls out), and the
  user-assigned identity ``identity_id`` as its only identity, so code in it gets Azure tokens
  from the platform and needs no credential;
- per group, a diagnostic setting routing its ``ContainerInstanceLog`` and ``ContainerEvent``
  categories to the workspace.

Secrets (``secret_env``) are ``secureValue`` environment variables: ACI never returns them
("Environment variables with secure values aren't visible in your container's properties.
Their values can be accessed only from within the container", MicrosoftDocs/azure-docs
``articles/container-instances/container-instances-environment-variables.md``, "Secure values")
and encrypts them at rest ("environment variables, keys being passed into your containers", same
repository, ``container-instances-encrypt-data.md``). They are marked secret here too, so the
Pulumi state holds them only encrypted. Plain ``env`` values are ``value``: visible to anyone
who can read the group.

Logs go through a diagnostic setting, not the group's ``diagnostics.logAnalytics`` property:
that legacy integration needs the workspace's shared key, a long-lived credential; a diagnostic
setting is authorized by ARM itself ("No workspace key required", MicrosoftDocs/azure-compute-docs
``articles/container-instances/container-instances-log-analytics.md``, "Using Diagnostic
Settings"). The categories are ACI's (``monitor-azure-container-instances-reference.md``, same
repository). Applying a diagnostic setting restarts the group once.

It is plain Pulumi: it knows nothing of what the container runs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TypedDict

import pulumi

from stacks import sdk_modules
from stacks.azure_aci import tags

_azure = sdk_modules.load(
    "pulumi_azure_native",
    containerinstance=("_enums", "_inputs", "container_group"),
    monitor=("_inputs", "diagnostic_setting"),
    operationalinsights=("_inputs", "workspace"),
)
containerinstance = _azure.containerinstance
monitor = _azure.monitor
operationalinsights = _azure.operationalinsights

TYPE_TOKEN = "provision:azure:ContainerInstanceWorker"

DEFAULT_CPU = 1.0
DEFAULT_MEMORY_GB = 1.5
"""What ``az container create`` gives a container unless told otherwise (Azure/azure-cli
``src/azure-cli/azure/cli/command_modules/container/custom.py``, ``create_container(cpu=1,
memory=1.5)``), and so what Prefect's own ACI worker guide runs its worker with (PrefectHQ/prefect
``docs/integrations/prefect-azure/aci_worker.mdx``, step 3, which sets neither): a worker polls
and makes API calls; the flow runs get containers of their own."""

LOG_CATEGORIES = ("ContainerInstanceLog", "ContainerEvent")
"""Everything ACI sends to a diagnostic setting: the containers' output and the group's events."""
LOG_RETENTION_DAYS = 30
"""The PerGB2018 tier's included retention."""
DIAGNOSTIC_SETTING_NAME = "worker-logs"
CONTAINER_NAME = "worker"


@dataclass
class ContainerInstanceWorkerArgs:
    """Inputs of :class:`ContainerInstanceWorker`. Names must already satisfy Azure's rules."""

    pool: str
    """Whose worker this is: used in tags."""
    location: str
    resource_group_name: pulumi.Input[str]
    group_names: Sequence[str]
    """One container group per replica."""
    workspace_name: str
    identity_id: pulumi.Input[str]
    """ARM id of the user-assigned identity the containers run as."""
    image: str
    command: Sequence[str]
    """Exec form; it replaces the image's entrypoint (ACI runs ``command`` instead of it)."""
    env: Mapping[str, pulumi.Input[str]] = field(default_factory=dict)
    """Plain values: nothing secret."""
    secret_env: Mapping[str, pulumi.Input[str]] = field(default_factory=dict, repr=False)
    """Secure values: never returned by ARM; no secure variable at all when empty."""
    cpu: float = DEFAULT_CPU
    memory_gb: float = DEFAULT_MEMORY_GB


class ContainerInstanceWorkerOutputs(TypedDict):
    """What the component registers and the stack exports, one name per value."""

    worker_container_groups: pulumi.Output[list[str]]
    """The groups' names (``az container logs --name``)."""
    worker_log_workspace_id: pulumi.Output[str]
    """ARM id of the Log Analytics workspace."""
    worker_log_workspace_customer_id: pulumi.Output[str]
    """The workspace's own id, which log queries take (``az monitor log-analytics query -w``)."""


def environment(
    env: Mapping[str, pulumi.Input[str]], secret_env: Mapping[str, pulumi.Input[str]]
) -> list[containerinstance.EnvironmentVariableArgs]:
    """The container's variables: ``env`` as plain values, ``secret_env`` as secure values
    marked secret. A name in both is refused: which value the container sees would be ACI's
    choice."""
    both = sorted(env.keys() & secret_env.keys())
    if both:
        raise ValueError(f"environment variables both plain and secret: {', '.join(both)}")
    plain = [containerinstance.EnvironmentVariableArgs(name=k, value=v) for k, v in env.items()]
    secure = [
        containerinstance.EnvironmentVariableArgs(name=k, secure_value=pulumi.Output.secret(v))
        for k, v in secret_env.items()
    ]
    return plain + secure


class ContainerInstanceWorker(pulumi.ComponentResource):
    """Container groups running one command as a managed identity; see the module doc.

    ``opts.depends_on`` is passed on to the container groups: a component's own dependencies
    do not hold its children back, and the containers must not start before what they need
    (nor outlive it on destroy).
    """

    outputs: ContainerInstanceWorkerOutputs

    def __init__(
        self,
        name: str,
        args: ContainerInstanceWorkerArgs,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        if not args.group_names:
            # Refused before the component registers: a half-registered component leaves the
            # engine (or a test's mocks) with an RPC nobody awaits.
            raise ValueError("a worker needs at least one container group")
        super().__init__(TYPE_TOKEN, name, None, opts)
        after = opts.depends_on if opts is not None else None
        arm_tags = tags(args.pool)

        workspace = operationalinsights.Workspace(
            f"{name}-logs",
            workspace_name=args.workspace_name,
            resource_group_name=args.resource_group_name,
            location=args.location,
            sku=operationalinsights.WorkspaceSkuArgs(name="PerGB2018"),
            retention_in_days=LOG_RETENTION_DAYS,
            tags=arm_tags,
            opts=pulumi.ResourceOptions(parent=self),
        )
        container = containerinstance.ContainerArgs(
            name=CONTAINER_NAME,
            image=args.image,
            command=list(args.command),
            environment_variables=environment(args.env, args.secret_env),
            resources=containerinstance.ResourceRequirementsArgs(
                requests=containerinstance.ResourceRequestsArgs(
                    cpu=args.cpu, memory_in_gb=args.memory_gb
                )
            ),
        )
        identity = containerinstance.ContainerGroupIdentityArgs(
            type=containerinstance.ResourceIdentityType.USER_ASSIGNED,
            user_assigned_identities=[args.identity_id],
        )
        routed: list[pulumi.Output[str]] = []
        for index, group_name in enumerate(args.group_names):
            group = containerinstance.ContainerGroup(
                f"{name}-{index}",
                container_group_name=group_name,
                resource_group_name=args.resource_group_name,
                location=args.location,
                os_type=containerinstance.OperatingSystemTypes.LINUX,
                # A worker is a service: ACI starts it again whenever it exits.
                restart_policy=containerinstance.ContainerGroupRestartPolicy.ALWAYS,
                identity=identity,
                containers=[container],
                tags=arm_tags,
                opts=pulumi.ResourceOptions(parent=self, depends_on=after),
            )
            setting = monitor.DiagnosticSetting(
                f"{name}-{index}-logs",
                name=DIAGNOSTIC_SETTING_NAME,
                resource_uri=group.id,
                workspace_id=workspace.id,
                # Resource-specific tables (ContainerInstanceLog, ContainerEvent), not the
                # catch-all AzureDiagnostics.
                log_analytics_destination_type="Dedicated",
                logs=[
                    monitor.DiagnosticsLogSettingsArgs(category=category, enabled=True)
                    for category in LOG_CATEGORIES
                ],
                opts=pulumi.ResourceOptions(parent=self),
            )
            routed.append(setting.id)

        names = list(args.group_names)
        self.outputs = ContainerInstanceWorkerOutputs(
            # Known once every group runs with its logs routed.
            worker_container_groups=pulumi.Output.all(*routed).apply(lambda _: names),
            worker_log_workspace_id=workspace.id,
            worker_log_workspace_customer_id=workspace.customer_id,
        )
        self.register_outputs(dict(self.outputs))
