"""The error table: engine output → typed, one-line, actionable errors."""

from __future__ import annotations

import pytest

from provision.engine_errors import classify
from provision.errors import (
    ApiNotEnabledError,
    CloudCredentialsError,
    EngineError,
    OrgPolicyError,
    PermissionDeniedError,
    PrefectStepError,
    QuotaExceededError,
    SecretsConfigError,
    StackLockedError,
)
from provision.targets.gcp_errors import GCP_ERROR_RULES

KEY_URN = "urn:pulumi:p::provision::provision:gcp:CloudRunPool$gcp:serviceaccount/key:Key::p-key"


@pytest.mark.parametrize(
    ("text", "error", "needle"),
    [
        (
            "error: the stack is currently locked by 1 lock(s). Either wait for the other "
            "process(es) to end or delete the lock file with `pulumi cancel`.",
            StackLockedError,
            "another run",
        ),
        (
            "error: the stack is currently locked by 1 lock(s). Either wait for the other "
            "process(es) to end or delete the lock file with `pulumi cancel`.\n"
            "  s3://state/.pulumi/locks/organization/provision/p/0b.json?region=eu-west-1: "
            "created by alice@laptop-a (pid 4242) at 2026-12-01T21:04:45Z",
            StackLockedError,
            "locked by another run: alice@laptop-a, pid 4242, since 2026-12-01T21:04:45Z",
        ),
        (
            "error: failed to decrypt: incorrect passphrase, please set PULUMI_CONFIG_PASSPHRASE "
            "to the correct passphrase or set PULUMI_CONFIG_PASSPHRASE_FILE to a file containing "
            "the passphrase",
            SecretsConfigError,
            "does not decrypt",
        ),
        (
            "error: getting stack configuration: get stack secrets manager: passphrase must be "
            "set with PULUMI_CONFIG_PASSPHRASE or PULUMI_CONFIG_PASSPHRASE_FILE environment "
            "variables",
            SecretsConfigError,
            "No passphrase is configured",
        ),
        (
            'error: constructing secrets manager of type "cloud": secrets (code=Unknown): '
            "failed to decrypt with awskms://alias/provision?region=eu-west-1: "
            "operation error KMS: Decrypt, AccessDeniedException",
            SecretsConfigError,
            "(awskms://alias/provision?region=eu-west-1)",
        ),
        (
            "Traceback (most recent call last):\n  ...\n"
            "provision.prefect.resources.PrefectStepFailed: Cannot reach the Prefect API at "
            "http://127.0.0.1:9/api after 5 attempts.\n",
            PrefectStepError,
            "Cannot reach the Prefect API at http://127.0.0.1:9/api after 5 attempts.",
        ),
        (
            "google: could not find default credentials. See "
            "https://cloud.google.com/docs/authentication/external/set-up-adc",
            CloudCredentialsError,
            "No usable GCP credentials",
        ),
        (
            "Error 403: Cloud Run Admin API has not been used in project 123 before or it is "
            "disabled. Enable it by visiting https://console.developers.google.com/apis/api/"
            "run.googleapis.com/overview?project=123 then retry. SERVICE_DISABLED",
            ApiNotEnabledError,
            "run.googleapis.com",
        ),
        (
            "Error creating service account: googleapi: Error 403: Permission "
            "'iam.serviceAccounts.create' denied on resource (or it may not exist)., forbidden",
            PermissionDeniedError,
            "iam.serviceAccounts.create",
        ),
        (
            "Error 429: Quota exceeded for quota metric 'Service account creation requests'",
            QuotaExceededError,
            "quota",
        ),
        (
            "Error creating service account key: googleapi: Error 400: Precondition check failed."
            " FAILED_PRECONDITION: Key creation is not allowed on this service account. "
            "constraints/iam.disableServiceAccountKeyCreation",
            OrgPolicyError,
            "iam.disableServiceAccountKeyCreation",
        ),
    ],
)
def test_known_failures_become_typed_errors(text, error, needle):
    err = classify(text, pool="p", rules=GCP_ERROR_RULES)
    assert type(err) is error
    assert needle.lower() in (err.message + " " + (err.hint or "")).lower()
    assert "\n" not in err.message
    assert err.details == text


def test_secrets_errors_say_how_teams_share_them():
    err = classify("error: failed to decrypt: incorrect passphrase", pool="p")
    assert "same passphrase" in err.hint and "KMS/Vault" in err.hint


def test_org_policy_explains_the_options():
    err = classify(
        "FAILED_PRECONDITION: Key creation is not allowed on this service account.",
        pool="p",
        rules=GCP_ERROR_RULES,
    )
    assert "exempt" in err.hint and "Workload Identity" in err.hint


def test_unknown_failure_names_the_failed_resource():
    err = classify(
        "Diagnostics: ... lots of output",
        pool="p",
        rules=GCP_ERROR_RULES,
        failures={KEY_URN: "something odd\nhappened"},
        operation="update",
    )
    assert type(err) is EngineError
    assert err.message == (
        "Update of gcp:serviceaccount/key:Key 'p-key' failed: something odd happened"
    )
    assert err.resource == KEY_URN
    assert "rerun" in err.hint.lower()


def test_unknown_failure_without_resource_uses_the_last_error_line():
    err = classify("a\nerror: boom happened\nmore", pool="p")
    assert err.message == "Pulumi update of 'p' failed: boom happened"
