"""Bytes that are not UTF-8 (a GBK caller-ID name) never cost an event or a reply (issue 7, 6)."""

from __future__ import annotations

from urllib.parse import quote_from_bytes

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from telephony.esl.messages import CommandReply, Event, Frame, Malformed
from telephony.esl.parser import Decoder, FrameParser, decode, parse_event_json, parse_event_plain

CALLER = "e0136acb-966a-4231-8574-d22bd659f5eb"
#: "李娜" in GBK: four bytes, none of which starts a valid UTF-8 sequence here.
GBK_NAME = "李娜".encode("gbk")


def _json_value(raw: bytes) -> bytes:
    """A JSON string of ``raw`` as cJSON writes it: quote, backslash and controls escaped,
    every other byte (UTF-8 or not) passed through."""
    out = bytearray(b'"')
    for b in raw:
        if b == 0x22:
            out += b'\\"'
        elif b == 0x5C:
            out += b"\\\\"
        elif b < 0x20:
            out += b"\\u%04x" % b
        else:
            out.append(b)
    return bytes(out + b'"')


def _json_event(values: dict[str, bytes]) -> bytes:
    fields = [b'"Event-Name":"CHANNEL_PARK"', b'"Unique-ID":"' + CALLER.encode() + b'"']
    fields += [_json_value(k.encode()) + b":" + _json_value(v) for k, v in values.items()]
    return b"{" + b",".join(fields) + b"}"


def _frame(ctype: str, body: bytes) -> bytes:
    return b"Content-Length: %d\nContent-Type: %s\n\n" % (len(body), ctype.encode()) + body


def test_a_json_event_with_a_gbk_caller_name_is_decoded_not_dropped() -> None:
    body = _json_event({"Caller-Caller-ID-Name": GBK_NAME, "variable_hotline": b"12345"})
    decoder = Decoder()
    decoder.feed(_frame("text/event-json", body))
    (message,) = decoder.messages()
    assert isinstance(message, Event), message
    assert message.name == "CHANNEL_PARK" and message.unique_id == CALLER
    assert message.variable("hotline") == "12345"
    assert message.get("Caller-Caller-ID-Name") == GBK_NAME.decode("utf-8", errors="replace")
    assert "\ufffd" in (message.get("Caller-Caller-ID-Name") or "")


def test_a_json_event_with_invalid_bytes_in_its_body_keeps_the_body() -> None:
    body = b'{"Event-Name":"BACKGROUND_JOB","Job-UUID":"j1","_body":"+OK \xff\xfe\\n"}'
    event = parse_event_json(body)
    assert event.job_uuid == "j1" and event.body == "+OK \ufffd\ufffd\n"


def test_json_that_is_broken_for_another_reason_is_still_malformed() -> None:
    for body in (b'{"Event-Name": "CHANNEL_PARK"', b'{"a": "\xc0\xee"', b"[1, 2]"):
        message = decode(Frame({"Content-Type": "text/event-json"}, body))
        assert isinstance(message, Malformed), body


def test_a_plain_event_with_gbk_escapes_is_decoded() -> None:
    head = f"Event-Name: CHANNEL_PARK\nUnique-ID: {CALLER}\n"
    head += f"Caller-Caller-ID-Name: {quote_from_bytes(GBK_NAME)}\n"
    head += "variable_note: %E4%B8%AD%C0%EE ok\n\n"
    event = parse_event_plain(head.encode())
    assert event.unique_id == CALLER
    assert event.get("Caller-Caller-ID-Name") == GBK_NAME.decode("utf-8", errors="replace")
    assert event.variable("note") == "中\ufffd\ufffd ok"


def test_a_reply_with_an_invalid_byte_is_still_a_reply() -> None:
    """A reply lost to a bad byte would pair every later reply with the wrong command."""
    parser = FrameParser()
    parser.feed(b"Content-Type: command/reply\nReply-Text: -ERR no such user \xc0\xee\n\n")
    (frame,) = parser.frames()
    assert isinstance(frame, Frame)
    reply = decode(frame)
    assert isinstance(reply, CommandReply) and not reply.ok
    assert reply.reply_text == "-ERR no such user \ufffd\ufffd"


_names = st.from_regex(r"\A[A-Za-z][A-Za-z0-9_-]{0,20}\Z", fullmatch=True).filter(
    lambda n: n not in ("Event-Name", "Unique-ID", "_body")
)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(_names, st.binary(max_size=40), max_size=8))
def test_json_events_with_any_bytes_in_values_decode_with_replacement(
    values: dict[str, bytes],
) -> None:
    event = parse_event_json(_json_event(values))
    assert event.name == "CHANNEL_PARK" and event.unique_id == CALLER
    for name, raw in values.items():
        assert event.get(name) == raw.decode("utf-8", errors="replace"), (name, raw)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(_names, st.text(max_size=40), max_size=8))
def test_valid_utf8_json_events_decode_exactly(values: dict[str, str]) -> None:
    body = orjson.dumps({"Event-Name": "CHANNEL_PARK", "Unique-ID": CALLER, **values})
    assert dict(parse_event_json(body).headers) == {
        "Event-Name": "CHANNEL_PARK",
        "Unique-ID": CALLER,
        **values,
    }


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(_names, st.binary(max_size=40), max_size=8))
def test_plain_events_with_any_escaped_bytes_decode_with_replacement(
    values: dict[str, bytes],
) -> None:
    head = f"Event-Name: CHANNEL_PARK\nUnique-ID: {CALLER}\n"
    head += "".join(f"{name}: {quote_from_bytes(raw, safe='')}\n" for name, raw in values.items())
    event = parse_event_plain((head + "\n").encode())
    assert event.name == "CHANNEL_PARK" and event.unique_id == CALLER
    for name, raw in values.items():
        assert event.get(name) == raw.decode("utf-8", errors="replace"), (name, raw)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200), st.binary(max_size=200))
def test_any_bytes_in_a_reply_header_never_lose_the_reply(text: bytes, extra: bytes) -> None:
    clean = bytes(b for b in text if b not in b"\r\n")
    other = bytes(b for b in extra if b not in b"\r\n")
    parser = FrameParser()
    parser.feed(b"Content-Type: command/reply\nReply-Text: " + clean + b"\nX-Extra: " + other)
    parser.feed(b"\n\n")
    (frame,) = parser.frames()
    assert isinstance(frame, Frame)
    assert isinstance(decode(frame), CommandReply)
