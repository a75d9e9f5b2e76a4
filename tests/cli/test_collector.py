"""The cyclic collector paused while a command starts, and resumed for a long one."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from cli import collector
from tests.cli.fresh import run_console_script


@pytest.fixture
def restore_collector() -> Iterator[None]:
    # The suite's own process must get its collector back however a test ends.
    yield
    gc.unfreeze()
    gc.enable()


@pytest.mark.usefixtures("restore_collector")
def test_paused_at_once_then_resumed_with_the_start_up_heap_frozen() -> None:
    gc.unfreeze()
    timer = collector.pause(resume_after=0.2)
    assert not gc.isenabled()
    timer.join(timeout=10)
    assert gc.isenabled()
    # What was loaded by then is out of every later pass.
    assert gc.get_freeze_count() > 0


@pytest.mark.usefixtures("restore_collector")
def test_resume_freezes_without_a_pass_then_collects_what_comes_after() -> None:
    gc.unfreeze()
    gc.disable()

    class Node:
        pass

    def cycle() -> None:
        node = Node()
        node.self = node  # type: ignore[attr-defined]

    cycle()  # start-up's garbage: frozen with the rest, never walked
    passes: list[int] = []

    def count(phase: str, info: dict) -> None:
        if phase == "stop":
            passes.append(info["collected"])

    gc.callbacks.append(count)
    try:
        collector.resume()
        # The freeze itself walked nothing: a pass would have been a stall of the command.
        assert passes == []
        assert gc.get_freeze_count() > 0
        cycle()  # made after the resume: an ordinary pass finds it
        gc.collect()
    finally:
        gc.callbacks.remove(count)
    assert sum(passes) >= 1


def test_the_console_script_pauses_it_for_the_command() -> None:
    # ``main`` is the console script's entry; a short command runs with the collector off
    # (the probe runs as the command would, through ``main``, and reports what it saw).
    out = run_console_script(
        "def app():\n    import gc\n    print('enabled' if gc.isenabled() else 'paused')\n"
    )
    assert out.strip() == "paused"
