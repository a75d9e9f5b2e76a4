"""A pool's stack as the engine runs it: the Automation API's ``Stack`` without its CLI calls.

``Stack`` runs ``pulumi stack select`` when it is made: the engine already knows whether the
stack exists (the caller read its state, and every command names it with ``--stack``). The
operations (preview, up, refresh, destroy) do not go through ``Stack`` either but through
``cli_run``, with the program kept here; what is left of ``Stack`` are the workspace calls
recovery and removal make (``import_stack``, ``remove_stack``).

Imported by the engine only when it runs a stack (this module imports the pulumi SDK).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from pulumi import automation as auto
from pulumi.automation._stack import StackInitMode


class PoolStack(auto.Stack):
    """A pool's stack, as ``Engine.stack`` selected or created it for this run."""

    def __init__(
        self,
        name: str,
        workspace: auto.LocalWorkspace,
        program: Callable[[], Any],
        deployment: Mapping[str, Any] | None,
        config: Mapping[str, str],
    ) -> None:
        # Not ``Stack.__init__``: its ``stack select`` would only confirm what the caller read.
        self.name = name
        self.workspace = workspace
        self.program = program
        """The inline program the operations serve to the CLI."""
        self._mode = StackInitMode.SELECT  # only shown by repr()
        self.deployment = dict(deployment) if deployment is not None else None
        """The stack's exported deployment (secrets as ciphertext) as the caller read it before
        this run, ``None`` once it may be out of date (after a recovery): recovery reads the
        state again only when this shows a killed run's pending operations."""
        self.config = dict(config)
        """The stack's config, as written in its settings file."""
