"""Engine events → progress records, using the SDK's own event types."""

from __future__ import annotations

from pulumi.automation import events as ev

from provision.events import EventTranslator, urn_name, urn_type

URN = "urn:pulumi:p::provision::provision:gcp:CloudRunPool$gcp:serviceaccount/key:Key::p-key"


def _meta(op: str, urn: str = URN) -> ev.StepEventMetadata:
    return ev.StepEventMetadata(
        op=ev.OpType(op),
        urn=urn,
        type=urn_type(urn),
        provider="",
        new=ev.StepEventStateMetadata(
            type=urn_type(urn),
            urn=urn,
            custom=True,
            delete=False,
            id="",
            parent="",
            protect=False,
            inputs={"a": 1},
            outputs={},
            provider="",
            init_errors=[],
        ),
    )


def _event(**kw) -> ev.EngineEvent:
    return ev.EngineEvent(sequence=0, timestamp=0, **kw)


def test_urn_helpers_use_the_resources_own_type():
    assert urn_type(URN) == "gcp:serviceaccount/key:Key"
    assert urn_name(URN) == "p-key"


def test_a_failed_step_is_reported_once_with_the_provider_message():
    seen = []
    tr = EventTranslator(seen.append)
    tr(_event(resource_pre_event=ev.ResourcePreEvent(metadata=_meta("create"))))
    tr(
        _event(
            diagnostic_event=ev.DiagnosticEvent(
                message="error: Key creation is not allowed\n",
                color="never",
                severity="error",
                urn=URN,
            )
        )
    )
    tr(_event(res_op_failed_event=ev.ResOpFailedEvent(metadata=_meta("create"), status=1, steps=1)))
    assert [(p.state, p.op, p.name) for p in seen] == [
        ("running", "create", "p-key"),
        ("failed", "create", "p-key"),
    ]
    assert seen[-1].message == "Key creation is not allowed"
    assert tr.failures == {URN: "Key creation is not allowed"}
    assert tr.steps[0]["inputs"] == {"a": 1}


def test_a_broken_event_never_aborts_the_run():
    tr = EventTranslator(lambda p: 1 / 0)
    tr(_event(resource_pre_event=ev.ResourcePreEvent(metadata=_meta("create"))))
    tr(object())  # not even an event
