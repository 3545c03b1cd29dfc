"""Composition root: ``create_app(settings)`` wires store, model manager, worker and routes.

The lifespan only opens the database and starts background tasks, so the app answers /ping
within a fraction of a second whether or not Triton is there.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from orchestrator.api import compat, health, tasks
from orchestrator.api import metrics as metrics_route
from orchestrator.api.deps import Services
from orchestrator.errors import AppError, UnauthorizedError
from orchestrator.metrics import REGISTRY
from orchestrator.settings import Settings
from orchestrator.triton.replicas import model_manager

LOGGER = logging.getLogger(__name__)


def _error(status: int, code: str, message: str, headers: dict | None = None) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status, headers=headers)


def install_error_handlers(app: FastAPI) -> None:
    """One JSON error shape for everything: ``{"error": {"code", "message"}}``."""

    @app.exception_handler(AppError)
    async def _app_error(_request: Request, exc: AppError) -> JSONResponse:
        if exc.detail:
            LOGGER.info("%s: %s (%s)", exc.code, exc.public_message, exc.detail)
        headers = {"WWW-Authenticate": "Bearer"} if isinstance(exc, UnauthorizedError) else exc.headers
        return _error(exc.status_code, exc.code, exc.public_message, headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(_request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid request"}
        where = ".".join(str(p) for p in first.get("loc", ()) if p not in ("query", "path", "body"))
        return _error(400, "invalid_input", f"{where}: {first['msg']}" if where else first["msg"])

    @app.exception_handler(StarletteHTTPException)
    async def _http(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return _error(exc.status_code, code, str(exc.detail), getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def _unexpected(_request: Request, exc: Exception) -> JSONResponse:
        LOGGER.error("unhandled error", exc_info=exc)
        return _error(500, "internal_error", "internal server error; see the server log")


def create_app(settings: Settings) -> FastAPI:
    services = Services(settings=settings, models=model_manager(settings))

    async def boot() -> None:
        """Open the database and start the worker, off the startup path (imports take ~1 s)."""
        try:
            worker_module = await asyncio.to_thread(importlib.import_module, "orchestrator.tasks.worker")
            store_module = importlib.import_module("orchestrator.tasks.store")
            settings.data_dir.mkdir(parents=True, exist_ok=True)
            store = store_module.TaskStore(settings.effective_database_url)
            await store.init()
            services.store = store
            services.worker = worker_module.Worker(settings, store, services.models)
            await services.worker.start()
            LOGGER.info("task store open (%s); worker started", store.engine.url.render_as_string())
        except Exception as exc:  # noqa: BLE001 - reported by the task routes and /ping
            LOGGER.exception("the task store could not be opened")
            services.boot_error = f"{type(exc).__name__}: {exc}"
        finally:
            services.booted.set()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        services.models.start()
        boot_task = asyncio.create_task(boot(), name="boot")
        LOGGER.info("orchestrator starting (Triton %s, data %s)", settings.triton_grpc_url, settings.data_dir)
        try:
            yield
        finally:
            if not boot_task.done():
                await asyncio.wait([boot_task], timeout=30)
            if services.worker is not None:
                await services.worker.stop()
            await services.models.stop()
            if services.store is not None:
                await services.store.close()

    app = FastAPI(
        title="Sora watermark remover",
        version="0.1.0",
        description="Removes the moving Sora watermark from videos; models served by Triton.",
        lifespan=lifespan,
    )
    app.state.services = services
    install_error_handlers(app)
    if settings.cors_origins:
        app.add_middleware(CORSMiddleware, allow_origins=list(settings.cors_origins),
                           allow_methods=["GET", "POST", "DELETE"], allow_headers=["Authorization", "Content-Type", "X-Task-Token"])
    app.include_router(health.router)
    app.include_router(metrics_route.router)
    if settings.role != "worker":  # a worker's HTTP port is for probes and metrics only
        app.include_router(tasks.router)
        app.include_router(compat.router)
        from orchestrator.web import mount_web  # the browser page (another module's routes)

        mount_web(app)
    _instrument(app)
    _document_errors(app)
    return app


def _document_errors(app: FastAPI) -> None:
    """Validation errors are answered 400 in the common error shape (see the handler), so the
    schema drops FastAPI's generic 422 entries."""

    def openapi() -> dict:
        if app.openapi_schema is None:
            schema = FastAPI.openapi(app)
            for operations in schema.get("paths", {}).values():
                for operation in operations.values():
                    operation.get("responses", {}).pop("422", None)
            for name in ("HTTPValidationError", "ValidationError"):
                schema.get("components", {}).get("schemas", {}).pop(name, None)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi


def create_health_app(main_app: FastAPI) -> FastAPI:
    """The /ping-only app for ``PORT_HEALTH``; shares the main app's model manager."""
    app = FastAPI(title="health", openapi_url=None, docs_url=None, redoc_url=None)
    app.state.services = main_app.state.services
    app.include_router(health.router)
    return app


def _instrument(app: FastAPI) -> None:
    """HTTP request metrics on the service registry (the instrumentator skips duplicates)."""
    try:
        from prometheus_fastapi_instrumentator import Instrumentator
    except ImportError:  # pragma: no cover - it is a dependency
        LOGGER.warning("prometheus-fastapi-instrumentator missing: no HTTP metrics")
        return
    Instrumentator(registry=REGISTRY, excluded_handlers=["/metrics"]).instrument(app)
