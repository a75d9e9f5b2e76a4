"""The one place where engine failures become typed, one-line, actionable errors.

Pulumi's Automation API classifies failures by matching text (``automation/errors.py``); we do
the same, with a table. Generic rules (locks, missing stacks) live here; each target adds rules
for its cloud's error texts (credentials, disabled APIs, permissions, quotas, org policies),
so the engine itself stays ignorant of any cloud.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from provision.errors import (
    EngineError,
    PrefectStepError,
    PropagationError,
    SecretsConfigError,
    StackLockedError,
)


@dataclass(frozen=True)
class ErrorRule:
    """Map engine output matching ``pattern`` to ``error`` with a formatted message.

    ``message`` and ``hint`` are ``str.format`` templates over the match's named groups plus
    ``pool``, ``detail`` (the first non-empty named group) and ``detail_suffix`` (`` (detail)``
    or nothing). First matching rule wins.
    """

    pattern: str
    error: type[EngineError]
    message: str
    hint: str | None = None

    def match(self, text: str) -> re.Match[str] | None:
        """Search ``text`` (case-insensitive, across lines)."""
        return re.search(self.pattern, text, re.IGNORECASE | re.DOTALL)


def propagation_rules(patterns: Iterable[str]) -> tuple[ErrorRule, ...]:
    """A target's propagation regexes as rules raising ``PropagationError``, which ``up``
    retries with backoff."""
    return tuple(
        ErrorRule(
            p,
            PropagationError,
            "A new identity or grant has not propagated in the cloud yet.",
            "Rerun in a minute: nothing needs to be undone.",
        )
        for p in patterns
    )


SHARE_SECRETS_HINT = (
    "Everyone who operates a pool needs its secrets configuration: the same passphrase "
    "(PULUMI_CONFIG_PASSPHRASE or PULUMI_CONFIG_PASSPHRASE_FILE, shared through your secret "
    "store), or a KMS/Vault secrets provider (--secrets-provider awskms://... etc.)."
)

GENERIC_RULES: tuple[ErrorRule, ...] = (
    ErrorRule(
        r"incorrect passphrase|passphrase (?:is )?(?:not valid|invalid)",
        SecretsConfigError,
        "The passphrase this machine uses does not decrypt the secrets of pool '{pool}'.",
        SHARE_SECRETS_HINT,
    ),
    ErrorRule(
        r"passphrase must be set|unable to read passphrase"
        r"|PULUMI_CONFIG_PASSPHRASE[^\n]*(?:not set|required)",
        SecretsConfigError,
        "No passphrase is configured on this machine for the secrets of pool '{pool}'.",
        SHARE_SECRETS_HINT,
    ),
    ErrorRule(
        r"(?:secrets manager|secrets provider|decrypt(?:ing)?)[^\n]*?"
        r"(?P<kms>(?:awskms|gcpkms|azurekeyvault|hashivault)://[^\s:\"']*)",
        SecretsConfigError,
        "The secrets provider of pool '{pool}' ({kms}) cannot be used from this machine.",
        "Check this machine's credentials for it and that it is reachable; " + SHARE_SECRETS_HINT,
    ),
    ErrorRule(
        r"(?:could not create secrets manager|constructing secrets manager|get stack secrets "
        r"manager)[^:\n]*: (?P<detail>[^\n]*)",
        SecretsConfigError,
        "The secrets provider of pool '{pool}' cannot be used from this machine: {detail}",
        "Check this machine's credentials for it and that it is reachable; " + SHARE_SECRETS_HINT,
    ),
    # The Prefect resources' provider re-raises the tool's own one-line errors under this name
    # (provision/prefect/resources.py); the line after it is the message, verbatim.
    ErrorRule(
        r"PrefectStepFailed: (?P<message>[^\n]*)",
        PrefectStepError,
        "{message}",
    ),
    ErrorRule(
        # The DIY backends (file, S3, GCS, Azure Blob) name each lock's holder.
        r"the stack is currently locked by[^\n]*\n\s*\S+: created by (?P<who>\S+) "
        r"\(pid (?P<pid>\d+)\) at (?P<since>\S+)",
        StackLockedError,
        "Pool '{pool}' is locked by another run: {who}, pid {pid}, since {since}.",
        "Wait for it to finish. If that run is dead, `provision unlock {pool}` clears a stale "
        "lock (`--force` clears any lock).",
    ),
    ErrorRule(
        r"the stack is currently locked by (?P<holder>[^\n]*)|"
        r"(?P<holder2>)conflict: another update is currently in progress",
        StackLockedError,
        "Pool '{pool}' is being updated by another run.",
        "Wait for it to finish. If no run is active (a killed run leaves its lock behind), "
        "run `provision unlock {pool}`.",
    ),
)


def classify(
    text: str,
    *,
    pool: str,
    rules: Iterable[ErrorRule] = (),
    failures: dict[str, str] | None = None,
    operation: str = "update",
) -> EngineError:
    """Turn the engine's output into the most specific typed error.

    ``failures`` maps URN to the provider's message for resources that failed (from engine
    events); when present, the first one names the resource in the message. ``text`` (the full
    engine output) goes to ``details`` for ``--verbose``.
    """
    failures = failures or {}
    first_urn, first_msg = next(iter(failures.items()), (None, None))
    haystack = "\n".join([*failures.values(), text])
    for rule in (*GENERIC_RULES, *rules):
        m = rule.match(haystack)
        if not m:
            continue
        fields = {k: (v or "").strip() for k, v in m.groupdict().items()}
        detail = next((v for v in fields.values() if v), "")
        fields.update(pool=pool, detail=detail, detail_suffix=f" ({detail})" if detail else "")
        return rule.error(
            rule.message.format(**fields),
            hint=rule.hint.format(**fields) if rule.hint else None,
            details=text,
            resource=first_urn,
        )
    if first_urn:
        from provision.events import urn_name, urn_type

        return EngineError(
            f"{operation.capitalize()} of {urn_type(first_urn)} '{urn_name(first_urn)}' failed: "
            f"{_one_line(first_msg or '')}",
            hint=f"Fix the cause and rerun: the stack for '{pool}' recorded what was done.",
            details=text,
            resource=first_urn,
        )
    return EngineError(
        f"Pulumi {operation} of '{pool}' failed: {_last_error_line(text)}",
        hint="Run again with --verbose for the engine's full output.",
        details=text,
    )


def _one_line(text: str, limit: int = 400) -> str:
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


def _last_error_line(text: str) -> str:
    for line in reversed(text.splitlines()):
        stripped = line.strip()
        if stripped.lower().startswith("error:"):
            return _one_line(stripped[len("error:") :].strip())
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    return _one_line(lines[-1]) if lines else "no output"
