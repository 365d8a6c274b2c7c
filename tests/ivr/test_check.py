"""`ivr check`: every error as file:line, exit status; the examples are clean."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from telephony.ivr.check import check_paths
from telephony.ivr.cli import ivr
from tests.ivr.conftest import BROKEN, REPO, FlowFolder

EXPECTED_BROKEN = [
    "bad-schema.yaml:7: nodes.main.options.12 (key): String should match pattern '^[0-9*#]$'",
    "bad-schema.yaml:8: nodes.main.retries: Input should be a valid integer",
    "bad-schema.yaml:11: nodes.done.colour: Extra inputs are not permitted",
    "bad-schema.yaml:12: nodes.other: unknown node type 'teleport'",
    "bad-yaml.yaml:4: invalid YAML",
    "broken-flow.yaml:3: hotline 12345 is claimed by several flows: broken-flow, dead-end",
    "broken-flow.yaml:12: missing prompt file 'prompts/missing.wav'",
    "broken-flow.yaml:14: unknown node 'nowhere' (menu.options.1)",
    "broken-flow.yaml:18: loop with no way out: loop_a -> loop_b -> loop_a",
    "broken-flow.yaml:28: unknown skill group 'no_such_group'",
    "broken-flow.yaml:29: unreachable node 'orphan'",
    "broken-flow.yaml:31: unreachable node 'id_number'",
    "broken-flow.yaml:35: bad pattern",
    "dead-end.yaml:1: hotline 12345 is claimed by several flows",
]
EXPECTED_WARNINGS = [
    "broken-flow.yaml:31: warning: dead end: 'id_number' has no fallback",
    "dead-end.yaml:4: warning: dead end: the call is hung up after 'hello'",
]


@pytest.fixture(autouse=True)
def _in_repo(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO)


def _lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith("tests/ivr/broken/")]


def test_check_broken_set_reports_every_error_with_file_and_line() -> None:
    result = CliRunner().invoke(ivr, ["check", str(BROKEN.relative_to(REPO))])
    assert result.exit_code == 1, result.output
    lines = _lines(result.stdout)
    errors = [line for line in lines if ": warning: " not in line]
    warnings = [line for line in lines if ": warning: " in line]
    assert len(errors) == len(EXPECTED_BROKEN), "\n".join(errors)
    for got, want in zip(errors, EXPECTED_BROKEN, strict=True):
        assert got.startswith("tests/ivr/broken/" + want), (got, want)
    assert len(warnings) == len(EXPECTED_WARNINGS)
    for got, want in zip(warnings, EXPECTED_WARNINGS, strict=True):
        assert got.startswith("tests/ivr/broken/" + want), (got, want)
    assert "14 error(s), 2 warning(s)" in result.stderr


def test_check_one_file_reports_only_its_problems() -> None:
    result = CliRunner().invoke(ivr, ["check", "tests/ivr/broken/dead-end.yaml"])
    assert result.exit_code == 1
    assert _lines(result.stdout) == [
        "tests/ivr/broken/dead-end.yaml:1: hotline 12345 is claimed by several flows: "
        "broken-flow, dead-end",
        "tests/ivr/broken/dead-end.yaml:4: warning: dead end: the call is hung up after 'hello'",
    ]


def test_check_examples_pass() -> None:
    result = CliRunner().invoke(ivr, ["check", "ivr_flows"])
    assert result.exit_code == 0, result.output
    assert result.stdout == ""
    assert "0 error(s), 0 warning(s)" in result.stderr


def test_check_defaults_to_the_flows_folder(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TELEPHONY_IVR_FLOWS", str(BROKEN))
    result = CliRunner().invoke(ivr, ["check", "--quiet"])
    assert result.exit_code == 1
    assert not any("warning" in line for line in result.stdout.splitlines())


def test_warnings_fail_only_with_strict(folder: FlowFolder) -> None:
    folder.write("main", "start: p\nnodes:\n  p: {type: play, prompt: prompts/hello.wav}\n")
    runner = CliRunner()
    assert runner.invoke(ivr, ["check", str(folder.root)]).exit_code == 0
    assert runner.invoke(ivr, ["check", "--strict", str(folder.root)]).exit_code == 1


def test_skill_group_option(folder: FlowFolder) -> None:
    folder.write("main", "start: q\nnodes:\n  q: {type: queue, group: night_shift}\n")
    runner = CliRunner()
    assert runner.invoke(ivr, ["check", str(folder.root)]).exit_code == 1
    ok = runner.invoke(ivr, ["check", "--skill-group", "night_shift", str(folder.root)])
    assert ok.exit_code == 0, ok.output


def test_missing_path() -> None:
    result = CliRunner().invoke(ivr, ["check", "no/such/flows"])
    assert result.exit_code == 1
    assert "no/such/flows:1: no such file or folder" in result.stdout


@pytest.mark.parametrize(
    ("flow", "message"),
    [
        (
            "start: a\nnodes:\n  a: {type: subflow, flow: main, next: b}\n  b: {type: hangup}\n",
            "flow 'main' includes itself",
        ),
        (
            "start: a\nnodes:\n  a: {type: subflow, flow: nope, next: b}\n  b: {type: hangup}\n",
            "unknown flow 'nope'",
        ),
        ("start: x\nnodes:\n  a: {type: hangup}\n", "unknown node 'x' (start)"),
        ("calendar: nope\nstart: a\nnodes:\n  a: {type: hangup}\n", "unknown calendar 'nope'"),
        (
            "start: a\nnodes:\n  a: {type: business_hours, open: b, closed: b}\n"
            "  b: {type: hangup}\n",
            "no calendar",
        ),
        (
            "start: a\nnodes:\n  a: {type: transfer, number: 'call mum'}\n",
            "not a telephone number",
        ),
        (
            "start: a\nnodes:\n  a: {type: menu, prompt: {text: 请 按 1}, options: {1: b}}\n"
            "  b: {type: hangup}\n",
            "must not contain ASCII spaces",
        ),
        (
            "start: a\nnodes:\n  a: {type: menu, prompt: {say: '1'}, options: {1: b}}\n"
            "  b: {type: hangup}\n",
            "cannot be a `say` prompt",
        ),
        (
            "start: a\nnodes:\n  a: {type: speak, text: 'x${nobody}', next: b}\n"
            "  b: {type: hangup}\n",
            "warning: variable 'nobody' is never set",
        ),
        (
            "start: a\nnodes:\n  a: {type: play, prompt: ../outside.wav, next: b}\n"
            "  b: {type: hangup}\n",
            "prompt file outside the flows folder",
        ),
        ("start: a\nnodes:\n  a: {type: hangup}\n  a: {type: hangup}\n", ":4: duplicate key 'a'"),
        ("start: a\nnodes:\n  a: {type: hangup, goodbye: {}}\n", "exactly one of file, text"),
    ],
)
def test_more_errors(folder: FlowFolder, flow: str, message: str) -> None:
    folder.write("main", flow)
    diagnostics, _ = check_paths([folder.root])
    text = "\n".join(str(d) for d in diagnostics)
    assert message in text, text
    assert all(str(d).startswith(os.path.join(str(folder.root), "main.yaml")) for d in diagnostics)


def test_menu_self_loop_with_an_exit_is_fine(folder: FlowFolder) -> None:
    folder.write(
        "main",
        "start: m\nnodes:\n  m: {type: menu, prompt: prompts/menu.wav, options: {1: m, 2: q},"
        " fallback: m}\n  q: {type: queue, group: general}\n",
    )
    diagnostics, _ = check_paths([folder.root])
    assert diagnostics == []


def test_check_paths_counts_files() -> None:
    diagnostics, checked = check_paths([Path("ivr_flows")])
    # three hotlines, ticket-query and the follow-up survey
    assert diagnostics == [] and checked == 5
