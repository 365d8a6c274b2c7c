"""`ivr simulate`: the path a call takes, printed step by step."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from telephony.ivr.cli import ivr
from tests.ivr.conftest import EXAMPLES, REPO


@pytest.fixture(autouse=True)
def _in_repo(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO)
    monkeypatch.setenv("TELEPHONY_IVR_FLOWS", str(EXAMPLES))


def run(*args: str) -> str:
    result = CliRunner().invoke(ivr, ["simulate", *args])
    assert result.exit_code == 0, result.output
    return result.stdout


def test_simulate_ticket_query_path() -> None:
    out = run("12345", "--digits", "1,1,202601150001#", "--at", "2026-03-10T10:00")
    lines = out.splitlines()
    assert lines[0].startswith("flow hotline-12345 (version ")
    assert "at 2026-03-10T10:00:00+08:00, caller 13800138000 -> 12345" in lines[0]
    steps = [" ".join(line.split()) for line in lines[1:]]
    assert steps[:3] == [
        "blocked branch caller 13800138000 is not blocked -> welcome",
        "welcome play prompts/12345/welcome.wav",
        "main_menu play prompts/12345/menu_main.wav",  # 12345 is served 7x24
    ]
    assert "main_menu keys 1" in steps
    assert "ticket_query subflow enter ticket-query" in steps
    assert "ticket keys 202601150001" in steps
    assert "ticket set ticket_no = '202601150001'" in steps
    assert "say_ticket play say digits 202601150001" in steps
    assert "=> queue in skill group 'consult' with priority 0" in lines
    assert "   keys pressed: 11202601150001" in lines
    assert "ticket_no=202601150001" in out


def test_simulate_out_of_hours_takes_a_message() -> None:
    out = run("ivr_flows/hotline-12315.yaml", "--at", "2026-02-10T22:00")
    assert "business hours at 2026-02-10 Tue 22:00: closed -> closed" in out
    assert "=> voice message for mailbox '12315'" in out


def test_12345_is_served_round_the_clock() -> None:
    out = run("ivr_flows/hotline-12345.yaml", "--digits", "0", "--at", "2026-02-10T03:00")
    assert "business hours" not in out
    assert "=> queue in skill group 'general'" in out


def test_simulate_holiday_and_timeouts() -> None:
    out = run("hotline-12319", "--digits", "7,,3", "--at", "2026-02-16T10:00")
    assert "main_menu        invalid   7 (try 1)" in out
    assert "main_menu        timeout   no key in 5 s (try 2)" in out
    assert "holiday (春节) -> holiday" in out
    assert "service_name=求助" in out


def test_simulate_gas_emergency_transfer() -> None:
    out = run("12319", "--digits", "9")
    assert "=> transfer to 96777" in out


def test_simulate_blocked_caller() -> None:
    out = run("12315", "--blocked", "--caller", "13900000000")
    assert "caller 13900000000 is blocked" in out
    assert "=> blocked caller: hang up" in out


def test_simulate_with_survey() -> None:
    out = run("12315", "--digits", "0", "--at", "2026-03-10T10:00", "--survey", "8,5")
    assert "=> queue in skill group 'general' with priority 0" in out
    assert "survey           invalid   8 (try 1)" in out
    assert "=> survey score 5 (scale 1-5)" in out


def test_simulate_merged_hotline_number() -> None:
    out = run("12329", "--digits", "3", "--at", "2026-03-10T10:00")
    assert "flow hotline-12345" in out
    assert "=> queue in skill group 'help' with priority 5" in out


def test_simulate_unknown_flow() -> None:
    result = CliRunner().invoke(ivr, ["simulate", "99999"])
    assert result.exit_code == 1
    assert "no flow '99999'" in result.output


def test_simulate_refuses_a_broken_flow() -> None:
    result = CliRunner().invoke(ivr, ["simulate", "tests/ivr/broken/broken-flow.yaml"])
    assert result.exit_code == 1
    assert "tests/ivr/broken/broken-flow.yaml:14: unknown node 'nowhere'" in result.output


def test_help_texts() -> None:
    runner = CliRunner()
    assert "FILE:LINE: MESSAGE" in runner.invoke(ivr, ["check", "--help"]).output
    assert "--digits" in runner.invoke(ivr, ["simulate", "--help"]).output
    assert "simulate" in runner.invoke(ivr, ["--help"]).output
