"""Adopting interrupted creates, on hand-written deployments (no pulumi CLI).

tests/provision/test_engine_recovery.py runs the same edit through the engine and a real CLI.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from provision.recovery import adopt_pending_creates

STACK = "urn:pulumi:etl::provision::pulumi:pulumi:Stack::provision-etl"
ACCOUNT = "gcp:serviceaccount/account:Account"
BUCKET = "test:index:Bucket"


def urn(type_token: str, name: str) -> str:
    return f"urn:pulumi:etl::provision::{type_token}::{name}"


def resource(type_token: str, name: str, **inputs: Any) -> dict[str, Any]:
    return {"urn": urn(type_token, name), "type": type_token, "custom": True, "inputs": inputs}


def op(kind: str, res: dict[str, Any]) -> dict[str, Any]:
    return {"resource": res, "type": kind}


def deployment(*pending: dict[str, Any], recorded: tuple[dict[str, Any], ...] = ()) -> dict:
    stack = {"urn": STACK, "type": "pulumi:pulumi:Stack", "custom": False}
    return {"manifest": {}, "resources": [stack, *recorded], "pending_operations": list(pending)}


class Adopt:
    """The target's ``adoptable_id``: an account's id follows from its inputs; nothing else's."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def __call__(self, type_token: str, inputs: Mapping[str, Any]) -> str | None:
        self.calls.append((type_token, dict(inputs)))
        if type_token == ACCOUNT and inputs.get("accountId"):
            return f"projects/p/serviceAccounts/{inputs['accountId']}@p.iam.gserviceaccount.com"
        return None


def test_a_create_with_a_computable_id_is_recorded_with_it():
    runner = resource(ACCOUNT, "runner", accountId="etl-runner")
    state = deployment(op("creating", runner))

    adopted = adopt_pending_creates(state, Adopt())

    assert adopted == ["runner"]
    assert state["pending_operations"] == []
    assert state["resources"][-1] == {
        **runner,
        "id": "projects/p/serviceAccounts/etl-runner@p.iam.gserviceaccount.com",
    }


def test_a_create_without_an_id_stays_pending():
    bucket = resource(BUCKET, "images")
    state = deployment(op("creating", bucket))
    before = copy.deepcopy(state)
    adopt = Adopt()

    assert adopt_pending_creates(state, adopt) == []
    assert state == before
    assert adopt.calls == [(BUCKET, {})]


def test_a_replacements_new_half_is_never_adopted():
    # Create-before-delete: the old account is recorded under the URN the new one is created at.
    old = {**resource(ACCOUNT, "runner", accountId="etl-runner"), "id": "old-id"}
    new = resource(ACCOUNT, "runner", accountId="etl-runner")
    state = deployment(op("creating", new), recorded=(old,))
    before = copy.deepcopy(state)
    adopt = Adopt()

    assert adopt_pending_creates(state, adopt) == []
    assert state == before
    assert adopt.calls == []  # not even asked


def test_other_pending_operations_are_left_alone():
    runner = {**resource(ACCOUNT, "runner", accountId="etl-runner"), "id": "rid"}
    other = {**resource(ACCOUNT, "other", accountId="etl-other"), "id": "oid"}
    ops = [op("updating", runner), op("deleting", other), op("reading", runner)]
    state = deployment(*copy.deepcopy(ops), recorded=(runner, other))
    adopt = Adopt()

    assert adopt_pending_creates(state, adopt) == []
    assert state["pending_operations"] == ops
    assert state["resources"][1:] == [runner, other]
    assert adopt.calls == []


def test_only_the_adoptable_creates_leave_the_pending_list_in_order():
    runner = resource(ACCOUNT, "runner", accountId="etl-runner")
    bucket = resource(BUCKET, "images")
    worker = resource(ACCOUNT, "worker", accountId="etl-worker")
    update = op("updating", {**resource(BUCKET, "logs"), "id": "logs"})
    state = deployment(
        op("creating", runner), op("creating", bucket), update, op("creating", worker)
    )

    adopted = adopt_pending_creates(state, Adopt())

    assert adopted == ["runner", "worker"]
    assert state["pending_operations"] == [op("creating", bucket), update]
    assert [r["urn"] for r in state["resources"]] == [STACK, runner["urn"], worker["urn"]]
