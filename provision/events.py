"""Engine events, translated into a small cloud- and UI-agnostic progress vocabulary.

The engine streams ``pulumi.automation.EngineEvent`` objects on gRPC threads; the CLI wants
"this resource is being created / is done / failed with this message". The translator also
keeps what the engine reported, for the operation's result: each step's inputs, each
resource's outputs and the change summary. Nothing here imports rich, and nothing here looks
inside resource inputs or outputs: the engine masks secrets in its events (an input as
``[secret]``, an output as its secret envelope, see :func:`is_secret`), so no secret value
reaches this process through them.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

State = Literal["running", "done", "failed"]


@dataclass(frozen=True)
class ResourceProgress:
    """One state change of one resource during an engine operation."""

    urn: str
    type: str
    name: str
    op: str
    """Pulumi step op: create, update, replace, delete, same, read, refresh, ..."""
    state: State
    message: str = ""
    """The provider's error text for failures."""


ProgressCallback = Callable[[ResourceProgress], None]

_SECRET_SIG_KEY = "4dabf18193072939515e22adb298388d"

_GONE = {"delete", "delete-replaced", "discard", "discard-replaced", "read-discard"}
"""Steps after which a resource is no longer in the state: its outputs are not kept."""


def is_secret(value: Any) -> bool:
    """True for the engine's secret envelope (``{"4dabf18193072939515e22adb298388d": ...}``),
    which stands for a secret value in exported states and in events."""
    return isinstance(value, dict) and _SECRET_SIG_KEY in value


def urn_name(urn: str) -> str:
    """The resource's logical name: the last ``::`` segment of its URN."""
    return urn.rsplit("::", 1)[-1]


def urn_type(urn: str) -> str:
    """The resource's own type token (last element of the parent-type chain)."""
    parts = urn.split("::")
    return parts[2].rsplit("$", 1)[-1] if len(parts) >= 4 else ""


class EventTranslator:
    """Turns raw engine events into ``ResourceProgress`` calls and keeps failure messages.

    One instance per engine operation; ``failures`` maps URN to the provider's error text, and
    ``diagnostics`` keeps every error-severity message, for error classification afterwards.
    """

    def __init__(self, callback: ProgressCallback | None):
        self._callback = callback
        self.restart()

    def restart(self) -> None:
        """Forget the events of a run that is being run again from the start."""
        self._ops: dict[str, str] = {}
        self._failed: set[str] = set()
        self.failures: dict[str, str] = {}
        self.diagnostics: list[str] = []
        self.steps: list[dict[str, Any]] = []
        """Planned steps as ``{"urn", "type", "op", "inputs"}`` (inputs as the engine sent them:
        wire names, secrets already masked as ``[secret]``)."""
        self.outputs: dict[str, dict[str, Any]] = {}
        """Each resource's outputs after its step, by URN (secrets as their envelope); none
        for previews, deleted resources or the root stack (see ``stack_outputs``)."""
        self.stack_outputs: dict[str, Any] = {}
        """The stack's outputs after an update (secrets as their envelope)."""
        self.summary: dict[str, int] | None = None
        """The engine's change counts by step op (its summary event), once it has ended."""

    def __call__(self, event: Any) -> None:
        # Never let a rendering problem abort an engine run.
        with contextlib.suppress(Exception):
            self._handle(event)

    def _emit(self, urn: str, op: str, state: State, message: str = "") -> None:
        # The engine reports a failure twice (diagnostic, then op-failed): show it once.
        if state == "failed":
            if urn in self._failed:
                return
            self._failed.add(urn)
        if self._callback is None:
            return
        self._callback(
            ResourceProgress(
                urn=urn, type=urn_type(urn), name=urn_name(urn), op=op, state=state, message=message
            )
        )

    def _handle(self, event: Any) -> None:
        if event.resource_pre_event is not None:
            meta = event.resource_pre_event.metadata
            op = _op(meta.op)
            self._ops[meta.urn] = op
            state = meta.new or meta.old
            self.steps.append(
                {
                    "urn": meta.urn,
                    "type": meta.type,
                    "op": op,
                    "inputs": dict(getattr(state, "inputs", None) or {}),
                }
            )
            if is_internal(meta.type):
                return
            self._emit(meta.urn, op, "done" if op == "same" else "running")
        elif event.res_outputs_event is not None:
            meta = event.res_outputs_event.metadata
            self._keep_outputs(meta)
            if is_internal(meta.type) or _op(meta.op) == "same":
                return
            self._emit(meta.urn, _op(meta.op), "done")
        elif event.summary_event is not None:
            self.summary = dict(event.summary_event.resource_changes or {})
        elif event.res_op_failed_event is not None:
            meta = event.res_op_failed_event.metadata
            if is_internal(meta.type):
                return
            self._emit(meta.urn, _op(meta.op), "failed", self.failures.get(meta.urn, ""))
        elif event.diagnostic_event is not None:
            diag = event.diagnostic_event
            if diag.severity != "error":
                return
            text = (diag.message or "").strip()
            self.diagnostics.append(text)
            if diag.urn:
                self.failures[diag.urn] = _provider_message(text)
                if diag.urn in self._ops and not is_internal(urn_type(diag.urn)):
                    self._emit(diag.urn, self._ops[diag.urn], "failed", self.failures[diag.urn])

    def _keep_outputs(self, meta: Any) -> None:
        op = _op(meta.op)
        outputs = dict(getattr(meta.new, "outputs", None) or {})
        if meta.type == "pulumi:pulumi:Stack":
            self.stack_outputs = outputs
        elif op in _GONE:
            self.outputs.pop(meta.urn, None)
        elif meta.new is not None:
            self.outputs[meta.urn] = outputs


def _op(op: Any) -> str:
    value = getattr(op, "value", op)
    return str(value).lower().replace("_", "-")


def is_internal(type_token: str) -> bool:
    """True for engine bookkeeping (the stack, providers), not user resources."""
    return type_token == "pulumi:pulumi:Stack" or type_token.startswith("pulumi:providers:")


def _provider_message(text: str) -> str:
    """The useful part of an engine diagnostic: drop the ``error:`` prefix and blank lines."""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    if lines and lines[0].lower().startswith("error:"):
        lines[0] = lines[0][len("error:") :].strip()
    return " ".join(lines)
