"""The control plane's event loop: uvloop unless asked for asyncio's own."""

from __future__ import annotations

import asyncio

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
