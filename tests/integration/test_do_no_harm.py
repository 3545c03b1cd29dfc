"""Do no harm, through the real pipeline and a real local Triton: a false detection where the
picture has no overlay leaves the pixels as they were (beyond re-encoding), the black bars are
never inpainted, and a mark-free clip is reported as "no watermark found" through the API."""

from __future__ import annotations

import sys
from pathlib import Path

import av
import numpy as np
import pytest

from pipeline_support import fixed_box_detector_onnx, make_pipeline_repository
from service_support import running_app, test_settings, wait_for

from orchestrator.pipeline.decode import iter_frames, letterbox_params, probe
from orchestrator.pipeline.encode import Encoder
from orchestrator.pipeline.options import TaskOptions
from orchestrator.pipeline.run import process_video
from orchestrator.settings import Settings

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit" / "pipeline"))
from overlay_clips import OverlayClip  # noqa: E402

pytestmark = pytest.mark.integration

W, H = 480, 272
PICTURE = (140, 0, 340, 272)  # a pillarboxed picture
FALSE_BOX = (150, 4, 230, 34)  # at the top edge of the picture, beside the bar (the real incident)


def write_clip(path: Path, clip: OverlayClip, crf: int = 16) -> Path:
    with av.open(str(path), "w") as out:
        vs = out.add_stream("libx264", rate=30)
        vs.width, vs.height, vs.pix_fmt = clip.width, clip.height, "yuv420p"
        vs.options = {"crf": str(crf), "preset": "ultrafast"}
        for i in range(clip.n_frames):
            frame = av.VideoFrame.from_ndarray(clip.frame(i), format="rgb24")
            frame.pts = i
            out.mux(vs.encode(frame))
        out.mux(vs.encode())
    return path


def frames_of(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as c:
        return [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]


def plain_reencode(src: Path, dst: Path, settings: Settings) -> Path:
    info = probe(src, max_width=4096, max_height=4096, max_duration_s=600)
    enc = Encoder(dst, info, input_path=src, crf=settings.crf, preset=settings.preset)
    for d in iter_frames(src):
        enc.write(d.frame, d.pts)
    enc.close()
    return dst


def worst_tile_psnr(a: list[np.ndarray], b: list[np.ndarray], tile: int = 32) -> float:
    worst = np.inf
    for x, y in zip(a, b):
        h, w = x.shape[0] // tile * tile, x.shape[1] // tile * tile
        d = (x[:h, :w].astype(np.float64) - y[:h, :w]) ** 2
        mse = d.reshape(h // tile, tile, w // tile, tile, 3).mean((1, 3, 4))
        worst = min(worst, float(10 * np.log10(255 ** 2 / max(mse.max(), 1e-10))))
    return worst


@pytest.fixture
def false_box_triton(tmp_path_factory, triton_factory):
    root = tmp_path_factory.mktemp("false-box")
    r, _, _, px, py = letterbox_params(W, H, 640)
    x1, y1, x2, y2 = FALSE_BOX
    box = ((x1 + x2) / 2 * r + px, (y1 + y2) / 2 * r + py, (x2 - x1) * r, (y2 - y1) * r)
    det = fixed_box_detector_onnx(root / "fixed.onnx", box)
    repo = make_pipeline_repository(root / "repo", detector=det, weights="demo")
    return triton_factory(repo, load_models=("detector", "inpainter", "inpainter_256"), timeout_s=120)


def test_a_false_detection_without_an_overlay_leaves_the_picture_untouched(tmp_path, false_box_triton):
    clip = OverlayClip(W, H, 60, seed=11, shape="none", picture=PICTURE, background="texture")
    src = write_clip(tmp_path / "in.mp4", clip)
    settings = Settings(triton_grpc_url=false_box_triton.grpc_url, grpc_timeout_s=60, preset="ultrafast")
    details = process_video(src, tmp_path / "out.mp4", TaskOptions(), settings=settings)
    # Demo weights: discovery leads and finds no overlay there; the detector's unconfirmed position
    # is judged by the matte alone, which fits none, so it is left untouched.
    assert details["discovery"]["unconfirmed_detections"] == [list(map(float, FALSE_BOX))]
    assert [(m["confirmed"], m["method"]) for m in details["marks"]] == [(False, "untouched")]
    assert details["outcome"] == "no watermark found" and details["frames_with_boxes"] == 0
    assert details["discovery"]["picture"]["bars"] is True
    original = frames_of(src)
    plain = worst_tile_psnr(original, frames_of(plain_reencode(src, tmp_path / "plain.mp4", settings)))
    ours = worst_tile_psnr(original, frames_of(tmp_path / "out.mp4"))
    assert ours >= plain - 1.0, (ours, plain)


async def test_api_says_no_watermark_found_on_a_mark_free_clip(tmp_path, triton_factory, pipeline_repo):
    clip = OverlayClip(W, H, 45, seed=12, shape="none", background="texture")
    src = write_clip(tmp_path / "clean.mp4", clip)
    triton = triton_factory(pipeline_repo)
    settings = test_settings(tmp_path, triton_grpc_url=triton.grpc_url, optional_models=("inpainter_256",))
    async with running_app(settings) as app, app.client() as client:
        task_id = (await client.post("/v1/tasks", files={"video": ("clean.mp4", src.read_bytes())})).json()["task_id"]

        async def finished():
            task = (await client.get(f"/v1/tasks/{task_id}")).json()
            return task if task["status"] in ("finished", "failed") else None

        task = await wait_for(finished, 240, 0.2, what="finished")
    assert task["status"] == "finished", task
    details = task["details"]
    assert details["outcome"] == "no watermark found"
    assert details["marks"] == [] and details["frames_with_boxes"] == 0
    assert details["discovery"]["positions"] == []
