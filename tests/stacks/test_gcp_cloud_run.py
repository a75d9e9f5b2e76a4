"""CloudRunPool under Pulumi mocks: every resource, its parent, inputs, ordering and outputs.

Each test gets a fresh root stack and a fresh recording monitor from ``tests/pulumi_mocks.py``
(this module adds only GCP's mock answers), so nothing registered by one test is seen by
another. Assertions run inside ``apply`` callbacks; the fixture fails the test if those
callbacks never ran (under mocks an apply over an unknown value is skipped silently, which would
make a test pass vacuously).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from typing import Any

import pulumi
import pytest

from stacks.gcp_cloud_run import (
    PERMISSIONS,
    SERVICES,
    TYPE_TOKEN,
    CloudRunPool,
    CloudRunPoolArgs,
    CloudRunPoolOutputs,
    key_expiry,
    label_value,
)
from stacks.gcp_registry import image_namespace
from tests.pulumi_mocks import (
    RecordingMonitor,
    assert_component_tree,
    assert_secret,
    check_when_resolved,
    monitor_fixture,
)

PROJECT = "acme-data-prod"
REGION = "europe-west1"

T_SERVICE = "gcp:projects/service:Service"
T_REPO = "gcp:artifactregistry/repository:Repository"
T_ACCOUNT = "gcp:serviceaccount/account:Account"
T_ROLE = "gcp:projects/iAMCustomRole:IAMCustomRole"
T_PROJECT_MEMBER = "gcp:projects/iAMMember:IAMMember"
T_SA_MEMBER = "gcp:serviceaccount/iAMMember:IAMMember"
T_REPO_MEMBER = "gcp:artifactregistry/repositoryIamMember:RepositoryIamMember"
T_KEY = "gcp:serviceaccount/key:Key"


def fake_key_json(email: str, project: str) -> dict[str, str]:
    """The shape of a GCP JSON key file (values fake)."""
    return {
        "type": "service_account",
        "project_id": project,
        "private_key_id": "0123456789abcdef",
        "private_key": "-----BEGIN PRIVATE KEY-----\nMIIfake\n-----END PRIVATE KEY-----\n",
        "client_email": email,
        "client_id": "111111111111111111111",
        "token_uri": "https://oauth2.googleapis.com/token",
    }


NEVER = "9999-12-31T23:59:59Z"
"""GCP's validBeforeTime of a user-managed key made without an expiry policy."""


class GcpMocks(pulumi.runtime.Mocks):
    """Echo inputs and add the fields the GCP provider computes, shaped like the real ones."""

    def __init__(self, valid_before: str = NEVER) -> None:
        self.valid_before = valid_before

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict]:
        inputs = args.inputs
        out: dict[str, Any] = dict(inputs)
        project = inputs.get("project", PROJECT)
        if args.typ == T_SERVICE:
            return f"{project}/{inputs['service']}", out
        if args.typ == T_REPO:
            name = (
                f"projects/{project}/locations/{inputs['location']}"
                f"/repositories/{inputs['repositoryId']}"
            )
            out.update(
                name=name,
                registryUri=image_namespace(inputs["location"], project, inputs["repositoryId"]),
                effectiveLabels=dict(inputs.get("labels", {})),
                createTime="2026-01-01T00:00:00Z",
            )
            return name, out
        if args.typ == T_ACCOUNT:
            email = f"{inputs['accountId']}@{project}.iam.gserviceaccount.com"
            name = f"projects/{project}/serviceAccounts/{email}"
            out.update(
                email=email, member=f"serviceAccount:{email}", name=name, uniqueId="1234567890"
            )
            return name, out
        if args.typ == T_ROLE:
            name = f"projects/{project}/roles/{inputs['roleId']}"
            out.update(name=name, deleted=False)
            return name, out
        if args.typ == T_KEY:
            account = inputs["serviceAccountId"]
            email = account.rsplit("/", 1)[-1]
            key = json.dumps(fake_key_json(email, project))
            out.update(
                name=f"{account}/keys/0123456789abcdef",
                privateKey=base64.b64encode(key.encode()).decode(),
                publicKey="LS0tLS1CRUdJTi",
                keyAlgorithm="KEY_ALG_RSA_2048",
                validAfter="2026-01-01T00:00:00Z",
                validBefore=self.valid_before,
            )
            return out["name"], out
        if args.typ in (T_PROJECT_MEMBER, T_SA_MEMBER, T_REPO_MEMBER):
            out["etag"] = "BwXfake="
            return f"{args.name}-binding", out
        return f"{args.name}-id", out

    def call(self, args: pulumi.runtime.MockCallArgs) -> dict:
        return {}


mon = monitor_fixture(GcpMocks)
preview_mon = monitor_fixture(GcpMocks, preview=True)
# An organization enforcing constraints/iam.serviceAccountKeyExpiryHours (2160 h: 90 days).
expiring_mon = monitor_fixture(lambda: GcpMocks(valid_before="2026-04-01T00:00:00Z"))


def make_pool(
    flavor: str = "cloud-run-v2",
    *,
    registry_writer: bool = False,
    name: str = "etl",
    keyless: bool = False,
    credential_rotation: str | None = None,
):
    return CloudRunPool(
        name,
        CloudRunPoolArgs(
            pool="ETL Pool_#1",
            project=PROJECT,
            region=REGION,
            flavor=flavor,  # type: ignore[arg-type]
            worker_account_id="etl-worker",
            runtime_account_id="etl-runtime",
            repository_id="etl-images",
            role_id="provision_etl_0a1b2c3d",
            registry_writer=registry_writer,
            keyless=keyless,
            credential_rotation=credential_rotation,
        ),
    )


def after_all(pool: CloudRunPool, mon: RecordingMonitor, check: Callable[..., None]):
    """Run ``check(values)`` once every resource is registered and every output resolved.

    The key depends on every other child, so once its output resolves all of them have been
    registered with the monitor.
    """
    return check_when_resolved(mon, dict(pool.outputs), check)


EXPORTS = [
    "project",
    "region",
    "worker_service_account_email",
    "runtime_service_account_email",
    "service_account_key",
    "credential_created_at",
    "credential_expires_at",
    "registry_host",
    "image_namespace",
    "repository_id",
    "custom_role_id",
]
"""The stack-export names: the target, the e2e tests and saved stacks read these."""


EXPECTED_CHILDREN = {
    "cloud-run-v2": {
        (T_SERVICE, "etl-api-run"),
        (T_SERVICE, "etl-api-artifactregistry"),
        (T_SERVICE, "etl-api-iam"),
        (T_SERVICE, "etl-api-cloudresourcemanager"),
        (T_REPO, "etl-repository"),
        (T_ACCOUNT, "etl-worker"),
        (T_ACCOUNT, "etl-runtime"),
        (T_ROLE, "etl-role"),
        (T_PROJECT_MEMBER, "etl-worker-role"),
        (T_SA_MEMBER, "etl-worker-acts-as-runtime"),
        (T_REPO_MEMBER, "etl-worker-registry"),
        (T_KEY, "etl-worker-key"),
    }
}


@pulumi.runtime.test
def test_every_resource_type_name_and_parent(mon):
    pool = make_pool()

    def check(_):
        assert_component_tree(mon, TYPE_TOKEN, "etl", EXPECTED_CHILDREN["cloud-run-v2"])

    return after_all(pool, mon, check)


@pulumi.runtime.test
def test_services_enabled_but_never_disabled(mon):
    pool = make_pool()

    def check(_):
        services = mon.of_type(T_SERVICE)
        assert {s.inputs["service"] for s in services} == set(SERVICES["cloud-run-v2"])
        assert {
            "run.googleapis.com",
            "artifactregistry.googleapis.com",
            "iam.googleapis.com",
            "cloudresourcemanager.googleapis.com",
        } == set(SERVICES["cloud-run-v2"])
        for s in services:
            assert s.inputs["disableOnDestroy"] is False, s.name
            assert s.inputs["disableDependentServices"] is False, s.name
            assert s.inputs["project"] == PROJECT

    return after_all(pool, mon, check)


@pulumi.runtime.test
def test_vertex_enables_aiplatform_not_run(mon):
    pool = make_pool("vertex-ai")

    def check(_):
        apis = {s.inputs["service"] for s in mon.of_type(T_SERVICE)}
        assert "aiplatform.googleapis.com" in apis
        assert "run.googleapis.com" not in apis

    return after_all(pool, mon, check)


@pytest.mark.parametrize(
    ("flavor", "expected"),
    [
        (
            "cloud-run",
            {
                "run.jobs.create",
                "run.jobs.get",
                "run.jobs.run",
                "run.executions.get",
                "run.jobs.delete",
            },
        ),
        (
            "cloud-run-v2",
            {
                "run.jobs.create",
                "run.jobs.get",
                "run.jobs.run",
                "run.executions.get",
                "run.jobs.delete",
                "run.executions.list",
                "run.executions.delete",
            },
        ),
        (
            "vertex-ai",
            {
                "aiplatform.customJobs.create",
                "aiplatform.customJobs.get",
                "aiplatform.customJobs.cancel",
            },
        ),
    ],
)
@pulumi.runtime.test
def test_custom_role_has_exactly_the_worker_permissions(mon, flavor, expected):
    pool = make_pool(flavor)

    def check(values):
        role = mon.one(T_ROLE)
        assert set(role.inputs["permissions"]) == expected
        assert len(role.inputs["permissions"]) == len(expected)  # no duplicates
        assert set(PERMISSIONS[flavor]) == expected
        assert role.inputs["roleId"] == "provision_etl_0a1b2c3d"
        assert role.inputs["project"] == PROJECT
        assert values["custom_role_id"] == f"projects/{PROJECT}/roles/provision_etl_0a1b2c3d"
        grant = mon.one(T_PROJECT_MEMBER)
        assert grant.inputs["role"] == values["custom_role_id"]
        assert (
            grant.inputs["member"]
            == "serviceAccount:etl-worker@acme-data-prod.iam.gserviceaccount.com"
        )
        assert grant.inputs["project"] == PROJECT

    return after_all(pool, mon, check)


@pulumi.runtime.test
def test_act_as_is_granted_on_the_runtime_account_only(mon):
    pool = make_pool()

    def check(values):
        act_as = mon.one(T_SA_MEMBER)
        runtime = mon.one(T_ACCOUNT, "etl-runtime")
        assert act_as.inputs["role"] == "roles/iam.serviceAccountUser"
        assert act_as.inputs["serviceAccountId"] == (
            f"projects/{PROJECT}/serviceAccounts/{values['runtime_service_account_email']}"
        )
        assert act_as.inputs["member"] == f"serviceAccount:{values['worker_service_account_email']}"
        # Never project-wide: the only project-level binding is the custom role.
        project_roles = [g.inputs["role"] for g in mon.of_type(T_PROJECT_MEMBER)]
        assert project_roles == [values["custom_role_id"]]
        assert runtime.urn in act_as.dependencies

    return after_all(pool, mon, check)


@pytest.mark.parametrize(
    ("writer", "role"),
    [(False, "roles/artifactregistry.reader"), (True, "roles/artifactregistry.writer")],
)
@pulumi.runtime.test
def test_registry_grant_is_on_the_repository(mon, writer, role):
    pool = make_pool(registry_writer=writer)

    def check(values):
        grant = mon.one(T_REPO_MEMBER)
        assert grant.inputs["role"] == role
        # The mocked provider's full repository name reached the grant (an output the mock
        # forgot would silently drop this input).
        assert grant.inputs["repository"] == (
            f"projects/{PROJECT}/locations/{REGION}/repositories/etl-images"
        )
        assert grant.inputs["location"] == REGION
        assert grant.inputs["project"] == PROJECT
        assert grant.inputs["member"] == f"serviceAccount:{values['worker_service_account_email']}"

    return after_all(pool, mon, check)


@pulumi.runtime.test
def test_repository_and_labels(mon):
    pool = make_pool()

    def check(_):
        repo = mon.one(T_REPO)
        assert repo.inputs["format"] == "DOCKER"
        assert repo.inputs["location"] == REGION
        assert repo.inputs["repositoryId"] == "etl-images"
        assert repo.inputs["project"] == PROJECT
        assert repo.inputs["labels"] == {
            "managed-by": "provision",
            "prefect-work-pool": "etl-pool_-1",
        }
        registry_api = mon.one(T_SERVICE, "etl-api-artifactregistry")
        assert registry_api.urn in repo.dependencies

    return after_all(pool, mon, check)


@pulumi.runtime.test
def test_accounts(mon):
    pool = make_pool()

    def check(values):
        worker = mon.one(T_ACCOUNT, "etl-worker")
        runtime = mon.one(T_ACCOUNT, "etl-runtime")
        assert worker.inputs["accountId"] == "etl-worker"
        assert runtime.inputs["accountId"] == "etl-runtime"
        iam_api = mon.one(T_SERVICE, "etl-api-iam")
        for account in (worker, runtime):
            assert account.inputs["project"] == PROJECT
            assert len(account.inputs["displayName"]) <= 100
            assert iam_api.urn in account.dependencies
        worker, runtime = (
            values["worker_service_account_email"],
            values["runtime_service_account_email"],
        )
        assert worker == "etl-worker@acme-data-prod.iam.gserviceaccount.com"
        assert runtime == "etl-runtime@acme-data-prod.iam.gserviceaccount.com"

    return after_all(pool, mon, check)


@pulumi.runtime.test
def test_grants_wait_for_what_they_name_and_key_comes_last(mon):
    pool = make_pool()

    def check(_):
        urn = {(r.type, r.name): r.urn for r in mon.registrations.values()}
        worker = urn[(T_ACCOUNT, "etl-worker")]
        role_grant = mon.one(T_PROJECT_MEMBER)
        assert {urn[(T_ROLE, "etl-role")], worker} <= set(role_grant.dependencies)
        assert urn[(T_SERVICE, "etl-api-cloudresourcemanager")] in role_grant.dependencies
        repo_grant = mon.one(T_REPO_MEMBER)
        assert {urn[(T_REPO, "etl-repository")], worker} <= set(repo_grant.dependencies)

        key = mon.one(T_KEY)
        grants = {role_grant.urn, repo_grant.urn, mon.one(T_SA_MEMBER).urn}
        services = {r.urn for r in mon.of_type(T_SERVICE)}
        assert grants | services | {worker} <= set(key.dependencies)
        for r in (key, role_grant, repo_grant, mon.one(T_SA_MEMBER)):
            assert r.custom_timeouts.get("create"), r.name

    return after_all(pool, mon, check)


@pulumi.runtime.test
def test_key_inputs_are_constant(mon):
    pool = make_pool()

    def check(values):
        key = mon.one(T_KEY)
        worker = values["worker_service_account_email"]
        # Only the account's name and a constant: nothing that changes between runs, so a
        # rerun never replaces the key.
        assert key.inputs == {
            "serviceAccountId": f"projects/{PROJECT}/serviceAccounts/{worker}",
            "privateKeyType": "TYPE_GOOGLE_CREDENTIALS_FILE",
        }
        # Never rotated: no keepers at all, so pools made before rotation keep their key.
        assert key.replacement_trigger is None

    return after_all(pool, mon, check)


@pulumi.runtime.test
def test_a_rotation_is_kept_in_the_keys_keepers(mon):
    pool = make_pool(credential_rotation="2")

    def check(values):
        key = mon.one(T_KEY)
        worker = values["worker_service_account_email"]
        # keepers forces a new key when it changes (ForceNew), absent to a value included: the
        # engine replaces it create-before-delete (no option here asks otherwise), so what
        # reads the key gets the new one before the old goes.
        assert key.inputs == {
            "serviceAccountId": f"projects/{PROJECT}/serviceAccounts/{worker}",
            "privateKeyType": "TYPE_GOOGLE_CREDENTIALS_FILE",
            "keepers": {"rotation": "2"},
        }
        # Not the replacement_trigger option, which ignores a first value; and nothing else
        # changes: the accounts, the role and the grants stay.
        assert all(r.replacement_trigger is None for r in mon.registrations.values())
        others = [r for r in mon.registrations.values() if r.type != T_KEY]
        assert others and not any("keepers" in r.inputs for r in others)

    return after_all(pool, mon, check)


@pulumi.runtime.test
def test_the_keys_dates_are_plain_outputs(mon):
    # list and show read them from the state without a passphrase: never secret.
    pool = make_pool()
    resolved = after_all(pool, mon, lambda _: None)

    def check(values):
        created_is_secret, expires_is_secret, _ = values
        assert created_is_secret is False and expires_is_secret is False

    return pulumi.Output.all(
        pool.outputs["credential_created_at"].is_secret(),
        pool.outputs["credential_expires_at"].is_secret(),
        resolved,
    ).apply(check)


@pulumi.runtime.test
def test_a_key_with_an_expiry_policy_exports_its_end(expiring_mon):
    pool = make_pool()

    def check(values):
        assert values["credential_created_at"] == "2026-01-01T00:00:00Z"
        assert values["credential_expires_at"] == "2026-04-01T00:00:00Z"

    return after_all(pool, expiring_mon, check)


def test_key_expiry_keeps_only_a_real_end():
    assert key_expiry("2026-04-01T00:00:00Z") == "2026-04-01T00:00:00Z"
    assert key_expiry("2026-04-01T00:00:00.123456789Z") == "2026-04-01T00:00:00.123456789Z"
    # GCP's "never" for keys made without an expiry policy, and nothing usable.
    assert key_expiry(NEVER) is None
    assert key_expiry("") is None and key_expiry(None) is None and key_expiry("soon") is None


@pulumi.runtime.test
def test_outputs(mon):
    pool = make_pool()

    def check(values):
        assert list(pool.outputs) == EXPORTS
        assert list(CloudRunPoolOutputs.__annotations__) == EXPORTS  # declared as exported
        assert values["project"] == PROJECT
        assert values["region"] == REGION
        assert values["registry_host"] == "europe-west1-docker.pkg.dev"
        assert values["image_namespace"] == "europe-west1-docker.pkg.dev/acme-data-prod/etl-images"
        assert values["repository_id"] == "etl-images"
        key = json.loads(base64.b64decode(values["service_account_key"]))
        assert key["type"] == "service_account"
        assert key["client_email"] == values["worker_service_account_email"]
        # The key's validAfterTime; no end, as GCP's keys have none unless a policy sets one.
        assert values["credential_created_at"] == "2026-01-01T00:00:00Z"
        assert values["credential_expires_at"] is None

    return after_all(pool, mon, check)


@pulumi.runtime.test
def test_private_key_is_secret(mon):
    pool = make_pool()
    return assert_secret(pool.outputs["service_account_key"], after_all(pool, mon, lambda _: None))


@pulumi.runtime.test
def test_preview_registers_the_same_resources(preview_mon):
    # Under preview nothing may hide inside apply(): the same children must register.
    pool = make_pool()

    def check(_):
        assert preview_mon.registered(besides=TYPE_TOKEN) == EXPECTED_CHILDREN["cloud-run-v2"]

    return after_all(pool, preview_mon, check)


# -- keyless: the worker account is a Cloud Run worker's identity (stacks/gcp_worker.py) -------


@pulumi.runtime.test
def test_keyless_makes_no_key_and_keeps_every_grant(mon):
    pool = make_pool(keyless=True)

    def check(values):
        keyless = EXPECTED_CHILDREN["cloud-run-v2"] - {(T_KEY, "etl-worker-key")}
        assert_component_tree(mon, TYPE_TOKEN, "etl", keyless)
        assert mon.of_type(T_KEY) == []
        credential = {"service_account_key", "credential_created_at", "credential_expires_at"}
        assert list(pool.outputs) == [e for e in EXPORTS if e not in credential]
        # The identity the worker runs as holds what the key's holder held.
        worker = f"serviceAccount:{values['worker_service_account_email']}"
        assert mon.one(T_PROJECT_MEMBER).inputs["member"] == worker
        assert mon.one(T_SA_MEMBER).inputs["member"] == worker
        assert mon.one(T_REPO_MEMBER).inputs["member"] == worker

    return after_all(pool, mon, check)


@pulumi.runtime.test
def test_keyless_preview_registers_no_key_either(preview_mon):
    pool = make_pool(keyless=True)

    def check(_):
        registered = preview_mon.registered(besides=TYPE_TOKEN)
        assert registered == EXPECTED_CHILDREN["cloud-run-v2"] - {(T_KEY, "etl-worker-key")}

    return after_all(pool, preview_mon, check)


def test_label_value_sanitising():
    assert label_value("ETL Pool_#1") == "etl-pool_-1"
    assert label_value("x" * 100) == "x" * 63
    assert label_value("ÜBER-pool") == "-ber-pool"


def test_unknown_flavor_rejected():
    with pytest.raises(ValueError, match="flavor"):
        CloudRunPool(
            "x",
            CloudRunPoolArgs(
                pool="x",
                project=PROJECT,
                region=REGION,
                flavor="ecs",  # type: ignore[arg-type]
                worker_account_id="x-worker",
                runtime_account_id="x-runtime",
                repository_id="x-images",
                role_id="provision_x_00000000",
            ),
        )
