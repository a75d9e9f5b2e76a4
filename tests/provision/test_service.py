"""The use cases in-process, on an in-memory engine and Prefect side.

The real engine, clouds and Prefect server are the end-to-end suite's; here the service's own
decisions are pinned, fast and deterministically: what it checks before anything is written,
the order the program registers the pool's parts in, what it does when a run fails with an
empty stack, and what destroy does when Prefect cannot be reached.

The engine fake runs each program under Pulumi's mocks (the program is real: record, cloud
side, block, work pool) and keeps "stacks" as exported-state dicts, so ``stack_state`` and the
rest of the service read them exactly as they read a real backend. The target is a test-only
one with a single resource, registered through the registry like any other.
"""

from __future__ import annotations

import asyncio
import copy
import json
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pytest
from pulumi.runtime import mocks as pmocks
from pulumi.runtime import rpc

from provision import registry, service
from provision.engine import OperationResult, Step
from provision.errors import InvalidInputError, PrefectStepError, ProvisionError
from provision.prefect.tokens import BLOCK_TYPE, WORK_POOL_TYPE
from provision.registry import PoolType
from provision.saved import RECORD_TYPE
from provision.settings import PROJECT_NAME, load_settings
from provision.targets.base import (
    BlockSpec,
    CloudProgram,
    Credential,
    NextSteps,
    OptionPicker,
    Outputs,
    Pool,
    RotationOptions,
    WorkerOptions,
    WorkerProgram,
    block_ref,
    worker_options,
)

THING = "test:index:Thing"
CREATED = "2026-01-01T00:00:00Z"
EXPIRES = "2027-01-01T00:00:00Z"
"""The Thing's credential: made on New Year's Day 2026, valid a year."""
RUNNER = "test:index:Runner"
TOKEN = "tok-s3cr3t"
PREFECT_URL = "http://127.0.0.1:9/api"


# -- a test-only target ---------------------------------------------------------------------


class Thing(pulumi.CustomResource):
    """The cloud side of the test target: one resource whose ``token`` is a credential."""

    token: pulumi.Output[str]
    created_at: pulumi.Output[str]
    expires_at: pulumi.Output[str]

    def __init__(self, name: str, size: int, opts: pulumi.ResourceOptions | None = None):
        props = {"size": size, "token": None, "created_at": None, "expires_at": None}
        super().__init__(THING, name, props, opts)


class Runner(pulumi.CustomResource):
    """The test target's worker: a container spec, as a cloud's worker resource takes it."""

    def __init__(self, name: str, spec: Any, opts: pulumi.ResourceOptions):
        props = {
            "image": spec.image,
            "command": list(spec.command),
            "env": dict(spec.env),
            "secret_env": dict(spec.secret_env),
            "count": spec.count,
        }
        super().__init__(RUNNER, name, props, opts)


class ThingOptions(WorkerOptions, RotationOptions):
    size: int = 1


@dataclass(frozen=True)
class ThingPool(Pool[ThingOptions]):
    cloud = "thing"
    options_model = ThingOptions
    block = BlockSpec("thing-credentials", "thing-credentials")
    secret_outputs = frozenset({"token"})
    rotates = True
    rotation_by_trigger = True  # as an access key: the trigger is all that replaces it

    @classmethod
    def resolve_options(cls, name, pool_type, given, env, saved):
        pick = OptionPicker(pool_type, given, saved, ThingOptions.keys())
        values = {"size": pick("size", 1), **worker_options(pick)}
        if pick("rotate_after") is not None:
            values["rotate_after"] = pick("rotate_after")
        return ThingOptions.checked(values, pick.sources, pool_type=pool_type)

    def worker_program(self) -> WorkerProgram | None:
        if self.worker is None:
            return None

        def run(outputs: Mapping[str, Any], opts: pulumi.ResourceOptions) -> dict[str, Any]:
            runner = Runner(f"{self.name}-runner", self.worker_container(), opts)
            return {"runner_id": runner.id}

        return run

    def credential(self) -> Credential:
        if self.options.with_worker:
            return Credential("none", "thing-identity", False, "the worker runs as itself")
        return Credential("token", "thing-identity", True)

    def program(self) -> CloudProgram:
        def run() -> dict[str, Any]:
            trigger = self.rotation_trigger()
            opts = pulumi.ResourceOptions(replacement_trigger=trigger)
            thing = Thing(f"{self.name}-thing", self.options.size, opts)
            return {
                "thing_id": thing.id,
                "token": pulumi.Output.secret(thing.token),
                "credential_created_at": thing.created_at,
                "credential_expires_at": thing.expires_at,
            }

        return run

    def block_data(self, outputs: Outputs, schema: Mapping[str, Any]) -> dict[str, Any]:
        return {"token": outputs["token"]}

    def template_defaults(self, outputs: Outputs, block_document_id: str | None) -> dict:
        return {"credentials": block_ref(block_document_id), "thing": outputs.get("thing_id")}

    def next_steps(self, outputs: Outputs) -> NextSteps:
        return NextSteps(
            image_namespace=f"registry.example/{self.name}",
            commands=(f"prefect worker start --pool {self.name}",),
        )


THING_TYPE = PoolType("thing", "thing", "thing", False, "a test pool")


@pytest.fixture(autouse=True)
def thing_target(monkeypatch):
    monkeypatch.setitem(registry.POOL_TYPES, "thing", THING_TYPE)
    real = registry.target
    monkeypatch.setattr(registry, "target", lambda key: ThingPool if key == "thing" else real(key))


# -- running a program under mocks ------------------------------------------------------------


@dataclass
class Registered:
    type: str
    name: str
    urn: str
    inputs: dict[str, Any]
    outputs: dict[str, Any] = field(default_factory=dict)
    trigger: Any = None
    """The ``replacement_trigger`` resource option as sent (``None``: none)."""


_MOCKS = threading.Lock()
"""Pulumi's mocks are process-wide: the API's parallel pools run their programs one at a time
here (the real engine runs each in its own CLI process)."""


def run_program(pool: str, program, *, preview: bool) -> tuple[list[Registered], dict, dict]:
    """Run ``program`` under mocks: every registration in order, the record component's
    outputs, and the stack's exports."""
    with _MOCKS:
        return _run_program(pool, program, preview=preview)


def _run_program(pool: str, program, *, preview: bool) -> tuple[list[Registered], dict, dict]:
    registered: list[Registered] = []
    component_outputs: dict[str, dict] = {}

    class Mocks(pulumi.runtime.Mocks):
        def new_resource(self, args):
            outs = dict(args.inputs)
            if args.typ == THING:
                outs.update(token=TOKEN, created_at=CREATED, expires_at=EXPIRES)
            elif args.typ == BLOCK_TYPE:
                outs.update(block_id="block-1", created=True, data_hash="h")
            elif args.typ == WORK_POOL_TYPE:
                outs.update(pool_id="pool-1", created=True)
            return f"{args.name}-id", outs

        def call(self, args):
            return {}, []

    class Monitor(pmocks.MockMonitor):
        def RegisterResource(self, request):
            response = super().RegisterResource(request)
            inputs = pulumi.runtime.rpc.deserialize_properties(request.object)
            trigger = None
            if request.HasField("replacement_trigger"):
                from google.protobuf.json_format import MessageToDict

                trigger = MessageToDict(request.replacement_trigger)
            registered.append(
                Registered(request.type, request.name, response.urn, inputs, trigger=trigger)
            )
            return response

        def RegisterResourceOutputs(self, request):
            outs = pulumi.runtime.rpc.deserialize_properties(request.outputs)
            component_outputs[request.urn] = outs
            return super().RegisterResourceOutputs(request)

    pulumi.runtime.settings.ROOT.set(None)
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        monitor = Monitor(Mocks())
        pulumi.runtime.set_mocks(
            monitor.mocks, project=PROJECT_NAME, stack=pool, preview=preview, monitor=monitor
        )
        pmocks.test(program)()
        # Under mocks the root stack never registers its outputs: read the exports from it.
        root = pulumi.runtime.settings.get_root_resource()
        outputs = dict(getattr(root, "outputs", {}) or {})
        resolved = loop.run_until_complete(pulumi.Output.all(**outputs).future()) or {}
        exports = {k: v for k, v in resolved.items() if v is not None}
    finally:
        loop.close()
    record = next(v for k, v in component_outputs.items() if RECORD_TYPE in k)
    return registered, record, exports


# -- the fakes ------------------------------------------------------------------------------


class FakeBackend:
    """Stacks by backend URL, as exported-state dicts; and every engine call, in order."""

    def __init__(self):
        self.stacks: dict[str, dict[str, dict]] = {}
        self.calls: list[tuple] = []
        self.fail_up: Exception | None = None
        self.fail_destroy: Exception | None = None
        self.registered: dict[str, list[Registered]] = {}


@dataclass
class FakeStack:
    name: str
    program: Any


class FakeRun:
    """What ``Engine.start_preview`` returns: a CLI that runs until finished or cancelled."""

    def __init__(self, calls: list[tuple]):
        self.calls = calls
        self.finished = False

    def cancel(self) -> None:
        # As the real one: a no-op once the preview has finished with it.
        if not self.finished:
            self.calls.append(("cancel",))
        self.finished = True


class FakeEngine:
    """The engine's interface as the service uses it, over a ``FakeBackend``."""

    def __init__(self, backend: FakeBackend, settings):
        self.backend = backend
        self.settings = settings

    @property
    def _stacks(self) -> dict[str, dict]:
        return self.backend.stacks.setdefault(self.settings.backend_url, {})

    def _call(self, *call: Any) -> None:
        self.backend.calls.append(call)

    def for_pool(
        self, settings, *, orphan_hints=None, adopt=None, untracked=None, provider_env=None
    ):
        self._call("for_pool", settings.backend_url, dict(provider_env or {}))
        return FakeEngine(self.backend, settings)

    def notice(self, message: str) -> None:
        self._call("notice", message)

    def list_stacks(self) -> list[Any]:
        from types import SimpleNamespace

        return [
            SimpleNamespace(
                name=name,
                update_in_progress=False,
                last_update=None,
                resource_count=len(state["resources"]),
            )
            for name, state in self._stacks.items()
        ]

    def last_result(self, pool: str) -> str:
        return "succeeded"

    def backend_label(self) -> str:
        return "the fake backend"

    def export(self, pool: str, *, while_reading=None):
        self._call("export", pool)
        if while_reading is not None:
            while_reading()
        return copy.deepcopy(self._stacks.get(pool))

    def stack(self, pool, program, *, deployment, config):
        self._call("stack", pool, "create" if deployment is None else "select", dict(config))
        if deployment is None:
            assert pool not in self._stacks, "created a stack that exists"
            self._stacks[pool] = {"resources": [], "secrets_providers": {"type": "passphrase"}}
        else:
            assert pool in self._stacks, "selected a stack that does not exist"
        return FakeStack(pool, program)

    def recover(self, stack) -> None:
        self._call("recover", stack.name)

    def start_preview(self, pool, *, deployment, config, refresh=False):
        assert pool in self._stacks, "started the preview of a stack that does not exist"
        self._call("start_preview", pool, dict(config))
        return FakeRun(self.backend.calls)

    def start_up(self, pool, *, deployment, config, refresh=False):
        assert pool in self._stacks, "started the update of a stack that does not exist"
        assert not deployment.get("pending_operations"), "started an update before recovery"
        self._call("start_up", pool, dict(config))
        return FakeRun(self.backend.calls)

    def preview(self, stack, *, on_progress=None, refresh=False, rules=(), started=None):
        pool = stack.name
        self._call("preview", pool, "started" if started is not None else "")
        if started is not None:
            started.finished = True
        registered, _, _ = run_program(pool, stack.program, preview=True)
        existing = {r["urn"] for r in self._stacks[pool]["resources"]}
        steps = [
            Step(r.urn, r.type, r.name, "same" if r.urn in existing else "create", r.inputs)
            for r in registered
            if r.type != RECORD_TYPE and "pulumi:pulumi:Stack" not in r.type
        ]
        return OperationResult(changes=service._count(steps), steps=steps)

    def up(
        self,
        stack,
        *,
        on_progress=None,
        rules=(),
        propagation=(),
        refresh=False,
        targets=None,
        started=None,
    ):
        pool = stack.name
        self._call("up", pool, "started" if started is not None else "")
        if started is not None:
            started.finished = True
        if self.backend.fail_up is not None:
            raise self.backend.fail_up
        registered, record, exports = run_program(pool, stack.program, preview=False)
        self.backend.registered[pool] = registered
        before = {r["urn"] for r in self._stacks[pool]["resources"]}
        resources = [
            {
                "urn": f"urn:stack:{pool}",
                "type": "pulumi:pulumi:Stack",
                "outputs": {k: v for k, v in exports.items() if k != "token"},
            }
        ]
        steps = []
        for r in registered:
            if "pulumi:pulumi:Stack" in r.type:
                continue
            outs = (
                record
                if r.type == RECORD_TYPE
                else {k: v for k, v in r.inputs.items() if k != "data"}
            )
            if r.type in (BLOCK_TYPE, WORK_POOL_TYPE):
                outs = {"block_id": "block-1", "pool_id": "pool-1", "created": True}
            recorded = {"urn": r.urn, "type": r.type, "id": f"{r.name}-id", "outputs": outs}
            if r.trigger is not None:  # as the engine records it
                recorded["replacementTrigger"] = r.trigger
            resources.append(recorded)
            op = "same" if r.urn in before else "create"
            steps.append(Step(r.urn, r.type, r.name, op, r.inputs, outs))
        self._stacks[pool]["resources"] = resources
        return OperationResult(
            changes=service._count(steps),
            steps=steps,
            outputs=exports,
            secret_outputs=frozenset({"token"}),
        )

    def destroy(self, stack, *, on_progress=None, rules=()):
        pool = stack.name
        self._call("destroy", pool)
        if self.backend.fail_destroy is not None:
            raise self.backend.fail_destroy
        gone = len(self._stacks[pool]["resources"])
        self._stacks[pool]["resources"] = []
        return OperationResult(changes={"delete": gone})

    def remove(self, stack, *, force=False):
        self._call("remove", stack.name, force)
        del self._stacks[stack.name]


class FakePrefect:
    """The Prefect writer's checks: what exists, and every question asked."""

    def __init__(self, calls: list[tuple], *, fail: Exception | None = None):
        from provision.prefect.writer import ServerFacts

        self.calls = calls
        self.fail = fail
        self.blocks: set[str] = set()
        self.pools: set[str] = set()
        self.facts = ServerFacts()
        self.open = 0
        """Writers handed out and not closed yet (each use case must close its own)."""

    def writer(self, api):
        """What ``Runtime.prefect`` returns: this fake, counted until closed."""
        self.open += 1
        return self

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.open -= 1

    def block_schema(self, slug):
        self.calls.append(("prefect.block_schema", slug))
        if self.fail:
            raise self.fail
        return {"properties": {"token": {"type": "string"}}, "secret_fields": ["token"]}

    def plan_block(self, slug, name, data):
        self.calls.append(("prefect.plan_block", name))
        return "update" if name in self.blocks else "create"

    def plan_work_pool(self, name, pool_type, worker_type, push, defaults):
        self.calls.append(("prefect.plan_work_pool", name, dict(defaults)))
        return "update" if name in self.pools else "create"

    def server_version(self):
        self.calls.append(("prefect.server_version",))
        return "3.8.8"

    def workers(self, pool):
        self.calls.append(("prefect.workers", pool))
        if self.fail:
            raise self.fail
        from provision.prefect.writer import WorkerStatus

        return [WorkerStatus("thing-worker-1", "ONLINE", "2026-12-02T03:00:00Z")]


@pytest.fixture
def world(tmp_path, monkeypatch):
    """Settings on a local backend, the fakes, and the runtime the service runs on."""
    env = {
        "PROVISION_HOME": str(tmp_path / "home"),
        "PULUMI_CONFIG_PASSPHRASE": "x",
        "PREFECT_API_URL": PREFECT_URL,
        "PREFECT_HOME": str(tmp_path / "prefect"),
        "HOME": str(tmp_path),
    }
    for key in list(__import__("os").environ):
        if key.startswith(("PREFECT_", "PULUMI_", "PROVISION_")):
            monkeypatch.delenv(key, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    settings = load_settings(env=env)
    backend = FakeBackend()
    prefect = FakePrefect(backend.calls)
    runtime = service.Runtime(engine=lambda s, h: FakeEngine(backend, s), prefect=prefect.writer)
    return World(settings, backend, prefect, runtime, env)


@dataclass
class World:
    settings: Any
    backend: FakeBackend
    prefect: FakePrefect
    runtime: service.Runtime
    env: dict[str, str]

    notices: list[str] = field(default_factory=list)

    def up(self, pool="etl", **options):
        request = service.PoolRequest(pool, type="thing", options=options)
        hooks = service.Hooks(on_notice=self.notices.append)
        return service.up(request, self.settings, hooks, env=self.env, runtime=self.runtime)

    def registered(self, pool="etl") -> list[Registered]:
        """What the last ``up`` of ``pool`` registered, in order (the stack itself aside)."""
        return [r for r in self.backend.registered[pool] if "pulumi:pulumi:Stack" not in r.type]

    def stacks(self) -> dict[str, dict]:
        return self.backend.stacks.get(self.settings.backend_url, {})

    def names(self) -> list[str]:
        return [c[0] for c in self.backend.calls]


def assert_started_before_the_checks(world: World, start: str, operation: str) -> None:
    """The engine's run (``start``: ``start_up``, ``start_preview``) started right after the
    state read, before the Prefect checks, with the config the stack is then opened with, and
    ``operation`` finished that run (none was cancelled)."""
    names = world.names()
    # The CLI's start-up overlaps the checks.
    assert names.index("export") < names.index(start) < names.index("prefect.block_schema")
    started = next(c for c in world.backend.calls if c[0] == start)
    selected = next(c for c in world.backend.calls if c[0] == "stack")
    assert started[2] == selected[3]
    assert (operation, "etl", "started") in world.backend.calls
    assert "cancel" not in names


# -- up -------------------------------------------------------------------------------------


def test_up_checks_prefect_before_the_engine_writes_anything(world):
    world.up()
    names = world.names()
    # Read the backend, ask Prefect everything it could refuse, then one engine run.
    assert names.index("export") < names.index("prefect.block_schema")
    assert names.index("prefect.plan_work_pool") < names.index("stack")
    assert names.index("stack") < names.index("up")
    # One read of the state: the Prefect ids after the run come from the run itself.
    assert names.count("up") == 1 and names.count("export") == 1


def test_a_pool_is_resolved_with_its_last_runs_outputs(world):
    # What a program may reuse rather than ask the cloud again (ECS's zones): the non-secret
    # stack outputs the state holds; none for a new pool.
    request = service.PoolRequest("etl", type="thing")
    assert dict(service.resolve(request, world.settings, world.env).target.last_outputs) == {}
    world.up()
    engine = world.runtime.engine(world.settings, service.Hooks())
    state, _ = service.read_state("etl", world.settings, engine)
    again = service.resolve(service.PoolRequest("etl"), world.settings, world.env, state=state)
    assert state.outputs and dict(again.target.last_outputs) == state.outputs


def test_the_program_registers_record_then_cloud_then_block_then_work_pool(world):
    spec = service.resolve(service.PoolRequest("etl", type="thing"), world.settings, world.env)
    registered, record, _ = run_program("etl", spec.program(PREFECT_URL), preview=False)
    order = [r.type for r in registered if "pulumi:pulumi:Stack" not in r.type]
    # The record first: a first run killed at any later point leaves a stack that says what
    # it is. The block needs the credential; the work pool references the block.
    assert order == [RECORD_TYPE, THING, BLOCK_TYPE, WORK_POOL_TYPE]
    assert record["type"] == "thing" and record["block_name"] == "etl-thing-credentials"
    block = next(r for r in registered if r.type == BLOCK_TYPE)
    # The block's data is a secret input: ciphertext in the state, whatever the target made.
    assert block.inputs["data"] == {
        rpc._special_sig_key: rpc._special_secret_sig,
        "value": {"token": TOKEN},
    }
    assert block.inputs["api_url"] == PREFECT_URL
    pool = next(r for r in registered if r.type == WORK_POOL_TYPE)
    # Secret outputs never reach the template; the block is referenced by the id it got.
    assert pool.inputs["defaults"] == {
        "credentials": {"$ref": {"block_document_id": "block-1"}},
        "thing": "etl-thing-id",
    }
    assert TOKEN not in repr(pool.inputs)


def test_up_records_everything_in_the_backend_and_a_rerun_changes_nothing(world):
    first = world.up(size=2)
    assert first.result.changes["create"] == 1  # the one cloud resource; the tool's own aside
    assert (first.block_op, first.work_pool_op) == ("create", "create")
    assert first.next_steps.commands == ("prefect worker start --pool etl",)
    state = service.stack_state(world.stacks()["etl"])
    assert state.record.options["size"] == 2 and not state.record.options["with_worker"]
    assert state.prefect.block_id == "block-1" and state.prefect.pool_created

    world.backend.calls.clear()
    again = world.up()  # no flags: the record's options
    assert again.result.changes["create"] == 0 and again.result.changes["same"] == 1
    assert ("stack", "etl", "select") in [c[:3] for c in world.backend.calls]
    assert service.stack_state(world.stacks()["etl"]).record.options["size"] == 2


def test_a_failed_first_run_removes_the_stack_it_created(world):
    world.backend.fail_up = ProvisionError("the cloud said no")
    with pytest.raises(ProvisionError, match="the cloud said no"):
        world.up()
    # The stack held nothing: removed (forced), so the next run starts clean.
    assert ("remove", "etl", True) in world.backend.calls
    assert "etl" not in world.stacks()


def test_a_failed_run_keeps_a_stack_that_recorded_something(world):
    world.up()
    world.backend.fail_up = ProvisionError("the cloud said no")
    with pytest.raises(ProvisionError):
        world.up(size=3)
    assert not [c for c in world.backend.calls if c[0] == "remove"]
    assert "etl" in world.stacks()


def test_bad_input_writes_nothing(world):
    with pytest.raises(InvalidInputError, match="does not apply"):
        world.up(region="us-east-1")
    with pytest.raises(InvalidInputError, match="Invalid pool name"):
        world.up(pool="bad name!")
    assert not [c for c in world.backend.calls if c[0] in ("stack", "up")]
    assert world.stacks() == {}


def test_a_rerun_starts_the_update_before_the_prefect_checks(world):
    world.up()
    del world.backend.calls[:]
    world.up()
    # The first run created the stack (nothing to start early); a rerun starts the update's
    # CLI right after the state read.
    assert_started_before_the_checks(world, "start_up", "up")


def test_prefect_refusing_a_rerun_cancels_the_update_already_started(world):
    world.up()
    del world.backend.calls[:]
    world.prefect.fail = ProvisionError("Block type 'thing-credentials' is not registered")
    with pytest.raises(ProvisionError, match="not registered"):
        world.up()
    names = world.names()
    assert names.index("start_up") < names.index("cancel")
    assert "up" not in names and "stack" not in names


def test_a_killed_runs_pending_operations_are_recovered_before_the_update_starts(world):
    world.up()
    world.stacks()["etl"]["pending_operations"] = [{"type": "creating", "resource": {}}]
    del world.backend.calls[:]
    world.up()
    # (The engine's ``up`` recovers first, then starts its own CLI.)
    assert "start_up" not in world.names()
    assert ("up", "etl", "") in world.backend.calls


def test_an_update_after_a_plan_to_confirm_is_not_started_early(world):
    world.up()
    del world.backend.calls[:]
    hooks = service.Hooks(confirm=lambda plan: True)
    request = service.PoolRequest("etl")
    service.up(request, world.settings, hooks, env=world.env, runtime=world.runtime)
    assert "start_up" not in world.names()
    assert ("up", "etl", "") in world.backend.calls


def test_prefect_refusing_stops_up_before_any_stack_is_made(world):
    world.prefect.fail = ProvisionError("Block type 'thing-credentials' is not registered")
    with pytest.raises(ProvisionError, match="not registered"):
        world.up()
    assert "stack" not in world.names()
    assert world.stacks() == {}


def test_the_prefect_credential_reaches_the_engine_only_through_its_environment(world):
    world.env["PREFECT_API_KEY"] = "pnu_key"  # ignored for a self-hosted URL: not sent
    world.up()
    envs = [c[2] for c in world.backend.calls if c[0] == "for_pool"]
    assert envs and all(e["PROVISION_PREFECT_API_URL"] == PREFECT_URL for e in envs)
    state = world.stacks()["etl"]
    assert "pnu_key" not in repr(state)


def test_what_the_check_read_reaches_the_provider_and_every_writer_is_closed(world):
    world.prefect.facts.templates["thing"] = {"variables": {}, "job_configuration": {}}
    world.up()
    envs = [c[2] for c in world.backend.calls if c[0] == "for_pool"]
    assert envs and all(json.loads(e["PROVISION_PREFECT_FACTS"])["templates"] for e in envs)
    # Without a plan to show, nothing needs to know whether the block exists already.
    assert "prefect.plan_block" not in world.names()
    service.plan(service.PoolRequest("etl"), world.settings, env=world.env, runtime=world.runtime)
    service.show("etl", world.settings, runtime=world.runtime)
    assert world.prefect.open == 0


# -- preview --------------------------------------------------------------------------------


def test_preview_of_a_new_pool_writes_nothing_to_the_backend(world):
    request = service.PoolRequest("etl", type="thing")
    plan = service.plan(request, world.settings, env=world.env, runtime=world.runtime)
    assert plan.changes.create == 1
    assert [p.op for p in plan.prefect] == ["create", "create"]
    # Planned in a throwaway backend, not the pool's.
    assert world.stacks() == {}
    throwaway = [c[1] for c in world.backend.calls if c[0] == "for_pool"]
    assert throwaway and throwaway[-1] != world.settings.backend_url


def test_preview_of_an_existing_pool_starts_the_engine_before_the_prefect_checks(world):
    world.up()
    del world.backend.calls[:]
    plan = service.plan(
        service.PoolRequest("etl"), world.settings, env=world.env, runtime=world.runtime
    )
    assert plan.changes.same >= 1
    assert_started_before_the_checks(world, "start_preview", "preview")


def test_prefect_refusing_a_preview_cancels_the_engine_run_already_started(world):
    world.up()
    del world.backend.calls[:]
    world.prefect.fail = ProvisionError("Block type 'thing-credentials' is not registered")
    with pytest.raises(ProvisionError, match="not registered"):
        service.plan(
            service.PoolRequest("etl"), world.settings, env=world.env, runtime=world.runtime
        )
    names = world.names()
    assert names.index("start_preview") < names.index("cancel")
    assert "preview" not in names


def test_preview_of_a_new_pool_starts_no_engine_run_early(world):
    request = service.PoolRequest("etl", type="thing")
    service.plan(request, world.settings, env=world.env, runtime=world.runtime)
    assert "start_preview" not in world.names()
    assert ("preview", "etl", "") in world.backend.calls


# -- destroy --------------------------------------------------------------------------------


def test_destroy_when_prefect_cleanup_fails_keeps_the_stack_and_says_rerun(world):
    world.up()
    world.backend.fail_destroy = PrefectStepError("Prefect at http://127.0.0.1:9 is down")
    with pytest.raises(ProvisionError) as err:
        service.destroy("etl", world.settings, env=world.env, runtime=world.runtime)
    assert "could not be removed" in str(err.value)
    assert "Rerun `provision destroy etl`" in err.value.hint
    # What was deleted is recorded; the stack stays for the rerun to finish.
    assert "etl" in world.stacks()
    assert not [c for c in world.backend.calls if c[0] == "remove"]

    world.backend.fail_destroy = None
    service.destroy("etl", world.settings, env=world.env, runtime=world.runtime)
    assert "etl" not in world.stacks()


def test_only_runs_that_call_the_program_preload_its_modules(world, monkeypatch):
    # A type's modules (a cloud SDK's: seconds of CPU for AWS's) are loaded in the background
    # for the program; destroy never runs it, so it must not pay for them.
    started: list[tuple[str, ...]] = []
    monkeypatch.setattr(service.preload, "start", lambda modules: started.append(tuple(modules)))
    monkeypatch.setattr(ThingPool, "preloads", lambda self: ("thing.sdk",))
    world.up()
    assert ("thing.sdk",) in started

    started.clear()
    service.plan(service.PoolRequest("etl"), world.settings, env=world.env, runtime=world.runtime)
    assert ("thing.sdk",) in started

    started.clear()
    service.destroy("etl", world.settings, env=world.env, runtime=world.runtime)
    assert "etl" not in world.stacks()
    assert ("thing.sdk",) not in started


def test_destroy_of_an_unknown_pool_is_one_line(world):
    with pytest.raises(ProvisionError, match="No pool named 'nope'"):
        service.destroy("nope", world.settings, env=world.env, runtime=world.runtime)
    assert "destroy" not in world.names()


# -- the worker (--with-worker) ----------------------------------------------------------------

CLOUD_URL = (
    "https://api.prefect.cloud/api/accounts/11111111-1111-1111-1111-111111111111"
    "/workspaces/22222222-2222-2222-2222-222222222222"
)


def runner(world: World) -> Registered:
    return next(r for r in world.registered() if r.type == RUNNER)


def secret_env(spec: Mapping[str, Any]) -> dict[str, str]:
    """The runner's secret variables, checked to be a secret input (ciphertext in state)."""
    wrapped = spec["secret_env"]
    assert wrapped[rpc._special_sig_key] == rpc._special_secret_sig
    return wrapped["value"]


def test_the_worker_comes_after_the_work_pool_with_its_credential_a_secret(world):
    world.env["PREFECT_API_AUTH_STRING"] = "admin:pa55"
    world.up(with_worker=True)
    order = [r.type for r in world.registered()]
    # After the work pool: a worker started first would create the pool itself with the
    # default template; and so destroy removes the worker before the pool.
    assert order == [RECORD_TYPE, THING, BLOCK_TYPE, WORK_POOL_TYPE, RUNNER]
    spec = runner(world).inputs
    assert spec["command"] == ["prefect", "worker", "start", "--pool", "etl", "--type", "thing"]
    assert spec["env"]["PREFECT_API_URL"] == PREFECT_URL
    # The auth string is a secret input (ciphertext in state) and in no plain variable.
    assert secret_env(spec) == {"PREFECT_API_AUTH_STRING": "admin:pa55"}
    assert "admin:pa55" not in repr(spec["env"])
    # The server's own credential is the worker's: the user is told so, even with --yes.
    assert any("this server's auth string" in n for n in world.notices)
    # The default image is Prefect's official one for the server's version.
    assert spec["image"] == "prefecthq/prefect:3.8.8-python3.12"


def test_an_open_server_gives_the_worker_no_credential_and_stores_no_secret(world):
    world.up(with_worker=True)
    assert runner(world).inputs["secret_env"] == {}
    assert not world.notices


def test_on_prefect_cloud_the_worker_uses_the_users_key_only_after_saying_so(world):
    world.env.update(PREFECT_API_URL=CLOUD_URL, PREFECT_API_KEY="pnu_users_own")
    request = service.PoolRequest("etl", type="thing", options={"with_worker": True})
    plan = service.plan(request, world.settings, env=world.env, runtime=world.runtime)
    assert plan.worker is not None and plan.worker.prefect_credential == "PREFECT_API_KEY"
    assert "YOUR OWN Prefect Cloud API key" in plan.worker.prefect_credential_source
    assert not plan.worker.dedicated
    assert plan.credential is not None and plan.credential.long_lived is False
    assert "pnu_users_own" not in plan.model_dump_json()

    world.up(with_worker=True)
    assert secret_env(runner(world).inputs) == {"PREFECT_API_KEY": "pnu_users_own"}
    assert any("YOUR OWN" in n for n in world.notices)


def test_a_dedicated_worker_key_comes_from_the_variable_named_and_is_saved_by_name(world):
    world.env.update(
        PREFECT_API_URL=CLOUD_URL, PREFECT_API_KEY="pnu_users_own", WORKER_KEY="pnu_robot"
    )
    world.up(with_worker=True, worker_api_key_env="WORKER_KEY", worker_image="acme/worker:1")
    spec = runner(world).inputs
    assert secret_env(spec) == {"PREFECT_API_KEY": "pnu_robot"}
    assert spec["image"] == "acme/worker:1"
    assert not world.notices  # nothing to warn about: the worker has its own key
    # The image was given: the server's version is not asked for.
    assert ("prefect.server_version",) not in world.backend.calls
    record = service.stack_state(world.stacks()["etl"]).record
    assert record.options["worker_api_key_env"] == "WORKER_KEY"
    assert "pnu_robot" not in repr(world.stacks()["etl"]["resources"][0])


def test_a_worker_key_variable_that_is_not_set_stops_up_before_anything_is_written(world):
    world.env.update(PREFECT_API_URL=CLOUD_URL, PREFECT_API_KEY="pnu_users_own")
    with pytest.raises(InvalidInputError, match="WORKER_KEY, which is not set here"):
        world.up(with_worker=True, worker_api_key_env="WORKER_KEY")
    assert "stack" not in world.names()
    assert world.stacks() == {}


def test_worker_options_without_the_worker_are_refused(world):
    with pytest.raises(InvalidInputError, match="--worker-count needs --with-worker"):
        world.up(worker_count=2)
    assert world.stacks() == {}


def test_show_reports_the_workers_prefect_sees_and_survives_prefect_being_down(world):
    world.up(with_worker=True)
    details = service.show("etl", world.settings, runtime=world.runtime)
    assert [(w.name, w.status) for w in details.workers] == [("thing-worker-1", "ONLINE")]
    assert details.workers_error is None

    world.prefect.fail = ProvisionError("Prefect at http://127.0.0.1:9/api is unreachable")
    details = service.show("etl", world.settings, runtime=world.runtime)
    assert details.workers is None and "unreachable" in details.workers_error
    assert details.block_name == "etl-thing-credentials"  # the rest comes from the backend


# -- the image namespace in the Prefect profile (--set-image-namespace) ---------------------------

NAMESPACE = "PREFECT_DEFAULT_DOCKER_BUILD_NAMESPACE"


@pytest.fixture
def profiles(world, tmp_path):
    """This machine's Prefect profiles: ``work`` active, with the user's own namespace."""
    path = tmp_path / "prefect" / "profiles.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        'active = "work"\n\n[profiles.work]\n'
        f'{NAMESPACE} = "docker.io/me"\nPREFECT_API_TIMEOUT = 60\n'
    )
    return path


def namespace(path) -> str | None:
    import tomllib

    return tomllib.loads(path.read_text())["profiles"]["work"].get(NAMESPACE)


def up_with_namespace(world, flag=True, **options):
    request = service.PoolRequest("etl", type="thing", options=options, set_image_namespace=flag)
    hooks = service.Hooks(on_notice=world.notices.append)
    return service.up(request, world.settings, hooks, env=world.env, runtime=world.runtime)


def test_the_namespace_is_set_kept_across_reruns_and_put_back_by_destroy(world, profiles):
    request = service.PoolRequest("etl", type="thing", set_image_namespace=True)
    plan = service.plan(request, world.settings, env=world.env, runtime=world.runtime)
    assert plan.profile is not None
    assert (plan.profile.op, plan.profile.value, plan.profile.previous) == (
        "update",
        "registry.example/etl",
        "docker.io/me",
    )
    assert namespace(profiles) == "docker.io/me"  # a plan writes nothing

    up_with_namespace(world)
    assert namespace(profiles) == "registry.example/etl"
    assert "PREFECT_API_TIMEOUT = 60" in profiles.read_text()  # the rest as it was
    record = service.stack_state(world.stacks()["etl"]).record
    assert record.image_namespace_profile == {"profile": "work", "previous": "docker.io/me"}

    # A rerun (no flag: the record's choice) sees its own value and keeps the original.
    up_with_namespace(world, flag=None)
    record = service.stack_state(world.stacks()["etl"]).record
    assert record.image_namespace_profile == {"profile": "work", "previous": "docker.io/me"}
    request = service.PoolRequest("etl")
    assert not service.plan(
        request, world.settings, env=world.env, runtime=world.runtime
    ).has_changes

    service.destroy("etl", world.settings, env=world.env, runtime=world.runtime)
    assert namespace(profiles) == "docker.io/me"


def test_destroy_leaves_a_namespace_the_user_changed_since(world, profiles):
    up_with_namespace(world)
    profiles.write_text(profiles.read_text().replace("registry.example/etl", "ghcr.io/other"))
    service.destroy("etl", world.settings, env=world.env, runtime=world.runtime)
    assert namespace(profiles) == "ghcr.io/other"


def test_unsetting_hands_the_namespace_back_and_forgets_it(world, profiles):
    up_with_namespace(world)
    up_with_namespace(world, flag=False)
    assert namespace(profiles) == "docker.io/me"
    assert service.stack_state(world.stacks()["etl"]).record.image_namespace_profile is None


def test_no_profile_to_write_to_stops_up_before_anything_is_written(world):
    with pytest.raises(InvalidInputError, match="No Prefect profiles file"):
        up_with_namespace(world)
    assert "stack" not in world.names()


# -- rotation ---------------------------------------------------------------------------------


def at(world: World, when: str) -> None:
    """Make the service's clock read ``when``."""
    from datetime import datetime

    world.runtime = replace_runtime(world.runtime, clock=lambda: datetime.fromisoformat(when))


def replace_runtime(runtime: service.Runtime, **changes: Any) -> service.Runtime:
    import dataclasses

    return dataclasses.replace(runtime, **changes)


def thing(world: World) -> Registered:
    return next(r for r in world.registered() if r.type == THING)


def rotate(world: World):
    return service.rotate(
        service.PoolRequest("etl"), world.settings, env=world.env, runtime=world.runtime
    )


def test_rotate_replaces_the_credential_through_its_replacement_trigger(world):
    at(world, "2026-02-01T00:00:00+00:00")
    world.up()
    # Never rotated: "0", not None (the engine would never replace a credential made without
    # a trigger); a credential made before rotation existed keeps its key when it first comes.
    assert thing(world).trigger == "0"

    outcome = rotate(world)
    assert outcome.rotation is not None and outcome.rotation.rotation == 1
    assert outcome.rotation.reason == "asked for (provision rotate)"
    assert outcome.rotation.created_at == "2026-01-01T00:00:00+00:00"
    # The trigger changes, so the engine replaces the credential create-before-delete.
    assert thing(world).trigger == "1"
    record = service.stack_state(world.stacks()["etl"]).record
    assert record.generated["credential_rotation"] == "1"
    assert record.generated["credential_rotated_at"] == "2026-02-01T00:00:00+00:00"
    assert outcome.plan is not None and outcome.plan.rotation == outcome.rotation

    # A plain rerun keeps the trigger: nothing is replaced again.
    world.up()
    assert thing(world).trigger == "1"
    rotate(world)
    assert thing(world).trigger == "2"


def interrupt_the_replacement(world: World, trigger: str) -> None:
    """Leave the state as a run killed (or failed) between a rotation's new credential and the
    old one's deletion leaves it: the new copy recorded with ``trigger``, the old one pending
    deletion under the same URN."""
    resources = world.stacks()["etl"]["resources"]
    (live,) = [r for r in resources if r["type"] == THING]
    live["replacementTrigger"] = trigger
    resources.append({**live, "id": "old-thing-id", "delete": True, "replacementTrigger": "0"})


def test_rotate_finishes_a_rotation_left_half_done_instead_of_starting_another(world):
    at(world, "2026-02-01T00:00:00+00:00")
    world.up()
    rotate(world)
    interrupt_the_replacement(world, "1")

    at(world, "2026-02-01T00:05:00+00:00")
    outcome = rotate(world)

    # The same count: the block gets the credential already made, and the old one goes. A
    # new one now would be a third while the block may hold the first.
    assert thing(world).trigger == "1"
    assert outcome.rotation is not None and outcome.rotation.rotation == 1
    assert outcome.rotation.reason == (
        "finishing rotation 1, which an interrupted run started on 2026-02-01T00:00:00+00:00"
    )
    record = service.stack_state(world.stacks()["etl"]).record
    assert record.generated["credential_rotated_at"] == "2026-02-01T00:00:00+00:00"

    # Finished (no old copy pending): the next rotate is a new one.
    rotate(world)
    assert thing(world).trigger == "2"


def test_an_older_half_done_replacement_does_not_stop_a_new_rotation(world):
    world.up()
    rotate(world)
    rotate(world)
    interrupt_the_replacement(world, "1")  # not the current count: another rotation's

    assert rotate(world).rotation.rotation == 3
    assert thing(world).trigger == "3"


def test_up_finishes_a_half_done_rotation_even_when_another_is_due(world):
    at(world, "2026-02-01T00:00:00+00:00")
    world.up(rotate_after=1)
    rotate(world)
    interrupt_the_replacement(world, "1")

    at(world, "2026-02-11T00:00:00+00:00")  # 10 days on: due again, but the last one is open
    outcome = world.up()

    assert thing(world).trigger == "1"
    assert outcome.rotation is not None
    assert outcome.rotation.reason.startswith("finishing rotation 1")


def forget_the_triggers(world: World) -> None:
    """The state of a pool made before its credential had a replacement trigger."""
    for resource in world.stacks()["etl"]["resources"]:
        resource.pop("replacementTrigger", None)


def test_a_pool_made_before_rotation_is_told_to_run_up_before_rotating(world):
    # The engine would keep the credential (no recorded trigger to differ from), silently.
    world.up()
    forget_the_triggers(world)
    calls = len(world.backend.calls)

    with pytest.raises(InvalidInputError) as err:
        rotate(world)
    assert err.value.message == (
        "Pool 'etl' was provisioned before its credential could be rotated: run `provision up "
        "etl` once (it records the credential's rotation count and changes nothing), then "
        "rotate it."
    )
    assert [c for c in world.backend.calls[calls:] if c[0] == "up"] == []

    world.up()  # records "0"
    assert thing(world).trigger == "0"
    assert rotate(world).rotation.rotation == 1
    assert thing(world).trigger == "1"


def test_a_due_rotation_of_a_pool_made_before_rotation_waits_for_its_trigger(world):
    at(world, "2026-01-01T00:00:00+00:00")
    world.up(rotate_after=30)
    forget_the_triggers(world)
    at(world, "2026-03-01T00:00:00+00:00")  # due
    request = service.PoolRequest("etl")

    assert (
        service.plan(request, world.settings, env=world.env, runtime=world.runtime).rotation is None
    )
    assert world.up().rotation is None  # records the trigger, rotates nothing
    assert thing(world).trigger == "0"
    plan = service.plan(request, world.settings, env=world.env, runtime=world.runtime)
    assert plan.rotation is not None and plan.rotation.reason.startswith("older than")


def test_rotating_a_keyless_pool_says_there_is_nothing_to_rotate(world):
    world.up(with_worker=True)
    calls = len(world.backend.calls)
    with pytest.raises(service.NothingToRotate, match="Nothing to rotate in pool 'etl'") as err:
        rotate(world)
    assert err.value.exit_code == 0
    assert [c for c in world.backend.calls[calls:] if c[0] in ("up", "stack")] == []


def test_rotating_a_pool_that_does_not_exist_is_one_line(world):
    with pytest.raises(ProvisionError, match="Pool 'etl' is not provisioned yet"):
        rotate(world)


def test_rotate_after_rotates_on_up_once_due_and_a_rerun_does_not_rotate_again(world):
    at(world, "2026-01-02T00:00:00+00:00")
    world.up(rotate_after=30)
    assert thing(world).trigger == "0"
    request = service.PoolRequest("etl")

    at(world, "2026-01-30T00:00:00+00:00")  # 29 days: not yet
    assert (
        service.plan(request, world.settings, env=world.env, runtime=world.runtime).rotation is None
    )

    at(world, "2026-02-01T00:00:00+00:00")  # 31 days
    plan = service.plan(request, world.settings, env=world.env, runtime=world.runtime)
    assert plan.rotation is not None and "older than --rotate-after 30 days" in plan.rotation.reason
    assert plan.has_changes  # so `preview --expect-no-changes` exits 3 in a drift job
    world.up()
    assert thing(world).trigger == "1"
    # The outputs of this fake still say the old date (as after a killed rotation): counted
    # from the rotation's start, it is not due again.
    world.up()
    assert thing(world).trigger == "1"


def test_a_credential_close_to_expiry_is_renewed_and_listed_as_due(world):
    at(world, "2026-06-01T00:00:00+00:00")
    world.up()
    rows = service.list_pools(world.settings, runtime=world.runtime)
    assert rows[0].credential is not None
    assert (rows[0].credential.age_days, rows[0].credential.expires_in_days) == (151, 214)
    assert rows[0].credential.due is None

    at(world, "2026-12-10T00:00:00+00:00")  # 22 days before it expires
    rows = service.list_pools(world.settings, runtime=world.runtime)
    assert rows[0].credential.due == "expires on 2027-01-01 (in 22 days)"
    details = service.show("etl", world.settings, runtime=world.runtime)
    assert details.credential == rows[0].credential
    request = service.PoolRequest("etl")
    plan = service.plan(request, world.settings, env=world.env, runtime=world.runtime)
    assert plan.rotation is not None and plan.rotation.expires_at == "2027-01-01T00:00:00+00:00"
    world.up()
    assert thing(world).trigger == "1"
