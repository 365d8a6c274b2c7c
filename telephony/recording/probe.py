"""Proof, not hope: a short recording made by the switch itself into the folder it records to.

``telephony serve`` probes every node at its first connect and after every
reconnect (the engine's connect hooks, after the adoption), once per folder
the switch writes: the call recordings and the voice messages. One probe:

1. ``bgapi originate {origination_uuid=U,originate_timeout=5}null/telephony-recording-probe
   &sleep(120000)``: a channel of mod_loopback's ``null`` endpoint
   (``null_channel_outgoing_channel``, src/mod/endpoints/mod_loopback/mod_loopback.c;
   mod_loopback is loaded by FreeSWITCH's default ``modules.conf.xml``). It needs
   no SIP peer, answers at once, and its read frames are generated (quiet comfort
   noise, ``switch_generate_sln_silence``), so a media bug on it gets audio.
   ``sleep`` keeps it up without a park: no CHANNEL_PARK, so the engine's intake
   never takes it for a citizen, and it carries no ``hotline`` variable, so no
   re-adoption does either. The 120 s bound ends it if we die mid-probe.
2. ``uuid_record U start <folder>/recording-probe-U.wav``: the very command the
   engine records calls with (``switch_ivr_record_session_event``), run by the
   switch's own user, on the switch's own view of the path. ``-ERR Cannot record
   session!`` here is what every call would get.
3. ``record_s`` later, ``uuid_record U stop <path>``, then ``uuid_kill U``.
4. The control plane looks for the file at the same path: it must exist and hold
   audio past the 44-byte WAV header. A file the switch wrote that is not here
   means the two do not share the folder (another host without the shared
   mount, or a different path). Then the file is removed.

The voice-message folder is probed the same way: the ``record`` application
writes into it through the same file layer (``switch_core_file_open``), but
where it cannot, the switch hangs the citizen up (see
:mod:`telephony.ivr.live`), so the IVR asks :class:`RecordingHealth` first.

:class:`RecordingHealth` keeps the latest result per node and folder for
``/readyz``, the IVR and the ``telephony_recording_probe_ok{node}`` gauge.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid as uuidlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from telephony.calls.audio import WAV_HEADER_BYTES, file_size, has_audio
from telephony.esl import commands
from telephony.esl.port import EslCommandError, EslDisconnected, EslError, SwitchPort
from telephony.metrics import Metrics

log = logging.getLogger(__name__)

#: The probe's channel: mod_loopback's null endpoint (``null/<destination>``).
PROBE_ENDPOINT = "null/telephony-recording-probe"
#: How long the probe channel may live (ms) if nobody hangs it up.
PROBE_CHANNEL_MS = 120_000
NOT_CHECKED = "not checked yet"


@dataclass(frozen=True, slots=True)
class ProbeResult:
    """One probe of one folder on one node: ``ok``, or why not (``reason``)."""

    node: str
    folder: Path
    ok: bool
    reason: str | None = None
    #: Bytes of audio the switch wrote past the WAV header.
    audio_bytes: int = 0
    at: float = 0.0


def probe_path(folder: Path, probe_uuid: str) -> Path:
    """Where a probe records (one file per probe, removed afterwards)."""
    return folder / f"recording-probe-{probe_uuid}.wav"


async def probe_recording(
    port: SwitchPort,
    folder: Path,
    node: str,
    timeout: float,
    *,
    record_s: float = 1.0,
    clock: Callable[[], float] = time.time,
) -> ProbeResult:
    """Record ``record_s`` seconds through the switch into ``folder``, then check the file.

    Never raises: every failure is a :class:`ProbeResult` with the reason (the
    switch's reply where it gave one). ``timeout`` bounds the whole probe.
    """
    probe_uuid = str(uuidlib.uuid4())
    path = probe_path(folder, probe_uuid)
    started = False

    def failed(reason: str) -> ProbeResult:
        return ProbeResult(node, folder, False, reason, at=clock())

    step = "originate"
    try:
        async with asyncio.timeout(timeout):
            job = await port.bgapi(
                "originate",
                *commands.originate_args(
                    PROBE_ENDPOINT,
                    variables={"origination_uuid": probe_uuid, "originate_timeout": "5"},
                    app="sleep",
                    app_arg=str(PROBE_CHANNEL_MS),
                ),
            )
            body = (job.body or "").strip()
            if not body.startswith("+OK"):
                return failed(
                    f"the probe channel did not start ({PROBE_ENDPOINT}: {body or 'no result'};"
                    " is mod_loopback loaded?)"
                )
            started = True
            step = "uuid_record start"
            try:
                await port.api("uuid_record", probe_uuid, "start", str(path))
            except EslCommandError as exc:
                return failed(f"{exc.reply.strip()} (the switch cannot record into {folder})")
            await asyncio.sleep(record_s)
            step = "uuid_record stop"
            try:
                await port.api("uuid_record", probe_uuid, "stop", str(path))
            except EslCommandError as exc:
                # The recording ended by itself (the channel went away): the file tells.
                log.warning(
                    "recording probe: stop refused",
                    extra={"node": node, "reply": exc.reply.strip()},
                )
            step = "file check"
            remaining = max(0.5, timeout / 2)
            return await _check_file(node, folder, path, remaining, clock)
    except TimeoutError:
        return failed(f"the switch did not answer within {timeout:g} s ({step})")
    except EslDisconnected:
        return failed(f"the connection to the switch was lost ({step})")
    except (EslError, commands.UnsafeValue) as exc:
        return failed(f"{step}: {exc}")
    finally:
        if started:
            await _kill(port, probe_uuid)
        await asyncio.to_thread(_remove, path)


async def _check_file(
    node: str, folder: Path, path: Path, within: float, clock: Callable[[], float]
) -> ProbeResult:
    """The file with audio, waiting up to ``within`` s (a shared mount may show it late)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    size: int | None = None
    while True:
        size = await asyncio.to_thread(file_size, path)
        if has_audio(size) or loop.time() >= deadline:
            break
        await asyncio.sleep(0.1)
    if size is None:
        return ProbeResult(
            node,
            folder,
            False,
            f"the switch recorded {path} but the file is not in {folder} here: the control"
            " plane and the switch do not share this folder (same path or a shared mount)",
            at=clock(),
        )
    if size <= WAV_HEADER_BYTES:
        return ProbeResult(
            node, folder, False, f"no audio in the probe recording ({size} bytes)", at=clock()
        )
    return ProbeResult(node, folder, True, None, size - WAV_HEADER_BYTES, at=clock())


async def _kill(port: SwitchPort, probe_uuid: str) -> None:
    try:
        await port.api("uuid_kill", probe_uuid, check=False, timeout=5)
    except EslError as exc:
        log.warning("recording probe: channel not hung up", extra={"error": str(exc)})


def _remove(path: Path) -> None:
    try:
        path.unlink(missing_ok=True)
    except OSError as exc:
        log.warning(
            "recording probe file not removed", extra={"path": str(path), "error": str(exc)}
        )


class RecordingHealth:
    """The latest probe result per node and folder; ``/readyz``, the IVR and a gauge read it."""

    def __init__(self, metrics: Metrics | None = None) -> None:
        self.metrics = metrics
        self._results: dict[str, dict[Path, ProbeResult]] = {}

    def record(self, result: ProbeResult) -> None:
        """Keep ``result`` as the node's latest for its folder; set the node's gauge."""
        self._results.setdefault(result.node, {})[result.folder] = result
        if self.metrics is not None:
            ok = self.ok(result.node)
            self.metrics.recording_probe_ok.labels(result.node).set(1 if ok else 0)

    def results(self, node: str) -> list[ProbeResult]:
        """The node's latest result per folder."""
        return list(self._results.get(node, {}).values())

    def ok(self, node: str) -> bool | None:
        """Whether the node recorded into every folder at its last probe (None: never probed)."""
        results = self.results(node)
        if not results:
            return None
        return all(r.ok for r in results)

    def status(self, node: str) -> str:
        """``ok``, the reasons the node cannot record, or ``not checked yet``."""
        results = self.results(node)
        if not results:
            return NOT_CHECKED
        reasons = [r.reason or "failed" for r in results if not r.ok]
        return "; ".join(reasons) if reasons else "ok"

    def reason(self, node: str, folder: Path) -> str | None:
        """Why the node could not record into ``folder`` at its last probe (None: it could,
        or it was not probed yet)."""
        result = self._results.get(node, {}).get(folder)
        if result is None or result.ok:
            return None
        return result.reason or "failed"


class NodeProbe:
    """The connect hook of one node: probe each folder, keep the results, log them.

    A failed probe is tried again every ``retry_s`` seconds while the node stays
    connected (in the background: the hook itself returns after the first try),
    so that a folder fixed by hand, or a probe that timed out on a busy switch,
    makes the node ready again without waiting for a reconnect. The next connect
    replaces the retries with a fresh probe; :meth:`close` stops them.
    """

    def __init__(
        self,
        port: SwitchPort,
        folders: Sequence[Path],
        health: RecordingHealth,
        *,
        timeout: float = 10.0,
        record_s: float = 1.0,
        retry_s: float = 30.0,
    ) -> None:
        self.port = port
        self.folders = list(folders)
        self.health = health
        self.timeout = timeout
        self.record_s = record_s
        self.retry_s = retry_s
        self._retry: asyncio.Task[None] | None = None

    async def __call__(self) -> None:
        self._stop_retrying()
        if not await self.probe_all():
            self._retry = asyncio.create_task(
                self._retry_until_ok(), name=f"recording probe {self.port.node}"
            )

    async def probe_all(self) -> bool:
        """Probe every folder once; whether all of them passed."""
        node = self.port.node
        ok = True
        for folder in self.folders:
            result = await probe_recording(
                self.port, folder, node, self.timeout, record_s=self.record_s
            )
            self.health.record(result)
            ok = ok and result.ok
            if result.ok:
                log.info(
                    "recording probe ok",
                    extra={"node": node, "folder": str(folder), "audio_bytes": result.audio_bytes},
                )
            else:
                log.error(
                    "the switch cannot record: calls on this node will not be recorded",
                    extra={"node": node, "folder": str(folder), "reason": result.reason},
                )
        return ok

    async def _retry_until_ok(self) -> None:
        while True:
            await asyncio.sleep(self.retry_s)
            if not self.port.connected:
                return  # the next connect probes again
            if await self.probe_all():
                return

    def _stop_retrying(self) -> None:
        if self._retry is not None and not self._retry.done():
            self._retry.cancel()
        self._retry = None

    async def close(self) -> None:
        """Stop retrying (at shutdown)."""
        task = self._retry
        self._stop_retrying()
        if task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await task
