"""The write buffer: call-path rows written in batches, in order, through database outages.

Theory of operation
-------------------
The engine never waits for the database. It :meth:`WriteBuffer.put`\\ s a
:class:`Write` (a row for a table, as an insert that ignores a row already
there, or as an upsert that overwrites the named columns) and goes on.
One task takes the oldest writes, up to ``max_batch``, and commits them as
one statement (so in one transaction), with the effect of applying them in
the order they were put; it starts a commit at most
every ``linger`` seconds (50 ms) unless a full batch is waiting, so under
load a transaction carries many calls' rows rather than the few that
arrived during the previous commit. If the database cannot be
reached, the batch stays at the head of the buffer and is tried again with
capped exponential backoff; writes put meanwhile queue behind it. Because
every row's key is made by the control plane (uuids, ids) and every write is
an insert-or-ignore or an upsert, a batch that committed but whose
acknowledgement was lost is harmless when sent again: nothing is lost and
nothing is duplicated.

Bound, and the policy when it is reached
----------------------------------------
At most ``max_depth`` writes are held in memory (50,000 by default: about
25 seconds of a node's peak of 125 calls/s, some 75 MB). A CDR must never
be dropped, and a long outage must not exhaust memory, so past the bound
the buffer *spills*: every further write is appended, as one JSON line, to
``<spill_dir>/write-buffer.jsonl`` (``serve`` passes the data folder), and
keeps going there until the file has been replayed. When the database is
back, the buffer commits what memory holds, then reads the file back
``max_batch`` lines at a time, in order, and deletes it once everything in
it is committed; from then on writes stay in memory again. Order is kept
throughout: memory holds the oldest writes, the file everything after them.

* The file is append-only and written with one ``write`` per line, so a
  crash of the process loses none of it (the operating system has it); it
  is ``fsync``-ed once per retry while the database is down and when the
  buffer closes, so a power cut may lose the last second or so.
* A file left by a previous run (the process stopped during the outage) is
  found when the buffer is made and replayed first, before anything new.
  The position reached is kept in ``write-buffer.jsonl.pos`` after every
  committed batch, so a restart during the replay does not apply old
  writes twice (doing so would be harmless for our rows, but could undo a
  change made meanwhile by someone else, such as an agent's state).
* Closing with the database still down writes what memory holds to the
  front of the file, so a shutdown during an outage loses nothing either.
* Without a ``spill_dir`` (tests, tools) writes past the bound stay in
  memory: the overflow is logged and counted, never dropped.

A write that cannot be spilled (a value JSON cannot carry) stays in memory.

Refused writes
--------------
A write the database refuses for itself (a constraint, a bad value) would
block everything behind it. It is taken out of its batch, the rest is
committed, and the refusal is made loud: logged with its row and the
database's error, counted (:attr:`WriteBuffer.refused`, the hooks' metric
``telephony_db_writes_refused_total``), appended to
``<spill_dir>/refused.jsonl`` for a later replay by hand, and announced to
every listener of :func:`on_refusal` (the test suite fails any test during
which a write was refused). A refusal is a validation bug of ours, not an
acceptable loss.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import functools
import logging
import math
import os
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, Protocol

import asyncpg
import orjson
from sqlalchemy import MetaData, Table
from sqlalchemy.dialects.postgresql import asyncpg as asyncpg_dialect
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.sql import sqltypes

log = logging.getLogger(__name__)

_DIALECT = asyncpg_dialect.dialect()  # type: ignore[no-untyped-call]  # for quoting names

SPILL_FILE = "write-buffer.jsonl"
REFUSED_FILE = "refused.jsonl"
DEFAULT_MAX_DEPTH = 50_000


@dataclass(frozen=True, slots=True)
class Write:
    """One row to write: inserted if new; if ``update`` names columns, those overwrite."""

    table: Table
    row: Mapping[str, Any]
    update: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Refusal:
    """A write the database refused: the table, the row, and the database's error."""

    table: str
    row: Mapping[str, Any]
    error: str


RefusalListener = Callable[[Refusal], None]
_refusal_listeners: list[RefusalListener] = []


def on_refusal(listener: RefusalListener) -> Callable[[], None]:
    """Call ``listener`` for every write any buffer of the process has refused; returns
    the function that stops it."""
    _refusal_listeners.append(listener)

    def stop() -> None:
        with contextlib.suppress(ValueError):
            _refusal_listeners.remove(listener)

    return stop


class BufferHooks(Protocol):
    """Where the buffer reports (``telephony.metrics.BufferMetrics`` implements it)."""

    def depth(self, memory: int, spilled: int) -> None:
        """Writes not yet committed: held in memory, and waiting in the spill file."""
        ...

    def overflow(self) -> None:
        """One write arrived past the memory bound (spilled, or kept in memory without a file)."""
        ...

    def refused(self, table: str) -> None:
        """The database refused a write to ``table``."""
        ...


class NoHooks:
    """Report nothing (the default)."""

    def depth(self, memory: int, spilled: int) -> None:
        pass

    def overflow(self) -> None:
        pass

    def refused(self, table: str) -> None:
        pass


def _key(write: Write) -> tuple[Any, ...]:
    return tuple(write.row[c.name] for c in write.table.primary_key.columns)


def _groups(writes: Sequence[Write]) -> list[list[Write]]:
    """Consecutive writes that can share one multi-row statement, order kept.

    A group never holds the same key twice (PostgreSQL refuses an upsert that
    touches one row twice in a statement).
    """
    groups: list[list[Write]] = []
    shape: tuple[Any, ...] | None = None
    keys: set[tuple[Any, ...]] = set()
    for write in writes:
        this = (write.table.name, frozenset(write.row), write.update)
        key = _key(write)
        if this != shape or key in keys:
            groups.append([])
            shape, keys = this, set()
        groups[-1].append(write)
        keys.add(key)
    return groups


def _merge(earlier: Write, later: Write) -> Write:
    """One write with the effect of ``earlier`` then ``later`` on the same row.

    The later write's updated columns take its values, the rest keep the earlier
    row's; the merged write updates the union of both writes' columns.
    """
    row = {**earlier.row, **{c: later.row[c] for c in later.update}}
    update = tuple(dict.fromkeys((*earlier.update, *later.update)))
    return Write(earlier.table, row, update)


def _coalesce(batch: Sequence[Write]) -> list[Write]:
    """The batch as few statements can carry it, with the same effect in one transaction.

    Writes to one row merge into one (a CDR rewritten five times in a batch is written
    once), and the writes are ordered by table, parents before children (the foreign
    keys), so each table's rows share a multi-row statement instead of alternating
    with the other tables' one by one.
    """
    merged: dict[tuple[str, tuple[Any, ...]], Write] = {}
    first_seen: dict[tuple[str, tuple[Any, ...]], int] = {}
    for index, write in enumerate(batch):
        key = (write.table.name, _key(write))
        if key in merged:
            merged[key] = _merge(merged[key], write)
        else:
            merged[key] = write
            first_seen[key] = index
    rank = {t.name: i for i, t in enumerate(_sorted_tables(batch))}
    return [
        merged[key]
        for key in sorted(
            merged,
            key=lambda k: (rank.get(k[0], len(rank)), merged[k].update, first_seen[k]),
        )
    ]


def _sorted_tables(batch: Sequence[Write]) -> list[Table]:
    """The batch's tables' metadata in foreign-key order (parents first)."""
    if not batch:
        return []
    return _table_order(batch[0].table.metadata)


@functools.lru_cache(maxsize=8)
def _table_order(metadata: MetaData) -> list[Table]:
    # MetaData.sorted_tables sorts the foreign-key graph again at every access.
    return list(metadata.sorted_tables)


@dataclass(frozen=True, slots=True)
class _Plan:
    """One table's multi-row upsert: its SQL, whose rows come as one JSON array parameter."""

    defaults: tuple[tuple[str, Any], ...]  # SQLAlchemy's Python-side defaults the rows lack
    floats: tuple[str, ...]  # float columns (JSON has no NaN or infinity)
    insert: str  # INSERT INTO t (...) SELECT ... FROM json_to_recordset(
    record: str  # ) AS u(a uuid, b VARCHAR(64), ...) ON CONFLICT (pk) DO ...

    def rows(self, rows: Sequence[Mapping[str, Any]]) -> str:
        """The rows as the statement's parameter: a JSON array of objects."""
        if self.defaults or self.floats:
            rows = [self._complete(row) for row in rows]
        return orjson.dumps(rows, option=_JSON_OPTIONS).decode()

    def _complete(self, row: Mapping[str, Any]) -> Mapping[str, Any]:
        full = dict(row)
        for name, default in self.defaults:
            full[name] = default.arg if default.is_scalar else default.arg(None)
        for name in self.floats:
            value = full.get(name)
            if isinstance(value, float) and not math.isfinite(value):
                full[name] = repr(value)  # "nan", "inf": PostgreSQL's float input takes them
        return full

    def sql(self, parameter: int) -> str:
        return f"{self.insert}${parameter}::text::json{self.record}"


#: UUIDs, aware datetimes and JSON columns' dicts are serialized by orjson itself; a naive
#: datetime is taken as UTC, as asyncpg takes it on a machine set to UTC.
_JSON_OPTIONS = orjson.OPT_NON_STR_KEYS | orjson.OPT_NAIVE_UTC


@functools.lru_cache(maxsize=256)
def _plan(table: Table, columns: frozenset[str], update: tuple[str, ...]) -> _Plan:
    """The insert-or-ignore / upsert of ``table`` for rows with ``columns``, built once.

    The rows go as one JSON array, ``INSERT ... SELECT ... FROM json_to_recordset($n)``,
    run by asyncpg on the pooled connection; PostgreSQL reads each value with its column's
    type. SQLAlchemy's per-row parameter processing cost about two thirds of a batch (0.76
    of 1.25 ms for two 8-row statements, measured), and arrays per column (``unnest``)
    cost asyncpg a dozen Python-level type checks per value. What SQLAlchemy would add is
    added here: the Python-side defaults of columns the rows leave out.
    """
    quote = _DIALECT.identifier_preparer.quote
    defaulted = [c for c in table.columns if c.name not in columns and c.default is not None]
    names = [c.name for c in table.columns if c.name in columns or c in defaulted]
    quoted = ", ".join(quote(n) for n in names)
    record = ", ".join(f"{quote(n)} {table.c[n].type.compile(dialect=_DIALECT)}" for n in names)
    pk = ", ".join(quote(c.name) for c in table.primary_key.columns)
    action = (
        "DO UPDATE SET " + ", ".join(f"{quote(c)} = EXCLUDED.{quote(c)}" for c in update)
        if update
        else "DO NOTHING"
    )
    return _Plan(
        defaults=tuple((c.name, c.default) for c in defaulted),
        floats=tuple(n for n in names if isinstance(table.c[n].type, sqltypes.Float)),
        insert=f"INSERT INTO {quote(table.name)} ({quoted}) "
        f"SELECT {quoted} FROM json_to_recordset(",
        record=f") AS u({record}) ON CONFLICT ({pk}) {action}",
    )


@functools.lru_cache(maxsize=512)
def _statement(plans: tuple[_Plan, ...]) -> str:
    """The plans as one statement: all but the last as data-modifying ``WITH`` clauses.

    One statement is one round trip and atomic without a transaction of its own. Its
    parts run in one snapshot, in no set order, which the writes allow: every row is in
    one part only (:func:`_coalesce`), and the foreign keys are checked at the end of the
    statement, when a parent inserted by another part is there.
    """
    parts = [plan.sql(n + 1) for n, plan in enumerate(plans)]
    if len(parts) == 1:
        return parts[0]
    clauses = ", ".join(f"w{i} AS ({sql})" for i, sql in enumerate(parts[:-1]))
    return f"WITH {clauses} {parts[-1]}"


async def _execute(connection: AsyncConnection, group: list[Write]) -> None:
    """Write ``group`` (one table, one shape) on ``connection``'s driver connection."""
    await _run(connection, [group])


async def _run(connection: AsyncConnection, groups: Sequence[list[Write]]) -> None:
    """The groups as one statement (:func:`_statement`) on the driver's own connection.

    SQLAlchemy's asyncpg adapter begins its transaction at its first statement, and this
    does not go through it. A connection that fails as an outage is invalidated, or the
    pool would hand it out again.
    """
    raw = await connection.get_raw_connection()
    driver = raw.driver_connection
    assert driver is not None
    plans: list[_Plan] = []
    arguments: list[str] = []
    for group in groups:
        first = group[0]
        plan = _plan(first.table, frozenset(first.row), first.update)
        plans.append(plan)
        arguments.append(plan.rows([w.row for w in group]))
    try:
        await driver.execute(_statement(tuple(plans)), *arguments)
    except Exception as exc:
        if _is_outage(exc):
            await connection.invalidate()
        raise


#: SQLSTATE classes that say "not now" rather than "not this row": connection exception,
#: insufficient resources, operator intervention (shutting down, starting up), and
#: transaction rollback (serialization failure, deadlock), which is safe to retry.
_TRANSIENT_SQLSTATE_CLASSES = frozenset({"08", "53", "57", "40"})


def _is_outage(exc: BaseException) -> bool:
    """The database could not take the write now (as opposed to refusing the row).

    Errors come from SQLAlchemy (checking a connection out) or from asyncpg itself
    (the statements, see :func:`_run`).
    """
    if isinstance(
        exc,
        OperationalError | InterfaceError | OSError | ConnectionError | asyncpg.InterfaceError,
    ):
        return True
    if isinstance(exc, asyncpg.PostgresError):
        return str(exc.sqlstate or "")[:2] in _TRANSIENT_SQLSTATE_CLASSES
    if not isinstance(exc, DBAPIError):
        return False
    if exc.connection_invalidated:
        return True
    sqlstate = str(getattr(exc.orig, "sqlstate", "") or "")
    return sqlstate[:2] in _TRANSIENT_SQLSTATE_CLASSES


# -- JSON lines ---------------------------------------------------------------------------

_DECODERS: dict[str, Callable[[Any], Any]] = {
    "uuid": uuid.UUID,
    "datetime": datetime.fromisoformat,
    "date": date.fromisoformat,
    "decimal": Decimal,
    "timedelta": lambda seconds: timedelta(seconds=seconds),
    "float": float,
}


def encode_write(write: Write) -> bytes:
    """One JSON line for ``write``; the types JSON lacks are named per column.

    Raises ``TypeError`` for a value JSON cannot carry.
    """
    row: dict[str, Any] = {}
    types: dict[str, str] = {}
    for name, value in write.row.items():
        if isinstance(value, uuid.UUID):
            row[name], types[name] = str(value), "uuid"
        elif isinstance(value, datetime):
            row[name], types[name] = value.isoformat(), "datetime"
        elif isinstance(value, date):
            row[name], types[name] = value.isoformat(), "date"
        elif isinstance(value, Decimal):
            row[name], types[name] = str(value), "decimal"
        elif isinstance(value, timedelta):
            row[name], types[name] = value.total_seconds(), "timedelta"
        elif isinstance(value, float) and not math.isfinite(value):
            row[name], types[name] = repr(value), "float"  # JSON has no inf or nan
        else:
            row[name] = value
    line = {"table": write.table.name, "update": list(write.update), "row": row, "types": types}
    return orjson.dumps(line, option=orjson.OPT_NON_STR_KEYS | orjson.OPT_APPEND_NEWLINE)


def decode_write(line: bytes, tables: Mapping[str, Table]) -> Write:
    """The :class:`Write` of one line made by :func:`encode_write`; ``ValueError`` if bad."""
    try:
        data = orjson.loads(line)
        row = dict(data["row"])
        for name, kind in data["types"].items():
            row[name] = _DECODERS[kind](row[name])
        return Write(tables[data["table"]], row, tuple(data["update"]))
    except (KeyError, TypeError, ValueError, orjson.JSONDecodeError) as exc:
        raise ValueError(f"not a spilled write: {exc!r}") from exc


def _default_tables() -> Mapping[str, Table]:
    from telephony.store.models import Base

    return Base.metadata.tables


class _Spill:
    """The append-only file of writes past the memory bound, read back in order."""

    def __init__(self, folder: Path, tables: Mapping[str, Table] | None) -> None:
        self.folder = folder
        self.path = folder / SPILL_FILE
        self.pos_path = folder / (SPILL_FILE + ".pos")
        self._tables = tables
        self._out: int | None = None  # append descriptor
        self._read_at = 0  # byte offset of the next line to read
        self._committed_at = 0  # byte offset up to which every line is committed
        self.pending = 0  # lines written and not yet read back
        self.corrupt = 0

    @property
    def active(self) -> bool:
        return self._out is not None

    @property
    def tables(self) -> Mapping[str, Table]:
        if self._tables is None:
            self._tables = _default_tables()
        return self._tables

    def resume(self) -> bool:
        """Take over a file left by a previous run; True if there is one with lines left."""
        if not self.path.exists():
            return False
        start = 0
        with contextlib.suppress(OSError, ValueError):
            start = int(self.pos_path.read_text().strip() or 0)
        count = 0
        with self.path.open("r+b") as f:
            f.seek(start)
            end = start
            for line in f:
                if not line.endswith(b"\n"):  # torn by a power cut: later lines would join it
                    self.unreadable(line, "torn last line")
                    f.truncate(end)
                    break
                end += len(line)
                count += bool(line.strip())
        if not count:
            self.remove()
            return False
        self._open()
        self._read_at = self._committed_at = start
        self.pending = count
        log.warning(
            "write buffer: replaying writes spilled by a previous run",
            extra={"file": str(self.path), "writes": count},
        )
        return True

    def _open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._out = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)

    def append(self, line: bytes) -> None:
        if self._out is None:
            self._open()
            self._read_at = self._committed_at = 0
        assert self._out is not None
        view = memoryview(line)
        while view:
            view = view[os.write(self._out, view) :]
        self.pending += 1

    def read(self, limit: int) -> list[Write]:
        """Up to ``limit`` writes, oldest first, from where the last read stopped."""
        writes: list[Write] = []
        with self.path.open("rb") as f:
            f.seek(self._read_at)
            while len(writes) < limit and self.pending:
                line = f.readline()
                if not line.endswith(b"\n"):  # never written so: whole lines only
                    self.unreadable(line, "incomplete line")
                    self.pending = 0
                    break
                self._read_at += len(line)
                if not line.strip():
                    continue
                self.pending -= 1
                try:
                    writes.append(decode_write(line, self.tables))
                except ValueError as exc:
                    self.unreadable(line, str(exc))
        return writes

    def unreadable(self, line: bytes, why: str) -> None:
        """A line that is not a write any more: logged and kept in ``refused.jsonl``."""
        self.corrupt += 1
        log.error(
            "write buffer: unreadable spilled line set aside",
            extra={"file": str(self.path), "line": line[:200], "error": why},
        )
        with contextlib.suppress(OSError), (self.folder / REFUSED_FILE).open("ab") as f:
            f.write(orjson.dumps({"unreadable": line.decode("utf-8", "replace"), "error": why}))
            f.write(b"\n")

    def committed(self) -> None:
        """Everything read so far is committed: remember the position (or remove the file)."""
        self._committed_at = self._read_at
        if not self.pending:
            self.remove()
            return
        tmp = self.pos_path.with_suffix(".tmp")
        tmp.write_text(str(self._committed_at))
        os.replace(tmp, self.pos_path)

    @property
    def reading(self) -> bool:
        """Lines were read back that are not committed yet (they are in memory)."""
        return self._read_at > self._committed_at

    def sync(self) -> None:
        if self._out is not None:
            with contextlib.suppress(OSError):
                os.fsync(self._out)

    def rest(self) -> bytes:
        """The lines not yet committed (for rewriting the file at close)."""
        if not self.path.exists():
            return b""
        with self.path.open("rb") as f:
            f.seek(self._committed_at)
            return f.read()

    def close(self) -> None:
        if self._out is not None:
            os.close(self._out)
            self._out = None

    def remove(self) -> None:
        self.close()
        for path in (self.path, self.pos_path):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
        self.pending = 0
        self._read_at = self._committed_at = 0


class WriteBuffer:
    """Ordered, batched, outage-proof writes; one instance per control-plane process."""

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        max_batch: int = 500,
        linger: float = 0.05,
        retry_initial: float = 0.2,
        retry_max: float = 5.0,
        on_depth: Callable[[int], None] | None = None,
        max_depth: int = DEFAULT_MAX_DEPTH,
        spill_dir: Path | None = None,
        tables: Mapping[str, Table] | None = None,
        hooks: BufferHooks | None = None,
    ) -> None:
        """``on_depth`` gets the total depth (memory and spill file) after every change;
        ``max_depth``, ``spill_dir``: the bound and the policy past it (module docstring);
        ``tables``: where spilled lines find their table (default: the store's models)."""
        self._engine = engine
        self._pending: collections.deque[Write] = collections.deque()
        self._max_batch = max_batch
        self._linger = linger
        self._retry_initial = retry_initial
        self._retry_max = retry_max
        self._on_depth = on_depth
        self._max_depth = max_depth
        self._spill_dir = spill_dir
        self._spill = _Spill(spill_dir, tables) if spill_dir is not None else None
        self.hooks: BufferHooks = hooks or NoHooks()
        # Called with every write as it is put, on the caller's loop (the live events' feed);
        # an observer must not block or raise.
        self.observers: list[Callable[[Write], None]] = []
        self._wakeup = asyncio.Event()
        self._drained = asyncio.Event()
        self._drained.set()
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._from_spill = 0  # how many of the oldest writes in memory were read back from disk
        self.refused = 0
        self.outages = 0
        #: Statements sent (a batch is one), for the benchmarks.
        self.statements = 0
        self.overflowed = 0
        if self._spill is not None and self._spill.resume():
            self._drained.clear()

    @property
    def rejected(self) -> int:
        """Former name of :attr:`refused`."""
        return self.refused

    @property
    def depth(self) -> int:
        """Writes put but not yet committed (in memory and in the spill file)."""
        return len(self._pending) + self.spilled

    @property
    def spilled(self) -> int:
        """Writes waiting in the spill file."""
        return self._spill.pending if self._spill is not None else 0

    def put(self, write: Write) -> None:
        """Queue a write; never blocks and never fails for the database's sake."""
        if self._closing:
            raise RuntimeError("write buffer is closed")
        spill = self._spill
        if spill is not None and (spill.active or len(self._pending) >= self._max_depth):
            self._spill_write(spill, write)
        else:
            if len(self._pending) >= self._max_depth:
                self._overflow(write, "no spill folder: kept in memory past the bound")
            self._pending.append(write)
        self._drained.clear()
        self._wakeup.set()
        self._report()
        for observer in self.observers:
            observer(write)

    def _spill_write(self, spill: _Spill, write: Write) -> None:
        try:
            line = encode_write(write)
        except TypeError as exc:  # never lost: memory, past the bound
            log.error(
                "write buffer: a write cannot be spilled; kept in memory",
                extra={"table": write.table.name, "row": dict(write.row), "error": str(exc)},
            )
            self._pending.append(write)
            return
        if not spill.active:
            log.warning(
                "write buffer full; spilling further writes to disk until the database is back",
                extra={"depth": len(self._pending), "file": str(spill.path)},
            )
        spill.append(line)
        self.overflowed += 1
        self.hooks.overflow()

    def _overflow(self, write: Write, why: str) -> None:
        self.overflowed += 1
        self.hooks.overflow()
        if self.overflowed == 1 or self.overflowed % 10_000 == 0:
            log.error(
                "write buffer over its bound",
                extra={"depth": len(self._pending), "bound": self._max_depth, "why": why},
            )

    def _report(self) -> None:
        memory = len(self._pending)
        spilled = self.spilled
        if self._on_depth:
            self._on_depth(memory + spilled)
        self.hooks.depth(memory, spilled)

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="write-buffer")

    async def flushed(self) -> None:
        """Wait until everything put so far is committed."""
        await self._drained.wait()

    async def close(self, timeout: float = 10.0) -> None:
        """Stop taking writes, try to commit what is left for ``timeout`` seconds, then stop.

        What is still not committed then goes to the front of the spill file (if
        there is a spill folder) for the next start to replay.
        """
        self._closing = True
        self._wakeup.set()
        if self._task is None and self._spill is None:
            return
        if self._task is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.flushed(), timeout)
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self.depth:
            self._keep_for_next_start()
        elif self._spill is not None:
            self._spill.remove()

    def _keep_for_next_start(self) -> None:
        spill = self._spill
        if spill is None:
            log.error("write buffer closed with writes not committed", extra={"depth": self.depth})
            return
        head: list[bytes] = []
        kept: list[Write] = []
        for write in list(self._pending)[self._from_spill :]:  # those are in the file already
            try:
                head.append(encode_write(write))
            except TypeError:
                kept.append(write)
        rest = spill.rest()
        spill.close()
        tmp = spill.path.with_suffix(".tmp")
        with tmp.open("wb") as f:
            f.write(b"".join(head) + rest)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, spill.path)
        with contextlib.suppress(FileNotFoundError):
            spill.pos_path.unlink()
        log.warning(
            "write buffer closed before the database took everything; kept on disk",
            extra={"file": str(spill.path), "writes": len(head) + spill.pending + self._from_spill},
        )
        if kept:
            log.error("write buffer closed with writes not committed", extra={"depth": len(kept)})

    async def _run(self) -> None:
        delay = self._retry_initial
        spill = self._spill
        while True:
            if not self._pending and spill is not None and spill.pending:
                self._pending.extend(spill.read(self._max_batch))
                self._from_spill = len(self._pending)
                if not self._pending:  # nothing readable was left
                    spill.committed()
                    continue
            if not self._pending:
                if spill is not None and spill.active:
                    spill.committed()  # everything read back is committed: the file goes
                self._drained.set()
                self._wakeup.clear()
                await self._wakeup.wait()
                if not self._closing:
                    await asyncio.sleep(self._linger)  # let a burst gather into one batch
                continue
            batch = [self._pending[i] for i in range(min(self._max_batch, len(self._pending)))]
            started = time.monotonic()
            try:
                await self._commit(batch)
            except Exception as exc:
                if not _is_outage(exc):
                    raise
                self.outages += 1
                log.warning(
                    "database unreachable, writes kept",
                    extra={"depth": self.depth, "retry_in_s": round(delay, 2), "error": str(exc)},
                )
                if spill is not None and spill.active:
                    await asyncio.to_thread(spill.sync)
                await asyncio.sleep(delay)
                delay = min(delay * 2, self._retry_max)
                continue
            if delay != self._retry_initial:
                log.info("database reachable again", extra={"depth": self.depth})
            delay = self._retry_initial
            for _ in batch:
                self._pending.popleft()
            self._from_spill = max(0, self._from_spill - len(batch))
            if not self._pending and spill is not None and spill.active:
                spill.committed()
            self._report()
            if self._pending and len(self._pending) < self._max_batch and not self._closing:
                # Under load, writes arrive during every commit: without this pause each
                # commit would carry only those few, and a busy node would pay a round
                # trip and a statement for every couple of calls.
                await asyncio.sleep(max(0.0, self._linger - (time.monotonic() - started)))

    async def _commit(self, batch: list[Write]) -> None:
        try:
            groups = _groups(_coalesce(batch))
            async with self._engine.connect() as connection:
                await _run(connection, groups)
            self.statements += 1
        except Exception as exc:
            if _is_outage(exc):
                raise
            await self._commit_one_by_one(batch)

    async def _commit_one_by_one(self, batch: list[Write]) -> None:
        """Find the rows the database refuses and report them; commit the others, in order."""
        for write in batch:
            try:
                async with self._engine.connect() as connection:
                    await _execute(connection, [write])
                self.statements += 1
            except Exception as exc:
                if _is_outage(exc):
                    raise
                self._refused(write, exc)

    def _refused(self, write: Write, exc: Exception) -> None:
        self.refused += 1
        error = str(getattr(exc, "orig", None) or exc)
        refusal = Refusal(write.table.name, dict(write.row), error)
        log.error(
            "database refused a write (a validation bug of ours)",
            extra={"table": refusal.table, "row": refusal.row, "error": error},
        )
        if self._spill_dir is not None:
            try:
                line = orjson.loads(encode_write(write))
                line["error"] = error
                self._spill_dir.mkdir(parents=True, exist_ok=True)
                with (self._spill_dir / REFUSED_FILE).open("ab") as f:
                    f.write(orjson.dumps(line, option=orjson.OPT_APPEND_NEWLINE))
            except (OSError, TypeError) as keep_error:
                log.error("refused write not kept on disk", extra={"error": str(keep_error)})
        self.hooks.refused(refusal.table)
        for listener in list(_refusal_listeners):
            try:
                listener(refusal)
            except Exception:
                log.exception("refusal listener failed")
