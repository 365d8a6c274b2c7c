"""Settings from the environment and a TOML file."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from telephony import config
from telephony.config import ConfigError, Settings


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("TELEPHONY_") or name == "DATABASE_URL":
            monkeypatch.delenv(name)


def test_defaults() -> None:
    settings = Settings.load()
    assert settings.freeswitch == "esl://:ClueCon@127.0.0.1:8021"
    assert [n.name for n in settings.nodes] == ["127.0.0.1:8021"]
    assert settings.database_url is None
    assert settings.listen == ("127.0.0.1", 8080)
    assert settings.ivr_flows == Path("ivr_flows")
    assert settings.recordings == settings.data_dir / "recordings"
    assert settings.embedded_postgres_dir == settings.data_dir / "postgres"


def test_root_gets_a_data_dir_the_embedded_postgres_user_can_reach(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    assert config.default_data_dir() == Path("/var/lib/telephony")
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    monkeypatch.setenv("XDG_DATA_HOME", "/home/li/.local/share")
    assert config.default_data_dir() == Path("/home/li/.local/share/telephony")


def test_environment_overrides_the_toml_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    file = tmp_path / "telephony.toml"
    file.write_text(
        'api_listen = "0.0.0.0:9000"\n'
        'database_url = "postgresql://file/db"\n'
        'freeswitch = "esl://:a@fs1:8021,esl://:b@fs2"\n'
        "wrap_up_seconds = 30\n"
    )
    monkeypatch.setenv("TELEPHONY_WRAP_UP_SECONDS", "5")
    monkeypatch.setenv("DATABASE_URL", "postgresql://env/db")
    settings = Settings.load(file)
    assert settings.listen == ("0.0.0.0", 9000)
    assert [(n.name, n.password) for n in settings.nodes] == [("fs1:8021", "a"), ("fs2:8021", "b")]
    assert settings.wrap_up_seconds == 5
    assert settings.database_url == "postgresql://env/db"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('api_listen = "nope:port"\n', "api_listen (TELEPHONY_API_LISTEN)"),
        ('freeswitch = "http://x"\n', "freeswitch (TELEPHONY_FREESWITCH)"),
        ("ring_timout_seconds = 3\n", "ring_timout_seconds"),
        ("wrap_up_seconds = -1\n", "wrap_up_seconds"),
    ],
)
def test_invalid_settings_name_the_setting(tmp_path: Path, content: str, message: str) -> None:
    file = tmp_path / "telephony.toml"
    file.write_text(content)
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        Settings.load(file)


def test_api_limits_and_the_token_cache_are_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    defaults = Settings.load()
    assert defaults.api_max_body_bytes == 1024 * 1024
    assert (defaults.auth_revalidate_seconds, defaults.auth_cache_ttl_seconds) == (30.0, 3600.0)
    monkeypatch.setenv("TELEPHONY_API_MAX_BODY_BYTES", "65536")
    monkeypatch.setenv("TELEPHONY_AUTH_REVALIDATE_SECONDS", "5")
    settings = Settings.load()
    assert (settings.api_max_body_bytes, settings.auth_revalidate_seconds) == (65536, 5.0)
    monkeypatch.setenv("TELEPHONY_API_MAX_BODY_BYTES", "10")
    with pytest.raises(ConfigError, match="TELEPHONY_API_MAX_BODY_BYTES"):
        Settings.load()


def test_the_overload_settings_are_toml_keys_too(tmp_path: Path) -> None:
    file = tmp_path / "telephony.toml"
    file.write_text("overload_max_cpu = 0.7\noverload_max_calls_per_second = 150\n")
    settings = Settings.load(file)
    assert (settings.overload_max_cpu, settings.overload_max_calls_per_second) == (0.7, 150.0)
    file.write_text("overload_max_cpu = 1.5\n")
    with pytest.raises(ConfigError, match="overload_max_cpu"):
        Settings.load(file)
