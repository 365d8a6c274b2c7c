"""Dialplan applications the simulator runs: answer, playback, play_and_get_digits, read, ...

Each application is ``async def app(switch, channel, arg) -> Application-Response``. The
switch fires CHANNEL_EXECUTE before and CHANNEL_EXECUTE_COMPLETE after; the apps fire
what happens in between (PLAYBACK_START/STOP, DTMF, RECORD_START). Media takes
simulated time: a ``tone_stream://%(on,off,hz)`` lasts on+off ms per loop,
``silence_stream://N`` N ms, any other file ``playback_default_ms`` (``sim set``); a
voice message (``record``) ``record_default_ms``.
"""

from __future__ import annotations

import asyncio
import logging
import math
import re
from collections.abc import Awaitable, Callable
from pathlib import Path

from telephony.sim import files
from telephony.sim.channel import Channel, Eavesdrop
from telephony.sim.switch import Switch, switch_true

App = Callable[[Switch, Channel, str], Awaitable[str]]

log = logging.getLogger(__name__)

_TONE = re.compile(r"%\((\d+),(\d+)(?:,[^)]*)?\)")
_LOOPS = re.compile(r"loops=(-?\d+)")


def prompt_ms(path: str, default_ms: int, local_stream_ms: int | None = None) -> int | None:
    """How long a prompt plays, in simulated ms; ``None`` = until interrupted.

    ``local_stream://`` plays forever, unless ``local_stream_ms`` says its stream ends
    (an empty or misconfigured local stream ends the playback).
    """
    if path.startswith("file_string://"):
        total = 0
        for part in path[len("file_string://") :].split("!"):
            ms = prompt_ms(part, default_ms, local_stream_ms)
            if ms is None:
                return None
            total += ms
        return total
    if path.startswith("silence_stream://"):
        spec = path[len("silence_stream://") :].split(",")[0]
        ms = int(spec) if spec.lstrip("-").isdigit() else 0
        return None if ms < 0 else ms
    if path.startswith("tone_stream://"):
        cycle = sum(int(on) + int(off) for on, off in _TONE.findall(path))
        loops_m = _LOOPS.search(path)
        loops = int(loops_m.group(1)) if loops_m else 1
        if loops < 0:
            return None
        return cycle * max(1, loops)
    if path.startswith("local_stream://"):
        return local_stream_ms if local_stream_ms is not None and local_stream_ms >= 0 else None
    return default_ms


def _durations(sw: Switch) -> tuple[int, int | None]:
    default = int(sw.settings["playback_default_ms"])
    local = int(sw.settings.get("local_stream_ms", "-1"))
    return default, (local if local >= 0 else None)


def playback_terminators(value: str | None) -> str:
    """mod_dptools ``on_dtmf``: ``playback_terminators`` (unset: ``*``; ``any``: every
    digit; ``none``: no digit) as the set of digits that stop a playback."""
    if value is None:
        return "*"
    if value.lower() == "any":
        return "1234567890*#"
    if value.lower() == "none":
        return ""
    return value


def set_var_app(sw: Switch, ch: Channel, arg: str) -> str:
    name, _, value = arg.partition("=")
    if name:
        ch.set_var(name.strip(), value if value else None)
    return "_none_"


def export_app(sw: Switch, ch: Channel, arg: str) -> str:
    set_var_app(sw, ch, arg)
    name = arg.partition("=")[0].strip()
    exported = ch.var("export_vars")
    ch.set_var("export_vars", f"{exported},{name}" if exported else name)
    return "_none_"


async def _answer(sw: Switch, ch: Channel, arg: str) -> str:
    if ch.direction == "inbound":
        sw.answer_inbound(ch)
    return "_none_"


async def _set(sw: Switch, ch: Channel, arg: str) -> str:
    return set_var_app(sw, ch, arg)


async def _export(sw: Switch, ch: Channel, arg: str) -> str:
    return export_app(sw, ch, arg)


async def play(sw: Switch, ch: Channel, path: str, *, interrupt_on_dtmf: bool = False) -> str:
    """Play one prompt: PLAYBACK_START, simulated time, PLAYBACK_STOP; 'done'/'hangup'/'dtmf'."""
    if not ch.is_up:
        return "hangup"
    if ch.unready:
        return "hangup"  # switch_ivr_play_file: not media ready, nothing is played
    duration = prompt_ms(path, *_durations(sw))
    sw.playback_start(ch, path)
    started = sw.now_us()
    result = await sw.wait(
        ch, None if duration is None else duration / 1000, dtmf=interrupt_on_dtmf
    )
    played = (sw.now_us() - started) // 1000
    if duration is not None:
        played = min(played, duration)
    sw.playback_stop(ch, path, played, "break" if result == "break" else "done")
    if result == "unready":
        return "hangup"
    return "done" if result in ("timeout", "break") else result


async def _playback(sw: Switch, ch: Channel, arg: str) -> str:
    """mod_dptools playback_function -> switch_ivr_play_file with the ``on_dtmf`` callback.

    Every digit that arrives is dequeued (DTMF event); one in ``playback_terminators``
    sets ``playback_terminator_used`` and stops the file (Playback-Status ``break``,
    ``FILE PLAYED``); the others are dropped. uuid_break also gives ``break`` and
    ``FILE PLAYED``; a hangup, or the channel made not ready by uuid_park,
    ``PLAYBACK ERROR`` (and no PLAYBACK_START if it was not ready to begin with).
    """
    path = arg.strip()
    ch.set_var("playback_terminator_used", None)
    if not ch.is_up or ch.unready:
        return "PLAYBACK ERROR"
    terminators = playback_terminators(ch.var("playback_terminators"))
    duration = prompt_ms(path, *_durations(sw))
    loop = asyncio.get_running_loop()
    deadline = None if duration is None else loop.time() + sw.clock.real_seconds(duration / 1000)
    sw.playback_start(ch, path)
    started = sw.now_us()
    status = "done"
    ch.reading = True
    try:
        while True:
            remaining = None if deadline is None else max(0.0, deadline - loop.time())
            result = await sw.wait(
                ch, None if remaining is None else remaining * sw.clock.time_scale, dtmf=True
            )
            if result != "dtmf":
                break
            while ch.dtmf_buffer and status == "done":
                digit = sw.dequeue_dtmf(ch)
                if digit in terminators:
                    ch.set_var("playback_terminator_used", digit)
                    status = "break"
            if status == "break":
                result = "terminator"
                break
    finally:
        ch.reading = False
    played = (sw.now_us() - started) // 1000
    if duration is not None:
        played = min(played, duration)
    sw.playback_stop(ch, path, played, "break" if result in ("break", "terminator") else "done")
    return "FILE PLAYED" if result in ("timeout", "break", "terminator") else "PLAYBACK ERROR"


async def _speak(sw: Switch, ch: Channel, arg: str) -> str:
    text = arg.split("|")[-1]
    if not ch.is_up:
        return "PLAYBACK ERROR"
    result = await sw.wait(ch, max(0.5, 0.06 * len(text)))
    return "_none_" if result != "hangup" else "PLAYBACK ERROR"


async def collect(
    sw: Switch,
    ch: Channel,
    prompt: str,
    min_digits: int,
    max_digits: int,
    timeout_ms: int,
    terminators: str,
    digit_timeout_ms: int,
) -> tuple[str, str, str]:
    """Play ``prompt`` (DTMF interrupts it), then gather digits: (digits, terminator, status)."""
    ch.reading = True
    digits = ""
    try:
        if prompt and await play(sw, ch, prompt, interrupt_on_dtmf=True) == "hangup":
            return digits, "", "hangup"
        while True:
            while ch.dtmf_buffer:
                digit = sw.dequeue_dtmf(ch)
                if digit in terminators and terminators not in ("", "none"):
                    return digits, digit, "success"
                digits += digit
                if len(digits) >= max_digits:
                    return digits, "", "success"
            wait_ms = timeout_ms if not digits else digit_timeout_ms
            result = await sw.wait(ch, wait_ms / 1000, dtmf=True)
            if result in ("hangup", "unready"):
                return digits, "", "hangup"
            if result == "timeout":
                return digits, "", "timeout" if len(digits) < min_digits else "success"
    finally:
        ch.reading = False


def _int(parts: list[str], i: int, default: int) -> int:
    try:
        return int(parts[i])
    except (IndexError, ValueError):
        return default


async def _play_and_get_digits(sw: Switch, ch: Channel, arg: str) -> str:
    """min max tries timeout terminators file invalid_file var regexp digit_timeout."""
    parts = arg.split()
    min_d, max_d, tries = _int(parts, 0, 1), _int(parts, 1, 1), _int(parts, 2, 1)
    timeout = _int(parts, 3, 5000)
    terminators = parts[4] if len(parts) > 4 else "#"
    prompt = parts[5] if len(parts) > 5 else ""
    invalid = parts[6] if len(parts) > 6 else ""
    var = parts[7] if len(parts) > 7 else "pagd_input"
    regexp = parts[8] if len(parts) > 8 else ""
    digit_timeout = _int(parts, 9, timeout)
    for _attempt in range(max(1, tries)):
        digits, term, status = await collect(
            sw, ch, prompt, min_d, max_d, timeout, terminators, digit_timeout
        )
        if status == "hangup":
            return "_none_"
        ok = min_d <= len(digits) <= max_d and (not regexp or re.search(regexp, digits))
        if ok:
            ch.set_var("read_result", "success")
            if term:
                ch.set_var("read_terminator_used", term)
            ch.set_var(var, digits)
            return "_none_"
        if invalid and invalid != "silence_stream://0" and await play(sw, ch, invalid) == "hangup":
            return "_none_"
    ch.set_var("read_result", "failure")
    ch.set_var(var, None)
    return "_none_"


async def _read(sw: Switch, ch: Channel, arg: str) -> str:
    """min max sound_file variable_name timeout terminators digit_timeout."""
    parts = arg.split()
    min_d, max_d = _int(parts, 0, 1), _int(parts, 1, 1)
    prompt = parts[2] if len(parts) > 2 else ""
    var = parts[3] if len(parts) > 3 else "read_input"
    timeout = _int(parts, 4, 5000)
    terminators = parts[5] if len(parts) > 5 else "#"
    digit_timeout = _int(parts, 6, timeout)
    digits, term, status = await collect(
        sw, ch, prompt, min_d, max_d, timeout, terminators, digit_timeout
    )
    if status == "hangup":
        return "_none_"
    ch.set_var(var, digits)
    if term:
        ch.set_var("read_terminator_used", term)
    ok = min_d <= len(digits) <= max_d
    ch.set_var("read_result", "success" if ok else status if status != "success" else "failure")
    return "_none_"


async def _sleep(sw: Switch, ch: Channel, arg: str) -> str:
    ms = _int(arg.split(), 0, 0)
    await sw.wait(ch, ms / 1000)
    return "_none_"


async def _hangup(sw: Switch, ch: Channel, arg: str) -> str:
    sw.hangup(ch, arg.strip() or "NORMAL_CLEARING", "send_bye")
    return "_none_"


async def _park(sw: Switch, ch: Channel, arg: str) -> str:
    """A nested ``park``: switch_ivr_park refuses a channel already in a park
    (CF_CONTROLLED, "Cannot park channels that are under control already") and the app
    completes at once. Elsewhere (inside a bridge) it waits until the channel leaves."""
    if ch.in_park_loop:
        log.info("nested park refused", extra={"uuid": ch.uuid})
        return "_none_"
    await sw.wait(ch, None)
    return "_none_"


async def _eavesdrop(sw: Switch, ch: Channel, arg: str) -> str:
    """mod_dptools ``eavesdrop <uuid>``: ED_DTMF unless ``eavesdrop_enable_dtmf`` is false;
    ``eavesdrop_whisper_aleg`` starts with ED_MUX_READ (talk to the target's partner),
    ``eavesdrop_whisper_bleg`` with ED_MUX_WRITE (talk to the target)."""
    enable = ch.var("eavesdrop_enable_dtmf")
    return await _listen(
        sw,
        ch,
        arg,
        dtmf=enable is None or switch_true(enable),
        mux_read=switch_true(ch.var("eavesdrop_whisper_aleg")),
        mux_write=switch_true(ch.var("eavesdrop_whisper_bleg")),
    )


async def _three_way(sw: Switch, ch: Channel, arg: str) -> str:
    """mod_dptools ``three_way <uuid>``: an eavesdrop with ED_MUX_READ|ED_MUX_WRITE, no ED_DTMF."""
    return await _listen(sw, ch, arg, dtmf=False, mux_read=True, mux_write=True)


async def _listen(
    sw: Switch, ch: Channel, arg: str, *, dtmf: bool, mux_read: bool, mux_write: bool
) -> str:
    """switch_ivr_eavesdrop_session: events only on the listener; ends when either side
    hangs up, the listener is not ready, or (with ED_DTMF) on ``*``. With ED_DTMF the loop
    dequeues the listener's digits (DTMF event) and applies them (:class:`Eavesdrop`)."""
    target = sw.get(arg.strip())
    if target is None:
        return "_none_"
    spy = Eavesdrop(target, dtmf, mux_read, mux_write)
    ch.eavesdrop = spy
    ch.watching.add(target)
    target.watchers.add(ch)
    sw.set_read_codec(ch, "L16")
    ch.reading = True  # the loop owns the DTMF queue: without ED_DTMF digits stay queued
    try:
        while ch.is_up and target.is_up and not ch.unready and not spy.stopped:
            while dtmf and ch.dtmf_buffer and not spy.stopped:
                digit = sw.dequeue_dtmf(ch)
                spy.command(digit)
            if spy.stopped:
                break
            await sw.wait(ch, None, wake=True, dtmf=dtmf)
    finally:
        ch.reading = False
        ch.eavesdrop = None
        ch.watching.discard(target)
        target.watchers.discard(ch)
        sw.set_read_codec(ch, "PCMU")
    return "_none_"


async def _record_session(sw: Switch, ch: Channel, arg: str) -> str:
    """mod_dptools ``record_session PATH [LIMIT]``: the media bug of ``uuid_record start``.

    It fails quietly (no event, ``record_completion_cause=uri-failure``) where the
    switch cannot write; the application itself returns at once either way.
    """
    words = arg.split()
    if words:
        limit = _atoi(words[1].lstrip("+")) if len(words) > 1 else 0
        sw.record_session_start(ch, words[0], limit)
    return "_none_"


def _atoi(text: str) -> int:
    digits = ""
    for c in text:
        if not c.isdigit():
            break
        digits += c
    return int(digits) if digits else 0


async def _record(sw: Switch, ch: Channel, arg: str) -> str:
    """``record PATH [LIMIT_S [SILENCE_THRESHOLD [SILENCE_S]]]``: a voice message.

    mod_dptools ``record_function`` -> ``switch_ivr_record_file``
    (src/switch_ivr_play_say.c):

    * the file cannot be opened for writing (the switch's user may not write the
      folder, or the folder is missing: ``record`` creates no folder): the channel
      is hung up with ``DESTINATION_OUT_OF_ORDER`` at once (before RECORD_START,
      none is fired, nor RECORD_STOP) and the application completes with
      ``_none_`` after the CHANNEL_HANGUP;
    * otherwise RECORD_START, then the citizen speaks for ``record_default_ms``
      (``sim set``); with a silence threshold, ``SILENCE_S`` (default 3) seconds of
      silence after that end the message (``silence_hits_exhausted=true``); the
      limit ends it at the first whole epoch second past ``start + LIMIT_S``
      (``(now - start) > limit``); a digit in ``playback_terminators`` (unset: ``*``)
      ends it (``playback_terminator_used``), other digits are dropped; a hangup
      ends it. The file is written, ``record_seconds``/``record_ms``/
      ``record_samples``/``record_file_size`` are set and RECORD_STOP fires (no
      ``Record-Completion-Cause``: that is the media bug's).
    """
    words = arg.split()
    if not words:
        return "_none_"  # "No file specified."
    path = words[0]
    limit_s = _atoi(words[1].lstrip("+")) if len(words) > 1 else 0
    threshold = _atoi(words[2]) if len(words) > 2 else 0
    silence_s = (_atoi(words[3]) if len(words) > 3 else 0) or 3
    ch.set_var("playback_terminator_used", None)
    if not ch.is_up:
        return "_none_"
    target = Path(path)
    who = files.identity(sw.settings)
    if not files.can_write_file(target, who) or not files.open_recording(target, who):
        log.debug("record: cannot open %s", path, extra={"uuid": ch.uuid})
        sw.hangup(ch, "DESTINATION_OUT_OF_ORDER", "send_bye")
        return "_none_"
    ch.set_var("silence_hits_exhausted", "false")
    sw.fire("RECORD_START", ch, post=[("Record-File-Path", path)])
    start = sw.clock.now()
    ends: list[tuple[float, str]] = []
    if threshold > 0:
        speaking_s = int(sw.settings.get("record_default_ms", "3000")) / 1000
        ends.append((speaking_s + silence_s, "silence"))
    if limit_s > 0:
        ends.append((math.floor(start) + limit_s + 1 - start, "limit"))
    duration, why = min(ends) if ends else (None, "")
    terminators = playback_terminators(ch.var("playback_terminators"))
    loop = asyncio.get_running_loop()
    deadline = None if duration is None else loop.time() + sw.clock.real_seconds(duration)
    ended = ""
    ch.reading = True
    try:
        while not ended:
            remaining = None if deadline is None else max(0.0, deadline - loop.time())
            result = await sw.wait(
                ch, None if remaining is None else remaining * sw.clock.time_scale, dtmf=True
            )
            if result != "dtmf":
                ended = why if result == "timeout" else result
                break
            while ch.dtmf_buffer and not ended:
                digit = sw.dequeue_dtmf(ch)
                if digit in terminators:
                    ch.set_var("playback_terminator_used", digit)
                    ended = "terminator"
    finally:
        ch.reading = False
    seconds = max(0.0, sw.clock.now() - start)
    if duration is not None:
        seconds = min(seconds, duration)
    samples = int(seconds * 8000)
    size = files.write_recording(target, samples)
    if ended == "silence":
        ch.set_var("silence_hits_exhausted", "true")
    ch.set_var("record_record_file_size", str(size))
    ch.set_var("record_file_size", str(size))
    ch.set_var("record_seconds", str(samples // 8000))
    ch.set_var("record_ms", str(samples // 8))
    ch.set_var("record_samples", str(samples))
    sw.fire("RECORD_STOP", ch, post=[("Record-File-Path", path)])
    return "_none_"


async def _log(sw: Switch, ch: Channel, arg: str) -> str:
    return "_none_"


async def _bridge(sw: Switch, ch: Channel, arg: str) -> str:
    """``bridge user/EXT``: ring the agent, bridge, return when the bridge ends.

    A simplification of FreeSWITCH's bridge application: the new leg is bridged with
    the same events as ``uuid_bridge`` (CHANNEL_BRIDGE on this leg).
    """
    from telephony.sim.api import originate_leg

    if sw.scripts is None:
        return "_none_"
    result, leg, finish = await originate_leg(sw, sw.scripts, arg.strip())
    if leg is None:
        if finish is not None:
            finish()
        ch.set_var("originate_disposition", result.strip().removeprefix("-ERR "))
        return "_none_"
    if not ch.is_up:
        sw.hangup(leg, "ORIGINATOR_CANCEL", "send_bye")
        return "_none_"
    sw.answer_inbound(ch)
    sw.outbound_to_execute(leg)
    # A nested bridge: the park loop around it stays (no UNPARK, its timer is kept).
    park, ch.park = ch.park, None
    in_park, expires = ch.in_park_loop, ch.park_expires
    ch.in_park_loop = False
    sw.bridge(ch, leg)
    ch.park, ch.in_park_loop, ch.park_expires = park, in_park, expires
    while ch.is_up and ch.partner is leg and not ch.unready:
        await sw.wait(ch, None, wake=True)
    return "_none_"


APPS: dict[str, App] = {
    "answer": _answer,
    "pre_answer": _answer,
    "set": _set,
    "export": _export,
    "playback": _playback,
    "speak": _speak,
    "play_and_get_digits": _play_and_get_digits,
    "read": _read,
    "sleep": _sleep,
    "hangup": _hangup,
    "park": _park,
    "eavesdrop": _eavesdrop,
    "three_way": _three_way,
    "record_session": _record_session,
    "record": _record,
    "log": _log,
    "bridge": _bridge,
}


async def run_app(sw: Switch, ch: Channel, app: str, arg: str) -> str:
    """Run one application; unknown apps complete at once with ``_none_``."""
    impl = APPS.get(app)
    if impl is None:
        return "_none_"
    return await impl(sw, ch, arg)
