"""Builders of the commands a controller sends to FreeSWITCH: the one place ESL strings are made.

Every builder returns the command text *without* the final blank line (the
transport adds it; :func:`encode` adds it for raw sockets).

Anything that comes from outside (numbers, names, file paths, variable
values, TTS text) is checked here so that it cannot end a line (add a header
or a command), close an originate ``{...}`` block (add a channel variable),
or add a dialplan application or another dial leg. Values that cannot be made
safe raise :class:`UnsafeValue`; nothing is silently dropped.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

EOL = "\n"

_UUID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
_APP = re.compile(r"^[a-z_][a-z0-9_]{0,63}$")
_API_COMMAND = re.compile(r"^[a-z_][a-z0-9_:]{0,63}$")
_VAR_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,127}$")
_HEADER_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,127}$")
_EVENT_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_:]{0,127}$")
_CAUSE = re.compile(r"^[A-Z_]{1,64}$")
_ENDPOINT = re.compile(r"^[A-Za-z0-9_./@:+*#=-]{1,256}$")
_LINE_BREAKS = ("\r", "\n", "\0")
# Characters FreeSWITCH reads as structure inside originate's {var=value,...} block.
_VAR_VALUE_FORBIDDEN = frozenset("{}[]<>'^|\\")


class UnsafeValue(ValueError):
    """A value that would change the structure of an ESL command."""


def _line(value: str, what: str) -> str:
    if any(c in value for c in _LINE_BREAKS):
        raise UnsafeValue(f"{what} must not contain a line break: {value!r}")
    return value


def _match(pattern: re.Pattern[str], value: str, what: str) -> str:
    if not pattern.match(value):
        raise UnsafeValue(f"invalid {what}: {value!r}")
    return value


def check_uuid(value: str) -> str:
    """A channel or job uuid."""
    return _match(_UUID, value, "uuid")


def encode(command: str) -> bytes:
    """The bytes on the wire for a command built here."""
    return (command + EOL + EOL).encode("utf-8")


def auth(password: str) -> str:
    return "auth " + _line(password, "password")


def event(names: Iterable[str], fmt: str = "plain") -> str:
    """Subscribe: ``event plain CHANNEL_CREATE ... CUSTOM sofia::register``."""
    if fmt not in ("plain", "json", "xml"):
        raise UnsafeValue(f"invalid event format: {fmt!r}")
    listed = [_match(_EVENT_NAME, n, "event name") for n in names]
    if not listed:
        raise UnsafeValue("no event names")
    return f"event {fmt} " + " ".join(listed)


def filter_(header: str, value: str) -> str:
    """Only pass events whose ``header`` equals ``value`` (``filter Unique-ID <uuid>``)."""
    return f"filter {_match(_HEADER_NAME, header, 'header name')} {_line(value, 'filter value')}"


def filter_delete(header: str, value: str | None = None) -> str:
    name = _match(_HEADER_NAME, header, "header name")
    if value is None:
        return f"filter delete {name}"
    return f"filter delete {name} {_line(value, 'filter value')}"


def api(command: str, *args: str) -> str:
    """``api <command> <args>``: a blocking API call, one line."""
    parts = [_match(_API_COMMAND, command, "api command")]
    parts.extend(_line(a, "api argument") for a in args)
    return "api " + " ".join(parts)


def bgapi(command: str, *args: str, job_uuid: str) -> str:
    """``bgapi`` with our own ``Job-UUID`` so the BACKGROUND_JOB can be matched to it."""
    parts = [_match(_API_COMMAND, command, "api command")]
    parts.extend(_line(a, "api argument") for a in args)
    return "bgapi " + " ".join(parts) + EOL + "Job-UUID: " + check_uuid(job_uuid)


def sendmsg_execute(
    uuid: str,
    app: str,
    arg: str = "",
    *,
    event_uuid: str,
    event_lock: bool = False,
    loops: int | None = None,
) -> str:
    """Run a dialplan application on a channel; its completion carries ``event_uuid``."""
    lines = [
        "sendmsg " + check_uuid(uuid),
        "call-command: execute",
        "execute-app-name: " + _match(_APP, app, "application name"),
    ]
    if arg:
        lines.append("execute-app-arg: " + _line(arg, "application argument"))
    if loops is not None:
        lines.append(f"loops: {int(loops)}")
    if event_lock:
        lines.append("event-lock: true")
    lines.append("Event-UUID: " + check_uuid(event_uuid))
    return EOL.join(lines)


def sendmsg_hangup(uuid: str, cause: str = "NORMAL_CLEARING") -> str:
    return EOL.join(
        [
            "sendmsg " + check_uuid(uuid),
            "call-command: hangup",
            "hangup-cause: " + _match(_CAUSE, cause, "hangup cause"),
        ]
    )


def sendmsg_unicast(
    uuid: str,
    *,
    local_ip: str,
    local_port: int,
    remote_ip: str,
    remote_port: int,
    transport: str = "udp",
    flags: str = "native",
) -> str:
    """Send a copy of the channel's media to a UDP/TCP socket (for a speech engine)."""
    if transport not in ("udp", "tcp"):
        raise UnsafeValue(f"invalid transport: {transport!r}")
    return EOL.join(
        [
            "sendmsg " + check_uuid(uuid),
            "call-command: unicast",
            "local-ip: " + _match(_ENDPOINT, local_ip, "ip"),
            f"local-port: {int(local_port)}",
            "remote-ip: " + _match(_ENDPOINT, remote_ip, "ip"),
            f"remote-port: {int(remote_port)}",
            "transport: " + transport,
            "flags: " + _match(_APP, flags, "unicast flags"),
        ]
    )


def channel_variable(name: str, value: str) -> str:
    """One ``name=value`` item of an originate ``{...}`` block, escaped."""
    _match(_VAR_NAME, name, "channel variable name")
    _line(value, f"value of {name}")
    bad = _VAR_VALUE_FORBIDDEN.intersection(value)
    if bad:
        raise UnsafeValue(f"value of {name} contains {''.join(sorted(bad))!r}: {value!r}")
    escaped = value.replace(",", "\\,")
    if " " in escaped:
        escaped = f"'{escaped}'"
    return f"{name}={escaped}"


def originate_args(
    endpoint: str,
    *,
    variables: Mapping[str, str] | None = None,
    app: str = "park",
    app_arg: str = "",
) -> list[str]:
    """The arguments of ``originate``: ``{vars}endpoint &app(arg)``, for :func:`api`/:func:`bgapi`.

    ``endpoint`` is one dial target (``user/1001``, ``sofia/gateway/trunk/0123...``):
    a ``,`` or ``|`` would add parallel or serial legs and is refused.
    """
    _match(_ENDPOINT, endpoint, "dial endpoint")
    block = ""
    if variables:
        block = "{" + ",".join(channel_variable(k, v) for k, v in variables.items()) + "}"
    _match(_APP, app, "application name")
    _line(app_arg, "application argument")
    if ")" in app_arg:
        raise UnsafeValue(f"application argument must not contain ')': {app_arg!r}")
    return [f"{block}{endpoint}", f"&{app}({app_arg})"]


_NUMBER = re.compile(r"^\+?[0-9*#]{1,32}$")
_CONTEXT = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def transfer_args(number: str, context: str, dialplan: str = "XML") -> list[str]:
    """Arguments of ``uuid_transfer <uuid> ...`` after the uuid: ``NUMBER XML CONTEXT``."""
    return [
        _match(_NUMBER, number, "telephone number"),
        _match(_CONTEXT, dialplan, "dialplan"),
        _match(_CONTEXT, context, "dialplan context"),
    ]


def setvar_multi(uuid: str, variables: Mapping[str, str]) -> list[str]:
    """Arguments of ``uuid_setvar_multi``: ``<uuid> a=1;b=2`` (values must not hold ``;``)."""
    items = []
    for name, value in variables.items():
        _match(_VAR_NAME, name, "channel variable name")
        _line(value, f"value of {name}")
        if ";" in value:
            raise UnsafeValue(f"value of {name} must not contain ';': {value!r}")
        items.append(f"{name}={value}")
    if not items:
        raise UnsafeValue("no variables")
    return [check_uuid(uuid), ";".join(items)]


def setvar(uuid: str, name: str, value: str) -> list[str]:
    """Arguments of ``uuid_setvar``."""
    return [
        check_uuid(uuid),
        _match(_VAR_NAME, name, "channel variable name"),
        _line(value, f"value of {name}"),
    ]


# -- call control (hold, transfer, three-way, monitor, dial out) --------------------------

_DIAL_NUMBER = re.compile(r"^\+?[0-9]{2,32}$")
_DTMF = re.compile(r"^[0-9*#A-D]{1,16}$")


def dial_number(number: str) -> str:
    """An outside telephone number to dial: digits, an optional leading ``+``."""
    return _match(_DIAL_NUMBER, number, "telephone number")


def dial_string(template: str, number: str, **fields: str) -> str:
    """The endpoint of an outside call from a template such as
    ``sofia/gateway/{gateway}/{number}``; the result is one dial target (see
    :func:`originate_args`)."""
    values = {k: _match(_CONTEXT, v, k) for k, v in fields.items()}
    try:
        endpoint = template.format(number=dial_number(number), **values)
    except (KeyError, IndexError, ValueError) as exc:
        raise UnsafeValue(f"invalid dial string template {template!r}: {exc}") from exc
    return _match(_ENDPOINT, endpoint, "dial endpoint")


def hold_args(uuid: str, on: bool = True) -> list[str]:
    """Arguments of ``uuid_hold``: ``<uuid>`` (hold) or ``off <uuid>`` (retrieve)."""
    return [check_uuid(uuid)] if on else ["off", check_uuid(uuid)]


def bridge_args(uuid: str, other: str) -> list[str]:
    """Arguments of ``uuid_bridge``: the first uuid's leg gets the CHANNEL_BRIDGE."""
    return [check_uuid(uuid), check_uuid(other)]


def break_args(uuid: str) -> list[str]:
    """Arguments of ``uuid_break``: stop what the channel plays now and what is queued."""
    return [check_uuid(uuid), "all"]


def recv_dtmf_args(uuid: str, digits: str) -> list[str]:
    """Arguments of ``uuid_recv_dtmf``: digits as if the channel's own phone sent them
    (an eavesdrop leg's mode: 0 listen, 1 talk to the caller, 2 to the agent, 3 both)."""
    return [check_uuid(uuid), _match(_DTMF, digits, "DTMF digits")]
