"""Provider plugins started for the CLI to attach to: which, found where, and their processes.

The choice is checked against hand-made states and plugin directories; the processes with small
stand-in plugins (a script printing a port, as a real plugin does). The CLI attaching to them
through the real engine is ``tests/e2e/test_plugin_attach.py``.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from provision.plugins import Plugin, Plugins, attach_env, attachable, plugin_binary, sdk_version

AWS = sdk_version("aws")  # the installed pulumi_aws's plugin version (7.51.1 today)


def provider(package: str, name: str, version: str | None) -> dict:
    """A provider resource as a deployment records it."""
    inputs = {"region": "eu-west-1"} | ({"version": version} if version else {})
    return {
        "urn": f"urn:pulumi:s::provision::pulumi:providers:{package}::{name}",
        "type": f"pulumi:providers:{package}",
        "id": "7c8d",
        "inputs": inputs,
    }


def resource(package: str) -> dict:
    return {"urn": f"urn:pulumi:s::provision::{package}:x/y:Y::r", "type": f"{package}:x/y:Y"}


def executable(path: Path, body: str = "#!/bin/sh\nexit 0\n") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(body)
    path.chmod(0o755)
    return path


@pytest.fixture
def on_path(tmp_path: Path) -> dict[str, str]:
    """A CLI environment whose PATH has a ``pulumi-resource-aws`` and an empty PULUMI_HOME."""
    bin_dir = tmp_path / "bin"
    executable(bin_dir / "pulumi-resource-aws")
    return {"PATH": f"{bin_dir}{os.pathsep}/usr/bin", "PULUMI_HOME": str(tmp_path / "home")}


def choose(deployment: dict, env: dict[str, str], config: dict | None = None) -> list[Plugin]:
    return attachable(deployment, project="provision", config=config or {}, env=env)


def test_sdk_version_reads_the_sdk_plugin_file_without_importing_it():
    before = set(sys.modules)
    assert AWS == "7.51.1"
    assert sdk_version("azure-native") == "3.29.0"  # pulumi_azure_native: "-" as "_"
    assert sdk_version("no-such-provider") is None
    assert not {m for m in set(sys.modules) - before if m.startswith("pulumi_")}


def test_the_default_provider_at_the_sdk_version_is_attached(on_path, tmp_path):
    deployment = {"resources": [provider("aws", f"default_{AWS.replace('.', '_')}", AWS)]}
    config = {"aws:region": "eu-west-1", "aws:defaultTags": '{"tags":{}}', "gcp:project": "p"}
    [plugin] = choose(deployment, on_path, config)
    assert (plugin.package, plugin.version) == ("aws", AWS)
    assert plugin.binary == tmp_path / "bin" / "pulumi-resource-aws"
    # What the engine gives a plugin it starts: the project, and the package's own config
    # keys without their namespace.
    assert plugin.env["PULUMI_PROJECT"] == "provision"
    assert json.loads(plugin.env["PULUMI_CONFIG"]) == {
        "region": "eu-west-1",
        "defaultTags": '{"tags":{}}',
    }


@pytest.mark.parametrize(
    "providers",
    [
        # Another version than the SDK's: the program would ask for a new default provider,
        # and the CLI would attach it, and the state's, to the one process.
        [provider("aws", "default_7_1_0", "7.1.0")],
        # An explicit provider: its configuration is not the default one's.
        [provider("aws", "eu", AWS)],
        # Two providers of the package: they would share the process.
        [provider("aws", "default", AWS), provider("aws", "eu", AWS)],
        # No version recorded: the engine picks the newest installed, not this file's.
        [provider("aws", "default", None)],
        # This process serves the dynamic provider itself.
        [provider("pulumi-python", "default", "3.0.0")],
    ],
    ids=["other-version", "explicit", "two", "no-version", "dynamic"],
)
def test_anything_but_one_default_provider_at_the_sdk_version_is_left_to_the_engine(
    on_path, providers
):
    assert choose({"resources": [*providers, resource("aws")]}, on_path) == []


def test_a_provider_the_user_attaches_is_left_alone(on_path):
    deployment = {"resources": [provider("aws", "default", AWS)]}
    assert choose(deployment, {**on_path, "PULUMI_DEBUG_PROVIDERS": "aws:4000"}) == []
    assert choose({"resources": [resource("aws")]}, on_path) == []  # no provider recorded


def test_the_binary_is_the_one_on_path_first(tmp_path, on_path):
    cached = executable(
        tmp_path / "home" / "plugins" / f"resource-aws-v{AWS}" / "pulumi-resource-aws"
    )
    assert plugin_binary("aws", AWS, on_path) == tmp_path / "bin" / "pulumi-resource-aws"
    # As the engine: $PATH is not looked at when ambient plugins are ignored.
    for value in ("true", "1", "TRUE"):
        ignoring = {**on_path, "PULUMI_IGNORE_AMBIENT_PLUGINS": value}
        assert plugin_binary("aws", AWS, ignoring) == cached
    assert plugin_binary("aws", AWS, {**on_path, "PULUMI_IGNORE_AMBIENT_PLUGINS": "0"}) != cached


def test_the_cached_binary_is_exactly_the_version_and_complete(tmp_path):
    env = {"PATH": "/usr/bin", "PULUMI_HOME": str(tmp_path / "home")}
    plugins = tmp_path / "home" / "plugins"
    assert plugin_binary("aws", AWS, env) is None  # not installed: the engine installs it
    executable(plugins / "resource-aws-v7.1.0" / "pulumi-resource-aws")
    executable(plugins / "resource-aws" / "pulumi-resource-aws")  # unversioned
    assert plugin_binary("aws", AWS, env) is None
    binary = executable(plugins / f"resource-aws-v{AWS}" / "pulumi-resource-aws")
    assert plugin_binary("aws", AWS, env) == binary
    # A download cut short leaves a marker beside the directory: the engine downloads again.
    (plugins / f"resource-aws-v{AWS}.partial").write_text("")
    assert plugin_binary("aws", AWS, env) is None
    (plugins / f"resource-aws-v{AWS}.partial").unlink()
    binary.chmod(0o644)
    assert plugin_binary("aws", AWS, env) is None


def test_pulumi_home_defaults_to_the_users(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    binary = executable(
        tmp_path / ".pulumi" / "plugins" / f"resource-aws-v{AWS}" / "pulumi-resource-aws"
    )
    assert plugin_binary("aws", AWS, {"PATH": "/usr/bin"}) == binary


def test_a_relative_path_entry_is_not_searched(tmp_path, monkeypatch):
    # Go's exec.LookPath refuses a program found through "." or a relative entry.
    monkeypatch.chdir(tmp_path)
    executable(tmp_path / "rel" / "pulumi-resource-aws")
    env = {"PATH": "rel", "PULUMI_HOME": str(tmp_path / "home")}
    assert plugin_binary("aws", AWS, env) is None


def test_attach_env_adds_the_ports_and_keeps_other_packages():
    assert attach_env({"pulumi-python": 4100}, None) == "pulumi-python:4100"
    merged = attach_env({"pulumi-python": 4100, "gcp": 4200}, "aws:9000,pulumi-python:1")
    assert merged == "aws:9000,pulumi-python:4100,gcp:4200"


# -- the processes ------------------------------------------------------------------------

ECHO_PLUGIN = textwrap.dedent(
    """\
    #!{python}
    # Serves like a plugin: prints its port first, then answers every connection.
    import json, os, socket, sys, threading
    with open(os.environ["RECORD"], "w") as f:
        json.dump([sys.argv[1:], os.getcwd(), os.environ.get("PULUMI_PROJECT"), os.getpgrp()], f)
    server = socket.create_server(("127.0.0.1", 0))
    print(server.getsockname()[1], flush=True)
    print("a line on stderr", file=sys.stderr, flush=True)
    def echo(conn):
        with conn:
            while data := conn.recv(65536):
                conn.sendall(b"plugin:" + data)
    while True:
        conn, _ = server.accept()
        threading.Thread(target=echo, args=(conn,), daemon=True).start()
    """
)


def plugin(tmp_path: Path, body: str, package: str = "aws") -> Plugin:
    binary = executable(tmp_path / f"pulumi-resource-{package}", body.format(python=sys.executable))
    return Plugin(package, "1.0.0", binary, {"PULUMI_PROJECT": "provision"})


def ask(port: int, data: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        conn.sendall(data)
        return conn.recv(65536)


def test_a_started_plugin_is_reached_through_its_port_at_once(tmp_path):
    record = tmp_path / "record"
    work = tmp_path / "work"
    work.mkdir()
    started = Plugins([plugin(tmp_path, ECHO_PLUGIN)])
    try:
        # The port is known before the plugin is started (the CLI is given it first).
        port = started.ports["aws"]
        started.start(work_dir=work, env={**os.environ, "RECORD": str(record)})
        # The port exists before the plugin has printed its own: the connection waits.
        assert ask(port, b"hello") == b"plugin:hello"
        args, cwd, project, group = json.loads(record.read_text())
        # As the engine starts a plugin, but no engine address: attaching brings it.
        assert (args, cwd, project) == ([], str(work), "provision")
        assert group != os.getpgrp()  # a Ctrl-C at the terminal is the CLI's to handle
    finally:
        started.close()
    assert "aws (resource): a line on stderr" in started.output
    with pytest.raises(OSError):
        ask(started.ports["aws"], b"again")  # closed with the plugin


def test_a_plugin_that_dies_before_its_port_fails_the_attach_at_once(tmp_path):
    import grpc
    from pulumi.runtime.proto import plugin_pb2, provider_pb2_grpc

    failing = plugin(tmp_path, "#!/bin/sh\necho 'fatal: needs the engine address' >&2\nexit 3\n")
    started = Plugins([failing])
    started.start(work_dir=tmp_path, env=os.environ)
    try:
        # A closed port would have the CLI's gRPC client retry for its 10 s connect timeout;
        # the call is answered instead, with an error that is no reason to retry.
        with grpc.insecure_channel(f"127.0.0.1:{started.ports['aws']}") as channel:
            attach = provider_pb2_grpc.ResourceProviderStub(channel).Attach
            begun = time.monotonic()
            with pytest.raises(grpc.RpcError) as caught:
                attach(plugin_pb2.PluginAttach(address="127.0.0.1:1"), timeout=10)
            assert caught.value.code() == grpc.StatusCode.UNIMPLEMENTED
            assert time.monotonic() - begun < 5
    finally:
        started.close()
    assert started.failed
    assert "aws (resource): fatal: needs the engine address" in started.output


def test_a_plugin_that_cannot_be_started_fails_the_attach_too(tmp_path):
    import grpc
    from pulumi.runtime.proto import plugin_pb2, provider_pb2_grpc

    gone = Plugin("aws", "1.0.0", tmp_path / "pulumi-resource-aws", {})  # removed since found
    started = Plugins([gone])
    started.start(work_dir=tmp_path, env=os.environ)  # no error here: the rerun reports it
    assert started.failed and started.pids == []
    try:
        with grpc.insecure_channel(f"127.0.0.1:{started.ports['aws']}") as channel:
            attach = provider_pb2_grpc.ResourceProviderStub(channel).Attach
            with pytest.raises(grpc.RpcError) as caught:
                attach(plugin_pb2.PluginAttach(address="127.0.0.1:1"), timeout=10)
            assert caught.value.code() == grpc.StatusCode.UNIMPLEMENTED
    finally:
        started.close()
    assert any("could not start" in line for line in started.output)


def test_close_ends_the_plugins(tmp_path):
    started = Plugins([plugin(tmp_path, ECHO_PLUGIN)])
    started.start(work_dir=tmp_path, env={**os.environ, "RECORD": str(tmp_path / "r")})
    pid = started.pids[0]
    started.close()
    assert not _alive(pid)
    started.close()  # idempotent


@pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="the parent-death signal is Linux's"
)
def test_a_killed_process_takes_its_plugins_with_it(tmp_path):
    """SIGKILL runs no cleanup: the plugins it started must not outlive it all the same."""
    script = tmp_path / "owner.py"
    binary = plugin(tmp_path, ECHO_PLUGIN).binary
    script.write_text(
        textwrap.dedent(
            f"""\
            import os, sys, threading, time
            sys.path.insert(0, {str(Path.cwd())!r})
            from pathlib import Path
            from provision.plugins import Plugin, Plugins
            os.environ["RECORD"] = {str(tmp_path / "r")!r}
            # Started from a thread that ends at once: the plugin must outlive the thread.
            box = []
            plugin = Plugin("aws", "1", Path({str(binary)!r}), {{}})
            def start():
                box.append(Plugins([plugin]))
                box[0].start(work_dir=Path("."), env=os.environ)
            t = threading.Thread(target=start)
            t.start(); t.join()
            print(box[0].pids[0], flush=True)
            time.sleep(60)
            """
        )
    )
    owner = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    pid = int(owner.stdout.readline())
    time.sleep(0.5)
    assert _alive(pid)  # the starting thread's end did not end it
    owner.kill()
    owner.wait()
    deadline = time.monotonic() + 10
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(pid)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_the_stacks_use_default_providers_only():
    """``attachable`` starts one process per package for the CLI to attach every provider of
    that package to: right for a program whose only provider of each package is the default
    one (configured from the stack's config). A stack making a provider of its own (``aws.
    Provider(...)``, or ``provider=``/``providers=`` on a resource) would share that process
    with the default provider's configuration; this keeps such a change from going unnoticed.
    """
    import ast

    root = Path(__file__).resolve().parents[2]
    sources = [*(root / "stacks").glob("*.py"), root / "provision" / "program.py"]
    found = []
    for path in sources:
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.Call):
                continue
            callee = node.func.attr if isinstance(node.func, ast.Attribute) else None
            callee = callee or (node.func.id if isinstance(node.func, ast.Name) else None)
            keywords = {k.arg for k in node.keywords}
            if callee == "Provider" or keywords & {"provider", "providers"}:
                found.append(f"{path.name}:{node.lineno}")
    assert len(sources) > 5
    assert found == []
