"""Google Cloud: Cloud Run (v1, v2) and Vertex AI pools on ``stacks/gcp_cloud_run.py``.

With ``--with-worker`` the pool's worker runs in the project as a Cloud Run worker pool
(``stacks/gcp_worker.py``) whose identity is the worker account, so no key is made: the stack
has no ``serviceaccount.Key``, the ``gcp-credentials`` block holds only the project (prefect-gcp
then uses ``google.auth.default()``, the worker pool's account), and the worker's Prefect
credential is a Secret Manager secret only that account may read.

Options come from the flags, then the pool's saved options, then the environment and gcloud's
own configuration files (read, never executed), then defaults. Pulumi and pulumi-gcp are
imported only when a program, a grant list or a plan needs them, so ``--help`` stays fast.
"""

from __future__ import annotations

import base64
import binascii
import configparser
import difflib
import json
import os
import re
import secrets
import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationInfo, field_validator, model_validator

from provision.errors import InvalidInputError
from provision.recovery import Untracked
from provision.registry import PoolType, flag
from provision.targets import gcp_naming as naming
from provision.targets.base import (
    BlockSpec,
    CloudProgram,
    Credential,
    Grant,
    NextSteps,
    OptionPicker,
    Outputs,
    Pool,
    RotationOptions,
    WorkerOptions,
    WorkerProgram,
    bad_outputs,
    block_from_outputs,
    block_ref,
    generated_suffix,
    known_or_placeholder,
    origin,
    rotation_options,
    worker_options,
)
from provision.targets.gcp_errors import GCP_ERROR_RULES

# Cloud Run jobs regions (cloud.google.com/run/docs/locations, tier 1 and tier 2).
# europe-north2 (Stockholm) and northamerica-south1 (Queretaro) are newer regions that the
# snapshot of that page we read did not list yet; Cloud Run launches in every new region.
CLOUD_RUN_REGIONS: tuple[str, ...] = (
    "africa-south1",
    "asia-east1",
    "asia-east2",
    "asia-northeast1",
    "asia-northeast2",
    "asia-northeast3",
    "asia-south1",
    "asia-south2",
    "asia-southeast1",
    "asia-southeast2",
    "australia-southeast1",
    "australia-southeast2",
    "europe-central2",
    "europe-north1",
    "europe-north2",
    "europe-southwest1",
    "europe-west1",
    "europe-west2",
    "europe-west3",
    "europe-west4",
    "europe-west6",
    "europe-west8",
    "europe-west9",
    "europe-west10",
    "europe-west12",
    "me-central1",
    "me-central2",
    "me-west1",
    "northamerica-northeast1",
    "northamerica-northeast2",
    "northamerica-south1",
    "southamerica-east1",
    "southamerica-west1",
    "us-central1",
    "us-east1",
    "us-east4",
    "us-east5",
    "us-south1",
    "us-west1",
    "us-west2",
    "us-west3",
    "us-west4",
)

# Vertex AI regions (cloud.google.com/vertex-ai/docs/general/locations). Custom-job machine
# types and accelerators vary by region; the API itself is served in each of these.
VERTEX_AI_REGIONS: tuple[str, ...] = (
    "africa-south1",
    "asia-east1",
    "asia-east2",
    "asia-northeast1",
    "asia-northeast2",
    "asia-northeast3",
    "asia-south1",
    "asia-southeast1",
    "asia-southeast2",
    "australia-southeast1",
    "australia-southeast2",
    "europe-central2",
    "europe-north1",
    "europe-southwest1",
    "europe-west1",
    "europe-west2",
    "europe-west3",
    "europe-west4",
    "europe-west6",
    "europe-west8",
    "europe-west9",
    "europe-west12",
    "me-central1",
    "me-central2",
    "me-west1",
    "northamerica-northeast1",
    "northamerica-northeast2",
    "southamerica-east1",
    "southamerica-west1",
    "us-central1",
    "us-east1",
    "us-east4",
    "us-east5",
    "us-south1",
    "us-west1",
    "us-west2",
    "us-west3",
    "us-west4",
)

DEFAULT_REGION = "us-central1"
"""Used only when no flag, saved option, environment variable or gcloud property names a
region. It is gcloud's and prefect-gcp's own default, and serves Cloud Run and Vertex AI."""

# Project ids: 6-30 chars, lowercase letter first; legacy domain-scoped ids are
# ``example.com:my-proj``.
PROJECT_ID_RE = re.compile(r"^(?:[a-z0-9][a-z0-9.-]*\.[a-z]{2,}:)?[a-z][a-z0-9-]{4,28}[a-z0-9]$")

# Engine output meaning "an identity or grant created moments ago is not visible yet". The
# engine matches these case-insensitively across the whole output, so each stays on one line.
PROPAGATION_ERRORS: tuple[str, ...] = (
    # setIamPolicy naming a brand-new account: "Error 400: Service account x@p.iam... does
    # not exist., badRequest"; reading it too early: "Error 404: Service account
    # projects/p/serviceAccounts/x@... does not exist." (terraform-provider-google#18087).
    r"Service account \S+ does not exist",
    r"Error 404[^\n]*serviceAccounts",
    # The provider's read-after-create of an account seeing a 403 (terraform-provider-google
    # #10227, #15042); IAM answers 403 rather than 404 for accounts it cannot see yet.
    r"Error reading service account after creation",
    r"Permission iam\.serviceAccounts\.\w+ is required to perform this operation on service "
    r"account projects/",
    # A key requested right after its account was created.
    r"Gaia id not found for email",
    # Binding a custom role created seconds ago.
    r"does not exist in the resource's hierarchy",
    # actAs checked before the serviceAccountUser grant on the runtime account propagated.
    r"Permission '?iam\.serviceAccounts\.actAs'? denied",
    # An API this stack just enabled, not yet active everywhere. Only the APIs the stack
    # enables itself: any other disabled API is a real ApiNotEnabled error.
    r"api/(?:run|aiplatform|artifactregistry|iam|cloudresourcemanager|secretmanager)"
    r"\.googleapis\.com/[^\n]*If you enabled this API recently",
    # A worker pool revision reading its secret before the accessor grant on it propagated
    # (Cloud Run's text: "Permission denied on secret: <version> for Revision service account
    # <email>. The service account used must be granted the 'Secret Manager Secret Accessor'
    # role ...").
    r"Permission denied on secret: \S+ for Revision service account",
)


KEY = "gcp:serviceaccount/key:Key"


class GcpOptions(WorkerOptions, RotationOptions):
    """Validated options of a GCP pool; saved verbatim in the pool's record."""

    project: str
    region: str
    worker_account_id: str
    runtime_account_id: str
    repository_id: str
    registry_writer: bool = False

    @field_validator("project")
    @classmethod
    def _project(cls, value: str, info: ValidationInfo) -> str:
        if not PROJECT_ID_RE.match(value):
            raise ValueError(
                f"Invalid GCP project id '{value}'{origin(info)}: 6-30 lowercase letters, "
                "digits or hyphens, starting with a letter (e.g. my-project-123)."
            )
        return value

    @field_validator("worker_account_id", "runtime_account_id")
    @classmethod
    def _account_id(cls, value: str, info: ValidationInfo) -> str:
        if not naming.ACCOUNT_ID_RE.match(value):
            raise ValueError(
                f"Invalid {flag(str(info.field_name))} '{value}'{origin(info)}: 6-30 lowercase "
                "letters, digits or hyphens, starting with a letter and not ending with a hyphen."
            )
        return value

    @field_validator("repository_id")
    @classmethod
    def _repository_id(cls, value: str, info: ValidationInfo) -> str:
        if not naming.REPOSITORY_ID_RE.match(value):
            raise ValueError(
                f"Invalid --repository-id '{value}'{origin(info)}: up to 63 lowercase letters, "
                "digits or hyphens, starting with a letter."
            )
        return value

    @field_validator("registry_writer", mode="before")
    @classmethod
    def _registry_writer(cls, value: Any) -> Any:
        if not isinstance(value, bool):
            raise ValueError(f"--registry-writer must be true or false, not {value!r}.")
        return value

    @model_validator(mode="after")
    def _distinct_accounts(self, info: ValidationInfo) -> GcpOptions:
        if self.worker_account_id == self.runtime_account_id:
            raise ValueError(
                f"--worker-account-id and --runtime-account-id are both "
                f"'{self.worker_account_id}': the worker and the jobs must be different service "
                "accounts."
            )
        flavor = (info.context or {}).get("flavor")
        if flavor is not None:
            _validate_region(self.region, flavor, (info.context or {})["sources"].get("region", ""))
        return self


def _regions(flavor: str) -> tuple[str, tuple[str, ...]]:
    if flavor == "vertex-ai":
        return "Vertex AI", VERTEX_AI_REGIONS
    return "Cloud Run", CLOUD_RUN_REGIONS


def gcloud_config_dir(env: Mapping[str, str]) -> Path:
    """Where gcloud keeps its configurations: ``$CLOUDSDK_CONFIG`` or the platform default."""
    if env.get("CLOUDSDK_CONFIG"):
        return Path(env["CLOUDSDK_CONFIG"]).expanduser()
    if os.name == "nt" and env.get("APPDATA"):
        return Path(env["APPDATA"]) / "gcloud"
    home = Path(env["HOME"]) if env.get("HOME") else Path.home()
    return home / ".config" / "gcloud"


def gcloud_properties(env: Mapping[str, str]) -> dict[str, dict[str, str]]:
    """The active gcloud configuration as ``{section: {property: value}}``; ``{}`` if none.

    Reads ``active_config`` (or ``$CLOUDSDK_ACTIVE_CONFIG_NAME``) and then
    ``configurations/config_<name>``, the way gcloud itself resolves them. Unreadable or
    malformed files count as absent: these are only defaults.
    """
    base = gcloud_config_dir(env)
    name = env.get("CLOUDSDK_ACTIVE_CONFIG_NAME", "").strip()
    if not name:
        try:
            name = (base / "active_config").read_text().strip()
        except OSError:
            name = ""
    parser = configparser.ConfigParser(interpolation=None)
    try:
        parser.read(base / "configurations" / f"config_{name or 'default'}")
    except (configparser.Error, UnicodeDecodeError):
        return {}
    return {
        section: {k: v.strip() for k, v in parser.items(section) if v.strip()}
        for section in parser.sections()
    }


def _first(*candidates: tuple[str | None, str]) -> tuple[str | None, str]:
    """The first ``(value, source)`` whose value is non-empty, else ``(None, "")``."""
    for value, source in candidates:
        if value:
            return value, source
    return None, ""


def _validate_region(region: str, flavor: str, source: str) -> None:
    product, known = _regions(flavor)
    if region in known:
        return
    origin = f" (from {source})" if source else ""
    close = difflib.get_close_matches(region, known, n=1)
    hint = f"did you mean {close[0]}?" if close else f"use one of: {', '.join(known)}."
    raise InvalidInputError(f"Region '{region}'{origin} has no {product}; {hint}")


@dataclass(frozen=True)
class GcpPool(Pool[GcpOptions]):
    """Cloud Run (v1 and v2 API) and Vertex AI pools in one GCP project and region."""

    cloud = "gcp"
    options_model = GcpOptions
    block = BlockSpec("gcp-credentials", "gcp-credentials")
    secret_outputs = frozenset({"service_account_key"})
    program_modules = ("stacks.gcp_cloud_run",)
    worker_modules = ("stacks.gcp_worker",)
    error_rules = GCP_ERROR_RULES
    propagation_errors = PROPAGATION_ERRORS
    worker_package = "prefect-gcp"
    worker_secret_store = "a Secret Manager secret only the worker account may read"
    # The key in the block: `provision rotate` and --rotate-after replace it (the rotation
    # count in its keepers, see stacks/gcp_cloud_run.py), create-before-delete.
    rotates = True
    # IAM returns a key's private half once, at creation: a key a killed run made cannot be
    # adopted into the state, so the rerun deletes it (remove_untracked) rather than naming it.
    removes_untracked = frozenset({KEY})
    orphan_hints = {
        KEY: (
            "List the worker's keys with `gcloud iam service-accounts keys list "
            "--iam-account <worker email>` and delete any whose id differs from "
            "private_key_id in the Prefect block."
        ),
        # GCP numbers versions itself, so a version a killed run added is not found by id.
        "gcp:secretmanager/secretVersion:SecretVersion": (
            "List the secret's versions with `gcloud secrets versions list <secret id>` and "
            "destroy any enabled one that `gcloud run worker-pools describe <worker pool>` does "
            "not reference (`gcloud secrets versions destroy <n> --secret <secret id>`)."
        ),
    }

    # -- options ----------------------------------------------------------------------------

    @classmethod
    def resolve_options(
        cls,
        name: str,
        pool_type: PoolType,
        given: Mapping[str, Any],
        env: Mapping[str, str],
        saved: GcpOptions | None,
    ) -> GcpOptions:
        """Flags > saved options > environment / gcloud config > defaults, then validate.

        Project: ``GOOGLE_CLOUD_PROJECT``, ``CLOUDSDK_CORE_PROJECT``, gcloud ``core/project``.
        Region: ``CLOUDSDK_RUN_REGION`` (``CLOUDSDK_AI_REGION`` for vertex-ai),
        ``CLOUDSDK_COMPUTE_REGION``, gcloud ``run/region`` (``ai/region``), ``compute/region``,
        then :data:`DEFAULT_REGION`. Ids default to names derived from the pool name.
        """
        pick = OptionPicker(pool_type, given, saved, GcpOptions.keys())
        sources = pick.sources

        props: dict[str, dict[str, str]] | None = None

        def prop(section: str, key: str) -> tuple[str | None, str]:
            nonlocal props
            if props is None:
                props = gcloud_properties(env)
            return props.get(section, {}).get(key), f"gcloud config {section}/{key}"

        project = pick("project")
        if project is None:
            project, sources["project"] = _first(
                (env.get("GOOGLE_CLOUD_PROJECT"), "GOOGLE_CLOUD_PROJECT"),
                (env.get("CLOUDSDK_CORE_PROJECT"), "CLOUDSDK_CORE_PROJECT"),
                prop("core", "project"),
            )
        if not project:
            raise InvalidInputError(
                "No GCP project: pass --project, set GOOGLE_CLOUD_PROJECT or run "
                "`gcloud config set project ID`."
            )

        region = pick("region")
        if region is None:
            section = "ai" if pool_type.worker_type == "vertex-ai" else "run"
            specific = f"CLOUDSDK_{section.upper()}_REGION"
            region, sources["region"] = _first(
                (env.get(specific), specific),
                (env.get("CLOUDSDK_COMPUTE_REGION"), "CLOUDSDK_COMPUTE_REGION"),
                prop(section, "region"),
                prop("compute", "region"),
            )
        if not region:
            region, sources["region"] = DEFAULT_REGION, ""

        opts: dict[str, Any] = {
            "project": str(project).strip(),
            "region": str(region).strip(),
            "worker_account_id": pick("worker_account_id") or naming.worker_account_id(name),
            "runtime_account_id": pick("runtime_account_id") or naming.runtime_account_id(name),
            "repository_id": pick("repository_id") or naming.repository_id(name),
            "registry_writer": pick("registry_writer") or False,
            **worker_options(pick),
            **rotation_options(pick),
        }
        return GcpOptions.checked(opts, sources, flavor=pool_type.worker_type, pool_type=pool_type)

    @classmethod
    def generate(cls, name: str, options: GcpOptions) -> dict[str, str]:
        """A random suffix for the custom role id, chosen once per stack and kept after."""
        return {"role_suffix": secrets.token_hex(4)}

    def provider_config(self) -> dict[str, str]:
        """Default project and region of the gcp provider (every resource also sets them)."""
        return {"gcp:project": self.options.project, "gcp:region": self.options.region}

    # -- program ----------------------------------------------------------------------------

    def program(self) -> CloudProgram:
        """One ``CloudRunPool``; the program returns its outputs (the stack's exports)."""
        from stacks.gcp_cloud_run import CloudRunPool, CloudRunPoolArgs

        opts = self.options
        suffix = generated_suffix(self.generated, "role_suffix")
        args = CloudRunPoolArgs(
            pool=self.name,
            project=opts.project,
            region=opts.region,
            flavor=self.type.worker_type,  # type: ignore[arg-type]
            worker_account_id=opts.worker_account_id,
            runtime_account_id=opts.runtime_account_id,
            repository_id=opts.repository_id,
            role_id=naming.role_id(self.name, suffix),
            registry_writer=opts.registry_writer,
            # The worker runs in Cloud Run as the worker account: nothing needs its key.
            keyless=opts.with_worker,
            credential_rotation=None if opts.with_worker else self.rotation_trigger(),
        )
        return lambda: CloudRunPool(self.name, args).outputs

    def worker_program(self) -> WorkerProgram | None:
        """The pool's worker as a Cloud Run worker pool running as the worker account, its
        Prefect credential in Secret Manager (``stacks/gcp_worker.py``); ``None`` without
        ``--with-worker``."""
        if self.worker is None or not self.options.with_worker:
            return None

        def program(outputs: Outputs, opts: Any) -> Outputs:
            from stacks.gcp_worker import (
                RUN_API,
                SECRET_MANAGER_API,
                CloudRunWorker,
                CloudRunWorkerArgs,
            )

            container = self.worker_container()
            worker_pool = naming.worker_pool_id(self.name)
            services: list[str] = []
            if self.type.worker_type == "vertex-ai":  # the pool's own stack enables aiplatform
                services.append(RUN_API)
            if container.secret_env:
                services.append(SECRET_MANAGER_API)
            args = CloudRunWorkerArgs(
                pool=self.name,
                project=self.options.project,
                region=self.options.region,
                worker_pool_id=worker_pool,
                service_account_email=outputs["worker_service_account_email"],
                image=container.image,
                args=container.command,
                env=container.env,
                secret_env=container.secret_env,
                secret_ids={
                    k: naming.worker_secret_id(worker_pool, k) for k in container.secret_env
                },
                count=container.count,
                services=services,
            )
            return CloudRunWorker(self.name, args, opts).outputs

        return program

    def credential(self) -> Credential:
        """The worker account's key; none when the worker runs as that account in Cloud Run."""
        opts = self.options
        email = naming.service_account_email(opts.worker_account_id, opts.project)
        if opts.with_worker:
            worker_pool = naming.worker_pool_id(self.name)
            return Credential(
                "none",
                email,
                False,
                # The plan prints it after "no long-lived credential: ".
                f"the worker runs in Cloud Run (worker pool {worker_pool}) as {email}",
            )
        return Credential(
            "service-account key",
            email,
            True,
            "a JSON key file held in the Prefect block, valid until deleted (`provision rotate` "
            "replaces it, --rotate-after DAYS on any up, and `provision destroy` deletes it); "
            "--with-worker runs the worker as this account instead, with no key",
        )

    def expected_outputs(self) -> dict[str, Any]:
        """The non-secret stack outputs ``up`` will produce, computed without the engine.

        The key and the role's random id are not predictable and are left out; with
        ``--with-worker``, the worker pool's name and id are.
        """
        from stacks.gcp_registry import image_namespace, registry_host

        opts = self.options
        worker: dict[str, Any] = {}
        if opts.with_worker:
            name = naming.worker_pool_id(self.name)
            worker = {
                "worker_pool_name": name,
                "worker_pool_id": f"projects/{opts.project}/locations/{opts.region}/"
                f"workerPools/{name}",
            }
        return {
            "project": opts.project,
            "region": opts.region,
            "worker_service_account_email": naming.service_account_email(
                opts.worker_account_id, opts.project
            ),
            "runtime_service_account_email": naming.service_account_email(
                opts.runtime_account_id, opts.project
            ),
            "registry_host": registry_host(opts.region),
            "image_namespace": image_namespace(opts.region, opts.project, opts.repository_id),
            "repository_id": opts.repository_id,
            **worker,
        }

    def adoptable_id(self, type_token: str, inputs: Mapping[str, Any]) -> str | None:
        """Accounts, the custom role, the repository, the worker pool and its secret: ids from
        the pool's names."""
        return naming.resource_id(self.options.project, type_token, inputs)

    def remove_untracked(self, untracked: Untracked) -> str:
        """Delete the worker account's keys that an interrupted create may have made and the
        state does not track, through IAM's keys API (``gcp_keys``).

        IAM generates a key's id, so nothing in the state names the copy; its private key went
        only to the killed engine, so it could never fill the block. Only user-managed keys
        IAM generated count (an uploaded public key is someone's own); the account is the
        pool's own. When IAM cannot be reached or signed in to, says so with the hint.
        """
        from provision.targets import gcp_keys

        opts = self.options
        email = naming.service_account_email(opts.worker_account_id, opts.project)
        account = untracked.inputs.get("serviceAccountId")
        if not gcp_keys.is_account_name(account):  # no account yet: no key could be sent
            return f"Interrupted before a key of service account {email} was requested."
        tracked = {rid.rsplit("/", 1)[-1] for rid in untracked.tracked}
        try:
            iam = gcp_keys.IamKeys(gcp_keys.access_token(self.env), gcp_keys.iam_url(self.env))
            stray = [
                k
                for k in iam.user_managed(str(account))
                if k.origin == gcp_keys.GOOGLE_PROVIDED and k.key_id not in tracked
            ]
            removed = [k.key_id for k in stray if iam.delete(k.name)]
        except gcp_keys.KeysError as exc:
            return (
                f"Interrupted while creating a key of service account {email}: one may exist "
                f"untracked, and it could not be checked ({exc}). {self.orphan_hints[KEY]}"
            )
        if not removed:
            return (
                f"Interrupted while creating a key of service account {email}: IAM has none "
                "the state does not track."
            )
        return (
            f"Removed {len(removed)} key(s) of service account {email} that an interrupted run "
            f"made but never recorded (key id {', '.join(removed)}): their private key went "
            "only to that run."
        )

    # -- Prefect ----------------------------------------------------------------------------

    def block_data(self, outputs: Outputs, schema: Mapping[str, Any]) -> dict[str, Any]:
        """The ``gcp-credentials`` block: the worker's key file as a dict, and the project.

        With ``--with-worker``, the project only. prefect-gcp's ``GcpCredentials`` then takes
        the ambient identity: ``get_credentials_from_service_account`` falls back to
        ``credentials, _ = google.auth.default()`` when neither ``service_account_info`` nor
        ``service_account_file`` is set (PrefectHQ/prefect
        ``src/integrations/prefect-gcp/prefect_gcp/credentials.py``), and in Cloud Run that
        is the metadata server's token for the worker pool's service account.
        """
        project = block_from_outputs(outputs, {"project": "project"})
        if self.options.with_worker:
            return project
        raw = outputs.get("service_account_key")
        try:
            info = json.loads(base64.b64decode(str(raw), validate=True))
        except (binascii.Error, ValueError) as exc:
            raise bad_outputs(
                "The stack output service_account_key is not a base64-encoded JSON key."
            ) from exc
        if not isinstance(info, dict) or info.get("type") != "service_account":
            raise bad_outputs(
                "The stack output service_account_key is not a service-account key file."
            )
        return {"service_account_info": info, **project}

    def template_defaults(self, outputs: Outputs, block_document_id: str | None) -> dict[str, Any]:
        """Defaults for the variables every GCP worker template declares.

        ``credentials`` (the block), ``region``, and ``service_account_name`` (the runtime
        account: without it Cloud Run jobs run as the Compute Engine default account and
        Vertex AI jobs as its service agent). The image is left alone: it names the user's own
        image, pushed under ``image_namespace``.
        """
        # cloud-run, cloud-run-v2 and vertex-ai all declare these three variables.
        return {
            "credentials": block_ref(block_document_id),
            "region": known_or_placeholder(outputs, "region"),
            "service_account_name": known_or_placeholder(outputs, "runtime_service_account_email"),
        }

    # -- plan & summary ---------------------------------------------------------------------

    def grants(self) -> list[Grant]:
        """The three grants, all to the worker account; the runtime account gets none.

        With ``--with-worker`` the worker account is the Cloud Run worker's identity and holds
        the same three, plus read access to the one secret holding the worker's Prefect
        credential (when the server asks for one).
        """
        opts = self.options
        flavor = self.type.worker_type
        worker_email = naming.service_account_email(opts.worker_account_id, opts.project)
        worker = f"worker service account {worker_email}"
        runtime = naming.service_account_email(opts.runtime_account_id, opts.project)
        api = "Vertex AI custom jobs" if flavor == "vertex-ai" else f"Cloud Run jobs ({flavor})"
        return [*self._submitter_grants(worker, runtime, flavor, api), *self._worker_grants(worker)]

    def _submitter_grants(self, worker: str, runtime: str, flavor: str, api: str) -> list[Grant]:
        """What submitting jobs takes: the custom role, actAs the runtime account, registry."""
        from stacks.gcp_cloud_run import ACT_AS_ROLE, PERMISSIONS

        opts = self.options
        return [
            Grant(
                principal=worker,
                role=self._role_display(),
                scope=f"project {opts.project}",
                permissions=PERMISSIONS[flavor],
                why=f"Exactly the API calls the {flavor} worker makes to create, start, watch, "
                f"cancel and clean up {api}; nothing else in the project.",
            ),
            Grant(
                principal=worker,
                role=ACT_AS_ROLE,
                scope=f"runtime service account {runtime} only",
                why="Starting a job that runs as another account needs "
                "iam.serviceAccounts.actAs on that account; granted on the runtime account's "
                "own policy, so the worker cannot act as any other account in the project.",
            ),
            Grant(
                principal=worker,
                role=self._registry_role(),
                scope=f"repository {opts.region}/{opts.repository_id} only",
                why=(
                    "Lets the pool's credential push images to its own repository (--registry-"
                    "writer) and read them."
                    if opts.registry_writer
                    else "Lets the pool's credential read (pull, list) its own repository's "
                    "images; pass --registry-writer to let it push."
                ),
            ),
        ]

    def _worker_grants(self, worker: str) -> list[Grant]:
        """The Cloud Run worker's read access to its credential's secret, when it has one."""
        launch = self.worker
        if not self.options.with_worker or launch is None or not launch.credential_env:
            return []
        # Only now: the worker stack's module loads its SDK modules (~0.15 s), for a pool
        # without a worker this would be spent on nothing.
        from stacks.gcp_worker import SECRET_ACCESSOR

        secret = naming.worker_secret_id(naming.worker_pool_id(self.name), launch.credential_env)
        return [
            Grant(
                principal=worker,
                role=SECRET_ACCESSOR,
                scope=f"secret {secret} only",
                why=f"The worker reads its {launch.credential_env} from this secret when its "
                "revision starts; granted on the secret's own policy, so it reads no other.",
            )
        ]

    def next_steps(self, outputs: Outputs) -> NextSteps:
        """Where images go, how to deploy to the pool, and what to run next."""
        namespace = known_or_placeholder(outputs, "image_namespace")
        host = known_or_placeholder(outputs, "registry_host")
        snippet = (
            f'my_flow.deploy(name="my-deployment", work_pool_name={json.dumps(self.name)}, '
            f'image="{namespace}/my-image:latest")'
        )
        commands = [f"gcloud auth configure-docker {host}"]
        if self.options.with_worker:
            # The worker already runs in Cloud Run: where to watch it, not how to start one.
            opts = self.options
            worker_pool = outputs.get("worker_pool_name") or naming.worker_pool_id(self.name)
            commands.append(
                f"gcloud run worker-pools logs read {worker_pool} --region {opts.region} "
                f"--project {opts.project}"
            )
        elif not self.type.push:
            commands.append(f"prefect worker start --pool {shlex.quote(self.name)}")
        return NextSteps(
            image_namespace=namespace, deploy_snippet=snippet, commands=tuple(commands)
        )

    def location(self) -> str:
        """``project/region``."""
        return f"{self.options.project}/{self.options.region}"

    # -- helpers ----------------------------------------------------------------------------

    def _registry_role(self) -> str:
        from stacks.gcp_cloud_run import REGISTRY_READER, REGISTRY_WRITER

        return REGISTRY_WRITER if self.options.registry_writer else REGISTRY_READER

    def _role_display(self) -> str:
        # The real id ends in a random suffix chosen on first up; show its shape.
        stem = naming.role_id(self.name, "x" * 8)[: -len("xxxxxxxx")]
        return f"projects/{self.options.project}/roles/{stem}<random>"
