"""Formatting of what FreeSWITCH sends: used by the simulator, and by tests that need bytes.

Byte-compatible with ``mod_event_socket``: ``text/event-plain`` values are
URL-encoded with FreeSWITCH's own unsafe set (``SWITCH_URL_UNSAFE`` plus
control and non-ASCII bytes, upper-case hex), header blocks end in a blank
line, and bodies are counted in bytes.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import orjson

_UNSAFE = frozenset(b'\r\n #%&+:;<=>?@[\\]^`{|}"')
_ENCODE_TABLE = [f"%{b:02X}" if (b in _UNSAFE or b < 32 or b > 126) else chr(b) for b in range(256)]

GOODBYE = "Disconnected, goodbye.\nSee you at ClueCon! http://www.cluecon.com/\n"


def url_encode(value: str) -> str:
    """``switch_url_encode``: percent-encode the unsafe, control and non-ASCII bytes."""
    if value.isascii() and value.isalnum():
        return value
    return "".join([_ENCODE_TABLE[b] for b in value.encode("utf-8")])


HeaderItems = Mapping[str, str] | Iterable[tuple[str, str]]


def _items(headers: HeaderItems) -> Iterable[tuple[str, str]]:
    return headers.items() if isinstance(headers, Mapping) else headers


def event_plain(
    headers: HeaderItems,
    body: str | None = None,
    *,
    line_cache: dict[tuple[str, str], str] | None = None,
) -> bytes:
    """A whole ``text/event-plain`` frame.

    ``line_cache`` memoises encoded ``Name: value`` lines across calls (a channel's
    variables repeat in every one of its events); the caller bounds its size.
    """
    lines = []
    for item in _items(headers):
        if item[0] == "Content-Length":
            continue
        line = line_cache.get(item) if line_cache is not None else None
        if line is None:
            line = f"{item[0]}: {url_encode(item[1])}\n"
            if line_cache is not None:
                line_cache[item] = line
        lines.append(line)
    if body is not None:
        raw = body.encode("utf-8")
        lines.append(f"Content-Length: {len(raw)}\n\n")
        inner = "".join(lines).encode("utf-8") + raw
    else:
        lines.append("\n")
        inner = "".join(lines).encode("utf-8")
    return b"Content-Length: %d\nContent-Type: text/event-plain\n\n" % len(inner) + inner


def event_json(headers: HeaderItems, body: str | None = None) -> bytes:
    """A whole ``text/event-json`` frame (``_body`` and a string Content-Length for a body)."""
    data = {k: v for k, v in _items(headers) if k != "Content-Length"}
    if body is not None:
        data["Content-Length"] = str(len(body.encode("utf-8")))
        data["_body"] = body
    inner = orjson.dumps(data)
    return b"Content-Length: %d\nContent-Type: text/event-json\n\n" % len(inner) + inner


def auth_request() -> bytes:
    return b"Content-Type: auth/request\n\n"


def command_reply(reply_text: str, extra: HeaderItems = ()) -> bytes:
    head = "Content-Type: command/reply\nReply-Text: " + reply_text + "\n"
    head += "".join(f"{k}: {v}\n" for k, v in _items(extra))
    return (head + "\n").encode("utf-8")


def api_response(body: str) -> bytes:
    raw = body.encode("utf-8")
    return b"Content-Type: api/response\nContent-Length: %d\n\n" % len(raw) + raw


def disconnect_notice(body: str = GOODBYE, disposition: str | None = None) -> bytes:
    raw = body.encode("utf-8")
    head = b"Content-Type: text/disconnect-notice\n"
    if disposition:
        head += b"Controlled-Session-UUID: \nContent-Disposition: " + disposition.encode() + b"\n"
    return head + b"Content-Length: %d\n\n" % len(raw) + raw


def rude_rejection(body: str = "Access Denied, go away.\n") -> bytes:
    raw = body.encode("utf-8")
    return b"Content-Type: text/rude-rejection\nContent-Length: %d\n\n" % len(raw) + raw
