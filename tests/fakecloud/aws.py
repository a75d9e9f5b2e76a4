"""Fake ``aws`` provider plugin (pulumi-aws 7.51.1), backed by a moto server.

Run by ``tests/fakecloud/bin/pulumi-resource-aws`` as ``python -m tests.fakecloud.aws``.

Unlike the GCP fake, this one keeps no objects of its own: every Create, Read, Update and
Delete is the boto3 call pulumi-aws (the bridged terraform-provider-aws) makes, sent to the
moto server at ``FAKECLOUD_AWS_ENDPOINT``. Ids, ARNs and AWS's rules (CIDR ranges and
conflicts, two access keys per user, dependency violations on delete, names taken) are moto's
answers; tests assert with boto3 (``tests.fakecloud.moto_server.client``) what exists. The
framework still provides Check/Diff, the call log, faults and delays (``FAKECLOUD_STATE_DIR``
is required for those).

Errors read like pulumi-aws's: ``<verb> <kind> (<id>): operation error <Service>: <Op>,
https response error StatusCode: <n>, RequestID: <id>, [api error ]<Code>: <message>``.

AWS-specific env variables (see README.md for the generic ones):

* ``FAKECLOUD_AWS_ENDPOINT``: the moto server (``http://127.0.0.1:PORT``); required;
* ``FAKECLOUD_AWS_ACCOUNT_ID``: the account every request goes to (moto's
  ``x-moto-account-id``); unset: moto's default 123456789012;
* ``FAKECLOUD_AWS_NO_CREDENTIALS=1``: CheckConfig fails as pulumi-aws does without credentials;
* ``FAKECLOUD_AWS_LATENCY_MS``: every AWS request takes this much longer, like the round
  trip to a real region (moto answers in a few milliseconds);
* ``FAKECLOUD_AWS_PROPAGATION_MS``: IAM's eventual consistency. A policy attachment or an
  access key for a role or user created less than this long ago fails with IAM's
  ``NoSuchEntity: The user with name X cannot be found.``; CreateCluster fails with ECS's
  ``Unable to assume the service linked role`` while the account's AWSServiceRoleForECS
  (made by the account's first cluster, as ECS does) is younger than that; and a task
  definition naming a role younger than that fails with ECS's ``Role is not valid``;
* ``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``/``AWS_SESSION_TOKEN``, ``AWS_REGION``/
  ``AWS_DEFAULT_REGION``: read like pulumi-aws reads them, after ``aws:region`` config.
"""

from __future__ import annotations

import base64
import contextlib
import fnmatch
import hashlib
import hmac
import ipaddress
import itertools
import json
import re
import secrets
import threading
import time
import zlib
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, ClassVar

from pulumi.provider.experimental.property_value import PropertyValue
from pulumi.provider.experimental.provider import (
    CheckFailure,
    CheckRequest,
    CheckResponse,
)

from tests.fakecloud.moto_server import ACCOUNT_ENV, ENDPOINT_ENV, add_account_header
from tests.fakecloud.provider import (
    MAX_HANDLER_THREADS,
    Cloud,
    CloudError,
    Context,
    FakeProvider,
    ResourceType,
    is_empty,
    is_unknown,
    names,
    serve,
    to_plain_map,
    urn_name,
)

NAME = "aws"
VERSION = "7.51.1"  # pulumi_aws/pulumi-plugin.json: the version the SDK asks the engine for
PARTITION = "aws"

CLUSTER = "aws:ecs/cluster:Cluster"
LOG_GROUP = "aws:cloudwatch/logGroup:LogGroup"
ROLE = "aws:iam/role:Role"
ROLE_POLICY_ATTACHMENT = "aws:iam/rolePolicyAttachment:RolePolicyAttachment"
ROLE_POLICY = "aws:iam/rolePolicy:RolePolicy"
USER = "aws:iam/user:User"
POLICY = "aws:iam/policy:Policy"
USER_POLICY_ATTACHMENT = "aws:iam/userPolicyAttachment:UserPolicyAttachment"
ACCESS_KEY = "aws:iam/accessKey:AccessKey"
VPC = "aws:ec2/vpc:Vpc"
SUBNET = "aws:ec2/subnet:Subnet"
INTERNET_GATEWAY = "aws:ec2/internetGateway:InternetGateway"
ROUTE_TABLE = "aws:ec2/routeTable:RouteTable"
ROUTE = "aws:ec2/route:Route"
ROUTE_TABLE_ASSOCIATION = "aws:ec2/routeTableAssociation:RouteTableAssociation"
SECURITY_GROUP = "aws:ec2/securityGroup:SecurityGroup"
REPOSITORY = "aws:ecr/repository:Repository"
LIFECYCLE_POLICY = "aws:ecr/lifecyclePolicy:LifecyclePolicy"
QUEUE = "aws:sqs/queue:Queue"
QUEUE_POLICY = "aws:sqs/queuePolicy:QueuePolicy"
EVENT_RULE = "aws:cloudwatch/eventRule:EventRule"
EVENT_TARGET = "aws:cloudwatch/eventTarget:EventTarget"
SECRET = "aws:secretsmanager/secret:Secret"
SECRET_VERSION = "aws:secretsmanager/secretVersion:SecretVersion"
TASK_DEFINITION = "aws:ecs/taskDefinition:TaskDefinition"
SERVICE = "aws:ecs/service:Service"
GET_CALLER_IDENTITY = "aws:index/getCallerIdentity:getCallerIdentity"
GET_AVAILABILITY_ZONES = "aws:index/getAvailabilityZones:getAvailabilityZones"

ECS_SERVICE_ROLE = "AWSServiceRoleForECS"
NO_CREDENTIALS_ENV = "FAKECLOUD_AWS_NO_CREDENTIALS"
PROPAGATION_ENV = "FAKECLOUD_AWS_PROPAGATION_MS"
LATENCY_ENV = "FAKECLOUD_AWS_LATENCY_MS"

# pulumi-aws's CheckConfig failure without credentials, verbatim from its replay test
# (provider/provider_test.go, TestMissingCredentialsErrorMessage).
NO_CREDENTIALS_TEXT = (
    "No valid credential sources found.\n"
    "Please see https://www.pulumi.com/registry/packages/aws/installation-configuration/ for "
    "more information about providing credentials.\n"
    "NEW: You can use Pulumi ESC to set up dynamic credentials with AWS OIDC to ensure the "
    "correct and valid credentials are used.\n"
    "Learn more: https://www.pulumi.com/registry/packages/aws/installation-configuration/"
    "#dynamically-generate-credentials-via-pulumi-esc"
)
# ... and without a region (pulumi-aws#3310).
NO_REGION_TEXT = (
    "missing region information\n"
    "Make sure you have set your AWS region, e.g. `pulumi config set aws:region us-west-2`."
)

# CloudWatch Logs' accepted retention periods (the schema's validation.IntInSlice).
LOG_RETENTION_DAYS = (
    0, 1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192,
    2557, 2922, 3288, 3653,
)  # fmt: skip
_IAM_NAME = re.compile(r"^[\w+=,.@-]+$")
_ECR_NAME = re.compile(r"^(?:[a-z0-9]+(?:[._-][a-z0-9]+)*/)*[a-z0-9]+(?:[._-][a-z0-9]+)*$")
_VERBS = {"create": "creating", "update": "updating", "delete": "deleting", "read": "reading"}
# boto3 service name -> the service id aws-sdk-go-v2 prints in "operation error <id>: <op>".
SERVICE_IDS = {
    "ecs": "ECS",
    "iam": "IAM",
    "ec2": "EC2",
    "logs": "CloudWatch Logs",
    "events": "EventBridge",
    "sqs": "SQS",
    "ecr": "ECR",
    "sts": "STS",
    "secretsmanager": "Secrets Manager",
}


# ------------------------------------------------------------------- helpers
def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in ("1", "true", "yes", "on")


def _env_number(ctx: Context, name: str, default: float) -> float:
    """A numeric knob; a typo fails the call with the variable's name, not a traceback."""
    value = ctx.env.get(name)
    try:
        return float(value) if value else default
    except ValueError:
        raise CloudError(f"{name}: {value!r} is not a number") from None


def provider_region(config: Mapping[str, Any], env: Mapping[str, str]) -> str | None:
    """``aws:region``, then AWS_REGION / AWS_DEFAULT_REGION, as pulumi-aws resolves it."""
    value = config.get("region")
    if isinstance(value, str) and value:
        return value
    return env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or None


def default_tags(ctx: Context) -> dict[str, str]:
    """The provider's ``defaultTags.tags`` (config values may arrive JSON-encoded)."""
    value = ctx.config.get("defaultTags")
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return {}
    tags = value.get("tags") if isinstance(value, Mapping) else None
    return {str(k): str(v) for k, v in (tags or {}).items()}


def _iso(value: Any) -> str:
    """An AWS timestamp as terraform-provider-aws stores it (RFC 3339, seconds, ``Z``)."""
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return str(value)


def _age_ms(value: Any) -> float:
    if not isinstance(value, datetime):
        return float("inf")
    return (datetime.now(UTC) - value.astimezone(UTC)).total_seconds() * 1000


def _known_str(inputs: Mapping[str, Any], key: str) -> str | None:
    value = inputs.get(key)
    return value if isinstance(value, str) and not is_unknown(value) else None


def _request_id() -> str:
    """An AWS request id (a UUID)."""
    import uuid

    return str(uuid.uuid4())


def _unique_id(prefix: str) -> str:
    """terraform-plugin-sdk's ``id.PrefixedUniqueId``: prefix, a timestamp, a counter."""
    stamp = datetime.now(UTC).strftime("%Y%m%d%H%M%S%f")[:-2]
    return f"{prefix}{stamp}{secrets.randbelow(10**8):08d}"


def _canonical(value: Any) -> Any:
    """A policy document in a form where AWS-equivalent documents compare equal.

    Like awspolicyequivalence: statement order, the order of values in a list and a
    one-element list versus its single value do not matter.
    """
    if isinstance(value, Mapping):
        return {k: _canonical(v) for k, v in value.items()}
    if isinstance(value, list):
        items = [_canonical(v) for v in value]
        if len(items) == 1:
            return items[0]
        return sorted(items, key=lambda v: json.dumps(v, sort_keys=True))
    return value


def json_equivalent(old: Any, new: Any) -> bool:
    """Two JSON documents (strings or parsed) that AWS treats as the same."""
    if old == new:
        return True
    try:
        a = json.loads(old) if isinstance(old, str) else old
        b = json.loads(new) if isinstance(new, str) else new
    except ValueError:
        return False
    return _canonical(a) == _canonical(b)


def _keep_equivalent(old: Any, current: Any) -> Any:
    """Refresh keeps the state's spelling of a document the cloud holds in another form."""
    if old is not None and json_equivalent(old, current):
        return old
    return current if isinstance(current, str) else json.dumps(current)


# --------------------------------------------------------------- boto3 access
# The provider runs handlers in worker threads (the cloud is blocking_io), as pulumi-aws serves
# the engine's concurrent calls. boto3 clients are thread-safe, sessions are not: the clients
# are made one at a time from the module's own session, then shared by every thread.
_CLIENTS: dict[tuple[str, ...], Any] = {}
_CLIENTS_LOCK = threading.Lock()
_SESSION: list[Any] = []  # the boto3 Session, made on first use


def aws_client(ctx: Context, service: str, region: str | None) -> Any:
    """A cached boto3 client for ``service`` in ``region``, sent to the moto server."""
    endpoint = ctx.env.get(ENDPOINT_ENV)
    if not endpoint:
        raise CloudError(
            f"fakecloud aws: {ENDPOINT_ENV} is not set; start a moto server "
            "(tests.fakecloud.moto_server.MotoServer) and pass its endpoint"
        )
    region = region or "us-east-1"
    account = ctx.env.get(ACCOUNT_ENV, "")
    latency = _env_number(ctx, LATENCY_ENV, 0) / 1000
    key = (endpoint, account, service, region, str(latency))
    client = _CLIENTS.get(key)
    if client is not None:
        return client
    with _CLIENTS_LOCK:
        if key not in _CLIENTS:
            _CLIENTS[key] = _new_client(ctx, service, region, endpoint, account, latency)
        return _CLIENTS[key]


def _new_client(
    ctx: Context, service: str, region: str, endpoint: str, account: str, latency: float
) -> Any:
    """A boto3 client from the module's session; hold ``_CLIENTS_LOCK``."""
    from botocore.config import Config

    client = _boto_session().client(
        service,
        region_name=region,
        endpoint_url=endpoint,
        aws_access_key_id=ctx.env.get("AWS_ACCESS_KEY_ID") or "testing",
        aws_secret_access_key=ctx.env.get("AWS_SECRET_ACCESS_KEY") or "testing",
        aws_session_token=ctx.env.get("AWS_SESSION_TOKEN") or None,
        # A connection per handler thread (botocore keeps 10): no request waits for one.
        config=Config(
            retries={"max_attempts": 2, "mode": "standard"},
            max_pool_connections=MAX_HANDLER_THREADS,
        ),
    )
    if account:
        add_account_header(client, account)
    if latency:

        def lag(**_: Any) -> None:  # in the calling thread: concurrent requests lag together
            time.sleep(latency)

        client.meta.events.register("before-send.*.*", lag)
    return client


def _boto_session() -> Any:
    """The module's one boto3 Session; hold ``_CLIENTS_LOCK``.

    One session, so each service's model (EC2's is ~20 MB of dicts once parsed) is loaded
    once and shared by its clients and by :func:`known_region`.
    """
    import boto3

    if not _SESSION:
        _SESSION.append(boto3.session.Session())
    return _SESSION[0]


_REGIONS: list[frozenset[str]] = []  # the commercial partition's regions, read on first use


def known_region(region: str) -> bool:
    """A region of the commercial partition (what botocore's endpoint data lists).

    Read once, under the clients' lock: the engine's first operations arrive together, and
    each asking a fresh botocore session would parse EC2's model again, in every thread.
    """
    if not _REGIONS:
        with _CLIENTS_LOCK:
            if not _REGIONS:
                _REGIONS.append(frozenset(_boto_session().get_available_regions("ec2")))
    return region in _REGIONS[0]


def sdk_error(exc: Exception) -> str:
    """A botocore error as aws-sdk-go-v2 prints it (what pulumi-aws reports)."""
    from botocore.exceptions import ClientError

    if not isinstance(exc, ClientError):
        return f"request send failed: {exc}"
    error = exc.response.get("Error", {})
    meta = exc.response.get("ResponseMetadata", {})
    code, message = error.get("Code", "Unknown"), error.get("Message", "")
    service = getattr(exc, "_service_id", None) or "AWS"
    modeled = getattr(exc, "_modeled", False)
    text = f"{code}: {message}" if modeled else f"api error {code}: {message}"
    return (
        f"operation error {service}: {exc.operation_name}, https response error "
        f"StatusCode: {meta.get('HTTPStatusCode', 0)}, RequestID: {meta.get('RequestId', '')}, "
        f"{text}"
    )


def error_code(exc: Exception) -> str:
    """The AWS error code of a botocore ClientError ('' for anything else)."""
    response = getattr(exc, "response", None) or {}
    return response.get("Error", {}).get("Code", "")


SERVER_ERROR_ATTEMPTS = 3
"""Tries of a call moto answered with an unparseable 500 (see :meth:`AwsCall.__call__`)."""


class AwsCall:
    """Calls one boto3 client; failures become CloudErrors worded like pulumi-aws's."""

    def __init__(self, client: Any, context: str) -> None:
        self.client = client
        self.context = context

    def __call__(self, operation: str, **params: Any) -> dict[str, Any]:
        """``client.<operation>(**params)``; raise CloudError("<context>: <sdk error>")."""
        from botocore.exceptions import BotoCoreError, ClientError
        from botocore.parsers import ResponseParserError  # a plain Exception, not BotoCoreError

        try:
            for attempt in range(SERVER_ERROR_ATTEMPTS):
                try:
                    return getattr(self.client, operation)(**params)
                except ResponseParserError:
                    # moto answers an exception inside its server with an HTML 500 page, which
                    # botocore cannot parse and does not retry. The real provider's SDK
                    # (aws-sdk-go-v2) retries any 500 (retry.RetryableHTTPStatusCode), so the
                    # fake does too; seen once in CI on AttachRolePolicy.
                    if attempt + 1 == SERVER_ERROR_ATTEMPTS:
                        raise
                    time.sleep(0.2 * (attempt + 1))
            raise AssertionError("unreachable")  # pragma: no cover
        except ClientError as exc:
            self._annotate(exc)
            raise AwsError(f"{self.context}: {sdk_error(exc)}", error_code(exc)) from None
        except (BotoCoreError, ResponseParserError) as exc:
            raise AwsError(f"{self.context}: {sdk_error(exc)}", "") from None

    def _annotate(self, exc: Any) -> None:
        model = self.client.meta.service_model
        exc._service_id = model.service_id
        code = error_code(exc)
        exc._modeled = any(
            code in (shape.name, shape.metadata.get("error", {}).get("code"))
            or shape.name == code + "Exception"
            for shape in model.error_shapes
        )


class AwsError(CloudError):
    """A failed AWS call; ``code`` is AWS's error code (``NoSuchEntity``...)."""

    def __init__(self, message: str, code: str) -> None:
        super().__init__(message)
        self.code = code


# --------------------------------------------------------------- base type
class AwsResource(ResourceType):
    """pulumi-aws conventions: region default, tags/tagsAll, JSON documents, TF error texts.

    Subclasses set ``service`` (boto3 name) and implement ``create``, ``fetch`` (the cloud's
    current outputs, or None when gone), ``change`` (apply an update) and ``destroy``.
    """

    service: ClassVar[str]
    documents: ClassVar[frozenset[str]] = frozenset()
    """JSON-valued inputs (policies, patterns) compared by meaning, not spelling."""
    not_found: ClassVar[tuple[str, ...]] = ()
    """Error codes meaning the object is gone (reads return None, deletes succeed)."""
    operations: ClassVar[Mapping[str, str]] = {}
    """The API operation of each op (``{"create": "CreateRole", ...}``), for fault texts."""

    @property
    def tagged(self) -> bool:
        """Has ``tags`` (and so ``tagsAll``)."""
        return "tags" in self.inputs

    @property
    def regional(self) -> bool:
        """Has the v7 per-resource ``region`` input."""
        return "region" in self.inputs

    # ---- engine-facing
    def plan(self, ctx: Context, inputs: Mapping[str, Any]) -> dict[str, Any]:
        """The region is known at plan time (pulumi-aws v7 fills it from the provider)."""
        outputs = dict(inputs)
        if self.regional and not outputs.get("region"):
            region = provider_region(ctx.config, ctx.env)
            if region:
                outputs["region"] = region
        return outputs

    def equal(self, key: str, old: Any, new: Any) -> bool:
        """Documents by meaning; everything else exactly."""
        if key in self.documents and isinstance(new, str):
            return json_equivalent(old, new)
        return old == new

    # ---- cloud access
    def region_of(self, ctx: Context, inputs: Mapping[str, Any]) -> str:
        """The resource's region: its own ``region`` input, else the provider's."""
        region = inputs.get("region") if self.regional else None
        region = region or provider_region(ctx.config, ctx.env) or "us-east-1"
        if not known_region(region):
            host = f"{self.service}.{region}.amazonaws.com"
            raise CloudError(
                f"operation error {SERVICE_IDS[self.service]}: request send failed, "
                f'Post "https://{host}/": dial tcp: lookup {host}: no such host'
            )
        return region

    def api(
        self, ctx: Context, inputs: Mapping[str, Any], context: str, service: str | None = None
    ) -> AwsCall:
        """An :class:`AwsCall` on this type's service in the resource's region."""
        return AwsCall(
            aws_client(ctx, service or self.service, self.region_of(ctx, inputs)), context
        )

    def account(self, ctx: Context) -> str:
        """The account the requests go to."""
        return ctx.env.get(ACCOUNT_ENV) or "123456789012"

    def tags_all(self, ctx: Context, tags: Mapping[str, Any] | None) -> dict[str, str]:
        """``tagsAll``: the provider's default tags overridden by the resource's own."""
        return {**default_tags(ctx), **{k: str(v) for k, v in (tags or {}).items()}}

    def tags_from_cloud(
        self, ctx: Context, olds: Mapping[str, Any], cloud_tags: Mapping[str, str]
    ) -> dict[str, Any]:
        """``tags``/``tagsAll`` after a read: own tags are the cloud's minus provider defaults."""
        defaults = default_tags(ctx)
        own = dict(olds.get("tags") or {})
        tags = {k: v for k, v in cloud_tags.items() if k in own or defaults.get(k) != v}
        return {"tags": tags or olds.get("tags"), "tagsAll": dict(cloud_tags)}

    # ---- the ResourceType contract
    def read(self, ctx: Context, rid: str, olds: Mapping[str, Any]) -> dict[str, Any] | None:
        """Ask the cloud; inputs it cannot report (forceDestroy...) stay as they were."""
        try:
            current = self.fetch(ctx, rid, olds)
        except AwsError as exc:
            if exc.code in self.not_found:
                return None
            raise
        if current is None:
            return None
        return {**olds, **current}

    def fetch(self, ctx: Context, rid: str, olds: Mapping[str, Any]) -> dict[str, Any] | None:
        """The object's current outputs, or None when gone."""
        raise NotImplementedError

    def update(
        self, ctx: Context, rid: str, olds: Mapping[str, Any], news: Mapping[str, Any]
    ) -> dict[str, Any]:
        """Apply the changed mutable inputs, then answer with the new outputs."""
        # The keys Diff reported (the engine updates only when it did).
        changed = {
            k
            for k in self.inputs - self.force_new
            if FakeProvider._diff_key(self, k, olds.get(k), news.get(k))
        }
        outputs = {k: v for k, v in olds.items() if k not in self.inputs or k in news}
        for key in self.optional_computed:
            if key in olds and news.get(key) is None:
                outputs[key] = olds[key]
        outputs.update(self.plan(ctx, news))
        if self.tagged:
            outputs["tagsAll"] = self.tags_all(ctx, news.get("tags"))
            if "tags" in changed:
                self.retag(ctx, rid, olds, outputs)
                changed.discard("tags")
        if changed:
            self.change(ctx, rid, olds, news, changed, outputs)
        return outputs

    def change(
        self,
        ctx: Context,
        rid: str,
        olds: Mapping[str, Any],
        news: Mapping[str, Any],
        changed: set[str],
        outputs: dict[str, Any],
    ) -> None:
        """Apply ``changed`` mutable inputs in the cloud (``outputs`` may be amended)."""
        raise CloudError(
            f"fakecloud aws: updating {', '.join(sorted(changed))} of {self.token} is not "
            "emulated; add it to tests/fakecloud/aws.py"
        )

    def retag(
        self, ctx: Context, rid: str, olds: Mapping[str, Any], outputs: Mapping[str, Any]
    ) -> None:
        """Make the cloud's tags ``outputs["tagsAll"]``."""
        raise CloudError(f"fakecloud aws: retagging {self.token} is not emulated")

    def delete(self, ctx: Context, rid: str, olds: Mapping[str, Any]) -> None:
        """Destroy; an object that is already gone is not an error."""
        try:
            self.destroy(ctx, rid, olds)
        except AwsError as exc:
            if exc.code not in self.not_found:
                raise

    def destroy(self, ctx: Context, rid: str, olds: Mapping[str, Any]) -> None:
        """Delete the object in the cloud."""
        raise NotImplementedError

    # ---- error texts
    def missing_error(self, op: str, rid: str) -> str:
        """terraform-provider-aws's text for an object that vanished."""
        return f"{_VERBS[op]} {self.kind} ({rid}): couldn't find resource"

    def fault_error(self, op: str, ident: str) -> str:
        """An injected failure reads like an AWS outage."""
        return (
            f"{_VERBS[op]} {self.kind} ({ident}): operation error {SERVICE_IDS[self.service]}: "
            f"{self.operations.get(op, op.title())}, https response error StatusCode: 503, "
            f"RequestID: {_request_id()}, api error ServiceUnavailable: Service Unavailable"
        )

    def context(self, op: str, ident: str | None = None) -> str:
        """``creating IAM Role (x)``: how terraform-provider-aws prefixes an API error."""
        return f"{_VERBS[op]} {self.kind}" + (f" ({ident})" if ident else "")


def ops(create: str, update: str, delete: str) -> dict[str, str]:
    """``AwsResource.operations``: the API call behind each op (empty: none)."""
    return {k: v for k, v in (("create", create), ("update", update), ("delete", delete)) if v}


def _tag_list(tags: Mapping[str, str], key: str = "Key", value: str = "Value") -> list[dict]:
    return [{key: k, value: v} for k, v in tags.items()]


def _tag_dict(tags: list[dict] | None, key: str = "Key", value: str = "Value") -> dict[str, str]:
    return {t[key]: t[value] for t in tags or []}


# ------------------------------------------------------------------------ ECS
class Cluster(AwsResource):
    """An ECS cluster; its id is its ARN. CreateCluster on an existing name returns it."""

    token = CLUSTER
    kind = "ECS Cluster"
    service = "ecs"
    inputs = names("configuration name region serviceConnectDefaults settings tags")
    force_new = names("name region")
    optional_computed = names("name region settings configuration serviceConnectDefaults")
    computed = names("arn id tagsAll")
    not_found = ("ClusterNotFoundException",)
    operations = ops("CreateCluster", "UpdateCluster", "DeleteCluster")

    def create(self, ctx: Context, inputs: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
        """ecs:CreateCluster."""
        name = inputs["name"]
        call = self.api(ctx, inputs, self.context("create", name))
        tags = self.tags_all(ctx, inputs.get("tags"))
        params: dict[str, Any] = {"clusterName": name}
        if tags:
            params["tags"] = _tag_list(tags, "key", "value")
        if inputs.get("settings"):
            params["settings"] = inputs["settings"]
        if inputs.get("configuration"):
            params["configuration"] = inputs["configuration"]
        self._service_linked_role(ctx, call)
        cluster = call("create_cluster", **params)["cluster"]
        arn = cluster["clusterArn"]
        outputs = {
            **self.plan(ctx, inputs),
            "arn": arn,
            "id": arn,
            "name": cluster["clusterName"],
            "settings": cluster.get("settings") or [],
            "tagsAll": tags,
        }
        return arn, outputs

    def _service_linked_role(self, ctx: Context, call: AwsCall) -> None:
        """Like ECS, make the account's service-linked role on first use; while it is younger
        than FAKECLOUD_AWS_PROPAGATION_MS, CreateCluster fails as ECS does then
        (terraform-provider-aws#11417)."""
        iam = AwsCall(aws_client(ctx, "iam", None), call.context)
        try:
            created = iam("get_role", RoleName=ECS_SERVICE_ROLE)["Role"]["CreateDate"]
        except AwsError as exc:
            if exc.code != "NoSuchEntity":
                raise
            try:
                created = iam(
                    "create_role",
                    RoleName=ECS_SERVICE_ROLE,
                    Path="/aws-service-role/ecs.amazonaws.com/",
                    AssumeRolePolicyDocument=json.dumps(
                        {
                            "Version": "2012-10-17",
                            "Statement": [
                                {
                                    "Effect": "Allow",
                                    "Principal": {"Service": "ecs.amazonaws.com"},
                                    "Action": "sts:AssumeRole",
                                }
                            ],
                        }
                    ),
                )["Role"]["CreateDate"]
            except AwsError as again:  # another stack's cluster made it meanwhile
                if again.code != "EntityAlreadyExists":
                    raise
                created = iam("get_role", RoleName=ECS_SERVICE_ROLE)["Role"]["CreateDate"]
        if _young(ctx, created):
            raise AwsError(
                f"{call.context}: operation error ECS: CreateCluster, https response error "
                f"StatusCode: 400, RequestID: {_request_id()}, InvalidParameterException: "
                "Unable to assume the service linked role. Please verify that the ECS service "
                "linked role exists.",
                "InvalidParameterException",
            )

    def fetch(self, ctx: Context, rid: str, olds: Mapping[str, Any]) -> dict[str, Any] | None:
        """ecs:DescribeClusters; an INACTIVE cluster is gone."""
        call = self.api(ctx, olds, self.context("read", rid))
        found = call("describe_clusters", clusters=[rid], include=["TAGS", "SETTINGS"])
        clusters = [c for c in found["clusters"] if c.get("status") != "INACTIVE"]
        if not clusters:
            return None
        cluster = clusters[0]
        return {
            "arn": cluster["clusterArn"],
            "name": cluster["clusterName"],
            "settings": cluster.get("settings") or [],
            **self.tags_from_cloud(ctx, olds, _tag_dict(cluster.get("tags"), "key", "value")),
        }

    def change(self, ctx, rid, olds, news, changed, outputs) -> None:
        """ecs:UpdateCluster for settings and configuration."""
        call = self.api(ctx, news, self.context("update", rid))
        params: dict[str, Any] = {"cluster": rid}
        if "settings" in changed:
            params["settings"] = news.get("settings") or []
        if "configuration" in changed and news.get("configuration"):
            params["configuration"] = news["configuration"]
        call("update_cluster", **params)

    def retag(self, ctx, rid, olds, outputs) -> None:
        """ecs:TagResource / UntagResource."""
        call = self.api(ctx, outputs, self.context("update", rid))
        new, old = outputs["tagsAll"], olds.get("tagsAll") or {}
        if set(old) - set(new):
            call("untag_resource", resourceArn=rid, tagKeys=sorted(set(old) - set(new)))
        if new:
            call("tag_resource", resourceArn=rid, tags=_tag_list(new, "key", "value"))

    def destroy(self, ctx: Context, rid: str, olds: Mapping[str, Any]) -> None:
        """ecs:DeleteCluster."""
        self.api(ctx, olds, self.context("delete", rid))("delete_cluster", cluster=rid)


# ------------------------------------------------------------------ CloudWatch Logs
class LogGroup(AwsResource):
    """A log group; its id is its name and its ``arn`` has no ``:*`` suffix."""

    token = LOG_GROUP
    kind = "CloudWatch Logs Log Group"
    service = "logs"
    inputs = names(
        "deletionProtectionEnabled kmsKeyId logGroupClass name namePrefix region "
        "retentionInDays skipDestroy tags"
    )
    force_new = names("name namePrefix logGroupClass region")
    optional_computed = names("name namePrefix logGroupClass deletionProtectionEnabled region")
    defaults = {"retentionInDays": 0, "skipDestroy": False}
    computed = names("arn id tagsAll")
    not_found = ("ResourceNotFoundException",)
    operations = ops("CreateLogGroup", "PutRetentionPolicy", "DeleteLogGroup")

    def validate(self, ctx: Context, inputs: Mapping[str, Any]) -> list[tuple[str, str]]:
        """retention_in_days is one of CloudWatch's periods; names are 1-512 characters."""
        problems = []
        days = inputs.get("retentionInDays")
        if isinstance(days, int | float) and days not in LOG_RETENTION_DAYS:
            listed = " ".join(str(d) for d in LOG_RETENTION_DAYS)
            problems.append(
                (
                    "retentionInDays",
                    f"expected retention_in_days to be one of [{listed}], got {int(days)}",
                )
            )
        name = _known_str(inputs, "name")
        if name is not None and not re.fullmatch(r"[\.\-_/#A-Za-z0-9]{1,512}", name):
            problems.append(
                ("name", f"invalid value for name (must be a valid log group name: {name})")
            )
        return problems

    def create(self, ctx: Context, inputs: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
        """logs:CreateLogGroup, then PutRetentionPolicy."""
        name = inputs["name"]
        call = self.api(ctx, inputs, self.context("create", name))
        tags = self.tags_all(ctx, inputs.get("tags"))
        params: dict[str, Any] = {"logGroupName": name}
        if tags:
            params["tags"] = tags
        if inputs.get("kmsKeyId"):
            params["kmsKeyId"] = inputs["kmsKeyId"]
        if inputs.get("logGroupClass"):
            params["logGroupClass"] = inputs["logGroupClass"]
        call("create_log_group", **params)
        days = int(inputs.get("retentionInDays") or 0)
        if days:
            put = self.api(
                ctx, inputs, f"setting CloudWatch Logs Log Group ({name}) retention policy"
            )
            put("put_retention_policy", logGroupName=name, retentionInDays=days)
        current = self.fetch(ctx, name, inputs) or {}
        outputs = {**self.plan(ctx, inputs), **current, "id": name, "tagsAll": tags}
        outputs["tags"] = inputs.get("tags")
        return name, outputs

    def fetch(self, ctx: Context, rid: str, olds: Mapping[str, Any]) -> dict[str, Any] | None:
        """logs:DescribeLogGroups (by prefix, then the exact name)."""
        call = self.api(ctx, olds, self.context("read", rid))
        groups = call("describe_log_groups", logGroupNamePrefix=rid)["logGroups"]
        group = next((g for g in groups if g["logGroupName"] == rid), None)
        if group is None:
            return None
        arn = group.get("logGroupArn") or group["arn"].removesuffix(":*")
        tags = call("list_tags_for_resource", resourceArn=arn).get("tags") or {}
        return {
            "arn": arn,
            "name": rid,
            "retentionInDays": group.get("retentionInDays") or 0,
            "kmsKeyId": group.get("kmsKeyId") or "",
            "logGroupClass": group.get("logGroupClass") or "STANDARD",
            "deletionProtectionEnabled": bool(group.get("deletionProtectionEnabled", False)),
            **self.tags_from_cloud(ctx, olds, tags),
        }

    def change(self, ctx, rid, olds, news, changed, outputs) -> None:
        """Retention (Put/DeleteRetentionPolicy) and the KMS key (Associate/DisassociateKmsKey)."""
        call = self.api(ctx, news, self.context("update", rid))
        if "retentionInDays" in changed:
            days = int(news.get("retentionInDays") or 0)
            if days:
                call("put_retention_policy", logGroupName=rid, retentionInDays=days)
            else:
                call("delete_retention_policy", logGroupName=rid)
        if "kmsKeyId" in changed:
            if news.get("kmsKeyId"):
                call("associate_kms_key", logGroupName=rid, kmsKeyId=news["kmsKeyId"])
            else:
                call("disassociate_kms_key", logGroupName=rid)
        changed -= {"retentionInDays", "kmsKeyId", "skipDestroy"}
        if changed:
            super().change(ctx, rid, olds, news, changed, outputs)

    def retag(self, ctx, rid, olds, outputs) -> None:
        """logs:TagResource / UntagResource on the group's ARN."""
        call = self.api(ctx, outputs, self.context("update", rid))
        new, old = outputs["tagsAll"], olds.get("tagsAll") or {}
        if set(old) - set(new):
            call("untag_resource", resourceArn=olds["arn"], tagKeys=sorted(set(old) - set(new)))
        if new:
            call("tag_resource", resourceArn=olds["arn"], tags=new)

    def destroy(self, ctx: Context, rid: str, olds: Mapping[str, Any]) -> None:
        """logs:DeleteLogGroup, unless ``skipDestroy`` (then only forgotten)."""
        if not olds.get("skipDestroy"):
            self.api(ctx, olds, self.context("delete", rid))("delete_log_group", logGroupName=rid)


# ------------------------------------------------------------------------ IAM
class IamResource(AwsResource):
    """IAM is global: no ``region`` input, every call goes to us-east-1."""

    service = "iam"
    not_found = ("NoSuchEntity",)

    def validate(self, ctx: Context, inputs: Mapping[str, Any]) -> list[tuple[str, str]]:
        """Names: IAM's character set and length; documents: valid JSON."""
        problems = []
        name = _known_str(inputs, "name")
        limit = getattr(self, "name_max", 0)
        if name is not None and limit:
            if len(name) > limit:
                problems.append(
                    (
                        "name",
                        f"expected length of name to be in the range (1 - {limit}), got {name}",
                    )
                )
            if not _IAM_NAME.match(name):
                problems.append(
                    (
                        "name",
                        "invalid value for name (must only contain alphanumeric characters, "
                        "hyphens, underscores, commas, periods, @ symbols, plus and equals signs)",
                    )
                )
        for key in self.documents:
            doc = _known_str(inputs, key)
            if doc is None:
                continue
            try:
                json.loads(doc)
            except ValueError as exc:
                problems.append((key, f'"{key}" contains an invalid JSON: {exc}'))
        return problems


class Role(IamResource):
    """An IAM role; its id is its name."""

    token = ROLE
    kind = "IAM Role"
    name_max = 64
    inputs = names(
        "assumeRolePolicy description forceDetachPolicies inlinePolicies managedPolicyArns "
        "maxSessionDuration name namePrefix path permissionsBoundary tags"
    )
    force_new = names("name namePrefix path")
    optional_computed = names("name namePrefix inlinePolicies managedPolicyArns")
    defaults = {"forceDetachPolicies": False, "maxSessionDuration": 3600, "path": "/"}
    computed = names("arn createDate id tagsAll uniqueId")
    documents = names("assumeRolePolicy")
    operations = ops("CreateRole", "UpdateRole", "DeleteRole")

    def create(self, ctx: Context, inputs: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
        """iam:CreateRole."""
        name = inputs["name"]
        call = self.api(ctx, inputs, self.context("create", name))
        tags = self.tags_all(ctx, inputs.get("tags"))
        params: dict[str, Any] = {
            "RoleName": name,
            "Path": inputs.get("path") or "/",
            "AssumeRolePolicyDocument": inputs["assumeRolePolicy"],
            "MaxSessionDuration": int(inputs.get("maxSessionDuration") or 3600),
        }
        if inputs.get("description"):
            params["Description"] = inputs["description"]
        if inputs.get("permissionsBoundary"):
            params["PermissionsBoundary"] = inputs["permissionsBoundary"]
        if tags:
            params["Tags"] = _tag_list(tags)
        role = call("create_role", **params)["Role"]
        outputs = {
            **self.plan(ctx, inputs),
            "arn": role["Arn"],
            "id": name,
            "name": name,
            "uniqueId": role["RoleId"],
            "createDate": _iso(role["CreateDate"]),
            "description": inputs.get("description") or "",
            "inlinePolicies": [],
            "managedPolicyArns": [],
            "tagsAll": tags,
        }
        return name, outputs

    def fetch(self, ctx: Context, rid: str, olds: Mapping[str, Any]) -> dict[str, Any] | None:
        """iam:GetRole and the role's policies."""
        call = self.api(ctx, olds, self.context("read", rid))
        role = call("get_role", RoleName=rid)["Role"]
        attached = call("list_attached_role_policies", RoleName=rid)["AttachedPolicies"]
        inline = call("list_role_policies", RoleName=rid)["PolicyNames"]
        return {
            "arn": role["Arn"],
            "name": role["RoleName"],
            "path": role["Path"],
            "uniqueId": role["RoleId"],
            "createDate": _iso(role["CreateDate"]),
            "description": role.get("Description") or "",
            "maxSessionDuration": role.get("MaxSessionDuration", 3600),
            "assumeRolePolicy": _keep_equivalent(
                olds.get("assumeRolePolicy"), role["AssumeRolePolicyDocument"]
            ),
            "permissionsBoundary": (role.get("PermissionsBoundary") or {}).get(
                "PermissionsBoundaryArn"
            ),
            "managedPolicyArns": sorted(p["PolicyArn"] for p in attached),
            "inlinePolicies": [
                {
                    "name": p,
                    "policy": json.dumps(
                        call("get_role_policy", RoleName=rid, PolicyName=p)["PolicyDocument"]
                    ),
                }
                for p in inline
            ],
            **self.tags_from_cloud(ctx, olds, _tag_dict(role.get("Tags"))),
        }

    def change(self, ctx, rid, olds, news, changed, outputs) -> None:
        """UpdateAssumeRolePolicy, UpdateRole, Put/DeleteRolePermissionsBoundary."""
        call = self.api(ctx, news, self.context("update", rid))
        if "assumeRolePolicy" in changed:
            call("update_assume_role_policy", RoleName=rid, PolicyDocument=news["assumeRolePolicy"])
        if changed & {"description", "maxSessionDuration"}:
            call(
                "update_role",
                RoleName=rid,
                Description=news.get("description") or "",
                MaxSessionDuration=int(news.get("maxSessionDuration") or 3600),
            )
        if "permissionsBoundary" in changed:
            if news.get("permissionsBoundary"):
                call(
                    "put_role_permissions_boundary",
                    RoleName=rid,
                    PermissionsBoundary=news["permissionsBoundary"],
                )
            else:
                call("delete_role_permissions_boundary", RoleName=rid)
        changed -= names("assumeRolePolicy description maxSessionDuration permissionsBoundary")
        changed -= {"forceDetachPolicies"}
        if changed:
            super().change(ctx, rid, olds, news, changed, outputs)

    def retag(self, ctx, rid, olds, outputs) -> None:
        """iam:TagRole / UntagRole."""
        call = self.api(ctx, outputs, self.context("update", rid))
        new, old = outputs["tagsAll"], olds.get("tagsAll") or {}
        if set(old) - set(new):
            call("untag_role", RoleName=rid, TagKeys=sorted(set(old) - set(new)))
        if new:
            call("tag_role", RoleName=rid, Tags=_tag_list(new))

    def destroy(self, ctx: Context, rid: str, olds: Mapping[str, Any]) -> None:
        """iam:DeleteRole; with ``forceDetachPolicies`` its policies go first."""
        call = self.api(ctx, olds, self.context("delete", rid))
        if olds.get("forceDetachPolicies"):
            for policy in call("list_attached_role_policies", RoleName=rid)["AttachedPolicies"]:
                call("detach_role_policy", RoleName=rid, PolicyArn=policy["PolicyArn"])
            for policy in call("list_role_policies", RoleName=rid)["PolicyNames"]:
                call("delete_role_policy", RoleName=rid, PolicyName=policy)
        call("delete_role", RoleName=rid)


class RolePolicyAttachment(IamResource):
    """A managed policy attached to a role; the id is ``<role>-<unique suffix>``."""

    token = ROLE_POLICY_ATTACHMENT
    kind = "IAM Role Policy Attachment"
    inputs = names("policyArn role")
    force_new = inputs
    computed = names("id")
    operations = ops("AttachRolePolicy", "", "DetachRolePolicy")
    principal = "role"

    def create(self, ctx: Context, inputs: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
        """iam:AttachRolePolicy (AttachUserPolicy for users)."""
        who, arn = inputs[self.principal], inputs["policyArn"]
        call = self.api(
            ctx, inputs, f"attaching IAM Policy ({arn}) to IAM {self.principal.title()} ({who})"
        )
        self.check_visible(ctx, call, who)
        key = "RoleName" if self.principal == "role" else "UserName"
        call(f"attach_{self.principal}_policy", **{key: who, "PolicyArn": arn})
        rid = _unique_id(f"{who}-")
        return rid, {**self.plan(ctx, inputs), "id": rid}

    def check_visible(self, ctx: Context, call: AwsCall, who: str) -> None:
        """IAM's eventual consistency: a role or user created moments ago is a 404."""
        _check_visible(ctx, call, self.principal, who, f"Attach{self.principal.title()}Policy")

    def fetch(self, ctx: Context, rid: str, olds: Mapping[str, Any]) -> dict[str, Any] | None:
        """Is the policy among the principal's attached policies?"""
        who = olds[self.principal]
        call = self.api(ctx, olds, self.context("read", rid))
        key = "RoleName" if self.principal == "role" else "UserName"
        attached = call(f"list_attached_{self.principal}_policies", **{key: who})
        arns = {p["PolicyArn"] for p in attached["AttachedPolicies"]}
        return {} if olds["policyArn"] in arns else None

    def destroy(self, ctx: Context, rid: str, olds: Mapping[str, Any]) -> None:
        """iam:DetachRolePolicy (DetachUserPolicy)."""
        who, arn = olds[self.principal], olds["policyArn"]
        call = self.api(
            ctx, olds, f"detaching IAM Policy ({arn}) from IAM {self.principal.title()} ({who})"
        )
        key = "RoleName" if self.principal == "role" else "UserName"
        call(f"detach_{self.principal}_policy", **{key: who, "PolicyArn": arn})


class UserPolicyAttachment(RolePolicyAttachment):
    """A managed policy attached to a user; the id is ``<user>-<unique suffix>``."""

    token = USER_POLICY_ATTACHMENT
    kind = "IAM User Policy Attachment"
    inputs = names("policyArn user")
    force_new = inputs
    operations = ops("AttachUserPolicy", "", "DetachUserPolicy")
    principal = "user"


def _young(ctx: Context, created: Any) -> bool:
    """Created less than FAKECLOUD_AWS_PROPAGATION_MS ago: not visible everywhere yet."""
    return _age_ms(created) < _env_number(ctx, PROPAGATION_ENV, 0)


def _check_visible(ctx: Context, call: AwsCall, kind: str, name: str, operation: str) -> None:
    """Fail like IAM does for a role or user it created moments ago (NoSuchEntity, 404)."""
    if not _env_number(ctx, PROPAGATION_ENV, 0):
        return
    iam = AwsCall(aws_client(ctx, "iam", None), call.context)
    try:
        if kind == "role":
            created = iam("get_role", RoleName=name)["Role"]["CreateDate"]
        else:
            created = iam("get_user", UserName=name)["User"]["CreateDate"]
    except AwsError:
        return  # a real absence is moto's to report
    if _young(ctx, created):
        raise AwsError(
            f"{call.context}: operation error IAM: {operation}, https response error StatusCode: "
            f"404, RequestID: {_request_id()}, NoSuchEntity: The {kind} with name {name} cannot "
            "be found.",
            "NoSuchEntity",
        )


class RolePolicy(IamResource):
    """An inline policy of a role; the id is ``<role>:<name>``."""

    token = ROLE_POLICY
    kind = "IAM Role Policy"
    name_max = 128
    inputs = names("name namePrefix policy role")
    force_new = names("name namePrefix role")
    optional_computed = names("name namePrefix")
    computed = names("id")
    documents = names("policy")
    operations = ops("PutRolePolicy", "PutRolePolicy", "DeleteRolePolicy")

    def create(self, ctx: Context, inputs: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
        """iam:PutRolePolicy."""
        name = inputs.get("name") or _unique_id(inputs.get("namePrefix") or "terraform-")
        rid = f"{inputs['role']}:{name}"
        call = self.api(ctx, inputs, f"putting IAM Role Policy ({rid})")
        call(
            "put_role_policy",
            RoleName=inputs["role"],
            PolicyName=name,
            PolicyDocument=inputs["policy"],
        )
        return rid, {**self.plan(ctx, inputs), "id": rid, "name": name}

    def fetch(self, ctx: Context, rid: str, olds: Mapping[str, Any]) -> dict[str, Any] | None:
        """iam:GetRolePolicy."""
        role, _, name = rid.partition(":")
        call = self.api(ctx, olds, self.context("read", rid))
        doc = call("get_role_policy", RoleName=role, PolicyName=name)["PolicyDocument"]
        return {"role": role, "name": name, "policy": _keep_equivalent(olds.get("policy"), doc)}

    def change(self, ctx, rid, olds, news, changed, outputs) -> None:
        """iam:PutRolePolicy again."""
        role, _, name = rid.partition(":")
        call = self.api(ctx, news, f"putting IAM Role Policy ({rid})")
        call("put_role_policy", RoleName=role, PolicyName=name, PolicyDocument=news["policy"])
        outputs["name"] = name

    def destroy(self, ctx: Context, rid: str, olds: Mapping[str, Any]) -> None:
        """iam:DeleteRolePolicy."""
        role, _, name = rid.partition(":")
        self.api(ctx, olds, self.context("delete", rid))(
            "delete_role_policy", RoleName=role, PolicyName=name
        )


class User(IamResource):
    """An IAM user; its id is its name. AWS refuses to delete a user that still has keys."""

    token = USER
    kind = "IAM User"
    name_max = 64
    inputs = names("forceDestroy name path permissionsBoundary tags")
    # terraform-provider-aws renames users in place (UpdateUser), which would change the id
    # under the engine; the fake replaces instead, so a rename never leaves a stale id.
    force_new = names("name")
    defaults = {"forceDestroy": False, "path": "/"}
    computed = names("arn id tagsAll uniqueId")
    operations = ops("CreateUser", "UpdateUser", "DeleteUser")

    def create(self, ctx: Context, inputs: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
        """iam:CreateUser."""
        name = inputs["name"]
        call = self.api(ctx, inputs, self.context("create", name))
        tags = self.tags_all(ctx, inputs.get("tags"))
        params: dict[str, Any] = {"UserName": name, "Path": inputs.get("path") or "/"}
        if inputs.get("permissionsBoundary"):
            params["PermissionsBoundary"] = inputs["permissionsBoundary"]
        if tags:
            params["Tags"] = _tag_list(tags)
        user = call("create_user", **params)["User"]
        outputs = {
            **self.plan(ctx, inputs),
            "arn": user["Arn"],
            "id": name,
            "name": name,
            "uniqueId": user["UserId"],
            "tagsAll": tags,
        }
        return name, outputs

    def fetch(self, ctx: Context, rid: str, olds: Mapping[str, Any]) -> dict[str, Any] | None:
        """iam:GetUser."""
        call = self.api(ctx, olds, self.context("read", rid))
        user = call("get_user", UserName=rid)["User"]
        tags = call("list_user_tags", UserName=rid).get("Tags")
        return {
            "arn": user["Arn"],
            "name": user["UserName"],
            "path": user["Path"],
            "uniqueId": user["UserId"],
            "permissionsBoundary": (user.get("PermissionsBoundary") or {}).get(
                "PermissionsBoundaryArn"
            ),
            **self.tags_from_cloud(ctx, olds, _tag_dict(tags)),
        }

    def change(self, ctx, rid, olds, news, changed, outputs) -> None:
        """iam:UpdateUser (path), Put/DeleteUserPermissionsBoundary."""
        call = self.api(ctx, news, self.context("update", rid))
        if "path" in changed:
            call("update_user", UserName=rid, NewPath=news.get("path") or "/")
        if "permissionsBoundary" in changed:
            if news.get("permissionsBoundary"):
                call(
                    "put_user_permissions_boundary",
                    UserName=rid,
                    PermissionsBoundary=news["permissionsBoundary"],
                )
            else:
                call("delete_user_permissions_boundary", UserName=rid)
        changed -= names("path permissionsBoundary forceDestroy")
        if changed:
            super().change(ctx, rid, olds, news, changed, outputs)

    def retag(self, ctx, rid, olds, outputs) -> None:
        """iam:TagUser / UntagUser."""
        call = self.api(ctx, outputs, self.context("update", rid))
        new, old = outputs["tagsAll"], olds.get("tagsAll") or {}
        if set(old) - set(new):
            call("untag_user", UserName=rid, TagKeys=sorted(set(old) - set(new)))
        if new:
            call("tag_user", UserName=rid, Tags=_tag_list(new))

    def destroy(self, ctx: Context, rid: str, olds: Mapping[str, Any]) -> None:
        """iam:DeleteUser. Keys left behind are AWS's DeleteConflict unless ``forceDestroy``."""
        call = self.api(ctx, olds, self.context("delete", rid))
        keys = call("list_access_keys", UserName=rid)["AccessKeyMetadata"]
        if keys and not olds.get("forceDestroy"):
            # What IAM answers (moto deletes the user anyway).
            request = _request_id()
            raise AwsError(
                f"{call.context}: operation error IAM: DeleteUser, https response error "
                f"StatusCode: 409, RequestID: {request}, DeleteConflict: Cannot delete entity, "
                "must delete access keys first.",
                "DeleteConflict",
            )
        for key in keys:
            call("delete_access_key", UserName=rid, AccessKeyId=key["AccessKeyId"])
        if olds.get("forceDestroy"):
            for policy in call("list_attached_user_policies", UserName=rid)["AttachedPolicies"]:
                call("detach_user_policy", UserName=rid, PolicyArn=policy["PolicyArn"])
            for policy in call("list_user_policies", UserName=rid)["PolicyNames"]:
                call("delete_user_policy", UserName=rid, PolicyName=policy)
        call("delete_user", UserName=rid)


class Policy(IamResource):
    """A customer managed policy; its id is its ARN. Updates add a default version."""

    token = POLICY
    kind = "IAM Policy"
    name_max = 128
    inputs = names("delayAfterPolicyCreationInMs description name namePrefix path policy tags")
    force_new = names("description name namePrefix path")
    optional_computed = names("name namePrefix")
    defaults = {"path": "/"}
    computed = names("arn attachmentCount id policyId tagsAll")
    documents = names("policy")
    operations = ops("CreatePolicy", "CreatePolicyVersion", "DeletePolicy")
    MAX_VERSIONS = 5

    def create(self, ctx: Context, inputs: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
        """iam:CreatePolicy."""
        name = inputs["name"]
        call = self.api(ctx, inputs, self.context("create", name))
        tags = self.tags_all(ctx, inputs.get("tags"))
        params: dict[str, Any] = {
            "PolicyName": name,
            "Path": inputs.get("path") or "/",
            "PolicyDocument": inputs["policy"],
        }
        if inputs.get("description"):
            params["Description"] = inputs["description"]
        if tags:
            params["Tags"] = _tag_list(tags)
        policy = call("create_policy", **params)["Policy"]
        arn = policy["Arn"]
        outputs = {
            **self.plan(ctx, inputs),
            "arn": arn,
            "id": arn,
            "name": name,
            "policyId": policy["PolicyId"],
            "attachmentCount": policy.get("AttachmentCount", 0),
            "description": inputs.get("description") or "",
            "tagsAll": tags,
        }
        return arn, outputs

    def fetch(self, ctx: Context, rid: str, olds: Mapping[str, Any]) -> dict[str, Any] | None:
        """iam:GetPolicy and its default version's document."""
        call = self.api(ctx, olds, self.context("read", rid))
        policy = call("get_policy", PolicyArn=rid)["Policy"]
        version = call("get_policy_version", PolicyArn=rid, VersionId=policy["DefaultVersionId"])
        document = version["PolicyVersion"]["Document"]
        tags = call("list_policy_tags", PolicyArn=rid).get("Tags")
        return {
            "arn": policy["Arn"],
            "name": policy["PolicyName"],
            "path": policy["Path"],
            "policyId": policy["PolicyId"],
            "attachmentCount": policy.get("AttachmentCount", 0),
            "description": policy.get("Description") or "",
            "policy": _keep_equivalent(olds.get("policy"), document),
            **self.tags_from_cloud(ctx, olds, _tag_dict(tags)),
        }

    def change(self, ctx, rid, olds, news, changed, outputs) -> None:
        """A new default version, pruning the oldest when IAM's five are taken."""
        call = self.api(ctx, news, self.context("update", rid))
        if "policy" in changed:
            versions = call("list_policy_versions", PolicyArn=rid)["Versions"]
            if len(versions) >= self.MAX_VERSIONS:
                old = min(
                    (v for v in versions if not v["IsDefaultVersion"]),
                    key=lambda v: v["CreateDate"],
                )
                call("delete_policy_version", PolicyArn=rid, VersionId=old["VersionId"])
            call(
                "create_policy_version",
                PolicyArn=rid,
                PolicyDocument=news["policy"],
                SetAsDefault=True,
            )
        changed -= {"policy", "delayAfterPolicyCreationInMs"}
        if changed:
            super().change(ctx, rid, olds, news, changed, outputs)

    def retag(self, ctx, rid, olds, outputs) -> None:
        """iam:TagPolicy / UntagPolicy."""
        call = self.api(ctx, outputs, self.context("update", rid))
        new, old = outputs["tagsAll"], olds.get("tagsAll") or {}
        if set(old) - set(new):
            call("untag_policy", PolicyArn=rid, TagKeys=sorted(set(old) - set(new)))
        if new:
            call("tag_policy", PolicyArn=rid, Tags=_tag_list(new))

    def destroy(self, ctx: Context, rid: str, olds: Mapping[str, Any]) -> None:
        """Non-default versions first (IAM requires it), then iam:DeletePolicy."""
        call = self.api(ctx, olds, self.context("delete", rid))
        for version in call("list_policy_versions", PolicyArn=rid)["Versions"]:
            if not version["IsDefaultVersion"]:
                call("delete_policy_version", PolicyArn=rid, VersionId=version["VersionId"])
        call("delete_policy", PolicyArn=rid)


def ses_smtp_password_v4(secret: str, region: str) -> str:
    """The SES SMTP password derived from a secret key (terraform-provider-aws's algorithm)."""

    def sign(key: bytes, message: str) -> bytes:
        return hmac.new(key, message.encode(), hashlib.sha256).digest()

    signature = sign(("AWS4" + secret).encode(), "11111111")
    for part in (region, "ses", "aws4_request", "SendRawEmail"):
        signature = sign(signature, part)
    return base64.b64encode(b"\x04" + signature).decode()


class AccessKey(IamResource):
    """An access key of a user: at most two per user (moto enforces it, as IAM does).

    ``secret`` and ``sesSmtpPasswordV4`` exist only in the create answer: never fetched
    again, carried over from the state by Read and Update, as pulumi-aws does.
    """

    token = ACCESS_KEY
    kind = "IAM Access Key"
    inputs = names("pgpKey status user")
    force_new = names("pgpKey user")
    defaults = {"status": "Active"}
    computed = names(
        "createDate encryptedSecret encryptedSesSmtpPasswordV4 id keyFingerprint secret "
        "sesSmtpPasswordV4"
    )
    secret_outputs = names("secret sesSmtpPasswordV4")
    write_only = names("secret sesSmtpPasswordV4")
    operations = ops("CreateAccessKey", "UpdateAccessKey", "DeleteAccessKey")

    def validate(self, ctx: Context, inputs: Mapping[str, Any]) -> list[tuple[str, str]]:
        """status is Active, Inactive or Expired."""
        status = _known_str(inputs, "status")
        if status is not None and status not in ("Active", "Inactive", "Expired"):
            return [
                (
                    "status",
                    f'expected status to be one of ["Active" "Expired" "Inactive"], got {status}',
                )
            ]
        return []

    def create(self, ctx: Context, inputs: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
        """iam:CreateAccessKey (then UpdateAccessKey for a non-Active status)."""
        user = inputs["user"]
        if inputs.get("pgpKey"):
            raise CloudError("fakecloud aws: pgpKey (encrypted secrets) is not emulated")
        call = self.api(ctx, inputs, f"creating IAM Access Key ({user})")
        _check_visible(ctx, call, "user", user, "CreateAccessKey")
        key = call("create_access_key", UserName=user)["AccessKey"]
        status = inputs.get("status") or "Active"
        if status != key["Status"]:
            call("update_access_key", UserName=user, AccessKeyId=key["AccessKeyId"], Status=status)
        region = provider_region(ctx.config, ctx.env) or "us-east-1"
        outputs = {
            **self.plan(ctx, inputs),
            "id": key["AccessKeyId"],
            "createDate": _iso(key["CreateDate"]),
            "secret": key["SecretAccessKey"],
            "sesSmtpPasswordV4": ses_smtp_password_v4(key["SecretAccessKey"], region),
            "status": status,
        }
        return key["AccessKeyId"], outputs

    def fetch(self, ctx: Context, rid: str, olds: Mapping[str, Any]) -> dict[str, Any] | None:
        """Find the key among its user's keys."""
        call = self.api(ctx, olds, self.context("read", rid))
        keys = call("list_access_keys", UserName=olds["user"])["AccessKeyMetadata"]
        key = next((k for k in keys if k["AccessKeyId"] == rid), None)
        if key is None:
            return None
        return {"status": key["Status"], "createDate": _iso(key["CreateDate"])}

    def change(self, ctx, rid, olds, news, changed, outputs) -> None:
        """iam:UpdateAccessKey (status)."""
        call = self.api(ctx, news, self.context("update", rid))
        call("update_access_key", UserName=news["user"], AccessKeyId=rid, Status=news["status"])

    def destroy(self, ctx: Context, rid: str, olds: Mapping[str, Any]) -> None:
        """iam:DeleteAccessKey."""
        self.api(ctx, olds, self.context("delete", rid))(
            "delete_access_key", UserName=olds["user"], AccessKeyId=rid
        )


# ------------------------------------------------------------------------ EC2
class Ec2Resource(AwsResource):
    """EC2 conventions: ids from EC2, tags through CreateTags/DeleteTags, ARNs built by TF."""

    service = "ec2"
    arn_type: ClassVar[str] = ""
    tag_type: ClassVar[str] = ""
    """``ResourceType`` of the create call's TagSpecifications."""

    def arn(self, ctx: Context, inputs: Mapping[str, Any], owner: str, rid: str) -> str:
        """``arn:aws:ec2:<region>:<owner>:<type>/<id>``, as terraform-provider-aws builds it."""
        return f"arn:{PARTITION}:ec2:{self.region_of(ctx, inputs)}:{owner}:{self.arn_type}/{rid}"

    def tag_specs(self, tags: Mapping[str, str]) -> list[dict[str, Any]]:
        """TagSpecifications for a create call (none when there are no tags)."""
        return [{"ResourceType": self.tag_type, "Tags": _tag_list(tags)}] if tags else []

    def retag(self, ctx, rid, olds, outputs) -> None:
        """ec2:DeleteTags / CreateTags."""
        call = self.api(ctx, outputs, self.context("update", rid))
        new, old = outputs["tagsAll"], olds.get("tagsAll") or {}
        if set(old) - set(new):
            call("delete_tags", Resources=[rid], Tags=[{"Key": k} for k in set(old) - set(new)])
        if new:
            call("create_tags", Resources=[rid], Tags=_tag_list(new))


def _cidr_problem(key: str, tf_name: str, value: str | None) -> list[tuple[str, str]]:
    """verify.ValidIPv4CIDRNetworkAddress."""
    if value is None:
        return []
    try:
        net = ipaddress.ip_network(value, strict=False)
    except ValueError as exc:
        return [(key, f'"{tf_name}" must contain a valid CIDR, got error parsing: {exc}')]
    if net.version != 4 or str(net) != value:
        return [
            (key, f'"{tf_name}" must contain a valid network CIDR, expected "{net}", got "{value}"')
        ]
    return []


class Vpc(Ec2Resource):
    """A VPC; EC2 checks the CIDR (/16 to /28). Deleting one that still has subnets fails."""

    token = VPC
    kind = "EC2 VPC"
    arn_type = tag_type = "vpc"
    inputs = names(
        "assignGeneratedIpv6CidrBlock cidrBlock enableDnsHostnames enableDnsSupport "
        "enableNetworkAddressUsageMetrics instanceTenancy ipv4IpamPoolId ipv4NetmaskLength "
        "ipv6CidrBlock ipv6CidrBlockNetworkBorderGroup ipv6IpamPoolId ipv6NetmaskLength region tags"
    )
    force_new = names("cidrBlock ipv4IpamPoolId ipv4NetmaskLength region")
    optional_computed = names(
        "cidrBlock enableDnsHostnames enableNetworkAddressUsageMetrics ipv6CidrBlock "
        "ipv6CidrBlockNetworkBorderGroup ipv6IpamPoolId region"
    )
    defaults = {"enableDnsSupport": True, "instanceTenancy": "default"}
    computed = names(
        "arn defaultNetworkAclId defaultRouteTableId defaultSecurityGroupId dhcpOptionsId id "
        "ipv6AssociationId mainRouteTableId ownerId tagsAll"
    )
    not_found = ("InvalidVpcID.NotFound",)
    operations = ops("CreateVpc", "ModifyVpcAttribute", "DeleteVpc")
    _ATTRIBUTES = {
        "enableDnsSupport": "EnableDnsSupport",
        "enableDnsHostnames": "EnableDnsHostnames",
        "enableNetworkAddressUsageMetrics": "EnableNetworkAddressUsageMetrics",
    }

    def validate(self, ctx: Context, inputs: Mapping[str, Any]) -> list[tuple[str, str]]:
        """cidr_block is an IPv4 network address."""
        return _cidr_problem("cidrBlock", "cidr_block", _known_str(inputs, "cidrBlock"))

    def create(self, ctx: Context, inputs: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
        """ec2:CreateVpc, then ModifyVpcAttribute for the DNS settings."""
        if not inputs.get("cidrBlock"):
            raise CloudError("fakecloud aws: VPCs from IPAM pools are not emulated; give cidrBlock")
        call = self.api(ctx, inputs, self.context("create"))
        tags = self.tags_all(ctx, inputs.get("tags"))
        vpc = call(
            "create_vpc",
            CidrBlock=inputs["cidrBlock"],
            InstanceTenancy=inputs.get("instanceTenancy") or "default",
            TagSpecifications=self.tag_specs(tags),
        )["Vpc"]
        rid = vpc["VpcId"]
        modify = self.api(ctx, inputs, f"modifying EC2 VPC ({rid}) attributes")
        for key, attribute in self._ATTRIBUTES.items():
            if inputs.get(key) is not None and bool(inputs[key]) != (key == "enableDnsSupport"):
                modify(
                    "modify_vpc_attribute", VpcId=rid, **{attribute: {"Value": bool(inputs[key])}}
                )
        outputs = {
            **self.plan(ctx, inputs),
            **self._current(ctx, inputs, vpc),
            "tags": inputs.get("tags"),
            "tagsAll": tags,
        }
        return rid, outputs

    def _current(self, ctx: Context, inputs: Mapping[str, Any], vpc: Mapping[str, Any]) -> dict:
        rid = vpc["VpcId"]
        call = self.api(ctx, inputs, self.context("read", rid))
        by_vpc = [{"Name": "vpc-id", "Values": [rid]}]
        tables = call(
            "describe_route_tables",
            Filters=[*by_vpc, {"Name": "association.main", "Values": ["true"]}],
        )["RouteTables"]
        groups = call(
            "describe_security_groups",
            Filters=[*by_vpc, {"Name": "group-name", "Values": ["default"]}],
        )["SecurityGroups"]
        acls = call(
            "describe_network_acls", Filters=[*by_vpc, {"Name": "default", "Values": ["true"]}]
        )["NetworkAcls"]
        attrs = {
            key: call("describe_vpc_attribute", VpcId=rid, Attribute=attr[0].lower() + attr[1:])[
                attr
            ]["Value"]
            for key, attr in self._ATTRIBUTES.items()
            if key != "enableNetworkAddressUsageMetrics"
        }
        main = tables[0]["RouteTableId"] if tables else ""
        return {
            "id": rid,
            "arn": self.arn(ctx, inputs, vpc["OwnerId"], rid),
            "cidrBlock": vpc["CidrBlock"],
            "instanceTenancy": vpc.get("InstanceTenancy", "default"),
            "dhcpOptionsId": vpc.get("DhcpOptionsId", ""),
            "ownerId": vpc["OwnerId"],
            "mainRouteTableId": main,
            "defaultRouteTableId": main,
            "defaultSecurityGroupId": groups[0]["GroupId"] if groups else "",
            "defaultNetworkAclId": acls[0]["NetworkAclId"] if acls else "",
            "enableNetworkAddressUsageMetrics": bool(
                inputs.get("enableNetworkAddressUsageMetrics", False)
            ),
            "ipv6AssociationId": "",
            "ipv6CidrBlock": "",
            "ipv6CidrBlockNetworkBorderGroup": "",
            **attrs,
        }

    def fetch(self, ctx: Context, rid: str, olds: Mapping[str, Any]) -> dict[str, Any] | None:
        """ec2:DescribeVpcs and the VPC's attributes and default objects."""
        call = self.api(ctx, olds, self.context("read", rid))
        vpc = call("describe_vpcs", VpcIds=[rid])["Vpcs"][0]
        return {
            **self._current(ctx, olds, vpc),
            **self.tags_from_cloud(ctx, olds, _tag_dict(vpc.get("Tags"))),
        }

    def change(self, ctx, rid, olds, news, changed, outputs) -> None:
        """ModifyVpcAttribute (DNS settings), ModifyVpcTenancy."""
        call = self.api(ctx, news, f"modifying EC2 VPC ({rid}) attributes")
        for key, attribute in self._ATTRIBUTES.items():
            if key in changed:
                call(
                    "modify_vpc_attribute", VpcId=rid, **{attribute: {"Value": bool(news.get(key))}}
                )
        if "instanceTenancy" in changed:
            call("modify_vpc_tenancy", VpcId=rid, InstanceTenancy=news["instanceTenancy"])
        changed -= {*self._ATTRIBUTES, "instanceTenancy"}
        if changed:
            super().change(ctx, rid, olds, news, changed, outputs)

    def destroy(self, ctx: Context, rid: str, olds: Mapping[str, Any]) -> None:
        """ec2:DeleteVpc (EC2's DependencyViolation while subnets remain)."""
        self.api(ctx, olds, self.context("delete", rid))("delete_vpc", VpcId=rid)


class Subnet(Ec2Resource):
    """A subnet: its CIDR must lie in its VPC's and not overlap another subnet's."""

    token = SUBNET
    kind = "EC2 Subnet"
    arn_type = tag_type = "subnet"
    inputs = names(
        "assignIpv6AddressOnCreation availabilityZone availabilityZoneId cidrBlock "
        "customerOwnedIpv4Pool enableDns64 enableLniAtDeviceIndex "
        "enableResourceNameDnsARecordOnLaunch enableResourceNameDnsAaaaRecordOnLaunch "
        "ipv4IpamPoolId ipv4NetmaskLength ipv6CidrBlock ipv6IpamPoolId ipv6Native "
        "ipv6NetmaskLength mapCustomerOwnedIpOnLaunch mapPublicIpOnLaunch outpostArn "
        "privateDnsHostnameTypeOnLaunch region tags vpcId"
    )
    force_new = names(
        "availabilityZone availabilityZoneId cidrBlock ipv6Native outpostArn region vpcId "
        "ipv4IpamPoolId ipv4NetmaskLength"
    )
    optional_computed = names(
        "availabilityZone availabilityZoneId cidrBlock enableLniAtDeviceIndex ipv6CidrBlock "
        "privateDnsHostnameTypeOnLaunch region"
    )
    defaults = {
        "assignIpv6AddressOnCreation": False,
        "enableDns64": False,
        "enableResourceNameDnsARecordOnLaunch": False,
        "enableResourceNameDnsAaaaRecordOnLaunch": False,
        "ipv6Native": False,
        "mapPublicIpOnLaunch": False,
    }
    computed = names("arn id ipv6CidrBlockAssociationId ownerId tagsAll")
    not_found = ("InvalidSubnetID.NotFound",)
    operations = ops("CreateSubnet", "ModifySubnetAttribute", "DeleteSubnet")

    def validate(self, ctx: Context, inputs: Mapping[str, Any]) -> list[tuple[str, str]]:
        """cidr_block is an IPv4 network address."""
        return _cidr_problem("cidrBlock", "cidr_block", _known_str(inputs, "cidrBlock"))

    def create(self, ctx: Context, inputs: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
        """ec2:CreateSubnet, then ModifySubnetAttribute for public IPs."""
        call = self.api(ctx, inputs, self.context("create"))
        tags = self.tags_all(ctx, inputs.get("tags"))
        params: dict[str, Any] = {
            "VpcId": inputs["vpcId"],
            "CidrBlock": inputs["cidrBlock"],
            "TagSpecifications": self.tag_specs(tags),
        }
        if inputs.get("availabilityZone"):
            params["AvailabilityZone"] = inputs["availabilityZone"]
        elif inputs.get("availabilityZoneId"):
            params["AvailabilityZoneId"] = inputs["availabilityZoneId"]
        subnet = call("create_subnet", **params)["Subnet"]
        rid = subnet["SubnetId"]
        if inputs.get("mapPublicIpOnLaunch"):
            modify = self.api(ctx, inputs, f"setting EC2 Subnet ({rid}) MapPublicIpOnLaunch")
            modify("modify_subnet_attribute", SubnetId=rid, MapPublicIpOnLaunch={"Value": True})
        outputs = {
            **self.plan(ctx, inputs),
            **self._outputs(ctx, inputs, subnet),
            "mapPublicIpOnLaunch": bool(inputs.get("mapPublicIpOnLaunch")),
            "tags": inputs.get("tags"),
            "tagsAll": tags,
        }
        return rid, outputs

    def _outputs(self, ctx: Context, inputs: Mapping[str, Any], subnet: Mapping[str, Any]) -> dict:
        rid = subnet["SubnetId"]
        dns = subnet.get("PrivateDnsNameOptionsOnLaunch") or {}
        return {
            "id": rid,
            "arn": subnet.get("SubnetArn") or self.arn(ctx, inputs, subnet["OwnerId"], rid),
            "vpcId": subnet["VpcId"],
            "cidrBlock": subnet["CidrBlock"],
            "availabilityZone": subnet["AvailabilityZone"],
            "availabilityZoneId": subnet.get("AvailabilityZoneId", ""),
            "ownerId": subnet["OwnerId"],
            "mapPublicIpOnLaunch": bool(subnet.get("MapPublicIpOnLaunch")),
            "privateDnsHostnameTypeOnLaunch": dns.get("HostnameType", "ip-name"),
            "enableLniAtDeviceIndex": 0,
            "ipv6CidrBlock": "",
            "ipv6CidrBlockAssociationId": "",
        }

    def fetch(self, ctx: Context, rid: str, olds: Mapping[str, Any]) -> dict[str, Any] | None:
        """ec2:DescribeSubnets."""
        call = self.api(ctx, olds, self.context("read", rid))
        subnet = call("describe_subnets", SubnetIds=[rid])["Subnets"][0]
        return {
            **self._outputs(ctx, olds, subnet),
            **self.tags_from_cloud(ctx, olds, _tag_dict(subnet.get("Tags"))),
        }

    def change(self, ctx, rid, olds, news, changed, outputs) -> None:
        """ModifySubnetAttribute (public IPs on launch)."""
        if "mapPublicIpOnLaunch" in changed:
            call = self.api(ctx, news, f"setting EC2 Subnet ({rid}) MapPublicIpOnLaunch")
            value = bool(news.get("mapPublicIpOnLaunch"))
            call("modify_subnet_attribute", SubnetId=rid, MapPublicIpOnLaunch={"Value": value})
            changed.discard("mapPublicIpOnLaunch")
        if changed:
            super().change(ctx, rid, olds, news, changed, outputs)

    def destroy(self, ctx: Context, rid: str, olds: Mapping[str, Any]) -> None:
        """ec2:DeleteSubnet."""
        self.api(ctx, olds, self.context("delete", rid))("delete_subnet", SubnetId=rid)


class InternetGateway(Ec2Resource):
    """An internet gateway, attached to ``vpcId`` (re-attached in place when it changes)."""

    token = INTERNET_GATEWAY
    kind = "EC2 Internet Gateway"
    arn_type = tag_type = "internet-gateway"
    inputs = names("region tags vpcId")
    force_new = names("region")
    optional_computed = names("region")
    computed = names("arn id ownerId tagsAll")
    not_found = ("InvalidInternetGatewayID.NotFound",)
    operations = ops("CreateInternetGateway", "AttachInternetGateway", "DeleteInternetGateway")

    def create(self, ctx: Context, inputs: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
        """ec2:CreateInternetGateway, then AttachInternetGateway."""
        call = self.api(ctx, inputs, self.context("create"))
        tags = self.tags_all(ctx, inputs.get("tags"))
        gateway = call("create_internet_gateway", TagSpecifications=self.tag_specs(tags))
        gateway = gateway["InternetGateway"]
        rid = gateway["InternetGatewayId"]
        if inputs.get("vpcId"):
            attach = self.api(
                ctx, inputs, f"attaching EC2 Internet Gateway ({rid}) to VPC ({inputs['vpcId']})"
            )
            attach("attach_internet_gateway", InternetGatewayId=rid, VpcId=inputs["vpcId"])
        owner = gateway.get("OwnerId") or self.account(ctx)
        outputs = {
            **self.plan(ctx, inputs),
            "id": rid,
            "arn": self.arn(ctx, inputs, owner, rid),
            "ownerId": owner,
            "tagsAll": tags,
        }
        return rid, outputs

    def fetch(self, ctx: Context, rid: str, olds: Mapping[str, Any]) -> dict[str, Any] | None:
        """ec2:DescribeInternetGateways."""
        call = self.api(ctx, olds, self.context("read", rid))
        found = call("describe_internet_gateways", InternetGatewayIds=[rid])
        gateway = found["InternetGateways"][0]
        attached = [a["VpcId"] for a in gateway.get("Attachments") or []]
        return {
            "vpcId": attached[0] if attached else None,
            **self.tags_from_cloud(ctx, olds, _tag_dict(gateway.get("Tags"))),
        }

    def change(self, ctx, rid, olds, news, changed, outputs) -> None:
        """Detach from the old VPC, attach to the new one."""
        call = self.api(ctx, news, self.context("update", rid))
        if olds.get("vpcId"):
            call("detach_internet_gateway", InternetGatewayId=rid, VpcId=olds["vpcId"])
        if news.get("vpcId"):
            call("attach_internet_gateway", InternetGatewayId=rid, VpcId=news["vpcId"])

    def destroy(self, ctx: Context, rid: str, olds: Mapping[str, Any]) -> None:
        """Detach, then ec2:DeleteInternetGateway."""
        call = self.api(ctx, olds, self.context("delete", rid))
        if olds.get("vpcId"):
            with contextlib.suppress(AwsError):  # already detached
                call("detach_internet_gateway", InternetGatewayId=rid, VpcId=olds["vpcId"])
        call("delete_internet_gateway", InternetGatewayId=rid)


_ROUTE_TARGETS = {
    "carrierGatewayId": "CarrierGatewayId",
    "coreNetworkArn": "CoreNetworkArn",
    "egressOnlyGatewayId": "EgressOnlyInternetGatewayId",
    "gatewayId": "GatewayId",
    "localGatewayId": "LocalGatewayId",
    "natGatewayId": "NatGatewayId",
    "networkInterfaceId": "NetworkInterfaceId",
    "odbNetworkArn": "OdbNetworkArn",
    "transitGatewayId": "TransitGatewayId",
    "vpcEndpointId": "VpcEndpointId",
    "vpcPeeringConnectionId": "VpcPeeringConnectionId",
}


def _inline_route(route: Mapping[str, Any]) -> dict[str, str]:
    """An EC2 route as a RouteTable ``routes`` element (every field, "" when unset)."""
    out = {key: route.get(api) or "" for key, api in _ROUTE_TARGETS.items()}
    out["cidrBlock"] = route.get("DestinationCidrBlock") or ""
    out["ipv6CidrBlock"] = route.get("DestinationIpv6CidrBlock") or ""
    out["destinationPrefixListId"] = route.get("DestinationPrefixListId") or ""
    return out


def _route_key(route: Mapping[str, Any]) -> str:
    return json.dumps({k: v for k, v in route.items() if v not in (None, "")}, sort_keys=True)


class RouteTable(Ec2Resource):
    """A route table; ``routes`` lists its non-local routes, however they were made."""

    token = ROUTE_TABLE
    kind = "Route Table"
    arn_type = tag_type = "route-table"
    inputs = names("propagatingVgws region routes tags vpcId")
    force_new = names("region vpcId")
    optional_computed = names("propagatingVgws region routes")
    computed = names("arn id ownerId tagsAll")
    not_found = ("InvalidRouteTableID.NotFound",)
    operations = ops("CreateRouteTable", "CreateRoute", "DeleteRouteTable")

    def equal(self, key: str, old: Any, new: Any) -> bool:
        """``routes`` is a set in the schema, and unset fields read back as ""."""
        if key == "routes" and isinstance(old, list) and isinstance(new, list):
            return sorted(map(_route_key, old)) == sorted(map(_route_key, new))
        return super().equal(key, old, new)

    def create(self, ctx: Context, inputs: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
        """ec2:CreateRouteTable, then CreateRoute for each inline route."""
        call = self.api(ctx, inputs, self.context("create"))
        tags = self.tags_all(ctx, inputs.get("tags"))
        table = call(
            "create_route_table", VpcId=inputs["vpcId"], TagSpecifications=self.tag_specs(tags)
        )["RouteTable"]
        rid = table["RouteTableId"]
        for route in inputs.get("routes") or []:
            self._add_route(ctx, inputs, rid, route)
        owner = table.get("OwnerId") or self.account(ctx)
        outputs = {
            **self.plan(ctx, inputs),
            "id": rid,
            "arn": self.arn(ctx, inputs, owner, rid),
            "ownerId": owner,
            "routes": self._routes(ctx, inputs, rid),
            "propagatingVgws": [],
            "tagsAll": tags,
        }
        return rid, outputs

    def _add_route(self, ctx: Context, inputs: Mapping[str, Any], rid: str, route: Mapping) -> None:
        call = self.api(ctx, inputs, f"creating Route in Route Table ({rid})")
        params = {api: route[key] for key, api in _ROUTE_TARGETS.items() if route.get(key)}
        for key, api in (
            ("cidrBlock", "DestinationCidrBlock"),
            ("ipv6CidrBlock", "DestinationIpv6CidrBlock"),
            ("destinationPrefixListId", "DestinationPrefixListId"),
        ):
            if route.get(key):
                params[api] = route[key]
        call("create_route", RouteTableId=rid, **params)

    def _routes(self, ctx: Context, inputs: Mapping[str, Any], rid: str) -> list[dict[str, str]]:
        call = self.api(ctx, inputs, self.context("read", rid))
        table = call("describe_route_tables", RouteTableIds=[rid])["RouteTables"][0]
        return [
            _inline_route(r)
            for r in table.get("Routes") or []
            if r.get("GatewayId") != "local" and r.get("Origin") != "EnableVgwRoutePropagation"
        ]

    def fetch(self, ctx: Context, rid: str, olds: Mapping[str, Any]) -> dict[str, Any] | None:
        """ec2:DescribeRouteTables."""
        call = self.api(ctx, olds, self.context("read", rid))
        table = call("describe_route_tables", RouteTableIds=[rid])["RouteTables"][0]
        return {
            "vpcId": table["VpcId"],
            "routes": self._routes(ctx, olds, rid),
            "propagatingVgws": [v["GatewayId"] for v in table.get("PropagatingVgws") or []],
            **self.tags_from_cloud(ctx, olds, _tag_dict(table.get("Tags"))),
        }

    def change(self, ctx, rid, olds, news, changed, outputs) -> None:
        """Inline routes: delete the removed ones, create the added ones."""
        if "routes" in changed:
            old = {_route_key(r): r for r in olds.get("routes") or []}
            new = {_route_key(r): r for r in news.get("routes") or []}
            call = self.api(ctx, news, f"deleting Route in Route Table ({rid})")
            for key in old.keys() - new.keys():
                route = old[key]
                if route.get("cidrBlock"):
                    call("delete_route", RouteTableId=rid, DestinationCidrBlock=route["cidrBlock"])
            for key in new.keys() - old.keys():
                self._add_route(ctx, news, rid, new[key])
            outputs["routes"] = self._routes(ctx, news, rid)
            changed.discard("routes")
        if changed:
            super().change(ctx, rid, olds, news, changed, outputs)

    def destroy(self, ctx: Context, rid: str, olds: Mapping[str, Any]) -> None:
        """ec2:DeleteRouteTable (DependencyViolation while subnets are associated)."""
        self.api(ctx, olds, self.context("delete", rid))("delete_route_table", RouteTableId=rid)


_UNIQUE_COUNTER = itertools.count(1)


def _unique_suffix() -> str:
    """terraform's PrefixedUniqueId suffix: ``YYYYMMDDHHMMSSmmmm`` then an 8-digit counter."""
    now = datetime.now(UTC)
    stamp = now.strftime("%Y%m%d%H%M%S") + f"{now.microsecond // 100:04d}"
    return f"{stamp}{next(_UNIQUE_COUNTER) % 10**8:08d}"


def _route_id(table: str, destination: str) -> str:
    """terraform-provider-aws's route id: ``r-<table><crc32 of the destination>``."""
    return f"r-{table}{zlib.crc32(destination.encode())}"


class Route(Ec2Resource):
    """One route in a route table; a second route to the same destination is refused."""

    token = ROUTE
    kind = "Route"
    inputs = names(
        "carrierGatewayId coreNetworkArn destinationCidrBlock destinationIpv6CidrBlock "
        "destinationPrefixListId egressOnlyGatewayId gatewayId localGatewayId natGatewayId "
        "networkInterfaceId odbNetworkArn region routeTableId transitGatewayId vpcEndpointId "
        "vpcPeeringConnectionId"
    )
    force_new = names(
        "destinationCidrBlock destinationIpv6CidrBlock destinationPrefixListId region routeTableId"
    )
    optional_computed = names("region")
    computed = names("id instanceId instanceOwnerId origin state")
    not_found = ("InvalidRouteTableID.NotFound", "InvalidRoute.NotFound")
    operations = ops("CreateRoute", "ReplaceRoute", "DeleteRoute")
    _DESTINATIONS = (
        ("destinationCidrBlock", "DestinationCidrBlock"),
        ("destinationIpv6CidrBlock", "DestinationIpv6CidrBlock"),
        ("destinationPrefixListId", "DestinationPrefixListId"),
    )

    def _destination(self, inputs: Mapping[str, Any]) -> tuple[str, str]:
        for key, api in self._DESTINATIONS:
            if inputs.get(key):
                return api, inputs[key]
        raise CloudError(
            "one of `destination_cidr_block,destination_ipv6_cidr_block,"
            "destination_prefix_list_id` must be specified"
        )

    def _targets(self, inputs: Mapping[str, Any]) -> dict[str, str]:
        return {api: inputs[key] for key, api in _ROUTE_TARGETS.items() if inputs.get(key)}

    def create(self, ctx: Context, inputs: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
        """ec2:CreateRoute."""
        table = inputs["routeTableId"]
        api, destination = self._destination(inputs)
        call = self.api(
            ctx, inputs, f"creating Route in Route Table ({table}) with destination ({destination})"
        )
        call("create_route", RouteTableId=table, **{api: destination}, **self._targets(inputs))
        rid = _route_id(table, destination)
        outputs = {
            **{key: "" for key in _ROUTE_TARGETS},
            **self.plan(ctx, inputs),
            "id": rid,
            "origin": "CreateRoute",
            "state": "active",
            "instanceId": "",
            "instanceOwnerId": "",
        }
        return rid, outputs

    import_ids = True

    def fetch(self, ctx: Context, rid: str, olds: Mapping[str, Any]) -> dict[str, Any] | None:
        """Find the route by destination in ec2:DescribeRouteTables.

        An import id ``<table>_<destination>`` stands in for the state it carries.
        """
        if not olds.get("routeTableId"):
            table, _, destination = rid.partition("_")
            key = "destinationIpv6CidrBlock" if ":" in destination else "destinationCidrBlock"
            olds = {**olds, "routeTableId": table, key: destination}
            rid = _route_id(table, destination)
        table = olds["routeTableId"]
        api, destination = self._destination(olds)
        call = self.api(ctx, olds, self.context("read", rid))
        found = call("describe_route_tables", RouteTableIds=[table])["RouteTables"][0]
        route = next((r for r in found.get("Routes") or [] if r.get(api) == destination), None)
        if route is None:
            return None
        return {
            "id": rid,
            "routeTableId": table,
            next(k for k, a in self._DESTINATIONS if a == api): destination,
            **{key: route.get(api) or "" for key, api in _ROUTE_TARGETS.items()},
            "origin": route.get("Origin", "CreateRoute"),
            "state": route.get("State", "active"),
        }

    def change(self, ctx, rid, olds, news, changed, outputs) -> None:
        """ec2:ReplaceRoute (a new target)."""
        api, destination = self._destination(news)
        call = self.api(ctx, news, self.context("update", rid))
        call(
            "replace_route",
            RouteTableId=news["routeTableId"],
            **{api: destination},
            **self._targets(news),
        )

    def destroy(self, ctx: Context, rid: str, olds: Mapping[str, Any]) -> None:
        """ec2:DeleteRoute."""
        api, destination = self._destination(olds)
        call = self.api(ctx, olds, self.context("delete", rid))
        call("delete_route", RouteTableId=olds["routeTableId"], **{api: destination})


class RouteTableAssociation(Ec2Resource):
    """A subnet (or gateway) associated with a route table; the id is EC2's ``rtbassoc-``."""

    token = ROUTE_TABLE_ASSOCIATION
    kind = "Route Table Association"
    inputs = names("gatewayId region routeTableId subnetId")
    force_new = names("gatewayId region subnetId")
    optional_computed = names("region")
    computed = names("id")
    not_found = ("InvalidAssociationID.NotFound",)
    operations = ops(
        "AssociateRouteTable", "ReplaceRouteTableAssociation", "DisassociateRouteTable"
    )

    def create(self, ctx: Context, inputs: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
        """ec2:AssociateRouteTable."""
        table = inputs["routeTableId"]
        call = self.api(ctx, inputs, f"creating Route Table ({table}) Association")
        params = {"SubnetId": inputs["subnetId"]} if inputs.get("subnetId") else {}
        if inputs.get("gatewayId"):
            params = {"GatewayId": inputs["gatewayId"]}
        rid = call("associate_route_table", RouteTableId=table, **params)["AssociationId"]
        return rid, {**self.plan(ctx, inputs), "id": rid}

    import_ids = True

    def fetch(self, ctx: Context, rid: str, olds: Mapping[str, Any]) -> dict[str, Any] | None:
        """Find the association in ec2:DescribeRouteTables (also by ``<subnet>/<table>``)."""
        call = self.api(ctx, olds, self.context("read", rid))
        if "/" in rid:  # terraform's import id: the association of that subnet or gateway
            member, _, table_id = rid.partition("/")
            tables = call("describe_route_tables", RouteTableIds=[table_id])["RouteTables"]
            key = "GatewayId" if member.startswith("igw-") else "SubnetId"
            for assoc in (tables[0].get("Associations") or []) if tables else []:
                if assoc.get(key) == member:
                    wire = "gatewayId" if key == "GatewayId" else "subnetId"
                    found = assoc["RouteTableAssociationId"]
                    return {"id": found, "routeTableId": table_id, wire: member}
            return None
        tables = call(
            "describe_route_tables",
            Filters=[{"Name": "association.route-table-association-id", "Values": [rid]}],
        )["RouteTables"]
        for table in tables:
            for assoc in table.get("Associations") or []:
                if assoc.get("RouteTableAssociationId") == rid:
                    return {"id": rid, "routeTableId": table["RouteTableId"]}
        return None

    def change(self, ctx, rid, olds, news, changed, outputs) -> None:
        """ec2:ReplaceRouteTableAssociation (EC2 answers with a new association id)."""
        call = self.api(ctx, news, self.context("update", rid))
        answer = call(
            "replace_route_table_association", AssociationId=rid, RouteTableId=news["routeTableId"]
        )
        outputs["id"] = answer["NewAssociationId"]

    def destroy(self, ctx: Context, rid: str, olds: Mapping[str, Any]) -> None:
        """ec2:DisassociateRouteTable."""
        self.api(ctx, olds, self.context("delete", rid))(
            "disassociate_route_table", AssociationId=rid
        )


_PROTOCOLS = {"all": "-1", "6": "tcp", "17": "udp", "1": "icmp", "58": "icmpv6"}
_RULE_LISTS = ("cidrBlocks", "ipv6CidrBlocks", "prefixListIds", "securityGroups")


def _protocol(value: Any) -> str:
    """terraform-provider-aws's ProtocolForValue: names for numbers, ``-1`` for all."""
    text = str(value).lower()
    return _PROTOCOLS.get(text, text)


def _rule(rule: Mapping[str, Any]) -> dict[str, Any]:
    """A rule with every field, as the state holds it after a read."""
    protocol = _protocol(rule.get("protocol", "-1"))
    out: dict[str, Any] = {
        "protocol": protocol,
        "fromPort": 0 if protocol == "-1" else int(rule.get("fromPort") or 0),
        "toPort": 0 if protocol == "-1" else int(rule.get("toPort") or 0),
        "description": rule.get("description") or "",
        "self": bool(rule.get("self")),
    }
    for key in _RULE_LISTS:
        out[key] = sorted(rule.get(key) or [])
    return out


def _rule_set(rules: Any) -> list[str]:
    return sorted(json.dumps(_rule(r), sort_keys=True) for r in rules or [])


class SecurityGroup(Ec2Resource):
    """A security group with inline rules. Like terraform-provider-aws, create removes
    EC2's default allow-all egress rule, so only the declared rules exist."""

    token = SECURITY_GROUP
    kind = "Security Group"
    arn_type = tag_type = "security-group"
    inputs = names(
        "description egress ingress name namePrefix region revokeRulesOnDelete tags vpcId"
    )
    force_new = names("description name namePrefix region vpcId")
    optional_computed = names("egress ingress name namePrefix region vpcId")
    defaults = {"description": "Managed by Pulumi", "revokeRulesOnDelete": False}
    computed = names("arn id ownerId tagsAll")
    not_found = ("InvalidGroup.NotFound", "InvalidGroupId.NotFound")
    operations = ops("CreateSecurityGroup", "AuthorizeSecurityGroupIngress", "DeleteSecurityGroup")

    def validate(self, ctx: Context, inputs: Mapping[str, Any]) -> list[tuple[str, str]]:
        """Names: at most 255 characters (prefixes 100), not starting with ``sg-``."""
        problems = []
        for key, limit in (("name", 255), ("namePrefix", 100)):
            name = _known_str(inputs, key)
            if name is None:
                continue
            if len(name) > limit:
                problems.append(
                    (key, f"expected length of {key} to be in the range (0 - {limit}), got {name}")
                )
            if name.startswith("sg-"):
                problems.append((key, f"invalid value for {key} (cannot begin with sg-)"))
        return problems

    def equal(self, key: str, old: Any, new: Any) -> bool:
        """Rules are sets; unset fields, protocol spellings and list order do not matter."""
        if key in ("ingress", "egress") and isinstance(new, list):
            return _rule_set(old) == _rule_set(new)
        return super().equal(key, old, new)

    @staticmethod
    def _permission(rule: Mapping[str, Any], own: str) -> dict[str, Any]:
        rule = _rule(rule)
        extra = {"Description": rule["description"]} if rule["description"] else {}
        perm: dict[str, Any] = {"IpProtocol": rule["protocol"]}
        if rule["protocol"] != "-1":
            perm.update(FromPort=rule["fromPort"], ToPort=rule["toPort"])
        perm["IpRanges"] = [{"CidrIp": c, **extra} for c in rule["cidrBlocks"]]
        perm["Ipv6Ranges"] = [{"CidrIpv6": c, **extra} for c in rule["ipv6CidrBlocks"]]
        perm["PrefixListIds"] = [{"PrefixListId": p, **extra} for p in rule["prefixListIds"]]
        groups = rule["securityGroups"] + ([own] if rule["self"] else [])
        perm["UserIdGroupPairs"] = [{"GroupId": g, **extra} for g in groups]
        return perm

    @staticmethod
    def _rules(perms: list[Mapping[str, Any]], own: str) -> list[dict[str, Any]]:
        rules = []
        for perm in perms:
            sources = [
                *(perm.get("IpRanges") or []),
                *(perm.get("Ipv6Ranges") or []),
                *(perm.get("PrefixListIds") or []),
                *(perm.get("UserIdGroupPairs") or []),
            ]
            groups = [g["GroupId"] for g in perm.get("UserIdGroupPairs") or []]
            rules.append(
                _rule(
                    {
                        "protocol": perm.get("IpProtocol", "-1"),
                        "fromPort": perm.get("FromPort", 0),
                        "toPort": perm.get("ToPort", 0),
                        "cidrBlocks": [r["CidrIp"] for r in perm.get("IpRanges") or []],
                        "ipv6CidrBlocks": [r["CidrIpv6"] for r in perm.get("Ipv6Ranges") or []],
                        "prefixListIds": [
                            p["PrefixListId"] for p in perm.get("PrefixListIds") or []
                        ],
                        "securityGroups": [g for g in groups if g != own],
                        "self": own in groups,
                        "description": next(
                            (s["Description"] for s in sources if s.get("Description")), ""
                        ),
                    }
                )
            )
        return rules

    def _authorize(self, call: AwsCall, rid: str, direction: str, rules: list) -> None:
        if rules:
            call(
                f"authorize_security_group_{direction}",
                GroupId=rid,
                IpPermissions=[self._permission(r, rid) for r in rules],
            )

    def _revoke(self, call: AwsCall, rid: str, direction: str, rules: list) -> None:
        if rules:
            call(
                f"revoke_security_group_{direction}",
                GroupId=rid,
                IpPermissions=[self._permission(r, rid) for r in rules],
            )

    def create(self, ctx: Context, inputs: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
        """ec2:CreateSecurityGroup; revoke the default egress; authorize the declared rules.

        A ``namePrefix`` gets terraform's unique suffix (id.PrefixedUniqueId: a UTC timestamp
        and a counter, 26 digits), so every create makes a new name.
        """
        name = inputs.get("name") or f"{inputs['namePrefix']}{_unique_suffix()}"
        call = self.api(ctx, inputs, self.context("create", name))
        tags = self.tags_all(ctx, inputs.get("tags"))
        params: dict[str, Any] = {
            "GroupName": name,
            "Description": inputs.get("description") or "Managed by Pulumi",
            "TagSpecifications": self.tag_specs(tags),
        }
        if inputs.get("vpcId"):
            params["VpcId"] = inputs["vpcId"]
        rid = call("create_security_group", **params)["GroupId"]
        rules = self.api(ctx, inputs, f"updating Security Group ({rid}) rules")
        default_egress = {"protocol": "-1", "fromPort": 0, "toPort": 0, "cidrBlocks": ["0.0.0.0/0"]}
        if inputs.get("vpcId"):
            self._revoke(rules, rid, "egress", [default_egress])
            self._authorize(rules, rid, "egress", inputs.get("egress") or [])
        self._authorize(rules, rid, "ingress", inputs.get("ingress") or [])
        current = self.fetch(ctx, rid, inputs) or {}
        outputs = {
            **self.plan(ctx, inputs),
            **current,
            "id": rid,
            "tags": inputs.get("tags"),
            "tagsAll": tags,
        }
        return rid, outputs

    def fetch(self, ctx: Context, rid: str, olds: Mapping[str, Any]) -> dict[str, Any] | None:
        """ec2:DescribeSecurityGroups."""
        call = self.api(ctx, olds, self.context("read", rid))
        group = call("describe_security_groups", GroupIds=[rid])["SecurityGroups"][0]
        return {
            "arn": group.get("SecurityGroupArn") or self.arn(ctx, olds, group["OwnerId"], rid),
            "name": group["GroupName"],
            "description": group.get("Description", ""),
            "vpcId": group.get("VpcId", ""),
            "ownerId": group["OwnerId"],
            "ingress": self._rules(group.get("IpPermissions") or [], rid),
            "egress": self._rules(group.get("IpPermissionsEgress") or [], rid),
            **self.tags_from_cloud(ctx, olds, _tag_dict(group.get("Tags"))),
        }

    def change(self, ctx, rid, olds, news, changed, outputs) -> None:
        """Revoke the rules no longer declared, authorize the new ones."""
        call = self.api(ctx, news, f"updating Security Group ({rid}) rules")
        for direction in ("ingress", "egress"):
            if direction not in changed:
                continue
            old = {json.dumps(_rule(r), sort_keys=True): r for r in olds.get(direction) or []}
            new = {json.dumps(_rule(r), sort_keys=True): r for r in news.get(direction) or []}
            self._revoke(call, rid, direction, [old[k] for k in old.keys() - new.keys()])
            self._authorize(call, rid, direction, [new[k] for k in new.keys() - old.keys()])
            outputs[direction] = [_rule(r) for r in new.values()]
        changed -= {"ingress", "egress", "revokeRulesOnDelete"}
        if changed:
            super().change(ctx, rid, olds, news, changed, outputs)

    def destroy(self, ctx: Context, rid: str, olds: Mapping[str, Any]) -> None:
        """ec2:DeleteSecurityGroup (revoking every rule first with ``revokeRulesOnDelete``)."""
        call = self.api(ctx, olds, self.context("delete", rid))
        if olds.get("revokeRulesOnDelete"):
            self._revoke(call, rid, "ingress", olds.get("ingress") or [])
            self._revoke(call, rid, "egress", olds.get("egress") or [])
        call("delete_security_group", GroupId=rid)


# ------------------------------------------------------------------------ ECR
class Repository(AwsResource):
    """A private ECR repository; its id is its name. ``forceDelete`` deletes its images too."""

    token = REPOSITORY
    kind = "ECR Repository"
    service = "ecr"
    inputs = names(
        "encryptionConfigurations forceDelete imageScanningConfiguration imageTagMutability "
        "imageTagMutabilityExclusionFilters name region tags"
    )
    force_new = names("encryptionConfigurations name region")
    optional_computed = names("encryptionConfigurations imageScanningConfiguration name region")
    defaults = {"imageTagMutability": "MUTABLE"}
    computed = names("arn id registryId repositoryUrl tagsAll")
    not_found = ("RepositoryNotFoundException",)
    operations = ops("CreateRepository", "PutImageScanningConfiguration", "DeleteRepository")
    _MUTABILITY = ("MUTABLE", "IMMUTABLE", "IMMUTABLE_WITH_EXCLUSION", "MUTABLE_WITH_EXCLUSION")

    def validate(self, ctx: Context, inputs: Mapping[str, Any]) -> list[tuple[str, str]]:
        """ECR's name pattern (lowercase), the mutability enum."""
        problems = []
        name = _known_str(inputs, "name")
        if name is not None and not (2 <= len(name) <= 256 and _ECR_NAME.match(name)):
            problems.append(
                (
                    "name",
                    "invalid value for name (must satisfy regular expression pattern: "
                    f"{_ECR_NAME.pattern}), got {name}",
                )
            )
        mutability = _known_str(inputs, "imageTagMutability")
        if mutability is not None and mutability not in self._MUTABILITY:
            listed = " ".join(f'"{m}"' for m in self._MUTABILITY)
            problems.append(
                (
                    "imageTagMutability",
                    f"expected image_tag_mutability to be one of [{listed}], got {mutability}",
                )
            )
        return problems

    def create(self, ctx: Context, inputs: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
        """ecr:CreateRepository."""
        name = inputs["name"]
        call = self.api(ctx, inputs, self.context("create", name))
        tags = self.tags_all(ctx, inputs.get("tags"))
        scanning = inputs.get("imageScanningConfiguration") or {}
        encryption = (inputs.get("encryptionConfigurations") or [{}])[0]
        params: dict[str, Any] = {
            "repositoryName": name,
            "imageTagMutability": inputs.get("imageTagMutability") or "MUTABLE",
            "imageScanningConfiguration": {"scanOnPush": bool(scanning.get("scanOnPush"))},
            "encryptionConfiguration": {
                "encryptionType": encryption.get("encryptionType") or "AES256",
                **({"kmsKey": encryption["kmsKey"]} if encryption.get("kmsKey") else {}),
            },
        }
        if tags:
            params["tags"] = _tag_list(tags)
        repo = call("create_repository", **params)["repository"]
        outputs = {**self.plan(ctx, inputs), **self._outputs(repo), "tagsAll": tags}
        return name, outputs

    @staticmethod
    def _outputs(repo: Mapping[str, Any]) -> dict[str, Any]:
        encryption = repo.get("encryptionConfiguration") or {}
        return {
            "id": repo["repositoryName"],
            "name": repo["repositoryName"],
            "arn": repo["repositoryArn"],
            "registryId": repo["registryId"],
            "repositoryUrl": repo["repositoryUri"],
            "imageTagMutability": repo.get("imageTagMutability", "MUTABLE"),
            "imageScanningConfiguration": {
                "scanOnPush": bool((repo.get("imageScanningConfiguration") or {}).get("scanOnPush"))
            },
            "encryptionConfigurations": [
                {
                    "encryptionType": encryption.get("encryptionType", "AES256"),
                    "kmsKey": encryption.get("kmsKey", ""),
                }
            ],
        }

    def fetch(self, ctx: Context, rid: str, olds: Mapping[str, Any]) -> dict[str, Any] | None:
        """ecr:DescribeRepositories."""
        call = self.api(ctx, olds, self.context("read", rid))
        repo = call("describe_repositories", repositoryNames=[rid])["repositories"][0]
        tags = call("list_tags_for_resource", resourceArn=repo["repositoryArn"]).get("tags")
        return {**self._outputs(repo), **self.tags_from_cloud(ctx, olds, _tag_dict(tags))}

    def change(self, ctx, rid, olds, news, changed, outputs) -> None:
        """PutImageScanningConfiguration, PutImageTagMutability."""
        call = self.api(ctx, news, self.context("update", rid))
        if "imageScanningConfiguration" in changed:
            scan = bool((news.get("imageScanningConfiguration") or {}).get("scanOnPush"))
            call(
                "put_image_scanning_configuration",
                repositoryName=rid,
                imageScanningConfiguration={"scanOnPush": scan},
            )
            outputs["imageScanningConfiguration"] = {"scanOnPush": scan}
        if "imageTagMutability" in changed:
            call(
                "put_image_tag_mutability",
                repositoryName=rid,
                imageTagMutability=news.get("imageTagMutability") or "MUTABLE",
            )
        changed -= {"imageScanningConfiguration", "imageTagMutability", "forceDelete"}
        if changed:
            super().change(ctx, rid, olds, news, changed, outputs)

    def retag(self, ctx, rid, olds, outputs) -> None:
        """ecr:TagResource / UntagResource."""
        call = self.api(ctx, outputs, self.context("update", rid))
        new, old = outputs["tagsAll"], olds.get("tagsAll") or {}
        if set(old) - set(new):
            call("untag_resource", resourceArn=olds["arn"], tagKeys=sorted(set(old) - set(new)))
        if new:
            call("tag_resource", resourceArn=olds["arn"], tags=_tag_list(new))

    def destroy(self, ctx: Context, rid: str, olds: Mapping[str, Any]) -> None:
        """ecr:DeleteRepository (RepositoryNotEmptyException with images, unless forced)."""
        call = self.api(ctx, olds, self.context("delete", rid))
        call("delete_repository", repositoryName=rid, force=bool(olds.get("forceDelete")))


class LifecyclePolicy(AwsResource):
    """A repository's lifecycle policy; its id is the repository name."""

    token = LIFECYCLE_POLICY
    kind = "ECR Lifecycle Policy"
    service = "ecr"
    inputs = names("policy region repository")
    force_new = names("region repository")
    optional_computed = names("region")
    computed = names("id registryId")
    documents = names("policy")
    not_found = ("LifecyclePolicyNotFoundException", "RepositoryNotFoundException")
    operations = ops("PutLifecyclePolicy", "PutLifecyclePolicy", "DeleteLifecyclePolicy")

    def create(self, ctx: Context, inputs: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
        """ecr:PutLifecyclePolicy."""
        repo = inputs["repository"]
        call = self.api(ctx, inputs, self.context("create", repo))
        answer = call(
            "put_lifecycle_policy", repositoryName=repo, lifecyclePolicyText=inputs["policy"]
        )
        return repo, {**self.plan(ctx, inputs), "id": repo, "registryId": answer["registryId"]}

    def fetch(self, ctx: Context, rid: str, olds: Mapping[str, Any]) -> dict[str, Any] | None:
        """ecr:GetLifecyclePolicy."""
        call = self.api(ctx, olds, self.context("read", rid))
        policy = call("get_lifecycle_policy", repositoryName=rid)
        return {
            "repository": policy["repositoryName"],
            "registryId": policy["registryId"],
            "policy": _keep_equivalent(olds.get("policy"), policy["lifecyclePolicyText"]),
        }

    def change(self, ctx, rid, olds, news, changed, outputs) -> None:
        """ecr:PutLifecyclePolicy again."""
        call = self.api(ctx, news, self.context("update", rid))
        call("put_lifecycle_policy", repositoryName=rid, lifecyclePolicyText=news["policy"])

    def destroy(self, ctx: Context, rid: str, olds: Mapping[str, Any]) -> None:
        """ecr:DeleteLifecyclePolicy."""
        self.api(ctx, olds, self.context("delete", rid))(
            "delete_lifecycle_policy", repositoryName=rid
        )


# ------------------------------------------------------------------------ SQS
_QUEUE_ATTRIBUTES = {
    "delaySeconds": "DelaySeconds",
    "maxMessageSize": "MaximumMessageSize",
    "messageRetentionSeconds": "MessageRetentionPeriod",
    "receiveWaitTimeSeconds": "ReceiveMessageWaitTimeSeconds",
    "visibilityTimeoutSeconds": "VisibilityTimeout",
    "policy": "Policy",
    "redrivePolicy": "RedrivePolicy",
    "redriveAllowPolicy": "RedriveAllowPolicy",
    "kmsMasterKeyId": "KmsMasterKeyId",
    "kmsDataKeyReusePeriodSeconds": "KmsDataKeyReusePeriodSeconds",
    "sqsManagedSseEnabled": "SqsManagedSseEnabled",
    "fifoQueue": "FifoQueue",
    "contentBasedDeduplication": "ContentBasedDeduplication",
    "deduplicationScope": "DeduplicationScope",
    "fifoThroughputLimit": "FifoThroughputLimit",
}
_QUEUE_INTS = names(
    "delaySeconds maxMessageSize messageRetentionSeconds receiveWaitTimeSeconds "
    "visibilityTimeoutSeconds kmsDataKeyReusePeriodSeconds"
)
_QUEUE_BOOLS = names("sqsManagedSseEnabled fifoQueue contentBasedDeduplication")
_QUEUE_GONE = ("AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist")


def _queue_value(key: str, value: Any) -> str:
    if key in _QUEUE_BOOLS:
        return "true" if value else "false"
    if key in _QUEUE_INTS:
        return str(int(value))
    return str(value)


def queue_url(region: str, account: str, name: str) -> str:
    """A queue's URL as SQS answers it (moto answers with its own host; the fake does not)."""
    return f"https://sqs.{region}.amazonaws.com/{account}/{name}"


class Queue(AwsResource):
    """An SQS queue; its id is its URL."""

    token = QUEUE
    kind = "SQS Queue"
    service = "sqs"
    inputs = names(
        "contentBasedDeduplication deduplicationScope delaySeconds fifoQueue "
        "fifoThroughputLimit kmsDataKeyReusePeriodSeconds kmsMasterKeyId maxMessageSize "
        "messageRetentionSeconds name namePrefix policy receiveWaitTimeSeconds "
        "redriveAllowPolicy redrivePolicy region sqsManagedSseEnabled tags "
        "visibilityTimeoutSeconds"
    )
    force_new = names("fifoQueue name namePrefix region")
    optional_computed = names(
        "deduplicationScope fifoThroughputLimit kmsDataKeyReusePeriodSeconds name namePrefix "
        "policy redriveAllowPolicy redrivePolicy region sqsManagedSseEnabled"
    )
    defaults = {
        "contentBasedDeduplication": False,
        "delaySeconds": 0,
        "fifoQueue": False,
        "maxMessageSize": 262144,
        "messageRetentionSeconds": 345600,
        "receiveWaitTimeSeconds": 0,
        "visibilityTimeoutSeconds": 30,
    }
    computed = names("arn id tagsAll url")
    documents = names("policy redrivePolicy redriveAllowPolicy")
    not_found = _QUEUE_GONE
    operations = ops("CreateQueue", "SetQueueAttributes", "DeleteQueue")

    def validate(self, ctx: Context, inputs: Mapping[str, Any]) -> list[tuple[str, str]]:
        """Queue names: 1-80 alphanumerics, hyphens, underscores (``.fifo`` for FIFO queues)."""
        name = _known_str(inputs, "name")
        if name is None:
            return []
        fifo = inputs.get("fifoQueue") is True
        pattern = r"^[a-zA-Z0-9_-]{1,75}\.fifo$" if fifo else r"^[a-zA-Z0-9_-]{1,80}$"
        if not re.match(pattern, name):
            return [("name", f"invalid queue name: {name}")]
        return []

    def _attributes(self, inputs: Mapping[str, Any], keys: set[str] | None = None) -> dict:
        attributes = {}
        for key, api in _QUEUE_ATTRIBUTES.items():
            if keys is not None and key not in keys:
                continue
            value = inputs.get(key)
            if value is None or (key in ("fifoQueue", "contentBasedDeduplication") and not value):
                if keys is not None and key in self.documents:
                    attributes[api] = ""  # removing a policy
                continue
            attributes[api] = _queue_value(key, value)
        return attributes

    def create(self, ctx: Context, inputs: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
        """sqs:CreateQueue with every attribute."""
        name = inputs["name"]
        call = self.api(ctx, inputs, self.context("create", name))
        tags = self.tags_all(ctx, inputs.get("tags"))
        params: dict[str, Any] = {"QueueName": name, "Attributes": self._attributes(inputs)}
        if tags:
            params["tags"] = tags
        call("create_queue", **params)
        url = queue_url(self.region_of(ctx, inputs), self.account(ctx), name)
        current = self.fetch(ctx, url, inputs) or {}
        outputs = {
            **self.plan(ctx, inputs),
            **current,
            "id": url,
            "url": url,
            "name": name,
            "tags": inputs.get("tags"),
            "tagsAll": tags,
        }
        return url, outputs

    def fetch(self, ctx: Context, rid: str, olds: Mapping[str, Any]) -> dict[str, Any] | None:
        """sqs:GetQueueAttributes and ListQueueTags."""
        call = self.api(ctx, olds, self.context("read", rid))
        attributes = call("get_queue_attributes", QueueUrl=rid, AttributeNames=["All"])
        attributes = attributes.get("Attributes") or {}
        tags = call("list_queue_tags", QueueUrl=rid).get("Tags") or {}
        current: dict[str, Any] = {
            "arn": attributes.get("QueueArn"),
            "url": rid,
            "name": rid.rsplit("/", 1)[-1],
            "kmsDataKeyReusePeriodSeconds": 300,
        }
        for key, api in _QUEUE_ATTRIBUTES.items():
            if api not in attributes:
                continue
            value: Any = attributes[api]
            if key in _QUEUE_INTS:
                value = int(value)
            elif key in _QUEUE_BOOLS:
                value = value.lower() == "true"
            elif key in self.documents:
                value = _keep_equivalent(olds.get(key), value)
            current[key] = value
        current.setdefault("fifoQueue", False)
        current.setdefault("contentBasedDeduplication", False)
        return {**current, **self.tags_from_cloud(ctx, olds, tags)}

    def change(self, ctx, rid, olds, news, changed, outputs) -> None:
        """sqs:SetQueueAttributes with the changed ones."""
        attributes = self._attributes(news, changed & set(_QUEUE_ATTRIBUTES))
        if attributes:
            self.api(ctx, news, self.context("update", rid))(
                "set_queue_attributes", QueueUrl=rid, Attributes=attributes
            )

    def retag(self, ctx, rid, olds, outputs) -> None:
        """sqs:TagQueue / UntagQueue."""
        call = self.api(ctx, outputs, self.context("update", rid))
        new, old = outputs["tagsAll"], olds.get("tagsAll") or {}
        if set(old) - set(new):
            call("untag_queue", QueueUrl=rid, TagKeys=sorted(set(old) - set(new)))
        if new:
            call("tag_queue", QueueUrl=rid, Tags=new)

    def destroy(self, ctx: Context, rid: str, olds: Mapping[str, Any]) -> None:
        """sqs:DeleteQueue."""
        self.api(ctx, olds, self.context("delete", rid))("delete_queue", QueueUrl=rid)


class QueuePolicy(AwsResource):
    """A queue's access policy; its id is the queue URL."""

    token = QUEUE_POLICY
    kind = "SQS Queue Policy"
    service = "sqs"
    inputs = names("policy queueUrl region")
    force_new = names("queueUrl region")
    optional_computed = names("region")
    computed = names("id")
    documents = names("policy")
    not_found = _QUEUE_GONE
    operations = ops("SetQueueAttributes", "SetQueueAttributes", "SetQueueAttributes")

    def create(self, ctx: Context, inputs: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
        """sqs:SetQueueAttributes (Policy)."""
        url = inputs["queueUrl"]
        call = self.api(ctx, inputs, self.context("create", url))
        call("set_queue_attributes", QueueUrl=url, Attributes={"Policy": inputs["policy"]})
        return url, {**self.plan(ctx, inputs), "id": url}

    def fetch(self, ctx: Context, rid: str, olds: Mapping[str, Any]) -> dict[str, Any] | None:
        """The queue's Policy attribute; none means gone."""
        call = self.api(ctx, olds, self.context("read", rid))
        answer = call("get_queue_attributes", QueueUrl=rid, AttributeNames=["Policy"])
        policy = (answer.get("Attributes") or {}).get("Policy")
        if not policy:
            return None
        return {"queueUrl": rid, "policy": _keep_equivalent(olds.get("policy"), policy)}

    def change(self, ctx, rid, olds, news, changed, outputs) -> None:
        """sqs:SetQueueAttributes again."""
        call = self.api(ctx, news, self.context("update", rid))
        call("set_queue_attributes", QueueUrl=rid, Attributes={"Policy": news["policy"]})

    def destroy(self, ctx: Context, rid: str, olds: Mapping[str, Any]) -> None:
        """Clear the Policy attribute."""
        call = self.api(ctx, olds, self.context("delete", rid))
        call("set_queue_attributes", QueueUrl=rid, Attributes={"Policy": ""})


# ----------------------------------------------------------------- EventBridge
class EventRule(AwsResource):
    """An EventBridge rule; its id is its name (``<bus>/<name>`` off the default bus)."""

    token = EVENT_RULE
    kind = "EventBridge Rule"
    service = "events"
    inputs = names(
        "description eventBusName eventPattern forceDestroy isEnabled name namePrefix region "
        "roleArn scheduleExpression state tags"
    )
    force_new = names("eventBusName name namePrefix region")
    optional_computed = names("isEnabled name namePrefix region state")
    defaults = {"eventBusName": "default", "forceDestroy": False}
    computed = names("arn id tagsAll")
    documents = names("eventPattern")
    not_found = ("ResourceNotFoundException",)
    operations = ops("PutRule", "PutRule", "DeleteRule")

    def validate(self, ctx: Context, inputs: Mapping[str, Any]) -> list[tuple[str, str]]:
        """A rule needs an event pattern or a schedule; names are 1-64 characters."""
        problems = []
        if inputs.get("eventPattern") is None and inputs.get("scheduleExpression") is None:
            problems.append(
                ("eventPattern", "one of `event_pattern,schedule_expression` must be specified")
            )
        name = _known_str(inputs, "name")
        if name is not None and not re.match(r"^[\.\-_A-Za-z0-9]{1,64}$", name):
            problems.append(
                ("name", f"invalid value for name (must be 1-64 of [.-_A-Za-z0-9]), got {name}")
            )
        return problems

    @staticmethod
    def _rid(bus: str, name: str) -> str:
        return name if bus in ("", "default") else f"{bus}/{name}"

    @staticmethod
    def _split(rid: str) -> tuple[str, str]:
        bus, _, name = rid.rpartition("/")
        return bus or "default", name

    def _put(self, call: AwsCall, inputs: Mapping[str, Any], tags: Mapping[str, str] | None):
        params: dict[str, Any] = {
            "Name": inputs["name"],
            "EventBusName": inputs.get("eventBusName") or "default",
            "State": self._state(inputs),
        }
        for key, api in (
            ("eventPattern", "EventPattern"),
            ("scheduleExpression", "ScheduleExpression"),
            ("description", "Description"),
            ("roleArn", "RoleArn"),
        ):
            if inputs.get(key):
                params[api] = inputs[key]
        if tags:
            params["Tags"] = _tag_list(tags)
        return call("put_rule", **params)

    @staticmethod
    def _state(inputs: Mapping[str, Any]) -> str:
        if inputs.get("state"):
            return inputs["state"]
        return "DISABLED" if inputs.get("isEnabled") is False else "ENABLED"

    def create(self, ctx: Context, inputs: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
        """events:PutRule."""
        name = inputs["name"]
        call = self.api(ctx, inputs, self.context("create", name))
        tags = self.tags_all(ctx, inputs.get("tags"))
        arn = self._put(call, inputs, tags)["RuleArn"]
        rid = self._rid(inputs.get("eventBusName") or "default", name)
        state = self._state(inputs)
        outputs = {
            **self.plan(ctx, inputs),
            "id": rid,
            "arn": arn,
            "state": state,
            "isEnabled": state == "ENABLED",
            "tagsAll": tags,
        }
        return rid, outputs

    def fetch(self, ctx: Context, rid: str, olds: Mapping[str, Any]) -> dict[str, Any] | None:
        """events:DescribeRule."""
        bus, name = self._split(rid)
        call = self.api(ctx, olds, self.context("read", rid))
        rule = call("describe_rule", Name=name, EventBusName=bus)
        tags = call("list_tags_for_resource", ResourceARN=rule["Arn"]).get("Tags")
        current: dict[str, Any] = {
            "arn": rule["Arn"],
            "name": rule["Name"],
            "eventBusName": rule.get("EventBusName", bus),
            "state": rule.get("State", "ENABLED"),
            "isEnabled": rule.get("State", "ENABLED") == "ENABLED",
            "description": rule.get("Description") or olds.get("description"),
            "scheduleExpression": rule.get("ScheduleExpression") or olds.get("scheduleExpression"),
            "roleArn": rule.get("RoleArn") or olds.get("roleArn"),
        }
        if rule.get("EventPattern"):
            current["eventPattern"] = _keep_equivalent(
                olds.get("eventPattern"), rule["EventPattern"]
            )
        return {**current, **self.tags_from_cloud(ctx, olds, _tag_dict(tags))}

    def change(self, ctx, rid, olds, news, changed, outputs) -> None:
        """events:PutRule with the new settings (PutRule is an upsert)."""
        self._put(self.api(ctx, news, self.context("update", rid)), news, None)
        outputs["state"] = self._state(news)
        outputs["isEnabled"] = outputs["state"] == "ENABLED"

    def retag(self, ctx, rid, olds, outputs) -> None:
        """events:TagResource / UntagResource."""
        call = self.api(ctx, outputs, self.context("update", rid))
        new, old = outputs["tagsAll"], olds.get("tagsAll") or {}
        if set(old) - set(new):
            call("untag_resource", ResourceARN=olds["arn"], TagKeys=sorted(set(old) - set(new)))
        if new:
            call("tag_resource", ResourceARN=olds["arn"], Tags=_tag_list(new))

    def destroy(self, ctx: Context, rid: str, olds: Mapping[str, Any]) -> None:
        """events:DeleteRule (refused while targets remain, unless forced)."""
        bus, name = self._split(rid)
        call = self.api(ctx, olds, self.context("delete", rid))
        call("delete_rule", Name=name, EventBusName=bus, Force=bool(olds.get("forceDestroy")))


_TARGET_FIELDS = {
    "arn": "Arn",
    "roleArn": "RoleArn",
    "input": "Input",
    "inputPath": "InputPath",
}


class EventTarget(AwsResource):
    """A rule's target; the id is ``<rule>-<targetId>`` (``<bus>-<rule>-<targetId>``)."""

    token = EVENT_TARGET
    kind = "EventBridge Target"
    service = "events"
    inputs = names(
        "appsyncTarget arn batchTarget deadLetterConfig ecsTarget eventBusName forceDestroy "
        "httpTarget input inputPath inputTransformer kinesisTarget redshiftTarget region "
        "retryPolicy roleArn rule runCommandTargets sagemakerPipelineTarget sqsTarget targetId"
    )
    force_new = names("eventBusName region rule targetId")
    optional_computed = names("region targetId")
    defaults = {"eventBusName": "default", "forceDestroy": False}
    computed = names("id")
    not_found = ("ResourceNotFoundException",)
    operations = ops("PutTargets", "PutTargets", "RemoveTargets")
    _UNSUPPORTED = names(
        "appsyncTarget batchTarget ecsTarget httpTarget inputTransformer kinesisTarget "
        "redshiftTarget runCommandTargets sagemakerPipelineTarget"
    )

    def _target(self, inputs: Mapping[str, Any], target_id: str) -> dict[str, Any]:
        unsupported = sorted(k for k in self._UNSUPPORTED if inputs.get(k))
        if unsupported:
            raise CloudError(f"fakecloud aws: EventTarget {', '.join(unsupported)} not emulated")
        target = {api: inputs[key] for key, api in _TARGET_FIELDS.items() if inputs.get(key)}
        target["Id"] = target_id
        if inputs.get("sqsTarget"):
            target["SqsParameters"] = {"MessageGroupId": inputs["sqsTarget"].get("messageGroupId")}
        if inputs.get("deadLetterConfig"):
            target["DeadLetterConfig"] = {"Arn": inputs["deadLetterConfig"].get("arn")}
        if inputs.get("retryPolicy"):
            retry = inputs["retryPolicy"]
            target["RetryPolicy"] = {
                "MaximumEventAgeInSeconds": int(retry.get("maximumEventAgeInSeconds") or 86400),
                "MaximumRetryAttempts": int(retry.get("maximumRetryAttempts") or 185),
            }
        return target

    def _put(self, call: AwsCall, inputs: Mapping[str, Any], target_id: str) -> None:
        answer = call(
            "put_targets",
            Rule=inputs["rule"],
            EventBusName=inputs.get("eventBusName") or "default",
            Targets=[self._target(inputs, target_id)],
        )
        if answer.get("FailedEntryCount"):
            entry = answer["FailedEntries"][0]
            raise CloudError(
                f"{call.context}: failure {entry.get('ErrorCode')}: {entry.get('ErrorMessage')}"
            )

    def create(self, ctx: Context, inputs: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
        """events:PutTargets (the rule must exist: EventBridge's ResourceNotFoundException)."""
        target_id = inputs.get("targetId") or _unique_id("terraform-")
        bus = inputs.get("eventBusName") or "default"
        parts = (
            [inputs["rule"], target_id] if bus == "default" else [bus, inputs["rule"], target_id]
        )
        rid = "-".join(parts)
        self._put(self.api(ctx, inputs, self.context("create", rid)), inputs, target_id)
        return rid, {**self.plan(ctx, inputs), "id": rid, "targetId": target_id}

    def fetch(self, ctx: Context, rid: str, olds: Mapping[str, Any]) -> dict[str, Any] | None:
        """events:ListTargetsByRule."""
        call = self.api(ctx, olds, self.context("read", rid))
        targets = call(
            "list_targets_by_rule",
            Rule=olds["rule"],
            EventBusName=olds.get("eventBusName") or "default",
        )["Targets"]
        target = next((t for t in targets if t["Id"] == olds.get("targetId")), None)
        if target is None:
            return None
        return {key: target.get(api) for key, api in _TARGET_FIELDS.items() if target.get(api)}

    def change(self, ctx, rid, olds, news, changed, outputs) -> None:
        """events:PutTargets again (an upsert by target id)."""
        self._put(self.api(ctx, news, self.context("update", rid)), news, olds["targetId"])
        outputs["targetId"] = olds["targetId"]

    def destroy(self, ctx: Context, rid: str, olds: Mapping[str, Any]) -> None:
        """events:RemoveTargets."""
        call = self.api(ctx, olds, self.context("delete", rid))
        call(
            "remove_targets",
            Rule=olds["rule"],
            EventBusName=olds.get("eventBusName") or "default",
            Ids=[olds["targetId"]],
            Force=bool(olds.get("forceDestroy")),
        )


# ------------------------------------------------------------- Secrets Manager
_SECRET_NAME = re.compile(r"^[0-9A-Za-z/_+=.@-]+$")
_SECRET_GONE = ("ResourceNotFoundException",)


def _deleted(exc: AwsError) -> bool:
    """A Secrets Manager answer meaning the secret is scheduled for deletion (gone for TF)."""
    text = str(exc)
    return exc.code == "InvalidRequestException" and (
        "marked deleted" in text or "marked for deletion" in text or "was deleted" in text
    )


class Secret(AwsResource):
    """A Secrets Manager secret; its id is its ARN (the name and six characters AWS picks).

    Reads go through DescribeSecret, which takes a name as well as an ARN, as
    terraform-provider-aws's ``findSecretByID`` does; a secret scheduled for deletion reads as
    gone, and its name stays taken for the recovery window (AWS's InvalidRequestException,
    which moto does not give). ``recoveryWindowInDays`` 0 deletes at once.
    """

    token = SECRET
    kind = "Secrets Manager Secret"
    service = "secretsmanager"
    inputs = names(
        "description forceOverwriteReplicaSecret kmsKeyId name namePrefix policy "
        "recoveryWindowInDays region replicas tags type"
    )
    force_new = names("name namePrefix region")
    optional_computed = names("name namePrefix policy region replicas type")
    defaults = {"forceOverwriteReplicaSecret": False, "recoveryWindowInDays": 30}
    computed = names("arn id tagsAll")
    documents = names("policy")
    not_found = _SECRET_GONE
    operations = ops("CreateSecret", "UpdateSecret", "DeleteSecret")

    def validate(self, ctx: Context, inputs: Mapping[str, Any]) -> list[tuple[str, str]]:
        """The name's character set and 512 limit; a recovery window of 0 or 7 to 30 days."""
        problems = []
        name = _known_str(inputs, "name")
        if name is not None and not (len(name) <= 512 and _SECRET_NAME.match(name)):
            problems.append(
                (
                    "name",
                    "invalid value for name (must contain only alphanumeric characters and the "
                    f"characters /_+=.@-, at most 512), got {name}",
                )
            )
        days = inputs.get("recoveryWindowInDays")
        if isinstance(days, int | float) and not (days == 0 or 7 <= days <= 30):
            problems.append(
                (
                    "recoveryWindowInDays",
                    f"expected recovery_window_in_days to be in the range (7 - 30) or 0, got "
                    f"{int(days)}",
                )
            )
        return problems

    def create(self, ctx: Context, inputs: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
        """secretsmanager:CreateSecret (with a fresh client token, as terraform-provider-aws)."""
        name = inputs["name"]
        for unsupported in ("policy", "replicas", "type"):
            if inputs.get(unsupported):
                raise CloudError(f"fakecloud aws: Secret {unsupported} is not emulated")
        call = self.api(ctx, inputs, self.context("create", name))
        self._name_free(call, name)
        tags = self.tags_all(ctx, inputs.get("tags"))
        params: dict[str, Any] = {
            "Name": name,
            "ClientRequestToken": _request_id(),
            "Description": inputs.get("description") or "",
        }
        if inputs.get("kmsKeyId"):
            params["KmsKeyId"] = inputs["kmsKeyId"]
        if tags:
            params["Tags"] = _tag_list(tags)
        arn = call("create_secret", **params)["ARN"]
        outputs = {
            **self.plan(ctx, inputs),
            **(self.fetch(ctx, arn, inputs) or {}),
            "id": arn,
            "tags": inputs.get("tags"),
            "tagsAll": tags,
        }
        return arn, outputs

    def _name_free(self, call: AwsCall, name: str) -> None:
        """AWS keeps a deleted secret's name through its recovery window; moto answers that
        case as an existing secret, so it is checked here first."""
        try:
            current = call("describe_secret", SecretId=name)
        except AwsError as exc:
            if exc.code in _SECRET_GONE:
                return
            raise
        if current.get("DeletedDate"):
            raise AwsError(
                f"{call.context}: operation error Secrets Manager: CreateSecret, https response "
                f"error StatusCode: 400, RequestID: {_request_id()}, InvalidRequestException: "
                "You can't create this secret because a secret with this name is already "
                "scheduled for deletion.",
                "InvalidRequestException",
            )

    def fetch(self, ctx: Context, rid: str, olds: Mapping[str, Any]) -> dict[str, Any] | None:
        """secretsmanager:DescribeSecret; a secret scheduled for deletion is gone."""
        call = self.api(ctx, olds, self.context("read", rid))
        secret = call("describe_secret", SecretId=rid)
        if secret.get("DeletedDate"):
            return None
        return {
            "arn": secret["ARN"],
            "name": secret["Name"],
            "namePrefix": "",
            "description": secret.get("Description") or "",
            "kmsKeyId": secret.get("KmsKeyId") or "",
            "policy": "",
            "replicas": [],
            **self.tags_from_cloud(ctx, olds, _tag_dict(secret.get("Tags"))),
        }

    def change(self, ctx, rid, olds, news, changed, outputs) -> None:
        """secretsmanager:UpdateSecret (description, key); the window is the state's alone."""
        if changed & {"description", "kmsKeyId"}:
            params: dict[str, Any] = {
                "SecretId": rid,
                "ClientRequestToken": _request_id(),
                "Description": news.get("description") or "",
            }
            if news.get("kmsKeyId"):
                params["KmsKeyId"] = news["kmsKeyId"]
            self.api(ctx, news, self.context("update", rid))("update_secret", **params)
        changed -= {
            "description",
            "kmsKeyId",
            "recoveryWindowInDays",
            "forceOverwriteReplicaSecret",
        }
        if changed:
            super().change(ctx, rid, olds, news, changed, outputs)

    def retag(self, ctx, rid, olds, outputs) -> None:
        """secretsmanager:TagResource / UntagResource."""
        call = self.api(ctx, outputs, self.context("update", rid))
        new, old = outputs["tagsAll"], olds.get("tagsAll") or {}
        if set(old) - set(new):
            call("untag_resource", SecretId=rid, TagKeys=sorted(set(old) - set(new)))
        if new:
            call("tag_resource", SecretId=rid, Tags=_tag_list(new))

    def destroy(self, ctx: Context, rid: str, olds: Mapping[str, Any]) -> None:
        """secretsmanager:DeleteSecret: at once with a window of 0, else scheduled."""
        call = self.api(ctx, olds, self.context("delete", rid))
        window = olds.get("recoveryWindowInDays")
        days = 30 if window is None else int(window)
        if days == 0:
            call("delete_secret", SecretId=rid, ForceDeleteWithoutRecovery=True)
        else:
            call("delete_secret", SecretId=rid, RecoveryWindowInDays=days)


class SecretVersion(AwsResource):
    """A value of a secret: PutSecretValue. The id is ``<secret id>|<version id>``.

    Read answers the value AWS holds (GetSecretValue), as terraform-provider-aws does, marked
    secret. Delete only takes the labels other than AWSCURRENT off the version: AWS refuses to
    remove that one, and the version goes with its secret.
    """

    token = SECRET_VERSION
    kind = "Secrets Manager Secret Version"
    service = "secretsmanager"
    inputs = names(
        "region secretBinary secretId secretString secretStringWo secretStringWoVersion "
        "versionStages"
    )
    force_new = names("region secretBinary secretId secretString secretStringWoVersion")
    optional_computed = names("region versionStages")
    computed = names("arn hasSecretStringWo id secretArn versionId")
    secret_outputs = names("secretBinary secretString")
    not_found = _SECRET_GONE
    operations = ops("PutSecretValue", "UpdateSecretVersionStage", "UpdateSecretVersionStage")

    def create(self, ctx: Context, inputs: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
        """secretsmanager:PutSecretValue (the secret must exist and not be deleted)."""
        secret_id = inputs["secretId"]
        if inputs.get("secretStringWo") or inputs.get("secretBinary"):
            raise CloudError(
                "fakecloud aws: SecretVersion secretStringWo/secretBinary not emulated"
            )
        call = self.api(ctx, inputs, f"putting Secrets Manager Secret ({secret_id}) value")
        if inputs.get("secretString") is None:
            raise AwsError(
                f"{call.context}: operation error Secrets Manager: PutSecretValue, https response "
                f"error StatusCode: 400, RequestID: {_request_id()}, InvalidRequestException: "
                "You must provide either SecretString or SecretBinary.",
                "InvalidRequestException",
            )
        params: dict[str, Any] = {
            "SecretId": secret_id,
            "ClientRequestToken": _request_id(),
            "SecretString": inputs["secretString"],
        }
        if inputs.get("versionStages"):
            params["VersionStages"] = list(inputs["versionStages"])
        version = call("put_secret_value", **params)["VersionId"]
        rid = f"{secret_id}|{version}"
        outputs = {**self.plan(ctx, inputs), **(self.fetch(ctx, rid, inputs) or {}), "id": rid}
        return rid, outputs

    def fetch(self, ctx: Context, rid: str, olds: Mapping[str, Any]) -> dict[str, Any] | None:
        """secretsmanager:GetSecretValue of this version; a deleted secret's is gone."""
        secret_id, _, version = rid.partition("|")
        call = self.api(ctx, olds, self.context("read", rid))
        try:
            value = call("get_secret_value", SecretId=secret_id, VersionId=version)
        except AwsError as exc:
            if _deleted(exc):
                return None
            raise
        return {
            "arn": value["ARN"],
            "secretArn": value["ARN"],
            "secretId": secret_id,
            "versionId": value["VersionId"],
            "versionStages": list(value.get("VersionStages") or []),
            "secretString": value.get("SecretString"),
            "hasSecretStringWo": False,
        }

    def change(self, ctx, rid, olds, news, changed, outputs) -> None:
        """Only ``versionStages`` changes in place; not emulated."""
        super().change(ctx, rid, olds, news, changed, outputs)

    def delete(self, ctx: Context, rid: str, olds: Mapping[str, Any]) -> None:
        """UpdateSecretVersionStage off every label but AWSCURRENT; a deleted secret is fine."""
        try:
            self.destroy(ctx, rid, olds)
        except AwsError as exc:
            if exc.code not in self.not_found and not _deleted(exc):
                raise

    def destroy(self, ctx: Context, rid: str, olds: Mapping[str, Any]) -> None:
        """See :meth:`delete`."""
        secret_id, _, version = rid.partition("|")
        call = self.api(ctx, olds, self.context("delete", rid))
        for stage in olds.get("versionStages") or []:
            if stage != "AWSCURRENT":
                call(
                    "update_secret_version_stage",
                    SecretId=secret_id,
                    VersionStage=stage,
                    RemoveFromVersionId=version,
                )


# ---------------------------------------------------------- ECS tasks and services
# Fargate's task sizes: CPU units → the memory (MiB) each allows (Amazon ECS developer guide,
# "Task CPU and memory").
_FARGATE_SIZES: dict[int, tuple[int, ...]] = {
    256: (512, 1024, 2048),
    512: tuple(range(1024, 4097, 1024)),
    1024: tuple(range(2048, 8193, 1024)),
    2048: tuple(range(4096, 16385, 1024)),
    4096: tuple(range(8192, 30721, 1024)),
    8192: tuple(range(16384, 61441, 4096)),
    16384: tuple(range(32768, 122881, 8192)),
}
_FAMILY = re.compile(r"^[0-9A-Za-z_-]{1,255}$")
_ECS_TASKS = "ecs-tasks.amazonaws.com"


def _reduced_containers(text: Any) -> Any:
    """Container definitions in the form terraform-provider-aws compares
    (``containerDefinitionsAreEquivalent``): containers, environment and secrets in name order,
    ``essential`` true by default, and ECS's own defaults (cpu 0, empty lists) dropped."""
    try:
        containers = json.loads(text) if isinstance(text, str) else text
    except ValueError:
        return text
    if not isinstance(containers, list):
        return containers
    reduced = []
    for container in containers:
        if not isinstance(container, dict):
            return containers
        item = {
            k: v for k, v in container.items() if v not in (None, [], {}) and (k, v) != ("cpu", 0)
        }
        item.setdefault("essential", True)
        for key in ("environment", "secrets"):
            if key in item:
                item[key] = sorted(item[key], key=lambda e: str(e.get("name")))
        reduced.append(item)
    return sorted(reduced, key=lambda c: str(c.get("name")))


def containers_equivalent(old: Any, new: Any) -> bool:
    """Two container-definition documents ECS treats as the same."""
    return old == new or _reduced_containers(old) == _reduced_containers(new)


def _ecs_refusal(call: AwsCall, operation: str, code: str, message: str) -> AwsError:
    """ECS's answer to a request it refuses (a 400), as pulumi-aws prints it."""
    return AwsError(
        f"{call.context}: operation error ECS: {operation}, https response error StatusCode: "
        f"400, RequestID: {_request_id()}, {code}: {message}",
        code,
    )


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, list | tuple) else [value]


def _role_name(arn: str) -> str:
    return arn.rsplit("/", 1)[-1]


def role_documents(iam: AwsCall, role: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """A role's trust policy and every permission policy it holds (inline and managed)."""
    found = iam("get_role", RoleName=role)["Role"]
    documents = [
        iam("get_role_policy", RoleName=role, PolicyName=name)["PolicyDocument"]
        for name in iam("list_role_policies", RoleName=role)["PolicyNames"]
    ]
    for attached in iam("list_attached_role_policies", RoleName=role)["AttachedPolicies"]:
        policy = iam("get_policy", PolicyArn=attached["PolicyArn"])["Policy"]
        version = iam(
            "get_policy_version", PolicyArn=policy["Arn"], VersionId=policy["DefaultVersionId"]
        )
        documents.append(version["PolicyVersion"]["Document"])
    parse = lambda d: json.loads(d) if isinstance(d, str) else d  # noqa: E731
    return parse(found["AssumeRolePolicyDocument"]), [parse(d) for d in documents]


def policies_allow(documents: list[Mapping[str, Any]], action: str, resource: str) -> bool:
    """IAM's verdict, without conditions: some Allow statement matches the action and the
    resource (``*``/``?`` wildcards, actions case-insensitively), and no Deny does."""
    allowed = False
    for document in documents:
        for statement in _as_list(document.get("Statement")):
            actions = _as_list(statement.get("Action"))
            resources = _as_list(statement.get("Resource"))
            if not any(fnmatch.fnmatchcase(action.lower(), str(a).lower()) for a in actions):
                continue
            if not any(fnmatch.fnmatchcase(resource, str(r)) for r in resources):
                continue
            if statement.get("Effect") == "Deny":
                return False
            allowed = allowed or statement.get("Effect") == "Allow"
    return allowed


def _trusts_ecs_tasks(trust: Mapping[str, Any]) -> bool:
    for statement in _as_list(trust.get("Statement")):
        services = _as_list((statement.get("Principal") or {}).get("Service"))
        if statement.get("Effect") == "Allow" and _ECS_TASKS in services:
            return True
    return False


class TaskDefinition(AwsResource):
    """A task-definition revision; its id is its family, its ``arn`` the revision's.

    RegisterTaskDefinition refuses what ECS refuses and moto accepts: Fargate without
    ``awsvpc``, without task-level CPU and memory or with a size Fargate does not offer,
    awslogs or secrets without an execution role, and roles that do not exist (yet: ECS's
    ``Role is not valid`` during IAM's propagation window too). Every input forces a new
    revision; delete deregisters it (an INACTIVE revision reads as gone).
    """

    token = TASK_DEFINITION
    kind = "ECS Task Definition"
    service = "ecs"
    inputs = names(
        "containerDefinitions cpu enableFaultInjection ephemeralStorage executionRoleArn family "
        "ipcMode memory networkMode pidMode placementConstraints proxyConfiguration region "
        "requiresCompatibilities runtimePlatform skipDestroy tags taskRoleArn trackLatest volumes"
    )
    force_new = inputs - names("skipDestroy tags trackLatest")
    optional_computed = names("enableFaultInjection networkMode region")
    defaults = {"skipDestroy": False, "trackLatest": False}
    computed = names("arn arnWithoutRevision id revision tagsAll")
    not_found = ("ClientException",)
    operations = ops("RegisterTaskDefinition", "TagResource", "DeregisterTaskDefinition")
    _UNSUPPORTED = names(
        "ephemeralStorage ipcMode pidMode placementConstraints proxyConfiguration "
        "runtimePlatform volumes"
    )

    def validate(self, ctx: Context, inputs: Mapping[str, Any]) -> list[tuple[str, str]]:
        """The family's characters; container definitions a JSON list."""
        problems = []
        family = _known_str(inputs, "family")
        if family is not None and not _FAMILY.match(family):
            problems.append(("family", f"invalid value for family (must match {_FAMILY.pattern})"))
        text = _known_str(inputs, "containerDefinitions")
        if text is not None:
            try:
                parsed = json.loads(text)
            except ValueError as exc:
                parsed, error = None, str(exc)
            else:
                error = "" if isinstance(parsed, list) else "not a JSON list"
            if error:
                problems.append(
                    (
                        "containerDefinitions",
                        f"ECS Task Definition container_definitions is invalid: {error}",
                    )
                )
        return problems

    def equal(self, key: str, old: Any, new: Any) -> bool:
        """Container definitions by meaning; compatibilities as a set."""
        if key == "containerDefinitions":
            return containers_equivalent(old, new)
        if key == "requiresCompatibilities" and isinstance(old, list) and isinstance(new, list):
            return sorted(old) == sorted(new)
        return super().equal(key, old, new)

    def create(self, ctx: Context, inputs: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
        """ecs:RegisterTaskDefinition, after ECS's own checks."""
        family = inputs["family"]
        unsupported = sorted(k for k in self._UNSUPPORTED if inputs.get(k))
        if unsupported:
            raise CloudError(f"fakecloud aws: TaskDefinition {', '.join(unsupported)} not emulated")
        call = self.api(ctx, inputs, self.context("create", family))
        containers = json.loads(inputs["containerDefinitions"])
        self._check(ctx, call, inputs, containers)
        tags = self.tags_all(ctx, inputs.get("tags"))
        params: dict[str, Any] = {"family": family, "containerDefinitions": containers}
        for key in ("cpu", "memory", "networkMode", "executionRoleArn", "taskRoleArn"):
            if inputs.get(key):
                params[key] = inputs[key]
        if inputs.get("requiresCompatibilities"):
            params["requiresCompatibilities"] = list(inputs["requiresCompatibilities"])
        if tags:
            params["tags"] = _tag_list(tags, "key", "value")
        registered = call("register_task_definition", **params)["taskDefinition"]
        outputs = {
            **self.plan(ctx, inputs),
            **self._outputs(registered, inputs),
            "tags": inputs.get("tags"),
            "tagsAll": tags,
        }
        return family, outputs

    def _check(
        self, ctx: Context, call: AwsCall, inputs: Mapping[str, Any], containers: list[dict]
    ) -> None:
        """What ECS refuses at RegisterTaskDefinition that moto lets through."""

        def refuse(message: str) -> AwsError:
            return _ecs_refusal(call, "RegisterTaskDefinition", "ClientException", message)

        execution = inputs.get("executionRoleArn")
        if not execution and any(c.get("secrets") for c in containers):
            raise refuse(
                "When you are specifying container secrets, you must also specify a value for "
                "'executionRoleArn'."
            )
        if "FARGATE" in (inputs.get("requiresCompatibilities") or []):
            if (inputs.get("networkMode") or "bridge") != "awsvpc":
                raise refuse("Fargate only supports network mode 'awsvpc'.")
            for key in ("cpu", "memory"):
                if not inputs.get(key):
                    raise refuse(f"Fargate requires that '{key}' be defined at the task level.")
            cpu, memory = int(inputs["cpu"]), int(inputs["memory"])
            if memory not in _FARGATE_SIZES.get(cpu, ()):
                raise refuse(
                    f"No Fargate configuration exists for given values: {cpu} CPU, {memory} "
                    "memory. See the Amazon ECS documentation for the valid values."
                )
            drivers = {(c.get("logConfiguration") or {}).get("logDriver") for c in containers}
            if "awslogs" in drivers and not execution:
                raise refuse(
                    "Fargate requires task definition to have execution role ARN to support log "
                    "driver awslogs."
                )
        iam = AwsCall(aws_client(ctx, "iam", None), call.context)
        for arn in (execution, inputs.get("taskRoleArn")):
            if not arn:
                continue
            try:
                created = iam("get_role", RoleName=_role_name(arn))["Role"]["CreateDate"]
            except AwsError as exc:
                if exc.code != "NoSuchEntity":
                    raise
                raise refuse("Role is not valid") from None
            if _young(ctx, created):
                raise refuse("Role is not valid")

    @staticmethod
    def _outputs(registered: Mapping[str, Any], olds: Mapping[str, Any]) -> dict[str, Any]:
        arn = registered["taskDefinitionArn"]
        current = json.dumps(registered["containerDefinitions"])
        return {
            "id": registered["family"],
            "arn": arn,
            "arnWithoutRevision": arn.rsplit(":", 1)[0],
            "revision": registered["revision"],
            "family": registered["family"],
            "cpu": registered.get("cpu"),
            "memory": registered.get("memory"),
            "networkMode": registered.get("networkMode"),
            "requiresCompatibilities": registered.get("requiresCompatibilities") or [],
            "executionRoleArn": registered.get("executionRoleArn"),
            "taskRoleArn": registered.get("taskRoleArn"),
            # A document ECS spells with its defaults keeps the state's spelling.
            "containerDefinitions": olds.get("containerDefinitions")
            if containers_equivalent(olds.get("containerDefinitions"), current)
            else current,
        }

    def fetch(self, ctx: Context, rid: str, olds: Mapping[str, Any]) -> dict[str, Any] | None:
        """ecs:DescribeTaskDefinition of the recorded revision; INACTIVE is gone."""
        call = self.api(ctx, olds, self.context("read", rid))
        answer = call(
            "describe_task_definition", taskDefinition=olds.get("arn") or rid, include=["TAGS"]
        )
        registered = answer["taskDefinition"]
        if registered.get("status") == "INACTIVE":
            return None
        return {
            **self._outputs(registered, olds),
            **self.tags_from_cloud(ctx, olds, _tag_dict(answer.get("tags"), "key", "value")),
        }

    def retag(self, ctx, rid, olds, outputs) -> None:
        """ecs:TagResource / UntagResource on the revision."""
        call = self.api(ctx, outputs, self.context("update", rid))
        new, old = outputs["tagsAll"], olds.get("tagsAll") or {}
        if set(old) - set(new):
            call("untag_resource", resourceArn=olds["arn"], tagKeys=sorted(set(old) - set(new)))
        if new:
            call("tag_resource", resourceArn=olds["arn"], tags=_tag_list(new, "key", "value"))

    def change(self, ctx, rid, olds, news, changed, outputs) -> None:
        """Only ``skipDestroy`` and ``trackLatest`` change in place: state alone."""
        changed -= {"skipDestroy", "trackLatest"}
        if changed:
            super().change(ctx, rid, olds, news, changed, outputs)

    def destroy(self, ctx: Context, rid: str, olds: Mapping[str, Any]) -> None:
        """ecs:DeregisterTaskDefinition, unless ``skipDestroy``."""
        if not olds.get("skipDestroy"):
            call = self.api(ctx, olds, self.context("delete", rid))
            call("deregister_task_definition", taskDefinition=olds["arn"])


def _network(inputs: Mapping[str, Any]) -> dict[str, Any] | None:
    """``networkConfiguration`` in ECS's shape."""
    network = inputs.get("networkConfiguration")
    if not network:
        return None
    return {
        "awsvpcConfiguration": {
            "subnets": list(network.get("subnets") or []),
            "securityGroups": list(network.get("securityGroups") or []),
            "assignPublicIp": "ENABLED" if network.get("assignPublicIp") else "DISABLED",
        }
    }


def _deployment(inputs: Mapping[str, Any]) -> dict[str, Any]:
    breaker = inputs.get("deploymentCircuitBreaker") or {}
    configuration: dict[str, Any] = {
        "maximumPercent": int(inputs.get("deploymentMaximumPercent") or 200),
        "minimumHealthyPercent": int(inputs.get("deploymentMinimumHealthyPercent") or 100),
    }
    if breaker:
        configuration["deploymentCircuitBreaker"] = {
            "enable": bool(breaker.get("enable")),
            "rollback": bool(breaker.get("rollback")),
        }
    return configuration


class Service(AwsResource):
    """An ECS service; its id is its ARN (``service/<cluster>/<name>``); a read also takes the
    importer's ``<cluster>/<name>``.

    moto runs the API (the cluster and task definition must exist, subnets and security groups
    too). Added here, as ECS does: an active service of that name refuses a second create
    (``Creation of service was not idempotent``); Fargate with ``awsvpc`` needs a network
    configuration; and the task definition must be Fargate-compatible. moto starts no tasks, so
    what would stop every task at start, and which ECS reports only in the service's events, is
    a create (or update) failure here: a role ECS cannot assume, a secret that does not exist,
    is deleted or that the execution role may not read (IAM evaluated from the role's policies,
    conditions left out), an awslogs group that does not exist. moto does not keep the
    deployment configuration: its values stay as the state has them.
    """

    token = SERVICE
    kind = "ECS Service"
    service = "ecs"
    inputs = names(
        "alarms availabilityZoneRebalancing capacityProviderStrategies cluster "
        "deploymentCircuitBreaker deploymentConfiguration deploymentController "
        "deploymentMaximumPercent deploymentMinimumHealthyPercent desiredCount "
        "enableEcsManagedTags enableExecuteCommand forceDelete forceNewDeployment "
        "healthCheckGracePeriodSeconds iamRole launchType loadBalancers name "
        "networkConfiguration orderedPlacementStrategies placementConstraints platformVersion "
        "propagateTags region schedulingStrategy serviceConnectConfiguration serviceRegistries "
        "sigintRollback tags taskDefinition triggers volumeConfiguration "
        "vpcLatticeConfigurations waitForSteadyState"
    )
    force_new = names("cluster iamRole launchType name region schedulingStrategy")
    optional_computed = names(
        "availabilityZoneRebalancing cluster deploymentConfiguration iamRole launchType "
        "platformVersion propagateTags region triggers"
    )
    defaults = {
        "deploymentMaximumPercent": 200,
        "deploymentMinimumHealthyPercent": 100,
        "enableEcsManagedTags": False,
        "enableExecuteCommand": False,
        "schedulingStrategy": "REPLICA",
        "waitForSteadyState": False,
    }
    computed = names("arn id tagsAll")
    not_found = ("ServiceNotFoundException", "ClusterNotFoundException")
    operations = ops("CreateService", "UpdateService", "DeleteService")
    _UNSUPPORTED = names(
        "alarms capacityProviderStrategies deploymentConfiguration deploymentController "
        "loadBalancers orderedPlacementStrategies placementConstraints "
        "serviceConnectConfiguration serviceRegistries volumeConfiguration "
        "vpcLatticeConfigurations"
    )

    def equal(self, key: str, old: Any, new: Any) -> bool:
        """Subnets and security groups are sets."""
        if key == "networkConfiguration" and isinstance(old, Mapping) and isinstance(new, Mapping):

            def norm(n: Mapping[str, Any]) -> tuple:
                return (
                    sorted(n.get("subnets") or []),
                    sorted(n.get("securityGroups") or []),
                    bool(n.get("assignPublicIp")),
                )

            return norm(old) == norm(new)
        return super().equal(key, old, new)

    def create(self, ctx: Context, inputs: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
        """ecs:CreateService, after ECS's own checks and the tasks' start checks."""
        name = inputs["name"]
        unsupported = sorted(k for k in self._UNSUPPORTED if inputs.get(k))
        if unsupported:
            raise CloudError(f"fakecloud aws: Service {', '.join(unsupported)} not emulated")
        call = self.api(ctx, inputs, self.context("create", name))
        cluster = inputs.get("cluster") or "default"
        definition = self._definition(call, "CreateService", inputs)
        self._check_new(call, cluster, name)
        self._check_network(call, "CreateService", inputs, definition)
        self._check_tasks_start(ctx, call, definition)
        tags = self.tags_all(ctx, inputs.get("tags"))
        params: dict[str, Any] = {
            "cluster": cluster,
            "serviceName": name,
            "taskDefinition": inputs["taskDefinition"],
            "desiredCount": int(inputs.get("desiredCount") or 0),
            "schedulingStrategy": inputs.get("schedulingStrategy") or "REPLICA",
            "deploymentConfiguration": _deployment(inputs),
            "enableECSManagedTags": bool(inputs.get("enableEcsManagedTags")),
            "enableExecuteCommand": bool(inputs.get("enableExecuteCommand")),
        }
        for key, api in (
            ("launchType", "launchType"),
            ("platformVersion", "platformVersion"),
            ("propagateTags", "propagateTags"),
            ("iamRole", "role"),
        ):
            if inputs.get(key):
                params[api] = inputs[key]
        if _network(inputs):
            params["networkConfiguration"] = _network(inputs)
        if tags:
            params["tags"] = _tag_list(tags, "key", "value")
        arn = call("create_service", **params)["service"]["serviceArn"]
        outputs = {
            **self.plan(ctx, inputs),
            **(self.fetch(ctx, arn, inputs) or {}),
            "id": arn,
            "tags": inputs.get("tags"),
            "tagsAll": tags,
        }
        return arn, outputs

    def _definition(self, call: AwsCall, operation: str, inputs: Mapping[str, Any]) -> dict:
        """The service's task definition (moto: ClientException when it does not exist)."""
        answer = call("describe_task_definition", taskDefinition=inputs["taskDefinition"])
        definition = answer["taskDefinition"]
        if definition.get("status") == "INACTIVE":
            raise _ecs_refusal(call, operation, "ClientException", "TaskDefinition is inactive")
        return definition

    def _check_new(self, call: AwsCall, cluster: str, name: str) -> None:
        """An active service of that name: ECS refuses the create (moto would replace it)."""
        found = call("describe_services", cluster=cluster, services=[name])["services"]
        if any(s.get("status") in ("ACTIVE", "DRAINING") for s in found):
            raise _ecs_refusal(
                call,
                "CreateService",
                "InvalidParameterException",
                "Creation of service was not idempotent.",
            )

    def _check_network(
        self, call: AwsCall, operation: str, inputs: Mapping[str, Any], definition: Mapping
    ) -> None:
        """awsvpc needs subnets; Fargate needs a Fargate-compatible task definition."""
        if definition.get("networkMode") == "awsvpc" and not _network(inputs):
            raise _ecs_refusal(
                call,
                operation,
                "InvalidParameterException",
                "Network Configuration must be provided when networkMode 'awsvpc' is specified.",
            )
        if inputs.get("launchType") == "FARGATE" and "FARGATE" not in (
            definition.get("requiresCompatibilities") or []
        ):
            raise _ecs_refusal(
                call,
                operation,
                "InvalidParameterException",
                "Task definition does not support launch_type FARGATE.",
            )

    def _check_tasks_start(self, ctx: Context, call: AwsCall, definition: Mapping) -> None:
        """Fail as every task of the service would, at start (see the class doc)."""
        problem = self._start_problem(ctx, definition)
        if problem:
            raise AwsError(
                f"{call.context}: fakecloud aws: the service's tasks would stop at start (ECS "
                f"reports it in the service's events, not as an API error): {problem}",
                "TaskStartFailure",
            )

    def _start_problem(self, ctx: Context, definition: Mapping) -> str | None:
        iam = AwsCall(aws_client(ctx, "iam", None), "reading the task definition's roles")
        documents: dict[str, list[dict[str, Any]]] = {}
        for key in ("taskRoleArn", "executionRoleArn"):
            arn = definition.get(key)
            if not arn:
                continue
            try:
                trust, documents[key] = role_documents(iam, _role_name(arn))
            except AwsError as exc:
                if exc.code != "NoSuchEntity":
                    raise
                trust = {}
            if not _trusts_ecs_tasks(trust):
                return (
                    f"ECS was unable to assume the role '{arn}' that was provided for this "
                    "task. Please verify that the role being passed has the proper trust "
                    "relationship and permissions and that your IAM user has permissions to "
                    "pass this role."
                )
        execution = definition.get("executionRoleArn") or ""
        task_id = secrets.token_hex(16)
        for container in definition.get("containerDefinitions") or []:
            for secret in container.get("secrets") or []:
                arn = secret["valueFrom"]
                region = arn.split(":")[3] if arn.count(":") >= 6 else self.region_of(ctx, {})
                manager = AwsCall(aws_client(ctx, "secretsmanager", region), "")
                pulled = "ResourceInitializationError: unable to pull secrets or registry auth: "
                try:
                    manager("get_secret_value", SecretId=arn)
                except AwsError as exc:
                    return f"{pulled}failed to fetch secret {arn} from secrets manager: {exc}"
                if not policies_allow(
                    documents.get("executionRoleArn", []), "secretsmanager:GetSecretValue", arn
                ):
                    account = arn.split(":")[4] if arn.count(":") >= 6 else self.account(ctx)
                    return (
                        f"{pulled}failed to fetch secret {arn} from secrets manager: "
                        f"AccessDeniedException: User: arn:aws:sts::{account}:assumed-role/"
                        f"{_role_name(execution)}/{task_id} is not authorized to perform: "
                        f"secretsmanager:GetSecretValue on resource: {arn} because no "
                        "identity-based policy allows the secretsmanager:GetSecretValue action"
                    )
            log = container.get("logConfiguration") or {}
            options = log.get("options") or {}
            if log.get("logDriver") == "awslogs" and options.get("awslogs-create-group") != "true":
                group = options.get("awslogs-group", "")
                logs = AwsCall(aws_client(ctx, "logs", options.get("awslogs-region")), "")
                found = logs("describe_log_groups", logGroupNamePrefix=group)["logGroups"]
                if group not in [g["logGroupName"] for g in found]:
                    return (
                        "ResourceInitializationError: failed to validate logger args: create "
                        "stream has been retried 1 times: failed to create Cloudwatch log "
                        f"stream: ResourceNotFoundException: The specified log group does not "
                        f"exist. (log group {group})"
                    )
        return None

    import_ids = True

    def fetch(self, ctx: Context, rid: str, olds: Mapping[str, Any]) -> dict[str, Any] | None:
        """ecs:DescribeServices; INACTIVE (deleted) is gone.

        An import id ``<cluster>/<service>`` stands in for the state it carries, as
        terraform-provider-aws's importer makes the cluster's and the service's ARNs of it.
        """
        if not olds.get("cluster") and not rid.startswith("arn:") and rid.count("/") == 1:
            cluster_name, name = rid.split("/")
            prefix = f"arn:{PARTITION}:ecs:{self.region_of(ctx, olds)}:{self.account(ctx)}"
            olds = {**olds, "cluster": f"{prefix}:cluster/{cluster_name}"}
            rid = f"{prefix}:service/{cluster_name}/{name}"
        call = self.api(ctx, olds, self.context("read", rid))
        cluster = olds.get("cluster") or "default"
        answer = call("describe_services", cluster=cluster, services=[rid], include=["TAGS"])
        found = [s for s in answer["services"] if s.get("status") != "INACTIVE"]
        if not found:
            return None
        service = found[0]
        current: dict[str, Any] = {
            "id": service["serviceArn"],
            "arn": service["serviceArn"],
            "name": service["serviceName"],
            "cluster": service["clusterArn"],
            "taskDefinition": service.get("taskDefinition"),
            "desiredCount": service.get("desiredCount", 0),
            "schedulingStrategy": service.get("schedulingStrategy", "REPLICA"),
            "propagateTags": service.get("propagateTags") or "NONE",
            **self.tags_from_cloud(ctx, olds, _tag_dict(service.get("tags"), "key", "value")),
        }
        if service.get("launchType"):
            current["launchType"] = service["launchType"]
        if service.get("platformVersion"):
            current["platformVersion"] = service["platformVersion"]
        vpc = (service.get("networkConfiguration") or {}).get("awsvpcConfiguration")
        if vpc:
            current["networkConfiguration"] = {
                "subnets": list(vpc.get("subnets") or []),
                "securityGroups": list(vpc.get("securityGroups") or []),
                "assignPublicIp": vpc.get("assignPublicIp") == "ENABLED",
            }
        return current

    def change(self, ctx, rid, olds, news, changed, outputs) -> None:
        """ecs:UpdateService with what changed; a new deployment when ``triggers`` changed
        (with ``forceNewDeployment``), as terraform-provider-aws does."""
        call = self.api(ctx, news, self.context("update", rid))
        params: dict[str, Any] = {"cluster": news.get("cluster") or "default", "service": rid}
        redeploy = False
        if "desiredCount" in changed:
            params["desiredCount"] = int(news.get("desiredCount") or 0)
        if "taskDefinition" in changed:
            params["taskDefinition"] = news["taskDefinition"]
            redeploy = True
        if "networkConfiguration" in changed:
            params["networkConfiguration"] = _network(news)
            redeploy = True
        if changed & {
            "deploymentCircuitBreaker",
            "deploymentMaximumPercent",
            "deploymentMinimumHealthyPercent",
        }:
            params["deploymentConfiguration"] = _deployment(news)
        if "enableExecuteCommand" in changed:
            params["enableExecuteCommand"] = bool(news.get("enableExecuteCommand"))
        if "platformVersion" in changed and news.get("platformVersion"):
            params["platformVersion"] = news["platformVersion"]
        if news.get("forceNewDeployment") and "triggers" in changed:
            params["forceNewDeployment"] = True
            redeploy = True
        if redeploy:
            definition = self._definition(call, "UpdateService", news)
            self._check_network(call, "UpdateService", news, definition)
            self._check_tasks_start(ctx, call, definition)
        if len(params) > 2:
            call("update_service", **params)
        changed -= {
            "desiredCount",
            "taskDefinition",
            "networkConfiguration",
            "deploymentCircuitBreaker",
            "deploymentMaximumPercent",
            "deploymentMinimumHealthyPercent",
            "enableExecuteCommand",
            "platformVersion",
            "triggers",
            "forceNewDeployment",
            "forceDelete",
            "waitForSteadyState",
            "enableEcsManagedTags",
            "sigintRollback",
        }
        if changed:
            super().change(ctx, rid, olds, news, changed, outputs)

    def retag(self, ctx, rid, olds, outputs) -> None:
        """ecs:TagResource / UntagResource."""
        call = self.api(ctx, outputs, self.context("update", rid))
        new, old = outputs["tagsAll"], olds.get("tagsAll") or {}
        if set(old) - set(new):
            call("untag_resource", resourceArn=rid, tagKeys=sorted(set(old) - set(new)))
        if new:
            call("tag_resource", resourceArn=rid, tags=_tag_list(new, "key", "value"))

    def destroy(self, ctx: Context, rid: str, olds: Mapping[str, Any]) -> None:
        """Drain (UpdateService to 0 tasks), then DeleteService, as terraform-provider-aws
        does: ECS refuses to delete a service still scaled above 0 (unless forced)."""
        call = self.api(ctx, olds, self.context("delete", rid))
        cluster = olds.get("cluster") or "default"
        found = call("describe_services", cluster=cluster, services=[rid])["services"]
        if not found or found[0].get("status") == "INACTIVE":
            return
        force = bool(olds.get("forceDelete"))
        if not force and found[0].get("status") != "DRAINING":
            call("update_service", cluster=cluster, service=rid, desiredCount=0)
        call("delete_service", cluster=cluster, service=rid, force=force)


# ------------------------------------------------------------------- invokes
def _invoke_region(ctx: Context, args: Mapping[str, Any]) -> str:
    region = args.get("region") or provider_region(ctx.config, ctx.env) or "us-east-1"
    return region


def get_caller_identity(ctx: Context, args: Mapping[str, Any]) -> dict[str, Any]:
    """``aws.get_caller_identity``: sts:GetCallerIdentity."""
    call = AwsCall(aws_client(ctx, "sts", _invoke_region(ctx, args)), "reading caller identity")
    identity = call("get_caller_identity")
    return {
        "accountId": identity["Account"],
        "arn": identity["Arn"],
        "id": identity["Account"],
        "userId": identity["UserId"],
    }


# The filters moto's DescribeAvailabilityZones implements; the rest are applied here.
_MOTO_ZONE_FILTERS = ("zone-id", "zone-type", "zone-name", "region-name", "state")


def get_availability_zones(ctx: Context, args: Mapping[str, Any]) -> dict[str, Any]:
    """``aws.get_availability_zones``: ec2:DescribeAvailabilityZones with pulumi-aws's args."""
    region = _invoke_region(ctx, args)
    call = AwsCall(aws_client(ctx, "ec2", region), "reading EC2 Availability Zones")
    filters = [{"Name": f["name"], "Values": list(f["values"])} for f in args.get("filters") or []]
    if args.get("state"):
        filters.append({"Name": "state", "Values": [args["state"]]})
    zones = call(
        "describe_availability_zones",
        Filters=[f for f in filters if f["Name"] in _MOTO_ZONE_FILTERS],
        AllAvailabilityZones=bool(args.get("allAvailabilityZones")),
    )["AvailabilityZones"]
    for zone in zones:  # moto lists standard zones only: no opt-in, the region as group
        zone.setdefault("OptInStatus", "opt-in-not-required")
        zone.setdefault("GroupName", zone.get("RegionName", region))
    local = {"opt-in-status": "OptInStatus", "group-name": "GroupName"}
    for f in filters:
        if f["Name"] in local:
            zones = [z for z in zones if z[local[f["Name"]]] in f["Values"]]
    zones = [
        z
        for z in sorted(zones, key=lambda z: z["ZoneName"])
        if z["ZoneName"] not in (args.get("excludeNames") or [])
        and z["ZoneId"] not in (args.get("excludeZoneIds") or [])
    ]
    return {
        "id": region,
        "region": region,
        "names": [z["ZoneName"] for z in zones],
        "zoneIds": [z["ZoneId"] for z in zones],
        "groupNames": sorted({z["GroupName"] for z in zones}),
        "state": args.get("state"),
        "filters": args.get("filters"),
        "allAvailabilityZones": args.get("allAvailabilityZones"),
        "excludeNames": args.get("excludeNames"),
        "excludeZoneIds": args.get("excludeZoneIds"),
    }


# ------------------------------------------------------------- cloud, provider
class Aws(Cloud):
    """The AWS fake: credentials and region are checked in CheckConfig, as pulumi-aws does."""

    def warm_up(self) -> None:
        """boto3 and its session (~0.12 s of imports), before the first call needs them."""
        with _CLIENTS_LOCK:
            _boto_session()

    def config_problem(self, config: Mapping[str, Any], env: Mapping[str, str]) -> str | None:
        """pulumi-aws's CheckConfig failure reason, or None."""
        if _truthy(env.get(NO_CREDENTIALS_ENV)):
            return NO_CREDENTIALS_TEXT
        if not provider_region(config, env):
            return NO_REGION_TEXT
        return None

    def check_config(self, config: Mapping[str, Any], env: Mapping[str, str]) -> None:
        """Configure fails like CheckConfig (the engine stops at CheckConfig first)."""
        problem = self.config_problem(config, env)
        if problem:
            raise CloudError(problem)


AUTONAME_MAX = {ROLE: 64, USER: 64, POLICY: 128, QUEUE: 80, EVENT_RULE: 64, ROLE_POLICY: 128}


class AwsProvider(FakeProvider):
    """pulumi-aws's provider surface: CheckConfig answers failures (the engine prints them as
    ``pulumi:providers:aws resource '...' has a problem: ...``), and Check auto-names."""

    cloud: Aws

    async def check_config(self, request: CheckRequest) -> CheckResponse:
        """A credentials or region problem is a CheckConfig failure, not an RPC error."""
        problem = self.cloud.config_problem(to_plain_map(request.new_inputs), self.env)
        self._log("check_config", outcome="error" if problem else "ok", error=problem)
        failures = [CheckFailure("", problem)] if problem else []
        return CheckResponse(inputs=request.new_inputs, failures=failures)

    async def check(self, request: CheckRequest) -> CheckResponse:
        """Auto-name a missing ``name`` (``<resource name>-<7 hex>``, kept across updates)."""
        token = request.type.rsplit("$", 1)[-1]
        rtype = self.cloud.resources.get(token)
        news = request.new_inputs
        if (
            rtype is not None
            and "name" in rtype.inputs
            and _absent(news.get("name"))
            and _absent(news.get("namePrefix"))
        ):
            old = request.old_inputs.get("name")
            if old is not None and not _absent(old):
                name = old
            else:
                limit = AUTONAME_MAX.get(token, 255)
                text = f"{urn_name(request.urn)[: limit - 8]}-{secrets.token_hex(4)[:7]}"
                name = PropertyValue(text.lower() if token == REPOSITORY else text)
            request = CheckRequest(request.urn, request.old_inputs, {**news, "name": name}, b"")
        return await super().check(request)


def _absent(value: PropertyValue | None) -> bool:
    return value is None or is_empty(value.value)


AWS = Aws(
    NAME,
    VERSION,
    [
        Cluster(),
        LogGroup(),
        Role(),
        RolePolicyAttachment(),
        RolePolicy(),
        User(),
        Policy(),
        UserPolicyAttachment(),
        AccessKey(),
        Vpc(),
        Subnet(),
        InternetGateway(),
        RouteTable(),
        Route(),
        RouteTableAssociation(),
        SecurityGroup(),
        Repository(),
        LifecyclePolicy(),
        Queue(),
        QueuePolicy(),
        EventRule(),
        EventTarget(),
        Secret(),
        SecretVersion(),
        TaskDefinition(),
        Service(),
    ],
    {
        GET_CALLER_IDENTITY: get_caller_identity,
        GET_AVAILABILITY_ZONES: get_availability_zones,
    },
    blocking_io=True,  # every handler waits on moto
)


def main() -> None:
    """Serve :data:`AWS` with :class:`AwsProvider` (``serve`` builds a ``FakeProvider``)."""
    from tests.fakecloud import provider as framework

    framework.FakeProvider = AwsProvider  # type: ignore[misc]
    serve(AWS)


if __name__ == "__main__":
    main()
