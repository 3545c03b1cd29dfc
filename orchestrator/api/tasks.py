"""The tasks API (``/v1/tasks``): submit, inspect, list, download, cancel/delete."""

from __future__ import annotations

import asyncio
import logging
import os
import uuid
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import FileResponse, JSONResponse, RedirectResponse, Response

from orchestrator import metrics
from orchestrator.api.access import authorized_task, new_token, require_list, require_submit
from orchestrator.api.deps import Services, ServicesDep
from orchestrator.api.limits import check_capacity
from orchestrator.api.schemas import ErrorResponse, TaskCreated, TaskDeleted, TaskList, TaskStatusName, TaskView
from orchestrator.api.upload import StorageError, receive_form, video_suffix
from orchestrator.errors import ConflictError, InputError, NotFoundError
from orchestrator.pipeline.options import TaskOptions
from orchestrator.storage import is_remote, storage_for

if TYPE_CHECKING:
    from orchestrator.tasks.store import Task

LOGGER = logging.getLogger(__name__)

def errors(*statuses: int) -> dict:
    """OpenAPI entries for the error statuses a route can answer (all share one shape)."""
    return {status: {"model": ErrorResponse} for status in statuses}


SUBMIT_ERRORS = errors(400, 401, 408, 413, 429, 503, 507)
READ_ERRORS = errors(400, 401, 404, 503)
RESULT_ERRORS = errors(401, 404, 409, 503)

SUBMIT_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {
                        "video": {"type": "string", "format": "binary", "description": "the video file"},
                        "video_url": {"type": "string", "description": "http(s) URL to fetch instead"},
                        "regions": {"type": "string", "description":
                                    "JSON list of [x1,y1,x2,y2] boxes or {box,start,end} objects"},
                        "detect": {"type": "string", "enum": ["true", "false"]},
                        "method": {"type": "string", "enum": ["auto", "inpaint"]},
                    },
                }
            }
        },
    }
}

router = APIRouter(prefix="/v1/tasks", tags=["tasks"])


async def submit_task(request: Request, services: Services) -> tuple["Task", str]:
    """Shared by ``POST /v1/tasks`` and the compatibility route: receive, validate, enqueue.
    Returns the task and its access token (only its hash is stored)."""
    settings = services.settings
    await check_capacity(request, services)
    task_id = uuid.uuid4().hex
    token, token_hash = new_token()
    uploads = settings.data_dir / "uploads"
    try:
        uploads.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StorageError(f"the server could not store the upload ({exc.strerror or exc})") from exc
    part = uploads / f"{task_id}.part"
    form = await receive_form(request, part, max_mb=settings.max_upload_mb,
                              idle_timeout_s=settings.upload_idle_timeout_s,
                              total_timeout_s=settings.upload_timeout_s, min_free_mb=settings.min_free_disk_mb)
    try:
        options = TaskOptions.from_form(form.fields.get("regions"), form.fields.get("detect"),
                                        form.fields.get("method"))
        video_url = (form.fields.get("video_url") or "").strip()
        has_file = bool(form.file_bytes)
        if has_file and video_url:
            raise InputError("send either a 'video' file or a 'video_url', not both")
        if form.file_bytes == 0 and not video_url:
            raise InputError("the uploaded file is empty")
        output = str((settings.data_dir / "results" / f"{task_id}.mp4").resolve())
        if has_file:
            final = uploads / f"{task_id}{video_suffix(form.filename)}"
            os.replace(part, final)
            location = await store_upload(final, settings)
            task = await services.store.create(
                task_id=task_id, options=options.model_dump(mode="json"), input_path=location,
                output_path=output, source_name=form.filename, token=token_hash,
            )
        elif video_url:
            from orchestrator.download import check_host, check_url_syntax

            url = check_url_syntax(video_url)
            await check_host(url, settings)
            name = PurePosixPath(url.split("?", 1)[0]).name or None
            task = await services.store.create(
                task_id=task_id, options=options.model_dump(mode="json"), input_path=None,
                output_path=output, source_url=url, source_name=name, stage="downloading", token=token_hash,
            )
            services.worker.start_download(task)
        else:
            raise InputError("send the video in the multipart field 'video' or give a 'video_url'")
    finally:
        part.unlink(missing_ok=True)
    metrics.TASKS_SUBMITTED.inc()
    services.worker.wake()
    LOGGER.info("task %s queued (%s)", task.id, "url" if task.source_url else f"{form.file_bytes} bytes")
    return task, token


async def store_upload(local: Path, settings) -> str:
    """The upload's location: the local file, or (object storage) its object, local copy removed."""
    storage = storage_for(settings)
    if not storage.remote:
        return str(local.resolve())
    try:
        return await asyncio.to_thread(storage.put, local, f"uploads/{local.name}")
    finally:
        local.unlink(missing_ok=True)


def result_response(task: "Task", settings) -> Response:
    """The output file of a finished task (a presigned redirect when it is in a bucket); only ever
    by task id, never by a path from the user."""
    if task.status != "finished":
        raise ConflictError(f"task {task.id} is {task.status}; the result exists only once it is finished")
    stem = PurePosixPath(task.source_name or "video").stem or "video"
    if is_remote(task.output_path):
        return RedirectResponse(storage_for(settings).presigned(task.output_path, f"{stem}-unmarked.mp4"), 307)
    if not task.output_path or not Path(task.output_path).is_file():
        raise NotFoundError(f"the result of task {task.id} was removed after its retention time")
    return FileResponse(task.output_path, media_type="video/mp4", filename=f"{stem}-unmarked.mp4")


@router.post("", status_code=202, response_model=TaskCreated, responses=SUBMIT_ERRORS, openapi_extra=SUBMIT_BODY,
             summary="Submit a video (upload or video_url)", dependencies=[Depends(require_submit)])
async def create_task(request: Request, services: ServicesDep) -> JSONResponse:
    task, token = await submit_task(request, services)
    return JSONResponse(TaskCreated(task_id=task.id, token=token).model_dump(), status_code=202)


@router.get("", response_model=TaskList, responses=READ_ERRORS, summary="List tasks, newest first (API key)",
            dependencies=[Depends(require_list)])
async def list_tasks(
    services: ServicesDep,
    status: TaskStatusName | None = None,
    limit: int = Query(50, ge=1, le=200),
    offset: int = Query(0, ge=0),
) -> TaskList:
    tasks, total = await services.store.list(status=status, limit=limit, offset=offset)
    return TaskList(items=[TaskView.from_task(t) for t in tasks], total=total, limit=limit, offset=offset)


@router.get("/{task_id}", response_model=TaskView, responses=READ_ERRORS, summary="Status of one task")
async def get_task(task_id: str, request: Request, services: ServicesDep) -> TaskView:
    return TaskView.from_task(await authorized_task(request, services, task_id))


@router.get("/{task_id}/result", response_class=FileResponse, responses={
    200: {"content": {"video/mp4": {}}, "description": "the video without the watermark"}, **RESULT_ERRORS},
    summary="Download the result (409 until finished)")
async def get_result(task_id: str, request: Request, services: ServicesDep) -> FileResponse:
    return result_response(await authorized_task(request, services, task_id), services.settings)


@router.delete("/{task_id}", response_model=TaskDeleted, responses=READ_ERRORS,
               summary="Cancel a queued/processing task, or delete a finished one with its files")
async def delete_task(task_id: str, request: Request, services: ServicesDep) -> TaskDeleted:
    task = await authorized_task(request, services, task_id)
    if not task.is_final:
        task = await services.worker.cancel(task_id)
        if task.status == "cancelled":
            return TaskDeleted(task_id=task.id, status=task.status, deleted=False, message="task cancelled")
        return TaskDeleted(task_id=task.id, status=task.status, deleted=False,
                           message="cancel requested: the task stops at its next batch")
    for location in (task.output_path, task.input_path):
        await asyncio.to_thread(storage_for(services.settings).remove, location)
    await services.store.delete(task_id)
    return TaskDeleted(task_id=task.id, status=task.status, deleted=True, message="task and its files deleted")
