"""The real pulumi CLI on an S3 state backend served by moto (``tests/shared_backend.py``).

Each test is a question about sharing one bucket between machines, answered by running the CLI:
the URL form, passphrase secrets across machines, locks on S3, and KMS-backed secrets. A
"machine" is its own work dir and ``PULUMI_HOME`` with nothing shared but the backend URL (and
the passphrase, when it is the right one). The CLI is required: these tests fail without it.

``-s`` prints the CLI's error texts the assertions pin (``pytest tests/test_shared_backend.py -s``).
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.fakecloud.harness import pulumi_command
from tests.fakecloud.moto_server import CREDENTIALS
from tests.shared_backend import S3Backend, aws_env

PROJECT = "shared"
STACK = "dev"
PASSPHRASE = "correct horse battery staple"
SECRET_CONFIG = "hunter2-config"
SECRET_OUTPUT = "s3cr3t-output"
SECRET_MARKER = "4dabf18193072939515e22adb298388d"
"""The key pulumi's state JSON marks a secret value with (``sig.Secret``)."""


def program() -> None:
    """A stack with exports only: a plain value, a secret output and a secret config value."""
    import pulumi

    pulumi.export("greeting", "hello")
    pulumi.export("token", pulumi.Output.secret(SECRET_OUTPUT))
    password = pulumi.Config().get_secret("dbPassword")
    pulumi.export("dbPassword", password if password is not None else "unset")


def slow_program(started: threading.Event, release: threading.Event) -> Callable[[], None]:
    """:func:`program` plus an output whose ``apply`` blocks until ``release``: an ``up`` that
    holds its lock exactly as long as the test needs (the inline program runs in this process).
    """

    def run() -> None:
        import pulumi

        program()

        def wait(value: int) -> int:
            started.set()
            release.wait(120)
            return value

        pulumi.export("slow", pulumi.Output.from_input(1).apply(wait))

    return run


@dataclass
class Machine:
    """One developer machine: its own work dir and PULUMI_HOME, the shared backend's URL."""

    name: str
    work_dir: Path
    env: dict[str, str]
    backend_in_project: bool

    def workspace_options(self, **extra: Any) -> Any:
        from pulumi import automation as auto

        backend = auto.ProjectBackend(url=self.env["PULUMI_BACKEND_URL"])
        settings = auto.ProjectSettings(
            name=PROJECT, runtime="python", backend=backend if self.backend_in_project else None
        )
        env = dict(self.env)
        if self.backend_in_project:
            # Only Pulumi.yaml's backend.url: proves the project setting alone is enough.
            env.pop("PULUMI_BACKEND_URL")
        return auto.LocalWorkspaceOptions(
            pulumi_command=pulumi_command(),
            env_vars=env,
            work_dir=str(self.work_dir),
            project_settings=settings,
            **extra,
        )

    def create(self, prog: Callable[[], None] = program, **extra: Any) -> Any:
        from pulumi import automation as auto

        return auto.create_stack(
            STACK, project_name=PROJECT, program=prog, opts=self.workspace_options(**extra)
        )

    def select(self, prog: Callable[[], None] = program) -> Any:
        from pulumi import automation as auto

        return auto.select_stack(
            STACK, project_name=PROJECT, program=prog, opts=self.workspace_options()
        )

    def cli(self, *args: str, check: bool = True) -> Any:
        """The raw CLI in this machine's work dir (``--non-interactive``, as automation runs it)."""
        from pulumi.automation.errors import CommandError

        try:
            return pulumi_command().run([*args, "--non-interactive"], str(self.work_dir), self.env)
        except CommandError as error:
            if check:
                raise
            return error

    @property
    def stack_config_file(self) -> Path:
        return self.work_dir / f"Pulumi.{STACK}.yaml"


@pytest.fixture
def machine(
    s3_backend: S3Backend, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Callable[..., Machine]:
    """``machine(name, passphrase=..., backend_in_project=False)``: a fresh machine dir."""
    # The Automation API merges env_vars over os.environ: nothing from the outer environment
    # may supply the passphrase, an AWS profile, region or endpoint behind a test's back.
    for name in (
        "PULUMI_CONFIG_PASSPHRASE",
        "PULUMI_CONFIG_PASSPHRASE_FILE",
        "AWS_PROFILE",
        "AWS_ENDPOINT_URL",
        "AWS_ENDPOINT_URL_S3",
        "AWS_ENDPOINT_URL_KMS",
        "AWS_REGION",
        "AWS_DEFAULT_REGION",
        "PULUMI_BACKEND_URL",
    ):
        monkeypatch.delenv(name, raising=False)

    def make(
        name: str,
        *,
        passphrase: str | None = PASSPHRASE,
        backend_in_project: bool = False,
        aws: Mapping[str, str] | None = None,
    ) -> Machine:
        root = tmp_path / name
        (root / "work").mkdir(parents=True)
        (root / "home").mkdir()
        env = {
            **(s3_backend.env if aws is None else aws),
            "PULUMI_HOME": str(root / "home"),
            "PULUMI_BACKEND_URL": s3_backend.url,
            "PULUMI_SKIP_UPDATE_CHECK": "true",
            "PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION": "true",
        }
        if passphrase is not None:
            env["PULUMI_CONFIG_PASSPHRASE"] = passphrase
        return Machine(name, root / "work", env, backend_in_project)

    return make


def error_text(error: BaseException) -> str:
    """The CLI's stderr out of an automation error (what a user would see)."""
    text = str(error)
    return text.split(" stderr: ", 1)[-1].strip()


def deploy(machine: Machine, **extra: Any) -> Any:
    """``stack init`` + secret config + ``up`` on ``machine``; returns the stack."""
    stack = machine.create(**extra)
    from pulumi import automation as auto

    stack.set_config("dbPassword", auto.ConfigValue(SECRET_CONFIG, secret=True))
    result = stack.up()
    assert result.summary.result == "succeeded"
    return stack


# 1. The URL form, stack init/up/ls/export, no `pulumi login`.


def test_url_form_up_ls_export(s3_backend: S3Backend, machine: Callable[..., Machine]) -> None:
    """backend.url in Pulumi.yaml (no login, no PULUMI_BACKEND_URL): init, up, ls, export."""
    port = s3_backend.endpoint.rsplit(":", 1)[1]
    assert s3_backend.url == (
        f"s3://{s3_backend.bucket}?endpoint=http://127.0.0.1:{port}"
        "&region=us-east-1&s3ForcePathStyle=true"
    )
    a = machine("a", backend_in_project=True)
    stack = deploy(a)
    outputs = stack.outputs()
    assert outputs["greeting"].value == "hello"
    assert outputs["token"].value == SECRET_OUTPUT and outputs["token"].secret
    assert outputs["dbPassword"].value == SECRET_CONFIG and outputs["dbPassword"].secret
    # No `pulumi login` happened: PULUMI_HOME has no credentials.json naming the bucket.
    credentials = Path(a.env["PULUMI_HOME"]) / "credentials.json"
    assert not credentials.exists() or s3_backend.bucket not in credentials.read_text()

    keys = s3_backend.keys()
    print("\nkeys after one up:", *keys, sep="\n  ")
    assert ".pulumi/meta.yaml" in keys
    assert s3_backend.checkpoint_keys() == [f".pulumi/stacks/{PROJECT}/{STACK}.json"]
    assert any(k.startswith(f".pulumi/history/{PROJECT}/{STACK}/{STACK}-") for k in keys)
    assert s3_backend.lock_keys() == []  # released after the update

    listed = json.loads(a.cli("stack", "ls", "--json").stdout)
    print("stack ls --json:", listed)
    assert [entry["name"] for entry in listed] == [STACK]

    exported = json.loads(a.cli("stack", "export", "--stack", STACK).stdout)
    assert exported["deployment"]["secrets_providers"]["type"] == "passphrase"
    assert stack.export_stack().deployment["secrets_providers"]["type"] == "passphrase"


def test_url_alone_reaches_moto_without_endpoint_env(
    s3_backend: S3Backend, machine: Callable[..., Machine], tmp_path: Path
) -> None:
    """Only credentials + the URL: no AWS_ENDPOINT_URL/AWS_REGION safety net in the env."""
    minimal = {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_CONFIG_FILE": str(tmp_path / "none"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none"),
    }
    a = machine("a", aws=minimal)
    for name in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_REGION", "AWS_DEFAULT_REGION"):
        assert name not in a.env
    deploy(a)
    assert s3_backend.checkpoint_keys() == [f".pulumi/stacks/{PROJECT}/{STACK}.json"]


def test_v2_parameter_names_and_awssdk_are_accepted(
    s3_backend: S3Backend, machine: Callable[..., Machine]
) -> None:
    """``use_path_style``/``awssdk=v2`` and the v1 ``disableSSL`` + bare ``host:port`` endpoint."""
    host = s3_backend.endpoint.removeprefix("http://")
    forms = [
        f"s3://{s3_backend.bucket}?endpoint={s3_backend.endpoint}&region=us-east-1"
        "&use_path_style=true&awssdk=v2",
        f"s3://{s3_backend.bucket}?endpoint={host}&disableSSL=true&region=us-east-1"
        "&s3ForcePathStyle=true&awssdk=v1",
    ]
    a = machine("a")
    deploy(a)
    for url in forms:
        env = {**a.env, "PULUMI_BACKEND_URL": url}
        listed = pulumi_command().run(["stack", "ls", "--json"], str(a.work_dir), env)
        assert [entry["name"] for entry in json.loads(listed.stdout)] == [STACK], url


def test_missing_credentials_and_unknown_parameter_errors(
    s3_backend: S3Backend, machine: Callable[..., Machine], monkeypatch: pytest.MonkeyPatch
) -> None:
    """What a user sees with a typo'd URL parameter, or with no AWS credentials at all."""
    from pulumi.automation.errors import CommandError

    a = machine("a")
    assert json.loads(a.cli("stack", "ls", "--all", "--json").stdout) == []  # the good URL

    env = {**a.env, "PULUMI_BACKEND_URL": s3_backend.url + "&forcePathStyle=true"}
    with pytest.raises(CommandError) as unknown:
        pulumi_command().run(["stack", "ls", "--all", "--non-interactive"], str(a.work_dir), env)
    print("\nunknown parameter:", error_text(unknown.value))
    assert 'unknown query parameter "forcePathStyle"' in str(unknown.value)

    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    no_keys = {k: v for k, v in a.env.items() if k not in CREDENTIALS}
    with pytest.raises(CommandError) as anonymous:
        pulumi_command().run(
            ["stack", "ls", "--all", "--non-interactive"], str(a.work_dir), no_keys
        )
    print("no AWS credentials:", error_text(anonymous.value))
    assert "credentials" in str(anonymous.value).lower()


# 2. Two machines, one bucket, passphrase secrets.


def test_second_machine_uses_the_salt_from_the_state(
    s3_backend: S3Backend, machine: Callable[..., Machine]
) -> None:
    a = machine("a", backend_in_project=True)
    deploy(a)
    salt_a = next(
        line.split(":", 1)[1].strip()
        for line in a.stack_config_file.read_text().splitlines()
        if line.startswith("encryptionsalt:")
    )
    state = s3_backend.checkpoint(PROJECT, STACK)
    raw = s3_backend.read(s3_backend.checkpoint_key(PROJECT, STACK)).decode()
    providers = state["checkpoint"]["latest"]["secrets_providers"]
    assert providers == {"type": "passphrase", "state": {"salt": salt_a}}
    root = next(
        r for r in state["checkpoint"]["latest"]["resources"] if r["type"] == "pulumi:pulumi:Stack"
    )
    token = root["outputs"]["token"]
    print("\nsecret output in the checkpoint:", json.dumps(token))
    print("secrets_providers in the checkpoint:", json.dumps(providers))
    print("secret config on machine A:", a.stack_config_file.read_text())
    assert set(token) == {SECRET_MARKER, "ciphertext"} and token["ciphertext"].startswith("v1:")
    assert root["outputs"]["dbPassword"]["ciphertext"].startswith("v1:")
    # Neither the output nor the config value is in the bucket in clear; the config value's
    # own ciphertext (Pulumi.dev.yaml `secure:`) is not in the state either: config is local.
    assert SECRET_OUTPUT not in raw and SECRET_CONFIG not in raw
    secure = a.stack_config_file.read_text().split("secure: ", 1)[1].split()[0]
    assert secure not in raw
    assert "config" not in state["checkpoint"] or not state["checkpoint"]["config"]

    b = machine("b")  # PULUMI_BACKEND_URL only, an empty work dir
    stack_b = b.select()
    assert not b.stack_config_file.exists()
    outputs = stack_b.outputs()  # `stack output --show-secrets`: decrypts with the state's salt
    assert outputs["token"].value == SECRET_OUTPUT
    assert outputs["dbPassword"].value == SECRET_CONFIG
    exported = stack_b.export_stack().deployment
    assert exported["secrets_providers"]["state"]["salt"] == salt_a

    # Config does not travel with the state: B's program reads no dbPassword, so B's
    # preview changes that output (outputs are not counted in the resource change summary).
    preview = stack_b.preview()
    print("machine B preview, no local config:", preview.stdout)
    assert "~ dbPassword: [secret]" in preview.stdout

    # B sets the same secret config. With no local Pulumi.dev.yaml the CLI does NOT reuse
    # the state's salt: it draws a new one into B's file. Both salts check out against the
    # same passphrase, so nothing breaks; each machine's next `up` writes its own salt into
    # the state.
    from pulumi import automation as auto

    stack_b.set_config("dbPassword", auto.ConfigValue(SECRET_CONFIG, secret=True))
    config_b = b.stack_config_file.read_text()
    print("machine B Pulumi.dev.yaml after set_config:", config_b)
    salt_b = config_b.split("encryptionsalt: ", 1)[1].split()[0]
    assert salt_b != salt_a
    again = stack_b.preview()
    assert again.change_summary == {"same": 1} and "dbPassword" not in again.stdout
    assert stack_b.up().summary.result == "succeeded"
    assert checkpoint_salt(s3_backend) == salt_b

    stack_a = a.select()
    assert stack_a.outputs()["dbPassword"].value == SECRET_CONFIG  # A reads B's state
    assert stack_a.up().summary.result == "succeeded"
    assert checkpoint_salt(s3_backend) == salt_a


def checkpoint_salt(backend: S3Backend) -> str:
    """The passphrase salt the stack's checkpoint carries now."""
    latest = backend.checkpoint(PROJECT, STACK)["checkpoint"]["latest"]
    return latest["secrets_providers"]["state"]["salt"]


def test_wrong_or_missing_passphrase_on_the_second_machine(
    s3_backend: S3Backend, machine: Callable[..., Machine]
) -> None:
    from pulumi.automation.errors import CommandError

    deploy(machine("a"))

    wrong = machine("wrong", passphrase="not the passphrase")
    stack_wrong = wrong.select()  # selecting needs no secrets
    with pytest.raises(CommandError) as bad:
        stack_wrong.preview()
    print("\nwrong passphrase, preview:", error_text(bad.value))
    assert error_text(bad.value) == (
        "error: failed to decrypt: incorrect passphrase, please set PULUMI_CONFIG_PASSPHRASE to"
        " the correct passphrase or set PULUMI_CONFIG_PASSPHRASE_FILE to a file containing the"
        " passphrase"
    )
    with pytest.raises(CommandError) as bad_out:
        stack_wrong.outputs()
    print("wrong passphrase, stack output --show-secrets:", error_text(bad_out.value))
    assert "incorrect passphrase" in str(bad_out.value)
    # `stack export` copies the ciphertexts as they are: it needs no passphrase at all.
    exported = json.loads(wrong.cli("stack", "export", "--stack", STACK).stdout)
    assert exported["deployment"]["secrets_providers"]["type"] == "passphrase"

    missing = machine("missing", passphrase=None)
    stack_missing = missing.select()
    with pytest.raises(CommandError) as none:
        stack_missing.preview()
    print("no passphrase, preview:", error_text(none.value))
    assert error_text(none.value) == (
        "error: getting stack configuration: get stack secrets manager: passphrase must be set"
        " with PULUMI_CONFIG_PASSPHRASE or PULUMI_CONFIG_PASSPHRASE_FILE environment variables"
    )
    with pytest.raises(CommandError) as none_out:
        stack_missing.outputs()
    print("no passphrase, stack output --show-secrets:", error_text(none_out.value))
    assert "passphrase must be set with PULUMI_CONFIG_PASSPHRASE" in str(none_out.value)
    # The failed attempts left no lock behind.
    assert s3_backend.lock_keys() == []


# 3. Locks on S3.


def test_lock_held_on_s3(s3_backend: S3Backend, machine: Callable[..., Machine]) -> None:
    from pulumi.automation.errors import ConcurrentUpdateError

    a, b = machine("a"), machine("b")
    deploy(a)
    started, release = threading.Event(), threading.Event()
    stack_a = a.select(slow_program(started, release))
    result: dict[str, Any] = {}

    def run_a() -> None:
        try:
            result["up"] = stack_a.up()
        except Exception as error:  # reported by the main thread
            result["error"] = error

    thread = threading.Thread(target=run_a)
    thread.start()
    try:
        assert started.wait(60), f"machine A's program never ran: {result}"
        locks = s3_backend.locks(PROJECT, STACK)
        print("\nlock objects:", json.dumps(locks, indent=1))
        assert len(locks) == 1
        ((key, content),) = locks.items()
        assert key.startswith(f".pulumi/locks/organization/{PROJECT}/{STACK}/") and key.endswith(
            ".json"
        )
        assert set(content) == {"pid", "username", "hostname", "timestamp"}

        stack_b = b.select()
        with pytest.raises(ConcurrentUpdateError) as locked:
            stack_b.up()
        text = error_text(locked.value)
        print("machine B up while A holds the lock:", text)
        # The lock's URL is the bucket URL with the key as its path, after pulumi's rewrite
        # of the query (endpoint percent-encoded, request_checksum_calculation added).
        port = s3_backend.endpoint.rsplit(":", 1)[1]
        lock_url = (
            f"s3://{s3_backend.bucket}/{key}?endpoint=http%3A%2F%2F127.0.0.1%3A{port}"
            "&region=us-east-1&request_checksum_calculation=when_required&s3ForcePathStyle=true"
        )
        # Go's RFC 3339 in the CLI's local zone, to the second ("Z" when that zone is UTC).
        stamp = content["timestamp"]
        stamp = stamp[:19] + ("Z" if stamp.endswith("Z") else stamp[-6:])
        assert text == (
            "error: the stack is currently locked by 1 lock(s). Either wait for the other"
            " process(es) to end or delete the lock file with `pulumi cancel`.\n"
            f"  {lock_url}: created by {content['username']}@{content['hostname']}"
            f" (pid {content['pid']}) at {stamp}"
        )

        listed = json.loads(b.cli("stack", "ls", "--json").stdout)
        print("stack ls --json while locked:", listed)
        assert "updateInProgress" not in listed[0]  # the DIY backend reports no progress
        table = b.cli("stack", "ls").stdout
        print("stack ls while locked:", table)

        cancelled = b.cli("cancel", "--yes", "--stack", STACK)
        print("cancel:", cancelled.stdout.strip())
        assert s3_backend.lock_keys(PROJECT, STACK) == []
    finally:
        release.set()
        thread.join(120)
    # `cancel` only deleted the lock object: A's process was not stopped and finishes its up.
    assert "error" not in result, result.get("error")
    assert result["up"].summary.result == "succeeded"
    assert s3_backend.lock_keys() == []


# 4. KMS secrets provider on moto.


def test_awskms_secrets_provider_on_moto(
    s3_backend: S3Backend, machine: Callable[..., Machine]
) -> None:
    kms_url = s3_backend.kms_key_url()
    print("\nsecrets provider:", kms_url)
    a = machine("a", passphrase=None)
    stack = deploy(a, secrets_provider=kms_url)
    assert stack.outputs()["token"].value == SECRET_OUTPUT
    providers = s3_backend.checkpoint(PROJECT, STACK)["checkpoint"]["latest"]["secrets_providers"]
    print("secrets_providers in the checkpoint:", json.dumps(providers))
    assert providers["type"] == "cloud"
    assert providers["state"]["url"] == kms_url
    print("machine A Pulumi.dev.yaml:", a.stack_config_file.read_text())

    # A second machine needs no passphrase and no local file: the key URL is in the state.
    b = machine("b", passphrase=None)
    stack_b = b.select()
    assert stack_b.outputs()["dbPassword"].value == SECRET_CONFIG

    # Proof the data key was wrapped by moto's KMS: moto unwraps the state's encryptedkey
    # into the 32-byte key pulumi's cloud secrets manager uses (AES-256-GCM).
    import base64

    wrapped = base64.b64decode(providers["state"]["encryptedkey"])
    plain = s3_backend.client("kms").decrypt(CiphertextBlob=wrapped)
    key_id = kms_url.removeprefix("awskms://").split("?", 1)[0]
    assert plain["KeyId"].endswith(key_id) and len(plain["Plaintext"]) == 32


def test_kms_url_without_endpoint_uses_aws_endpoint_url(
    s3_backend: S3Backend, machine: Callable[..., Machine]
) -> None:
    """The env's AWS_ENDPOINT_URL catches an ``awskms://`` URL that names no endpoint."""
    key_id = s3_backend.client("kms").create_key()["KeyMetadata"]["KeyId"]
    a = machine("a", passphrase=None)
    stack = deploy(a, secrets_provider=f"awskms://{key_id}?region=us-east-1")
    assert stack.outputs()["token"].value == SECRET_OUTPUT


def test_env_is_complete_for_boto3(s3_backend: S3Backend, monkeypatch: pytest.MonkeyPatch) -> None:
    """``env`` alone (no endpoint_url argument) points boto3 at moto as well."""
    import boto3

    for name, value in s3_backend.env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    names = [b["Name"] for b in boto3.client("s3").list_buckets()["Buckets"]]
    assert s3_backend.bucket in names
    assert aws_env(s3_backend.endpoint)["AWS_ENDPOINT_URL"] == s3_backend.endpoint
    assert os.environ["AWS_ENDPOINT_URL"] == s3_backend.endpoint
