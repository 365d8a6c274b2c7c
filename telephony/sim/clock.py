"""Simulated time: the switch's clock runs ``time_scale`` times faster than the wall clock.

Timestamps in events (``Event-Date-*``, channel times) come from :meth:`SimClock.now_us`;
every wait inside the simulator (prompts, ringing, DTMF spacing, timeouts) is expressed
in simulated seconds and goes through :meth:`SimClock.sleep`.
"""

from __future__ import annotations

import asyncio
import time


class SimClock:
    """Wall-clock epoch at start plus scaled monotonic time since start."""

    def __init__(self, time_scale: float = 1.0) -> None:
        if time_scale <= 0:
            raise ValueError("time_scale must be positive")
        self.time_scale = time_scale
        self._epoch = time.time()
        self._t0 = time.monotonic()

    def now(self) -> float:
        """Simulated seconds since the Unix epoch."""
        return self._epoch + (time.monotonic() - self._t0) * self.time_scale

    def now_us(self) -> int:
        return int(self.now() * 1_000_000)

    def real_seconds(self, sim_seconds: float) -> float:
        return max(0.0, sim_seconds) / self.time_scale

    async def sleep(self, sim_seconds: float) -> None:
        await asyncio.sleep(self.real_seconds(sim_seconds))
