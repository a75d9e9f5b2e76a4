"""The cyclic garbage collector while a ``provision`` command starts.

A command's first second goes to loading code: typer, the targets' pydantic models, the pulumi
SDK and a provider SDK's modules, some hundreds of thousands of objects (classes, functions,
their dicts and annotations) that live as long as the process. CPython's collector, run every
700 allocations and in full each time the heap has grown by a quarter, walks them again and
again and frees nothing: ~85 ms of a 0.6 s ``preview --offline --type ecs`` (measured with a
``gc.callbacks`` timer). mypy raises its thresholds for the same reason.

So the console script pauses the collector (:func:`pause`). A command still running
``resume_after`` seconds later (an ``up`` that creates resources, ``destroy``, a
confirmation prompt waiting for its answer) freezes everything tracked by then (the loaded
code: never walked again) and collects as usual from then on. A shorter command ends before
any cycle it made is worth a pass; its memory goes with the process.

The freeze comes without a pass first. A full pass over the start-up heap holds the
interpreter lock in the middle of the command's work: 117 ms in a first AWS ``up``, 80 ms in
an Azure one, for 2,366 and 9,084 objects freed. Those are the cycles importing code leaves
(with the AWS program's modules loaded, a pass frees 925 objects, 2,781 allocator blocks):
kept for the process's life instead.
"""

from __future__ import annotations

import gc
import threading

RESUME_AFTER_S = 2.0
"""Longer than the start-up of every command (a no-op ``up`` of the largest stack takes
~1.6 s end to end), short enough that no run piles up garbage: a command's own work allocates
little next to the code it loads."""


def pause(resume_after: float = RESUME_AFTER_S) -> threading.Timer:
    """Stop automatic collection now and resume it ``resume_after`` seconds later (on a
    daemon timer thread, returned so that a test can wait for it)."""
    gc.disable()
    timer = threading.Timer(resume_after, resume)
    timer.daemon = True
    timer.name = "provision-gc-resume"
    timer.start()
    return timer


def resume() -> None:
    """Freeze what start-up left out of every later pass, and turn automatic collection back
    on. No pass first: it would stall the command (see the module's docstring)."""
    gc.freeze()
    gc.enable()
