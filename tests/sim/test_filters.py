"""mod_event_socket's event filters, as ``event_handler`` applies them, and their use."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from telephony.esl.port import DIALPLAN_APPLICATIONS, ENGINE_EVENTS
from telephony.esl.transport import EslConnection
from telephony.sim import Simulator
from telephony.sim.server import Connection

EXECUTE_SET = {"Event-Name": "CHANNEL_EXECUTE", "Application": "set", "Unique-ID": "u1"}
EXECUTE_PLAY = {"Event-Name": "CHANNEL_EXECUTE", "Application": "playback", "Unique-ID": "u1"}
JOB = {"Event-Name": "BACKGROUND_JOB", "Job-UUID": "j1"}


def passes(filters: list[tuple[str, str]], headers: dict[str, str]) -> bool:
    return Connection.passes(SimpleNamespace(filters=filters), headers)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("filters", "headers", "expected"),
    [
        ([], EXECUTE_SET, True),  # no filter: everything
        ([("Unique-ID", "u1")], EXECUTE_SET, True),
        ([("Unique-ID", "u2")], EXECUTE_SET, False),
        ([("Unique-ID", "u1")], JOB, False),  # a filter whose header is missing is skipped
        ([("unique-id", "U1")], EXECUTE_SET, True),  # names and values without case
        ([("Application", "-set")], EXECUTE_PLAY, False),  # a negative alone passes nothing
        ([("Event-Name", "/./"), ("Application", "-set")], EXECUTE_SET, False),
        ([("Event-Name", "/./"), ("Application", "-set")], EXECUTE_PLAY, True),
        ([("Event-Name", "/./"), ("Application", "-set")], JOB, True),
        ([("Event-Name", "/^channel_/i")], EXECUTE_SET, True),
        ([("Event-Name", "/^CHANNEL_/")], JOB, False),
        ([("Application", "-set"), ("Event-Name", "/./")], EXECUTE_SET, False),  # break at -set
        ([("Event-Name", "/./"), ("Application", "+-set")], EXECUTE_SET, False),  # last sign
        ([("Event-Name", "/./"), ("Application", "-+set")], EXECUTE_SET, True),
    ],
)
def test_filters_follow_event_handler(
    filters: list[tuple[str, str]], headers: dict[str, str], expected: bool
) -> None:
    assert passes(filters, headers) is expected


async def test_the_engine_subscription_never_sees_the_dialplan_sets() -> None:
    sim = Simulator(time_scale=50)
    port = await sim.start("127.0.0.1", 0)
    engine_like = EslConnection(
        f"esl://:ClueCon@127.0.0.1:{port}",
        events=ENGINE_EVENTS,
        drop_applications=DIALPLAN_APPLICATIONS,
    )
    everything = EslConnection(f"esl://:ClueCon@127.0.0.1:{port}")
    try:
        await engine_like.connect()
        await everything.connect()
        narrow, broad = engine_like.events(), everything.events()
        reply = await everything.api("sim", "call", "12345", "13800138000", "hangup_after_s=1")
        call = reply.body.strip().removeprefix("+OK ")
        await everything.execute(call, "answer")
        await everything.execute(call, "playback", "silence_stream://100")
        names: dict[str, list[tuple[str, str]]] = {"narrow": [], "broad": []}
        for label, stream in (("broad", broad), ("narrow", narrow)):
            async for item in stream:
                name = getattr(item, "name", "")
                if not name:
                    continue
                names[label].append((name, item.get("Application") or ""))  # type: ignore[union-attr]
                if name == "CHANNEL_HANGUP_COMPLETE" and item.unique_id == call:  # type: ignore[union-attr]
                    break
        assert ("CHANNEL_EXECUTE", "set") in names["broad"]
        assert not [n for n in names["narrow"] if n[1] in DIALPLAN_APPLICATIONS]
        assert ("CHANNEL_EXECUTE", "playback") in names["narrow"]
        assert ("CHANNEL_PARK", "") in names["narrow"]
        assert len(names["narrow"]) < len(names["broad"]) / 2
    finally:
        await engine_like.close()
        await everything.close()
        await sim.stop()
