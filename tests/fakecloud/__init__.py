"""Fake cloud providers for running the real Pulumi engine without cloud accounts.

The engine starts ``tests/fakecloud/bin/pulumi-resource-<name>`` (placed first on
PATH) as it would the real plugin; that script runs ``python -m
tests.fakecloud.<cloud>``, a gRPC provider written with
``pulumi.provider.experimental``. Resources live as JSON files under
``FAKECLOUD_STATE_DIR`` so tests can inspect them with
:class:`tests.fakecloud.state.FakeCloud`. See README.md for the env variables.

Keep this package import light: every provider process imports it on start-up.
"""

import os
import sys


def plugin_process(argv: list[str]) -> bool:
    """Whether ``argv`` (the interpreter's own, ``sys.orig_argv``) runs a module of this package
    as a program, as ``bin/pulumi-resource-<name>`` runs a provider plugin (``python -u -m
    tests.fakecloud.gcp``); not a test or a tool importing it, nor the moto server."""
    if "-m" not in argv[:-1]:
        return False
    module = argv[argv.index("-m") + 1]
    return module.startswith(f"{__name__}.") and module != f"{__name__}.moto_server"


if plugin_process(sys.orig_argv):
    # A real provider is a Go binary. These are interpreters importing the pulumi SDK, whose
    # __init__ also loads what no provider uses: the Automation API (with urllib.request and
    # email), dynamic providers (with dill and multiprocessing), PyYAML and the tracing set-up.
    # Left to load on first use, as the console script leaves them: ~6 MB and ~40-60 ms of CPU
    # less per plugin, which starts while the CLI does, on the same two cores.
    from stacks.sdk_modules import defer_pulumi_parts

    defer_pulumi_parts(os.environ)
