"""Shape comparison of two ESL sessions: the real FreeSWITCH trace and the simulator's.

Rules (the contract the simulator must meet):

* Events are grouped per stream: per leg (alias A, B, C in order of
  CHANNEL_CREATE), per ``sofia:<user>`` for registration events. Within a
  stream the sequence of event names (``Event-Subclass`` for CUSTOM) must be
  equal. Order *across* streams is not compared: the README says it varies
  between runs (one leg's HANGUP_COMPLETE vs the other's UNBRIDGE).
* For each pair of corresponding events, every header of the real event
  must be present in the simulated one, and its value must have the same
  :func:`shape` (uuids become the leg or command they name, digit runs
  become ``9``, ...). :data:`VALUE_NOT_COMPARED` lists the few headers whose
  values legitimately differ (presence is still required);
  :data:`EXACT_DIGITS` lists headers whose digits carry meaning (DTMF digit,
  caller/callee numbers, q850 cause) and are compared verbatim.
* BACKGROUND_JOB events are matched by ``Job-UUID`` (the replay keeps the
  client's), their headers as above and their bodies by shape
  (``+OK <leg B>\\n`` is not ``-ERR NO_ANSWER\\n``).
* Each replayed command's reply (command/reply ``Reply-Text`` and headers,
  api/response body) is compared by shape; JSON bodies structurally,
  ``uuid_dump``'s plain body as headers.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final
from urllib.parse import unquote

import orjson

from telephony.esl.messages import ApiResponse, CommandReply, Event, Frame, Malformed, Unknown

from .traces import Received, Sent, Session

_TOKEN: Final = re.compile(
    r"(?P<uuid>[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})"
    r"|(?P<hex>\b(?=[0-9a-fA-F]*[a-fA-F])(?=[0-9a-fA-F]*[0-9])[0-9a-fA-F]{8,}\b)"
    r"|(?P<day>\b(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun)\b)"
    r"|(?P<mon>\b(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)\b)"
    r"|(?P<digits>[0-9]+)"
)
_UUID_ONLY: Final = re.compile(_TOKEN.pattern.split("|", 1)[0])

#: Headers whose *values* are not compared (presence still is). Keep it short; each has a reason.
VALUE_NOT_COMPARED: Final[frozenset[str]] = frozenset(
    {
        # The host's own addresses, "informational only" (README).
        "FreeSWITCH-IPv4",
        "FreeSWITCH-IPv6",
        # SDP bodies: media negotiation between SIPp and FreeSWITCH (codecs, ports, direction
        # attributes after a re-INVITE); no controller decision reads them.
        "variable_switch_r_sdp",
        "variable_switch_m_sdp",
        "variable_rtp_local_sdp_str",
        # SIP dialog identity and routing: random per call (Call-ID) and rewritten by
        # in-dialog requests such as the hold re-INVITE (Via/From/To flip to FreeSWITCH's
        # side); the controller identifies legs by Unique-ID, never by these.
        "variable_sip_call_id",
        "variable_sip_full_via",
        "variable_sip_recover_via",
        "variable_sip_full_from",
        "variable_sip_full_to",
    }
)

#: SIP dialog tokens are random per call in either form (FreeSWITCH ``jrmQe32reXQgF``,
#: SIPp ``27526SIPpTag010``, branches ``z9hG4bK...``): their value becomes ``<token>``,
#: but whether a ``tag=``/``branch=`` is there at all is still compared.
RANDOM_TOKEN_HEADERS: Final = frozenset({"variable_sip_from_tag", "variable_sip_to_tag"})
_TOKEN_PARAM: Final = re.compile(r"\b(tag|branch)=[^;>\s,]+")

#: Headers whose digits mean something to the controller: compared verbatim (uuids labelled).
EXACT_DIGITS: Final = re.compile(
    r"^(?:(?:Caller|Other-Leg)-(?:Caller-ID-Name|Caller-ID-Number|Orig-Caller-ID-Name"
    r"|Orig-Caller-ID-Number|Callee-ID-Name|Callee-ID-Number|ANI|Destination-Number|Username)"
    r"|DTMF-Digit|variable_digit|variable_hotline|variable_hangup_cause_q850"
    r"|Channel-State-Number|variable_dialed_user|variable_origination_caller_id_number"
    r"|variable_effective_caller_id_number|variable_park_timeout|from-user|user"
    r")$"
)


def shape(value: str, labels: Mapping[str, str] | None = None, *, exact: bool = False) -> str:
    """The comparable form of a header value.

    uuids become ``<leg A>`` / ``<sent#2>`` (from ``labels``) or ``<uuid>``;
    hex ids of 8+ characters ``<hex>``; day and month names ``<day>``/``<mon>``;
    every digit run ``9`` (so timestamps, durations, ports and IPs match,
    while ``CS_EXECUTE`` vs ``CS_PARK`` or ``recv_bye`` vs ``send_bye`` do not).
    With ``exact``, only uuids are replaced.
    """
    labels = labels or {}

    def one(m: re.Match[str]) -> str:
        kind = m.lastgroup
        text = m.group(0)
        if kind == "uuid":
            return f"<{labels.get(text.lower(), labels.get(text, 'uuid'))}>"
        if kind == "hex":
            return "<hex>"
        if kind == "day":
            return "<day>"
        if kind == "mon":
            return "<mon>"
        return "9"

    if exact:
        return _UUID_ONLY.sub(one, value)
    return _TOKEN.sub(one, value)


#: Time headers where ``0`` means "never happened" (not answered, not bridged...): kept as ``0``.
ZERO_MEANS_NEVER: Final = re.compile(r"(?:-Time|_epoch|_uepoch)$")


def header_shape(name: str, value: str, labels: Mapping[str, str]) -> str:
    """:func:`shape` with the per-header rules.

    :data:`EXACT_DIGITS` headers keep their digits; :data:`ZERO_MEANS_NEVER`
    headers keep a ``0``; sofia's ``expires`` is ``0`` (unregister), relative
    seconds (register) or an absolute epoch (expire), which the README insists on.
    """
    if name in RANDOM_TOKEN_HEADERS:
        return "<token>" if value else ""
    value = _TOKEN_PARAM.sub(r"\1=<token>", value)
    if EXACT_DIGITS.match(name):
        return shape(value, labels, exact=True)
    if value == "0" and ZERO_MEANS_NEVER.search(name):
        return "0"
    if name == "expires" and value.isdigit():
        seconds = int(value)
        return "0" if seconds == 0 else "<epoch>" if seconds >= 1_000_000_000 else "<seconds>"
    return shape(value, labels)


def _esc(value: str) -> str:
    return value.replace("\r", "\\r").replace("\n", "\\n")


def _short(value: str, limit: int = 70) -> str:
    """A value for a report line: quoted, newlines shown as ``\\n``, long ones cut."""
    text = _esc(value)
    return "'" + (text if len(text) <= limit else text[:limit] + "...") + "'"


def compare_headers(
    real: Mapping[str, str],
    sim: Mapping[str, str],
    real_labels: Mapping[str, str],
    sim_labels: Mapping[str, str],
    *,
    skip: Iterable[str] = (),
) -> list[str]:
    """Missing headers and differing value shapes, one line each (empty when they match)."""
    out: list[str] = []
    skipped = set(skip)
    missing = [h for h in real if h not in sim and h not in skipped]
    if missing:
        out.append(f"missing {len(missing)} header(s): {', '.join(missing)}")
    for name, value in real.items():
        if name not in sim or name in VALUE_NOT_COMPARED or name in skipped:
            continue
        a = header_shape(name, value, real_labels)
        b = header_shape(name, sim[name], sim_labels)
        if a != b:
            out.append(
                f"{name}: real {_short(value)} [{_esc(a)}] vs sim {_short(sim[name])} [{_esc(b)}]"
            )
    return out


def compare_events(
    real: Event,
    sim: Event,
    real_labels: Mapping[str, str],
    sim_labels: Mapping[str, str],
    *,
    skip: Iterable[str] = (),
) -> list[str]:
    """Header presence and shapes, then the body (BACKGROUND_JOB's result) by shape."""
    out = compare_headers(real.headers, sim.headers, real_labels, sim_labels, skip=skip)
    if (real.body is None) != (sim.body is None):
        out.append(f"body: real {_short(str(real.body))} vs sim {_short(str(sim.body))}")
    elif real.body is not None and sim.body is not None:
        a, b = shape(real.body, real_labels), shape(sim.body, sim_labels)
        if a != b:
            out.append(
                f"body: real {_short(real.body)} [{_esc(a)}] vs sim {_short(sim.body)} [{_esc(b)}]"
            )
    return out


def _describe(event: Event) -> str:
    app = event.application
    if event.name in ("CHANNEL_EXECUTE", "CHANNEL_EXECUTE_COMPLETE") and app:
        return f"{event.name} {app}"
    return event.name


def compare_stream(
    key: str,
    real: Sequence[Event],
    sim: Sequence[Event],
    real_labels: Mapping[str, str],
    sim_labels: Mapping[str, str],
    races: Mapping[int, Iterable[str]] | None = None,
) -> list[str]:
    """One stream (leg): the name sequence, then each aligned pair's headers. ``races``:
    per real event index, headers not compared there (see :data:`Race`)."""
    out: list[str] = []
    a = [e.name for e in real]
    b = [e.name for e in sim]
    matcher = difflib.SequenceMatcher(a=a, b=b, autojunk=False)
    if a != b:
        out.append(f"{key}: event sequence differs (real {len(a)} events, sim {len(b)})")
        for tag, i1, i2, j1, j2 in matcher.get_opcodes():
            if tag == "equal":
                continue
            real_part = [f"#{i} {_describe(real[i])}" for i in range(i1, i2)]
            sim_part = [f"#{j} {_describe(sim[j])}" for j in range(j1, j2)]
            out.append(f"  {tag}: real {real_part} -> sim {sim_part}")
    for block in matcher.get_matching_blocks():
        for k in range(block.size):
            i, j = block.a + k, block.b + k
            skip = (races or {}).get(i, ())
            diffs = compare_events(real[i], sim[j], real_labels, sim_labels, skip=skip)
            if diffs:
                out.append(f"{key} real#{i}/sim#{j} {_describe(real[i])}:")
                out.extend("    " + d for d in diffs)
    return out


def _json_or_none(text: str) -> Any:
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return None


def _plain_headers(text: str) -> dict[str, str] | None:
    """``uuid_dump``'s plain body: ``Name: value`` lines, URL-encoded values."""
    lines = [line for line in text.split("\n") if line]
    if len(lines) < 3 or not all(": " in line for line in lines):
        return None
    return {k: unquote(v) for k, _, v in (line.partition(": ") for line in lines)}


def compare_json(
    path: str,
    real: Any,
    sim: Any,
    real_labels: Mapping[str, str],
    sim_labels: Mapping[str, str],
) -> list[str]:
    """Structural comparison of JSON bodies (keys present, list lengths, value shapes)."""
    if isinstance(real, dict):
        if not isinstance(sim, dict):
            return [f"{path}: real is an object, sim {type(sim).__name__}"]
        out: list[str] = []
        missing = [k for k in real if k not in sim]
        if missing:
            out.append(f"{path}: missing key(s) {', '.join(missing)}")
        for k, v in real.items():
            if k in sim and k not in VALUE_NOT_COMPARED:
                out += compare_json(f"{path}.{k}", v, sim[k], real_labels, sim_labels)
        return out
    if isinstance(real, list):
        if not isinstance(sim, list) or len(real) != len(sim):
            n = len(sim) if isinstance(sim, list) else type(sim).__name__
            return [f"{path}: real list of {len(real)}, sim {n}"]
        real_rows, sim_rows = _rows_by_uuid(real, real_labels), _rows_by_uuid(sim, sim_labels)
        if real_rows is not None and sim_rows is not None:
            # `show channels` rows: pair them by the leg their uuid names, report the order apart.
            out = []
            if list(real_rows) != list(sim_rows):
                out.append(f"{path}: rows (by uuid) real {list(real_rows)} vs sim {list(sim_rows)}")
            for leg, row in real_rows.items():
                if leg in sim_rows:
                    out += compare_json(
                        f"{path}[{leg}]", row, sim_rows[leg], real_labels, sim_labels
                    )
            return out
        out = []
        for i, (x, y) in enumerate(zip(real, sim, strict=True)):
            out += compare_json(f"{path}[{i}]", x, y, real_labels, sim_labels)
        return out
    key = path.rsplit(".", 1)[-1]
    a = header_shape(key, str(real), real_labels)
    b = header_shape(key, str(sim), sim_labels)
    if type(real) is not type(sim) or a != b:
        return [
            f"{path}: real {_short(str(real))} [{_esc(a)}] vs sim {_short(str(sim))} [{_esc(b)}]"
        ]
    return []


def _rows_by_uuid(rows: list[Any], labels: Mapping[str, str]) -> dict[str, Any] | None:
    """JSON rows keyed by the label of their ``uuid`` (``leg A``...), if they all have one."""
    if not rows or not all(isinstance(r, dict) and isinstance(r.get("uuid"), str) for r in rows):
        return None
    keyed = {shape(r["uuid"], labels): r for r in rows}
    return keyed if len(keyed) == len(rows) else None


def compare_reply(
    command: Sent,
    real: Received | None,
    sim: Received | None,
    real_labels: Mapping[str, str],
    sim_labels: Mapping[str, str],
) -> list[str]:
    """One command's reply: the same kind, then Reply-Text/headers or the api body by shape."""
    where = f"reply to #{command.index} `{command.line[:70]}`"
    if real is None:
        return []
    if sim is None:
        return [f"{where}: no reply from the simulator"]
    rm, sm = real.message, sim.message
    if type(rm) is not type(sm):
        return [f"{where}: real {type(rm).__name__}, sim {type(sm).__name__} ({_short(str(sm))})"]
    if isinstance(rm, CommandReply) and isinstance(sm, CommandReply):
        diffs = compare_headers(rm.headers, sm.headers, real_labels, sim_labels)
        return [f"{where}: {d}" for d in diffs]
    if isinstance(rm, ApiResponse) and isinstance(sm, ApiResponse):
        rj, sj = _json_or_none(rm.body), _json_or_none(sm.body)
        if rj is not None and not isinstance(rj, str | int | float):
            if sj is None:
                return [f"{where}: real JSON, sim {_short(sm.body)}"]
            # The text form too: the idle `{"row_count": 0}` has a space, the full one has none.
            diffs = compare_json("body", rj, sj, real_labels, sim_labels)
            if rm.body.endswith("\n") != sm.body.endswith("\n"):
                diffs.append("body: trailing newline differs")
            return [f"{where}: {d}" for d in diffs]
        rh, sh = _plain_headers(rm.body), _plain_headers(sm.body)
        if rh is not None:
            if sh is None:
                return [f"{where}: real header dump, sim {_short(sm.body)}"]
            diffs = compare_headers(rh, sh, real_labels, sim_labels)
            if rm.body.endswith("\n\n") != sm.body.endswith("\n\n"):
                diffs.append("body: ending differs (plain uuid_dump ends in a blank line)")
            return [f"{where}: {d}" for d in diffs]
        return [f"{where}: {d}" for d in compare_text(rm.body, sm.body, real_labels, sim_labels)]
    return []


def compare_text(
    real: str, sim: str, real_labels: Mapping[str, str], sim_labels: Mapping[str, str]
) -> list[str]:
    """A text body by shape, line by line: the differing lines (at most 6), real then sim."""
    a, b = shape(real, real_labels), shape(sim, sim_labels)
    if a == b:
        return []
    if "\n" not in real.rstrip("\n"):
        return [f"real {_short(real, 200)} [{_esc(a)}] vs sim {_short(sim, 200)} [{_esc(b)}]"]
    ra, sa = real.split("\n"), sim.split("\n")
    matcher = difflib.SequenceMatcher(a=a.split("\n"), b=b.split("\n"), autojunk=False)
    out: list[str] = []
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            continue
        out.append(
            f"lines {i1 + 1}-{i2} real {[_esc(x) for x in ra[i1:i2]]} -> "
            f"sim lines {j1 + 1}-{j2} {[_esc(x) for x in sa[j1:j2]]}"
        )
    if len(out) > 6:
        out = [*out[:6], f"... and {len(out) - 6} more differing line groups"]
    return out


@dataclass
class Report:
    """The differences found, as lines; empty means the sessions match."""

    lines: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.lines)

    def text(self, limit: int | None = None) -> str:
        text = "\n".join(self.lines)
        if limit is not None and len(text) > limit:
            return text[:limit] + f"\n... ({len(text) - limit} more characters)"
        return text


def _other_frames(session: Session) -> list[Received]:
    return [r for r in session.received if r.event is None and not r.is_reply]


def _increasing(values: list[int], strict: bool) -> int | None:
    """Index of the first value that breaks the order, or None."""
    for i in range(1, len(values)):
        if values[i] < values[i - 1] or (strict and values[i] == values[i - 1]):
            return i
    return None


def compare_framing(
    real: Session, sim: Session, real_labels: Mapping[str, str], sim_labels: Mapping[str, str]
) -> list[str]:
    """Wire-level checks: no malformed or left-over bytes, the same non-reply frames
    (auth/request, disconnect-notice), and the ordering invariants every real trace has
    (Event-Sequence strictly increasing, Event-Date-Timestamp never decreasing)."""
    out: list[str] = []
    for r in sim.received:
        if isinstance(r.message, Malformed):
            out.append(
                f"frame #{r.index}: malformed ({r.message.reason}): {_short(str(r.message.raw))}"
            )
        elif isinstance(r.message, Unknown):
            out.append(f"frame #{r.index}: unexpected Content-Type {r.message.content_type!r}")
    if sim.leftover:
        out.append(f"{sim.leftover} byte(s) received after the last whole frame")
    real_other, sim_other = _other_frames(real), _other_frames(sim)
    kinds = [_kind(r) for r in real_other], [_kind(r) for r in sim_other]
    if kinds[0] != kinds[1]:
        out.append(f"other frames: real {kinds[0]} vs sim {kinds[1]}")
    else:
        for a, b in zip(real_other, sim_other, strict=True):
            ta, tb = _frame_text(a), _frame_text(b)
            out += [f"{_kind(a)}: {d}" for d in compare_text(ta, tb, real_labels, sim_labels)]
    for header, strict in (("Event-Sequence", True), ("Event-Date-Timestamp", False)):
        values = [int(v) for e in sim.events if (v := e.get(header) or "").isdigit()]
        real_values = [int(v) for e in real.events if (v := e.get(header) or "").isdigit()]
        if _increasing(real_values, strict) is None and (i := _increasing(values, strict)):
            out.append(f"{header} goes backwards at event #{i}: {values[i - 1]} then {values[i]}")
    return out


def _kind(r: Received) -> str:
    return r.frame.content_type if isinstance(r.frame, Frame) else "malformed"


def _frame_text(r: Received) -> str:
    return r.frame.body.decode("utf-8", errors="replace") if isinstance(r.frame, Frame) else ""


@dataclass(frozen=True, slots=True)
class Race:
    """Headers of one real event whose values a capture race decided (leg, the leg's event
    index, headers, why): FreeSWITCH's threads ran in a different order in another capture
    of the same step, so no single behaviour matches both. Presence is still compared."""

    leg: str
    index: int
    headers: tuple[str, ...]
    why: str


def compare_sessions(
    real: Session,
    sim: Session,
    *,
    replies: Sequence[tuple[Sent, Received | None, Received | None]] | None = None,
    streams: Iterable[str] | None = None,
    races: Sequence[Race] = (),
) -> Report:
    """Compare two sessions stream by stream, then jobs, then the given command replies.

    ``replies`` pairs each real command with the real and simulated replies
    (the replay driver knows which simulated reply answers which command);
    ``None`` pairs the two sessions' replies by command index. ``streams``
    restricts the comparison to those streams (default: all of the real ones).
    """
    report = Report()
    rl, sl = real.labels(), sim.labels()
    report.lines += compare_framing(real, sim, rl, sl)
    real_streams = real.per_leg()
    sim_streams = sim.per_leg()
    keys = list(real_streams) if streams is None else list(streams)
    for key in keys:
        if key not in sim_streams:
            names = [e.name for e in real_streams.get(key, [])]
            report.lines.append(f"{key}: no events from the simulator (real: {names})")
            continue
        skips = {r.index: r.headers for r in races if r.leg == key}
        report.lines += compare_stream(
            key, real_streams.get(key, []), sim_streams[key], rl, sl, skips
        )
    extra = [k for k in sim_streams if k not in real_streams]
    if streams is None and extra:
        for key in extra:
            names = [e.name for e in sim_streams[key]]
            report.lines.append(f"{key}: simulator-only stream, not in the real trace: {names}")
    real_jobs, sim_jobs = real.jobs(), sim.jobs()
    for job, event in real_jobs.items():
        if job not in sim_jobs:
            report.lines.append(f"BACKGROUND_JOB {job}: not sent by the simulator")
            continue
        diffs = compare_events(event, sim_jobs[job], rl, sl)
        if diffs:
            report.lines.append(f"BACKGROUND_JOB {job}:")
            report.lines += ["    " + d for d in diffs]
    if replies is None:
        sim_replies = sim.replies()
        replies = [
            (cmd, reply, sim_replies[i][1] if i < len(sim_replies) else None)
            for i, (cmd, reply) in enumerate(real.replies())
        ]
    for cmd, real_reply, sim_reply in replies:
        report.lines += compare_reply(cmd, real_reply, sim_reply, rl, sl)
    return report


@dataclass(frozen=True, slots=True)
class EventRef:
    """One event of a leg: the ``nth`` (0 first, -1 last) ``name`` (with ``Application``
    ``app`` for CHANNEL_EXECUTE / CHANNEL_EXECUTE_COMPLETE)."""

    name: str
    app: str | None = None
    nth: int = 0

    def find(self, events: Sequence[Event]) -> Event | None:
        hits = [
            e
            for e in events
            if e.name == self.name and (self.app is None or e.get("Application") == self.app)
        ]
        try:
            return hits[self.nth]
        except IndexError:
            return None

    def __str__(self) -> str:
        app = f" {self.app}" if self.app else ""
        return f"{self.name}{app}#{self.nth}"


@dataclass(frozen=True, slots=True)
class Timing:
    """A timing rule on one leg, in switch seconds (``Event-Date-Timestamp``).

    With ``end``: the time from ``start`` to ``end`` is within [``low``, ``high``].
    Without: the fraction of the epoch second at which ``start`` happened is within
    [``low``, ``high``] (the park timer fires on a whole second). Every rule is checked
    on the real trace too, so a rule that the capture breaks is a harness bug.
    """

    leg: str
    start: EventRef
    end: EventRef | None
    low: float
    high: float
    why: str


def _stamp(event: Event) -> float:
    return int(event.headers.get("Event-Date-Timestamp", "0")) / 1_000_000


def compare_timing(session: Session, rules: Iterable[Timing]) -> list[str]:
    """The rules ``session`` breaks, one line each (empty when all hold)."""
    streams = session.per_leg()
    out: list[str] = []
    for rule in rules:
        events = streams.get(rule.leg, [])
        start = rule.start.find(events)
        end = rule.end.find(events) if rule.end is not None else None
        if start is None or (rule.end is not None and end is None):
            missing = rule.start if start is None else rule.end
            out.append(f"timing {rule.leg}: no {missing} ({rule.why})")
            continue
        if end is None:
            value = _stamp(start) % 1.0
            what = f"{rule.start} at {value:.3f} s into its epoch second"
        else:
            value = _stamp(end) - _stamp(start)
            what = f"{rule.start} -> {rule.end} took {value:.3f} s"
        if not rule.low <= value <= rule.high:
            out.append(
                f"timing {rule.leg}: {what}, not within [{rule.low:g}, {rule.high:g}] ({rule.why})"
            )
    return out
