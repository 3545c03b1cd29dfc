"""Discovery benchmark (a script, not a test): marked-frame recall/precision and cost per frame.

    .venv/bin/python -m bench.discover [--seeds tuning|heldout|1,2] [--kinds dark,pillarbox,...]
    .venv/bin/python -m bench.discover --end-to-end WORKDIR [--misses] [--seeds ...] [--kinds ...]

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

from export.clips import FRESH_SEEDS, HELDOUT_SEEDS, KINDS, MARK_FREE_KINDS, TUNING_SEEDS, frame_score, make
from orchestrator.pipeline.decode import iter_frames
from orchestrator.pipeline.discover import Discoverer

OUT = Path(__file__).resolve().parent / "out" / "clips"


def score(truth_boxes, timeline) -> dict:
    sc = frame_score(truth_boxes, timeline)
    return {"marked": sc.marked, "recall": sc.found / sc.marked if sc.marked else None,
            "precision": sc.right / sc.boxes if sc.boxes else 1.0, "frames_with_boxes": timeline.frames_with_boxes()}


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
               cpu_ms=1000 * result.cpu_seconds / max(n, 1),
               decode_ms=1000 * (decode_and_discover - result.seconds) / max(n, 1),
               positions=len(result.positions), bars=result.picture.has_bars)
    return out


class _Timeline:
    """The removed positions of a task's details as a timeline (boxes_at / frames_with_boxes)."""

    def __init__(self, marks: list[dict], n: int) -> None:
        used = [m for m in marks if m.get("method") != "untouched"]
        self.positions = np.array([m["box"] for m in used], np.float64).reshape(-1, 4)
        self.present = np.zeros((len(used), n), bool)
        for k, m in enumerate(used):
            for a, b in m.get("visits") or []:
                self.present[k, a:b] = True

    def boxes_at(self, i: int) -> np.ndarray:
        return self.positions[self.present[:, i]]

    def frames_with_boxes(self) -> int:
        return int(self.present.any(0).sum())


def misses(truth_boxes, timeline) -> str:
    """Runs of marked frames not found and of frames with a wrong box (what to look at next)."""
    from export.clips import covers

    missed, wrong = [], []
    for i, truth in enumerate(truth_boxes):
        got = timeline.boxes_at(i) if timeline.positions.size else np.zeros((0, 4))
        hits = [truth is not None and covers(b, truth) for b in got]
        if truth is not None and not any(hits):
            missed.append(i)
        if not all(hits):
            wrong.append(i)

    def spans(frames: list[int]) -> str:
        out, start = [], None
        for k, f in enumerate(frames):
            start = f if start is None else start
            if k + 1 == len(frames) or frames[k + 1] != f + 1:
                out.append(f"{start}-{f}" if f > start else str(f))
                start = None
        return ",".join(out) or "-"

    return f"missed {spans(missed)}; wrong {spans(wrong)}"


def worst_tile(a_path: Path, b_path: Path, tile: int = 32) -> float:
    import av

    worst = np.inf
    with av.open(str(a_path)) as ca, av.open(str(b_path)) as cb:
        for fa, fb in zip(ca.decode(video=0), cb.decode(video=0)):
            x, y = fa.to_ndarray(format="rgb24"), fb.to_ndarray(format="rgb24")
            h, w = x.shape[0] // tile * tile, x.shape[1] // tile * tile
            d = (x[:h, :w].astype(np.float64) - y[:h, :w]) ** 2
            mse = d.reshape(h // tile, tile, w // tile, tile, 3).mean((1, 3, 4)).max()
            worst = min(worst, float(10 * np.log10(255 ** 2 / max(mse, 1e-10))))
    return worst


def end_to_end(kinds: list[str], seeds, work: Path, show_misses: bool = False, with_off: bool = True) -> None:
    """Each clip through ``process_video`` with default options against a local Triton on the
    repository ``export.prepare`` makes offline (the demo detector: discovery leads); with
    ``with_off`` also with discovery switched off first (``Settings.discover``): what discovery
    adds to the task's wall time, to its process's CPU time (``+cpu``) and to the task's total CPU
    with the Triton server's (``+task``: server and its children by psutil; detector inference)."""
    from export.prepare import prepare
    from orchestrator.settings import Settings
    from orchestrator.triton.local import LocalTriton, free_port

    repo = work / "repo"
    prepare(repo, target="cpu", offline=True)
    server = LocalTriton(repo, http_port=free_port(), grpc_port=free_port(), metrics_port=free_port(),
                         runtime_dir=work / "runtime", load_models=("detector", "inpainter", "inpainter_256"))
    server.start(180)
    try:
        settings = Settings(triton_grpc_url=server.grpc_url)
        off = settings.with_overrides(discover=False)
        first = make(kinds[0], seeds[0], OUT, clean=False)
        pid = server.pid
        _timed(first.marked, work / "warmup.mp4", off, pid)  # the models' first requests are slow
        print(f"{'kind':18s} {'seed':>5s} {'recall':>7s} {'prec':>6s} {'outcome':>22s} {'tile dB':>8s} "
              f"{'plain dB':>8s} {'disc ms/f':>9s} {'cpu ms/f':>8s} {'total s':>7s} {'off s':>6s} {'+wall':>6s} "
              f"{'cpu s':>6s} {'off cpu':>7s} {'+cpu':>6s} {'srv s':>6s} {'off srv':>7s} {'+task':>6s}")
        for kind in kinds:
            for seed in seeds:
                clip = make(kind, seed, OUT, clean=False)
                out = work / f"{kind}_{seed}.out.mp4"
                base = _timed(clip.marked, work / f"{kind}_{seed}.off.mp4", off, pid) if with_off else None
                details, cpu = _timed(clip.marked, out, settings, pid)
                _row(kind, seed, clip, out, details, cpu, base, work, settings, show_misses)
    finally:
        server.stop()


def _server_cpu(pid: int | None) -> float:
    """CPU seconds of the Triton server and its children (the python backend stubs), via psutil:
    the detector's inference runs there, so it is the task's CPU too."""
    import psutil

    if pid is None:
        return 0.0
    try:
        proc = psutil.Process(pid)
        procs = [proc] + proc.children(recursive=True)
    except psutil.Error:
        return 0.0
    total = 0.0
    for p in procs:
        try:
            t = p.cpu_times()
            total += t.user + t.system
        except psutil.Error:
            pass
    return total


def _timed(path: Path, out: Path, settings, server_pid: int | None = None) -> tuple[dict, float]:
    """``process_video`` with default options: its details and its CPU seconds (the process's;
    ``details["server_cpu_s"]``: the Triton server's over the same task)."""
    from orchestrator.pipeline.options import TaskOptions
    from orchestrator.pipeline.run import process_video

    c0, s0 = time.process_time(), _server_cpu(server_pid)
    details = process_video(path, out, TaskOptions(), settings=settings)
    details["server_cpu_s"] = _server_cpu(server_pid) - s0
    return details, time.process_time() - c0


def _row(kind, seed, clip, out: Path, details: dict, cpu: float, base, work: Path, settings, show_misses) -> None:
    """One clip's line: detection, mark-free damage, discovery's cost and what it added."""
    from orchestrator.pipeline.decode import probe
    from orchestrator.pipeline.encode import Encoder

    n = details["frames"]
    sc = score(clip.truth.boxes[:n], _Timeline(details.get("marks", []), n))
    t = details["timings_s"]
    tile = plain = float("nan")
    if kind in MARK_FREE_KINDS:
        info = probe(clip.marked, max_width=4096, max_height=4096, max_duration_s=3600)
        enc = Encoder(work / "plain.mp4", info, input_path=clip.marked, crf=settings.crf, preset=settings.preset)
        for d in iter_frames(clip.marked):
            enc.write(d.frame, d.pts)
        enc.close()
        tile, plain = worst_tile(clip.marked, out), worst_tile(clip.marked, work / "plain.mp4")
    recall = "-" if sc["recall"] is None else f"{sc['recall']:.3f}"
    off_s, off_cpu = (base[0]["timings_s"]["total"], base[1]) if base else (float("nan"), float("nan"))
    srv, off_srv = details.get("server_cpu_s", 0.0), base[0].get("server_cpu_s", 0.0) if base else float("nan")
    print(f"{kind:18s} {seed:5d} {recall:>7s} {sc['precision']:6.3f} {details['outcome']:>22s} "
          f"{tile:8.2f} {plain:8.2f} {1000 * t.get('discover', 0) / n:9.2f} {1000 * t.get('discover_cpu', 0) / n:8.2f} "
          f"{t['total']:7.2f} {off_s:6.2f} {t['total'] / off_s - 1:6.1%} {cpu:6.2f} {off_cpu:7.2f} "
          f"{cpu / off_cpu - 1:6.1%} {srv:6.2f} {off_srv:7.2f} {(cpu + srv) / (off_cpu + off_srv) - 1:6.1%}", flush=True)
    if show_misses:
        print("   ", misses(clip.truth.boxes[:n], _Timeline(details.get("marks", []), n)))
        for m in details.get("marks", []):
            print("    mark", {k: m.get(k) for k in ("box", "source", "mark", "confirmed", "method", "visits", "reason")})


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", default="tuning")
    parser.add_argument("--kinds", default=",".join(KINDS))
    parser.add_argument("--end-to-end", type=Path, default=None, metavar="WORKDIR",
                        help="run process_video through a local Triton (demo detector) instead")
    parser.add_argument("--misses", action="store_true", help="end to end: print missed/wrong frames and marks")
    parser.add_argument("--no-off", action="store_true", help="end to end: skip the runs with discovery off")
    args = parser.parse_args(argv)
    seeds = {"tuning": TUNING_SEEDS[:3], "heldout": HELDOUT_SEEDS, "fresh": FRESH_SEEDS}.get(args.seeds)
    seeds = seeds or tuple(int(s) for s in args.seeds.split(","))
    if args.end_to_end is not None:
        args.end_to_end.mkdir(parents=True, exist_ok=True)
        end_to_end(args.kinds.split(","), seeds, args.end_to_end, args.misses, not args.no_off)
        return 0
    print(f"{'kind':18s} {'seed':>5s} {'frames':>6s} {'recall':>7s} {'prec':>6s} {'boxes':>6s} {'pos':>4s} "
          f"{'bars':>5s} {'ms/f':>6s} {'cpu ms/f':>8s} {'dec ms/f':>8s}")
    for kind in args.kinds.split(","):
        for seed in seeds:
            r = run_clip(kind, seed)
            recall = "-" if r["recall"] is None else f"{r['recall']:.3f}"
            flag = "" if kind in MARK_FREE_KINDS or (r["recall"] or 0) >= 0.99 and r["precision"] >= 0.99 else "  <"
            print(f"{kind:18s} {seed:5d} {r['frames']:6d} {recall:>7s} {r['precision']:6.3f} "
                  f"{r['frames_with_boxes']:6d} {r['positions']:4d} {str(r['bars']):>5s} {r['ms_per_frame']:6.2f} "
                  f"{r['cpu_ms']:8.2f} {r['decode_ms']:8.2f}{flag}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
