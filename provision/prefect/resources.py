"""The Prefect side of a pool as resources of its Pulumi stack: the credentials block and the
work pool, as Pulumi dynamic resources (served from the tool's process: ``dynamic_host``).

Why resources and not calls after ``up``: preview, diff, drift detection (``--refresh``),
locking, crash recovery and destroy order then cover Prefect through the same engine, and the
ids and ownership live in the stack's state, in the shared backend, not on one laptop.

Rules kept here:
- No Prefect credential is ever an input or an output. The providers are served from the
  tool's own process (``provision.dynamic_host``) and read, during a call, the mapping the
  service gave the engine: the URL it resolved and its key or auth string (``ENV_URL``,
  ``ENV_KEY``, ``ENV_AUTH``); a resource recorded against another URL gets no credential (a
  key is never sent to a server it was not configured for).
- Block data is a secret input (encrypted in state); outputs carry only its SHA-256, so a
  refresh can tell that someone edited the block without the data ever leaving the provider.
- An object that existed before the first ``create`` is adopted (written in place) with
  ``created = False``, and ``delete`` leaves it alone: ``destroy`` removes only what the tool
  made.

The provider classes are pickled into the state *by reference* (``module:qualname``): keep
this module path and the class names stable across releases, or old states stop loading.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

import pulumi
from pulumi.dynamic import (
    CreateResult,
    DiffResult,
    ReadResult,
    Resource,
    ResourceProvider,
    UpdateResult,
)

from provision.dynamic_host import provider_cache, provider_env
from provision.errors import ProvisionError
from provision.prefect.tokens import ENV_AUTH, ENV_FACTS, ENV_KEY, ENV_OWNED, ENV_URL


class PrefectStepFailed(Exception):
    """A Prefect call of a provider failed; the message is the typed error's one line.

    ``provision.engine_errors`` finds ``PrefectStepFailed: <message>`` in the engine's output
    and turns it back into a typed error.
    """


def data_hash(data: Any) -> str:
    """SHA-256 of block data as the server stores it (JSON, sorted keys)."""
    canonical = json.dumps(json.loads(json.dumps(data)), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def _writer(url: str) -> Any:
    """A writer for ``url`` with the credential the service passed, if it is for ``url``, and
    what the service and earlier calls of this process know of that server."""
    from provision.prefect.config import PrefectApi, _is_cloud
    from provision.prefect.writer import PrefectWriter, ServerFacts

    env = provider_env()
    same = env.get(ENV_URL, "").rstrip("/") == url.rstrip("/")
    cloud = _is_cloud(url)
    handed = env.get(ENV_FACTS, "") if same else ""
    # What is known of each server is shared by every call of one run (the block's create,
    # then the work pool's): see ``ServerFacts``.
    facts = provider_cache().setdefault(
        ("facts", url.rstrip("/"), handed), ServerFacts.from_json(handed)
    )
    return PrefectWriter(
        PrefectApi(
            url=url.rstrip("/"),
            key=env.get(ENV_KEY) or None if same else None,
            is_cloud=cloud,
            source="the pool's record",
            auth_string=None if cloud or not same else env.get(ENV_AUTH) or None,
        ),
        facts=facts,
    )


def _owned() -> set[str]:
    return {i for i in provider_env().get(ENV_OWNED, "").split(",") if i}


def _failing(fn: Any) -> Any:
    """Re-raise the tool's typed errors as ``PrefectStepFailed`` with their one line."""

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except ProvisionError as exc:
            raise PrefectStepFailed(str(exc)) from None

    return wrapper


def _unknown(value: Any) -> bool:
    """Whether ``value`` is, or holds, a value the engine does not know yet (in a preview:
    the unknown sentinel, or an object that is not plain JSON)."""
    from pulumi.runtime import rpc

    if isinstance(value, dict):
        return any(_unknown(v) for v in value.values())
    if isinstance(value, list | tuple):
        return any(_unknown(v) for v in value)
    return value == rpc.UNKNOWN or not isinstance(value, str | int | float | bool | type(None))


class BlockProvider(ResourceProvider):
    """CRUD of one Prefect block document, by type slug and name."""

    serialize_as_secret_always = False  # pickled by reference: nothing secret in it

    def _outs(self, props: Mapping[str, Any], block_id: str, created: bool) -> dict[str, Any]:
        return {
            "api_url": props["api_url"],
            "block_type": props["block_type"],
            "name": props["name"],
            "block_id": block_id,
            "created": created,
            "data_hash": data_hash(props["data"]),
        }

    @_failing
    def create(self, props: dict[str, Any]) -> CreateResult:
        """Create the block, or adopt (update in place) one that already has its name."""
        with _writer(props["api_url"]) as writer:
            result = writer.create_block(props["block_type"], props["name"], props["data"])
        created = result.op == "create" or result.id in _owned()
        return CreateResult(result.id, self._outs(props, result.id, created))

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        """Replace on another server, type or name; update when the data differs."""
        replaces = [k for k in ("api_url", "block_type", "name") if olds.get(k) != news.get(k)]
        data = news.get("data")
        changed = _unknown(data) or data_hash(data) != olds.get("data_hash")
        return DiffResult(
            changes=bool(replaces) or changed, replaces=replaces, delete_before_replace=False
        )

    @_failing
    def update(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        """Write the new data in place: the id, and so every ``$ref`` to it, stays (a block
        deleted by hand since is created again)."""
        with _writer(news["api_url"]) as writer:
            result = writer.write_block(
                str(olds.get("block_id") or _id), news["block_type"], news["name"], news["data"]
            )
        return UpdateResult(self._outs(news, result.id, bool(olds.get("created"))))

    @_failing
    def delete(self, _id: str, props: dict[str, Any]) -> None:
        """Delete the block if the tool created it; an adopted one stays."""
        if props.get("created"):
            with _writer(props["api_url"]) as writer:
                writer.delete_block(props["block_id"])

    @_failing
    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        """The block as it is now (its data's hash), or gone."""
        with _writer(props["api_url"]) as writer:
            doc = writer.get_block(id_, include_secrets=True)
        if doc is None:
            return ReadResult(None, {})
        return ReadResult(
            id_,
            {
                **{k: props.get(k) for k in ("api_url", "block_type", "created")},
                "name": doc.get("name", props.get("name")),
                "block_id": id_,
                "data_hash": data_hash(doc.get("data") or {}),
            },
        )


class WorkPoolProvider(ResourceProvider):
    """CRUD of one work pool; only the template defaults the tool owns are ever written."""

    serialize_as_secret_always = False

    _KEYS = ("api_url", "name", "type", "worker_type", "push", "defaults")

    def _outs(self, props: Mapping[str, Any], pool_id: str, created: bool) -> dict[str, Any]:
        return {
            **{k: props[k] for k in self._KEYS},
            "pool_id": pool_id,
            "created": created,
        }

    def _write(self, props: Mapping[str, Any], *, create: bool) -> Any:
        with _writer(props["api_url"]) as writer:
            write = writer.create_work_pool if create else writer.upsert_work_pool
            return write(
                props["name"],
                props["type"],
                props["worker_type"],
                bool(props["push"]),
                props["defaults"],
            )

    @_failing
    def create(self, props: dict[str, Any]) -> CreateResult:
        """Create the pool from the server's default template, or adopt an existing one."""
        result = self._write(props, create=True)
        created = result.op == "create" or result.id in _owned()
        return CreateResult(result.id, self._outs(props, result.id, created))

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        """Replace on another server, name or type; update when an owned default differs."""
        replaces = [k for k in ("api_url", "name", "type") if olds.get(k) != news.get(k)]
        defaults = news.get("defaults")
        changed = _unknown(defaults) or defaults != olds.get("defaults")
        return DiffResult(
            changes=bool(replaces) or changed, replaces=replaces, delete_before_replace=False
        )

    @_failing
    def update(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        """Set the owned defaults in the pool's own template; every other edit stays."""
        result = self._write(news, create=False)
        return UpdateResult(self._outs(news, result.id, bool(olds.get("created"))))

    @_failing
    def delete(self, _id: str, props: dict[str, Any]) -> None:
        """Delete the pool if the tool created it (and it is still the same pool)."""
        if props.get("created"):
            with _writer(props["api_url"]) as writer:
                writer.delete_work_pool(props["name"], expected_id=props["pool_id"])

    @_failing
    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        """The owned defaults as the server has them now, or gone (deleted or recreated)."""
        with _writer(props["api_url"]) as writer:
            pool = writer.get_work_pool(props["name"])
        if pool is None or str(pool.get("id")) != id_:
            return ReadResult(None, {})
        properties = (
            (pool.get("base_job_template") or {}).get("variables", {}).get("properties", {})
        )
        current = {
            key: (properties.get(key) or {}).get("default") for key in props.get("defaults") or {}
        }
        return ReadResult(id_, {**props, "defaults": current, "pool_id": id_})


class PrefectBlock(Resource, module="prefect", name="Block"):
    """The pool's credentials block. ``block_id`` and ``created`` are read back from state."""

    block_id: pulumi.Output[str]
    created: pulumi.Output[bool]

    def __init__(
        self,
        name: str,
        *,
        api_url: str,
        block_type: str,
        block_name: str,
        data: pulumi.Input[Mapping[str, Any]],
        opts: pulumi.ResourceOptions | None = None,
    ):
        super().__init__(
            BlockProvider(),
            name,
            {
                "api_url": api_url,
                "block_type": block_type,
                "name": block_name,
                # Secret whatever its source: it holds the cloud credential.
                "data": pulumi.Output.secret(data),
                "block_id": None,
                "created": None,
                "data_hash": None,
            },
            opts,
        )


class PrefectWorkPool(Resource, module="prefect", name="WorkPool"):
    """The work pool, with the base-job-template defaults the tool owns."""

    pool_id: pulumi.Output[str]
    created: pulumi.Output[bool]

    def __init__(
        self,
        name: str,
        *,
        api_url: str,
        pool_name: str,
        pool_type: str,
        worker_type: str,
        push: bool,
        defaults: pulumi.Input[Mapping[str, Any]],
        opts: pulumi.ResourceOptions | None = None,
    ):
        super().__init__(
            WorkPoolProvider(),
            name,
            {
                "api_url": api_url,
                "name": pool_name,
                "type": pool_type,
                "worker_type": worker_type,
                "push": push,
                "defaults": defaults,
                "pool_id": None,
                "created": None,
            },
            opts,
        )
