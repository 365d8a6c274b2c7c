"""Structured logging: one JSON object per line, with whatever ``extra`` fields a caller adds.

Theory of operation
-------------------
The event loop that serves calls must never wait for stderr (a slow pipe,
journald or a terminal on pause would stall every call). So the root logger
has one :class:`DroppingQueueHandler`: on the caller's thread it formats the
record as its JSON line (cheap, and the values are those of the moment it
was logged) and appends it to a bounded queue without waiting; a writer
thread (``log-writer``) wakes every ``period`` (50 ms), takes every line
queued and writes them to stderr in one write. It is not woken per line:
waking another thread for each line made the two threads trade the GIL
(and a futex) for every call the engine logged.

Policy when the queue is full (``queue_size`` lines, 10,000 by default: the
writer is stuck or far behind): the line is dropped and counted
(:attr:`DroppingQueueHandler.dropped`, the hook of :func:`on_dropped`, the
metric ``telephony_log_lines_dropped_total``), and once the queue has room
again a ``log lines dropped`` line says how many were lost. Logging never
blocks the loop; losing log lines under such pressure is the lesser harm.

Lifecycle: :func:`configure_logging` starts the writer (stopping a previous
one first); :func:`stop_logging` writes everything still queued, stops the
thread and leaves a plain synchronous handler in place, so that whatever is
logged afterwards (at interpreter exit) still appears. It runs at exit
(``atexit``) and, when logging is configured inside a ``click`` command, when
that command's context closes (so a command's log lines are all written
before it returns, which ``CliRunner`` tests rely on).
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from logging.handlers import QueueHandler
from queue import Full
from typing import IO, Any

import orjson

_STANDARD = frozenset(vars(logging.makeLogRecord({})).keys()) | {"message", "asctime"}

DEFAULT_QUEUE_SIZE = 10_000


class JsonFormatter(logging.Formatter):
    """Format records as JSON lines: ts, level, logger, msg, plus the record's extra fields."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                out[key] = value
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(out, default=str).decode()


class _Preformatted(logging.Formatter):
    """The writer's side: the record's message already is its whole line."""

    def format(self, record: logging.LogRecord) -> str:
        return str(record.msg)


class _Lines:
    """A bounded queue of formatted lines: appended to by any thread, taken whole.

    ``deque`` appends and pops are atomic, so neither side takes a lock.
    """

    def __init__(self, maxsize: int) -> None:
        self.maxsize = maxsize
        self._items: deque[str] = deque()

    def put_nowait(self, line: str) -> None:
        if len(self._items) >= self.maxsize:
            raise Full
        self._items.append(line)

    def take(self) -> list[str]:
        items = self._items
        return [items.popleft() for _ in range(len(items))]


class DroppingQueueHandler(QueueHandler):
    """Format on the caller's thread, queue without waiting; a full queue drops and counts."""

    def __init__(self, target: _Lines) -> None:
        super().__init__(target)  # type: ignore[arg-type]
        self.lines = target
        self.setFormatter(JsonFormatter())
        self.dropped = 0
        self._unreported = 0

    def prepare(self, record: logging.LogRecord) -> str:
        """The record's JSON line: what is queued (the stock handler copies the record)."""
        return self.format(record)

    def enqueue(self, record: logging.LogRecord | str) -> None:
        if self._unreported:
            self._report_drops()
        try:
            self.lines.put_nowait(record)  # type: ignore[arg-type]  # prepare() made it a line
        except Full:
            self.dropped += 1
            self._unreported += 1
            hook = _drop_hook
            if hook is not None:
                with contextlib.suppress(Exception):  # a metrics hook never breaks logging
                    hook()

    def _report_drops(self) -> None:
        note = logging.makeLogRecord(
            {
                "name": __name__,
                "levelno": logging.WARNING,
                "levelname": "WARNING",
                "msg": "log lines dropped",
                "dropped": self._unreported,
                "dropped_total": self.dropped,
            }
        )
        try:
            self.lines.put_nowait(self.prepare(note))
        except Full:
            return
        self._unreported = 0


class _Writer:
    """The ``log-writer`` thread: every ``period`` seconds, what is queued, in one write."""

    def __init__(self, lines: _Lines, target: logging.StreamHandler[Any], period: float) -> None:
        self.lines = lines
        self.target = target
        self.period = period
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="log-writer", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.period):
            self._write()
        self._write()

    def _write(self) -> None:
        lines = self.lines.take()
        if not lines:
            return
        text = "".join(f"{line}\n" for line in lines)
        target = self.target
        target.acquire()
        try:
            target.stream.write(text)
            target.flush()
        except Exception:  # pragma: no cover - stderr is gone: nothing left to tell
            pass
        finally:
            target.release()

    def stop(self) -> None:
        """Write what is queued and end the thread."""
        self._stop.set()
        self._thread.join(timeout=10.0)


_writer: _Writer | None = None
_handler: DroppingQueueHandler | None = None
_target: logging.Handler | None = None
_drop_hook: Callable[[], None] | None = None
_atexit_registered = False


def on_dropped(hook: Callable[[], None] | None) -> None:
    """Call ``hook`` for every log line dropped (``serve`` counts them in a metric)."""
    global _drop_hook
    _drop_hook = hook


def configure_logging(
    level: str = "INFO",
    *,
    queue_size: int = DEFAULT_QUEUE_SIZE,
    stream: IO[str] | None = None,
    period: float = 0.05,
) -> DroppingQueueHandler:
    """Send JSON log lines to ``stream`` (stderr) at ``level``, through the writer thread
    (which writes what was logged every ``period`` seconds)."""
    global _writer, _handler, _target, _atexit_registered
    stop_logging()
    # No format here names the caller's file, thread or process: the stock logger would
    # still walk the stack and look them up for every record.
    logging._srcfile = None
    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False
    target: logging.StreamHandler[Any] = logging.StreamHandler(
        stream if stream is not None else sys.stderr
    )
    target.setFormatter(_Preformatted())
    lines = _Lines(queue_size)
    handler = DroppingQueueHandler(lines)
    writer = _Writer(lines, target, period)
    writer.start()
    _writer, _handler, _target = writer, handler, target
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    if not _atexit_registered:
        atexit.register(stop_logging)
        _atexit_registered = True
    _stop_with_click_command()
    return handler


def stop_logging() -> None:
    """Write every queued line, stop the writer thread; later lines are written directly."""
    global _writer, _handler, _target
    writer, handler, target = _writer, _handler, _target
    _writer = _handler = _target = None
    if writer is None:
        return
    root = logging.getLogger()
    if handler is not None and target is not None and handler in root.handlers:
        root.handlers[root.handlers.index(handler)] = _Synchronous(target)
    writer.stop()
    if target is not None:
        target.flush()


class _Synchronous(logging.Handler):
    """After :func:`stop_logging`: format as JSON and write at once, on the caller's thread."""

    def __init__(self, target: logging.Handler) -> None:
        super().__init__()
        self.setFormatter(JsonFormatter())
        self.target = target

    def emit(self, record: logging.LogRecord) -> None:
        line = logging.makeLogRecord({"msg": self.format(record), "levelno": record.levelno})
        self.target.handle(line)


def _stop_with_click_command() -> None:
    try:
        import click
    except ImportError:  # pragma: no cover - click is a dependency
        return
    context = click.get_current_context(silent=True)
    if context is not None:
        context.call_on_close(stop_logging)
