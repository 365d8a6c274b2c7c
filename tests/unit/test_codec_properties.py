"""Properties of the codec over generated input (hypothesis)."""

from __future__ import annotations

import itertools

from hypothesis import given, settings
from hypothesis import strategies as st

from telephony.esl import serialize
from telephony.esl.messages import ApiResponse, CommandReply, Event, Frame, Malformed
from telephony.esl.parser import CommandParser, Decoder, FrameParser, decode

header_names = st.from_regex(r"\A[A-Za-z][A-Za-z0-9_-]{0,30}\Z", fullmatch=True).filter(
    lambda n: n != "Content-Length"
)
header_values = st.text(max_size=60)  # anything: newlines, '%', ':', Chinese, control chars
event_headers = st.dictionaries(header_names, header_values, max_size=12).map(
    lambda h: {"Event-Name": "CHANNEL_EXECUTE", **h}
)
bodies = st.none() | st.text(max_size=80)


def _chunks(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    edges = [0, *points, len(data)]
    return [data[a:b] for a, b in itertools.pairwise(edges)]


def _decode_in_chunks(data: bytes, cuts: list[int]) -> list[object]:
    decoder = Decoder()
    out: list[object] = []
    for chunk in _chunks(data, cuts):
        decoder.feed(chunk)
        out.extend(decoder.messages())
    return out


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=2048), st.lists(st.integers(min_value=0), max_size=8))
def test_any_bytes_never_crash_or_hang(data: bytes, cuts: list[int]) -> None:
    parser = FrameParser()
    consumed = 0
    for chunk in _chunks(data, cuts):
        parser.feed(chunk)
        for item in parser.frames():
            assert isinstance(item, Frame | Malformed)
            if isinstance(item, Frame):
                decode(item)  # must return, never raise
            consumed += 1
    assert parser.buffered <= len(data)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=1024))
def test_any_bytes_never_crash_the_command_parser(data: bytes) -> None:
    parser = CommandParser()
    parser.feed(data)
    for _ in parser.commands():
        pass


@settings(max_examples=300, deadline=None)
@given(event_headers, bodies, st.lists(st.integers(min_value=0), max_size=6))
def test_plain_events_round_trip_split_anywhere(
    headers: dict[str, str], body: str | None, cuts: list[int]
) -> None:
    # FreeSWITCH values never carry a bare CR at a line end that matters; the codec keeps it.
    data = serialize.event_plain(headers, body)
    (event,) = _decode_in_chunks(data, cuts)
    assert isinstance(event, Event)
    expected = dict(headers)
    if body is not None:
        expected["Content-Length"] = str(len(body.encode()))
    assert dict(event.headers) == expected
    assert event.body == body


@settings(max_examples=200, deadline=None)
@given(event_headers, bodies, st.lists(st.integers(min_value=0), max_size=6))
def test_json_events_round_trip_split_anywhere(
    headers: dict[str, str], body: str | None, cuts: list[int]
) -> None:
    data = serialize.event_json(headers, body)
    (event,) = _decode_in_chunks(data, cuts)
    assert isinstance(event, Event)
    assert {k: v for k, v in event.headers.items() if k != "Content-Length"} == headers
    assert event.body == body


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.text(max_size=200).map(ApiResponse),
            st.from_regex(r"\A[+-][A-Za-z0-9 :._-]{0,40}\Z", fullmatch=True).map(CommandReply),
        ),
        max_size=6,
    ),
    st.lists(st.integers(min_value=0), max_size=6),
)
def test_replies_round_trip_in_sequence(
    messages: list[ApiResponse | CommandReply], cuts: list[int]
) -> None:
    data = b"".join(
        serialize.api_response(m.body)
        if isinstance(m, ApiResponse)
        else serialize.command_reply(m.reply_text)
        for m in messages
    )
    out = _decode_in_chunks(data, cuts)
    assert [m.body if isinstance(m, ApiResponse) else m.reply_text for m in out] == [  # type: ignore[union-attr]
        m.body if isinstance(m, ApiResponse) else m.reply_text for m in messages
    ]


forged_names = st.builds(
    lambda pre, post, sep: pre + sep + "Unique-ID: " + post,
    st.text(max_size=20),
    st.text(max_size=40),
    st.sampled_from(
        ["\n", "\r\n", "%0A", "%0a", "\n\n", "%0D%0A", "%250A", "\nContent-Length: 5\n\n"]
    ),
)


@settings(max_examples=300, deadline=None)
@given(forged_names, st.sampled_from(["plain", "json"]))
def test_caller_id_name_cannot_change_any_header(name: str, fmt: str) -> None:
    headers = {
        "Event-Name": "CHANNEL_CREATE",
        "Unique-ID": "e0136acb-966a-4231-8574-d22bd659f5eb",
        "Caller-Caller-ID-Name": name,
        "variable_sip_from_display": name,
        "Caller-Caller-ID-Number": "13800138000",
    }
    frame = serialize.event_plain(headers) if fmt == "plain" else serialize.event_json(headers)
    (event,) = _decode_in_chunks(frame + serialize.api_response("+OK"), [])[:1]
    assert isinstance(event, Event)
    assert dict(event.headers) == headers
