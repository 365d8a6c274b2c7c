"""Command builders: the exact wire text, and refusal of anything that would change a command."""

from __future__ import annotations

import pytest

from telephony.esl import commands
from telephony.esl.commands import UnsafeValue
from telephony.esl.parser import CommandParser

A = "e0136acb-966a-4231-8574-d22bd659f5eb"


def _parse(text: str) -> list[object]:
    parser = CommandParser()
    parser.feed(commands.encode(text))
    return list(parser.commands())


def test_sendmsg_execute_matches_the_traces() -> None:
    text = commands.sendmsg_execute(
        A, "playback", "tone_stream://%(500,0,440)", event_uuid="3b400c5a-aaba"
    )
    assert text == (
        f"sendmsg {A}\ncall-command: execute\nexecute-app-name: playback\n"
        "execute-app-arg: tone_stream://%(500,0,440)\nEvent-UUID: 3b400c5a-aaba"
    )


def test_bgapi_originate_matches_the_traces() -> None:
    args = commands.originate_args(
        "user/1001",
        variables={
            "origination_caller_id_number": "12345",
            "origination_caller_id_name": "12345",
            "hotline_call": A,
            "originate_timeout": "15",
        },
    )
    text = commands.bgapi("originate", *args, job_uuid="de3518f9-b98d")
    assert text == (
        "bgapi originate {origination_caller_id_number=12345,origination_caller_id_name=12345,"
        f"hotline_call={A},originate_timeout=15}}user/1001 &park()\nJob-UUID: de3518f9-b98d"
    )


def test_hangup_and_api_and_event_and_filter() -> None:
    assert commands.sendmsg_hangup(A) == (
        f"sendmsg {A}\ncall-command: hangup\nhangup-cause: NORMAL_CLEARING"
    )
    assert commands.api("uuid_setvar", *commands.setvar(A, "park_after_bridge", "true")) == (
        f"api uuid_setvar {A} park_after_bridge true"
    )
    assert commands.event(["CHANNEL_PARK", "CUSTOM", "sofia::register"]) == (
        "event plain CHANNEL_PARK CUSTOM sofia::register"
    )
    assert commands.filter_("Unique-ID", A) == f"filter Unique-ID {A}"


@pytest.mark.parametrize(
    "build",
    [
        lambda: commands.sendmsg_execute(
            A, "playback", "x\nexecute-app-name: hangup", event_uuid="e"
        ),
        lambda: commands.sendmsg_execute(A + "\napi x", "answer", event_uuid="e"),
        lambda: commands.sendmsg_execute(A, "answer\nfoo: bar", event_uuid="e"),
        lambda: commands.api("uuid_kill", A + "\n\napi shutdown"),
        lambda: commands.api("uuid_setvar", *commands.setvar(A, "a", "b\r\nc")),
        lambda: commands.bgapi("originate", "user/1001", job_uuid="j\nx"),
        lambda: commands.filter_("Unique-ID", "a\nb"),
        lambda: commands.event(["CHANNEL_PARK\nexit"]),
        lambda: commands.sendmsg_hangup(A, "NORMAL_CLEARING\nx"),
    ],
)
def test_line_breaks_never_reach_the_wire(build: object) -> None:
    with pytest.raises(UnsafeValue):
        build()  # type: ignore[operator]


@pytest.mark.parametrize(
    "name",
    [
        "x}user/1002 &eavesdrop(a",  # closes the {} block: another leg and application
        "a,b]",
        "a'b",
        "^^:x=y",
        "a|b",
    ],
)
def test_caller_id_name_cannot_add_variables_legs_or_applications(name: str) -> None:
    with pytest.raises(UnsafeValue):
        commands.originate_args("user/1001", variables={"origination_caller_id_name": name})


def test_commas_are_escaped_and_spaces_quoted_in_variables() -> None:
    (target, app) = commands.originate_args(
        "user/1001", variables={"origination_caller_id_name": "Zhang San, 12345"}
    )
    assert target == "{origination_caller_id_name='Zhang San\\, 12345'}user/1001"
    assert app == "&park()"


@pytest.mark.parametrize("endpoint", ["user/1001,user/1002", "user/1001|user/1003", "user/1 001"])
def test_endpoint_cannot_add_legs(endpoint: str) -> None:
    with pytest.raises(UnsafeValue):
        commands.originate_args(endpoint)


def test_application_argument_cannot_close_the_application() -> None:
    with pytest.raises(UnsafeValue):
        commands.originate_args("user/1001", app="eavesdrop", app_arg="x) &hangup(")


def test_built_commands_parse_back_as_one_command() -> None:
    text = commands.sendmsg_execute(
        A, "speak", "tts_commandline|zh|您好 12345", event_uuid="e1", event_lock=True
    )
    (command,) = _parse(text)
    assert command.line == f"sendmsg {A}"  # type: ignore[attr-defined]
    assert command.headers["execute-app-arg"] == "tts_commandline|zh|您好 12345"  # type: ignore[attr-defined]
    assert command.headers["event-lock"] == "true"  # type: ignore[attr-defined]
