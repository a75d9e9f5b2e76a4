"""Artifact Registry's names, shared by the Cloud Run stack and its target's predictions."""

from __future__ import annotations

from stacks.gcp_registry import image_namespace, registry_host


def test_registry_host_and_image_namespace():
    assert registry_host("europe-west1") == "europe-west1-docker.pkg.dev"
    assert image_namespace("europe-west1", "acme-1", "etl-images") == (
        "europe-west1-docker.pkg.dev/acme-1/etl-images"
    )


def test_image_namespace_domain_scoped_project():
    assert image_namespace("us-central1", "example.com:proj", "r") == (
        "us-central1-docker.pkg.dev/example.com/proj/r"
    )
