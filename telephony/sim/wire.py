"""Wire bytes for values that are not valid UTF-8 (a caller-ID name in GBK, say).

FreeSWITCH keeps header values as C strings and never checks their encoding. A raw
byte string reaches the ESL client:

* in ``event plain`` and plain ``uuid_dump`` URL-encoded byte by byte
  (``switch_url_encode``: ``%C0%EE``);
* in ``event json`` and ``uuid_dump json`` as the bytes themselves inside the JSON
  string: ``switch_event_serialize_json`` builds it with ``cJSON_CreateString`` and
  ``cJSON_PrintUnformatted`` (src/cJSON.c ``print_string_ptr`` escapes only ``"``,
  ``\\`` and control characters and copies every other byte), so the frame is not
  valid UTF-8 and a strict JSON decoder refuses it;
* in api bodies (``show channels as json``: the core database keeps the bytes).

The simulator carries such values as ``str`` with the raw bytes as lone surrogates
(``bytes.decode("utf-8", "surrogateescape")``). The fast serializers in
:mod:`telephony.esl.serialize` refuse those (UnicodeEncodeError, orjson's TypeError);
these are the slow paths the simulator falls back to.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import orjson

from telephony.esl import serialize

_UNSAFE = frozenset(b'\r\n #%&+:;<=>?@[\\]^`{|}"')
_ENCODE = [f"%{b:02X}" if (b in _UNSAFE or b < 32 or b > 126) else chr(b) for b in range(256)]
_JSON_ESCAPES = {0x22: b'\\"', 0x5C: b"\\\\", 0x08: b"\\b", 0x0C: b"\\f", 0x0A: b"\\n"}
_JSON_ESCAPES.update({0x0D: b"\\r", 0x09: b"\\t"})


def raw(text: str) -> bytes:
    """The bytes a simulator string stands for."""
    return text.encode("utf-8", "surrogateescape")


def text_of(data: bytes) -> str:
    """A simulator string for ``data`` (invalid UTF-8 kept as lone surrogates)."""
    return data.decode("utf-8", "surrogateescape")


def url_encode(value: str) -> str:
    """``switch_url_encode`` on the raw bytes (same table as the codec's)."""
    try:
        return serialize.url_encode(value)
    except UnicodeEncodeError:
        return "".join([_ENCODE[b] for b in raw(value)])


def cjson_string(data: bytes) -> bytes:
    """cJSON ``print_string_ptr``: ``"``, ``\\`` and bytes below 32 escaped, the rest as is."""
    out = bytearray(b'"')
    for b in data:
        esc = _JSON_ESCAPES.get(b)
        if esc is not None:
            out += esc
        elif b < 32:
            out += b"\\u%04x" % b
        else:
            out.append(b)
    out += b'"'
    return bytes(out)


def cjson_dumps(obj: Any) -> bytes:
    """``cJSON_PrintUnformatted`` of strings, numbers, lists and objects."""
    if isinstance(obj, str):
        return cjson_string(raw(obj))
    if isinstance(obj, bool) or obj is None:
        return orjson.dumps(obj)
    if isinstance(obj, int | float):
        return orjson.dumps(obj)
    if isinstance(obj, Mapping):
        items = [cjson_string(raw(str(k))) + b":" + cjson_dumps(v) for k, v in obj.items()]
        return b"{" + b",".join(items) + b"}"
    if isinstance(obj, list | tuple):
        return b"[" + b",".join(cjson_dumps(v) for v in obj) + b"]"
    raise TypeError(f"cannot serialise {type(obj).__name__}")


def dumps(obj: Any) -> str:
    """JSON text of ``obj`` (orjson when the strings are valid UTF-8, else as cJSON writes
    the raw bytes), as a simulator string."""
    try:
        return orjson.dumps(obj).decode()
    except TypeError:
        return text_of(cjson_dumps(obj))


def _items(headers: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    return [(k, v) for k, v in headers if k != "Content-Length"]


def event_plain(headers: Iterable[tuple[str, str]], body: str | None = None) -> bytes:
    """``text/event-plain`` frame whose values may hold raw bytes."""
    inner = "".join(f"{k}: {url_encode(v)}\n" for k, v in _items(headers)).encode("ascii")
    if body is not None:
        data = raw(body)
        inner += b"Content-Length: %d\n\n" % len(data) + data
    else:
        inner += b"\n"
    return b"Content-Length: %d\nContent-Type: text/event-plain\n\n" % len(inner) + inner


def event_json(headers: Iterable[tuple[str, str]], body: str | None = None) -> bytes:
    """``text/event-json`` frame whose values may hold raw bytes (copied into the JSON)."""
    data: dict[str, str] = dict(_items(headers))
    if body is not None:
        data["Content-Length"] = str(len(raw(body)))
        data["_body"] = body
    inner = cjson_dumps(data)
    return b"Content-Length: %d\nContent-Type: text/event-json\n\n" % len(inner) + inner


def api_response(body: str) -> bytes:
    """``api/response`` frame whose body may hold raw bytes."""
    try:
        return serialize.api_response(body)
    except UnicodeEncodeError:
        data = raw(body)
        return b"Content-Type: api/response\nContent-Length: %d\n\n" % len(data) + data
