"""AWS's error texts (as pulumi-aws reports them) mapped to typed errors with next steps.

Also the texts that mean "an identity created moments ago is not usable yet", on which the
engine retries ``up`` (IAM is eventually consistent: roles and keys work a few seconds after
they are created, not at once).
"""

from __future__ import annotations

from provision.engine_errors import ErrorRule
from provision.errors import (
    CloudCredentialsError,
    EngineError,
    PermissionDeniedError,
    QuotaExceededError,
)

_PERMISSION_HINT = (
    "The identity running provision needs to manage IAM roles, users, policies and access "
    "keys, ECS clusters, EC2 networking, CloudWatch logs, ECR repositories, SQS queues and "
    "EventBridge rules (with --with-worker also ECS services and task definitions, Secrets "
    "Manager secrets and iam:PassRole on the worker's roles) in the account (for example the "
    "AdministratorAccess or PowerUserAccess+IAMFullAccess managed policies)."
)

_CREDENTIALS_HINT = (
    "Run `aws configure` (or `aws sso login --profile NAME` and pass --profile NAME), or set "
    "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY; check with `aws sts get-caller-identity`."
)

AWS_ERROR_RULES: tuple[ErrorRule, ...] = (
    ErrorRule(
        r"failed to get shared config profile, (?P<profile>[^\s,]+)",
        CloudCredentialsError,
        "AWS profile '{detail}' is not in ~/.aws/config or ~/.aws/credentials.",
        "Create it with `aws configure --profile {detail}`, or pass another --profile.",
    ),
    ErrorRule(
        r"no valid credential sources|NoCredentialProviders|"
        r"failed to refresh cached credentials|no EC2 IMDS role found",
        CloudCredentialsError,
        "No usable AWS credentials.",
        _CREDENTIALS_HINT,
    ),
    ErrorRule(
        # Also what STS answers for a region that is not enabled in the account (opt-in
        # regions such as me-south-1 or ap-east-1).
        r"InvalidClientTokenId|UnrecognizedClientException|SignatureDoesNotMatch|"
        r"The security token included in the request is (?:invalid|expired)|ExpiredToken",
        CloudCredentialsError,
        "AWS rejected the credentials (invalid, expired, or the region is not enabled for "
        "the account).",
        _CREDENTIALS_HINT + " Opt-in regions must first be enabled under Account settings.",
    ),
    # Specific before generic: AccessDenied texts usually name the action.
    ErrorRule(
        r"is not authorized to perform: (?P<action>[a-z0-9-]+:[A-Za-z0-9*]+)",
        PermissionDeniedError,
        "Permission denied in AWS: {detail} is missing.",
        _PERMISSION_HINT,
    ),
    ErrorRule(
        r"AccessDenied|UnauthorizedOperation|AuthorizationError|not authorized to perform",
        PermissionDeniedError,
        "Permission denied in AWS.",
        _PERMISSION_HINT,
    ),
    ErrorRule(
        r"Cannot exceed quota for AccessKeysPerUser",
        QuotaExceededError,
        "The pool's IAM user already has two access keys, the most AWS allows.",
        "List them (worker_user_name is in `provision show <pool>`) with "
        "`aws iam list-access-keys --user-name <worker_user_name>`, delete the "
        "one that is not aws_access_key_id in the pool's Prefect block with `aws iam "
        "delete-access-key --user-name <worker_user_name> --access-key-id <id>`, then rerun.",
    ),
    ErrorRule(
        r"LimitExceeded(?:[^\n]*?Cannot exceed quota for (?P<quota>\w+))?|ServiceQuotaExceeded|"
        r"maximum number of [^\n]* (?:has been )?reached|Cannot exceed quota for (?P<quota2>\w+)",
        QuotaExceededError,
        "An AWS quota or limit was hit{detail_suffix}.",
        "Free capacity (VPCs: 5 per region, internet gateways: 5 per region, roles: 1000 per "
        "account) or request an increase in the Service Quotas console, then rerun.",
    ),
    ErrorRule(
        # Secrets Manager keeps a deleted secret's name for its recovery window (the stack's
        # own secrets have none: this is one deleted by hand, with a window).
        r"creating Secrets Manager Secret \((?P<secret>[^)\s]+)\)[^\n]*?"
        r"already scheduled for deletion",
        EngineError,
        "Secrets Manager secret {detail} was deleted with a recovery window, which keeps its "
        "name taken.",
        "Delete it for good with `aws secretsmanager delete-secret --secret-id {detail} "
        "--force-delete-without-recovery` (or restore it with `aws secretsmanager "
        "restore-secret --secret-id {detail}`), then rerun.",
    ),
    ErrorRule(
        r"EntityAlreadyExists: (?P<entity>[^\n]*?) already exists|"
        r"ResourceExistsException: The operation failed because (?P<secret>the secret \S+) "
        r"already exists|"
        r"creating ECS Service \((?P<service>[^)\s]+)\)[^\n]*?Creation of service was not "
        r"idempotent|"
        r"(?P<other>RepositoryAlreadyExistsException|ResourceAlreadyExistsException|"
        r"QueueAlreadyExists|InvalidGroup\.Duplicate)",
        EngineError,
        "An AWS resource with the name provision chose already exists: {detail}.",
        "It was made outside this pool's stack (by hand, another tool, or a pool whose state "
        "was lost). Delete or rename it, or destroy the pool that owns it, then rerun.",
    ),
    ErrorRule(
        # A subnet's id is AWS's to pick, so recovery can't adopt one whose create a killed run
        # lost: the copy then holds the CIDR the rerun asks for.
        r"InvalidSubnet\.Conflict: The CIDR '(?P<cidr>[^']+)' conflicts",
        EngineError,
        "A subnet with CIDR {detail} already exists in the pool's VPC, outside its stack.",
        "An interrupted run may have made it: list the VPC's subnets with `aws ec2 "
        "describe-subnets --filters Name=vpc-id,Values=<vpc_id>` (vpc_id is in `provision show "
        "<pool>`), delete the one with that CIDR (`aws ec2 delete-subnet --subnet-id <id>`), "
        "then rerun.",
    ),
)

PROPAGATION_ERRORS: tuple[str, ...] = (
    # The first cluster in an account makes ECS create its service-linked role
    # (AWSServiceRoleForECS); CreateCluster fails until the role has propagated
    # (terraform-provider-aws#11417): "InvalidParameterException: Unable to assume the service
    # linked role. Please verify that the ECS service linked role exists."
    r"Unable to assume the service linked role",
    # ECS checking a role created seconds ago: RegisterTaskDefinition / CreateService answer
    # "ClientException: Role is not valid"; RunTask "ECS was unable to assume the role
    # 'arn:aws:iam::...' that was provided for this task".
    r"ClientException: Role is not valid",
    r"unable to assume the role 'arn:aws:iam::",
    # IAM reading a user or role it has just created (attachments, access keys):
    # "NoSuchEntity: The user with name x cannot be found."
    r"NoSuchEntity[^\n]*The (?:user|role) with name \S+ cannot be found",
    # A brand-new access key, used before IAM has propagated it: "InvalidClientTokenId: The
    # security token included in the request is invalid." The same text from the provider's
    # own credential check (pulumi-aws: "unable to validate AWS credentials ... validating
    # provider credentials: retrieving caller identity from STS") is a real credentials error,
    # never retried: the lookahead rejects any output that contains it.
    r"\A(?!.*(?:unable to validate AWS credentials|validating provider credentials))"
    r".*The security token included in the request is invalid",
)
"""Regexes over engine output (matched case-insensitively, ``.`` across lines)."""
