"""Azure's error texts (as pulumi-azure-native and pulumi-azuread report them) mapped to typed
errors with next steps, and the texts that mean "a principal created moments ago is not
visible yet"."""

from __future__ import annotations

from provision.engine_errors import ErrorRule
from provision.errors import (
    ApiNotEnabledError,
    CloudCredentialsError,
    EngineError,
    OrgPolicyError,
    PermissionDeniedError,
    QuotaExceededError,
)

_ARM_PERMISSION_HINT = (
    "The identity running provision needs Contributor plus User Access Administrator (or "
    "Owner) on the subscription, to create the resource group, its resources, the custom role "
    "and its assignments."
)

AZURE_ERROR_RULES: tuple[ErrorRule, ...] = (
    ErrorRule(
        # azure-native/azuread through the Azure CLI ("ERROR: Please run 'az login' to setup
        # account."), DefaultAzureCredential chains, and Entra ID's AADSTS sign-in errors
        # (expired refresh token, wrong secret, MFA required, ...).
        r"Please run '?az login|DefaultAzureCredential failed|"
        r"(?:could not|unable to|failed to) (?:acquire|obtain|get|retrieve) (?:an? )?(?:access )?"
        r"token|AADSTS\d+|No subscriptions? found|az: (?:command )?not found|"
        r"executable file not found[^\n]*\baz\b",
        CloudCredentialsError,
        "No usable Azure credentials.",
        "Run `az login` (and `az account set --subscription ID`), or set AZURE_CLIENT_ID, "
        "AZURE_TENANT_ID and AZURE_CLIENT_SECRET (ARM_* for the Pulumi providers).",
    ),
    ErrorRule(
        r"SubscriptionNotFound|The subscription '(?P<sub>[0-9a-fA-F-]{36})' could not be found",
        CloudCredentialsError,
        "The Azure subscription was not found with the current credentials{detail_suffix}.",
        "Check --subscription against `az account list -o table`; the signed-in identity must "
        "have access to it.",
    ),
    ErrorRule(
        # "Code=MissingSubscriptionRegistration ... not registered to use namespace 'X'": the
        # code comes first, so it may only prefix the alternative that names the namespace.
        r"(?:MissingSubscriptionRegistration[^\n]*?)?not registered to use namespace "
        r"'(?P<namespace>[A-Za-z0-9.]+)'|MissingSubscriptionRegistration",
        ApiNotEnabledError,
        "The subscription is not registered for a resource provider the stack needs"
        "{detail_suffix}.",
        "Register it with `az provider register --namespace NAMESPACE` (the stack needs "
        "Microsoft.ContainerRegistry and Microsoft.ManagedIdentity, the jobs Microsoft."
        "ContainerInstance; --with-worker also Microsoft.OperationalInsights and Microsoft."
        "Insights), wait until `az provider show -n NAMESPACE --query registrationState` says "
        "Registered, then rerun.",
    ),
    ErrorRule(
        # Microsoft Graph: app registrations are off for plain users and no directory role
        # allows them.
        r"Authorization_RequestDenied|Insufficient privileges to complete the operation",
        PermissionDeniedError,
        "Entra ID refused to create the app registration or its service principal: "
        "insufficient privileges in the directory.",
        "Ask a directory admin for the Application Developer role (or to allow users to "
        "register applications), or have one run `provision up` once for this pool.",
    ),
    ErrorRule(
        r"RequestDisallowedByPolicy|disallowed by policy",
        OrgPolicyError,
        "An Azure Policy assignment forbids a resource the stack creates.",
        "See the policy named in --verbose output (`az policy assignment list`); ask its owner "
        "for an exemption on the resource group, or choose settings it allows, then rerun.",
    ),
    # Specific before generic: an AuthorizationFailed names the missing action.
    ErrorRule(
        r"does not have authorization to perform action '(?P<action>[^']+)'",
        PermissionDeniedError,
        "Permission denied in Azure: {detail} is missing.",
        _ARM_PERMISSION_HINT,
    ),
    ErrorRule(
        r"AuthorizationFailed|LinkedAuthorizationFailed|\bForbidden\b|Status=403",
        PermissionDeniedError,
        "Permission denied in Azure.",
        _ARM_PERMISSION_HINT,
    ),
    ErrorRule(
        # azure-native checks before every create; names here are explicit, so a resource
        # made outside the stack with the same name is reported so (a killed run's own
        # creates are adopted by recovery, so they never get here).
        r"cannot create already existing resource '(?P<resource>[^'\n]+)'",
        EngineError,
        "An Azure resource the stack would create already exists outside it: {detail}.",
        "It was made by hand, another tool, or a pool whose state was lost: choose another "
        "--resource-group or --registry-name, or delete it (`az resource delete --ids "
        "{detail}`) if nothing uses it, then rerun.",
    ),
    ErrorRule(
        # 'Code="AlreadyInUse" Message="The registry DNS name x.azurecr.io is already in use."'
        r"(?:AlreadyInUse[^\n]*?)?registry DNS name (?P<registry>[\w-]+(?:\.[\w-]+)*) is "
        r"already in use|AlreadyInUse",
        EngineError,
        "The container registry name{detail_suffix} is taken: registry names are global "
        "across Azure.",
        "Pass another --registry-name (5-50 letters and digits), then rerun.",
    ),
    ErrorRule(
        r"RoleDefinitionWithSameNameExists",
        EngineError,
        "A custom role with the stack's role name already exists in the tenant.",
        "It is probably left from an earlier pool on the same resource group: delete it with "
        "`az role definition delete --name <name>` (it appears in --verbose output), then "
        "rerun.",
    ),
    ErrorRule(
        r"RoleAssignmentExists|The role assignment already exists",
        EngineError,
        "The same role assignment already exists under another name (created outside provision).",
        "Delete that assignment (`az role assignment list --scope <scope>`), then rerun; the "
        "stack re-creates it under its own name.",
    ),
    ErrorRule(
        r"QuotaExceeded|quota[^\n]*exceeded|RoleAssignmentLimitExceeded|"
        r"RoleDefinitionLimitExceeded|directory object quota limit",
        QuotaExceededError,
        "An Azure quota or limit was hit.",
        "Free capacity or request a quota increase (subscription: `az quota`; Entra ID: "
        "delete unused app registrations), then rerun.",
    ),
    ErrorRule(
        r"LocationNotAvailableForResourceType|NoRegisteredProviderFound[^\n]*location",
        EngineError,
        "A resource the stack creates is not offered in this location.",
        "Choose another --location (for a new pool) where Container Registry, Managed "
        "Identity and Container Instances are available.",
    ),
)

# Engine output meaning "a principal or role created moments ago is not visible yet". The engine
# matches these case-insensitively across the whole output, so each stays on one line.
PROPAGATION_ERRORS: tuple[str, ...] = (
    # A role assignment naming a brand-new service principal or managed identity: "Principal
    # 0f14... does not exist in the directory c7cb.... ... replication delay" (ARM code
    # PrincipalNotFound), even with principalType set, now and then.
    r"PrincipalNotFound",
    r"Principal \w+ does not exist in the directory",
    # Assigning a custom role created seconds ago: RoleDefinitionDoesNotExist, "The specified
    # role definition with ID '...' does not exist."
    r"RoleDefinitionDoesNotExist",
    r"role definition with ID '[^'\n]+' does not exist",
    # Microsoft Graph replication: a service principal or password for an app created moments
    # ago ("The appId '...' of the service principal does not reference a valid application
    # object."; "Resource '...' does not exist or one of its queried reference-property objects
    # are not present.").
    r"does not reference a valid application object",
    r"does not exist or one of its queried reference-property objects are not present",
)
