"""The explicit mapping from Prefect work-pool type to the target that provisions it.

Plain data, imported by ``provision --help``: no pydantic, no pulumi, no cloud SDK. A target is
imported only when a pool of its kind is used. Adding a pool type is one :class:`TargetSpec`
(its module and its flags) and one :class:`PoolType` line per Prefect type string.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, Literal

from provision.errors import InvalidInputError

if TYPE_CHECKING:
    from provision.targets.base import Pool


@dataclass(frozen=True)
class PoolType:
    """One Prefect work-pool type the tool can provision."""

    name: str
    """Prefect's type string, e.g. ``cloud-run-v2:push``."""
    target: str
    """Key of the :class:`TargetSpec` in :data:`TARGETS`, e.g. ``gcp``."""
    worker_type: str
    """The type whose default base job template the pool starts from (``cloud-run-v2``)."""
    push: bool
    """Prefect Cloud submits the flow runs itself: no worker."""
    description: str
    cloud_only: bool = False
    """Exists only on Prefect Cloud. Every push type does; ``prefect:managed`` too."""

    @property
    def prefect_cloud_only(self) -> bool:
        """Whether a self-hosted server refuses this type."""
        return self.push or self.cloud_only


FlagKind = Literal["str", "int", "bool", "list"]


@dataclass(frozen=True)
class Flag:
    """One CLI flag of a target. Its key is a field of the target's options model (a test holds
    the two together), so an option is declared here and typed there, nowhere else."""

    key: str
    help: str
    kind: FlagKind = "str"
    decls: tuple[str, ...] = ()
    """Click declarations when not ``--key-with-dashes`` (``--a/--b`` switches, singular names
    of repeatable flags)."""
    panel: str | None = None
    """The ``--help`` panel of a flag several targets share as one (``Worker``); default: the
    labels of the targets declaring it."""

    @property
    def name(self) -> str:
        """The flag as users type it (the first declaration)."""
        return (self.decls[0].split("/")[0]) if self.decls else _dashed(self.key)


def _dashed(key: str) -> str:
    return "--" + key.replace("_", "-")


def flag(key: str) -> str:
    """The CLI flag of an option key as users type it: the name a target declares for it
    (``pip_packages`` → ``--pip-package``), else the key with dashes (``vpc_id`` → ``--vpc-id``).
    """
    declared = all_flags().get(key)
    return declared[0][1].name if declared else _dashed(key)


@dataclass(frozen=True)
class TargetSpec:
    """Where a target lives and which flags it takes."""

    key: str
    label: str
    """Its name in ``--help`` panels and the types table: ``GCP``, ``Modal``."""
    impl: str
    """``module:Class`` of its :class:`~provision.targets.base.Pool`, imported on first use."""
    flags: tuple[Flag, ...] = ()


WORKER_FLAGS: tuple[Flag, ...] = (
    Flag(
        "with_worker",
        "Run the pool's worker in the cloud as the pool's own identity: no key, access key or "
        "client secret is made (worker-based types).",
        "bool",
        ("--with-worker/--without-worker",),
        panel="Worker",
    ),
    Flag(
        "worker_image",
        "Worker image (default: Prefect's official image for the server's version).",
        panel="Worker",
    ),
    Flag("worker_count", "Number of workers (default 1).", "int", panel="Worker"),
    Flag(
        "worker_api_key_env",
        "Environment variable holding the worker's own Prefect API key or auth string "
        "(default: yours, after the plan says so).",
        panel="Worker",
    ),
)
"""The flags of every target that can run the pool's worker (``WorkerOptions``)."""

ROTATION_FLAGS: tuple[Flag, ...] = (
    Flag(
        "rotate_after",
        "Rotate the pool's credential on any `up` once it is older than DAYS (saved).",
        "int",
        panel="Credential",
    ),
)
"""The flags of every target whose block holds a credential it makes (``RotationOptions``)."""

TARGETS: dict[str, TargetSpec] = {
    t.key: t
    for t in (
        TargetSpec(
            "gcp",
            "GCP",
            "provision.targets.gcp:GcpPool",
            (
                Flag("project", "GCP project id."),
                Flag("region", "GCP region (Cloud Run or Vertex AI)."),
                Flag("worker_account_id", "Worker service-account id (default: from the pool)."),
                Flag("runtime_account_id", "Runtime service-account id (default: from the pool)."),
                Flag("repository_id", "Artifact Registry repository id (default: <pool>-images)."),
                Flag(
                    "registry_writer",
                    "Grant the worker write access to the registry (for image pushes).",
                    "bool",
                    ("--registry-writer/--registry-reader",),
                ),
                *WORKER_FLAGS,
                *ROTATION_FLAGS,
            ),
        ),
        TargetSpec(
            "aws",
            "AWS",
            "provision.targets.aws:AwsPool",
            (
                Flag("region", "AWS region."),
                Flag("profile", "AWS profile (default: the AWS default chain)."),
                Flag("vpc_id", "Use this existing VPC (with --subnet-ids); no network is created."),
                Flag("subnet_ids", "Comma-separated subnet ids in --vpc-id."),
                Flag("vpc_cidr", "CIDR of the VPC to create (private /16-/24)."),
                Flag("log_retention_days", "CloudWatch log retention in days (default 30).", "int"),
                Flag(
                    "task_role_policy_arns",
                    "Managed policy for the flows' task role (repeatable; creates the task role).",
                    "list",
                    ("--task-role-policy-arn",),
                ),
                Flag(
                    "ecr_keep_images",
                    "ECR lifecycle: keep the last N images (default 30).",
                    "int",
                ),
                *WORKER_FLAGS,
                *ROTATION_FLAGS,
            ),
        ),
        TargetSpec(
            "azure",
            "Azure",
            "provision.targets.azure:AzurePool",
            (
                Flag(
                    "subscription",
                    "Azure subscription id (default: AZURE_SUBSCRIPTION_ID or the Azure CLI's).",
                ),
                Flag("location", "Azure location, e.g. westeurope."),
                Flag("resource_group", "Resource group name (default: <pool>-rg)."),
                Flag(
                    "registry_name",
                    "Container registry name (5-50 alphanumerics; default: from the pool).",
                ),
                Flag("registry_sku", "Container registry SKU: Basic (default), Standard, Premium."),
                Flag(
                    "secret_days", "Lifetime of the app's client secret, days (default 365).", "int"
                ),
                *WORKER_FLAGS,
                *ROTATION_FLAGS,
            ),
        ),
        TargetSpec("modal", "Modal", "provision.targets.modal:ModalPool"),
        TargetSpec("coiled", "Coiled", "provision.targets.coiled:CoiledPool"),
        TargetSpec(
            "prefect",
            "Prefect managed",
            "provision.targets.managed:ManagedPool",
            (
                Flag(
                    "pip_packages",
                    "Package the managed runs install, e.g. pandas==2.2 (repeatable).",
                    "list",
                    ("--pip-package",),
                ),
                Flag(
                    "env",
                    "Environment variable for the managed runs: KEY=VALUE (repeatable).",
                    "list",
                ),
            ),
        ),
    )
}

POOL_TYPES: dict[str, PoolType] = {
    p.name: p
    for p in (
        PoolType("cloud-run:push", "gcp", "cloud-run", True, "Cloud Run jobs (v1 API), push"),
        PoolType("cloud-run-v2:push", "gcp", "cloud-run-v2", True, "Google Cloud Run jobs, push"),
        PoolType("cloud-run", "gcp", "cloud-run", False, "Cloud Run jobs (v1 API), worker"),
        PoolType("cloud-run-v2", "gcp", "cloud-run-v2", False, "Google Cloud Run jobs, worker"),
        PoolType("vertex-ai", "gcp", "vertex-ai", False, "Google Vertex AI custom jobs, worker"),
        PoolType("ecs:push", "aws", "ecs", True, "AWS ECS tasks on Fargate, push"),
        PoolType("ecs", "aws", "ecs", False, "AWS ECS tasks on Fargate, worker"),
        PoolType(
            "azure-container-instance:push",
            "azure",
            "azure-container-instance",
            True,
            "Azure Container Instances, push",
        ),
        PoolType(
            "azure-container-instance",
            "azure",
            "azure-container-instance",
            False,
            "Azure Container Instances, worker",
        ),
        PoolType("modal:push", "modal", "modal", True, "Modal serverless containers, push"),
        PoolType("coiled:push", "coiled", "coiled", True, "Coiled cloud VMs, push"),
        PoolType(
            "prefect:managed",
            "prefect",
            "prefect:managed",
            False,
            "Prefect-managed infrastructure (Prefect Cloud)",
            cloud_only=True,
        ),
    )
}


def pool_type(name: str) -> PoolType:
    """Look up a pool type, or fail with the list of supported ones."""
    try:
        return POOL_TYPES[name]
    except KeyError:
        known = ", ".join(POOL_TYPES)
        raise InvalidInputError(f"Unknown work pool type '{name}'. Supported: {known}.") from None


@cache
def target(key: str) -> type[Pool]:
    """The :class:`~provision.targets.base.Pool` class of a target key (imported on first use)."""
    module_name, _, cls_name = TARGETS[key].impl.partition(":")
    return getattr(importlib.import_module(module_name), cls_name)


def all_flags() -> dict[str, list[tuple[str, Flag]]]:
    """Every target's flags by option key, each with the label of the target declaring it.

    Two targets may take the same key (``region``: GCP and AWS): the CLI then has one flag,
    declared as the first target declares it, whose help joins each target's text.
    """
    merged: dict[str, list[tuple[str, Flag]]] = {}
    for spec in TARGETS.values():
        for f in spec.flags:
            merged.setdefault(f.key, []).append((spec.label, f))
    return merged
