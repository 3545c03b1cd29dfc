"""A large upload streaming in does not hold up /ping: the body is parsed and written in a worker
thread (orchestrator/api/upload.py), so the event loop stays free.

The orchestrator runs as a real process; the upload comes from another process (a streamed
multipart body of ``UPLOAD_MB`` MB, not held in memory) and /ping is polled every 20 ms by a third.
No Triton is needed: /ping answers 204 throughout; what is measured is how fast. Every poll must be
answered within the poller's 1 s timeout (a blocked loop would miss it); p50/p99 are printed.
512 MB streams in about 7 s on the 2-core CI machine.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time

import httpx
import pytest

from reliability_support import OrchestratorProcess, PingPoller, wait_until

from orchestrator.triton.local import free_port

pytestmark = pytest.mark.integration

UPLOAD_MB = 512

_UPLOADER = """
import sys, httpx
url, mb = sys.argv[1], int(sys.argv[2])
boundary = "deploy-upload-boundary"
head = (f"--{boundary}\\r\\nContent-Disposition: form-data; name=\\"video\\"; filename=\\"big.mp4\\"\\r\\n"
        "Content-Type: video/mp4\\r\\n\\r\\n").encode()
tail = f"\\r\\n--{boundary}--\\r\\n".encode()
chunk = bytes(range(256)) * 4096  # 1 MB

def body():
    yield head
    for _ in range(mb):
        yield chunk
    yield tail

size = len(head) + mb * len(chunk) + len(tail)
r = httpx.post(url, content=body(), timeout=600,
               headers={"Content-Type": f"multipart/form-data; boundary={boundary}", "Content-Length": str(size)})
print(r.status_code, r.text[:300])
"""


async def test_ping_stays_fast_while_a_large_upload_streams(tmp_path):
    service = OrchestratorProcess(tmp_path / "data", f"127.0.0.1:{free_port()}", tmp_path / "orch.log",
                                  MAX_UPLOAD_MB=str(UPLOAD_MB + 16), MIN_FREE_DISK_MB="0").start()
    try:
        async with httpx.AsyncClient(base_url=service.url, timeout=5) as client:
            await wait_until(lambda: _answers(client), 60, "/ping")
        async with PingPoller(service.url, interval_s=0.02, timeout_s=1.0) as poller:
            await asyncio.sleep(1.0)  # a baseline before the upload
            started = time.time()
            upload = await asyncio.to_thread(
                subprocess.run, [sys.executable, "-c", _UPLOADER, f"{service.url}/v1/tasks", str(UPLOAD_MB)],
                capture_output=True, text=True, timeout=600)
            took = time.time() - started
        assert upload.returncode == 0 and upload.stdout.startswith("202"), upload.stdout + upload.stderr
        during = [(lat, status) for t, lat, status in zip(poller.times, poller.latencies, poller.statuses)
                  if started <= t <= started + took]
        lat = sorted(latency for latency, _ in during)
        p50, p99 = lat[len(lat) // 2], lat[min(len(lat) - 1, int(len(lat) * 0.99))]
        print(f"\n{UPLOAD_MB} MB upload in {took:.1f} s ({UPLOAD_MB / took:.0f} MB/s); /ping during it: "
              f"n={len(lat)} p50={p50 * 1000:.1f} ms p99={p99 * 1000:.1f} ms max={lat[-1] * 1000:.1f} ms")
        assert len(during) >= 10, "too few /ping samples during the upload to judge"
        assert all(status == 204 for _, status in during), sorted({str(s) for _, s in during})
    finally:
        service.stop()


async def _answers(client: httpx.AsyncClient) -> bool:
    return (await client.get("/ping")).status_code in (200, 204)
