"""The README's walkthrough as real processes: `telephony sim`, `telephony serve`, the CLI, HTTP.

Also the restart guarantee: `serve` is killed with SIGKILL while a call is
bridged, started again, re-adopts the call, and the CDR is complete.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest

from telephony.store.database import EmbeddedPostgres

TELEPHONY = [sys.executable, "-m", "telephony.cli"]
REPO = Path(__file__).resolve().parents[2]
# The citizen presses 0 (an agent) in the 12345 menu, 5 simulated seconds after answer.
PRESS_0 = ("dtmf=0", "dtmf_delay_ms=5000")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _until(check: Callable[[], Any], timeout: float = 30.0, what: str = "") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            result = check()
        except (httpx.HTTPError, OSError):
            result = None
        if result:
            return result
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


class Stack:
    """The processes of one walkthrough, sharing one data folder."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.sim_port = _free_port()
        self.api_port = _free_port()
        self.env = {
            **os.environ,
            "TELEPHONY_FREESWITCH": f"esl://:ClueCon@127.0.0.1:{self.sim_port}",
            "TELEPHONY_API_LISTEN": f"127.0.0.1:{self.api_port}",
            "TELEPHONY_DATA_DIR": str(root),
            "TELEPHONY_WRAP_UP_SECONDS": "0.5",
            "TELEPHONY_IVR_FLOWS": str(REPO / "ivr_flows"),
        }
        self.env.pop("DATABASE_URL", None)
        self.sim: subprocess.Popen[bytes] | None = None
        self.serve: subprocess.Popen[bytes] | None = None
        self.http = httpx.Client(base_url=f"http://127.0.0.1:{self.api_port}", timeout=10)

    def start_sim(self) -> None:
        self.sim = subprocess.Popen(
            [*TELEPHONY, "sim", "--listen", f"127.0.0.1:{self.sim_port}", "--time-scale", "5"],
            env=self.env,
            stderr=(self.root / "sim.log").open("ab"),
        )

    def start_serve(self) -> None:
        self.serve = subprocess.Popen(
            [*TELEPHONY, "serve"], env=self.env, stderr=(self.root / "serve.log").open("ab")
        )
        try:
            _until(lambda: self.http.get("/readyz").status_code == 200, 90, "serve to be ready")
        except AssertionError as exc:  # say why: the last /readyz and the end of serve's log
            try:
                ready = self.http.get("/readyz").text
            except httpx.HTTPError as error:
                ready = repr(error)
            log = (self.root / "serve.log").read_text(errors="replace")[-3000:]
            raise AssertionError(f"{exc}; /readyz: {ready}; serve.log: {log}") from None

    def cli(self, *args: str) -> str:
        done = subprocess.run(
            [*TELEPHONY, *args], env=self.env, capture_output=True, text=True, timeout=60
        )
        assert done.returncode == 0, done.stderr
        return done.stdout.strip()

    def stop(self) -> None:
        for process in (self.serve, self.sim):
            if process is not None and process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(15)
                except subprocess.TimeoutExpired:
                    process.kill()
        self.http.close()


@pytest.fixture
def stack() -> Iterator[Stack]:
    # Not under pytest's tmp_path: the embedded server's own user must traverse the path.
    root = Path(tempfile.mkdtemp(prefix="telephony-e2e-", dir="/tmp"))
    stack = Stack(root)
    stack.start_sim()
    try:
        yield stack
    finally:
        stack.stop()
        postgres = root / "postgres"
        if (postgres / "PG_VERSION").exists():
            server = EmbeddedPostgres(postgres)
            server.start()
            server.stop()
        shutil.rmtree(root, ignore_errors=True)


def _sign_in_agent(stack: Stack) -> dict[str, str]:
    admin = stack.cli("users", "create", "admin", "--role", "admin")
    as_admin = {"Authorization": f"Bearer {admin}"}
    created = stack.http.post(
        "/v1/agents", headers=as_admin, json={"id": "a1", "name": "Li Na", "extension": "1001"}
    )
    assert created.status_code == 201, created.text
    token = stack.cli("users", "create", "lina", "--role", "agent", "--agent", "a1")
    signed = stack.http.post("/v1/agents/a1/sign-in", headers={"Authorization": f"Bearer {token}"})
    assert signed.status_code == 200 and signed.json()["agent"]["state"] == "available"
    return as_admin


def _record(stack: Stack, headers: dict[str, str], call_uuid: str) -> dict[str, Any] | None:
    records = stack.http.get("/v1/call-records", headers=headers).json()["records"]
    found = [r for r in records if r["uuid"] == call_uuid and r["ended_at"]]
    return found[0] if found else None


def test_readme_walkthrough_places_a_call_and_shows_its_cdr(stack: Stack) -> None:
    stack.start_serve()
    as_admin = _sign_in_agent(stack)
    assert stack.cli("esl-api", "sim", "phone", "1001", "answer_after_ms=1000") == "+OK"
    reply = stack.cli(
        "esl-api", "sim", "call", "12345", "13800138000", *PRESS_0, "hangup_after_s=20"
    )
    call_uuid = reply.removeprefix("+OK ")

    cdr = _until(lambda: _record(stack, as_admin, call_uuid), 30, "the CDR")
    assert cdr["outcome"] == "answered" and cdr["agent_id"] == "a1"
    assert cdr["hung_up_by"] == "caller" and cdr["recording_id"]
    assert cdr["ivr_path"] == "0"
    assert cdr["arrived_at"] <= cdr["queued_at"] <= cdr["agent_answered_at"] <= cdr["ended_at"]

    # serve records the node's connection: today's availability has service time, up but
    # for the moment between serve's start and the node's connect (microseconds)
    today = datetime.now(ZoneInfo("Asia/Shanghai")).date().isoformat()
    kpis = stack.http.get(
        "/v1/reports/kpis", params={"from": today, "to": today}, headers=as_admin
    ).json()
    availability = kpis["groups"][0]["availability"]
    assert availability["available"] and availability["denominator"] > 0
    assert 0 < availability["denominator"] - availability["numerator"] < 10_000_000


def test_serve_killed_while_bridged_readopts_the_call_and_completes_its_cdr(stack: Stack) -> None:
    stack.start_serve()
    as_admin = _sign_in_agent(stack)
    stack.cli("esl-api", "sim", "phone", "1001", "answer_after_ms=1000")
    call_uuid = stack.cli("esl-api", "sim", "call", "12345", "13800138001", *PRESS_0)
    call_uuid = call_uuid.removeprefix("+OK ")

    def talking() -> bool:
        live = stack.http.get(f"/v1/calls/{call_uuid}", headers=as_admin)
        return live.status_code == 200 and live.json()["state"] == "talking"

    _until(talking, 30, "the call to be bridged")
    assert stack.serve is not None
    stack.serve.send_signal(signal.SIGKILL)
    stack.serve.wait(10)

    stack.start_serve()
    _until(talking, 30, "the restarted controller to re-adopt the call")
    agent = stack.http.get("/v1/agents/a1", headers=as_admin).json()
    assert agent["state"] == "in_call"

    assert stack.cli("esl-api", "sim", "hangup", call_uuid).startswith("+OK")
    cdr = _until(lambda: _record(stack, as_admin, call_uuid), 30, "the CDR")
    assert cdr["outcome"] == "answered" and cdr["agent_id"] == "a1"
    assert cdr["hung_up_by"] == "caller"
    assert cdr["arrived_at"] <= cdr["agent_answered_at"] <= cdr["ended_at"]
    assert cdr["talk_seconds"] > 0
