"""Shared fixtures. Keep each one small; add yours below."""

from __future__ import annotations

import os
from collections.abc import Generator, Iterator

# Before anything imports grpc: in-process tests serve gRPC (the dynamic-provider host, inline
# programs), and the test Prefect server is started with a ``preexec_fn`` (so a real fork, and
# Python code before exec). grpc's fork handlers then abort that child ("epoll_wait error: Bad
# file descriptor"). The tool itself never forks with a ``preexec_fn``.
os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")

import pytest

from cli import extras
from tests.prefect_cloud import PrefectCloud
from tests.prefect_server import PROTECTED_AUTH, PrefectServer

# In-process tests (stacks under mocks, the service, the engine's inline programs) load the
# provider SDKs as the console script does: compiled with postponed annotations, from the
# machine's cache (``stacks/sdk_bytecode.py``).
extras.postpone_sdk_annotations()

# moto_server (session) and s3_backend (a fresh bucket as a Pulumi state backend) for every
# test; importing the module starts nothing, the server starts when a test first asks for it.
pytest_plugins = ["tests.shared_backend"]


@pytest.fixture(scope="session")
def prefect_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[PrefectServer]:
    """A real Prefect server for the whole session (``.api_url``; ``.stop()``/``.start()``
    keep the port and database). A test that stops it must start it again, even on failure."""
    cache = getattr(request.config, "cache", None)
    server = PrefectServer(
        tmp_path_factory.mktemp("prefect-server"),
        # A migrated database kept between runs: saves ~4 s of every session's startup.
        seed_dir=cache.mkdir("prefect-server-seed") if cache is not None else None,
    )
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def protected_prefect_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[PrefectServer]:
    """A second real server, protected by ``PREFECT_SERVER_API_AUTH_STRING`` (HTTP Basic)."""
    cache = getattr(request.config, "cache", None)
    server = PrefectServer(
        tmp_path_factory.mktemp("protected-prefect-server"),
        seed_dir=cache.mkdir("prefect-server-seed") if cache is not None else None,
        extra_env={"PREFECT_SERVER_API_AUTH_STRING": PROTECTED_AUTH},
    )
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def prefect_cloud_proxy(prefect_server: PrefectServer) -> Iterator[PrefectCloud]:
    """The session's Prefect server made to look like a Prefect Cloud workspace (see
    ``tests/prefect_cloud.py``). Tests use ``prefect_cloud``, which also clears the record."""
    with PrefectCloud(prefect_server.api_url) as cloud:
        yield cloud


@pytest.fixture
def prefect_cloud(prefect_cloud_proxy: PrefectCloud) -> PrefectCloud:
    """The Cloud-like workspace (``.api_url``, ``.api_key``, ``.env``), its recorded requests
    cleared so ``.requests``/``.calls()`` hold only this test's."""
    prefect_cloud_proxy.clear()
    return prefect_cloud_proxy


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """A test that failed on a request to moto that got no answer in time carries every
    thread's stack in the moto servers of this process: a stall there is moto's (or ours)."""
    report = yield
    if report.failed and call.excinfo is not None and _timed_out_on_moto(call.excinfo.value):
        from tests.fakecloud.moto_server import MotoServer

        for server in list(MotoServer.running):
            report.sections.append((f"moto server on port {server.port}", server.threads()))
    return report


def _timed_out_on_moto(exc: BaseException) -> bool:
    """Whether ``exc`` (or what it was raised from) is botocore giving up on an answer."""
    from botocore.exceptions import ConnectTimeoutError, ReadTimeoutError

    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, (ReadTimeoutError, ConnectTimeoutError)):
            return True
        seen = seen.__cause__ or seen.__context__
    return False
