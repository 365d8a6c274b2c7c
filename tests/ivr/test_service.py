"""The engine's entry points: sessions pinned to a version, the run, the survey, the hooks."""

from __future__ import annotations

import shutil
from pathlib import Path

from telephony.ivr.interpreter import Queue
from telephony.ivr.service import IvrService, IvrSettings
from tests.ivr.conftest import EXAMPLES
from tests.ivr.test_live import UUID, FakePort, ev


class Hooks:
    def __init__(self) -> None:
        self.reactions: list[float] = []
        self.errors: list[tuple[str, int]] = []
        self.finished: list[tuple[str, str]] = []

    def reaction(self, seconds: float) -> None:
        self.reactions.append(seconds)

    def reload_error(self, path: str, errors: int) -> None:
        self.errors.append((path, errors))

    def flow_finished(self, flow: str, action: str) -> None:
        self.finished.append((flow, action))


async def test_run_survey_reactions_and_reload_errors(tmp_path: Path) -> None:
    flows = tmp_path / "flows"
    shutil.copytree(EXAMPLES, flows)
    hooks = Hooks()
    blocked_numbers = {"13900000000"}

    async def blocked(number: str) -> bool:
        return number in blocked_numbers

    service = IvrService(
        IvrSettings(flows_dir=flows, switch_flows_dir="/usr/share/freeswitch/ivr"),
        blocked=blocked,
        hooks=hooks,
    )
    await service.start()
    try:
        assert service.session("110") is None
        session = service.session("12329")
        assert session is not None and session.flow.id == "hotline-12345"

        port = FakePort(["0"])
        result = await service.run(session, port, UUID, caller="13800138000", hotline="12329")
        # Out of hours or not, the first prompt is the welcome, on the switch's path.
        assert port.executed[0] == (
            "playback",
            "/usr/share/freeswitch/ivr/prompts/12345/welcome.wav",
        )
        assert result.variables["hotline"] == "12329"
        assert hooks.finished == [("hotline-12345", result.action.kind)]

        service.feed(ev("DTMF", 1_000_000))
        service.feed(ev("PLAYBACK_START", 1_250_000))
        assert service.reactions(UUID) == [0.25]
        assert hooks.reactions == [0.25]

        score = await service.survey(session, FakePort(["2"]), UUID, caller="13800138000")
        assert score is not None and score.score == 2

        blocked_run = await service.run(session, FakePort(), UUID, caller="13900000000")
        assert blocked_run.action.kind == "blocked"

        (flows / "hotline-12315.yaml").write_text("start: [\n", encoding="utf-8")
        service.library.reload()
        assert hooks.errors and hooks.errors[0][0].endswith("hotline-12315.yaml")
        assert service.session("12315") is not None  # the previous version still serves
    finally:
        await service.stop()


async def test_queue_result_for_engine(tmp_path: Path) -> None:
    service = IvrService(IvrSettings(flows_dir=EXAMPLES))
    service.library.reload()
    session = service.session("12319")
    assert session is not None
    result = await service.run(session, FakePort(["9"]), UUID, caller="13800138000")
    assert result.action.kind == "transfer"
    assert not isinstance(result.action, Queue)
