"""The simulated switch: channels, their life cycle, bridging, hold, record, transfer; events.

Theory of operation
-------------------
Everything runs on one asyncio loop, and every event is fired synchronously by the
code that changes the channel, so the order of events per leg is the order of the
statements here (it follows the real traces in ``../shared/freeswitch``):

* inbound leg (``sim call``): CREATE, the dialplan's EXECUTE/EXECUTE_COMPLETE pairs,
  EXECUTE park, CHANNEL_PARK (Call-State RINGING). Queued ``sendmsg`` apps then run
  nested inside park (one worker task per channel, one app at a time). The park
  loop's timer (``park_timeout``) is tested only while no app runs (see "the park
  loop" below and README).
* ``uuid_bridge A B``: EXECUTE_COMPLETE park of both, pseudo EXECUTE ``uuid_bridge``
  on both (no Application-UUID), one CHANNEL_BRIDGE on A only.
* hangup: CHANNEL_HANGUP at once; then (in a task) the running app ends and sends its
  completion, the park completes, the partner is handled (re-park with
  ``park_after_bridge``, else hung up), HANGUP_COMPLETE, DESTROY.

Apps (:mod:`telephony.sim.apps`) await simulated time through :meth:`Switch.wait`,
which returns early when the channel hangs up or receives DTMF it listens for.
"""

from __future__ import annotations

import asyncio
import logging
import random
import re
import time
import uuid as uuidlib
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from telephony.sim import files
from telephony.sim.captured import VARIABLE_PHASES
from telephony.sim.channel import (
    CONTROLLABLE,
    AppRun,
    Channel,
    ExecRequest,
    Mode,
    QueuedDtmf,
    RecordRun,
)
from telephony.sim.clock import SimClock
from telephony.sim.headers import (
    CALLING,
    CODEC_HEADERS,
    STATE_NUMBER,
    UUID_BRIDGE_CALLING,
    DateCache,
    Header,
    Profile,
    Times,
    codec_headers,
    core_headers,
    render,
    variable_items,
)

if TYPE_CHECKING:
    from telephony.sim.scripts import Scripts

log = logging.getLogger(__name__)

#: ``CAUSE_CHART`` of src/switch_channel.c with the codes of ``switch_call_cause_t``
#: (src/include/switch_types.h).
CAUSES: dict[str, int] = {
    "NONE": 0,
    "UNALLOCATED_NUMBER": 1,
    "NO_ROUTE_TRANSIT_NET": 2,
    "NO_ROUTE_DESTINATION": 3,
    "CHANNEL_UNACCEPTABLE": 6,
    "CALL_AWARDED_DELIVERED": 7,
    "NORMAL_CLEARING": 16,
    "USER_BUSY": 17,
    "NO_USER_RESPONSE": 18,
    "NO_ANSWER": 19,
    "SUBSCRIBER_ABSENT": 20,
    "CALL_REJECTED": 21,
    "NUMBER_CHANGED": 22,
    "REDIRECTION_TO_NEW_DESTINATION": 23,
    "EXCHANGE_ROUTING_ERROR": 25,
    "DESTINATION_OUT_OF_ORDER": 27,
    "INVALID_NUMBER_FORMAT": 28,
    "FACILITY_REJECTED": 29,
    "RESPONSE_TO_STATUS_ENQUIRY": 30,
    "NORMAL_UNSPECIFIED": 31,
    "NORMAL_CIRCUIT_CONGESTION": 34,
    "NETWORK_OUT_OF_ORDER": 38,
    "NORMAL_TEMPORARY_FAILURE": 41,
    "SWITCH_CONGESTION": 42,
    "ACCESS_INFO_DISCARDED": 43,
    "REQUESTED_CHAN_UNAVAIL": 44,
    "PRE_EMPTED": 45,
    "FACILITY_NOT_SUBSCRIBED": 50,
    "OUTGOING_CALL_BARRED": 52,
    "INCOMING_CALL_BARRED": 54,
    "BEARERCAPABILITY_NOTAUTH": 57,
    "BEARERCAPABILITY_NOTAVAIL": 58,
    "SERVICE_UNAVAILABLE": 63,
    "BEARERCAPABILITY_NOTIMPL": 65,
    "CHAN_NOT_IMPLEMENTED": 66,
    "FACILITY_NOT_IMPLEMENTED": 69,
    "SERVICE_NOT_IMPLEMENTED": 79,
    "INVALID_CALL_REFERENCE": 81,
    "INCOMPATIBLE_DESTINATION": 88,
    "INVALID_MSG_UNSPECIFIED": 95,
    "MANDATORY_IE_MISSING": 96,
    "MESSAGE_TYPE_NONEXIST": 97,
    "WRONG_MESSAGE": 98,
    "IE_NONEXIST": 99,
    "INVALID_IE_CONTENTS": 100,
    "WRONG_CALL_STATE": 101,
    "RECOVERY_ON_TIMER_EXPIRE": 102,
    "MANDATORY_IE_LENGTH_ERROR": 103,
    "PROTOCOL_ERROR": 111,
    "INTERWORKING": 127,
    "SUCCESS": 142,
    "ORIGINATOR_CANCEL": 487,
    "CRASH": 700,
    "SYSTEM_SHUTDOWN": 701,
    "LOSE_RACE": 702,
    "MANAGER_REQUEST": 703,
    "BLIND_TRANSFER": 800,
    "ATTENDED_TRANSFER": 801,
    "ALLOTTED_TIMEOUT": 802,
    "USER_CHALLENGE": 803,
    "MEDIA_TIMEOUT": 804,
    "PICKED_OFF": 805,
    "USER_NOT_REGISTERED": 806,
    "PROGRESS_TIMEOUT": 807,
    "INVALID_GATEWAY": 808,
    "GATEWAY_DOWN": 809,
    "INVALID_URL": 810,
    "INVALID_PROFILE": 811,
    "NO_PICKUP": 812,
    "SRTP_READ_ERROR": 813,
    "BOWOUT": 814,
    "BUSY_EVERYWHERE": 815,
    "DECLINE": 816,
    "DOES_NOT_EXIST_ANYWHERE": 817,
    "NOT_ACCEPTABLE": 818,
    "UNWANTED": 819,
    "NO_IDENTITY": 820,
    "BAD_IDENTITY_INFO": 821,
    "UNSUPPORTED_CERTIFICATE": 822,
    "INVALID_IDENTITY": 823,
    "STALE_DATE": 824,
    "REJECT_ALL": 825,
}
_CAUSE_BY_CODE = {code: name for name, code in CAUSES.items()}


def str2cause(text: str) -> str:
    """``switch_channel_str2cause`` (src/switch_channel.c): a cause name, any case, or its
    number; anything else (and an empty string) is NORMAL_CLEARING."""
    text = text.strip()
    if not text:
        return "NORMAL_CLEARING"
    if text[0].isdigit():
        return _CAUSE_BY_CODE.get(c_atoi(text), "UNKNOWN")
    upper = text.upper()
    return upper if upper in CAUSES else "NORMAL_CLEARING"


def q850(cause: str) -> str:
    """``hangup_cause_q850``: ``switch_channel_cause_q850`` maps every cause above
    INTERWORKING (127) to NORMAL_CLEARING (16)."""
    code = CAUSES.get(cause, 16)
    return str(code if code <= 127 else 16)


def switch_true(value: str | None) -> bool:
    """``switch_true`` (src/include/switch_utils.h)."""
    if value is None:
        return False
    if value.lower() in ("yes", "on", "true", "t", "enabled", "active", "allow"):
        return True
    return bool(re.fullmatch(r"[+-]?\d+(?:\.\d*)?", value)) and c_atoi(value) != 0


#: One park loop iteration: switch_ivr_park reads a 20 ms frame before it tests the timer.
FRAME_S = 0.02
UNPARK_CALLING = ("switch_ivr.c", "switch_ivr_park", "1213")


def c_atoi(text: str) -> int:
    """C ``atoi``: leading blanks, an optional sign, then digits; 0 if there are none."""
    m = re.match(r"\s*([+-]?\d+)", text)
    return int(m.group(1)) if m else 0


CALLSTATE_NUMBER = {
    "DOWN": 0,
    "DIALING": 1,
    "RINGING": 2,
    "EARLY": 3,
    "ACTIVE": 4,
    "HELD": 5,
    "RING_WAIT": 6,
    "HANGUP": 7,
    "UNHELD": 8,
}


#: A refusing citizen's final response: Hangup-Cause -> (SIP status, reason phrase), as
#: mod_sofia's sofia_glue_sip_cause_to_freeswitch maps them and the capture shows.
SIP_REFUSALS: dict[str, tuple[str, str]] = {
    "USER_BUSY": ("486", "Busy Here"),
    "CALL_REJECTED": ("603", "Decline"),
    "UNALLOCATED_NUMBER": ("404", "Not Found"),
}


def new_uuid() -> str:
    return str(uuidlib.uuid4())


@dataclass(slots=True)
class OutEvent:
    """An event to publish; headers are built once, then shared by every connection."""

    name: str
    subclass: str | None
    headers: list[Header]
    body: str | None = None


class EventSink(Protocol):
    def wants(self, name: str, subclass: str | None) -> bool: ...

    def publish(self, event: OutEvent) -> None: ...


class Controls(Protocol):
    """What ``api sim freeze`` / ``sim drop_connections`` act on (the ESL server)."""

    def freeze(self, seconds: float) -> None: ...

    def drop_connections(self) -> int: ...

    def connection_count(self) -> int: ...


class NullSink:
    def wants(self, name: str, subclass: str | None) -> bool:
        return False

    def publish(self, event: OutEvent) -> None:
        return None


class Switch:
    """The simulated FreeSWITCH core: channel registry, event firing and call control."""

    def __init__(self, clock: SimClock, sink: EventSink | None = None) -> None:
        self.clock = clock
        self.sink: EventSink = sink or NullSink()
        self.core_uuid = new_uuid()
        self.channels: dict[str, Channel] = {}
        #: Destroyed channels still listed by ``show channels`` for a moment, as on FreeSWITCH.
        self.lingering: dict[str, Channel] = {}
        self.seq = 1000
        self.sessions_since_start = 0
        self.started = time.time()
        self._dates = DateCache()
        self._session_id = 0
        self.tasks: set[asyncio.Task[None]] = set()
        self.settings: dict[str, str] = {
            "playback_default_ms": "2000",
            "linger_ms": "500",
            "expire_linger_ms": "900",
            "local_stream_ms": "-1",
            "gateways": "carrier",
        }
        # Set by the app module at import (avoids an import cycle).
        self.run_app: Callable[[Switch, Channel, str, str], Awaitable[str]] | None = None
        self.run_dialplan: Callable[[Switch, Channel], Coroutine[Any, Any, None]] | None = None
        self.scripts: Scripts | None = None
        self.controls: Controls | None = None

    # ------------------------------------------------------------------ tasks

    def spawn(self, coro: Coroutine[Any, Any, None], name: str = "") -> asyncio.Task[None]:
        task = asyncio.get_running_loop().create_task(coro, name=name or None)
        self.tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self.tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error(
                "simulator task failed",
                exc_info=task.exception(),
                extra={"task": task.get_name()},
            )

    async def heartbeat(self, interval: float = 20.0) -> None:
        """HEARTBEAT every ``interval`` simulated seconds, as FreeSWITCH's core sends it."""
        while True:
            await self.clock.sleep(interval)
            if not self.sink.wants("HEARTBEAT", None):
                self.seq += 1
                continue
            up_ms = int((self.clock.now() - self.started) * 1000)
            n = str(len(self.channels))
            self.fire(
                "HEARTBEAT",
                extra=[
                    ("Event-Info", "System Ready"),
                    ("Up-Time", _uptime(up_ms)),
                    ("FreeSWITCH-Version", "1.11.1-release~64bit"),
                    ("Uptime-msec", str(up_ms)),
                    ("Session-Count", n),
                    ("Max-Sessions", "1000"),
                    ("Session-Per-Sec", "30"),
                    ("Session-Per-Sec-Last", "1"),
                    ("Session-Per-Sec-Max", "5"),
                    ("Session-Per-Sec-FiveMin", "5"),
                    ("Session-Since-Startup", str(self.sessions_since_start)),
                    ("Session-Peak-Max", n),
                    ("Session-Peak-FiveMin", n),
                    ("Idle-CPU", "98.933333"),
                ],
            )

    async def close(self) -> None:
        for task in list(self.tasks):
            task.cancel()
        if self.tasks:
            await asyncio.gather(*self.tasks, return_exceptions=True)

    # ----------------------------------------------------------------- events

    def now_us(self) -> int:
        return self.clock.now_us()

    def next_seq(self) -> int:
        self.seq += 1
        return self.seq

    def fire(
        self,
        name: str,
        ch: Channel | None = None,
        *,
        pre: Iterable[Header] = (),
        mid: Iterable[Header] = (),
        post: Iterable[Header] = (),
        body: str | None = None,
        subclass: str | None = None,
        calling: tuple[str, str, str] | None = None,
        variables: bool = True,
        extra: Iterable[Header] = (),
    ) -> None:
        """Build and publish one event (only if a connection subscribed to it)."""
        seq = self.next_seq()
        if not self.sink.wants(name, subclass):
            return
        now = self.now_us()
        call = calling or CALLING.get(
            subclass or name, ("switch_event.c", "switch_event_fire", "1")
        )
        headers = core_headers(name, self.core_uuid, self._dates, now, seq, call, subclass)
        headers += pre
        if ch is not None:
            headers += self.channel_headers(ch)
            headers += mid
            if variables:
                headers += variable_items(ch.variables.items())
        headers += extra
        headers += post
        self.sink.publish(OutEvent(name, subclass, headers, body))

    def set_state(self, ch: Channel, state: str) -> None:
        """Change ``Channel-State``; CHANNEL_STATE goes to whoever subscribed to it."""
        if ch.state == state:
            return
        ch.state = state
        if self.sink.wants("CHANNEL_STATE", None):
            self.fire("CHANNEL_STATE", ch)
        else:
            self.seq += 1

    def set_callstate(self, ch: Channel, callstate: str) -> None:
        """Change ``Channel-Call-State``; CHANNEL_CALLSTATE carries the previous one."""
        if ch.callstate == callstate:
            return
        previous, ch.callstate = ch.callstate, callstate
        if self.sink.wants("CHANNEL_CALLSTATE", None):
            pre = [
                ("Original-Channel-Call-State", previous),
                ("Channel-Call-State-Number", str(CALLSTATE_NUMBER.get(callstate, 0))),
            ]
            self.fire("CHANNEL_CALLSTATE", ch, pre=pre)
        else:
            self.seq += 1

    def channel_headers(self, ch: Channel) -> list[Header]:
        number = ch.state_number if ch.state_number is not None else STATE_NUMBER[ch.state]
        out: list[Header] = [
            ("Channel-State", ch.state),
            ("Channel-Call-State", ch.callstate),
            ("Channel-State-Number", str(number)),
            ("Channel-Name", ch.name),
            ("Unique-ID", ch.uuid),
            ("Call-Direction", ch.direction),
            ("Presence-Call-Direction", ch.direction),
            ("Channel-HIT-Dialplan", "true" if ch.hit_dialplan else "false"),
            ("Channel-Presence-ID", ch.presence_id),
            ("Channel-Call-UUID", ch.call_uuid),
            ("Answer-State", ch.answer_state),
        ]
        if ch.hangup_cause:
            out.append(("Hangup-Cause", ch.hangup_cause))
        if ch.media:
            out += CODEC_HEADERS if ch.codec == "PCMU" else codec_headers(ch.codec)
        out += ch.profile.items("Caller-")
        if ch.other is not None:
            out.append(("Other-Type", ch.other[0]))
            out += ch.other[1].items("Other-Leg-", other=True)
        return out

    def channel_data(self, ch: Channel) -> list[Header]:
        """``uuid_dump``: a CHANNEL_DATA header list."""
        headers = core_headers(
            "CHANNEL_DATA",
            self.core_uuid,
            self._dates,
            self.now_us(),
            self.next_seq(),
            ("mod_commands.c", "uuid_dump_function", "6495"),
        )
        return headers + self.channel_headers(ch) + variable_items(ch.variables.items())

    # --------------------------------------------------------------- variables

    def timing(self, ch: Channel) -> Callable[[str], str]:
        t = ch.times
        end = t.hangup or self.now_us()

        def stamp(us: int) -> str:
            return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(us // 1_000_000)) if us else ""

        def value(name: str) -> str:
            bases = {
                "start": t.created,
                "answer": t.answered,
                "progress": t.progress,
                "progress_media": t.progress_media,
                "end": end,
                "resurrect": 0,
                "bridge": t.bridged,
                "profile_start": ch.profile.created,
                "hold": t.last_hold,
                "last_hold": t.last_hold,
            }
            if name == "sip_invite_stamp":
                return str(t.created)
            for suffix, kind in (("_uepoch", "u"), ("_epoch", "s"), ("_stamp", "t")):
                if name.endswith(suffix):
                    us = bases.get(name[: -len(suffix)], 0)
                    if kind == "u":
                        return str(us)
                    if kind == "s":
                        return str(us // 1_000_000)
                    return stamp(us)
            spans = {
                "duration": end - t.created,
                "billsec": end - t.answered if t.answered else 0,
                "flow_billsec": end - t.created,
                "progresssec": t.progress - t.created if t.progress else 0,
                "answersec": t.answered - t.created if t.answered else 0,
                "waitsec": (t.bridged or t.answered) - t.created
                if (t.bridged or t.answered)
                else 0,
                "progress_mediasec": t.progress_media - t.created if t.progress_media else 0,
            }
            for sname, us in spans.items():
                root = sname[:-3]
                if name == sname:
                    return str(us // 1_000_000)
                if name == root + "msec" or (sname == "duration" and name == "mduration"):
                    return str(us // 1000)
                if name == root + "usec" or (sname == "duration" and name == "uduration"):
                    return str(us)
            return "0"

        return value

    def apply_phase(self, ch: Channel, phase: str) -> None:
        """Replace the endpoint variables by a captured phase; keep the managed ones."""
        timing = self.timing(ch)
        variables = ch.variables
        managed = ch.managed
        for k, v in VARIABLE_PHASES[phase]:
            if k not in managed:
                variables[k] = render(v, ch.tokens, timing)

    # -------------------------------------------------------------- channels

    def _session(self) -> str:
        self._session_id += 1
        self.sessions_since_start += 1
        return str(self._session_id)

    def _tokens(self, **kw: str) -> dict[str, str]:
        tokens = {
            "session_id": self._session(),
            "local_media_port": str(random.randrange(16384, 32768, 2)),
            "remote_media_port": str(random.randrange(6000, 7000, 2)),
            "rtp_use_ssrc": str(random.getrandbits(32)),
            "other_uuid": new_uuid(),
            "other_cid": "0000000000",
        }
        tokens.update(kw)
        return tokens

    def new_inbound(self, dest: str, caller: str, *, caller_name: str | None = None) -> Channel:
        """A citizen's call arriving over SIP (CHANNEL_CREATE is fired here)."""
        uid = new_uuid()
        now = self.now_us()
        name = f"sofia/internal/{caller}@127.0.0.1:5070"
        times = Times(created=now)
        cname = caller_name or caller
        profile = Profile(
            direction="inbound",
            logical_direction="inbound",
            username=caller,
            dialplan="XML",
            cid_name=cname,
            cid_num=caller,
            orig_cid_name=cname,
            orig_cid_num=caller,
            callee_name=None,
            callee_num=None,
            network_addr="127.0.0.1",
            ani=caller,
            dest=dest,
            uuid=uid,
            source="mod_sofia",
            transfer_source=None,
            context="public",
            chan_name=name,
            created=now,
            times=times,
        )
        ch = Channel(
            uuid=uid,
            name=name,
            direction="inbound",
            profile=profile,
            presence_id=f"{caller}@127.0.0.1",
            tokens=self._tokens(
                uuid=uid,
                cid=caller,
                dest=dest,
                sip_call_id=f"{random.randint(1, 999999)}-{random.randint(1000, 99999)}@127.0.0.1",
            ),
            times=times,
            call_uuid=uid,
        )
        self.apply_phase(ch, "in_create")
        ch.set_var("uuid", uid)
        ch.set_var("call_uuid", uid)
        if caller_name is not None:
            # The SIP From display name (sofia copies it, bytes as they came).
            ch.set_var("sip_from_display", caller_name)
            full_from = ch.var("sip_full_from") or ""
            if full_from.startswith(f'"{caller}"'):
                ch.set_var("sip_full_from", f'"{caller_name}"' + full_from[len(caller) + 2 :])
        self.channels[uid] = ch
        self.set_state(ch, "CS_INIT")
        ch.state_number = 2
        self.fire("CHANNEL_CREATE", ch)
        ch.state_number = None
        return ch

    def new_outbound(self, ext: str, port: int, origin_vars: dict[str, str], uid: str) -> Channel:
        """An agent leg being originated to ``user/EXT`` (CREATE and ORIGINATE fired here)."""
        return self._originated(
            f"sofia/internal/{ext}@127.0.0.1:{port}",
            ext,
            origin_vars,
            uid,
            source="src/switch_ivr_originate.c",
            presence_id=f"{ext}@127.0.0.1",
            port=port,
            ext=ext,
            phase="out_create",
        )

    def new_gateway(
        self, gateway: str, number: str, origin_vars: dict[str, str], uid: str
    ) -> Channel:
        """A leg to a citizen through a carrier gateway (``sofia/gateway/GW/NUMBER``); the
        capture names it ``sofia/internal/NUMBER`` (CREATE and ORIGINATE fired here)."""
        return self._originated(
            f"sofia/internal/{number}",
            number,
            origin_vars,
            uid,
            source="src/switch_ivr_originate.c",
            presence_id="",
            phase="gw_create",
            tokens={"gateway": gateway},
        )

    def new_null(self, dest: str, origin_vars: dict[str, str], uid: str) -> Channel:
        """A leg of mod_loopback's ``null`` endpoint (``originate null/DEST ...``).

        ``null_channel_outgoing_channel``: a channel named ``null/DEST`` with no
        far end, whose read frames are generated (quiet comfort noise), answered
        in CS_CONSUME_MEDIA (see :meth:`answer_null`). CHANNEL_CREATE and
        CHANNEL_ORIGINATE are fired here.
        """
        return self._originated(
            f"null/{dest}", dest, origin_vars, uid, source="mod_loopback", presence_id=""
        )

    def _originated(
        self,
        name: str,
        dest: str,
        origin_vars: dict[str, str],
        uid: str,
        *,
        source: str,
        presence_id: str,
        port: int = 0,
        ext: str | None = None,
        phase: str | None = None,
        tokens: dict[str, str] | None = None,
    ) -> Channel:
        """An outbound leg being originated: CHANNEL_CREATE and CHANNEL_ORIGINATE fired."""
        now = self.now_us()
        ocid = origin_vars.get("origination_caller_id_number", "0000000000")
        ocname = origin_vars.get("origination_caller_id_name", ocid)
        times = Times(created=now)
        profile = Profile(
            direction="outbound",
            logical_direction="outbound",
            username=None,
            dialplan=None,
            cid_name=ocname,
            cid_num=ocid,
            orig_cid_name=ocname,
            orig_cid_num=ocid,
            callee_name="Outbound Call",
            callee_num=dest,
            network_addr=None,
            ani=ocid,
            dest=dest,
            uuid=uid,
            source=source,
            transfer_source=None,
            context="default",
            chan_name=name,
            created=now,
            times=times,
        )
        ch = Channel(
            uuid=uid,
            name=name,
            direction="outbound",
            profile=profile,
            presence_id=presence_id,
            tokens=self._tokens(uuid=uid, ext=dest, port=str(port), ocid=ocid, **(tokens or {})),
            times=times,
            call_uuid=uid,
            hit_dialplan=False,
            ext=ext,
            phases=phase.split("_", 1)[0] if phase else "out",
        )
        if phase is not None:
            self.apply_phase(ch, phase)
        ch.set_var("uuid", uid)
        ch.set_var("call_uuid", uid)
        for k, v in origin_vars.items():
            ch.set_var(k, v)
        self.channels[uid] = ch
        self.set_state(ch, "CS_INIT")
        ch.state_number = 2
        self.fire("CHANNEL_CREATE", ch)
        self.fire("CHANNEL_ORIGINATE", ch)
        ch.state_number = None
        ch.move("originate")
        return ch

    def answer_null(self, ch: Channel) -> None:
        """``null_channel_on_consume_media``: ``switch_channel_mark_answered`` (L16 media)."""
        self.set_state(ch, "CS_CONSUME_MEDIA")
        ch.times.answered = self.now_us()
        ch.answer_state = "answered"
        self.media_up(ch)
        self.set_read_codec(ch, "L16")
        self.fire("CHANNEL_ANSWER", ch)
        self.set_callstate(ch, "ACTIVE")
        ch.answered_evt.set()

    def get(self, uid: str) -> Channel | None:
        ch = self.channels.get(uid)
        return ch if ch is not None and ch.is_up else None

    # ----------------------------------------------------------------- answer

    def media_up(self, ch: Channel) -> None:
        ch.media = True
        ch.codec = "PCMU"
        for name, value in (
            ("read_codec", "PCMU"),
            ("original_read_codec", "PCMU"),
            ("read_rate", "8000"),
            ("original_read_rate", "8000"),
            ("write_codec", "PCMU"),
            ("write_rate", "8000"),
        ):
            ch.set_var(name, value)

    def set_read_codec(self, ch: Channel, codec: str) -> None:
        """eavesdrop reads L16 while it runs; the write codec stays PCMU."""
        ch.codec = codec
        ch.set_var("read_codec", codec)

    def answer_inbound(self, ch: Channel) -> None:
        """``answer`` on an inbound leg: PROGRESS_MEDIA (ringing) then ANSWER (EARLY)."""
        if ch.answer_state == "answered" or not ch.is_up:
            return
        now = self.now_us()
        ch.times.progress_media = now
        ch.answer_state = "early"
        self.media_up(ch)
        self.apply_phase(ch, "in_answer")
        self.fire("CHANNEL_PROGRESS_MEDIA", ch)
        self.set_callstate(ch, "EARLY")
        ch.times.answered = now
        ch.answer_state = "answered"
        self.fire("CHANNEL_ANSWER", ch)
        self.set_callstate(ch, "ACTIVE")
        ch.set_var("endpoint_disposition", "ANSWER")
        ch.answered_evt.set()

    def ring_outbound(self, ch: Channel) -> None:
        self.set_state(ch, "CS_CONSUME_MEDIA")
        ch.times.progress = self.now_us()
        ch.profile.network_addr = "127.0.0.1"
        self.apply_phase(ch, f"{ch.phases}_progress")
        self.fire("CHANNEL_PROGRESS", ch)
        self.set_callstate(ch, "RINGING")

    def answer_outbound(self, ch: Channel) -> None:
        ch.times.answered = self.now_us()
        ch.answer_state = "answered"
        self.media_up(ch)
        self.apply_phase(ch, f"{ch.phases}_answer")
        self.fire("CHANNEL_ANSWER", ch)
        self.set_callstate(ch, "ACTIVE")
        ch.answered_evt.set()

    def outbound_to_execute(self, ch: Channel) -> None:
        """After the job result: FreeSWITCH swaps caller and callee on the answered leg."""
        p = ch.profile
        p.callee_name, p.callee_num = p.orig_cid_name, p.orig_cid_num
        p.cid_name, p.cid_num = "Outbound Call", ch.ext or p.dest
        self.set_state(ch, "CS_EXECUTE")
        ch.hit_dialplan = True
        if not ch.name.startswith("null/"):  # a null leg has no SIP variables
            self.apply_phase(ch, f"{ch.phases}_park")
        ch.move("answered")

    # ------------------------------------------------------------ execution

    def execute_event(self, ch: Channel, app: str, arg: str, app_uuid: str) -> None:
        if arg:
            ch.set_var("current_application_data", arg)
        ch.set_var("current_application", app)
        # switch_core_session_exec clears the response before each application.
        ch.set_var("current_application_response", None)
        ch.show_app = (app, arg)
        post: list[Header] = [("Application", app)]
        if arg:
            post.append(("Application-Data", arg))
        post.append(("Application-UUID", app_uuid))
        self.fire("CHANNEL_EXECUTE", ch, post=post)

    def complete_event(
        self, ch: Channel, app: str, arg: str, app_uuid: str, response: str, *, outer: bool = False
    ) -> None:
        if response != "_none_":
            ch.set_var("current_application_response", response)
        if not outer or not ch.nested_ran:
            ch.set_var("last_app", app)
            if arg:
                ch.set_var("last_arg", arg)
        post: list[Header] = [("Application", app)]
        if arg:
            post.append(("Application-Data", arg))
        post += [("Application-Response", response), ("Application-UUID", app_uuid)]
        self.fire("CHANNEL_EXECUTE_COMPLETE", ch, post=post)

    # ------------------------------------------------------------- the park loop
    #
    # switch_ivr_park (src/switch_ivr.c) is entered by the dialplan ``park`` app and, with
    # no app (state CS_PARK), by switch_core_standard_on_park after park_after_bridge and
    # uuid_park. On entry it reads ``park_timeout`` (``N[:CAUSE]``; atoi(N) >= 0 arms
    # ``expires = switch_epoch_time_now() + N``, whole epoch seconds) and clears it and
    # park_after_bridge. Its loop reads a 20 ms frame, tests ``now >= expires`` (hangup
    # with CAUSE), then runs every queued sendmsg app back to back
    # (switch_ivr_parse_all_events), then dequeues a DTMF digit. So the timer is tested
    # only while no nested app runs, one frame after the last one ends. The loop leaves
    # when the channel is not ready (CF_TRANSFER, a pending state change, hangup) and
    # fires CHANNEL_UNPARK. Here that is event-driven: ``Channel.in_park_loop``, the
    # deadline ``park_expires`` and one timer handle ``park_check``.

    def enter_park(self, ch: Channel, app_uuid: str) -> None:
        """The ``park`` application: EXECUTE park, CHANNEL_PARK; queued apps may now run."""
        self.execute_event(ch, "park", "", app_uuid)
        ch.park = AppRun("park", "", app_uuid)
        ch.last_response = "_none_"
        ch.nested_ran = False
        ch.move("park")
        self.park_loop(ch)
        self.kick(ch)

    def park_loop(self, ch: Channel) -> None:
        """Entry of switch_ivr_park: consume ``park_timeout``, fire CHANNEL_PARK."""
        ch.park_expires = None
        ch.park_cause = "NORMAL_CLEARING"
        spec = ch.var("park_timeout")
        if spec is not None:
            _, colon, cause = spec.partition(":")
            if colon:
                ch.park_cause = str2cause(cause)
            seconds = c_atoi(spec)
            if seconds >= 0:
                ch.park_expires = int(self.clock.now()) + seconds
            ch.set_var("park_timeout", None)
            ch.set_var("park_after_bridge", None)
        ch.in_park_loop = True
        self.fire("CHANNEL_PARK", ch)
        self._park_arm(ch, FRAME_S)

    def _park_arm(self, ch: Channel, after: float) -> None:
        """Schedule the loop's timer test: at the deadline, not sooner than ``after``
        simulated seconds from now (the frame read that comes before the test)."""
        self._park_cancel(ch)
        if ch.park_expires is None or not ch.in_park_loop or ch.limbo or not ch.is_up:
            return
        delay = max(ch.park_expires - self.clock.now(), after)
        loop = asyncio.get_running_loop()
        ch.park_check = loop.call_later(self.clock.real_seconds(delay), self._park_expire, ch)

    def _park_cancel(self, ch: Channel) -> None:
        if ch.park_check is not None:
            ch.park_check.cancel()
            ch.park_check = None

    def _park_disarm(self, ch: Channel) -> None:
        self._park_cancel(ch)
        ch.park_expires = None

    def app_running(self, ch: Channel) -> bool:
        return ch.worker is not None and not ch.worker.done()

    def _park_expired(self, ch: Channel) -> bool:
        return ch.park_expires is not None and int(self.clock.now() + 1e-3) >= ch.park_expires

    def _park_expire(self, ch: Channel) -> None:
        ch.park_check = None
        if not ch.is_up or not ch.in_park_loop or ch.park_expires is None or ch.limbo:
            return
        if self.app_running(ch):
            return  # inside switch_ivr_parse_all_events: tested again when the apps end
        if not self._park_expired(ch):
            self._park_arm(ch, 0.0)  # the timer woke a moment early
            return
        log.info("park timeout", extra={"uuid": ch.uuid})
        self.hangup(ch, ch.park_cause, "send_bye")

    def _unpark(self, ch: Channel) -> None:
        """switch_ivr_park returns: CHANNEL_UNPARK (if its loop was running)."""
        self._park_disarm(ch)
        if ch.in_park_loop:
            ch.in_park_loop = False
            self.fire("CHANNEL_UNPARK", ch, calling=UNPARK_CALLING)

    def leave_park(self, ch: Channel, *, state_number: int | None = None) -> None:
        """The park ends (bridge, transfer): CHANNEL_UNPARK, then the outer park's
        EXECUTE_COMPLETE with the last nested response. The state change clears
        CF_TRANSFER (switch_core_session_run)."""
        ch.state_number = state_number
        self._unpark(ch)
        run, ch.park = ch.park, None
        if run is not None:
            self.complete_event(ch, run.app, run.arg, run.app_uuid, ch.last_response, outer=True)
        ch.state_number = None
        ch.unready = ch.limbo = ch.repark_pending = False

    def to_cs_park(self, ch: Channel) -> None:
        """State CS_PARK: switch_core_standard_on_park resets the session (queued DTMF is
        flushed, queued sendmsg apps are kept) and runs switch_ivr_park with no app."""
        ch.unready = ch.limbo = ch.repark_pending = False
        ch.dtmf_buffer.clear()
        self.set_state(ch, "CS_PARK")
        ch.move("repark")
        self.park_loop(ch)
        self.kick(ch)

    def park_session(self, ch: Channel) -> bool:
        """``uuid_park`` (switch_ivr_park_session: CF_TRANSFER, state CS_PARK); False when
        the channel's mode is not modelled."""
        if not ch.is_up:
            return True
        if ch.mode is Mode.PARKED:
            # The dialplan park's loop sees the channel not ready and returns; its
            # EXECUTE_COMPLETE comes, then the core runs CS_PARK. A nested app running now
            # stops first (playback: PLAYBACK ERROR), and apps still queued run in the
            # dying loop while the channel is not ready.
            ch.unready = ch.repark_pending = True
            self._park_cancel(ch)
            if self.app_running(ch):
                ch.wake.set()
            else:
                self._repark_now(ch)
            return True
        if ch.mode is Mode.REPARKED:
            # Already in CS_PARK: set_state(CS_PARK) changes nothing, so the loop leaves
            # (CF_TRANSFER) and the session thread sleeps with CF_TRANSFER set until the
            # next state change: no park loop, no timer, queued apps wait.
            if ch.limbo:
                return True
            ch.unready = ch.limbo = True
            self._park_cancel(ch)
            if self.app_running(ch):
                ch.wake.set()
            else:
                self._unpark(ch)
            return True
        if ch.mode is Mode.BRIDGED and ch.partner is not None:
            # The bridge ends with CF_TRANSFER on this leg: it parks (CS_PARK); the
            # partner is handled as after any bridge (park_after_bridge or hangup).
            partner = ch.partner
            self.unbridge(ch)
            self.to_cs_park(ch)
            self.after_bridge(partner)
            return True
        return False

    def _repark_now(self, ch: Channel) -> None:
        self.leave_park(ch)
        self.to_cs_park(ch)

    def _apps_idle(self, ch: Channel) -> None:
        """The queued apps are done (switch_ivr_parse_all_events returned)."""
        if ch.worker is asyncio.current_task():
            ch.worker = None
        if not ch.is_up:
            return
        if ch.repark_pending:
            self._repark_now(ch)
            return
        if ch.limbo:
            self._unpark(ch)
            return
        if ch.unready:
            return  # a state change is pending: the loop leaves without testing the timer
        while ch.dtmf_buffer:
            self.dequeue_dtmf(ch)  # left queued: the loop dequeues and drops them
        if ch.in_park_loop:
            self._park_arm(ch, FRAME_S)

    def enqueue(self, ch: Channel, req: ExecRequest) -> None:
        ch.queue.append(req)
        self.kick(ch)

    def kick(self, ch: Channel) -> None:
        """Start the channel's app worker if apps are queued and the channel takes them."""
        if not ch.queue or ch.mode not in CONTROLLABLE or ch.limbo or self.app_running(ch):
            return
        if ch.in_park_loop and self._park_expired(ch):
            # The loop tests the timer before it runs what was queued: the pending test
            # (within a frame) hangs up, and the queued apps never start.
            if ch.park_check is None:
                self._park_arm(ch, FRAME_S)
            return
        self._park_cancel(ch)
        ch.worker = self.spawn(self._work(ch), name=f"apps-{ch.uuid}")

    async def _work(self, ch: Channel) -> None:
        while ch.queue and ch.is_up and ch.mode in CONTROLLABLE:
            req = ch.queue.popleft()
            total = max(1, req.loops)
            for loop in range(total):
                if not ch.is_up:
                    break
                ch.set_var("current_loop", str(loop + 1))
                ch.set_var("total_loops", str(total))
                await self.execute_app(ch, req.app, req.arg, req.app_uuid)
        self._apps_idle(ch)

    async def execute_app(self, ch: Channel, app: str, arg: str, app_uuid: str) -> str:
        assert self.run_app is not None
        self.execute_event(ch, app, arg, app_uuid)
        try:
            response = await self.run_app(self, ch, app, arg)
        except Exception:
            log.exception("simulated app failed", extra={"uuid": ch.uuid, "app": app})
            response = "-ERR"
        self.complete_event(ch, app, arg, app_uuid, response)
        ch.last_response = response
        ch.nested_ran = True
        return response

    async def wait(
        self, ch: Channel, seconds: float | None, *, dtmf: bool = False, wake: bool = False
    ) -> str:
        """Wait simulated ``seconds`` (None: forever): 'hangup', 'dtmf', 'timeout', or with
        ``wake`` also 'wake' (someone this channel watches changed)."""
        deadline = None
        loop = asyncio.get_running_loop()
        if seconds is not None:
            deadline = loop.time() + self.clock.real_seconds(seconds)
        while True:
            if not ch.is_up:
                return "hangup"
            if ch.unready:
                return "unready"
            if ch.break_requested:
                ch.break_requested = False
                return "break"
            if dtmf and ch.dtmf_buffer:
                return "dtmf"
            ch.wake.clear()
            remaining = None if deadline is None else deadline - loop.time()
            if remaining is not None and remaining <= 0:
                return "timeout"
            try:
                await asyncio.wait_for(ch.wake.wait(), remaining)
            except TimeoutError:
                return "timeout" if ch.is_up else "hangup"
            if wake and ch.is_up:
                return "wake"

    # ----------------------------------------------------------------- DTMF

    def break_media(self, ch: Channel, *, flush: bool) -> None:
        """``uuid_break``: stop what is playing (and with ``all`` the queued apps too)."""
        if flush:
            ch.queue.clear()
        if ch.worker is not None and not ch.worker.done():
            ch.break_requested = True
            ch.wake.set()

    def dtmf(self, ch: Channel, digit: str, duration: int = 2240) -> None:
        """A digit arrives (RFC 2833). Readers dequeue it (and fire DTMF); others see it now."""
        if not ch.is_up:
            return
        self.queue_dtmf(ch, QueuedDtmf(digit, duration, "RTP"))

    def recv_dtmf(self, ch: Channel, digits: str) -> None:
        """``uuid_recv_dtmf``: the digits are queued on ``ch`` as if its far end had sent
        them (switch_channel_queue_dtmf_string, 2000 ms each, ``DTMF-Source: APP``)."""
        for digit in digits:
            if ch.is_up:
                self.queue_dtmf(ch, QueuedDtmf(digit, 2000, "APP"))

    def queue_dtmf(self, ch: Channel, dtmf: QueuedDtmf) -> None:
        """Readers dequeue the digit (and fire DTMF then); others see it at once."""
        ch.digits_dialed += dtmf.digit
        ch.dtmf_buffer.append(dtmf)
        if ch.reading:
            ch.wake.set()
        else:
            self.dequeue_dtmf(ch)

    def dequeue_dtmf(self, ch: Channel) -> str:
        """switch_channel_dequeue_dtmf: the oldest queued digit, with its DTMF event."""
        digit, duration, source = ch.dtmf_buffer.pop(0)
        self.fire(
            "DTMF",
            ch,
            mid=[("DTMF-Digit", digit), ("DTMF-Duration", str(duration)), ("DTMF-Source", source)],
            variables=False,
        )
        return digit

    # ---------------------------------------------------------------- bridge

    def stop_apps_then(self, legs: Iterable[Channel], then: Callable[[], None]) -> None:
        """A state change is pending (uuid_bridge, uuid_transfer): the channel is not
        ready, so a nested app running now stops first (playback: PLAYBACK ERROR) and
        the apps still queued run out, failing fast; then ``then``. At once if idle."""
        busy = [
            ch for ch in legs if self.app_running(ch) and ch.worker is not asyncio.current_task()
        ]
        if not busy:
            then()
            return
        workers = {ch.worker for ch in busy if ch.worker is not None}
        for ch in busy:
            ch.unready = True
            self._park_cancel(ch)
            ch.wake.set()

        async def wait_then() -> None:
            await asyncio.wait(workers)
            then()

        self.spawn(wait_then(), name="after-apps")

    def bridge(self, a: Channel, b: Channel) -> None:
        """``uuid_bridge A B`` (call after the api reply has been sent). Either leg may
        already be bridged to a third one (an attended transfer): that one loses its leg
        (see :meth:`part`), once its own running app has stopped too."""
        legs = (a, b, *self._left_alone(a, b))
        self.stop_apps_then(legs, lambda: self._bridge_now(a, b))

    @staticmethod
    def _left_alone(a: Channel, b: Channel) -> list[Channel]:
        """The current partners of ``a`` and ``b`` that a bridge of ``a`` to ``b`` leaves alone."""
        return [ch.partner for ch in (a, b) if ch.partner is not None and ch.partner not in (a, b)]

    def ready_again(self, ch: Channel) -> None:
        """The pending state change did not happen (a leg of the bridge went away): the
        park loop goes on."""
        if not ch.is_up or not ch.unready or ch.limbo or ch.repark_pending:
            return
        ch.unready = False
        if ch.in_park_loop:
            self._park_arm(ch, FRAME_S)
        self.kick(ch)

    def _bridge_now(self, a: Channel, b: Channel) -> None:
        if not (a.is_up and b.is_up):
            for ch in (a, b, *self._left_alone(a, b)):
                self.ready_again(ch)
            return
        now = self.now_us()
        # switch_ivr_uuid_bridge: the profiles and variables change first, then the state
        # change ends the current bridges (the partner left alone is handled as after any
        # bridge), then the new one starts (uuid_bridge_on_soft_execute).
        parted = [
            (ch, ch.partner) for ch in (a, b) if ch.partner is not None and ch.partner not in (a, b)
        ]
        flipped = self._dialplan_flags(a, b)
        for ch, other in ((a, b), (b, a)):
            p = ch.profile
            p.index += 1
            p.created = now
            ch.times.bridged = 0  # switch_channel_step_caller_profile: new profile times
            src = f"{now // 1_000_000}:{new_uuid()}:uuid_br:{other.uuid}"
            p.transfer_source = src
            append_history(ch, src)
            ch.tokens["other_uuid"] = other.uuid
            ch.set_var("original_destination_number", p.dest)
            ch.set_var("original_caller_id_name", p.cid_name)
            ch.set_var("original_caller_id_number", p.cid_num)
        a.tokens["other_cid"] = b.tokens["other_cid"] = a.profile.cid_num
        b.other = ("originator", self._originator_snapshot(a))
        a.profile.callee_name = b.profile.callee_name or b.profile.orig_cid_name
        a.profile.callee_num = b.profile.callee_num or b.profile.orig_cid_num
        a.other = ("originatee", self._snapshot(b))
        b.profile.cid_name, b.profile.cid_num = a.profile.cid_name, a.profile.cid_num
        for ch, other in ((a, b), (b, a)):
            self.apply_phase(ch, "in_bridged" if ch.direction == "inbound" else "out_bridged")
            ch.set_var("bridge_channel", other.name)
            ch.set_var("bridge_uuid", other.uuid)
            ch.set_var("signal_bond", other.uuid)
        if flipped is not None:
            a.set_var("pre_transfer_caller_id_name", flipped[0])
            a.set_var("pre_transfer_caller_id_number", flipped[1])
        self._own_call(a)
        for ch in (a, b):
            self.leave_park(ch, state_number=8)
        for kept, lost in parted:
            kept.state_number = 8
            self.part(kept, lost)
            kept.state_number = None
        for ch, other in ((a, b), (b, a)):
            ch.partner = other
            ch.bridged_ever = True
            ch.move("bridge")
            self.set_state(ch, "CS_SOFT_EXECUTE")
            ch.show_app = ("uuid_bridge", other.uuid)
            self.fire(
                "CHANNEL_EXECUTE",
                ch,
                post=[("Application", "uuid_bridge"), ("Application-Data", other.uuid)],
                calling=UUID_BRIDGE_CALLING
                if ch is a
                else (UUID_BRIDGE_CALLING[0], UUID_BRIDGE_CALLING[1], "1243"),
            )
        a.bridge_owner, b.bridge_owner = True, False
        b.call_uuid = a.uuid
        b.set_var("call_uuid", a.uuid)
        a.times.bridged = now
        self.fire(
            "CHANNEL_BRIDGE",
            a,
            pre=[("Bridge-A-Unique-ID", a.uuid), ("Bridge-B-Unique-ID", b.uuid)],
        )
        b.times.bridged = now
        for ch, other in ((a, b), (b, a)):  # switch_ivr_multi_threaded_bridge, after the event
            ch.set_var("bridge_to", other.uuid)
            ch.set_var("last_bridge_to", other.uuid)
        self.set_state(b, "CS_EXCHANGE_MEDIA")
        self.kick(a)
        self.kick(b)

    def _dialplan_flags(self, a: Channel, b: Channel) -> tuple[str, str] | None:
        """CF_DIALPLAN as switch_ivr_uuid_bridge sets it: an outbound originator without it
        gets it (logical direction inbound) and its caller id flipped with the callee's
        (switch_channel_flip_cid); an outbound originatee loses it. The originator's
        caller id before a flip, or None."""
        flipped = None
        if a.direction == "outbound" and not a.hit_dialplan:
            p = a.profile
            flipped = (p.cid_name, p.cid_num)
            if p.callee_name is not None:
                p.cid_name = p.callee_name
            if p.callee_num is not None:
                p.cid_num = p.callee_num
            a.hit_dialplan = True
            p.logical_direction = "inbound"
        if b.direction == "outbound" and b.hit_dialplan:
            b.profile.logical_direction = "outbound"
        b.hit_dialplan = False
        return flipped

    @staticmethod
    def _own_call(ch: Channel) -> None:
        """``ch`` is no longer any originator's peer: its call uuid is its own again."""
        ch.call_uuid = ch.uuid
        ch.set_var("call_uuid", ch.uuid)

    def _originator_snapshot(self, ch: Channel) -> Profile:
        """The originator profile a uuid_bridge gives its originatee (no times)."""
        return replace(ch.profile, transfer_source=None, created=0, index=1, times=Times())

    def _snapshot(self, ch: Channel) -> Profile:
        p = ch.profile
        if ch.direction == "outbound":
            return replace(
                p,
                logical_direction="inbound",
                times=Times(
                    created=p.times.created,
                    answered=p.times.answered,
                    progress=p.times.progress,
                    progress_media=p.times.progress_media,
                ),
            )
        return self._originator_snapshot(ch)

    def unbridge_event(self, owner: Channel, other: Channel) -> None:
        pre = [("Bridge-A-Unique-ID", owner.uuid), ("Bridge-B-Unique-ID", other.uuid)]
        self.fire("CHANNEL_UNBRIDGE", owner, pre=pre)

    def unbridge(self, ch: Channel) -> None:
        partner = ch.partner
        if partner is None:
            return
        ch.partner = None
        partner.partner = None
        owner, other = (ch, partner) if ch.bridge_owner else (partner, ch)
        self.unbridge_event(owner, other)

    def part(self, kept: Channel, lost: Channel) -> None:
        """``kept`` leaves its bridge with ``lost`` (``uuid_bridge`` of a bridged leg, as in
        an attended transfer, or ``uuid_park``); ``lost`` is left alone.

        As the ``consult_transfer`` capture shows: a left-alone bridge originator gets its
        CHANNEL_UNBRIDGE, then parks (``park_after_bridge``) or hangs up (HANGUP,
        HANGUP_COMPLETE, DESTROY); a left-alone originatee parks after its originator's
        UNBRIDGE, or hangs up with HANGUP and HANGUP_COMPLETE *before* that UNBRIDGE
        (``signal_bridge_on_hangup``, src/switch_ivr_bridge.c). Its apps have stopped.
        """
        kept.partner = lost.partner = None
        self._own_call(kept)
        if lost.bridge_owner:
            self.unbridge_event(lost, kept)
            self.after_bridge(lost)
            if not lost.is_up:
                kept.set_var("last_bridge_hangup_cause", lost.hangup_cause)
                kept.set_var("bridge_hangup_cause", lost.hangup_cause)
        elif switch_true(lost.var("park_after_bridge")):
            self.unbridge_event(kept, lost)
            self.to_cs_park(lost)
        else:
            self.hangup(lost, "NORMAL_CLEARING", "send_bye", teardown=False)
            kept.set_var("last_bridge_hangup_cause", lost.hangup_cause)
            kept.set_var("bridge_hangup_cause", lost.hangup_cause)
            self._close_apps(lost)
            self._dropped(kept, lost)

    def _dropped(self, owner: Channel, leg: Channel) -> None:
        """The rest of a hung-up originatee's teardown once its apps are done: HANGUP_COMPLETE,
        its originator's UNBRIDGE, DESTROY."""
        self.record_session_stop(leg)
        self.complete_hangup(leg)
        self.unbridge_event(owner, leg)
        self.destroy(leg)

    def after_bridge(self, ch: Channel) -> None:
        """The partner left: re-park with park_after_bridge, else the call is over."""
        if not ch.is_up:
            return
        if switch_true(ch.var("park_after_bridge")):
            self.to_cs_park(ch)
        else:
            self.set_state(ch, "CS_EXECUTE")
            self.hangup(ch, "NORMAL_CLEARING", "send_bye")

    # ------------------------------------------------------------------ hold

    def hold(self, ch: Channel, on: bool) -> None:
        if on == ch.held or not ch.is_up:
            return
        now = self.now_us()
        if on:
            ch.held = True
            ch.hold_started = now
            ch.times.last_hold = now
            self.set_callstate(ch, "HELD")
            self.fire("CHANNEL_HOLD", ch)
            ch.set_var("remote_audio_media_flow", "recvonly")
            partner = ch.partner
            if partner is not None and partner.is_up:
                music = ch.var("hold_music") or "local_stream://moh"
                run = AppRun("playback", music, new_uuid())
                partner.set_var("current_loop", "1")
                loops = re.search(r"loops=(-?\d+)", music)
                partner.set_var("total_loops", loops.group(1) if loops else "1")
                self.execute_event(partner, "playback", music, run.app_uuid)
                self.playback_start(partner, music)
                ch.hold_music_on, ch.hold_music_run = partner, run
        else:
            partner, music_run = ch.hold_music_on, ch.hold_music_run
            ch.hold_music_on = ch.hold_music_run = None
            if partner is not None and music_run is not None and partner.is_up:
                ms = (now - ch.hold_started) // 1000
                self.playback_stop(partner, music_run.arg, ms, "break")
                self.complete_event(
                    partner, music_run.app, music_run.arg, music_run.app_uuid, "FILE PLAYED"
                )
            ch.held = False
            ch.times.hold_accum += now - ch.hold_started
            self.set_callstate(ch, "ACTIVE")
            self.fire("CHANNEL_UNHOLD", ch)
            ch.set_var("remote_audio_media_flow", "sendrecv")

    def playback_start(self, ch: Channel, path: str) -> None:
        kind = path.split("://", 1)[0] if "://" in path else path.rsplit(".", 1)[-1]
        self.fire(
            "PLAYBACK_START",
            ch,
            post=[("Playback-File-Type", kind), ("Playback-File-Path", path)],
        )

    def playback_stop(self, ch: Channel, path: str, ms: int, status: str = "done") -> None:
        kind = path.split("://", 1)[0] if "://" in path else path.rsplit(".", 1)[-1]
        ch.set_var("playback_last_offset_pos", str(ms * 8))
        ch.set_var("playback_seconds", str(ms // 1000))
        ch.set_var("playback_ms", str(ms))
        ch.set_var("playback_samples", str(ms * 8))
        self.fire(
            "PLAYBACK_STOP",
            ch,
            post=[
                ("Playback-File-Type", kind),
                ("Playback-File-Path", path),
                ("Playback-Status", status),
            ],
        )

    # ---------------------------------------------------------------- record

    def record_session_start(
        self, ch: Channel, path: str, limit_s: int = 0, *, announce: bool = True
    ) -> bool:
        """``switch_ivr_record_session_event`` (uuid_record start, record_session).

        False (``-ERR Cannot record session!`` for uuid_record) when the channel has
        no media, or the switch cannot make the folder (``switch_dir_make_recursive``:
        "Error creating") or open the file ("Error opening"): then
        ``record_completion_cause`` is ``uri-failure`` and no event is fired. A path
        already being recorded is a success that starts nothing ("Already
        recording"). Otherwise the file is created (header only) and RECORD_START
        fires (record_callback, SWITCH_ABC_TYPE_INIT); with a limit the media bug
        ends itself ``limit_s`` later. ``announce=False`` leaves RECORD_START to
        :meth:`record_started` (an api command fires it after its reply).
        """
        if not ch.is_up or not ch.media:
            return False  # "Can not record session.  Media not enabled on channel"
        if path in ch.recordings:
            return True
        target = Path(path)
        who = files.identity(self.settings)
        if not files.make_folders(target.parent, who):
            log.debug("Error creating %s", target.parent, extra={"uuid": ch.uuid})
            ch.set_var("record_completion_cause", "uri-failure")
            return False
        if not files.can_write_file(target, who) or not files.open_recording(target, who):
            log.debug("Error opening %s", path, extra={"uuid": ch.uuid})
            ch.set_var("record_completion_cause", "uri-failure")
            return False
        run = RecordRun(path, self.now_us())
        ch.recordings[path] = run
        if limit_s > 0:
            loop = asyncio.get_running_loop()
            run.limit_timer = loop.call_later(
                self.clock.real_seconds(limit_s), self.record_session_stop, ch, path
            )
        if announce:
            self.record_started(ch, path)
        return True

    def record_started(self, ch: Channel, path: str) -> None:
        """RECORD_START of a recording that runs (record_callback, SWITCH_ABC_TYPE_INIT)."""
        if path in ch.recordings:
            self.fire("RECORD_START", ch, post=[("Record-File-Path", path)])

    def record_session_stop(self, ch: Channel, path: str = "all") -> bool:
        """``switch_ivr_stop_record_session``: stop one path (or ``all``); False if none ran.

        The media bug's close (record_callback, SWITCH_ABC_TYPE_CLOSE): the file is
        written; ``record_samples/seconds/ms`` and ``record_file_size`` are set; a
        recording that got no audio is discarded (``RECORD_DISCARDED``, the file
        removed, ``empty-file``); otherwise the cause is ``success-maxtime``, or
        ``success-silence`` when the channel is already hung up (no silence detection:
        speech counts as detected). Then RECORD_STOP (send_record_stop_event).
        """
        paths = list(ch.recordings) if path == "all" else [path]
        stopped = False
        for one in paths:
            run = ch.recordings.pop(one, None)
            if run is None:
                continue
            stopped = True
            if run.limit_timer is not None:
                run.limit_timer.cancel()
            ms = max(0, (self.now_us() - run.started_us) // 1000)
            samples = ms * 8
            target = Path(one)
            if samples == 0:
                ch.set_var("record_file_size", str(files.WAV_HEADER_BYTES))
                ch.set_var("RECORD_DISCARDED", "true")
                files.remove(target)
                cause = "empty-file"
            else:
                size = files.write_recording(target, samples)
                ch.set_var("record_file_size", str(size or files.WAV_HEADER_BYTES))
                cause = "success-maxtime" if ch.is_up else "success-silence"
            ch.set_var("record_samples", str(samples))
            ch.set_var("record_seconds", str(samples // 8000))
            ch.set_var("record_ms", str(samples // 8))
            ch.set_var("record_completion_cause", cause)
            self.fire(
                "RECORD_STOP",
                ch,
                post=[("Record-File-Path", one), ("Record-Completion-Cause", cause)],
            )
        return stopped

    # ---------------------------------------------------------------- hangup

    def hangup(
        self,
        ch: Channel,
        cause: str = "NORMAL_CLEARING",
        disposition: str = "send_bye",
        *,
        teardown: bool = True,
    ) -> None:
        """CHANNEL_HANGUP now; the rest of the teardown follows in a task (or by the caller)."""
        if not ch.is_up:
            return
        cause = str2cause(cause)
        ch.move("hangup")
        ch.show_state = (ch.state, ch.callstate, ch.call_uuid)
        ch.hangup_cause = cause
        ch.disposition = disposition
        ch.answer_state = "hangup"
        ch.state_number = 10
        ch.set_var("hangup_cause", cause)
        ch.set_var("hangup_cause_q850", q850(cause))
        ch.set_var("sip_hangup_disposition", disposition)
        if ch.name.startswith("sofia/"):
            if disposition == "recv_bye":
                # sofia_handle_sip_i_bye: the BYE's status and the cause it maps to.
                ch.set_var("sip_term_status", "200")
                ch.set_var("proto_specific_hangup_cause", "sip:200")
                ch.set_var("sip_term_cause", q850(cause))
            elif disposition == "send_cancel" and ch.direction == "outbound":
                # sofia_on_hangup of a leg that never answered: CANCEL, "487".
                ch.set_var("sip_invite_failure_status", "487")
                ch.set_var("sip_invite_failure_phrase", "CANCEL")
        self._park_disarm(ch)
        partner = ch.partner
        if partner is not None and partner.is_up:
            partner.set_var("last_bridge_hangup_cause", cause)
            partner.set_var("bridge_hangup_cause", cause)
        self.fire("CHANNEL_HANGUP", ch)
        ch.hungup.set()
        ch.wake.set()
        for watcher in ch.watchers:
            watcher.wake.set()
        if teardown:
            self.spawn(self._teardown(ch), name=f"teardown-{ch.uuid}")

    async def _finish_apps(self, ch: Channel) -> None:
        ch.queue.clear()
        worker = ch.worker
        if worker is not None and not worker.done() and worker is not asyncio.current_task():
            await asyncio.wait({worker})
        self._close_apps(ch)

    def _close_apps(self, ch: Channel) -> None:
        """A hung-up channel whose running app has returned: the one-shot app's and the
        park's EXECUTE_COMPLETE (after CHANNEL_UNPARK)."""
        ch.queue.clear()
        one_shot, ch.app_run = ch.app_run, None
        if one_shot is not None:
            self.complete_event(ch, one_shot.app, one_shot.arg, one_shot.app_uuid, ch.last_response)
        self._unpark(ch)  # the park loop sees the channel down and returns
        park, ch.park = ch.park, None
        if park is not None:
            self.complete_event(ch, park.app, park.arg, park.app_uuid, ch.last_response, outer=True)

    async def _teardown(self, ch: Channel) -> None:
        await asyncio.sleep(0)
        await self._finish_apps(ch)
        self.record_session_stop(ch)
        if ch.held:
            ch.held = False
        partner = ch.partner
        if partner is not None and partner.is_up:
            ch.partner = partner.partner = None
            partner.set_var("last_bridge_hangup_cause", ch.hangup_cause)
            partner.set_var("bridge_hangup_cause", ch.hangup_cause)
            if ch.bridge_owner:
                ch.set_var("bridge_hangup_cause", ch.hangup_cause)
                if ch in partner.watching and partner.worker is not None:
                    await asyncio.wait({partner.worker})
                if partner.is_up and switch_true(partner.var("park_after_bridge")):
                    self.unbridge_event(ch, partner)
                    self.after_bridge(partner)
                else:
                    self.hangup(
                        partner, ch.hangup_cause or "NORMAL_CLEARING", "send_bye", teardown=False
                    )
                    await self._finish_apps(partner)
                    self._dropped(ch, partner)
                self.complete_hangup(ch)
                self.destroy(ch)
            else:
                self.complete_hangup(ch)
                self.unbridge_event(partner, ch)
                self.after_bridge(partner)
                self.destroy(ch)
            return
        self.complete_hangup(ch)
        self.destroy(ch)

    def refuse(self, ch: Channel, cause: str) -> None:
        """A final response >= 400 to the INVITE before any 18x (mod_sofia
        sofia_handle_sip_r_invite, then nua_callstate_terminated in sofia_handle_sip_i_state):
        the leg is in CS_CONSUME_MEDIA, learns the reply's addresses, gets
        ``sip_invite_failure_status/phrase``, ``sip_term_status``,
        ``proto_specific_hangup_cause`` (``sip:486``), ``sip_term_cause`` (the q850 code of
        ``sofia_glue_sip_cause_to_freeswitch``) and hangs up with ``recv_refuse``."""
        status, phrase = SIP_REFUSALS[cause]
        self.set_state(ch, "CS_CONSUME_MEDIA")
        ch.profile.network_addr = "127.0.0.1"
        if ch.phases == "gw":
            self.apply_phase(ch, "gw_refused")
        ch.set_var("sip_invite_failure_status", status)
        ch.set_var("sip_invite_failure_phrase", phrase)
        ch.set_var("sip_term_status", status)
        ch.set_var("proto_specific_hangup_cause", f"sip:{status}")
        ch.set_var("sip_term_cause", q850(cause))
        self.hangup(ch, cause, "recv_refuse", teardown=False)

    def complete_hangup(self, ch: Channel) -> None:
        if ch.direction == "inbound":
            phase = "in_hangup_complete"
        elif ch.bridged_ever:
            phase = "out_hangup_complete_bridged"
        elif ch.times.answered:
            phase = f"{ch.phases}_hangup_complete"
        elif ch.phases == "gw" and not ch.times.progress:
            phase = "gw_hangup_complete_refused"  # a final response before any 18x
        else:
            phase = f"{ch.phases}_hangup_complete_unanswered"
        ch.state_number = None
        self.set_state(ch, "CS_REPORTING")
        self.set_callstate(ch, "HANGUP")
        ch.times.hangup = self.now_us()
        ch.set_var("sip_hangup_disposition", ch.disposition)
        ch.set_var("digits_dialed", ch.digits_dialed or "none")
        self.apply_phase(ch, phase)
        self.fire("CHANNEL_HANGUP_COMPLETE", ch, pre=[("Hangup-Cause", ch.hangup_cause or "")])

    def destroy(self, ch: Channel) -> None:
        if ch.destroyed:
            return
        ch.destroyed = True
        ch.state_number = 12
        if ch.direction == "outbound":
            ch.call_uuid = ch.uuid
            ch.set_var("call_uuid", ch.uuid)
        self.fire("CHANNEL_DESTROY", ch)
        ch.done.set()
        self.channels.pop(ch.uuid, None)
        self.lingering[ch.uuid] = ch
        linger = self.clock.real_seconds(float(self.settings["linger_ms"]) / 1000)
        asyncio.get_running_loop().call_later(linger, self.lingering.pop, ch.uuid, None)

    # -------------------------------------------------------------- transfer

    def transfer(self, ch: Channel, dest: str, dialplan: str, context: str, *, both: bool) -> None:
        """``uuid_transfer``: leave park/bridge and run the dialplan for ``dest``."""
        if not ch.is_up:
            return
        partner = ch.partner
        now = self.now_us()
        legs = [ch]
        if partner is not None and partner.is_up:
            owner, other = (ch, partner) if ch.bridge_owner else (partner, ch)
            if both:
                legs = [owner, other]
                ch.partner = partner.partner = None
                for leg in legs:
                    self._retarget(leg, dest, dialplan, context, now)
                    leg.other = None
                other.profile.callee_name = owner.profile.cid_name
                other.profile.callee_num = owner.profile.cid_num
                owner.state_number = 2
                self.unbridge_event(owner, other)
                owner.state_number = None
            else:
                ch.partner = partner.partner = None
                ch.set_var("last_bridge_hangup_cause", "NORMAL_CLEARING")
                ch.set_var("bridge_hangup_cause", "NORMAL_CLEARING")
                self.hangup(partner, "NORMAL_CLEARING", "send_bye", teardown=False)
                self.spawn(self._transfer_after_kill(ch, partner, dest, dialplan, context, now))
                return
        else:

            def leave() -> None:
                if not ch.is_up:
                    return
                self.leave_park(ch)
                self._retarget(ch, dest, dialplan, context, now)
                self._route(ch)

            self.stop_apps_then((ch,), leave)
            return
        for leg in legs:
            self._route(leg)

    async def _transfer_after_kill(
        self, ch: Channel, partner: Channel, dest: str, dialplan: str, context: str, now: int
    ) -> None:
        await self._finish_apps(partner)
        self.complete_hangup(partner)
        self._retarget(ch, dest, dialplan, context, now)
        owner, other = (ch, partner) if ch.bridge_owner else (partner, ch)
        ch.other = None
        owner.state_number = 2
        self.unbridge_event(owner, other)
        owner.state_number = None
        self.destroy(partner)
        self._route(ch)

    def _retarget(self, ch: Channel, dest: str, dialplan: str, context: str, now: int) -> None:
        p = ch.profile
        src = f"{now // 1_000_000}:{new_uuid()}:bl_xfer:{dest}/{context}/{dialplan}"
        p.rdnis = p.dest
        p.dest, p.context = dest, context
        p.index += 1
        p.created = now
        p.transfer_source = src
        ch.times.bridged = 0
        if ch.direction == "outbound":
            p.cid_name, p.cid_num = p.orig_cid_name, p.orig_cid_num
            p.dialplan = dialplan
            ch.hit_dialplan = True
            ch.call_uuid = ch.uuid
            ch.set_var("call_uuid", ch.uuid)
        append_history(ch, src)

    def _route(self, ch: Channel) -> None:
        assert self.run_dialplan is not None
        ch.move("route")
        self.set_state(ch, "CS_EXECUTE")
        self.spawn(self.run_dialplan(self, ch), name=f"dialplan-{ch.uuid}")


def _uptime(ms: int) -> str:
    secs, msec = divmod(ms, 1000)
    days, rem = divmod(secs, 86400)
    years, days = divmod(days, 365)
    hours, rem = divmod(rem, 3600)
    minutes, seconds = divmod(rem, 60)
    return (
        f"{years} years, {days} days, {hours} hours, {minutes} minutes, {seconds} seconds, "
        f"{msec} milliseconds, 0 microseconds"
    )


def append_history(ch: Channel, src: str) -> None:
    """``transfer_history`` becomes an ``ARRAY::a|:b`` from its second entry on."""
    history = ch.var("transfer_history")
    if history is None:
        value = src
    elif history.startswith("ARRAY::"):
        value = f"{history}|:{src}"
    else:
        value = f"ARRAY::{history}|:{src}"
    ch.set_var("transfer_history", value)
    ch.set_var("transfer_source", src)
