"""The flow schema: the committed JSON Schema is the generated one; the examples validate."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from pydantic import ValidationError

from telephony.ivr.cli import ivr
from telephony.ivr.loader import flow_files, load_flow
from telephony.ivr.schema import Calendar, Flow, Prompt, render_json_schema
from tests.ivr.conftest import EXAMPLES


def test_committed_json_schema_is_up_to_date() -> None:
    committed = (EXAMPLES / "flow.schema.json").read_text(encoding="utf-8")
    assert committed == render_json_schema(), (
        "ivr_flows/flow.schema.json is stale: run `python -m telephony.ivr.schema`"
    )


def test_json_schema_lists_every_node_type() -> None:
    schema = json.loads(render_json_schema())
    (node_schema,) = schema["properties"]["nodes"]["patternProperties"].values()
    assert len(node_schema["oneOf"]) == 15
    assert node_schema["discriminator"]["propertyName"] == "type"
    assert {"type": "string"}.items() <= schema["$defs"]["Prompt"]["anyOf"][0].items()


def test_examples_validate() -> None:
    files = flow_files(EXAMPLES)
    assert {f.stem for f in files} >= {"hotline-12345", "hotline-12315", "hotline-12319"}
    for path in files:
        assert load_flow(path).flow.nodes


def test_prompt_shorthand_and_exactly_one_kind() -> None:
    assert Prompt.model_validate("a.wav").file == "a.wav"
    assert Prompt.model_validate({"text": "您好"}).what == "text"
    with pytest.raises(ValidationError):
        Prompt.model_validate({"file": "a.wav", "text": "x"})


def test_models_are_frozen() -> None:
    flow = Flow.model_validate({"start": "a", "nodes": {"a": {"type": "hangup"}}})
    with pytest.raises(ValidationError):
        flow.start = "b"  # type: ignore[misc]


def test_menu_keys_are_strings_even_from_yaml_ints() -> None:
    flow = Flow.model_validate(
        {
            "start": "m",
            "nodes": {
                "m": {"type": "menu", "prompt": "a.wav", "options": {"1": "q"}},
                "q": {"type": "queue", "group": "general"},
            },
        }
    )
    assert list(flow.nodes["m"].options) == ["1"]  # type: ignore[union-attr]


def test_calendar_rejects_bad_ranges() -> None:
    with pytest.raises(ValidationError):
        Calendar.model_validate({"weekly": {"mon": ["17:30-08:30"]}})
    with pytest.raises(ValidationError):
        Calendar.model_validate({"weekly": {"mon": ["8:30-17:30"]}})


def test_2026_holiday_calendar() -> None:
    import datetime as dt

    from telephony.ivr.loader import load_model

    calendar, _ = load_model(Calendar, EXAMPLES / "calendars" / "cn-2026.yaml")
    cst = dt.timezone(dt.timedelta(hours=8))
    assert calendar.state(dt.datetime(2026, 10, 3, 10, tzinfo=cst)) == ("holiday", "国庆节")
    assert calendar.state(dt.datetime(2026, 10, 10, 10, tzinfo=cst)) == ("open", "")  # 调休
    assert calendar.state(dt.datetime(2026, 10, 11, 10, tzinfo=cst)) == ("closed", "")
    days = sum(((h.end or h.start) - h.start).days + 1 for h in calendar.holidays)
    assert days == 3 + 9 + 3 + 5 + 3 + 3 + 7


def test_schema_command(tmp_path: Path) -> None:
    target = tmp_path / "flow.schema.json"
    runner = CliRunner()
    assert runner.invoke(ivr, ["schema", "--check", "--output", str(target)]).exit_code == 1
    assert runner.invoke(ivr, ["schema", "--output", str(target)]).exit_code == 0
    assert target.read_text(encoding="utf-8") == render_json_schema()
    assert runner.invoke(ivr, ["schema", "--check", "--output", str(target)]).exit_code == 0
