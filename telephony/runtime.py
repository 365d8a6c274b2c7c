"""The event loop the control plane runs on.

``telephony serve`` runs on uvloop (libuv) when it is installed: the loop's own work
per call (callbacks, the cross-thread wake-ups from the ESL thread, socket writes to
PostgreSQL) costs less there than in asyncio's pure-Python selector loop, measured by
``tests/bench/test_capacity.py``. ``TELEPHONY_EVENT_LOOP=asyncio`` keeps the standard
loop (for a comparison, or a platform without uvloop).

The garbage collector stops the whole process, the loop included, while it runs; a
collection of the oldest generation scans every object still alive, and most of them are
the libraries and tables loaded at start (the API's routes, SQLAlchemy's metadata, the
flows). :func:`settle_heap` moves those out of its reach once the services are up: in the
capacity benchmark at 100-125 calls/s a full collection paused the loop 110-160 ms, every
key press waiting then was answered that much later, and that was the key-press tail.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import time
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")

log = logging.getLogger(__name__)


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


def settle_heap() -> int:
    """Collect once, then exempt every object alive now from later collections (``gc.freeze``).

    Call it once the process has loaded what it keeps for its life (the services started);
    returns how many objects were frozen. What is allocated later is collected as usual.
    """
    started = time.perf_counter()
    gc.collect()
    gc.freeze()
    frozen = gc.get_freeze_count()
    log.info(
        "heap settled",
        extra={"frozen_objects": frozen, "ms": round((time.perf_counter() - started) * 1000, 1)},
    )
    return frozen
