"""End-to-end sandbox: the ``provision`` command as a user runs it.

Real pulumi engine (built from Go modules), fake cloud providers first on PATH, the session's
real Prefect server. Every run's stdout and stderr is kept so tests can check that no secret
ever reached them.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import time
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.fakecloud.harness import engine_env, require_pulumi_root
from tests.fakecloud.state import FakeCloud

PROVISION = str(Path(sys.executable).parent / "provision")


@dataclass
class Run:
    """One finished ``provision`` invocation."""

    args: list[str]
    code: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        """stdout and stderr together."""
        return self.stdout + self.stderr


@dataclass
class Sandbox:
    """A user's machine: its own PROVISION_HOME, Pulumi backend and fake cloud."""

    root: Path
    env: dict[str, str]
    prefect_url: str
    runs: list[Run] = field(default_factory=list)
    secrets: set[str] = field(default_factory=set)
    stores: list[Callable[[], list[str]]] = field(default_factory=list)
    """More places the leak check reads (a shared backend's objects), as text."""
    """Secret values seen so far (passphrase, API key, private keys read back from Prefect)."""

    @property
    def cloud(self) -> FakeCloud:
        """The fake cloud's state as it is now."""
        return FakeCloud(self.env["FAKECLOUD_STATE_DIR"])

    @property
    def home(self) -> Path:
        """PROVISION_HOME."""
        return Path(self.env["PROVISION_HOME"])

    @property
    def local_backend(self) -> Path:
        """The directory of its file backend (until a test shares an S3 one instead)."""
        url = self.env["PULUMI_BACKEND_URL"]
        assert url.startswith("file://"), f"not a file backend: {url}"
        return Path(url.removeprefix("file://"))

    def run(self, *args: str, expect: int | None = 0, timeout: float = 300, **extra: str) -> Run:
        """Run ``provision ARGS`` to completion; assert the exit code unless ``expect`` is None."""
        proc = subprocess.run(
            [PROVISION, *args],
            env={**self.env, **extra},
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )
        run = Run(list(args), proc.returncode, proc.stdout, proc.stderr)
        self.runs.append(run)
        if expect is not None:
            assert run.code == expect, (
                f"provision {' '.join(args)} exited {run.code}:\n{run.output}"
            )
        return run

    def start(self, *args: str, **extra: str) -> subprocess.Popen[str]:
        """Start ``provision ARGS`` in the background (its own process group)."""
        return subprocess.Popen(
            [PROVISION, *args],
            env={**self.env, **extra},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            stdin=subprocess.DEVNULL,
        )

    def finish(self, proc: subprocess.Popen[str], args: list[str], timeout: float = 300) -> Run:
        """Wait for a background run and record it."""
        out, err = proc.communicate(timeout=timeout)
        run = Run(args, proc.returncode, out, err)
        self.runs.append(run)
        return run

    def kill(self, proc: subprocess.Popen[str], args: list[str]) -> Run:
        """SIGKILL a background run (only the provision process, like a crashed terminal)."""
        proc.send_signal(signal.SIGKILL)
        return self.finish(proc, args, timeout=60)

    def run_with_prefect_down_midway(self, prefect_server: Any, *args: str) -> Run:
        """Run ``provision ARGS`` and stop the Prefect server once the cloud work has begun
        (after the run checked Prefect); the server is up again when this returns."""
        seen = len(self.cloud.calls("create", phase="begin"))  # earlier runs' creates
        proc = self.start(*args, FAKECLOUD_DELAY_MS_CREATE="300")
        try:
            wait_for(lambda: len(self.cloud.calls("create", phase="begin")) > seen, timeout=180)
            prefect_server.stop()
            return self.finish(proc, list(args))
        finally:
            if proc.poll() is None:
                proc.kill()
            prefect_server.start()

    def kill_while_creating(self, token: str, *args: str, after_write: bool) -> Run:
        """Run ``provision ARGS`` and SIGKILL it while the cloud creates a ``token``.

        Each create takes 1.5 s in the fake cloud: before its write, or (``after_write``) after
        the write and before the engine hears back, the window where the cloud has an object
        the state does not.
        """
        delay = "FAKECLOUD_DELAY_AFTER_MS_CREATE" if after_write else "FAKECLOUD_DELAY_MS_CREATE"
        seen = len(self.cloud.calls("create", token, phase="begin"))  # earlier runs' creates
        proc = self.start(*args, **{delay: "1500"})
        wait_for(lambda: len(self.cloud.calls("create", token, phase="begin")) > seen, timeout=180)
        run = self.kill(proc, list(args))
        assert run.code == -signal.SIGKILL, run.output
        return run

    def machine(self, name: str, **env: str) -> Sandbox:
        """Another user's machine sharing this one's backend, passphrase, cloud and Prefect,
        with an empty PROVISION_HOME and PULUMI_HOME of its own. Its runs and secrets are
        this sandbox's, so the leak scan covers both."""
        home = self.root / name
        (home / "pulumi-home").mkdir(parents=True, exist_ok=True)
        other = Sandbox(
            self.root,
            {
                **self.env,
                "PROVISION_HOME": str(home / "provision-home"),
                "PULUMI_HOME": str(home / "pulumi-home"),
                **env,
            },
            self.prefect_url,
            runs=self.runs,
            secrets=self.secrets,
            stores=self.stores,
        )
        return other

    def prefect(self, method: str, path: str, **kw: Any) -> httpx.Response:
        """Call the Prefect API directly, to assert what the tool wrote."""
        return httpx.request(method, self.prefect_url + path, timeout=15, **kw)

    def block(self, slug: str, name: str) -> dict[str, Any] | None:
        """A block document with its secrets, or None."""
        r = self.prefect(
            "GET",
            f"/block_types/slug/{slug}/block_documents/name/{name}",
            params={"include_secrets": "true"},
        )
        return None if r.status_code == 404 else r.raise_for_status().json()

    def work_pool(self, name: str) -> dict[str, Any] | None:
        """A work pool, or None."""
        r = self.prefect("GET", f"/work_pools/{name}")
        return None if r.status_code == 404 else r.raise_for_status().json()

    def remember_key(self, block: dict[str, Any] | None) -> None:
        """Add a credentials block's private key to the secrets checked for leaks."""
        info = (block or {}).get("data", {}).get("service_account_info") or {}
        if info.get("private_key"):
            self.secrets.add(info["private_key"])

    def assert_no_secret_leaked(self) -> None:
        """No secret in any output of any run, nor in any file under the sandbox.

        The whole sandbox is read: work dirs, stack config, the Pulumi state (where secrets
        must be ciphertext), engine logs and the fake cloud's call log. A gzip file is read
        decompressed: the pulumi CLI keeps an automatic log of every command under
        ``PULUMI_HOME/logs``, gzip until the command has the stack's secrets manager and
        encrypted with it from then on (``automatic_logs_are_sealed``).
        """
        texts = [r.output for r in self.runs]
        for store in self.stores:
            texts.extend(store())
        files = [path for path in self.root.rglob("*") if path.is_file()]
        for path in files:
            if path.stat().st_size < 5_000_000:
                texts.append(file_text(path))
        automatic_logs_are_sealed(files)
        known = {self.env.get("PULUMI_CONFIG_PASSPHRASE"), self.env["PREFECT_API_KEY"]}
        known = {k for k in (*known, *self.secrets) if k}
        assert len(known) >= 2
        for secret in known:
            # A PEM body is long: any 40-char slice of it would already be a leak.
            needles = {secret} if len(secret) < 80 else {secret[40:80], secret[-80:-40]}
            for text in texts:
                for needle in needles:
                    assert needle not in text, "a secret leaked into output or a log file"


_GZIP = b"\x1f\x8b"
_SEALED_LOG = b"PLOG"
"""The header of the CLI's encrypted automatic log (``pkg/engine/encryptedlog``)."""


def file_text(path: Path) -> str:
    """A file's text as the leak scan reads it: a gzip file decompressed, as far as it goes."""
    data = path.read_bytes()
    if data.startswith(_GZIP):
        data = gunzip(data)
    return data.decode(errors="replace")


def gunzip(data: bytes) -> bytes:
    """Every gzip member of ``data`` decompressed, the last one as far as it was written: a
    CLI killed while it writes its automatic log (a run the engine cancels, when the checks
    refuse the input) leaves it cut short, which ``gzip.decompress`` refuses to read at all."""
    parts = []
    while data:
        member = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
        parts.append(member.decompress(data))
        if not member.eof:
            break  # cut short: what was written is read
        data = member.unused_data
    return b"".join(parts)


def automatic_logs_are_sealed(files: Iterable[Path]) -> None:
    """Every automatic log the pulumi CLI kept under a ``PULUMI_HOME/logs`` (among ``files``)
    is encrypted with the stack's secrets manager (the run's secret values are in it, as in the
    state), or gzip from a command that had none (``stack init``), which the scan reads in full.
    """
    for log in files:
        if log.parent.name == "logs" and log.suffix == ".log":
            with log.open("rb") as f:
                head = f.read(len(_SEALED_LOG))  # the header only: the scan read the whole file
            # Empty: made by a CLI killed before it wrote anything.
            assert not head or head.startswith((_SEALED_LOG, _GZIP)), (
                f"an unsealed pulumi log: {log}"
            )


@pytest.fixture
def sandbox(tmp_path: Path, prefect_server) -> Iterator[Sandbox]:
    """A fresh user machine wired to the fake clouds and the session's Prefect server."""
    gcloud = tmp_path / "gcloud"
    gcloud.mkdir()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "PULUMI_"))},
        **engine_env(tmp_path),
        "PROVISION_HOME": str(tmp_path / "home"),
        "PROVISION_PULUMI_ROOT": str(require_pulumi_root()),
        # Short backoff: the fake cloud's propagation delay is short too.
        "PROVISION_RETRY_DELAYS": "0.5,1,2",
        "PREFECT_API_URL": prefect_server.api_url,
        # A self-hosted server ignores it; it is here to prove it never leaks.
        "PREFECT_API_KEY": "pnu_" + secrets.token_hex(18),
        "PREFECT_HOME": str(tmp_path / "prefect-home"),
        "PULUMI_CONFIG_PASSPHRASE": secrets.token_urlsafe(24),
        "CLOUDSDK_CONFIG": str(gcloud),
        "COLUMNS": "120",
    }
    env.pop("CI", None)
    env.pop("GOOGLE_CLOUD_PROJECT", None)
    box = Sandbox(tmp_path, env, prefect_server.api_url)
    yield box
    box.assert_no_secret_leaked()


def wait_for(predicate, timeout: float = 60, interval: float = 0.1) -> None:
    """Poll ``predicate`` until true or fail."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise AssertionError("condition not reached in time")


AZURE_TENANT = "0c1d2e3f-4a5b-4c6d-8e7f-9a0b1c2d3e4f"


def sign_in_everywhere(box: Sandbox, moto_server: Any) -> None:
    """``box`` signed in to the three fake clouds at once, as a platform team's CI is: a fresh
    AWS account on the moto server, a fake ``az login`` (GCP needs nothing: the fake takes
    the project from the stack config). No machine-wide cloud settings leak in."""
    from tests.fakecloud.moto_server import ACCOUNT_ENV, CREDENTIALS, ENDPOINT_ENV, new_account

    aws_dir = box.root / "aws"
    aws_dir.mkdir(exist_ok=True)
    (aws_dir / "config").write_text("")
    (aws_dir / "credentials").write_text("")
    azure_dir = box.root / "azure-cli"
    azure_dir.mkdir(exist_ok=True)
    for key in list(box.env):
        if key.startswith(("ARM_", "AZURE_", "AWS_PROFILE", "AWS_REGION", "AWS_DEFAULT_REGION")):
            del box.env[key]
    box.env.update(
        {
            **CREDENTIALS,
            "AWS_CONFIG_FILE": str(aws_dir / "config"),
            "AWS_SHARED_CREDENTIALS_FILE": str(aws_dir / "credentials"),
            ENDPOINT_ENV: moto_server.endpoint,
            ACCOUNT_ENV: new_account(),
            "ARM_TENANT_ID": AZURE_TENANT,
            "AZURE_CONFIG_DIR": str(azure_dir),
        }
    )


def share_backend(box: Sandbox, backend: Any) -> None:
    """Keep ``box``'s state in ``backend`` (a ``tests.shared_backend.S3Backend``), as a team
    does: the ``s3://`` URL a user writes, and what the CLI needs to reach the bucket. AWS
    settings the sandbox already has (a cloud test's own account) are kept."""
    box.env["PULUMI_BACKEND_URL"] = backend.url
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        box.env.setdefault(key, backend.env[key])
    box.env["AWS_EC2_METADATA_DISABLED"] = "true"
    box.env["AWS_RESPONSE_CHECKSUM_VALIDATION"] = "when_required"

    # The bucket is where the team's state lives: secrets there must be ciphertext too.
    def bucket() -> list[str]:
        listed = backend.keys()  # every object of the bucket
        return [backend.read(key).decode(errors="replace") for key in listed]

    box.stores.append(bucket)


@dataclass(frozen=True)
class Expected:
    """What a pool looks like from any machine: its type, location and block."""

    type: str
    location: str
    block_type: str
    block_name: str


def operate_from_another_machine(
    alice: Sandbox, pool: str, expected: Expected, credentials: Any
) -> Sandbox:
    """Everything a second machine sharing the backend must do with only the pool's name:
    list, preview (no change), show (the Prefect ids), a no-op up that creates no credential,
    and destroy (cloud side and the Prefect objects the tool made). ``credentials()`` lists the
    cloud's credential objects. Returns that machine."""
    block = alice.block(expected.block_type, expected.block_name)
    work_pool = alice.work_pool(pool)
    assert block is not None and work_pool is not None
    before = credentials()

    bob = alice.machine("bob")
    assert not bob.home.exists()
    rows = json.loads(bob.run("list", "--json").stdout)
    (row,) = [r for r in rows if r["name"] == pool]
    assert (row["type"], row["location"], row["result"]) == (
        expected.type,
        expected.location,
        "succeeded",
    )
    assert row["last_update"]

    plan = json.loads(bob.run("preview", pool, "--json", "--expect-no-changes").stdout)
    changes = plan["changes"]
    assert changes["create"] == changes["update"] == changes["replace"] == changes["delete"] == 0
    assert changes["same"] == len(plan["resources"]) > 0
    assert [p["op"] for p in plan["prefect"]] == ["same", "same"]

    shown = json.loads(bob.run("show", pool, "--json").stdout)
    assert shown["prefect"]["block_id"] == block["id"]
    assert shown["prefect"]["work_pool_id"] == work_pool["id"]

    run = bob.run("up", pool, "--yes")
    assert "0 created, 0 updated, 0 replaced, 0 deleted" in run.stdout
    assert credentials() == before
    assert alice.block(expected.block_type, expected.block_name)["id"] == block["id"]

    bob.run("destroy", pool, "--yes")
    assert alice.block(expected.block_type, expected.block_name) is None
    assert alice.work_pool(pool) is None
    assert credentials() == []
    assert pool not in alice.run("list").stdout
    return bob
