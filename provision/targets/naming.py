"""Name shortening the clouds' naming modules share, as pure functions.

Each cloud turns a pool name into a stem by its own rules (``gcp_naming.base_name``,
``azure_naming.base_name``, ``aws_naming.stem``); these add a hash of the exact pool name and
truncate to a cloud's length limit. The hash length is the caller's: 4 hex chars for GCP and
Azure, 6 for AWS. Both are part of the names of deployed resources and must never change.
"""

from __future__ import annotations

import hashlib


def pool_hash(pool: str, length: int) -> str:
    """``length`` lowercase hex chars that identify ``pool`` (stable across runs and machines):
    the start of the SHA-256 of its UTF-8 bytes."""
    return hashlib.sha256(pool.encode("utf-8")).hexdigest()[:length]


def bounded(stem: str, pool: str, suffix: str, limit: int, *, hash_len: int) -> str:
    """``{stem}-{suffix}``, or ``{truncated stem}-{hash}-{suffix}`` when that exceeds ``limit``.

    ``stem`` is the caller's stem of ``pool``; the hash is ``pool_hash(pool, hash_len)``, so two
    long pool names sharing a prefix still get different names. The truncated stem loses any
    trailing ``-`` or ``_``, so no separator is doubled.
    """
    full = f"{stem}-{suffix}"
    if len(full) <= limit:
        return full
    keep = limit - len(suffix) - hash_len - 2  # two joining hyphens
    head = stem[:keep].rstrip("-_")
    return f"{head}-{pool_hash(pool, hash_len)}-{suffix}"
