"""The IVR's reaction time: from a key press to the start of the next prompt (contract: < 1 s).

The engine feeds every event of its node to :meth:`ReactionTimer.feed`; the
timer only looks at channels it was told to watch (:meth:`watch`, while the
IVR or the survey runs on them). For a watched channel, a DTMF event arms
the timer with the event's ``Event-Date-Timestamp`` (microseconds, the
switch's clock); the next PLAYBACK_START, or CHANNEL_EXECUTE of a media
application, on that channel stops it, and the difference is one sample.
Only the last key before a prompt counts (the keys of a ticket number are
typed without prompts between them). Both times come from the same switch
clock, so the sample includes the event's trip to us, our decision and the
command's trip back: the whole reaction the caller hears.

Samples go to ``observe`` (the engine passes its histogram's ``observe``)
and are kept per call, so :meth:`unwatch` can hand them to the CDR.
"""

from __future__ import annotations

from collections.abc import Callable

from telephony.esl.messages import Event

MEDIA_APPS = frozenset({"playback", "speak", "say", "play_and_get_digits", "record"})


class ReactionTimer:
    """Per-call key-press-to-prompt times; pure, fed with events."""

    def __init__(self, observe: Callable[[float], None] | None = None) -> None:
        self._observe = observe
        self._armed: dict[str, int] = {}
        self._samples: dict[str, list[float]] = {}

    def watch(self, uuid: str) -> None:
        """Start measuring a channel (when its IVR starts)."""
        self._samples.setdefault(uuid, [])

    def unwatch(self, uuid: str) -> list[float]:
        """Stop measuring a channel; its samples in seconds, in order."""
        self._armed.pop(uuid, None)
        return self._samples.pop(uuid, [])

    def samples(self, uuid: str) -> list[float]:
        """The samples of a watched channel so far."""
        return list(self._samples.get(uuid, []))

    def feed(self, event: Event) -> float | None:
        """Look at one event; the sample it completes, if any."""
        uuid = event.unique_id
        if uuid is None or uuid not in self._samples:
            return None
        stamp = _timestamp(event)
        if stamp is None:
            return None
        name = event.name
        if name == "DTMF":
            self._armed[uuid] = stamp
            return None
        starts_media = name == "PLAYBACK_START" or (
            name == "CHANNEL_EXECUTE" and (event.application or "") in MEDIA_APPS
        )
        if not starts_media or uuid not in self._armed:
            return None
        seconds = max(0, stamp - self._armed.pop(uuid)) / 1_000_000
        self._samples[uuid].append(seconds)
        if self._observe is not None:
            self._observe(seconds)
        return seconds


def _timestamp(event: Event) -> int | None:
    value = event.get("Event-Date-Timestamp")
    if value is None or not value.isdigit():
        return None
    return int(value)
