"""The HTTP side of the CLI: the few service calls it needs, errors turned into ``CliError``s."""

from __future__ import annotations

from pathlib import Path
from typing import Any, BinaryIO, Callable

import httpx

from orchestrator.cli.errors import EXIT_AUTH, EXIT_UNREACHABLE, CliError

DEFAULT_URL = "http://127.0.0.1:5344"


def error_message(response: httpx.Response) -> str:
    """The service's public error text, whatever the body shape; falls back to the status line."""
    try:
        body = response.json()
    except ValueError:
        body = response.text.strip()[:300]
    if isinstance(body, dict):
        err = body.get("error")
        if isinstance(err, dict) and err.get("message"):
            return str(err["message"])
        if isinstance(err, str) and err:
            return err
        detail = body.get("detail")
        if isinstance(detail, str):
            return detail
        if isinstance(detail, list) and detail:
            return "; ".join(str(d.get("msg", d)) if isinstance(d, dict) else str(d) for d in detail)
        if isinstance(body.get("message"), str):
            return body["message"]
    if isinstance(body, str) and body:
        return body
    return f"HTTP {response.status_code} {response.reason_phrase}".strip()


class ServiceClient:
    """The few calls the CLI needs, with errors turned into ``CliError``s that say what to do."""

    def __init__(self, url: str, api_key: str | None = None, *, timeout_s: float = 30.0,
                 transport: httpx.BaseTransport | None = None) -> None:
        self.url = url.rstrip("/")
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.tokens: dict[str, str] = {}  # task id -> its access token (kept for the tasks we submitted)
        self._http = httpx.Client(base_url=self.url, headers=headers, transport=transport,
                                  timeout=httpx.Timeout(timeout_s, connect=5.0))

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> "ServiceClient":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.TimeoutException as exc:
            raise CliError(f"the service at {self.url} did not answer in time ({exc.__class__.__name__})",
                           EXIT_UNREACHABLE) from exc
        except httpx.TransportError as exc:
            raise CliError(
                f"cannot reach the service at {self.url}: {exc or exc.__class__.__name__}. "
                "Is it running? (start one with `make run`, or use --local)", EXIT_UNREACHABLE,
            ) from exc
        if response.status_code in (401, 403):
            raise CliError(
                f"the service refused the API key ({response.status_code}: {error_message(response)}); "
                "pass --api-key or set API_KEY", EXIT_AUTH,
            )
        return response

    def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self._request(method, path, **kwargs)
        if response.status_code >= 400:
            raise CliError(f"{method} {path}: {error_message(response)}")
        return response.json()

    def ping(self) -> tuple[int, dict]:
        """(status code, body) of /ping: 200 ready, 204 loading, 503 degraded."""
        response = self._request("GET", "/ping")
        try:
            body = response.json() if response.content else {}
        except ValueError:
            body = {}
        return response.status_code, body if isinstance(body, dict) else {}

    def submit(self, path: Path, *, regions: str | None = None, detect: bool | None = None,
               method: str | None = None, on_upload: Callable[[int, int], None] | None = None) -> dict:
        data: dict[str, str] = {}
        if regions:
            data["regions"] = regions
        if detect is not None:
            data["detect"] = "true" if detect else "false"
        if method:
            data["method"] = method
        with path.open("rb") as raw:
            fh = _ReadProgress(raw, path.stat().st_size, on_upload) if on_upload else raw
            # Uploads can be large: no overall timeout on writing the body.
            response = self._request("POST", "/v1/tasks", data=data,
                                     files={"video": (path.name, fh, "application/octet-stream")},
                                     timeout=httpx.Timeout(None, connect=5.0))
        if response.status_code >= 400:
            raise CliError(f"{path.name}: rejected by the service: {error_message(response)}")
        body = response.json()
        if body.get("token"):
            self.tokens[body["task_id"]] = body["token"]
        return body

    def _task_headers(self, task_id: str) -> dict[str, str]:
        token = self.tokens.get(task_id)
        return {"X-Task-Token": token} if token else {}

    def get(self, task_id: str) -> dict:
        return self._json("GET", f"/v1/tasks/{task_id}", headers=self._task_headers(task_id))

    def list(self, *, limit: int = 50, status: str | None = None) -> list[dict]:
        params: dict[str, Any] = {"limit": limit}
        if status:
            params["status"] = status
        return _items(self._json("GET", "/v1/tasks", params=params))

    def download(self, task: dict, dest: Path) -> int:
        """Stream the result to ``dest`` through a temporary file; returns the size in bytes."""
        path = task.get("result_url") or f"/v1/tasks/{task['task_id']}/result"
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(f".{dest.name}.part")
        try:
            with self._http.stream("GET", path, headers=self._task_headers(task["task_id"]),
                                   timeout=httpx.Timeout(120.0, connect=5.0)) as response:
                if response.status_code in (401, 403):
                    response.read()
                    raise CliError(f"the service refused the API key: {error_message(response)}", EXIT_AUTH)
                if response.status_code >= 400:
                    response.read()
                    raise CliError(f"download of {task['task_id']} failed: {error_message(response)}")
                size = 0
                with tmp.open("wb") as out:
                    for chunk in response.iter_bytes(1 << 20):
                        out.write(chunk)
                        size += len(chunk)
            tmp.replace(dest)
            return size
        except httpx.TransportError as exc:
            raise CliError(f"download of {task['task_id']} interrupted: {exc}", EXIT_UNREACHABLE) from exc
        finally:
            tmp.unlink(missing_ok=True)

    def queue_positions(self) -> dict[str, int]:
        """task id -> place in the queue (0 = next), from the queued list (newest first)."""
        try:
            body = self._json("GET", "/v1/tasks", params={"status": "queued", "limit": 200})
        except CliError:
            return {}
        items = _items(body)
        total = body.get("total") if isinstance(body, dict) else None
        total = total if isinstance(total, int) else len(items)
        return {str(t.get("task_id")): total - 1 - i for i, t in enumerate(items)}


class _ReadProgress:
    """A file wrapper that reports bytes read, so the upload can show a progress bar."""

    def __init__(self, raw: BinaryIO, total: int, callback: Callable[[int, int], None]) -> None:
        self._raw, self._total, self._callback = raw, total, callback
        self.name = getattr(raw, "name", "video")

    def read(self, size: int = -1) -> bytes:
        data = self._raw.read(size)
        self._callback(self._raw.tell(), self._total)
        return data

    def seek(self, offset: int, whence: int = 0) -> int:
        return self._raw.seek(offset, whence)

    def tell(self) -> int:
        return self._raw.tell()

    def fileno(self) -> int:
        return self._raw.fileno()


def _items(body: Any) -> list[dict]:
    """The task list, whether the API returns a bare list or a page object."""
    if isinstance(body, list):
        return body
    if isinstance(body, dict):
        for key in ("items", "tasks", "results", "data"):
            if isinstance(body.get(key), list):
                return body[key]
    return []

