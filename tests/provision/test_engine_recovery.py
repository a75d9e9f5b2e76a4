"""Engine recovery of interrupted creates, against the real CLI and a fake cloud provider.

The interrupted state is written the way a killed engine leaves it: the resource missing from
``resources`` and a ``creating`` operation in ``pending_operations``. Whether the cloud finished
that create is then set by hand, so each branch of recovery is exercised deterministically
(the e2e suites reach the same states with real SIGKILLs).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pulumi
import pulumi_gcp as gcp
import pytest

from provision.engine import Engine
from provision.recovery import Untracked, UntrackedRemoval
from provision.settings import load_settings
from tests.fakecloud import gcp as fake
from tests.fakecloud.harness import engine_env, require_pulumi_root
from tests.fakecloud.state import FakeCloud

pytestmark = pytest.mark.e2e

PROJECT = "fake-project"
POOL = "recovery"
ACCOUNT_ID = "recovery-runner"
EMAIL = f"{ACCOUNT_ID}@{PROJECT}.iam.gserviceaccount.com"
ACCOUNT_RID = f"projects/{PROJECT}/serviceAccounts/{EMAIL}"
HINT = "List the accounts with `gcloud iam service-accounts list`."
CONFIG = {"gcp:project": PROJECT}


def program() -> None:
    account = gcp.serviceaccount.Account("runner", account_id=ACCOUNT_ID, display_name="Runner")
    pulumi.export("email", account.email)


def adopt(type_token: str, inputs: Mapping[str, Any]) -> str | None:
    """What a target answers: the account's id follows from its inputs."""
    if type_token != fake.ACCOUNT or not isinstance(inputs.get("accountId"), str):
        return None
    return f"projects/{PROJECT}/serviceAccounts/{inputs['accountId']}@{EMAIL.split('@')[1]}"


@pytest.fixture
def cloud_env(tmp_path: Path) -> dict[str, str]:
    require_pulumi_root()
    env = engine_env(tmp_path / "fake")
    # The engine's own backend and passphrase come from Settings, as for a user.
    for key in ("PULUMI_BACKEND_URL", "PULUMI_CONFIG_PASSPHRASE"):
        env.pop(key, None)
    return env


def make_engine(tmp_path: Path, cloud_env: Mapping[str, str], **kw: Any) -> Engine:
    settings = load_settings(
        env={
            "PROVISION_HOME": str(tmp_path / "home"),
            "PROVISION_PULUMI_ROOT": str(require_pulumi_root()),
        }
    )
    settings = dataclasses.replace(settings, engine_env={**settings.engine_env, **cloud_env})
    notices: list[str] = []
    engine = Engine(settings, on_notice=notices.append, retry_delays=(), **kw)
    engine.notices = notices  # type: ignore[attr-defined]
    return engine


def interrupt_the_account_create(engine: Engine) -> None:
    """Rewrite the checkpoint as a kill during the account's create leaves it.

    Straight into the file backend: ``pulumi stack import`` drops pending operations.
    """
    path = engine.settings.local_backend_path / ".pulumi/stacks/provision" / f"{POOL}.json"
    checkpoint = json.loads(path.read_text())
    deployment = checkpoint["checkpoint"]["latest"]
    (account,) = [r for r in deployment["resources"] if r["type"] == fake.ACCOUNT]
    deployment["resources"].remove(account)
    pending = {k: v for k, v in account.items() if k not in ("id", "outputs")}
    deployment["pending_operations"] = [{"resource": pending, "type": "creating"}]
    path.write_text(json.dumps(checkpoint))


def provisioned(tmp_path: Path, cloud_env: Mapping[str, str], **kw: Any):
    """An engine and the stack as the rerun after the kill starts: from the state it read."""
    engine = make_engine(tmp_path, cloud_env, **kw)
    engine.up(engine.stack(POOL, program, deployment=None, config=CONFIG))
    interrupt_the_account_create(engine)
    deployment = engine.export(POOL)
    assert deployment is not None and deployment["pending_operations"]
    return engine, engine.stack(POOL, program, deployment=deployment, config=CONFIG)


def test_a_create_the_cloud_finished_is_adopted_by_id_not_recreated(tmp_path, cloud_env):
    engine, stack = provisioned(tmp_path, cloud_env, adopt=adopt)
    cloud = FakeCloud(cloud_env["FAKECLOUD_STATE_DIR"])
    (before,) = cloud.resources(fake.ACCOUNT)

    result = engine.up(stack)

    assert result.outputs["email"] == EMAIL
    assert {k for k, n in result.changes.items() if n} == {"same"}
    assert [r["id"] for r in cloud.resources(fake.ACCOUNT)] == [before["id"]]
    assert len(cloud.calls("create", fake.ACCOUNT)) == 1  # the first up's, never again
    deployment = stack.export_stack().deployment
    tracked = [r for r in deployment["resources"] if r["type"] == fake.ACCOUNT]
    assert [r["id"] for r in tracked] == [ACCOUNT_RID]
    assert tracked[0]["outputs"]["uniqueId"] == before["properties"]["uniqueId"]
    assert any("Adopting 1 resource(s)" in n and "runner" in n for n in engine.notices)
    assert not deployment.get("pending_operations")


def test_a_create_the_cloud_never_made_is_dropped_then_created(tmp_path, cloud_env):
    engine, stack = provisioned(tmp_path, cloud_env, adopt=adopt)
    cloud = FakeCloud(cloud_env["FAKECLOUD_STATE_DIR"])
    assert cloud.remove(fake.ACCOUNT, ACCOUNT_RID)

    result = engine.up(stack)

    assert result.changes.get("create") == 1
    assert cloud.count(fake.ACCOUNT) == 1
    resources = stack.export_stack().deployment["resources"]
    assert [r["id"] for r in resources if r["type"] == fake.ACCOUNT] == [ACCOUNT_RID]


def test_without_a_computable_id_the_create_is_cleared_with_the_targets_hint(tmp_path, cloud_env):
    engine, stack = provisioned(tmp_path, cloud_env, orphan_hints={fake.ACCOUNT: HINT})
    cloud = FakeCloud(cloud_env["FAKECLOUD_STATE_DIR"])
    assert cloud.remove(fake.ACCOUNT, ACCOUNT_RID)

    engine.up(stack)

    (notice,) = [n for n in engine.notices if "Interrupted while creating" in n]
    assert "'runner'" in notice and "untracked" in notice and notice.endswith(HINT)
    assert not any("Adopting" in n for n in engine.notices)
    assert cloud.count(fake.ACCOUNT) == 1


def test_destroy_after_an_interrupted_create_deletes_the_adopted_resource(tmp_path, cloud_env):
    # Before adoption, destroy left such an object behind: the state never knew it.
    engine, stack = provisioned(tmp_path, cloud_env, adopt=adopt)
    cloud = FakeCloud(cloud_env["FAKECLOUD_STATE_DIR"])

    engine.destroy(stack)

    assert cloud.count(fake.ACCOUNT) == 0
    assert [c["id"] for c in cloud.calls("delete", fake.ACCOUNT)] == [ACCOUNT_RID]


def test_a_replacements_interrupted_create_is_not_adopted_beside_the_old_one(tmp_path, cloud_env):
    # Create-before-delete: the old account is recorded under the same URN as the pending
    # create. Adopting it too would give the state two live entries for one URN.
    engine = make_engine(tmp_path, cloud_env, adopt=adopt)
    engine.up(engine.stack(POOL, program, deployment=None, config=CONFIG))
    path = engine.settings.local_backend_path / ".pulumi/stacks/provision" / f"{POOL}.json"
    checkpoint = json.loads(path.read_text())
    deployment = checkpoint["checkpoint"]["latest"]
    (account,) = [r for r in deployment["resources"] if r["type"] == fake.ACCOUNT]
    pending = {k: v for k, v in account.items() if k not in ("id", "outputs")}
    deployment["pending_operations"] = [{"resource": pending, "type": "creating"}]
    path.write_text(json.dumps(checkpoint))
    stack = engine.stack(POOL, program, deployment=engine.export(POOL), config=CONFIG)

    result = engine.up(stack)

    assert {k for k, n in result.changes.items() if n} == {"same"}
    assert not any("Adopting" in n for n in engine.notices)
    resources = stack.export_stack().deployment["resources"]
    tracked = [r for r in resources if r["type"] == fake.ACCOUNT]
    assert [r["id"] for r in tracked] == [ACCOUNT_RID]


def test_a_removable_create_is_handed_to_the_target_instead_of_a_hint(tmp_path, cloud_env):
    # The target is told what was in flight and what the state tracks; its line is said, and
    # the rerun goes on (here: re-creates the account the fake never made).
    seen: list[Untracked] = []

    def remove(untracked: Untracked) -> str:
        seen.append(untracked)
        return "Removed nothing: no untracked account."

    engine, stack = provisioned(
        tmp_path,
        cloud_env,
        orphan_hints={fake.ACCOUNT: HINT},
        untracked=UntrackedRemoval(frozenset({fake.ACCOUNT}), remove),
    )
    cloud = FakeCloud(cloud_env["FAKECLOUD_STATE_DIR"])
    assert cloud.remove(fake.ACCOUNT, ACCOUNT_RID)

    engine.up(stack)

    assert [(u.type, u.name, u.inputs["accountId"], u.tracked) for u in seen] == [
        (fake.ACCOUNT, "runner", ACCOUNT_ID, frozenset())
    ]
    assert "Removed nothing: no untracked account." in engine.notices
    assert not any(HINT in n for n in engine.notices)
    assert cloud.count(fake.ACCOUNT) == 1
