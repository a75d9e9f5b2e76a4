"""Writes the Prefect side of a pool: the credentials block and the work pool.

Every write is an idempotent upsert that keeps ids stable (a block is updated in place, so the
pool's ``$ref`` to it stays valid) and touches only what the tool owns: in an existing pool's
base job template, only the ``default`` of the variables the target sets. ``plan_*`` answer the
same question without writing, for the confirmation panel.
"""

from __future__ import annotations

import copy
import json
import logging
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import quote

from provision.errors import InvalidInputError, PrefectError
from provision.prefect.client import PrefectClient, PrefectHttpError
from provision.prefect.config import PrefectApi

log = logging.getLogger(__name__)

Op = Literal["create", "update", "same"]


@dataclass(frozen=True)
class WriteResult:
    """The outcome of an upsert."""

    id: str
    """Id of the block document or work pool (unchanged by an update)."""
    op: Op
    """``create``, ``update`` (in place) or ``same`` (nothing written)."""


@dataclass(frozen=True)
class WorkerStatus:
    """One worker as Prefect sees it for a pool."""

    name: str
    status: str
    """``ONLINE`` or ``OFFLINE`` (Prefect marks a worker offline after missed heartbeats)."""
    last_heartbeat: str | None
    """ISO timestamp of its last heartbeat."""


@dataclass
class ServerFacts:
    """What a writer has read of its server: block types, their latest schemas and the default
    base job templates (which no command of the tool changes), each asked for at most once;
    and which objects were seen to exist.

    One command reads them twice over otherwise: the service for its checks, then the Prefect
    resources' provider to write the objects. The service hands its facts to the provider
    (:meth:`to_json`, in the mapping its host serves it with), so the provider starts knowing
    them.
    Nothing secret is in them (types, JSON schemas, the server's default templates, names).
    """

    block_types: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Block types by slug."""
    schemas: dict[str, dict[str, Any]] = field(default_factory=dict)
    """The latest block schema of each block type, by slug."""
    templates: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Default base job templates by pool type."""
    work_pools: set[str] = field(default_factory=set)
    """Names of the work pools last seen to exist: a create of one of them goes straight to
    updating it (no create attempt that the server would refuse)."""
    blocks: set[str] = field(default_factory=set)
    """Block documents this process wrote or read (a pool template may reference them without
    asking the server again). Never handed on: another process checks for itself."""

    def to_json(self) -> str:
        """The facts another process may start from (not ``blocks``)."""
        return json.dumps(
            {
                "block_types": self.block_types,
                "schemas": self.schemas,
                "templates": self.templates,
                "work_pools": sorted(self.work_pools),
            }
        )

    @classmethod
    def from_json(cls, text: str | None) -> ServerFacts:
        """Facts from :meth:`to_json`; none from an empty or malformed value (then they are
        read from the server again, as without them)."""
        try:
            doc = json.loads(text or "{}")
        except ValueError:
            doc = {}
        if not isinstance(doc, dict):
            doc = {}
        parts = [doc.get(k) for k in ("block_types", "schemas", "templates")]
        pools = doc.get("work_pools")
        return cls(
            *(dict(p) if isinstance(p, dict) else {} for p in parts),
            work_pools={str(p) for p in pools} if isinstance(pools, list) else set(),
        )


class PrefectWriter:
    """Reads and writes the Prefect objects of one pool through a :class:`PrefectClient`."""

    def __init__(
        self,
        api: PrefectApi | PrefectClient,
        *,
        facts: ServerFacts | None = None,
        **client_options: Any,
    ):
        """Writer over ``api``: a :class:`PrefectApi` (a client is made with
        ``client_options``, e.g. ``attempts``/``backoff``) or a ready :class:`PrefectClient`.
        ``facts``: what is known of the server already (shared with other writers of it)."""
        if isinstance(api, PrefectClient):
            if client_options:
                raise TypeError("client_options apply only when given a PrefectApi")
            self._client = api
        else:
            self._client = PrefectClient(api, **client_options)
        self.facts = facts if facts is not None else ServerFacts()
        """Block types, schemas and default templates, once read (see :class:`ServerFacts`)."""

    @property
    def api(self) -> PrefectApi:
        """The API this writer talks to."""
        return self._client.api

    def close(self) -> None:
        """Close the underlying client."""
        self._client.close()

    def __enter__(self) -> PrefectWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"PrefectWriter(url={self.api.url!r})"

    # -- server --------------------------------------------------------------------------------

    def server_version(self) -> str | None:
        """The server's Prefect version (``GET /admin/version``), or ``None`` where the API
        does not say (a Prefect Cloud workspace need not serve it): the default worker image
        follows it. Any other failure is raised."""
        try:
            version = self._client.get("/admin/version")
        except PrefectHttpError as exc:
            if exc.status_code in (403, 404, 405):
                return None
            raise
        return version if isinstance(version, str) and version else None

    def workers(self, pool: str) -> list[WorkerStatus]:
        """The workers Prefect has seen polling ``pool``, newest heartbeat first."""
        rows = self._client.post(f"/work_pools/{_seg(pool)}/workers/filter", json={"limit": 50})
        workers = [
            WorkerStatus(
                name=str(row.get("name") or ""),
                status=str(row.get("status") or "UNKNOWN"),
                last_heartbeat=row.get("last_heartbeat_time"),
            )
            for row in rows or []
            if isinstance(row, Mapping)
        ]
        return sorted(workers, key=lambda w: w.last_heartbeat or "", reverse=True)

    def default_base_job_template(self, worker_type: str, push: bool) -> dict[str, Any]:
        """The server's default base job template for a pool type (a fresh copy).

        Cloud lists every type it offers, push types included, at
        ``/collections/work_pool_types``; a self-hosted server serves the collection registry's
        worker metadata (fetched from GitHub, or its bundled copy when offline), which has no
        push types.
        """
        pool_type = f"{worker_type}:push" if push else worker_type
        if push and not self.api.is_cloud:
            raise PrefectError(
                f"Work pool type '{pool_type}' exists only on Prefect Cloud, and "
                f"{self.api.url} is a self-hosted server.",
                hint=f"Use the worker-based type '{worker_type}', or point at a Cloud workspace.",
            )
        templates = self.facts.templates
        if pool_type not in templates:
            path = (
                "/collections/work_pool_types"
                if self.api.is_cloud
                else "/collections/views/aggregate-worker-metadata"
            )
            templates[pool_type] = self._find_template(self._client.get(path), pool_type)
        return copy.deepcopy(templates[pool_type])

    def _find_template(self, metadata: Any, pool_type: str) -> dict[str, Any]:
        entries = metadata.values() if isinstance(metadata, dict) else ()
        for collection in entries:
            if not isinstance(collection, dict):
                continue
            for worker in collection.values():
                if isinstance(worker, dict) and worker.get("type") == pool_type:
                    template = worker.get("default_base_job_configuration")
                    if (
                        isinstance(template, dict)
                        and isinstance(template.get("job_configuration"), dict)
                        and isinstance(template.get("variables"), dict)
                    ):
                        return template
                    raise PrefectError(
                        f"The {self.api.kind} at {self.api.url} has no usable default base job "
                        f"template for work pool type '{pool_type}'."
                    )
        raise PrefectError(
            f"The {self.api.kind} at {self.api.url} does not offer work pool type '{pool_type}'.",
            hint="Check the pool type, and that the server is recent enough to know it.",
        )

    # -- blocks --------------------------------------------------------------------------------

    def find_block(self, block_type_slug: str, name: str) -> dict[str, Any] | None:
        """The block document (secrets obfuscated), or ``None`` if there is none."""
        return self._read_block(block_type_slug, name, include_secrets=False)

    def get_block(self, block_id: str, *, include_secrets: bool = False) -> dict[str, Any] | None:
        """A block document by id (secrets obfuscated unless asked), or ``None`` if it is gone."""
        doc = self._get_or_none(
            f"/block_documents/{_seg(block_id)}",
            {"include_secrets": "true" if include_secrets else "false"},
        )
        if doc is None:
            self.facts.blocks.discard(block_id)
        else:
            self.facts.blocks.add(block_id)
        return doc

    def plan_block(self, block_type_slug: str, name: str, data: Mapping[str, Any] | None) -> Op:
        """What :meth:`upsert_block` would do. ``data=None`` (values not known before the cloud
        side exists) plans an existing block as ``update``. Fails like ``upsert_block`` when the
        block type is not registered, so that surfaces before any cloud resource is made."""
        self._block_type(block_type_slug)
        existing = self._read_block(block_type_slug, name, include_secrets=data is not None)
        if existing is None:
            return "create"
        if data is None or existing.get("data") != _normalised(data):
            return "update"
        return "same"

    def upsert_block(self, block_type_slug: str, name: str, data: Mapping[str, Any]) -> WriteResult:
        """Create the block document, or replace its data in place (same id) if it differs."""
        # Known first: an unregistered type fails as such, not as a missing block.
        self._latest_schema_id(self._block_type(block_type_slug))
        existing = self._read_block(block_type_slug, name, include_secrets=True)
        if existing is None:
            return self.create_block(block_type_slug, name, data)
        return self._converge_block(existing, block_type_slug, data)

    def create_block(self, block_type_slug: str, name: str, data: Mapping[str, Any]) -> WriteResult:
        """Create the block document without reading first (one request once the type and its
        schema are known). If the name is taken (someone else's block, or our own earlier
        attempt whose answer was lost), that block is updated in place instead: ``op`` is then
        ``update`` or ``same``, never ``create``."""
        data = _normalised(data)
        block_type = self._block_type(block_type_slug)
        try:
            created = self._client.post(
                "/block_documents/",
                {
                    "name": name,
                    "data": data,
                    "block_schema_id": self._latest_schema_id(block_type),
                    "block_type_id": block_type["id"],
                },
                secret=True,
            )
        except PrefectHttpError as exc:
            if exc.status_code == 422 and "name" in exc.fields:
                raise PrefectError(
                    f"Prefect rejected the block name '{name}': {exc.detail}"
                ) from None
            if exc.status_code != 409:
                raise
        else:
            self.facts.blocks.add(str(created["id"]))
            return WriteResult(str(created["id"]), "create")
        # 409: it exists. Converge by updating it like any existing block.
        existing = self._read_block(block_type_slug, name, include_secrets=True)
        if existing is None:
            raise PrefectError(
                f"Prefect reported block '{block_type_slug}/{name}' as existing but it "
                "cannot be read back.",
                hint="Rerun the command.",
            )
        return self._converge_block(existing, block_type_slug, data)

    def write_block(
        self, block_id: str, block_type_slug: str, name: str, data: Mapping[str, Any]
    ) -> WriteResult:
        """Replace the data of block document ``block_id`` in place, without reading it first
        (one request once the type's schema is known). If it is gone (deleted by hand), it is
        created again by name, with a new id (``op`` says ``create``)."""
        try:
            self._patch_block(block_id, block_type_slug, _normalised(data))
        except PrefectHttpError as exc:
            if exc.status_code != 404:
                raise
            self.facts.blocks.discard(block_id)
            return self.create_block(block_type_slug, name, data)
        return WriteResult(block_id, "update")

    def _converge_block(
        self, existing: Mapping[str, Any], block_type_slug: str, data: Mapping[str, Any]
    ) -> WriteResult:
        block_id = str(existing["id"])
        self.facts.blocks.add(block_id)
        data = _normalised(data)
        if existing.get("data") == data:
            return WriteResult(block_id, "same")
        self._patch_block(block_id, block_type_slug, data)
        return WriteResult(block_id, "update")

    def _patch_block(self, block_id: str, block_type_slug: str, data: Any) -> None:
        # merge_existing_data=False replaces the document's data instead of merging into it, so
        # a field we no longer set does not linger. The schema id moves the document to the
        # type's latest schema, as creating it afresh would.
        schema_id = self._latest_schema_id(self._block_type(block_type_slug))
        self._client.patch(
            f"/block_documents/{_seg(block_id)}",
            {"data": data, "merge_existing_data": False, "block_schema_id": schema_id},
            secret=True,
        )
        self.facts.blocks.add(block_id)

    def delete_block(self, block_id: str) -> bool:
        """Delete a block document by id; ``False`` if it was already gone."""
        self.facts.blocks.discard(block_id)
        try:
            self._client.delete(f"/block_documents/{_seg(block_id)}")
        except PrefectHttpError as exc:
            if exc.status_code == 404:
                return False
            raise
        return True

    def _read_block(
        self, block_type_slug: str, name: str, *, include_secrets: bool
    ) -> dict[str, Any] | None:
        return self._get_or_none(
            f"/block_types/slug/{_seg(block_type_slug)}/block_documents/name/{_seg(name)}",
            {"include_secrets": "true" if include_secrets else "false"},
        )

    def _block_type(self, slug: str) -> dict[str, Any]:
        if slug in self.facts.block_types:
            return self.facts.block_types[slug]
        block_type = self._get_or_none(f"/block_types/slug/{_seg(slug)}")
        if block_type is not None:
            self.facts.block_types[slug] = block_type
            return block_type
        # Self-hosted servers register block types from the integrations installed with them;
        # each of ours comes from the integration named by its first word (gcp-credentials:
        # prefect-gcp, azure-container-instance-credentials: prefect-azure).
        integration = slug.split("-", 1)[0]
        hint = (
            f"Register it with `pip install prefect-{integration}` and `prefect block register "
            f"-m prefect_{integration}` (with PREFECT_API_URL={self.api.url}), then rerun."
        )
        raise PrefectError(
            f"Block type '{slug}' is not registered on the {self.api.kind} at {self.api.url}.",
            hint=hint,
        )

    def block_schema(self, block_type_slug: str) -> dict[str, Any]:
        """The block type's latest schema as the server declares it (a JSON schema with
        ``properties`` and ``secret_fields``). Fails like :meth:`upsert_block` when the type is
        not registered."""
        return dict(self._latest_schema(self._block_type(block_type_slug)).get("fields") or {})

    def _latest_schema_id(self, block_type: Mapping[str, Any]) -> str:
        return str(self._latest_schema(block_type)["id"])

    def _latest_schema(self, block_type: Mapping[str, Any]) -> dict[str, Any]:
        slug = str(block_type.get("slug"))
        if slug in self.facts.schemas:
            return self.facts.schemas[slug]
        # The server sorts schemas newest first, so limit=1 is the latest.
        schemas = self._client.post(
            "/block_schemas/filter",
            {"block_schemas": {"block_type_id": {"any_": [block_type["id"]]}}, "limit": 1},
        )
        if not schemas:
            raise PrefectError(
                f"Block type '{block_type.get('slug')}' has no schema on {self.api.url}.",
                hint="Re-register the integration's blocks (`prefect block register -m ...`).",
            )
        self.facts.schemas[slug] = dict(schemas[0])
        return self.facts.schemas[slug]

    # -- work pools ----------------------------------------------------------------------------

    def get_work_pool(self, name: str) -> dict[str, Any] | None:
        """The work pool, or ``None`` if there is none."""
        pool = self._get_or_none(f"/work_pools/{_seg(name)}")
        if pool is None:
            self.facts.work_pools.discard(name)
        else:
            self.facts.work_pools.add(name)
        return pool

    def plan_work_pool(
        self,
        name: str,
        pool_type: str,
        worker_type: str,
        push: bool,
        defaults: Mapping[str, Any],
    ) -> Op:
        """What :meth:`upsert_work_pool` would do, without writing. Raises the same errors
        (reserved name, type mismatch, undeclared keys) so they surface before any cloud
        resource is made. A placeholder ``$ref`` in ``defaults`` plans as ``update``."""
        _check_pool_name(name)
        existing = self.get_work_pool(name)
        if existing is None:
            base = self.default_base_job_template(worker_type, push)
            _with_defaults(base, defaults, f"the default '{pool_type}' template")
            return "create"
        current, wanted = self._updated_template(
            existing, name, pool_type, worker_type, push, defaults
        )
        return "same" if wanted == current else "update"

    def upsert_work_pool(
        self,
        name: str,
        pool_type: str,
        worker_type: str,
        push: bool,
        defaults: Mapping[str, Any],
    ) -> WriteResult:
        """Create the work pool from the server's default template for ``pool_type`` with
        ``defaults`` set, or set ``defaults`` in an existing pool's own template (keeping every
        other edit) and write it only if it changed.

        ``defaults`` maps variable names to their new ``default``; ``None`` removes the default.
        Every key must be declared in the template's ``variables.properties``.
        """
        existing = self.get_work_pool(name)
        if existing is None:
            created = self._post_work_pool(name, pool_type, worker_type, push, defaults)
            if created is not None:
                return created
            # 409: created meanwhile (or by our own timed-out attempt): converge by updating.
            existing = self.get_work_pool(name)
            if existing is None:
                raise PrefectError(
                    f"Prefect reported work pool '{name}' as existing but it cannot be read.",
                    hint="Rerun the command.",
                )
        return self._update_work_pool(existing, name, pool_type, worker_type, push, defaults)

    def create_work_pool(
        self,
        name: str,
        pool_type: str,
        worker_type: str,
        push: bool,
        defaults: Mapping[str, Any],
    ) -> WriteResult:
        """Create the work pool without reading first (one request once the default template
        is known). If the name is taken (or was seen taken), that pool is updated as
        :meth:`upsert_work_pool` does (same checks): ``op`` is then ``update`` or ``same``,
        never ``create``."""
        if name not in self.facts.work_pools:
            created = self._post_work_pool(name, pool_type, worker_type, push, defaults)
            if created is not None:
                return created
        return self.upsert_work_pool(name, pool_type, worker_type, push, defaults)

    def _post_work_pool(
        self,
        name: str,
        pool_type: str,
        worker_type: str,
        push: bool,
        defaults: Mapping[str, Any],
    ) -> WriteResult | None:
        """Create the pool from the default template with ``defaults``; ``None`` on a 409."""
        base = self.default_base_job_template(worker_type, push)
        template = _with_defaults(base, defaults, f"the default '{pool_type}' template")
        try:
            created = self._client.post(
                "/work_pools/",
                {
                    "name": name,
                    "type": pool_type,
                    "base_job_template": template,
                    "is_paused": False,
                },
            )
        except PrefectHttpError as exc:
            if exc.status_code != 409:
                raise _pool_write_error(exc, name) from None
            return None
        self.facts.work_pools.add(name)
        return WriteResult(str(created["id"]), "create")

    def _update_work_pool(
        self,
        existing: Mapping[str, Any],
        name: str,
        pool_type: str,
        worker_type: str,
        push: bool,
        defaults: Mapping[str, Any],
    ) -> WriteResult:
        current, wanted = self._updated_template(
            existing, name, pool_type, worker_type, push, defaults
        )
        pool_id = str(existing["id"])
        if wanted == current:
            return WriteResult(pool_id, "same")
        # Unlike creation, the server does not validate defaults on update (3.8.8 calls
        # validate_job_variable_defaults_for_work_pool only on create), so a dangling $ref
        # would only fail later, at flow-run time. Check the referenced blocks ourselves (a
        # block this process has just written or read is known to exist).
        for block_id in _block_refs(defaults):
            if block_id not in self.facts.blocks and self.get_block(block_id) is None:
                raise PrefectError(
                    f"Cannot update work pool '{name}': its template would reference block "
                    f"document {block_id}, which does not exist.",
                    hint="Rerun the command so the credentials block is written first.",
                )
        try:
            self._client.patch(f"/work_pools/{_seg(name)}", {"base_job_template": wanted})
        except PrefectHttpError as exc:
            raise _pool_write_error(exc, name) from None
        return WriteResult(pool_id, "update")

    def delete_work_pool(self, name: str, expected_id: str | None = None) -> bool:
        """Delete a work pool; ``False`` if it was already gone.

        With ``expected_id``, a pool of that name but another id (recreated by someone else
        since we made ours) is left alone and ``False`` returned: only what the tool created is
        ever deleted.
        """
        if expected_id is not None:
            pool = self.get_work_pool(name)
            if pool is None:
                return False
            if str(pool.get("id")) != str(expected_id):
                log.warning(
                    "Work pool %r has id %s, not %s (created by provision); leaving it alone.",
                    name,
                    pool.get("id"),
                    expected_id,
                )
                return False
        try:
            self._client.delete(f"/work_pools/{_seg(name)}")
        except PrefectHttpError as exc:
            if exc.status_code == 404:
                self.facts.work_pools.discard(name)
                return False
            raise _pool_write_error(exc, name) from None
        self.facts.work_pools.discard(name)
        return True

    def _updated_template(
        self,
        existing: Mapping[str, Any],
        name: str,
        pool_type: str,
        worker_type: str,
        push: bool,
        defaults: Mapping[str, Any],
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """(current template, template with our defaults) for an existing pool."""
        actual = existing.get("type")
        if actual != pool_type:
            raise PrefectError(
                f"Work pool '{name}' exists with type '{actual}'; provision would manage it as "
                f"'{pool_type}'.",
                hint=f"Choose another pool name, or delete the existing pool (`prefect "
                f"work-pool delete '{name}'`) if nothing uses it.",
            )
        current = existing.get("base_job_template") or {}
        if not current:
            # A pool created without a template (API or UI): start from the server default,
            # which is what a worker would install on first contact anyway.
            base = self.default_base_job_template(worker_type, push)
            return current, _with_defaults(base, defaults, f"the default '{pool_type}' template")
        return current, _with_defaults(current, defaults, f"work pool '{name}'")

    def _get_or_none(
        self, path: str, params: Mapping[str, Any] | None = None
    ) -> dict[str, Any] | None:
        try:
            return self._client.get(path, params=params)
        except PrefectHttpError as exc:
            if exc.status_code == 404:
                return None
            raise


def _seg(value: str) -> str:
    """``value`` as one URL path segment. An empty one would silently address the collection
    (``GET /work_pools/`` is a 405), so it is refused up front."""
    if not value or not value.strip():
        raise InvalidInputError("An empty name or id cannot address a Prefect object.")
    return quote(value, safe="")


def _check_pool_name(name: str) -> None:
    # Mirrors the server (workers.py: name.lower().startswith("prefect") → 403).
    if name.lower().startswith("prefect"):
        raise _reserved_name_error(name)


def _reserved_name_error(name: str) -> PrefectError:
    return PrefectError(
        f"Work pool name '{name}' is reserved: Prefect keeps names starting with 'prefect' "
        "for internal use.",
        hint="Choose a name that does not start with 'prefect'.",
    )


def _pool_write_error(exc: PrefectHttpError, name: str) -> PrefectError:
    """Turn the server's refusal of a pool write into a message that names the cause."""
    if exc.status_code == 403 and name.lower().startswith("prefect"):
        return _reserved_name_error(name)
    if exc.status_code == 404 and "block" in exc.detail.lower():
        # create_work_pool resolves every {"$ref": {"block_document_id": ...}} default.
        return PrefectError(
            f"Prefect rejected work pool '{name}': its template references a block document "
            f"that does not exist ({exc.detail}).",
            hint="Rerun the command so the credentials block is written first.",
        )
    if exc.status_code == 422 and "name" in exc.fields:
        return PrefectError(f"Prefect rejected the work pool name '{name}': {exc.detail}")
    if exc.status_code == 422:
        first = exc.detail.strip().splitlines()[0] if exc.detail.strip() else exc.detail
        return PrefectError(
            f"Prefect rejected the base job template of work pool '{name}': {first}",
            hint="This is a bug in provision's defaults for this pool type; please report it.",
            details=exc.detail,
        )
    return exc


def _with_defaults(
    template: Mapping[str, Any], defaults: Mapping[str, Any], where: str
) -> dict[str, Any]:
    """A copy of ``template`` with ``variables.properties.<key>.default`` set per ``defaults``;
    ``job_configuration`` and every other key are left exactly as they are."""
    result = copy.deepcopy(dict(template))
    properties = result.get("variables", {}).get("properties")
    if not isinstance(properties, dict):
        raise PrefectError(f"The base job template of {where} has no variables.properties.")
    undeclared = sorted(set(defaults) - set(properties))
    if undeclared:
        raise PrefectError(
            f"The base job template of {where} does not declare "
            f"{', '.join(repr(k) for k in undeclared)}.",
            hint="A pool created by provision keeps these variables; if the template was "
            "edited to remove them, restore them. Otherwise this is a bug in provision.",
        )
    for key, value in defaults.items():
        if value is None:
            properties[key].pop("default", None)
        else:
            properties[key]["default"] = _normalised(value)
    return result


def _block_refs(value: Any) -> Iterator[str]:
    """Block document ids in ``{"$ref": {"block_document_id": ...}}`` values, at any depth."""
    if isinstance(value, Mapping):
        ref = value.get("$ref")
        if isinstance(ref, Mapping) and ref.get("block_document_id"):
            yield str(ref["block_document_id"])
        for item in value.values():
            yield from _block_refs(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _block_refs(item)


def _normalised(value: Any) -> Any:
    """The value as it will come back from the server (JSON types only), so that comparing
    what we want with what is stored does not see tuples vs lists as a change."""
    return json.loads(json.dumps(value))
