"""Reading a file backend's checkpoint without the CLI: what is read, and when the CLI is
asked instead (``UNKNOWN``); repairing the metadata sidecars a killed writer tore. The
equivalence with ``pulumi stack export`` itself is checked
against the real CLI in ``test_engine.py``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from provision.state_file import UNKNOWN, read_checkpoint, repair_torn_sidecars

DEPLOYMENT = {
    "manifest": {"time": "2026-12-01T00:00:00Z", "magic": "m", "version": "v3.259.0"},
    "secrets_providers": {"type": "passphrase", "state": {"salt": "v1:abc"}},
    "resources": [{"urn": "urn:pulumi:p::provision::pulumi:pulumi:Stack::provision-p"}],
}


def backend(root: Path, meta: str | None = "version: 1\n") -> str:
    """A file backend at ``root``: its ``.pulumi`` dir and, unless ``None``, its meta.yaml."""
    (root / ".pulumi" / "stacks" / "provision").mkdir(parents=True)
    if meta is not None:
        (root / ".pulumi" / "meta.yaml").write_text(meta)
    return f"file://{root}"


def checkpoint(root: Path, stack: str, body: object) -> Path:
    path = root / ".pulumi" / "stacks" / "provision" / f"{stack}.json"
    path.write_text(json.dumps(body))
    return path


def test_the_latest_deployment_is_read_as_stack_export_prints_it(tmp_path):
    url = backend(tmp_path)
    body = {"version": 3, "checkpoint": {"stack": "etl", "latest": DEPLOYMENT}}
    checkpoint(tmp_path, "etl", body)
    assert read_checkpoint(url, "provision", "etl") == {"version": 3, "deployment": DEPLOYMENT}


def test_a_stack_with_nothing_recorded_yet_is_an_empty_deployment(tmp_path):
    # `stack init` writes a checkpoint with no `latest`.
    url = backend(tmp_path)
    checkpoint(tmp_path, "etl", {"version": 3, "checkpoint": {"stack": "organization/p/etl"}})
    assert read_checkpoint(url, "provision", "etl") == {"version": 3, "deployment": {}}


def test_no_file_is_no_stack(tmp_path):
    url = backend(tmp_path)
    assert read_checkpoint(url, "provision", "etl") is None
    # Nor in a backend the CLI never wrote to.
    assert read_checkpoint(f"file://{tmp_path / 'empty'}", "provision", "etl") is None


@pytest.mark.parametrize(
    "meta",
    [None, "version: 0\n", "version: two\n", "{}\n"],
    ids=["no-meta-legacy", "legacy-layout", "unparsable", "no-version"],
)
def test_a_layout_other_than_the_project_scoped_one_is_left_to_the_cli(tmp_path, meta):
    url = backend(tmp_path, meta)
    checkpoint(tmp_path, "etl", {"version": 3, "checkpoint": {"latest": DEPLOYMENT}})
    assert read_checkpoint(url, "provision", "etl") is UNKNOWN


@pytest.mark.parametrize("ext", [".gz", ".zst"])
def test_a_compressed_checkpoint_is_left_to_the_cli(tmp_path, ext):
    # The CLI picks the newest of plain and compressed candidates: not this module's call.
    url = backend(tmp_path)
    path = checkpoint(tmp_path, "etl", {"version": 3, "checkpoint": {"latest": DEPLOYMENT}})
    path.with_name(path.name + ext).write_bytes(b"\x1f\x8b")
    assert read_checkpoint(url, "provision", "etl") is UNKNOWN


@pytest.mark.parametrize(
    "body",
    ["{not json", json.dumps({"version": 2, "checkpoint": {}}), json.dumps({"version": 3}), "[]"],
    ids=["not-json", "old-version", "no-checkpoint", "not-an-object"],
)
def test_a_file_it_cannot_vouch_for_is_left_to_the_cli(tmp_path, body):
    # The CLI's own error (through the engine's error table) is the one the user sees.
    url = backend(tmp_path)
    (tmp_path / ".pulumi" / "stacks" / "provision" / "etl.json").write_text(body)
    assert read_checkpoint(url, "provision", "etl") is UNKNOWN


@pytest.mark.parametrize(
    "url",
    [
        "s3://bucket/prefix?region=eu-west-1",
        "gs://bucket",
        "https://api.pulumi.com",
        "file://{}?x=1",
    ],
)
def test_other_backends_are_left_to_the_cli(tmp_path, url):
    backend(tmp_path)
    checkpoint(tmp_path, "etl", {"version": 3, "checkpoint": {"latest": DEPLOYMENT}})
    assert read_checkpoint(url.format(tmp_path), "provision", "etl") is UNKNOWN


# -- torn sidecars -----------------------------------------------------------------------------

WHOLE = '{"user.content_type":"text/plain; charset=utf-8","md5":"+pSZMJL+3obZB2ykFp3Mug=="}\n'


def sidecar(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    attrs = path.with_name(path.name + ".attrs")
    attrs.write_text(text)
    return attrs


def test_the_torn_sidecars_of_the_stacks_files_go_and_nothing_else(tmp_path):
    url = backend(tmp_path)
    stacks = tmp_path / ".pulumi" / "stacks" / "provision"
    history = tmp_path / ".pulumi" / "history" / "provision" / "etl"
    # Empty (killed after the truncate) and cut short (killed mid-encode): both torn.
    torn = [
        sidecar(stacks / "etl.json", ""),
        sidecar(history / "etl-1.history.json", WHOLE[:20]),
    ]
    kept = [
        sidecar(stacks / "etl.json.bak", WHOLE),
        sidecar(history / "etl-1.checkpoint.json", WHOLE),
        # Another stack's, even one whose name starts the same: not this stack's to repair.
        sidecar(stacks / "etl2.json", ""),
        sidecar(tmp_path / ".pulumi" / "history" / "provision" / "etl2" / "x.json", ""),
    ]

    assert repair_torn_sidecars(url, "provision", "etl") == sorted(torn)

    assert not any(path.exists() for path in torn)
    assert all(path.exists() for path in kept)
    assert repair_torn_sidecars(url, "provision", "etl") == []


@pytest.mark.parametrize("meta", [None, "version: 0\n"], ids=["no-meta", "legacy"])
def test_sidecars_of_a_layout_it_does_not_know_are_left_alone(tmp_path, meta):
    url = backend(tmp_path, meta)
    attrs = sidecar(tmp_path / ".pulumi" / "stacks" / "provision" / "etl.json", "")
    assert repair_torn_sidecars(url, "provision", "etl") == []
    assert attrs.exists()


def test_other_backends_have_no_sidecars_to_repair(tmp_path):
    assert repair_torn_sidecars("s3://bucket/prefix", "provision", "etl") == []
