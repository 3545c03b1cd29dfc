"""Who may see which task.

Three ways to run, from ``Settings``:
- open: no ``API_KEY`` on a loopback bind (the embedded default): every route is open, as the
  person at this machine owns every task;
- key: with ``API_KEY`` the key opens everything; each task's own token opens that task alone
  (status, result, delete: header ``X-Task-Token`` or ``?token=`` for links);
- anonymous: no key on a public bind with ``ALLOW_ANONYMOUS=1``: anyone may submit, each task
  opens only with its token, and there is no task list.

The token is returned once, at submission; the database keeps its SHA-256. A credential that does
not open the task answers 404, as an unknown id does, so tokens reveal nothing about other tasks.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from typing import TYPE_CHECKING

from fastapi import Request

from orchestrator.errors import NotFoundError, UnauthorizedError

if TYPE_CHECKING:
    from orchestrator.api.deps import Services
    from orchestrator.tasks.store import Task

TOKEN_HEADER = "X-Task-Token"
TOKEN_QUERY = "token"


def new_token() -> tuple[str, str]:
    """(token for the client, hash for the database): 256 random bits."""
    token = secrets.token_urlsafe(32)
    return token, hash_token(token)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def is_open(settings) -> bool:
    return not settings.api_key and settings.loopback_only


def _bearer(request: Request) -> str | None:
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    return value.strip() if scheme.lower() == "bearer" and value.strip() else None


def has_key(request: Request, settings) -> bool:
    """The request carries the right API key (constant-time compare). Starlette decodes header
    bytes as latin-1: encode back, so a non-ASCII key sent as UTF-8 matches ``API_KEY``'s bytes."""
    sent = _bearer(request)
    if not settings.api_key or sent is None:
        return False
    return hmac.compare_digest(sent.encode("latin-1", "replace"), settings.api_key.encode("utf-8"))


def _token(request: Request) -> str | None:
    return request.headers.get(TOKEN_HEADER) or request.query_params.get(TOKEN_QUERY) or None


def _missing_key() -> UnauthorizedError:
    return UnauthorizedError("missing or wrong API key: send the header 'Authorization: Bearer <API_KEY>'")


def require_submit(request: Request) -> None:
    """Submitting needs the key when there is one; open and anonymous servers take anyone."""
    settings = request.app.state.services.settings
    if settings.api_key and not has_key(request, settings):
        raise _missing_key()


def require_list(request: Request) -> None:
    """The list reveals every task id: the key only (open servers excepted)."""
    settings = request.app.state.services.settings
    if is_open(settings) or has_key(request, settings):
        return
    if not settings.api_key:
        raise UnauthorizedError("this server has no API key (ALLOW_ANONYMOUS): there is no task list; "
                                "ask for each task with the token returned when it was submitted")
    raise _missing_key()


async def authorized_task(request: Request, services: "Services", task_id: str) -> "Task":
    """The task, if this request may see it (see the module docstring); else 401 or 404."""
    settings = services.settings
    token = _token(request)
    opened = is_open(settings) or has_key(request, settings)
    if not opened and token is None:
        if settings.api_key:
            raise _missing_key()
        raise UnauthorizedError(f"send the task's token (header '{TOKEN_HEADER}' or '?{TOKEN_QUERY}=')")
    task = await services.store.get(task_id)
    if task is not None and not opened:
        opened = bool(task.token) and hmac.compare_digest(hash_token(token), task.token)
    if task is None or not opened:
        raise NotFoundError(f"no task with id {task_id!r}")
    return task
