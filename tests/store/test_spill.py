"""The write buffer's bound and spill file, without a database (issue 7, item 10)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy.ext.asyncio import AsyncEngine

from telephony.store.buffer import (
    REFUSED_FILE,
    SPILL_FILE,
    Write,
    WriteBuffer,
    _Spill,
    decode_write,
    encode_write,
)
from telephony.store.models import Base, Call, CallEvent

CALLS = Call.__table__
EVENTS = CallEvent.__table__
TABLES = Base.metadata.tables
NO_DATABASE: AsyncEngine = None  # type: ignore[assignment]  # never started


def _event(n: int) -> Write:
    return Write(
        EVENTS,  # type: ignore[arg-type]
        {
            "id": uuid.UUID(int=n),
            "call_uuid": uuid.UUID(int=0),
            "at": datetime(2026, 11, 23, 8, 0, tzinfo=UTC) + timedelta(milliseconds=n),
            "kind": f"step-{n}",
            "detail": {"n": n, "note": "坐席忙"},
        },
    )


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=10,
)
column_values = (
    json_values
    | st.floats(allow_nan=False)  # a column may hold infinity, which JSON cannot
    | st.uuids()
    | st.datetimes(timezones=st.none() | st.just(UTC) | st.just(timezone(timedelta(hours=8))))
    | st.dates()
    | st.decimals(allow_nan=False, allow_infinity=False, places=4)
    | st.timedeltas(min_value=timedelta(days=-999), max_value=timedelta(days=999))
)


@settings(max_examples=300, deadline=None)
@given(
    st.dictionaries(st.text(min_size=1, max_size=12), column_values, max_size=8),
    st.lists(st.text(min_size=1, max_size=8), max_size=3),
)
def test_a_spilled_write_reads_back_equal(row: dict[str, Any], update: list[str]) -> None:
    write = Write(CALLS, row, tuple(update))  # type: ignore[arg-type]
    line = encode_write(write)
    assert line.endswith(b"\n") and line.count(b"\n") == 1  # one line, whatever the values
    back = decode_write(line, TABLES)
    assert back.table is CALLS and back.update == write.update
    assert back.row == row
    assert {k: type(v) for k, v in back.row.items() if not isinstance(v, dict | list)} == {
        k: type(v) for k, v in row.items() if not isinstance(v, dict | list)
    }


def test_without_a_spill_folder_nothing_is_dropped_past_the_bound() -> None:
    overflows: list[None] = []

    class Hooks:
        def depth(self, memory: int, spilled: int) -> None:
            pass

        def overflow(self) -> None:
            overflows.append(None)

        def refused(self, table: str) -> None:
            pass

    buffer = WriteBuffer(NO_DATABASE, max_depth=10, hooks=Hooks())
    for n in range(25):
        buffer.put(_event(n))
    assert buffer.depth == 25 and buffer.spilled == 0
    assert buffer.overflowed == 15 and len(overflows) == 15


def test_writes_past_the_bound_go_to_disk_in_order(tmp_path: Path) -> None:
    buffer = WriteBuffer(NO_DATABASE, max_depth=10, spill_dir=tmp_path)
    for n in range(25):
        buffer.put(_event(n))
    assert buffer.depth == 25 and buffer.spilled == 15
    lines = (tmp_path / SPILL_FILE).read_bytes().splitlines()
    assert [decode_write(line, TABLES).row["kind"] for line in lines] == [
        f"step-{n}" for n in range(10, 25)
    ]


def test_a_restart_during_the_replay_resumes_where_it_was(tmp_path: Path) -> None:
    spill = _Spill(tmp_path, TABLES)
    for n in range(10):
        spill.append(encode_write(_event(n)))
    assert [w.row["kind"] for w in spill.read(4)] == [f"step-{n}" for n in range(4)]
    spill.committed()
    spill.close()  # the process stops here

    again = _Spill(tmp_path, TABLES)
    assert again.resume() and again.pending == 6
    assert [w.row["kind"] for w in again.read(100)] == [f"step-{n}" for n in range(4, 10)]
    again.committed()
    assert not (tmp_path / SPILL_FILE).exists()
    assert not (tmp_path / (SPILL_FILE + ".pos")).exists()


def test_a_torn_last_line_is_set_aside_not_glued_to_the_next(tmp_path: Path) -> None:
    good = [encode_write(_event(n)) for n in range(2)]
    (tmp_path / SPILL_FILE).write_bytes(b"".join(good) + encode_write(_event(2))[:30])
    buffer = WriteBuffer(NO_DATABASE, max_depth=0, spill_dir=tmp_path)
    assert buffer.spilled == 2
    buffer.put(_event(3))
    lines = (tmp_path / SPILL_FILE).read_bytes().splitlines()
    assert [decode_write(line, TABLES).row["kind"] for line in lines] == [
        "step-0",
        "step-1",
        "step-3",
    ]
    (aside,) = (tmp_path / REFUSED_FILE).read_bytes().splitlines()
    assert orjson.loads(aside)["error"] == "torn last line"


def test_an_unreadable_line_is_set_aside_and_the_rest_replayed(tmp_path: Path) -> None:
    spill = _Spill(tmp_path, TABLES)
    spill.append(encode_write(_event(0)))
    spill.append(b'{"table": "no_such_table", "update": [], "row": {}, "types": {}}\n')
    spill.append(encode_write(_event(2)))
    assert [w.row["kind"] for w in spill.read(10)] == ["step-0", "step-2"]
    assert spill.corrupt == 1 and spill.pending == 0
    (aside,) = (tmp_path / REFUSED_FILE).read_bytes().splitlines()
    assert "no_such_table" in orjson.loads(aside)["unreadable"]


def test_values_json_cannot_carry_stay_in_memory(tmp_path: Path) -> None:
    buffer = WriteBuffer(NO_DATABASE, max_depth=1, spill_dir=tmp_path)
    buffer.put(_event(0))
    strange = Write(CALLS, {"uuid": uuid.UUID(int=1), "arrived_at": object()})  # type: ignore[arg-type]
    buffer.put(strange)
    assert buffer.depth == 2 and buffer.spilled == 0
