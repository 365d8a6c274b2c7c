"""The batch URL-decoding of plain event values gives what ``urllib.parse.unquote`` gives."""

from __future__ import annotations

from urllib.parse import unquote

from hypothesis import given
from hypothesis import strategies as st

from telephony.esl import serialize
from telephony.esl.parser import _unquote_values, parse_event_plain

_PIECES = st.sampled_from(
    [
        "%",
        "%0A",
        "%0a",
        "%3A%20",
        "%zz",
        "%E4%B8%AD",
        "%C3",
        "%2",
        "%25",
        "%5C",
        "\\",
        "\\x41",
        "\\ue000",
        "\\u0041",
        "é",
        "中",
        ":",
        " ",
        "a",
        "Z",
        "\x00",
    ]
)
_VALUE = (
    st.lists(_PIECES | st.text(max_size=3), max_size=12)
    .map("".join)
    .filter(lambda v: "\n" not in v)
)


@given(st.lists(_VALUE, max_size=8))
def test_batch_decoding_equals_urllib_value_by_value(values: list[str]) -> None:
    assert _unquote_values(values) == [unquote(v) for v in values]


@given(
    st.dictionaries(
        st.from_regex(r"[A-Za-z][A-Za-z0-9_-]{0,20}", fullmatch=True),
        st.text(max_size=40),
        max_size=10,
    )
)
def test_serialized_plain_events_decode_to_the_same_headers(headers: dict[str, str]) -> None:
    frame = serialize.event_plain(headers)
    body = frame.split(b"\n\n", 1)[1]
    assert dict(parse_event_plain(body).headers) == {
        k: v for k, v in headers.items() if k != "Content-Length"
    }
