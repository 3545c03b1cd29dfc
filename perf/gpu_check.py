"""One GPU check in under 10 minutes (``scripts/gpu-check.sh``): engine builds, perf_analyzer, a
704×1280 10 s clip end to end, GPU memory; prints one table. Needs an NVIDIA GPU, NVIDIA's
``tritonserver`` (the Triton/RunPod image), TensorRT (``tensorrt`` module or ``trtexec``) for the
plans, and ``perf_analyzer`` (the ``-sdk`` image, or the tritonclient wheel). Nothing is faked:
a step that cannot run prints why and leaves its cells empty.
"""

from __future__ import annotations

import argparse
import csv
import io
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MODELS = ("detector", "inpainter")
BATCHES = (1, 8, 16)
CONCURRENCY = (1, 4)


@dataclass
class Report:
    builds: dict[str, float] = field(default_factory=dict)  # "plan detector" -> seconds
    perf: list[dict] = field(default_factory=list)  # model, batch, concurrency, infer/s, p50/p99 ms
    e2e: dict = field(default_factory=dict)
    gpu_mem_mb: float | None = None
    gpu: str = ""
    notes: list[str] = field(default_factory=list)


class MemorySampler(threading.Thread):
    """Peak ``memory.used`` of GPU 0 every half second (nvidia-smi)."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.peak = 0.0
        self.stop_event = threading.Event()

    def run(self) -> None:
        while not self.stop_event.wait(0.5):
            out = subprocess.run(["nvidia-smi", "--query-gpu=memory.used", "--format=csv,noheader,nounits",
                                  "-i", "0"], capture_output=True, text=True)
            if out.returncode == 0 and out.stdout.strip():
                self.peak = max(self.peak, float(out.stdout.split()[0]))


def parse_perf_csv(text: str, model: str, batch: int) -> list[dict]:
    """perf_analyzer's ``-f`` CSV → rows of (concurrency, infer/s, p50/p99 in ms)."""
    rows = []
    for row in csv.DictReader(io.StringIO(text)):
        rows.append({"model": model, "batch": batch, "concurrency": int(row["Concurrency"]),
                     "infer_s": float(row["Inferences/Second"]),
                     "p50_ms": float(row["p50 latency"]) / 1000, "p99_ms": float(row["p99 latency"]) / 1000})
    return rows


def table(report: Report) -> str:
    lines = [f"GPU check on {report.gpu or 'unknown GPU'}", "", "| what | value |", "|---|---|"]
    lines += [f"| build {k} | {v:.0f} s |" for k, v in report.builds.items()]
    lines += ["", "| model | batch | concurrency | infer/s | p50 ms | p99 ms |", "|---|---|---|---|---|---|"]
    lines += [f"| {r['model']} | {r['batch']} | {r['concurrency']} | {r['infer_s']:.0f} | {r['p50_ms']:.1f} | "
              f"{r['p99_ms']:.1f} |" for r in report.perf]
    e2e = report.e2e
    lines += ["", "| end to end | value |", "|---|---|",
              f"| clip | {e2e.get('clip', '704x1280, 10 s')} |",
              f"| frames | {e2e.get('frames', '')} |",
              f"| fps | {e2e.get('fps', '')} |",
              f"| peak GPU memory | {report.gpu_mem_mb or '':} MB |"]
    lines += [f"note: {n}" for n in report.notes]
    return "\n".join(lines)


def _http(url: str, data: bytes | None = None, timeout: float = 600) -> int:
    request = urllib.request.Request(url, data=data, method="POST" if data is not None else "GET")
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return response.status


def build_plans(repo: Path, work: Path, report: Report) -> None:
    from export.tensorrt import TensorRTError, build_repository

    plans = work / "plans"
    shutil.copytree(repo, plans, symlinks=False)
    try:
        for built in build_repository(plans):
            report.builds[f"plan {built.model}"] = built.seconds
    except TensorRTError as exc:
        report.notes.append(f"plans not built: {exc}")


def start_triton(repo: Path, cache: Path, http: int, grpc: int, metrics: int, log: Path) -> subprocess.Popen:
    from export.repository import TRT_CACHE_DEFAULT

    runtime = cache.parent / "runtime-repo"
    shutil.copytree(repo, runtime)
    for config in runtime.glob("*/config.pbtxt"):  # what entrypoint.sh does with TRT_CACHE_DIR
        config.write_text(config.read_text().replace(f'"{TRT_CACHE_DEFAULT}/', f'"{cache}/'))
    args = ["tritonserver", f"--model-repository={runtime}", "--model-control-mode=explicit",
            f"--http-port={http}", f"--grpc-port={grpc}", f"--metrics-port={metrics}", "--strict-readiness=true"]
    proc = subprocess.Popen(args, stdout=log.open("wb"), stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if _http(f"http://127.0.0.1:{http}/v2/health/live", timeout=2) == 200:
                return proc
        except OSError:
            time.sleep(0.5)
    proc.kill()
    raise RuntimeError(f"tritonserver did not come up; see {log}")


def load_models(http: int, report: Report, models: tuple[str, ...] = (*MODELS, "inpainter_256")) -> None:
    """Load each model: with the TensorRT EP the engines are built here (warmup covers batch 1-16)."""
    for model in models:
        t0 = time.perf_counter()
        try:
            _http(f"http://127.0.0.1:{http}/v2/repository/models/{model}/load", data=b"{}", timeout=900)
        except OSError as exc:
            report.notes.append(f"load {model} failed: {exc}")
            continue
        report.builds[f"TRT EP engine + warmup {model}"] = time.perf_counter() - t0


def perf_analyzer(grpc: int, report: Report, work: Path) -> None:
    binary = shutil.which("perf_analyzer")
    if binary is None:
        report.notes.append("perf_analyzer not found (use the tritonserver -sdk image or pip tritonclient==2.49.0)")
        return
    for model in MODELS:
        for batch in BATCHES:
            out = work / f"perf-{model}-{batch}.csv"
            cmd = [binary, "-m", model, "-u", f"127.0.0.1:{grpc}", "-i", "grpc", "-b", str(batch),
                   "--concurrency-range", f"{CONCURRENCY[0]}:{CONCURRENCY[-1]}:{CONCURRENCY[-1] - CONCURRENCY[0]}",
                   "--measurement-interval", "2000", "--input-data", "random", "-f", str(out)]
            result = subprocess.run(cmd, capture_output=True, text=True, timeout=240)
            if result.returncode != 0:
                report.notes.append(f"perf_analyzer {model} b{batch} failed: {result.stdout[-300:]}")
                continue
            report.perf += parse_perf_csv(out.read_text(), model, batch)


def end_to_end(grpc: int, work: Path, report: Report, *, width: int = 704, height: int = 1280,
               seconds: float = 10.0) -> None:
    from export.watermark import make_clip
    from orchestrator.pipeline.options import TaskOptions
    from orchestrator.pipeline.run import process_video
    from orchestrator.settings import Settings

    clip = work / f"clip-{width}x{height}.mp4"
    make_clip(clip, width=width, height=height, fps=30.0, seconds=seconds, seed=1)
    settings = Settings(data_dir=work, triton_grpc_url=f"127.0.0.1:{grpc}", detect_batch=16, inpaint_batch=16,
                        requests_in_flight=4)
    details = process_video(clip, work / "out.mp4", TaskOptions(), settings=settings)
    report.e2e = {"clip": f"{width}x{height}, {seconds:g} s, 30 fps", "frames": details["frames"],
                  "fps": details["fps"], "timings_s": details.get("timings_s")}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repository", type=Path, default=Path("/models"),
                        help="GPU model repository (export.prepare --target gpu); default /models (the image's)")
    parser.add_argument("--no-plans", action="store_true", help="skip the tensorrt_plan builds")
    parser.add_argument("--ports", default="18000,18001,18002")
    args = parser.parse_args(argv)
    smi = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True) if shutil.which("nvidia-smi") else None
    if smi is None or smi.returncode != 0:
        print("gpu-check: no NVIDIA GPU (nvidia-smi failed); nothing measured", file=sys.stderr)
        return 2
    report = Report(gpu=smi.stdout.splitlines()[0])
    http, grpc, metrics = (int(p) for p in args.ports.split(","))
    sampler = MemorySampler()
    sampler.start()
    with tempfile.TemporaryDirectory(prefix="gpu-check-") as tmp:
        work = Path(tmp)
        if not args.no_plans:
            build_plans(args.repository, work, report)
        triton = start_triton(args.repository, work / "trt_cache", http, grpc, metrics, work / "triton.log")
        try:
            load_models(http, report)
            perf_analyzer(grpc, report, work)
            try:
                end_to_end(grpc, work, report)
            except Exception as exc:  # noqa: BLE001 - reported in the table's notes
                report.notes.append(f"end to end failed: {type(exc).__name__}: {exc}")
        finally:
            triton.terminate()
            triton.wait(30)
    sampler.stop_event.set()
    report.gpu_mem_mb = sampler.peak or None
    print(table(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
