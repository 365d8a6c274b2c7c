"""The control plane's event loop: uvloop unless asked for asyncio's own."""

from __future__ import annotations

import asyncio
import gc

import pytest

from telephony import runtime


async def _loop_module() -> str:
    return type(asyncio.get_running_loop()).__module__


def test_serve_runs_on_uvloop_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TELEPHONY_EVENT_LOOP", raising=False)
    assert runtime.loop_name() == "uvloop"
    assert runtime.run(_loop_module()).startswith("uvloop")


def test_the_standard_loop_can_be_chosen(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TELEPHONY_EVENT_LOOP", "asyncio")
    assert runtime.loop_name() == "asyncio"
    assert runtime.run(_loop_module()).startswith("asyncio")


def test_settling_the_heap_keeps_what_is_alive_out_of_later_collections() -> None:
    class Kept:
        pass

    kept = [Kept() for _ in range(1000)]
    try:
        frozen = runtime.settle_heap()
        assert frozen >= len(kept) and gc.get_freeze_count() == frozen
        # A full collection no longer visits them: none of them is tracked by a generation.
        tracked = {id(o) for generation in range(3) for o in gc.get_objects(generation)}
        assert not any(id(k) in tracked for k in kept)
        later = Kept()
        assert id(later) in {id(o) for o in gc.get_objects(0)}  # collected as usual
    finally:
        gc.unfreeze()
