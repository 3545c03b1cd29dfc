"""``/ping``: answers from in-memory state only, so it never blocks.

200 only when every part a task needs is there: the database open, the worker running, the video
pipeline importable, the required models ready. While a part is still coming up: 204 (no body).
When a part is broken: 503 with ``parts`` saying which (``ok``, ``starting``, or the reason) and
``error`` naming the first one missing. A process that runs no worker (an API-only role) has
no worker or pipeline parts.
"""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from orchestrator.api.schemas import PingDegraded, PingHealthy
from orchestrator.triton.models import ModelState

router = APIRouter(tags=["health"])

OK, STARTING = "ok", "starting"


def readiness(services) -> tuple[dict[str, str], bool]:
    """(part -> ``ok`` | ``starting`` | why it is broken, whether anything is broken)."""
    parts: dict[str, str] = {}
    if services.boot_error:
        parts["database"] = f"task store unavailable: {services.boot_error}"
    else:
        parts["database"] = OK if services.store is not None else STARTING
    worker = services.worker
    runs_worker = getattr(services.settings, "role", "all") != "api"
    if runs_worker:
        if worker is None:
            parts["worker"] = parts["pipeline"] = STARTING if not services.boot_error else "not started"
        else:
            parts["worker"] = worker.health_worker()
            parts["pipeline"] = worker.health_pipeline()
    snapshot = services.models.snapshot()
    if snapshot.state is ModelState.ready:
        parts["models"] = OK
    elif snapshot.state is ModelState.degraded:
        parts["models"] = snapshot.error or "degraded"
    else:
        parts["models"] = snapshot.state.value
    broken = any(v not in (OK, STARTING, ModelState.starting.value, ModelState.loading.value)
                 for v in parts.values())
    return parts, broken


@router.get(
    "/ping",
    responses={
        200: {"model": PingHealthy, "description": "database, worker, pipeline and required models ready"},
        204: {"description": "a part is still starting (Triton starting, models loading, database opening)"},
        503: {"model": PingDegraded, "description": "a part is broken; `parts` says which"},
    },
    summary="Readiness for load balancers (RunPod convention)",
)
async def ping(request: Request) -> Response:
    services = request.app.state.services
    parts, broken = readiness(services)
    snapshot = services.models.snapshot()
    extra = {} if getattr(snapshot, "replicas", None) is None else {"replicas": snapshot.replicas}
    if broken:
        name, why = next((k, v) for k, v in parts.items()
                         if v not in (OK, STARTING, ModelState.starting.value, ModelState.loading.value))
        error = why if name in ("models", "database") else f"{name}: {why}"
        body = PingDegraded(error=error, models=snapshot.models, parts=parts).model_dump()
        return JSONResponse({**body, **extra}, status_code=503)
    if all(v == OK for v in parts.values()):
        return JSONResponse({**PingHealthy(models=snapshot.models, parts=parts).model_dump(), **extra})
    return Response(status_code=204)
