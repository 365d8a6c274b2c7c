"""Overload control: the controller measures its own load and, past its capacity, admits
new calls only at the rate it can serve, refusing the rest early and cleanly, so that the
calls it has accepted finish normally.

Signals, sampled every ``interval_s`` on the loop itself:

* **CPU**: the process's CPU time per second of wall time over the last second, as a
  share of one core (the event loop does the work, ESL sockets included, and shares the
  GIL with the log writer: one core is what the process can use; this signal rises
  before any queue does; 0.95 by default, as the loop's own lag and the events' age
  are measured too and cut the admitted rate whenever a queue builds);
* **event-loop lag**: how late a timer fires (everything on the loop waits that long),
  averaged over the last second;
* **event age**: how long ago (by the switch's clock) the latest event was raised when
  the engine handled it, less the smallest such age seen lately (the clocks' offset), so
  a backlog of unread events shows even when the loop itself is quick; averaged over
  the last second;
* **write-buffer depth**: rows waiting for the database;
* **reaction**: the IVR's key press -> next prompt (both on the switch's clock, see
  ``telephony.ivr.timing``), the mean of the last second's samples. It is the service
  the citizen gets, whoever is slow: the event loop, the socket, or the switch itself
  (a switch short of CPU executes our commands late, and nothing on our side shows it).

A signal is *over* above its threshold and *calm* under ``calm`` times it. CPU is a
forecast of harm; lag, event age, depth and reaction are the harm itself. Rates are new calls a
second over the last ``window_s``: *offered* (admitted or refused) and *admitted*.

A *proven* rate is one the process sustained with no signal over: each sample after
``prove_s + window_s`` with no signal over proves the rate admitted over ``prove_s``
that ended ``window_s`` ago (the signals are means over ``window_s``, so a rate counts
only once a whole window measured after it has stayed under every threshold). The
proven rate is the highest proof of the last ``proven_for_s``, or the newest proof when
all are older (so an overload too long to have a calm moment does not forget the only
evidence it has).

Admission is rate-based (additive increase, multiplicative decrease, as SIP overload
control does it: RFC 7339's "rate" algorithm). While no signal is over no limit applies.
At each sample:

* **a harm signal over** (lag, event age, depth or reaction), and no cut in the last ``hold_s``:
  the limit becomes ``decrease`` times the admitted rate, or times the limit if that is
  lower (the first cut sets the limit).
* **CPU the only signal over**: the same cuts, but none under the *floor*, ``decrease``
  times the proven rate (0 while none is proven); a limit under the floor (left there by
  a harm cut) holds. So the CPU alone takes the limit at most one cut under what has
  been proven, and there holds it; what a harm cut found is kept until all is calm. The reason:
  refusing a call costs CPU too (its events, the hangup, its CDR), and the calls taken
  before a cut go on costing CPU after it, so the CPU share stays over while the
  admitted rate falls; compounding cuts sank a saturated controller to half its
  capacity. Harm signals cut through the floor.
* **no signal over**, while limited: if the offered rate over the last
  ``recover_window_s`` (short, so that the phase before does not hold the limit) is under
  the limit, the limit is lifted at once: it refuses nothing then, and a new overload
  sets a new one. Otherwise, while every signal is calm, the limit grows by ``increase``
  of itself a second.

The limit is never under ``min_rate``. Within it a token bucket (``burst_s`` of the
rate, full when a limit is first set) admits calls; it refills between arrivals, so
calls arriving under the limit's rate are all taken. A call over it is *refused*: still
unanswered in the dialplan's park, it is hung up with ``refuse_cause``
(``NORMAL_TEMPORARY_FAILURE``: mod_sofia answers the INVITE with 503 Service
Unavailable, which the network plays to the citizen) and gets a CDR with outcome
``refused`` (a system loss for the 呼损 KPI). A fixed ceiling, ``max_rate`` (new calls a
second, 0 = none), applies always.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

from telephony.metrics import Metrics

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class OverloadSettings:
    """Thresholds and the admission law of :class:`OverloadGuard` (0 disables a signal)."""

    max_cpu: float = 0.95
    max_loop_lag_s: float = 0.1
    max_event_age_s: float = 0.5
    max_reaction_s: float = 0.3
    max_buffer_depth: int = 20_000
    max_rate: float = 0.0
    interval_s: float = 0.1
    window_s: float = 1.0
    decrease: float = 0.8
    hold_s: float = 1.0
    calm: float = 0.8
    increase: float = 0.25
    #: The span of the offered rate that decides a lift (at most ``window_s``).
    recover_window_s: float = 0.3
    #: How long a rate must be admitted, with no signal over, to be proven.
    prove_s: float = 3.0
    #: How long a proof counts (the newest counts until a newer one).
    proven_for_s: float = 300.0
    burst_s: float = 0.2
    min_rate: float = 1.0
    refuse_cause: str = "NORMAL_TEMPORARY_FAILURE"


class _Sample(NamedTuple):
    """The guard's counters at one sample; a window's rates are differences of two."""

    at: float  # the guard's clock, s
    cpu_time: float  # the process's CPU time, s
    offered: int  # new calls so far, admitted or refused
    admitted: int  # new calls taken so far
    loop_lag: float  # s
    event_age: float  # s


class _Rate(NamedTuple):
    """A rate (new calls a second) and when it was measured."""

    at: float
    rate: float


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
        self._offsets: deque[tuple[float, float]] = deque()
        self._history: deque[_Sample] = deque()  # the samples of the last window_s
        # The samples since a signal was last over (the last prove_s + window_s of them).
        self._steady: deque[_Sample] = deque()
        # Proofs of the last proven_for_s, highest first (each is newer and lower than
        # the one before it); the newest is kept however old.
        self._proofs: deque[_Rate] = deque()
        self._reactions: deque[tuple[float, float]] = deque()  # (at, seconds), last window
        self.reaction = 0.0
        self._task: asyncio.Task[None] | None = None

    @property
    def shedding(self) -> bool:
        """Whether the load limits new calls now (some may be refused)."""
        return self.limit is not None

    @property
    def proven(self) -> float | None:
        """The highest admitted rate lately sustained with no signal over; None: none yet."""
        return self._proofs[0].rate if self._proofs else None

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

    def reaction_seen(self, seconds: float) -> None:
        """One IVR reaction sample (key press -> next prompt), as it is measured."""
        self._reactions.append((self._clock(), seconds))

    def _mean_reaction(self, now: float) -> float:
        reactions = self._reactions
        while reactions and now - reactions[0][0] > self.settings.window_s:
            reactions.popleft()
        if not reactions:
            return 0.0
        return sum(r[1] for r in reactions) / len(reactions)

    def sample(self, loop_lag: float) -> None:
        """One measurement: the signals, then the admission limit."""
        s = self.settings
        now = self._clock()
        self.loop_lag = loop_lag
        depth = self._buffer_depth()
        history = self._history
        history.append(
            _Sample(
                at=now,
                cpu_time=self._cpu_clock(),
                offered=self.admitted + self.refused,
                admitted=self.admitted,
                loop_lag=loop_lag,
                event_age=self.event_age,
            )
        )
        while len(history) > 2 and now - history[1].at >= s.window_s:
            history.popleft()
        first, last = history[0], history[-1]
        span = last.at - first.at
        admitted_rate = (last.admitted - first.admitted) / span if span > 0 else 0.0
        self.cpu = (last.cpu_time - first.cpu_time) / span if span > 0 else 0.0
        # Lag and age as their mean over the window: one pause (a GC, a slow page of the
        # database) is not an overload; a queue that stays is. A window not yet full counts
        # its unseen part as calm for the lag, or the pause of `settle_heap` at start, the
        # guard's first sample, would limit the first calls of every start.
        lag = sum(h.loop_lag for h in history) / max(len(history), s.window_s / s.interval_s)
        age = sum(h.event_age for h in history) / len(history)
        if self._metrics is not None:
            self._metrics.event_loop_lag.set(loop_lag)
        self.reaction = self._mean_reaction(now)
        harms = (
            (lag, s.max_loop_lag_s),
            (age, s.max_event_age_s),
            (float(depth), float(s.max_buffer_depth)),
            (self.reaction, s.max_reaction_s),
        )
        levels = ((self.cpu, s.max_cpu), *harms)
        harm = any(limit > 0 and value > limit for value, limit in harms)
        over = harm or (s.max_cpu > 0 and self.cpu > s.max_cpu)
        calm = all(limit <= 0 or value < limit * s.calm for value, limit in levels)
        self._prove(now, over, last)
        grow = 1.0 + s.increase * s.interval_s
        if over:
            # the floor of a CPU-only overload: one cut under the proven rate
            proven = self.proven
            floor = 0.0 if harm or proven is None else proven * s.decrease
            if self.limit is not None and self.limit < floor:
                pass  # under it since a harm cut: held until every signal is calm
            elif now - self._cut_at >= s.hold_s:
                self._cut(now, admitted_rate, floor, depth)
        elif self.limit is not None:
            if self._recent_offered_rate() < self.limit:
                self.limit = None
                log.warning("overload over: taking every new call again")
            elif calm:
                self.limit *= grow
        self._report()

    def _prove(self, now: float, over: bool, sample: _Sample) -> None:
        """Extend or end the run of samples with no signal over; prove its rate."""
        s = self.settings
        proofs = self._proofs
        while len(proofs) > 1 and now - proofs[0].at > s.proven_for_s:
            proofs.popleft()
        steady = self._steady
        if over:
            steady.clear()
            return
        steady.append(sample)
        # The proof ends window_s ago: the signals are means over window_s, so a rate
        # counts only once a whole window measured after it stayed under every threshold.
        end = next((c for c in reversed(steady) if now - c.at >= s.window_s), None)
        if end is None:
            return
        while len(steady) > 1 and steady[1].at <= end.at - s.prove_s:
            steady.popleft()
        start = steady[0]
        if end.at - start.at >= s.prove_s:
            sustained = (end.admitted - start.admitted) / (end.at - start.at)
            while proofs and proofs[-1].rate <= sustained:
                proofs.pop()
            proofs.append(_Rate(now, sustained))

    def _cut(self, now: float, admitted_rate: float, floor: float, depth: int) -> None:
        """A signal is over: set the limit or cut it, not under ``floor`` (nor above itself:
        the caller holds a limit under the floor instead of cutting it)."""
        s = self.settings
        was = self.limit
        base = admitted_rate if was is None else min(was, admitted_rate)
        self.limit = max(s.min_rate, floor, base * s.decrease)
        self._cut_at = now
        if was is None:
            # A new limit starts with a full bucket (clamped to its burst at the next call):
            # an empty one would refuse a clump of calls that are under the limit's rate.
            self._tokens = math.inf
            log.warning(
                "overload: limiting new calls",
                extra={
                    "rate": round(self.limit, 1),
                    "floor": round(floor, 1),
                    "cpu": round(self.cpu, 2),
                    "loop_lag_s": round(self.loop_lag, 3),
                    "event_age_s": round(self.event_age, 3),
                    "reaction_s": round(self.reaction, 3),
                    "depth": depth,
                },
            )

    def _recent_offered_rate(self) -> float:
        """The offered rate over the last ``recover_window_s`` (infinite before two samples)."""
        history = self._history
        last = history[-1]
        first = history[0]
        for sample in reversed(history):
            if last.at - sample.at >= self.settings.recover_window_s:
                first = sample
                break
        span = last.at - first.at
        return (last.offered - first.offered) / span if span > 0 else math.inf

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
