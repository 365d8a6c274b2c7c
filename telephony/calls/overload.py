"""Overload control: the controller measures its own lag and, past its capacity, refuses
new calls early and cleanly so that the calls it has accepted finish normally.

Signals, sampled every ``interval_s`` on the loop itself:

* **event-loop lag**: how late a timer fires (everything on the loop waits that long);
* **event age**: how long ago (by the switch's clock) the latest event was raised when
  the engine handled it, less the smallest such age seen lately (the clocks' offset), so
  a backlog of unread events shows even when the loop itself is quick;
* **write-buffer depth**: rows waiting for the database.

Above any threshold the guard *sheds*: a new call, still unanswered in the dialplan's
park, is hung up with ``refuse_cause`` (``NORMAL_TEMPORARY_FAILURE``: mod_sofia answers
the INVITE with 503 Service Unavailable, which the network plays to the citizen) and
gets a CDR with outcome ``refused`` (a system loss for the 呼损 KPI). It accepts again
once every signal has stayed under half its threshold for ``recover_s`` (hysteresis: no
flapping at the edge).
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
    """Thresholds of :class:`OverloadGuard` (0 disables a signal)."""

    max_loop_lag_s: float = 0.25
    max_event_age_s: float = 1.0
    max_buffer_depth: int = 20_000
    recover_s: float = 2.0
    interval_s: float = 0.1
    refuse_cause: str = "NORMAL_TEMPORARY_FAILURE"


class OverloadGuard:
    """Decides whether new calls are taken; see the module docstring."""

    def __init__(
        self,
        settings: OverloadSettings,
        buffer_depth: Callable[[], int],
        clock: Callable[[], float] = time.monotonic,
        metrics: Metrics | None = None,
    ) -> None:
        self.settings = settings
        self._buffer_depth = buffer_depth
        self._clock = clock
        self._metrics = metrics
        self.shedding = False
        self.loop_lag = 0.0
        self.event_age = 0.0
        self._calm_since: float | None = None
        self._offsets: deque[tuple[float, float]] = deque()
        self._task: asyncio.Task[None] | None = None

    @property
    def accepting(self) -> bool:
        return not self.shedding

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
        """One measurement: update the state from the lag and the other signals."""
        s = self.settings
        self.loop_lag = loop_lag
        depth = self._buffer_depth()
        if self._metrics is not None:
            self._metrics.event_loop_lag.set(loop_lag)
        over = (
            (s.max_loop_lag_s > 0 and loop_lag > s.max_loop_lag_s)
            or (s.max_event_age_s > 0 and self.event_age > s.max_event_age_s)
            or (s.max_buffer_depth > 0 and depth > s.max_buffer_depth)
        )
        calm = (
            (s.max_loop_lag_s <= 0 or loop_lag < s.max_loop_lag_s / 2)
            and (s.max_event_age_s <= 0 or self.event_age < s.max_event_age_s / 2)
            and (s.max_buffer_depth <= 0 or depth < s.max_buffer_depth / 2)
        )
        now = self._clock()
        if over and not self.shedding:
            self.shedding, self._calm_since = True, None
            log.warning(
                "overload: refusing new calls",
                extra={"loop_lag_s": loop_lag, "event_age_s": self.event_age, "depth": depth},
            )
            self._report()
        elif self.shedding:
            if not calm:
                self._calm_since = None
            elif self._calm_since is None:
                self._calm_since = now
            elif now - self._calm_since >= s.recover_s:
                self.shedding, self._calm_since = False, None
                log.warning("overload over: taking new calls again")
                self._report()

    def _report(self) -> None:
        if self._metrics is not None:
            self._metrics.overload_shedding.set(1 if self.shedding else 0)

    def start(self) -> None:
        """Measure the loop's lag every ``interval_s`` until :meth:`stop`."""
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
