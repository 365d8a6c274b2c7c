"""Overload control: the controller measures its own load and, past its capacity, admits
new calls only at the rate it can serve, refusing the rest early and cleanly, so that the
calls it has accepted finish normally.

Signals, sampled every ``interval_s`` on the loop itself:

* **CPU**: the process's CPU time per second of wall time over the last second, as a
  share of one core (the event loop, the ESL thread and the log writer share one GIL,
  so one core is what the process can use; this signal rises before any queue does);
* **event-loop lag**: how late a timer fires (everything on the loop waits that long),
  averaged over the last second;
* **event age**: how long ago (by the switch's clock) the latest event was raised when
  the engine handled it, less the smallest such age seen lately (the clocks' offset), so
  a backlog of unread events shows even when the loop itself is quick; averaged over
  the last second;
* **write-buffer depth**: rows waiting for the database.

Admission is rate-based (additive increase, multiplicative decrease, as SIP overload
control does it: RFC 7339's "rate" algorithm). While every signal is under its threshold
no limit applies. When one goes over, the admitted rate is limited to ``decrease`` times
what was admitted over the last second, and cut again by the same factor every
``hold_s`` while any signal stays over. While every signal is under ``calm`` times its
threshold, the limit grows by ``increase`` of itself a second; it is lifted once it has
stayed above the offered rate for ``recover_s``. Within the limit a token bucket
(``burst_s`` of the rate) admits calls; a call over it is *refused*: still unanswered in
the dialplan's park, it is hung up with ``refuse_cause`` (``NORMAL_TEMPORARY_FAILURE``:
mod_sofia answers the INVITE with 503 Service Unavailable, which the network plays to
the citizen) and gets a CDR with outcome ``refused`` (a system loss for the 呼损 KPI).
A fixed ceiling, ``max_rate`` (new calls a second, 0 = none), applies always.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from telephony.metrics import Metrics

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class OverloadSettings:
    """Thresholds and the admission law of :class:`OverloadGuard` (0 disables a signal)."""

    max_cpu: float = 0.85
    max_loop_lag_s: float = 0.1
    max_event_age_s: float = 0.5
    max_buffer_depth: int = 20_000
    max_rate: float = 0.0
    interval_s: float = 0.1
    window_s: float = 1.0
    decrease: float = 0.8
    hold_s: float = 1.0
    calm: float = 0.8
    increase: float = 0.25
    recover_s: float = 2.0
    burst_s: float = 0.2
    min_rate: float = 1.0
    refuse_cause: str = "NORMAL_TEMPORARY_FAILURE"


class OverloadGuard:
    """Decides, call by call, whether a new call is taken; see the module docstring."""

    def __init__(
        self,
        settings: OverloadSettings,
        buffer_depth: Callable[[], int],
        clock: Callable[[], float] = time.monotonic,
        metrics: Metrics | None = None,
        cpu_clock: Callable[[], float] = time.process_time,
    ) -> None:
        self.settings = settings
        self._buffer_depth = buffer_depth
        self._clock = clock
        self._cpu_clock = cpu_clock
        self._metrics = metrics
        #: The admitted rate in calls a second while limited; None: no limit.
        self.limit: float | None = None
        self.loop_lag = 0.0
        self.event_age = 0.0
        self.cpu = 0.0
        self.admitted = 0
        self.refused = 0
        self._tokens = 1.0
        self._filled_at = clock()
        self._cut_at = float("-inf")
        self._roomy_since: float | None = None
        self._offsets: deque[tuple[float, float]] = deque()
        # (wall, cpu, offered, admitted, loop lag, event age) at each sample of the window
        self._history: deque[tuple[float, float, int, int, float, float]] = deque()
        self._task: asyncio.Task[None] | None = None

    @property
    def shedding(self) -> bool:
        """Whether the load limits new calls now (some may be refused)."""
        return self.limit is not None

    def admit(self) -> bool:
        """A new call arrived: take it (True) or refuse it (False)."""
        rate = self._rate()
        if rate is not None:
            now = self._clock()
            burst = max(1.0, rate * self.settings.burst_s)
            self._tokens = min(burst, self._tokens + (now - self._filled_at) * rate)
            self._filled_at = now
            if self._tokens < 1.0:
                self.refused += 1
                return False
            self._tokens -= 1.0
        self.admitted += 1
        return True

    def _rate(self) -> float | None:
        ceiling = self.settings.max_rate
        if ceiling > 0:
            return ceiling if self.limit is None else min(ceiling, self.limit)
        return self.limit

    def event_seen(self, raised_us: str | None, now: float) -> None:
        """An event the engine handles, with its ``Event-Date-Timestamp`` (µs, switch clock)."""
        if not raised_us or not raised_us.isdigit():
            return
        offset = now - int(raised_us) / 1e6
        window = self._offsets  # the smallest offset of the last minute, kept at the front
        while window and window[-1][1] >= offset:
            window.pop()
        window.append((now, offset))
        while now - window[0][0] > 60.0:
            window.popleft()
        self.event_age = max(0.0, offset - window[0][1])

    def sample(self, loop_lag: float) -> None:
        """One measurement: the signals, then the admission limit."""
        s = self.settings
        now = self._clock()
        self.loop_lag = loop_lag
        depth = self._buffer_depth()
        history = self._history
        history.append(
            (
                now,
                self._cpu_clock(),
                self.admitted + self.refused,
                self.admitted,
                loop_lag,
                self.event_age,
            )
        )
        while len(history) > 2 and now - history[1][0] >= s.window_s:
            history.popleft()
        first, last = history[0], history[-1]
        span = last[0] - first[0]
        offered_rate = (last[2] - first[2]) / span if span > 0 else 0.0
        admitted_rate = (last[3] - first[3]) / span if span > 0 else 0.0
        self.cpu = (last[1] - first[1]) / span if span > 0 else 0.0
        # Lag and age as their mean over the window: one pause (a GC, a slow page of the
        # database) is not an overload; a queue that stays is.
        lag = sum(h[4] for h in history) / len(history)
        age = sum(h[5] for h in history) / len(history)
        if self._metrics is not None:
            self._metrics.event_loop_lag.set(loop_lag)
        levels = (
            (self.cpu, s.max_cpu),
            (lag, s.max_loop_lag_s),
            (age, s.max_event_age_s),
            (float(depth), float(s.max_buffer_depth)),
        )
        over = any(limit > 0 and value > limit for value, limit in levels)
        calm = all(limit <= 0 or value < limit * s.calm for value, limit in levels)
        if over:
            self._roomy_since = None
            if now - self._cut_at >= s.hold_s:
                base = admitted_rate if self.limit is None else min(self.limit, admitted_rate)
                was = self.limit
                self.limit = max(s.min_rate, base * s.decrease)
                self._cut_at = now
                if was is None:
                    self._tokens = 0.0
                    log.warning(
                        "overload: limiting new calls",
                        extra={
                            "rate": round(self.limit, 1),
                            "cpu": round(self.cpu, 2),
                            "loop_lag_s": round(loop_lag, 3),
                            "event_age_s": round(self.event_age, 3),
                            "depth": depth,
                        },
                    )
        elif calm and self.limit is not None:
            self.limit += self.limit * s.increase * s.interval_s
            if self.limit < offered_rate:
                self._roomy_since = None
            elif self._roomy_since is None:
                self._roomy_since = now
            elif now - self._roomy_since >= s.recover_s:
                self.limit, self._roomy_since = None, None
                log.warning("overload over: taking every new call again")
        self._report()

    def _report(self) -> None:
        if self._metrics is not None:
            self._metrics.overload_shedding.set(1 if self.limit is not None else 0)
            self._metrics.overload_admit_rate.set(self._rate() or 0.0)
            self._metrics.process_cpu_share.set(self.cpu)

    def start(self) -> None:
        """Measure every ``interval_s`` until :meth:`stop`."""
        if self._task is None:
            self._task = asyncio.create_task(self._watch(), name="overload guard")

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None

    async def _watch(self) -> None:
        loop = asyncio.get_running_loop()
        interval = self.settings.interval_s
        while True:
            expected = loop.time() + interval
            await asyncio.sleep(interval)
            self.sample(max(0.0, loop.time() - expected))
