"""Checks at the API edge: no request may make PostgreSQL refuse a row, or the API answer 500.

What the database (or the driver on the way to it) refuses, and so what is
refused here first, with a 422 that names the field and says why:

* a NUL character (U+0000) in text or JSONB, and a lone surrogate (JSON
  ``"\\ud800"``), which is not Unicode and cannot be sent as UTF-8;
* more characters than the column holds (``varchar(n)``; the limits below
  follow ``telephony/store/models.py``);
* an integer outside ``bigint`` (offsets) or a JSON number PostgreSQL cannot
  store (NaN, Infinity);
* a date whose UTC time falls outside the years 1 to 9999 (``0001-01-01T00:00+01:00``);
* more values than a statement can carry (PostgreSQL binds at most 32,767
  parameters; an agent has at most :data:`MAX_SKILLS` skills).

A buffered write (an agent's state change) would not even fail the request:
the write buffer drops a row the database refuses, after the API said 200.
So single-line labels (names, reasons, areas) also refuse control characters.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator, Field
from pydantic_core import PydanticCustomError

from telephony.auth import normalize_area

INT64_MAX = 2**63 - 1
INT64_MIN = -(2**63)
#: Skills of one agent (``agent_skills`` rows): far above any real seat, far below 32,767.
MAX_SKILLS = 256
#: A skill group's ``settings`` (routing rules, JSONB): nesting depth and serialized size.
MAX_SETTINGS_DEPTH = 16
MAX_SETTINGS_BYTES = 64 * 1024

_NOT_TEXT = re.compile("[\x00\ud800-\udfff]")
_CONTROL = re.compile("[\x00-\x1f\x7f]")
_IDENTIFIER = r"^[A-Za-z0-9_.\-]+$"


def _text_error(value: str, where: str = "") -> PydanticCustomError | None:
    bad = _NOT_TEXT.search(value)
    if bad is None:
        return None
    if bad.group() == "\x00":
        return PydanticCustomError(
            "nul_character", f"{where}must not contain NUL (\\x00) characters"
        )
    return PydanticCustomError(
        "invalid_unicode", f"{where}must be valid Unicode (found a lone surrogate)"
    )


def check_text(value: str) -> str:
    """Text PostgreSQL stores: no NUL, no lone surrogate."""
    error = _text_error(value)
    if error is not None:
        raise error
    return value


def check_label(value: str) -> str:
    """A one-line label (name, reason, area): storable text without control characters."""
    check_text(value)
    if _CONTROL.search(value):
        raise PydanticCustomError(
            "control_character", "must be one line without control characters"
        )
    return value


def _trim_area(value: Any) -> Any:
    return normalize_area(value) if isinstance(value, str) else value


def _check_area(value: str) -> str:
    check_label(value)
    if "," in value:
        raise PydanticCustomError("area_comma", "an area name may not contain a comma")
    return value


def _utc(value: datetime) -> datetime:
    """An aware datetime in UTC (a naive one is taken as UTC already)."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise PydanticCustomError(
            "datetime_out_of_range", "out of range: in UTC it must fall within the years 1 to 9999"
        ) from None


def _json_error(value: Any, path: str, depth: int) -> PydanticCustomError | None:
    where = f"{path}: " if path else ""
    if depth > MAX_SETTINGS_DEPTH:
        return PydanticCustomError(
            "json_too_deep", f"{where}nested deeper than {MAX_SETTINGS_DEPTH} levels"
        )
    if isinstance(value, str):
        return _text_error(value, where)
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        if not INT64_MIN <= value <= INT64_MAX:
            return PydanticCustomError("int_out_of_range", f"{where}integers must fit in 64 bits")
        return None
    if isinstance(value, float):
        if not math.isfinite(value):
            return PydanticCustomError(
                "number_not_finite", f"{where}numbers must be finite (no NaN or Infinity)"
            )
        return None
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str):
                return PydanticCustomError("json_key", f"{where}keys must be strings")
            error = _text_error(key, f"{path}: key " if path else "key ")
            error = error or _json_error(item, f"{path}.{key}" if path else key, depth + 1)
            if error is not None:
                return error
        return None
    if isinstance(value, list | tuple):
        for index, item in enumerate(value):
            error = _json_error(item, f"{path}[{index}]", depth + 1)
            if error is not None:
                return error
        return None
    return PydanticCustomError("json_type", f"{where}not a JSON value")


def check_json_object(value: dict[str, Any]) -> dict[str, Any]:
    """A JSON object PostgreSQL stores as JSONB, within the size and depth limits."""
    error = _json_error(value, "", 1)
    if error is not None:
        raise error
    size = len(json.dumps(value, ensure_ascii=False).encode())
    if size > MAX_SETTINGS_BYTES:
        raise PydanticCustomError(
            "json_too_large", f"at most {MAX_SETTINGS_BYTES} bytes as JSON (got {size})"
        )
    return value


#: Ids (agents, skill groups) and what refers to them: they end up in FreeSWITCH commands.
Identifier = Annotated[str, Field(min_length=1, max_length=64, pattern=_IDENTIFIER)]
Extension = Annotated[str, Field(min_length=1, max_length=32, pattern=r"^[A-Za-z0-9_.+\-]+$")]
#: An area; surrounding whitespace is trimmed (:func:`telephony.auth.normalize_area`).
Area = Annotated[
    str,
    BeforeValidator(_trim_area),
    Field(min_length=1, max_length=64, description="an area name (trimmed; no commas)"),
    AfterValidator(_check_area),
]
Name = Annotated[str, Field(min_length=1, max_length=128), AfterValidator(check_label)]
Reason = Annotated[str, Field(min_length=1, max_length=128), AfterValidator(check_label)]
BlockReason = Annotated[str, Field(max_length=256), AfterValidator(check_label)]
#: Query-string text compared with a column of ``max_length`` characters.
Query64 = Annotated[str, Field(max_length=64), AfterValidator(check_text)]
Query32 = Annotated[str, Field(max_length=32), AfterValidator(check_text)]
UtcDatetime = Annotated[datetime, AfterValidator(_utc)]
JsonObject = Annotated[
    dict[str, Any],
    AfterValidator(check_json_object),
    Field(
        description=f"a JSON object: no NUL characters, finite numbers, integers within 64 bits, "
        f"at most {MAX_SETTINGS_DEPTH} levels and {MAX_SETTINGS_BYTES} bytes"
    ),
]
