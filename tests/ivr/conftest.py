"""Helpers for the IVR tests: flow sets written to a temporary folder, simulated calls."""

from __future__ import annotations

import datetime as dt
import textwrap
from collections.abc import Iterable
from pathlib import Path

import pytest

from telephony.ivr.interpreter import IvrResult, run_flow
from telephony.ivr.loader import FlowSet, load_folder
from telephony.ivr.prompts import tone
from telephony.ivr.simulated import SimulatedChannel

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "ivr_flows"
BROKEN = Path(__file__).resolve().parent / "broken"
CST = dt.timezone(dt.timedelta(hours=8))

CALENDAR = """\
timezone: Asia/Shanghai
weekly:
  mon: ["08:30-17:30"]
  tue: ["08:30-17:30"]
  wed: ["08:30-17:30"]
  thu: ["08:30-17:30"]
  fri: ["08:30-17:30"]
holidays:
  - {name: 春节, from: 2026-02-15, to: 2026-02-23}
workdays: [2026-02-14]
"""


def at(text: str) -> dt.datetime:
    """An instant in China Standard Time: ``at("2026-02-10T22:00")``."""
    return dt.datetime.fromisoformat(text).replace(tzinfo=CST)


class FlowFolder:
    """A flows folder in a temporary directory, with prompts, a calendar and skill groups."""

    def __init__(self, root: Path) -> None:
        self.root = root
        (root / "calendars").mkdir(parents=True, exist_ok=True)
        (root / "calendars" / "office.yaml").write_text(CALENDAR, encoding="utf-8")
        (root / "skill_groups.yaml").write_text(
            "skill_groups:\n  - {id: consult}\n  - {id: complaint}\n", encoding="utf-8"
        )
        for name in ("hello", "menu", "invalid", "timeout", "bye", "survey", "thanks"):
            tone(root / "prompts" / f"{name}.wav", 440, 0.02)

    def write(self, name: str, text: str) -> Path:
        path = self.root / f"{name}.yaml"
        path.write_text(textwrap.dedent(text), encoding="utf-8")
        return path

    def load(self) -> FlowSet:
        flow_set, diagnostics = load_folder(self.root)
        assert not [d for d in diagnostics if d.is_error], [str(d) for d in diagnostics]
        return flow_set


@pytest.fixture
def folder(tmp_path: Path) -> FlowFolder:
    return FlowFolder(tmp_path / "flows")


async def simulate(
    flow_set: FlowSet,
    flow_id: str,
    digits: Iterable[str] = (),
    **kwargs: object,
) -> tuple[IvrResult, SimulatedChannel]:
    channel = SimulatedChannel(list(digits), **kwargs)  # type: ignore[arg-type]
    result = await run_flow(flow_set, flow_id, channel)
    return result, channel
