"""The service's exceptions. Each carries a public message that is safe to show to users.

The HTTP layer maps ``AppError.status_code`` to the response in one handler; the worker decides
retry vs. fail from the class: ``TritonUnavailableError`` is retried, ``InputError`` is not.
"""

from __future__ import annotations


class AppError(Exception):
    status_code = 500
    code = "internal_error"
    headers: dict[str, str] | None = None  # extra response headers (Retry-After...)

    def __init__(self, public_message: str, *, detail: str | None = None) -> None:
        super().__init__(public_message)
        self.public_message = public_message
        self.detail = detail  # internal detail for logs, never sent to clients


class InputError(AppError):
    """The user's input cannot be processed (not a video, too large, bad options...)."""

    status_code = 400
    code = "invalid_input"


class PayloadTooLargeError(InputError):
    status_code = 413
    code = "payload_too_large"


class NotFoundError(AppError):
    status_code = 404
    code = "not_found"


class ConflictError(AppError):
    status_code = 409
    code = "conflict"


class UnauthorizedError(AppError):
    status_code = 401
    code = "unauthorized"


class TritonUnavailableError(AppError):
    """Triton is unreachable, timed out, or a model is not ready: worth retrying later."""

    status_code = 503
    code = "triton_unavailable"


class ModelLoadError(AppError):
    """A required model failed to load: the service is degraded until it loads."""

    status_code = 503
    code = "model_load_failed"


class TaskCancelledError(AppError):
    status_code = 409
    code = "cancelled"


class OutputError(AppError):
    """The result could not be written (disk full, unwritable directory)."""

    status_code = 500
    code = "output_error"


class TooManyTasksError(AppError):
    """The queue is full (``MAX_QUEUED_TASKS``): try again later."""

    status_code = 429
    code = "too_many_tasks"

    def __init__(self, public_message: str, *, retry_after_s: int) -> None:
        super().__init__(public_message)
        self.headers = {"Retry-After": str(retry_after_s)}
