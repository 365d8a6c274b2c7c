"""Hot reload: good edits are served to new calls, broken edits are refused with file:line."""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from telephony.ivr.interpreter import Queue
from telephony.ivr.loader import Diagnostic
from telephony.ivr.reload import FlowLibrary
from tests.ivr.conftest import EXAMPLES, at, simulate


@pytest.fixture
def flows(tmp_path: Path) -> Path:
    root = tmp_path / "ivr_flows"
    shutil.copytree(EXAMPLES, root)
    return root


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text
    path.write_text(text.replace(old, new, 1), encoding="utf-8")
    # Make sure the mtime moves even on coarse file systems.
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))


HELP = "    group: help\n    priority: 5\n"


def test_initial_load_serves_every_hotline(flows: Path) -> None:
    library = FlowLibrary(flows)
    report = library.reload()
    assert report.ok and report.loaded == (
        "follow-up",  # the follow-up (回访) survey campaigns' flow
        "hotline-12315",
        "hotline-12319",
        "hotline-12345",
        "ticket-query",
    )
    for number in ("12345", "12328", "12329", "12315", "12319", "12393", "12348"):
        assert library.for_hotline(number) is not None, number
    assert library.for_hotline("110") is None


async def test_good_edit_is_served_to_new_calls_and_old_calls_keep_theirs(flows: Path) -> None:
    loaded_hook: list[str] = []
    library = FlowLibrary(flows, on_loaded=lambda lf: loaded_hook.append(lf.id))
    library.reload()
    in_progress = library.for_hotline("12345")
    assert in_progress is not None
    old_set, old_flow = in_progress
    ticket_before = old_set.flows["ticket-query"]

    edit(flows / "hotline-12345.yaml", HELP, "    group: help\n    priority: 9\n")
    assert library.changed()
    report = library.reload()
    assert report.loaded == ("hotline-12345",)
    new_set, new_flow = library.for_hotline("12345") or (None, None)
    assert new_flow is not None and new_flow.version != old_flow.version
    assert new_set is not None and new_set.flows["ticket-query"] is ticket_before  # unchanged
    assert loaded_hook[-1] == "hotline-12345"

    when = at("2026-03-10T10:00")
    new_call, _ = await simulate(new_set, "hotline-12345", ["3"], at=when)
    old_call, _ = await simulate(old_set, "hotline-12345", ["3"], at=when)
    assert new_call.action == Queue("help", 9)
    assert old_call.action == Queue("help", 5)
    assert old_call.version == old_flow.version


def test_broken_edit_keeps_the_previous_version(
    flows: Path, caplog: pytest.LogCaptureFixture
) -> None:
    errors: list[tuple[str, list[Diagnostic]]] = []
    library = FlowLibrary(flows, on_error=lambda path, diags: errors.append((path, diags)))
    library.reload()
    before = library.current.flows["hotline-12345"]
    lines = (flows / "hotline-12345.yaml").read_text(encoding="utf-8").splitlines()
    option_line = lines.index("      3: help") + 1  # the edited option
    node_line = lines.index("  help:") + 1  # the node it no longer reaches

    edit(flows / "hotline-12345.yaml", "      3: help\n", "      3: helpp\n")
    with caplog.at_level(logging.ERROR, logger="telephony.ivr.reload"):
        report = library.reload()
    assert not report.ok
    ((path, diags),) = errors
    assert path.endswith("hotline-12345.yaml")
    assert [d.line for d in diags] == [option_line, node_line]
    assert "unknown node 'helpp'" in diags[0].message
    assert library.current.flows["hotline-12345"] is before
    record = next(r for r in caplog.records if r.getMessage().startswith("ivr flow rejected"))
    assert record.__dict__["line"] == option_line
    assert record.__dict__["kept_previous"] is True
    assert f"{path}:{option_line}: unknown node 'helpp'" in record.getMessage()

    # Undoing the edit: the content is the served version's again, nothing to load.
    edit(flows / "hotline-12345.yaml", "      3: helpp\n", "      3: help\n")
    report = library.reload()
    assert report.ok and report.loaded == ()
    assert library.current.flows["hotline-12345"] is before


def test_yaml_syntax_error_keeps_the_previous_version(flows: Path) -> None:
    library = FlowLibrary(flows)
    library.reload()
    before = library.current.flows["hotline-12315"]
    (flows / "hotline-12315.yaml").write_text("start: [unclosed\n", encoding="utf-8")
    report = library.reload()
    assert list(report.rejected) and "invalid YAML" in str(next(iter(report.rejected.values()))[0])
    assert library.current.flows["hotline-12315"] is before
    assert library.for_hotline("12315") is not None


def test_new_broken_file_is_not_served(flows: Path) -> None:
    library = FlowLibrary(flows)
    library.reload()
    (flows / "hotline-12333.yaml").write_text(
        'hotlines: ["12333"]\nstart: a\nnodes:\n  a: {type: queue, group: nobody}\n',
        encoding="utf-8",
    )
    report = library.reload()
    assert "hotline-12333" not in library.current.flows
    (diag,) = next(iter(report.rejected.values()))
    assert diag.line == 4 and "unknown skill group 'nobody'" in diag.message


def test_edit_that_breaks_another_file_is_refused(flows: Path) -> None:
    library = FlowLibrary(flows)
    library.reload()
    before = library.current
    (flows / "ticket-query.yaml").unlink()  # still used by hotline-12345 as a sub-flow
    report = library.reload()
    assert not report.ok
    assert library.current.flows["ticket-query"] is before.flows["ticket-query"]
    assert library.current.flows["hotline-12345"] is before.flows["hotline-12345"]


def test_hotline_claimed_twice_refuses_the_new_claim(flows: Path) -> None:
    library = FlowLibrary(flows)
    library.reload()
    edit(flows / "hotline-12319.yaml", 'hotlines: ["12319"]', 'hotlines: ["12319", "12345"]')
    report = library.reload()
    assert not report.ok
    assert library.for_hotline("12345") is not None
    assert library.current.for_hotline("12345").id == "hotline-12345"  # type: ignore[union-attr]


def test_skill_group_removed_while_used_keeps_previous_groups(flows: Path) -> None:
    library = FlowLibrary(flows)
    library.reload()
    edit(flows / "skill_groups.yaml", "  - {id: help, name: 求助}\n", "")
    report = library.reload()
    assert not report.ok
    assert "help" in library.current.skill_groups
    assert set(library.current.flows) == {
        "follow-up",
        "hotline-12315",
        "hotline-12319",
        "hotline-12345",
        "ticket-query",
    }


def test_removed_file_is_removed(flows: Path) -> None:
    library = FlowLibrary(flows)
    library.reload()
    (flows / "hotline-12319.yaml").unlink()
    report = library.reload()
    assert report.removed == ("hotline-12319",)
    assert library.for_hotline("12319") is None


async def test_watcher_reloads_on_change(flows: Path) -> None:
    library = FlowLibrary(flows)
    library.reload()
    version = library.current.flows["hotline-12345"].version
    library.start(interval=0.02)
    try:
        edit(flows / "hotline-12345.yaml", HELP, "    group: help\n    priority: 8\n")
        for _ in range(200):
            await asyncio.sleep(0.01)
            if library.current.flows["hotline-12345"].version != version:
                break
        assert library.current.flows["hotline-12345"].version != version
    finally:
        await library.stop()
    assert library._task is None


async def _reloaded(library: FlowLibrary, version: str, flow: str = "hotline-12345") -> None:
    async with asyncio.timeout(5):
        while library.current.flows[flow].version == version:
            await asyncio.sleep(0.01)


async def test_the_watcher_reads_and_parses_off_the_event_loop(
    flows: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 7, item 8: stat, read and YAML parsing never run on the loop that serves calls."""
    import telephony.ivr.reload as reload_module

    threads: dict[str, set[int]] = {"stat": set(), "parse": set()}
    real_signature, real_load = reload_module._signature, reload_module.load_folder

    def signature(root: Path) -> reload_module.Signature:
        threads["stat"].add(threading.get_ident())
        return real_signature(root)

    def load(root: Path, extra: tuple[str, ...] = ()) -> Any:
        threads["parse"].add(threading.get_ident())
        return real_load(root, extra)

    monkeypatch.setattr(reload_module, "_signature", signature)
    monkeypatch.setattr(reload_module, "load_folder", load)
    library = FlowLibrary(flows)
    await library.reload_async()
    version = library.current.flows["hotline-12345"].version
    library.start(interval=0.02)
    try:
        edit(flows / "hotline-12345.yaml", HELP, "    group: help\n    priority: 8\n")
        await _reloaded(library, version)
    finally:
        await library.stop()
    loop_thread = threading.get_ident()
    assert threads["stat"] and threads["parse"]
    assert loop_thread not in threads["stat"] | threads["parse"]


async def test_a_slow_parse_does_not_stall_the_loop(
    flows: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import telephony.ivr.reload as reload_module

    real_load = reload_module.load_folder

    def slow_load(root: Path, extra: tuple[str, ...] = ()) -> Any:
        time.sleep(0.3)  # a big folder on a slow disk
        return real_load(root, extra)

    monkeypatch.setattr(reload_module, "load_folder", slow_load)
    library = FlowLibrary(flows)
    reload = asyncio.create_task(library.reload_async())
    worst, last = 0.0, time.monotonic()
    while not reload.done():
        await asyncio.sleep(0.01)
        now = time.monotonic()
        worst, last = max(worst, now - last), now
    assert (await reload).ok
    assert worst < 0.15, f"the loop stalled {worst:.3f}s"


async def test_the_watcher_refuses_a_broken_edit_with_file_and_line(
    flows: Path, caplog: pytest.LogCaptureFixture
) -> None:
    errors: list[tuple[str, list[Diagnostic]]] = []
    library = FlowLibrary(flows, on_error=lambda path, diags: errors.append((path, diags)))
    await library.reload_async()
    before = library.current.flows["hotline-12345"]
    lines = (flows / "hotline-12345.yaml").read_text(encoding="utf-8").splitlines()
    option_line = lines.index("      3: help") + 1
    library.start(interval=0.02)
    try:
        with caplog.at_level(logging.ERROR, logger="telephony.ivr.reload"):
            edit(flows / "hotline-12345.yaml", "      3: help\n", "      3: helpp\n")
            async with asyncio.timeout(5):
                while not errors:
                    await asyncio.sleep(0.01)
    finally:
        await library.stop()
    ((path, diags),) = errors
    assert path.endswith("hotline-12345.yaml") and diags[0].line == option_line
    assert "unknown node 'helpp'" in diags[0].message
    assert library.current.flows["hotline-12345"] is before  # the old version serves
    record = next(r for r in caplog.records if r.getMessage().startswith("ivr flow rejected"))
    assert f"{path}:{option_line}: unknown node 'helpp'" in record.getMessage()


async def test_a_sync_reload_during_an_async_one_is_not_undone(
    flows: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import telephony.ivr.reload as reload_module

    real_load = reload_module.load_folder
    gate = threading.Event()

    def gated_load(root: Path, extra: tuple[str, ...] = ()) -> Any:
        result = real_load(root, extra)  # the content as it was
        if threading.current_thread() is not threading.main_thread():
            gate.wait(5)
        return result

    library = FlowLibrary(flows)
    library.reload()
    version = library.current.flows["hotline-12345"].version
    monkeypatch.setattr(reload_module, "load_folder", gated_load)
    pending = asyncio.create_task(library.reload_async())
    await asyncio.sleep(0.05)  # the thread has read the old content
    edit(flows / "hotline-12345.yaml", HELP, "    group: help\n    priority: 7\n")
    library.reload()  # on the loop, meanwhile
    swapped = library.current.flows["hotline-12345"]
    assert swapped.version != version
    gate.set()
    await pending
    assert library.current.flows["hotline-12345"].version == swapped.version  # not reverted
