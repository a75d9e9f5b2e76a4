"""Optional parts of third-party packages that a ``provision`` process never uses, kept out.

**httpx's command-line client.** ``import httpx`` runs ``from ._main import main``, which
succeeds whenever click and pygments are installed (Prefect requires both, so they are beside
this tool in most environments) and then imports click, pygments' lexers and rich's syntax
highlighting: ~68 million instructions and 2.3 MB of every command that talks to Prefect
(``valgrind --tool=cachegrind`` and ``VmRSS`` around ``import httpx``, with the CLI's own
modules loaded first), none of it used by the Prefect writer or the key cleanups. An entry of
``None`` in ``sys.modules`` makes that one import raise ``ImportError``, and httpx falls back
to the stub ``main`` it defines for an install without its ``cli`` extra: a newer httpx without
the part only leaves the entry unused.

Looked at and left: pydantic's plugin discovery (the first model a command validates reads the
entry points of every installed distribution) costs ~22 million instructions of an ECS plan.
Skipping it for this process alone means replacing a private pydantic module, and a pydantic
release that changed what it imports from there would break every command.
"""

from __future__ import annotations

import sys

HTTPX_CLI = "httpx._main"


def leave_out() -> None:
    """Keep the parts above out of this process; call before httpx is imported.

    A part already loaded (by a host that imported it first) is left as it is.
    """
    sys.modules.setdefault(HTTPX_CLI, None)  # type: ignore[arg-type]
