"""The one gevent hub of the process, running in its own thread.

Theory of operation
-------------------
greenswitch is gevent code. Rather than monkey-patching the process, gevent
runs in one dedicated thread (``esl-gevent``) that owns a private hub; every
greenswitch connection of the process lives there. asyncio code never calls
gevent directly: it hands a function to :meth:`GeventThread.call`, which
queues it with the hub loop's ``run_callback_threadsafe``; the function runs
in the hub's greenlet and must not block (it spawns a greenlet for anything
that waits). Results go back with the asyncio loop's ``call_soon_threadsafe``.

The hub loop is kept alive by a referenced async watcher. :meth:`stop` wakes
the thread's main greenlet, which kills the greenlets still running, destroys
the hub and returns; :meth:`stop` then joins the thread. A gevent loop left
running in a daemon thread while the interpreter exits crashes it, so
:func:`shared_thread` users release it explicitly, and an ``atexit`` hook
stops whatever is still running.
"""

from __future__ import annotations

import atexit
import logging
import threading
from collections.abc import Callable
from typing import Any

import gevent
import gevent.event

logger = logging.getLogger(__name__)


class GeventThread:
    """A thread running a private gevent hub; start it, call into it, stop and join it."""

    def __init__(self, name: str = "esl-gevent") -> None:
        self._name = name
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._loop: Any = None
        self._stop_event: Any = None
        self._greenlets: set[Any] = set()
        self._lock = threading.Lock()
        self._loop_lock = threading.Lock()  # the loop is never used while being destroyed
        self._stopping = False

    @property
    def thread(self) -> threading.Thread | None:
        """The OS thread, while it runs (tests assert it is gone after :meth:`stop`)."""
        return self._thread

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive() and not self._stopping

    def start(self) -> None:
        """Start the thread and wait until its hub accepts callbacks."""
        with self._lock:
            if self._thread is not None:
                return
            self._stopping = False
            self._ready.clear()
            self._thread = threading.Thread(target=self._main, name=self._name, daemon=True)
            self._thread.start()
        if not self._ready.wait(10.0):
            raise RuntimeError("gevent hub thread did not start")

    def _main(self) -> None:
        hub = gevent.get_hub()
        self._loop = hub.loop
        keepalive = hub.loop.async_()  # referenced: the loop never runs out of work
        keepalive.start(lambda: None)
        self._stop_event = gevent.event.Event()
        self._ready.set()
        try:
            self._stop_event.wait()
            if self._greenlets:
                gevent.killall(list(self._greenlets), timeout=2.0)
        except BaseException:  # pragma: no cover - the hub must be destroyed whatever happens
            logger.exception("gevent hub thread failed", extra={"thread": self._name})
        finally:
            with self._loop_lock:
                self._loop = None
            keepalive.stop()
            keepalive.close()
            hub.destroy(destroy_loop=True)

    def call(self, func: Callable[..., Any], *args: Any) -> None:
        """Run ``func(*args)`` in the hub (from any thread). It must not block."""
        with self._loop_lock:
            loop = self._loop
            if loop is None or self._stopping:
                raise RuntimeError("gevent hub thread is not running")
            loop.run_callback_threadsafe(func, *args)

    def spawn(self, func: Callable[..., Any], *args: Any) -> None:
        """Run ``func(*args)`` in a new greenlet of the hub (from any thread); it may block."""
        self.call(self._spawn, func, args)

    def spawn_here(self, func: Callable[..., Any], *args: Any) -> Any:
        """Spawn a tracked greenlet; call only from inside the hub thread."""
        greenlet = gevent.spawn(func, *args)
        self._greenlets.add(greenlet)
        greenlet.link(self._greenlets.discard)
        return greenlet

    def _spawn(self, func: Callable[..., Any], args: tuple[Any, ...]) -> None:
        self.spawn_here(func, *args)

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the hub, kill its greenlets and join the thread."""
        with self._lock:
            thread, self._thread = self._thread, None
            if thread is None:
                return
            self._stopping = True
        with self._loop_lock:
            loop = self._loop
            if loop is not None and self._stop_event is not None:
                loop.run_callback_threadsafe(self._stop_event.set)
        thread.join(timeout)
        if thread.is_alive():  # pragma: no cover
            logger.error("gevent hub thread did not stop", extra={"thread": self._name})


_shared: GeventThread | None = None
_shared_users = 0
_shared_lock = threading.Lock()


def acquire_shared() -> GeventThread:
    """The process-wide hub thread, started on first use; pair with :func:`release_shared`."""
    global _shared, _shared_users
    with _shared_lock:
        if _shared is None:
            _shared = GeventThread()
        _shared_users += 1
        hub = _shared
    hub.start()
    return hub


def release_shared() -> None:
    """Drop one user of the shared hub thread; the last one stops and joins it."""
    global _shared, _shared_users
    with _shared_lock:
        _shared_users = max(0, _shared_users - 1)
        if _shared_users or _shared is None:
            return
        hub, _shared = _shared, None
    hub.stop()


def shared_thread() -> GeventThread | None:
    """The shared hub thread if one exists (for tests and diagnostics)."""
    return _shared


@atexit.register
def _stop_at_exit() -> None:
    global _shared, _shared_users
    with _shared_lock:
        hub, _shared, _shared_users = _shared, None, 0
    if hub is not None:
        hub.stop(timeout=2.0)
