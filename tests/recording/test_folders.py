"""The recordings folders `serve` makes: a group and mode a switch of another user can write."""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

import pytest

from telephony.config import Settings
from telephony.recording import folders
from telephony.recording.folders import FolderPolicy, prepare
from telephony.services import prepare_recording_folders
from telephony.sim.files import Identity, W, X

SWITCH = 499
root_only = pytest.mark.skipif(os.geteuid() != 0, reason="changing a folder's group needs root")




def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _switch_may_write(path: Path) -> bool:
    return Identity(SWITCH, SWITCH).may(path.stat(), W | X)


def test_the_default_mode_is_group_writable_and_setgid(shared_dir: Path) -> None:
    folder = shared_dir / "recordings"
    assert prepare(folder, FolderPolicy()) == []
    assert _mode(folder) == 0o2775


@root_only
def test_the_group_is_the_switchs_and_new_files_inherit_it(shared_dir: Path) -> None:
    folder = shared_dir / "recordings"
    assert prepare(folder, FolderPolicy(group=str(SWITCH))) == []
    assert folder.stat().st_gid == SWITCH and _mode(folder) == 0o2775
    assert _switch_may_write(folder)
    (folder / "voicemail").mkdir()
    assert (folder / "voicemail").stat().st_gid == SWITCH  # setgid: the group is inherited


@root_only
def test_a_folder_that_exists_gets_the_policy_again(shared_dir: Path) -> None:
    folder = shared_dir / "recordings"
    folder.mkdir(mode=0o755)
    folder.chmod(0o755)
    assert not _switch_may_write(folder)  # what `serve` used to leave
    assert prepare(folder, FolderPolicy(group=str(SWITCH))) == []
    assert _switch_may_write(folder)


@root_only
def test_an_owner_can_be_set(shared_dir: Path) -> None:
    folder = shared_dir / "recordings"
    assert prepare(folder, FolderPolicy(owner=str(SWITCH), mode=0o2770)) == []
    assert folder.stat().st_uid == SWITCH and _mode(folder) == 0o2770


def test_an_unknown_group_is_logged_and_does_not_stop_serve(
    shared_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    folder = shared_dir / "recordings"
    with caplog.at_level(logging.ERROR, "telephony.recording.folders"):
        problems = prepare(folder, FolderPolicy(group="no-such-group-here"))
    assert folder.is_dir() and _mode(folder) == 0o2775
    assert len(problems) == 1 and "no group 'no-such-group-here'" in problems[0]
    assert "TELEPHONY_RECORDINGS_GROUP" in caplog.text


def test_a_chown_that_fails_is_a_clear_log_line(
    shared_dir: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(path: object, uid: int, gid: int) -> None:
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(folders.os, "chown", refuse)
    folder = shared_dir / "recordings"
    with caplog.at_level(logging.ERROR, "telephony.recording.folders"):
        problems = prepare(folder, FolderPolicy(group=str(SWITCH)))
    assert len(problems) == 1
    assert problems[0].startswith(f"cannot give {folder} to :{SWITCH} (Operation not permitted)")
    assert "the switch may not be able to record there" in caplog.text


def test_a_folder_of_another_user_is_left_as_it_is(
    shared_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = shared_dir / "recordings"
    folder.mkdir()
    folder.chmod(0o700)
    monkeypatch.setattr(folders.os, "geteuid", lambda: folder.stat().st_uid + 1)
    problems = prepare(folder, FolderPolicy())
    assert len(problems) == 1 and "left as they are" in problems[0]
    assert _mode(folder) == 0o700


def test_a_parent_the_switch_cannot_search_is_reported(tmp_path: Path) -> None:
    private = tmp_path / "home"
    private.mkdir()
    private.chmod(0o700)
    problems = prepare(private / "recordings", FolderPolicy())
    assert any(f"{private} (" in p and "cannot be searched" in p for p in problems), problems


def test_serve_prepares_both_folders_from_its_settings(shared_dir: Path) -> None:
    settings = Settings(data_dir=shared_dir, recordings_mode="2770")  # type: ignore[arg-type]
    prepare_recording_folders(settings)
    assert _mode(settings.recordings) == 0o2770
    assert _mode(settings.voicemail) == 0o2770


def test_the_mode_setting_is_octal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TELEPHONY_RECORDINGS_MODE", "2775")
    assert Settings().recordings_mode == 0o2775
    monkeypatch.setenv("TELEPHONY_RECORDINGS_MODE", "0o770")
    assert Settings().recordings_mode == 0o770
    monkeypatch.setenv("TELEPHONY_RECORDINGS_GROUP", "freeswitch")
    assert Settings().recordings_group == "freeswitch"
    monkeypatch.setenv("TELEPHONY_RECORDINGS_MODE", "rwx")
    with pytest.raises(ValueError, match="octal"):
        Settings()


def test_the_default_group_is_freeswitch_when_the_host_has_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    class Entry:
        gr_gid = 4242

    def getgrnam(name: str) -> Entry:
        if name != "freeswitch":
            raise KeyError(name)
        return Entry()

    monkeypatch.setattr(folders.grp, "getgrnam", getgrnam)
    assert folders.group_id(None) == 4242
    assert folders.group_id("7") == 7
    monkeypatch.setattr(folders.grp, "getgrnam", lambda name: (_ for _ in ()).throw(KeyError(name)))
    assert folders.group_id(None) is None
