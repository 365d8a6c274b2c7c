"""The recordings folders, made so that a switch running as another user can write them.

A packaged FreeSWITCH runs as its own user (``freeswitch``); ``telephony
serve`` runs as another (often root). A folder ``serve`` makes with the
default ``0755`` is the control plane's alone, and every ``uuid_record``
answers ``-ERR Cannot record session!``. So ``serve`` makes
``<recordings>`` and ``<recordings>/voicemail`` with:

* mode ``TELEPHONY_RECORDINGS_MODE`` (default ``2775``: group-writable, and
  setgid, so every file and folder created inside gets the folder's group and
  the control plane can read, check and remove what the switch wrote);
* group ``TELEPHONY_RECORDINGS_GROUP`` (a name or a gid; default: the group
  ``freeswitch`` when the host has one, as packaged FreeSWITCH creates it,
  else the control plane's own group): put the switch's user in it;
* owner ``TELEPHONY_RECORDINGS_OWNER`` (optional, a name or a uid; changing the
  owner needs root).

Folders that exist already get the same mode and group again when they
belong to the control plane's user (or it is root); a folder owned by someone
else is left as it is. Nothing here stops ``serve``: what cannot be applied
is logged (one line per folder, saying what to do), and the recording probe
(:mod:`telephony.recording.probe`) then shows whether the switch can write.
"""

from __future__ import annotations

import grp
import logging
import os
import pwd
import stat
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

DEFAULT_MODE = 0o2775
#: The group packaged FreeSWITCH runs as; used by default when the host has it.
SWITCH_GROUP = "freeswitch"


@dataclass(frozen=True, slots=True)
class FolderPolicy:
    """How the recordings folders are made: mode bits, group and owner (None: leave)."""

    mode: int = DEFAULT_MODE
    group: str | None = None
    owner: str | None = None


class UnknownAccount(ValueError):
    """A user or group name the host does not know."""


def group_id(name: str | None) -> int | None:
    """A group name or number as a gid (None: unset; the host's ``freeswitch`` if it exists)."""
    if name is None or name == "":
        try:
            return grp.getgrnam(SWITCH_GROUP).gr_gid
        except KeyError:
            return None
    if name.isdigit():
        return int(name)
    try:
        return grp.getgrnam(name).gr_gid
    except KeyError:
        raise UnknownAccount(f"no group {name!r} on this host") from None


def user_id(name: str | None) -> int | None:
    """A user name or number as a uid (None: unset)."""
    if name is None or name == "":
        return None
    if name.isdigit():
        return int(name)
    try:
        return pwd.getpwnam(name).pw_uid
    except KeyError:
        raise UnknownAccount(f"no user {name!r} on this host") from None


def prepare(folder: Path, policy: FolderPolicy) -> list[str]:
    """Make ``folder`` (and its parents) and apply ``policy`` to it; the problems, as text.

    Parents that had to be made get the ordinary mode; only ``folder`` gets the
    policy. Raises OSError only when the folder cannot be made at all.
    """
    folder.mkdir(parents=True, exist_ok=True)
    problems: list[str] = []
    st = folder.stat()
    me = os.geteuid()
    if me != 0 and st.st_uid != me:
        problems.append(
            f"{folder} belongs to uid {st.st_uid}, not to this process (uid {me}): its"
            f" owner, group and mode are left as they are ({_describe(st)})"
        )
        _log(folder, problems)
        return problems
    try:
        uid = user_id(policy.owner)
    except UnknownAccount as exc:
        problems.append(f"{exc}: the owner of {folder} is left as it is")
        uid = None
    try:
        gid = group_id(policy.group)
    except UnknownAccount as exc:
        problems.append(
            f"{exc}: create it and add the switch's user to it, or set"
            " TELEPHONY_RECORDINGS_GROUP to the switch's group"
        )
        gid = None
    if (uid is not None and uid != st.st_uid) or (gid is not None and gid != st.st_gid):
        try:
            os.chown(folder, -1 if uid is None else uid, -1 if gid is None else gid)
        except OSError as exc:
            who = f"{'' if uid is None else uid}:{'' if gid is None else gid}"
            problems.append(
                f"cannot give {folder} to {who} ({exc.strerror}): the switch may not be able"
                " to record there; run serve as root once, or chown it by hand"
            )
    try:
        os.chmod(folder, policy.mode)
    except OSError as exc:
        problems.append(f"cannot set the mode of {folder} to {policy.mode:o} ({exc.strerror})")
    st = folder.stat()
    if stat.S_IMODE(st.st_mode) != policy.mode and not problems:
        # The kernel drops setgid for an owner who is not in the folder's group.
        problems.append(
            f"{folder} has mode {stat.S_IMODE(st.st_mode):o}, not {policy.mode:o}"
            " (setgid needs the owner to be in the folder's group)"
        )
    problems += _unreachable(folder, st.st_gid)
    _log(folder, problems)
    if not problems:
        log.info("recordings folder ready", extra={"folder": str(folder), "as": _describe(st)})
    return problems


def _unreachable(folder: Path, gid: int) -> list[str]:
    """The parents a member of ``gid`` (who owns none of them) could not search."""
    out = []
    for parent in folder.parents:
        try:
            st = parent.stat()
        except OSError:
            continue
        bits = (st.st_mode >> 3) & 7 if st.st_gid == gid else st.st_mode & 7
        if not bits & 1:
            out.append(
                f"{parent} ({_describe(st)}) cannot be searched by the switch's user (group"
                f" {gid}), so it cannot reach {folder}: give it o+x (or g+x to that group),"
                " or put the recordings elsewhere (TELEPHONY_RECORDINGS_DIR)"
            )
    return out


def _describe(st: os.stat_result) -> str:
    return f"uid {st.st_uid}, gid {st.st_gid}, mode {stat.S_IMODE(st.st_mode):o}"


def _log(folder: Path, problems: list[str]) -> None:
    for problem in problems:
        log.error("recordings folder: %s", problem, extra={"folder": str(folder)})
