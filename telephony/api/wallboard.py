"""``GET /wallboard``: the supervisors' wallboard, a static page (HTML, JavaScript, no build).

What it shows, and from where (everything through the API, with the token the
person types in; serving the page needs none):

* queues: calls waiting and the longest wait, live from ``WS /v1/events``
  (the snapshot's ``queues``, then ``queue`` events), and today's service level
  per skill group from ``GET /v1/reports/skill-groups`` (answered within the
  group's service-level seconds / offered);
* agents by state, live (the snapshot's ``agents``, then ``agent`` events);
* calls in progress, live (``call`` events);
* today's KPIs from ``GET /v1/reports/kpis`` (each as numerator / denominator),
  read again every ``refresh`` seconds (the page's query parameter, default 30)
  and shortly after a call ends.

Today is the local date in Asia/Shanghai, the reports' default zone. The charts
are drawn by Chart.js, vendored (``telephony/web/vendor/``, its licence beside
it) so the page works with no network beyond the control plane.
"""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import HTMLResponse, Response

from telephony.api.console import PAGE_HEADERS, WEB

router = APIRouter(tags=["wallboard"])

#: The chart library's file in ``telephony/web/vendor/`` (from the npm package ``chart.js``).
CHART_JS = "chart.umd.min.js"
_ASSETS = {
    "wallboard.js": (WEB / "wallboard.js", "text/javascript; charset=utf-8"),
    "wallboard.css": (WEB / "wallboard.css", "text/css; charset=utf-8"),
    CHART_JS: (WEB / "vendor" / CHART_JS, "text/javascript; charset=utf-8"),
}


@router.get("/wallboard", include_in_schema=False)
async def wallboard_page() -> HTMLResponse:
    """The wallboard."""
    return HTMLResponse((WEB / "wallboard.html").read_text("utf-8"), headers=PAGE_HEADERS)


@router.get("/wallboard/{asset}", include_in_schema=False)
async def wallboard_asset(asset: str) -> Response:
    """The wallboard's script, style sheet and chart library (only these names)."""
    found = _ASSETS.get(asset)
    if found is None:
        return Response(status_code=404)
    path, media = found
    return Response(path.read_bytes(), media_type=media, headers=PAGE_HEADERS)
