"""Azure: Container Instances pools (push and worker) on ``stacks/azure_aci.py``; with
``--with-worker``, the worker itself in ACI as its own managed identity
(``stacks/azure_worker.py``), and no app registration or client secret at all.

Options come from the flags, then the pool's saved options, then the environment and the Azure
CLI's own profile file (read, never executed), then defaults. Pulumi and the Azure SDKs are
imported only when a program or a plan needs them, so ``--help`` stays fast.
"""

from __future__ import annotations

import difflib
import json
import re
import secrets
import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar

from pydantic import ValidationInfo, model_validator

from provision.errors import InvalidInputError
from provision.recovery import Untracked
from provision.registry import PoolType
from provision.targets import azure_naming as naming
from provision.targets.azure_errors import AZURE_ERROR_RULES, PROPAGATION_ERRORS
from provision.targets.base import (
    EXPIRY_WARNING_DAYS,
    ROTATED_AT_KEY,
    BlockSpec,
    CloudProgram,
    Credential,
    Grant,
    NextSteps,
    OptionPicker,
    Outputs,
    Pool,
    RotationOptions,
    WorkerOptions,
    WorkerProgram,
    bad_outputs,
    block_from_outputs,
    block_ref,
    generated_suffix,
    known_or_placeholder,
    require_block_fields,
    rotation_options,
    text_value,
    worker_options,
)

_DATE_FORMAT = "%Y-%m-%dT%H:%M:%SZ"  # RFC 3339 in UTC, as Entra ID takes it
APPLICATION_PASSWORD = "azuread:index/applicationPassword:ApplicationPassword"
PASSWORD_DISPLAY_NAME = "provision: Prefect credentials block"
"""The client secret's display name in ``stacks/azure_aci.py``: which secrets are the tool's."""
_APPLICATION_ID = re.compile(r"^/applications/([0-9a-fA-F-]{36})$")

PREFECT_IMAGES = ("prefecthq/prefect:", "docker.io/prefecthq/prefect:")
PREFECT_ENTRYPOINT = "/opt/prefect/entrypoint.sh"
"""What Prefect's images run first: it installs ``EXTRA_PIP_PACKAGES``, then runs the command.
An ACI container's ``command`` replaces the image's entrypoint, so prefect-azure's own worker
puts it back in front of every flow run's command (PrefectHQ/prefect
``src/integrations/prefect-azure/prefect_azure/workers/container_instance.py``,
``DEFAULT_CONTAINER_ENTRYPOINT`` and ``prepare_for_flow_run``); the worker's container does the
same."""


class AzureOptions(WorkerOptions, RotationOptions):
    """Validated options of an Azure pool; saved verbatim in the pool's stack config."""

    subscription: str
    location: str
    resource_group: str
    registry_name: str | None = None
    """``None``: derived from the pool and the stack's random suffix (see ``generated``)."""
    registry_sku: str = "Basic"
    secret_days: int = naming.DEFAULT_SECRET_DAYS
    tenant: str | None = None
    """The subscription's Entra ID tenant, when known: pins both providers to it, so the app
    registration lands in the tenant whose ARM grants it (``None``: the login's default)."""
    internal: ClassVar[frozenset[str]] = frozenset({"tenant"})

    @model_validator(mode="before")
    @classmethod
    def _values(cls, data: Any, info: ValidationInfo) -> Any:
        """The checks of each value, on new input (a record was checked when it was written).
        Before pydantic's own type checks, so a bad number gets the message naming its flag."""
        context = info.context or {}
        if "sources" in context and isinstance(data, dict):
            _validate(data, context["sources"])
        return data


def azure_config_dir(env: Mapping[str, str]) -> Path:
    """Where the Azure CLI keeps its files: ``$AZURE_CONFIG_DIR`` or ``~/.azure``."""
    if env.get("AZURE_CONFIG_DIR"):
        return Path(env["AZURE_CONFIG_DIR"]).expanduser()
    home = Path(env["HOME"]) if env.get("HOME") else Path.home()
    return home / ".azure"


def _cli_subscriptions(env: Mapping[str, str]) -> list[dict[str, Any]]:
    """The subscriptions of ``azureProfile.json`` (written with a UTF-8 byte-order mark).

    Unreadable or malformed files count as empty: they only supply defaults.
    """
    path = azure_config_dir(env) / "azureProfile.json"
    try:
        profile = json.loads(path.read_text(encoding="utf-8-sig"))
    except (OSError, UnicodeDecodeError, ValueError):
        return []
    subscriptions = profile.get("subscriptions") if isinstance(profile, dict) else None
    return (
        [s for s in subscriptions if isinstance(s, dict)] if isinstance(subscriptions, list) else []
    )


def cli_default_subscription(env: Mapping[str, str]) -> str | None:
    """The Azure CLI's default subscription id (``az account set``), or ``None``."""
    for sub in _cli_subscriptions(env):
        if sub.get("isDefault") is True and sub.get("id"):
            return str(sub["id"])
    return None


def subscription_tenant(env: Mapping[str, str], subscription: str) -> str | None:
    """The tenant of ``subscription``: ``ARM_TENANT_ID``/``AZURE_TENANT_ID``, else the Azure
    CLI's record of it, else ``None``."""
    # Only GUIDs pin: a tenant given as a domain name is left for the providers to resolve.
    for key in ("ARM_TENANT_ID", "AZURE_TENANT_ID"):
        value = env.get(key, "").strip().lower()
        if value:
            return value if naming.GUID_RE.match(value) else None
    for sub in _cli_subscriptions(env):
        tenant = str(sub.get("tenantId") or "").lower()
        if str(sub.get("id", "")).lower() == subscription and naming.GUID_RE.match(tenant):
            return tenant
    return None


def _validate(opts: Mapping[str, Any], sources: Mapping[str, str]) -> None:
    """One-line InvalidInputError for the first bad option (``AzureOptions`` runs it)."""

    def origin(key: str) -> str:
        return f" (from {sources[key]})" if sources.get(key) else ""

    if not naming.GUID_RE.match(opts["subscription"]):
        raise InvalidInputError(
            f"Invalid Azure subscription id '{opts['subscription']}'{origin('subscription')}: "
            "expected a GUID such as 00000000-0000-0000-0000-000000000000."
        )
    location = opts["location"]
    if location not in naming.AZURE_LOCATIONS:
        close = difflib.get_close_matches(location, naming.AZURE_LOCATIONS, n=1)
        hint = f"did you mean {close[0]}?" if close else "see `az account list-locations -o table`."
        raise InvalidInputError(f"Unknown Azure location '{location}'{origin('location')}; {hint}")
    if not naming.RESOURCE_GROUP_RE.match(opts["resource_group"]):
        raise InvalidInputError(
            f"Invalid --resource-group '{opts['resource_group']}'{origin('resource_group')}: 1-90 "
            "letters, digits, '_', '-', '.', '(' or ')', not ending with '.'."
        )
    registry = opts["registry_name"]
    if registry is not None and not naming.REGISTRY_NAME_RE.match(registry):
        raise InvalidInputError(
            f"Invalid --registry-name '{registry}'{origin('registry_name')}: 5-50 letters and "
            "digits only (no '-' or '_')."
        )
    if opts["registry_sku"] not in naming.REGISTRY_SKUS:
        raise InvalidInputError(
            f"Invalid --registry-sku '{opts['registry_sku']}'{origin('registry_sku')}: use one "
            f"of {', '.join(naming.REGISTRY_SKUS)}."
        )
    days = opts["secret_days"]
    keyed = not opts.get("with_worker")  # with the worker in Azure there is no secret
    # Renewal starts EXPIRY_WARNING_DAYS before the end date: a secret living no longer would
    # be due from the moment it is made, and every run would replace it.
    least = EXPIRY_WARNING_DAYS + 1 if keyed else naming.SECRET_DAYS_MIN
    whole = isinstance(days, int) and not isinstance(days, bool)
    if whole and naming.SECRET_DAYS_MIN <= days < least:
        raise InvalidInputError(
            f"Invalid --secret-days {days}{origin('secret_days')}: a client secret living "
            f"{EXPIRY_WARNING_DAYS} days or less is always within its {EXPIRY_WARNING_DAYS}-day "
            f"renewal window, so every run would replace it; use {least} to "
            f"{naming.SECRET_DAYS_MAX} days, and --rotate-after to rotate more often."
        )
    if not whole or not least <= days <= naming.SECRET_DAYS_MAX:
        raise InvalidInputError(
            f"Invalid --secret-days {days!r}{origin('secret_days')}: a whole number of days "
            f"from {least} to {naming.SECRET_DAYS_MAX}."
        )
    rotate_after = opts.get("rotate_after")
    if keyed and isinstance(rotate_after, int) and rotate_after >= days:
        raise InvalidInputError(
            f"--rotate-after {rotate_after}{origin('rotate_after')} is not shorter than the "
            f"client secret's lifetime of {days} days{origin('secret_days')}: the secret would "
            f"expire before it is old enough to rotate. Use a --rotate-after below {days}, or a "
            "longer --secret-days."
        )


def _canonical_sku(value: Any) -> Any:
    """``basic``/``BASIC`` → ``Basic``; anything else is left for validation to reject."""
    if isinstance(value, str):
        for sku in naming.REGISTRY_SKUS:
            if value.strip().lower() == sku.lower():
                return sku
    return value


def secret_end_date(secret_start: str, days: int) -> str:
    """The client secret's end date: the stack's fixed start plus ``days`` (RFC 3339, UTC)."""
    start = datetime.strptime(secret_start, _DATE_FORMAT).replace(tzinfo=UTC)
    return (start + timedelta(days=days)).strftime(_DATE_FORMAT)


def secret_lifetime_start(generated: Mapping[str, str]) -> str:
    """Where the current client secret's lifetime starts (RFC 3339, UTC): the start of the last
    rotation, else the stack's fixed ``secret_start``.

    Both are kept in the record, so every rerun computes the same end date and replaces
    nothing; a rotation starts a fresh lifetime of ``--secret-days`` from its own start. Raises
    ``ValueError`` naming the key when the record holds something else (an edited state).
    """
    rotated = generated.get(ROTATED_AT_KEY)
    if rotated is None:
        start = generated.get("secret_start", "")
        try:
            datetime.strptime(start, _DATE_FORMAT)
        except ValueError:
            raise ValueError(
                "generated secret_start must be an RFC 3339 UTC time like "
                f"2026-01-01T00:00:00Z, not {start!r}"
            ) from None
        return start
    try:
        when = datetime.fromisoformat(rotated.replace("Z", "+00:00"))
    except ValueError:
        when = None
    if when is None or when.tzinfo is None:
        raise ValueError(
            f"generated {ROTATED_AT_KEY} must be an ISO 8601 time with its offset, like "
            f"2026-01-01T00:00:00+00:00, not {rotated!r}"
        )
    return when.astimezone(UTC).strftime(_DATE_FORMAT)


def worker_command(image: str, command: tuple[str, ...]) -> list[str]:
    """The worker container's command: ``command``, behind :data:`PREFECT_ENTRYPOINT` on
    Prefect's images. Another image runs ``command`` as given: it must bring prefect-azure."""
    if image.startswith(PREFECT_IMAGES):
        return [PREFECT_ENTRYPOINT, *command]
    return list(command)


@dataclass(frozen=True)
class AzurePool(Pool[AzureOptions]):
    """Azure Container Instances pools in one subscription, location and resource group."""

    cloud = "azure"
    options_model = AzureOptions
    block = BlockSpec("azure-container-instance-credentials", "aci-credentials")
    secret_outputs = frozenset({"client_secret"})
    program_modules = ("stacks.azure_aci",)
    worker_modules = ("stacks.azure_worker",)
    # The client secret: `provision rotate`, --rotate-after and its end date replace it (the
    # stack's replacement trigger and credential_created_at/credential_expires_at outputs).
    rotates = True
    error_rules = AZURE_ERROR_RULES
    propagation_errors = PROPAGATION_ERRORS
    worker_package = "prefect-azure"
    # ACI has no secret reference for an environment variable: a secure value, which the API
    # never returns (see docs/azure-grants.md for why it is as safe as Key Vault here).
    worker_secret_store = "a secure environment value of the container (ACI never returns it)"
    # A client secret's value is returned once, at creation: one a killed run made cannot be
    # adopted into the state, so the rerun removes it (remove_untracked) rather than naming it.
    removes_untracked = frozenset({APPLICATION_PASSWORD})
    orphan_hints = {
        APPLICATION_PASSWORD: (
            "List the app's secrets with `az ad app credential list --id <client_id>` and "
            "delete any whose keyId is not the stack's (`pulumi stack export`) with `az ad app "
            "credential delete --id <client_id> --key-id <keyId>`."
        ),
        "azuread:index/application:Application": (
            "Find duplicates with `az ad app list --display-name provision-aci-<pool>` and "
            "delete the one whose appId differs from the stack's client_id with `az ad app "
            "delete --id <appId>`."
        ),
        "azuread:index/servicePrincipal:ServicePrincipal": (
            "A service principal belongs to its app: deleting a duplicate app (`az ad app "
            "delete`) removes it too."
        ),
    }

    # -- options ----------------------------------------------------------------------------

    @classmethod
    def resolve_options(
        cls,
        name: str,
        pool_type: PoolType,
        given: Mapping[str, Any],
        env: Mapping[str, str],
        saved: AzureOptions | None,
    ) -> AzureOptions:
        """Flags > saved options > environment / Azure CLI profile > defaults, then validate.

        Subscription: ``AZURE_SUBSCRIPTION_ID``, then the Azure CLI's default subscription.
        Location: only ``--location`` (or the saved one): a region is a choice, not a default.
        Resource group defaults to ``<pool>-rg``; the registry name to the pool's alphanumerics
        plus the stack's random suffix (decided in :meth:`program`).
        """
        pick = OptionPicker(pool_type, given, saved, AzureOptions.keys())
        sources = pick.sources

        subscription = pick("subscription")
        if subscription is None and env.get("AZURE_SUBSCRIPTION_ID", "").strip():
            subscription, sources["subscription"] = (
                env["AZURE_SUBSCRIPTION_ID"],
                "AZURE_SUBSCRIPTION_ID",
            )
        if subscription is None:
            subscription = cli_default_subscription(env)
            sources["subscription"] = "the Azure CLI's default subscription"
        if not subscription:
            raise InvalidInputError(
                "No Azure subscription: pass --subscription, set AZURE_SUBSCRIPTION_ID or run "
                "`az account set --subscription ID`."
            )

        location = pick("location")
        if not location:
            raise InvalidInputError("No Azure location: pass --location (e.g. westeurope).")

        secret_days = pick("secret_days")
        subscription = str(subscription).strip().lower()
        # A saved tenant belongs to the saved subscription; a new subscription looks again.
        kept = (
            saved
            if isinstance(saved, AzureOptions) and saved.subscription == subscription
            else None
        )
        tenant = (kept.tenant if kept else None) or subscription_tenant(env, subscription)
        opts: dict[str, Any] = {
            "subscription": subscription,
            "location": naming.normalize_location(str(location)),
            "resource_group": pick("resource_group") or naming.resource_group(name),
            "registry_name": pick("registry_name"),
            "registry_sku": _canonical_sku(pick("registry_sku") or "Basic"),
            "secret_days": naming.DEFAULT_SECRET_DAYS if secret_days is None else secret_days,
            "tenant": tenant,
            **worker_options(pick),
            **rotation_options(pick),
        }
        return AzureOptions.checked(opts, sources, pool_type=pool_type)

    @classmethod
    def generate(cls, name: str, options: AzureOptions) -> dict[str, str]:
        """Chosen once per stack, then kept: the registry suffix and the secret's start.

        The secret's end date is ``secret_start + secret_days``: computing it from ``now()`` on
        every run would change it, and a changed end date re-creates the secret.
        """
        return {
            "registry_suffix": secrets.token_hex(4),
            "secret_start": datetime.now(UTC).strftime(_DATE_FORMAT),
        }

    def provider_config(self) -> dict[str, str]:
        """Subscription and default location of azure-native (every resource also sets them),
        and the subscription's tenant for both providers when it is known.

        Unpinned, pulumi-azuread works in the login's default tenant, which for a user of
        several tenants may not be the subscription's: the app would be registered where ARM
        can't find its principal.
        """
        opts = self.options
        config = {
            "azure-native:subscriptionId": opts.subscription,
            "azure-native:location": opts.location,
        }
        if opts.tenant:
            config["azure-native:tenantId"] = config["azuread:tenantId"] = opts.tenant
        return config

    # -- program ----------------------------------------------------------------------------

    def program(self) -> CloudProgram:
        """One ``ContainerInstancePool``; the program returns its outputs (the exports)."""
        from stacks.azure_aci import ContainerInstancePool, ContainerInstancePoolArgs

        opts, pool, generated = self.options, self.name, self.generated
        generated_suffix(generated, "registry_suffix")
        end_date = secret_end_date(secret_lifetime_start(generated), opts.secret_days)
        args = ContainerInstancePoolArgs(
            pool=pool,
            subscription_id=opts.subscription,
            location=opts.location,
            resource_group_name=opts.resource_group,
            registry_name=self._registry_name(),
            identity_name=naming.identity_name(pool),
            app_display_name=naming.app_display_name(pool),
            secret_end_date=end_date,
            # None until the first rotation: a pool made before rotation keeps its secret.
            credential_rotation=self.rotation_trigger(),
            registry_sku=opts.registry_sku,
            # --with-worker: the submitter is the worker's own managed identity, not an app.
            worker_identity_name=naming.worker_identity_name(pool) if opts.with_worker else None,
        )

        return lambda: ContainerInstancePool(pool, args).outputs

    def worker_program(self) -> WorkerProgram | None:
        """The worker as container groups running as the worker identity (``--with-worker``).

        The Prefect credential is a secure value of the container (``stacks/azure_worker.py``
        says why that is as safe as a Key Vault here); ``AZURE_CLIENT_ID`` names the identity
        to Azure's SDKs in the container, as the block's ``credential_kwargs`` do.
        """
        if self.worker is None:
            return None
        if not self.options.with_worker:
            raise ValueError(f"pool '{self.name}' runs a worker without --with-worker")
        from stacks.azure_worker import ContainerInstanceWorker, ContainerInstanceWorkerArgs

        pool, opts = self.name, self.options

        def run(outputs: Mapping[str, Any], after: Any) -> Mapping[str, Any]:
            container = self.worker_container()
            args = ContainerInstanceWorkerArgs(
                pool=pool,
                location=opts.location,
                resource_group_name=outputs["resource_group_name"],
                group_names=naming.worker_group_names(pool, container.count),
                workspace_name=naming.log_workspace_name(pool),
                identity_id=outputs["worker_identity_id"],
                image=container.image,
                command=worker_command(container.image, container.command),
                env={**container.env, "AZURE_CLIENT_ID": outputs["worker_identity_client_id"]},
                secret_env=container.secret_env,
            )
            return ContainerInstanceWorker(f"{pool}-worker", args, after).outputs

        return run

    def expected_outputs(self) -> dict[str, Any]:
        """The non-secret stack outputs ``up`` will produce, computed without the engine.

        The tenant, the client id and (unless --registry-name was given) the registry's random
        name are not predictable and are left out.
        """
        opts, pool = self.options, self.name
        expected: dict[str, Any] = {
            "subscription_id": opts.subscription,
            "location": opts.location,
            "resource_group_name": opts.resource_group,
            "identity_id": naming.identity_id(
                opts.subscription, opts.resource_group, naming.identity_name(pool)
            ),
        }
        if opts.registry_name:
            expected["registry_name"] = opts.registry_name
            expected["registry_login_server"] = naming.login_server(opts.registry_name)
        if opts.with_worker:
            expected["worker_identity_id"] = naming.identity_id(
                opts.subscription, opts.resource_group, naming.worker_identity_name(pool)
            )
            expected["worker_container_groups"] = naming.worker_group_names(pool, opts.worker_count)
        return expected

    # -- Prefect ----------------------------------------------------------------------------

    def adoptable_id(self, type_token: str, inputs: Mapping[str, Any]) -> str | None:
        """ARM resources: every name is fixed before the create (see ``naming.arm_id``)."""
        return naming.arm_id(self.options.subscription, type_token, inputs)

    def remove_untracked(self, untracked: Untracked) -> str:
        """Remove the client secrets an interrupted create may have added to the pool's app
        that the state does not track (the tool's own, by display name; any other secret on
        the app is left alone), through Microsoft Graph (``azure_graph``).

        Entra ID generates a secret's key id, so nothing in the state names the copy; its
        value went only to the killed engine, so it can never fill the block. When Graph
        cannot be reached or signed in to, says so with the commands that do it by hand.
        """
        from provision.targets import azure_graph

        app = naming.app_display_name(self.name)
        match = _APPLICATION_ID.match(str(untracked.inputs.get("applicationId", "")))
        if match is None:  # the app was not made yet: no secret could have been sent
            return f"Interrupted before a client secret of app registration {app} was added."
        object_id = match.group(1)
        display = str(untracked.inputs.get("displayName") or PASSWORD_DISPLAY_NAME)
        tracked = {rid.rsplit("/", 1)[-1].lower() for rid in untracked.tracked}
        try:
            token = azure_graph.access_token(self.env, self.options.tenant)
            graph = azure_graph.Graph(token, azure_graph.graph_url(self.env))
            stray = [
                p.key_id
                for p in graph.passwords(object_id)
                if p.display_name == display and p.key_id.lower() not in tracked
            ]
            removed = [key for key in stray if graph.remove_password(object_id, key)]
        except azure_graph.GraphError as exc:
            return (
                f"Interrupted while adding a client secret to app registration {app}: one may "
                f"exist untracked, and it could not be checked ({exc}). "
                f"{self.orphan_hints[APPLICATION_PASSWORD]}"
            )
        if not removed:
            return (
                f"Interrupted while adding a client secret to app registration {app}: Entra ID "
                "has none the state does not track."
            )
        return (
            f"Removed {len(removed)} client secret(s) that an interrupted run added to app "
            f"registration {app} but never recorded (key id {', '.join(removed)}): their value "
            "went only to that run."
        )

    def block_data(self, outputs: Outputs, schema: Mapping[str, Any]) -> dict[str, Any]:
        """The ``azure-container-instance-credentials`` block.

        Keyed: the app's client credentials. Keyless (``--with-worker``): no secret at all,
        only which managed identity to use. With ``client_id``, ``tenant_id`` and
        ``client_secret`` all unset, prefect-azure builds ``DefaultAzureCredential(
        **credential_kwargs)`` (PrefectHQ/prefect ``src/integrations/prefect-azure/
        prefect_azure/credentials.py``, ``AzureContainerInstanceCredentials._create_credential``),
        and ``managed_identity_client_id`` makes its managed-identity step ask for the worker's
        identity (Azure/azure-sdk-for-python ``sdk/identity/azure-identity/azure/identity/
        _credentials/default.py``), whatever else the container may have.
        """
        if self.options.with_worker:
            require_block_fields(self.block, schema, ["credential_kwargs"])
            client_id = text_value(outputs, "worker_identity_client_id")
            if client_id is None:
                raise bad_outputs(
                    "The stack outputs lack worker_identity_client_id for the credentials block."
                )
            return {"credential_kwargs": {"managed_identity_client_id": client_id}}
        # The block's fields and the stack's outputs share their names.
        return block_from_outputs(
            outputs, {k: k for k in ("client_id", "tenant_id", "client_secret")}
        )

    def template_defaults(self, outputs: Outputs, block_document_id: str | None) -> dict[str, Any]:
        """Defaults for variables the azure-container-instance worker template declares.

        ``aci_credentials`` (the block), ``resource_group_name``, ``subscription_id``, the
        identity the container groups run as (``identities``) and the registry they pull from
        with it (``image_registry``, the worker's ACRManagedIdentity shape). The image is left
        alone: it names the user's own image, pushed to the registry.
        """
        identity = known_or_placeholder(outputs, "identity_id")
        return {
            "aci_credentials": block_ref(block_document_id),
            "resource_group_name": known_or_placeholder(outputs, "resource_group_name"),
            "subscription_id": known_or_placeholder(outputs, "subscription_id"),
            "identities": [identity],
            "image_registry": {
                "registry_url": known_or_placeholder(outputs, "registry_login_server"),
                "identity": identity,
            },
        }

    # -- plan & summary ---------------------------------------------------------------------

    def grants(self) -> list[Grant]:
        """The two grants: the custom role to the submitter (the app's service principal, or
        the worker's managed identity with ``--with-worker``), AcrPull to the jobs' identity."""
        from stacks.azure_aci import ROLE_ACTIONS

        opts, pool = self.options, self.name
        if opts.with_worker:
            submitter = f"managed identity {naming.worker_identity_name(pool)} (the worker's)"
            runs_as = " The worker runs in Azure as this identity: no secret exists."
        else:
            submitter = f"service principal {naming.app_display_name(pool)}"
            runs_as = ""
        return [
            Grant(
                principal=submitter,
                role=self._role_display(),
                scope=f"resource group {opts.resource_group} only",
                permissions=tuple(ROLE_ACTIONS),
                why="Exactly the ARM calls the ACI worker makes: deploy a template that creates "
                "a container group, poll it, read its logs, stop and delete it, and attach the "
                "pool's identity to it; nothing outside the pool's resource group (not "
                f"Contributor).{runs_as}",
            ),
            Grant(
                principal=f"managed identity {naming.identity_name(pool)}",
                role="AcrPull",
                scope=f"registry {self._registry_display()} only",
                why="Container groups pull their images as this identity: no registry password "
                "anywhere.",
            ),
        ]

    def credential(self) -> Credential:
        """The client secret in the block, or (``--with-worker``) none: the worker runs in
        Azure as its managed identity and Azure hands it short-lived tokens."""
        pool = self.name
        if self.options.with_worker:
            identity = f"managed identity {naming.worker_identity_name(pool)}"
            return Credential(
                "none",
                identity,
                False,
                f"the worker runs in Azure Container Instances as {identity}: no long-lived "
                "credential",
            )
        opts = self.options
        try:
            end = secret_end_date(secret_lifetime_start(self.generated), opts.secret_days)
            expiry = f"it expires on {end[:10]} ({opts.secret_days}-day lifetime)"
        except ValueError:  # an edited record: say what is known
            expiry = f"it expires after {opts.secret_days} days"
        rotation = (
            f"; replaced once {opts.rotate_after} days old (--rotate-after)"
            if opts.rotate_after
            else f"; renewed by `provision up` in its last {EXPIRY_WARNING_DAYS} days"
        )
        return Credential(
            "client secret",
            f"app registration {naming.app_display_name(pool)}",
            True,
            f"held by the Prefect block for the worker to sign in with; {expiry}{rotation}",
        )

    def next_steps(self, outputs: Outputs) -> NextSteps:
        """How to push images, deploy to the pool, and what to run next: start a worker, or,
        when it runs in Azure, read its logs."""
        server = known_or_placeholder(outputs, "registry_login_server")
        registry = known_or_placeholder(outputs, "registry_name")
        snippet = (
            f'my_flow.deploy(name="my-deployment", work_pool_name={json.dumps(self.name)}, '
            f'image="{server}/my-image:latest")'
        )
        # Docker credentials from the user's own Entra login: no password on a command line.
        login = f"az acr login --name {shlex.quote(str(registry))}"
        if self.options.with_worker:
            commands = (login, *self._worker_log_commands(outputs))
            return NextSteps(image_namespace=server, deploy_snippet=snippet, commands=commands)
        commands = [
            # The worker's service principal cannot register providers; doing it once is
            # harmless when already registered.
            "az provider register --namespace Microsoft.ContainerInstance",
            login,
        ]
        if not self.type.push:
            commands.append(f"prefect worker start --pool {shlex.quote(self.name)}")
        return NextSteps(image_namespace=server, deploy_snippet=snippet, commands=tuple(commands))

    def _worker_log_commands(self, outputs: Outputs) -> tuple[str, str]:
        """The worker's output now (ACI keeps the running container's), and its history in Log
        Analytics (restarts included)."""
        groups = outputs.get("worker_container_groups")
        if not (isinstance(groups, list) and groups and all(isinstance(g, str) for g in groups)):
            groups = naming.worker_group_names(self.name, self.options.worker_count)
        group_name = known_or_placeholder(outputs, "resource_group_name")
        workspace = known_or_placeholder(outputs, "worker_log_workspace_customer_id")
        names = ", ".join(json.dumps(g) for g in groups)  # KQL takes "..." literals
        query = (
            f"ContainerInstanceLog | where ContainerGroup in ({names}) "
            "| project TimeGenerated, ContainerGroup, Message | order by TimeGenerated desc "
            "| take 100"
        )
        return (
            f"az container logs --resource-group {shlex.quote(str(group_name))} "
            f"--name {shlex.quote(groups[0])}",
            f"az monitor log-analytics query --workspace {shlex.quote(str(workspace))} "
            f"--analytics-query {shlex.quote(query)}",
        )

    def location(self) -> str:
        """``subscription/resource group (location)``."""
        opts = self.options
        return f"{opts.subscription}/{opts.resource_group} ({opts.location})"

    # -- helpers ----------------------------------------------------------------------------

    def _registry_name(self) -> str:
        if self.options.registry_name:
            return self.options.registry_name
        return naming.registry_name(self.name, self.generated["registry_suffix"])

    def _registry_display(self) -> str:
        # The default name ends in a random suffix chosen on first up; show its shape.
        if self.options.registry_name:
            return self.options.registry_name
        return naming.registry_name(self.name, "0" * 8)[:-8] + "<random>"

    def _role_display(self) -> str:
        from stacks.azure_aci import role_name

        return role_name(self.options.subscription, self.options.resource_group)
