"""The Automation API's ``Stack`` without the CLI calls the engine does not need.

``Stack`` runs ``pulumi stack select`` when it is made, and ``up``, ``refresh`` and ``destroy``
each end with ``stack history`` (and ``up`` with two ``stack output``): four more CLI processes
per ``up``, each a Go start-up, a backend read and a passphrase key derivation. The engine
already knows what they would say: the caller's state read says whether the stack exists
(every command names it with ``--stack``), and the engine's own event stream carries the change
summary and every resource's outputs, secrets masked (see ``events.EventTranslator``).

Imported by the engine only when it runs a stack (this module imports the pulumi SDK).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from pulumi import automation as auto
from pulumi.automation._stack import StackInitMode


class PoolStack(auto.Stack):
    """A pool's stack, as ``Engine.stack`` selected or created it for this run."""

    def __init__(
        self, name: str, workspace: auto.LocalWorkspace, deployment: Mapping[str, Any] | None
    ) -> None:
        # Not ``Stack.__init__``: its ``stack select`` would only confirm what the caller read.
        self.name = name
        self.workspace = workspace
        self._mode = StackInitMode.SELECT  # only shown by repr()
        self.deployment = dict(deployment) if deployment is not None else None
        """The stack's exported deployment (secrets as ciphertext) as the caller read it before
        this run, ``None`` once it may be out of date (after a recovery): recovery reads the
        state again only when this shows a killed run's pending operations."""

    def outputs(self) -> auto.OutputMap:
        """Empty: ``up`` reads no ``stack output``. The engine takes the outputs from the
        stack resource's outputs event (secrets masked), see ``Engine.up``."""
        return {}

    def info(self, show_secrets: bool = True) -> auto.UpdateSummary:
        """A blank summary: ``up``, ``refresh`` and ``destroy`` read no ``stack history``. The
        engine counts the changes from the engine's summary event instead."""
        now = datetime.now(UTC)
        return auto.UpdateSummary(
            kind="", start_time=now, message="", environment={}, config={}, result=""
        )
