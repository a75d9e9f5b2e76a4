"""The GCP fake, called directly (no engine): shapes, validation, cloud rules, diff, refresh."""

from __future__ import annotations

import base64
import importlib
import inspect
import json
import re
import time
from collections.abc import Callable
from typing import Any

import pytest
from pulumi.provider.experimental.provider import PropertyDiffKind

from tests.fakecloud import gcp as fake
from tests.fakecloud.driver import PROJECT, REGION, Driver
from tests.fakecloud.gcp import (
    ACCOUNT,
    ACCOUNT_IAM_MEMBER,
    CUSTOM_ROLE,
    GCP,
    GET_CLIENT_CONFIG,
    GET_PROJECT,
    KEY,
    PROJECT_IAM_MEMBER,
    REPOSITORY,
    REPOSITORY_IAM_MEMBER,
    SERVICE,
)
from tests.fakecloud.gcp_base import SECRET, SECRET_IAM_MEMBER, SECRET_VERSION, WORKER_POOL
from tests.fakecloud.provider import UNKNOWN, CloudError, FakeProvider, Secret, to_plain_map
from tests.fakecloud.sdk_source import class_source
from tests.fakecloud.state import FakeCloud

SA_INPUTS = {"accountId": "pool-runner", "displayName": "Pool runner"}
SA_EMAIL = f"pool-runner@{PROJECT}.iam.gserviceaccount.com"
SA_NAME = f"projects/{PROJECT}/serviceAccounts/{SA_EMAIL}"
REPO_INPUTS = {"repositoryId": "pool-images", "format": "DOCKER", "location": REGION}
ROLE_INPUTS = {"roleId": "poolRole", "title": "Pool", "permissions": ["run.jobs.run", "a.b.c"]}


def plain(outputs: dict[str, Any]) -> dict[str, Any]:
    """Outputs without the PropertyValue wrapping."""
    return to_plain_map(outputs)


def failures(gcp: Driver, token: str, inputs: dict[str, Any]) -> list[tuple[str, str]]:
    """Check's failures as (property, reason)."""
    return [(f.property, f.reason) for f in gcp.check(token, "r", inputs).failures]


# ------------------------------------------------------- faithful to pulumi-gcp
_RESOURCE_BASE_PROPERTIES = {"urn", "pulumi_resource_name", "pulumi_resource_type"}


def _sdk_class(token: str) -> type:
    module, _, cls = token.split(":", 1)[1].partition("/")
    return getattr(importlib.import_module(f"pulumi_gcp.{module}"), cls.rsplit(":", 1)[-1])


def _wire_names(cls: type) -> set[str]:
    names = set()
    for attr, member in inspect.getmembers(cls):
        if isinstance(member, property) and attr not in _RESOURCE_BASE_PROPERTIES:
            names.add(getattr(member.fget, "_pulumi_name", None) or attr)
    return names


@pytest.mark.parametrize("token", sorted(GCP.resources))
def test_token_and_input_names_match_the_installed_pulumi_gcp(token: str) -> None:
    cls = _sdk_class(token)
    assert f"'{token}'" in class_source(cls), "the SDK registers exactly this token"
    args = getattr(importlib.import_module(cls.__module__), cls.__name__ + "Args")
    assert GCP.resources[token].inputs == _wire_names(args)


def test_every_output_is_an_output_of_the_sdk_resource(gcp: Driver) -> None:
    made = {
        ACCOUNT: gcp.up(ACCOUNT, "sa", SA_INPUTS),
        REPOSITORY: gcp.up(REPOSITORY, "repo", {**REPO_INPUTS, "labels": {"a": "b"}}),
        CUSTOM_ROLE: gcp.up(CUSTOM_ROLE, "role", ROLE_INPUTS),
        SERVICE: gcp.up(SERVICE, "svc", {"service": "run.googleapis.com"}),
    }
    member = f"serviceAccount:{SA_EMAIL}"
    made[KEY] = gcp.up(KEY, "key", {"serviceAccountId": SA_NAME})
    made[PROJECT_IAM_MEMBER] = gcp.up(
        PROJECT_IAM_MEMBER, "p", {"project": PROJECT, "role": "roles/viewer", "member": member}
    )
    made[ACCOUNT_IAM_MEMBER] = gcp.up(
        ACCOUNT_IAM_MEMBER,
        "a",
        {"serviceAccountId": SA_NAME, "role": "roles/iam.serviceAccountUser", "member": member},
    )
    made[REPOSITORY_IAM_MEMBER] = gcp.up(
        REPOSITORY_IAM_MEMBER,
        "r",
        {"repository": "pool-images", "role": "roles/artifactregistry.reader", "member": member},
    )
    for api in ("secretmanager.googleapis.com", "run.googleapis.com"):
        gcp.up(SERVICE, api, {"service": api})
    replication = {"userManaged": {"replicas": [{"location": REGION}]}}
    made[SECRET] = gcp.up(SECRET, "s", {"secretId": "pool-key", "replication": replication})
    secret = plain(made[SECRET][1])["id"]
    made[SECRET_VERSION] = gcp.up(SECRET_VERSION, "v", {"secret": secret, "secretData": "x"})
    made[SECRET_IAM_MEMBER] = gcp.up(
        SECRET_IAM_MEMBER,
        "a",
        {"secretId": secret, "role": "roles/secretmanager.secretAccessor", "member": member},
    )
    ref = {"secretKeyRef": {"secret": "pool-key", "version": "1"}}
    made[WORKER_POOL] = gcp.up(
        WORKER_POOL,
        "w",
        {
            "name": "pool-worker",
            "location": REGION,
            "deletionProtection": False,
            "template": {
                "serviceAccount": SA_EMAIL,
                "containers": [{"image": "i", "envs": [{"name": "K", "valueSource": ref}]}],
            },
        },
    )
    assert set(made) == set(GCP.resources)
    for token, (rid, outputs) in made.items():
        assert outputs.keys() <= _wire_names(_sdk_class(token)), token
        assert plain(outputs)["id"] == rid


def test_invoke_results_are_fields_of_the_sdk_results(gcp: Driver) -> None:
    # The package re-exports the functions under their module names: import the modules.
    project = importlib.import_module("pulumi_gcp.organizations.get_project")
    client = importlib.import_module("pulumi_gcp.organizations.get_client_config")
    assert gcp.invoke(GET_PROJECT).keys() <= _wire_names(project.GetProjectResult)
    assert gcp.invoke(GET_CLIENT_CONFIG).keys() <= _wire_names(client.GetClientConfigResult)


# ------------------------------------------------------------------ accounts
def test_account_outputs_look_like_gcps(gcp: Driver, cloud: FakeCloud) -> None:
    rid, outputs = gcp.up(ACCOUNT, "runner", SA_INPUTS)
    out = plain(outputs)

    assert rid == out["name"] == out["id"] == SA_NAME
    assert out["email"] == SA_EMAIL and out["member"] == f"serviceAccount:{SA_EMAIL}"
    assert re.fullmatch(r"1\d{20}", out["uniqueId"])
    assert out["project"] == PROJECT, "defaulted from the provider config"
    assert out["disabled"] is False and out["deletionPolicy"] == "DELETE"
    record = cloud.get(ACCOUNT, rid)
    assert record["name"] == "runner" and record["urn"].endswith("::runner")


@pytest.mark.parametrize(
    ("account_id", "reasons"),
    [
        ("abc", ['"account_id" ("abc") must be between 6 and 30 characters long']),
        ("a" * 31, ["must be between 6 and 30 characters long"]),
        ("Pool_runner", ['must match regex "^[a-z]([-a-z0-9]*[a-z0-9])?$"']),
        ("pool-runner-", ["must match regex"]),
        ("9pool-runner", ["must match regex"]),
    ],
)
def test_account_id_rules(gcp: Driver, account_id: str, reasons: list[str]) -> None:
    found = failures(gcp, ACCOUNT, {"accountId": account_id})
    assert len(found) == len(reasons)
    for (prop, reason), expected in zip(found, reasons, strict=True):
        assert prop == "accountId" and expected in reason
        assert reason.endswith("Examine values at 'r.accountId'.")


def test_unknown_values_are_not_validated_and_unknown_keys_are(gcp: Driver) -> None:
    assert failures(gcp, ACCOUNT, {"accountId": UNKNOWN}) == []
    assert failures(gcp, ACCOUNT, {"accountId": "pool-runner", "displayname": "x"}) == [
        ("displayname", "Invalid or unknown key. Examine values at 'r.displayname'.")
    ]


def test_check_fills_schema_defaults_and_records_them(gcp: Driver) -> None:
    checked = plain(gcp.check(KEY, "k", {"serviceAccountId": SA_NAME}).inputs)
    assert checked["keyAlgorithm"] == "KEY_ALG_RSA_2048"
    inputs = to_plain_map(gcp.check(KEY, "k", {"serviceAccountId": SA_NAME}).inputs, internal=True)
    assert inputs["__defaults"] == ["keyAlgorithm", "privateKeyType", "publicKeyType"]


def test_second_account_with_the_same_id_is_a_409_even_from_another_stack(
    make_driver: Callable[..., Driver], cloud: FakeCloud
) -> None:
    make_driver().up(ACCOUNT, "runner", SA_INPUTS)
    with pytest.raises(CloudError) as info:
        make_driver().up(ACCOUNT, "other-stacks-runner", SA_INPUTS)
    assert str(info.value) == (
        "Error creating service account: googleapi: Error 409: Service account pool-runner "
        f"already exists within project projects/{PROJECT}., alreadyExists"
    )
    assert cloud.count(ACCOUNT) == 1


def test_create_ignore_already_exists_adopts_a_hand_made_account(
    gcp: Driver, cloud: FakeCloud
) -> None:
    seeded = fake.seed_account(cloud, PROJECT, "pool-runner")
    rid, outputs = gcp.up(ACCOUNT, "runner", {**SA_INPUTS, "createIgnoreAlreadyExists": True})
    assert rid == seeded["id"]
    assert plain(outputs)["uniqueId"] == seeded["properties"]["uniqueId"]


def test_no_project_anywhere_fails_like_the_provider(
    state_dir: Any,
) -> None:
    driver = Driver(FakeProvider(GCP, state_dir=state_dir, env={}))
    driver.configure()
    with pytest.raises(CloudError, match=r"^project: required field is not set$"):
        driver.up(ACCOUNT, "runner", SA_INPUTS)


def test_project_from_google_project_env_like_pulumi_gcp(state_dir: Any) -> None:
    driver = Driver(FakeProvider(GCP, state_dir=state_dir, env={"GOOGLE_PROJECT": "env-proj"}))
    driver.configure()
    assert driver.up(ACCOUNT, "runner", SA_INPUTS)[0].startswith("projects/env-proj/")


def test_missing_credentials_fail_check_config_with_pulumi_gcps_words(
    make_driver: Callable[..., Driver],
) -> None:
    with pytest.raises(CloudError) as info:
        make_driver(FAKECLOUD_GCP_NO_CREDENTIALS="1")
    text = str(info.value)
    assert text.startswith("failed to load application credentials.")
    assert "google: could not find default credentials" in text


# ---------------------------------------------------------------------- keys
def test_key_carries_a_fresh_credentials_file_as_a_secret(gcp: Driver) -> None:
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    gcp.up(ACCOUNT, "runner", SA_INPUTS)
    rid, outputs = gcp.up(KEY, "key", {"serviceAccountId": SA_NAME})
    _, again = gcp.up(KEY, "key2", {"serviceAccountId": SA_NAME})

    assert outputs["privateKey"].is_secret
    out = plain(outputs)
    assert re.fullmatch(rf"{re.escape(SA_NAME)}/keys/[0-9a-f]{{40}}", rid) and out["name"] == rid
    document = json.loads(base64.b64decode(out["privateKey"]))
    assert document["type"] == "service_account" and document["client_email"] == SA_EMAIL
    assert document["project_id"] == PROJECT and document["private_key_id"] == rid[-40:]
    key = load_pem_private_key(document["private_key"].encode(), password=None)
    assert key.key_size == 2048
    assert base64.b64decode(out["publicKey"]).startswith(b"-----BEGIN CERTIFICATE-----")
    assert out["validBefore"] == "9999-12-31T23:59:59Z"
    other = json.loads(base64.b64decode(plain(again)["privateKey"]))
    assert other["private_key"] != document["private_key"], "every key is new"


def test_private_key_is_never_stored_but_survives_refresh(gcp: Driver, cloud: FakeCloud) -> None:
    gcp.up(ACCOUNT, "runner", SA_INPUTS)
    rid, outputs = gcp.up(KEY, "key", {"serviceAccountId": SA_EMAIL})  # email form works too
    assert "privateKey" not in cloud.get(KEY, rid)["properties"]
    refreshed = gcp.read(KEY, "key", rid, outputs).properties
    assert refreshed["privateKey"] == outputs["privateKey"] and refreshed["privateKey"].is_secret


def test_key_on_a_missing_account_is_a_404(gcp: Driver) -> None:
    with pytest.raises(CloudError) as info:
        gcp.up(KEY, "key", {"serviceAccountId": SA_NAME})
    assert str(info.value) == (
        "Error creating service account key: googleapi: Error 404: Not found; Gaia id not "
        f"found for email {SA_EMAIL}, notFound"
    )


def test_at_most_ten_keys_per_account(gcp: Driver, cloud: FakeCloud) -> None:
    gcp.up(ACCOUNT, "runner", SA_INPUTS)
    for n in range(10):
        gcp.up(KEY, f"key{n}", {"serviceAccountId": SA_NAME})
    with pytest.raises(CloudError) as info:
        gcp.up(KEY, "key10", {"serviceAccountId": SA_NAME})
    assert str(info.value) == (
        "Error creating service account key: googleapi: Error 400: Precondition check "
        "failed., failedPrecondition"
    )
    assert cloud.count(KEY) == 10


def test_org_policy_forbids_keys(make_driver: Callable[..., Driver]) -> None:
    gcp = make_driver(FAKECLOUD_GCP_DISABLE_KEY_CREATION="1")
    gcp.up(ACCOUNT, "runner", SA_INPUTS)
    with pytest.raises(CloudError) as info:
        gcp.up(KEY, "key", {"serviceAccountId": SA_NAME})
    text = str(info.value)
    assert text.startswith(
        "Error creating service account key: googleapi: Error 400: Key creation is not "
        "allowed on this service account.\nDetails:\n"
    )
    assert '"type": "constraints/iam.disableServiceAccountKeyCreation"' in text
    assert text.endswith(", failedPrecondition")


def test_key_enum_validation(gcp: Driver) -> None:
    found = failures(gcp, KEY, {"serviceAccountId": SA_NAME, "keyAlgorithm": "RSA_4096"})
    assert found[0][0] == "keyAlgorithm"
    assert found[0][1].startswith('expected key_algorithm to be one of ["KEY_ALG_UNSPECIFIED"')


def test_deleting_an_account_deletes_its_keys_and_grants_on_it(
    gcp: Driver, cloud: FakeCloud
) -> None:
    rid, outputs = gcp.up(ACCOUNT, "runner", SA_INPUTS)
    key_id, key = gcp.up(KEY, "key", {"serviceAccountId": SA_NAME})
    gcp.up(
        ACCOUNT_IAM_MEMBER,
        "actas",
        {"serviceAccountId": SA_NAME, "role": "roles/iam.serviceAccountUser", "member": "user:a@b"},
    )
    gcp.delete(ACCOUNT, "runner", rid, outputs)

    assert cloud.count() == 0
    assert gcp.read(KEY, "key", key_id, key).resource_id in (None, "")
    gcp.delete(KEY, "key", key_id, key)  # already gone: deleting succeeds, as in pulumi-gcp


# -------------------------------------------------------------- custom roles
def test_custom_role_shape_and_collision(gcp: Driver) -> None:
    rid, outputs = gcp.up(CUSTOM_ROLE, "role", ROLE_INPUTS)
    out = plain(outputs)
    assert rid == out["name"] == f"projects/{PROJECT}/roles/poolRole"
    assert out["stage"] == "GA" and out["deleted"] is False
    assert out["permissions"] == ["a.b.c", "run.jobs.run"]
    with pytest.raises(CloudError, match=f"^Custom project role {rid} already exists and must"):
        gcp.up(CUSTOM_ROLE, "again", ROLE_INPUTS)


def test_custom_role_validation(gcp: Driver) -> None:
    bad = {**ROLE_INPUTS, "roleId": "pool-role", "permissions": [], "stage": "BOGUS"}
    found = dict(failures(gcp, CUSTOM_ROLE, bad))
    assert found["roleId"].startswith('"role_id" ("pool-role") doesn\'t match regexp')
    assert "1 item minimum" in found["permissions"]
    assert found["stage"].startswith('expected stage to be one of ["ALPHA"')


def test_deleted_role_is_undeleted_within_the_window(gcp: Driver, cloud: FakeCloud) -> None:
    rid, outputs = gcp.up(CUSTOM_ROLE, "role", ROLE_INPUTS)
    gcp.delete(CUSTOM_ROLE, "role", rid, outputs)
    tombstone = cloud.get(CUSTOM_ROLE, rid, include_deleted=True)
    assert tombstone["deleted"] and tombstone["properties"]["deleted"] is True
    assert cloud.get(CUSTOM_ROLE, rid) is None

    again, _ = gcp.up(CUSTOM_ROLE, "role", {**ROLE_INPUTS, "title": "Pool v2"})
    assert again == rid and cloud.get(CUSTOM_ROLE, rid)["properties"]["title"] == "Pool v2"


def test_deleted_role_id_is_refused_once_past_the_undelete_window(
    make_driver: Callable[..., Driver],
) -> None:
    gcp = make_driver(FAKECLOUD_GCP_ROLE_UNDELETE_WINDOW_S="0")
    rid, outputs = gcp.up(CUSTOM_ROLE, "role", ROLE_INPUTS)
    gcp.delete(CUSTOM_ROLE, "role", rid, outputs)
    with pytest.raises(CloudError) as info:
        gcp.up(CUSTOM_ROLE, "role", ROLE_INPUTS)
    assert str(info.value) == (
        f"Error creating the custom project role {rid}: googleapi: Error 400: You can't "
        "create a role_id (poolRole) which has been marked for deletion., failedPrecondition"
    )


# -------------------------------------------------------------- repositories
def test_repository_names_like_pulumi_gcp(gcp: Driver) -> None:
    rid, outputs = gcp.up(REPOSITORY, "repo", {**REPO_INPUTS, "labels": {"team": "data"}})
    out = plain(outputs)
    assert rid == out["id"] == f"projects/{PROJECT}/locations/{REGION}/repositories/pool-images"
    assert out["name"] == "pool-images", "pulumi-gcp's name is the short repository id"
    assert out["registryUri"] == f"{REGION}-docker.pkg.dev/{PROJECT}/pool-images"
    assert out["effectiveLabels"] == {"team": "data", "goog-pulumi-provisioned": "true"}
    assert out["mode"] == "STANDARD_REPOSITORY"


def test_repository_location_defaults_to_the_region_and_ids_collide(gcp: Driver) -> None:
    no_location = {k: v for k, v in REPO_INPUTS.items() if k != "location"}
    rid, _ = gcp.up(REPOSITORY, "repo", no_location)
    assert f"/locations/{REGION}/" in rid
    with pytest.raises(CloudError) as info:
        gcp.up(REPOSITORY, "repo2", REPO_INPUTS)
    assert str(info.value) == (
        "Error creating Repository: googleapi: Error 409: the repository already exists., "
        "alreadyExists"
    )


# --------------------------------------------------------------- IAM members
def test_iam_member_ids_follow_pulumi_gcp(gcp: Driver) -> None:
    gcp.up(ACCOUNT, "runner", SA_INPUTS)
    gcp.up(REPOSITORY, "repo", REPO_INPUTS)
    member = f"serviceAccount:{SA_EMAIL}"

    rid, outputs = gcp.up(
        PROJECT_IAM_MEMBER, "p", {"project": PROJECT, "role": "roles/run.admin", "member": member}
    )
    assert rid == f"{PROJECT}/roles/run.admin/{member}"
    assert re.fullmatch(r"Bw[A-Za-z0-9+/]{9}=", plain(outputs)["etag"])
    rid, _ = gcp.up(
        ACCOUNT_IAM_MEMBER,
        "a",
        {"serviceAccountId": SA_NAME, "role": "roles/iam.serviceAccountUser", "member": member},
    )
    assert rid == f"{SA_NAME}/roles/iam.serviceAccountUser/{member}"
    rid, outputs = gcp.up(
        REPOSITORY_IAM_MEMBER,
        "r",
        {"repository": "pool-images", "role": "roles/artifactregistry.reader", "member": member},
    )
    full = f"projects/{PROJECT}/locations/{REGION}/repositories/pool-images"
    assert rid == f"{full}/roles/artifactregistry.reader/{member}"
    assert plain(outputs)["repository"] == full and plain(outputs)["location"] == REGION


def test_grant_to_a_missing_account_fails_with_gcps_400(gcp: Driver) -> None:
    member = f"serviceAccount:{SA_EMAIL}"
    with pytest.raises(CloudError) as info:
        gcp.up(
            PROJECT_IAM_MEMBER, "p", {"project": PROJECT, "role": "roles/viewer", "member": member}
        )
    text = str(info.value)
    assert text.startswith(
        f'Request `Create IAM Members roles/viewer {member} for project "{PROJECT}"` returned '
        "error: Batch request and retried single request"
    )
    assert text.endswith(
        f'Error setting IAM policy for project "{PROJECT}": googleapi: Error 400: Service '
        f"account {SA_EMAIL} does not exist., badRequest"
    )


def test_google_managed_accounts_and_other_principals_need_no_account(gcp: Driver) -> None:
    for member in (
        "serviceAccount:service-123@gcp-sa-artifactregistry.iam.gserviceaccount.com",
        "serviceAccount:123-compute@developer.gserviceaccount.com",
        "user:someone@example.com",
    ):
        gcp.up(
            PROJECT_IAM_MEMBER,
            member,
            {"project": PROJECT, "role": "roles/viewer", "member": member},
        )


def test_grant_on_a_missing_account_or_repository_is_a_404(gcp: Driver) -> None:
    grant = {"role": "roles/iam.serviceAccountUser", "member": "user:a@b.c"}
    with pytest.raises(CloudError) as info:
        gcp.up(ACCOUNT_IAM_MEMBER, "a", {**grant, "serviceAccountId": SA_NAME})
    assert str(info.value) == (
        f"Error retrieving IAM policy for service account '{SA_NAME}': googleapi: Error 404: "
        f"Not found; Gaia id not found for email {SA_EMAIL}, notFound"
    )
    with pytest.raises(
        CloudError, match=r'^Error retrieving IAM policy for artifactregistry repository "projects/'
    ):
        gcp.up(REPOSITORY_IAM_MEMBER, "r", {**grant, "repository": "pool-images"})


def test_grant_of_a_missing_custom_role_fails(gcp: Driver) -> None:
    role = f"projects/{PROJECT}/roles/poolRole"
    with pytest.raises(
        CloudError, match=re.escape(f"Role ({role}) does not exist in the resource's hierarchy.")
    ):
        gcp.up(PROJECT_IAM_MEMBER, "p", {"project": PROJECT, "role": role, "member": "user:a@b.c"})
    gcp.up(CUSTOM_ROLE, "role", ROLE_INPUTS)
    gcp.up(PROJECT_IAM_MEMBER, "p", {"project": PROJECT, "role": role, "member": "user:a@b.c"})


def test_new_accounts_are_invisible_to_iam_until_propagated(
    make_driver: Callable[..., Driver],
) -> None:
    gcp = make_driver(FAKECLOUD_GCP_PROPAGATION_MS="400")
    gcp.up(ACCOUNT, "runner", SA_INPUTS)
    grant = {"project": PROJECT, "role": "roles/viewer", "member": f"serviceAccount:{SA_EMAIL}"}
    with pytest.raises(CloudError, match=f"Service account {SA_EMAIL} does not exist., badRequest"):
        gcp.up(PROJECT_IAM_MEMBER, "p", grant)
    actas = {
        "serviceAccountId": SA_NAME,
        "role": "roles/iam.serviceAccountUser",
        "member": "user:a@b.c",
    }
    with pytest.raises(CloudError, match="Gaia id not found"):
        gcp.up(ACCOUNT_IAM_MEMBER, "a", actas)

    time.sleep(0.45)  # what a retrying engine/provider would wait for
    gcp.up(PROJECT_IAM_MEMBER, "p", grant)
    gcp.up(ACCOUNT_IAM_MEMBER, "a", actas)


def test_a_malformed_numeric_knob_names_itself(make_driver: Callable[..., Driver]) -> None:
    gcp = make_driver(FAKECLOUD_GCP_PROPAGATION_MS="2s")
    gcp.up(ACCOUNT, "runner", SA_INPUTS)
    grant = {"project": PROJECT, "role": "roles/viewer", "member": f"serviceAccount:{SA_EMAIL}"}
    with pytest.raises(CloudError, match=r"^FAKECLOUD_GCP_PROPAGATION_MS: '2s' is not a number$"):
        gcp.up(PROJECT_IAM_MEMBER, "p", grant)


def test_the_same_grant_from_two_stacks_is_one_binding(
    make_driver: Callable[..., Driver], cloud: FakeCloud
) -> None:
    grant = {"project": PROJECT, "role": "roles/viewer", "member": "user:a@b.c"}
    rid, outputs = make_driver().up(PROJECT_IAM_MEMBER, "p", grant)
    assert make_driver().up(PROJECT_IAM_MEMBER, "p", grant)[0] == rid
    assert cloud.count(PROJECT_IAM_MEMBER) == 1
    make_driver().delete(PROJECT_IAM_MEMBER, "p", rid, outputs)
    assert cloud.count(PROJECT_IAM_MEMBER) == 0, "non-authoritative, but one binding: gone"


def test_member_and_account_reference_validation(gcp: Driver) -> None:
    assert failures(
        gcp, PROJECT_IAM_MEMBER, {"project": PROJECT, "role": "roles/viewer", "member": "bob@x.com"}
    )[0][1].startswith('invalid value "bob@x.com" for member')
    found = failures(
        gcp, ACCOUNT_IAM_MEMBER, {"serviceAccountId": SA_EMAIL, "role": "r", "member": "user:a@b"}
    )
    assert found[0][0] == "serviceAccountId" and "doesn't match regexp" in found[0][1]


# ------------------------------------------------------------------ services
def test_service_destroy_disables_only_when_asked(gcp: Driver, cloud: FakeCloud) -> None:
    run_id, run = gcp.up(SERVICE, "run", {"service": "run.googleapis.com"})
    iam_id, iam = gcp.up(
        SERVICE, "iam", {"service": "iam.googleapis.com", "disableOnDestroy": True}
    )
    assert run_id == f"{PROJECT}/run.googleapis.com"

    gcp.delete(SERVICE, "run", run_id, run)
    gcp.delete(SERVICE, "iam", iam_id, iam)
    assert cloud.get(SERVICE, run_id)["meta"]["state"] == "ENABLED", "left on, like GCP"
    disabled = cloud.get(SERVICE, iam_id, include_deleted=True)
    assert disabled["deleted"] and disabled["meta"]["state"] == "DISABLED"

    gcp.up(SERVICE, "iam", {"service": "iam.googleapis.com"})  # enabling again is fine
    assert cloud.get(SERVICE, iam_id)["meta"]["state"] == "ENABLED"
    assert failures(gcp, SERVICE, {"service": "run"})[0][1].startswith(
        "expected run to be a domain"
    )


def test_deletion_policy_prevent_and_abandon(gcp: Driver, cloud: FakeCloud) -> None:
    rid, outputs = gcp.up(ACCOUNT, "runner", {**SA_INPUTS, "deletionPolicy": "PREVENT"})
    with pytest.raises(CloudError, match=f'^cannot destroy "{re.escape(rid)}" without setting'):
        gcp.delete(ACCOUNT, "runner", rid, outputs)
    outputs = gcp.update(
        ACCOUNT, "runner", rid, outputs, {**SA_INPUTS, "deletionPolicy": "ABANDON"}
    )
    gcp.delete(ACCOUNT, "runner", rid, outputs)
    assert cloud.get(ACCOUNT, rid) is not None, "abandoned: still in the cloud"


# ---------------------------------------------------------------------- diff
def test_no_diff_when_nothing_changed_despite_defaults_secrets_and_order(gcp: Driver) -> None:
    """The idempotent rerun: Check adds __defaults, secrets wrap values, sets reorder."""
    rid, outputs = gcp.up(ACCOUNT, "runner", {**SA_INPUTS, "description": Secret("x")})
    response = gcp.diff(ACCOUNT, "runner", rid, outputs, {**SA_INPUTS, "description": Secret("x")})
    assert response.changes is False and response.replaces == []

    rid, outputs = gcp.up(CUSTOM_ROLE, "role", ROLE_INPUTS)
    reordered = {**ROLE_INPUTS, "permissions": list(reversed(ROLE_INPUTS["permissions"]))}
    assert gcp.diff(CUSTOM_ROLE, "role", rid, outputs, reordered).changes is False

    rid, outputs = gcp.up(REPOSITORY, "repo", REPO_INPUTS)
    assert (
        gcp.diff(REPOSITORY, "repo", rid, outputs, {**REPO_INPUTS, "format": "docker"}).changes
        is False
    )


@pytest.mark.parametrize(
    ("token", "inputs", "changed", "replaced"),
    [
        (ACCOUNT, {**SA_INPUTS, "displayName": "New"}, ["displayName"], []),
        (ACCOUNT, {"accountId": "pool-runner"}, ["displayName"], []),  # removed: DELETE kind
        (ACCOUNT, {**SA_INPUTS, "accountId": "pool-runner-2"}, ["accountId"], ["accountId"]),
        (ACCOUNT, {**SA_INPUTS, "project": "other-proj"}, ["project"], ["project"]),
        (ACCOUNT, {**SA_INPUTS, "accountId": UNKNOWN}, ["accountId"], ["accountId"]),
        (ACCOUNT, {**SA_INPUTS, "project": PROJECT}, [], []),  # explicit == defaulted
    ],
)
def test_account_diff(
    gcp: Driver, token: str, inputs: dict[str, Any], changed: list[str], replaced: list[str]
) -> None:
    rid, outputs = gcp.up(ACCOUNT, "runner", SA_INPUTS)
    response = gcp.diff(token, "runner", rid, outputs, inputs)
    assert response.diffs == changed and response.replaces == replaced
    assert response.changes is bool(changed)


def test_diff_kinds_and_ignore_changes(gcp: Driver) -> None:
    rid, outputs = gcp.up(ACCOUNT, "runner", SA_INPUTS)
    removed = gcp.diff(ACCOUNT, "runner", rid, outputs, {"accountId": "pool-runner"})
    assert removed.detailed_diff["displayName"].kind == PropertyDiffKind.DELETE
    renamed = gcp.diff(ACCOUNT, "runner", rid, outputs, {**SA_INPUTS, "accountId": "pool-x-1"})
    assert renamed.detailed_diff["accountId"].kind == PropertyDiffKind.UPDATE_REPLACE
    ignored = gcp.diff(
        ACCOUNT, "runner", rid, outputs, {**SA_INPUTS, "displayName": "x"}, ["displayName"]
    )
    assert ignored.changes is False


@pytest.mark.parametrize(
    ("token", "base", "change", "replace"),
    [
        (REPOSITORY, REPO_INPUTS, {"labels": {"a": "b"}}, False),
        (REPOSITORY, REPO_INPUTS, {"description": "images"}, False),
        (REPOSITORY, REPO_INPUTS, {"repositoryId": "other"}, True),
        (REPOSITORY, REPO_INPUTS, {"location": "europe-west1"}, True),
        (REPOSITORY, REPO_INPUTS, {"format": "PYTHON"}, True),
        (CUSTOM_ROLE, ROLE_INPUTS, {"title": "New"}, False),
        (CUSTOM_ROLE, ROLE_INPUTS, {"permissions": ["x.y.z"]}, False),
        (CUSTOM_ROLE, ROLE_INPUTS, {"roleId": "otherRole"}, True),
    ],
)
def test_mutable_fields_update_immutable_ones_replace(
    gcp: Driver, token: str, base: dict[str, Any], change: dict[str, Any], replace: bool
) -> None:
    rid, outputs = gcp.up(token, "r", base)
    response = gcp.diff(token, "r", rid, outputs, {**base, **change})
    assert response.diffs == sorted(change)
    assert response.replaces == (sorted(change) if replace else [])


def test_key_and_grants_replace_on_any_change(gcp: Driver) -> None:
    gcp.up(ACCOUNT, "runner", SA_INPUTS)
    key = {"serviceAccountId": SA_NAME}
    rid, outputs = gcp.up(KEY, "key", key)
    assert gcp.diff(KEY, "key", rid, outputs, key).changes is False
    response = gcp.diff(KEY, "key", rid, outputs, {**key, "keepers": {"rotate": "1"}})
    assert response.replaces == ["keepers"]

    grant = {
        "serviceAccountId": SA_NAME,
        "role": "roles/iam.serviceAccountUser",
        "member": "user:a@b",
    }
    rid, outputs = gcp.up(ACCOUNT_IAM_MEMBER, "g", grant)
    for key_name, value in (
        ("role", "roles/owner"),
        ("member", "user:c@d"),
        ("serviceAccountId", UNKNOWN),
    ):
        assert gcp.diff(
            ACCOUNT_IAM_MEMBER, "g", rid, outputs, {**grant, key_name: value}
        ).replaces == [key_name]


def test_short_repository_reference_does_not_diff_against_its_expanded_output(
    gcp: Driver,
) -> None:
    gcp.up(REPOSITORY, "repo", REPO_INPUTS)
    grant = {
        "repository": "pool-images",
        "role": "roles/artifactregistry.reader",
        "member": "user:a@b",
    }
    rid, outputs = gcp.up(REPOSITORY_IAM_MEMBER, "g", grant)
    assert gcp.diff(REPOSITORY_IAM_MEMBER, "g", rid, outputs, grant).changes is False
    moved = gcp.diff(REPOSITORY_IAM_MEMBER, "g", rid, outputs, {**grant, "repository": "other"})
    assert moved.replaces == ["repository"]


# ------------------------------------------------------- preview and update
def test_preview_leaves_computed_outputs_unknown_and_writes_nothing(
    gcp: Driver, cloud: FakeCloud
) -> None:
    rid, outputs = gcp.up(ACCOUNT, "runner", SA_INPUTS, preview=True)
    out = plain(outputs)
    assert rid == "" and cloud.count() == 0
    assert {k for k, v in out.items() if v == UNKNOWN} == {
        "email",
        "name",
        "uniqueId",
        "member",
        "id",
    }
    assert out["project"] == PROJECT and out["displayName"] == "Pool runner"

    _, key = gcp.up(KEY, "key", {"serviceAccountId": UNKNOWN}, preview=True)
    assert key["privateKey"].value == UNKNOWN and key["privateKey"].is_secret
    assert cloud.count() == 0 and cloud.calls("create") == []


def test_update_changes_the_cloud_and_preview_does_not(gcp: Driver, cloud: FakeCloud) -> None:
    rid, outputs = gcp.up(ACCOUNT, "runner", SA_INPUTS)
    new = {**SA_INPUTS, "displayName": "Renamed"}
    previewed = gcp.update(ACCOUNT, "runner", rid, outputs, new, preview=True)
    assert plain(previewed)["displayName"] == "Renamed" and plain(previewed)["email"] == SA_EMAIL
    assert cloud.get(ACCOUNT, rid)["properties"]["displayName"] == "Pool runner"

    updated = gcp.update(ACCOUNT, "runner", rid, outputs, new)
    assert plain(updated)["uniqueId"] == plain(outputs)["uniqueId"]
    assert cloud.get(ACCOUNT, rid)["properties"]["displayName"] == "Renamed"

    cloud.remove(ACCOUNT, rid)
    with pytest.raises(CloudError, match="Error 404: Requested entity was not found"):
        gcp.update(ACCOUNT, "runner", rid, outputs, SA_INPUTS)


# ------------------------------------------------------------------- refresh
def test_refresh_reports_drift_and_disappearance(gcp: Driver, cloud: FakeCloud) -> None:
    rid, outputs = gcp.up(ACCOUNT, "runner", SA_INPUTS)
    inputs = gcp.checked(ACCOUNT, "runner", SA_INPUTS)
    cloud.edit(ACCOUNT, rid, displayName="Changed in the console")

    refreshed = gcp.read(ACCOUNT, "runner", rid, outputs, inputs)
    assert refreshed.resource_id == rid
    assert plain(refreshed.properties)["displayName"] == "Changed in the console"
    assert plain(refreshed.inputs)["displayName"] == "Changed in the console"
    assert "__defaults" in refreshed.inputs, "bookkeeping inputs are kept"
    diff = gcp.diff(ACCOUNT, "runner", rid, refreshed.properties, SA_INPUTS)
    assert diff.diffs == ["displayName"] and diff.replaces == []

    cloud.remove(ACCOUNT, rid)
    assert gcp.read(ACCOUNT, "runner", rid, outputs, inputs).resource_id in (None, "")


# ------------------------------------------------------------------- invokes
def test_get_project_and_client_config(gcp: Driver) -> None:
    project = gcp.invoke(GET_PROJECT)
    assert project["id"] == f"projects/{PROJECT}" and project["projectId"] == PROJECT
    assert re.fullmatch(r"[1-9]\d{11}", project["number"])
    assert project["number"] == fake.project_number(PROJECT) != fake.project_number("other")
    assert gcp.invoke(GET_PROJECT, projectId="other")["projectId"] == "other"

    config = gcp.invoke(GET_CLIENT_CONFIG)
    assert config["id"] == f"projects/{PROJECT}/regions/{REGION}/zones/"
    assert config["region"] == REGION and config["accessToken"].startswith("ya29.")


def test_unknown_types_and_functions_are_named(gcp: Driver) -> None:
    with pytest.raises(CloudError, match=r"'gcp:storage/bucket:Bucket' is not emulated; add it"):
        gcp.up("gcp:storage/bucket:Bucket", "b", {"location": "US"})
    with pytest.raises(CloudError, match="unknown function 'gcp:x/y:z'"):
        gcp.invoke("gcp:x/y:z")
