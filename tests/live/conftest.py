"""Live events against the whole control plane on the simulator (see ``stack.py``)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.live.stack import LiveStack, live_stack
from tests.store.conftest import Database, database, embedded_server, engine  # noqa: F401


@pytest.fixture
async def stack(database: Database, shared_dir: Path) -> AsyncIterator[LiveStack]:  # noqa: F811
    async with live_stack(database.url.render_as_string(hide_password=False), shared_dir) as live:
        yield live
