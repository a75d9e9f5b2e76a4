"""GcpPool: option resolution, naming, Prefect block and template wiring, grants, program."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import json
import re
import subprocess
import sys
from pathlib import Path

import pulumi
import pytest
from pulumi.runtime import settings as pulumi_settings

from provision.engine_errors import propagation_rules
from provision.errors import EngineError, InvalidInputError
from provision.registry import POOL_TYPES
from provision.targets import gcp_naming as naming
from provision.targets.base import PLACEHOLDER, BlockSpec, WorkerLaunch
from provision.targets.gcp import (
    CLOUD_RUN_REGIONS,
    DEFAULT_REGION,
    KEY,
    PROPAGATION_ERRORS,
    VERTEX_AI_REGIONS,
    GcpOptions,
    GcpPool,
)
from tests.pulumi_mocks import RecordingMonitor

V2 = POOL_TYPES["cloud-run-v2"]
V1_PUSH = POOL_TYPES["cloud-run:push"]
V2_PUSH = POOL_TYPES["cloud-run-v2:push"]
VERTEX = POOL_TYPES["vertex-ai"]

NONE_GIVEN = dict.fromkeys(
    (
        "project",
        "region",
        "worker_account_id",
        "runtime_account_id",
        "repository_id",
        "registry_writer",
    )
)

# Variables each worker's default base job template declares (prefect-gcp
# workers/cloud_run.py CloudRunWorkerVariables, cloud_run_v2.py CloudRunWorkerV2Variables,
# vertex.py VertexAIWorkerVariables); the subset the tool may set defaults for.
TEMPLATE_VARIABLES = {
    "cloud-run": {"credentials", "region", "image", "service_account_name", "vpc_connector_name"},
    "cloud-run-v2": {
        "credentials",
        "region",
        "image",
        "service_account_name",
        "vpc_connector_name",
    },
    "vertex-ai": {"credentials", "region", "image", "service_account_name", "network"},
}

TRICKY_POOLS = [
    "a",
    "etl",
    "ETL",
    "my_pool",
    "My Pool #2",
    "9lives",
    "-leading-dash",
    "trailing-dash-",
    "___",
    "😀 emoji pool",
    "ünïcödé-pööl",
    "data-team/prod",
    "a" * 22,
    "a" * 23,
    "a" * 24,
    "x" * 200,
    "the-quick-brown-fox-jumps-over-the-lazy-dog",
    "the-quick-brown-fox-jumps-over-the-lazy-cat",
    "prefect-pool-with-a-really-long-name-v2",
    "a-b" * 40,
    "1",
    "--",
    "p",
    "UPPER_and_lower_123",
]


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """An empty HOME, so the developer's own gcloud config never leaks into a test."""
    return tmp_path / "home"


def gcloud_config(
    base: Path, name: str = "default", active: bool = True, **sections: dict[str, str]
) -> Path:
    """Write a gcloud configuration directory like gcloud does."""
    (base / "configurations").mkdir(parents=True, exist_ok=True)
    if active:
        (base / "active_config").write_text(name)
    body = "".join(
        f"[{section}]\n" + "".join(f"{k} = {v}\n" for k, v in props.items())
        for section, props in sections.items()
    )
    (base / "configurations" / f"config_{name}").write_text(body)
    return base


GENERATED = {"role_suffix": "0a1b2c3d"}


def resolve_pool(
    *, pool="etl", pool_type=V2, given=None, env=None, saved=None, home=None, generated=None
) -> GcpPool:
    """``GcpPool.resolve`` as the service calls it: ``saved`` options as the record keeps them."""
    env = dict(env or {})
    if home is not None:
        env.setdefault("HOME", str(home))
    prior = saved.model_dump(mode="json") if isinstance(saved, GcpOptions) else saved
    given = {**NONE_GIVEN, **(given or {})}
    return GcpPool.resolve(pool, pool_type, given, env, prior, generated)


def resolve(**kw) -> GcpOptions:
    """The options :func:`resolve_pool` binds."""
    return resolve_pool(**kw).options


# -- resolve: sources and precedence ---------------------------------------------------------


def test_defaults_derive_from_the_pool_name(home):
    opts = resolve(pool="My_Pool", env={"GOOGLE_CLOUD_PROJECT": "acme-prod"}, home=home)
    assert opts == GcpOptions(
        project="acme-prod",
        region=DEFAULT_REGION,
        worker_account_id="my-pool-18a4-worker",
        runtime_account_id="my-pool-18a4-runtime",
        repository_id="my-pool-18a4-images",
        registry_writer=False,
    )
    assert DEFAULT_REGION == "us-central1"


def test_project_precedence(tmp_path, home):
    conf = gcloud_config(tmp_path / "gc", core={"project": "from-gcloud"})
    env = {
        "GOOGLE_CLOUD_PROJECT": "from-google-env",
        "CLOUDSDK_CORE_PROJECT": "from-sdk-env",
        "CLOUDSDK_CONFIG": str(conf),
    }
    saved = resolve(given={"project": "from-saved"}, home=home)

    def project(**kw):
        return resolve(home=home, **kw).project

    assert project(given={"project": "from-flag"}, env=env, saved=saved) == "from-flag"
    assert project(env=env, saved=saved) == "from-saved"
    assert project(env=env) == "from-google-env"
    del env["GOOGLE_CLOUD_PROJECT"]
    assert project(env=env) == "from-sdk-env"
    del env["CLOUDSDK_CORE_PROJECT"]
    assert project(env=env) == "from-gcloud"


def test_empty_env_values_count_as_unset(tmp_path, home):
    conf = gcloud_config(tmp_path / "gc", core={"project": "from-gcloud"})
    env = {"GOOGLE_CLOUD_PROJECT": "", "CLOUDSDK_CONFIG": str(conf)}
    assert resolve(env=env, home=home).project == "from-gcloud"


def test_region_precedence_cloud_run(tmp_path, home):
    conf = gcloud_config(
        tmp_path / "gc",
        core={"project": "acme-prod"},
        run={"region": "europe-west4"},
        compute={"region": "asia-east1"},
    )
    env = {
        "CLOUDSDK_CONFIG": str(conf),
        "CLOUDSDK_RUN_REGION": "us-east1",
        "CLOUDSDK_COMPUTE_REGION": "us-west1",
    }
    saved = resolve(given={"project": "acme-prod", "region": "asia-northeast1"}, home=home)

    def region(**kw):
        return resolve(home=home, **kw).region

    assert region(given={"region": "europe-west1"}, env=env, saved=saved) == "europe-west1"
    assert region(env=env, saved=saved) == "asia-northeast1"
    assert region(env=env) == "us-east1"
    del env["CLOUDSDK_RUN_REGION"]
    assert region(env=env) == "us-west1"
    del env["CLOUDSDK_COMPUTE_REGION"]
    assert region(env=env) == "europe-west4"
    gcloud_config(conf, core={"project": "acme-prod"}, compute={"region": "asia-east1"})
    assert region(env=env) == "asia-east1"
    gcloud_config(conf, core={"project": "acme-prod"})
    assert region(env=env) == DEFAULT_REGION


def test_vertex_reads_the_ai_region_not_the_run_region(tmp_path, home):
    conf = gcloud_config(
        tmp_path / "gc",
        core={"project": "acme-prod"},
        run={"region": "europe-west1"},
        ai={"region": "europe-west4"},
    )
    env = {"CLOUDSDK_CONFIG": str(conf), "CLOUDSDK_RUN_REGION": "us-east1"}
    assert resolve(pool_type=VERTEX, env=env, home=home).region == "europe-west4"
    env["CLOUDSDK_AI_REGION"] = "asia-northeast1"
    assert resolve(pool_type=VERTEX, env=env, home=home).region == "asia-northeast1"


def test_gcloud_config_in_home_and_named_configurations(home):
    base = home / ".config" / "gcloud"
    gcloud_config(base, name="work", core={"project": "work-project"})
    gcloud_config(base, name="other", active=False, core={"project": "other-project"})
    assert resolve(home=home).project == "work-project"
    env = {"CLOUDSDK_ACTIVE_CONFIG_NAME": "other"}
    assert resolve(env=env, home=home).project == "other-project"


def test_missing_active_config_file_means_default(home):
    base = home / ".config" / "gcloud"
    gcloud_config(base, name="default", active=False, core={"project": "default-project"})
    assert resolve(home=home).project == "default-project"


def test_malformed_gcloud_config_is_ignored(tmp_path, home):
    base = tmp_path / "gc"
    (base / "configurations").mkdir(parents=True)
    (base / "configurations" / "config_default").write_text("not an ini [file\n= =")
    with pytest.raises(InvalidInputError, match="No GCP project"):
        resolve(env={"CLOUDSDK_CONFIG": str(base)}, home=home)


def test_saved_options_are_reused(home):
    saved = GcpOptions(
        project="acme-prod",
        region="europe-west1",
        worker_account_id="custom-worker",
        runtime_account_id="custom-runtime",
        repository_id="custom-repo",
        registry_writer=True,
    )
    assert resolve(saved=saved, home=home) == saved
    # A flag still wins, False included.
    again = resolve(saved=saved, given={"registry_writer": False}, home=home)
    assert again.registry_writer is False
    assert again.worker_account_id == "custom-worker"


def test_unset_unknown_keys_are_ignored(home):
    opts = resolve(given={"project": "acme-prod", "cluster": None, "vpc_id": None}, home=home)
    assert opts.project == "acme-prod"


# -- resolve: bad input, one line each -----------------------------------------------

BAD_INPUTS = [
    ({"cluster": "main"}, "Option --cluster does not apply to type 'cloud-run-v2'."),
    ({"execution_role_arn": "arn:x"}, "Option --execution-role-arn does not apply to type"),
    ({"project": "Acme-Prod"}, "Invalid GCP project id 'Acme-Prod' (from --project)"),
    ({"project": "short"}, "Invalid GCP project id 'short'"),
    ({"project": "1starts-with-digit"}, "Invalid GCP project id"),
    ({"project": "ends-with-dash-"}, "Invalid GCP project id"),
    ({"project": "x" * 31}, "Invalid GCP project id"),
    ({"project": "has_underscore"}, "Invalid GCP project id"),
    ({"region": "europe-west7"}, "Region 'europe-west7' (from --region) has no Cloud Run; did"),
    ({"region": "us-centrall"}, "did you mean us-central1?"),
    ({"region": "moon-base1"}, "has no Cloud Run; use one of: africa-south1,"),
    ({"worker_account_id": "w"}, "Invalid --worker-account-id 'w' (from --worker-account-id)"),
    ({"worker_account_id": "Worker-account"}, "Invalid --worker-account-id"),
    ({"runtime_account_id": "runtime-"}, "Invalid --runtime-account-id 'runtime-'"),
    ({"runtime_account_id": "r" * 31}, "Invalid --runtime-account-id"),
    ({"runtime_account_id": "9runtime"}, "Invalid --runtime-account-id"),
    (
        {"worker_account_id": "same-account", "runtime_account_id": "same-account"},
        "--worker-account-id and --runtime-account-id are both 'same-account'",
    ),
    ({"repository_id": "Images"}, "Invalid --repository-id 'Images'"),
    ({"repository_id": "images-"}, "Invalid --repository-id"),
    ({"repository_id": "i" * 64}, "Invalid --repository-id"),
    ({"registry_writer": "yes"}, "--registry-writer must be true or false, not 'yes'."),
]


@pytest.mark.parametrize(("given", "needle"), BAD_INPUTS)
def test_bad_inputs_are_one_line_errors(home, given, needle):
    with pytest.raises(InvalidInputError) as info:
        resolve(given={"project": "acme-prod", **given}, home=home)
    message = info.value.message
    assert needle in message
    assert "\n" not in message
    assert info.value.exit_code == 2


def test_missing_project_message(home):
    with pytest.raises(InvalidInputError) as info:
        resolve(home=home)
    assert info.value.message == (
        "No GCP project: pass --project, set GOOGLE_CLOUD_PROJECT or run "
        "`gcloud config set project ID`."
    )


def test_bad_region_names_its_source(tmp_path, home):
    conf = gcloud_config(tmp_path / "gc", core={"project": "acme-prod"}, run={"region": "mars"})
    with pytest.raises(InvalidInputError, match=r"\(from gcloud config run/region\)"):
        resolve(env={"CLOUDSDK_CONFIG": str(conf)}, home=home)


def test_vertex_regions_are_checked_against_vertex(home):
    with pytest.raises(InvalidInputError, match="has no Vertex AI"):
        resolve(pool_type=VERTEX, given={"project": "acme-prod", "region": "mars-north1"})
    assert resolve(pool_type=VERTEX, given={"project": "acme-prod", "region": "europe-west4"})


def test_domain_scoped_project_is_accepted(home):
    opts = resolve(given={"project": "example.com:my-proj"}, home=home)
    assert opts.project == "example.com:my-proj"


def test_region_lists_include_the_usual_regions():
    for region in ("us-central1", "europe-west1", "asia-northeast1", "us-east4"):
        assert region in CLOUD_RUN_REGIONS
        assert region in VERTEX_AI_REGIONS
    assert len(set(CLOUD_RUN_REGIONS)) == len(CLOUD_RUN_REGIONS)
    assert len(set(VERTEX_AI_REGIONS)) == len(VERTEX_AI_REGIONS)
    assert all(re.fullmatch(r"[a-z]+-[a-z]+\d+", r) for r in CLOUD_RUN_REGIONS + VERTEX_AI_REGIONS)


# -- naming ----------------------------------------------------------------------------------


@pytest.mark.parametrize("pool", TRICKY_POOLS)
def test_derived_ids_are_always_valid_and_stable(pool):
    worker = naming.worker_account_id(pool)
    runtime = naming.runtime_account_id(pool)
    repo = naming.repository_id(pool)
    assert naming.ACCOUNT_ID_RE.match(worker), worker
    assert naming.ACCOUNT_ID_RE.match(runtime), runtime
    assert naming.REPOSITORY_ID_RE.match(repo), repo
    assert worker != runtime
    assert worker.endswith("-worker") and runtime.endswith("-runtime") and repo.endswith("-images")
    assert "--" not in worker + runtime + repo
    # Stable: a rerun must never rename anything.
    assert (worker, runtime, repo) == (
        naming.worker_account_id(pool),
        naming.runtime_account_id(pool),
        naming.repository_id(pool),
    )
    role = naming.role_id(pool, "0a1b2c3d")
    assert naming.ROLE_ID_RE.match(role), role
    assert role.startswith("provision_") and role.endswith("_0a1b2c3d")


@pytest.mark.parametrize("pool", TRICKY_POOLS)
def test_worker_pool_and_secret_ids_are_always_valid_and_stable(pool):
    worker_pool = naming.worker_pool_id(pool)
    assert naming.WORKER_POOL_ID_RE.match(worker_pool) and len(worker_pool) < 50, worker_pool
    assert worker_pool == naming.worker_pool_id(pool) and worker_pool.endswith("-worker")
    for variable in ("PREFECT_API_KEY", "PREFECT_API_AUTH_STRING"):
        secret = naming.worker_secret_id(worker_pool, variable)
        assert naming.SECRET_ID_RE.match(secret) and secret.endswith(variable), secret


@pytest.mark.parametrize("pool", TRICKY_POOLS)
def test_derived_defaults_pass_resolve_options(home, pool):
    assert resolve(pool=pool, given={"project": "acme-prod"}, home=home)


def test_short_names_are_readable():
    assert naming.worker_account_id("etl") == "etl-worker"
    assert naming.runtime_account_id("My Pool #2") == "my-pool-2-e0fd-runtime"
    assert naming.repository_id("data_team") == "data-team-d093-images"
    assert naming.worker_account_id("9lives") == "p-9lives-bc86-worker"
    assert naming.worker_account_id("___") == "p-bda2-worker"
    assert naming.role_id("data-team", "0a1b2c3d") == "provision_data_team_0a1b2c3d"


def test_pools_that_slug_alike_never_share_ids():
    # Distinct Prefect pools, one GCP project: equal ids would make the second `up` fail.
    pools = ("my-pool", "my_pool", "My-Pool", "my pool", "MY_POOL")
    for derive in (naming.worker_account_id, naming.runtime_account_id, naming.repository_id):
        assert len({derive(p) for p in pools}) == len(pools), derive.__name__


def test_long_names_get_a_hash_only_when_truncated():
    fits = "a" * 23  # 23 + len("-worker") == 30
    assert naming.worker_account_id(fits) == f"{fits}-worker"
    long_a = "the-quick-brown-fox-jumps-over-the-lazy-dog"
    long_b = "the-quick-brown-fox-jumps-over-the-lazy-cat"
    ids_a = (naming.worker_account_id(long_a), naming.runtime_account_id(long_a))
    ids_b = (naming.worker_account_id(long_b), naming.runtime_account_id(long_b))
    assert all(len(i) == 30 for i in ids_a + ids_b)
    assert set(ids_a).isdisjoint(ids_b)  # same 18-char prefix, different pools
    assert naming.pool_hash(long_a) in ids_a[0]


def test_many_long_names_do_not_collide():
    pools = [f"shared-prefix-for-every-pool-{i}" for i in range(200)]
    assert len({naming.worker_account_id(p) for p in pools}) == len(pools)
    assert len({naming.runtime_account_id(p) for p in pools}) == len(pools)


def test_role_id_bounded():
    role = naming.role_id("y" * 300, "deadbeef")
    assert len(role) == 64 and naming.ROLE_ID_RE.match(role)


def test_service_account_email():
    assert naming.service_account_email("w-worker", "acme-prod") == (
        "w-worker@acme-prod.iam.gserviceaccount.com"
    )
    assert naming.service_account_email("w-worker", "example.com:proj") == (
        "w-worker@proj.example.com.iam.gserviceaccount.com"
    )


# -- generated & provider config --------------------------------------------------------------


def test_generated_config_is_a_fresh_hex_suffix(home):
    opts = GcpOptions(
        project="acme-prod",
        region="us-central1",
        worker_account_id="etl-worker",
        runtime_account_id="etl-runtime",
        repository_id="etl-images",
    )
    first = GcpPool.generate("etl", opts)
    second = GcpPool.generate("etl", opts)
    assert set(first) == {"role_suffix"}
    assert re.fullmatch(r"[0-9a-f]{8}", first["role_suffix"])
    assert first != second  # random: chosen once, then kept by the engine
    pool = GcpPool("etl", V2, opts, first)
    assert pool.provider_config() == {
        "gcp:project": "acme-prod",
        "gcp:region": "us-central1",
    }
    assert pool.location() == "acme-prod/us-central1"
    # resolve() chooses them on the first up only; afterwards the saved ones are kept.
    given = {"project": "acme-prod"}
    fresh = resolve_pool(given=given, home=home).generated
    assert re.fullmatch(r"[0-9a-f]{8}", fresh["role_suffix"])
    assert resolve_pool(given=given, home=home, generated=GENERATED).generated == GENERATED


def test_target_attributes():
    assert GcpPool.cloud == "gcp"
    assert GcpPool.block == BlockSpec(type="gcp-credentials", suffix="gcp-credentials")
    assert GcpPool.block.type == "gcp-credentials"
    assert GcpPool.block.suffix == "gcp-credentials"
    assert GcpPool.options_model is GcpOptions
    assert GcpPool.error_rules
    # The key rotates; one a killed run made untracked is deleted, not merely named.
    assert GcpPool.rotates is True
    assert GcpPool.removes_untracked == frozenset({KEY})
    assert KEY in GcpPool.orphan_hints  # still said when IAM cannot be asked


# -- rotation ----------------------------------------------------------------------------------


def test_rotate_after_is_an_option_saved_with_the_pool(home):
    given = {"project": "acme-prod", "rotate_after": 90}
    opts = resolve(given=given, home=home)
    assert opts.rotate_after == 90
    assert resolve(saved=opts, given={"project": None}, home=home).rotate_after == 90
    assert resolve(saved=opts, given={"rotate_after": 30}, home=home).rotate_after == 30
    assert resolve(given={"project": "acme-prod"}, home=home).rotate_after is None


@pytest.mark.parametrize(
    ("given", "needle"),
    [
        ({"rotate_after": 0}, "Invalid --rotate-after 0 (from --rotate-after): 1 to 3650 days."),
        (
            {"rotate_after": 30, "with_worker": True},
            "--rotate-after ages a credential, and --with-worker makes none: drop one.",
        ),
    ],
)
def test_rotate_after_refused_in_one_line(home, given, needle):
    with pytest.raises(InvalidInputError) as info:
        resolve(given={"project": "acme-prod", **given}, home=home)
    assert info.value.message == needle


@pytest.mark.parametrize(
    ("generated", "trigger"),
    [({}, None), ({"credential_rotation": "0"}, None), ({"credential_rotation": "3"}, "3")],
)
def test_the_rotation_count_is_what_the_key_keeps(etl, generated, trigger):
    rotated = dataclasses.replace(etl, generated={**GENERATED, **generated})
    assert rotated.rotation_trigger() == trigger


# -- propagation ------------------------------------------------------------------------------

PROPAGATING = [
    'Error applying IAM policy for project "acme-prod": Error setting IAM policy for project '
    '"acme-prod": googleapi: Error 400: Service account etl-worker@acme-prod.iam.'
    "gserviceaccount.com does not exist., badRequest",
    "Error 404: Service account projects/acme-prod/serviceAccounts/etl-worker@acme-prod.iam."
    "gserviceaccount.com does not exist., notFound",
    "Error retrieving IAM policy for service account 'projects/acme-prod/serviceAccounts/x': "
    "googleapi: Error 404: Not found; notFound serviceAccounts",
    "Error reading service account after creation: googleapi: Error 403: Permission "
    "iam.serviceAccounts.get is required to perform this operation on service account "
    "projects/acme-prod/serviceAccounts/etl-worker@acme-prod.iam.gserviceaccount.com., forbidden",
    "Error creating service account key: googleapi: Error 404: Not found; Gaia id not found for "
    "email etl-worker@acme-prod.iam.gserviceaccount.com, notFound",
    "Error 400: Role (projects/acme-prod/roles/provision_etl_0a1b2c3d) does not exist in the "
    "resource's hierarchy., badRequest",
    "Error 403: Permission 'iam.serviceaccounts.actAs' denied on service account "
    "etl-runtime@acme-prod.iam.gserviceaccount.com (or it may not exist)., forbidden",
    "Error waiting to create WorkerPool: Error waiting for Creating WorkerPool: Error code 9, "
    "message: template.containers[0].env[2].value_source.secret_key_ref.secret: Permission "
    "denied on secret: projects/123/secrets/etl-worker-PREFECT_API_KEY/versions/1 for Revision "
    "service account etl-worker@acme-prod.iam.gserviceaccount.com. The service account used "
    "must be granted the 'Secret Manager Secret Accessor' role",
    "Error creating Secret: googleapi: Error 403: Secret Manager API has not been used in project "
    "123 before or it is disabled. Enable it by visiting https://console.developers.google.com/"
    "apis/api/secretmanager.googleapis.com/overview?project=123 then retry. If you enabled this "
    "API recently, wait a few minutes for the action to propagate to our systems and retry.",
    "Error creating Repository: googleapi: Error 403: Artifact Registry API has not been used in "
    "project 123 before or it is disabled. Enable it by visiting https://console.developers."
    "google.com/apis/api/artifactregistry.googleapis.com/overview?project=123 then retry. If you "
    "enabled this API recently, wait a few minutes for the action to propagate to our systems "
    "and retry.",
]

NOT_PROPAGATING = [
    "Error creating service account: googleapi: Error 403: Permission "
    "'iam.serviceAccounts.create' denied on resource (or it may not exist)., forbidden",
    "Error 429: Quota exceeded for quota metric 'Service account creation requests'",
    "FAILED_PRECONDITION: Key creation is not allowed on this service account. "
    "constraints/iam.disableServiceAccountKeyCreation",
    "google: could not find default credentials.",
    # An API the stack does not enable itself is a real configuration error.
    "Error 403: Service Usage API has not been used in project 123 before or it is disabled. "
    "Enable it by visiting https://console.developers.google.com/apis/api/serviceusage."
    "googleapis.com/overview?project=123 then retry. If you enabled this API recently, wait a "
    "few minutes for the action to propagate to our systems and retry.",
    "Error creating Repository: googleapi: Error 409: the repository already exists.",
    # Across lines nothing may chain: the engine matches with DOTALL.
    "Service account\nfoo does not exist",
]


def _propagating(text: str) -> bool:
    """As ``up`` decides whether to retry."""
    return any(rule.match(text) for rule in propagation_rules(PROPAGATION_ERRORS))


@pytest.mark.parametrize("text", PROPAGATING)
def test_propagation_errors_match_real_texts(text):
    assert _propagating(text)


@pytest.mark.parametrize("text", NOT_PROPAGATING)
def test_propagation_errors_leave_real_failures_alone(text):
    assert not _propagating(text)


def test_target_exposes_the_propagation_regexes():
    assert GcpPool.propagation_errors == PROPAGATION_ERRORS
    for pattern in PROPAGATION_ERRORS:
        re.compile(pattern)


# -- Prefect block and template ---------------------------------------------------------------

KEY_INFO = {
    "type": "service_account",
    "project_id": "acme-prod",
    "private_key_id": "abc",
    "private_key": "-----BEGIN PRIVATE KEY-----\nMIIfake\n-----END PRIVATE KEY-----\n",
    "client_email": "etl-worker@acme-prod.iam.gserviceaccount.com",
    "client_id": "1",
    "token_uri": "https://oauth2.googleapis.com/token",
}

OUTPUTS = {
    "project": "acme-prod",
    "region": "europe-west1",
    "worker_service_account_email": "etl-worker@acme-prod.iam.gserviceaccount.com",
    "runtime_service_account_email": "etl-runtime@acme-prod.iam.gserviceaccount.com",
    "service_account_key": base64.b64encode(json.dumps(KEY_INFO).encode()).decode(),
    "registry_host": "europe-west1-docker.pkg.dev",
    "image_namespace": "europe-west1-docker.pkg.dev/acme-prod/etl-images",
    "repository_id": "etl-images",
    "custom_role_id": "projects/acme-prod/roles/provision_etl_0a1b2c3d",
    "credential_created_at": "2026-01-01T00:00:00Z",
    "credential_expires_at": None,
}


def test_block_data_decodes_the_key(etl):
    assert etl.block_data(OUTPUTS, {}) == {"service_account_info": KEY_INFO, "project": "acme-prod"}


@pytest.mark.parametrize(
    "raw",
    [
        "not base64!!",
        base64.b64encode(b"not json").decode(),
        base64.b64encode(b'{"type": "authorized_user"}').decode(),
        None,
    ],
)
def test_block_data_rejects_a_bad_key(etl, raw):
    with pytest.raises(EngineError) as info:
        etl.block_data({**OUTPUTS, "service_account_key": raw}, {})
    assert "\n" not in info.value.message


def test_block_data_names_a_missing_project_output(etl):
    outputs = {k: v for k, v in OUTPUTS.items() if k != "project"}
    with pytest.raises(EngineError, match="lack project for the credentials block") as info:
        etl.block_data(outputs, {})
    assert "Rerun `provision up`" in (info.value.hint or "")


@pytest.mark.parametrize("pool_type", [V1_PUSH, V2_PUSH, POOL_TYPES["cloud-run"], V2, VERTEX])
def test_template_defaults(opts, pool_type):
    pool = GcpPool("etl", pool_type, opts, GENERATED)
    defaults = pool.template_defaults(OUTPUTS, "8c1d6c1e-0000-4000-8000-000000000001")
    assert defaults == {
        "credentials": {"$ref": {"block_document_id": "8c1d6c1e-0000-4000-8000-000000000001"}},
        "region": "europe-west1",
        "service_account_name": "etl-runtime@acme-prod.iam.gserviceaccount.com",
    }
    assert set(defaults) <= TEMPLATE_VARIABLES[pool_type.worker_type]


def test_template_defaults_for_a_plan(etl):
    defaults = etl.template_defaults(OUTPUTS, None)
    assert defaults["credentials"] == {"$ref": {"block_document_id": PLACEHOLDER}}
    assert defaults["credentials"] == {"$ref": {"block_document_id": "<created on up>"}}


def test_expected_outputs_predict_the_real_ones(home):
    pool = resolve_pool(given={"project": "acme-prod", "region": "europe-west1"}, home=home)
    expected = pool.expected_outputs()
    assert expected == {k: v for k, v in OUTPUTS.items() if k in expected}
    assert "service_account_key" not in expected
    plan = pool.template_defaults(expected, None)
    assert plan["service_account_name"] == OUTPUTS["runtime_service_account_email"]


def test_expected_outputs_load_no_pulumi(home):
    # The service predicts them on the thread that checks Prefect: loading pulumi_gcp there
    # (~0.1 s) would hold that thread up, where the stack's preload loads it in the background.
    given = {**NONE_GIVEN, "project": "acme-prod", "region": "europe-west1"}
    code = f"""
import json, sys
from provision.registry import POOL_TYPES
from provision.targets.gcp import GcpPool
env = {{"HOME": {str(home)!r}}}
pool = GcpPool.resolve("etl", POOL_TYPES[{V2.name!r}], {given!r}, env, None, None)
assert pool.expected_outputs()["registry_host"] == "europe-west1-docker.pkg.dev"
print(json.dumps(sorted(m for m in sys.modules if m.split(".")[0] in ("pulumi", "pulumi_gcp"))))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == []


# -- plan, grants, next steps -----------------------------------------------------------------


@pytest.fixture
def opts(home) -> GcpOptions:
    return resolve(given={"project": "acme-prod", "region": "europe-west1"}, home=home)


@pytest.fixture
def etl(opts) -> GcpPool:
    """The cloud-run-v2 pool ``etl`` in acme-prod/europe-west1, its role suffix chosen."""
    return GcpPool("etl", V2, opts, GENERATED)


@pytest.mark.parametrize(
    ("pool_type", "permissions"),
    [
        (
            V1_PUSH,
            (
                "run.jobs.create",
                "run.jobs.get",
                "run.jobs.run",
                "run.executions.get",
                "run.jobs.delete",
            ),
        ),
        (
            V2,
            (
                "run.jobs.create",
                "run.jobs.get",
                "run.jobs.run",
                "run.executions.get",
                "run.jobs.delete",
                "run.executions.list",
                "run.executions.delete",
            ),
        ),
        (
            VERTEX,
            (
                "aiplatform.customJobs.create",
                "aiplatform.customJobs.get",
                "aiplatform.customJobs.cancel",
            ),
        ),
    ],
)
def test_grants(opts, pool_type, permissions):
    grants = GcpPool("etl", pool_type, opts, GENERATED).grants()
    assert len(grants) == 3
    custom, act_as, registry = grants
    worker = "etl-worker@acme-prod.iam.gserviceaccount.com"
    assert all(worker in g.principal for g in grants)
    assert custom.role.startswith("projects/acme-prod/roles/provision_etl_")
    assert custom.scope == "project acme-prod"
    assert set(custom.permissions) == set(permissions)
    assert act_as.role == "roles/iam.serviceAccountUser"
    assert (
        act_as.scope == "runtime service account etl-runtime@acme-prod.iam.gserviceaccount.com only"
    )
    assert registry.role == "roles/artifactregistry.reader"
    assert registry.scope == "repository europe-west1/etl-images only"
    assert all(g.why for g in grants)
    # Nothing project-wide but the custom role; nothing for the runtime account.
    assert not any("runtime" in g.principal for g in grants)


def test_registry_writer_grant(home):
    pool = resolve_pool(given={"project": "acme-prod", "registry_writer": True}, home=home)
    registry = pool.grants()[2]
    assert registry.role == "roles/artifactregistry.writer"
    assert "push" in registry.why


def test_next_steps_worker_pool(opts):
    steps = GcpPool("my pool", V2, opts, GENERATED).next_steps(OUTPUTS)
    assert steps.image_namespace == "europe-west1-docker.pkg.dev/acme-prod/etl-images"
    assert steps.deploy_snippet == (
        'my_flow.deploy(name="my-deployment", work_pool_name="my pool", '
        'image="europe-west1-docker.pkg.dev/acme-prod/etl-images/my-image:latest")'
    )
    assert steps.commands == (
        "gcloud auth configure-docker europe-west1-docker.pkg.dev",
        "prefect worker start --pool 'my pool'",
    )


def test_next_steps_push_pool_has_no_worker(opts):
    steps = GcpPool("etl", V2_PUSH, opts, GENERATED).next_steps(OUTPUTS)
    assert steps.commands == ("gcloud auth configure-docker europe-west1-docker.pkg.dev",)


# -- the program under mocks -------------------------------------------------------------------


class ProgramMocks(pulumi.runtime.Mocks):
    """Just enough provider behaviour for the exports (see tests/stacks for the full set)."""

    def __init__(self) -> None:
        self.created: list[tuple[str, dict, str | None]] = []
        """(type, inputs, the id GCP names it by) of every resource, in order."""

    def new_resource(self, args):
        out = self._outputs(args)
        self.created.append((args.typ, dict(args.inputs), out.get("name")))
        return f"{args.name}-id", out

    def _outputs(self, args):
        out = dict(args.inputs)
        if args.typ == "gcp:serviceaccount/account:Account":
            email = f"{args.inputs['accountId']}@{args.inputs['project']}.iam.gserviceaccount.com"
            out.update(
                email=email,
                member=f"serviceAccount:{email}",
                name=f"projects/{args.inputs['project']}/serviceAccounts/{email}",
            )
        elif args.typ == "gcp:projects/iAMCustomRole:IAMCustomRole":
            out["name"] = f"projects/{args.inputs['project']}/roles/{args.inputs['roleId']}"
        elif args.typ == "gcp:artifactregistry/repository:Repository":
            out["name"] = (
                f"projects/{args.inputs['project']}/locations/{args.inputs['location']}"
                f"/repositories/{args.inputs['repositoryId']}"
            )
        elif args.typ == "gcp:serviceaccount/key:Key":
            out.update(
                privateKey=OUTPUTS["service_account_key"],
                validAfter=OUTPUTS["credential_created_at"],
                validBefore="9999-12-31T23:59:59Z",
            )
        return out

    def call(self, args):
        return {}


@pytest.fixture
def program_mocks():
    pulumi_settings.ROOT.set(None)  # fresh root stack: exports must not carry over
    # Engine tests run the Automation API in this process and leave no current loop behind.
    asyncio.set_event_loop(asyncio.new_event_loop())
    mocks = ProgramMocks()
    pulumi.runtime.set_mocks(mocks, project="provision", stack="etl", preview=False)
    state = {"checked": False, "mocks": mocks}
    yield state
    assert state["checked"], "the assertions inside apply() never ran"


@pulumi.runtime.test
def test_program_exports(etl, program_mocks):
    program = etl.program()
    assert program is not None
    exports = program()
    assert set(exports) == {
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
    }

    def check(values):
        program_mocks["checked"] = True
        values = dict(values)
        secret = values.pop("_key_secret")
        assert secret is True
        assert values == OUTPUTS
        assert etl.block_data(values, {})["service_account_info"] == KEY_INFO

    key = pulumi.Output.from_input(exports["service_account_key"])
    return pulumi.Output.all(_key_secret=key.is_secret(), **exports).apply(check)


@pulumi.runtime.test
def test_resources_that_409_on_a_second_create_are_adoptable_by_id(etl, program_mocks):
    # A killed run may leave these created but unrecorded; the rerun must adopt, not re-create.
    program = etl.program()
    assert program is not None
    exports = program()

    def check(_):
        program_mocks["checked"] = True
        adoptable = {
            "gcp:serviceaccount/account:Account",
            "gcp:projects/iAMCustomRole:IAMCustomRole",
            "gcp:artifactregistry/repository:Repository",
        }
        seen = set()
        for typ, inputs, name in program_mocks["mocks"].created:
            got = etl.adoptable_id(typ, inputs)
            if typ in adoptable:
                seen.add(typ)
                assert got == name, typ
            else:  # idempotent grants and API enables, random keys: nothing to adopt
                assert got is None, typ
        assert seen == adoptable

    return pulumi.Output.all(*exports.values()).apply(check)


def test_adoptable_ids_use_the_options_project_and_domain_scoped_emails(etl, opts):
    scoped = GcpPool("etl", V2, opts.model_copy(update={"project": "example.com:proj"}), GENERATED)
    account = scoped.adoptable_id(
        "gcp:serviceaccount/account:Account", {"accountId": "prefect-etl"}
    )
    assert account == (
        "projects/example.com:proj/serviceAccounts/"
        "prefect-etl@proj.example.com.iam.gserviceaccount.com"
    )
    for inputs in ({}, {"accountId": {"4dabf18193072939515e22adb298388d": "x"}}):
        assert etl.adoptable_id("gcp:serviceaccount/account:Account", inputs) is None
    repo = {"repositoryId": "r"}  # no location: not computable
    assert etl.adoptable_id("gcp:artifactregistry/repository:Repository", repo) is None


def test_program_rejects_a_bad_suffix(opts):
    with pytest.raises(ValueError, match="role_suffix"):
        GcpPool("etl", V2, opts, {}).program()


def test_import_stays_light():
    # The CLI imports targets for --help: no pulumi, no pulumi_gcp at import time.
    code = (
        "import sys, provision.targets.gcp; "
        "print(any(m == 'pulumi' or m.startswith(('pulumi.', 'pulumi_gcp')) for m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_grants_doc_lists_every_permission_and_role():
    from stacks.gcp_cloud_run import ACT_AS_ROLE, PERMISSIONS, REGISTRY_READER, SERVICES

    doc = (Path(__file__).parents[2] / "docs" / "gcp-grants.md").read_text()
    for permission in {p for perms in PERMISSIONS.values() for p in perms}:
        assert f"`{permission}`" in doc, permission
    for api in {a for apis in SERVICES.values() for a in apis}:
        assert f"`{api}`" in doc, api
    assert f"`{ACT_AS_ROLE}`" in doc and f"`{REGISTRY_READER}`" in doc


# -- --with-worker: the worker in Cloud Run as the worker account, no key ----------------------

AUTH = "admin:not-a-real-pass"  # fake: the worker's credential, never a plain value
LAUNCH = WorkerLaunch(
    api_url="http://prefect.internal:4200/api",
    image="prefecthq/prefect:3.8.8-python3.12",
    credential_env="PREFECT_API_AUTH_STRING",
    credential=AUTH,
    credential_source="PREFECT_API_AUTH_STRING",
)
WORKER_EMAIL = "etl-worker@acme-prod.iam.gserviceaccount.com"
WORKER_COMMAND = ["prefect", "worker", "start", "--pool", "etl", "--type"]


@pytest.fixture
def keyless(home) -> GcpPool:
    """``etl`` with ``--with-worker``, its launch set as the service sets it."""
    pool = resolve_pool(
        given={"project": "acme-prod", "region": "europe-west1", "with_worker": True},
        home=home,
        generated=GENERATED,
    )
    return dataclasses.replace(pool, worker=LAUNCH)


def test_worker_options_resolve_and_are_saved(home):
    given = {"project": "acme-prod", "with_worker": True, "worker_count": 2}
    opts = resolve(given=given, home=home)
    assert opts.with_worker is True and opts.worker_count == 2
    assert resolve(saved=opts, given={"project": None}, home=home) == opts
    assert GcpPool.worker_package == "prefect-gcp"
    assert "Secret Manager" in GcpPool.worker_secret_store


@pytest.mark.parametrize(
    ("pool_type", "given", "needle"),
    [
        (V2_PUSH, {"with_worker": True}, "drop --with-worker, or use --type cloud-run-v2"),
        (V2, {"worker_count": 3}, "--worker-count needs --with-worker."),
        (V2, {"with_worker": True, "worker_count": 11}, "Invalid --worker-count 11"),
    ],
)
def test_worker_options_refused_in_one_line(home, pool_type, given, needle):
    with pytest.raises(InvalidInputError) as info:
        resolve(pool_type=pool_type, given={"project": "acme-prod", **given}, home=home)
    assert needle in info.value.message and "\n" not in info.value.message


def test_keyless_block_holds_only_the_project(keyless):
    # prefect-gcp's GcpCredentials falls back to google.auth.default() without
    # service_account_info/file: in Cloud Run, the worker pool's own account.
    keyless_outputs = {k: v for k, v in OUTPUTS.items() if k != "service_account_key"}
    assert keyless.block_data(keyless_outputs, {}) == {"project": "acme-prod"}
    assert keyless.block_data(OUTPUTS, {}) == {"project": "acme-prod"}, "a key is never used"
    with pytest.raises(EngineError, match="lack project"):
        keyless.block_data({}, {})


def test_credential_says_whether_a_key_exists(etl, keyless):
    keyed = etl.credential()
    assert (keyed.kind, keyed.identity, keyed.long_lived) == (
        "service-account key",
        WORKER_EMAIL,
        True,
    )
    assert "`provision rotate` replaces it, --rotate-after DAYS on any up" in keyed.note
    none = keyless.credential()
    assert (none.kind, none.identity, none.long_lived) == ("none", WORKER_EMAIL, False)
    assert none.note == f"the worker runs in Cloud Run (worker pool etl-worker) as {WORKER_EMAIL}"


def test_keyless_grants_add_read_access_to_the_one_secret(etl, keyless):
    grants = keyless.grants()
    assert grants[:3] == etl.grants(), "the worker identity keeps what the key's holder had"
    (accessor,) = grants[3:]
    assert accessor.principal == f"worker service account {WORKER_EMAIL}"
    assert accessor.role == "roles/secretmanager.secretAccessor"
    assert accessor.scope == "secret etl-worker-PREFECT_API_AUTH_STRING only"
    assert "PREFECT_API_AUTH_STRING" in accessor.why
    # An open server asks for no credential: no secret, no grant on one.
    open_server = dataclasses.replace(
        keyless, worker=dataclasses.replace(LAUNCH, credential_env=None)
    )
    assert open_server.grants() == etl.grants()


def test_keyless_next_steps_say_where_the_worker_logs(keyless):
    steps = keyless.next_steps({**OUTPUTS, "worker_pool_name": "etl-worker"})
    assert steps.commands == (
        "gcloud auth configure-docker europe-west1-docker.pkg.dev",
        "gcloud run worker-pools logs read etl-worker --region europe-west1 --project acme-prod",
    )
    assert not any("prefect worker start" in c for c in steps.commands)
    assert keyless.next_steps(keyless.expected_outputs()).commands == steps.commands


def test_keyless_expected_outputs_name_the_worker_pool(keyless):
    expected = keyless.expected_outputs()
    assert expected["worker_pool_name"] == "etl-worker"
    assert expected["worker_pool_id"] == (
        "projects/acme-prod/locations/europe-west1/workerPools/etl-worker"
    )
    assert "service_account_key" not in expected


def test_no_worker_program_without_a_launch(etl, keyless):
    assert etl.worker_program() is None
    assert dataclasses.replace(keyless, worker=None).worker_program() is None


def test_adoptable_ids_of_the_worker_pool_and_its_secret(keyless):
    pool = keyless.adoptable_id(
        "gcp:cloudrunv2/workerPool:WorkerPool", {"name": "etl-worker", "location": "europe-west1"}
    )
    assert pool == "projects/acme-prod/locations/europe-west1/workerPools/etl-worker"
    secret = keyless.adoptable_id(
        "gcp:secretmanager/secret:Secret", {"secretId": "etl-worker-PREFECT_API_KEY"}
    )
    assert secret == "projects/acme-prod/secrets/etl-worker-PREFECT_API_KEY"
    assert keyless.adoptable_id("gcp:cloudrunv2/workerPool:WorkerPool", {"name": "x"}) is None
    # GCP numbers secret versions itself: a killed run's version cannot be found by id.
    version = "gcp:secretmanager/secretVersion:SecretVersion"
    assert keyless.adoptable_id(version, {"secret": "projects/acme-prod/secrets/x"}) is None
    assert version in GcpPool.orphan_hints


class WorkerMocks(ProgramMocks):
    """ProgramMocks, plus what Secret Manager and Cloud Run compute."""

    def new_resource(self, args):
        rid, out = super().new_resource(args)
        if args.typ == "gcp:secretmanager/secret:Secret":
            rid = f"projects/acme-prod/secrets/{args.inputs['secretId']}"
        elif args.typ == "gcp:secretmanager/secretVersion:SecretVersion":
            out.update(version="1", name=f"{args.inputs['secret']}/versions/1")
        elif args.typ == "gcp:cloudrunv2/workerPool:WorkerPool":
            rid = (
                f"projects/acme-prod/locations/{args.inputs['location']}/workerPools/"
                f"{args.inputs['name']}"
            )
        self.ids[args.typ] = rid
        return rid, out


@pytest.fixture
def worker_mocks():
    pulumi_settings.ROOT.set(None)
    asyncio.set_event_loop(asyncio.new_event_loop())
    mocks = WorkerMocks()
    mocks.ids = {}
    monitor = RecordingMonitor(mocks)
    pulumi.runtime.set_mocks(
        mocks, project="provision", stack="etl", preview=False, monitor=monitor
    )
    state = {"checked": False, "mocks": mocks, "monitor": monitor}
    yield state
    assert state["checked"], "the assertions inside apply() never ran"


@pulumi.runtime.test
def test_keyless_program_and_worker_program(keyless, worker_mocks):
    exports = dict(keyless.program()())
    assert "service_account_key" not in exports
    after = pulumi.ResourceOptions(depends_on=[])
    worker = keyless.worker_program()
    assert worker is not None
    worker_exports = worker(exports, after)
    mon: RecordingMonitor = worker_mocks["monitor"]

    def check(values):
        worker_mocks["checked"] = True
        types = [t for t, _, _ in worker_mocks["mocks"].created]
        assert "gcp:serviceaccount/key:Key" not in types
        assert types.count("gcp:cloudrunv2/workerPool:WorkerPool") == 1
        assert keyless.block_data(values, {}) == {"project": "acme-prod"}
        pool = mon.one("gcp:cloudrunv2/workerPool:WorkerPool")
        template = pool.inputs["template"]
        assert template["serviceAccount"] == WORKER_EMAIL
        (spec,) = template["containers"]
        assert spec["image"] == LAUNCH.image
        assert spec["args"] == [*WORKER_COMMAND, "cloud-run-v2"]
        envs = {e["name"]: e for e in spec["envs"]}
        assert envs["PREFECT_API_URL"]["value"] == LAUNCH.api_url
        assert envs["EXTRA_PIP_PACKAGES"]["value"] == "prefect-gcp"
        assert envs["PREFECT_API_AUTH_STRING"] == {
            "name": "PREFECT_API_AUTH_STRING",
            "valueSource": {
                "secretKeyRef": {"secret": "etl-worker-PREFECT_API_AUTH_STRING", "version": "1"}
            },
        }
        assert AUTH not in repr(pool.inputs)
        # The worker starts once the account's grants exist (the identity output waits).
        grants = {
            r.urn
            for r in mon.registrations.values()
            if r.type.endswith(("iAMMember:IAMMember", "RepositoryIamMember"))
        }
        assert len(grants) == 3 and grants <= set(pool.dependencies)
        # Names fixed by the pool's name: adoptable after a killed run.
        ids = worker_mocks["mocks"].ids
        for typ in ("gcp:cloudrunv2/workerPool:WorkerPool", "gcp:secretmanager/secret:Secret"):
            (registration,) = mon.of_type(typ)
            assert keyless.adoptable_id(typ, registration.inputs) == ids[typ], typ
        apis = {s.inputs["service"] for s in mon.of_type("gcp:projects/service:Service")}
        assert "secretmanager.googleapis.com" in apis
        assert values["worker_pool_name"] == "etl-worker"

    return pulumi.Output.all(**exports, **worker_exports).apply(check)


@pulumi.runtime.test
def test_vertex_worker_enables_cloud_run_itself(home, worker_mocks):
    pool = resolve_pool(
        pool_type=VERTEX,
        given={"project": "acme-prod", "region": "europe-west4", "with_worker": True},
        home=home,
        generated=GENERATED,
    )
    pool = dataclasses.replace(pool, worker=dataclasses.replace(LAUNCH, credential_env=None))
    exports = dict(pool.program()())
    worker_exports = pool.worker_program()(exports, pulumi.ResourceOptions())
    mon: RecordingMonitor = worker_mocks["monitor"]

    def check(values):
        worker_mocks["checked"] = True
        apis = {s.inputs["service"] for s in mon.of_type("gcp:projects/service:Service")}
        # The pool's stack enables Vertex AI, not Cloud Run; an open server needs no secret.
        assert {"aiplatform.googleapis.com", "run.googleapis.com"} <= apis
        assert "secretmanager.googleapis.com" not in apis
        assert mon.of_type("gcp:secretmanager/secret:Secret") == []
        (spec,) = mon.one("gcp:cloudrunv2/workerPool:WorkerPool").inputs["template"]["containers"]
        assert spec["args"][-1] == "vertex-ai"

    return pulumi.Output.all(**worker_exports).apply(check)


def test_grants_doc_lists_the_worker_identitys_grant():
    from stacks.gcp_worker import SECRET_ACCESSOR, SECRET_MANAGER_API

    doc = (Path(__file__).parents[2] / "docs" / "gcp-grants.md").read_text()
    assert f"`{SECRET_ACCESSOR}`" in doc and f"`{SECRET_MANAGER_API}`" in doc
    assert "--with-worker" in doc and "google.auth.default()" in doc


@pytest.mark.parametrize(("rotation", "keepers"), [(None, None), ("2", {"rotation": "2"})])
@pulumi.runtime.test
def test_program_keeps_the_rotation_in_the_keys_keepers(etl, worker_mocks, rotation, keepers):
    generated = {**GENERATED, **({"credential_rotation": rotation} if rotation else {})}
    exports = dict(dataclasses.replace(etl, generated=generated).program()())
    mon: RecordingMonitor = worker_mocks["monitor"]

    def check(values):
        worker_mocks["checked"] = True
        key = mon.one(KEY)
        assert key.inputs.get("keepers") == keepers
        assert values["credential_created_at"] == "2026-01-01T00:00:00Z"
        assert values["credential_expires_at"] is None, "GCP's keys do not expire by default"

    return pulumi.Output.all(**exports).apply(check)


@pulumi.runtime.test
def test_keyless_pools_have_no_key_to_trigger(keyless, worker_mocks):
    rotated = dataclasses.replace(keyless, generated={**GENERATED, "credential_rotation": "1"})
    exports = dict(rotated.program()())
    mon: RecordingMonitor = worker_mocks["monitor"]

    def check(_):
        worker_mocks["checked"] = True
        assert mon.of_type(KEY) == []
        assert not {"credential_created_at", "credential_expires_at"} & set(exports)

    return pulumi.Output.all(**exports).apply(check)
