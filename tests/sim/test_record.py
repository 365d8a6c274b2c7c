"""Recording on the simulator, over raw ESL: where the switch's user may write, and where not.

What FreeSWITCH does (src/mod/applications/mod_commands/mod_commands.c
``session_record_function``, src/switch_ivr_async.c
``switch_ivr_record_session_event``, mod_dptools ``record_function`` ->
src/switch_ivr_play_say.c ``switch_ivr_record_file``):

* ``uuid_record <uuid> start <path>`` that cannot open the file answers
  ``-ERR Cannot record session!``, sets ``record_completion_cause=uri-failure``
  and fires nothing (RECORD_START comes from the media bug's INIT, which never
  runs); the channel stays up. It makes missing folders first
  (``switch_dir_make_recursive``).
* the ``record`` application that cannot open its file hangs the channel up
  with DESTINATION_OUT_OF_ORDER at once, fires neither RECORD_START nor
  RECORD_STOP, and completes with ``_none_`` after the CHANNEL_HANGUP. It makes
  no folder.

The simulated switch runs as ``switch_uid``/``switch_gid`` (``api sim set``),
and its permission to write is the kernel's check for that user on the
folder's mode bits. The folders here live under a 0755 folder in the system's
temporary folder: pytest's own folders are 0700, which no other user may
search.
"""

from __future__ import annotations

import asyncio
import os
import stat
import wave
from pathlib import Path

import pytest

from telephony.sim import Simulator
from telephony.sim.files import WAV_HEADER_BYTES
from tests.sim.conftest import RawClient, execute, parked_call

SWITCH = 499  # a packaged FreeSWITCH's unprivileged user and group (not this process's)


def _folder(base: Path, name: str, mode: int) -> Path:
    folder = base / name
    folder.mkdir()
    folder.chmod(mode)
    return folder


async def _as_switch_user(client: RawClient, uid: int = SWITCH, gid: int = SWITCH) -> None:
    assert await client.api(f"sim set switch_uid {uid}") == "+OK\n"
    assert await client.api(f"sim set switch_gid {gid}") == "+OK\n"


async def _answered(client: RawClient) -> str:
    uuid = await parked_call(client)
    await execute(client, uuid, "answer")
    return uuid


def _audio(path: Path) -> bytes:
    with wave.open(str(path), "rb") as wav:
        assert (wav.getnchannels(), wav.getsampwidth(), wav.getframerate()) == (1, 2, 8000)
        return wav.readframes(wav.getnframes())


def _own_group_not_switch() -> None:
    if os.getegid() == SWITCH:
        pytest.skip("this process runs as the switch's group")


async def test_uuid_record_into_a_0755_folder_of_another_user_is_refused(
    client: RawClient, shared_dir: Path
) -> None:
    _own_group_not_switch()
    folder = _folder(shared_dir, "recordings", 0o755)
    await _as_switch_user(client)
    a = await _answered(client)
    path = folder / f"{a}.wav"
    mark = len(client.events(a))
    assert await client.api(f"uuid_record {a} start {path}") == "-ERR Cannot record session!\n"
    assert await client.api(f"uuid_getvar {a} record_completion_cause") == "uri-failure"
    await asyncio.sleep(0.05)
    assert "RECORD_START" not in [e.name for e in client.events(a)[mark:]]
    assert not path.exists()
    assert await client.api(f"uuid_exists {a}") == "true"  # the call goes on


async def test_uuid_record_into_a_group_writable_setgid_folder_records_audio(
    client: RawClient, shared_dir: Path
) -> None:
    _own_group_not_switch()
    folder = _folder(shared_dir, "recordings", 0o2775)
    # The folder's group is this process's; the switch's user is a member of it.
    await _as_switch_user(client, gid=folder.stat().st_gid)
    a = await _answered(client)
    path = folder / f"{a}.wav"
    assert await client.api(f"uuid_record {a} start {path}") == "+OK Success\n"
    start = await client.wait_event("RECORD_START", a)
    assert start.h["Record-File-Path"] == str(path)
    await asyncio.sleep(0.1)  # 5 simulated seconds
    assert await client.api(f"uuid_record {a} stop {path}") == "+OK Success\n"
    stop = await client.wait_event("RECORD_STOP", a)
    assert stop.h["Record-Completion-Cause"] == "success-maxtime"
    assert int(stop.h["variable_record_seconds"]) > 0
    assert int(stop.h["variable_record_ms"]) > 1000
    size = path.stat().st_size
    assert size == int(stop.h["variable_record_file_size"]) > WAV_HEADER_BYTES
    frames = _audio(path)
    assert len(frames) == 2 * int(stop.h["variable_record_samples"])
    assert any(frames), "audio, not only zeros"
    if os.geteuid() == 0:  # the switch's file: its user, the setgid folder's group
        assert (path.stat().st_uid, path.stat().st_gid) == (SWITCH, folder.stat().st_gid)


async def test_uuid_record_into_a_world_writable_folder_works(
    client: RawClient, shared_dir: Path
) -> None:
    folder = _folder(shared_dir, "open", 0o777)
    await _as_switch_user(client)
    a = await _answered(client)
    assert await client.api(f"uuid_record {a} start {folder}/x.wav") == "+OK Success\n"
    await client.wait_event("RECORD_START", a)


async def test_a_writable_folder_below_one_the_switch_cannot_search_is_refused(
    client: RawClient, tmp_path: Path
) -> None:
    """pytest's tmp folders sit in a 0700 folder: another user cannot get to them."""
    tmp_path.chmod(0o700)
    folder = _folder(tmp_path, "open", 0o777)
    await _as_switch_user(client)
    a = await _answered(client)
    assert await client.api(f"uuid_record {a} start {folder}/x.wav") == (
        "-ERR Cannot record session!\n"
    )


async def test_an_existing_file_the_switch_may_not_write_is_refused(
    client: RawClient, shared_dir: Path
) -> None:
    folder = _folder(shared_dir, "open", 0o777)
    taken = folder / "taken.wav"
    taken.write_bytes(b"")
    taken.chmod(0o644)
    await _as_switch_user(client)
    a = await _answered(client)
    assert await client.api(f"uuid_record {a} start {taken}") == "-ERR Cannot record session!\n"


async def test_uuid_record_makes_missing_folders_where_the_switch_may(
    client: RawClient, shared_dir: Path
) -> None:
    _own_group_not_switch()
    open_ = _folder(shared_dir, "open", 0o777)
    closed = _folder(shared_dir, "closed", 0o755)
    await _as_switch_user(client)
    a = await _answered(client)
    made = open_ / "2026" / "03" / "x.wav"
    assert await client.api(f"uuid_record {a} start {made}") == "+OK Success\n"
    assert made.parent.is_dir()
    if os.geteuid() == 0:
        assert made.parent.stat().st_uid == SWITCH
    refused = closed / "voicemail" / "x.wav"
    assert await client.api(f"uuid_record {a} start {refused}") == ("-ERR Cannot record session!\n")
    assert not refused.parent.exists()


async def test_the_default_switch_user_is_this_process(client: RawClient, tmp_path: Path) -> None:
    """Default: the simulator's own identity, so folders its tests made stay writable."""
    folder = _folder(tmp_path, "private", 0o700)
    a = await _answered(client)
    assert await client.api(f"uuid_record {a} start {folder}/x.wav") == "+OK Success\n"
    await client.wait_event("RECORD_START", a)


async def test_uuid_record_replies_as_mod_commands(client: RawClient, shared_dir: Path) -> None:
    a = await _answered(client)
    path = shared_dir / "x.wav"
    assert await client.api(f"uuid_record {a} start") == (
        "-USAGE: <uuid> [start|stop|mask|unmask] <path> [<limit>] [<recording_vars>]\n"
    )
    assert await client.api(f"uuid_record 00000000-0000-0000-0000-000000000000 start {path}") == (
        "-ERR Cannot locate session!\n"
    )
    assert await client.api(f"uuid_record {a} stop all") == "-ERR Cannot stop record session!\n"
    assert await client.api(f"uuid_record {a} start {path}") == "+OK Success\n"
    assert await client.api(f"uuid_record {a} start {path}") == "+OK Success\n"  # already
    assert await client.api(f"uuid_record {a} stop {shared_dir}/other.wav") == (
        "-ERR Cannot stop record session!\n"
    )
    assert await client.api(f"uuid_record {a} stop all") == "+OK Success\n"
    await client.wait_event("RECORD_STOP", a)
    assert [e.name for e in client.events(a)].count("RECORD_START") == 1


async def test_uuid_record_with_a_limit_ends_itself(client: RawClient, shared_dir: Path) -> None:
    a = await _answered(client)
    path = shared_dir / "limited.wav"
    assert await client.api(f"uuid_record {a} start {path} 2") == "+OK Success\n"
    stop = await client.wait_event("RECORD_STOP", a, timeout=5)
    assert stop.h["Record-Completion-Cause"] == "success-maxtime"
    assert stop.h["variable_record_seconds"] == "2"
    assert await client.api(f"uuid_record {a} stop {path}") == "-ERR Cannot stop record session!\n"


async def test_a_hangup_ends_the_recording_after_the_channel_hangup(
    client: RawClient, shared_dir: Path
) -> None:
    a = await _answered(client)
    path = shared_dir / "hung-up.wav"
    assert await client.api(f"uuid_record {a} start {path}") == "+OK Success\n"
    await asyncio.sleep(0.05)
    assert await client.api(f"sim hangup {a}") == "+OK\n"
    stop = await client.wait_event("RECORD_STOP", a)
    names = [e.name for e in client.events(a)]
    assert names.index("CHANNEL_HANGUP") < names.index("RECORD_STOP")
    assert names.index("RECORD_STOP") < names.index("CHANNEL_HANGUP_COMPLETE")
    assert stop.h["Record-Completion-Cause"] == "success-silence"
    assert path.stat().st_size > WAV_HEADER_BYTES


async def test_the_record_app_that_cannot_write_hangs_the_call_up(
    client: RawClient, shared_dir: Path
) -> None:
    _own_group_not_switch()
    folder = _folder(shared_dir, "voicemail", 0o755)
    await _as_switch_user(client)
    a = await _answered(client)
    path = folder / f"12315-{a}.wav"
    mark = len(client.events(a))
    done = await execute(client, a, "record", f"{path} 120 200 5")
    assert done.h["Application-Response"] == "_none_"
    assert done.h["Answer-State"] == "hangup"
    assert done.h["Hangup-Cause"] == "DESTINATION_OUT_OF_ORDER"
    assert "variable_record_seconds" not in done.h
    names = [e.name for e in client.events(a)[mark:]]
    assert "RECORD_START" not in names and "RECORD_STOP" not in names
    assert names.index("CHANNEL_HANGUP") < names.index("CHANNEL_EXECUTE_COMPLETE")
    end = await client.wait_event("CHANNEL_HANGUP_COMPLETE", a)
    assert end.h["variable_hangup_cause_q850"] == "27"
    assert end.h["variable_sip_hangup_disposition"] == "send_bye"
    assert not path.exists()


async def test_the_record_app_makes_no_folder(client: RawClient, shared_dir: Path) -> None:
    a = await _answered(client)
    done = await execute(client, a, "record", f"{shared_dir}/missing/x.wav 120 200 5")
    assert done.h["Hangup-Cause"] == "DESTINATION_OUT_OF_ORDER"
    assert not (shared_dir / "missing").exists()


async def test_the_record_app_records_until_the_silence_after_the_message(
    sim: tuple[Simulator, int], client: RawClient, shared_dir: Path
) -> None:
    _own_group_not_switch()
    folder = _folder(shared_dir, "voicemail", 0o2775)
    await _as_switch_user(client, gid=folder.stat().st_gid)
    a = await _answered(client)
    path = folder / f"12315-{a}.wav"
    done = await execute(client, a, "record", f"{path} 120 200 5")
    assert done.h["Answer-State"] == "answered"
    start = next(e for e in client.events(a) if e.name == "RECORD_START")
    stop = next(e for e in client.events(a) if e.name == "RECORD_STOP")
    assert start.h["Record-File-Path"] == stop.h["Record-File-Path"] == str(path)
    assert "Record-Completion-Cause" not in stop.h  # the media bug's header, not record's
    # 3 s of speech (record_default_ms) and the 5 s of silence that end it
    assert stop.h["variable_record_seconds"] == "8"
    assert stop.h["variable_silence_hits_exhausted"] == "true"
    assert int(stop.h["variable_record_file_size"]) == path.stat().st_size
    assert any(_audio(path))


async def test_the_record_app_ends_on_a_terminator_and_on_its_limit(
    client: RawClient, shared_dir: Path
) -> None:
    a = await parked_call(client, "dtmf=5#", "dtmf_delay_ms=2000")
    await execute(client, a, "answer")
    assert await client.api(f"uuid_setvar {a} playback_terminators #") == "+OK\n"
    done = await execute(client, a, "record", f"{shared_dir}/a.wav 60")
    assert done.h["variable_playback_terminator_used"] == "#"
    assert 0 < int(done.h["variable_record_ms"]) < 60_000
    limited = await execute(client, a, "record", f"{shared_dir}/b.wav 2")
    # `(now - start) > limit` in whole epoch seconds: between 2 and 3 s
    assert 2000 <= int(limited.h["variable_record_ms"]) <= 3000


async def test_a_null_channel_records_for_the_probe(client: RawClient, shared_dir: Path) -> None:
    """The recording probe's channel: mod_loopback's null endpoint, a sleep, uuid_record."""
    probe = "5c1d2e3f-0000-4000-8000-00000000abcd"
    reply = await client.command(
        f"bgapi originate {{origination_uuid={probe}}}null/telephony-probe &sleep(60000)\n"
        "Job-UUID: probe-job"
    )
    assert reply.headers["Reply-Text"] == "+OK Job-UUID: probe-job"
    job = await client.wait_event("BACKGROUND_JOB")
    assert job.body == f"+OK {probe}\n"
    created = await client.wait_event("CHANNEL_CREATE", probe)
    assert created.h["Channel-Name"] == "null/telephony-probe"
    assert "variable_hotline" not in created.h
    path = shared_dir / f"probe-{probe}.wav"
    assert await client.api(f"uuid_record {probe} start {path}") == "+OK Success\n"
    await asyncio.sleep(0.05)
    assert await client.api(f"uuid_record {probe} stop {path}") == "+OK Success\n"
    await client.wait_event("RECORD_STOP", probe)
    assert path.stat().st_size > WAV_HEADER_BYTES
    assert await client.api(f"uuid_kill {probe}") == "+OK\n"
    await client.wait_event("CHANNEL_DESTROY", probe)
    assert "CHANNEL_PARK" not in client.names(probe)


async def test_a_null_destination_cause_fails_the_originate(client: RawClient) -> None:
    await client.command("bgapi originate null/cause-USER_BUSY &sleep(1000)\nJob-UUID: busy")
    job = await client.wait_event("BACKGROUND_JOB")
    assert job.body == "-ERR USER_BUSY\n"


def test_permission_bits_follow_the_kernel_rules() -> None:
    from telephony.sim.files import Identity, W, X

    def st(uid: int, gid: int, mode: int) -> os.stat_result:
        return os.stat_result((stat.S_IFDIR | mode, 0, 0, 2, uid, gid, 0, 0, 0, 0))

    switch = Identity(SWITCH, SWITCH)
    assert not switch.may(st(0, 0, 0o755), W | X)
    assert switch.may(st(0, SWITCH, 0o2775), W | X)
    assert switch.may(st(0, 0, 0o777), W | X)
    assert not switch.may(st(SWITCH, 0, 0o077), W)  # the owner's bits count, only them
    assert not switch.may(st(0, SWITCH, 0o707), W)  # the group's bits, not the others'
    assert Identity(SWITCH, 1, frozenset({SWITCH})).may(st(0, SWITCH, 0o070), W | X)
    assert Identity(0, 0).may(st(5, 5, 0o000), W | X)
