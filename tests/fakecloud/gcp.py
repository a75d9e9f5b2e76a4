"""Fake ``gcp`` provider plugin (pulumi-gcp 10.2.0) for the resources provision uses.

Run by ``tests/fakecloud/bin/pulumi-resource-gcp`` as ``python -m tests.fakecloud.gcp``.

Ids, outputs and error texts follow pulumi-gcp (the bridged
terraform-provider-google) and the GCP APIs behind it, so code tested here
meets the same shapes for real: a service account's id is its ``name``
(``projects/<p>/serviceAccounts/<email>``); a repository's ``name`` is the
short id and its ``id`` the full path; IAM members are
``<resource>/<role>/<member>``; errors read ``googleapi: Error <code>:
<message>, <reason>``.

This module is the plugin and its identity, access and registry types; what they share is
in ``gcp_base.py``, Secret Manager in ``gcp_secrets.py``, Cloud Run in ``gcp_run.py``.

GCP-specific env variables (see README.md for the generic ones):

* ``FAKECLOUD_GCP_PROPAGATION_MS``: an IAM grant naming a service account
  created less than this long ago fails as GCP's eventual consistency does;
* ``FAKECLOUD_GCP_DISABLE_KEY_CREATION=1``: the
  ``iam.disableServiceAccountKeyCreation`` org policy is enforced;
* ``FAKECLOUD_GCP_KEY_EXPIRY_HOURS``: the ``iam.serviceAccountKeyExpiryHours`` org policy:
  new keys are valid for that many hours (without it, until 9999-12-31T23:59:59Z);
* ``FAKECLOUD_NOW`` (ISO 8601): GCP's clock, for keys made "days later";
* ``FAKECLOUD_GCP_NO_CREDENTIALS=1``: CheckConfig fails as without ADC;
* ``FAKECLOUD_GCP_ROLE_UNDELETE_WINDOW_S`` (default 7 days): a deleted custom
  role is undeleted by a create within this window (what pulumi-gcp does);
  afterwards its id is refused until 37 days have passed (what GCP does).
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import secrets
import time
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

from tests.fakecloud.gcp_base import (
    ACCOUNT,
    ACCOUNT_IAM_MEMBER,
    ACCOUNT_NAME_RE,
    CUSTOM_ROLE,
    KEY,
    NOT_FOUND,
    PROJECT_IAM_MEMBER,
    REPOSITORY,
    REPOSITORY_IAM_MEMBER,
    SERVICE,
    GcpResource,
    IamMember,
    api_error,
    clock,
    env_number,
    find_account,
    gaia_not_found,
    known_str,
    now_rfc3339,
    project_number,
    project_of,
    provider_project,
    provider_region,
    provider_zone,
    quoted,
    truthy,
    young,
)
from tests.fakecloud.gcp_run import WorkerPoolResource
from tests.fakecloud.gcp_secrets import SecretIamMember, SecretResource, SecretVersionResource
from tests.fakecloud.provider import Cloud, CloudError, Context, Secret, names, serve

NAME = "gcp"
VERSION = "10.2.0"  # pulumi_gcp/pulumi-plugin.json: the version the SDK asks the engine for

GET_PROJECT = "gcp:organizations/getProject:getProject"
GET_CLIENT_CONFIG = "gcp:organizations/getClientConfig:getClientConfig"

DISABLE_KEY_CREATION_ENV = "FAKECLOUD_GCP_DISABLE_KEY_CREATION"
KEY_EXPIRY_HOURS_ENV = "FAKECLOUD_GCP_KEY_EXPIRY_HOURS"
NO_CREDENTIALS_ENV = "FAKECLOUD_GCP_NO_CREDENTIALS"
ROLE_UNDELETE_WINDOW_ENV = "FAKECLOUD_GCP_ROLE_UNDELETE_WINDOW_S"

_DAY = 86400.0
ROLE_UNDELETE_WINDOW_S = 7 * _DAY  # GCP: a deleted role can be undeleted for 7 days...
ROLE_PURGE_S = 37 * _DAY  # ...and its id is unusable until 37 days after deletion
MAX_KEYS_PER_ACCOUNT = 10
"""User-managed keys per service account (cloud.google.com/iam/docs/keys-create-delete, as
firebase/firebase-tools#6192 quotes it). At the limit, keys.create answers 400
``Precondition check failed.``, ``FAILED_PRECONDITION`` (firebase/firebase-tools#6192,
googleapis/google-api-dotnet-client#2027; before 2022 it was 429 ``RESOURCE_EXHAUSTED:
Maximum number of keys on account reached.``)."""
NO_EXPIRY = "9999-12-31T23:59:59Z"
"""``validBeforeTime`` of a key made with no expiry policy: keys do not expire by default
(cloud.google.com/blog, "Introducing time-bound key authentication for service accounts",
2023-07-27); ``constraints/iam.serviceAccountKeyExpiryHours`` sets one."""
_RFC3339_SECONDS = "%Y-%m-%dT%H:%M:%SZ"

# pulumi-gcp's CheckConfig error without Application Default Credentials, verbatim
# from its replay tests (provider/provider_test.go, TestMissingCredentials).
NO_CREDENTIALS_TEXT = (
    "failed to load application credentials.\n"
    "To use your default gcloud credentials, run:\n"
    "\t`gcloud auth application-default login`\n"
    "See https://www.pulumi.com/registry/packages/gcp/installation-configuration/ for details.\n"
    "Expanded error message: Attempted to load application default credentials since neither "
    "`credentials` nor `access_token` was set in the provider block.  No credentials loaded. "
    "To use your gcloud credentials, run 'gcloud auth application-default login'.  Original "
    "error: google: could not find default credentials. See "
    "https://cloud.google.com/docs/authentication/external/set-up-adc for more information"
)

# terraform-provider-google's verify.RFC1035NameTemplate with "*" (ValidateRFC1035Name).
_RFC1035 = "^[a-z]([-a-z0-9]*[a-z0-9])?$"
_ROLE_ID = "^[a-zA-Z0-9_\\.]{3,64}$"  # verify.IAMCustomRoleIDRegex


# ------------------------------------------------------------------ services
class Service(GcpResource):
    """An enabled API. Enabling twice is fine; destroy disables only if asked to."""

    token = SERVICE
    kind = "project service"
    inputs = names(
        "checkIfServiceHasUsageOnDestroy deletionPolicy disableDependentServices "
        "disableOnDestroy project service"
    )
    force_new = names("service project")
    optional_computed = names("project deletionPolicy")
    computed = names("id")

    def validate(self, ctx: Context, inputs: Mapping[str, Any]) -> list[tuple[str, str]]:
        """resource_google_project_service's validateProjectServiceService."""
        service = known_str(inputs, "service")
        if service is not None and "." not in service:
            return [
                ("service", f"expected {service} to be a domain like serviceusage.googleapis.com")
            ]
        return []

    def create(self, ctx: Context, inputs: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
        """Enable the API (re-enabling a disabled one); its id is ``<project>/<service>``."""
        project = project_of(ctx, inputs)
        rid = f"{project}/{inputs['service']}"
        outputs = {**self.plan(ctx, inputs), "project": project, "id": rid}
        self.store_record(ctx, rid, outputs, meta={"state": "ENABLED"})
        return rid, outputs

    def destroy(self, ctx: Context, rid: str, olds: Mapping[str, Any]) -> None:
        """Disable (tombstone, state DISABLED) only with ``disableOnDestroy``; else leave it on."""
        if not olds.get("disableOnDestroy"):
            return
        with ctx.store.transaction():
            record = ctx.store.get(self.token, rid)
            if record is not None:
                record["meta"]["state"] = "DISABLED"
                record.update(deleted=True, deletedAt=time.time())
                ctx.store.save(record)


# ---------------------------------------------------------- service accounts
class Account(GcpResource):
    """A service account; ids are unique per project (409 on a second create)."""

    token = ACCOUNT
    kind = "service account"
    inputs = names(
        "accountId createIgnoreAlreadyExists deletionPolicy description disabled displayName "
        "project"
    )
    force_new = names("accountId project")
    optional_computed = names("project deletionPolicy")
    defaults = {"disabled": False}
    computed = names("email name uniqueId member id")

    def validate(self, ctx: Context, inputs: Mapping[str, Any]) -> list[tuple[str, str]]:
        """ValidateRFC1035Name(6, 30) on account_id; at most 256 bytes of description."""
        problems = []
        aid = known_str(inputs, "accountId")
        if aid is not None:
            if not 6 <= len(aid) <= 30:
                problems.append(
                    (
                        "accountId",
                        f'"account_id" ("{aid}") must be between 6 and 30 characters long',
                    )
                )
            if not re.match(_RFC1035, aid):
                problems.append(
                    ("accountId", f'"account_id" ("{aid}") must match regex "{_RFC1035}"')
                )
        description = known_str(inputs, "description")
        if description is not None and len(description.encode()) > 256:
            problems.append(
                (
                    "description",
                    "expected length of description to be in the range (0 - 256), "
                    f"got {description}",
                )
            )
        return problems

    def create(self, ctx: Context, inputs: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
        """IAM's projects.serviceAccounts.create, plus createIgnoreAlreadyExists adoption."""
        project = project_of(ctx, inputs)
        aid = inputs["accountId"]
        email = f"{aid}@{project}.iam.gserviceaccount.com"
        rid = f"projects/{project}/serviceAccounts/{email}"
        with ctx.store.transaction():
            existing = ctx.store.get(self.token, rid)
            if existing is not None:
                if not inputs.get("createIgnoreAlreadyExists"):
                    raise api_error(
                        "Error creating service account",
                        409,
                        f"Service account {aid} already exists within project projects/{project}.",
                        "alreadyExists",
                    )
                adopted = dict(existing["properties"])
                for key in ("createIgnoreAlreadyExists", "deletionPolicy"):
                    if key in inputs:
                        adopted[key] = inputs[key]
                return rid, adopted
            outputs = {
                **self.plan(ctx, inputs),
                "project": project,
                "email": email,
                "name": rid,
                "id": rid,
                "member": f"serviceAccount:{email}",
                "uniqueId": "1" + "".join(secrets.choice("0123456789") for _ in range(20)),
                "displayName": inputs.get("displayName") or "",
                "description": inputs.get("description") or "",
                "disabled": bool(inputs.get("disabled", False)),
            }
            self.store_record(ctx, rid, outputs, meta={"email": email})
        return rid, outputs

    def destroy(self, ctx: Context, rid: str, olds: Mapping[str, Any]) -> None:
        """Deleting an account deletes its keys and the IAM policy on it, as in GCP."""
        with ctx.store.transaction():
            if not ctx.store.remove(self.token, rid):
                return
            for token in (KEY, ACCOUNT_IAM_MEMBER):
                for record in ctx.store.resources(token):
                    if record["meta"].get("serviceAccount") == rid:
                        ctx.store.remove(token, record["id"])


def _key_material(email: str, bits: int) -> tuple[str, str]:
    """A fresh RSA private key (PKCS#8 PEM) and a self-signed X.509 cert (PEM) for it.

    Without ``cryptography``, random PEM-shaped text: consumers that only pass the
    key along still work; anything that parses it would not, and should not here.
    """
    try:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import rsa
        from cryptography.x509.oid import NameOID
    except ImportError:

        def pem(label: str, size: int) -> str:
            body = base64.encodebytes(secrets.token_bytes(size)).decode()
            return f"-----BEGIN {label}-----\n{body}-----END {label}-----\n"

        return pem("PRIVATE KEY", bits // 8 * 5), pem("CERTIFICATE", bits // 8 * 3)
    key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    private_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, email)])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC))
        .sign(key, hashes.SHA256())
    )
    return private_pem, cert.public_bytes(serialization.Encoding.PEM).decode()


class Key(GcpResource):
    """A service-account key: 10 per account, blocked by org policy when asked, valid from
    GCP's clock and, under an expiry policy, for that many hours."""

    token = KEY
    kind = "service account key"
    inputs = names(
        "deletionPolicy keepers keyAlgorithm privateKeyType publicKeyData publicKeyType "
        "serviceAccountId"
    )
    force_new = inputs - {"deletionPolicy"}
    optional_computed = names("deletionPolicy")
    defaults = {
        "keyAlgorithm": "KEY_ALG_RSA_2048",
        "privateKeyType": "TYPE_GOOGLE_CREDENTIALS_FILE",
        "publicKeyType": "TYPE_X509_PEM_FILE",
    }
    computed = names("name id privateKey publicKey validAfter validBefore")
    secret_outputs = names("privateKey")
    write_only = names("privateKey")  # GCP returns it once, at creation
    _ENUMS = {
        "keyAlgorithm": (
            "key_algorithm",
            ("KEY_ALG_UNSPECIFIED", "KEY_ALG_RSA_1024", "KEY_ALG_RSA_2048"),
        ),
        "privateKeyType": (
            "private_key_type",
            ("TYPE_UNSPECIFIED", "TYPE_PKCS12_FILE", "TYPE_GOOGLE_CREDENTIALS_FILE"),
        ),
        "publicKeyType": (
            "public_key_type",
            ("TYPE_NONE", "TYPE_X509_PEM_FILE", "TYPE_RAW_PUBLIC_KEY"),
        ),
    }

    def validate(self, ctx: Context, inputs: Mapping[str, Any]) -> list[tuple[str, str]]:
        """validation.StringInSlice on the enums, as the schema does."""
        problems = []
        for key, (tf_name, allowed) in self._ENUMS.items():
            value = known_str(inputs, key)
            if value is not None and value not in allowed:
                listed = " ".join(f'"{a}"' for a in allowed)
                problems.append((key, f"expected {tf_name} to be one of [{listed}], got {value}"))
        return problems

    def create(self, ctx: Context, inputs: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
        """projects.serviceAccounts.keys.create (or .upload with ``publicKeyData``)."""
        ref = inputs["serviceAccountId"]
        if not ref.startswith("projects/"):
            ref = f"projects/{provider_project(ctx) or '-'}/serviceAccounts/{ref}"
        fail = "Error creating service account key"
        with ctx.store.transaction():
            account = find_account(ctx, ref)
            if account is None:
                raise api_error(fail, 404, gaia_not_found(ref.rsplit("/", 1)[-1]), "notFound")
            sa = account["properties"]
            if truthy(ctx.env.get(DISABLE_KEY_CREATION_ENV)):
                raise CloudError(f"{fail}: {_key_creation_disabled(sa['name'], sa['email'])}")
            existing = [
                r for r in ctx.store.resources(KEY) if r["meta"].get("serviceAccount") == sa["name"]
            ]
            if len(existing) >= MAX_KEYS_PER_ACCOUNT:  # today's API answer at the limit
                raise api_error(fail, 400, "Precondition check failed.", "failedPrecondition")
            key_id = secrets.token_hex(20)
            rid = f"{sa['name']}/keys/{key_id}"
            valid_after = clock(ctx).replace(microsecond=0)
            hours = env_number(ctx, KEY_EXPIRY_HOURS_ENV, 0)
            valid_before = valid_after + timedelta(hours=hours) if hours else None
            outputs = {
                **self.plan(ctx, inputs),
                "name": rid,
                "id": rid,
                "validAfter": valid_after.strftime(_RFC3339_SECONDS),
                "validBefore": (
                    valid_before.strftime(_RFC3339_SECONDS) if valid_before else NO_EXPIRY
                ),
            }
            uploaded = bool(inputs.get("publicKeyData"))
            if uploaded:  # upload: the caller keeps the private half
                outputs.update(publicKey=inputs["publicKeyData"], privateKey="")
            else:
                bits = 1024 if inputs.get("keyAlgorithm") == "KEY_ALG_RSA_1024" else 2048
                private_pem, cert_pem = _key_material(sa["email"], bits)
                outputs["publicKey"] = base64.b64encode(cert_pem.encode()).decode()
                outputs["privateKey"] = _credentials_file(sa, key_id, private_pem)
            meta = {
                "serviceAccount": sa["name"],
                "keyOrigin": "USER_PROVIDED" if uploaded else "GOOGLE_PROVIDED",
            }
            self.store_record(ctx, rid, outputs, meta=meta)
        return rid, outputs


def _credentials_file(sa: Mapping[str, Any], key_id: str, private_pem: str) -> str:
    """``privateKey``: base64 of the JSON key file GCP hands out (TYPE_GOOGLE_CREDENTIALS_FILE)."""
    email = sa["email"]
    document = {
        "type": "service_account",
        "project_id": sa["project"],
        "private_key_id": key_id,
        "private_key": private_pem,
        "client_email": email,
        "client_id": sa["uniqueId"],
        "auth_uri": "https://accounts.google.com/o/oauth2/auth",
        "token_uri": "https://oauth2.googleapis.com/token",
        "auth_provider_x509_cert_url": "https://www.googleapis.com/oauth2/v1/certs",
        "client_x509_cert_url": "https://www.googleapis.com/robot/v1/metadata/x509/"
        + quote(email, safe=""),
        "universe_domain": "googleapis.com",
    }
    return base64.b64encode(json.dumps(document, indent=2).encode()).decode()


def _key_creation_disabled(account_name: str, email: str) -> str:
    """The org-policy refusal as googleapi prints it (message, JSON details, reason)."""
    details = [
        {
            "@type": "type.googleapis.com/google.rpc.PreconditionFailure",
            "violations": [
                {
                    "description": "Key creation is not allowed on this service account.",
                    "subject": f"{account_name}?configvalue={quote(email, safe='')}",
                    "type": "constraints/iam.disableServiceAccountKeyCreation",
                }
            ],
        }
    ]
    return (
        "googleapi: Error 400: Key creation is not allowed on this service account.\n"
        f"Details:\n{json.dumps(details, indent=2, sort_keys=True)}\n, failedPrecondition"
    )


# -------------------------------------------------------------- custom roles
class CustomRole(GcpResource):
    """A project custom role: deletion is soft, so its id stays taken for a while."""

    token = CUSTOM_ROLE
    kind = "custom project role"
    inputs = names("deletionPolicy description permissions project roleId stage title")
    force_new = names("roleId project")
    optional_computed = names("project deletionPolicy")
    defaults = {"stage": "GA"}
    computed = names("name id deleted")
    _STAGES = ("ALPHA", "BETA", "GA", "DEPRECATED", "DISABLED", "EAP")

    def validate(self, ctx: Context, inputs: Mapping[str, Any]) -> list[tuple[str, str]]:
        """ValidateIAMCustomRoleID, MinItems 1 on permissions, the stage enum."""
        problems = []
        role_id = known_str(inputs, "roleId")
        if role_id is not None and not re.match(_ROLE_ID, role_id):
            problems.append(
                ("roleId", f'"role_id" ("{role_id}") doesn\'t match regexp "{_ROLE_ID}"')
            )
        permissions = inputs.get("permissions")
        if isinstance(permissions, list) and not permissions:
            problems.append(
                ("permissions", "Attribute requires 1 item minimum, but config has only 0 declared")
            )
        stage = known_str(inputs, "stage")
        if stage is not None and stage not in self._STAGES:
            listed = " ".join(f'"{s}"' for s in self._STAGES)
            problems.append(("stage", f"expected stage to be one of [{listed}], got {stage}"))
        return problems

    def equal(self, key: str, old: Any, new: Any) -> bool:
        """``permissions`` is a set in the schema: order never makes a diff."""
        if key == "permissions" and isinstance(old, list) and isinstance(new, list):
            return sorted(old) == sorted(new)
        return old == new

    def create(self, ctx: Context, inputs: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
        """Create; undelete a recently deleted role (as pulumi-gcp does); refuse a purging id."""
        project = project_of(ctx, inputs)
        role_id = inputs["roleId"]
        rid = f"projects/{project}/roles/{role_id}"
        with ctx.store.transaction():
            record = ctx.store.get(self.token, rid, include_deleted=True)
            if record is not None and not record["deleted"]:
                raise CloudError(f"Custom project role {rid} already exists and must be imported")
            if record is not None:
                age = time.time() - record["deletedAt"]
                window = env_number(ctx, ROLE_UNDELETE_WINDOW_ENV, ROLE_UNDELETE_WINDOW_S)
                if window <= age < ROLE_PURGE_S:
                    raise api_error(
                        f"Error creating the custom project role {rid}",
                        400,
                        f"You can't create a role_id ({role_id}) which has been marked for "
                        "deletion.",
                        "failedPrecondition",
                    )
            outputs = {
                **self.plan(ctx, inputs),
                "project": project,
                "name": rid,
                "id": rid,
                "deleted": False,
                "description": inputs.get("description") or "",
                "permissions": sorted(inputs.get("permissions") or []),
            }
            self.store_record(ctx, rid, outputs)
        return rid, outputs

    def destroy(self, ctx: Context, rid: str, olds: Mapping[str, Any]) -> None:
        """Soft delete: keep a tombstone with ``deleted: true``."""
        with ctx.store.transaction():
            record = ctx.store.get(self.token, rid)
            if record is not None:
                record["properties"]["deleted"] = True
                record.update(deleted=True, deletedAt=time.time())
                ctx.store.save(record)


# -------------------------------------------------------------- repositories
class Repository(GcpResource):
    """An Artifact Registry repository: ``name`` is the short id, ``id`` the full path."""

    token = REPOSITORY
    kind = "Repository"
    inputs = names(
        "cleanupPolicies cleanupPolicyDryRun deletionPolicy description dockerConfig format "
        "kmsKeyName labels location mavenConfig mode project remoteRepositoryConfig repositoryId "
        "virtualRepositoryConfig vulnerabilityScanningConfig"
    )
    force_new = names("repositoryId location format project kmsKeyName mode")
    optional_computed = names("project location deletionPolicy vulnerabilityScanningConfig")
    defaults = {"mode": "STANDARD_REPOSITORY"}
    computed = names("name id createTime updateTime registryUri effectiveLabels pulumiLabels")

    def equal(self, key: str, old: Any, new: Any) -> bool:
        """``format`` has CaseDiffSuppress."""
        if key == "format" and isinstance(old, str) and isinstance(new, str):
            return old.lower() == new.lower()
        return old == new

    def plan(self, ctx: Context, inputs: Mapping[str, Any]) -> dict[str, Any]:
        """Location defaults to the provider region at plan time."""
        outputs = super().plan(ctx, inputs)
        if not outputs.get("location") and provider_region(ctx):
            outputs["location"] = provider_region(ctx)
        return outputs

    def create(self, ctx: Context, inputs: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
        """artifactregistry projects.locations.repositories.create; 409 if the id is taken."""
        outputs = self.plan(ctx, inputs)
        project = project_of(ctx, inputs)
        location = outputs.get("location")
        if not location:
            raise CloudError(
                "Cannot determine location: set in this resource, or set "
                "provider-level 'region' or 'zone'."
            )
        repo_id = inputs["repositoryId"]
        rid = f"projects/{project}/locations/{location}/repositories/{repo_id}"
        with ctx.store.transaction():
            if ctx.store.get(self.token, rid) is not None:
                raise api_error(
                    "Error creating Repository",
                    409,
                    "the repository already exists.",
                    "alreadyExists",
                )
            now = now_rfc3339()
            outputs.update(
                project=project,
                name=repo_id,
                id=rid,
                description=inputs.get("description") or "",
                createTime=now,
                updateTime=now,
                registryUri=f"{location}-{inputs['format'].lower()}.pkg.dev/{project}/{repo_id}",
            )
            self.after_update(ctx, {"properties": outputs}, inputs)
            self.store_record(ctx, rid, outputs)
        return rid, outputs

    def after_update(self, ctx: Context, record: dict[str, Any], news: Mapping[str, Any]) -> None:
        """Labels feed effectiveLabels/pulumiLabels, with pulumi-gcp's attribution label."""
        props = record["properties"]
        labels = dict(props.get("labels") or {})
        props["effectiveLabels"] = props["pulumiLabels"] = {
            **labels,
            "goog-pulumi-provisioned": "true",
        }
        props["updateTime"] = now_rfc3339()

    def destroy(self, ctx: Context, rid: str, olds: Mapping[str, Any]) -> None:
        """Deleting a repository deletes the IAM policy on it."""
        with ctx.store.transaction():
            if ctx.store.remove(self.token, rid):
                for record in ctx.store.resources(REPOSITORY_IAM_MEMBER):
                    if record["meta"].get("repository") == rid:
                        ctx.store.remove(REPOSITORY_IAM_MEMBER, record["id"])


class ProjectIamMember(IamMember):
    """``gcp.projects.IAMMember``: id ``<project>/<role>/<member>``."""

    token = PROJECT_IAM_MEMBER
    inputs = names("condition member project role")
    force_new = inputs

    def target(self, ctx: Context, inputs: Mapping[str, Any]) -> tuple[str, str, dict[str, Any]]:
        """Projects are not modelled: every project exists."""
        project = inputs["project"]
        return project, f'project "{project}"', {}

    def apply_error(self, describe: str, role: str, member: str, api_error: str) -> str:
        """Project grants go through the request batcher, which wraps the error twice."""
        request = f"Create IAM Members {role} {member} for {describe}"
        return (
            f"Request `{request}` returned error: Batch request and retried single request "
            f"{quoted(request)} both failed. Final error: "
            + super().apply_error(describe, role, member, api_error)
        )


class AccountIamMember(IamMember):
    """``gcp.serviceaccount.IAMMember``: a grant on a service account."""

    token = ACCOUNT_IAM_MEMBER
    inputs = names("condition member role serviceAccountId")
    force_new = inputs

    def validate(self, ctx: Context, inputs: Mapping[str, Any]) -> list[tuple[str, str]]:
        """service_account_id must be a full account name (verify.ServiceAccountLinkRegex)."""
        problems = super().validate(ctx, inputs)
        ref = known_str(inputs, "serviceAccountId")
        if ref is not None and not ACCOUNT_NAME_RE.match(ref):
            pattern = ACCOUNT_NAME_RE.pattern
            problems.append(
                (
                    "serviceAccountId",
                    f'"service_account_id" ("{ref}") doesn\'t match regexp "{pattern}"',
                )
            )
        return problems

    def target(self, ctx: Context, inputs: Mapping[str, Any]) -> tuple[str, str, dict[str, Any]]:
        """The account must exist and be visible (FAKECLOUD_GCP_PROPAGATION_MS)."""
        ref = inputs["serviceAccountId"]
        describe = f"service account '{ref}'"
        account = find_account(ctx, ref)
        if account is None or young(ctx, account):
            email = ref.rsplit("/", 1)[-1]
            raise api_error(
                f"Error retrieving IAM policy for {describe}",
                404,
                gaia_not_found(email),
                "notFound",
            )
        return ref, describe, {}

    def refs(self, resource: str) -> dict[str, Any]:
        """Deleted with the account."""
        return {"serviceAccount": resource}


class RepositoryIamMember(IamMember):
    """``gcp.artifactregistry.RepositoryIamMember``: ``repository`` comes back in full form."""

    token = REPOSITORY_IAM_MEMBER
    inputs = names("condition location member project repository role")
    force_new = inputs
    optional_computed = names("location project")

    def _full_name(self, ctx: Context, inputs: Mapping[str, Any]) -> str:
        """The accepted short forms (r, l/r, p/l/r) expanded as the provider does."""
        repo = inputs["repository"]
        if repo.startswith("projects/"):
            return repo
        parts = repo.split("/")
        location = parts[-2] if len(parts) >= 2 else inputs.get("location") or provider_region(ctx)
        project = parts[-3] if len(parts) >= 3 else project_of(ctx, inputs)
        return f"projects/{project}/locations/{location}/repositories/{parts[-1]}"

    def equal(self, key: str, old: Any, new: Any) -> bool:
        """A short ``repository`` input matches its expanded output."""
        if key == "repository" and isinstance(new, str) and not new.startswith("projects/"):
            return isinstance(old, str) and old.endswith("/repositories/" + new.rsplit("/", 1)[-1])
        return old == new

    def target(self, ctx: Context, inputs: Mapping[str, Any]) -> tuple[str, str, dict[str, Any]]:
        """The repository must exist."""
        full = self._full_name(ctx, inputs)
        describe = f"artifactregistry repository {quoted(full)}"
        if ctx.store.get(REPOSITORY, full) is None:
            raise api_error(
                f"Error retrieving IAM policy for {describe}", 404, NOT_FOUND, "notFound"
            )
        _, project, _, location, _, _ = full.split("/")
        return full, describe, {"repository": full, "project": project, "location": location}

    def refs(self, resource: str) -> dict[str, Any]:
        """Deleted with the repository."""
        return {"repository": resource}


# ------------------------------------------------------------------- invokes
def get_project(ctx: Context, args: Mapping[str, Any]) -> dict[str, Any]:
    """``gcp.organizations.get_project``: every project exists and is ACTIVE."""
    project = args.get("projectId") or provider_project(ctx)
    if not project:
        raise CloudError(
            "no project value set. `project_id` must be set at the resource level, or a "
            "default `project` value must be specified on the provider"
        )
    return {
        "id": f"projects/{project}",
        "projectId": project,
        "name": project,
        "number": project_number(project),
        "orgId": "",
        "folderId": "",
        "billingAccount": "",
        "autoCreateNetwork": True,
        "deletionPolicy": "PREVENT",
        "labels": {},
        "effectiveLabels": {},
        "pulumiLabels": {},
        "tags": {},
    }


def get_client_config(ctx: Context, args: Mapping[str, Any]) -> dict[str, Any]:
    """``gcp.organizations.get_client_config``: the provider's project/region/zone."""
    project = provider_project(ctx) or ""
    region, zone = provider_region(ctx) or "", provider_zone(ctx) or ""
    return {
        "accessToken": Secret("ya29.fakecloud-" + secrets.token_urlsafe(48)),
        "defaultLabels": {},
        "id": f"projects/{project}/regions/{region}/zones/{zone}",
        "project": project,
        "region": region,
        "zone": zone,
    }


class Gcp(Cloud):
    """The GCP fake: credentials are checked in CheckConfig, as pulumi-gcp does."""

    def check_config(self, config: Mapping[str, Any], env: Mapping[str, str]) -> None:
        """``FAKECLOUD_GCP_NO_CREDENTIALS=1`` plays a machine without ADC."""
        if truthy(env.get(NO_CREDENTIALS_ENV)):
            raise CloudError(NO_CREDENTIALS_TEXT)


GCP = Gcp(
    NAME,
    VERSION,
    [
        Service(),
        Account(),
        Key(),
        CustomRole(),
        Repository(),
        ProjectIamMember(),
        AccountIamMember(),
        RepositoryIamMember(),
        SecretResource(),
        SecretVersionResource(),
        SecretIamMember(),
        WorkerPoolResource(),
    ],
    {GET_PROJECT: get_project, GET_CLIENT_CONFIG: get_client_config},
)


def keys_of(cloud: Any, account: str) -> list[dict[str, Any]]:
    """The live user-managed keys of one service account (its email or full name), oldest
    first: what ``gcloud iam service-accounts keys list --managed-by=user`` lists."""
    name = account if account.startswith("projects/") else None
    found = [
        r
        for r in cloud.resources(KEY)
        if (r["meta"].get("serviceAccount") == name if name else _account_email(r) == account)
    ]
    return sorted(found, key=lambda r: (r["properties"].get("validAfter", ""), r["createdAt"]))


def key_of_block(cloud: Any, service_account_info: Mapping[str, Any]) -> dict[str, Any] | None:
    """The live key a ``gcp-credentials`` block's key file is (by its ``private_key_id``), or
    None: a block holding a deleted key."""
    key_id = service_account_info.get("private_key_id")
    email = service_account_info.get("client_email")
    found = [r for r in keys_of(cloud, str(email)) if r["id"].endswith(f"/keys/{key_id}")]
    return found[0] if found else None


def _account_email(key: Mapping[str, Any]) -> str:
    return str(key["meta"].get("serviceAccount", "")).rsplit("/", 1)[-1]


def seed_account(
    cloud: Any, project: str, account_id: str, *, age_s: float = 3600.0
) -> dict[str, Any]:
    """Put a pre-existing service account into ``cloud`` (a FakeCloud), as if made by hand.

    For tests of collisions (409) and of grants to accounts outside the stack.
    """
    email = f"{account_id}@{project}.iam.gserviceaccount.com"
    rid = f"projects/{project}/serviceAccounts/{email}"
    props = {
        "accountId": account_id,
        "project": project,
        "email": email,
        "name": rid,
        "id": rid,
        "member": f"serviceAccount:{email}",
        "uniqueId": "1" + str(int(hashlib.sha256(email.encode()).hexdigest(), 16))[:20],
        "displayName": "",
        "description": "",
        "disabled": False,
        "deletionPolicy": "DELETE",
    }
    return cloud.put(ACCOUNT, rid, props, meta={"email": email}, created_at=time.time() - age_s)


if __name__ == "__main__":
    serve(GCP)
