"""The real FreeSWITCH traces through our codec, and the trace readers checked against the README.

* every ``NAME.txt`` parses into frames with no Malformed and no leftover byte,
  identically however it is split (every offset of the first frames, a stride
  over the rest, random chunkings);
* frame and event counts equal the README's call-center table;
* every plain event re-serializes (``serialize.event_plain``) to its original
  bytes, the duplicated ``Hangup-Cause`` of CHANNEL_HANGUP_COMPLETE included;
* the JSON capture of the 9999 call has the same headers, with values of the
  same shape, as the plain capture;
* the annotated files agree with ``NAME.txt`` / ``NAME.sent.txt`` and the leg
  aliases with ``timeline/NAME.timeline.txt``.
"""

from __future__ import annotations

import re
from collections import Counter
from functools import cache
from urllib.parse import unquote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from telephony.esl import serialize
from telephony.esl.messages import ApiResponse, Event, Frame, Malformed
from telephony.esl.parser import FrameParser, decode, parse_event_plain

from .compare import compare_headers
from .traces import (
    FREESWITCH_DIR,
    Session,
    SessionRecorder,
    load_session,
    parse_command,
    parse_frames,
    read_annotated,
    read_received,
    read_sent,
    split_commands,
    trace_names,
    traces_available,
)

pytestmark = pytest.mark.skipif(
    not traces_available(), reason=f"no FreeSWITCH traces at {FREESWITCH_DIR}"
)

NAMES = trace_names()
#: Files at most this big are split at every byte offset.
SMALL = 20_000
#: For bigger files: every offset within the first frames (this many bytes), then a stride.
HEAD_FRAMES = 4
STRIDE = 1009
#: Headers FreeSWITCH sends twice (same value) in one plain event, found in the traces.
KNOWN_DUPLICATES = {
    ("CHANNEL_HANGUP_COMPLETE", frozenset({"Hangup-Cause"})),
    ("CODEC", frozenset({"Channel-Write-Codec-Name", "Channel-Write-Codec-Rate"})),
}


@cache
def frames_of(name: str) -> list[Frame | Malformed]:
    frames, _ = parse_frames(read_received(name))
    return frames


def parse_split(data: bytes, cuts: list[int]) -> tuple[list[Frame | Malformed], int]:
    """Feed ``data`` in pieces cut at ``cuts``; returns the frames and the leftover count."""
    parser = FrameParser()
    frames: list[Frame | Malformed] = []
    start = 0
    for cut in [*sorted(cuts), len(data)]:
        parser.feed(data[start:cut])
        frames.extend(parser.frames())
        start = cut
    return frames, parser.buffered


@pytest.mark.parametrize("name", NAMES)
def test_trace_parses_without_malformed_or_leftover(name: str) -> None:
    frames, leftover = parse_frames(read_received(name))
    malformed = [f for f in frames if isinstance(f, Malformed)]
    assert not malformed, f"{name}: {malformed[:3]}"
    assert leftover == 0, f"{name}: {leftover} bytes left unparsed"
    for frame in frames:
        assert isinstance(frame, Frame)
        assert not isinstance(decode(frame), Malformed), f"{name}: {frame.headers}"


def _head_length(frames: list[Frame | Malformed], data: bytes) -> int:
    """Bytes of the first :data:`HEAD_FRAMES` frames (found by parsing growing prefixes)."""
    want = min(HEAD_FRAMES, len(frames))
    lo, hi = 0, len(data)
    while lo < hi:  # smallest prefix that yields `want` frames
        mid = (lo + hi) // 2
        if len(parse_frames(data[:mid])[0]) >= want:
            hi = mid
        else:
            lo = mid + 1
    return lo


@pytest.mark.parametrize("name", NAMES)
def test_trace_parses_identically_split_in_two(name: str) -> None:
    data = read_received(name)
    whole = frames_of(name)
    if len(data) <= SMALL:
        for cut in range(len(data) + 1):
            assert parse_split(data, [cut]) == (whole, 0), f"{name}: split at {cut}"
        return
    head = _head_length(whole, data)
    prefix = data[:head]
    prefix_frames = parse_frames(prefix)[0]
    assert prefix_frames == whole[:HEAD_FRAMES]
    for cut in range(head + 1):
        assert parse_split(prefix, [cut]) == (prefix_frames, 0), f"{name}: split at {cut}"
    for cut in range(head, len(data) + 1, STRIDE):
        assert parse_split(data, [cut]) == (whole, 0), f"{name}: split at {cut}"


@settings(
    max_examples=8,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(data=st.data())
@pytest.mark.parametrize("name", NAMES)
def test_trace_parses_identically_in_random_chunks(name: str, data: st.DataObject) -> None:
    raw = read_received(name)
    cuts = data.draw(
        st.lists(st.integers(min_value=0, max_value=len(raw)), max_size=60), label="cuts"
    )
    assert parse_split(raw, cuts) == (frames_of(name), 0)


# -- the README's call-center table ---------------------------------------------------------

_SHORT = {
    "BACKGROUND_JOB",
    "DTMF",
    "PLAYBACK_START",
    "PLAYBACK_STOP",
    "RECORD_START",
    "RECORD_STOP",
}


def _event_name(short: str) -> str:
    short = short.removeprefix("CUSTOM ").strip()
    if short in _SHORT or short.startswith(("CHANNEL_", "sofia::")):
        return short
    return "CHANNEL_" + short


@cache
def readme_table() -> dict[str, tuple[int, int, Counter[str]]]:
    """``| `NAME` | frames | events | event counts |`` rows of the README."""
    text = (FREESWITCH_DIR / "README.md").read_text(encoding="utf-8")
    rows: dict[str, tuple[int, int, Counter[str]]] = {}
    for m in re.finditer(r"^\| `(\w+)` \| (\d+) \| (\d+) \| (.+?) \|$", text, re.M):
        name, frames, events, listing = m.groups()
        counts: Counter[str] = Counter()
        extra = re.search(r"\(\+ (\d+) ([\w/-]+)\)", listing)
        if extra:
            counts["frame:" + extra.group(2)] = int(extra.group(1))
        listing = re.sub(r"\(.*?\)", "", listing)
        for item in listing.split(","):
            short, _, count = item.strip().rpartition(" ")
            counts[_event_name(short)] += int(count)
        rows[name] = (int(frames), int(events), counts)
    return rows


def test_readme_table_lists_the_call_center_sessions() -> None:
    assert set(readme_table()) >= {
        "hotline_ivr_agent",
        "agent_no_answer",
        "caller_abandons_in_queue",
        "three_way_and_transfer",
        "registrations",
        "controller_restart_conn1",
        "controller_restart_conn2",
        "unbridge_hangup_after_bridge_false",
        "three_way_on_bridged_agent",
    }


@pytest.mark.parametrize("name", sorted(readme_table()) if traces_available() else [])
def test_frame_and_event_counts_match_readme(name: str) -> None:
    frames_expected, events_expected, counts = readme_table()[name]
    frames = [f for f in frames_of(name) if isinstance(f, Frame)]
    events = [m for m in map(decode, frames) if isinstance(m, Event)]
    assert len(frames) == frames_expected
    assert len(events) == events_expected
    actual = Counter(e.name for e in events)
    for key, n in counts.items():
        if key.startswith("frame:"):
            ctype = key.removeprefix("frame:")
            assert sum(1 for f in frames if f.content_type == ctype) == n, key
    assert actual == Counter({k: v for k, v in counts.items() if not k.startswith("frame:")})


# -- re-serialization --------------------------------------------------------------------


def _raw_header_pairs(body: bytes) -> list[tuple[str, str]]:
    """The header lines of a plain event body, duplicates kept, values URL-decoded."""
    head = body.split(b"\n\n", 1)[0].decode("utf-8")
    pairs = []
    for line in head.split("\n"):
        name, _, value = line.partition(": ")
        if name != "Content-Length":
            pairs.append((name, unquote(value)))
    return pairs


@pytest.mark.parametrize("name", NAMES)
def test_plain_events_reserialize_to_the_original_bytes(name: str) -> None:
    data = read_received(name)
    cursor = 0
    duplicates = 0
    for frame in frames_of(name):
        assert isinstance(frame, Frame)
        if frame.content_type != "text/event-plain":
            continue
        event = parse_event_plain(frame.body)
        pairs = _raw_header_pairs(frame.body)
        names = Counter(n for n, _ in pairs)
        doubled = frozenset(n for n, k in names.items() if k > 1)
        if doubled:
            # The known cases, each header twice with the same value: Hangup-Cause on
            # CHANNEL_HANGUP_COMPLETE, and (in the 9999 call) Channel-Write-Codec-Name/-Rate
            # on a CODEC event. A dict keeps one, so only the pairs re-serialize exactly.
            assert (event.name, doubled) in KNOWN_DUPLICATES, (event.name, doubled)
            for header in doubled:
                assert len({v for n, v in pairs if n == header}) == 1, header
            duplicates += event.name == "CHANNEL_HANGUP_COMPLETE"
            expected = serialize.event_plain(pairs, event.body)
            assert serialize.event_plain(event.headers, event.body) != expected
        else:
            expected = serialize.event_plain(event.headers, event.body)
        # Events are found verbatim, in order (other frames lie between them).
        at = data.find(expected, cursor)
        assert at >= 0, (
            f"{name}: {event.name} after byte {cursor} does not re-serialize to its bytes"
        )
        cursor = at + len(expected)
    hangup_completes = sum(
        1
        for f in frames_of(name)
        if isinstance(f, Frame)
        and f.content_type == "text/event-plain"
        and parse_event_plain(f.body).name == "CHANNEL_HANGUP_COMPLETE"
    )
    assert duplicates == hangup_completes


# -- JSON vs plain -----------------------------------------------------------------------


def _session_of(name: str) -> Session:
    recorder = SessionRecorder(name)
    recorder.on_received(read_received(name), 0.0)
    return recorder.session


def test_json_capture_matches_plain_capture() -> None:
    plain, json = _session_of("esl_call_9999_plain"), _session_of("esl_call_9999_json")
    p_events = [e for e in plain.events if e.unique_id]
    j_events = [e for e in json.events if e.unique_id]
    assert [e.name for e in p_events] == [e.name for e in j_events]
    assert len(p_events) == 44
    problems = []
    for i, (p, j) in enumerate(zip(p_events, j_events, strict=True)):
        assert set(p.headers) == set(j.headers), (i, p.name)
        diffs = compare_headers(p.headers, j.headers, plain.labels(), json.labels())
        problems += [f"#{i} {p.name}: {d}" for d in diffs]
    assert not problems, "\n".join(problems)


def test_json_background_job_has_the_plain_layout() -> None:
    """esl_api_samples: a plain BACKGROUND_JOB (originate) then a JSON one (status, no argument)."""
    session = _session_of("esl_api_samples")
    kinds = [
        f.content_type
        for f in frames_of("esl_api_samples")
        if isinstance(f, Frame) and f.content_type.startswith("text/event-")
    ]
    assert kinds == ["text/event-plain", "text/event-json"]
    plain, json = (e for e in session.events if e.name == "BACKGROUND_JOB")
    assert plain.body is not None and plain.body.startswith("+OK ")
    assert json.body is not None and json.body.startswith("UP ")
    assert set(json.headers) == set(plain.headers) - {"Job-Command-Arg"}
    assert json.headers["Content-Length"] == str(len(json.body.encode()))
    diffs = compare_headers(plain.headers, json.headers, {}, {}, skip=["Job-Command-Arg"])
    assert diffs == ["Job-Command: real 'originate' [originate] vs sim 'status' [status]"]


# -- annotated files, commands, legs -----------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_annotated_file_holds_both_streams(name: str) -> None:
    chunks = read_annotated(name)
    recv = b"".join(c.data for c in chunks if c.direction == "RECV")
    sent = b"".join(c.data for c in chunks if c.direction == "SENT")
    assert recv == read_received(name)
    assert sent == read_sent(name)
    times = [c.t for c in chunks]
    assert times == sorted(times)


@pytest.mark.parametrize("name", NAMES)
def test_sent_bytes_split_into_commands(name: str) -> None:
    commands, rest = split_commands(read_sent(name))
    assert rest == b""
    assert b"".join(commands) == read_sent(name)
    for raw in commands:
        parse_command(raw)


@pytest.mark.parametrize("name", NAMES)
def test_each_command_gets_one_reply_in_order(name: str) -> None:
    session = load_session(name)
    pairs = session.replies()
    if name == "esl_auth_failure":
        return  # one command, then the socket is closed by FreeSWITCH
    assert all(reply is not None for _, reply in pairs), name
    for cmd, reply in pairs:
        assert reply is not None
        if cmd.line.startswith("api "):
            assert isinstance(reply.message, ApiResponse), (cmd.line, reply.message)


def _timeline(name: str) -> tuple[list[tuple[str, str]], dict[str, str]]:
    """(event name, alias) per event line, and the legend ``A = <uuid>``."""
    path = FREESWITCH_DIR / "timeline" / f"{name}.timeline.txt"
    events: list[tuple[str, str]] = []
    legend: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        tokens = line.split()
        if len(tokens) >= 3 and tokens[1] == "=":
            legend[tokens[2]] = tokens[0]
        elif len(tokens) >= 4 and tokens[1] == "event":
            if tokens[2] == "CUSTOM":
                events.append((tokens[3], tokens[4]))
            else:
                events.append((tokens[2], tokens[3]))
    return events, legend


TIMELINES = (
    sorted(
        p.name.removesuffix(".timeline.txt")
        for p in (FREESWITCH_DIR / "timeline").glob("*.timeline.txt")
    )
    if traces_available()
    else []
)


@pytest.mark.parametrize("name", TIMELINES)
def test_leg_aliases_agree_with_timeline(name: str) -> None:
    known = load_session("controller_restart_conn1").legs if name.endswith("_conn2") else None
    session = load_session(name, known)
    events, legend = _timeline(name)
    legs = session.legs
    ours = [(e.name, legs.get(e.unique_id or "", "-")) for e in session.events]
    assert ours == events
    assert {u: a for u, a in legs.items() if u in legend} == legend
