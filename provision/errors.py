"""Typed errors. Every failure the user can act on is one of these.

Each carries a one-line ``message`` (what went wrong), an optional ``hint`` (what to do)
and optional ``details`` (the full engine or API output, shown only under ``--verbose``).
The CLI maps ``exit_code`` to the process exit status; nothing else decides exit codes.
"""

from __future__ import annotations


class ProvisionError(Exception):
    """Base of every error the tool reports to a user."""

    exit_code = 1

    def __init__(self, message: str, *, hint: str | None = None, details: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.details = details

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message} {self.hint}"


class InvalidInputError(ProvisionError):
    """Bad user input, caught before any engine or cloud call; nothing was written."""

    exit_code = 2


class PoolNotFoundError(ProvisionError):
    """No stack exists for the named pool."""

    exit_code = 2


class PulumiCliMissingError(ProvisionError):
    """The pulumi CLI is neither present nor installable."""


class EngineError(ProvisionError):
    """A Pulumi engine operation failed; ``details`` holds the engine output."""

    def __init__(
        self,
        message: str,
        *,
        hint: str | None = None,
        details: str | None = None,
        resource: str | None = None,
    ):
        super().__init__(message, hint=hint, details=details)
        self.resource = resource


class StackLockedError(EngineError):
    """Another run holds the stack's lock (or a killed run left a stale one)."""


class CloudCredentialsError(EngineError):
    """The cloud provider found no usable credentials."""


class ApiNotEnabledError(EngineError):
    """A cloud API the stack needs is disabled on the project/account."""


class PermissionDeniedError(EngineError):
    """The caller lacks a cloud permission; the message names it when the cloud does."""


class QuotaExceededError(EngineError):
    """A cloud quota or per-principal limit was hit."""


class OrgPolicyError(EngineError):
    """An organisation policy forbids something the stack does (e.g. service-account keys)."""


class PropagationError(EngineError):
    """A just-created identity or grant is not visible yet; retrying the update converges."""


class PrefectStepError(EngineError):
    """A Prefect write or delete inside an engine run failed (the Prefect side's resources)."""


class SecretsConfigError(EngineError):
    """The stack's secrets cannot be decrypted here: wrong or missing passphrase, or an
    unreachable KMS/Vault secrets provider."""


class PrefectError(ProvisionError):
    """The Prefect API rejected a request."""


class PrefectUnreachableError(PrefectError):
    """The Prefect API could not be reached after retries."""


class CloudSideDoneError(ProvisionError):
    """The cloud side is up but writing to Prefect failed; rerunning ``up`` finishes the job."""

    def __init__(self, cause: ProvisionError, pool: str):
        super().__init__(
            f"Cloud resources for '{pool}' are in place, but Prefect could not be updated: "
            f"{cause.message}",
            hint=f"Rerun `provision up {pool}` once Prefect is reachable: it finishes the job "
            "without creating new credentials.",
            details=cause.details,
        )
        self.cause = cause
