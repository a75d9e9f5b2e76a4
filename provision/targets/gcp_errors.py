"""GCP's error texts (as pulumi-gcp reports them) mapped to typed errors with next steps."""

from __future__ import annotations

from provision.engine_errors import ErrorRule
from provision.errors import (
    ApiNotEnabledError,
    CloudCredentialsError,
    OrgPolicyError,
    PermissionDeniedError,
    QuotaExceededError,
)

_PERMISSION_HINT = (
    "The identity running provision needs it on the project (for example "
    "roles/iam.serviceAccountAdmin, roles/iam.roleAdmin, roles/resourcemanager.projectIamAdmin, "
    "roles/artifactregistry.admin, roles/serviceusage.serviceUsageAdmin)."
)

GCP_ERROR_RULES: tuple[ErrorRule, ...] = (
    ErrorRule(
        r"could not find default credentials|google: could not find|"
        r"invalid_grant|Reauthentication failed|oauth2: cannot fetch token",
        CloudCredentialsError,
        "No usable GCP credentials.",
        "Run `gcloud auth application-default login`, or set GOOGLE_APPLICATION_CREDENTIALS "
        "to a service-account key file.",
    ),
    ErrorRule(
        r"(?:Key creation is not allowed|iam\.disableServiceAccountKeyCreation)",
        OrgPolicyError,
        "An organisation policy (iam.disableServiceAccountKeyCreation) forbids service-account "
        "keys, and the pool's Prefect block would hold one.",
        "Options: for a worker-based type (cloud-run-v2), pass --with-worker: the worker runs "
        "in Cloud Run as the worker account and no key is made (as would your own worker on "
        "GKE through Workload Identity); or ask an organisation policy admin to exempt this "
        "project (`gcloud resource-manager org-policies disable-enforce "
        "iam.disableServiceAccountKeyCreation --project PROJECT`). The stack recorded what was "
        "created; rerun once resolved.",
    ),
    ErrorRule(
        r"(?P<api>[a-z0-9.-]+\.googleapis\.com)[^\n]*?(?:has not been used|is disabled|"
        r"SERVICE_DISABLED)|SERVICE_DISABLED[^\n]*?(?P<api2>[a-z0-9.-]+\.googleapis\.com)",
        ApiNotEnabledError,
        "A GCP API the stack needs is not enabled: {detail}.",
        "Enable it with `gcloud services enable {detail}` (Service Usage must be enabled to "
        "let the stack enable the others), then rerun.",
    ),
    # Specific before generic: a 403 usually names the permission later in the text.
    ErrorRule(
        r"Permission '(?P<perm>[a-zA-Z0-9_.]+)' denied|"
        r"does not have (?P<perm2>[a-zA-Z0-9_.]+) (?:permission|access)",
        PermissionDeniedError,
        "Permission denied in GCP: {detail} is missing.",
        _PERMISSION_HINT,
    ),
    ErrorRule(
        r"Error 403|PERMISSION_DENIED",
        PermissionDeniedError,
        "Permission denied in GCP.",
        _PERMISSION_HINT,
    ),
    ErrorRule(
        r"Quota exceeded|RESOURCE_EXHAUSTED|quota[^\n]*exceeded|"
        r"maximum number of (?:keys|service accounts)",
        QuotaExceededError,
        "A GCP quota or limit was hit.",
        "Free capacity (for keys: at most 10 per service account) or request a quota increase, "
        "then rerun.",
    ),
)
