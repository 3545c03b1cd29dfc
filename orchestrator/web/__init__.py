"""The browser page: static files served by the orchestrator itself (no separate web server).

``GET /`` returns the page and ``/web/*`` its assets. The page is public (it holds no data); it
calls the task API with the user's key when the service has one. Mounting under ``/web`` rather
than ``/`` keeps the page from shadowing API routes whatever order the app adds them in.
"""

from __future__ import annotations

import logging
from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

LOGGER = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).resolve().parent / "static"
INDEX = STATIC_DIR / "index.html"


def mount_web(app: FastAPI) -> None:
    """Serve the page at ``/`` (and ``/index.html``) and its assets under ``/web``."""
    if not INDEX.is_file():  # pragma: no cover - a broken install
        LOGGER.warning("web page not installed (%s missing); / will not be served", INDEX)
        return

    async def index() -> FileResponse:
        # no-cache: the page is tiny and must match the assets of the running version.
        return FileResponse(INDEX, media_type="text/html", headers={"Cache-Control": "no-cache"})

    for path in ("/", "/index.html"):
        app.add_api_route(path, index, methods=["GET"], include_in_schema=False)
    app.mount("/web", StaticFiles(directory=STATIC_DIR), name="web")
