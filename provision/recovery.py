"""Adopting a killed run's interrupted creates, as a pure edit of an exported deployment.

No pulumi and no cloud here: the engine exports the state, calls :func:`adopt_pending_creates`
and imports the result; a target's ``adoptable_id`` supplies ``adopt``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

AdoptCallback = Callable[[str, Mapping[str, Any]], str | None]
"""(type token, recorded inputs) of an interrupted create → its cloud id, if computable."""


def adopt_pending_creates(deployment: dict[str, Any], adopt: AdoptCallback) -> list[str]:
    """Turn pending creates whose cloud id is computable into resources with that id.

    This is what ``pulumi refresh --import-pending-creates URN ID`` promises, done on the
    exported state because that flag only relabels the operation in the engine used here.
    The refresh that follows reads each one back: found → tracked as if the create had
    answered; gone → dropped, and ``up`` creates it.

    Edits ``deployment`` in place: each adopted create is appended to ``resources`` with its id
    and leaves ``pending_operations``; every other pending operation stays, in order. Returns
    the adopted resources' names.
    """
    kept: list[dict[str, Any]] = []
    adopted: list[str] = []
    resources = deployment.setdefault("resources", [])
    recorded = {r.get("urn") for r in resources}
    for op in deployment.get("pending_operations") or []:
        resource = op.get("resource") or {}
        rid = None
        # A create whose URN is recorded is a replacement's new half: two live entries for
        # one URN would be an invalid state, so that one is left to the refresh to clear.
        if op.get("type") == "creating" and resource.get("urn") not in recorded | {None, ""}:
            rid = adopt(resource.get("type", ""), resource.get("inputs") or {})
        if not rid:
            kept.append(op)
            continue
        # Appended last: everything it depends on was created (and recorded) before it.
        resources.append({**resource, "id": rid})
        adopted.append(resource["urn"].rsplit("::", 1)[-1])
    deployment["pending_operations"] = kept
    return adopted
