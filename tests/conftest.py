"""For the whole suite: a write the database refuses fails the test it happened in (issue 7, 4).

A row the database refuses is a validation bug of ours, not an acceptable drop
(``telephony.store.buffer``). Every :class:`~telephony.store.buffer.WriteBuffer`
announces each refusal to :func:`~telephony.store.buffer.on_refusal`; during
each test an autouse fixture listens, and the test fails, naming each refused
row and the database's error: as a failure when the refusal happened in the
test's body, as an error at teardown when it happened while a fixture closed
its buffer. A test that provokes a refusal on purpose says so with
``@pytest.mark.allow_db_refusal``.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Generator, Iterator
from pathlib import Path

import pytest

from telephony.store.buffer import Refusal, on_refusal

_REFUSALS = pytest.StashKey[list[Refusal]]()


def describe_refusals(refusals: list[Refusal]) -> str:
    lines = [f"the database refused {len(refusals)} write(s) during this test:"]
    for refusal in refusals:
        lines.append(f"  table {refusal.table}: {refusal.error}")
        lines.append(f"    row: {dict(refusal.row)!r}")
    lines.append("(a refused row is a validation bug; mark a deliberate one allow_db_refusal)")
    return "\n".join(lines)


def _check(item: pytest.Item) -> None:
    refusals = item.stash.get(_REFUSALS, None)
    if not refusals or item.get_closest_marker("allow_db_refusal") is not None:
        return
    found = list(refusals)
    refusals.clear()  # reported once
    pytest.fail(describe_refusals(found), pytrace=False)


@pytest.fixture(autouse=True)
def _no_refused_writes(request: pytest.FixtureRequest) -> Iterator[list[Refusal]]:
    """The refusals heard during this test (set up first, so torn down last)."""
    refusals: list[Refusal] = []
    request.node.stash[_REFUSALS] = refusals
    stop = on_refusal(refusals.append)
    try:
        yield refusals
    finally:
        stop()
    _check(request.node)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, None, None]:
    """Fail the test itself (not only its teardown) for a refusal in its body."""
    yield
    _check(item)


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A folder every user may search (0755) under /tmp: pytest's own folders are 0700,
    so another user (a switch running as its own user, PostgreSQL) could not get in."""
    folder = Path(tempfile.mkdtemp(prefix="telephony-shared-", dir="/tmp"))
    folder.chmod(0o755)
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)
