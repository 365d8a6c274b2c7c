"""Fuzz every operation of the API's own OpenAPI schema (schemathesis): never a 5xx.

The real app behind uvicorn, on the embedded PostgreSQL, with an admin token
(so requests reach the routes, not just the 401). Schemathesis generates
valid and invalid requests from the app's ``/openapi.json`` (NUL characters,
huge numbers, wrong types, missing fields...), at most :data:`MAX_EXAMPLES`
per operation and phase. Every answer must be below 500, and must be one the
schema documents for that operation.

Generated values rarely hit what PostgreSQL itself refuses, so hooks put one
hostile value into half of the generated bodies, query strings and paths:
NUL characters, a lone surrogate, text longer than any column, integers past
64 bits, dates that leave the years 1 to 9999 in UTC, 40,000 skills (more
than the 32,767 parameters a statement may bind). Runs are derandomized, so
a failure reproduces.

The schema is built at import (``from_dict``; the app answers it without a
database) so that schemathesis makes one pytest test per operation.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode, HookContext
from sqlalchemy.engine import URL

from telephony.api.app import create_app
from telephony.config import Settings
from telephony.services import Services
from telephony.store.database import EmbeddedPostgres, create_engine
from tests.api.live import LiveServer
from tests.store.conftest import _create_database, _drop_database

MAX_EXAMPLES = 30
#: Requests sent per operation and statuses answered (printed at the end with ``-s``).
SENT: Counter[str] = Counter()
STATUSES: Counter[int] = Counter()


def _openapi() -> dict[str, Any]:
    unused = "postgresql+asyncpg://nobody@127.0.0.1:9/none"
    services = Services(Settings(database_url=unused), create_engine(unused))
    return create_app(services).openapi()


schema = schemathesis.openapi.from_dict(_openapi())
schema.config.generation.update(
    modes=[GenerationMode.POSITIVE, GenerationMode.NEGATIVE], max_examples=MAX_EXAMPLES
)


def _nested(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = [value]
    return value


HOSTILE_TEXT = ["\x00", "east\x00", "x" * 300, "\u3000east ", "a,b", "line\nbreak"]
#: Only JSON can carry a lone surrogate (as "\\ud800"); a URL cannot encode one.
HOSTILE_BODY_TEXT = [*HOSTILE_TEXT, "\ud800"]
HOSTILE_NUMBERS = [2**63, -(2**63) - 1, 2**31, 10**20]
HOSTILE_DATES = ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00", "0001-01-01"]
HOSTILE_OBJECTS: list[dict[str, Any]] = [
    {"\x00": 1},
    {"rule": "\x00"},
    {"rule": {"nested": ["\ud800"]}},
    {"big": 2**64},
    {"deep": _nested(20)},
    {f"g{i}": 1 for i in range(40_000)},
]


def _hostile(value: Any, text: list[str]) -> list[Any]:
    if isinstance(value, bool) or value is None:
        return [*text[:1], *HOSTILE_NUMBERS[:1]]
    if isinstance(value, int | float):
        return HOSTILE_NUMBERS
    if isinstance(value, str):
        return text + HOSTILE_DATES
    if isinstance(value, dict):
        return HOSTILE_OBJECTS
    if isinstance(value, list):
        return [[v] for v in text]
    return text


def _poisoned(container: Any, text: list[str] = HOSTILE_TEXT) -> st.SearchStrategy[Any]:
    """The container as generated, or with one of its values replaced by a hostile one."""
    if not isinstance(container, dict) or not container:
        return st.just(container)
    keys = sorted(container)
    replaced = st.sampled_from(keys).flatmap(
        lambda key: st.sampled_from(_hostile(container[key], text)).map(
            lambda value: {**container, key: value}
        )
    )
    return st.one_of(st.just(container), replaced)


@schema.hook
def flatmap_body(context: HookContext, body: Any) -> st.SearchStrategy[Any]:
    return _poisoned(body, HOSTILE_BODY_TEXT)


@schema.hook
def flatmap_query(context: HookContext, query: Any) -> st.SearchStrategy[Any]:
    return _poisoned(query)


@schema.hook
def flatmap_path_parameters(context: HookContext, path: Any) -> st.SearchStrategy[Any]:
    return _poisoned(path)


@pytest.fixture(scope="module")
def live(
    embedded_server: tuple[EmbeddedPostgres, URL], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    url = asyncio.run(_create_database(embedded_server[1]))
    data_dir: Path = tmp_path_factory.mktemp("fuzz")
    try:
        with LiveServer(url.render_as_string(hide_password=False), data_dir) as server:
            yield server
    finally:
        asyncio.run(_drop_database(url))
    total = sum(SENT.values())
    print(f"\nfuzz: {total} requests over {len(SENT)} operations; statuses {dict(STATUSES)}")
    for label, count in sorted(SENT.items()):
        print(f"  {count:4d}  {label}")


@schema.parametrize()
@settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    database=None,
    derandomize=True,
)
def test_no_operation_answers_a_server_error(case: schemathesis.Case, live: LiveServer) -> None:
    response = case.call(base_url=live.base_url, headers=live.admin)
    SENT[case.operation.label] += 1
    STATUSES[response.status_code] += 1
    case.validate_response(
        response,
        checks=[
            schemathesis.checks.not_a_server_error,
            schemathesis.checks.status_code_conformance,
        ],
        headers=live.admin,
    )
