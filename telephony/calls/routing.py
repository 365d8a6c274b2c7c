"""Routing: skill-group queues, music on hold, and pairing waiting calls with agents.

* A queued call hears music until it is bridged: if the music ends (an empty
  ``local_stream``, a failed file), or a bridge fails after ``uuid_break``
  stopped it, it is started again.
* Each queue is served in priority then arrival order. The longest-idle
  available agent of the group takes the first call that agent has not failed
  lately: an agent who missed a call (or whose bridge failed) is not offered
  that same call again for ``reoffer_after_s``, and the calls behind it are
  still served meanwhile, so one call never freezes its queue.
* Nothing is offered while the node's connection is down: a failed
  originate then says nothing about the agent's phone.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Iterator
from typing import Any

from telephony.acd.agent_state import AgentState
from telephony.acd.queue import SkillGroupQueue, Waiting, longest_idle_agent, serves
from telephony.calls import records
from telephony.calls.core import EngineCore
from telephony.calls.model import Call, CallInput, CallState
from telephony.esl.port import EslChannelGone, EslDisconnected, EslError

log = logging.getLogger(__name__)

#: How long music on hold may play (the execute's timeout): longer than any queue wait.
MUSIC_TIMEOUT = 24 * 3600.0
#: Music that ends sooner than this is started again only after the rest of it.
_MUSIC_MIN_S = 1.0
_WAITING = (CallState.QUEUED, CallState.OFFERING)


class Router:
    """The skill-group queues of one node and the music their calls hear."""

    def __init__(self, core: EngineCore) -> None:
        self.core = core
        self.queues: dict[str, SkillGroupQueue] = {}
        self._music: dict[str, asyncio.Task[None]] = {}
        self._retry: asyncio.TimerHandle | None = None
        self._gauges: dict[str, Any] = {}

    def enqueue(self, call: Call) -> None:
        """Put a call in its skill group's queue, start music on hold, and route."""
        core = self.core
        if call.state is not CallState.IVR:
            return
        call.queued_at = core.clock()
        core.buffer.put(records.timeline(call, "queued", call.queued_at, group=call.skill_group))
        core.buffer.put(records.queue_entry(call))
        self.queue(call.skill_group).add(call.uuid, call.priority, call.queued_at)
        core.spawn(
            core.mark(
                call,
                tel_state="queued",
                tel_queued_at=call.queued_at,
                tel_group=call.skill_group,
                tel_priority=str(call.priority),
                tel_ivr_path=call.ivr_keys,
            ),
            f"mark {call.uuid}",
        )
        core.carry(call, call.move(CallInput.ENQUEUE))
        self.ensure_music(call)

    def requeue(self, call: Call) -> None:
        """An offer failed: the call goes back to its place in the queue, with music."""
        self.queue(call.skill_group).add(
            call.uuid, call.priority, call.queued_at or self.core.clock()
        )
        self.ensure_music(call)

    def ensure_music(self, call: Call) -> None:
        """Music on hold for a waiting call that is not hearing it (idempotent)."""
        running = self._music.get(call.uuid)
        if running is not None and not running.done():
            return
        if call.state not in _WAITING or call.bridging or not self.core.port.connected:
            return
        task = asyncio.create_task(self._play_music(call), name=f"moh {call.uuid}")
        self._music[call.uuid] = task
        task.add_done_callback(functools.partial(self._music_done, call.uuid))

    def _music_done(self, uuid: str, task: asyncio.Task[None]) -> None:
        if self._music.get(uuid) is task:
            del self._music[uuid]

    async def _play_music(self, call: Call) -> None:
        core = self.core
        music = call.hold_music or core.settings.hold_music
        loop = asyncio.get_running_loop()
        while call.state in _WAITING and not call.bridging:
            started = loop.time()
            try:
                await core.port.execute(call.uuid, "playback", music, timeout=MUSIC_TIMEOUT)
            except (EslChannelGone, EslDisconnected):
                return  # the caller left, or the node: the reconnect starts it again
            except EslError as exc:
                log.warning("music on hold failed", extra={"call": call.uuid, "error": str(exc)})
            if call.state not in _WAITING or call.bridging:
                return
            log.info("music on hold ended; starting it again", extra={"call": call.uuid})
            await asyncio.sleep(max(0.0, _MUSIC_MIN_S - (loop.time() - started)))

    def route(self) -> None:
        """Offer waiting calls to available agents, queue by queue, until no pair is left."""
        core = self.core
        if not core.port.connected:
            return
        now = core.clock()
        within = core.settings.reoffer_after_s
        retry_at: float | None = None
        # Every queued call and every agent becoming free routes: the roster (hundreds of
        # agents) is read once, each offer below takes its agent out of AVAILABLE.
        available = [a for a in core.roster.agents.values() if a.state is AgentState.AVAILABLE]
        for group, queue in self.queues.items():
            while len(queue):
                agents = [
                    a for a in available if a.state is AgentState.AVAILABLE and serves(a, group)
                ]
                if not agents:
                    break
                paired = False
                for entry in _in_order(queue):
                    call = core.calls.get(entry.call_uuid)
                    if call is None or call.state is not CallState.QUEUED:
                        queue.remove(entry.call_uuid)
                        continue
                    tried = call.recently_tried(now, within)
                    agent = longest_idle_agent(agents, group, tried)
                    if agent is None:  # it failed these agents lately: try the next call
                        soonest = min(call.tried_at[a] for a in tried) + within
                        retry_at = soonest if retry_at is None else min(retry_at, soonest)
                        continue
                    queue.remove(call.uuid)
                    core.offer(call, agent)
                    paired = True
                    break
                if not paired:
                    break
        self._queue_changed()
        if retry_at is not None:
            self._route_again_at(retry_at)

    def _route_again_at(self, when: float) -> None:
        if self._retry is not None:
            self._retry.cancel()
        delay = max(0.05, when - self.core.clock())
        self._retry = asyncio.get_running_loop().call_later(delay, self._retry_now)

    def _retry_now(self) -> None:
        self._retry = None
        self.route()

    def dequeue(self, call: Call) -> None:
        self.queue(call.skill_group).remove(call.uuid)
        self._queue_changed()

    def queue(self, group: str) -> SkillGroupQueue:
        if group not in self.queues:
            self.queues[group] = SkillGroupQueue(group)
        return self.queues[group]

    def _queue_changed(self) -> None:
        for group, queue in self.queues.items():
            gauge = self._gauges.get(group)
            if gauge is None:
                gauge = self._gauges[group] = self.core.metrics.queue_length.labels(group)
            gauge.set(len(queue))

    def close(self) -> None:
        if self._retry is not None:
            self._retry.cancel()
        for task in self._music.values():
            task.cancel()


def _in_order(queue: SkillGroupQueue) -> Iterator[Waiting]:
    """The queue's calls in service order; the full order is sorted only past the head."""
    head = queue.head()
    if head is None:
        return
    yield head
    for entry in queue.waiting():
        if entry is not head:
            yield entry
