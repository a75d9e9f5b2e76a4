"""What to do about a killed run's pending operations, decided from the exported deployment.

No pulumi and no cloud here: the engine exports the state, calls :func:`decide_recovery`,
says its notices, imports the edited deployment when something was adopted, and refreshes. A
target's ``adoptable_id`` supplies ``adopt`` and its ``orphan_hints`` the hints; the creates
left unadopted (:attr:`Recovery.unadopted`) then go to its ``remove_orphans``, with the ids
:func:`tracked_ids` finds in the refreshed state.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

AdoptCallback = Callable[[str, Mapping[str, Any]], str | None]
"""(type token, recorded inputs) of an interrupted create → its cloud id, if computable."""
OrphanCallback = Callable[[str, Mapping[str, Any], frozenset[str]], list[str]]
"""(type token, recorded inputs) of an interrupted create that was not adopted, and the ids of
that type the refreshed state tracks → notices of the untracked copies removed in the cloud."""


@dataclass(frozen=True)
class Recovery:
    """The decision about a stack with pending operations. The engine then refreshes with
    pending creates cleared: the cloud's answer settles every recorded resource."""

    announcement: str
    """Said first: how many operations were in flight, and of which kinds."""
    deployment: dict[str, Any]
    """The deployment to import when ``adopted`` is not empty: each adopted create recorded as
    a resource with its id (see :func:`adopt_pending_creates`)."""
    adopted: tuple[str, ...]
    """Names of the adopted creates."""
    notices: tuple[str, ...]
    """Said once ``deployment`` is imported: what was adopted, and each create left pending,
    whose copy the cloud may have finished untracked, with the target's hint to find it."""
    unadopted: tuple[tuple[str, dict[str, Any]], ...] = ()
    """(type token, inputs) of each create left pending: the refresh clears them, and the
    target may then remove the copies the cloud made of them."""


def decide_recovery(
    pool: str,
    deployment: Mapping[str, Any],
    adopt: AdoptCallback,
    orphan_hints: Mapping[str, str],
) -> Recovery | None:
    """What recovering ``pool``'s exported ``deployment`` takes; ``None`` when no operation
    was in flight. ``deployment`` itself is left as it is."""
    pending = deployment.get("pending_operations") or []
    if not pending:
        return None
    kinds = sorted({p.get("type", "?") for p in pending})
    announcement = (
        f"A previous run on '{pool}' was interrupted with {len(pending)} operation(s) in "
        f"flight ({', '.join(kinds)}); reconciling with the cloud before continuing."
    )
    edited = copy.deepcopy(dict(deployment))
    adopted = adopt_pending_creates(edited, adopt)
    notices = []
    unadopted: list[tuple[str, dict[str, Any]]] = []
    if adopted:
        notices.append(
            f"Adopting {len(adopted)} resource(s) the interrupted run may have created "
            f"({', '.join(adopted)}): the refresh reads each back by its id, or drops it "
            "if the cloud never made it."
        )
    for op in edited["pending_operations"]:
        resource = op.get("resource") or {}
        urn = resource.get("urn", "")
        if op.get("type") != "creating" or not urn:
            continue
        rtype = resource.get("type", "")
        unadopted.append((rtype, dict(resource.get("inputs") or {})))
        hint = orphan_hints.get(rtype, "")
        # The cloud may have finished a create whose answer the killed engine never got:
        # such an object is not tracked, and nothing but the cloud's own API can find it.
        name = urn.rsplit("::", 1)[-1]
        message = (
            f"Interrupted while creating {rtype} '{name}': if the cloud finished it, that "
            f"copy is untracked and will not be deleted by destroy. {hint}"
        )
        notices.append(message.rstrip())
    return Recovery(announcement, edited, tuple(adopted), tuple(notices), tuple(unadopted))


def tracked_ids(deployment: Mapping[str, Any], type_token: str) -> frozenset[str]:
    """The cloud ids of every ``type_token`` resource ``deployment`` records, an old copy
    still pending deletion included (what a half-finished replacement keeps, and may still be
    in use)."""
    return frozenset(
        r["id"]
        for r in deployment.get("resources") or []
        if r.get("type") == type_token and isinstance(r.get("id"), str) and r["id"]
    )


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
