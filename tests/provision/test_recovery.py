"""Recovering a killed run's pending operations, decided on hand-written deployments (no pulumi
CLI): the adoption edit, and the whole decision with what it tells the user.

tests/provision/test_engine_recovery.py runs the same through the engine and a real CLI.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from provision.recovery import adopt_pending_creates, decide_recovery, tracked_ids

STACK = "urn:pulumi:etl::provision::pulumi:pulumi:Stack::provision-etl"
ACCOUNT = "gcp:serviceaccount/account:Account"
BUCKET = "test:index:Bucket"
HINTS = {BUCKET: "List the buckets with `gsutil ls`."}


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


# -- the whole decision -----------------------------------------------------------------------


def test_nothing_in_flight_needs_no_recovery():
    assert decide_recovery("etl", deployment(), Adopt(), HINTS) is None
    assert decide_recovery("etl", {"resources": []}, Adopt(), HINTS) is None
    assert decide_recovery("etl", {}, Adopt(), HINTS) is None


def test_the_announcement_counts_the_operations_and_names_their_kinds():
    runner = {**resource(ACCOUNT, "runner", accountId="etl-runner"), "id": "rid"}
    state = deployment(
        op("updating", runner), op("creating", resource(BUCKET, "a")), op("updating", runner)
    )

    decision = decide_recovery("etl", state, Adopt(), HINTS)

    assert decision is not None
    assert decision.announcement == (
        "A previous run on 'etl' was interrupted with 3 operation(s) in flight "
        "(creating, updating); reconciling with the cloud before continuing."
    )


def test_an_adoptable_create_is_adopted_and_said_so_without_touching_the_export():
    runner = resource(ACCOUNT, "runner", accountId="etl-runner")
    state = deployment(op("creating", runner))
    before = copy.deepcopy(state)

    decision = decide_recovery("etl", state, Adopt(), HINTS)

    assert decision is not None
    assert state == before
    assert decision.adopted == ("runner",)
    assert decision.deployment["pending_operations"] == []
    assert decision.deployment["resources"][-1]["urn"] == runner["urn"]
    assert decision.deployment["resources"][-1]["id"].endswith(
        "etl-runner@p.iam.gserviceaccount.com"
    )
    assert decision.notices == (
        "Adopting 1 resource(s) the interrupted run may have created (runner): the refresh "
        "reads each back by its id, or drops it if the cloud never made it.",
    )


def test_a_create_left_pending_is_reported_untracked_with_the_targets_hint():
    images = resource(BUCKET, "images")
    runner = resource(ACCOUNT, "runner", accountId="etl-runner")
    state = deployment(op("creating", images), op("creating", runner))

    decision = decide_recovery("etl", state, Adopt(), HINTS)

    assert decision is not None
    assert decision.adopted == ("runner",)
    adopting, untracked = decision.notices
    assert adopting.startswith("Adopting 1 resource(s)")
    assert untracked == (
        f"Interrupted while creating {BUCKET} 'images': if the cloud finished it, that copy is "
        "untracked and will not be deleted by destroy. List the buckets with `gsutil ls`."
    )
    assert decision.deployment["pending_operations"] == [op("creating", images)]


def test_without_a_hint_the_untracked_notice_ends_with_its_sentence():
    state = deployment(op("creating", resource(BUCKET, "images")))

    decision = decide_recovery("etl", state, Adopt(), {})

    assert decision is not None
    assert decision.adopted == ()
    (notice,) = decision.notices
    assert notice.endswith("will not be deleted by destroy.")


def test_a_replacements_new_half_is_reported_not_adopted():
    old = {**resource(ACCOUNT, "runner", accountId="etl-runner"), "id": "old-id"}
    state = deployment(
        op("creating", resource(ACCOUNT, "runner", accountId="etl-runner")), recorded=(old,)
    )

    decision = decide_recovery("etl", state, Adopt(), HINTS)

    assert decision is not None
    assert decision.adopted == ()
    (notice,) = decision.notices
    assert notice.startswith(f"Interrupted while creating {ACCOUNT} 'runner'")


def test_operations_other_than_creates_are_announced_and_nothing_else():
    runner = {**resource(ACCOUNT, "runner", accountId="etl-runner"), "id": "rid"}
    state = deployment(op("updating", runner), op("deleting", runner), recorded=(runner,))
    adopt = Adopt()

    decision = decide_recovery("etl", state, adopt, HINTS)

    assert decision is not None
    assert decision.adopted == () and decision.notices == ()
    assert decision.deployment["pending_operations"] == state["pending_operations"]
    assert adopt.calls == []


# -- what the target may remove afterwards ----------------------------------------------------


KEY = "aws:iam/accessKey:AccessKey"


def test_the_creates_left_pending_are_handed_over_with_their_inputs_the_adopted_are_not():
    runner = resource(ACCOUNT, "runner", accountId="etl-runner")
    key = resource(KEY, "worker-key", user="etl-ecs-worker")
    state = deployment(op("creating", runner), op("creating", key))

    decision = decide_recovery("etl", state, Adopt(), HINTS)

    assert decision is not None
    assert decision.adopted == ("runner",)
    assert decision.unadopted == ((KEY, {"user": "etl-ecs-worker"}),)


def test_a_replacements_new_half_is_handed_over_too():
    # A rotation killed while its new key was being made: the old key is recorded under the
    # URN the new one was being created at, so it is never adopted; its copy may exist.
    old = {**resource(KEY, "worker-key", user="etl-ecs-worker"), "id": "AKIAOLD"}
    state = deployment(
        op("creating", resource(KEY, "worker-key", user="etl-ecs-worker")), recorded=(old,)
    )

    decision = decide_recovery("etl", state, Adopt(), {})

    assert decision is not None
    assert decision.unadopted == ((KEY, {"user": "etl-ecs-worker"}),)


def test_only_creates_are_handed_over():
    runner = {**resource(ACCOUNT, "runner", accountId="etl-runner"), "id": "rid"}
    state = deployment(op("updating", runner), op("deleting", runner), recorded=(runner,))

    decision = decide_recovery("etl", state, Adopt(), HINTS)

    assert decision is not None and decision.unadopted == ()


def test_tracked_ids_include_an_old_copy_pending_deletion():
    live = {**resource(KEY, "worker-key", user="u"), "id": "AKIANEW"}
    old = {**resource(KEY, "worker-key", user="u"), "id": "AKIAOLD", "delete": True}
    other = {**resource(ACCOUNT, "runner", accountId="r"), "id": "rid"}
    unknown = resource(KEY, "other-key", user="u")  # no id: nothing to match
    state = deployment(recorded=(live, old, other, unknown))

    assert tracked_ids(state, KEY) == {"AKIANEW", "AKIAOLD"}
    assert tracked_ids(state, ACCOUNT) == {"rid"}
    assert tracked_ids({}, KEY) == frozenset()
