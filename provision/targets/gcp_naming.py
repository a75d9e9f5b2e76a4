"""GCP naming rules, as pure functions: default resource ids derived from a pool name.

Prefect pool names are free text ("ETL pool #2", "data_team/prod"); GCP ids are not. Every
function here returns an id that GCP accepts, whatever the pool name, and is stable (the same
pool always maps to the same id, so a rerun never renames anything). When an id would be too
long, the base is truncated and a 4-hex-char hash of the full pool name is added, so two long
pool names sharing a prefix still get different ids.

Nothing here imports pulumi or a cloud SDK: the CLI validates options with these before any
engine call.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from functools import partial
from typing import Any

from provision.targets import naming
from provision.targets.base import text_value

# Service account ids: 6-30 chars, lowercase letter first, no trailing hyphen
# (https://cloud.google.com/iam/docs/service-accounts-create#creating).
ACCOUNT_ID_RE = re.compile(r"^[a-z][-a-z0-9]{4,28}[a-z0-9]$")
ACCOUNT_ID_MAX = 30
# Artifact Registry repository ids: lowercase letter first, up to 63 chars.
REPOSITORY_ID_RE = re.compile(r"^[a-z]([a-z0-9-]{0,61}[a-z0-9])?$")
REPOSITORY_ID_MAX = 63
# Project custom role ids: [a-zA-Z0-9_.], 3-64 chars.
ROLE_ID_RE = re.compile(r"^[a-zA-Z0-9_.]{3,64}$")
ROLE_ID_MAX = 64
ROLE_ID_PREFIX = "provision_"
# Cloud Run worker pool ids: "must begin with letter, and cannot end with hyphen; must contain
# fewer than 50 characters", lowercase letters, digits and hyphens
# (cloud.google.com/run/docs/reference/rest/v2/projects.locations.workerPools/create).
WORKER_POOL_ID_RE = re.compile(r"^[a-z]([-a-z0-9]{0,47}[a-z0-9])?$")
WORKER_POOL_ID_MAX = 49
# Secret Manager secret ids: letters, digits, hyphens and underscores, at most 255.
SECRET_ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,255}$")

_HASH_LEN = 4


def pool_hash(pool: str) -> str:
    """4 lowercase hex chars that identify ``pool`` (stable across runs and machines)."""
    return naming.pool_hash(pool, _HASH_LEN)


def base_name(pool: str) -> str:
    """The pool name as a GCP-id-safe stem: lowercase, ``[a-z0-9-]`` only, starting with a letter.

    ``_`` and every other character outside ``[a-z0-9-]`` become ``-``; runs of ``-`` collapse
    and edge hyphens go. A stem that would not start with a letter gets a ``p-`` prefix; an empty
    one becomes ``p``. A stem that differs from the pool name gets the pool's hash, so pools
    that slug alike (``my_pool``, ``my-pool``, ``My-Pool``) never share account ids.
    """
    stem = re.sub(r"[^a-z0-9-]", "-", pool.lower())
    stem = re.sub(r"-{2,}", "-", stem).strip("-")
    if not stem[:1].isalpha():
        stem = f"p-{stem}".rstrip("-")
    return stem if stem == pool else f"{stem}-{pool_hash(pool)}"


def _bounded(pool: str, suffix: str, limit: int) -> str:
    """``{base}-{suffix}``, or ``{truncated base}-{hash}-{suffix}`` when that exceeds ``limit``."""
    return naming.bounded(base_name(pool), pool, suffix, limit, hash_len=_HASH_LEN)


def worker_account_id(pool: str) -> str:
    """Default id of the worker service account (the identity whose key goes into Prefect)."""
    return _bounded(pool, "worker", ACCOUNT_ID_MAX)


def runtime_account_id(pool: str) -> str:
    """Default id of the runtime service account (the identity flow-run jobs execute as)."""
    return _bounded(pool, "runtime", ACCOUNT_ID_MAX)


def repository_id(pool: str) -> str:
    """Default Artifact Registry repository id for the pool's images."""
    return _bounded(pool, "images", REPOSITORY_ID_MAX)


def worker_pool_id(pool: str) -> str:
    """Default id of the Cloud Run worker pool that runs the pool's Prefect worker."""
    return _bounded(pool, "worker", WORKER_POOL_ID_MAX)


def worker_secret_id(worker_pool: str, variable: str) -> str:
    """The Secret Manager secret holding the worker's ``variable`` (``PREFECT_API_KEY``):
    ``<worker pool id>-<variable>``, so the secret names what reads it and what it holds."""
    return f"{worker_pool}-{variable}"


def role_id(pool: str, suffix: str) -> str:
    """Custom role id ``provision_<base with - as _>_<suffix>``, at most 64 chars.

    ``suffix`` is random and chosen once per stack: GCP keeps a deleted custom role's id
    reserved for up to 37 days, so a destroy followed by an up with a fixed id would fail.
    """
    tail = f"_{suffix}"
    room = ROLE_ID_MAX - len(ROLE_ID_PREFIX) - len(tail)
    stem = base_name(pool).replace("-", "_")[:room].rstrip("_")
    return f"{ROLE_ID_PREFIX}{stem}{tail}"


def service_account_email(account_id: str, project: str) -> str:
    """The email GCP gives ``account_id`` in ``project`` (domain-scoped projects included).

    ``example.com:my-proj`` accounts live at ``id@my-proj.example.com.iam.gserviceaccount.com``.
    """
    if ":" in project:
        domain, _, name = project.partition(":")
        return f"{account_id}@{name}.{domain}.iam.gserviceaccount.com"
    return f"{account_id}@{project}.iam.gserviceaccount.com"


def resource_id(project: str, type_token: str, inputs: Mapping[str, Any]) -> str | None:
    """The id pulumi-gcp records for a create of ``type_token`` with ``inputs``, or ``None``.

    Only the stack's resources whose create fails on an existing id (409) are listed: their ids
    are fixed by the pool's names. IAM members are idempotent; keys and secret versions get
    their ids from GCP. ``project`` stands in when the inputs leave it to the provider.
    """

    text = partial(text_value, inputs)
    project = text("project") or project
    if type_token == "gcp:serviceaccount/account:Account":
        account = text("accountId")
        email = account and service_account_email(account, project)
        return email and f"projects/{project}/serviceAccounts/{email}"
    if type_token == "gcp:projects/iAMCustomRole:IAMCustomRole":
        role = text("roleId")
        return role and f"projects/{project}/roles/{role}"
    if type_token == "gcp:artifactregistry/repository:Repository":
        location, repository = text("location"), text("repositoryId")
        if not (location and repository):
            return None
        return f"projects/{project}/locations/{location}/repositories/{repository}"
    if type_token == "gcp:cloudrunv2/workerPool:WorkerPool":
        location, name = text("location"), text("name")
        if not (location and name):
            return None
        return f"projects/{project}/locations/{location}/workerPools/{name}"
    if type_token == "gcp:secretmanager/secret:Secret":
        secret = text("secretId")
        return secret and f"projects/{project}/secrets/{secret}"
    return None
