"""Callback and follow-up tasks, their attempts, the dispositions and the rules.

Theory of operation
-------------------
A *task* is one number to call from a hotline's number: a ``callback`` (回拨)
of a citizen's missed calls (repeats within the merge window join the same
task), or a ``survey`` (回访) of a campaign. States (the API's
``callback_state``)::

    pending       due at next_at (quiet hours and retries move next_at)
    dialing       an attempt is running (its row was written before dialling)
    reached       the citizen answered (an agent talked to them / the survey played)
    failed        the attempt limit was used up, or the number does not exist
    not_required  never to be called: a blocked number, or the citizen got through

Events: ``claim`` (pending → dialing), ``reached``, ``retry`` (dialing →
pending, next_at from the schedule of the disposition), ``give_up`` (dialing
→ failed), ``release`` (dialing → pending: the engine refused before anything
was dialled, no attempt counted), ``not_required`` (pending → not_required),
``merge`` (a repeated missed call: pending or dialing, unchanged).

An *attempt* is one call: ``dialing`` → ``end`` → ``ended``, or, when the
controller restarted during it, ``interrupt`` → ``interrupted`` (recorded once,
by the recovery at the next start; the task then goes on as after any attempt).

Dispositions come from the hang-up cause (``outbound_dispositions``):
USER_BUSY ``busy``, NO_ANSWER ``no_answer``, CALL_REJECTED ``rejected``,
UNALLOCATED_NUMBER ``unallocated`` (final: never retried), ``agent_missed``
(the agent's phone was not answered: the citizen was not dialled), and
``error`` for the rest. Each is retried after its own delays, up to the limit.
"""

from __future__ import annotations

import datetime as dt
from enum import Enum
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field, field_validator

from telephony.fsm import Machine, Rule


class TaskState(Enum):
    PENDING = "pending"
    DIALING = "dialing"
    REACHED = "reached"
    FAILED = "failed"
    NOT_REQUIRED = "not_required"


class TaskInput(Enum):
    CLAIM = "claim"
    REACHED = "reached"
    RETRY = "retry"
    GIVE_UP = "give_up"
    RELEASE = "release"
    NOT_REQUIRED = "not_required"
    MERGE = "merge"


T, TI = TaskState, TaskInput

TASK_MACHINE: Machine[TaskState, TaskInput, None] = Machine(
    "outbound task",
    {
        (T.PENDING, TI.CLAIM): Rule(T.DIALING),
        (T.DIALING, TI.REACHED): Rule(T.REACHED),
        (T.DIALING, TI.RETRY): Rule(T.PENDING),
        (T.DIALING, TI.GIVE_UP): Rule(T.FAILED),
        (T.DIALING, TI.RELEASE): Rule(T.PENDING),
        (T.PENDING, TI.NOT_REQUIRED): Rule(T.NOT_REQUIRED),
        (T.PENDING, TI.MERGE): Rule(T.PENDING),
        (T.DIALING, TI.MERGE): Rule(T.DIALING),
    },
)

#: A task in one of these takes the citizen's next missed call (merge).
OPEN_STATES = (TaskState.PENDING.value, TaskState.DIALING.value)


class AttemptState(Enum):
    DIALING = "dialing"
    ENDED = "ended"
    INTERRUPTED = "interrupted"


class AttemptInput(Enum):
    END = "end"
    INTERRUPT = "interrupt"


ATTEMPT_MACHINE: Machine[AttemptState, AttemptInput, None] = Machine(
    "outbound attempt",
    {
        (AttemptState.DIALING, AttemptInput.END): Rule(AttemptState.ENDED),
        (AttemptState.DIALING, AttemptInput.INTERRUPT): Rule(AttemptState.INTERRUPTED),
    },
)


def next_state(state: str, event: TaskInput, subject: str) -> str:
    """Apply ``event`` to a stored task state; raises IllegalTransition (logged)."""
    return TASK_MACHINE.apply(subject, TaskState(state), event).target.value


def attempt_state(state: str, event: AttemptInput, subject: str) -> str:
    """Apply ``event`` to a stored attempt state; raises IllegalTransition (logged)."""
    return ATTEMPT_MACHINE.apply(subject, AttemptState(state), event).target.value


class Disposition(Enum):
    ANSWERED = "answered"
    BUSY = "busy"
    NO_ANSWER = "no_answer"
    REJECTED = "rejected"
    UNALLOCATED = "unallocated"
    AGENT_MISSED = "agent_missed"
    INTERRUPTED = "interrupted"
    ERROR = "error"


_BY_CAUSE = {
    "USER_BUSY": Disposition.BUSY,
    "NO_ANSWER": Disposition.NO_ANSWER,
    "NO_USER_RESPONSE": Disposition.NO_ANSWER,
    "CALL_REJECTED": Disposition.REJECTED,
    "UNALLOCATED_NUMBER": Disposition.UNALLOCATED,
    "INVALID_NUMBER_FORMAT": Disposition.UNALLOCATED,
    "NO_ROUTE_DESTINATION": Disposition.UNALLOCATED,
}

#: Dispositions after which the number is never called again.
FINAL = frozenset({Disposition.UNALLOCATED})


def disposition_of(cause: str | None) -> Disposition:
    """The disposition of a call the citizen did not answer, from its hang-up cause."""
    word = (cause or "").removeprefix("-ERR").strip().upper()
    return _BY_CAUSE.get(word, Disposition.ERROR)


#: What a missed call is by default: the citizen asked for an agent and none answered
#: (the flows queue the call at once, so that is ``abandoned_in_queue``), the system lost
#: or refused the call, or the citizen left a voice message. A citizen who hangs up in
#: the IVR (``abandoned_in_ivr``) mostly heard what they called for; a hotline whose
#: rules say otherwise lists it.
DEFAULT_OUTCOMES = ("abandoned_in_queue", "refused", "lost", "voicemail")


class Rules(BaseModel):
    """A hotline's callback rules, stored as data (``outbound_rules.rules``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    outcomes: tuple[str, ...] = Field(
        default=DEFAULT_OUTCOMES, description="CDR outcomes that are missed calls"
    )
    merge_window_seconds: float = Field(
        default=3600.0, ge=0, description="a citizen's calls this close join one callback"
    )
    quiet_hours: str | None = Field(
        default="21:00-08:00", description="local HH:MM-HH:MM when nobody is called"
    )
    timezone: str = "Asia/Shanghai"
    skill_group: str = "general"
    max_attempts: int = Field(default=3, ge=1, le=20)
    retry_seconds: dict[str, tuple[float, ...]] = Field(
        default_factory=lambda: {
            "busy": (300.0, 900.0),
            "no_answer": (600.0, 1800.0),
            "rejected": (3600.0,),
            "agent_missed": (30.0,),
            "interrupted": (60.0,),
            "error": (300.0,),
        },
        description="delays before the next attempt by disposition (the last one repeats)",
    )

    @field_validator("quiet_hours")
    @classmethod
    def _range(cls, value: str | None) -> str | None:
        if value:
            quiet_window(value)
        return value or None

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        ZoneInfo(value)
        return value

    def delay(self, disposition: Disposition, attempt: int) -> float:
        """Seconds before the next attempt after the ``attempt``-th (1-based) one."""
        delays = self.retry_seconds.get(disposition.value) or self.retry_seconds.get("error")
        if not delays:
            return 300.0
        return delays[min(attempt, len(delays)) - 1]

    def quiet_until(self, now: dt.datetime) -> dt.datetime | None:
        """When the quiet hours around ``now`` end (None: not quiet now)."""
        if not self.quiet_hours:
            return None
        start, end = quiet_window(self.quiet_hours)
        local = now.astimezone(ZoneInfo(self.timezone))
        at = local.time()
        inside = (start <= at < end) if start < end else (at >= start or at < end)
        if not inside:
            return None
        day = local.date() if at < end else local.date() + dt.timedelta(days=1)
        return dt.datetime.combine(day, end, local.tzinfo).astimezone(dt.UTC)


def quiet_window(text: str) -> tuple[dt.time, dt.time]:
    """``HH:MM-HH:MM`` as two times; ValueError when malformed or empty."""
    first, sep, second = text.partition("-")
    if not sep:
        raise ValueError(f"{text!r} is not HH:MM-HH:MM")
    start, end = dt.time.fromisoformat(first.strip()), dt.time.fromisoformat(second.strip())
    if start == end:
        raise ValueError(f"{text!r} is an empty range")
    return start, end


def after_attempt(rules: Rules, attempts: int, disposition: Disposition) -> tuple[TaskInput, float]:
    """What a task does after its ``attempts``-th attempt ended so: the event, and the
    delay before the next attempt (for ``retry``)."""
    if disposition is Disposition.ANSWERED:
        return TaskInput.REACHED, 0.0
    if disposition in FINAL or attempts >= rules.max_attempts:
        return TaskInput.GIVE_UP, 0.0
    return TaskInput.RETRY, rules.delay(disposition, attempts)
