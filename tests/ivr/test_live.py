"""The live channel on a fake switch port: the applications and arguments it sends."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from telephony.esl import commands
from telephony.esl.messages import ApiResponse, Event
from telephony.esl.port import EslChannelGone, EslTimeout, SwitchEvent
from telephony.ivr.interpreter import (
    CallerHungUp,
    ChannelError,
    CollectRequest,
    Hangup,
    PromptSpec,
    Queue,
    run_flow,
    run_survey,
)
from telephony.ivr.live import LiveChannel, media_app, play_and_get_digits_arg, prompt_file
from telephony.ivr.loader import load_folder
from telephony.ivr.timing import ReactionTimer
from tests.ivr.conftest import EXAMPLES

UUID = "e0136acb-966a-4231-8574-d22bd659f5eb"
Reply = Callable[[str, str], Event | Exception]


def complete(app: str, arg: str, **variables: str) -> Event:
    headers = {
        "Event-Name": "CHANNEL_EXECUTE_COMPLETE",
        "Unique-ID": UUID,
        "Application": app,
        "Application-Data": arg,
        "Application-Response": "FILE PLAYED" if app == "playback" else "_none_",
        "Answer-State": "answered",
    }
    headers.update({f"variable_{k}": v for k, v in variables.items()})
    return Event(headers)


class FakePort:
    """A SwitchPort that answers each execute from a list of keys the caller presses."""

    node = "fake:8021"
    connected = True

    def __init__(self, keys: list[str] | None = None, reply: Reply | None = None) -> None:
        self.keys = list(keys or [])
        self.executed: list[tuple[str, str]] = []
        self.apis: list[tuple[str, tuple[str, ...]]] = []
        self.reply = reply

    async def api(
        self, command: str, *args: str, timeout: float | None = None, check: bool = True
    ) -> ApiResponse:
        self.apis.append((command, args))
        return ApiResponse("+OK")

    async def bgapi(self, command: str, *args: str, timeout: float | None = None) -> Event:
        raise NotImplementedError

    async def execute(
        self,
        uuid: str,
        app: str,
        arg: str = "",
        *,
        timeout: float | None = None,
        event_lock: bool = False,
    ) -> Event:
        assert uuid == UUID
        commands.sendmsg_execute(uuid, app, arg, event_uuid="x")  # must be framable
        self.executed.append((app, arg))
        if self.reply is not None:
            answer = self.reply(app, arg)
            if isinstance(answer, Exception):
                raise answer
            return answer
        if app == "play_and_get_digits":
            var = arg.split()[7]
            keys = self.keys.pop(0) if self.keys else ""
            if not keys:
                return complete(app, arg, read_result="timeout")
            return complete(app, arg, read_result="success", **{var: keys})
        return complete(app, arg, record_seconds="7")

    async def hangup(
        self, uuid: str, cause: str = "NORMAL_CLEARING", *, timeout: float | None = None
    ) -> None:
        pass

    def events(self) -> AsyncIterator[SwitchEvent]:
        raise NotImplementedError


def channel(port: FakePort, **kwargs: object) -> LiveChannel:
    return LiveChannel(port, UUID, caller="13800138000", hotline="12345", **kwargs)  # type: ignore[arg-type]


def test_media_apps() -> None:
    assert media_app(PromptSpec("file", "/flows/a.wav")) == ("playback", "/flows/a.wav")
    assert media_app(PromptSpec("tts", "您好", engine="tts_commandline", voice="xiaoyan")) == (
        "speak",
        "tts_commandline|xiaoyan|您好",
    )
    assert media_app(PromptSpec("say", "202601150001", say_kind="digits")) == (
        "say",
        "zh NUMBER iterated 202601150001",
    )
    assert media_app(PromptSpec("say", "120", say_kind="number"))[1] == "zh NUMBER pronounced 120"
    for bad in (
        PromptSpec("tts", "a|b", engine="e", voice="v"),
        PromptSpec("tts", "x", engine="e e", voice="v"),
        PromptSpec("say", "1 2"),
        PromptSpec("file", "/a b.wav"),
        PromptSpec("file", "/a.wav\nexecute-app-name: hangup"),
    ):
        with pytest.raises(commands.UnsafeValue):
            media_app(bad)


def test_play_and_get_digits_arg() -> None:
    request = CollectRequest(PromptSpec("file", "/f/menu.wav"), 1, 1, "", 5.0, 5.0)
    assert play_and_get_digits_arg(request, "ivr_in_1") == (
        "1 1 1 5000 none /f/menu.wav silence_stream://250 ivr_in_1 ^[0-9*#]+$ 5000"
    )
    request = CollectRequest(PromptSpec("file", "/f/id.wav"), 18, 18, "#", 8.0, 3.0)
    assert play_and_get_digits_arg(request, "ivr_in_2") == (
        "1 18 1 8000 # /f/id.wav silence_stream://250 ivr_in_2 ^[0-9*#]+$ 3000"
    )
    assert prompt_file(PromptSpec("tts", "请按1", engine="e", voice="v")) == "say:请按1"
    with pytest.raises(commands.UnsafeValue):
        prompt_file(PromptSpec("tts", "请 按 1", engine="e", voice="v"))


async def test_collect_reads_digits_from_its_own_variable() -> None:
    port = FakePort(["12", ""])
    ch = channel(port)
    request = CollectRequest(None, 1, 4, "#", 5.0, 3.0)
    assert (await ch.collect(request)).digits == "12"
    assert (await ch.collect(request)).digits == ""
    variables = [arg.split()[7] for _, arg in port.executed]
    assert variables == ["ivr_in_1", "ivr_in_2"]


async def test_tts_digit_prompt_sets_engine_once() -> None:
    port = FakePort(["1", "2"])
    ch = channel(port)
    prompt = PromptSpec("tts", "请按键", engine="tts_commandline", voice="xiaoyan")
    request = CollectRequest(prompt, 1, 1, "", 5.0, 5.0)
    await ch.collect(request)
    await ch.collect(request)
    assert port.apis == [
        ("uuid_setvar_multi", (UUID, "tts_engine=tts_commandline;tts_voice=xiaoyan"))
    ]
    assert port.executed[0][1].split()[5] == "say:请按键"


async def test_path_for_switch_and_record() -> None:
    port = FakePort()
    ch = channel(
        port,
        path_for_switch=lambda p: p.replace("/work/flows", "/usr/share/ivr"),
        voicemail_dir="/var/vm",
    )
    await ch.play(PromptSpec("file", "/work/flows/a.wav"))
    recording = await ch.record("12345", 60, beep=True)
    assert port.executed == [
        ("playback", "/usr/share/ivr/a.wav"),
        ("playback", "tone_stream://%(500,0,800)"),
        ("record", f"/var/vm/12345-{UUID}.wav 60 200 5"),
    ]
    assert recording is not None and recording.seconds == 7.0
    assert port.apis == [("uuid_setvar", (UUID, "playback_terminators", "#"))]


async def test_hangup_and_errors() -> None:
    def hung(app: str, arg: str) -> Event:
        event = complete(app, arg)
        return Event({**event.headers, "Answer-State": "hangup"})

    with pytest.raises(CallerHungUp):
        await channel(FakePort(reply=hung)).play(PromptSpec("file", "/a.wav"))
    with pytest.raises(CallerHungUp):
        await channel(FakePort(reply=lambda a, b: EslChannelGone("gone"))).play(
            PromptSpec("file", "/a.wav")
        )
    with pytest.raises(ChannelError):
        await channel(FakePort(reply=lambda a, b: EslTimeout("slow"))).play(
            PromptSpec("file", "/a.wav")
        )
    with pytest.raises(ChannelError):
        await channel(FakePort()).play(PromptSpec("tts", "a|b", engine="e", voice="v"))


async def test_blocked_lookup_and_clock() -> None:
    async def blocked(number: str) -> bool:
        return number == "13800138000"

    ch = channel(FakePort(), blocked=blocked)
    assert await ch.is_blocked()
    assert not await channel(FakePort()).is_blocked()
    assert ch.now().utcoffset() == dt.timedelta(hours=8)


async def test_example_flow_on_the_live_channel() -> None:
    flow_set, _ = load_folder(EXAMPLES)
    port = FakePort(["", "3"])

    class Daytime(LiveChannel):
        def now(self) -> dt.datetime:
            return dt.datetime(2026, 3, 10, 10, tzinfo=dt.timezone(dt.timedelta(hours=8)))

    ch = Daytime(port, UUID, caller="13800138000", hotline="12345")
    result = await run_flow(flow_set, "hotline-12345", ch)
    assert result.action == Queue("help", 5)
    apps = [app for app, _ in port.executed]
    assert apps == [
        "playback",  # welcome
        "play_and_get_digits",  # menu: silence
        "playback",  # timeout prompt
        "play_and_get_digits",  # menu: 3
        "playback",  # to_agent
    ]
    root = str(Path(EXAMPLES).resolve())
    assert port.executed[0][1] == f"{root}/prompts/12345/welcome.wav"

    survey_port = FakePort(["4"])
    score = await run_survey(flow_set, "hotline-12345", channel(survey_port))
    assert score is not None and score.score == 4


async def test_channel_error_queues_in_general() -> None:
    flow_set, _ = load_folder(EXAMPLES)
    port = FakePort(reply=lambda a, b: EslTimeout("switch slow"))
    result = await run_flow(flow_set, "hotline-12345", channel(port))
    assert result.action == Queue("general", 0)
    assert result.steps[-1].kind == "error"
    hung = FakePort(reply=lambda a, b: EslChannelGone("gone"))
    result = await run_flow(flow_set, "hotline-12345", channel(hung))
    assert result.action == Hangup("caller_hung_up")


def ev(name: str, micros: int, uuid: str = UUID, **headers: str) -> Event:
    return Event(
        {"Event-Name": name, "Unique-ID": uuid, "Event-Date-Timestamp": str(micros), **headers}
    )


def test_reaction_timer() -> None:
    observed: list[float] = []
    timer = ReactionTimer(observed.append)
    timer.watch(UUID)
    base = 1795332766270700
    assert timer.feed(ev("DTMF", base, **{"DTMF-Digit": "1"})) is None
    assert timer.feed(ev("CHANNEL_EXECUTE", base + 1000, Application="uuid_setvar")) is None
    assert timer.feed(ev("PLAYBACK_START", base + 180_000)) == pytest.approx(0.18)
    assert timer.feed(ev("PLAYBACK_START", base + 900_000)) is None  # not after a key
    timer.feed(ev("DTMF", base + 1_000_000))
    timer.feed(ev("DTMF", base + 1_300_000))  # the last key counts
    assert timer.feed(
        ev("CHANNEL_EXECUTE", base + 1_350_000, Application="play_and_get_digits")
    ) == pytest.approx(0.05)
    timer.feed(ev("DTMF", base, uuid="other"))
    assert timer.feed(ev("PLAYBACK_START", base + 10, uuid="other")) is None  # not watched
    assert observed == pytest.approx([0.18, 0.05])
    assert timer.unwatch(UUID) == pytest.approx([0.18, 0.05])
    assert timer.samples(UUID) == []
