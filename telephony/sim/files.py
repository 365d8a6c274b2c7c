"""The simulated switch's file system access: who it runs as, what it may write, the WAVs it writes.

A packaged FreeSWITCH runs as its own user (``freeswitch``), not as the
control plane's; whether it can record into a folder is the kernel's
permission check for that user. The simulator runs in the same process (or on
the same host) as whoever starts it, often as root, so that check is
*modelled* here from the folder's ``stat``, as the kernel does it for a
non-root user (``generic_permission`` in fs/namei.c, ACLs left out):

* the owner's bits if the switch's uid owns the inode, else the group's bits
  if its gid (or a supplementary group) is the inode's group, else the
  others' bits;
* creating a file needs write and search (``wx``) on its folder and search
  (``x``) on every folder above; opening an existing file for writing needs
  write on the file itself (and search above);
* uid 0 passes every check (``CAP_DAC_OVERRIDE``).

The identity comes from ``api sim set switch_uid N`` / ``switch_gid N``
(``switch_groups`` a comma-separated list of supplementary gids). The default
is the simulator process's own identity, so that a folder the tests (or the
control plane in the same process) created is writable, as it was before the
identity existed; set them (e.g. 499/499, a packaged switch's unprivileged
user) to see what a switch running as another user sees.

What the switch writes is a real file: an 8 kHz mono 16-bit PCM WAV whose
data is a quiet 400 Hz tone (the "audio" of the simulated citizen and agent),
so a checker that looks for audio bytes past the 44-byte header finds them.
When the simulator can, the file is given to the switch's uid and the
folder's group (a setgid folder) or the switch's gid, as the switch's own
file would be.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import stat
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

WAV_HEADER_BYTES = 44
RATE = 8000
#: The most audio written per recording (one hour); longer recordings are cut there.
MAX_SAMPLES = RATE * 3600
#: One second of the tone, repeated to fill a recording.
_PERIOD = b"".join(
    struct.pack("<h", int(1200 * math.sin(2 * math.pi * 400 * i / RATE))) for i in range(RATE)
)

R, W, X = 4, 2, 1


@dataclass(frozen=True, slots=True)
class Identity:
    """The user the simulated switch runs as."""

    uid: int
    gid: int
    groups: frozenset[int] = frozenset()

    @property
    def gids(self) -> frozenset[int]:
        return self.groups | {self.gid}

    def may(self, st: os.stat_result, want: int) -> bool:
        """The kernel's DAC check of ``want`` (R|W|X bits) on an inode, for this identity."""
        if self.uid == 0:
            return True
        mode = st.st_mode
        if st.st_uid == self.uid:
            bits = (mode >> 6) & 7
        elif st.st_gid in self.gids:
            bits = (mode >> 3) & 7
        else:
            bits = mode & 7
        return bits & want == want


def identity(settings: Mapping[str, str]) -> Identity:
    """The switch's identity from ``sim set`` settings (default: this process's own)."""

    def number(name: str, default: int) -> int:
        value = settings.get(name, "")
        try:
            return int(value) if value != "" else default
        except ValueError:
            return default

    uid = number("switch_uid", os.geteuid())
    gid = number("switch_gid", os.getegid())
    if "switch_groups" in settings:
        text = settings["switch_groups"]
        groups = frozenset(int(g) for g in text.split(",") if g.strip().isdigit())
    elif "switch_uid" in settings or "switch_gid" in settings:
        groups = frozenset()  # another user: only its own group unless told otherwise
    else:
        groups = frozenset(os.getgroups())
    return Identity(uid, gid, groups)


def _stat(path: Path) -> os.stat_result | None:
    try:
        return path.stat()
    except OSError:
        return None


def can_search_to(folder: Path, who: Identity) -> bool:
    """Whether every folder from ``/`` down to ``folder`` (included) may be searched."""
    for part in [*reversed(folder.parents), folder]:
        st = _stat(part)
        if st is None or not stat.S_ISDIR(st.st_mode) or not who.may(st, X):
            return False
    return True


def can_write_file(path: Path, who: Identity) -> bool:
    """Whether ``open(path, O_WRONLY|O_CREAT|O_TRUNC)`` would succeed for ``who``.

    libsndfile (mod_sndfile) opens a recording that way: an existing file needs
    write permission on itself, a new one write and search on its folder.
    """
    folder = path.parent
    if not can_search_to(folder, who):
        return False
    st = _stat(path)
    if st is not None:
        return stat.S_ISREG(st.st_mode) and who.may(st, W)
    folder_st = _stat(folder)
    return folder_st is not None and who.may(folder_st, W | X)


def make_folders(folder: Path, who: Identity) -> bool:
    """``switch_dir_make_recursive(folder, 0750)``: create what is missing, as ``who`` could.

    True when the folder exists (or was created) and could be searched; a
    missing folder is created only when its nearest existing parent is
    writable by ``who`` (apr_dir_make_recursive stops at the first refusal).
    """
    missing: list[Path] = []
    here = folder
    while _stat(here) is None:
        missing.append(here)
        if here.parent == here:
            return False
        here = here.parent
    if not missing:
        return can_search_to(folder, who)
    if not can_search_to(here, who):
        return False
    for part in reversed(missing):
        parent_st = _stat(part.parent)
        if parent_st is None or not who.may(parent_st, W | X):
            return False
        try:
            part.mkdir(mode=0o750)
        except FileExistsError:
            continue
        except OSError:
            return False
        _give(part, who, parent_st)
    return True


def _give(path: Path, who: Identity, folder_st: os.stat_result | None) -> None:
    """Make ``path`` the switch's, as if the switch had created it (when we may chown)."""
    if os.geteuid() != 0 or who.uid == 0:
        return
    group = who.gid
    if folder_st is not None and folder_st.st_mode & stat.S_ISGID:
        group = folder_st.st_gid  # a setgid folder gives its group to new files
    with contextlib.suppress(OSError):
        os.chown(path, who.uid, group)


def wav_header(samples: int) -> bytes:
    """The 44-byte header of a mono 8 kHz 16-bit PCM WAV with ``samples`` samples."""
    data_len = samples * 2
    header = b"RIFF" + struct.pack("<I", 36 + data_len) + b"WAVEfmt "
    header += struct.pack("<IHHIIHH", 16, 1, 1, RATE, RATE * 2, 2, 16)
    return header + b"data" + struct.pack("<I", data_len)


def open_recording(path: Path, who: Identity) -> bool:
    """Create (truncate) the file as the switch does when a recording starts: header only."""
    existed = path.exists()
    try:
        with open(path, "wb") as f:
            f.write(wav_header(0))
    except OSError as exc:
        log.debug("recording file not writable", extra={"path": str(path), "error": str(exc)})
        return False
    if not existed:
        _give(path, who, _stat(path.parent))
    return True


def write_recording(path: Path, samples: int) -> int:
    """Write the recording's audio (a quiet tone) and its header; the file's size, or 0."""
    samples = max(0, min(samples, MAX_SAMPLES))
    data_len = samples * 2
    try:
        with open(path, "r+b" if path.exists() else "wb") as f:
            f.write(wav_header(samples))
            left = data_len
            while left > 0:
                chunk = _PERIOD[: min(left, len(_PERIOD))]
                f.write(chunk)
                left -= len(chunk)
            f.truncate(WAV_HEADER_BYTES + data_len)
    except OSError as exc:
        log.debug("recording not written", extra={"path": str(path), "error": str(exc)})
        return 0
    return WAV_HEADER_BYTES + data_len


def remove(path: Path) -> None:
    """``switch_file_remove``: a discarded (empty) recording goes away."""
    with contextlib.suppress(OSError):
        path.unlink()
