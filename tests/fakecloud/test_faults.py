"""FAKECLOUD_FAULTS and FAKECLOUD_DELAY_*: parsing, and injection through the provider."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from tests.fakecloud.driver import Driver
from tests.fakecloud.faults import Fault, FaultSyntaxError, delay_ms, parse_faults
from tests.fakecloud.gcp import ACCOUNT, KEY
from tests.fakecloud.provider import CloudError
from tests.fakecloud.state import FakeCloud

SA = {"accountId": "pool-runner"}


# ------------------------------------------------------------------- parsing
def test_parse_type_tokens_with_their_own_colons_and_a_name_filter() -> None:
    faults = parse_faults(
        " create:gcp:serviceaccount/account:Account@once ;"
        "delete:gcp:serviceaccount/key:Key:pool-key@always;;read:*@always;update:*:a:b@once"
    )
    assert faults == [
        Fault("create", ACCOUNT, None, True, "create:gcp:serviceaccount/account:Account@once"),
        Fault(
            "delete", KEY, "pool-key", False, "delete:gcp:serviceaccount/key:Key:pool-key@always"
        ),
        Fault("read", "*", None, False, "read:*@always"),
        Fault("update", "*", "a:b", True, "update:*:a:b@once"),
    ]


def test_name_substring_may_contain_at_signs() -> None:
    (fault,) = parse_faults("delete:*:runner@p.iam@always")
    assert fault.name_substring == "runner@p.iam" and not fault.once


@pytest.mark.parametrize(
    ("text", "complaint"),
    [
        ("create:gcp:serviceaccount/account:Account", "@once or @always"),
        ("create:gcp:serviceaccount/account:Account@twice", "@once or @always"),
        ("destroy:gcp:serviceaccount/account:Account@once", "op must be one of"),
        ("create:Account@once", "is not a type token"),
        ("create@once", "op must be one of"),
    ],
)
def test_bad_entries_are_named_in_the_error(text: str, complaint: str) -> None:
    with pytest.raises(FaultSyntaxError, match=complaint) as info:
        parse_faults(text)
    assert text in str(info.value)


def test_matching_uses_op_type_and_name_or_id() -> None:
    (fault,) = parse_faults("create:gcp:serviceaccount/account:Account:runner@always")
    assert fault.matches("create", ACCOUNT, ["pool-runner", None])
    assert fault.matches("create", ACCOUNT, ["x", "projects/p/serviceAccounts/runner@p"])
    assert not fault.matches("create", ACCOUNT, ["other", None])
    assert not fault.matches("delete", ACCOUNT, ["pool-runner", None])
    assert not fault.matches("create", KEY, ["pool-runner", None])


def test_delays_per_op_override_the_global_ones_and_reads_need_their_own() -> None:
    env = {"FAKECLOUD_DELAY_MS": "50", "FAKECLOUD_DELAY_MS_DELETE": "7"}
    assert delay_ms(env, "create") == 50 and delay_ms(env, "delete") == 7
    assert delay_ms(env, "read") == 0 and delay_ms(env, "create", after=True) == 0
    assert delay_ms({"FAKECLOUD_DELAY_AFTER_MS_READ": "3"}, "read", after=True) == 3
    with pytest.raises(FaultSyntaxError, match="FAKECLOUD_DELAY_MS"):
        delay_ms({"FAKECLOUD_DELAY_MS": "soon"}, "create")


# ----------------------------------------------------------------- injection
def test_once_fault_fires_once_across_provider_processes(
    make_driver: Callable[..., Driver], cloud: FakeCloud
) -> None:
    env = {"FAKECLOUD_FAULTS": f"create:{ACCOUNT}@once"}
    first, second = make_driver(**env), make_driver(**env)  # e.g. a rerun's new process

    with pytest.raises(CloudError) as info:
        first.up(ACCOUNT, "runner", SA)
    assert str(info.value) == (
        "Error creating service account 'runner': googleapi: Error 503: The service is "
        "currently unavailable., backendError (injected by FAKECLOUD_FAULTS: "
        f"create:{ACCOUNT}@once)"
    )
    assert cloud.count(ACCOUNT) == 0, "a failed create leaves nothing behind"

    rid, _ = second.up(ACCOUNT, "runner", SA)
    assert cloud.get(ACCOUNT, rid) is not None
    errors = [c for c in cloud.calls("create") if c["outcome"] == "error"]
    assert len(errors) == 1 and errors[0]["name"] == "runner"


def test_always_fault_with_name_filter_hits_only_matching_resources(
    make_driver: Callable[..., Driver],
) -> None:
    gcp = make_driver(FAKECLOUD_FAULTS=f"delete:{ACCOUNT}:doomed@always")
    keep_id, keep = gcp.up(ACCOUNT, "kept", {"accountId": "kept-account"})
    doomed_id, doomed = gcp.up(ACCOUNT, "doomed", {"accountId": "doomed-account"})

    gcp.delete(ACCOUNT, "kept", keep_id, keep)
    for _ in range(2):
        with pytest.raises(CloudError, match=r"Error deleting service account '.*doomed-account"):
            gcp.delete(ACCOUNT, "doomed", doomed_id, doomed)


def test_read_faults_fail_refresh(make_driver: Callable[..., Driver]) -> None:
    gcp = make_driver(FAKECLOUD_FAULTS="read:*@once")
    rid, outputs = gcp.up(ACCOUNT, "runner", SA)
    with pytest.raises(CloudError, match="Error reading service account"):
        gcp.read(ACCOUNT, "runner", rid, outputs)
    assert gcp.read(ACCOUNT, "runner", rid, outputs).resource_id == rid


def test_bad_fault_syntax_fails_the_call_not_the_plugin(make_driver: Callable[..., Driver]) -> None:
    gcp = make_driver(FAKECLOUD_FAULTS="explode")
    with pytest.raises(CloudError, match="FAKECLOUD_FAULTS entry 'explode'"):
        gcp.up(ACCOUNT, "runner", SA)


def test_preview_is_never_delayed_or_failed(make_driver: Callable[..., Driver]) -> None:
    gcp = make_driver(FAKECLOUD_FAULTS=f"create:{ACCOUNT}@always", FAKECLOUD_DELAY_MS="5000")
    started = time.monotonic()
    rid, _ = gcp.up(ACCOUNT, "runner", SA, preview=True)
    assert rid == "" and time.monotonic() - started < 2


def test_delay_before_the_write_leaves_an_in_flight_create_visible(
    make_driver: Callable[..., Driver], cloud: FakeCloud
) -> None:
    """What a SIGKILL test sees: ``begin`` logged, nothing written yet, no ``end``."""
    gcp = make_driver(FAKECLOUD_DELAY_MS="300", FAKECLOUD_DELAY_AFTER_MS="200")
    started = time.monotonic()
    rid, _ = gcp.up(ACCOUNT, "runner", SA)
    elapsed = time.monotonic() - started

    assert elapsed >= 0.5
    begin = cloud.calls("create", phase="begin")[0]
    end = cloud.calls("create")[0]
    record = cloud.get(ACCOUNT, rid)
    # The write happened between the two delays: >= 0.3 s after begin, >= 0.2 s before end.
    assert record["createdAt"] - begin["ts"] >= 0.29
    assert end["ts"] - record["createdAt"] >= 0.19
