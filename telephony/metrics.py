"""Every Prometheus metric of the control plane, in one place.

One :class:`Metrics` per process (built by :mod:`telephony.services`), with
its own registry so that tests can build as many as they like. The engine,
the ESL connections and the write buffer update them; ``GET /metrics``
serves :meth:`Metrics.render`.
"""

from __future__ import annotations

from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)


class Metrics:
    """The metrics; attribute names say what is measured."""

    content_type = CONTENT_TYPE_LATEST

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        ProcessCollector(registry=r)
        PlatformCollector(registry=r)
        GCCollector(registry=r)
        self.calls_in_progress = Gauge(
            "telephony_calls_in_progress",
            "Calls between arrival and hang-up, on every node",
            registry=r,
        )
        self.queue_length = Gauge(
            "telephony_queue_length",
            "Calls waiting in a skill group's queue",
            ["group"],
            registry=r,
        )
        self.call_outcomes = Counter(
            "telephony_call_outcomes",
            "Calls ended, by outcome (answered, abandoned_in_queue, ...)",
            ["outcome"],
            registry=r,
        )
        self.esl_events = Counter(
            "telephony_esl_events",
            "Events received from FreeSWITCH, by node and event name",
            ["node", "event"],
            registry=r,
        )
        self.esl_reconnects = Counter(
            "telephony_esl_reconnects",
            "Times an ESL connection to a node was re-established after a drop",
            ["node"],
            registry=r,
        )
        self.esl_connected = Gauge(
            "telephony_esl_connected",
            "1 while the ESL connection to a node is up and subscribed, else 0",
            ["node"],
            registry=r,
        )
        self.db_buffer_depth = Gauge(
            "telephony_db_buffer_depth",
            "Database writes queued in the write buffer and not yet committed",
            registry=r,
        )
        # Issue 7 (liveness, bounded buffers, refused writes, log drops); see EslMetrics,
        # BufferMetrics below for how telephony.esl and telephony.store report into them.
        self.esl_probe_failures = Counter(
            "telephony_esl_probe_failures",
            "Liveness probes (api status after a silence) a node did not answer; each drops it",
            ["node"],
            registry=r,
        )
        self.esl_buffer_depth = Gauge(
            "telephony_esl_buffer_depth",
            "Items waiting between a node's socket and the engine (buffer: handoff, stream)",
            ["node", "buffer"],
            registry=r,
        )
        self.esl_buffer_overflows = Counter(
            "telephony_esl_buffer_overflows",
            "Times a node's handoff or event stream was full; each forces a reconnect",
            ["node", "buffer"],
            registry=r,
        )
        self.db_buffer_spilled = Gauge(
            "telephony_db_buffer_spilled",
            "Database writes waiting in the write buffer's spill file (memory bound reached)",
            registry=r,
        )
        self.db_buffer_overflows = Counter(
            "telephony_db_buffer_overflows",
            "Database writes put past the write buffer's memory bound (spilled to disk)",
            registry=r,
        )
        self.db_writes_refused = Counter(
            "telephony_db_writes_refused",
            "Database writes the database refused (a validation bug of ours), by table",
            ["table"],
            registry=r,
        )
        self.log_lines_dropped = Counter(
            "telephony_log_lines_dropped",
            "Log lines dropped because the log writer thread fell behind (its queue was full)",
            registry=r,
        )
        self.recordings_failed = Counter(
            "telephony_recordings_failed",
            "Calls and voice messages with no recording: start_failed (the switch refused "
            "uuid_record), no_audio (no file or an empty one at RECORD_STOP), voicemail_failed",
            ["node", "reason"],
            registry=r,
        )
        self.recording_probe_ok = Gauge(
            "telephony_recording_probe_ok",
            "1 when the node's last recording probe (a short recording through the switch "
            "into each recordings folder, checked here) succeeded, 0 when it failed",
            ["node"],
            registry=r,
        )
        # Off-site copy, verification and removal of recordings (telephony.recording.archive).
        self.recordings_not_safe = Gauge(
            "telephony_recordings_not_safe",
            "Recordings (not removed) without an off-site copy verified by its SHA-256",
            registry=r,
        )
        self.recording_copies = Counter(
            "telephony_recording_copies",
            "Off-site copy attempts by result: verified (read back with the original's "
            "SHA-256), failed (retried later)",
            ["result"],
            registry=r,
        )
        self.recording_verify_problems = Counter(
            "telephony_recording_verify_problems",
            "Bad copies found by `telephony recordings verify`: offsite (missing or corrupt, "
            "copied again), original (restored from the off-site copy), both (lost)",
            ["copy"],
            registry=r,
        )
        self.recordings_removed = Counter(
            "telephony_recordings_removed",
            "Recordings removed: deleted (through the API, with a reason), expired (retention)",
            ["kind"],
            registry=r,
        )
        self.calls_refused = Counter(
            "telephony_calls_refused",
            "New calls refused before answer because the control plane was over capacity",
            ["node"],
            registry=r,
        )
        self.overload_shedding = Gauge(
            "telephony_overload_shedding",
            "1 while the control plane limits new calls to what it can serve, else 0",
            registry=r,
        )
        self.overload_admit_rate = Gauge(
            "telephony_overload_admit_rate",
            "New calls a second the control plane admits now (0: no limit)",
            registry=r,
        )
        self.process_cpu_share = Gauge(
            "telephony_process_cpu_share",
            "The control plane's CPU over the last second, as a share of one core",
            registry=r,
        )
        self.event_loop_lag = Gauge(
            "telephony_event_loop_lag_seconds",
            "How late the overload guard's last timer fired on the shared event loop",
            registry=r,
        )
        self.agents = Gauge(
            "telephony_agents",
            "Agents by state (logged_out, available, busy, ringing, in_call, wrap_up)",
            ["state"],
            registry=r,
        )

        self.ivr_reaction = Histogram(
            "telephony_ivr_reaction_seconds",
            "From a key press (DTMF) to the next prompt starting; the contract asks < 1 s",
            buckets=(0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 5.0),
            registry=r,
        )
        self.ivr_flow_rejected = Counter(
            "telephony_ivr_flow_rejected",
            "Flow files rejected on (re)load; the previous version kept serving",
            ["file"],
            registry=r,
        )
        self.ivr_flows_finished = Counter(
            "telephony_ivr_flows_finished",
            "IVR flows run to their end, by flow and final action",
            ["flow", "action"],
            registry=r,
        )

        self.api_auth = Counter(
            "telephony_api_auth",
            "API token checks by result: cached, verified, stale (a cached principal served "
            "while the database was unreachable), rejected, unavailable (503)",
            ["result"],
            registry=r,
        )
        self.api_bodies_refused = Counter(
            "telephony_api_bodies_refused",
            "API requests refused with 413 because their body was over the size limit",
            registry=r,
        )

    def render(self) -> bytes:
        """The registry in the Prometheus text format."""
        return generate_latest(self.registry)


class EslMetrics:
    """``telephony.esl.transport.EslHooks`` into :class:`Metrics`: ``EslConnection(hooks=...)``."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics
        self._depth_gauges: dict[str, tuple[Any, Any]] = {}
        self._depths: dict[str, tuple[int, int]] = {}

    def probe_failed(self, node: str) -> None:
        self.metrics.esl_probe_failures.labels(node).inc()

    def overflow(self, node: str, buffer: str) -> None:
        self.metrics.esl_buffer_overflows.labels(node, buffer).inc()

    def depth(self, node: str, stream: int, handoff: int) -> None:
        # Called after every socket read; a gauge's set takes a lock, so only changes count.
        if self._depths.get(node) == (stream, handoff):
            return
        self._depths[node] = (stream, handoff)
        gauges = self._depth_gauges.get(node)
        if gauges is None:  # labels() per batch cost more than the two sets
            depth = self.metrics.esl_buffer_depth
            gauges = self._depth_gauges[node] = (
                depth.labels(node, "stream"),
                depth.labels(node, "handoff"),
            )
        gauges[0].set(stream)
        gauges[1].set(handoff)


class BufferMetrics:
    """``telephony.store.buffer.BufferHooks`` into :class:`Metrics`: ``WriteBuffer(hooks=...)``."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics
        self._spilled = -1

    def depth(self, memory: int, spilled: int) -> None:
        self.metrics.db_buffer_depth.set(memory + spilled)
        if spilled != self._spilled:  # after every write; almost always still 0
            self._spilled = spilled
            self.metrics.db_buffer_spilled.set(spilled)

    def overflow(self) -> None:
        self.metrics.db_buffer_overflows.inc()

    def refused(self, table: str) -> None:
        self.metrics.db_writes_refused.labels(table).inc()
