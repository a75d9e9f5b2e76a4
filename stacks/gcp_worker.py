"""A container that polls for work, run in GCP as a service account: a Cloud Run worker pool.

``CloudRunWorker`` creates, in one project and region:

- the APIs it needs that are not on yet (the caller says which);
- for each secret environment variable, a Secret Manager secret replicated only to the region,
  its one version holding the value, and ``roles/secretmanager.secretAccessor`` on that secret
  alone for the service account the container runs as;
- a Cloud Run worker pool running ``count`` instances of the container as that account: the
  plain variables as values, each secret one as a reference to its secret's version.

Why a worker pool, not a service: a worker pool is Cloud Run's resource for pull-based work.
It has no endpoint, no request-driven scaling and no CPU throttling between requests, so a
process that polls needs no health-check port, no ``--min-instances`` and no
``--no-cpu-throttling`` to stay alive (what a service needs for it: Prefect's Cloud Run worker
guide deploys its worker as a service with exactly those flags, PrefectHQ/prefect
``docs/integrations/prefect-gcp/gcp-worker-guide.mdx``).

Logs: Cloud Run sends the container's stdout and stderr to Cloud Logging itself ("Container
logs (services, jobs, and worker pools) ... are automatically sent to Cloud Logging",
cloud.google.com/run/docs/logging), so the service account needs no logging role; it would
only for calls to the Logging API from the code, which a worker does not make.

The command is the container's ``args``, not its ``command``: an image's entrypoint stays in
place (Prefect's images install ``EXTRA_PIP_PACKAGES`` in theirs, PrefectHQ/prefect
``scripts/entrypoint.sh``, then ``exec`` the arguments).

Images: Cloud Run runs Artifact Registry and public Docker Hub images as they are ("You can
directly use container images stored in Artifact Registry, or Docker Hub",
cloud.google.com/run/docs/deploying), so Prefect's official image needs no mirror.

It is plain Pulumi: it knows nothing of Prefect or of the tool that drives it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TypedDict

import pulumi

from stacks import sdk_modules
from stacks.gcp_cloud_run import label_value

_gcp = sdk_modules.load(
    "pulumi_gcp",
    cloudrunv2=("_inputs", "worker_pool"),
    projects=("service",),
    secretmanager=("_inputs", "secret", "secret_iam_member", "secret_version"),
)
cloudrunv2 = _gcp.cloudrunv2
projects = _gcp.projects
secretmanager = _gcp.secretmanager

TYPE_TOKEN = "provision:gcp:CloudRunWorker"

SECRET_ACCESSOR = "roles/secretmanager.secretAccessor"
SECRET_MANAGER_API = "secretmanager.googleapis.com"
RUN_API = "run.googleapis.com"

DEFAULT_CPU = "1"
"""One vCPU: Cloud Run's default, and what Prefect's guide runs its worker with (it sets no
``--cpu``); a worker polls and submits jobs, it runs no flow itself. Worker pools take whole
vCPUs only (1, 2, 4, 6 or 8: pulumi-gcp ``WorkerPoolTemplateContainerResourcesArgs``)."""
DEFAULT_MEMORY = "2Gi"
"""Prefect's own worker deployments: 2048 MiB beside 1024 CPU units in its ECS worker module
(PrefectHQ/terraform-prefect-ecs-worker ``variables.tf``: ``worker_memory``, ``worker_cpu``).
Cloud Run's 512 MiB default is tight while the entrypoint pip-installs the integration."""

_IAM_TIMEOUTS = pulumi.CustomTimeouts(create="10m", update="10m", delete="10m")


@dataclass
class CloudRunWorkerArgs:
    """Inputs of :class:`CloudRunWorker`. Ids must already satisfy GCP's naming rules."""

    pool: str
    """Name of what the worker serves; used in labels and descriptions."""
    project: str
    region: str
    worker_pool_id: str
    """The Cloud Run worker pool's id (lowercase, fewer than 50 characters)."""
    service_account_email: pulumi.Input[str]
    """The identity the container runs as; it gets read access to the secrets."""
    image: str
    args: Sequence[str]
    """The command, run by the image's entrypoint."""
    env: Mapping[str, str] = field(default_factory=dict)
    """Plain environment variables."""
    secret_env: Mapping[str, pulumi.Input[str]] = field(default_factory=dict, repr=False)
    """Variable name → secret value: each becomes a secret and reaches the container as a
    reference to it, never as a value."""
    secret_ids: Mapping[str, str] = field(default_factory=dict)
    """Variable name → the id of its Secret Manager secret (one per ``secret_env`` key)."""
    count: int = 1
    cpu: str = DEFAULT_CPU
    memory: str = DEFAULT_MEMORY
    services: Sequence[str] = ()
    """APIs to enable first (left on at destroy: other workloads may use them)."""


class CloudRunWorkerOutputs(TypedDict):
    """What the component registers and the stack exports, one name per value."""

    worker_pool_name: pulumi.Output[str]
    worker_pool_id: pulumi.Output[str]
    """``projects/<project>/locations/<region>/workerPools/<name>``."""
    worker_secret_ids: list[str]
    """The Secret Manager secrets the worker reads (none when it needs no credential)."""


class CloudRunWorker(pulumi.ComponentResource):
    """A polling container in Cloud Run with its secrets; see the module doc."""

    outputs: CloudRunWorkerOutputs

    def __init__(
        self, name: str, args: CloudRunWorkerArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        missing = sorted(set(args.secret_env) - set(args.secret_ids))
        if missing:
            raise ValueError(f"no secret id for {', '.join(missing)}")
        if args.count < 1:
            raise ValueError(f"count must be at least 1, not {args.count}")
        super().__init__(TYPE_TOKEN, name, None, opts)
        # The caller's ordering (after the work the container polls for exists) holds for every
        # child: a component's depends_on is not inherited by its children.
        after = _resources(opts.depends_on if opts else None)

        def child(*depends_on: pulumi.Resource, **extra) -> pulumi.ResourceOptions:
            return pulumi.ResourceOptions(parent=self, depends_on=[*after, *depends_on], **extra)

        project = args.project
        labels = {"managed-by": "provision", "prefect-work-pool": label_value(args.pool)}
        services = {
            api: projects.Service(
                f"{name}-api-{api.split('.')[0]}",
                project=project,
                service=api,
                disable_on_destroy=False,
                disable_dependent_services=False,
                opts=child(),
            )
            for api in args.services
        }
        member = pulumi.Output.concat("serviceAccount:", args.service_account_email)

        envs: list[cloudrunv2.WorkerPoolTemplateContainerEnvArgs] = [
            cloudrunv2.WorkerPoolTemplateContainerEnvArgs(name=key, value=value)
            for key, value in sorted(args.env.items())
        ]
        grants: list[pulumi.Resource] = []
        for key in sorted(args.secret_env):
            stem = f"{name}-secret-{key.lower().replace('_', '-')}"
            secret = secretmanager.Secret(
                stem,
                project=project,
                secret_id=args.secret_ids[key],
                # Replicated to the worker's region only: a region's outage stops the worker
                # anyway, and an automatic (global) policy is refused where an organisation
                # restricts resource locations (cloud.google.com/secret-manager/docs/
                # choosing-replication: it "can only be created if resource creation in global
                # is allowed").
                replication=secretmanager.SecretReplicationArgs(
                    user_managed=secretmanager.SecretReplicationUserManagedArgs(
                        replicas=[
                            secretmanager.SecretReplicationUserManagedReplicaArgs(
                                location=args.region
                            )
                        ]
                    )
                ),
                labels=labels,
                opts=child(*services.values()),
            )
            version = secretmanager.SecretVersion(
                f"{stem}-version",
                secret=secret.id,
                secret_data=pulumi.Output.secret(args.secret_env[key]),
                opts=child(),
            )
            grants.append(
                secretmanager.SecretIamMember(
                    f"{stem}-accessor",
                    project=project,
                    # On the secret's own policy: the account reads this secret and no other.
                    secret_id=secret.id,
                    role=SECRET_ACCESSOR,
                    member=member,
                    opts=child(custom_timeouts=_IAM_TIMEOUTS),
                )
            )
            envs.append(
                cloudrunv2.WorkerPoolTemplateContainerEnvArgs(
                    name=key,
                    value_source=cloudrunv2.WorkerPoolTemplateContainerEnvValueSourceArgs(
                        secret_key_ref=(
                            cloudrunv2.WorkerPoolTemplateContainerEnvValueSourceSecretKeyRefArgs(
                                secret=secret.secret_id,
                                # Pinned, not "latest": a new value is a new version, hence a
                                # new revision, so the running worker picks it up.
                                version=version.version,
                            )
                        )
                    ),
                )
            )

        pool = cloudrunv2.WorkerPool(
            f"{name}-pool",
            project=project,
            location=args.region,
            name=args.worker_pool_id,
            description=f"Prefect worker of pool {args.pool}. Managed by provision."[:512],
            labels=labels,
            # Off, so that destroy can delete it (the provider refuses while it is on).
            deletion_protection=False,
            scaling=cloudrunv2.WorkerPoolScalingArgs(
                scaling_mode="MANUAL", manual_instance_count=args.count
            ),
            template=cloudrunv2.WorkerPoolTemplateArgs(
                service_account=args.service_account_email,
                labels=labels,
                containers=[
                    cloudrunv2.WorkerPoolTemplateContainerArgs(
                        name="worker",
                        image=args.image,
                        args=list(args.args),
                        envs=envs,
                        resources=cloudrunv2.WorkerPoolTemplateContainerResourcesArgs(
                            limits={"cpu": args.cpu, "memory": args.memory}
                        ),
                    )
                ],
            ),
            # Its revision reads the secrets as the account at deploy time: grants first.
            opts=child(*services.values(), *grants),
        )

        self.outputs = CloudRunWorkerOutputs(
            worker_pool_name=pool.name,
            worker_pool_id=pool.id,
            worker_secret_ids=[args.secret_ids[k] for k in sorted(args.secret_env)],
        )
        self.register_outputs(dict(self.outputs))


def _resources(depends_on: object) -> list[pulumi.Resource]:
    """The resources of a ``depends_on`` option (one resource, or a list of them)."""
    if isinstance(depends_on, pulumi.Resource):
        return [depends_on]
    if isinstance(depends_on, list | tuple):
        return [r for r in depends_on if isinstance(r, pulumi.Resource)]
    return []
