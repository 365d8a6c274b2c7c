"""JSON logging through a writer thread: the loop never waits for stderr (issue 7, item 8).

The writer is not woken per line (issue 8): it writes what was queued every 50 ms.
"""

from __future__ import annotations

import io
import logging
import threading
import time
from collections.abc import Iterator

import click
import orjson
import pytest
from click.testing import CliRunner

from telephony import logs

log = logging.getLogger("telephony.test")


class StuckStream(io.StringIO):
    """stderr whose reader stopped: every write waits until ``release``."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = threading.Event()

    def write(self, text: str) -> int:
        self.gate.wait(10)
        return super().write(text)


@pytest.fixture(autouse=True)
def _restore_root() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    logs.stop_logging()
    logs.on_dropped(None)
    root.handlers[:] = handlers
    root.setLevel(level)


def _lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [orjson.loads(line) for line in stream.getvalue().splitlines()]


def test_logging_does_not_wait_for_a_stuck_stderr() -> None:
    stream = StuckStream()
    logs.configure_logging("INFO", stream=stream)
    started = time.monotonic()
    for n in range(200):
        log.info("call step", extra={"n": n})
    assert time.monotonic() - started < 0.5  # a synchronous handler would wait here
    stream.gate.set()
    logs.stop_logging()
    lines = _lines(stream)
    assert [line["n"] for line in lines] == list(range(200))
    assert lines[0]["msg"] == "call step" and lines[0]["level"] == "info"


def test_a_full_queue_drops_and_counts_never_blocks() -> None:
    stream = StuckStream()
    dropped: list[None] = []
    logs.on_dropped(lambda: dropped.append(None))
    handler = logs.configure_logging("INFO", stream=stream, queue_size=5)
    started = time.monotonic()
    for n in range(50):
        log.info("call step", extra={"n": n})
    assert time.monotonic() - started < 0.5
    # what the queue holds (5) is kept; so is what the writer took before it got stuck,
    # at most one queue's worth
    assert 40 <= handler.dropped <= 45
    assert len(dropped) == handler.dropped
    stream.gate.set()
    time.sleep(0.1)  # the writer catches up
    log.warning("after the storm")
    logs.stop_logging()
    lines = _lines(stream)
    note = next(line for line in lines if line["msg"] == "log lines dropped")
    assert note["dropped"] == handler.dropped and note["level"] == "warning"
    assert lines[-1]["msg"] == "after the storm"


def test_stop_writes_everything_and_later_lines_still_appear() -> None:
    stream = io.StringIO()
    logs.configure_logging("DEBUG", stream=stream)
    for n in range(1000):
        log.debug("step", extra={"n": n})
    logs.stop_logging()
    assert [line["n"] for line in _lines(stream)] == list(range(1000))
    assert not [t for t in threading.enumerate() if t.name == "log-writer"]
    log.error("at exit")  # after the writer stopped: written at once
    assert _lines(stream)[-1]["msg"] == "at exit"


def test_an_exception_keeps_its_traceback_and_the_level_filters() -> None:
    stream = io.StringIO()
    logs.configure_logging("WARNING", stream=stream)
    log.info("not shown")
    try:
        raise ValueError("bad row")
    except ValueError:
        log.exception("write failed", extra={"table": "calls"})
    logs.stop_logging()
    (line,) = _lines(stream)
    assert line["msg"] == "write failed" and line["table"] == "calls"
    assert "ValueError: bad row" in str(line["exc"])


def test_reconfiguring_replaces_the_writer() -> None:
    first, second = io.StringIO(), io.StringIO()
    logs.configure_logging("INFO", stream=first)
    log.info("one")
    logs.configure_logging("INFO", stream=second)
    log.info("two")
    logs.stop_logging()
    assert [line["msg"] for line in _lines(first)] == ["one"]
    assert [line["msg"] for line in _lines(second)] == ["two"]
    assert len([t for t in threading.enumerate() if t.name == "log-writer"]) == 0


def test_a_click_command_has_written_its_lines_when_it_returns() -> None:
    @click.group()
    def cli() -> None:
        logs.configure_logging("INFO")

    @cli.command()
    def work() -> None:
        for n in range(50):
            log.info("working", extra={"n": n})
        log.info("done")

    result = CliRunner().invoke(cli, ["work"])
    assert result.exit_code == 0, result.output
    assert [orjson.loads(line)["msg"] for line in result.stderr.splitlines()][-1] == "done"
    assert len(result.stderr.splitlines()) == 51


def test_the_writer_is_not_woken_for_each_line() -> None:
    """Lines logged within one period reach the stream in one write (one wake-up)."""

    class Counting(io.StringIO):
        writes = 0

        def write(self, text: str) -> int:
            Counting.writes += 1
            return super().write(text)

    stream = Counting()
    logs.configure_logging("INFO", stream=stream, period=0.2)
    time.sleep(0.05)  # not at the start of a period
    for n in range(100):
        log.info("call step", extra={"n": n})
    time.sleep(0.5)
    assert [line["n"] for line in _lines(stream)] == list(range(100))
    assert Counting.writes <= 2  # a period boundary may fall among the 100 lines
    logs.stop_logging()
