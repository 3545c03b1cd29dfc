"""Shared request dependencies: the service objects and API-key auth."""

from __future__ import annotations

import asyncio
import hmac
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated

from fastapi import Depends, Request

from orchestrator.errors import AppError, UnauthorizedError
from orchestrator.settings import Settings
from orchestrator.triton.models import ModelManager

if TYPE_CHECKING:  # imported at runtime in the background (SQLAlchemy takes ~1 s to import)
    from orchestrator.tasks.store import TaskStore
    from orchestrator.tasks.worker import Worker

BOOT_WAIT_S = 30.0


class ServiceStartingError(AppError):
    status_code = 503
    code = "starting"


@dataclass
class Services:
    """What the lifespan wires together; routes get it through ``ServicesDep``."""

    settings: Settings
    models: ModelManager  # or a ReplicaSet (same interface) for several Triton replicas
    store: "TaskStore | None" = None
    worker: "Worker | None" = None
    booted: asyncio.Event = field(default_factory=asyncio.Event)
    boot_error: str | None = None


async def get_services(request: Request) -> Services:
    """The wired services; task routes wait (bounded) for the database to be open."""
    services: Services = request.app.state.services
    if not services.booted.is_set():
        try:
            await asyncio.wait_for(services.booted.wait(), BOOT_WAIT_S)
        except asyncio.TimeoutError as exc:
            raise ServiceStartingError("the service is still starting; try again shortly") from exc
    if services.boot_error:
        raise ServiceStartingError(f"the service could not start its task store: {services.boot_error}")
    return services


ServicesDep = Annotated[Services, Depends(get_services)]


def require_api_key(request: Request) -> None:
    """With ``API_KEY`` set, demand ``Authorization: Bearer <key>`` (constant-time compare)."""
    expected = request.app.state.services.settings.api_key
    if not expected:
        return
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    # Starlette decodes header bytes as latin-1: encode back to the bytes the client sent, so a
    # non-ASCII key (sent as UTF-8, as curl does) matches the UTF-8 bytes of API_KEY.
    sent = token.strip().encode("latin-1", "replace")
    if scheme.lower() != "bearer" or not hmac.compare_digest(sent, expected.encode("utf-8")):
        raise UnauthorizedError("missing or wrong API key: send the header 'Authorization: Bearer <API_KEY>'")
