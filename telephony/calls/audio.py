"""What counts as a recording with audio: a file on disk with bytes past its WAV header.

Used where a recording is claimed (the engine, at RECORD_STOP) and where the switch's
ability to record is proved (:mod:`telephony.recording.probe`). ``stat()`` may block on
a shared mount: call :func:`file_size` off the event loop (``asyncio.to_thread``).
"""

from __future__ import annotations

from pathlib import Path

#: A WAV file with nothing but its header holds no audio.
WAV_HEADER_BYTES = 44


def file_size(path: Path) -> int | None:
    """The file's size, or None when it is not there (or cannot be read)."""
    try:
        return path.stat().st_size
    except OSError:
        return None


def has_audio(size: int | None) -> bool:
    """Whether a file of ``size`` bytes holds audio past its header."""
    return size is not None and size > WAV_HEADER_BYTES
