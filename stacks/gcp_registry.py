"""Artifact Registry's names: what the Cloud Run stack outputs and what its target predicts
before any engine run (``GcpPool.expected_outputs``, the work pool's defaults in a plan).

No pulumi import: the target computes these on the thread that checks Prefect, while the
stack's own modules (and pulumi_gcp's) load in the background.
"""

from __future__ import annotations


def registry_host(region: str) -> str:
    """The Docker host of Artifact Registry in ``region``."""
    return f"{region}-docker.pkg.dev"


def image_namespace(region: str, project: str, repository_id: str) -> str:
    """Image path prefix of a repository (domain-scoped ``a.com:p`` becomes ``a.com/p``)."""
    return f"{registry_host(region)}/{project.replace(':', '/')}/{repository_id}"
