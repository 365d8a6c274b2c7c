"""Whatever a caller presses, whenever they call, an example flow ends with an action."""

from __future__ import annotations

import asyncio
import datetime as dt

from hypothesis import given, settings
from hypothesis import strategies as st

from telephony.ivr.interpreter import run_flow, run_survey
from telephony.ivr.loader import LineMap, load_folder, parse_yaml
from telephony.ivr.simulated import SimulatedChannel
from tests.ivr.conftest import CST, EXAMPLES

FLOW_SET, _ = load_folder(EXAMPLES)
KEYS = st.text(alphabet="0123456789*#", max_size=20)
WHEN = st.datetimes(
    min_value=dt.datetime(2026, 1, 1), max_value=dt.datetime(2026, 12, 31, 23, 59)
).map(lambda d: d.replace(tzinfo=CST))


@settings(max_examples=150, deadline=None)
@given(
    flow=st.sampled_from(sorted(FLOW_SET.flows)),
    script=st.lists(KEYS, max_size=12),
    when=WHEN,
    blocked=st.booleans(),
)
def test_every_path_ends_with_an_action(
    flow: str, script: list[str], when: dt.datetime, blocked: bool
) -> None:
    channel = SimulatedChannel(script, at=when, blocked=blocked)
    result = asyncio.run(run_flow(FLOW_SET, flow, channel))
    assert result.action.kind in ("queue", "transfer", "voicemail", "hangup", "blocked")
    assert len(result.steps) < 20 * FLOW_SET.flows[flow].flow.max_steps
    if result.action.kind == "queue":
        assert result.action.group in FLOW_SET.skill_groups  # type: ignore[union-attr]
    survey = asyncio.run(run_survey(FLOW_SET, flow, SimulatedChannel(script)))
    if survey is not None:
        assert survey.min_score <= survey.score <= survey.max_score


def test_line_map_for_nested_lists() -> None:
    data, lines = parse_yaml("a:\n  b:\n    - x\n    - {c: 1}\nd: 2\n", "f.yaml")
    assert data == {"a": {"b": ["x", {"c": 1}]}, "d": 2}
    assert isinstance(lines, LineMap)
    assert lines.line("a", "b", 1, "c") == 4
    assert lines.line("d") == 5
    assert lines.line("a", "b", 7) == 2  # unknown item: its parent's line
    assert lines.line_of_loc(("a", "b", "1", "c")) == 4
