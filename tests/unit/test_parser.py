"""The sans-IO parser on hand-made frames: framing, decoding, and what it does with bad bytes."""

from __future__ import annotations

from telephony.esl import serialize
from telephony.esl.messages import (
    ApiResponse,
    AuthRequest,
    CommandReply,
    DisconnectNotice,
    Event,
    LogData,
    Malformed,
    RudeRejection,
    Unknown,
)
from telephony.esl.parser import CommandParser, Decoder, FrameParser


def _messages(data: bytes) -> list[object]:
    decoder = Decoder()
    decoder.feed(data)
    return list(decoder.messages())


def test_each_content_type_becomes_its_message() -> None:
    data = (
        serialize.auth_request()
        + serialize.command_reply("+OK accepted")
        + serialize.api_response("+OK Success\n")
        + serialize.event_plain([("Event-Name", "HEARTBEAT")])
        + serialize.disconnect_notice()
        + serialize.rude_rejection()
        + b"Content-Type: log/data\nContent-Length: 3\nLog-Level: 7\n\nabc"
        + b"Content-Type: text/whatever\n\n"
    )
    kinds = [type(m) for m in _messages(data)]
    assert kinds == [
        AuthRequest,
        CommandReply,
        ApiResponse,
        Event,
        DisconnectNotice,
        RudeRejection,
        LogData,
        Unknown,
    ]


def test_body_without_trailing_newline_is_followed_directly_by_next_frame() -> None:
    # `api uuid_getvar` answers "9998" with no newline; the next frame starts right after.
    data = serialize.api_response("9998") + serialize.command_reply("+OK")
    first, second = _messages(data)
    assert first == ApiResponse("9998")
    assert isinstance(second, CommandReply) and second.reply_text == "+OK"


def test_content_length_counts_bytes_not_characters() -> None:
    body = "坐席忙，请稍候"  # 7 characters, 21 bytes in UTF-8
    data = serialize.api_response(body) + serialize.api_response("next")
    assert _messages(data) == [ApiResponse(body), ApiResponse("next")]


def test_plain_event_values_are_decoded_after_splitting_lines() -> None:
    frame = serialize.event_plain(
        [
            ("Event-Name", "CHANNEL_CREATE"),
            ("Unique-ID", "real-uuid"),
            ("Caller-Caller-ID-Name", "x\nUnique-ID: forged"),
        ]
    )
    assert b"%0AUnique-ID%3A%20forged" in frame
    (event,) = _messages(frame)
    assert isinstance(event, Event)
    assert event.unique_id == "real-uuid"
    assert event.headers["Caller-Caller-ID-Name"] == "x\nUnique-ID: forged"


def test_background_job_body_and_custom_event_name() -> None:
    job = serialize.event_plain(
        [("Event-Name", "BACKGROUND_JOB"), ("Job-UUID", "j1")], body="-ERR NO_ANSWER\n"
    )
    custom = serialize.event_plain(
        [("Event-Name", "CUSTOM"), ("Event-Subclass", "sofia::register")]
    )
    first, second = _messages(job + custom)
    assert isinstance(first, Event) and isinstance(second, Event)
    assert (first.name, first.job_uuid, first.body) == ("BACKGROUND_JOB", "j1", "-ERR NO_ANSWER\n")
    assert second.name == "sofia::register"


def test_json_event_keeps_body_and_header_values() -> None:
    frame = serialize.event_json(
        {"Event-Name": "BACKGROUND_JOB", "Job-UUID": "j2", "Caller-Caller-ID-Name": "a%0Ab"},
        body="+OK abc\n",
    )
    (event,) = _messages(frame)
    assert isinstance(event, Event)
    assert event.body == "+OK abc\n"
    assert event.headers["Caller-Caller-ID-Name"] == "a%0Ab"  # JSON values are not URL-encoded
    assert event.headers["Content-Length"] == "8"


def test_bad_content_length_is_reported_and_parsing_goes_on() -> None:
    data = b"Content-Type: api/response\nContent-Length: -4\n\n" + serialize.api_response("ok")
    first, second = _messages(data)
    assert isinstance(first, Malformed) and "Content-Length" in first.reason
    assert second == ApiResponse("ok")


def test_header_line_without_colon_is_skipped() -> None:
    data = b"this is not esl\n\n" + serialize.command_reply("+OK")
    first, second = _messages(data)
    assert isinstance(first, Malformed)
    assert isinstance(second, CommandReply)


def test_invalid_json_event_is_malformed_not_an_exception() -> None:
    data = b"Content-Length: 5\nContent-Type: text/event-json\n\n{oops"
    data += serialize.api_response("x")
    first, second = _messages(data)
    assert isinstance(first, Malformed) and first.reason.startswith("text/event-json")
    assert second == ApiResponse("x")


def test_an_endless_header_block_is_dropped_not_buffered_forever() -> None:
    parser = FrameParser()
    parser.feed(b"A" * (300 * 1024))
    (result,) = list(parser.frames())
    assert isinstance(result, Malformed)
    assert parser.buffered == 0


def test_incomplete_frame_waits_for_the_rest() -> None:
    parser = FrameParser()
    whole = serialize.api_response("+OK Success\n")
    parser.feed(whole[:-3])
    assert list(parser.frames()) == []
    parser.feed(whole[-3:])
    (frame,) = list(parser.frames())
    assert not isinstance(frame, Malformed)
    assert frame.body == b"+OK Success\n"


def test_command_parser_reads_sendmsg_with_headers_and_crlf_clients() -> None:
    parser = CommandParser()
    parser.feed(
        b"auth ClueCon\r\n\r\n"
        b"sendmsg abc\ncall-command: execute\nexecute-app-name: answer\nEvent-UUID: e1\n\n"
        b"sendmsg abc\ncall-command: execute\nexecute-app-name: speak\n"
        b"content-type: text/plain\ncontent-length: 5\n\nhello"
    )
    auth, execute, with_body = list(parser.commands())
    assert not isinstance(auth, Malformed) and auth.name == "auth" and auth.arg == "ClueCon"
    assert not isinstance(execute, Malformed)
    assert execute.arg == "abc" and execute.headers["Event-UUID"] == "e1"
    assert not isinstance(with_body, Malformed) and with_body.body == b"hello"
