"""Engine tests against the real pulumi CLI, with provider-free programs (components only)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import pulumi
import pytest

from provision.engine import Engine
from provision.errors import PulumiCliMissingError, StackLockedError
from provision.saved import stack_state
from provision.settings import load_settings
from tests.pulumi_cli import pulumi_root


class Thing(pulumi.ComponentResource):
    def __init__(self, name: str, opts: pulumi.ResourceOptions | None = None):
        super().__init__("test:index:Thing", name, None, opts)
        self.register_outputs({})


def program(names=("a",), hold: threading.Event | None = None):
    def run() -> None:
        for n in names:
            Thing(n)
        if hold is not None:
            hold.wait(30)
        pulumi.export("greeting", "hi")
        pulumi.export("token", pulumi.Output.secret("s3cr3t-value"))

    return run


@pytest.fixture
def settings(tmp_path: Path):
    env = {"PROVISION_HOME": str(tmp_path / "home"), "PROVISION_PULUMI_ROOT": str(pulumi_root())}
    return load_settings(env=env)


def open_stack(engine, pool, prog, config=None):
    """The stack as a command opens it: after reading its state (none: created)."""
    return engine.stack(pool, prog, deployment=engine.export(pool), config=config or {})


@pytest.fixture
def engine(settings):
    notices: list[str] = []
    eng = Engine(settings, on_notice=notices.append, retry_delays=())
    eng.notices = notices
    return eng


def test_up_is_idempotent_and_reports_secret_outputs(engine):
    stack = open_stack(engine, "pool-a", program())
    first = engine.up(stack)
    assert first.changes["create"] == 2  # the stack resource and the component
    assert first.outputs["greeting"] == "hi"
    assert "token" in first.secret_outputs and "greeting" not in first.secret_outputs

    second = engine.up(stack)
    assert {k for k, n in second.changes.items() if n} == {"same"}
    assert second.changes["same"] == 2


def test_preview_reports_steps_without_applying(engine):
    stack = open_stack(engine, "pool-b", program(("a",)))
    engine.up(stack)
    stack = open_stack(engine, "pool-b", program(("a", "b")))
    plan = engine.preview(stack)
    assert plan.changes["create"] == 1
    assert [s.name for s in plan.steps if s.op == "create"] == ["b"]
    # Nothing applied: the state still has only "a".
    state = stack_state(engine.export("pool-b"))
    assert [r["urn"].rsplit("::", 1)[-1] for r in state.resources] == ["a"]


def _children_named(name: str) -> list[int]:
    """Live child processes of this one whose command is ``name``."""
    found = []
    for status in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = status.read_text()
        except OSError:  # gone meanwhile
            continue
        comm, rest = text.split("(", 1)[1].rsplit(")", 1)
        fields = rest.split()
        if int(fields[1]) == os.getpid() and comm == name and fields[0] != "Z":
            found.append(int(status.parent.name))
    return found


def test_a_preview_started_before_its_program_exists_runs_it_once_served(engine):
    engine.up(open_stack(engine, "pool-s", program(("a",))))
    deployment = engine.export("pool-s")

    started = engine.start_preview("pool-s", deployment=deployment, config={"x:y": "1"})
    # The CLI starts up, reads the state and decrypts, then waits for the program: it
    # neither ends nor fails while nothing serves it.
    time.sleep(1.5)
    assert not started.exited

    stack = engine.stack("pool-s", program(("a", "b")), deployment=deployment, config={})
    plan = engine.preview(stack, started=started)
    assert [s.name for s in plan.steps if s.op == "create"] == ["b"]
    assert plan.changes["create"] == 1
    assert started.exited
    assert not _children_named("pulumi")


def test_a_started_preview_that_ended_before_it_was_served_is_run_again(engine):
    """A CLI that ended on its own before its program was ready (its connect timeout, or an
    error) is not waited for: the preview starts another one, which reports what it finds."""
    engine.up(open_stack(engine, "pool-r", program(("a",))))
    deployment = engine.export("pool-r")
    started = engine.start_preview("pool-r", deployment=deployment, config={})
    os.kill(started._process.pid, 9)
    started._process.wait()

    stack = engine.stack("pool-r", program(("a", "c")), deployment=deployment, config={})
    plan = engine.preview(stack, started=started)
    assert [s.name for s in plan.steps if s.op == "create"] == ["c"]


def test_a_started_preview_kept_waiting_too_long_is_started_afresh(engine, monkeypatch):
    """Its language-host calls would fail once gRPC-Go's connect timeout is over: a CLI
    that waited longer than ``SERVE_WITHIN_S`` is replaced, never served."""
    import provision.engine

    engine.up(open_stack(engine, "pool-w", program(("a",))))
    deployment = engine.export("pool-w")
    started = engine.start_preview("pool-w", deployment=deployment, config={})
    monkeypatch.setattr(provision.engine, "SERVE_WITHIN_S", 0.0)
    stack = engine.stack("pool-w", program(("a", "d")), deployment=deployment, config={})
    plan = engine.preview(stack, started=started)
    assert [s.name for s in plan.steps if s.op == "create"] == ["d"]
    # The first CLI was killed unserved (a served one ends with a zero exit code).
    assert started._process.returncode == -9


def _backend_files(settings) -> dict[str, bytes]:
    """Every file of the local backend (state, history, locks), by path."""
    root = settings.local_backend_path
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def test_an_update_started_early_waits_before_its_lock_and_writes_nothing_if_cancelled(
    engine, settings
):
    engine.up(open_stack(engine, "pool-u", program(("a",))))
    deployment = engine.export("pool-u")
    before = _backend_files(settings)

    started = engine.start_up("pool-u", deployment=deployment, config={})
    # Started up, it waits for the program's metadata (``About``) before its update takes
    # the lock: nothing in the backend changes meanwhile, and cancelling it there is clean.
    time.sleep(1.5)
    assert not started.exited
    assert not engine.locks.files("pool-u")
    started.cancel()
    assert _backend_files(settings) == before

    started = engine.start_up("pool-u", deployment=deployment, config={})
    stack = engine.stack("pool-u", program(("a", "b")), deployment=deployment, config={})
    result = engine.up(stack, started=started)
    assert result.changes["create"] == 1 and result.outputs["greeting"] == "hi"
    recorded = stack_state(engine.export("pool-u")).resources
    assert [r["urn"].rsplit("::", 1)[-1] for r in recorded] == ["a", "b"]


def test_an_update_is_not_started_before_a_killed_runs_recovery(engine):
    engine.up(open_stack(engine, "pool-p", program()))
    deployment = {**engine.export("pool-p"), "pending_operations": [{"type": "creating"}]}
    with pytest.raises(ValueError, match="pending operations"):
        engine.start_up("pool-p", deployment=deployment, config={})


def test_a_cancelled_preview_leaves_no_process_lock_or_file(engine, tmp_path, monkeypatch):
    stack = open_stack(engine, "pool-k", program())
    engine.up(stack)
    # The run's temporary files go to a directory of this test's own (the shared one gets
    # other tests' files meanwhile, under xdist).
    events = tmp_path / "tmp"
    events.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(events))
    started = engine.start_preview("pool-k", deployment=engine.export("pool-k"), config={})
    assert list(events.glob("provision-events-*"))  # the run's event log is there
    time.sleep(0.5)
    started.cancel()
    started.cancel()  # again: nothing left to do
    assert started.exited and not _children_named("pulumi")
    assert not list(events.glob("provision-events-*"))
    assert not engine.locks.files("pool-k")
    # The stack is as usable as before.
    assert {k for k, n in engine.up(stack).changes.items() if n} == {"same"}


def test_the_event_log_is_private_holds_no_secret_and_is_removed(engine, monkeypatch):
    """The CLI writes the engine's events to a file this process reads: secrets masked by
    the engine, in a directory only this user can read, gone once the run is over."""
    import provision.cli_run

    seen: dict[str, object] = {}
    remove = provision.cli_run.shutil.rmtree

    def read_then_remove(path, *args, **kwargs):
        # (``shutil`` is everyone's module: the engine's scratch dirs come here too.)
        log = Path(path) / "events.jsonl"
        if not log.exists():
            return remove(path, *args, **kwargs)
        seen["path"] = path
        seen["mode"] = Path(path).stat().st_mode & 0o777
        seen["events"] = log.read_text()
        return remove(path, *args, **kwargs)

    monkeypatch.setattr(provision.cli_run.shutil, "rmtree", read_then_remove)
    engine.up(open_stack(engine, "pool-e", program()))
    assert seen["mode"] == 0o700
    events = [json.loads(line) for line in str(seen["events"]).splitlines()]
    assert any("summaryEvent" in e for e in events)
    assert "s3cr3t-value" not in str(seen["events"])
    assert not Path(str(seen["path"])).exists()


def test_config_round_trips_and_export_reads_the_state_from_the_backend(engine, settings):
    config = {"gcp:project": "x", "gcp:region": json.dumps({"r": 1}), "gcp:zone": "123"}
    stack = open_stack(engine, "pool-c", program(), config)
    # Written with the stack settings file, read back by the CLI as they were given.
    assert {k: stack.get_config(k).value for k in config} == config
    engine.up(stack)

    state = stack_state(engine.export("pool-c"))
    assert state.outputs == {"greeting": "hi", "token": None}  # a secret is never read
    assert state.secret_outputs == {"token"}
    assert [r["urn"].rsplit("::", 1)[-1] for r in state.resources] == ["a"]
    assert engine.export("no-such-pool") is None


def _cli_reads_only(monkeypatch) -> None:
    """Every state read goes through ``pulumi stack export``, as on a non-file backend."""
    import provision.engine
    from provision.state_file import UNKNOWN

    monkeypatch.setattr(provision.engine, "read_checkpoint", lambda *a: UNKNOWN)


def test_a_file_backend_state_is_read_without_the_cli_and_as_the_cli_exports_it(
    engine, monkeypatch
):
    import provision.engine

    engine.up(open_stack(engine, "pool-f", program(("a", "b"))))
    open_stack(engine, "pool-g", program())  # created, never updated: nothing recorded

    def no_cli(*args, **kwargs):
        raise AssertionError(f"a CLI process was started: {args}")

    with monkeypatch.context() as direct:
        direct.setattr(provision.engine.subprocess, "Popen", no_cli)
        read = {p: engine.export(p) for p in ("pool-f", "pool-g", "pool-none")}
    _cli_reads_only(monkeypatch)
    exported = {p: engine.export(p) for p in ("pool-f", "pool-g", "pool-none")}
    # The same deployment, secrets as ciphertext, to the key.
    assert read == exported
    assert read["pool-f"]["secrets_providers"]["type"] == "passphrase"
    assert "s3cr3t-value" not in json.dumps(read["pool-f"])
    assert stack_state(read["pool-g"]).is_empty and read["pool-none"] is None


@pytest.mark.parametrize("reader", ["file", "cli"])
def test_states_are_read_on_many_threads_at_once(engine, monkeypatch, reader):
    # `list` reads every pool's state on a thread of its own, through one engine: the first
    # CLI reads all set up the state reads' work dir at once.
    from concurrent.futures import ThreadPoolExecutor

    if reader == "cli":
        _cli_reads_only(monkeypatch)
    engine.up(open_stack(engine, "pool-t", program()))
    fresh = engine.for_pool(engine.settings)
    with ThreadPoolExecutor(8) as pool:
        read = list(pool.map(fresh.export, ["pool-t", "pool-none"] * 4))
    assert [r is None for r in read] == [False, True] * 4
    assert all(stack_state(r).outputs["greeting"] == "hi" for r in read[::2])


def test_a_state_the_cli_cannot_read_is_one_typed_line(engine, settings):
    # The state read runs the CLI directly (no workspace): its failures still go through the
    # error table, as one line naming the pool and what was being done.
    from provision.errors import ProvisionError

    engine.up(open_stack(engine, "pool-x", program()))
    (checkpoint,) = settings.local_backend_path.rglob("pool-x.json")
    checkpoint.write_text("{not json")
    with pytest.raises(ProvisionError) as caught:
        engine.export("pool-x")
    message = str(caught.value)
    assert "state read of 'pool-x' failed" in message and "failed to load checkpoint" in message
    assert "\n" not in message


def test_list_destroy_and_remove(engine):
    stack = open_stack(engine, "pool-e", program())
    engine.up(stack)
    assert "pool-e" in [s.name for s in engine.list_stacks()]
    result = engine.destroy(stack)
    assert result.changes["delete"] == 2
    engine.remove(stack)
    assert "pool-e" not in [s.name for s in engine.list_stacks()]
    assert engine.export("pool-e") is None


def _lock_dir(settings, pool: str) -> Path:
    return settings.local_backend_path / ".pulumi" / "locks" / "organization" / "provision" / pool


def _checkpoint(settings, pool: str) -> Path:
    return settings.local_backend_path / ".pulumi" / "stacks" / "provision" / f"{pool}.json"


def _write_lock(settings, pool: str, pid: int) -> Path:
    d = _lock_dir(settings, pool)
    d.mkdir(parents=True, exist_ok=True)
    path = d / "0b7c1d4e-0000-4000-8000-000000000000.json"
    path.write_text(
        json.dumps(
            {
                "pid": pid,
                "username": "someone",
                "hostname": socket.gethostname(),
                # Recent: a lock older than any run is stale whatever its process.
                "timestamp": datetime.now(UTC).isoformat(timespec="seconds"),
            }
        )
    )
    return path


def test_a_lock_held_by_a_live_process_is_reported_with_how_to_clear_it(engine, settings):
    stack = open_stack(engine, "pool-f", program())
    engine.up(stack)
    sleeper = subprocess.Popen(["sleep", "60"])
    try:
        _write_lock(settings, "pool-f", sleeper.pid)
        with pytest.raises(StackLockedError) as err:
            engine.up(stack)
        assert "pool-f" in err.value.message
        assert "provision unlock pool-f" in err.value.hint
    finally:
        sleeper.kill()
        sleeper.wait()


def test_a_stale_lock_of_a_dead_process_is_cleared_automatically(engine, settings):
    stack = open_stack(engine, "pool-g", program())
    engine.up(stack)
    dead = subprocess.Popen(["true"])
    dead.wait()
    lock = _write_lock(settings, "pool-g", dead.pid)
    result = engine.up(stack)
    assert {k for k, n in result.changes.items() if n} == {"same"}
    assert not lock.exists()
    assert any("stale lock" in n for n in engine.notices)


def test_a_sidecar_a_killed_run_tore_is_repaired_with_its_lock(engine, settings):
    # A CLI killed inside a checkpoint write can leave the checkpoint's metadata sidecar
    # empty; the real CLI then fails every command on the stack ("failed to load checkpoint:
    # EOF") until it goes, and the killed run's lock says no run is writing any more.
    stack = open_stack(engine, "pool-t", program())
    engine.up(stack)
    attrs = _checkpoint(settings, "pool-t").with_suffix(".json.attrs")
    attrs.write_text("")
    dead = subprocess.Popen(["true"])
    dead.wait()
    _write_lock(settings, "pool-t", dead.pid)

    result = engine.up(stack)

    assert {k for k, n in result.changes.items() if n} == {"same"}
    assert any("half-written state metadata" in n for n in engine.notices)
    assert json.loads(attrs.read_text())  # the CLI wrote it afresh


def test_concurrent_up_on_one_stack_one_wins_one_is_locked(engine):
    hold = threading.Event()
    stack = open_stack(engine, "pool-h", program(hold=hold))
    errors: list[BaseException] = []

    def first() -> None:
        try:
            engine.up(stack)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    t = threading.Thread(target=first)
    t.start()
    try:
        # Wait until the first run holds the lock.
        deadline = time.time() + 30
        while not engine.locks.files("pool-h") and time.time() < deadline:
            time.sleep(0.1)
        assert engine.locks.files("pool-h")
        other = open_stack(engine, "pool-h", program())
        with pytest.raises(StackLockedError):
            engine.up(other)
    finally:
        hold.set()
        t.join(60)
    assert not errors


def test_missing_cli_offline_is_one_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    settings = load_settings(env={"PROVISION_HOME": str(tmp_path / "h")})
    assert settings.pulumi_root is None
    entered: list[bool] = []

    class Spinner:
        def __enter__(self):
            entered.append(True)

        def __exit__(self, *a):
            return False

    engine = Engine(settings, on_install=Spinner)
    with pytest.raises(PulumiCliMissingError) as err:
        engine.command()
    assert entered == [True]
    assert "get.pulumi.com" in err.value.hint or "PROVISION_PULUMI_ROOT" in err.value.hint


def test_pulumi_root_pointing_nowhere_is_reported(tmp_path):
    settings = load_settings(
        env={"PROVISION_HOME": str(tmp_path / "h"), "PROVISION_PULUMI_ROOT": str(tmp_path / "x")}
    )
    with pytest.raises(PulumiCliMissingError, match="PROVISION_PULUMI_ROOT"):
        Engine(settings).command()


def test_generated_passphrase_file_is_private_stable_and_announced_once(tmp_path):
    env = {"PROVISION_HOME": str(tmp_path / "h")}
    first = load_settings(env=env)
    assert not (tmp_path / "h").exists()  # resolving settings writes nothing
    created = first.create_passphrase()
    assert created == tmp_path / "h" / "passphrase"
    assert os.stat(created).st_mode & 0o777 == 0o600
    content = created.read_text()
    second = load_settings(env=env)
    assert second.create_passphrase() is None  # announced once only
    assert created.read_text() == content
    assert second.engine_env["PULUMI_CONFIG_PASSPHRASE_FILE"] == str(created)


def test_the_engine_announces_the_generated_passphrase(tmp_path):
    settings = load_settings(
        env={"PROVISION_HOME": str(tmp_path / "h"), "PROVISION_PULUMI_ROOT": str(pulumi_root())}
    )
    notices: list[str] = []
    engine = Engine(settings, on_notice=notices.append)
    open_stack(engine, "p", program())
    open_stack(engine, "p", program())
    assert len([n for n in notices if "Generated a passphrase" in n]) == 1


def test_user_passphrase_and_secrets_provider_are_respected(tmp_path):
    env = {"PROVISION_HOME": str(tmp_path / "h"), "PULUMI_CONFIG_PASSPHRASE": "x"}
    assert load_settings(env=env).engine_env == {}
    kms = load_settings(
        env={"PROVISION_HOME": str(tmp_path / "k")}, secrets_provider="gcpkms://projects/p/x"
    )
    assert kms.engine_env == {} and kms.passphrase_file is None


def test_the_cli_version_is_asked_once_per_binary(tmp_path):
    # PulumiCommand runs `pulumi version` when made: once per binary is enough.
    log = tmp_path / "calls.log"
    script = tmp_path / "cli" / "bin" / "pulumi"
    script.parent.mkdir(parents=True)
    real = pulumi_root() / "bin" / "pulumi"
    script.write_text(f'#!/bin/sh\necho "$*" >> "{log}"\nexec "{real}" "$@"\n')
    script.chmod(0o755)
    env = {
        "PROVISION_HOME": str(tmp_path / "h"),
        "PROVISION_PULUMI_ROOT": str(script.parent.parent),
        "PROVISION_CACHE_DIR": str(tmp_path / "cache"),
    }
    first = Engine(load_settings(env=env)).command()
    second = Engine(load_settings(env=env)).command()
    assert log.read_text().splitlines() == ["version"]
    assert str(second.version) == str(first.version) and second.command == str(script)
    assert not (tmp_path / "h").exists()  # a cache, not state: never under PROVISION_HOME

    script.write_text(script.read_text() + "\n")  # another binary at the same path
    Engine(load_settings(env=env)).command()
    assert log.read_text().splitlines() == ["version", "version"]
