"""All settings, read from the environment in one place and passed down explicitly.

Nothing else in the package reads ``os.environ`` for configuration, so tests build a ``Settings``
with the values they need instead of patching the environment.
"""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Mapping


def _bool(value: str) -> bool:
    return value.strip().lower() in {"1", "true", "yes", "on"}


@dataclass(frozen=True)
class Settings:
    # HTTP
    host: str = "127.0.0.1"  # this machine only; see exposure_refusal() for opening it
    port: int = 5344
    port_health: int | None = None
    api_key: str | None = None
    allow_anonymous: bool = False  # serve a non-loopback bind without API_KEY (tasks need their token)
    cors_origins: tuple[str, ...] = ()
    max_upload_mb: int = 2048
    max_queued_tasks: int = 100  # submissions beyond this many waiting tasks get 429 (0 = no limit)
    min_free_disk_mb: int = 1024  # below this much free space under data_dir: 507 (0 = no floor)
    # Storage
    data_dir: Path = Path("./data")
    database_url: str | None = None  # default: sqlite file under data_dir
    result_ttl_s: float = 24 * 3600.0
    # Object storage (S3-compatible) for uploads and results when a bucket is given
    s3_endpoint: str | None = None  # e.g. http://127.0.0.1:8333 (None: AWS's own endpoint)
    s3_bucket: str | None = None
    s3_access_key: str | None = None
    s3_secret_key: str | None = None
    s3_region: str = "us-east-1"
    s3_prefix: str = ""
    s3_presign_s: float = 3600.0  # lifetime of the result route's presigned redirect
    # Triton
    triton_grpc_url: str = "127.0.0.1:8001"
    triton_http_url: str | None = None  # only used for diagnostics
    triton_min_ready: int = 1  # with several replicas in TRITON_GRPC_URL: /ping 200 while this many are ready
    required_models: tuple[str, ...] = ("detector", "inpainter")
    optional_models: tuple[str, ...] = ("inpainter_256",)
    triton_live_deadline_s: float = 60.0  # Triton gone longer than this -> degraded
    model_load_retries: int = 3
    grpc_timeout_s: float = 60.0  # metadata calls, and the floor of inference deadlines
    grpc_first_timeout_s: float = 900.0  # inference deadline until a model's cost is measured
    grpc_deadline_factor: float = 4.0  # inference deadline = factor x measured cost per item x batch
    triton_ping_timeout_s: float = 2.0  # deadline of liveness/readiness calls
    model_load_timeout_s: float = 600.0  # deadline of one load_model call
    model_poll_interval_s: float = 1.0  # readiness poll while ready
    model_retry_interval_s: float = 60.0  # degraded by a failed load -> try again after this
    # Worker
    max_concurrent_tasks: int = 1
    task_process: bool = True  # each task's pipeline in a child process (False: a thread, as before)
    max_task_attempts: int = 3
    task_retry_backoff_s: float = 5.0  # first retry delay after Triton was unavailable (doubles)
    triton_wait_s: float = 600.0  # waiting tasks fail after this long with no Triton (not while loading)
    progress_interval_s: float = 0.5  # progress written to the DB at most this often
    janitor_interval_s: float = 300.0
    shutdown_grace_s: float = 10.0  # running tasks get this long to stop before the process exits
    node_id: str | None = None  # stable node name for leases (default host:port)
    role: str = "all"  # api (HTTP only) | worker (claims tasks; HTTP for /ping and /metrics) | all
    lease_s: float = 30.0  # a claimed task whose worker stops renewing for this long is requeued
    # video_url downloads
    url_max_mb: int = 2048
    url_timeout_s: float = 300.0
    allow_private_urls: bool = False
    upload_idle_timeout_s: float = 60.0  # an upload that sends nothing for this long is dropped
    upload_timeout_s: float = 3600.0  # ...or that is still arriving after this long (slowloris)
    # Limits
    max_width: int = 4096
    max_height: int = 4096
    max_duration_s: float = 3600.0
    # Pipeline
    detect_batch: int = 8
    inpaint_batch: int = 8
    requests_in_flight: int = 2
    crf: int = 18
    preset: str = "veryfast"
    detect_stride: int = 8  # detector on every k-th frame; intervals that change are bisected
    detect_refine_span: int = 1  # ...until this short (frames left in between get both boxes)
    detect_conf: float = 0.25  # a box this strong counts alone (and triggers bisection)
    detect_conf_low: float = 0.1  # weaker boxes count only when consistent over time at one place
    detect_iou: float = 0.45
    box_margin_frac: float = 0.1  # dilation of detected boxes: fraction of their size...
    box_margin_px: float = 4.0  # ...plus pixels, on every side
    max_gap_frames: int = 12  # missed detections filled up to this many frames
    inpaint_context: float = 0.1  # context around a box in its crop (fraction of its size, >= 16 px)
    matte_crops: int = 48  # crops kept per mark position for the matte estimate
    discover: bool = True  # pass 1 also finds overlays without a template (off: the detector alone)

    def __post_init__(self) -> None:
        if self.role not in ("api", "worker", "all"):
            raise ValueError(f"ROLE must be api, worker or all, not {self.role!r}")

    @property
    def sqlite_default_url(self) -> str:
        return f"sqlite+aiosqlite:///{(self.data_dir / 'tasks.db').resolve()}"

    @property
    def effective_database_url(self) -> str:
        return self.database_url or self.sqlite_default_url

    @property
    def loopback_only(self) -> bool:
        """Whether the bind address is reachable from this machine only."""
        if self.host == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host.strip("[]")).is_loopback
        except ValueError:
            return False  # a host name: may resolve anywhere

    def exposure_refusal(self) -> str | None:
        """Why the service must not start as configured (anonymous on a public address), or None."""
        if self.loopback_only or self.api_key or self.allow_anonymous or self.role == "worker":
            return None  # a worker serves /ping and /metrics only
        return (f"refusing to listen on {self.host} without API_KEY: anyone who can reach this port could "
                "submit videos and read or delete tasks. Set API_KEY=<secret> (clients send 'Authorization: "
                "Bearer <secret>'), or ALLOW_ANONYMOUS=1 if something in front authenticates callers "
                "(RunPod's proxy does) or the network is private; or bind HOST=127.0.0.1.")

    def with_overrides(self, **kwargs) -> "Settings":
        return replace(self, **kwargs)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> "Settings":
        """Build settings from ``env`` (default ``os.environ``); unknown variables are ignored."""
        env = os.environ if env is None else env
        values: dict[str, object] = {}
        for f in fields(cls):
            raw = env.get(f.name.upper())
            if raw is None or raw == "":
                continue
            default = f.default
            if f.name == "port_health":
                values[f.name] = int(raw)
            elif f.name in {"api_key", "database_url", "triton_http_url", "node_id", "s3_endpoint", "s3_bucket",
                            "s3_access_key", "s3_secret_key"}:
                values[f.name] = raw
            elif isinstance(default, bool):
                values[f.name] = _bool(raw)
            elif isinstance(default, int):
                values[f.name] = int(raw)
            elif isinstance(default, float):
                values[f.name] = float(raw)
            elif isinstance(default, Path):
                values[f.name] = Path(raw)
            elif isinstance(default, tuple):
                values[f.name] = tuple(p.strip() for p in raw.split(",") if p.strip())
            else:
                values[f.name] = raw
        return cls(**values)
