"""The in-process dynamic-provider host, called over gRPC as the engine calls it.

The engine attaches to the host (``PULUMI_DEBUG_PROVIDERS``) instead of starting
``pulumi-resource-pulumi-python``; these drive the same protocol from a client, with a provider
pickled the way ``pulumi.dynamic.Resource`` pickles it into the inputs. The end-to-end suite
runs the real engine against it (``tests/e2e/test_engine_calls.py`` proves no plugin process
is started).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import grpc
import pytest
from google.protobuf import empty_pb2
from pulumi.dynamic import CreateResult, DiffResult, ReadResult, ResourceProvider, UpdateResult
from pulumi.dynamic.dynamic import serialize_provider
from pulumi.runtime import proto, rpc
from pulumi.runtime.proto import provider_pb2_grpc

from provision.dynamic_host import (
    PROVIDER_KEY,
    DynamicProviderHost,
    provider_cache,
    provider_env,
)

URN = "urn:pulumi:s::p::pulumi-python:dynamic:Resource::r"


class Recorder(ResourceProvider):
    """Answers with what its call saw: the host's mapping and the shared cache."""

    serialize_as_secret_always = False

    def create(self, props: dict[str, Any]) -> CreateResult:
        calls = provider_cache().setdefault("calls", [])
        calls.append("create")
        return CreateResult(
            "id-1", {"n": props["n"], "seen": provider_env().get("WHO"), "calls": len(calls)}
        )

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        return DiffResult(changes=olds["n"] != news["n"], replaces=["n"] if news["n"] < 0 else [])

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        return ReadResult(id_, {**props, "read": True})

    def update(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        return UpdateResult({"n": news["n"], "was": olds["n"]})

    def delete(self, _id: str, props: dict[str, Any]) -> None:
        if props.get("fail"):
            raise RuntimeError("PrefectStepFailed: the server said no (boom-7f3a)")


PICKLED = serialize_provider(Recorder())


def struct(values: dict[str, Any]) -> Any:
    return asyncio.run(rpc.serialize_properties({**values, PROVIDER_KEY: PICKLED}, {}))


def plain(message: Any) -> dict[str, Any]:
    values = rpc.deserialize_properties(message)
    values.pop(PROVIDER_KEY)
    return values


@pytest.fixture
def host() -> Iterator[DynamicProviderHost]:
    serving = DynamicProviderHost({"WHO": "the service"})
    serving.start()
    yield serving
    serving.stop()


def stub(host: DynamicProviderHost) -> Any:
    channel = grpc.insecure_channel(f"127.0.0.1:{host.port}")
    return provider_pb2_grpc.ResourceProviderStub(channel)


def test_the_crud_calls_reach_the_pickled_provider_with_the_hosts_mapping(host):
    client = stub(host)
    created = client.Create(proto.CreateRequest(urn=URN, properties=struct({"n": 1})))
    assert created.id == "id-1"
    assert plain(created.properties) == {"n": 1, "seen": "the service", "calls": 1}
    # The cache is the host's: the second create sees the first.
    again = client.Create(proto.CreateRequest(urn=URN, properties=struct({"n": 1})))
    assert plain(again.properties)["calls"] == 2

    same = client.Diff(
        proto.DiffRequest(id="id-1", urn=URN, olds=struct({"n": 1}), news=struct({"n": 1}))
    )
    assert same.changes == proto.DiffResponse.DIFF_NONE
    replace = client.Diff(
        proto.DiffRequest(id="id-1", urn=URN, olds=struct({"n": 1}), news=struct({"n": -1}))
    )
    assert replace.changes == proto.DiffResponse.DIFF_SOME and list(replace.replaces) == ["n"]

    checked = client.Check(proto.CheckRequest(urn=URN, olds=struct({}), news=struct({"n": 2})))
    assert plain(checked.inputs) == {"n": 2} and not checked.failures
    updated = client.Update(
        proto.UpdateRequest(id="id-1", urn=URN, olds=struct({"n": 1}), news=struct({"n": 2}))
    )
    assert plain(updated.properties) == {"n": 2, "was": 1}
    read = client.Read(proto.ReadRequest(id="id-1", urn=URN, properties=struct({"n": 2})))
    assert read.id == "id-1" and plain(read.properties) == {"n": 2, "read": True}
    client.Delete(proto.DeleteRequest(id="id-1", urn=URN, properties=struct({"n": 2})))

    # Outside a call nothing is visible: the mapping is never put in the process environment.
    assert provider_env() == {}


def test_two_hosts_keep_their_mappings_apart(host):
    other = DynamicProviderHost({"WHO": "another pool"})
    other.start()
    try:
        for serving, who in ((host, "the service"), (other, "another pool")):
            out = stub(serving).Create(proto.CreateRequest(urn=URN, properties=struct({"n": 0})))
            assert plain(out.properties)["seen"] == who
    finally:
        other.stop()


def test_a_failing_call_reaches_the_engine_with_its_message(host):
    with pytest.raises(grpc.RpcError) as caught:
        stub(host).Delete(
            proto.DeleteRequest(id="id-1", urn=URN, properties=struct({"n": 1, "fail": True}))
        )
    assert caught.value.code() == grpc.StatusCode.UNKNOWN
    # engine_errors reads the typed failure from the engine's output of this text
    assert "PrefectStepFailed: the server said no (boom-7f3a)" in caught.value.details()


def test_it_answers_what_the_engine_asks_an_attached_provider(host):
    from pulumi.runtime.proto import plugin_pb2

    client = stub(host)
    client.Attach(plugin_pb2.PluginAttach(address="127.0.0.1:1"))
    assert client.GetPluginInfo(empty_pb2.Empty()).version
    configured = client.Configure(proto.ConfigureRequest(args=struct({})))
    assert configured.acceptSecrets is False


def test_stop_ends_serving(host):
    client = stub(host)
    host.stop()
    with pytest.raises(grpc.RpcError) as caught:
        client.Create(proto.CreateRequest(urn=URN, properties=struct({"n": 1})), timeout=5)
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
