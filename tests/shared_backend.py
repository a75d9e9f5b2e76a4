"""A shared Pulumi state backend on loopback: moto's S3 (and KMS) behind an ``s3://`` URL.

What "two machines sharing one S3 bucket" looks like, without AWS: the real pulumi CLI (built
from Go modules, gocloud.dev's ``s3blob`` on AWS SDK v2) stores checkpoints and locks in a
bucket of the session's moto server, and ``awskms://`` secrets providers can use moto's KMS.

Fixtures (registered for the whole tree by ``tests/conftest.py``; nothing starts until a test
asks for one):

``moto_server``
    The session's :class:`~tests.fakecloud.moto_server.MotoServer`, the same child process the
    fake ``aws`` provider's tests use (they isolate themselves by account header; the CLI can't
    send that header, so backend buckets live in moto's default account, isolated by name).
``s3_backend``
    A fresh bucket per test, as an :class:`S3Backend`: ``url`` (what a user writes in
    ``PULUMI_BACKEND_URL`` or ``backend.url``), ``env`` (what the CLI and boto3 need), and
    boto3 helpers to list lock and checkpoint objects and to make a KMS key.

The backend URL form (see :func:`backend_url`)::

    s3://BUCKET?endpoint=http://127.0.0.1:PORT&region=us-east-1&s3ForcePathStyle=true

Why each parameter, from pulumi pkg/v3@v3.259.0 ``backend/diy`` and gocloud.dev v0.46.1:

- ``endpoint``: gocloud.dev's ``aws.V2ConfigFromURLParams`` installs it as the endpoint of every
  call. It must carry its scheme: the AWS SDK v2 needs one; pulumi's ``translateLegacyS3Params``
  prefixes ``https://`` to a bare ``host:port`` (``http://`` only with ``disableSSL=true``).
  With an endpoint set, pulumi also adds ``request_checksum_calculation=when_required`` (the
  SDK v2's default streaming CRC32 uploads are refused by some S3 look-alikes).
- ``region``: the SDK signs with it; without it (and without ``AWS_REGION``) the CLI fails.
- ``s3ForcePathStyle=true`` (or its v2 name ``use_path_style=true``): requests go to
  ``http://127.0.0.1:PORT/BUCKET/KEY``; virtual-host style would ask for
  ``BUCKET.127.0.0.1``, which does not resolve.
- ``disableSSL=true`` is the v1 name: pulumi rewrites it to ``disable_https=true``; with an
  ``http://`` endpoint neither is needed. ``awssdk=v1|v2`` is accepted and ignored: this
  gocloud.dev has only the v2 SDK (``awssdk=v1`` does **not** bring v1 back). Any other
  parameter is rejected with ``unknown query parameter``.
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.fakecloud.moto_server import CREDENTIALS, MotoServer

REGION = "us-east-1"
DEFAULT_ACCOUNT = "123456789012"
"""moto's account for requests without the ``x-moto-account-id`` header, i.e. the CLI's."""

BOOKKEEPING = ".pulumi"
"""The DIY backend's root in the bucket (``workspace.BookkeepingDir``)."""


def backend_url(endpoint: str, bucket: str, region: str = REGION) -> str:
    """The ``s3://`` URL that makes the Go-built CLI keep its state in ``bucket`` on ``endpoint``.

    The endpoint stays unencoded (``endpoint=http://127.0.0.1:PORT``), as a user types it;
    Go's ``url.Query`` reads ``:`` and ``/`` in a query value as they are.
    """
    return f"s3://{bucket}?endpoint={endpoint}&region={region}&s3ForcePathStyle=true"


def aws_env(
    endpoint: str, region: str = REGION, *, config_dir: Path | None = None
) -> dict[str, str]:
    """What the CLI (AWS SDK v2) and boto3 need to talk to moto, and only to moto.

    - credentials: the SDK's default chain must find some (moto accepts any), or it goes on to
      EC2 instance metadata and fails after its timeouts;
    - ``AWS_REGION``/``AWS_DEFAULT_REGION``: a region for any URL that omits ``region=``;
    - ``AWS_ENDPOINT_URL``: a safety net. Both the SDK v2 and boto3 send every service without
      an explicit endpoint there, so an ``s3://``/``awskms://`` URL that forgets ``endpoint=``
      reaches moto, never real AWS. (A URL's own ``endpoint`` wins over it.)
    - ``AWS_EC2_METADATA_DISABLED``: never probe 169.254.169.254;
    - ``AWS_RESPONSE_CHECKSUM_VALIDATION=when_required``: no checksum warning per read;
    - ``AWS_CONFIG_FILE``/``AWS_SHARED_CREDENTIALS_FILE`` at files that don't exist (under
      ``config_dir``, if given): the developer's ``~/.aws`` profiles can't redirect a test.

    The result is overrides only: merge it over ``os.environ`` (the Automation API does that
    with ``env_vars``).
    """
    env = dict(CREDENTIALS)
    env.update(
        {
            "AWS_REGION": region,
            "AWS_DEFAULT_REGION": region,
            "AWS_ENDPOINT_URL": endpoint,
            "AWS_EC2_METADATA_DISABLED": "true",
            # moto sends no checksums on GetObject: with the SDK v2 default (when_supported)
            # every read prints "WARN Response has no supported checksum" to the CLI's stderr,
            # in front of the error text a test or a user reads.
            "AWS_RESPONSE_CHECKSUM_VALIDATION": "when_required",
        }
    )
    if config_dir is not None:
        env["AWS_CONFIG_FILE"] = str(config_dir / "no-aws-config")
        env["AWS_SHARED_CREDENTIALS_FILE"] = str(config_dir / "no-aws-credentials")
    return env


def boto3_client(service: str, endpoint: str, region: str = REGION) -> Any:
    """A boto3 client on moto's default account, the one the pulumi CLI's requests land in.

    No ``x-moto-account-id`` header (unlike ``tests.fakecloud.moto_server.client``): the CLI
    cannot send it, so its buckets and keys live in moto's default account.
    """
    import boto3
    from botocore.config import Config

    return boto3.client(
        service,
        region_name=region,
        endpoint_url=endpoint,
        aws_access_key_id=CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        aws_session_token=CREDENTIALS["AWS_SESSION_TOKEN"],
        config=Config(
            retries={"max_attempts": 2, "mode": "standard"}, s3={"addressing_style": "path"}
        ),
    )


@dataclass
class S3Backend:
    """One test's bucket on the moto server, as a Pulumi DIY backend.

    Key layout the CLI writes (project-mode DIY backend, checked by tests/test_shared_backend.py)::

        .pulumi/meta.yaml                                         backend version (4)
        .pulumi/stacks/PROJECT/STACK.json                         the checkpoint
        .pulumi/stacks/PROJECT/STACK.json.bak                     the previous checkpoint
        .pulumi/backups/PROJECT/STACK/STACK.TS.json               a copy per checkpoint write
        .pulumi/history/PROJECT/STACK/STACK-TS.history.json       one per update
        .pulumi/history/PROJECT/STACK/STACK-TS.checkpoint.json    checkpoint after it
        .pulumi/locks/organization/PROJECT/STACK/UUID.json        one per CLI process holding it
    """

    endpoint: str
    bucket: str
    region: str = REGION
    env: dict[str, str] = field(default_factory=dict)

    @property
    def url(self) -> str:
        """The ``s3://`` backend URL (``PULUMI_BACKEND_URL`` or a project's ``backend.url``)."""
        return backend_url(self.endpoint, self.bucket, self.region)

    def client(self, service: str = "s3") -> Any:
        """A boto3 client for ``service`` on the same moto account as the CLI."""
        return boto3_client(service, self.endpoint, self.region)

    def keys(self, prefix: str = BOOKKEEPING + "/") -> list[str]:
        """Every object key under ``prefix``, sorted."""
        s3 = self.client()
        found: list[str] = []
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix):
            found.extend(item["Key"] for item in page.get("Contents", []))
        return sorted(found)

    def lock_keys(self, project: str | None = None, stack: str | None = None) -> list[str]:
        """Lock objects (``.pulumi/locks/organization/PROJECT/STACK/UUID.json``)."""
        prefix = f"{BOOKKEEPING}/locks/"
        if project is not None:
            prefix += f"organization/{project}/"
            if stack is not None:
                prefix += f"{stack}/"
        return [key for key in self.keys(prefix) if key.endswith(".json")]

    def locks(
        self, project: str | None = None, stack: str | None = None
    ) -> dict[str, dict[str, Any]]:
        """Lock key → its content (``pid``, ``username``, ``hostname``, ``timestamp``)."""
        return {key: self.read_json(key) for key in self.lock_keys(project, stack)}

    def checkpoint_keys(self, project: str | None = None) -> list[str]:
        """Current checkpoints (``.pulumi/stacks/PROJECT/STACK.json``), no ``.bak``s."""
        prefix = f"{BOOKKEEPING}/stacks/" + (f"{project}/" if project is not None else "")
        return [key for key in self.keys(prefix) if key.endswith(".json")]

    def checkpoint_key(self, project: str, stack: str) -> str:
        """Where ``project``/``stack``'s checkpoint lives."""
        return f"{BOOKKEEPING}/stacks/{project}/{stack}.json"

    def read(self, key: str) -> bytes:
        """An object's bytes."""
        return self.client().get_object(Bucket=self.bucket, Key=key)["Body"].read()

    def read_json(self, key: str) -> Any:
        """An object parsed as JSON (checkpoints are plain JSON unless PULUMI_DIY_BACKEND_GZIP)."""
        return json.loads(self.read(key))

    def checkpoint(self, project: str, stack: str) -> dict[str, Any]:
        """``project``/``stack``'s checkpoint as stored: ``{"version": 3, "checkpoint": ...}``."""
        return self.read_json(self.checkpoint_key(project, stack))

    def kms_key_url(self, description: str = "pulumi secrets") -> str:
        """Create a symmetric key in moto's KMS; return the ``awskms://`` secrets provider URL.

        ``endpoint`` and ``region`` are gocloud.dev ``aws.V2ConfigFromURLParams`` parameters,
        as for ``s3://``; the key id (a UUID, no ``:``) can stand in the URL's host.
        """
        key_id = self.client("kms").create_key(Description=description)["KeyMetadata"]["KeyId"]
        return f"awskms://{key_id}?region={self.region}&endpoint={self.endpoint}"


def new_bucket_name() -> str:
    """A fresh, DNS-valid bucket name (moto's bucket namespace is the whole server's)."""
    return f"pulumi-state-{secrets.token_hex(6)}"


def make_backend(
    server: MotoServer, *, config_dir: Path | None = None, region: str = REGION
) -> S3Backend:
    """A new bucket on ``server`` and the :class:`S3Backend` that serves it."""
    backend = S3Backend(
        endpoint=server.endpoint,
        bucket=new_bucket_name(),
        region=region,
        env=aws_env(server.endpoint, region, config_dir=config_dir),
    )
    # us-east-1 takes no LocationConstraint; any other region needs one, as on AWS.
    extra: dict[str, Any] = (
        {}
        if region == "us-east-1"
        else {"CreateBucketConfiguration": {"LocationConstraint": region}}
    )
    backend.client().create_bucket(Bucket=backend.bucket, **extra)
    return backend


@pytest.fixture(scope="session")
def moto_server() -> Iterator[MotoServer]:
    """The session's moto server (a child process on a free loopback port), started on first use.

    Session-scoped so the ~1 s moto start is paid once for every test that needs AWS; tests
    stay isolated by account (the fake provider) or by bucket (the state backend).
    """
    server = MotoServer().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def s3_backend(moto_server: MotoServer, tmp_path: Path) -> S3Backend:
    """A fresh bucket on the session's moto server, as a Pulumi state backend (see module doc)."""
    config_dir = tmp_path / "aws-config"
    config_dir.mkdir(exist_ok=True)
    return make_backend(moto_server, config_dir=config_dir)


def merged_env(*layers: Mapping[str, str]) -> dict[str, str]:
    """``os.environ`` with ``layers`` applied in order (for a plain ``subprocess`` call)."""
    env = dict(os.environ)
    for layer in layers:
        env.update(layer)
    return env
