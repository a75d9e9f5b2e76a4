"""Fault and latency injection for every fake cloud, configured by environment.

``FAKECLOUD_FAULTS`` is a ``;``-separated list of
``<op>:<type-token>[:<name-substring>]@<once|always>``:

* ``op``: ``create``, ``update``, ``delete`` or ``read``;
* ``type-token``: a full Pulumi type token (it has two colons itself, e.g.
  ``gcp:serviceaccount/account:Account``) or ``*`` for any type;
* ``name-substring``: optional; the fault only fires when it occurs in the
  resource's Pulumi name (last URN segment) or in its cloud id;
* ``once``: fires the first time it matches, across all provider processes
  sharing the state dir; ``always``: every time.

Example: ``create:gcp:serviceaccount/key:Key@once;delete:*:pool@always``.

Delays (milliseconds) let a test SIGKILL the engine while an operation is in
flight: ``FAKECLOUD_DELAY_MS`` sleeps before the cloud write of every create,
update and delete, ``FAKECLOUD_DELAY_AFTER_MS`` after the write but before the
provider answers the engine. ``FAKECLOUD_DELAY_MS_<OP>`` and
``FAKECLOUD_DELAY_AFTER_MS_<OP>`` (OP in CREATE, UPDATE, DELETE, READ) override
them per operation.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

OPS = ("create", "update", "delete", "read")
MUTATING_OPS = ("create", "update", "delete")
SYNTAX = "<op>:<type-token>[:<name-substring>]@<once|always>"


class FaultSyntaxError(ValueError):
    """``FAKECLOUD_FAULTS`` could not be parsed; the message says which entry and why."""


@dataclass(frozen=True)
class Fault:
    """One parsed entry of ``FAKECLOUD_FAULTS``."""

    op: str
    type_token: str  # "*" matches any type
    name_substring: str | None
    once: bool
    spec: str  # the entry as written: the key under which a ``once`` fault is remembered

    def matches(self, op: str, type_token: str, names: Iterable[str | None]) -> bool:
        """Does this fault apply to ``op`` on a resource known by ``names``?"""
        if op != self.op or self.type_token not in ("*", type_token):
            return False
        if self.name_substring is None:
            return True
        return any(n and self.name_substring in n for n in names)


def parse_faults(text: str | None) -> list[Fault]:
    """Parse ``FAKECLOUD_FAULTS``; raise FaultSyntaxError naming the bad entry."""
    faults = []
    for raw in (text or "").split(";"):
        spec = raw.strip()
        if not spec:
            continue
        body, at, mode = spec.rpartition("@")
        if not at or mode not in ("once", "always"):
            raise FaultSyntaxError(f"FAKECLOUD_FAULTS entry {spec!r}: must end in @once or @always")
        op, colon, target = body.partition(":")
        if op not in OPS or not colon:
            raise FaultSyntaxError(
                f"FAKECLOUD_FAULTS entry {spec!r}: op must be one of {', '.join(OPS)} "
                f"(syntax: {SYNTAX})"
            )
        if target == "*" or target.startswith("*:"):
            token, name = "*", target[2:] or None
        else:
            parts = target.split(":")
            if len(parts) < 3 or not all(parts[:3]):
                raise FaultSyntaxError(
                    f"FAKECLOUD_FAULTS entry {spec!r}: {target!r} is not a type token "
                    f"like gcp:serviceaccount/account:Account (syntax: {SYNTAX})"
                )
            token, name = ":".join(parts[:3]), ":".join(parts[3:]) or None
        faults.append(Fault(op, token, name, mode == "once", spec))
    return faults


def delay_ms(env: Mapping[str, str], op: str, *, after: bool = False) -> int:
    """Milliseconds to sleep before (or ``after``) the cloud write of ``op``.

    The global knobs cover create/update/delete only; reads are delayed only
    through their own ``_READ`` variable, since a refresh reads everything.
    """
    base = "FAKECLOUD_DELAY_AFTER_MS" if after else "FAKECLOUD_DELAY_MS"
    value = env.get(f"{base}_{op.upper()}")
    if value is None and op in MUTATING_OPS:
        value = env.get(base)
    try:
        return max(0, int(value or 0))
    except ValueError as exc:
        raise FaultSyntaxError(f"{base}: {value!r} is not a number of milliseconds") from exc
