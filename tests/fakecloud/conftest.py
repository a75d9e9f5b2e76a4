"""Fixtures for the fake clouds' own tests: providers driven the way the engine drives them."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.fakecloud.driver import PROJECT, REGION, Driver
from tests.fakecloud.gcp import GCP
from tests.fakecloud.provider import Cloud, FakeProvider
from tests.fakecloud.state import FakeCloud


@pytest.fixture
def state_dir(tmp_path: Path) -> Path:
    """A fresh FAKECLOUD_STATE_DIR."""
    return tmp_path / "cloud"


@pytest.fixture
def cloud(state_dir: Path) -> FakeCloud:
    """The store the providers under test write to."""
    return FakeCloud(state_dir)


@pytest.fixture
def make_driver(state_dir: Path) -> Callable[..., Driver]:
    """``make_driver(cloud=GCP, **env)``: a configured provider process of its own.

    Two drivers on one state dir behave like two stacks' provider processes.
    """

    def make(cloud_def: Cloud = GCP, **env: str) -> Driver:
        provider = FakeProvider(cloud_def, state_dir=state_dir, env=env)
        driver = Driver(provider)
        driver.configure(project=PROJECT, region=REGION)
        return driver

    return make


@pytest.fixture
def gcp(make_driver: Callable[..., Driver]) -> Driver:
    """A GCP provider with project ``fake-project`` in ``us-central1``, no env knobs."""
    return make_driver()
