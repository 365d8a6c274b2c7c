"""The API against a real, freshly migrated PostgreSQL (embedded; DATABASE_URL too when set)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncEngine

from telephony.api.app import create_app, principal_cache
from telephony.auth import Role
from telephony.config import Settings
from telephony.services import Services
from tests.api.fakes import FakeCalls, FakeClock, Tokens
from tests.store.conftest import Database, database, embedded_server, engine  # noqa: F401


def make_settings(
    tmp_path: Path,
    database_url: str,
    freeswitch: str = "esl://:ClueCon@127.0.0.1:8021",
    **overrides: Any,
) -> Settings:
    """Settings for a test, whatever TELEPHONY_* variables the environment holds."""
    return Settings(
        database_url=database_url, data_dir=tmp_path, freeswitch=freeswitch, **overrides
    )


@pytest.fixture
async def services(
    database: Database,  # noqa: F811
    engine: AsyncEngine,  # noqa: F811
    tmp_path: Path,
) -> AsyncIterator[Services]:
    url = database.url.render_as_string(hide_password=False)
    services = Services(make_settings(tmp_path, url), engine)
    services.calls = FakeCalls()
    await services.start(migrate=False)
    yield services
    await services.stop()


@pytest.fixture
def clock() -> FakeClock:
    """The clock of the app's principal cache (advance it to make cached tokens due a re-check)."""
    return FakeClock()


@pytest.fixture
def app(services: Services, clock: FakeClock) -> FastAPI:
    return create_app(services, principals=principal_cache(services, clock=clock))


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://api.test") as http:
        yield http


@pytest.fixture
def tokens(services: Services) -> Tokens:
    return Tokens(services)


@pytest.fixture
async def admin(tokens: Tokens) -> dict[str, str]:
    return await tokens.headers("root", Role.ADMIN)


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """The CLI reconfigures the root logger; put pytest's handlers back afterwards."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
