"""``GET /metrics``: the Prometheus text format of :class:`telephony.metrics.Metrics`, no auth."""

from __future__ import annotations

from fastapi import APIRouter, Response

from telephony.api.deps import ServicesDep

router = APIRouter(tags=["metrics"])


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
async def metrics(services: ServicesDep) -> Response:
    services.refresh_gauges()
    return Response(services.metrics.render(), media_type=services.metrics.content_type)
