"""The IVR flow language: pydantic models of a flow file, a holiday calendar and skill groups.

A flow file (``ivr_flows/<name>.yaml``) is one :class:`Flow`: flow-level
settings (the hotline numbers it answers, language and TTS voice, the
business-hours calendar, the satisfaction survey) and a mapping of node id
to node. Every node has a ``type`` (the discriminator of :data:`Node`) and
names the node(s) that follow it; nodes that end the IVR (``queue``,
``transfer``, ``voicemail``, ``hangup``, ``return``) name none.

The models are frozen: a loaded flow is never changed, so a call can keep
the object it started with while a newer version is loaded beside it.

``python -m telephony.ivr.schema`` (or :func:`write_json_schema`) writes
``ivr_flows/flow.schema.json`` so that editors can validate flow files; a
test checks that the committed file equals the generated one.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    GetJsonSchemaHandler,
    field_validator,
    model_validator,
)
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema

#: A node id: letters, digits, ``_``, ``-`` and ``.``, starting with a letter or ``_``.
NODE_ID_PATTERN = r"^[A-Za-z_][A-Za-z0-9_.-]{0,63}$"
#: A variable name (usable in ``${name}`` templates).
VARIABLE_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]{0,63}$"
#: One telephone key.
DTMF_KEY_PATTERN = r"^[0-9*#]$"

NodeId = Annotated[str, Field(pattern=NODE_ID_PATTERN, description="id of a node of this flow")]
VariableName = Annotated[str, Field(pattern=VARIABLE_PATTERN)]
Seconds = Annotated[float, Field(gt=0, le=120)]

SayKind = Literal["number", "digits", "telephone", "currency", "date", "time"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, coerce_numbers_to_str=True)


# -- prompts ------------------------------------------------------------------------------


class Prompt(_Model):
    """What the caller hears: a recorded file, TTS text, or a number said by FreeSWITCH.

    Exactly one of ``file``, ``text`` and ``say`` is given. A plain string is
    short for ``{file: ...}``. A relative ``file`` is resolved against the
    flows folder; ``tone_stream://``, ``silence_stream://`` and other
    FreeSWITCH URLs are passed through. ``text`` and ``say`` may hold
    ``${variable}`` templates.
    """

    file: str | None = Field(default=None, description="audio file, relative to the flows folder")
    text: str | None = Field(default=None, description="text read by the TTS engine")
    say: str | None = Field(
        default=None, description="a value FreeSWITCH says (mod_say), e.g. ${ticket}"
    )
    kind: SayKind = Field(
        default="digits", description="how `say` is read: digit by digit, as a number..."
    )
    engine: str | None = Field(
        default=None, description="TTS engine (default: the flow's tts.engine)"
    )
    voice: str | None = Field(default=None, description="TTS voice (default: the flow's tts.voice)")

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, data: Any) -> Any:
        if isinstance(data, str):
            return {"file": data}
        if not isinstance(data, dict | Prompt):
            raise ValueError("a prompt is a file path, or {file: ...}, {text: ...} or {say: ...}")
        return data

    @model_validator(mode="after")
    def _exactly_one(self) -> Prompt:
        given = [n for n in ("file", "text", "say") if getattr(self, n) not in (None, "")]
        if len(given) != 1:
            raise ValueError("a prompt needs exactly one of file, text or say")
        return self

    @classmethod
    def __get_pydantic_json_schema__(
        cls, core_schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        """A prompt in JSON Schema: a string (a file) or the object."""
        schema = handler.resolve_ref_schema(handler(core_schema))
        return {
            "anyOf": [
                {"type": "string", "description": "an audio file (short for {file: ...})"},
                schema,
            ]
        }

    @property
    def what(self) -> Literal["file", "text", "say"]:
        """Which kind of prompt this is."""
        if self.file:
            return "file"
        return "text" if self.text else "say"


class Tts(_Model):
    """The text-to-speech engine and voice (a Chinese TTS module plugs in here)."""

    engine: str = Field(default="tts_commandline", description="FreeSWITCH speech module")
    voice: str = Field(default="zh-CN", description="voice name the module understands")


# -- nodes --------------------------------------------------------------------------------


class _Node(_Model):
    title: str = Field(default="", description="a note for designers; shown by `ivr simulate`")


class PlayNode(_Node):
    """Play a prompt (file, TTS text or a said value), then go on."""

    type: Literal["play"]
    prompt: Prompt
    next: NodeId | None = Field(
        default=None, description="the next node; none ends the call (warning)"
    )


class SpeakNode(_Node):
    """Read text with the TTS engine (the flow's, or this node's engine and voice)."""

    type: Literal["speak"]
    text: str
    engine: str | None = None
    voice: str | None = None
    next: NodeId | None = None


class SayNode(_Node):
    """Have FreeSWITCH say a value (mod_say): a number, digits, a telephone number..."""

    type: Literal["say"]
    value: str = Field(description="the value or a ${variable} template")
    kind: SayKind = "digits"
    next: NodeId | None = None


class MenuNode(_Node):
    """Play a prompt and wait for one key; each key leads to a node.

    After an invalid key the ``invalid_prompt`` is played, after silence the
    ``timeout_prompt``; the menu is tried ``retries`` more times, then the
    call goes to ``fallback`` (or is hung up when there is none: a warning).
    """

    type: Literal["menu"]
    prompt: Prompt
    options: dict[Annotated[str, Field(pattern=DTMF_KEY_PATTERN)], NodeId] = Field(min_length=1)
    invalid_prompt: Prompt | None = None
    timeout_prompt: Prompt | None = None
    timeout: Seconds = Field(default=5.0, description="seconds to wait for a key after the prompt")
    retries: int = Field(default=2, ge=0, le=9, description="tries after the first one")
    fallback: NodeId | None = None
    variable: VariableName | None = Field(default=None, description="store the key pressed here")


class CollectNode(_Node):
    """Collect a string of digits (an ID number, a ticket number) into a variable.

    The input must have ``min_length``..``max_length`` digits and, when a
    ``pattern`` (a Python regular expression, matched in full) is given,
    match it; otherwise ``invalid_prompt`` is played and the caller tries
    again, ``retries`` more times, then ``fallback``.
    """

    type: Literal["collect"]
    prompt: Prompt
    variable: VariableName
    min_length: int = Field(default=1, ge=1, le=128)
    max_length: int = Field(default=20, ge=1, le=128)
    terminators: str = Field(
        default="#", pattern=r"^[0-9*#]{0,4}$", description="keys that end input"
    )
    timeout: Seconds = 5.0
    inter_digit_timeout: Seconds = 3.0
    pattern: str | None = Field(
        default=None, description="regular expression the digits must match"
    )
    invalid_prompt: Prompt | None = None
    timeout_prompt: Prompt | None = None
    retries: int = Field(default=2, ge=0, le=9)
    next: NodeId | None = None
    fallback: NodeId | None = None

    @model_validator(mode="after")
    def _lengths(self) -> CollectNode:
        if self.min_length > self.max_length:
            raise ValueError("min_length is greater than max_length")
        return self


class SetNode(_Node):
    """Set variables (values may use ``${other}`` templates)."""

    type: Literal["set"]
    values: dict[VariableName, str] = Field(min_length=1)
    next: NodeId | None = None


class Case(_Model):
    """One test of a ``branch``: exactly one of ``equals``, ``one_of``, ``matches``, ``empty``."""

    equals: str | None = None
    one_of: list[str] | None = None
    matches: str | None = Field(
        default=None, description="regular expression, searched in the value"
    )
    empty: bool | None = None
    next: NodeId

    @model_validator(mode="after")
    def _one_test(self) -> Case:
        names = ("equals", "one_of", "matches", "empty")
        tests = [t for t in names if getattr(self, t) is not None]
        if len(tests) != 1:
            raise ValueError("a case needs exactly one of equals, one_of, matches or empty")
        return self


class BranchNode(_Node):
    """Test a variable; the first case that holds gives the next node, else ``default``."""

    type: Literal["branch"]
    variable: VariableName
    cases: list[Case] = Field(min_length=1)
    default: NodeId


class BusinessHoursNode(_Node):
    """Branch on the calendar: open hours, closed hours, or a public holiday."""

    type: Literal["business_hours"]
    calendar: str | None = Field(
        default=None, description="calendar id (default: the flow's calendar)"
    )
    open: NodeId
    closed: NodeId
    holiday: NodeId | None = Field(default=None, description="on a holiday (default: closed)")


class BlockedCheckNode(_Node):
    """Check the caller against the blocked numbers (拦截恶意号码)."""

    type: Literal["blocked_check"]
    prompt: Prompt | None = Field(
        default=None, description="played to a blocked caller before `blocked` (or the end)"
    )
    blocked: NodeId | None = Field(
        default=None, description="where a blocked caller goes (default: end)"
    )
    next: NodeId


class QueueNode(_Node):
    """End the IVR: queue the call in a skill group with a priority (higher is served first)."""

    type: Literal["queue"]
    group: str
    priority: int = Field(default=0, ge=0, le=9)
    prompt: Prompt | None = None


class TransferNode(_Node):
    """End the IVR: transfer the call to an outside number."""

    type: Literal["transfer"]
    number: str = Field(description="digits (or a ${variable} template)")
    prompt: Prompt | None = None


class VoicemailNode(_Node):
    """End the IVR: take a voice message for a mailbox, then say goodbye.

    When the message cannot be recorded (the switch cannot write the
    voice-message folder), the caller hears ``failed_prompt`` and the call goes
    on at ``fallback`` (for example a queue), or is hung up when there is none.
    """

    type: Literal["voicemail"]
    prompt: Prompt
    mailbox: str = "general"
    max_seconds: int = Field(default=120, ge=5, le=600)
    beep: bool = True
    goodbye: Prompt | None = None
    failed_prompt: Prompt | None = Field(
        default=None, description="played when the message cannot be recorded"
    )
    fallback: NodeId | None = Field(
        default=None,
        description="where the call goes when the message cannot be recorded (none: hang up)",
    )


class HangupNode(_Node):
    """End the call, after an optional goodbye prompt."""

    type: Literal["hangup"]
    goodbye: Prompt | None = None
    reason: str = "normal"


class SubflowNode(_Node):
    """Run another flow of the set; its ``return`` node comes back to ``next``."""

    type: Literal["subflow"]
    flow: str
    next: NodeId | None = None


class ReturnNode(_Node):
    """Return from a sub-flow to the caller flow's ``next``."""

    type: Literal["return"]


Node = Annotated[
    PlayNode
    | SpeakNode
    | SayNode
    | MenuNode
    | CollectNode
    | SetNode
    | BranchNode
    | BusinessHoursNode
    | BlockedCheckNode
    | QueueNode
    | TransferNode
    | VoicemailNode
    | HangupNode
    | SubflowNode
    | ReturnNode,
    Field(discriminator="type"),
]

#: Nodes after which the IVR is over (or, for ``return``, the sub-flow).
TERMINAL_TYPES = frozenset({"queue", "transfer", "voicemail", "hangup", "return"})


# -- flow ---------------------------------------------------------------------------------


class Survey(_Model):
    """The satisfaction survey (按键满意率): played when the agent hangs up first, and the
    entry point of a follow-up call (回访) from the hotline's number, ``greeting`` first."""

    greeting: Prompt | None = Field(
        default=None, description="played first (a follow-up call's introduction)"
    )
    prompt: Prompt
    min_score: int = Field(default=1, ge=0, le=9)
    max_score: int = Field(default=5, ge=0, le=9)
    invalid_prompt: Prompt | None = None
    timeout: Seconds = 8.0
    retries: int = Field(default=1, ge=0, le=5)
    thanks: Prompt | None = None

    @model_validator(mode="after")
    def _scale(self) -> Survey:
        if self.min_score >= self.max_score:
            raise ValueError("min_score must be less than max_score")
        return self


class Flow(_Model):
    """One IVR flow (one file)."""

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        coerce_numbers_to_str=True,
        title="IVR flow",
        json_schema_extra={"$schema": "https://json-schema.org/draft/2020-12/schema"},
    )

    name: str = Field(default="", description="human-readable name")
    description: str = ""
    hotlines: list[Annotated[str, Field(pattern=r"^[0-9]{3,20}$")]] = Field(
        default_factory=list,
        description="numbers this flow answers (one flow per number in the whole set)",
    )
    language: str = "zh-CN"
    say_module: str = Field(default="zh", description="FreeSWITCH mod_say language module")
    tts: Tts = Field(default_factory=Tts)
    timezone: str = "Asia/Shanghai"
    calendar: str | None = Field(default=None, description="id of a calendar in calendars/")
    survey: Survey | None = None
    variables: dict[VariableName, str] = Field(default_factory=dict)
    max_steps: int = Field(default=200, ge=10, le=10_000, description="safety limit per call")
    start: NodeId
    nodes: dict[Annotated[str, Field(pattern=NODE_ID_PATTERN)], Node] = Field(min_length=1)

    @field_validator("timezone")
    @classmethod
    def _tz(cls, value: str) -> str:
        from zoneinfo import ZoneInfo

        try:
            ZoneInfo(value)
        except Exception as exc:
            raise ValueError(f"unknown time zone {value!r}") from exc
        return value


# -- calendars and skill groups -----------------------------------------------------------

_RANGE = re.compile(r"^([01][0-9]|2[0-3]):([0-5][0-9])-([01][0-9]|2[0-4]):([0-5][0-9])$")
Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
WEEKDAYS: tuple[Weekday, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


class Holiday(_Model):
    """A public holiday (one day, or ``from``..``to`` inclusive)."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    name: str
    start: dt.date = Field(alias="from")
    end: dt.date | None = Field(default=None, alias="to")

    def covers(self, day: dt.date) -> bool:
        """Whether ``day`` is in this holiday."""
        return self.start <= day <= (self.end or self.start)


class Calendar(_Model):
    """Business hours by weekday, public holidays and adjusted working days (调休)."""

    name: str = ""
    source: str = Field(default="", description="where the holiday dates come from")
    timezone: str = "Asia/Shanghai"
    weekly: dict[Weekday, list[str]] = Field(
        description='open hours per weekday, e.g. mon: ["08:30-17:30"]'
    )
    holidays: list[Holiday] = Field(default_factory=list)
    workdays: list[dt.date] = Field(
        default_factory=list, description="weekend days that are working days (Monday's hours)"
    )

    @field_validator("weekly")
    @classmethod
    def _ranges(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        for day, ranges in value.items():
            for r in ranges:
                m = _RANGE.match(r)
                if not m or (m.group(1), m.group(2)) >= (m.group(3), m.group(4)):
                    raise ValueError(f"{day}: {r!r} is not a range like 08:30-17:30")
        return value

    def state(self, when: dt.datetime) -> tuple[Literal["open", "closed", "holiday"], str]:
        """Whether ``when`` (aware; converted to the calendar's zone) is open; and the holiday."""
        from zoneinfo import ZoneInfo

        local = when.astimezone(ZoneInfo(self.timezone))
        day = local.date()
        for holiday in self.holidays:
            if holiday.covers(day):
                return "holiday", holiday.name
        weekday = WEEKDAYS[day.weekday()]
        ranges = self.weekly.get("mon", []) if day in self.workdays else self.weekly.get(weekday)
        hhmm = local.strftime("%H:%M")
        for r in ranges or []:
            start, end = r.split("-")
            if start <= hhmm < end:
                return "open", ""
        return "closed", ""


class SkillGroupRef(_Model):
    """A skill group that flows may queue into (the engine's groups, by id)."""

    id: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    name: str = ""


class SkillGroupsFile(_Model):
    """``skill_groups.yaml``: the groups flows may name (``general`` always exists)."""

    skill_groups: list[SkillGroupRef]


# -- JSON Schema --------------------------------------------------------------------------


def flow_json_schema() -> dict[str, Any]:
    """The JSON Schema of a flow file."""
    schema = Flow.model_json_schema(by_alias=True)
    schema["$id"] = "https://12345.example/ivr/flow.schema.json"
    return schema


def render_json_schema() -> str:
    """The committed text of ``ivr_flows/flow.schema.json``."""
    return json.dumps(flow_json_schema(), ensure_ascii=False, indent=2, sort_keys=True) + "\n"


def write_json_schema(path: Path) -> None:
    """Write the flow JSON Schema to ``path``."""
    path.write_text(render_json_schema(), encoding="utf-8")


if __name__ == "__main__":  # pragma: no cover
    import sys

    target = Path(sys.argv[1] if len(sys.argv) > 1 else "ivr_flows/flow.schema.json")
    write_json_schema(target)
    print(f"wrote {target}")
