"""tests/conftest.py fails any test during which the database refused a write (issue 7, 4)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

SAMPLE = textwrap.dedent(
    """
    import uuid

    import pytest

    from telephony.store.buffer import Write, WriteBuffer
    from telephony.store.models import Call

    def _refuse() -> None:
        buffer = WriteBuffer(None)
        row = {"uuid": uuid.UUID(int=7), "arrived_at": None}
        buffer._refused(Write(Call.__table__, row), Exception("null value in arrived_at"))

    def test_quiet() -> None:
        pass

    def test_refused_by_accident() -> None:
        _refuse()

    @pytest.mark.allow_db_refusal
    def test_refused_on_purpose() -> None:
        _refuse()

    @pytest.fixture
    def closes_late():
        yield
        _refuse()  # e.g. a fixture whose buffer flushes at teardown

    def test_refused_in_a_fixture_teardown(closes_late) -> None:
        pass
    """
)


def test_a_refused_write_fails_the_test_with_its_row_and_error(tmp_path: Path) -> None:
    (tmp_path / "test_sample.py").write_text(SAMPLE, encoding="utf-8")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "tests.conftest",
            "-p",
            "no:cacheprovider",
            "-q",
            "-rA",
            "-W",
            "ignore::pytest.PytestUnknownMarkWarning",
            str(tmp_path / "test_sample.py"),
        ],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    out = result.stdout + result.stderr
    assert result.returncode == 1, out
    assert "1 failed, 3 passed, 1 error" in out, out
    assert "ERROR test_sample.py::test_refused_in_a_fixture_teardown" in out, out
    assert "FAILED test_sample.py::test_refused_by_accident" in out, out
    assert "the database refused 1 write(s) during this test" in out, out
    assert "table calls: null value in arrived_at" in out, out
    assert "UUID('00000000-0000-0000-0000-000000000007')" in out, out
