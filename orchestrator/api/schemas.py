"""Response models: the stable JSON shapes of the API (they make the OpenAPI schema)."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, Field

if TYPE_CHECKING:
    from orchestrator.tasks.store import Task

TaskStatusName = Literal["queued", "processing", "finished", "failed", "cancelled"]


class ErrorDetail(BaseModel):
    code: str = Field(description="machine-readable error code, e.g. invalid_input")
    message: str = Field(description="what went wrong, for people")


class ErrorResponse(BaseModel):
    error: ErrorDetail


class TaskCreated(BaseModel):
    task_id: str
    status: TaskStatusName = "queued"
    token: str  # opens this task alone (X-Task-Token or ?token=); shown once


class TaskView(BaseModel):
    task_id: str
    status: TaskStatusName
    progress: float = Field(ge=0, le=100, description="percent done")
    stage: str | None = Field(None, description="current pipeline stage while processing")
    error: str | None = Field(None, description="why the task failed, when it did")
    result_url: str | None = Field(None, description="where to download the result once finished")
    attempts: int
    cancel_requested: bool
    source: Literal["upload", "url"]
    filename: str | None = Field(None, description="the uploaded file's name (sanitised)")
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    details: dict[str, Any] = Field(default_factory=dict, description="pipeline statistics")

    @classmethod
    def from_task(cls, task: "Task") -> "TaskView":
        has_result = task.status == "finished" and task.output_path is not None
        return cls(
            task_id=task.id, status=task.status, progress=round(task.progress, 1), stage=task.stage,
            error=task.error, result_url=f"/v1/tasks/{task.id}/result" if has_result else None,
            attempts=task.attempts, cancel_requested=task.cancel_requested,
            source="url" if task.source_url else "upload", filename=task.source_name,
            created_at=task.created_at, started_at=task.started_at, finished_at=task.finished_at,
            details=task.details,
        )


class TaskList(BaseModel):
    items: list[TaskView]
    total: int
    limit: int
    offset: int


class TaskDeleted(BaseModel):
    task_id: str
    status: TaskStatusName
    deleted: bool = Field(description="true when the task and its files were removed")
    message: str


class PingHealthy(BaseModel):
    status: Literal["healthy"] = "healthy"
    models_ready: bool = True
    models: dict[str, dict[str, Any]]
    parts: dict[str, str] = {}  # database, worker, pipeline, models -> "ok"
    replicas: dict[str, Any] | None = Field(None, description="Triton replicas: ready, needed, each one's state")


class PingDegraded(BaseModel):
    status: Literal["degraded"] = "degraded"
    models_ready: bool = False
    error: str
    models: dict[str, dict[str, Any]]
    parts: dict[str, str] = {}  # "ok", "starting", "loading" or why the part is broken
    replicas: dict[str, Any] | None = None


class CompatSubmitted(BaseModel):
    task_id: str
    message: str
    token: str | None = None  # this task's access token (send as ?token= on /get_results, /download)


class CompatResults(BaseModel):
    percentage: int = Field(ge=0, le=100)
    status: Literal["UPLOADING", "PROCESSING", "FINISHED", "ERROR"]
    download_url: str | None = None
