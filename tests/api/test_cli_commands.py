"""The ``serve``, ``users`` and ``db`` commands, on a real database."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner
from sqlalchemy import text

from telephony.auth import Role, find_principal
from telephony.cli import main
from telephony.store.database import create_engine
from tests.store.conftest import Database


def _env(database: Database, tmp_path: Path) -> dict[str, str]:
    return {
        "DATABASE_URL": database.url.render_as_string(hide_password=False),
        "TELEPHONY_DATA_DIR": str(tmp_path),
    }


async def _lookup(database: Database, token: str) -> tuple[str, Role, str | None] | None:
    engine = create_engine(database.url)
    try:
        async with engine.connect() as connection:
            caller = await find_principal(connection, token)
            audit = await connection.scalar(
                text("select action from audit_log where target_id = 'li'")
            )
    finally:
        await engine.dispose()
    assert audit == "principal.create"
    return (caller.name, caller.role, caller.agent_id) if caller else None


@pytest.mark.usefixtures("restore_logging")
def test_users_create_prints_a_token_that_authenticates(database: Database, tmp_path: Path) -> None:
    env = _env(database, tmp_path)
    asyncio.run(_add_agent(database))
    result = CliRunner().invoke(
        main, ["users", "create", "li", "--role", "agent", "--agent", "a1"], env=env
    )
    assert result.exit_code == 0, result.output
    token = result.stdout.strip()
    assert token.startswith("tel_") and "\n" not in token
    assert "not shown again" in result.stderr
    assert asyncio.run(_lookup(database, token)) == ("li", Role.AGENT, "a1")

    again = CliRunner().invoke(
        main, ["users", "create", "li", "--role", "agent", "--agent", "a1"], env=env
    )
    assert again.exit_code == 1
    assert "already exists" in again.output


async def _add_agent(database: Database) -> None:
    engine = create_engine(database.url)
    async with engine.begin() as connection:
        await connection.execute(
            text("insert into agents (id, name, extension, state) values ('a1','Li','1001','busy')")
        )
    await engine.dispose()


@pytest.mark.usefixtures("restore_logging")
@pytest.mark.parametrize(
    ("name", "message"),
    [("n" * 129, "at most 128 characters"), ("li\nna", "control"), (" ", "blank")],
)
def test_users_create_refuses_names_the_table_cannot_hold(
    database: Database, tmp_path: Path, name: str, message: str
) -> None:
    result = CliRunner().invoke(
        main, ["users", "create", name, "--role", "admin"], env=_env(database, tmp_path)
    )
    assert result.exit_code == 1
    assert message in result.output
    assert "Traceback" not in result.output


@pytest.mark.usefixtures("restore_logging")
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--role", "agent"], "needs --agent"),
        (["--role", "agent", "--agent", "ghost"], "no agent 'ghost'"),
        (["--role", "supervisor"], "needs --area"),
        (["--role", "admin", "--agent", "a1"], "only for the agent role"),
        (["--role", "king"], "Invalid value for '--role'"),
        (
            ["--role", "supervisor", "--area", ",".join(f"area{i}" for i in range(20))],
            "at most 64 characters",
        ),
        (["--role", "supervisor", "--area", "east\x00"], "control characters"),
        (["--role", "agent", "--agent", "a" * 65], "at most 64 characters"),
    ],
)
def test_users_create_refuses_bad_combinations(
    database: Database, tmp_path: Path, args: list[str], message: str
) -> None:
    result = CliRunner().invoke(main, ["users", "create", "x", *args], env=_env(database, tmp_path))
    assert result.exit_code != 0
    assert message in result.output


@pytest.mark.usefixtures("restore_logging")
def test_an_unreachable_database_is_a_clear_error(tmp_path: Path) -> None:
    env = {"DATABASE_URL": f"postgresql://nobody@/nowhere?host={tmp_path}"}
    for command, message in (
        (["db", "upgrade"], "Error: migration failed: "),
        (["users", "create", "x", "--role", "admin"], "Error: cannot create the principal: "),
    ):
        result = CliRunner().invoke(main, command, env=env)
        assert result.exit_code == 1
        assert message in result.stderr


@pytest.mark.usefixtures("restore_logging")
def test_db_upgrade_logs_its_progress(database: Database, tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["db", "upgrade"], env=_env(database, tmp_path))
    assert result.exit_code == 0, result.output
    for line in ("connecting to the database", "migrating database", "database migrated"):
        assert line in result.stderr


@pytest.mark.usefixtures("restore_logging")
@pytest.mark.parametrize(
    ("command", "expected"),
    [
        (
            ["serve", "--help"],
            [
                "TELEPHONY_FREESWITCH",
                "DATABASE_URL",
                "TELEPHONY_API_LISTEN",
                "TELEPHONY_DATA_DIR",
                "TELEPHONY_IVR_FLOWS",
                "--config",
            ],
        ),
        (["users", "--help"], ["create", "revoke", "supervisor", "auditor"]),
        (["users", "create", "--help"], ["--role", "--area", "--agent", "once"]),
        (["db", "--help"], ["upgrade"]),
        (["db", "upgrade", "--help"], ["migrations"]),
    ],
)
def test_help_texts(command: list[str], expected: list[str]) -> None:
    result = CliRunner().invoke(main, command)
    assert result.exit_code == 0
    for text_ in expected:
        assert text_ in result.output, text_


@pytest.mark.usefixtures("restore_logging")
def test_a_bad_setting_is_a_clear_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        main, ["db", "upgrade"], env={"TELEPHONY_API_LISTEN": "localhost:http"}
    )
    assert result.exit_code == 1
    assert "TELEPHONY_API_LISTEN" in result.output
    missing = CliRunner().invoke(main, ["serve", "--config", str(tmp_path / "nope.toml")])
    assert missing.exit_code == 1
    assert "does not exist" in missing.output


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_serve_answers_and_stops_cleanly_on_sigterm(database: Database, tmp_path: Path) -> None:
    port = _free_port()
    env = {**os.environ, **_env(database, tmp_path), "TELEPHONY_API_LISTEN": f"127.0.0.1:{port}"}
    created = subprocess.run(
        [sys.executable, "-m", "telephony.cli", "users", "create", "ops", "--role", "admin"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    token = created.stdout.strip()
    process = subprocess.Popen(
        [sys.executable, "-m", "telephony.cli", "serve"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert process.poll() is None, process.communicate()[1]
            assert time.monotonic() < deadline, "serve did not come up"
            time.sleep(0.1)
        assert httpx.get(f"{base}/readyz").status_code == 503  # no ESL node connected
        agents = httpx.get(f"{base}/v1/agents", headers={"Authorization": f"Bearer {token}"})
        assert agents.status_code == 200
        assert httpx.get(f"{base}/v1/agents").status_code == 401
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, stderr
    assert "services stopped" in stderr
    assert "control plane stopped" in stderr
    assert "Traceback" not in stderr
