"""The CLI's own logic: names, error texts, exit codes, and the submit → poll → download loop.

The loop runs here against an in-memory stand-in for the HTTP API (httpx.MockTransport) so that
every branch is quick to reach; tests/integration/test_cli.py runs it against the real service.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import httpx
import pytest
from rich.console import Console

from orchestrator import cli
from orchestrator.triton.local import free_port


def _consoles() -> tuple[Console, io.StringIO, Console, io.StringIO]:
    out, err = io.StringIO(), io.StringIO()
    return (Console(file=out, width=200, soft_wrap=True), out,
            Console(file=err, width=200, soft_wrap=True), err)


def test_output_names_are_unique_per_stem(tmp_path):
    names = cli.output_names([Path("a/clip.mp4"), Path("b/clip.mov"), Path("x.webm"), Path("a/clip.mkv")], tmp_path)
    assert [n.name for n in names] == ["clip.clean.mp4", "clip-2.clean.mp4", "x.clean.mp4", "clip-3.clean.mp4"]


@pytest.mark.parametrize("body, expected", [
    ({"error": {"code": "invalid_input", "message": "not a video"}}, "not a video"),
    ({"error": "boom"}, "boom"),
    ({"detail": "Not Found"}, "Not Found"),
    ({"detail": [{"msg": "field required"}]}, "field required"),
])
def test_error_message_reads_the_body_shapes(body, expected):
    assert cli.error_message(httpx.Response(400, json=body)) == expected


def test_error_message_falls_back_to_status_line():
    assert cli.error_message(httpx.Response(502, content=b"")) == "HTTP 502 Bad Gateway"


def test_unreachable_service_is_a_clear_error_with_exit_3(tmp_path):
    video = tmp_path / "a.mp4"
    video.write_bytes(b"x")
    out, out_buf, err, err_buf = _consoles()
    port = free_port()  # nothing listens there
    code = cli.main(["process", str(video), "-o", str(tmp_path / "out"), "--url", f"http://127.0.0.1:{port}"],
                    console=out, err_console=err)
    assert code == cli.EXIT_UNREACHABLE == 3
    assert f"cannot reach the service at http://127.0.0.1:{port}" in err_buf.getvalue()
    assert "Traceback" not in err_buf.getvalue()


def test_missing_input_and_bad_regions_are_usage_errors(tmp_path):
    out, _, err, err_buf = _consoles()
    assert cli.main(["process", str(tmp_path / "nope.mp4"), "-o", str(tmp_path)], console=out, err_console=err) == 2
    assert "no such file" in err_buf.getvalue()
    video = tmp_path / "a.mp4"
    video.write_bytes(b"x")
    assert cli.main(["process", str(video), "-o", str(tmp_path), "--regions", "[1,2"],
                    console=out, err_console=err) == 2
    assert "--regions is not valid JSON" in err_buf.getvalue()
    assert cli.main(["process", str(video), "-o", str(tmp_path), "--no-detect"], console=out, err_console=err) == 2


def test_url_and_key_come_from_the_environment(monkeypatch):
    monkeypatch.setenv("SORA_UNMARK_URL", "http://example.invalid:1234")
    monkeypatch.setenv("API_KEY", "s3cret")
    args = cli.build_parser().parse_args(["list"])
    assert (args.url, args.api_key) == ("http://example.invalid:1234", "s3cret")


class FakeService:
    """Just enough of the task API: two polls per task, the file named 'bad' fails."""

    def __init__(self, key: str | None = None) -> None:
        self.key = key
        self.tasks: dict[str, dict] = {}
        self.forms: list[bytes] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if self.key and request.headers.get("authorization") != f"Bearer {self.key}":
            return httpx.Response(401, json={"error": {"code": "unauthorized", "message": "missing or wrong API key"}})
        path = request.url.path
        if path == "/ping":
            return httpx.Response(200, json={"status": "healthy", "models_ready": True})
        if path == "/v1/tasks" and request.method == "POST":
            body = request.read()
            self.forms.append(body)
            tid = f"t{len(self.tasks) + 1}"
            self.tasks[tid] = {"task_id": tid, "status": "queued", "progress": 0, "polls": 0,
                               "bad": b'filename="bad' in body}
            return httpx.Response(202, json={"task_id": tid, "status": "queued"})
        if path == "/v1/tasks" and request.method == "GET":
            queued = [t for t in self.tasks.values() if t["status"] == "queued"][::-1]
            return httpx.Response(200, json={"items": queued, "total": len(queued), "limit": 200, "offset": 0})
        tid = path.split("/")[3]
        task = self.tasks.get(tid)
        if task is None:
            return httpx.Response(404, json={"error": {"code": "not_found", "message": "unknown task"}})
        if path.endswith("/result"):
            return httpx.Response(200, content=b"MP4" + tid.encode())
        task["polls"] += 1
        if task["polls"] == 1:
            task.update(status="processing", progress=50, stage="inpaint")
        elif task["bad"]:
            task.update(status="failed", error="input is not a video: no video stream")
        else:
            task.update(status="finished", progress=100, result_url=f"/v1/tasks/{tid}/result")
        return httpx.Response(200, json=task)


def test_process_loop_downloads_results_and_reports_failures(tmp_path):
    inputs = []
    for name in ("one.mp4", "bad.mp4", "two.mov"):
        (tmp_path / name).write_bytes(b"data")
        inputs.append(tmp_path / name)
    service = FakeService(key="k")
    out, out_buf, err, err_buf = _consoles()
    with cli.ServiceClient("http://svc", "k", transport=httpx.MockTransport(service)) as client:
        code = cli.run_process(client, inputs, tmp_path / "out", regions="[[1,2,30,40]]", detect=None,
                               method="inpaint", poll_s=0.0, console=out, err=err)
    assert code == cli.EXIT_FAILED
    assert (tmp_path / "out" / "one.clean.mp4").read_bytes() == b"MP4t1"
    assert (tmp_path / "out" / "two.clean.mp4").read_bytes() == b"MP4t3"
    assert not (tmp_path / "out" / "bad.clean.mp4").exists()
    assert not list((tmp_path / "out").glob(".*.part"))
    assert "task t2 failed: input is not a video: no video stream" in err_buf.getvalue()
    assert "2 of 3 file(s) processed" in out_buf.getvalue() and ": 2 cleaned" in out_buf.getvalue()
    form = service.forms[0].decode(errors="replace")
    assert 'name="regions"' in form and "[[1,2,30,40]]" in form and 'name="method"' in form and "inpaint" in form
    assert 'name="detect"' not in form  # left to the server's default


def test_wrong_key_exits_4_with_a_hint(tmp_path):
    (tmp_path / "a.mp4").write_bytes(b"data")
    out, _, err, err_buf = _consoles()
    with cli.ServiceClient("http://svc", "wrong", transport=httpx.MockTransport(FakeService(key="k"))) as client:
        with pytest.raises(cli.CliError) as info:
            cli.run_process(client, [tmp_path / "a.mp4"], tmp_path / "out", regions=None, detect=None,
                            method=None, poll_s=0.0, console=out, err=err)
    assert info.value.exit_code == cli.EXIT_AUTH
    assert "pass --api-key or set API_KEY" in info.value.message


def test_status_of_a_failed_task_exits_1(tmp_path):
    service = FakeService()
    service.tasks["t9"] = {"task_id": "t9", "status": "failed", "error": "bad", "polls": 5, "bad": True}
    out, out_buf, _, _ = _consoles()
    with cli.ServiceClient("http://svc", transport=httpx.MockTransport(service)) as client:
        assert cli.run_status(client, "t9", as_json=True, console=out) == 1
    assert json.loads(out_buf.getvalue())["status"] == "failed"


def test_list_keeps_full_ids_and_shows_errors_on_a_narrow_terminal():
    service = FakeService()
    service.tasks["d1b7edb999e24ecc9c8c4ffe9ff35c9c"] = {
        "task_id": "d1b7edb999e24ecc9c8c4ffe9ff35c9c", "status": "queued", "filename": "junk [1].mp4",
        "error": "the file is not a video (unrecognised format)"}
    buf = io.StringIO()
    with cli.ServiceClient("http://svc", transport=httpx.MockTransport(service)) as client:
        assert cli.run_list(client, limit=10, status=None, as_json=False, console=Console(file=buf, width=80)) == 0
    text = buf.getvalue()
    assert "d1b7edb999e24ecc9c8c4ffe9ff35c9c" in text and "junk [1].mp4" in text
    assert "the file is not a video" in " ".join(text.split())


def test_a_directory_stands_for_the_videos_in_it(tmp_path):
    for name in ("b.MP4", "a.mov", "notes.txt"):
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / "sub").mkdir()
    assert cli.expand_inputs([tmp_path]) == [tmp_path / "a.mov", tmp_path / "b.MP4"]
    with pytest.raises(cli.CliError, match="no video files"):
        cli.expand_inputs([tmp_path / "sub"])


class FlakyService(FakeService):
    """Goes away (connection refused) for the next ``outage`` task polls."""

    outage = 0

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.method == "GET" and request.url.path.startswith("/v1/tasks/") and self.outage > 0:
            self.outage -= 1
            raise httpx.ConnectError("connection refused", request=request)
        return super().__call__(request)


def _run_flaky(tmp_path, service) -> tuple[int, str]:
    (tmp_path / "a.mp4").write_bytes(b"data")
    out, _, err, err_buf = _consoles()
    with cli.ServiceClient("http://svc", transport=httpx.MockTransport(service)) as client:
        try:
            code = cli.run_process(client, [tmp_path / "a.mp4"], tmp_path / "out", regions=None, detect=None,
                                   method=None, poll_s=0.0, console=out, err=err)
        except cli.CliError as exc:
            return exc.exit_code, exc.message
    return code, err_buf.getvalue()


def test_a_short_outage_while_polling_is_ridden_out(tmp_path):
    service = FlakyService()
    service.outage = 3
    code, _ = _run_flaky(tmp_path, service)
    assert code == 0 and (tmp_path / "out" / "a.clean.mp4").read_bytes() == b"MP4t1"


def test_a_long_outage_gives_up_with_exit_3(tmp_path, monkeypatch):
    monkeypatch.setattr(cli.process, "UNREACHABLE_GRACE_S", -1.0)
    service = FlakyService()
    service.outage = 10
    code, message = _run_flaky(tmp_path, service)
    assert code == cli.EXIT_UNREACHABLE and "sora-unmark list" in message
