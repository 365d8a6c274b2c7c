"""The metrics behind issue 7's hooks: names as Prometheus shows them, and what moves them."""

from __future__ import annotations

import uuid

import pytest

from telephony.esl.transport import EslHooks
from telephony.metrics import BufferMetrics, EslMetrics, Metrics
from telephony.store.buffer import BufferHooks, Write, WriteBuffer
from telephony.store.models import Call


def test_esl_hooks_move_the_esl_metrics() -> None:
    metrics = Metrics()
    hooks: EslHooks = EslMetrics(metrics)
    hooks.probe_failed("fs1:8021")
    hooks.overflow("fs1:8021", "stream")
    hooks.depth("fs1:8021", 12, 3)
    text = metrics.render().decode()
    assert 'telephony_esl_probe_failures_total{node="fs1:8021"} 1.0' in text
    assert 'telephony_esl_buffer_overflows_total{buffer="stream",node="fs1:8021"} 1.0' in text
    assert 'telephony_esl_buffer_depth{buffer="stream",node="fs1:8021"} 12.0' in text
    assert 'telephony_esl_buffer_depth{buffer="handoff",node="fs1:8021"} 3.0' in text


@pytest.mark.allow_db_refusal
def test_buffer_hooks_move_the_database_metrics() -> None:
    metrics = Metrics()
    hooks: BufferHooks = BufferMetrics(metrics)
    buffer = WriteBuffer(None, max_depth=1, hooks=hooks)  # type: ignore[arg-type]
    buffer.put(Write(Call.__table__, {"uuid": uuid.UUID(int=1)}))  # type: ignore[arg-type]
    buffer.put(Write(Call.__table__, {"uuid": uuid.UUID(int=2)}))  # type: ignore[arg-type]
    buffer._refused(Write(Call.__table__, {"uuid": uuid.UUID(int=3)}), ValueError("x"))  # type: ignore[arg-type]
    text = metrics.render().decode()
    assert "telephony_db_buffer_depth 2.0" in text
    assert "telephony_db_buffer_overflows_total 1.0" in text
    assert "telephony_db_buffer_spilled 0.0" in text
    assert 'telephony_db_writes_refused_total{table="calls"} 1.0' in text
    assert "telephony_log_lines_dropped_total 0.0" in text
