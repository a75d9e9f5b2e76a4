"""The leak scan itself (``Sandbox.assert_no_secret_leaked``): what it reads, and that the pulumi
CLI's automatic logs, which hold a run's secret values, are sealed.

pulumi 3.259 keeps a debug log of every command under ``PULUMI_HOME/logs``: gzip until the
command has the stack's secrets manager, then encrypted with it (a ``PLOG`` file). Decrypted,
an ``up``'s log holds the created key's secret as the state does; a text scan of the file
cannot see into either form, so the scan decompresses gzip and requires every log sealed.
"""

from __future__ import annotations

import gzip
import secrets
from pathlib import Path

import pytest

from tests.e2e.conftest import Sandbox, automatic_logs_are_sealed, file_text
from tests.e2e.test_gcp import up

pytestmark = pytest.mark.e2e

SECRET = "s3cr3t-" + "x" * 33


def test_a_gzip_file_is_read_decompressed(tmp_path: Path) -> None:
    packed = tmp_path / "pulumi-20261204T145143-9889-stack_new.log"
    packed.write_bytes(gzip.compress(f'{{"msg": "{SECRET}"}}\n'.encode()))
    plain = tmp_path / "plain.txt"
    plain.write_text(f"key={SECRET}")
    assert SECRET in file_text(packed)
    assert SECRET in file_text(plain)


def test_a_gzip_file_cut_short_is_read_as_far_as_it_was_written(tmp_path: Path) -> None:
    # What a CLI killed mid-command leaves (seen in CI: the 10-byte header alone), and a log of
    # two gzip members, the second one cut short.
    first = gzip.compress(f'{{"msg": "{SECRET}"}}\n'.encode())
    second = gzip.compress(b'{"msg": "' + SECRET.upper().encode() + b'"}\n' + b"x" * 4000)
    header_only = tmp_path / "header-only.log"
    header_only.write_bytes(first[:10])
    assert file_text(header_only) == ""
    cut = tmp_path / "cut.log"
    cut.write_bytes(first + second[: len(second) - 12])
    text = file_text(cut)
    assert SECRET in text
    assert SECRET.upper() in text


def test_every_automatic_log_must_be_sealed(tmp_path: Path) -> None:
    logs = tmp_path / "pulumi-home" / "logs"
    logs.mkdir(parents=True)
    (logs / "organization+provision+etl-20261204T145145.log").write_bytes(b"PLOG\x01\x00Tv1:...")
    (logs / "pulumi-20261204T145143-9889-stack_new.log").write_bytes(gzip.compress(b"{}"))
    (logs / "pulumi-20261204T145144-9890-preview.log").write_bytes(b"")  # a CLI killed at once
    automatic_logs_are_sealed(tmp_path.rglob("*.log"))

    (logs / "pulumi-20261204T145150-9990-up.log").write_text(f'{{"msg": "{SECRET}"}}\n')
    with pytest.raises(AssertionError, match="an unsealed pulumi log"):
        automatic_logs_are_sealed(tmp_path.rglob("*.log"))


def test_an_up_leaves_sealed_automatic_logs(sandbox: Sandbox) -> None:
    """Not a vacuous check: the runs of one pool leave logs, every one of them sealed."""
    pool = "etl" + secrets.token_hex(3)
    up(sandbox, pool)  # its key joins the secrets the sandbox's scan looks for
    logs = sorted((Path(sandbox.env["PULUMI_HOME"]) / "logs").glob(f"*+{pool}-*.log"))
    assert logs, "the CLI kept no automatic log of the pool's update"
    assert all(log.read_bytes().startswith(b"PLOG") for log in logs)
    automatic_logs_are_sealed(sandbox.root.rglob("*.log"))
