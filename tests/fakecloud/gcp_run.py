"""Cloud Run worker pools in the fake ``gcp`` provider.

As pulumi-gcp and the Cloud Run Admin API v2 have them (magic-modules
``mmv1/products/cloudrunv2/WorkerPool.yaml``, the REST reference of
``projects.locations.workerPools``):

- the id is ``projects/<project>/locations/<location>/workerPools/<name>``; ``name`` "must
  begin with letter, and cannot end with hyphen; must contain fewer than 50 characters"
  (lowercase letters, digits, hyphens); ``name``, ``location`` and ``project`` cannot change;
  a taken name is a 409;
- ``template`` is required, with at least one container, each with an ``image``; an env
  variable's name is a C identifier and it has a value or a ``valueSource``, not both; the
  ``env`` list is a set (order never makes a diff); CPU limits are 1, 2, 4, 6 or 8 vCPUs, with
  the memory each allows (128 MiB-4 GiB for 1 vCPU ...);
- ``deletion_protection`` defaults to true and the provider then refuses to delete:
  ``cannot destroy WorkerPool without setting deletion_protection=false and running
  `terraform apply``` (``pre_delete/cloudrunv2_worker_pool_deletion_policy.go.tmpl``);
- every template change makes a revision, ``<name>-<generation, 5 digits>-<3 letters>``.

What is checked against the rest of the cloud when a revision is made (create, or an update of
the template): ``run.googleapis.com`` is enabled; the template's ``serviceAccount`` exists and
IAM sees it (else the deployer's ``iam.serviceaccounts.actAs`` check fails, with IAM's "or it
may not exist" 403); every ``secretKeyRef`` names a secret of the project and an enabled
version of it; and that account may read each secret (``roles/secretmanager.secretAccessor``,
or ``admin``/``owner``, on the secret or the project; a grant younger than
``FAKECLOUD_GCP_PROPAGATION_MS`` does not count yet), else the revision fails with Cloud Run's
"Permission denied on secret" text. The real API creates the worker pool and lets that
revision fail; the fake refuses before writing anything (the error texts follow the API's;
their exact wording for worker pools is our reconstruction).

Tests read the container the cloud runs with :func:`container` and :func:`resolved_env`.
"""

from __future__ import annotations

import re
import secrets
import string
import uuid
from collections.abc import Mapping
from typing import Any

from tests.fakecloud.gcp_base import (
    PROJECT_IAM_MEMBER,
    SECRET,
    SECRET_IAM_MEMBER,
    WORKER_POOL,
    GcpResource,
    api_error,
    find_account,
    known_str,
    now_rfc3339,
    project_number,
    project_of,
    young,
)
from tests.fakecloud.gcp_secrets import access, require_api, secret_id_of, version_name
from tests.fakecloud.gcp_secrets import version_state as secret_version_state
from tests.fakecloud.provider import CloudError, Context, is_unknown, names

API = "run.googleapis.com"
_NAME = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
_NAME_MAX = 49
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_GIB = 1024**3
_MIB = 1024**2
# vCPUs → (min, max) memory (cloud.google.com/run/docs/configuring/workerpools/cpu).
_CPU_MEMORY = {
    "1": (128 * _MIB, 4 * _GIB),
    "2": (128 * _MIB, 8 * _GIB),
    "4": (2 * _GIB, 16 * _GIB),
    "6": (4 * _GIB, 24 * _GIB),
    "8": (4 * _GIB, 32 * _GIB),
}
_UNITS = {
    "": 1,
    "k": 10**3,
    "M": 10**6,
    "G": 10**9,
    "T": 10**12,
    "Ki": 2**10,
    "Mi": 2**20,
    "Gi": 2**30,
    "Ti": 2**40,
}
_QUANTITY = re.compile(r"^(\d+(?:\.\d+)?)(Ki|Mi|Gi|Ti|k|M|G|T)?$")
_READERS = frozenset(
    {"roles/secretmanager.secretAccessor", "roles/secretmanager.admin", "roles/owner"}
)


def memory_bytes(quantity: str) -> int | None:
    """A Kubernetes quantity (``512Mi``, ``2Gi``, ``1G``) in bytes; ``None`` if malformed."""
    match = _QUANTITY.match(quantity)
    if not match:
        return None
    return int(float(match[1]) * _UNITS[match[2] or ""])


def _envs(container: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return [e for e in container.get("envs") or [] if isinstance(e, Mapping)]


def _normal(template: Any) -> Any:
    """A template with each container's env as a set (sorted by name), as the schema has it."""
    if not isinstance(template, Mapping):
        return template
    containers = []
    for container in template.get("containers") or []:
        if isinstance(container, Mapping):
            envs = sorted(_envs(container), key=lambda e: str(e.get("name")))
            container = {**container, "envs": envs}
        containers.append(container)
    return {**template, "containers": containers}


class WorkerPoolResource(GcpResource):
    """``gcp.cloudrunv2.WorkerPool``: instances of a container that pull their work."""

    token = WORKER_POOL
    kind = "WorkerPool"
    inputs = names(
        "annotations binaryAuthorization client clientVersion deletionPolicy deletionProtection "
        "description instanceSplits labels launchStage location name project scaling template"
    )
    force_new = names("location name project")
    optional_computed = names("project deletionPolicy launchStage scaling")
    defaults = {"deletionProtection": True}
    computed = names(
        "conditions createTime creator deleteTime effectiveAnnotations effectiveLabels etag "
        "expireTime generation id instanceSplitStatuses lastModifier latestCreatedRevision "
        "latestReadyRevision observedGeneration pulumiLabels reconciling terminalConditions uid "
        "updateTime"
    )
    secret_outputs = names("effectiveLabels pulumiLabels")

    # ---- schema
    def validate(self, ctx: Context, inputs: Mapping[str, Any]) -> list[tuple[str, str]]:
        """What the schema and the API's request validation refuse before any call."""
        problems: list[tuple[str, str]] = []
        for key in ("name", "location", "template"):
            if inputs.get(key) is None:
                problems.append((key, "Missing required argument"))
        name = known_str(inputs, "name")
        if name is not None and (not _NAME.match(name) or len(name) > _NAME_MAX):
            problems.append(
                (
                    "name",
                    f'"name" ("{name}") must begin with a letter, contain only lowercase '
                    "letters, digits and hyphens, not end with a hyphen, and have fewer than 50 "
                    "characters",
                )
            )
        description = known_str(inputs, "description")
        if description is not None and len(description) > 512:
            problems.append(("description", "must be at most 512 characters"))
        scaling = inputs.get("scaling")
        if isinstance(scaling, Mapping):
            mode = scaling.get("scalingMode")
            if (
                isinstance(mode, str)
                and not is_unknown(mode)
                and mode not in ("AUTOMATIC", "MANUAL")
            ):
                problems.append(
                    (
                        "scaling",
                        f'expected scaling.0.scaling_mode to be one of ["AUTOMATIC" '
                        f'"MANUAL"], got {mode}',
                    )
                )
            count = scaling.get("manualInstanceCount")
            if isinstance(count, int | float) and (count < 0 or count != int(count)):
                problems.append(("scaling", "manual_instance_count must be a whole number >= 0"))
        template = inputs.get("template")
        if isinstance(template, Mapping):
            problems += [("template", p) for p in _template_problems(template)]
        return problems

    def equal(self, key: str, old: Any, new: Any) -> bool:
        """``template.containers[].env`` is a set."""
        if key == "template":
            return _normal(old) == _normal(new)
        return old == new

    # ---- cloud
    def create(self, ctx: Context, inputs: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
        """projects.locations.workerPools.create, then its first revision."""
        project = project_of(ctx, inputs)
        location, name = inputs["location"], inputs["name"]
        rid = f"projects/{project}/locations/{location}/workerPools/{name}"
        fail = "Error creating WorkerPool"
        require_api(ctx, project, API, "Cloud Run Admin API", fail)
        with ctx.store.transaction():
            if ctx.store.get(self.token, rid) is not None:
                raise api_error(fail, 409, f"Resource '{name}' already exists.", "alreadyExists")
            account, refs = self._revision_checks(ctx, project, inputs["template"], "create")
            now = now_rfc3339()
            labels = dict(inputs.get("labels") or {})
            revision = _revision(rid, name, 1)
            outputs = {
                **self.plan(ctx, inputs),
                "project": project,
                "id": rid,
                "uid": str(uuid.uuid4()),
                "generation": "1",
                "observedGeneration": "1",
                "createTime": now,
                "updateTime": now,
                "deleteTime": "",
                "expireTime": "",
                "creator": "",
                "lastModifier": "",
                "etag": f'"{secrets.token_hex(8)}"',
                "launchStage": inputs.get("launchStage") or "GA",
                "latestCreatedRevision": revision,
                "latestReadyRevision": revision,
                "reconciling": False,
                "conditions": [],
                "terminalConditions": [{"type": "Ready", "state": "CONDITION_SUCCEEDED"}],
                "instanceSplitStatuses": [
                    {"type": "INSTANCE_SPLIT_ALLOCATION_TYPE_LATEST", "percent": 100}
                ],
                "effectiveAnnotations": dict(inputs.get("annotations") or {}),
                "effectiveLabels": {**labels, "goog-pulumi-provisioned": "true"},
                "pulumiLabels": {**labels, "goog-pulumi-provisioned": "true"},
            }
            meta = {"serviceAccount": account, "secrets": refs, "revisions": 1}
            self.store_record(ctx, rid, outputs, meta=meta)
        return rid, outputs

    def update(
        self, ctx: Context, rid: str, olds: Mapping[str, Any], news: Mapping[str, Any]
    ) -> dict[str, Any]:
        """PATCH; a changed template is a new revision, checked as the first one was."""
        template_changed = not self.equal("template", olds.get("template"), news.get("template"))
        if template_changed:
            project = rid.split("/")[1]
            with ctx.store.transaction():
                account, refs = self._revision_checks(ctx, project, news["template"], "update")
        outputs = super().update(ctx, rid, olds, news)
        if not template_changed:
            return outputs
        with ctx.store.transaction():
            record = ctx.store.get(self.token, rid)
            assert record is not None  # super().update raised otherwise
            count = int(record["meta"].get("revisions", 1)) + 1
            props = record["properties"]
            revision = _revision(rid, rid.rsplit("/", 1)[-1], count)
            props.update(
                generation=str(count),
                observedGeneration=str(count),
                latestCreatedRevision=revision,
                latestReadyRevision=revision,
                updateTime=now_rfc3339(),
            )
            record["meta"].update(serviceAccount=account, secrets=refs, revisions=count)
            ctx.store.save(record)
            return dict(props)

    def delete(self, ctx: Context, rid: str, olds: Mapping[str, Any]) -> None:
        """The provider refuses while ``deletion_protection`` is on (its default)."""
        if olds.get("deletionProtection", True) is not False:
            raise CloudError(
                "cannot destroy WorkerPool without setting deletion_protection=false and "
                "running `terraform apply`"
            )
        super().delete(ctx, rid, olds)

    def after_update(self, ctx: Context, record: dict[str, Any], news: Mapping[str, Any]) -> None:
        """Labels feed effectiveLabels/pulumiLabels, with pulumi-gcp's attribution label."""
        props = record["properties"]
        labels = dict(props.get("labels") or {})
        props["effectiveLabels"] = props["pulumiLabels"] = {
            **labels,
            "goog-pulumi-provisioned": "true",
        }

    # ---- helpers
    def _revision_checks(
        self, ctx: Context, project: str, template: Mapping[str, Any], action: str
    ) -> tuple[str, list[str]]:
        """The revision's identity and the secret versions it reads, or the API's refusal
        (``action``: ``create`` or ``update``, as the provider's messages say)."""
        fail = f"Error {action[:-1]}ing WorkerPool"
        email = template.get("serviceAccount") or (
            f"{project_number(project)}-compute@developer.gserviceaccount.com"
        )
        if template.get("serviceAccount"):
            account = find_account(ctx, email)
            if account is None or young(ctx, account):
                raise api_error(
                    fail,
                    403,
                    f"Permission 'iam.serviceaccounts.actAs' denied on service account {email} "
                    "(or it may not exist).",
                    "forbidden",
                )
        refs: list[str] = []
        for c, container in enumerate(template.get("containers") or []):
            for e, env in enumerate(_envs(container)):
                ref = ((env.get("valueSource") or {}).get("secretKeyRef")) or None
                if not ref:
                    continue
                field = f"template.containers[{c}].env[{e}].value_source.secret_key_ref"
                rid = secret_id_of(ref["secret"], project)
                version = str(ref.get("version") or "latest")
                name = version_name(rid, version)
                if (
                    ctx.store.get(SECRET, rid) is None
                    or secret_version_state(ctx, rid, version) != "ENABLED"
                ):
                    raise api_error(
                        fail, 400, f"{field}.secret: Secret {name} was not found", "badRequest"
                    )
                if not _may_read(ctx, project, rid, f"serviceAccount:{email}"):
                    raise CloudError(
                        f"Error waiting to {action} WorkerPool: Error waiting for "
                        f"{action.title()[:-1]}ing WorkerPool: Error code 9, message: "
                        f"{field}.secret: Permission denied "
                        f"on secret: {name} for Revision service account {email}. The service "
                        "account used must be granted the 'Secret Manager Secret Accessor' role "
                        "(roles/secretmanager.secretAccessor) at the secret, project or higher "
                        "level."
                    )
                refs.append(name)
        return email, refs


def _template_problems(template: Mapping[str, Any]) -> list[str]:
    containers = template.get("containers")
    if is_unknown(containers):
        return []
    if not isinstance(containers, list) or not containers:
        return ["template.0.containers: at least one container is required"]
    problems: list[str] = []
    for c, container in enumerate(containers):
        if not isinstance(container, Mapping):
            continue
        where = f"template.0.containers.{c}"
        if not container.get("image"):
            problems.append(f"{where}.image: Missing required argument")
        for env in _envs(container):
            name = env.get("name")
            if isinstance(name, str) and not is_unknown(name) and not _ENV_NAME.match(name):
                problems.append(f"{where}.env: {name!r} is not a valid environment variable name")
            source = env.get("valueSource")
            if env.get("value") not in (None, "") and source is not None:
                problems.append(f"{where}.env {name}: only one of value and value_source")
            ref = (source or {}).get("secretKeyRef") if isinstance(source, Mapping) else None
            if isinstance(source, Mapping) and ref is not None and not ref.get("secret"):
                problems.append(f"{where}.env {name}: secret_key_ref.secret is required")
        limits = (container.get("resources") or {}).get("limits") or {}
        problems += [f"{where}.resources.limits: {p}" for p in _limit_problems(limits)]
    return problems


def _limit_problems(limits: Mapping[str, Any]) -> list[str]:
    cpu, memory = limits.get("cpu"), limits.get("memory")
    if is_unknown(cpu) or is_unknown(memory):
        return []
    if cpu is not None and cpu not in _CPU_MEMORY:
        return [f"cpu {cpu!r}: worker pools take 1, 2, 4, 6 or 8 CPUs"]
    if memory is None:
        return []
    size = memory_bytes(str(memory))
    if size is None:
        return [f"memory {memory!r} is not a quantity"]
    low, high = _CPU_MEMORY[cpu or "1"]
    if not low <= size <= high:
        return [f"memory {memory} is outside {low // _MIB}Mi-{high // _MIB}Mi for {cpu or 1} CPU"]
    return []


def _revision(rid: str, name: str, generation: int) -> str:
    suffix = "".join(secrets.choice(string.ascii_lowercase) for _ in range(3))
    return f"{rid}/revisions/{name}-{generation:05d}-{suffix}"


def _may_read(ctx: Context, project: str, secret: str, member: str) -> bool:
    """Whether ``member`` holds a visible reader role on ``secret`` or its project."""
    grants = [
        r
        for r in ctx.store.resources(SECRET_IAM_MEMBER)
        if r["meta"].get("secret") == secret and r["properties"].get("member") == member
    ]
    grants += [
        r
        for r in ctx.store.resources(PROJECT_IAM_MEMBER)
        if r["properties"].get("project") == project and r["properties"].get("member") == member
    ]
    return any(r["properties"].get("role") in _READERS and not young(ctx, r) for r in grants)


# ------------------------------------------------------------- what tests ask
def container(cloud: Any, name: str, *, index: int = 0) -> dict[str, Any]:
    """The container spec a worker pool named ``name`` runs (its template's ``index``-th)."""
    (record,) = [r for r in cloud.resources(WORKER_POOL) if r["properties"]["name"] == name]
    return dict(record["properties"]["template"]["containers"][index])


def resolved_env(cloud: Any, name: str, *, index: int = 0) -> dict[str, str]:
    """The environment the container gets: plain values, and each secret reference read from
    Secret Manager as Cloud Run reads it."""
    (record,) = [r for r in cloud.resources(WORKER_POOL) if r["properties"]["name"] == name]
    project = record["properties"]["project"]
    env: dict[str, str] = {}
    for item in _envs(record["properties"]["template"]["containers"][index]):
        ref = (item.get("valueSource") or {}).get("secretKeyRef")
        if ref:
            env[item["name"]] = access(cloud, ref["secret"], str(ref.get("version")), project)
        else:
            env[item["name"]] = item.get("value") or ""
    return env
