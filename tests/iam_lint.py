"""A least-privilege lint for IAM policy documents, against AWS's own authorization data.

The data is policy_sentry's IAM database (``iam-definition.json``), built from AWS's Service
Authorization Reference: for every action, the resource types it can be authorized on (their
ARN formats) or ``*`` when it supports no resource-level permissions. Three rules, per
``Allow`` statement:

1. every action exists;
2. every resource ARN in the statement can name a resource type the action supports (a
   statement scoped to an ARN the action cannot be authorized on grants nothing, silently);
3. no action that supports resource scoping is granted on ``*``.

An action the database lists only with ``*`` has ``*`` as its scope (rule 3 does not apply).
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any


@dataclass(frozen=True)
class Finding:
    """One violation: which statement, which action, and what is wrong."""

    sid: str
    action: str
    problem: str

    def __str__(self) -> str:
        return f"[{self.sid}] {self.action}: {self.problem}"


@cache
def _formats(action: str) -> tuple[str, ...]:
    """The ARN formats ``action`` is authorized on (``*`` for none), empty if unknown."""
    from policy_sentry.querying.actions import get_action_data

    service, _, name = action.partition(":")
    rows = get_action_data(service.lower(), name).get(service.lower(), [])
    return tuple(row["resource_arn_format"] for row in rows)


@cache
def _service_actions(service: str) -> tuple[str, ...]:
    from policy_sentry.querying.actions import get_actions_for_service

    return tuple(get_actions_for_service(service.lower()))


def expand(action: str) -> list[str]:
    """``action`` as the actions it names (``ecs:Describe*`` → each ``ecs:Describe...``)."""
    if "*" not in action and "?" not in action:
        return [action]
    service = action.partition(":")[0]
    return [a for a in _service_actions(service) if fnmatch.fnmatchcase(a.lower(), action.lower())]


_STAR, _ANY = object(), object()


def _pattern(text: str, *, placeholders: bool) -> tuple[Any, ...]:
    """Tokens of an ARN pattern: literal characters, ``_ANY`` (one character) and ``_STAR``
    (any run). In an IAM resource ``*``/``?`` are wildcards; in a format a ``${Name}``
    placeholder stands for one or more characters."""
    tokens: list[Any] = []
    parts = re.split(r"(\$\{[^}]+\})", text) if placeholders else [text]
    for part in parts:
        if placeholders and part.startswith("${"):
            tokens += [_ANY, _STAR]
            continue
        for ch in part:
            tokens.append(
                _STAR
                if ch == "*" and not placeholders
                else _ANY
                if ch == "?" and not placeholders
                else ch
            )
    return tuple(tokens)


def overlaps(resource: str, arn_format: str) -> bool:
    """Whether some ARN matches both the statement's ``resource`` pattern and ``arn_format``."""
    a = _pattern(resource, placeholders=False)
    b = _pattern(arn_format, placeholders=True)

    @cache
    def match(i: int, j: int) -> bool:
        if i == len(a) and j == len(b):
            return True
        if i < len(a) and a[i] is _STAR:
            return match(i + 1, j) or (j < len(b) and match(i, j + 1))
        if j < len(b) and b[j] is _STAR:
            return match(i, j + 1) or (i < len(a) and match(i + 1, j))
        if i == len(a) or j == len(b):
            return False
        if a[i] is _ANY or b[j] is _ANY or a[i] == b[j]:
            return match(i + 1, j + 1)
        return False

    return match(0, 0)


def _as_list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list | tuple) else [value]


def lint(document: Mapping[str, Any], name: str = "policy") -> Iterator[Finding]:
    """Every finding in an IAM policy document (identity-based: ``Action`` and ``Resource``)."""
    for index, statement in enumerate(_as_list(document.get("Statement", []))):
        if statement.get("Effect") != "Allow":
            continue
        sid = f"{name}/{statement.get('Sid') or index}"
        resources = [str(r) for r in _as_list(statement.get("Resource", []))]
        for pattern in _as_list(statement.get("Action", [])):
            actions = expand(str(pattern))
            if not actions or not _formats(actions[0]):
                yield Finding(sid, str(pattern), "no such action in AWS's authorization reference")
                continue
            for action in actions:
                yield from _check(sid, action, _formats(action), resources)


def _check(
    sid: str, action: str, formats: tuple[str, ...], resources: list[str]
) -> Iterator[Finding]:
    typed = [f for f in formats if f != "*"]
    for resource in resources:
        if resource == "*":
            if typed:
                yield Finding(
                    sid,
                    action,
                    "granted on * although it supports resource-level scoping: " + ", ".join(typed),
                )
            continue
        if not typed:
            yield Finding(sid, action, f"scoped to {resource}, but it supports only *")
        elif not any(overlaps(resource, f) for f in typed):
            yield Finding(
                sid,
                action,
                f"scoped to {resource}, which names none of its resource types: "
                + ", ".join(typed),
            )
