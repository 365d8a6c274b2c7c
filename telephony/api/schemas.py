"""Request and response bodies of the HTTP API (documented in ``/openapi.json``).

Every input field's type comes from :mod:`telephony.api.validation`, which
keeps each within what its column stores.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

from telephony.acd.agent_state import Agent
from telephony.api.validation import (
    MAX_SKILLS,
    Area,
    BlockReason,
    Extension,
    Identifier,
    JsonObject,
    Name,
    Reason,
)

#: Ids and extensions end up in FreeSWITCH commands: only safe characters.
AgentId = Identifier
GroupId = Identifier
SkillLevel = Annotated[int, Field(ge=1, le=100)]
Skills = Annotated[
    dict[GroupId, SkillLevel],
    Field(max_length=MAX_SKILLS, description=f"skill-group id -> level, at most {MAX_SKILLS}"),
]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class AgentCreate(_Strict):
    """A new agent seat. ``skills`` maps a skill-group id to a level (higher serves first)."""

    id: AgentId
    name: Name
    extension: Extension
    area: Area | None = None
    skills: Skills = Field(default_factory=dict)


class AgentUpdate(_Strict):
    """Fields to change; absent fields stay. ``area: null`` clears the area."""

    name: Name | None = None
    extension: Extension | None = None
    area: Area | None = None
    skills: Skills | None = None


class BusyRequest(_Strict):
    """置忙: why the agent stops taking calls (a break, a meeting, training, ...)."""

    reason: Reason


class AgentView(BaseModel):
    """An agent and its live state."""

    id: str
    name: str
    extension: str
    area: str | None
    skills: dict[str, int]
    state: str
    reason: str | None
    since: datetime
    pending: str | None = Field(
        description="a deferred request (set_busy or sign_out) applied when wrap-up ends"
    )

    @classmethod
    def of(cls, agent: Agent) -> AgentView:
        """The view of a roster agent."""
        return cls(
            id=agent.id,
            name=agent.name,
            extension=agent.extension,
            area=agent.area,
            skills=dict(agent.skills),
            state=agent.state.value,
            reason=agent.reason,
            since=datetime.fromtimestamp(agent.since, UTC),
            pending=agent.deferred[0].value if agent.deferred else None,
        )


class AgentList(BaseModel):
    """Agents visible to the caller."""

    agents: list[AgentView]


class StateChangeReply(BaseModel):
    """The result of sign-in / sign-out / busy / idle."""

    agent: AgentView
    deferred: bool = Field(
        description="true when the request waits for the current call and wrap-up to end"
    )
    detail: str


class LiveCallView(BaseModel):
    """A call in progress."""

    uuid: str
    node: str
    caller: str
    hotline: str
    state: str
    area: str | None
    skill_group_id: str | None
    agent_id: str | None
    arrived_at: datetime
    answered_at: datetime | None


class LiveCallList(BaseModel):
    """Calls in progress visible to the caller."""

    calls: list[LiveCallView]


class CallRecordView(BaseModel):
    """A call detail record (CDR)."""

    model_config = ConfigDict(from_attributes=True)

    uuid: str
    node: str | None
    hotline: str | None
    caller: str | None
    arrived_at: datetime
    ivr_answered_at: datetime | None
    queued_at: datetime | None
    agent_answered_at: datetime | None
    ended_at: datetime | None
    wait_seconds: float | None
    talk_seconds: float | None
    agent_id: str | None
    skill_group_id: str | None
    hung_up_by: str | None
    hangup_cause: str | None
    outcome: str | None
    recording_id: str | None
    survey_score: int | None
    ivr_path: str | None


class CallEventView(BaseModel):
    """One entry of a call's timeline."""

    at: datetime
    kind: str
    detail: dict[str, Any]


class CallRecordPage(BaseModel):
    """One page of call records, newest first; ``total`` counts every match."""

    records: list[CallRecordView]
    total: int
    limit: int
    offset: int


class CallRecordDetail(CallRecordView):
    """A call record with its timeline, oldest event first."""

    timeline: list[CallEventView]


class SkillGroupCreate(_Strict):
    """A new skill group (queue)."""

    id: AgentId
    name: Name
    area: Area | None = None
    service_level_seconds: Annotated[int, Field(ge=1, le=3600)] = 30
    ring_timeout_seconds: Annotated[int, Field(ge=1, le=300)] = 15
    overflow_group_id: GroupId | None = Field(
        default=None, description="where calls go when this group cannot serve them"
    )
    settings: JsonObject = Field(default_factory=dict, description="routing rules")


class SkillGroupUpdate(_Strict):
    """Fields to change; absent fields stay; ``overflow_group_id: null`` removes the overflow."""

    name: Name | None = None
    area: Area | None = None
    service_level_seconds: Annotated[int, Field(ge=1, le=3600)] | None = None
    ring_timeout_seconds: Annotated[int, Field(ge=1, le=300)] | None = None
    overflow_group_id: GroupId | None = None
    settings: JsonObject | None = None


class SkillGroupView(BaseModel):
    """A skill group."""

    id: str
    name: str
    area: str | None
    service_level_seconds: int
    ring_timeout_seconds: int
    overflow_group_id: str | None
    settings: dict[str, Any]


class SkillGroupList(BaseModel):
    """Skill groups visible to the caller."""

    groups: list[SkillGroupView]


PhoneNumber = Annotated[str, Field(pattern=r"^\+?[0-9]{3,20}$", description="digits, maybe +")]


class BlockedNumberCreate(_Strict):
    """A number whose calls are to be refused (拦截恶意号码)."""

    number: PhoneNumber
    reason: BlockReason | None = None


class BlockedNumberView(BaseModel):
    """A blocked number, who blocked it, when and why."""

    number: str
    reason: str | None
    created_by: str | None
    created_at: datetime


class BlockedNumberList(BaseModel):
    """Blocked numbers, by number."""

    numbers: list[BlockedNumberView]
