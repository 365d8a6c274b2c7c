"""Regenerate ``telephony/sim/captured.py`` from the real FreeSWITCH traces.

Run from the repository root: ``python tests/sim/gen_captured.py && ruff format
telephony/sim/captured.py`` (the result is then byte-identical to the committed file). It reads
``../shared/freeswitch/traces/*.txt`` (bytes FreeSWITCH sent), takes the
channel-variable lists of chosen events, replaces the call-specific values
(uuids, numbers, ports, times) by ``⟪token⟫`` placeholders, and leaves out
the variables the simulator manages itself (dialplan and controller
variables, bridge and hangup bookkeeping). The agent legs (``user/EXT``) give the
``out_*`` phases; the legs through the carrier gateway of ``outbound_dispositions``
(``sofia/gateway/carrier/NUMBER``) their own ``gw_*`` phases.
"""

from __future__ import annotations

import pprint
import re
from pathlib import Path
from urllib.parse import unquote

TRACES = Path(__file__).resolve().parents[3] / "shared" / "freeswitch" / "traces"
OUT = Path(__file__).resolve().parents[2] / "telephony" / "sim" / "captured.py"

MANAGED = {
    "uuid",
    "call_uuid",
    "outside_call",
    "RFC2822_DATE",
    "export_vars",
    "hotline",
    "park_timeout",
    "hold_music",
    "DP_MATCH",
    "park_after_bridge",
    "hotline_call",
    "origination_caller_id_number",
    "origination_caller_id_name",
    "originate_timeout",
    "current_application",
    "current_application_data",
    "current_application_response",
    "last_app",
    "last_arg",
    "playback_last_offset_pos",
    "playback_seconds",
    "playback_ms",
    "playback_samples",
    "read_result",
    "digit",
    "record_file_size",
    "record_samples",
    "record_seconds",
    "record_ms",
    "record_completion_cause",
    "transfer_history",
    "transfer_source",
    "last_bridge_to",
    "bridge_channel",
    "bridge_uuid",
    "signal_bond",
    "bridge_hangup_cause",
    "last_bridge_hangup_cause",
    "hangup_cause",
    "hangup_cause_q850",
    "sip_hangup_disposition",
    "digits_dialed",
    "read_terminator_used",
    "playback_terminator_used",
    "playback_terminators",
    "eavesdrop_target_uuid",
    "current_loop",
    "total_loops",
    "originate_disposition",
    "bridge_to",
    "read_codec",
    "original_read_codec",
    "write_codec",
    "read_rate",
    "write_rate",
    "original_read_rate",
    "original_destination_number",
    "original_caller_id_name",
    "original_caller_id_number",
}
TIMING = re.compile(
    r"^(\w+_stamp|\w+_epoch|\w+_uepoch|duration|billsec|progresssec|answersec|waitsec|"
    r"progress_mediasec|flow_billsec|mduration|billmsec|progressmsec|answermsec|waitmsec|"
    r"progress_mediamsec|flow_billmsec|uduration|billusec|progressusec|answerusec|waitusec|"
    r"progress_mediausec|flow_billusec|sip_invite_stamp)$"
)


def events(name: str) -> list[list[tuple[str, str]]]:
    data = (TRACES / f"{name}.txt").read_bytes()
    pos, out = 0, []
    while pos < len(data):
        end = data.find(b"\n\n", pos)
        if end < 0:
            break
        block = data[pos:end].decode()
        pos = end + 2
        if not block.strip():
            continue
        hs = dict(line.split(": ", 1) for line in block.split("\n") if line)
        body = b""
        if "Content-Length" in hs:
            n = int(hs["Content-Length"])
            body, pos = data[pos : pos + n], pos + n
        if hs.get("Content-Type") == "text/event-plain":
            head = body.decode().partition("\n\n")[0]
            out.append(
                [(k, unquote(v)) for k, _, v in (ln.partition(": ") for ln in head.split("\n"))]
            )
    return out


def tokenize(value: str, subs: list[tuple[str, str]]) -> str:
    for literal, token in subs:
        value = value.replace(literal, f"⟪{token}⟫")
    return value


def variables(items: list[tuple[str, str]], subs: list[tuple[str, str]]) -> list[tuple[str, str]]:
    out = []
    for k, v in items:
        if not k.startswith("variable_"):
            continue
        name = k[len("variable_") :]
        if name in MANAGED:
            continue
        out.append((name, f"⟪={name}⟫" if TIMING.match(name) else tokenize(v, subs)))
    return out


CALL_CENTER = [
    "hotline_ivr_agent",
    "agent_no_answer",
    "caller_abandons_in_queue",
    "three_way_and_transfer",
    "controller_restart_conn1",
    "unbridge_hangup_after_bridge_false",
    "three_way_on_bridged_agent",
    "park_timer",
]
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def stage(h: dict[str, str]) -> str:
    """Which variable phase of the simulator an event of the real trace belongs to."""
    name = h["Event-Name"]
    bridged = "Other-Type" in h or int(h.get("Caller-Profile-Index", "1")) >= 2
    if h["Call-Direction"] == "inbound":
        if name in ("CHANNEL_HANGUP_COMPLETE", "CHANNEL_DESTROY"):
            return "in_hangup_complete"
        if bridged:
            return "in_bridged"
        if h["Answer-State"] != "ringing":
            return "in_answer"
        return "in_create"
    if name in ("CHANNEL_HANGUP_COMPLETE", "CHANNEL_DESTROY"):
        if bridged:
            return "out_hangup_complete_bridged"
        if h.get("Caller-Channel-Answered-Time", "0") != "0":
            return "out_hangup_complete"
        return "out_hangup_complete_unanswered"
    if bridged:
        return "out_bridged"
    if h["Channel-HIT-Dialplan"] == "true":
        return "out_park"
    if h["Answer-State"] in ("answered", "hangup") and h["Channel-State"] != "CS_INIT":
        return "out_answer"
    if h["Channel-State"] == "CS_CONSUME_MEDIA":
        return "out_progress"
    return "out_create"


ORDER = [
    "in_create",
    "in_answer",
    "in_bridged",
    "in_hangup_complete",
    "out_create",
    "out_progress",
    "out_answer",
    "out_park",
    "out_bridged",
    "out_hangup_complete_bridged",
    "out_hangup_complete",
    "out_hangup_complete_unanswered",
]


#: Legs through a carrier gateway (``sofia/gateway/carrier/NUMBER``, README section k).
GATEWAY = ["outbound_dispositions"]
#: What the simulator sets itself on a gateway leg, besides :data:`MANAGED`: the SIP
#: result of the INVITE or the BYE (per disposition), the originate's own variables and
#: the survey's digits.
GATEWAY_MANAGED = {
    "sip_invite_failure_status",
    "sip_invite_failure_phrase",
    "sip_term_status",
    "sip_term_cause",
    "proto_specific_hangup_cause",
    "origination_uuid",
    "callback_of",
    "survey_key",
}
#: Each gateway phase holds its parent's variables too.
GATEWAY_PARENT = {
    "gw_progress": "gw_create",
    "gw_answer": "gw_progress",
    "gw_park": "gw_answer",
    "gw_hangup_complete": "gw_park",
    "gw_refused": "gw_create",
    "gw_hangup_complete_refused": "gw_refused",
    "gw_hangup_complete_unanswered": "gw_progress",
}


def gateway_stage(h: dict[str, str]) -> str:
    """The variable phase of a gateway leg's event (refused: hung up before any 18x;
    unanswered: rang, then the originate gave up)."""
    name = h["Event-Name"]
    answered = h.get("Caller-Channel-Answered-Time", "0") != "0"
    progressed = h.get("Caller-Channel-Progress-Time", "0") != "0"
    if name in ("CHANNEL_HANGUP_COMPLETE", "CHANNEL_DESTROY"):
        if answered:
            return "gw_hangup_complete"
        return "gw_hangup_complete_unanswered" if progressed else "gw_hangup_complete_refused"
    if name == "CHANNEL_HANGUP" and not progressed:
        return "gw_refused"
    if h["Channel-HIT-Dialplan"] == "true":
        return "gw_park"
    if answered:
        return "gw_answer"
    if h["Channel-State"] == "CS_CONSUME_MEDIA":
        return "gw_progress"
    return "gw_create"


def gateway_phases() -> dict[str, dict[str, str]]:
    phases: dict[str, dict[str, str]] = {k: {} for k in ["gw_create", *GATEWAY_PARENT]}
    for trace in GATEWAY:
        for items in events(trace):
            h = dict(items)
            uid = h.get("Unique-ID")
            if not uid or "Channel-State" not in h or h["Event-Name"] == "DTMF":
                continue
            subs = [
                (uid, "uuid"),
                (h["Caller-Destination-Number"], "ext"),
                ("12345", "ocid"),
                (h.get("variable_sip_gateway_name") or "@@", "gateway"),
            ]
            st = gateway_stage(h)
            for k, v in variables(items, subs):
                if k not in GATEWAY_MANAGED:
                    phases[st].setdefault(k, UUID.sub("⟪other_uuid⟫", v))
    for st, parent in GATEWAY_PARENT.items():  # parents come first
        merged = dict(phases[parent])
        merged.update(phases[st])
        phases[st] = merged
    return phases


def main() -> None:
    phases: dict[str, dict[str, str]] = {k: {} for k in ORDER}
    for trace in CALL_CENTER:
        first: dict[str, dict[str, str]] = {}
        for items in events(trace):
            h = dict(items)
            uid = h.get("Unique-ID")
            if not uid or "Channel-State" not in h or h["Event-Name"] == "DTMF":
                continue
            first.setdefault(uid, h)
            f = first[uid]
            if h["Call-Direction"] == "inbound":
                subs = [
                    (uid, "uuid"),
                    ("13800138000", "cid"),
                    (f["Caller-Destination-Number"], "dest"),
                ]
            else:
                ext = f["Caller-Destination-Number"]
                port = f["Channel-Name"].rsplit(":", 1)[-1]
                subs = [
                    (uid, "uuid"),
                    ("13800138000", "other_cid"),
                    (ext, "ext"),
                    (port, "port"),
                    ("12345", "ocid"),
                ]
            st = stage(h)
            for k, v in variables(items, subs):
                v = UUID.sub("⟪other_uuid⟫", v)
                phases[st].setdefault(k, v)
    for st in ORDER:  # each phase holds the previous ones' variables too
        base = ORDER.index(st)
        if st.endswith("create"):
            continue
        prev = phases[ORDER[base - 1]]
        merged = dict(prev)
        merged.update(phases[st])
        phases[st] = merged
    phases.update(gateway_phases())
    out_phases = {k: list(v.items()) for k, v in phases.items()}
    for vs in out_phases.values():
        for i, (k, _v) in enumerate(vs):
            if k == "session_id":
                vs[i] = (k, "⟪session_id⟫")
            if k in ("local_media_port", "remote_media_port", "rtp_use_ssrc"):
                vs[i] = (k, f"⟪{k}⟫")
    phases_text = pprint.pformat(out_phases, width=96)
    reg = events("registrations")
    sofia = {}
    for ev in reg:
        d = dict(ev)
        sub = d.get("Event-Subclass")
        if sub and sub not in sofia:
            ext = d.get("from-user") or d.get("user") or ""
            port = d.get("network-port", "")
            subs = [(d.get("call-id", "@@"), "call_id"), (ext, "ext"), (port, "port")]
            items = []
            started = False
            for k, v in ev:
                if k == "Event-Sequence":
                    started = True
                    continue
                if started:
                    items.append((k, "⟪expires⟫" if k == "expires" else tokenize(v, subs)))
            sofia[sub] = items
    text = [
        '"""Channel variables and sofia event headers captured from a real FreeSWITCH 1.11.1.',
        "",
        "GENERATED by ``tests/sim/gen_captured.py`` from ``../shared/freeswitch/traces``:",
        "FreeSWITCH's output, not its source. ``⟪name⟫`` is filled in per channel by",
        ":func:`telephony.sim.headers.render`; ``⟪=name⟫`` is a computed timing variable.",
        '"""',
        "",
        "from __future__ import annotations",
        "",
        "VARIABLE_PHASES: dict[str, list[tuple[str, str]]] = " + phases_text,
        "",
        "SOFIA_HEADERS: dict[str, list[tuple[str, str]]] = " + pprint.pformat(sofia, width=96),
        "",
    ]
    OUT.write_text("\n".join(text), encoding="utf-8")


if __name__ == "__main__":
    main()
