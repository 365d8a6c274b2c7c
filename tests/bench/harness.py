"""What the benchmarks share: free ports, processes on 127.0.0.1, CPU counters, percentiles.

Every benchmark process is a child of the pytest process, listens on 127.0.0.1 only,
and is stopped (SIGTERM, then SIGKILL after a grace period) by the fixture or the
``finally`` that started it.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import orjson
import pytest

REPO = Path(__file__).resolve().parents[2]
PYTHON = sys.executable
_TICK = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_port(port: int, process: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    """Until something accepts on 127.0.0.1:``port``; fails if ``process`` exits first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"{process.args!r} exited with {process.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.1)
    raise AssertionError(f"nothing listens on 127.0.0.1:{port} after {timeout} s")


def start(
    args: Sequence[str], log: Path, env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    """A child process with the repository as its working folder, stderr to ``log``."""
    return subprocess.Popen(
        list(args),
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=log.open("ab"),
    )


def stop(process: subprocess.Popen[bytes] | None, grace: float = 20.0) -> None:
    if process is None or process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(grace)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(5)


@pytest.fixture
def sim_port(tmp_path: Path) -> Iterator[int]:
    """``telephony sim`` in its own process, at real time, on a free port."""
    port = free_port()
    process = start(
        [PYTHON, "-m", "telephony.cli", "--log-level", "WARNING", "sim", "--listen",
         f"127.0.0.1:{port}"],
        tmp_path / "sim.log",
    )  # fmt: skip
    try:
        wait_for_port(port, process, 20)
        yield port
    finally:
        stop(process, 10)


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


class LineClient:
    """A blocking client of a JSON-lines control port (one request line, one reply line);
    with ``process``, it first waits up to ``wait`` seconds for the port to listen."""

    def __init__(
        self,
        port: int,
        timeout: float = 30.0,
        *,
        process: subprocess.Popen[bytes] | None = None,
        wait: float = 30.0,
    ) -> None:
        if process is not None:
            wait_for_port(port, process, wait)
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.file = self.sock.makefile("rb")

    def __call__(self, cmd: str, **fields: Any) -> dict[str, Any]:
        self.sock.sendall(orjson.dumps({"cmd": cmd, **fields}) + b"\n")
        line = self.file.readline()
        if not line:
            raise ConnectionError(f"control port closed during {cmd!r}")
        reply: dict[str, Any] = orjson.loads(line)
        if not reply.pop("ok", False):
            raise RuntimeError(f"{cmd}: {reply.get('error')}")
        return reply

    def close(self) -> None:
        self.file.close()
        self.sock.close()


def _stat(pid: int) -> list[str]:
    data = Path(f"/proc/{pid}/stat").read_text()
    return data[data.rindex(")") + 2 :].split()  # from field 3 (state) on


def process_cpu(pid: int, *, children: bool = False) -> float:
    """CPU seconds (user + system) of a process; with ``children``, of its reaped children too."""
    fields = _stat(pid)
    ticks = int(fields[11]) + int(fields[12])  # utime, stime
    if children:
        ticks += int(fields[13]) + int(fields[14])  # cutime, cstime
    return ticks / _TICK


def kernel_cpu(pid: int) -> float:
    """CPU seconds a process has spent in the kernel (stime: its system calls, and on
    loopback the TCP stack's work for the bytes it sends)."""
    return int(_stat(pid)[12]) / _TICK


def postgres_cpu(data_dir: Path) -> float | None:
    """CPU seconds of a PostgreSQL server so far: the postmaster, its exited children, and
    its live ones (backends, checkpointer, WAL writer...); None if it is not running."""
    try:
        postmaster = int((data_dir / "postmaster.pid").read_text().split()[0])
        total = process_cpu(postmaster, children=True)
    except (OSError, ValueError, IndexError):
        return None
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = _stat(int(entry.name))
        except OSError:
            continue
        if int(fields[1]) == postmaster:  # ppid
            total += (int(fields[11]) + int(fields[12])) / _TICK
    return total
