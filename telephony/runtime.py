"""The event loop the control plane runs on.

``telephony serve`` runs on uvloop (libuv) when it is installed: the loop's own work
per call (callbacks, the cross-thread wake-ups from the ESL thread, socket writes to
PostgreSQL) costs less there than in asyncio's pure-Python selector loop, measured by
``tests/bench/test_capacity.py``. ``TELEPHONY_EVENT_LOOP=asyncio`` keeps the standard
loop (for a comparison, or a platform without uvloop).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def loop_name() -> str:
    """``uvloop`` or ``asyncio``: what :func:`run` will use."""
    if os.environ.get("TELEPHONY_EVENT_LOOP", "uvloop").strip().lower() == "asyncio":
        return "asyncio"
    try:
        import uvloop  # noqa: F401
    except ImportError:
        return "asyncio"
    return "uvloop"


def run(main: Coroutine[Any, Any, T]) -> T:
    """Run ``main`` to completion on the chosen loop (see the module docstring)."""
    if loop_name() == "uvloop":
        import uvloop

        return uvloop.run(main)
    return asyncio.run(main)
