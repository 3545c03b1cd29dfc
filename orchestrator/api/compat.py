"""Routes of SoraWatermarkCleaner's server, so its existing clients work unchanged."""

from __future__ import annotations

from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import FileResponse

from orchestrator.api.access import TOKEN_QUERY, authorized_task, require_submit
from orchestrator.api.deps import ServicesDep
from orchestrator.api.schemas import CompatResults, CompatSubmitted
from orchestrator.api.tasks import READ_ERRORS, RESULT_ERRORS, SUBMIT_BODY, SUBMIT_ERRORS, result_response, submit_task

router = APIRouter(tags=["compatibility"])

_STATUS = {"queued": "PROCESSING", "processing": "PROCESSING", "finished": "FINISHED",
           "failed": "ERROR", "cancelled": "ERROR"}


@router.post("/submit_remove_task", response_model=CompatSubmitted, responses=SUBMIT_ERRORS,
             openapi_extra=SUBMIT_BODY, summary="SoraWatermarkCleaner: submit (multipart 'video')",
             dependencies=[Depends(require_submit)])
async def submit_remove_task(request: Request, services: ServicesDep) -> CompatSubmitted:
    task, token = await submit_task(request, services)
    return CompatSubmitted(task_id=task.id, message="Task submitted.", token=token)


@router.get("/get_results", response_model=CompatResults, responses=READ_ERRORS,
            summary="SoraWatermarkCleaner: progress and download URL")
async def get_results(request: Request, services: ServicesDep, remove_task_id: str = Query(...)) -> CompatResults:
    task = await authorized_task(request, services, remove_task_id)
    finished = task.status == "finished" and task.output_path is not None
    token = request.query_params.get(TOKEN_QUERY)
    link = f"/download/{task.id}" + (f"?{urlencode({TOKEN_QUERY: token})}" if token else "")
    return CompatResults(
        percentage=100 if finished else int(min(99, task.progress)),
        status=_STATUS[task.status],
        download_url=link if finished else None,
    )


@router.get("/download/{task_id}", response_class=FileResponse, responses=RESULT_ERRORS,
            summary="SoraWatermarkCleaner: download the result")
async def download(task_id: str, request: Request, services: ServicesDep) -> FileResponse:
    return result_response(await authorized_task(request, services, task_id), services.settings)
