"""The cloud-independent part of a fake provider, on ``pulumi.provider.experimental``.

A cloud is a :class:`Cloud`: a plugin name and version, its :class:`ResourceType`
instances and its invokes. A resource type declares the schema facts the
engine-facing methods need (input names, force-new inputs, defaults,
optional+computed inputs, computed and secret outputs) and implements the
cloud's behaviour (create/read/update/delete against :class:`FakeCloud`).
:class:`FakeProvider` turns that into the provider surface the engine calls
(CheckConfig, Configure, Check, Diff, Create incl. preview, Read, Update,
Delete, Invoke, GetSchema), with fault/delay injection and the call log;
:func:`serve` runs it as a plugin process.

Handlers work on plain Python values (str, float, bool, None, list, dict) keyed
by wire (camelCase) names; an unknown (preview) value is the string
:data:`UNKNOWN`, as on the wire. Conversion to ``PropertyValue`` happens only
here, because ``PropertyValue.computed()`` cannot be marshalled in pulumi
3.272 ("Unsupported value type: Computed").
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, ClassVar

import grpc
import grpc.aio
from pulumi.provider.experimental.property_value import (
    Computed,
    PropertyValue,
    ResourceReference,
)
from pulumi.provider.experimental.provider import (
    CheckFailure,
    CheckRequest,
    CheckResponse,
    ConfigureRequest,
    ConfigureResponse,
    CreateRequest,
    CreateResponse,
    DeleteRequest,
    DiffRequest,
    DiffResponse,
    GetSchemaRequest,
    GetSchemaResponse,
    InvokeRequest,
    InvokeResponse,
    PropertyDiff,
    PropertyDiffKind,
    Provider,
    ReadRequest,
    ReadResponse,
    UpdateRequest,
    UpdateResponse,
)
from pulumi.provider.experimental.server import ProviderServicer
from pulumi.runtime import rpc
from pulumi.runtime._grpc_settings import _GRPC_CHANNEL_OPTIONS
from pulumi.runtime.proto import provider_pb2_grpc

from tests.fakecloud.faults import MUTATING_OPS, FaultSyntaxError, delay_ms, parse_faults
from tests.fakecloud.state import FakeCloud

UNKNOWN: str = rpc.UNKNOWN
"""The wire sentinel for a value not known until apply (preview outputs, unresolved inputs)."""


def own_type(token: str) -> str:
    """A resource's own type token.

    The SDK derives a request's type from its URN, whose type part is the whole parent chain
    (``provision:gcp:CloudRunPool$gcp:serviceaccount/key:Key``) for a component's children.
    """
    return token.rsplit("$", 1)[-1]


class CloudError(Exception):
    """An error as the real provider would report it; the engine shows it verbatim.

    Anything else raised by a handler is a bug in the fake and keeps its traceback.
    """


@dataclass(frozen=True)
class Secret:
    """Wraps a plain value that must reach the engine marked secret (invoke results)."""

    value: Any


# ------------------------------------------------------------------ plain values
def to_plain(value: PropertyValue) -> Any:
    """A PropertyValue as plain Python, secrets unwrapped, unknowns as :data:`UNKNOWN`."""
    inner = value.value
    if isinstance(inner, Computed):
        return UNKNOWN
    if isinstance(inner, ResourceReference):
        return to_plain(inner.resource_id) if inner.resource_id is not None else inner.urn
    if isinstance(inner, Mapping):
        return {k: to_plain(v) for k, v in inner.items()}
    if isinstance(inner, tuple | list):
        return [to_plain(v) for v in inner]
    return inner


def to_plain_map(values: Mapping[str, PropertyValue], *, internal: bool = False) -> dict[str, Any]:
    """``to_plain`` for a property map; keys like ``__defaults`` dropped unless ``internal``."""
    return {k: to_plain(v) for k, v in values.items() if internal or not k.startswith("__")}


def from_plain(value: Any, *, secret: bool = False) -> PropertyValue:
    """Plain Python (ints allowed, :class:`Secret` honoured) as a PropertyValue."""
    if isinstance(value, Secret):
        return from_plain(value.value, secret=True)
    if isinstance(value, bool) or value is None or isinstance(value, str | float):
        converted: Any = value
    elif isinstance(value, int):
        converted = float(value)  # the wire has only doubles
    elif isinstance(value, Mapping):
        converted = {k: from_plain(v) for k, v in value.items()}
    elif isinstance(value, list | tuple):
        converted = [from_plain(v) for v in value]
    else:
        raise TypeError(f"fakecloud: cannot send {type(value).__name__} to the engine")
    return PropertyValue(converted, is_secret=secret)


def is_unknown(value: Any) -> bool:
    """True if ``value`` is or contains an unknown."""
    if value == UNKNOWN:
        return True
    if isinstance(value, Mapping):
        return any(is_unknown(v) for v in value.values())
    if isinstance(value, list):
        return any(is_unknown(v) for v in value)
    return False


def is_empty(value: Any) -> bool:
    """The "unset" values a provider treats alike: None, "", [] and {} (not False or 0)."""
    return value is None or value == "" or value == [] or value == {}


def secret_keys(values: Mapping[str, PropertyValue]) -> set[str]:
    """Top-level keys whose value is or contains a secret."""
    return {k for k, v in values.items() if v.contains_secret()}


def names(text: str) -> frozenset[str]:
    """``names("accountId project")``: property-name sets without a line per name."""
    return frozenset(text.split())


def urn_name(urn: str) -> str:
    """The Pulumi resource name: the last ``::`` segment of a URN."""
    return urn.rsplit("::", 1)[-1] if "::" in urn else urn


# ------------------------------------------------------------- the cloud contract
@dataclass
class Context:
    """What a handler may use: the store, the provider config, the env and the URN."""

    store: FakeCloud
    config: Mapping[str, Any]
    env: Mapping[str, str]
    urn: str = ""

    @property
    def name(self) -> str:
        """The Pulumi resource name of the resource being handled."""
        return urn_name(self.urn)


class ResourceType:
    """One emulated resource type. Subclasses set the class attributes and ``create``.

    Schema facts, all in wire names:

    * ``inputs``: every input property the SDK may send (others fail Check);
    * ``force_new``: changing one replaces the resource;
    * ``optional_computed``: an absent input means "whatever the cloud chose",
      not "unset", so it never diffs (``project`` defaulted from the provider);
    * ``defaults``: schema defaults Check fills in (listed in ``__defaults``);
    * ``computed``: outputs only the cloud knows, unknown during preview;
    * ``secret_outputs``: outputs always marked secret;
    * ``write_only``: outputs the cloud returns once (a new key's private key):
      never stored, carried over from the old state by Read and Update;
    * ``import_ids``: Read also accepts the provider's import id (terraform's
      importer form, e.g. ``rtb-1_0.0.0.0/0`` for a route) and answers with the
      canonical id it puts in the ``id`` output, as a bridged provider does.
    """

    token: ClassVar[str]
    kind: ClassVar[str] = "resource"
    inputs: ClassVar[frozenset[str]] = frozenset()
    force_new: ClassVar[frozenset[str]] = frozenset()
    optional_computed: ClassVar[frozenset[str]] = frozenset()
    defaults: ClassVar[Mapping[str, Any]] = {}
    computed: ClassVar[frozenset[str]] = frozenset()
    secret_outputs: ClassVar[frozenset[str]] = frozenset()
    write_only: ClassVar[frozenset[str]] = frozenset()
    import_ids: ClassVar[bool] = False

    # ---- engine-facing hooks with generic defaults
    def validate(self, ctx: Context, inputs: Mapping[str, Any]) -> list[tuple[str, str]]:
        """Schema-level validation as Check does it: ``[(property, reason)]``."""
        return []

    def plan(self, ctx: Context, inputs: Mapping[str, Any]) -> dict[str, Any]:
        """Outputs known before apply (inputs plus plan-time defaults such as project)."""
        return dict(inputs)

    def preview(self, ctx: Context, inputs: Mapping[str, Any]) -> dict[str, Any]:
        """Create's preview: planned values, every other computed output unknown."""
        outputs = self.plan(ctx, inputs)
        for key in self.computed:
            outputs.setdefault(key, UNKNOWN)
        return outputs

    def equal(self, key: str, old: Any, new: Any) -> bool:
        """Whether an input's old output and new value are the same (override for sets)."""
        return old == new

    # ---- cloud behaviour
    def create(self, ctx: Context, inputs: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
        """Create in the store; return ``(id, outputs)``. Raise CloudError like the cloud."""
        raise NotImplementedError

    def read(self, ctx: Context, rid: str, olds: Mapping[str, Any]) -> dict[str, Any] | None:
        """Current outputs from the store, or None when the object is gone."""
        record = ctx.store.get(self.token, rid)
        return dict(record["properties"]) if record else None

    def update(
        self, ctx: Context, rid: str, olds: Mapping[str, Any], news: Mapping[str, Any]
    ) -> dict[str, Any]:
        """Apply the mutable inputs of ``news`` to the stored object; return outputs."""
        with ctx.store.transaction():
            record = ctx.store.get(self.token, rid)
            if record is None:
                raise CloudError(self.missing_error("update", rid))
            props = record["properties"]
            for key in self.inputs - self.force_new:
                if key in news:
                    props[key] = news[key]
                elif key not in self.optional_computed:
                    props.pop(key, None)
            self.after_update(ctx, record, news)
            record["updatedAt"] = time.time()
            ctx.store.save(record)
            return dict(props)

    def after_update(self, ctx: Context, record: dict[str, Any], news: Mapping[str, Any]) -> None:
        """Recompute derived properties of an updated record (labels -> effectiveLabels)."""

    def delete(self, ctx: Context, rid: str, olds: Mapping[str, Any]) -> None:
        """Delete from the store; deleting what is already gone succeeds, as providers do."""
        ctx.store.remove(self.token, rid)

    def preview_update(
        self, ctx: Context, olds: Mapping[str, Any], news: Mapping[str, Any]
    ) -> dict[str, Any]:
        """Update's preview: old computed outputs kept, inputs replaced by ``news``."""
        outputs = {k: v for k, v in olds.items() if k not in self.inputs}
        outputs.update(self.plan(ctx, news))
        return outputs

    # ---- error texts (clouds override with their real wording)
    def missing_error(self, op: str, rid: str) -> str:
        """Text for ``op`` on an object that does not exist."""
        return f"error {op[:-1]}ing {self.kind} {rid!r}: not found"

    def fault_error(self, op: str, ident: str) -> str:
        """Text for an injected failure of ``op`` on ``ident`` (URN name or id)."""
        return f"error {op[:-1]}ing {self.kind} {ident!r}: service unavailable"

    # ---- helpers for subclasses
    def store_record(
        self,
        ctx: Context,
        rid: str,
        outputs: Mapping[str, Any],
        *,
        meta: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Persist ``outputs`` (minus write-only values) as the live record ``rid``."""
        kept = {k: v for k, v in outputs.items() if k not in self.write_only}
        return ctx.store.put(self.token, rid, kept, name=ctx.name, urn=ctx.urn, meta=meta)


Invoke = Callable[[Context, Mapping[str, Any]], Mapping[str, Any]]


class Cloud:
    """A fake cloud: the plugin name/version, its resource types and invokes.

    ``blocking_io``: the handlers wait on the network (the AWS fake's boto3 calls to moto).
    :class:`FakeProvider` then runs them in worker threads, so the engine's concurrent
    calls overlap there as they do in the real provider. Otherwise a handler runs on the
    server's one event loop and blocks every other call until it returns, which suits
    handlers that only touch the local store for a millisecond (GCP, Azure).
    """

    def __init__(
        self,
        name: str,
        version: str,
        resources: Iterable[ResourceType],
        invokes: Mapping[str, Invoke] | None = None,
        *,
        blocking_io: bool = False,
    ) -> None:
        self.name = name
        self.version = version
        self.resources = {r.token: r for r in resources}
        self.invokes = dict(invokes or {})
        self.blocking_io = blocking_io

    def check_config(self, config: Mapping[str, Any], env: Mapping[str, str]) -> None:
        """Raise CloudError where the real provider rejects its config (credentials...)."""

    def warm_up(self) -> None:
        """Load what the handlers need, in a thread once the port is announced (while the
        engine's first calls, which need none of it, are answered): a real provider is one
        binary with its cloud SDK in it, where a lazy Python import would make the first
        call pay for it."""

    def unknown_type_error(self, token: str) -> str:
        """Text for a resource type this fake does not emulate."""
        known = ", ".join(sorted(self.resources))
        return (
            f"fakecloud {self.name}: resource type {token!r} is not emulated; add it to "
            f"tests/fakecloud/{self.name}.py (emulated: {known})"
        )


# ---------------------------------------------------------------- the provider
_KINDS = {
    (False, "add"): PropertyDiffKind.ADD,
    (True, "add"): PropertyDiffKind.ADD_REPLACE,
    (False, "delete"): PropertyDiffKind.DELETE,
    (True, "delete"): PropertyDiffKind.DELETE_REPLACE,
    (False, "update"): PropertyDiffKind.UPDATE,
    (True, "update"): PropertyDiffKind.UPDATE_REPLACE,
}


# Threads for a blocking_io cloud's handlers. The engine sends at most --parallel calls at
# once (4 x GOMAXPROCS by default); asyncio's default executor has only cpu + 4 threads.
# Threads start on demand.
MAX_HANDLER_THREADS = 32


class FakeProvider(Provider):
    """The provider surface for one :class:`Cloud`, backed by a :class:`FakeCloud`.

    ``env`` defaults to ``os.environ``; unit tests pass a dict instead of patching.
    """

    def __init__(
        self,
        cloud: Cloud,
        *,
        state_dir: str | os.PathLike[str] | None = None,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.cloud = cloud
        self.env = dict(os.environ if env is None else env)
        state_dir = state_dir or self.env.get("FAKECLOUD_STATE_DIR")
        # A missing state dir must not crash the process before it prints its port
        # (the engine would only say "EOF"): fail the first call instead.
        self._store = FakeCloud(state_dir) if state_dir else None
        self.config: dict[str, Any] = {}
        self._threads: ThreadPoolExecutor | None = None

    @property
    def store(self) -> FakeCloud:
        """The state store; a clear error when FAKECLOUD_STATE_DIR is unset."""
        if self._store is None:
            raise CloudError(
                f"fakecloud {self.cloud.name}: FAKECLOUD_STATE_DIR is not set; run the engine "
                "with tests.fakecloud.harness.engine_env()"
            )
        return self._store

    # ----------------------------------------------------------------- helpers
    def _ctx(self, urn: str = "") -> Context:
        return Context(self.store, self.config, self.env, urn)

    def _type(self, token: str) -> ResourceType:
        rtype = self.cloud.resources.get(token)
        if rtype is None:
            raise CloudError(self.cloud.unknown_type_error(token))
        return rtype

    def _log(self, op: str, **entry: Any) -> None:
        entry = {k: v for k, v in entry.items() if v is not None}
        self.store.log_call({"cloud": self.cloud.name, "op": op, "phase": "end", **entry})

    def _fault(self, op: str, rtype: ResourceType, urn: str, rid: str | None) -> None:
        name = urn_name(urn)
        for fault in parse_faults(self.env.get("FAKECLOUD_FAULTS")):
            if fault.matches(op, rtype.token, (name, rid)) and (
                not fault.once or self.store.claim_once(fault.spec)
            ):
                text = rtype.fault_error(op, rid or name)
                raise CloudError(f"{text} (injected by FAKECLOUD_FAULTS: {fault.spec})")

    async def _handle(self, action: Callable[[], Any]) -> Any:
        """``action()``: in a worker thread for a ``blocking_io`` cloud, else right here.

        Every RPC is a coroutine on the server's one event loop, so a handler that blocks
        there (a boto3 call to moto) would hold up all the engine's other calls.
        """
        if not self.cloud.blocking_io:
            return action()
        if self._threads is None:
            self._threads = ThreadPoolExecutor(
                MAX_HANDLER_THREADS, thread_name_prefix=f"fakecloud-{self.cloud.name}"
            )
        return await asyncio.get_running_loop().run_in_executor(self._threads, action)

    async def _operate(
        self, op: str, rtype: ResourceType, urn: str, rid: str | None, action: Callable[[], Any]
    ) -> Any:
        """Run a cloud operation with the begin/end log, delays and injected faults.

        The delays are ``asyncio.sleep``: they overlap, hold no thread, and the plugin's
        watchdog can still end the process in the middle of one.
        """
        base = {"type": rtype.token, "name": urn_name(urn), "id": rid}
        if op in MUTATING_OPS:
            self._log(op, **base, phase="begin")
        try:
            await asyncio.sleep(delay_ms(self.env, op) / 1000)
            self._fault(op, rtype, urn, rid)
            result = await self._handle(action)
            await asyncio.sleep(delay_ms(self.env, op, after=True) / 1000)
        except (CloudError, FaultSyntaxError) as exc:
            self._log(op, **base, outcome="error", error=str(exc))
            raise CloudError(str(exc)) from exc
        if op == "create":
            base["id"] = result[0]
        elif op == "read" and result is None:
            base["outcome"] = "gone"
        self._log(op, **{"outcome": "ok", **base})
        return result

    def _outputs(
        self, rtype: ResourceType, outputs: Mapping[str, Any], secret: set[str]
    ) -> dict[str, PropertyValue]:
        marked = secret | rtype.secret_outputs
        return {k: from_plain(v, secret=k in marked) for k, v in outputs.items()}

    # ----------------------------------------------------------- provider config
    async def get_schema(self, request: GetSchemaRequest) -> GetSchemaResponse:
        """A minimal schema: enough for an engine that asks, not a real package schema."""
        self._log("get_schema")
        schema = {"name": self.cloud.name, "version": self.cloud.version}
        return GetSchemaResponse(schema=json.dumps(schema))

    async def check_config(self, request: CheckRequest) -> CheckResponse:
        """Reject config where the real provider would (pulumi-gcp checks credentials here)."""
        try:
            self.cloud.check_config(to_plain_map(request.new_inputs), self.env)
        except CloudError as exc:
            self._log("check_config", outcome="error", error=str(exc))
            raise
        self._log("check_config", outcome="ok")
        return CheckResponse(inputs=request.new_inputs)

    async def diff_config(self, request: DiffRequest) -> DiffResponse:
        """Config changes update the provider in place; nothing forces a replacement."""
        changed = to_plain_map(request.old_state) != to_plain_map(request.new_inputs)
        self._log("diff_config", changes=changed)
        return DiffResponse(changes=changed)

    async def configure(self, request: ConfigureRequest) -> ConfigureResponse:
        """Keep the config; refuse output values and resource refs (SDK unmarshal bugs)."""
        config = to_plain_map(request.args)
        for key, value in request.variables.items():  # "gcp:config:project" -> "project"
            config.setdefault(key.rsplit(":", 1)[-1], value)
        self.config = config
        self.cloud.check_config(config, self.env)
        self._log("configure")
        # accept_outputs=False: the SDK's unmarshalling of output values raises on
        # values without dependencies or a "secret" field. accept_resources=False:
        # the engine then sends referenced resources as plain ids/URNs.
        return ConfigureResponse(
            accept_secrets=True, supports_preview=True, accept_resources=False, accept_outputs=False
        )

    # -------------------------------------------------------------- resources
    async def check(self, request: CheckRequest) -> CheckResponse:
        """Fill schema defaults (recorded in ``__defaults``) and validate like the schema."""
        rtype = self.cloud.resources.get(own_type(request.type))
        if rtype is None:  # Create reports the unknown type, with the same words
            return CheckResponse(inputs=request.new_inputs)
        news = {k: v for k, v in request.new_inputs.items() if not k.startswith("__")}
        defaulted = []
        for key, value in rtype.defaults.items():
            if news.get(key) is None or news[key].value is None:
                news[key] = from_plain(value)
                defaulted.append(key)
        # SDKv2-bridged providers (pulumi-gcp) record defaulted keys here; Diff must ignore it.
        news["__defaults"] = PropertyValue([PropertyValue(k) for k in sorted(defaulted)])
        plain = to_plain_map(news)
        problems = [(k, "Invalid or unknown key") for k in sorted(plain) if k not in rtype.inputs]
        problems += rtype.validate(self._ctx(request.urn), plain)
        failures = [
            CheckFailure(prop, f"{reason}. Examine values at '{request.name}.{prop}'.")
            for prop, reason in problems
        ]
        self._log("check", type=own_type(request.type), name=request.name, failures=len(failures))
        return CheckResponse(inputs=news, failures=failures)

    async def diff(self, request: DiffRequest) -> DiffResponse:
        """Compare old outputs with new inputs: replace for force-new keys, else update."""
        rtype = self._type(own_type(request.type))
        olds = to_plain_map(request.old_state)
        news = to_plain_map(request.new_inputs)  # secrets unwrapped, __defaults dropped
        ignored = set(request.ignore_changes)
        detailed: dict[str, PropertyDiff] = {}
        for key in sorted((rtype.inputs | news.keys()) - ignored):
            change = self._diff_key(rtype, key, olds.get(key), news.get(key))
            if change:
                replace = key in rtype.force_new
                detailed[key] = PropertyDiff(_KINDS[(replace, change)], input_diff=True)
        replaces = sorted(k for k in detailed if k in rtype.force_new)
        self._log(
            "diff",
            type=own_type(request.type),
            name=request.name,
            id=request.resource_id,
            changes=bool(detailed),
            diffs=sorted(detailed),
            replaces=replaces,
        )
        return DiffResponse(
            changes=bool(detailed),
            replaces=replaces,
            diffs=sorted(detailed),
            detailed_diff=detailed,
            # Like the real providers: create-before-delete. A replacement that keeps
            # the cloud name then hits "already exists", as it would for real.
            delete_before_replace=False,
        )

    @staticmethod
    def _diff_key(rtype: ResourceType, key: str, old: Any, new: Any) -> str | None:
        if is_unknown(new):
            return "add" if is_empty(old) else "update"
        if new is None:
            if key in rtype.optional_computed or is_empty(old):
                return None
            return "delete"
        if is_empty(old):
            return None if is_empty(new) else "add"
        return None if rtype.equal(key, old, new) else "update"

    async def create(self, request: CreateRequest) -> CreateResponse:
        """Create (or, with ``preview``, plan with unknown computed outputs)."""
        rtype = self._type(own_type(request.type))
        inputs = to_plain_map(request.properties)
        secret = secret_keys(request.properties)
        ctx = self._ctx(request.urn)
        if request.preview:
            self._log("create", type=rtype.token, name=request.name, preview=True)
            return CreateResponse("", self._outputs(rtype, rtype.preview(ctx, inputs), secret))
        rid, outputs = await self._operate(
            "create", rtype, request.urn, None, lambda: rtype.create(ctx, inputs)
        )
        return CreateResponse(rid, self._outputs(rtype, outputs, secret))

    async def read(self, request: ReadRequest) -> ReadResponse:
        """Refresh from the store: drift shows up; a vanished object reads as gone."""
        rtype = self._type(own_type(request.type))
        olds = to_plain_map(request.properties)
        ctx = self._ctx(request.urn)
        outputs = await self._operate(
            "read",
            rtype,
            request.urn,
            request.resource_id,
            lambda: rtype.read(ctx, request.resource_id, olds),
        )
        if outputs is None:
            return ReadResponse()  # an empty id tells the engine the resource is gone
        for key in rtype.write_only & olds.keys():
            outputs[key] = olds[key]
        secret = secret_keys(request.properties) | secret_keys(request.inputs)
        inputs = dict(request.inputs)
        for key, old in request.inputs.items():
            if key in rtype.inputs and key in outputs:  # refreshed inputs follow the cloud
                inputs[key] = from_plain(outputs[key], secret=old.contains_secret())
        rid = request.resource_id
        if rtype.import_ids and isinstance(outputs.get("id"), str) and outputs["id"]:
            rid = outputs["id"]
        return ReadResponse(rid, self._outputs(rtype, outputs, secret), inputs)

    async def update(self, request: UpdateRequest) -> UpdateResponse:
        """Update the mutable inputs in place (or preview it)."""
        rtype = self._type(own_type(request.type))
        olds = to_plain_map(request.olds)
        news = to_plain_map(request.news)
        secret = secret_keys(request.olds) | secret_keys(request.news)
        ctx = self._ctx(request.urn)
        if request.preview:
            self._log("update", type=rtype.token, name=request.name, preview=True)
            outputs = rtype.preview_update(ctx, olds, news)
        else:
            outputs = await self._operate(
                "update",
                rtype,
                request.urn,
                request.resource_id,
                lambda: rtype.update(ctx, request.resource_id, olds, news),
            )
        for key in rtype.write_only & olds.keys():
            outputs[key] = olds[key]
        return UpdateResponse(self._outputs(rtype, outputs, secret))

    async def delete(self, request: DeleteRequest) -> None:
        """Delete; an object that is already gone is not an error."""
        rtype = self._type(own_type(request.type))
        olds = to_plain_map(request.properties)
        ctx = self._ctx(request.urn)
        await self._operate(
            "delete",
            rtype,
            request.urn,
            request.resource_id,
            lambda: rtype.delete(ctx, request.resource_id, olds),
        )

    async def invoke(self, request: InvokeRequest) -> InvokeResponse:
        """Data sources (``getProject``...) computed from the config and the store."""
        fn = self.cloud.invokes.get(request.tok)
        if fn is None:
            error = f"fakecloud {self.cloud.name}: unknown function {request.tok!r}"
            self._log("invoke", type=request.tok, outcome="error", error=error)
            raise CloudError(error)
        try:
            ctx, args = self._ctx(), to_plain_map(request.args)
            result = await self._handle(lambda: fn(ctx, args))
        except CloudError as exc:
            self._log("invoke", type=request.tok, outcome="error", error=str(exc))
            raise
        self._log("invoke", type=request.tok, outcome="ok")
        return InvokeResponse(return_value={k: from_plain(v) for k, v in result.items()})


# ------------------------------------------------------------------ the server
def _clean_errors(method_name: str) -> Callable[..., Any]:
    """Wrap a servicer method so a CloudError reaches the engine as its bare message.

    The SDK's servicer re-raises every error as ``Exception("msg:\\n<traceback>")``
    and grpc then reports "Unexpected <class 'Exception'>: ...". Real providers
    answer with the message alone, and tests match on it, so abort the call with
    the original CloudError's text (kept by Python as the new exception's
    ``__context__``).
    """
    base = getattr(ProviderServicer, method_name)

    async def method(self: ProviderServicer, request: Any, context: Any) -> Any:
        try:
            return await base(self, request, context)
        except Exception as exc:
            cause = exc if isinstance(exc, CloudError) else exc.__context__
            if isinstance(cause, CloudError):
                await context.abort(grpc.StatusCode.UNKNOWN, str(cause))
            raise

    method.__name__ = method_name
    return method


_WRAPPED = (
    "CheckConfig",
    "Configure",
    "Check",
    "Diff",
    "Create",
    "Read",
    "Update",
    "Delete",
    "Invoke",
)


async def _attach(self: ProviderServicer, request: Any, context: Any) -> Any:
    """The engine attached to a plugin it did not start: its address is not needed here (the
    fakes never call the engine back)."""
    from google.protobuf import empty_pb2

    return empty_pb2.Empty()


_Servicer = type(
    "FakeCloudServicer",
    (ProviderServicer,),
    {**{name: _clean_errors(name) for name in _WRAPPED}, "Attach": _attach},
)


WATCHDOG_INTERVAL_S = 0.2


async def _exit_with_parent(parent_pid: int) -> None:
    """Exit at once when the engine that started us dies (a test SIGKILLed ``pulumi up``).

    The CLI starts plugins outside its process group, so killing the group
    leaves them running, and the Python SDK server, unlike Go providers'
    engine health check, never notices. ``os._exit`` also abandons an
    operation sleeping in FAKECLOUD_DELAY_MS: a kill before the cloud write
    leaves nothing behind, deterministically. Writes are atomic renames, so
    exiting anywhere cannot tear a state file.
    """
    while True:
        await asyncio.sleep(WATCHDOG_INTERVAL_S)
        if os.getppid() != parent_pid:  # re-parented: the engine is gone
            os._exit(0)


def serve(cloud: Cloud, argv: list[str] | None = None) -> None:
    """Run ``cloud`` as a provider plugin: print the gRPC port, then serve until killed.

    The engine starts plugins as ``<plugin> <engine-address> [flags]``.
    """
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(description=f"fakecloud {cloud.name} provider plugin")
    # Absent when the plugin is started for the engine to attach to (PULUMI_DEBUG_PROVIDERS),
    # as real providers allow: the address then comes with the Attach call.
    parser.add_argument("engine", nargs="?", help="the Pulumi engine's gRPC address")
    args, _ = parser.parse_known_args(argv)  # ignore --logtostderr, -v=9, --tracing...
    provider = FakeProvider(cloud)

    async def run() -> None:
        server = grpc.aio.server(options=_GRPC_CHANNEL_OPTIONS)
        servicer = _Servicer(argv, cloud.version, provider, engine_address=args.engine)
        provider_pb2_grpc.add_ResourceProviderServicer_to_server(servicer, server)
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        sys.stdout.write(f"{port}\n")  # the engine reads the port from the first line
        sys.stdout.flush()
        threading.Thread(target=cloud.warm_up, name="warm-up", daemon=True).start()
        watchdog = asyncio.create_task(_exit_with_parent(os.getppid()))
        await server.wait_for_termination()
        watchdog.cancel()

    # The engine closes a plugin with SIGINT once the command's work is done, and waits
    # for it to exit before it finishes. A Go provider exits at once; Python's default
    # (KeyboardInterrupt, the server cancelled, every loaded module torn down, tracebacks
    # about the closed loop on stderr) kept the AWS fake alive ~0.2 s more, added to the
    # wall time of every run measured against the fakes. Exit as the real ones do: nothing
    # is buffered (each call's state is written by an atomic rename, the call log by one
    # append), as the watchdog's exit already relies on.
    signal.signal(signal.SIGINT, lambda *_: os._exit(0))
    asyncio.run(run())
