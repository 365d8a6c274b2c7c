"""The command line a newcomer meets first."""

from __future__ import annotations

from click.testing import CliRunner

from telephony.cli import main


def test_top_level_help_names_the_commands() -> None:
    result = CliRunner().invoke(main, ["--help"])
    assert result.exit_code == 0
    assert "sim" in result.output
    assert "12345" in result.output


def test_sim_help_documents_the_sim_api_commands() -> None:
    result = CliRunner().invoke(main, ["sim", "--help"])
    assert result.exit_code == 0
    for text in ("--listen", "--password", "api sim call", "api sim phone"):
        assert text in result.output


def test_bad_listen_address_is_a_clear_error() -> None:
    result = CliRunner().invoke(main, ["sim", "--listen", "127.0.0.1:notaport"])
    assert result.exit_code == 2
    assert "HOST:PORT" in result.output
