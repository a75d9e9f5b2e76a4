"""Secret Manager in the fake ``gcp`` provider: secrets, their versions, and grants on them.

As pulumi-gcp and the Secret Manager API have them (magic-modules
``mmv1/products/secretmanager/{Secret,SecretVersion}.yaml``):

- a secret's id is ``projects/<project>/secrets/<secret id>``, its ``name`` the API's
  ``projects/<project number>/secrets/<secret id>``; ids are unique per project (409);
  ``replication`` is exactly one of ``auto`` and ``userManaged`` and cannot change;
- a version's id and ``name`` are ``projects/<number>/secrets/<id>/versions/<n>``: GCP numbers
  versions 1, 2, ... and never reuses a number, even once a version is destroyed (so a killed
  run's version cannot be found again by id); its data cannot change (a new value is a new
  version), and destroying it leaves a ``DESTROYED`` tombstone that reads as gone;
- deleting a secret deletes its versions and the IAM policy on it.

The payload is held as the API returns it from ``versions.access``: base64 in
``payload.data`` (``meta.payload``), never in ``properties`` (the cloud's secret store is the
one place that holds it). Tests resolve a reference with :func:`access`.

The API must be on: every call in a project without ``secretmanager.googleapis.com`` enabled
fails with the API's 403.
"""

from __future__ import annotations

import base64
import re
import time
from collections.abc import Mapping
from typing import Any

from tests.fakecloud.gcp_base import (
    NOT_FOUND,
    SECRET,
    SECRET_IAM_MEMBER,
    SECRET_VERSION,
    SERVICE,
    GcpResource,
    IamMember,
    api_error,
    known_str,
    now_rfc3339,
    project_number,
    project_of,
)
from tests.fakecloud.provider import CloudError, Context, names

API = "secretmanager.googleapis.com"
_SECRET_ID = re.compile(r"^[a-zA-Z0-9_-]{1,255}$")
_SECRET_REF = re.compile(r"^projects/(?P<project>[^/]+)/secrets/(?P<secret>[^/]+)$")
_REGION = re.compile(r"^[a-z]+-[a-z]+\d+$")
MAX_PAYLOAD = 64 * 1024  # "Must be no larger than 64KiB."


def require_api(ctx: Context, project: str, api: str, title: str, context: str) -> None:
    """Fail as a Google API does in a project where it was never enabled (or was disabled)."""
    record = ctx.store.get(SERVICE, f"{project}/{api}")
    if record is not None and record["meta"].get("state") == "ENABLED":
        return
    number = project_number(project)
    raise api_error(
        context,
        403,
        f"{title} has not been used in project {number} before or it is disabled. Enable it "
        f"by visiting https://console.developers.google.com/apis/api/{api}/overview?project="
        f"{number} then retry. If you enabled this API recently, wait a few minutes for the "
        "action to propagate to our systems and retry.",
        "accessNotConfigured",
    )


def secret_id_of(ref: str, project: str) -> str:
    """The full id (``projects/<p>/secrets/<s>``) of a reference in any form the provider
    takes: that, ``<p>/<s>``, or the bare secret id (in ``project``)."""
    if ref.startswith("projects/"):
        return ref
    parts = ref.split("/")
    if len(parts) == 2:
        return f"projects/{parts[0]}/secrets/{parts[1]}"
    return f"projects/{project}/secrets/{ref}"


def _api_name(rid: str) -> str:
    """A secret's API name, with the project number the API answers with."""
    match = _SECRET_REF.match(rid)
    if not match:
        return rid
    return f"projects/{project_number(match['project'])}/secrets/{match['secret']}"


def _not_found(rid: str) -> str:
    return f"Secret [{_api_name(rid)}] not found or has no versions."


class SecretResource(GcpResource):
    """``gcp.secretmanager.Secret``."""

    token = SECRET
    kind = "Secret"
    inputs = names(
        "annotations deletionPolicy deletionProtection expireTime labels project replication "
        "rotation secretId secretType tags topics ttl versionAliases versionDestroyTtl"
    )
    force_new = names("project secretId replication secretType")
    optional_computed = names("project deletionPolicy expireTime")
    defaults = {"deletionProtection": False}
    computed = names("createTime effectiveAnnotations effectiveLabels id name pulumiLabels")
    secret_outputs = names("effectiveLabels pulumiLabels")

    def validate(self, ctx: Context, inputs: Mapping[str, Any]) -> list[tuple[str, str]]:
        """``replication`` is required, with exactly one of ``auto``/``userManaged``; user
        managed replicas name locations."""
        replication = inputs.get("replication")
        if replication is None:
            return [("replication", "Missing required argument")]
        if not isinstance(replication, Mapping):
            return []
        chosen = [k for k in ("auto", "userManaged") if replication.get(k) is not None]
        if len(chosen) != 1:
            return [
                (
                    "replication",
                    '"replication.0.auto": only one of `replication.0.auto,'
                    "replication.0.user_managed` can be specified",
                )
            ]
        if chosen == ["userManaged"]:
            replicas = (replication["userManaged"] or {}).get("replicas")
            if isinstance(replicas, list) and not replicas:
                return [
                    (
                        "replication",
                        "Attribute replication.0.user_managed.0.replicas requires 1 item "
                        "minimum, but config has only 0 declared",
                    )
                ]
        return []

    def create(self, ctx: Context, inputs: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
        """projects.secrets.create: the API on, a valid and free id, replicas in regions."""
        project = project_of(ctx, inputs)
        secret_id = inputs["secretId"]
        fail = "Error creating Secret"
        require_api(ctx, project, API, "Secret Manager API", fail)
        if not _SECRET_ID.match(secret_id):
            raise api_error(
                fail,
                400,
                f"The provided Secret ID [{secret_id}] does not match the expected format "
                "[[a-zA-Z_0-9-]{1,255}]",
                "badRequest",
            )
        for replica in (inputs["replication"].get("userManaged") or {}).get("replicas") or []:
            location = replica.get("location", "")
            if not _REGION.match(location):
                raise api_error(
                    fail, 400, f"Location [{location}] is not a valid location.", "badRequest"
                )
        rid = f"projects/{project}/secrets/{secret_id}"
        with ctx.store.transaction():
            if ctx.store.get(self.token, rid) is not None:
                raise api_error(
                    fail, 409, f"Secret [{_api_name(rid)}] already exists.", "alreadyExists"
                )
            labels = dict(inputs.get("labels") or {})
            outputs = {
                **self.plan(ctx, inputs),
                "project": project,
                "id": rid,
                "name": _api_name(rid),
                "createTime": now_rfc3339(),
                "effectiveAnnotations": dict(inputs.get("annotations") or {}),
                "effectiveLabels": {**labels, "goog-pulumi-provisioned": "true"},
                "pulumiLabels": {**labels, "goog-pulumi-provisioned": "true"},
            }
            self.store_record(ctx, rid, outputs, meta={"versions": 0})
        return rid, outputs

    def delete(self, ctx: Context, rid: str, olds: Mapping[str, Any]) -> None:
        """The provider refuses while ``deletion_protection`` is on, then deletes."""
        if olds.get("deletionProtection"):
            raise CloudError(
                "cannot destroy secret without setting deletion_protection=false and running "
                "`terraform apply`"
            )
        super().delete(ctx, rid, olds)

    def destroy(self, ctx: Context, rid: str, olds: Mapping[str, Any]) -> None:
        """Deleting a secret deletes its versions and the IAM policy on it."""
        with ctx.store.transaction():
            if not ctx.store.remove(self.token, rid):
                return
            for token in (SECRET_VERSION, SECRET_IAM_MEMBER):
                for record in ctx.store.resources(token):
                    if record["meta"].get("secret") == rid:
                        ctx.store.remove(token, record["id"])


class SecretVersionResource(GcpResource):
    """``gcp.secretmanager.SecretVersion``: one immutable value of a secret."""

    token = SECRET_VERSION
    kind = "SecretVersion"
    inputs = names(
        "deletionPolicy enabled isSecretDataBase64 project secret secretData secretDataWo "
        "secretDataWoVersion"
    )
    force_new = names("project secret secretData isSecretDataBase64 secretDataWoVersion")
    optional_computed = names("project deletionPolicy")
    defaults = {"enabled": True, "isSecretDataBase64": False}
    computed = names("createTime destroyTime id name version")
    secret_outputs = names("secretData secretDataWo")

    def validate(self, ctx: Context, inputs: Mapping[str, Any]) -> list[tuple[str, str]]:
        """A payload (one of the two data fields), no larger than 64 KiB."""
        data, write_only = inputs.get("secretData"), inputs.get("secretDataWo")
        if data is not None and write_only is not None:
            return [
                (
                    "secretData",
                    '"secret_data": conflicts with secret_data_wo',
                )
            ]
        if data is None and write_only is None:
            return [("secretData", "one of `secret_data,secret_data_wo` must be specified")]
        value = known_str(inputs, "secretData") or known_str(inputs, "secretDataWo") or ""
        if len(value.encode()) > MAX_PAYLOAD:
            return [("secretData", "The secret data must be no larger than 64KiB")]
        return []

    def create(self, ctx: Context, inputs: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
        """projects.secrets.addVersion: the next number of an existing secret."""
        project = project_of(ctx, inputs)
        rid_secret = secret_id_of(inputs["secret"], project)
        fail = "Error creating SecretVersion"
        require_api(ctx, project, API, "Secret Manager API", fail)
        data = inputs.get("secretData")
        if data is None:
            data = inputs.get("secretDataWo") or ""
        payload = (
            data if inputs.get("isSecretDataBase64") else base64.b64encode(data.encode()).decode()
        )
        with ctx.store.transaction():
            secret = ctx.store.get(SECRET, rid_secret)
            if secret is None:
                raise api_error(fail, 404, _not_found(rid_secret), "notFound")
            number = int(secret["meta"].get("versions", 0)) + 1
            secret["meta"]["versions"] = number
            ctx.store.save(secret)
            name = f"{_api_name(rid_secret)}/versions/{number}"
            enabled = inputs.get("enabled", True) is not False
            outputs = {
                **self.plan(ctx, inputs),
                "project": project,
                "secret": rid_secret,
                "id": name,
                "name": name,
                "version": str(number),
                "createTime": now_rfc3339(),
                "destroyTime": "",
                "enabled": enabled,
            }
            stored = {k: v for k, v in outputs.items() if k not in self.secret_outputs}
            meta = {
                "secret": rid_secret,
                "payload": payload,
                "state": "ENABLED" if enabled else "DISABLED",
            }
            self.store_record(ctx, name, stored, meta=meta)
        return name, outputs

    def read(self, ctx: Context, rid: str, olds: Mapping[str, Any]) -> dict[str, Any] | None:
        """The version, its data read back through ``access`` (what the provider does); a
        destroyed version reads as gone."""
        record = ctx.store.get(self.token, rid)
        if record is None:
            return None
        outputs = dict(record["properties"])
        if "secretData" in olds:
            payload = base64.b64decode(record["meta"]["payload"])
            outputs["secretData"] = (
                record["meta"]["payload"] if olds.get("isSecretDataBase64") else payload.decode()
            )
        return outputs

    def update(
        self, ctx: Context, rid: str, olds: Mapping[str, Any], news: Mapping[str, Any]
    ) -> dict[str, Any]:
        """Only ``enabled`` (the version's state) and the deletion policy change in place; the
        data never does (a new value is a new version)."""
        with ctx.store.transaction():
            record = ctx.store.get(self.token, rid)
            if record is None:
                raise CloudError(self.missing_error("update", rid))
            enabled = news.get("enabled", True) is not False
            record["properties"].update(
                enabled=enabled, deletionPolicy=news.get("deletionPolicy") or "DELETE"
            )
            record["meta"]["state"] = "ENABLED" if enabled else "DISABLED"
            record["updatedAt"] = time.time()
            ctx.store.save(record)
            outputs = dict(record["properties"])
        for key in self.secret_outputs & news.keys():
            outputs[key] = news[key]
        return outputs

    def delete(self, ctx: Context, rid: str, olds: Mapping[str, Any]) -> None:
        """``DELETE`` destroys, ``DISABLE`` disables, ``ABANDON`` leaves it."""
        policy = olds.get("deletionPolicy") or "DELETE"
        if policy == "ABANDON":
            return
        with ctx.store.transaction():
            record = ctx.store.get(self.token, rid)
            if record is None:
                return
            if policy == "DISABLE":
                record["meta"]["state"] = "DISABLED"
                record["properties"]["enabled"] = False
            else:  # projects.secrets.versions.destroy: the payload is gone for good
                record["meta"].update(state="DESTROYED", payload="")
                record["properties"].update(enabled=False, destroyTime=now_rfc3339())
                record.update(deleted=True, deletedAt=time.time())
            ctx.store.save(record)


class SecretIamMember(IamMember):
    """``gcp.secretmanager.SecretIamMember``: a grant on one secret's own policy."""

    token = SECRET_IAM_MEMBER
    inputs = names("condition member project role secretId")
    force_new = inputs
    optional_computed = names("project")

    def equal(self, key: str, old: Any, new: Any) -> bool:
        """A short ``secretId`` matches its expanded output."""
        if key == "secretId" and isinstance(old, str) and isinstance(new, str):
            return old == new or old.endswith(f"/secrets/{new.rsplit('/', 1)[-1]}")
        return old == new

    def target(self, ctx: Context, inputs: Mapping[str, Any]) -> tuple[str, str, dict[str, Any]]:
        """The secret must exist; ``secretId`` comes back in full form."""
        project = project_of(ctx, inputs)
        rid = secret_id_of(inputs["secretId"], project)
        describe = f'secretmanager secret "{rid}"'
        if ctx.store.get(SECRET, rid) is None:
            raise api_error(
                f"Error retrieving IAM policy for {describe}", 404, NOT_FOUND, "notFound"
            )
        return rid, describe, {"secretId": rid, "project": rid.split("/")[1]}

    def refs(self, resource: str) -> dict[str, Any]:
        """Deleted with the secret."""
        return {"secret": resource}


# ------------------------------------------------------------- what tests ask
def access(cloud: Any, secret: str, version: str, project: str) -> str:
    """A payload as ``gcloud secrets versions access VERSION --secret SECRET`` prints it.

    ``cloud`` is a FakeCloud; ``secret`` a short id or ``projects/<p>/secrets/<id>``;
    ``version`` a number or ``latest`` (the newest enabled version). Raises ``LookupError``
    when there is no such enabled version.
    """
    rid = secret if secret.startswith("projects/") else f"projects/{project}/secrets/{secret}"
    enabled = [
        r
        for r in cloud.resources(SECRET_VERSION)
        if r["meta"].get("secret") == rid and r["meta"].get("state") == "ENABLED"
    ]
    if version != "latest":
        enabled = [r for r in enabled if r["properties"]["version"] == version]
    if not enabled:
        raise LookupError(f"no enabled version {version} of {rid}")
    newest = max(enabled, key=lambda r: int(r["properties"]["version"]))
    return base64.b64decode(newest["meta"]["payload"]).decode()


def version_state(ctx: Context, secret_rid: str, version: str) -> str | None:
    """``ENABLED``, ``DISABLED``, ``DESTROYED`` or ``None`` (no such version); ``latest`` is
    the newest enabled one."""
    versions = [
        r
        for r in ctx.store.resources(SECRET_VERSION, include_deleted=True)
        if r["meta"].get("secret") == secret_rid
    ]
    if version == "latest":
        return "ENABLED" if any(r["meta"].get("state") == "ENABLED" for r in versions) else None
    for record in versions:
        if record["properties"]["version"] == version:
            return record["meta"].get("state")
    return None


def version_name(secret_rid: str, version: str) -> str:
    """The API name of a version, as errors print it."""
    return f"{_api_name(secret_rid)}/versions/{version}"
