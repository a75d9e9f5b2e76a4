"""Fake cloud providers for running the real Pulumi engine without cloud accounts.

The engine starts ``tests/fakecloud/bin/pulumi-resource-<name>`` (placed first on
PATH) as it would the real plugin; that script runs ``python -m
tests.fakecloud.<cloud>``, a gRPC provider written with
``pulumi.provider.experimental``. Resources live as JSON files under
``FAKECLOUD_STATE_DIR`` so tests can inspect them with
:class:`tests.fakecloud.state.FakeCloud`. See README.md for the env variables.

Keep this package import light: every provider process imports it on start-up.
"""
