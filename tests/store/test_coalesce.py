"""A batch coalesced (one write per row, tables in foreign-key order) and sent as one
statement stores what the same writes store one by one."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from telephony.store.buffer import Write, _coalesce, _execute, _groups, _run
from telephony.store.models import Call, CallEvent

T0 = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
CALLS = Call.__table__
EVENTS = CallEvent.__table__
KEYS = [uuid.UUID(int=n + 1) for n in range(3)]
COLUMNS = ("outcome", "agent_id", "hung_up_by")


def _cdr(key: uuid.UUID, values: dict[str, str], update: bool) -> Write:
    row: dict[str, Any] = {"uuid": key, "caller": "13800138000", "arrived_at": T0, **values}
    return Write(CALLS, row, update=tuple(values) if update else ())  # type: ignore[arg-type]


def _step(key: uuid.UUID, n: int) -> Write:
    row = {"id": uuid.UUID(int=1000 + n), "call_uuid": key, "at": T0 + timedelta(seconds=n)}
    return Write(EVENTS, {**row, "kind": f"k{n}", "detail": {}})  # type: ignore[arg-type]


writes = st.lists(
    st.one_of(
        st.builds(
            _cdr,
            st.sampled_from(KEYS),
            st.dictionaries(st.sampled_from(COLUMNS), st.sampled_from(["a", "b", "c"])),
            st.booleans(),
        ),
        st.builds(_step, st.sampled_from(KEYS), st.integers(0, 5)),
    ),
    max_size=25,
)


async def _state(engine: AsyncEngine) -> tuple[list[Any], list[Any]]:
    async with engine.connect() as connection:
        calls = (await connection.execute(select(CALLS).order_by(CALLS.c.uuid))).all()
        events = (await connection.execute(select(EVENTS).order_by(EVENTS.c.id))).all()
    return [tuple(r) for r in calls], [tuple(r) for r in events]


async def _clear(engine: AsyncEngine) -> None:
    async with engine.begin() as connection:
        await connection.execute(text("delete from call_events"))
        await connection.execute(text("delete from calls"))


async def test_coalescing_stores_what_one_by_one_stores(engine: AsyncEngine) -> None:
    @settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
    @given(prefix=st.lists(st.sampled_from(KEYS), unique=True), batch=writes)
    def check(prefix: list[uuid.UUID], batch: list[Write]) -> None:
        # every row's parent exists before its children, as the engine writes them
        first = [_cdr(key, {}, False) for key in KEYS]
        existing = [_cdr(key, {"outcome": "old"}, False) for key in prefix]
        runner.append((existing, first + batch))

    runner: list[tuple[list[Write], list[Write]]] = []
    check()
    for existing, batch in runner:
        await _clear(engine)
        async with engine.begin() as connection:
            for write in existing:  # rows already stored before this batch
                await _execute(connection, [write])
            for write in batch:
                await _execute(connection, [write])
        one_by_one = await _state(engine)
        await _clear(engine)
        async with engine.begin() as connection:
            for write in existing:
                await _execute(connection, [write])
            # as the buffer commits it: the whole batch in one statement, the calls (parents)
            # and their steps (children) among its parts
            await _run(connection, _groups(_coalesce(batch)))
        assert await _state(engine) == one_by_one


def test_a_calls_rows_interleaved_become_one_statement_per_table() -> None:
    batch: list[Write] = []
    for n, key in enumerate(uuid.UUID(int=k + 1) for k in range(50)):
        batch += [_cdr(key, {}, False), _step(key, 2 * n), _cdr(key, {"outcome": "x"}, True)]
        batch += [_step(key, 2 * n + 1), _cdr(key, {"outcome": "y", "agent_id": "a1"}, True)]
    assert len(_groups(batch)) == len(batch)  # as they come: every write its own statement
    groups = _groups(_coalesce(batch))
    assert len(groups) == 2  # one statement for the calls (one row each), one for the steps
    sizes = {g[0].table.name: len(g) for g in groups}
    assert sizes == {"calls": 50, "call_events": 100}
    cdr = next(g for g in groups if g[0].table.name == "calls")[0]
    assert (cdr.row["outcome"], cdr.row["agent_id"]) == ("y", "a1")
