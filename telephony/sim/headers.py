"""Event header layout, as a real FreeSWITCH 1.11 writes it (derived from the traces).

An event's headers come in this order::

    Event-Name ... Event-Sequence          the core block (13 headers)
    <pre>                                  e.g. Bridge-A/B-Unique-ID, Job-*, Hangup-Cause
    Channel-State ... Answer-State         the channel block
    Hangup-Cause                           once the channel is hung up
    Channel-Read/Write-Codec-*             once media is up
    Caller-*                               the caller profile
    Other-Type, Other-Leg-*                the partner's profile, once there was one
    <mid>                                  DTMF-*
    variable_*                             channel variables (left out by DTMF)
    <post>                                 Application-*, Playback-*, Record-*

Values are filled in from the simulated channel; variable templates from
:mod:`telephony.sim.captured` carry ``⟪token⟫`` placeholders filled by :func:`render`.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

Header = tuple[str, str]

HOSTNAME = "vm"
IPV4 = "192.0.2.2"
IPV6 = "fd00::2"

#: ``Event-Calling-File/Function/Line-Number`` of each event, as seen in the traces.
CALLING: dict[str, tuple[str, str, str]] = {
    "CHANNEL_CREATE": ("switch_core_state_machine.c", "switch_core_session_run", "626"),
    "CHANNEL_ORIGINATE": ("switch_core_state_machine.c", "switch_core_session_run", "632"),
    "CHANNEL_STATE": ("switch_channel.c", "switch_channel_perform_set_running_state", "2409"),
    "CHANNEL_CALLSTATE": ("switch_channel.c", "switch_channel_perform_set_callstate", "302"),
    "CHANNEL_EXECUTE": ("switch_core_session.c", "switch_core_session_exec", "2949"),
    "CHANNEL_EXECUTE_COMPLETE": ("switch_core_session.c", "switch_core_session_exec", "2972"),
    "CHANNEL_PARK": ("switch_ivr.c", "switch_ivr_park", "1002"),
    "CHANNEL_PROGRESS": (
        "switch_channel.c",
        "switch_channel_perform_mark_ring_ready_value",
        "3507",
    ),
    "CHANNEL_PROGRESS_MEDIA": (
        "switch_channel.c",
        "switch_channel_perform_mark_pre_answered",
        "3562",
    ),
    "CHANNEL_ANSWER": ("switch_channel.c", "switch_channel_perform_mark_answered", "3848"),
    "CHANNEL_BRIDGE": ("switch_ivr_bridge.c", "switch_ivr_multi_threaded_bridge", "1689"),
    "CHANNEL_UNBRIDGE": ("switch_ivr_bridge.c", "switch_ivr_multi_threaded_bridge", "1879"),
    "CHANNEL_HOLD": ("switch_ivr.c", "switch_ivr_hold", "1558"),
    "CHANNEL_UNHOLD": ("switch_ivr.c", "switch_ivr_unhold", "1638"),
    "CHANNEL_HANGUP": ("switch_channel.c", "switch_channel_perform_hangup", "3447"),
    "CHANNEL_HANGUP_COMPLETE": (
        "switch_core_state_machine.c",
        "switch_core_session_reporting_state",
        "943",
    ),
    "CHANNEL_DESTROY": ("switch_core_session.c", "switch_core_session_perform_destroy", "1588"),
    "DTMF": ("switch_channel.c", "switch_channel_dequeue_dtmf", "678"),
    "PLAYBACK_START": ("switch_ivr_play_say.c", "switch_ivr_play_file", "1649"),
    "PLAYBACK_STOP": ("switch_ivr_play_say.c", "switch_ivr_play_file", "2023"),
    "RECORD_START": ("switch_ivr_async.c", "record_callback", "1482"),
    "RECORD_STOP": ("switch_ivr_async.c", "send_record_stop_event", "1241"),
    "BACKGROUND_JOB": ("mod_event_socket.c", "api_exec", "1569"),
    "HEARTBEAT": ("switch_core.c", "send_heartbeat", "95"),
    "sofia::register": ("sofia_reg.c", "sofia_reg_handle_register_token", "2059"),
    "sofia::unregister": ("sofia_reg.c", "sofia_reg_handle_register_token", "2213"),
    "sofia::expire": ("sofia_reg.c", "sofia_reg_del_callback", "726"),
}
UUID_BRIDGE_CALLING = ("switch_ivr_bridge.c", "uuid_bridge_on_soft_execute", "1236")

STATE_NUMBER: dict[str, int] = {
    "CS_NEW": 0,
    "CS_INIT": 1,
    "CS_ROUTING": 2,
    "CS_SOFT_EXECUTE": 3,
    "CS_EXECUTE": 4,
    "CS_EXCHANGE_MEDIA": 5,
    "CS_PARK": 6,
    "CS_CONSUME_MEDIA": 7,
    "CS_HIBERNATE": 8,
    "CS_RESET": 9,
    "CS_HANGUP": 10,
    "CS_REPORTING": 11,
    "CS_DESTROY": 12,
}

_TOKEN = re.compile("⟪(=?)([A-Za-z_0-9]+)⟫")


def render(template: str, values: Mapping[str, str], timing: Callable[[str], str]) -> str:
    """Fill ``⟪name⟫`` from ``values`` and ``⟪=name⟫`` from ``timing(name)``."""
    if "⟪" not in template:
        return template

    def sub(m: re.Match[str]) -> str:
        if m.group(1):
            return timing(m.group(2))
        return values.get(m.group(2), "")

    return _TOKEN.sub(sub, template)


@dataclass(slots=True)
class Times:
    """Channel times in µs since the epoch (0 = not yet), shared by the caller profile."""

    created: int = 0
    answered: int = 0
    progress: int = 0
    progress_media: int = 0
    hangup: int = 0
    transfer: int = 0
    resurrect: int = 0
    bridged: int = 0
    last_hold: int = 0
    hold_accum: int = 0

    def items(self, prefix: str) -> list[Header]:
        return [
            (prefix + "Channel-Created-Time", str(self.created)),
            (prefix + "Channel-Answered-Time", str(self.answered)),
            (prefix + "Channel-Progress-Time", str(self.progress)),
            (prefix + "Channel-Progress-Media-Time", str(self.progress_media)),
            (prefix + "Channel-Hangup-Time", str(self.hangup)),
            (prefix + "Channel-Transfer-Time", str(self.transfer)),
            (prefix + "Channel-Resurrect-Time", str(self.resurrect)),
            (prefix + "Channel-Bridged-Time", str(self.bridged)),
            (prefix + "Channel-Last-Hold", str(self.last_hold)),
            (prefix + "Channel-Hold-Accum", str(self.hold_accum)),
        ]


@dataclass(slots=True)
class Profile:
    """A caller profile (``Caller-*`` / ``Other-Leg-*``); ``None`` fields are left out."""

    direction: str
    logical_direction: str
    username: str | None
    dialplan: str | None
    cid_name: str
    cid_num: str
    orig_cid_name: str
    orig_cid_num: str
    callee_name: str | None
    callee_num: str | None
    network_addr: str | None
    ani: str
    dest: str
    uuid: str
    source: str
    transfer_source: str | None
    context: str
    chan_name: str
    rdnis: str | None = None
    index: int = 1
    created: int = 0
    times: Times = field(default_factory=Times)

    def items(self, prefix: str, *, other: bool = False) -> list[Header]:
        out: list[Header] = [
            (prefix + "Direction", self.direction),
            (prefix + "Logical-Direction", self.logical_direction),
        ]
        if self.username is not None:
            out.append((prefix + "Username", self.username))
        if self.dialplan is not None:
            out.append((prefix + "Dialplan", self.dialplan))
        out += [
            (prefix + "Caller-ID-Name", self.cid_name),
            (prefix + "Caller-ID-Number", self.cid_num),
            (prefix + "Orig-Caller-ID-Name", self.orig_cid_name),
            (prefix + "Orig-Caller-ID-Number", self.orig_cid_num),
        ]
        if self.callee_name is not None:
            out.append((prefix + "Callee-ID-Name", self.callee_name))
            out.append((prefix + "Callee-ID-Number", self.callee_num or ""))
        if self.network_addr is not None:
            out.append((prefix + "Network-Addr", self.network_addr))
        out += [
            (prefix + "ANI", self.ani),
            (prefix + "Destination-Number", self.dest),
            (prefix + "Unique-ID", self.uuid),
            (prefix + "Source", self.source),
        ]
        if self.transfer_source is not None:
            out.append((prefix + "Transfer-Source", self.transfer_source))
        out.append((prefix + "Context", self.context))
        if self.rdnis is not None:
            out.append((prefix + "RDNIS", self.rdnis))
        out.append((prefix + "Channel-Name", self.chan_name))
        if not other:
            out.append((prefix + "Profile-Index", str(self.index)))
        out.append((prefix + "Profile-Created-Time", str(self.created)))
        out += self.times.items(prefix)
        out += [
            (prefix + "Screen-Bit", "true"),
            (prefix + "Privacy-Hide-Name", "false"),
            (prefix + "Privacy-Hide-Number", "false"),
        ]
        return out


class DateCache:
    """``Event-Date-Local`` / ``Event-Date-GMT`` strings, recomputed once per second."""

    def __init__(self) -> None:
        self._second = -1
        self._local = ""
        self._gmt = ""

    def get(self, now_us: int) -> tuple[str, str]:
        second = now_us // 1_000_000
        if second != self._second:
            self._second = second
            self._local = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(second))
            self._gmt = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(second))
        return self._local, self._gmt


def core_headers(
    name: str,
    core_uuid: str,
    dates: DateCache,
    now_us: int,
    seq: int,
    calling: tuple[str, str, str],
    subclass: str | None = None,
) -> list[Header]:
    local, gmt = dates.get(now_us)
    out: list[Header] = [("Event-Subclass", subclass)] if subclass else []
    out += [
        ("Event-Name", name),
        ("Core-UUID", core_uuid),
        ("FreeSWITCH-Hostname", HOSTNAME),
        ("FreeSWITCH-Switchname", HOSTNAME),
        ("FreeSWITCH-IPv4", IPV4),
        ("FreeSWITCH-IPv6", IPV6),
        ("Event-Date-Local", local),
        ("Event-Date-GMT", gmt),
        ("Event-Date-Timestamp", str(now_us)),
        ("Event-Calling-File", calling[0]),
        ("Event-Calling-Function", calling[1]),
        ("Event-Calling-Line-Number", calling[2]),
        ("Event-Sequence", str(seq)),
    ]
    return out


CODEC_HEADERS: list[Header] = [
    ("Channel-Read-Codec-Name", "PCMU"),
    ("Channel-Read-Codec-Rate", "8000"),
    ("Channel-Read-Codec-Bit-Rate", "64000"),
    ("Channel-Write-Codec-Name", "PCMU"),
    ("Channel-Write-Codec-Rate", "8000"),
    ("Channel-Write-Codec-Bit-Rate", "64000"),
]


def codec_headers(read_codec: str) -> list[Header]:
    bits = "128000" if read_codec == "L16" else "64000"
    return [
        ("Channel-Read-Codec-Name", read_codec),
        ("Channel-Read-Codec-Rate", "8000"),
        ("Channel-Read-Codec-Bit-Rate", bits),
        *CODEC_HEADERS[3:],
    ]


def variable_items(variables: Iterable[tuple[str, str]]) -> list[Header]:
    return [("variable_" + k, v) for k, v in variables]
