"""Helpers for the reliability tests (issue 8): bad input files, a misbehaving HTTP source on
127.0.0.1, a /ping latency poller, and the orchestrator as a real process that can be SIGKILLed.
"""

from __future__ import annotations

import asyncio
import http.server
import os
import signal
import socketserver
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import av
import cv2
import httpx
import numpy as np

from media import make_clip
from service_support import ROOT

from orchestrator.triton.local import free_port

FINAL = ("finished", "failed", "cancelled")


# -- bad input files -----------------------------------------------------------------------------
def faststart_copy(src: Path, dst: Path) -> Path:
    """Remux with the index (moov) in front, as phones and our own encoder write MP4s."""
    with av.open(str(src)) as i, av.open(str(dst), "w", format="mp4", options={"movflags": "+faststart"}) as o:
        stream = o.add_stream_from_template(i.streams.video[0])
        for packet in i.demux(i.streams.video[0]):
            if packet.dts is None:
                continue
            packet.stream = stream
            o.mux(packet)
    return dst


def truncated_mid_mdat(data: bytes) -> bytes:
    """The first half of the media data: what an interrupted upload or copy leaves."""
    start = data.find(b"mdat")
    assert start > 0, "no mdat box"
    return data[: start + (len(data) - start) // 2]


def audio_only(path: Path) -> bytes:
    with av.open(str(path), "w", format="mp4") as c:
        s = c.add_stream("aac", rate=44100)
        s.layout = "mono"
        for i in range(20):
            frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="flt", layout="mono")
            frame.sample_rate, frame.pts = 44100, i * 1024
            for p in s.encode(frame):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    return path.read_bytes()


def png_image() -> bytes:
    ok, buf = cv2.imencode(".png", np.full((48, 64, 3), 90, np.uint8))
    assert ok
    return buf.tobytes()


def unknown_codec(data: bytes) -> bytes:
    """A valid MP4 whose video sample entry names a codec FFmpeg has no decoder for."""
    assert b"avc1" in data and b"avcC" in data
    return data.replace(b"avc1", b"zzz9").replace(b"avcC", b"zzzC")


def clip_bytes(path: Path, **kw) -> bytes:
    make_clip(path, **kw)
    return path.read_bytes()


def frame_count(path: Path) -> int:
    with av.open(str(path)) as container:
        return sum(1 for _ in container.decode(video=0))


# -- an HTTP source that misbehaves on purpose -----------------------------------------------------
class _SourceHandler(http.server.BaseHTTPRequestHandler):
    """``/ok`` a clip; ``/held`` sends half of it until ``release`` is set; ``/slow`` dribbles bytes; ``/hang`` never answers; ``/huge`` streams without
    a Content-Length past any limit; ``/redirect-loop`` redirects to itself, ``/redirect-file`` to
    ``file:///etc/passwd``, ``/redirect-ok`` to ``/ok``."""

    payload = b""
    protocol_version = "HTTP/1.1"

    def do_GET(self):  # noqa: N802 - http.server API
        try:
            self._get()
        except (BrokenPipeError, ConnectionResetError):
            pass  # the service hung up on us, as it should

    def _get(self):
        server: SourceServer = self.server.owner  # type: ignore[attr-defined]
        if self.path == "/ok.mp4":
            self.send_response(200)
            self.send_header("Content-Length", str(len(self.payload)))
            self.end_headers()
            self.wfile.write(self.payload)
        elif self.path == "/slow.mp4":
            self.send_response(200)
            self.send_header("Content-Length", str(len(self.payload)))
            self.end_headers()
            for i in range(len(self.payload)):
                if server.closing.wait(0.2):
                    return
                self.wfile.write(self.payload[i : i + 1])
                self.wfile.flush()
        elif self.path == "/held.mp4":  # half the file, then the rest once the test releases it
            self.send_response(200)
            self.send_header("Content-Length", str(len(self.payload)))
            self.end_headers()
            half = len(self.payload) // 2
            self.wfile.write(self.payload[:half])
            self.wfile.flush()
            server.release.wait(120)
            self.wfile.write(self.payload[half:])
        elif self.path == "/hang.mp4":
            server.closing.wait(120)
        elif self.path == "/huge.mp4":
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            chunk = b"\0" * 65536
            for _ in range(64):  # 4 MB, no Content-Length
                self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            self.wfile.write(b"0\r\n\r\n")
        elif self.path == "/redirect-file.mp4":  # a hop to another scheme must be refused too
            self.send_response(302)
            self.send_header("Location", "file:///etc/passwd")
            self.send_header("Content-Length", "0")
            self.end_headers()
        elif self.path == "/redirect-ok.mp4":
            self.send_response(301)
            self.send_header("Location", "/ok.mp4")
            self.send_header("Content-Length", "0")
            self.end_headers()
        elif self.path == "/redirect-loop.mp4":
            self.send_response(302)
            self.send_header("Location", "/redirect-loop.mp4")
            self.send_header("Content-Length", "0")
            self.end_headers()
        else:
            self.send_error(404)

    def log_message(self, *args):
        pass


class SourceServer:
    """A threaded HTTP server on 127.0.0.1 started by the test (issue 8, item 6)."""

    def __init__(self, payload: bytes) -> None:
        handler = type("Handler", (_SourceHandler,), {"payload": payload})
        self.closing = threading.Event()
        self.release = threading.Event()
        self.httpd = socketserver.ThreadingTCPServer(("127.0.0.1", 0), handler)
        self.httpd.daemon_threads = True
        self.httpd.owner = self  # type: ignore[attr-defined]
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> "SourceServer":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.closing.set()
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()


# -- /ping latency under load -----------------------------------------------------------------------
_POLLER = """
import sys, time, httpx
url, interval, timeout, out = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
with httpx.Client(timeout=timeout) as client, open(out, "w", buffering=1) as f:
    while True:
        t0 = time.perf_counter()
        try:
            status = client.get(url).status_code
        except httpx.HTTPError as exc:
            status = type(exc).__name__
        f.write(f"{time.time() - (time.perf_counter() - t0):.4f} {time.perf_counter() - t0:.5f} {status}\\n")
        time.sleep(interval)
"""


class PingPoller:
    """Polls ``url + path`` every ``interval_s`` from a separate process (so the test's own work
    does not add to the figures); keeps every latency, status and start time (epoch seconds)."""

    def __init__(self, url: str, interval_s: float = 0.05, timeout_s: float = 10.0, path: str = "/ping") -> None:
        self.url = url
        self.path = path
        self.interval_s = interval_s
        self.timeout_s = timeout_s
        self.latencies: list[float] = []
        self.statuses: list[int | str] = []
        self.times: list[float] = []
        self._proc: subprocess.Popen | None = None
        self._out: Path | None = None

    async def __aenter__(self) -> "PingPoller":
        import tempfile

        fd, name = tempfile.mkstemp(prefix="ping-", suffix=".log")
        os.close(fd)
        self._out = Path(name)
        self._proc = subprocess.Popen([sys.executable, "-c", _POLLER, f"{self.url}{self.path}",
                                       str(self.interval_s), str(self.timeout_s), name])
        deadline = time.monotonic() + 30
        while not self._out.read_text().strip() and time.monotonic() < deadline:
            await asyncio.sleep(0.05)  # the poller has started polling
        return self

    async def __aexit__(self, *exc) -> None:
        self._proc.terminate()
        self._proc.wait(10)
        for line in self._out.read_text().splitlines():
            parts = line.split()
            if len(parts) != 3:
                continue
            self.times.append(float(parts[0]))
            self.latencies.append(float(parts[1]))
            self.statuses.append(int(parts[2]) if parts[2].isdigit() else parts[2])
        self._out.unlink(missing_ok=True)

    def summary(self) -> str:
        lat = sorted(self.latencies)
        if not lat:
            return "no /ping samples"
        p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))]
        return (f"{self.path} n={len(lat)} p50={statistics.median(lat) * 1000:.1f} ms "
                f"p99={p99 * 1000:.1f} ms max={lat[-1] * 1000:.1f} ms")


# -- the orchestrator as a process -----------------------------------------------------------------
class OrchestratorProcess:
    """``python -m orchestrator`` on a free port with the given environment; logs to a file."""

    def __init__(self, data_dir: Path, triton_grpc_url: str, log_path: Path, **env: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        self.env = dict(os.environ, PORT=str(self.port), DATA_DIR=str(data_dir),
                        TRITON_GRPC_URL=triton_grpc_url, LOG_LEVEL="info")
        self.env.pop("API_KEY", None)
        self.env.update(env)
        self.proc: subprocess.Popen | None = None

    def start(self) -> "OrchestratorProcess":
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([sys.executable, "-m", "orchestrator", "--host", "127.0.0.1"],
                                     cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        return self

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> int | None:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(signal.SIGINT)
        try:
            return self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait(10)

    def log_tail(self, n: int = 4000) -> str:
        return self.log_path.read_text(errors="replace")[-n:] if self.log_path.exists() else ""


async def wait_until(predicate, timeout_s: float, what: str, interval_s: float = 0.2):
    """Like service_support.wait_for, but transport errors (a restarting server) count as 'not yet'."""
    deadline = time.monotonic() + timeout_s
    last = None
    while time.monotonic() < deadline:
        try:
            last = await predicate()
        except httpx.TransportError as exc:
            last = exc
        else:
            if last:
                return last
        await asyncio.sleep(interval_s)
    raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what} (last: {last!r})")


async def all_final(client: httpx.AsyncClient, ids) -> dict[str, dict] | None:
    """Every task's view once all of them are final, else None."""
    tasks = {}
    for task_id in ids:
        r = await client.get(f"/v1/tasks/{task_id}")
        if r.status_code == 503 and r.json()["error"]["code"] == "starting":
            return None  # a (re)starting process
        assert r.status_code == 200, r.text
        task = r.json()
        if task["status"] not in FINAL:
            return None
        tasks[task_id] = task
    return tasks
