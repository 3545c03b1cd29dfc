"""``/ping``: answers from the model manager's in-memory state only, so it never blocks."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from orchestrator.api.schemas import PingDegraded, PingHealthy
from orchestrator.triton.models import ModelState

router = APIRouter(tags=["health"])


@router.get(
    "/ping",
    responses={
        200: {"model": PingHealthy, "description": "every required model is ready"},
        204: {"description": "Triton starting or models loading"},
        503: {"model": PingDegraded, "description": "a model failed to load or Triton is gone"},
    },
    summary="Readiness for load balancers (RunPod convention)",
)
async def ping(request: Request) -> Response:
    services = request.app.state.services
    snapshot = services.models.snapshot()
    if services.boot_error:
        body = PingDegraded(error=f"task store unavailable: {services.boot_error}", models=snapshot.models,
                            replicas=snapshot.replicas)
        return JSONResponse(body.model_dump(exclude={"replicas"} if snapshot.replicas is None else None), status_code=503)
    if snapshot.state is ModelState.ready:
        return JSONResponse(PingHealthy(models=snapshot.models, replicas=snapshot.replicas).model_dump(exclude={"replicas"} if snapshot.replicas is None else None))
    if snapshot.state is ModelState.degraded:
        body = PingDegraded(error=snapshot.error or "degraded", models=snapshot.models, replicas=snapshot.replicas)
        return JSONResponse(body.model_dump(exclude={"replicas"} if snapshot.replicas is None else None), status_code=503)
    return Response(status_code=204)
