"""``GET /console``: the agent console, a static page (HTML and JavaScript, no build step).

The page signs in with a bearer token, shows the agent's state and its call,
drives the agent (``/v1/agents/{id}/...``) and its call (``/v1/calls/{uuid}/...``)
through the HTTP API, and shows the screen pop from ``WS /v1/events``
(``telephony/web/``). Serving it needs no token: everything it shows comes
through the API, with the token the person types in.
"""

from __future__ import annotations

from importlib import resources

from fastapi import APIRouter
from fastapi.responses import HTMLResponse, Response

router = APIRouter(tags=["console"])

WEB = resources.files("telephony") / "web"
_TYPES = {"console.js": "text/javascript; charset=utf-8", "console.css": "text/css; charset=utf-8"}
#: The headers of every page and asset (the wallboard's too): no caching, no framing, same origin.
PAGE_HEADERS = {
    "Cache-Control": "no-cache",
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": (
        "default-src 'self'; connect-src 'self' ws: wss:; img-src 'self' data:; "
        "frame-ancestors 'none'"
    ),
}


@router.get("/console", include_in_schema=False)
async def console_page() -> HTMLResponse:
    """The agent console."""
    return HTMLResponse((WEB / "console.html").read_text("utf-8"), headers=PAGE_HEADERS)


@router.get("/console/{asset}", include_in_schema=False)
async def console_asset(asset: str) -> Response:
    """The console's script and style sheet (only these names)."""
    media = _TYPES.get(asset)
    if media is None:
        return Response(status_code=404)
    return Response((WEB / asset).read_bytes(), media_type=media, headers=PAGE_HEADERS)
