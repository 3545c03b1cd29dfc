"""perf/: the perf_analyzer input data (what the pipeline really sends) and the CSV → report step."""

from __future__ import annotations

import base64
import csv
import json
import re

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # perf/ is a folder of the repo, not installed
from perf import analyze  # noqa: E402
from perf.inputs import InputSpecError, crop_with_mask, generate_clip, letterbox, write_input_data  # noqa: E402

# Header and one row exactly as perf_analyzer 2.49 wrote them here (-f with --verbose-csv).
PA_HEADER = ("Concurrency,Inferences/Second,Client Send,Network+Server Send/Recv,Server Queue,Server Compute Input,"
             "Server Compute Infer,Server Compute Output,Client Recv,p50 latency,p90 latency,p95 latency,"
             "p99 latency,Avg latency,request/response,response wait")


def _write_point(path, concurrency, infer_s, queue_us, infer_us, p95_us):
    path.write_text(f"{PA_HEADER}\n{concurrency},{infer_s},217,5808,{queue_us},550,{infer_us},659,4,"
                    f"18738,30843,{p95_us},55650,19578,221,19291\n")


def test_letterbox_keeps_aspect_and_pads_with_114():
    frame = np.full((704, 1280, 3), 200, np.uint8)
    out = letterbox(frame, 640)
    assert out.shape == (640, 640, 3) and out.dtype == np.uint8
    assert (out[:144] == 114).all() and (out[-144:] == 114).all()  # 1280x704 -> 640x352, centred
    assert (out[144:496] == 200).all()


def test_crop_with_mask_centres_on_the_box_and_stays_inside_the_frame():
    frame = np.arange(704 * 1280 * 3, dtype=np.uint32).reshape(704, 1280, 3).astype(np.uint8)
    crop, mask = crop_with_mask(frame, (1112, 321, 1266, 367), 256, dilate=4)
    assert crop.shape == (3, 256, 256) and mask.shape == (1, 256, 256)
    # The box is near the right edge: the crop is shifted to end at the frame's edge.
    assert np.array_equal(crop.transpose(1, 2, 0), frame[216:472, 1024:1280])
    ys, xs = np.nonzero(mask[0])
    assert (xs.min() + 1024, ys.min() + 216, xs.max() + 1024 + 1, ys.max() + 216 + 1) == (1108, 317, 1270, 371)
    assert set(np.unique(mask)) == {0, 255}


def test_input_data_json_round_trips_to_the_model_tensors(tmp_path):
    clip = generate_clip(n_frames=3)
    assert clip.frames.shape == (3, 704, 1280, 3) and len(clip.boxes) == 3
    assert clip.frames.std() > 10, "frames should carry texture, not a flat colour"
    det = tmp_path / "det.json"
    assert write_input_data([{"name": "images", "dims": ["640", "640", "3"], "data_type": "TYPE_UINT8"}],
                            clip, det) == 3
    step = json.loads(det.read_text())["data"][1]["images"]
    assert step["shape"] == [640, 640, 3]
    decoded = np.frombuffer(base64.b64decode(step["b64"]), np.uint8).reshape(640, 640, 3)
    assert np.array_equal(decoded, letterbox(clip.frames[1]))

    inp = tmp_path / "inp.json"
    write_input_data([{"name": "image", "dims": [3, 512, 512], "data_type": "TYPE_UINT8"},
                      {"name": "mask", "dims": [1, 512, 512], "data_type": "TYPE_UINT8"}], clip, inp)
    step = json.loads(inp.read_text())["data"][0]
    assert step["image"]["shape"] == [3, 512, 512] and step["mask"]["shape"] == [1, 512, 512]
    mask = np.frombuffer(base64.b64decode(step["mask"]["b64"]), np.uint8)
    assert 0 < (mask == 255).mean() < 0.2, "the mask covers the mark, not the whole crop"


@pytest.mark.parametrize("inputs, message", [
    ([{"name": "pixels", "dims": [640, 640, 3]}], "unknown model inputs"),
    ([{"name": "images", "dims": [3, 640, 640]}], "must be [S, S, 3]"),
    ([{"name": "images", "dims": [640, 640, 3], "data_type": "TYPE_FP32"}], "sends UINT8"),
])
def test_input_data_refuses_models_it_cannot_feed(tmp_path, inputs, message):
    clip = generate_clip(n_frames=1)
    with pytest.raises(InputSpecError, match=re.escape(message)):
        write_input_data(inputs, clip, tmp_path / "x.json")


def test_report_from_perf_analyzer_csvs(tmp_path):
    _write_point(tmp_path / "detector_b1_c1.csv", 1, 98.5, 4514, 7824, 37225)
    _write_point(tmp_path / "detector_b4_c2.csv", 2, 120.0, 20000, 30000, 90000)
    _write_point(tmp_path / "detector_b4_c1.csv", 1, 80.0, 2000, 30000, 95000)  # dominated
    (tmp_path / "input_detector.json").write_text("{}")  # not a point file: ignored
    meta = {"url": "127.0.0.1:8001", "protocol": "grpc", "profile": "cpu", "local_triton": True,
            "points": [{"model": "detector", "batch": 8, "concurrency": 4, "ok": False,
                        "skipped": "batch × concurrency > 8 (profile cpu)"},
                       {"model": "detector", "batch": 8, "concurrency": 1, "ok": False, "skipped": "",
                        "error": "perf_analyzer exit code 99"}]}
    (tmp_path / "meta.json").write_text(json.dumps(meta))
    summary = analyze.write_report(tmp_path).read_text()

    rows = list(csv.DictReader(open(tmp_path / "results.csv")))
    assert [(r["batch"], r["concurrency"]) for r in rows] == [("1", "1"), ("4", "1"), ("4", "2")]
    first = rows[0]
    assert float(first["p95_ms"]) == pytest.approx(37.225) and float(first["server_queue_ms"]) == pytest.approx(4.514)
    assert float(first["server_compute_ms"]) == pytest.approx(0.550 + 7.824 + 0.659)
    assert float(rows[2]["requests_per_s"]) == pytest.approx(30.0)  # 120 infer/s at batch 4

    assert "| 1 | 1 | 98.5 ★ | 18.7 | 37.2 |" in summary
    assert "| 4 | 1 | 80.0 |" in summary  # slower and higher p95 than b1c1: not on the frontier
    assert "| 4 | 2 | 120.0 ★ |" in summary
    assert "Peak 120.0 infer/s at batch 4, concurrency 2" in summary
    assert "Skipped (batch × concurrency > 8 (profile cpu)): detector b8×c4." in summary
    assert "detector batch 8 concurrency 1: perf_analyzer exit code 99" in summary


def test_report_without_results_says_so(tmp_path):
    assert "No perf_analyzer result" in analyze.write_report(tmp_path).read_text()


def test_gpu_check_reads_perf_analyzer_csv_into_its_table():
    from perf.gpu_check import Report, parse_perf_csv, table

    text = ("Concurrency,Inferences/Second,Client Send,p50 latency,p90 latency,p95 latency,p99 latency\n"
            "1,100.5,1,2000,3000,3500,4000\n4,300,1,5000,6000,6500,9000\n")
    rows = parse_perf_csv(text, "detector", 8)
    assert [(r["concurrency"], r["infer_s"], r["p50_ms"], r["p99_ms"]) for r in rows] == [(1, 100.5, 2.0, 4.0),
                                                                                         (4, 300.0, 5.0, 9.0)]
    out = table(Report(gpu="GPU 0: H100", perf=rows, builds={"plan detector": 12.3}))
    assert "| detector | 8 | 4 | 300 | 5.0 | 9.0 |" in out and "| build plan detector | 12 s |" in out
