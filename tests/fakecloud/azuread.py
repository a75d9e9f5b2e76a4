"""Fake ``azuread`` provider plugin (pulumi-azuread 6.11.1) for the Entra ID objects provision uses.

Run by ``tests/fakecloud/bin/pulumi-resource-azuread`` as ``python -m tests.fakecloud.azuread``.

pulumi-azuread bridges terraform-provider-azuread 3.x (SDKv2), so this fake keeps the generic
framework's bridged semantics (Check fills ``__defaults``, Diff compares old outputs with new
inputs, replacements are create-before-delete). Ids and texts follow that provider and
Microsoft Graph: an application's id is ``/applications/<object id>``; a service principal's
id is its object id; a password's id is ``<application object id>/password/<key id>`` and its
``value`` (a secret) is returned once, at creation, as Graph does.

This module is also the fake *directory* (the Entra ID tenant) that the azure-native fake
asks about principals: :func:`tenant_id`, :func:`caller`, :func:`find_principal`.

Env variables shared with the azure-native fake (see README.md for the generic ones):

* ``FAKECLOUD_AZURE_NO_CREDENTIALS=1``: no ``az login`` and no ``ARM_*`` credentials: the
  provider fails as pulumi-azuread does;
* ``ARM_TENANT_ID`` (or ``azuread:tenantId``): the tenant; otherwise a fixed fake tenant, the
  one an ``az login`` session would use;
* ``ARM_CLIENT_ID`` with ``ARM_CLIENT_SECRET``: the caller is that service principal instead
  of the signed-in user;
* ``FAKECLOUD_AZURE_CALLER_OBJECT_ID``: the signed-in user's object id;
* ``FAKECLOUD_NOW``: what Entra ID's clock reads (ISO 8601), for tests that look at a pool
  days later (``PROVISION_NOW``): a password made then starts then.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import string
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from tests.fakecloud.provider import (
    Cloud,
    CloudError,
    Context,
    ResourceType,
    is_unknown,
    names,
    serve,
)

NAME = "azuread"
VERSION = "6.11.1"  # pulumi_azuread/pulumi-plugin.json

APPLICATION = "azuread:index/application:Application"
SERVICE_PRINCIPAL = "azuread:index/servicePrincipal:ServicePrincipal"
APPLICATION_PASSWORD = "azuread:index/applicationPassword:ApplicationPassword"
GET_CLIENT_CONFIG = "azuread:index/getClientConfig:getClientConfig"

# The azure-native identity type: a user-assigned identity is a service principal too.
USER_ASSIGNED_IDENTITY = "azure-native:managedidentity:UserAssignedIdentity"

NO_CREDENTIALS_ENV = "FAKECLOUD_AZURE_NO_CREDENTIALS"
CALLER_ENV = "FAKECLOUD_AZURE_CALLER_OBJECT_ID"
NOW_ENV = "FAKECLOUD_NOW"

_NAMESPACE = uuid.UUID("6f2b0e55-1f0c-5c1e-a1d4-0fa4ec10d000")
DEFAULT_TENANT_ID = str(uuid.uuid5(_NAMESPACE, "tenant"))
"""The tenant of the fake ``az login`` session when no ARM_TENANT_ID is set."""
AZURE_CLI_CLIENT_ID = "04b07795-8ddb-461a-bbee-02f9e1bf7b46"
"""The Azure CLI's first-party app id: the client id of an ``az login`` session."""
PASSWORD_DEFAULT_LIFETIME = timedelta(days=730)  # Graph's addPassword default: two years
PERSONAL_ACCOUNT_AUDIENCES = ("AzureADandPersonalMicrosoftAccount", "PersonalMicrosoftAccount")
PERSONAL_ACCOUNT_PASSWORDS_MAX = 2
"""Apps that personal Microsoft accounts sign in to hold at most two client secrets; single- and
multi-tenant ones have no such limit, only about 1000 items across all of an app's collections
(MicrosoftDocs/entra-docs docs/identity-platform/supported-accounts-validation.md), which one
pool's rotations never come near. Graph's refusal is Azure/azure-cli#12946's."""

# pulumi-azuread's CheckConfig without usable credentials (a machine that never ran az login),
# as bridged Azure providers print it (pulumi/pulumi-azure#3600, pulumi/pulumi-azuread#2430).
NO_CREDENTIALS_TEXT = (
    "failed to load application credentials:\n"
    "Details: could not configure AzureCli Authorizer: obtaining tenant ID: running Azure CLI: "
    "exit status 1: ERROR: Please run 'az login' to setup account.\n"
    "\tPlease make sure you have signed in via 'az login' or configured another authentication "
    "method.\n"
    "\tSee https://www.pulumi.com/registry/packages/azuread/installation-configuration/ for "
    "more information."
)

_GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_APPLICATION_ID = re.compile(r"^/applications/([0-9a-fA-F-]{36})$")
_SIGN_IN_AUDIENCES = (
    "AzureADMyOrg",
    "AzureADMultipleOrgs",
    "AzureADandPersonalMicrosoftAccount",
    "PersonalMicrosoftAccount",
)
_VERBS = {"create": "creating", "update": "updating", "delete": "deleting", "read": "reading"}
_DATE = "%Y-%m-%dT%H:%M:%SZ"  # Go's time.RFC3339 of a UTC time, as the provider reads dates back


# ------------------------------------------------------------------- the directory
def truthy(value: str | None) -> bool:
    """An env flag: ``1``, ``true``, ``yes``, ``on``."""
    return (value or "").strip().lower() in ("1", "true", "yes", "on")


def is_guid(value: Any) -> bool:
    """A GUID in its 8-4-4-4-12 form."""
    return isinstance(value, str) and bool(_GUID.match(value))


def new_guid() -> str:
    """A fresh random GUID, lowercase as Entra ID and ARM hand them out."""
    return str(uuid.uuid4())


def _setting(ctx: Context, config_key: str, env_key: str) -> str:
    value = ctx.config.get(config_key)
    if isinstance(value, str) and value:
        return value
    return ctx.env.get(env_key, "")


def tenant_id(ctx: Context) -> str:
    """The provider's tenant: ``tenantId`` config, ARM_TENANT_ID, else the az-login tenant."""
    return (_setting(ctx, "tenantId", "ARM_TENANT_ID") or DEFAULT_TENANT_ID).lower()


@dataclass(frozen=True)
class Caller:
    """Who the provider runs as: the signed-in user, or a service principal (ARM_CLIENT_*)."""

    object_id: str
    client_id: str
    principal_type: str  # "User" or "ServicePrincipal"


def caller(ctx: Context) -> Caller:
    """The identity running the providers (``az login`` user unless ARM_CLIENT_* are set)."""
    tenant = tenant_id(ctx)
    client_id = _setting(ctx, "clientId", "ARM_CLIENT_ID")
    if client_id and _setting(ctx, "clientSecret", "ARM_CLIENT_SECRET"):
        oid = str(uuid.uuid5(_NAMESPACE, f"{tenant}|sp|{client_id.lower()}"))
        return Caller(oid, client_id.lower(), "ServicePrincipal")
    oid = ctx.env.get(CALLER_ENV) or str(uuid.uuid5(_NAMESPACE, f"{tenant}|user"))
    return Caller(oid.lower(), AZURE_CLI_CLIENT_ID, "User")


@dataclass(frozen=True)
class Principal:
    """A directory object a role can be assigned to."""

    object_id: str
    principal_type: str  # ARM's principalType: User, Group, ServicePrincipal...
    created_at: float
    """When the directory created it (0: long ago); replication delays start here."""


def find_principal(ctx: Context, object_id: str) -> Principal | None:
    """The directory object ``object_id``: the caller, a service principal or a managed identity.

    A user-assigned identity is a service principal of type ManagedIdentity in the directory;
    ARM's principalType for it is ``ServicePrincipal``.
    """
    oid, tenant = object_id.lower(), tenant_id(ctx)
    me = caller(ctx)
    if oid == me.object_id:
        return Principal(oid, me.principal_type, 0.0)
    for token, key in ((SERVICE_PRINCIPAL, "objectId"), (USER_ASSIGNED_IDENTITY, "principalId")):
        for record in ctx.store.resources(token):
            if (
                str(record["properties"].get(key, "")).lower() == oid
                and record["meta"].get("tenant", tenant) == tenant
            ):
                return Principal(oid, "ServicePrincipal", record["createdAt"])
    return None


def find_application(ctx: Context, *, object_id: str = "", client_id: str = "") -> dict | None:
    """A live application record by object id or by client (app) id, case-insensitively."""
    for record in ctx.store.resources(APPLICATION):
        props = record["properties"]
        if object_id and str(props.get("objectId", "")).lower() == object_id.lower():
            return record
        if client_id and str(props.get("clientId", "")).lower() == client_id.lower():
            return record
    return None


def graph_error(context: str, status: int, code: str, message: str) -> CloudError:
    """A failed Microsoft Graph call as terraform-provider-azuread reports it."""
    reason = {400: "Bad Request", 404: "Not Found", 409: "Conflict", 503: "Service Unavailable"}
    return CloudError(
        f"{context}: unexpected status {status} ({status} {reason.get(status, '')}) with "
        f"error: {code}: {message}"
    )


def import_as_exists(resource: str, rid: str) -> CloudError:
    """tf.ImportAsExistsDiag, as the bridge prints a diagnostic (summary: detail)."""
    return CloudError(
        f'A resource with the ID "{rid}" already exists: To be managed via Terraform, this '
        "resource needs to be imported into the State. Please see the resource documentation "
        f'for "{resource}" for more information.'
    )


def _known_str(inputs: Mapping[str, Any], key: str) -> str | None:
    value = inputs.get(key)
    return value if isinstance(value, str) and not is_unknown(value) else None


def _known_list(inputs: Mapping[str, Any], key: str) -> list[Any]:
    value = inputs.get(key)
    return [v for v in value if not is_unknown(v)] if isinstance(value, list) else []


def clock(ctx: Context) -> datetime:
    """Entra ID's now: ``FAKECLOUD_NOW`` when a test moves it, else the real time."""
    fixed = ctx.env.get(NOW_ENV, "").strip()
    if fixed:
        moment = parse_rfc3339(fixed)
        if moment is None:
            raise CloudError(f"fakecloud: {NOW_ENV}={fixed!r} is not an RFC 3339 time")
        return moment.astimezone(UTC)
    return datetime.now(UTC)


def value_digest(value: str) -> str:
    """The SHA-256 of a secret's value: kept in the fake's metadata (never the value), so tests
    can tell which password a block holds; Graph itself keeps only a 3-character hint."""
    return hashlib.sha256(value.encode()).hexdigest()


def rfc3339(moment: datetime) -> str:
    """``2027-01-02T03:04:05Z``: how the provider reads a credential's dates back."""
    return moment.astimezone(UTC).strftime(_DATE)


def parse_rfc3339(text: str) -> datetime | None:
    """An RFC 3339 time (``Z`` or an offset, fractional seconds allowed), or None."""
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is None or "T" not in text.upper():
        return None
    return moment


_DURATION = re.compile(r"(\d+(?:\.\d+)?)(h|m|s|ms)")


def parse_duration(text: str) -> timedelta | None:
    """Go's time.ParseDuration for the units end_date_relative uses (``240h``, ``2400h30m``)."""
    if not text or _DURATION.sub("", text):
        return None
    units = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}
    return timedelta(seconds=sum(float(n) * units[u] for n, u in _DURATION.findall(text)))


def client_secret() -> str:
    """A client secret shaped like Entra ID's: 40 chars, ``Q~`` after a 3-char hint and a digit."""
    alphabet = string.ascii_letters + string.digits + "~_.-"
    head = "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(3))
    tail = "".join(secrets.choice(alphabet) for _ in range(34))
    return f"{head}{secrets.randbelow(10)}Q~{tail}"


# ------------------------------------------------------------------- base type
class AzureAdResource(ResourceType):
    """terraform-provider-azuread conventions: Graph error texts, set-valued inputs."""

    sets: frozenset[str] = frozenset()
    """Inputs that are sets in the schema: order never makes a diff."""

    def equal(self, key: str, old: Any, new: Any) -> bool:
        """Sets compare as sets."""
        if key in self.sets and isinstance(old, list) and isinstance(new, list):
            return sorted(map(str, old)) == sorted(map(str, new))
        return old == new

    def missing_error(self, op: str, rid: str) -> str:
        """Graph's 404 for an object that is gone."""
        return str(
            graph_error(
                f"{_VERBS[op].capitalize()} {self.kind} {rid!r}",
                404,
                "Request_ResourceNotFound",
                f"Resource '{rid.rsplit('/', 1)[-1]}' does not exist or one of its queried "
                "reference-property objects are not present.",
            )
        )

    def fault_error(self, op: str, ident: str) -> str:
        """An injected failure reads like a Graph outage."""
        return str(
            graph_error(
                f"Could not {op} {self.kind} {ident!r}",
                503,
                "ServiceUnavailable",
                "Service unavailable, please retry later.",
            )
        )

    def validate_uuids(self, inputs: Mapping[str, Any], key: str, tf_key: str) -> list:
        """validation.IsUUID on each element of a list input (``owners``)."""
        return [
            (key, f'expected "{tf_key}.{i}" to be a valid UUID, got {value}')
            for i, value in enumerate(_known_list(inputs, key))
            if not is_guid(value)
        ]


# ------------------------------------------------------------------ applications
class Application(AzureAdResource):
    """An app registration: object id, client (app) id, and its password credentials.

    Display names are not unique in Entra ID; ``preventDuplicateNames`` makes them so.
    Deleting an application deletes its passwords and its service principal, as Entra does.
    """

    token = APPLICATION
    kind = "application"
    inputs = names(
        "api appRoles description deviceOnlyAuthEnabled displayName fallbackPublicClientEnabled "
        "featureTags groupMembershipClaims identifierUris logoImage marketingUrl notes "
        "oauth2PostResponseRequired optionalClaims owners password preventDuplicateNames "
        "privacyStatementUrl publicClient requiredResourceAccesses serviceManagementReference "
        "signInAudience singlePageApplication supportUrl tags templateId termsOfServiceUrl web"
    )
    force_new = names("templateId")
    optional_computed = names("featureTags tags api web publicClient singlePageApplication")
    defaults = {"signInAudience": "AzureADMyOrg", "preventDuplicateNames": False}
    computed = names(
        "id objectId clientId appRoleIds oauth2PermissionScopeIds disabledByMicrosoft "
        "logoUrl publisherDomain"
    )
    sets = names("owners tags identifierUris groupMembershipClaims")

    def validate(self, ctx: Context, inputs: Mapping[str, Any]) -> list[tuple[str, str]]:
        """The schema's checks on the inputs provision sets."""
        problems = []
        display = _known_str(inputs, "displayName")
        if display is not None and not display.strip():
            problems.append(("displayName", "expected display_name to not be an empty string"))
        audience = _known_str(inputs, "signInAudience")
        if audience is not None and audience not in _SIGN_IN_AUDIENCES:
            listed = " ".join(f'"{a}"' for a in _SIGN_IN_AUDIENCES)
            problems.append(
                (
                    "signInAudience",
                    f"expected sign_in_audience to be one of [{listed}], got {audience}",
                )
            )
        problems += self.validate_uuids(inputs, "owners", "owners")
        if inputs.get("tags") and inputs.get("featureTags"):
            problems.append(("tags", '"tags": conflicts with feature_tags'))
        return problems

    def create(self, ctx: Context, inputs: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
        """POST /applications; ``preventDuplicateNames`` looks for the display name first."""
        display = inputs["displayName"]
        with ctx.store.transaction():
            if inputs.get("preventDuplicateNames"):
                for record in ctx.store.resources(APPLICATION):
                    if record["properties"].get("displayName", "").lower() == display.lower():
                        raise CloudError(
                            f'An existing "azuread_application" with name "{display}" (ID: '
                            f'"{record["properties"]["objectId"]}") was found and '
                            "`prevent_duplicate_names` was specified: To be managed via "
                            "Terraform, this resource needs to be imported into the State. "
                            'Please see the resource documentation for "azuread_application" '
                            "for more information."
                        )
            object_id, client_id = new_guid(), new_guid()
            rid = f"/applications/{object_id}"
            outputs = {
                **self.plan(ctx, inputs),
                "id": rid,
                "objectId": object_id,
                "clientId": client_id,
                "tags": sorted(inputs.get("tags") or []),
                "owners": sorted(inputs.get("owners") or []),
                "description": inputs.get("description") or "",
                "appRoleIds": {},
                "oauth2PermissionScopeIds": {},
                "disabledByMicrosoft": "",
                "logoUrl": "",
                "publisherDomain": "fakecloud.onmicrosoft.com",
                "featureTags": inputs.get("featureTags")
                or [
                    {
                        "customSingleSignOn": False,
                        "enterprise": False,
                        "gallery": False,
                        "hide": False,
                    }
                ],
            }
            self.store_record(ctx, rid, outputs, meta={"tenant": tenant_id(ctx)})
        return rid, outputs

    def destroy_related(self, ctx: Context, object_id: str, client_id: str) -> None:
        """An application takes its passwords and its (home tenant) service principal along."""
        for record in ctx.store.resources(APPLICATION_PASSWORD):
            if record["meta"].get("application", "").lower() == object_id.lower():
                ctx.store.remove(APPLICATION_PASSWORD, record["id"])
        for record in ctx.store.resources(SERVICE_PRINCIPAL):
            if str(record["properties"].get("clientId", "")).lower() == client_id.lower():
                ctx.store.remove(SERVICE_PRINCIPAL, record["id"])

    def delete(self, ctx: Context, rid: str, olds: Mapping[str, Any]) -> None:
        """DELETE /applications/{id} (gone already is fine)."""
        with ctx.store.transaction():
            record = ctx.store.get(self.token, rid)
            if record is None:
                return
            ctx.store.remove(self.token, rid)
            props = record["properties"]
            self.destroy_related(ctx, props["objectId"], props["clientId"])


class ServicePrincipal(AzureAdResource):
    """An app's service principal: one per app (a second one must be imported or adopted)."""

    token = SERVICE_PRINCIPAL
    kind = "service principal"
    inputs = names(
        "accountEnabled alternativeNames appRoleAssignmentRequired clientId description "
        "featureTags features loginUrl notes notificationEmailAddresses owners "
        "preferredSingleSignOnMode samlSingleSignOn tags useExisting"
    )
    force_new = names("clientId")
    optional_computed = names("featureTags features tags")
    defaults = {"accountEnabled": True}
    computed = names(
        "id objectId displayName applicationTenantId appRoleIds appRoles "
        "oauth2PermissionScopeIds oauth2PermissionScopes redirectUris servicePrincipalNames "
        "signInAudience type homepageUrl logoutUrl samlMetadataUrl"
    )
    sets = names("owners tags alternativeNames notificationEmailAddresses")

    def validate(self, ctx: Context, inputs: Mapping[str, Any]) -> list[tuple[str, str]]:
        """``client_id`` and ``owners`` are UUIDs."""
        problems = self.validate_uuids(inputs, "owners", "owners")
        client_id = _known_str(inputs, "clientId")
        if client_id is not None and not is_guid(client_id):
            problems.append(
                ("clientId", f'expected "client_id" to be a valid UUID, got {client_id}')
            )
        return problems

    def create(self, ctx: Context, inputs: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
        """List by appId first (an existing one is adopted only with ``useExisting``)."""
        client_id = inputs["clientId"]
        with ctx.store.transaction():
            for record in ctx.store.resources(SERVICE_PRINCIPAL):
                if str(record["properties"].get("clientId", "")).lower() == client_id.lower():
                    if not inputs.get("useExisting"):
                        raise import_as_exists("azuread_service_principal", record["id"])
                    adopted = {**record["properties"], **self.plan(ctx, inputs)}
                    return record["id"], adopted
            app = find_application(ctx, client_id=client_id)
            if app is None:
                raise graph_error(
                    "Could not create service principal",
                    400,
                    "Request_BadRequest",
                    f"The appId '{client_id}' of the service principal does not reference a "
                    "valid application object.",
                )
            object_id = new_guid()
            outputs = {
                **self.plan(ctx, inputs),
                "id": object_id,
                "objectId": object_id,
                "clientId": client_id,
                "displayName": app["properties"].get("displayName", ""),
                "applicationTenantId": tenant_id(ctx),
                "signInAudience": app["properties"].get("signInAudience", "AzureADMyOrg"),
                "type": "Application",
                "tags": sorted(inputs.get("tags") or []),
                "owners": sorted(inputs.get("owners") or []),
                "description": inputs.get("description") or "",
                "appRoleIds": {},
                "appRoles": [],
                "oauth2PermissionScopeIds": {},
                "oauth2PermissionScopes": [],
                "redirectUris": [],
                "servicePrincipalNames": [],  # the provider leaves the app id out
                "homepageUrl": "",
                "logoutUrl": "",
                "samlMetadataUrl": "",
                "featureTags": inputs.get("featureTags")
                or [
                    {
                        "customSingleSignOn": False,
                        "enterprise": False,
                        "gallery": False,
                        "hide": False,
                    }
                ],
            }
            meta = {"application": app["properties"]["objectId"], "tenant": tenant_id(ctx)}
            self.store_record(ctx, object_id, outputs, meta=meta)
        return object_id, outputs


class ApplicationPassword(AzureAdResource):
    """A client secret of an application. Graph returns its value once, at creation.

    Every input forces a new password; dates are read back in RFC 3339 UTC seconds
    (``2027-01-02T03:04:05Z``), so an input written another way differs on every plan, as
    with the real provider.
    """

    token = APPLICATION_PASSWORD
    kind = "application password"
    inputs = names("applicationId displayName endDate endDateRelative rotateWhenChanged startDate")
    force_new = inputs
    optional_computed = names("displayName startDate endDate")
    computed = names("id keyId value displayName startDate endDate")
    secret_outputs = names("value")
    write_only = names("value")

    def validate(self, ctx: Context, inputs: Mapping[str, Any]) -> list[tuple[str, str]]:
        """IsRFC3339Time on the dates, ConflictsWith, the application id's form."""
        problems = []
        for key, tf_key in (("startDate", "start_date"), ("endDate", "end_date")):
            value = _known_str(inputs, key)
            if value is not None and parse_rfc3339(value) is None:
                problems.append(
                    (key, f'expected "{tf_key}" to be a valid RFC3339 date, got "{value}"')
                )
        if inputs.get("endDate") and inputs.get("endDateRelative"):
            problems.append(("endDate", '"end_date": conflicts with end_date_relative'))
        relative = _known_str(inputs, "endDateRelative")
        if relative is not None and parse_duration(relative) is None:
            problems.append(
                ("endDateRelative", f'time: invalid duration "{relative}" for end_date_relative')
            )
        app_id = _known_str(inputs, "applicationId")
        if app_id is not None and not _APPLICATION_ID.match(app_id):
            problems.append(
                (
                    "applicationId",
                    f'parsing "{app_id}": expected the application ID in the format '
                    '"/applications/{applicationId}"',
                )
            )
        return problems

    def create(self, ctx: Context, inputs: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
        """POST /applications/{id}/addPassword; the value is returned here and never again."""
        match = _APPLICATION_ID.match(inputs["applicationId"])
        object_id = match.group(1) if match else inputs["applicationId"]
        now = clock(ctx)
        start = parse_rfc3339(inputs["startDate"]) if inputs.get("startDate") else now
        if inputs.get("endDate"):
            end = parse_rfc3339(inputs["endDate"])
        elif inputs.get("endDateRelative"):
            end = start + parse_duration(inputs["endDateRelative"])  # type: ignore[operator]
        else:
            end = start + PASSWORD_DEFAULT_LIFETIME
        with ctx.store.transaction():
            app = find_application(ctx, object_id=object_id)
            if app is None:
                raise CloudError(f'Application with object ID "{object_id}" was not found')
            held = len(passwords_of(ctx.store, object_id))
            audience = app["properties"].get("signInAudience")
            if audience in PERSONAL_ACCOUNT_AUDIENCES and held >= PERSONAL_ACCOUNT_PASSWORDS_MAX:
                raise graph_error(
                    f'Adding password for application with object ID "{object_id}"',
                    400,
                    "TooManyAppPasswords",
                    f"Not allowed to add {held + 1} passwords. You can only add a maximum of "
                    f"{PERSONAL_ACCOUNT_PASSWORDS_MAX} passwords.",
                )
            if end <= start:  # type: ignore[operator]
                raise graph_error(
                    f"Adding password for application with object ID {object_id!r}",
                    400,
                    "InvalidKeyEndDate",
                    "Key credential end date is invalid.",
                )
            key_id = new_guid()
            value = client_secret()
            rid = f"{object_id}/password/{key_id}"
            outputs = {
                **self.plan(ctx, inputs),
                "id": rid,
                "keyId": key_id,
                "value": value,
                "displayName": inputs.get("displayName") or "",
                "startDate": rfc3339(start),  # type: ignore[arg-type]
                "endDate": rfc3339(end),  # type: ignore[arg-type]
            }
            meta = {
                "application": object_id,
                "hint": value[:3],
                "valueSha256": value_digest(value),
                "tenant": tenant_id(ctx),
            }
            self.store_record(ctx, rid, outputs, meta=meta)
        return rid, outputs


# ------------------------------------------------------------------- invokes
def get_client_config(ctx: Context, args: Mapping[str, Any]) -> dict[str, Any]:
    """``azuread.get_client_config``: the caller's client id, object id and tenant."""
    me, tenant = caller(ctx), tenant_id(ctx)
    return {
        "clientId": me.client_id,
        "objectId": me.object_id,
        "tenantId": tenant,
        "id": f"{tenant}-{me.client_id}-{me.object_id}",
    }


class AzureAd(Cloud):
    """The Entra ID fake: credentials are checked in CheckConfig, as bridged providers do."""

    def check_config(self, config: Mapping[str, Any], env: Mapping[str, str]) -> None:
        """``FAKECLOUD_AZURE_NO_CREDENTIALS=1`` plays a machine that never ran ``az login``."""
        if truthy(env.get(NO_CREDENTIALS_ENV)) and not (
            env.get("ARM_CLIENT_ID") and env.get("ARM_CLIENT_SECRET")
        ):
            raise CloudError(NO_CREDENTIALS_TEXT)


AZUREAD = AzureAd(
    NAME,
    VERSION,
    [Application(), ServicePrincipal(), ApplicationPassword()],
    {GET_CLIENT_CONFIG: get_client_config},
)


def passwords_of(cloud: Any, app_object_id: str) -> list[dict[str, Any]]:
    """The live passwords (client secrets) of one application, oldest first: what Graph's
    ``passwordCredentials`` of the app lists."""
    return sorted(
        (
            r
            for r in cloud.resources(APPLICATION_PASSWORD)
            if r["meta"].get("application", "").lower() == app_object_id.lower()
        ),
        key=lambda r: (r["properties"].get("startDate", ""), r["createdAt"]),
    )


def password_holding(cloud: Any, secret: str) -> dict[str, Any] | None:
    """The live password whose value is ``secret`` (a block's client secret), or None."""
    digest = value_digest(secret)
    found = [
        r for r in cloud.resources(APPLICATION_PASSWORD) if r["meta"].get("valueSha256") == digest
    ]
    return found[0] if found else None


def seed_application(cloud: Any, display_name: str, *, age_s: float = 3600.0) -> dict[str, Any]:
    """Put a hand-made app registration into ``cloud`` (a FakeCloud), for collision tests."""
    object_id, client_id = new_guid(), new_guid()
    rid = f"/applications/{object_id}"
    props = {
        "id": rid,
        "objectId": object_id,
        "clientId": client_id,
        "displayName": display_name,
        "signInAudience": "AzureADMyOrg",
        "tags": [],
        "owners": [],
    }
    return cloud.put(APPLICATION, rid, props, created_at=time.time() - age_s)


if __name__ == "__main__":
    serve(AZUREAD)
