"""Serve the stack's Pulumi dynamic resources from this process.

Pulumi runs a program's dynamic resources through a provider plugin, ``pulumi-python``, that
the engine starts as a process of its own: a second Python interpreter importing the pulumi
SDK and gRPC (about 0.3 s and 55 MB) before it can answer the first call. This process already
has all of that loaded, and the providers' code with it. So the host here serves the same
gRPC protocol on a loopback port of this process, and the engine is told to attach to it
(``PULUMI_DEBUG_PROVIDERS=pulumi-python:<port>``, the CLI's supported way to use a provider that
is already running) instead of starting the plugin.

The protocol and the state are the ones of Pulumi's own dynamic provider
(``pulumi/dynamic/__main__.py``, whose servicer this follows): resources keep the
``pulumi-python:dynamic:Resource`` type and carry their provider pickled in ``__provider``, so
a stack written by either reads the same.

What a provider needs from its caller (the service: which server, with what credential) is
not put in any process environment: each host holds a mapping of its own, and the providers
read it, during a call, with :func:`provider_env`.
"""

from __future__ import annotations

import base64
import threading
import traceback
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

PACKAGE = "pulumi-python"
"""The plugin package of Python dynamic resources: the name the engine attaches by."""
PROVIDER_KEY = "__provider"


class _Context:
    """What the calls of one host share: its caller's mapping and a cache for providers."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = dict(env)
        self.cache: dict[Any, Any] = {}


_CURRENT: ContextVar[_Context | None] = ContextVar("provision_provider_context", default=None)


def provider_env() -> Mapping[str, str]:
    """The mapping the host serving the current call was given (empty outside a call)."""
    current = _CURRENT.get()
    return current.env if current is not None else {}


def provider_cache() -> dict[Any, Any]:
    """A dict shared by every call one host serves (one run), e.g. what is known of a server;
    a fresh one outside a call."""
    current = _CURRENT.get()
    return current.cache if current is not None else {}


@contextmanager
def provider_context(env: Mapping[str, str]) -> Iterator[None]:
    """Run providers' methods as a host with ``env`` would (tests call providers directly
    through this)."""
    token = _CURRENT.set(_Context(env))
    try:
        yield
    finally:
        _CURRENT.reset(token)


class DynamicProviderHost:
    """A gRPC server in this process answering the engine's dynamic-provider calls.

    ``start`` binds a loopback port; ``stop`` ends it (idempotent). Providers are unpickled
    once per host and pickle text, as Pulumi's plugin does per process.
    """

    def __init__(self, env: Mapping[str, str]) -> None:
        self._context = _Context(env)
        self._server: Any = None
        self.port: int | None = None

    def start(self) -> int:
        """Serve on a free loopback port, and return it."""
        if self.port is not None:
            return self.port
        from concurrent import futures

        import grpc
        from pulumi.runtime._grpc_settings import _GRPC_CHANNEL_OPTIONS
        from pulumi.runtime.proto import provider_pb2_grpc

        server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=4, thread_name_prefix="dynamic-provider"),
            options=_GRPC_CHANNEL_OPTIONS,
        )
        provider_pb2_grpc.add_ResourceProviderServicer_to_server(_servicer(self._context), server)
        self.port = server.add_insecure_port("127.0.0.1:0")
        server.start()
        self._server = server
        return self.port

    def stop(self) -> None:
        """Stop serving (calls in flight are cut: the engine has finished with them)."""
        if self._server is not None:
            self._server.stop(None)
            self._server = None


def _servicer(context: _Context) -> Any:
    """The servicer: one class per call of this function, built here so that importing this
    module stays free of gRPC (``provision --help`` loads the engine module)."""
    import grpc
    from google.protobuf import empty_pb2
    from pulumi.dynamic import Config, ConfigureRequest, ResourceProvider
    from pulumi.runtime import proto, rpc
    from pulumi.runtime._serialization import _deserialize
    from pulumi.runtime.proto import ResourceProviderServicer

    def serialize(values: Mapping[str, Any]) -> Any:
        import asyncio

        loop = asyncio.new_event_loop()
        try:
            return loop.run_until_complete(rpc.serialize_properties(dict(values), {}))
        finally:
            loop.close()

    def call(fn: Callable[..., Any]) -> Callable[..., Any]:
        """Run a handler in the host's context; any failure goes back to the engine as its
        traceback, which the engine prints (``engine_errors`` reads typed failures there)."""

        def handler(self: Any, request: Any, rpc_context: Any) -> Any:
            token = _CURRENT.set(context)
            try:
                return fn(self, request, rpc_context)
            except Exception:
                rpc_context.abort(grpc.StatusCode.UNKNOWN, traceback.format_exc())
            finally:
                _CURRENT.reset(token)

        handler.__doc__ = fn.__doc__
        return handler

    def unimplemented(what: str) -> Callable[..., Any]:
        def handler(self: Any, request: Any, context: Any) -> Any:
            context.set_code(grpc.StatusCode.UNIMPLEMENTED)
            context.set_details(f"{what} is not implemented by the dynamic provider")
            raise NotImplementedError(f"{what} is not implemented by the dynamic provider")

        return handler

    class Servicer(ResourceProviderServicer):
        """Pulumi's dynamic-provider protocol over the providers pickled in the inputs."""

        def __init__(self) -> None:
            self._config: dict[str, Any] = {}
            self._providers: dict[str, ResourceProvider] = {}
            self._lock = threading.Lock()

        def _provider(self, props: Mapping[str, Any]) -> ResourceProvider:
            pickled = props[PROVIDER_KEY]
            with self._lock:
                provider = self._providers.get(pickled)
                if provider is None:
                    import dill

                    provider = _deserialize(lambda: dill.loads(base64.b64decode(pickled)))
                    provider.configure(ConfigureRequest(config=Config(self._config, "")))
                    self._providers[pickled] = provider
            return provider

        def _either(self, olds: Mapping[str, Any], news: Mapping[str, Any]) -> ResourceProvider:
            # In a preview the new inputs may not know the provider yet.
            return self._provider(olds if news[PROVIDER_KEY] == rpc.UNKNOWN else news)

        CheckConfig = unimplemented("CheckConfig")
        DiffConfig = unimplemented("DiffConfig")
        Invoke = unimplemented("Invoke")
        GetSchema = unimplemented("GetSchema")
        List = unimplemented("List")

        def Configure(self, request: Any, context: Any) -> Any:
            config = rpc.deserialize_properties(request.args)
            self._config = {k: rpc.unwrap_rpc_secret(v) for k, v in config.items()}
            return proto.ConfigureResponse(acceptSecrets=False)

        def Attach(self, request: Any, context: Any) -> Any:
            # The engine's address, sent to a provider it attached to: these providers log
            # nothing through the engine, so there is nothing to connect.
            return empty_pb2.Empty()

        def GetPluginInfo(self, request: Any, context: Any) -> Any:
            return proto.PluginInfo(version="0.1.0")

        def Cancel(self, request: Any, context: Any) -> Any:
            return empty_pb2.Empty()

        @call
        def Check(self, request: Any, context: Any) -> Any:
            olds = rpc.deserialize_properties(request.olds, True)
            news = rpc.deserialize_properties(request.news, True)
            result = self._either(olds, news).check(olds, news)
            inputs = {**result.inputs, PROVIDER_KEY: news[PROVIDER_KEY]}
            failures = [
                proto.CheckFailure(property=f.property, reason=f.reason) for f in result.failures
            ]
            return proto.CheckResponse(inputs=serialize(inputs), failures=failures)

        @call
        def Diff(self, request: Any, context: Any) -> Any:
            olds = rpc.deserialize_properties(request.olds, True)
            news = rpc.deserialize_properties(request.news, True)
            result = self._either(olds, news).diff(request.id, olds, news)
            fields: dict[str, Any] = {
                "changes": proto.DiffResponse.DIFF_UNKNOWN
                if result.changes is None
                else proto.DiffResponse.DIFF_SOME
                if result.changes
                else proto.DiffResponse.DIFF_NONE
            }
            if result.replaces is not None:
                fields["replaces"] = result.replaces
            if result.delete_before_replace is not None:
                fields["deleteBeforeReplace"] = result.delete_before_replace
            return proto.DiffResponse(**fields)

        @call
        def Create(self, request: Any, context: Any) -> Any:
            props = rpc.deserialize_properties(request.properties)
            result = self._provider(props).create(props)
            outs = {**(result.outs or {}), PROVIDER_KEY: props[PROVIDER_KEY]}
            return proto.CreateResponse(id=result.id, properties=serialize(outs))

        @call
        def Read(self, request: Any, context: Any) -> Any:
            # On refresh the engine sends the prior outputs; on a get, only the inputs.
            props = rpc.deserialize_properties(request.properties)
            if not props and request.inputs is not None:
                props = rpc.deserialize_properties(request.inputs)
            result = self._provider(props).read(request.id, props)
            outs = {**(result.outs or {}), PROVIDER_KEY: props[PROVIDER_KEY]}
            fields: dict[str, Any] = {"id": result.id, "properties": serialize(outs)}
            if result.inputs is not None:
                fields["inputs"] = serialize({**result.inputs, PROVIDER_KEY: props[PROVIDER_KEY]})
            return proto.ReadResponse(**fields)

        @call
        def Update(self, request: Any, context: Any) -> Any:
            olds = rpc.deserialize_properties(request.olds)
            news = rpc.deserialize_properties(request.news)
            result = self._provider(news).update(request.id, olds, news)
            outs = {**(result.outs or {}), PROVIDER_KEY: news[PROVIDER_KEY]}
            return proto.UpdateResponse(properties=serialize(outs))

        @call
        def Delete(self, request: Any, context: Any) -> Any:
            props = rpc.deserialize_properties(request.properties)
            self._provider(props).delete(request.id, props)
            return empty_pb2.Empty()

    return Servicer()
