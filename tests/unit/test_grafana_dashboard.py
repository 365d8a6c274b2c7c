"""``deploy/grafana/telephony.json`` queries only metrics that ``telephony/metrics.py`` has.

Every PromQL expression of the dashboard (panels' ``expr``, the template
variables' ``label_values(...)``) is reduced to its metric names, which must be
series a :class:`~telephony.metrics.Metrics` registry exposes (a counter as
``name_total``, a histogram as ``name_bucket`` / ``_count`` / ``_sum``), so a
renamed or removed metric fails here instead of leaving an empty panel.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from telephony.metrics import Metrics

DASHBOARD = Path(__file__).resolve().parents[2] / "deploy" / "grafana" / "telephony.json"

#: What the dashboard must keep showing (the issue's list), by a series each.
REQUIRED = {
    "telephony_call_outcomes_total",
    "telephony_calls_in_progress",
    "telephony_queue_length",
    "telephony_agents",
    "telephony_esl_connected",
    "telephony_esl_events_total",
    "telephony_event_loop_lag_seconds",
    "telephony_overload_shedding",
    "telephony_overload_admit_rate",
    "telephony_process_cpu_share",
    "telephony_db_buffer_depth",
    "telephony_recordings_not_safe",
    "telephony_ivr_reaction_seconds_bucket",
}

_SUFFIXES = {
    "counter": ("_total", "_created"),
    "histogram": ("_bucket", "_count", "_sum", "_created"),
    "summary": ("", "_count", "_sum", "_created"),
    "gaugehistogram": ("_bucket", "_gcount", "_gsum"),
    "info": ("_info",),
}
_KEYWORDS = {
    "by", "without", "on", "ignoring", "group_left", "group_right", "bool",
    "and", "or", "unless", "offset", "inf", "nan",
}  # fmt: skip
_IDENTIFIER = re.compile(r"[A-Za-z_:][A-Za-z0-9_:]*")


def series_names(metrics: Metrics) -> set[str]:
    """Every series name the registry can expose, with or without label values yet."""
    names: set[str] = set()
    for family in metrics.registry.collect():
        names.update(family.name + s for s in _SUFFIXES.get(family.type, ("",)))
        names.update(sample.name for sample in family.samples)
    return names


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression reads (Grafana's ``$variables`` allowed)."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # string literals
    text = re.sub(r"\{[^}]*\}", " ", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", " ", text)  # range and subquery durations
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    text = re.sub(r"\$\{?\w+\}?", " ", text)  # dashboard variables
    names = set()
    for match in _IDENTIFIER.finditer(text):
        name = match.group()
        after = text[match.end() :].lstrip()
        if after.startswith("(") or name.lower() in _KEYWORDS:
            continue  # a function or an operator
        if re.fullmatch(r"\d", text[match.start() - 1 : match.start()] or "x"):
            continue  # the unit of a number (1e3) is no name
        names.add(name)
    return names


def _walk(node: Any) -> Iterator[dict[str, Any]]:
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from _walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from _walk(value)


def _dashboard() -> dict[str, Any]:
    dashboard: dict[str, Any] = json.loads(DASHBOARD.read_text("utf-8"))
    return dashboard


def _expressions(dashboard: dict[str, Any]) -> list[str]:
    exprs = [n["expr"] for n in _walk(dashboard["panels"]) if isinstance(n.get("expr"), str)]
    for variable in dashboard["templating"]["list"]:
        query = variable.get("query")
        text = query.get("query") if isinstance(query, dict) else query
        if variable.get("type") == "query" and isinstance(text, str):
            found = re.fullmatch(r"\s*label_values\(\s*([^,]+?)\s*,\s*\w+\s*\)\s*", text)
            assert found, f"variable {variable['name']}: only label_values(metric, label)"
            exprs.append(found.group(1))
    return exprs


@pytest.mark.parametrize(
    ("expr", "names"),
    [
        ('sum by (le) (rate(a_bucket{le="1.0",i=~"$i"}[$__rate_interval]))', {"a_bucket"}),
        ("histogram_quantile(0.95, sum by (le) (rate(x_bucket[5m])))", {"x_bucket"}),
        (
            'max by (node) (1 - up_ok{node="a"}) / on (node) group_left b_total',
            {"up_ok", "b_total"},
        ),
        ("sum(rate(c_total[1m])) * 60 > bool 1e3", {"c_total"}),
    ],
)
def test_metric_names_are_read_out_of_promql(expr: str, names: set[str]) -> None:
    assert metric_names(expr) == names


def test_every_metric_the_dashboard_queries_exists_in_the_registry() -> None:
    exprs = _expressions(_dashboard())
    queried = set().union(*(metric_names(e) for e in exprs))
    known = series_names(Metrics())
    assert queried, "no expression found in the dashboard"
    assert sorted(queried - known) == []
    assert sorted(REQUIRED - queried) == []


def test_the_dashboard_is_a_grafana_dashboard() -> None:
    dashboard = _dashboard()
    assert dashboard["uid"] and dashboard["title"]
    panels = [p for p in _walk(dashboard["panels"]) if "gridPos" in p]
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids)), "panel ids are unique"
    for panel in panels:
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24, panel["title"]
        if panel["type"] == "row":
            continue
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
        refs = [t["refId"] for t in panel["targets"]]
        assert refs and len(refs) == len(set(refs)), panel["title"]
        assert all(t["expr"].strip() for t in panel["targets"]), panel["title"]
