"""Where task files live: the local data directory (default) or an S3-compatible bucket.

A task's ``input_path``/``output_path`` hold either a local path or ``s3://bucket/key``. With S3
settings (``S3_ENDPOINT``/``S3_BUCKET``…), uploads, downloaded ``video_url``s and results go to
the bucket: a worker fetches the input to a local scratch file (PyAV wants a seekable file),
writes the result locally, and uploads it under a key of its own attempt
(``results/<task>.a<n>.mp4``); the result route answers with a presigned redirect. Every removal
(cancel, delete, expiry by the janitor, an attempt that lost its lease) goes through ``remove``,
so no object is left behind.
"""

from __future__ import annotations

import functools
import logging
from pathlib import Path

from orchestrator.errors import AppError
from orchestrator.settings import Settings

LOGGER = logging.getLogger(__name__)

SCHEME = "s3://"


class ObjectStoreError(AppError):
    """The object store could not be reached or refused a request (retried like Triton's)."""

    status_code = 503
    code = "storage_unavailable"


def is_remote(location: str | None) -> bool:
    return bool(location) and location.startswith(SCHEME)


class Storage:
    """Local disk, or S3 when ``settings.s3_bucket`` is set. Blocking: call from threads."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.bucket = settings.s3_bucket
        self._client = None

    @property
    def remote(self) -> bool:
        return bool(self.bucket)

    def client(self):
        if self._client is None:
            import boto3
            from botocore.config import Config

            s = self.settings
            self._client = boto3.client(
                "s3", endpoint_url=s.s3_endpoint, aws_access_key_id=s.s3_access_key,
                aws_secret_access_key=s.s3_secret_key, region_name=s.s3_region,
                config=Config(s3={"addressing_style": "path"}, signature_version="s3v4",
                              retries={"max_attempts": 3, "mode": "standard"}, connect_timeout=5,
                              read_timeout=60))
        return self._client

    def ensure_bucket(self) -> None:
        """Create the bucket if it is missing (a fresh store from compose or ``make cluster``)."""
        client = self.client()
        try:
            client.head_bucket(Bucket=self.bucket)
        except Exception:  # noqa: BLE001 - missing (404) or not reachable yet: try to create
            self._call("create bucket", client.create_bucket, Bucket=self.bucket)
            LOGGER.info("created bucket %s", self.bucket)

    def key(self, name: str) -> str:
        return f"{self.settings.s3_prefix.strip('/')}/{name}".lstrip("/")

    def _split(self, location: str) -> tuple[str, str]:
        bucket, _, key = location[len(SCHEME):].partition("/")
        return bucket, key

    def _call(self, what: str, fn, *args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except Exception as exc:  # noqa: BLE001 - botocore raises many types; all mean "not now"
            raise ObjectStoreError(f"the object store is unavailable ({what})", detail=f"{type(exc).__name__}: {exc}") from exc

    def put(self, local: Path, name: str) -> str:
        """Store ``local`` under ``name`` (multipart for large files); returns its location. With
        local storage the file simply stays where it is."""
        if not self.remote:
            return str(local)
        key = self.key(name)
        self._call("upload", self.client().upload_file, str(local), self.bucket, key)
        return f"{SCHEME}{self.bucket}/{key}"

    def fetch(self, location: str, scratch: Path) -> Path:
        """A local file with the content of ``location`` (downloaded to ``scratch`` if remote)."""
        if not is_remote(location):
            return Path(location)
        bucket, key = self._split(location)
        scratch.parent.mkdir(parents=True, exist_ok=True)
        self._call("download", self.client().download_file, bucket, key, str(scratch))
        return scratch

    def remove(self, location: str | None) -> None:
        if not location:
            return
        if is_remote(location):
            bucket, key = self._split(location)
            try:
                self._call("delete", self.client().delete_object, Bucket=bucket, Key=key)
            except ObjectStoreError as exc:
                LOGGER.warning("could not remove %s: %s", location, exc.detail)
            return
        try:
            Path(location).unlink(missing_ok=True)
        except OSError as exc:
            LOGGER.warning("could not remove %s: %s", location, exc)

    def exists(self, location: str | None) -> bool:
        if not location:
            return False
        if not is_remote(location):
            return Path(location).is_file()
        bucket, key = self._split(location)
        try:
            self.client().head_object(Bucket=bucket, Key=key)
            return True
        except Exception:  # noqa: BLE001 - missing or unreachable: not servable now
            return False

    def presigned(self, location: str, filename: str) -> str:
        bucket, key = self._split(location)
        return self._call("presign", self.client().generate_presigned_url, "get_object", ExpiresIn=int(
            self.settings.s3_presign_s), Params={"Bucket": bucket, "Key": key, "ResponseContentType": "video/mp4",
                                                 "ResponseContentDisposition": f'attachment; filename="{filename}"'})

    def keys(self, prefix: str = "") -> list[str]:
        """Object keys under ``prefix`` (tests and the janitor's audits)."""
        pages = self.client().get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=self.key(prefix))
        return [o["Key"] for page in pages for o in page.get("Contents", [])]


@functools.lru_cache(maxsize=8)
def storage_for(settings: Settings) -> Storage:
    """One ``Storage`` (one S3 client, thread-safe) per settings."""
    return Storage(settings)
