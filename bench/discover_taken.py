"""Discovery alone as the pipeline takes it (a script, not a test): each registry clip's discovery
timeline, and what ``discover.fuse`` keeps of it without a detector (its coverage rule drops a
mark whose places together cover under half the video, so a mark split in two ids loses places).

    .venv/bin/python -m bench.discover_taken [--seeds 1,2] [--kinds other_shape,clean,...]

Scored as ``bench.discover`` scores (a marked frame is found when a box covers half of the true
mark); mark-free kinds report the frames with any box. Figures belong in bench/README.md.
"""

from __future__ import annotations

import argparse

from bench.discover import OUT, score
from export.clips import KINDS, MARK_FREE_KINDS, TUNING_SEEDS, make
from orchestrator.pipeline.decode import iter_frames
from orchestrator.pipeline.discover import Discoverer, fuse


def run_clip(kind: str, seed: int) -> tuple[dict, dict, int]:
    clip = make(kind, seed, OUT, clean=False)
    d = Discoverer(clip.spec.width, clip.spec.height)
    n = sum(1 for _ in d.tap(iter_frames(clip.marked)))
    found = d.finish(n)
    taken = fuse(None, found, weights="demo").timeline
    truth = clip.truth.boxes[:n]
    return score(truth, found.timeline), score(truth, taken), found.marks


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", default=",".join(str(s) for s in TUNING_SEEDS))
    parser.add_argument("--kinds", default=",".join(KINDS))
    args = parser.parse_args(argv)
    print(f"{'kind':18s} {'seed':>5s} {'found':>13s} {'taken':>13s} {'marks':>5s}")
    for kind in args.kinds.split(","):
        for seed in (int(s) for s in args.seeds.split(",")):
            found, taken, marks = run_clip(kind, seed)
            cell = (lambda s: f"{s['frames_with_boxes']} boxed") if kind in MARK_FREE_KINDS else (
                lambda s: f"{s['recall']:.3f} / {s['precision']:.3f}")
            print(f"{kind:18s} {seed:5d} {cell(found):>13s} {cell(taken):>13s} {marks:5d}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
