"""The write buffer: call-path rows written in batches, in order, through database outages.

Theory of operation
-------------------
The engine never waits for the database. It :meth:`WriteBuffer.put`\\ s a
:class:`Write` (a row for a table, as an insert that ignores a row already
there, or as an upsert that overwrites the named columns) and goes on.
One task takes the oldest writes, up to ``max_batch``, and commits them in
one transaction, in the order they were put. If the database cannot be
reached, the batch stays at the head of the buffer and is tried again with
capped exponential backoff; writes put meanwhile queue behind it. Because
every row's key is made by the control plane (uuids, ids) and every write is
an insert-or-ignore or an upsert, a batch that committed but whose
acknowledgement was lost is harmless when sent again: nothing is lost and
nothing is duplicated.

A write the database refuses for itself (a constraint, a bad value) would
block everything behind it; it is logged with its row, counted in
:attr:`WriteBuffer.rejected`, and dropped, while the rest of its batch is
written.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Table
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Write:
    """One row to write: inserted if new; if ``update`` names columns, those overwrite."""

    table: Table
    row: Mapping[str, Any]
    update: tuple[str, ...] = ()


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


async def _execute(connection: AsyncConnection, group: list[Write]) -> None:
    first = group[0]
    statement = insert(first.table)
    pk = [c.name for c in first.table.primary_key.columns]
    if first.update:
        statement = statement.on_conflict_do_update(
            index_elements=pk, set_={c: statement.excluded[c] for c in first.update}
        )
    else:
        statement = statement.on_conflict_do_nothing(index_elements=pk)
    await connection.execute(statement, [dict(w.row) for w in group])


#: SQLSTATE classes that say "not now" rather than "not this row": connection exception,
#: insufficient resources, operator intervention (shutting down, starting up), and
#: transaction rollback (serialization failure, deadlock), which is safe to retry.
_TRANSIENT_SQLSTATE_CLASSES = frozenset({"08", "53", "57", "40"})


def _is_outage(exc: BaseException) -> bool:
    """The database could not take the write now (as opposed to refusing the row)."""
    if isinstance(exc, OperationalError | InterfaceError | OSError | ConnectionError):
        return True
    if not isinstance(exc, DBAPIError):
        return False
    if exc.connection_invalidated:
        return True
    sqlstate = str(getattr(exc.orig, "sqlstate", "") or "")
    return sqlstate[:2] in _TRANSIENT_SQLSTATE_CLASSES


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
    ) -> None:
        self._engine = engine
        self._pending: collections.deque[Write] = collections.deque()
        self._max_batch = max_batch
        self._linger = linger
        self._retry_initial = retry_initial
        self._retry_max = retry_max
        self._on_depth = on_depth
        self._wakeup = asyncio.Event()
        self._drained = asyncio.Event()
        self._drained.set()
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self.rejected = 0
        self.outages = 0

    @property
    def depth(self) -> int:
        """Writes put but not yet committed."""
        return len(self._pending)

    def put(self, write: Write) -> None:
        """Queue a write; never blocks and never fails for the database's sake."""
        if self._closing:
            raise RuntimeError("write buffer is closed")
        self._pending.append(write)
        self._drained.clear()
        self._wakeup.set()
        if self._on_depth:
            self._on_depth(len(self._pending))

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="write-buffer")

    async def flushed(self) -> None:
        """Wait until everything put so far is committed."""
        await self._drained.wait()

    async def close(self, timeout: float = 10.0) -> None:
        """Stop taking writes, try to commit what is left for ``timeout`` seconds, then stop."""
        self._closing = True
        self._wakeup.set()
        if self._task is None:
            return
        try:
            await asyncio.wait_for(self.flushed(), timeout)
        except TimeoutError:
            log.error("write buffer closed with writes not committed", extra={"depth": self.depth})
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task

    async def _run(self) -> None:
        delay = self._retry_initial
        while True:
            if not self._pending:
                self._drained.set()
                self._wakeup.clear()
                await self._wakeup.wait()
                if not self._closing:
                    await asyncio.sleep(self._linger)  # let a burst gather into one batch
                continue
            batch = [self._pending[i] for i in range(min(self._max_batch, len(self._pending)))]
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
                await asyncio.sleep(delay)
                delay = min(delay * 2, self._retry_max)
                continue
            if delay != self._retry_initial:
                log.info("database reachable again", extra={"depth": self.depth})
            delay = self._retry_initial
            for _ in batch:
                self._pending.popleft()
            if self._on_depth:
                self._on_depth(len(self._pending))

    async def _commit(self, batch: list[Write]) -> None:
        try:
            async with self._engine.begin() as connection:
                for group in _groups(batch):
                    await _execute(connection, group)
        except Exception as exc:
            if _is_outage(exc):
                raise
            await self._commit_one_by_one(batch)

    async def _commit_one_by_one(self, batch: list[Write]) -> None:
        """Find and drop the rows the database refuses; commit the others, in order."""
        for write in batch:
            try:
                async with self._engine.begin() as connection:
                    await _execute(connection, [write])
            except Exception as exc:
                if _is_outage(exc):
                    raise
                self.rejected += 1
                log.error(
                    "database refused a write; dropped",
                    extra={"table": write.table.name, "row": dict(write.row), "error": str(exc)},
                )
