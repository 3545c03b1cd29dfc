"""Discovery benchmark (a script, not a test): marked-frame recall/precision and cost per frame.

    .venv/bin/python -m bench.discover [--seeds tuning|heldout|1,2] [--kinds dark,pillarbox,...]

Each clip of ``export.clips`` (kind × seed) is written as mp4 (cached under bench/out/clips),
decoded with PyAV and fed to ``discover.Discoverer`` exactly as pass 1 does (``tap``: a small
RGB copy of each decoded frame). A marked frame is found when a box of the timeline covers half
of the true mark; a box is right when it covers half of the true mark in its frame. Mark-free
kinds report the frames with any box. Figures belong in bench/README.md; HELDOUT seeds only once
a change is settled.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from export.clips import HELDOUT_SEEDS, KINDS, MARK_FREE_KINDS, TUNING_SEEDS, make
from orchestrator.pipeline.decode import iter_frames
from orchestrator.pipeline.discover import Discoverer

OUT = Path(__file__).resolve().parent / "out" / "clips"


def covers(box, truth) -> bool:
    x0, y0 = max(box[0], truth[0]), max(box[1], truth[1])
    x1, y1 = min(box[2], truth[2]), min(box[3], truth[3])
    return max(0.0, x1 - x0) * max(0.0, y1 - y0) >= 0.5 * (truth[2] - truth[0]) * (truth[3] - truth[1])


def score(truth_boxes, timeline) -> dict:
    marked = found = boxes = right = 0
    for i, truth in enumerate(truth_boxes):
        got = timeline.boxes_at(i) if timeline.positions.size else np.zeros((0, 4))
        hits = [covers(b, truth) for b in got] if truth is not None else [False] * len(got)
        boxes += len(got)
        right += sum(hits)
        if truth is not None:
            marked += 1
            found += any(hits)
    return {"marked": marked, "recall": found / marked if marked else None,
            "precision": right / boxes if boxes else 1.0, "frames_with_boxes": timeline.frames_with_boxes()}


def run_clip(kind: str, seed: int) -> dict:
    clip = make(kind, seed, OUT, clean=False)
    d = Discoverer(clip.spec.width, clip.spec.height)
    t0 = time.perf_counter()
    n = 0
    for _ in d.tap(iter_frames(clip.marked)):
        n += 1
    decode_and_discover = time.perf_counter() - t0
    result = d.finish(n)
    out = score(clip.truth.boxes[:n], result.timeline)
    out.update(kind=kind, seed=seed, frames=n, ms_per_frame=1000 * result.seconds / max(n, 1),
               decode_ms=1000 * (decode_and_discover - result.seconds) / max(n, 1),
               positions=len(result.positions), bars=result.picture.has_bars)
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", default="tuning")
    parser.add_argument("--kinds", default=",".join(KINDS))
    args = parser.parse_args(argv)
    seeds = {"tuning": TUNING_SEEDS[:3], "heldout": HELDOUT_SEEDS}.get(args.seeds)
    seeds = seeds or tuple(int(s) for s in args.seeds.split(","))
    print(f"{'kind':18s} {'seed':>5s} {'frames':>6s} {'recall':>7s} {'prec':>6s} {'boxes':>6s} {'pos':>4s} "
          f"{'bars':>5s} {'ms/f':>6s} {'dec ms/f':>8s}")
    for kind in args.kinds.split(","):
        for seed in seeds:
            r = run_clip(kind, seed)
            recall = "-" if r["recall"] is None else f"{r['recall']:.3f}"
            flag = "" if kind in MARK_FREE_KINDS or (r["recall"] or 0) >= 0.99 and r["precision"] >= 0.99 else "  <"
            print(f"{kind:18s} {seed:5d} {r['frames']:6d} {recall:>7s} {r['precision']:6.3f} "
                  f"{r['frames_with_boxes']:6d} {r['positions']:4d} {str(r['bars']):>5s} {r['ms_per_frame']:6.2f} "
                  f"{r['decode_ms']:8.2f}{flag}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
