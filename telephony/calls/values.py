"""Values from the switch made safe to store: what a caller controls must not cost a row.

A caller ID, a hangup cause or a digit string comes from the network. PostgreSQL
refuses text with a NUL byte and strings longer than their column, and a refused
CDR is a lost call; so every such value is cleaned where it enters the domain.
"""

from __future__ import annotations

import unicodedata
import uuid
from typing import Any

from telephony.store.models import Call as CallRow
from telephony.store.models import CallLeg


def _length(column: Any) -> int:
    """A ``String(n)`` column's ``n`` (the schema says it once)."""
    return int(column.type.length)


#: The CDR's and the legs' column sizes: what a value from the switch is cut to.
NODE = _length(CallRow.__table__.c.node)
HOTLINE = _length(CallRow.__table__.c.hotline)
CALLER = _length(CallRow.__table__.c.caller)
CAUSE = _length(CallRow.__table__.c.hangup_cause)
DISPOSITION = _length(CallLeg.__table__.c.disposition)
REASON = _length(CallRow.__table__.c.recording_failed)
PATH = _length(CallRow.__table__.c.voicemail_path)
#: ``ivr_path`` is text; a flow's keys are never this many.
KEYS = 128


def clean(value: str | None, limit: int) -> str:
    """``value`` without control characters (NUL included), trimmed, cut to ``limit``."""
    if not value:
        return ""
    kept = "".join(c for c in value if unicodedata.category(c)[0] != "C" or c == " ")
    return kept.strip()[:limit]


def clean_or_none(value: str | None, limit: int) -> str | None:
    """As :func:`clean`, with None (or nothing left) as None."""
    return clean(value, limit) or None


def is_uuid(value: str) -> bool:
    """Whether ``value`` is a uuid (rows are keyed by the channels' uuids)."""
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True
