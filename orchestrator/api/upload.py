"""Request bodies read as a stream: the video part goes to disk chunk by chunk under a size limit.

Starlette's ``request.form()`` would spool the whole upload before the route runs, so the size
limit could only be checked afterwards; here the 413 comes as soon as the limit is passed, and
an upload that stalls longer than ``upload_idle_timeout_s`` is dropped. Parsing and writing run in
a thread, about a megabyte at a time, so a slow disk never stalls the event loop (and /ping).
"""

from __future__ import annotations

import asyncio
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from urllib.parse import parse_qsl

from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import ClientDisconnect, Request

from orchestrator import metrics
from orchestrator.errors import AppError, InputError, PayloadTooLargeError

LOGGER = logging.getLogger(__name__)

FILE_FIELD = "video"
MAX_FIELD_BYTES = 64 * 1024
MAX_FIELDS = 16
FORM_OVERHEAD = 1024 * 1024  # multipart headers and small fields beside the file
WRITE_BATCH = 1024 * 1024  # bytes handed to the parser thread at once
DISK_CHECK_BYTES = 64 * 1024 * 1024  # free space re-checked after every this many bytes written
VIDEO_SUFFIXES = {".mp4", ".mov", ".m4v", ".webm", ".mkv", ".avi"}


class UploadTimeoutError(InputError):
    status_code = 408
    code = "request_timeout"


class StorageError(AppError):
    """The server could not store the upload (disk full, unwritable data directory)."""

    status_code = 507
    code = "insufficient_storage"


@dataclass
class ReceivedForm:
    fields: dict[str, str] = field(default_factory=dict)
    filename: str | None = None  # sanitised client file name, for display only
    file_bytes: int | None = None  # None: no file part


def safe_filename(name: str | None) -> str | None:
    """The last path component with unusual characters replaced; never used as a path."""
    if not name:
        return None
    base = PurePosixPath(name.replace("\\", "/")).name
    base = re.sub(r"[^A-Za-z0-9._ -]", "_", base).strip(" .")
    return base[:120] or None


def video_suffix(filename: str | None) -> str:
    suffix = PurePosixPath(filename or "").suffix.lower()
    return suffix if suffix in VIDEO_SUFFIXES else ".video"


class _Collector:
    """Callbacks for python-multipart's streaming parser."""

    def __init__(self, dest: Path, max_bytes: int, max_mb: int, min_free_mb: int = 0) -> None:
        self.dest = dest
        self.max_bytes = max_bytes
        self.max_mb = max_mb
        self.min_free_mb = min_free_mb
        self._next_disk_check = DISK_CHECK_BYTES
        self.form = ReceivedForm()
        self._header_name = b""
        self._header_value = b""
        self._headers: dict[bytes, bytes] = {}
        self._name: str | None = None
        self._buffer: bytearray | None = None
        self._file = None

    def callbacks(self) -> dict:
        return {
            "on_part_begin": self.on_part_begin, "on_header_field": self.on_header_field,
            "on_header_value": self.on_header_value, "on_header_end": self.on_header_end,
            "on_headers_finished": self.on_headers_finished, "on_part_data": self.on_part_data,
            "on_part_end": self.on_part_end,
        }

    def on_part_begin(self) -> None:
        self._headers, self._name, self._buffer = {}, None, None

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._header_name += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def on_header_end(self) -> None:
        self._headers[self._header_name.lower()] = self._header_value
        self._header_name, self._header_value = b"", b""

    def on_headers_finished(self) -> None:
        _, params = parse_options_header(self._headers.get(b"content-disposition", b""))
        name = params.get(b"name", b"").decode("utf-8", "replace")
        self._name = name
        if b"filename" in params:
            if name != FILE_FIELD:
                raise InputError(f"unexpected file field {name!r}: send the video in the field '{FILE_FIELD}'")
            if self.form.file_bytes is not None:
                raise InputError(f"only one file may be sent in '{FILE_FIELD}'")
            self.form.filename = safe_filename(params[b"filename"].decode("utf-8", "replace"))
            self.form.file_bytes = 0
            self._file = open(self.dest, "wb")
        else:
            if len(self.form.fields) >= MAX_FIELDS:
                raise InputError("too many form fields")
            self._buffer = bytearray()

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        if self._file is not None:
            self.form.file_bytes += end - start
            if self.form.file_bytes > self.max_bytes:
                raise PayloadTooLargeError(f"the upload is larger than the limit of {self.max_mb} MB (MAX_UPLOAD_MB)")
            self._file.write(data[start:end])
            if self.min_free_mb and self.form.file_bytes >= self._next_disk_check:
                self._next_disk_check += DISK_CHECK_BYTES
                self._check_disk()
        elif self._buffer is not None:
            self._buffer += data[start:end]
            if len(self._buffer) > MAX_FIELD_BYTES:
                raise InputError(f"form field {self._name!r} is longer than {MAX_FIELD_BYTES} bytes")

    def on_part_end(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        elif self._buffer is not None and self._name:
            try:
                self.form.fields[self._name] = self._buffer.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise InputError(f"form field {self._name!r} is not UTF-8 text") from exc
        self._buffer = None

    def _check_disk(self) -> None:
        import shutil

        free_mb = shutil.disk_usage(self.dest.parent).free / (1024 * 1024)
        if free_mb < self.min_free_mb:
            raise StorageError(f"the server ran short of disk space during the upload ({free_mb:.0f} MB free, "
                               f"{self.min_free_mb} MB must stay free: MIN_FREE_DISK_MB)")

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


async def _chunks(request: Request, idle_timeout_s: float, total_timeout_s: float | None = None):
    """The body's chunks; a stall longer than ``idle_timeout_s`` or a body still arriving after
    ``total_timeout_s`` (a trickle that never stalls: slowloris) is a 408."""
    stream = request.stream().__aiter__()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + total_timeout_s if total_timeout_s else None
    while True:
        wait = idle_timeout_s if deadline is None else min(idle_timeout_s, deadline - loop.time())
        try:
            chunk = await asyncio.wait_for(stream.__anext__(), max(wait, 0.0))
        except StopAsyncIteration:
            return
        except asyncio.TimeoutError as exc:
            if deadline is not None and loop.time() >= deadline:
                raise UploadTimeoutError(f"the upload took longer than {total_timeout_s:.0f} s") from exc
            raise UploadTimeoutError(f"the upload stalled for more than {idle_timeout_s:.0f} s") from exc
        if chunk:
            yield chunk


async def _feed(parser: MultipartParser, request: Request, idle_timeout_s: float,
                total_timeout_s: float | None) -> None:
    """Hand the body to the parser (which writes the file) in a worker thread, in ~1 MB batches,
    or whatever arrived within 0.1 s for a slow sender (its bytes reach the disk as they come)."""
    loop = asyncio.get_running_loop()
    batch, handed = bytearray(), loop.time()
    async for chunk in _chunks(request, idle_timeout_s, total_timeout_s):
        batch += chunk
        if len(batch) >= WRITE_BATCH or loop.time() - handed > 0.1:
            data, batch = bytes(batch), bytearray()
            await asyncio.to_thread(parser.write, data)
            handed = loop.time()
    if batch:
        await asyncio.to_thread(parser.write, bytes(batch))
    await asyncio.to_thread(parser.finalize)


async def receive_form(request: Request, dest: Path, *, max_mb: int, idle_timeout_s: float,
                       total_timeout_s: float | None = None, min_free_mb: int = 0) -> ReceivedForm:
    """Parse a multipart (or url-encoded) form; the ``video`` file part is written to ``dest``.

    On any error ``dest`` is removed and an ``InputError`` (400/408/413) is raised.
    """
    max_bytes = max_mb * 1024 * 1024
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes + FORM_OVERHEAD:
        raise PayloadTooLargeError(f"the upload is larger than the limit of {max_mb} MB (MAX_UPLOAD_MB)")
    content_type, params = parse_options_header(request.headers.get("content-type", ""))
    if content_type == b"application/x-www-form-urlencoded":
        body = bytearray()
        async for chunk in _chunks(request, idle_timeout_s, total_timeout_s):
            body += chunk
            if len(body) > MAX_FIELD_BYTES * 4:
                raise PayloadTooLargeError("url-encoded form too large; upload files as multipart/form-data")
        return ReceivedForm(fields=dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True)))
    if content_type != b"multipart/form-data" or b"boundary" not in params:
        raise InputError("send the task as multipart/form-data (field 'video') or a form with 'video_url'")
    collector = _Collector(dest, max_bytes, max_mb, min_free_mb)
    try:
        parser = MultipartParser(params[b"boundary"], collector.callbacks())
        await _feed(parser, request, idle_timeout_s, total_timeout_s)
        if collector.form.file_bytes is not None:
            metrics.UPLOAD_BYTES.inc(collector.form.file_bytes)
        return collector.form
    except (InputError, StorageError):
        collector.close()
        dest.unlink(missing_ok=True)
        raise
    except ClientDisconnect:
        collector.close()
        dest.unlink(missing_ok=True)
        raise
    except OSError as exc:
        collector.close()
        dest.unlink(missing_ok=True)
        LOGGER.error("could not store an upload in %s: %s", dest.parent, exc)
        raise StorageError(f"the server could not store the upload ({exc.strerror or exc})") from exc
    except Exception as exc:  # noqa: BLE001 - malformed multipart from the parser
        collector.close()
        dest.unlink(missing_ok=True)
        raise InputError(f"malformed multipart body ({type(exc).__name__})", detail=str(exc)) from exc
    finally:
        collector.close()
