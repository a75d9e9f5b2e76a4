"""What every type of the fake ``gcp`` provider shares, and the type tokens it serves.

pulumi-gcp's conventions (the project defaulted from the provider, ``deletionPolicy``), GCP's
error shape (``googleapi: Error <code>: <message>, <reason>``), IAM's eventual consistency
(``FAKECLOUD_GCP_PROPAGATION_MS``) and the non-authoritative IAM member every ``*IamMember``
type specialises. ``gcp.py`` is the plugin (its identity and access types);
``gcp_secrets.py`` (Secret Manager) and ``gcp_run.py`` (Cloud Run) hold the rest.
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from tests.fakecloud.provider import CloudError, Context, ResourceType, is_unknown, names

SERVICE = "gcp:projects/service:Service"
REPOSITORY = "gcp:artifactregistry/repository:Repository"
ACCOUNT = "gcp:serviceaccount/account:Account"
KEY = "gcp:serviceaccount/key:Key"
CUSTOM_ROLE = "gcp:projects/iAMCustomRole:IAMCustomRole"
PROJECT_IAM_MEMBER = "gcp:projects/iAMMember:IAMMember"
ACCOUNT_IAM_MEMBER = "gcp:serviceaccount/iAMMember:IAMMember"
REPOSITORY_IAM_MEMBER = "gcp:artifactregistry/repositoryIamMember:RepositoryIamMember"
SECRET = "gcp:secretmanager/secret:Secret"
SECRET_VERSION = "gcp:secretmanager/secretVersion:SecretVersion"
SECRET_IAM_MEMBER = "gcp:secretmanager/secretIamMember:SecretIamMember"
WORKER_POOL = "gcp:cloudrunv2/workerPool:WorkerPool"

PROPAGATION_ENV = "FAKECLOUD_GCP_PROPAGATION_MS"
NOW_ENV = "FAKECLOUD_NOW"
"""What GCP's clock reads (ISO 8601), for tests that look at a pool days later with the tool's
``PROVISION_NOW``: a key made then is valid after then. The azuread fake reads it too."""

ACCOUNT_NAME_RE = re.compile(r"^projects/[^/]+/serviceAccounts/[^/]+$")
# A user-managed account's email; Google-managed agents (service-123@gcp-sa-*) are not ours.
USER_ACCOUNT_EMAIL = re.compile(
    r"^([a-z][-a-z0-9]{4,28}[a-z0-9])@(?!gcp-sa-)([-a-z0-9.]+)\.iam\.gserviceaccount\.com$"
)
MEMBER_PREFIXES = (
    "user:",
    "serviceAccount:",
    "group:",
    "domain:",
    "principal:",
    "principalSet:",
    "projectOwner:",
    "projectEditor:",
    "projectViewer:",
)
VERBS = {"create": "creating", "update": "updating", "delete": "deleting", "read": "reading"}


# ------------------------------------------------------------------- helpers
def googleapi(code: int, message: str, reason: str) -> str:
    """An error as Go's ``googleapi.Error.Error()`` prints it (what pulumi-gcp reports)."""
    return f"googleapi: Error {code}: {message}, {reason}"


def api_error(context: str, code: int, message: str, reason: str) -> CloudError:
    """``<context>: googleapi: Error <code>: <message>, <reason>``, ready to raise."""
    return CloudError(f"{context}: {googleapi(code, message, reason)}")


NOT_FOUND = "Requested entity was not found."


def gaia_not_found(email: str) -> str:
    """IAM's 404 text for an account it cannot resolve (seen for keys and IAM policies)."""
    return f"Not found; Gaia id not found for email {email}"


def truthy(value: str | None) -> bool:
    """An env switch as the fake reads them: ``1``, ``true``, ``yes`` or ``on``."""
    return (value or "").strip().lower() in ("1", "true", "yes", "on")


def config_or_env(ctx: Context, config_key: str, env_keys: tuple[str, ...]) -> str | None:
    """Provider config first, then the env variables pulumi-gcp reads, like the real one."""
    value = ctx.config.get(config_key)
    if isinstance(value, str) and value:
        return value
    return next((ctx.env[k] for k in env_keys if ctx.env.get(k)), None)


def provider_project(ctx: Context) -> str | None:
    """``gcp:project`` or GOOGLE_PROJECT & co."""
    return config_or_env(
        ctx,
        "project",
        ("GOOGLE_PROJECT", "GOOGLE_CLOUD_PROJECT", "GCLOUD_PROJECT", "CLOUDSDK_CORE_PROJECT"),
    )


def provider_region(ctx: Context) -> str | None:
    """``gcp:region`` or GOOGLE_REGION & co."""
    return config_or_env(
        ctx, "region", ("GOOGLE_REGION", "GCLOUD_REGION", "CLOUDSDK_COMPUTE_REGION")
    )


def provider_zone(ctx: Context) -> str | None:
    """``gcp:zone`` or GOOGLE_ZONE & co."""
    return config_or_env(ctx, "zone", ("GOOGLE_ZONE", "GCLOUD_ZONE", "CLOUDSDK_COMPUTE_ZONE"))


def project_of(ctx: Context, inputs: Mapping[str, Any]) -> str:
    """The resource's project, defaulted from the provider, as tpgresource.GetProject."""
    project = inputs.get("project") or provider_project(ctx)
    if not project:
        raise CloudError("project: required field is not set")
    return project


def project_number(project: str) -> str:
    """A stable 12-digit project number for ``project`` (getProject's ``number``)."""
    digest = int(hashlib.sha256(project.encode()).hexdigest(), 16)
    return str(10**11 + digest % (9 * 10**11))


def clock(ctx: Context) -> datetime:
    """GCP's now: ``FAKECLOUD_NOW`` when a test moves it, else the real time (UTC)."""
    fixed = (ctx.env.get(NOW_ENV) or "").strip()
    if not fixed:
        return datetime.now(UTC)
    try:
        moment = datetime.fromisoformat(fixed.replace("Z", "+00:00"))
    except ValueError:
        raise CloudError(f"fakecloud: {NOW_ENV}={fixed!r} is not an ISO 8601 time") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def now_rfc3339() -> str:
    """Now, as GCP's REST APIs write timestamps (microseconds, ``Z``)."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def etag() -> str:
    """An IAM policy etag shaped like GCP's (``BwYBUFm4BPE=``)."""
    return base64.b64encode(b"\x07\x06" + secrets.token_bytes(6)).decode()


def known_str(inputs: Mapping[str, Any], key: str) -> str | None:
    value = inputs.get(key)
    return value if isinstance(value, str) and not is_unknown(value) else None


def quoted(text: str) -> str:
    """Go's %q for the plain ASCII texts used here."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def env_number(ctx: Context, name: str, default: float) -> float:
    """A numeric knob; a typo fails the call with the variable's name, not a traceback."""
    value = ctx.env.get(name)
    try:
        return float(value) if value else default
    except ValueError:
        raise CloudError(f"{name}: {value!r} is not a number") from None


def young(ctx: Context, record: Mapping[str, Any]) -> bool:
    """Created less than FAKECLOUD_GCP_PROPAGATION_MS ago: not yet visible to IAM."""
    window_ms = env_number(ctx, PROPAGATION_ENV, 0)
    return (time.time() - record["createdAt"]) * 1000 < window_ms


def find_account(ctx: Context, ref: str) -> dict[str, Any] | None:
    """A live service account by name, email or unique id (``projects/-/...`` allowed)."""
    account = ref.rsplit("/", 1)[-1]
    if ACCOUNT_NAME_RE.match(ref) and not ref.startswith("projects/-/"):
        record = ctx.store.get(ACCOUNT, ref)
        if record is not None:
            return record
    for record in ctx.store.resources(ACCOUNT):
        if account in (record["properties"].get("email"), record["properties"].get("uniqueId")):
            return record
    return None


# ------------------------------------------------------------------ base type
class GcpResource(ResourceType):
    """GCP conventions shared by every type: project default, deletion policy, errors."""

    def plan(self, ctx: Context, inputs: Mapping[str, Any]) -> dict[str, Any]:
        """Project (and the deletion policy) are known at plan time, as in pulumi-gcp."""
        outputs = dict(inputs)
        if "project" in self.inputs and not outputs.get("project"):
            project = provider_project(ctx)
            if project:
                outputs["project"] = project
        if "deletionPolicy" in self.inputs:
            outputs.setdefault("deletionPolicy", "DELETE")
        return outputs

    def missing_error(self, op: str, rid: str) -> str:
        """404 on an object that is gone."""
        return f"Error {VERBS[op]} {self.kind} {rid!r}: " + googleapi(404, NOT_FOUND, "notFound")

    def fault_error(self, op: str, ident: str) -> str:
        """An injected failure reads like a GCP backend outage."""
        return f"Error {VERBS[op]} {self.kind} {ident!r}: " + googleapi(
            503, "The service is currently unavailable.", "backendError"
        )

    def delete(self, ctx: Context, rid: str, olds: Mapping[str, Any]) -> None:
        """Honour ``deletionPolicy`` (tpgresource.DeletionPolicyPreDelete), then destroy."""
        policy = olds.get("deletionPolicy") or "DELETE"
        if policy == "PREVENT":
            raise CloudError(
                f'cannot destroy "{rid}" without setting deletion_policy="DELETE" and '
                "running `terraform apply`"
            )
        if policy != "ABANDON":  # ABANDON: forget it, leave it in the cloud
            self.destroy(ctx, rid, olds)

    def destroy(self, ctx: Context, rid: str, olds: Mapping[str, Any]) -> None:
        """Remove the object from the cloud (gone already is fine)."""
        ctx.store.remove(self.token, rid)


# --------------------------------------------------------------- IAM members
class IamMember(GcpResource):
    """A non-authoritative grant of one role to one member on one resource.

    Granting what is already granted succeeds (IAM is a set), so two stacks may
    share a binding, and deleting it from one removes it for both, as in GCP.
    Subclasses say which resource the policy lives on.
    """

    kind = "IAM member"
    computed = names("etag id")

    def validate(self, ctx: Context, inputs: Mapping[str, Any]) -> list[tuple[str, str]]:
        """tpgiamresource's member validation."""
        member = known_str(inputs, "member")
        if member is None:
            return []
        if member.startswith("deleted:"):
            return [
                (
                    "member",
                    "invalid value for member (Terraform does not support IAM members for "
                    "deleted principals)",
                )
            ]
        if member not in ("allUsers", "allAuthenticatedUsers") and not member.startswith(
            MEMBER_PREFIXES
        ):
            return [
                (
                    "member",
                    f'invalid value "{member}" for member (IAM members must have one of the '
                    "values outlined here: "
                    "https://cloud.google.com/billing/docs/reference/rest/v1/Policy#Binding)",
                )
            ]
        return []

    def target(self, ctx: Context, inputs: Mapping[str, Any]) -> tuple[str, str, dict[str, Any]]:
        """``(resource id, description for errors, outputs to add)``; raise if it is missing."""
        raise NotImplementedError

    def apply_error(self, describe: str, role: str, member: str, api_error: str) -> str:
        """How a failed setIamPolicy reaches the user (project grants are batched)."""
        return (
            f"Error applying IAM policy for {describe}: "
            f"Error setting IAM policy for {describe}: {api_error}"
        )

    def create(self, ctx: Context, inputs: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
        """getIamPolicy (404 if the resource is missing), add the binding, setIamPolicy."""
        role, member = inputs["role"], inputs["member"]
        with ctx.store.transaction():
            resource, describe, extra = self.target(ctx, inputs)
            problem = self._member_problem(ctx, member) or self._role_problem(ctx, role)
            if problem:
                raise CloudError(self.apply_error(describe, role, member, problem))
            rid = f"{resource}/{role}/{member}"
            if isinstance(inputs.get("condition"), Mapping):
                rid += f"/{inputs['condition'].get('title', '')}"
            outputs = {**self.plan(ctx, inputs), **extra, "etag": etag(), "id": rid}
            self.store_record(ctx, rid, outputs, meta=self.refs(resource))
        return rid, outputs

    def refs(self, resource: str) -> dict[str, Any]:
        """Record meta linking the grant to its resource (for cascading deletes)."""
        return {}

    @staticmethod
    def _member_problem(ctx: Context, member: str) -> str | None:
        """A user-managed service account that IAM cannot see (yet): GCP's 400."""
        email = member.partition(":")[2] if member.startswith("serviceAccount:") else ""
        if not USER_ACCOUNT_EMAIL.match(email):
            return None
        accounts = ctx.store.find(ACCOUNT, email=email)
        if accounts and not young(ctx, accounts[0]):
            return None
        return googleapi(400, f"Service account {email} does not exist.", "badRequest")

    @staticmethod
    def _role_problem(ctx: Context, role: str) -> str | None:
        """A project custom role must exist before anyone is granted it."""
        if not role.startswith("projects/") or ctx.store.get(CUSTOM_ROLE, role) is not None:
            return None
        return googleapi(
            400, f"Role ({role}) does not exist in the resource's hierarchy.", "badRequest"
        )
