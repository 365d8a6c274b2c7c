"""The contracts' KPIs: each defined once, here, with the clause it comes from.

Every KPI is a fraction with its numerator and denominator (integers, never a
rounded percentage). Those counted from call detail records are two SQL
conditions on ``calls`` (:class:`CallKpi`): the denominator's rows, and the
numerator's among them; PostgreSQL counts both per interval and group in one
query (``count(*) FILTER (WHERE ...)``). 呼叫接入系统可用率 is counted from
the node connection history (:mod:`telephony.reports.availability`);
漏接回拨率 and 回访覆盖率 from the outbound rows (missed calls, callback and
follow-up tasks: :mod:`telephony.reports.outbound`).

Calls are counted in the interval of their arrival (``arrived_at``), in the
hotline's local time. Only citizens' calls count (``direction`` inbound or
not recorded); an agent's 外线拨打 is not a call to the hotline.

What the rows cannot tell is not excluded, and is said at each KPI: a traffic
surge (突发情况激增话务量) and a dissatisfaction not caused by the agent's
attitude (非服务态度引起的不满意) are not recorded in any row.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from fractions import Fraction
from typing import Any, cast

from sqlalchemy import ColumnElement, and_, func, literal, not_, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection

from telephony.calls.model import Outcome
from telephony.reports.availability import Uptime, system_uptime
from telephony.reports.outbound import OutboundCounts, OutboundRows
from telephony.reports.periods import Interval, Window, bucket
from telephony.store.models import Call, table_of

_CALLS = table_of(Call)
c = _CALLS.c


class Scope(Enum):
    """What the KPIs are grouped by."""

    ALL = "all"
    HOTLINE = "hotline"
    SKILL_GROUP = "skill_group"
    AGENT = "agent"


_GROUP_COLUMN: dict[Scope, ColumnElement[Any]] = {
    Scope.ALL: literal("all"),
    Scope.HOTLINE: c.hotline,
    Scope.SKILL_GROUP: c.skill_group_id,
    Scope.AGENT: c.agent_id,
}

#: 30秒接通率: answered within this many seconds of joining the queue.
ANSWER_WITHIN_SECONDS = 30
#: 人工接通率: a citizen who hangs up within this many seconds of asking for an agent is
#: not counted.
QUICK_HANG_UP_SECONDS = 20
#: 按键满意率: the lowest key that means 满意 on the flows' survey scale (1 to 5, 5 非常满意,
#: 4 满意; ``ivr_flows``' ``survey.min_score``/``max_score``).
SATISFIED_MIN_SCORE = 4
#: The outcomes that are system losses (呼损): see :class:`telephony.calls.model.Outcome`.
SYSTEM_LOSSES = (Outcome.LOST.value, Outcome.REFUSED.value)

# -- the rows the definitions are made of --------------------------------------------------

CITIZEN_CALL = func.coalesce(c.direction, "inbound") == "inbound"
ASKED_FOR_AGENT = and_(CITIZEN_CALL, c.queued_at.is_not(None))
AGENT_ANSWERED = c.agent_answered_at.is_not(None)
SYSTEM_LOSS = c.outcome.in_(SYSTEM_LOSSES)
QUICK_HANG_UP = and_(
    c.agent_answered_at.is_(None),
    c.hung_up_by == "caller",
    c.wait_seconds <= QUICK_HANG_UP_SECONDS,
)
SYSTEM_ANSWERED = c.ivr_answered_at.is_not(None)
LEFT_BEFORE_SYSTEM_ANSWER = and_(c.ivr_answered_at.is_(None), c.hung_up_by == "caller")
RATED = and_(CITIZEN_CALL, c.survey_score.is_not(None))


@dataclass(frozen=True, slots=True)
class Definition:
    """What a KPI is, where the contract says so, and which groups it is given for."""

    key: str
    name: str
    source: str
    clause: str
    meaning: str
    scopes: frozenset[Scope]


@dataclass(frozen=True, slots=True)
class CallKpi:
    """A KPI counted from CDRs: ``numerator`` rows among the ``denominator`` rows."""

    definition: Definition
    denominator: ColumnElement[bool]
    numerator: ColumnElement[bool]


ANSWER_RATE_30S = CallKpi(
    Definition(
        "answer_rate_30s",
        "30秒接通率",
        "扬州 2025 合同, 服务目标",
        "电话座席 30 秒接通率达 95%以上 (also: 确保 12345 热线从实际运营起 30 秒接通率 95%以上)",
        "calls answered by an agent within 30 s of joining the queue / citizens' calls that "
        "joined a queue (asked for an agent), abandons included",
        frozenset({Scope.ALL, Scope.HOTLINE, Scope.SKILL_GROUP}),
    ),
    denominator=ASKED_FOR_AGENT,
    numerator=and_(AGENT_ANSWERED, c.wait_seconds <= ANSWER_WITHIN_SECONDS),
)

MANUAL_CONNECTION_RATE = CallKpi(
    Definition(
        "manual_connection_rate",
        "人工接通率",
        "玉林 2026 合同, 月度运营考核指标 5",
        "人工接听量/转接人工来电量（剔除20秒内主动挂断、突发情况激增话务量、系统故障问题等话务量）",
        "calls answered by an agent / citizens' calls that joined a queue, less those the "
        "citizen hung up within 20 s of joining it unanswered (主动挂断) and those the system "
        "lost (lost, refused: 系统故障); a traffic surge is not in the rows and not excluded",
        frozenset({Scope.ALL, Scope.HOTLINE, Scope.SKILL_GROUP}),
    ),
    denominator=and_(ASKED_FOR_AGENT, not_(or_(QUICK_HANG_UP, SYSTEM_LOSS))),
    numerator=AGENT_ANSWERED,
)

CALL_LOSS_RATE = CallKpi(
    Definition(
        "call_loss_rate",
        "呼损率",
        "玉林 2026 合同, 月度运营考核指标 4",
        "呼损量（进入交换机后还未分配前因系统问题产生的损失量）/来电总量",
        "citizens' calls the switch ended before an agent took them with no hang-up from the "
        "citizen (outcome lost) or refused at arrival for overload (refused) / all citizens' "
        "calls; the citizen's own abandons are not losses",
        frozenset({Scope.ALL, Scope.HOTLINE}),
    ),
    denominator=CITIZEN_CALL,
    numerator=SYSTEM_LOSS,
)

KEYPRESS_SATISFACTION = CallKpi(
    Definition(
        "keypress_satisfaction",
        "按键满意率",
        "玉林 2026 合同, 月度运营考核指标 6 "
        "(扬州 2025: 话务坐席接听评价, 在线服务满意度评价 99% 以上)",
        "满意及以上的评价数量/所有满意度评价数量。(剔除因话务员非服务态度引起的不满意事项)",
        f"ratings of {SATISFIED_MIN_SCORE} or more (满意, 非常满意) / all ratings (survey_score "
        "present); why a citizen was dissatisfied is not in the rows, so nothing is excluded",
        frozenset({Scope.ALL, Scope.HOTLINE, Scope.SKILL_GROUP, Scope.AGENT}),
    ),
    denominator=RATED,
    numerator=c.survey_score >= SATISFIED_MIN_SCORE,
)

SYSTEM_COMPLETION_RATE = CallKpi(
    Definition(
        "system_completion_rate",
        "系统接通率",
        "扬州 2025 合同, 五.3 技术指标 ⑨",
        "⑨系统接通率 >99.96%（国标）",
        "citizens' calls the system answered (IVR answer) / citizens' calls, less those the "
        "citizen hung up before the system answered (a caller's cause, not the system's)",
        frozenset({Scope.ALL, Scope.HOTLINE}),
    ),
    denominator=and_(CITIZEN_CALL, not_(LEFT_BEFORE_SYSTEM_ANSWER)),
    numerator=SYSTEM_ANSWERED,
)

CALL_KPIS: tuple[CallKpi, ...] = (
    ANSWER_RATE_30S,
    MANUAL_CONNECTION_RATE,
    CALL_LOSS_RATE,
    KEYPRESS_SATISFACTION,
    SYSTEM_COMPLETION_RATE,
)

MISSED_CALLBACK_RATE = Definition(
    "missed_callback_rate",
    "漏接回拨率",
    "扬州 2025 合同, 服务目标与考核评分表 5",
    "对漏接电话一一回拨 … 漏接回拨率 100%，低一个百分点扣 1 分",
    "missed calls whose callback was dialled at least once / missed calls to be called back "
    "(all but blocked numbers and citizens who got through later), from the callback rows",
    frozenset({Scope.ALL, Scope.HOTLINE}),
)

FOLLOW_UP_COVERAGE = Definition(
    "follow_up_coverage",
    "回访覆盖率",
    "扬州 2025 合同, 服务目标与考核评分表 6",
    "回访覆盖率达 100% … 回访覆盖率 100%，低一个百分点扣 1 分",
    "follow-up tasks done (reached, or tried their maximum times) / follow-up tasks due, "
    "from the follow-up (回访) rows",
    frozenset({Scope.ALL, Scope.HOTLINE}),
)

AVAILABILITY = Definition(
    "availability",
    "呼叫接入系统可用率",
    "玉林 2026 合同, 月度运营考核指标 1",
    "呼叫接入系统话务平台的可用率 … 软件平台可用率 = 1 - (月故障时间之和 / 月服务时间)",
    "(service time - time with no FreeSWITCH node connected) / service time, in "
    "microseconds; service time runs from the first stored node connection row to now",
    frozenset({Scope.ALL}),
)

#: Every KPI in the order reports show them.
DEFINITIONS: tuple[Definition, ...] = (
    ANSWER_RATE_30S.definition,
    MANUAL_CONNECTION_RATE.definition,
    CALL_LOSS_RATE.definition,
    MISSED_CALLBACK_RATE,
    FOLLOW_UP_COVERAGE,
    KEYPRESS_SATISFACTION.definition,
    SYSTEM_COMPLETION_RATE.definition,
    AVAILABILITY,
)


@dataclass(frozen=True, slots=True)
class KpiValue:
    """One KPI of one group and interval: a fraction, or why there is none."""

    numerator: int | None = None
    denominator: int | None = None
    reason: str | None = None

    @property
    def available(self) -> bool:
        return self.reason is None

    @property
    def fraction(self) -> Fraction | None:
        """The exact value; None when unavailable or nothing was counted."""
        if self.numerator is None or not self.denominator:
            return None
        return Fraction(self.numerator, self.denominator)


@dataclass(frozen=True, slots=True)
class KpiRow:
    """The KPIs of one group (``scope`` and ``group``) in one interval."""

    interval_start: datetime | None
    scope: Scope
    group: str | None
    values: dict[str, KpiValue]


def _not_applicable(scope: Scope) -> KpiValue:
    return KpiValue(reason=f"not defined per {scope.value}")


async def compute(
    connection: AsyncConnection,
    window: Window,
    *,
    scope: Scope = Scope.ALL,
    interval: Interval = Interval.TOTAL,
    conditions: Sequence[ColumnElement[bool]] = (),
    now: datetime,
    outbound: OutboundCounts | None = None,
) -> list[KpiRow]:
    """The KPIs of ``window`` per ``interval`` and group of ``scope``.

    ``conditions`` narrow the calls counted (a hotline, a skill group, an agent, a
    supervisor's areas). Rows come sorted by interval, then group.
    """
    outbound = outbound or OutboundRows()
    call_kpis = [k for k in CALL_KPIS if scope in k.definition.scopes]
    start = bucket(c.arrived_at, interval, window.zone).label("interval_start")
    group = _GROUP_COLUMN[scope].label("group_key")
    counts: list[Any] = []
    for kpi in call_kpis:
        label = kpi.definition.key
        counts.append(func.count().filter(kpi.denominator).label(f"{label}_d"))
        counts.append(func.count().filter(and_(kpi.denominator, kpi.numerator)).label(f"{label}_n"))
    query = (
        select(start, group, *counts)
        .where(c.arrived_at >= window.start, c.arrived_at < window.end, *conditions)
        .where(_GROUP_COLUMN[scope].is_not(None))
        .group_by(start, group)
    )
    found: dict[tuple[datetime | None, str | None], Any] = {
        (r.interval_start, r.group_key): r for r in (await connection.execute(query)).all()
    }
    uptime: dict[datetime | None, Uptime] = {}
    if scope is Scope.ALL:
        uptime = {u.start: u for u in await system_uptime(connection, window, interval, now)}
        for day in uptime:
            found.setdefault((day, "all"), None)
    missed = await outbound.missed_callbacks(connection, window, interval, scope.value)
    follow = await outbound.follow_ups(connection, window, interval, scope.value)
    if scope in MISSED_CALLBACK_RATE.scopes:  # a day or hotline with callbacks but no call
        for found_key in (*missed, *follow):
            found.setdefault(cast(tuple[datetime | None, str | None], found_key), None)
    rows: list[KpiRow] = []
    for (interval_start, key), row in sorted(found.items(), key=_order):
        values: dict[str, KpiValue] = {}
        for definition in DEFINITIONS:
            if scope not in definition.scopes:
                values[definition.key] = _not_applicable(scope)
        for kpi in call_kpis:
            name = kpi.definition.key
            n = 0 if row is None else int(getattr(row, f"{name}_n"))
            d = 0 if row is None else int(getattr(row, f"{name}_d"))
            values[name] = KpiValue(n, d)
        for definition, source in ((MISSED_CALLBACK_RATE, missed), (FOLLOW_UP_COVERAGE, follow)):
            if scope in definition.scopes:
                values[definition.key] = _outbound_value(outbound, source, interval_start, key)
        if scope is Scope.ALL:
            u = uptime.get(interval_start)
            values[AVAILABILITY.key] = (
                KpiValue(u.service_us - u.outage_us, u.service_us)
                if u is not None
                else KpiValue(0, 0)
            )
        ordered = {d.key: values[d.key] for d in DEFINITIONS}
        rows.append(KpiRow(interval_start, scope, key, ordered))
    return rows


def _outbound_value(
    outbound: OutboundCounts,
    counts: dict[tuple[object, str], tuple[int, int]],
    interval_start: datetime | None,
    key: str | None,
) -> KpiValue:
    if outbound.unavailable is not None:
        return KpiValue(reason=outbound.unavailable)
    n, d = counts.get((interval_start, key or ""), (0, 0))
    return KpiValue(n, d)


def _order(item: tuple[tuple[datetime | None, str | None], Any]) -> tuple[float, str]:
    (interval_start, key), _ = item
    return (interval_start.timestamp() if interval_start else 0.0, key or "")


async def compute_scopes(
    connection: AsyncConnection,
    window: Window,
    scopes: Sequence[Scope],
    *,
    interval: Interval,
    conditions: Sequence[ColumnElement[bool]] = (),
    now: datetime,
    outbound: OutboundCounts | None = None,
) -> list[KpiRow]:
    """:func:`compute` for each of ``scopes``, one after the other."""
    rows: list[KpiRow] = []
    for scope in scopes:
        rows += await compute(
            connection,
            window,
            scope=scope,
            interval=interval,
            conditions=conditions,
            now=now,
            outbound=outbound,
        )
    return rows
