"""Shared request dependencies: the service objects and API-key auth."""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from orchestrator.errors import UnauthorizedError
from orchestrator.settings import Settings
from orchestrator.tasks.store import TaskStore
from orchestrator.tasks.worker import Worker
from orchestrator.triton.models import ModelManager


@dataclass
class Services:
    """What the lifespan wires together; routes get it through ``ServicesDep``."""

    settings: Settings
    models: ModelManager
    store: TaskStore | None = None
    worker: Worker | None = None


def get_services(request: Request) -> Services:
    return request.app.state.services


ServicesDep = Annotated[Services, Depends(get_services)]


def require_api_key(request: Request) -> None:
    """With ``API_KEY`` set, demand ``Authorization: Bearer <key>`` (constant-time compare)."""
    expected = request.app.state.services.settings.api_key
    if not expected:
        return
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode(), expected.encode()):
        raise UnauthorizedError("missing or wrong API key: send the header 'Authorization: Bearer <API_KEY>'")
