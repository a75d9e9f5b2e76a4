"""The pool's record and what an exported state says, parsed without the engine."""

from __future__ import annotations

from pathlib import Path

import yaml

from provision.prefect.tokens import BLOCK_TYPE, WORK_POOL_TYPE
from provision.saved import (
    RECORD_TYPE,
    PrefectState,
    SavedPool,
    read_legacy,
    stack_state,
)

RECORD = SavedPool(
    type="cloud-run-v2",
    options={"project": "p", "region": "r"},
    block_name="etl-gcp-credentials",
    generated={"role_suffix": "0a1b2c3d"},
    prefect_api_url="http://127.0.0.1:4200/api",
    provider_config={"gcp:project": "p"},
)
SECRET = {
    "4dabf18193072939515e22adb298388d": "1b47061264138c4ac30d75fd1eb44270",
    "ciphertext": "v1:x",
}


def deployment() -> dict:
    return {
        "secrets_providers": {"type": "passphrase", "state": {"salt": "v1:abc"}},
        "resources": [
            {
                "urn": "urn:pulumi:etl::provision::pulumi:pulumi:Stack::provision-etl",
                "type": "pulumi:pulumi:Stack",
                "outputs": {"region": "r", "service_account_key": SECRET},
            },
            {"urn": "u:record", "type": RECORD_TYPE, "outputs": RECORD.to_outputs()},
            {"urn": "u:prov", "type": "pulumi:providers:gcp", "id": "x"},
            {"urn": "u:acct", "type": "gcp:serviceaccount/account:Account", "id": "a"},
            {
                "urn": "u:block",
                "type": BLOCK_TYPE,
                "outputs": {"block_id": "b-1", "created": True, "data_hash": "h"},
            },
            {
                "urn": "u:pool",
                "type": WORK_POOL_TYPE,
                "outputs": {"pool_id": "p-1", "created": False},
            },
        ],
        "pending_operations": [{"type": "creating", "resource": {"urn": "u:key"}}],
    }


def test_the_state_gives_the_record_prefect_ids_outputs_and_cloud_resources():
    state = stack_state(deployment())
    assert state.record == RECORD
    assert state.prefect == PrefectState("b-1", "p-1", block_created=True, pool_created=False)
    assert state.outputs == {"region": "r", "service_account_key": None}  # a secret stays out
    assert state.secret_outputs == {"service_account_key"}
    assert state.resources == [
        {"urn": "u:acct", "type": "gcp:serviceaccount/account:Account", "id": "a"}
    ]
    assert [p["resource"]["urn"] for p in state.pending] == ["u:key"]
    assert (state.secrets_type, state.secrets_url) == ("passphrase", None)
    assert not state.is_empty


def test_a_replacement_left_half_done_is_named_by_its_new_copys_trigger():
    key = "aws:iam/accessKey:AccessKey"
    new = {"urn": "u:key", "type": key, "id": "AKIANEW", "replacementTrigger": "2"}
    old = {"urn": "u:key", "type": key, "id": "AKIAOLD", "replacementTrigger": "1", "delete": True}
    other = {"urn": "u:acct", "type": key, "id": "a", "replacementTrigger": "5"}  # nothing old
    state = stack_state({"resources": [new, old, other]})
    assert state.replacing == {"2"}
    assert stack_state({"resources": [new, other]}).replacing == frozenset()
    assert stack_state(deployment()).replacing == frozenset()
    # Whether anything carries a trigger: a pool made before rotation does not.
    assert state.has_triggers and not stack_state(deployment()).has_triggers


def test_an_empty_or_foreign_stack_has_no_record():
    assert stack_state({}).record is None and stack_state(None).is_empty
    assert SavedPool.from_outputs({"something": 1}) is None


def test_the_legacy_work_dir_record_is_read(tmp_path: Path):
    config = {
        "provision:type": "ecs",
        "provision:options": '{"region": "eu-west-1"}',
        "provision:blockName": "etl-aws-credentials",
        "provision:generated": "{}",
        "provision:prefectApiUrl": "http://x/api",
        "provision:prefectState": '{"block_id": "b", "block_created": true}',
        "aws:region": "eu-west-1",
    }
    (tmp_path / "Pulumi.etl.yaml").write_text(
        yaml.safe_dump({"encryptionsalt": "v1:s", "config": config})
    )
    legacy = read_legacy(tmp_path, "etl")
    assert legacy is not None
    assert legacy.record.type == "ecs" and legacy.record.options == {"region": "eu-west-1"}
    assert legacy.record.provider_config == {"aws:region": "eu-west-1"}
    assert legacy.prefect == PrefectState(block_id="b", block_created=True)
    assert legacy.path == tmp_path / "Pulumi.etl.yaml"
    assert read_legacy(tmp_path, "other") is None
