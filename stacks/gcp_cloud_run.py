"""A GCP project's side of a serverless job pool: APIs, image registry, identities, least grants.

``CloudRunPool`` creates, in one project and region:

- the APIs the resources and the jobs need (never disabled on destroy: other things in the
  project may use them);
- a Docker Artifact Registry repository for the job images;
- a *worker* service account, whose key is the credential handed to the job submitter, and a
  *runtime* service account the jobs execute as (it gets no roles here: grant it what the jobs
  themselves need);
- a project custom role holding exactly the API calls the submitter makes for the chosen job
  flavor (Cloud Run v1, Cloud Run v2 or Vertex AI custom jobs), granted to the worker;
- ``roles/iam.serviceAccountUser`` for the worker on the runtime account only, so it can start
  jobs as that account and as no other;
- reader (or writer) on the repository only;
- one key for the worker account, unless ``keyless``: then the worker account is the identity
  of a worker running in the project (``stacks/gcp_worker.py``), which needs no key. A new
  ``credential_rotation`` (the key's ``keepers``) replaces the key, create-before-delete:
  whatever reads the key output gets the new key before the old one is deleted.

It is plain Pulumi: it knows nothing of the tool that drives it or of what submits the jobs.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, NotRequired, TypedDict, get_args

import pulumi

from stacks import sdk_modules
from stacks.gcp_registry import image_namespace, registry_host

_gcp = sdk_modules.load(
    "pulumi_gcp",
    artifactregistry=("repository", "repository_iam_member"),
    projects=("iam_custom_role", "iam_member", "service"),
    serviceaccount=("account", "iam_member", "key"),
)
artifactregistry = _gcp.artifactregistry
projects = _gcp.projects
serviceaccount = _gcp.serviceaccount

Flavor = Literal["cloud-run", "cloud-run-v2", "vertex-ai"]
FLAVORS: tuple[str, ...] = get_args(Flavor)

TYPE_TOKEN = "provision:gcp:CloudRunPool"

_RUN_V1 = (
    # Cloud Run Admin API v1 (namespaces.jobs.*, namespaces.executions.get), as called by a
    # job submitter that creates a job, runs it, polls the execution and deletes the job.
    "run.jobs.create",
    "run.jobs.get",
    "run.jobs.run",
    "run.executions.get",
    "run.jobs.delete",
)

PERMISSIONS: dict[str, tuple[str, ...]] = {
    "cloud-run": _RUN_V1,
    # The v2 API call set is the same, plus: deleting a job first lists its executions and
    # deletes each one (projects.locations.jobs.executions.list/delete). Jobs are started with
    # jobs.run without overrides, so run.jobs.runWithOverrides is not needed, and job creation
    # is followed by polling jobs.get, not the returned operation, so no run.operations.get.
    "cloud-run-v2": (*_RUN_V1, "run.executions.list", "run.executions.delete"),
    # Vertex AI JobService: create_custom_job, get_custom_job (polling), cancel_custom_job.
    "vertex-ai": (
        "aiplatform.customJobs.create",
        "aiplatform.customJobs.get",
        "aiplatform.customJobs.cancel",
    ),
}
"""Per job flavor, exactly the permissions the job submitter's API calls require."""

_COMMON_SERVICES = (
    "artifactregistry.googleapis.com",
    # Service accounts, keys and custom roles are IAM API resources.
    "iam.googleapis.com",
    # Project-level IAM bindings are read-modify-write calls on the Resource Manager API.
    "cloudresourcemanager.googleapis.com",
)

SERVICES: dict[str, tuple[str, ...]] = {
    "cloud-run": ("run.googleapis.com", *_COMMON_SERVICES),
    "cloud-run-v2": ("run.googleapis.com", *_COMMON_SERVICES),
    "vertex-ai": ("aiplatform.googleapis.com", *_COMMON_SERVICES),
}
"""Per job flavor, the APIs the stack enables (the jobs' API first)."""

REGISTRY_READER = "roles/artifactregistry.reader"
REGISTRY_WRITER = "roles/artifactregistry.writer"
ACT_AS_ROLE = "roles/iam.serviceAccountUser"

# Grants and keys hit IAM right after the identities they name were created; the provider
# retries its own eventual-consistency errors inside these windows, so give them room (and a
# bound, so a stuck call fails instead of hanging the run).
_IAM_TIMEOUTS = pulumi.CustomTimeouts(create="10m", update="10m", delete="10m")

_LABEL_MAX = 63


def label_value(value: str) -> str:
    """``value`` as a valid GCP label value: lowercase ``[a-z0-9_-]``, at most 63 chars."""
    return re.sub(r"[^a-z0-9_-]", "-", value.lower())[:_LABEL_MAX]


ROTATION_KEEPER = "rotation"
"""The key's ``keepers`` entry holding the rotation count."""

NO_EXPIRY_YEAR = 9999
"""A user-managed key made without an expiry policy is valid before 9999-12-31T23:59:59Z."""


def key_expiry(valid_before: str | None) -> str | None:
    """``valid_before`` if it is a real expiry (an organization's
    ``constraints/iam.serviceAccountKeyExpiryHours``); ``None`` for GCP's "never" (year 9999),
    or nothing usable."""
    if not valid_before:
        return None
    try:
        year = datetime.fromisoformat(valid_before.replace("Z", "+00:00")).year
    except ValueError:
        return None
    return None if year >= NO_EXPIRY_YEAR else valid_before


@dataclass
class CloudRunPoolArgs:
    """Inputs of :class:`CloudRunPool`. Ids must already satisfy GCP's naming rules."""

    pool: str
    """Name of the pool these resources serve; used in labels and descriptions."""
    project: str
    region: str
    flavor: Flavor
    """Which job API the submitter uses; decides the enabled API and the custom role."""
    worker_account_id: str
    runtime_account_id: str
    repository_id: str
    role_id: str
    """Custom role id, unique per stack (GCP reserves deleted role ids for weeks)."""
    registry_writer: bool = False
    """Grant the worker write access to the repository (to push images with its key)."""
    keyless: bool = False
    """Make no key: the worker account is used only by a worker that runs as it in GCP."""
    credential_rotation: str | None = None
    """Kept in the key's ``keepers``: a new value makes a new key, created before the old one is
    deleted. ``None``: no keepers, as for a key never rotated (so a key made before rotation
    existed is kept, and its first rotation, absent to a value, still replaces it)."""


class CloudRunPoolOutputs(TypedDict):
    """What the component registers and the stack exports, one name per value."""

    project: pulumi.Input[str]
    region: pulumi.Input[str]
    worker_service_account_email: pulumi.Output[str]
    runtime_service_account_email: pulumi.Output[str]
    service_account_key: NotRequired[pulumi.Output[str]]
    """The worker key as GCP returns it: base64 of the JSON key file. Secret. Absent when
    ``keyless``."""
    credential_created_at: NotRequired[pulumi.Output[str]]
    """When the key became valid (its ``validAfterTime``, RFC 3339 UTC). Absent when
    ``keyless``."""
    credential_expires_at: NotRequired[pulumi.Output[str | None]]
    """When the key stops working (``validBeforeTime``), or ``None`` for a key that never
    expires (GCP's default). Absent when ``keyless``."""
    registry_host: pulumi.Input[str]
    image_namespace: pulumi.Output[str]
    repository_id: pulumi.Output[str]
    custom_role_id: pulumi.Output[str]


class CloudRunPool(pulumi.ComponentResource):
    """Everything a job submitter needs in one GCP project and region; see the module doc."""

    outputs: CloudRunPoolOutputs
    """Full role name, ``projects/<project>/roles/<role id>``."""

    def __init__(
        self, name: str, args: CloudRunPoolArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        if args.flavor not in PERMISSIONS:
            raise ValueError(f"flavor must be one of {', '.join(FLAVORS)}, not {args.flavor!r}")
        super().__init__(TYPE_TOKEN, name, None, opts)

        def child(**extra) -> pulumi.ResourceOptions:
            return pulumi.ResourceOptions(parent=self, **extra)

        project = args.project
        labels = {"managed-by": "provision", "prefect-work-pool": label_value(args.pool)}

        # -- APIs. Left enabled on destroy: disabling an API breaks whatever else uses it.
        services = {
            api: projects.Service(
                f"{name}-api-{api.split('.')[0]}",
                project=project,
                service=api,
                disable_on_destroy=False,
                disable_dependent_services=False,
                opts=child(),
            )
            for api in SERVICES[args.flavor]
        }
        jobs_api = services[SERVICES[args.flavor][0]]
        iam_api = services["iam.googleapis.com"]
        crm_api = services["cloudresourcemanager.googleapis.com"]
        registry_api = services["artifactregistry.googleapis.com"]

        # -- Registry for the job images.
        repository = artifactregistry.Repository(
            f"{name}-repository",
            project=project,
            location=args.region,
            repository_id=args.repository_id,
            format="DOCKER",
            description=f"Job images of pool {args.pool}"[:256],
            labels=labels,
            opts=child(depends_on=[registry_api]),
        )

        # -- Identities.
        worker = serviceaccount.Account(
            f"{name}-worker",
            project=project,
            account_id=args.worker_account_id,
            display_name=f"{args.pool} worker"[:100],
            description=(
                f"Submits the jobs of pool {args.pool}; its key is the pool's credential. "
                "Managed by provision."
            )[:256],
            opts=child(depends_on=[iam_api]),
        )
        runtime = serviceaccount.Account(
            f"{name}-runtime",
            project=project,
            account_id=args.runtime_account_id,
            display_name=f"{args.pool} jobs"[:100],
            description=(
                f"Identity the jobs of pool {args.pool} run as; grant it what the jobs need. "
                "Managed by provision."
            )[:256],
            opts=child(depends_on=[iam_api]),
        )

        # -- Least privilege for the worker.
        role = projects.IAMCustomRole(
            f"{name}-role",
            project=project,
            role_id=args.role_id,
            title=f"provision {args.flavor} submitter for {args.pool}"[:100],
            description=(
                f"Exactly the {args.flavor} API calls a job submitter makes. Managed by provision."
            )[:256],
            permissions=list(PERMISSIONS[args.flavor]),
            stage="GA",
            opts=child(depends_on=[iam_api]),
        )
        # New accounts and roles take a while to become visible to IAM policies: every grant
        # waits for what it names, and the engine retries ``up`` on the propagation errors.
        role_grant = projects.IAMMember(
            f"{name}-worker-role",
            project=project,
            role=role.name,
            member=worker.member,
            opts=child(depends_on=[role, worker, crm_api, jobs_api], custom_timeouts=_IAM_TIMEOUTS),
        )
        act_as = serviceaccount.IAMMember(
            f"{name}-worker-acts-as-runtime",
            # The binding is on the runtime account's own policy, not the project's: the
            # worker may start jobs as this account and as no other.
            service_account_id=runtime.name,
            role=ACT_AS_ROLE,
            member=worker.member,
            opts=child(depends_on=[runtime, worker], custom_timeouts=_IAM_TIMEOUTS),
        )
        registry_grant = artifactregistry.RepositoryIamMember(
            f"{name}-worker-registry",
            project=project,
            location=repository.location,
            repository=repository.name,
            role=REGISTRY_WRITER if args.registry_writer else REGISTRY_READER,
            member=worker.member,
            opts=child(depends_on=[repository, worker], custom_timeouts=_IAM_TIMEOUTS),
        )

        # -- The credential, last: a key that exists means its grants exist. Its inputs are
        # constants and the account's name, so a rerun never replaces it (GCP allows only 10
        # keys per account); only a new ``credential_rotation`` does. Keyless, the account is
        # a running worker's identity and no key exists at all.
        key: dict[str, pulumi.Output[Any]] = {}
        worker_email: pulumi.Output[str] = worker.email
        if args.keyless:
            # What the key's existence meant, the identity's output means instead: it resolves
            # once every grant exists, so a worker deployed with it starts with its permissions.
            ready = [role_grant.id, act_as.id, registry_grant.id]
            ready += [s.id for s in services.values()]
            worker_email = pulumi.Output.all(worker.email, *ready).apply(lambda v: v[0])
        else:
            # A rotation changes ``keepers``, which forces a new key (ForceNew in terraform-
            # provider-google); the engine's default create-before-delete then makes the new
            # key, updates what reads it, and deletes the old key last. Never
            # delete_before_replace: the reader would hold a dead key meanwhile. Not the
            # ``replacement_trigger`` option: the engine ignores a trigger that goes from none
            # to a value, and a key never rotated has none.
            rotation = args.credential_rotation
            made = serviceaccount.Key(
                f"{name}-worker-key",
                service_account_id=worker.name,
                private_key_type="TYPE_GOOGLE_CREDENTIALS_FILE",
                keepers={ROTATION_KEEPER: rotation} if rotation is not None else None,
                opts=child(
                    depends_on=[worker, role_grant, act_as, registry_grant, *services.values()],
                    custom_timeouts=_IAM_TIMEOUTS,
                ),
            )
            # pulumi-gcp already marks privateKey secret; wrap anyway so no refactor leaks it.
            key["service_account_key"] = pulumi.Output.secret(made.private_key)
            key["credential_created_at"] = made.valid_after
            key["credential_expires_at"] = made.valid_before.apply(key_expiry)

        self.outputs = CloudRunPoolOutputs(
            project=project,
            region=args.region,
            worker_service_account_email=worker_email,
            runtime_service_account_email=runtime.email,
            **key,
            registry_host=registry_host(args.region),
            # From the repository's outputs, so the namespace is only known once it exists.
            image_namespace=repository.repository_id.apply(
                lambda rid: image_namespace(args.region, project, rid)
            ),
            repository_id=repository.repository_id,
            custom_role_id=role.name,
        )
        self.register_outputs(dict(self.outputs))
