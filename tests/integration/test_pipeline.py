"""process_video against the real local Triton (python backend, weight-free inpainters).

Removal is driven by manual regions so the checks do not depend on detector quality; the
detection path runs with the committed demo detector when present (else a detector that finds
nothing, which must leave every frame as it was).
"""

from __future__ import annotations


import numpy as np
import pytest

from media import audio_packets, make_clip, psnr, read_frames
from pipeline_support import demo_detector, make_pipeline_repository
from orchestrator.errors import InputError, TaskCancelledError, TritonUnavailableError
from orchestrator.pipeline.options import TaskOptions
from orchestrator.pipeline.run import Progress, process_video
from orchestrator.settings import Settings
from orchestrator.triton.local import free_port

pytestmark = pytest.mark.integration

MODELS = ("detector", "inpainter", "inpainter_256")
BOX = (40, 30, 140, 74)


@pytest.fixture
def triton(tmp_path_factory, triton_factory):
    repo = make_pipeline_repository(tmp_path_factory.mktemp("repo") / "models", detector=demo_detector())
    return triton_factory(repo, load_models=MODELS, timeout_s=120)


def settings_for(server, **kw) -> Settings:
    return Settings(triton_grpc_url=server.grpc_url, grpc_timeout_s=30, preset="ultrafast", **kw)


def far_from(box, shape, margin=40):
    """Mask of pixels farther than ``margin`` from ``box``."""
    mask = np.ones(shape[:2], bool)
    x1, y1, x2, y2 = box
    mask[max(y1 - margin, 0) : y2 + margin, max(x1 - margin, 0) : x2 + margin] = False
    return mask


def test_regions_audio_rotation_vfr_and_detection(tmp_path, triton):
    src, out = tmp_path / "in.mp4", tmp_path / "result" / "out.mp4"
    n = 40
    make_clip(src, width=320, height=192, frames=n, audio=True, rotation=90, vfr=True,
              marks={i: BOX for i in range(n)})
    seen: list[Progress] = []
    details = process_video(src, out, TaskOptions.from_form(regions=f"[{list(BOX)}]"),
                            settings=settings_for(triton), progress=seen.append)
    assert details["frames"] == n and details["frames_with_boxes"] == n
    pts_in, img_in = read_frames(src)
    pts_out, img_out = read_frames(out)
    assert pts_in == pts_out  # same frames, same (variable) timestamps
    assert img_out[0].shape == img_in[0].shape
    assert audio_packets(src) == audio_packets(out) and audio_packets(src)
    import av
    with av.open(str(out)) as c:
        assert next(c.decode(video=0)).rotation == 90
    far = far_from(BOX, img_in[0].shape)
    x1, y1, x2, y2 = BOX
    for a, b in zip(img_in, img_out):
        assert psnr(a[far], b[far]) > 40
        # The mark (bright, ~0.7 white) is gone: the box is darker and differs from the input.
        assert np.abs(a[y1:y2, x1:x2].astype(int) - b[y1:y2, x1:x2]).mean() > 20
    assert seen and seen[-1].percent == 100.0 and seen[-1].frames_done == n
    assert not list(out.parent.glob(".*.tmp"))  # no temp file left

    # Detection path on the same clip (demo detector or a blind one).
    out2 = tmp_path / "detected.mp4"
    details = process_video(src, out2, TaskOptions(), settings=settings_for(triton, detect_stride=8))
    assert details["frames"] == n
    assert details["detector_frames"] < n  # stride + bisection, not every frame
    pts2, img2 = read_frames(out2)
    assert pts2 == pts_in
    if demo_detector() is None:
        assert details["frames_with_boxes"] == 0
        assert min(psnr(a, b) for a, b in zip(img_in, img2)) > 40


def test_odd_size_time_ranges_no_audio(tmp_path, triton):
    src, out = tmp_path / "odd.mp4", tmp_path / "out.mp4"
    n = 30  # 1 s at 30 fps; region only during [0.5, 1.0)
    make_clip(src, width=251, height=143, frames=n, marks={i: BOX for i in range(n)})
    opts = TaskOptions.from_form(regions='[{"box": [40, 30, 140, 74], "start": 0.5}]')
    details = process_video(src, out, opts, settings=settings_for(triton, inpaint_batch=4))
    assert details["frames_with_boxes"] == 15
    pts_in, img_in = read_frames(src)
    pts_out, img_out = read_frames(out)
    assert pts_in == pts_out and img_out[0].shape == (143, 251, 3)
    assert audio_packets(out) == []
    x1, y1, x2, y2 = BOX
    for i, (a, b) in enumerate(zip(img_in, img_out)):
        changed = np.abs(a[y1:y2, x1:x2].astype(int) - b[y1:y2, x1:x2]).mean()
        assert (changed > 20) == (i >= 15), (i, changed)


def test_errors_and_cancel(tmp_path, triton):
    src = tmp_path / "in.mp4"
    make_clip(src, width=160, height=96, frames=60)
    opts = TaskOptions.from_form(regions="[[10,10,50,40]]")
    out = tmp_path / "out.mp4"
    with pytest.raises(TaskCancelledError):
        process_video(src, out, opts, settings=settings_for(triton, inpaint_batch=2),
                      should_cancel=lambda: True)
    assert not out.exists() and not list(tmp_path.glob(".*.tmp"))
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"\x00" * 1000)
    with pytest.raises(InputError):
        process_video(bad, out, opts, settings=settings_for(triton))
    with pytest.raises(InputError, match="above the limit"):
        process_video(src, out, opts, settings=settings_for(triton, max_duration_s=1.0))
    nobody = Settings(triton_grpc_url=f"127.0.0.1:{free_port()}", grpc_timeout_s=2)
    with pytest.raises(TritonUnavailableError):
        process_video(src, out, opts, settings=nobody)
    assert not out.exists()


def test_auto_inverts_the_matte_and_beats_inpainting(tmp_path, triton):
    """method=auto estimates the semi-transparent mark's matte from the region's crops and inverts
    it: closer to the clean frames inside the box than box inpainting."""
    from media import background

    src = tmp_path / "in.mp4"
    n, w, h = 40, 320, 192
    make_clip(src, width=w, height=h, frames=n, marks={i: BOX for i in range(n)})
    x1, y1, x2, y2 = BOX
    scores = {}
    for method in ("auto", "inpaint"):
        out = tmp_path / f"{method}.mp4"
        opts = TaskOptions.from_form(regions=f"[{list(BOX)}]", method=method)
        details = process_video(src, out, opts, settings=settings_for(triton))
        assert details["frames"] == n
        _, imgs = read_frames(out)
        scores[method] = np.mean([psnr(im[y1:y2, x1:x2], background(w, h, i)[y1:y2, x1:x2])
                                  for i, im in enumerate(imgs)])
        if method == "auto":
            assert details["regions"][0]["method"] == "matte", details["regions"]
            assert details["matte_frames"] > n // 2
    assert scores["auto"] > scores["inpaint"] + 3, scores


@pytest.mark.skipif(demo_detector() is None, reason="export/assets/detector_demo.onnx not built")
def test_demo_models_find_the_sora_like_mark_and_move_it_toward_the_clean_frames(tmp_path, triton):
    """Offline demo end to end: the committed demo detector finds the project's Sora-like mark (it
    jumps to a second position within the clip) with no regions given, and inside the true box
    every marked frame of the output is closer to the clean frame than the input was."""
    from export.watermark import make_clip as make_marked_clip

    src, out = tmp_path / "sora_like.mp4", tmp_path / "clean.mp4"
    truth = make_marked_clip(src, width=640, height=360, seconds=3.0, opacity=0.7, audio=False, seed=7)
    details = process_video(src, out, TaskOptions(), settings=settings_for(triton))
    _, img_in = read_frames(src)
    _, img_out = read_frames(out)
    assert len(img_out) == len(img_in) == len(truth.boxes)
    marked = [i for i, b in enumerate(truth.boxes) if b is not None]
    assert len({truth.boxes[i][:2] for i in marked}) >= 2 and len(marked) > 60  # the mark jumps
    gains = []
    for i in marked:
        x1, y1, x2, y2 = truth.boxes[i]
        clean = truth.clean_frame(i)[y1:y2, x1:x2]
        before = psnr(clean, img_in[i][y1:y2, x1:x2])
        after = psnr(clean, img_out[i][y1:y2, x1:x2])
        gains.append(after - before)
    # No frame keeps the mark (every marked frame moved toward the clean one), and clearly so on average.
    print(f"inside-box gain over the input: min {min(gains):.1f} dB, mean {np.mean(gains):.1f} dB")
    assert min(gains) > 1.0, f"a frame kept the mark: min gain {min(gains):.1f} dB"
    assert float(np.mean(gains)) > 6.0
    assert details["frames_with_boxes"] >= len(marked)
    # The matte came from the pooled positions and used the clean frames around the jump.
    mattes = [m["matte"] for m in details["marks"] if "matte" in m]
    print("marks:", details["marks"])
    assert any(m["references"] > 0 for m in mattes), details["marks"]
    assert any(m["method"] == "matte" for m in details["marks"]), details["marks"]
