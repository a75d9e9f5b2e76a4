"""Optional parts of third-party packages that a ``provision`` process never uses, kept out.

httpx and httpcore import some modules only if the packages those need are installed, and
Prefect's dependencies install them, so beside Prefect (where this tool usually lives) every
command that talks to Prefect paid for them:

- **httpx's command-line client** (``httpx._main``): ``import httpx`` imports it whenever
  click and pygments are installed, which loads click, pygments' lexers and rich's syntax
  highlighting. ~68 million instructions and 2.3 MB.
- **httpcore's HTTP/2 connections** (``httpcore._sync.http2``, ``httpcore._async.http2``):
  imported whenever h2 is installed, with h2, hpack and hyperframe. ~58 million instructions
  and 1.3 MB. Every client of this tool speaks HTTP/1.1 (httpx's default).

(Counted with ``valgrind --tool=cachegrind`` and ``VmRSS`` around ``import httpx`` and a
client's creation, with the CLI's own modules loaded first.) An entry of ``None`` in
``sys.modules`` makes an import of that module raise ``ImportError``, and both packages then
use the fallback they define for an install without the extra: httpx a stub ``main``,
httpcore an ``HTTP2Connection`` that raises if HTTP/2 is asked for. A newer release without
one of these modules only leaves its entry unused.

What ``import pulumi`` loads and a command may never use (the SDK's Automation API, dynamic
providers and OpenTelemetry set-up, and PyYAML) is not left out but deferred: :func:`defer`
puts those modules in ``sys.modules`` with their code not run yet, and the first name a
command asks of one runs it (``stacks/sdk_modules.py``,
:data:`~stacks.sdk_modules.PULUMI_DEFERRED`).

The provider SDKs' modules are compiled with their annotations postponed
(:func:`postpone_sdk_annotations`, ``stacks/sdk_bytecode.py``): evaluated as they load, they
are most of what loading ``pulumi_aws.ec2``'s input and output types costs, and nothing reads
them until a program serialises one of the types.

Looked at and left: pydantic's plugin discovery (the first model a command validates reads the
entry points of every installed distribution) costs ~22 million instructions of an ECS plan.
Skipping it for this process alone means replacing a private pydantic module, and a pydantic
release that changed what it imports from there would break every command.
"""

from __future__ import annotations

import os
import sys

UNUSED = ("httpx._main", "httpcore._sync.http2", "httpcore._async.http2")
"""The modules kept out (see the module docstring)."""


def leave_out() -> None:
    """Keep the modules of :data:`UNUSED` out of this process; call before httpx is imported.

    A module already loaded (by a host that imported it first) is left as it is.
    """
    for name in UNUSED:
        sys.modules.setdefault(name, None)  # type: ignore[arg-type]


def defer() -> None:
    """Defer the modules of :data:`stacks.sdk_modules.PULUMI_DEFERRED` until a command uses
    them; call before pulumi is imported (nothing changes after)."""
    from stacks import sdk_modules

    sdk_modules.defer_pulumi_parts(os.environ)


def postpone_sdk_annotations() -> None:
    """Compile the provider SDKs' modules imported from now on with postponed annotations,
    cached in this machine's cache directory (:mod:`stacks.sdk_bytecode`)."""
    from provision.settings import cache_dir
    from stacks import sdk_bytecode

    sdk_bytecode.install(cache_dir(os.environ) / "sdk-bytecode")
