"""``api`` / ``bgapi`` commands: originate, ``uuid_*``, ``show``, ``sofia``, ``status``, ``sim``.

:func:`execute` returns the reply body (byte-exact with FreeSWITCH: which bodies end in
a newline and which do not is listed in ``../shared/freeswitch/README.md``) and an
optional *after* callback. The server sends the reply first and then calls *after*,
because FreeSWITCH's own order is "api reply, then the events" for ``uuid_bridge``,
``uuid_kill``, ``uuid_transfer``, ``uuid_record``; ``uuid_hold`` acts before replying.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

import orjson

from telephony.sim import wire
from telephony.sim.channel import AppRun, Channel, ExecRequest, Mode
from telephony.sim.scripts import CITIZEN_REFUSALS
from telephony.sim.switch import Switch, new_uuid, str2cause

if TYPE_CHECKING:
    from telephony.sim.scripts import Scripts

log = logging.getLogger(__name__)

After = Callable[[], None] | None
RULE = "=" * 97
VERSION = "FreeSWITCH Version 1.11.1-release~64bit ( 64bit)\n"
NO_CHANNEL = "-ERR No such channel!\n"

SIM_HELP = """\
Simulator commands (api sim ...); everything they create is simulated:
  sim call DEST CALLER [dtmf=DIGITS] [dtmf_delay_ms=N] [hangup_after_s=N]
           [name=TEXT|name_hex=HEX]
      a citizen calls DEST from CALLER -> +OK <uuid>. DIGITS are sent one every N ms
      (default 1000) after the answer; hangup_after_s counts from the answer (a call
      not answered by then is abandoned while ringing); default: wait for the far end.
      name / name_hex: the caller-ID name (default CALLER); name_hex gives raw bytes
      (e.g. GBK c0eec4c8), sent as FreeSWITCH does: URL-encoded in event plain and
      uuid_dump, the bytes themselves in event json and JSON api bodies (not UTF-8).
  sim calls COUNT RATE DEST CALLER_PREFIX [dtmf=...] [dtmf_delay_ms=N] [hangup_after_s=N]
      COUNT citizens call DEST, RATE new calls per (simulated) second, from CALLER_PREFIX
      followed by a 6-digit sequence number -> +OK COUNT (for load runs)
  sim phone EXT [answer_after_ms=N|never|reject] [expires=S]
      register an agent phone on EXT (sofia::register) -> +OK
  sim citizen NUMBER [answer|busy|no_answer|reject|not_found] [answer_after_ms=N]
             [dtmf=DIGITS] [dtmf_delay_ms=N] [hangup_after_s=N]
      script the citizen an `originate sofia/gateway/GW/NUMBER` reaches (default: answers
      after 1000 ms): busy 486 USER_BUSY, reject 603 CALL_REJECTED, not_found 404
      UNALLOCATED_NUMBER (recv_refuse), no_answer rings until originate_timeout
      (NO_ANSWER); after the answer DIGITS one every N ms, BYE hangup_after_s after the
      answer. Gateways: `sim set gateways carrier,...` (others: -ERR INVALID_GATEWAY)
  sim unregister EXT        the phone un-registers (sofia::unregister)
  sim expire EXT            the registration expires (sofia::expire)
  sim hangup UUID           the far end of UUID hangs up (BYE, recv_bye)
  sim dtmf UUID DIGITS      the far end of UUID sends RFC 2833 digits
  sim set NAME VALUE        playback_default_ms (default 2000), linger_ms (500),
                            record_default_ms (3000: how long a voice message lasts),
                            local_stream_ms (-1: local_stream:// music never ends; N: it
                            ends after N ms, as an empty local stream does),
                            hotline_park_timeout (60) / hotline_hold_music (a tone): what
                            the hotline extension sets (the later captures' lab dialplan:
                            60:NORMAL_TEMPORARY_FAILURE and local_stream://moh),
                            switch_uid / switch_gid / switch_groups (gid,gid,...): the
                            user the switch runs as, whose permissions decide where it
                            can record (default: this process's own; e.g. 499 499 for
                            a packaged switch: a 0755 root folder is then refused)
  sim freeze SECONDS        the switch hangs for SECONDS (simulated): no reply to any
                            command (except api sim) and no event on any connection,
                            TCP stays up; then the held replies and events are sent
  sim drop_connections      close every ESL connection at once, no disconnect-notice
                            (a network break); the calls stay up. -> +OK <count>
  sim eavesdrop UUID        the eavesdrop/three_way UUID runs, or those listening to UUID,
                            as JSON: {"uuid", "eavesdrops": [{"listener", "target",
                            "target_partner", "mode": listen|talk_to_partner|whisper|barge,
                            "dtmf", "hears": [uuids], "heard_by": [uuids]}]}; the mode
                            changes with the listener's digits (uuid_recv_dtmf): 0 listen,
                            1 talk to the target's partner, 2 whisper to the target,
                            3 barge, * stop (eavesdrop only; three_way is always barge)
  sim stats                 channels, phones and calls placed
  sim help                  this text
"""


def _split_vars(dial: str) -> tuple[dict[str, str], str]:
    variables: dict[str, str] = {}
    while dial.startswith(("{", "[", "<")):
        close = {"{": "}", "[": "]", "<": ">"}[dial[0]]
        end = dial.find(close)
        if end < 0:
            break
        for item in dial[1:end].split(","):
            k, sep, v = item.partition("=")
            if sep:
                variables[k.strip()] = v.strip().strip("'")
        dial = dial[end + 1 :]
    return variables, dial


async def originate_leg(
    sw: Switch, scripts: Scripts, dial: str
) -> tuple[str, Channel | None, After]:
    """Ring ``user/EXT``: (job body, answered leg or None, finisher for a failed leg)."""
    variables, endpoint = _split_vars(dial)
    if endpoint.startswith("null/"):
        return await _originate_null(sw, endpoint[len("null/") :], variables)
    if endpoint.startswith("sofia/gateway/"):
        return await _originate_gateway(sw, scripts, endpoint[len("sofia/gateway/") :], variables)
    if not endpoint.startswith("user/"):
        return "-ERR CHAN_NOT_IMPLEMENTED\n", None, None
    ext = endpoint[len("user/") :].split("@", 1)[0]
    phone = scripts.phones.get(ext)
    if phone is None:
        return "-ERR USER_NOT_REGISTERED\n", None, None
    uid = variables.get("origination_uuid") or new_uuid()
    ch = sw.new_outbound(ext, phone.port, variables, uid)
    await sw.clock.sleep(0.02)
    if not ch.is_up:
        return "-ERR ORIGINATOR_CANCEL\n", None, None
    if not phone.reject:
        return await _ring(sw, ch, _timeout_of(variables), phone.answer_after_ms)
    sw.ring_outbound(ch)
    if await sw.wait(ch, 0.05) == "hangup":  # killed while ringing
        return f"-ERR {ch.hangup_cause or 'ORIGINATOR_CANCEL'}\n", None, None
    return _failed(sw, ch, "CALL_REJECTED", "recv_refuse")


async def _originate_gateway(
    sw: Switch, scripts: Scripts, rest: str, variables: dict[str, str]
) -> tuple[str, Channel | None, After]:
    """``sofia/gateway/GW/NUMBER`` to a scripted citizen (``sim citizen``), as the
    ``outbound_dispositions`` capture shows: a refusal (486/603/404) hangs the leg up with
    no PROGRESS, HANGUP_COMPLETE before the job; no answer within ``originate_timeout``
    is NO_ANSWER with the job before HANGUP_COMPLETE. An unknown gateway fails before any
    channel exists (sofia_outgoing_channel: "Invalid Gateway", INVALID_GATEWAY)."""
    gateway, _, number = rest.partition("/")
    if gateway not in sw.settings["gateways"].split(",") or not number:
        return "-ERR INVALID_GATEWAY\n", None, None
    citizen = scripts.citizen(number)
    uid = variables.get("origination_uuid") or new_uuid()
    ch = sw.new_gateway(gateway, number, variables, uid)
    await sw.clock.sleep(0.02)
    if not ch.is_up:
        return f"-ERR {ch.hangup_cause or 'ORIGINATOR_CANCEL'}\n", None, None
    refusal = CITIZEN_REFUSALS[citizen.behaviour]
    if refusal is not None:
        if await sw.wait(ch, 0.05) == "hangup":
            return f"-ERR {ch.hangup_cause or 'ORIGINATOR_CANCEL'}\n", None, None
        cause = refusal[0]
        sw.refuse(ch, cause)
        sw.complete_hangup(ch)
        return f"-ERR {cause}\n", None, lambda: sw.destroy(ch)
    answer_ms = None if citizen.behaviour == "no_answer" else citizen.answer_after_ms
    body, leg, finish = await _ring(sw, ch, _timeout_of(variables), answer_ms)
    if leg is not None:
        scripts.answered_citizen(leg, citizen)
    return body, leg, finish


def _timeout_of(variables: dict[str, str]) -> float:
    """``originate_timeout`` in seconds (default 60)."""
    try:
        return float(variables.get("originate_timeout", "60"))
    except ValueError:
        return 60.0


async def _ring(
    sw: Switch, ch: Channel, timeout: float, answer_after_ms: int | None
) -> tuple[str, Channel | None, After]:
    """A ringing outbound leg (PROGRESS): answered after ``answer_after_ms`` (None: never)
    unless ``originate_timeout`` comes first (NO_ANSWER, send_cancel; HANGUP_COMPLETE and
    DESTROY after the job).

    switch_ivr_originate counts the timeout in whole epoch seconds (``elapsed =
    switch_epoch_time_now(NULL) - start``, ``elapsed >= timelimit_sec``): the leg gives up
    on the first second boundary at which ``originate_timeout`` seconds have passed since
    the second the originate began, so 5-6 s after it with 6 (the capture: 5.44 s)."""
    started = ch.times.created // 1_000_000
    limit = max(0.0, started + int(timeout) - sw.now_us() / 1_000_000)
    sw.ring_outbound(ch)
    if answer_after_ms is None or answer_after_ms / 1000 >= limit:
        result = await sw.wait(ch, limit)
        cause = "NO_ANSWER"
    else:
        result = await sw.wait(ch, answer_after_ms / 1000)
        if result == "timeout":
            sw.answer_outbound(ch)
            return f"+OK {ch.uuid}\n", ch, None
        cause = "ORIGINATOR_CANCEL"
    if result == "hangup":  # killed while ringing: its own teardown finishes it
        return f"-ERR {ch.hangup_cause or 'ORIGINATOR_CANCEL'}\n", None, None
    return _failed(sw, ch, cause, "send_cancel")


def _failed(sw: Switch, ch: Channel, cause: str, disposition: str) -> tuple[str, None, After]:
    """A failed originate: HANGUP now, HANGUP_COMPLETE and DESTROY after the job."""
    sw.hangup(ch, cause, disposition, teardown=False)

    def finish() -> None:
        sw.complete_hangup(ch)
        sw.destroy(ch)

    return f"-ERR {cause}\n", None, finish


async def _originate_null(
    sw: Switch, dest: str, variables: dict[str, str]
) -> tuple[str, Channel | None, After]:
    """mod_loopback's ``null`` endpoint (``null_channel_outgoing_channel``).

    A destination ``cause-NAME`` (or ``null_hangup_cause=NAME``) fails the originate
    with that cause before any channel exists; otherwise the leg is answered in
    CS_CONSUME_MEDIA after ``null_auto_answer_delay`` ms (0 by default; with
    ``null_enable_auto_answer=false`` it is never answered and the originate times
    out after ``originate_timeout``, default 60 s: ``-ERR NO_ANSWER``).
    """
    cause = variables.get("null_hangup_cause") or (
        dest[len("cause-") :] if dest.startswith("cause-") else ""
    )
    if cause:
        return f"-ERR {str2cause(cause)}\n", None, None
    uid = variables.get("origination_uuid") or new_uuid()
    ch = sw.new_null(dest, variables, uid)
    auto = variables.get("null_enable_auto_answer")
    try:
        delay_ms = min(60000, max(0, int(variables.get("null_auto_answer_delay", "0"))))
    except ValueError:
        delay_ms = 0
    if auto is not None and auto.lower() not in ("true", "yes", "on", "1", "enabled", "active"):
        try:
            timeout = float(variables.get("originate_timeout", "60"))
        except ValueError:
            timeout = 60.0
        if await sw.wait(ch, timeout) == "hangup":
            return f"-ERR {ch.hangup_cause or 'ORIGINATOR_CANCEL'}\n", None, None
        return _failed(sw, ch, "NO_ANSWER", "send_cancel")
    if await sw.wait(ch, delay_ms / 1000 or 0.0) == "hangup":
        return f"-ERR {ch.hangup_cause or 'ORIGINATOR_CANCEL'}\n", None, None
    sw.answer_null(ch)
    return f"+OK {uid}\n", ch, None


def _app_of(spec: str) -> tuple[str, str]:
    spec = spec.strip()
    if spec.startswith("&"):
        spec = spec[1:]
        if "(" in spec and spec.endswith(")"):
            name, _, arg = spec[:-1].partition("(")
            return name.strip(), arg
        name, _, arg = spec.partition(" ")
        return name, arg.strip()
    return "", spec


async def originate(sw: Switch, scripts: Scripts, arg: str) -> tuple[str, After]:
    dial, _, rest = arg.strip().partition(" ")
    if dial.startswith(("{", "[")) and "}" in arg:
        close = arg.index("}")
        first_space = arg.find(" ", close)
        dial, rest = (arg, "") if first_space < 0 else (arg[:first_space], arg[first_space + 1 :])
    body, leg, finish = await originate_leg(sw, scripts, dial)
    if leg is None:
        return body, finish
    app, app_arg = _app_of(rest)

    def start() -> None:
        sw.outbound_to_execute(leg)
        if app == "park":
            sw.enter_park(leg, new_uuid())
        elif app:
            sw.spawn(_one_shot(sw, leg, app, app_arg), name=f"app-{leg.uuid}")
        else:
            parts = app_arg.split()
            if parts:
                leg.profile.dest = parts[0]
                leg.profile.context = parts[2] if len(parts) > 2 else "default"
            assert sw.run_dialplan is not None
            leg.move("route")
            sw.spawn(sw.run_dialplan(sw, leg), name=f"dialplan-{leg.uuid}")

    return body, start


async def _one_shot(sw: Switch, ch: Channel, app: str, arg: str) -> None:
    """An originate application (``&eavesdrop(uuid)``): when it returns, the leg hangs up."""
    ch.move("run_app")
    run = AppRun(app, arg, new_uuid())
    ch.app_run = run
    sw.execute_event(ch, app, arg, run.app_uuid)
    ch.worker = _current_task()
    assert sw.run_app is not None
    response = await sw.run_app(sw, ch, app, arg)
    ch.last_response = response
    if ch.app_run is run:
        ch.app_run = None
        sw.complete_event(ch, app, arg, run.app_uuid, response)
    if ch.is_up and ch.mode is Mode.APP:
        sw.hangup(ch, "NORMAL_CLEARING", "send_bye")


def _current_task() -> asyncio.Task[None] | None:
    return asyncio.current_task()


# ---------------------------------------------------------------- show / status


def _stamp(us: int) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(us // 1_000_000))


def _row(ch: Channel) -> dict[str, str]:
    p = ch.profile
    inbound = ch.direction == "inbound"
    codec = "PCMU" if ch.media else ""
    rate = "8000" if ch.media else ""
    bit = "64000" if ch.media else ""
    read_codec = ch.codec if ch.media else ""
    read_bit = ("128000" if ch.codec == "L16" else "64000") if ch.media else ""
    partner = ch.partner
    state, callstate, call_uuid = ch.show_state or (ch.state, ch.callstate, ch.call_uuid)
    return {
        "uuid": ch.uuid,
        "direction": ch.direction,
        "created": _stamp(ch.times.created),
        "created_epoch": str(ch.times.created // 1_000_000),
        "name": ch.name,
        "state": state,
        "cid_name": p.cid_name,
        "cid_num": p.cid_num,
        "ip_addr": "127.0.0.1" if inbound else "",
        "dest": p.dest,
        "application": ch.show_app[0],
        "application_data": ch.show_app[1],
        "dialplan": "XML" if inbound else "",
        "context": p.context,
        "read_codec": read_codec,
        "read_rate": rate,
        "read_bit_rate": read_bit,
        "write_codec": codec,
        "write_rate": rate,
        "write_bit_rate": bit,
        "secure": "",
        "hostname": "vm",
        "presence_id": ch.presence_id,
        "presence_data": "",
        "accountcode": "" if inbound else (ch.ext or ""),
        "callstate": callstate,
        "callee_name": p.callee_name or "",
        "callee_num": p.callee_num or "",
        "callee_direction": "SEND" if ch.bridged_ever else "",
        "call_uuid": call_uuid,
        "sent_callee_name": (
            partner.profile.cid_name if partner and not inbound else p.callee_name or ""
        )
        if ch.bridged_ever
        else "",
        "sent_callee_num": (
            partner.profile.cid_num if partner and not inbound else p.callee_num or ""
        )
        if ch.bridged_ever
        else "",
        "initial_cid_name": p.orig_cid_name,
        "initial_cid_num": p.orig_cid_num,
        "initial_ip_addr": "127.0.0.1" if inbound else "",
        "initial_dest": ch.tokens.get("dest", p.dest) if inbound else (ch.ext or p.dest),
        "initial_dialplan": "XML" if inbound else "",
        "initial_context": "public" if inbound else "default",
    }


_CALL_KEYS = [
    *("uuid", "direction", "created", "created_epoch", "name", "state", "cid_name", "cid_num"),
    *("ip_addr", "dest", "presence_id", "presence_data", "accountcode", "callstate"),
    *("callee_name", "callee_num", "callee_direction", "call_uuid", "hostname"),
    *("sent_callee_name", "sent_callee_num"),
]
_B_KEYS = [k for k in _CALL_KEYS if k not in ("call_uuid", "hostname")]


def _listed(sw: Switch) -> list[Channel]:
    chans = list(sw.channels.values()) + list(sw.lingering.values())
    return sorted(chans, key=lambda c: c.times.created)


def show(sw: Switch, arg: str) -> str:
    words = arg.split()
    what = words[0].lower() if words else ""
    as_json = words[-2:] == ["as", "json"]
    if what == "channels":
        rows = [_row(ch) for ch in _listed(sw)]
    elif what == "calls":
        rows = []
        for ch in _listed(sw):
            if ch.partner is not None and not ch.bridge_owner:
                continue
            base = _row(ch)
            row = {k: base[k] for k in _CALL_KEYS}
            b = _row(ch.partner) if ch.partner is not None else None
            for k in _B_KEYS:
                row["b_" + k] = b[k] if b else ""
            row["call_created_epoch"] = str(ch.times.bridged // 1_000_000) if b else ""
            rows.append(row)
    elif what == "registrations":
        return ""  # answered by the caller (needs the phones)
    else:
        return f"-USAGE: show {arg}\n" if arg else "-USAGE: show ...\n"
    if as_json:
        if not rows:
            return '{"row_count": 0}\n'
        return wire.dumps({"row_count": len(rows), "rows": rows})
    if not rows:
        return "\n0 total.\n"
    keys = list(rows[0])
    lines = [",".join(keys)] + [",".join(r[k] for k in keys) for r in rows]
    return "\n".join(lines) + f"\n\n{len(rows)} total.\n"


def status(sw: Switch) -> str:
    up = max(0.0, sw.clock.now() - sw.started)
    secs = int(up)
    ms = int((up - secs) * 1000)
    days, rem = divmod(secs, 86400)
    hours, rem = divmod(rem, 3600)
    minutes, seconds = divmod(rem, 60)
    years, days = divmod(days, 365)
    n = len(sw.channels)
    return (
        f"UP {years} years, {days} days, {hours} hours, {minutes} minutes, {seconds} seconds, "
        f"{ms} milliseconds, 0 microseconds\n"
        "FreeSWITCH (Version 1.11.1-release  64bit) is ready\n"
        f"{sw.sessions_since_start} session(s) since startup\n"
        f"{n} session(s) - peak {n}, last 5min {n} \n"
        "0 session(s) per Sec out of max 30, peak 5, last 5min 5 \n"
        "1000 session(s) max\n"
        "min idle cpu 0.00/98.17\n"
        "Current Stack Size/Max 240K/8192K\n"
    )


def sofia(sw: Switch, scripts: Scripts, arg: str) -> str:
    words = arg.split()
    if words[:2] == ["status", "profile"] and len(words) >= 4 and words[3] == "reg":
        flt = words[4] if len(words) > 4 else ""
        out = ["", "Registrations:", RULE]
        count = 0
        for phone in scripts.listed():
            if flt and flt not in phone.ext and flt not in phone.call_id:
                continue
            count += 1
            exp_at = phone.registered_at + phone.expires
            exp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(exp_at + 59))
            secs = int(exp_at + 59 - sw.clock.now())
            if phone.expired_at is not None:
                secs = -10 - int(sw.clock.now() - phone.expired_at)
            out += [
                f"Call-ID:    \t{phone.call_id}",
                f"User:       \t{phone.ext}@127.0.0.1",
                f'Contact:    \t"" <sip:{phone.ext}@127.0.0.1:{phone.port}>',
                f"Agent:      \tprobe-sipp-phone-{phone.ext}",
                f"Status:     \tRegistered(UDP)(unknown) EXP({exp}) EXPSECS({secs})",
                "Ping-Status:\tReachable",
                "Ping-Time:\t0.00",
                "Host:       \tvm",
                "IP:         \t127.0.0.1",
                f"Port:       \t{phone.port}",
                f"Auth-User:  \t{phone.ext}",
                "Auth-Realm: \t127.0.0.1",
                f"MWI-Account:\t{phone.ext}@127.0.0.1",
                "",
            ]
        out += [f"Total items returned: {count}", RULE, ""]
        return "\n".join(out)
    if words[:1] == ["status"]:
        head = "Name\t   Type\t" + " " * 38 + "Data\tState"
        return (
            " " * 21 + head + "\n" + RULE + "\n"
            "               127.0.0.1\t  alias\t" + " " * 34 + "internal\tALIASED\n"
            "                internal\tprofile\t           sip:mod_sofia@127.0.0.1:5060\t"
            f"RUNNING (0)\n{RULE}\n1 profile 1 alias\n"
        )
    return "-ERR Usage: sofia status|...\n"


def show_registrations(sw: Switch, scripts: Scripts) -> str:
    lines = [
        "reg_user,realm,token,url,expires,network_ip,network_port,network_proto,hostname,metadata"
    ]
    phones = scripts.in_database()
    for p in phones:
        lines.append(
            f"{p.ext},127.0.0.1,{p.call_id},sofia/internal/sip:{p.ext}@127.0.0.1:{p.port},"
            f"{int(p.registered_at + p.expires)},127.0.0.1,{p.port},udp,vm,"
        )
    return "\n".join(lines) + f"\n\n{len(phones)} total.\n"


# ------------------------------------------------------------------- uuid_*


def _dump(sw: Switch, ch: Channel, fmt: str) -> str:
    """uuid_dump_function: ``json`` (switch_event_serialize_json), ``plain`` (not
    URL-encoded) or anything else (``txt``: URL-encoded, switch_event_serialize)."""
    headers = sw.channel_data(ch)
    if fmt.lower() == "json":
        data: dict[str, str | list[str]] = {}
        for k, v in headers:
            data[k] = v[len("ARRAY::") :].split("|:") if v.startswith("ARRAY::") else v
        return wire.dumps(data)
    if fmt.lower() == "plain":
        return "".join(f"{k}: {v}\n" for k, v in headers) + "\n"
    return "".join(f"{k}: {wire.url_encode(v)}\n" for k, v in headers) + "\n"


async def execute(sw: Switch, scripts: Scripts, cmd: str, arg: str) -> tuple[str, After]:
    """Run one api command; (reply body, callback to run once the reply is out)."""
    cmd = cmd.strip()
    arg = arg.strip()
    words = arg.split()
    handler = _HANDLERS.get(cmd)
    if handler is None:
        return f"-ERR {cmd} Command not found!\n", None
    return await handler(sw, scripts, arg, words)


async def _originate(sw: Switch, scripts: Scripts, arg: str, words: list[str]) -> tuple[str, After]:
    if not words:
        return "-USAGE: <call url> <exten>|&<application_name>(<app_args>) ...\n", None
    return await originate(sw, scripts, arg)


async def _uuid_bridge(sw: Switch, sc: Scripts, arg: str, words: list[str]) -> tuple[str, After]:
    if len(words) < 2:
        return "-USAGE: <uuid> <other_uuid>\n", None
    a, b = sw.get(words[0]), sw.get(words[1])
    if a is None or b is None:
        return "-ERR Invalid uuid\n", None
    return f"+OK {b.uuid}\n", lambda: sw.bridge(a, b)


async def _uuid_kill(sw: Switch, sc: Scripts, arg: str, words: list[str]) -> tuple[str, After]:
    ch = sw.get(words[0]) if words else None
    if ch is None:
        return NO_CHANNEL, None
    cause = words[1] if len(words) > 1 else "NORMAL_CLEARING"
    disposition = "send_bye" if ch.answer_state == "answered" else "send_cancel"
    return "+OK\n", lambda: sw.hangup(ch, cause, disposition)


async def _uuid_transfer(sw: Switch, sc: Scripts, arg: str, words: list[str]) -> tuple[str, After]:
    ch = sw.get(words[0]) if words else None
    if ch is None:
        return NO_CHANNEL, None
    rest = words[1:]
    both = False
    if rest and rest[0] in ("-both", "-bleg"):
        both = rest[0] == "-both"
        if rest[0] == "-bleg" and ch.partner is not None:
            ch = ch.partner
        rest = rest[1:]
    if not rest:
        return "-USAGE: <uuid> [-bleg|-both] <dest-exten> [<dialplan>] [<context>]\n", None
    dest = rest[0]
    dialplan = rest[1] if len(rest) > 1 else "XML"
    context = rest[2] if len(rest) > 2 else ch.profile.context
    target = ch
    return "+OK\n", lambda: sw.transfer(target, dest, dialplan, context, both=both)


async def _uuid_hold(sw: Switch, sc: Scripts, arg: str, words: list[str]) -> tuple[str, After]:
    on = True
    if words and words[0] in ("off", "toggle"):
        mode = words.pop(0)
        on = False if mode == "off" else None  # type: ignore[assignment]
    ch = sw.get(words[0]) if words else None
    if ch is None:
        return NO_CHANNEL, None
    sw.hold(ch, (not ch.held) if on is None else on)
    return "+OK Success\n", None


REC_USAGE = "-USAGE: <uuid> [start|stop|mask|unmask] <path> [<limit>] [<recording_vars>]\n"


async def _uuid_record(sw: Switch, sc: Scripts, arg: str, words: list[str]) -> tuple[str, After]:
    """mod_commands ``session_record_function``.

    Fewer than three words (uuid, action, path) is the usage text; an unknown
    channel ``-ERR Cannot locate session!``; ``start`` that cannot record (see
    :meth:`Switch.record_session_start`) ``-ERR Cannot record session!``; ``stop``
    of a path (or ``all``) that is not being recorded ``-ERR Cannot stop record
    session!``. RECORD_START / RECORD_STOP follow the ``+OK Success`` reply.
    """
    if len(words) < 3:
        return REC_USAGE, None
    ch = sw.get(words[0])
    if ch is None:
        return "-ERR Cannot locate session!\n", None
    action, path = words[1].lower(), words[2]
    if action == "start":
        limit = _int_arg(words[3]) if len(words) > 3 else 0
        if path in ch.recordings:
            return "+OK Success\n", None  # "Already recording": nothing new starts
        if not sw.record_session_start(ch, path, limit, announce=False):
            return "-ERR Cannot record session!\n", None
        return "+OK Success\n", lambda: sw.record_started(ch, path)
    if action == "stop":
        if path != "all" and path not in ch.recordings:
            return "-ERR Cannot stop record session!\n", None
        if path == "all" and not ch.recordings:
            return "-ERR Cannot stop record session!\n", None

        def stop() -> None:
            sw.record_session_stop(ch, path)

        return "+OK Success\n", stop
    if action in ("mask", "unmask", "pause", "resume"):
        if path not in ch.recordings:  # looked up by path only ("all" is no path here)
            return f"-ERR Cannot {action} recording session!\n", None
        return "+OK Success\n", None
    return REC_USAGE, None


def _int_arg(text: str) -> int:
    """C's ``atoi``: the leading digits (0 when there are none)."""
    digits = ""
    for c in text.lstrip():
        if not c.isdigit():
            break
        digits += c
    return int(digits) if digits else 0


async def _uuid_broadcast(sw: Switch, sc: Scripts, arg: str, words: list[str]) -> tuple[str, After]:
    ch = sw.get(words[0]) if words else None
    if ch is None or len(words) < 2:
        return NO_CHANNEL if ch is None else "-USAGE: <uuid> <path> [aleg|bleg|both]\n", None
    path = words[1]
    legs = [ch]
    where = words[2] if len(words) > 2 else "aleg"
    if where in ("bleg", "both") and ch.partner is not None:
        legs = [ch.partner] if where == "bleg" else [ch, ch.partner]
    app, _, app_arg = path.partition("::")
    if not app_arg:
        app, app_arg = "playback", path

    def send() -> None:
        for leg in legs:
            sw.enqueue(leg, ExecRequest(app, app_arg, new_uuid()))

    return "+OK Message sent\n", send


async def _uuid_setvar(sw: Switch, sc: Scripts, arg: str, words: list[str]) -> tuple[str, After]:
    parts = arg.split(None, 2)
    ch = sw.get(parts[0]) if parts else None
    if ch is None:
        return NO_CHANNEL, None
    if len(parts) < 2:
        return "-ERR No variable specified\n", None
    value = parts[2] if len(parts) > 2 else None
    ch.set_var(parts[1], value)
    return "+OK\n", None


async def _uuid_setvar_multi(
    sw: Switch, sc: Scripts, arg: str, words: list[str]
) -> tuple[str, After]:
    """``uuid_setvar_multi <uuid> a=1;b=2``: ``name=`` with no value unsets, as FreeSWITCH does."""
    parts = arg.split(None, 1)
    ch = sw.get(parts[0]) if parts else None
    if ch is None:
        return NO_CHANNEL, None
    if len(parts) < 2:
        return "-ERR No variable specified\n", None
    for item in parts[1].split(";"):
        name, _, value = item.partition("=")
        if name:
            ch.set_var(name, value or None)
    return "+OK\n", None


async def _uuid_getvar(sw: Switch, sc: Scripts, arg: str, words: list[str]) -> tuple[str, After]:
    ch = sw.get(words[0]) if words else None
    if ch is None:
        return NO_CHANNEL, None
    if len(words) < 2:
        return "-ERR No variable specified\n", None
    name = words[1]
    value = ch.var(name)
    if value is None:
        special = {
            "destination_number": ch.profile.dest,
            "caller_id_number": ch.profile.cid_num,
            "caller_id_name": ch.profile.cid_name,
            "context": ch.profile.context,
            "state": ch.state,
        }
        value = special.get(name)
    return value if value is not None else "_undef_", None


RECV_DTMF_USAGE = "-USAGE: <uuid> <dtmf_data>\n"


async def _uuid_recv_dtmf(sw: Switch, sc: Scripts, arg: str, words: list[str]) -> tuple[str, After]:
    """mod_commands ``uuid_recv_dtmf <uuid> <digits>``: queue digits on the channel as if
    its far end had sent them (the DTMF event comes when something dequeues them)."""
    if len(words) < 2:
        return RECV_DTMF_USAGE, None
    ch = sw.get(words[0])
    if ch is None:
        return "-ERR Cannot locate session!\n", None
    digits = words[1]
    return f"+OK {words[0]} received DTMF {digits}.\n", lambda: sw.recv_dtmf(ch, digits)


async def _uuid_exists(sw: Switch, sc: Scripts, arg: str, words: list[str]) -> tuple[str, After]:
    return ("true" if words and sw.get(words[0]) is not None else "false"), None


async def _uuid_dump(sw: Switch, sc: Scripts, arg: str, words: list[str]) -> tuple[str, After]:
    """A hung-up channel is gone for uuid_dump at once (switch_core_session_locate
    refuses a channel in CS_HANGUP), while ``show channels`` still lists it."""
    if not words:
        return "-USAGE: <uuid> [format]\n", None
    ch = sw.get(words[0])
    if ch is None:
        return NO_CHANNEL, None
    return _dump(sw, ch, words[1] if len(words) > 1 else "txt"), None


async def _uuid_park(sw: Switch, sc: Scripts, arg: str, words: list[str]) -> tuple[str, After]:
    """mod_commands park_function: switch_ivr_park_session (CF_TRANSFER, state CS_PARK),
    then ``+OK``; the events follow from the session thread."""
    if not arg:
        return "-USAGE: <uuid>\n", None
    ch = sw.get(arg)  # the whole argument is the uuid (switch_core_session_locate(cmd))
    if ch is None:
        return NO_CHANNEL, None

    def park() -> None:
        if not sw.park_session(ch):
            log.warning(
                "uuid_park of a channel in this mode is not simulated",
                extra={"uuid": ch.uuid, "mode": ch.mode.value},
            )

    return "+OK\n", park


async def _uuid_break(sw: Switch, sc: Scripts, arg: str, words: list[str]) -> tuple[str, After]:
    ch = sw.get(words[0]) if words else None
    if ch is None:
        return NO_CHANNEL, None
    flush = len(words) > 1 and words[1] == "all"
    return "+OK\n", lambda: sw.break_media(ch, flush=flush)


async def _show(sw: Switch, sc: Scripts, arg: str, words: list[str]) -> tuple[str, After]:
    if words and words[0] == "registrations":
        return show_registrations(sw, sc), None
    return show(sw, arg), None


async def _status(sw: Switch, sc: Scripts, arg: str, words: list[str]) -> tuple[str, After]:
    return status(sw), None


async def _version(sw: Switch, sc: Scripts, arg: str, words: list[str]) -> tuple[str, After]:
    return VERSION, None


async def _sofia(sw: Switch, sc: Scripts, arg: str, words: list[str]) -> tuple[str, After]:
    return sofia(sw, sc, arg), None


async def _sofia_contact(sw: Switch, sc: Scripts, arg: str, words: list[str]) -> tuple[str, After]:
    target = words[0] if words else ""
    user = target.split("/")[-1].split("@")[0]
    phone = sc.phones.get(user)
    if phone is None:
        return "error/user_not_registered", None
    return f"sofia/internal/sip:{phone.ext}@127.0.0.1:{phone.port}", None


async def _hupall(sw: Switch, sc: Scripts, arg: str, words: list[str]) -> tuple[str, After]:
    cause = words[0] if words else "MANAGER_REQUEST"
    chans = list(sw.channels.values())

    def kill() -> None:
        for ch in chans:
            sw.hangup(ch, cause, "send_bye")

    return "+OK hangup all channels with cause " + cause + "\n", kill


async def _sim(sw: Switch, sc: Scripts, arg: str, words: list[str]) -> tuple[str, After]:
    if not words or words[0] == "help":
        return SIM_HELP, None
    sub, rest = words[0], words[1:]
    opts = dict(w.split("=", 1) for w in rest if "=" in w)
    pos = [w for w in rest if "=" not in w]
    try:
        if sub == "call" and len(pos) >= 2:
            after = opts.get("hangup_after_s")
            name = opts.get("name")
            if "name_hex" in opts:
                name = wire.text_of(bytes.fromhex(opts["name_hex"]))
            ch = sc.call(
                pos[0],
                pos[1],
                dtmf=opts.get("dtmf", ""),
                dtmf_delay_ms=int(opts.get("dtmf_delay_ms", "1000")),
                hangup_after_s=float(after) if after is not None else None,
                caller_name=name,
            )
            return f"+OK {ch.uuid}\n", None
        if sub == "calls" and len(pos) >= 4:
            count, rate = int(pos[0]), float(pos[1])
            if count < 1 or rate <= 0:
                raise ValueError("COUNT and RATE must be positive")
            after = opts.get("hangup_after_s")
            sw.spawn(
                sc.calls_at_rate(
                    count,
                    rate,
                    pos[2],
                    pos[3],
                    dtmf=opts.get("dtmf", ""),
                    dtmf_delay_ms=int(opts.get("dtmf_delay_ms", "1000")),
                    hangup_after_s=float(after) if after is not None else None,
                ),
                name="sim-calls",
            )
            return f"+OK {count}\n", None
        if sub == "phone" and pos:
            behaviour = pos[1] if len(pos) > 1 else ""
            if "answer_after_ms" in opts:
                behaviour = "answer_after_ms=" + opts["answer_after_ms"]
            sc.register(
                pos[0], behaviour or "answer_after_ms=1000", int(opts.get("expires", "3600"))
            )
            return "+OK\n", None
        if sub == "unregister" and pos:
            return ("+OK\n" if sc.unregister(pos[0]) else "-ERR not registered\n"), None
        if sub == "expire" and pos:
            return ("+OK\n" if sc.expire(pos[0]) else "-ERR not registered\n"), None
        if sub == "hangup" and pos:
            leg = sw.get(pos[0])
            if leg is None:
                return NO_CHANNEL, None
            answered = leg.answer_state == "answered"
            cause = "NORMAL_CLEARING" if answered else "ORIGINATOR_CANCEL"
            disposition = "recv_bye" if answered else "recv_cancel"
            return "+OK\n", lambda: sw.hangup(leg, cause, disposition)
        if sub == "dtmf" and len(pos) >= 2:
            target = sw.get(pos[0])
            if target is None:
                return NO_CHANNEL, None
            digits = pos[1]

            def press() -> None:
                for digit in digits:
                    sw.dtmf(target, digit)

            return "+OK\n", press
        if sub == "set" and len(pos) >= 2:
            if pos[0].endswith("_ms"):
                int(pos[1])  # a number, or ValueError
            sw.settings[pos[0]] = pos[1]
            return "+OK\n", None
        if sub == "freeze" and pos and sw.controls is not None:
            seconds = float(pos[0])
            if seconds < 0:
                raise ValueError("SECONDS must not be negative")
            controls = sw.controls
            return "+OK\n", lambda: controls.freeze(seconds)
        if sub == "drop_connections" and sw.controls is not None:
            controls = sw.controls

            def drop() -> None:
                controls.drop_connections()

            return f"+OK {controls.connection_count()}\n", drop
        if sub == "citizen" and pos:
            sc.script_citizen(pos[0], pos[1:], opts)
            return "+OK\n", None
        if sub == "eavesdrop" and pos:
            return _eavesdrops(sw, pos[0]), None
        if sub == "stats":
            return orjson.dumps(
                {
                    "channels": len(sw.channels),
                    "phones": sorted(sc.phones),
                    "calls_placed": sc.calls_placed,
                    "sessions": sw.sessions_since_start,
                    "time_scale": sw.clock.time_scale,
                }
            ).decode() + "\n", None
    except ValueError as exc:
        return f"-ERR {exc}\n", None
    return "-ERR bad sim command, see `api sim help`\n", None


def _eavesdrops(sw: Switch, uid: str) -> str:
    """``sim eavesdrop UUID``: the eavesdrops UUID runs or is the target of, as JSON."""
    ch = sw.get(uid)
    if ch is None:
        return NO_CHANNEL
    listeners = [ch] if ch.eavesdrop is not None else []
    listeners += [w for w in ch.watchers if w.eavesdrop is not None and w is not ch]
    rows = [w.eavesdrop.describe(w) for w in listeners if w.eavesdrop is not None]
    return orjson.dumps({"uuid": uid, "eavesdrops": rows}).decode() + "\n"


Handler = Callable[[Switch, "Scripts", str, list[str]], Awaitable[tuple[str, After]]]

_HANDLERS: dict[str, Handler] = {
    "originate": _originate,
    "uuid_bridge": _uuid_bridge,
    "uuid_kill": _uuid_kill,
    "uuid_transfer": _uuid_transfer,
    "uuid_hold": _uuid_hold,
    "uuid_record": _uuid_record,
    "uuid_broadcast": _uuid_broadcast,
    "uuid_setvar": _uuid_setvar,
    "uuid_setvar_multi": _uuid_setvar_multi,
    "uuid_getvar": _uuid_getvar,
    "uuid_exists": _uuid_exists,
    "uuid_recv_dtmf": _uuid_recv_dtmf,
    "uuid_dump": _uuid_dump,
    "uuid_break": _uuid_break,
    "uuid_park": _uuid_park,
    "show": _show,
    "status": _status,
    "version": _version,
    "sofia": _sofia,
    "sofia_contact": _sofia_contact,
    "hupall": _hupall,
    "sim": _sim,
}
