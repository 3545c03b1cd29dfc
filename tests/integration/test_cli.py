"""``sora-unmark`` as a user runs it (a subprocess) against the real service and a real Triton."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import httpx
import pytest

from client_support import CLIP_FRAMES, REGIONS, frame_count, live_service, make_marked_clip, repository_for_tests
from service_support import running_app, test_settings

from orchestrator.triton.local import free_port

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


async def run_cli(*args: str, env: dict | None = None, timeout_s: float = 240.0) -> tuple[int, str, str]:
    """Run the CLI in a child process (the service runs in this event loop, so never block it)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "orchestrator.cli", *args, cwd=ROOT,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env={"PATH": "/usr/bin:/bin", "COLUMNS": "120", **(env or {})},
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout_s)
    except asyncio.TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    return proc.returncode, out.decode(), err.decode()


async def test_two_files_then_a_non_video_against_the_live_service(tmp_path, triton_factory, request):
    repository = repository_for_tests(request, tmp_path)
    first = make_marked_clip(tmp_path / "first.mp4")
    second = make_marked_clip(tmp_path / "second clip.mp4", frames=12)
    out_dir = tmp_path / "out"
    async with live_service(tmp_path, triton_factory, repository) as app:
        code, out, err = await run_cli("process", str(first), str(second), "-o", str(out_dir),
                                       "--regions", REGIONS, "--method", "inpaint", "--poll", "0.3",
                                       env={"SORA_UNMARK_URL": app.url})
        print(out, err, sep="\n")  # shown by pytest -s / on failure: the run's real output
        assert code == 0, err
        assert "submitted first.mp4 as task" in out and "submitted second clip.mp4 as task" in out
        assert "2 of 2 file(s) processed" in out and ": 2 cleaned" in out
        assert frame_count(out_dir / "first.clean.mp4") == CLIP_FRAMES
        assert frame_count(out_dir / "second clip.clean.mp4") == 12
        assert not list(out_dir.glob(".*.part"))

        # `list` shows both, `status` exits 0 for a finished task.
        code, listing, err = await run_cli("list", "--url", app.url)
        assert code == 0, err
        assert listing.count("finished") >= 2
        task_id = out.split("submitted first.mp4 as task ")[1].split()[0]
        code, status, err = await run_cli("status", task_id, "--json", "--url", app.url)
        assert code == 0 and '"status": "finished"' in status

        # Random bytes named .mp4: non-zero exit and the service's reason in the message.
        junk = tmp_path / "junk.mp4"
        junk.write_bytes(b"\x00\x01 definitely not a video " * 200)
        code, out, err = await run_cli("process", str(junk), "-o", str(out_dir), "--url", app.url,
                                       "--regions", REGIONS, "--poll", "0.3")
        print(out, err, sep="\n")
        assert code == 1
        assert "junk.mp4" in err and "error:" in err
        reason = await _reason_of_last_failure(app.url)
        assert reason and reason in err
        assert not (out_dir / "junk.clean.mp4").exists()


async def test_local_starts_and_stops_the_embedded_stack(tmp_path, request):
    """--local: Triton + the orchestrator started by the CLI on free ports, stopped afterwards."""
    import psutil

    repository = repository_for_tests(request, tmp_path)
    clip = make_marked_clip(tmp_path / "local.mp4", frames=12)
    code, out, err = await run_cli("process", str(clip), "-o", str(tmp_path / "out"), "--local",
                                   "--model-repository", str(repository), "--regions", REGIONS,
                                   "--poll", "0.3", env={"SORA_UNMARK_URL": "http://127.0.0.1:9"})
    print(out, err, sep="\n")
    assert code == 0, err
    assert "local service ready at http://127.0.0.1:" in out
    assert frame_count(tmp_path / "out" / "local.clean.mp4") == 12
    leftovers = [p.info for p in psutil.process_iter(["pid", "cmdline"])
                 if any(str(repository) in part for part in (p.info["cmdline"] or []))]
    assert leftovers == []


async def test_local_without_prepared_models_says_how_to_prepare_them(tmp_path):
    clip = make_marked_clip(tmp_path / "a.mp4", frames=4)
    code, _, err = await run_cli("process", str(clip), "-o", str(tmp_path / "out"), "--local",
                                 "--model-repository", str(tmp_path / "empty"))
    assert code == 2 and "no prepared models" in err and "make models" in err


async def _reason_of_last_failure(url: str) -> str | None:
    """The failure reason the service recorded (the CLI must show this, not a generic text)."""
    async with httpx.AsyncClient(base_url=url) as client:
        items = (await client.get("/v1/tasks", params={"status": "failed"})).json()["items"]
    return items[0]["error"] if items else None


async def test_unreachable_service_is_reported_with_exit_3(tmp_path):
    clip = make_marked_clip(tmp_path / "a.mp4", frames=4)
    port = free_port()
    code, out, err = await run_cli("process", str(clip), "-o", str(tmp_path / "out"), "--url", f"http://127.0.0.1:{port}")
    assert code == 3
    assert f"cannot reach the service at http://127.0.0.1:{port}" in err
    assert "Traceback" not in err


async def test_wrong_or_missing_key_is_an_auth_error_with_exit_4(tmp_path):
    """API_KEY set on the service: no Triton needed to be refused."""
    clip = make_marked_clip(tmp_path / "a.mp4", frames=4)
    async with running_app(test_settings(tmp_path, api_key="right-key")) as app:
        code, _, err = await run_cli("process", str(clip), "-o", str(tmp_path / "out"), "--url", app.url,
                                     env={"API_KEY": "wrong-key"})
        assert code == 4 and "refused the API key" in err and "--api-key" in err
        code, _, err = await run_cli("list", "--url", app.url)
        assert code == 4
        code, out, err = await run_cli("list", "--url", app.url, "--api-key", "right-key")
        assert code == 0 and "no tasks" in out, err
