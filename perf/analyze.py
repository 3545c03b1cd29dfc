"""Turn perf_analyzer's per-point CSVs into ``results.csv`` and a Markdown summary.

perf_analyzer writes one CSV per run (``-f``, times in microseconds). The summary answers what
people ask of a serving benchmark: how throughput trades against p95 latency across batch size and
concurrency, and whether time goes to Triton's queue (batching/scheduling) or to compute.

Usage: ``python -m perf.analyze OUT_DIR`` (bench.py calls it at the end of a run).
"""

from __future__ import annotations

import csv
import json
import logging
import re
import sys
from dataclasses import asdict, dataclass, fields
from pathlib import Path

LOGGER = logging.getLogger(__name__)

POINT_FILE = re.compile(r"^(?P<model>.+)_b(?P<batch>\d+)_c(?P<conc>\d+)\.csv$")


@dataclass
class Row:
    model: str
    batch: int
    concurrency: int
    infer_per_s: float
    requests_per_s: float
    avg_ms: float
    p50_ms: float
    p90_ms: float
    p95_ms: float
    p99_ms: float
    client_send_ms: float
    network_ms: float  # network + server send/recv
    server_queue_ms: float
    server_compute_input_ms: float
    server_compute_infer_ms: float
    server_compute_output_ms: float
    client_recv_ms: float
    gpu_utilization: float | None = None  # 0..1, only with --collect-metrics on a GPU server

    @property
    def server_compute_ms(self) -> float:
        return self.server_compute_input_ms + self.server_compute_infer_ms + self.server_compute_output_ms


def _ms(record: dict[str, str], key: str) -> float:
    value = record.get(key, "")
    return float(value) / 1000.0 if value not in ("", None) else 0.0


def parse_point_csv(path: Path, model: str, batch: int) -> list[Row]:
    """Rows of one perf_analyzer CSV (one per concurrency level it measured)."""
    rows = []
    with open(path, newline="") as handle:
        for record in csv.DictReader(handle):
            if not record.get("Concurrency"):
                continue
            infer = float(record["Inferences/Second"])
            gpu = record.get("Avg GPU Utilization")
            gpu_value = None
            if gpu:
                # perf_analyzer writes "gpu_uuid:value;" pairs; average them.
                values = [float(v.split(":")[-1]) for v in gpu.strip(";").split(";") if ":" in v]
                gpu_value = sum(values) / len(values) if values else None
            rows.append(Row(
                model=model, batch=batch, concurrency=int(float(record["Concurrency"])),
                infer_per_s=infer, requests_per_s=infer / batch if batch else infer,
                avg_ms=_ms(record, "Avg latency"), p50_ms=_ms(record, "p50 latency"),
                p90_ms=_ms(record, "p90 latency"), p95_ms=_ms(record, "p95 latency"),
                p99_ms=_ms(record, "p99 latency"), client_send_ms=_ms(record, "Client Send"),
                network_ms=_ms(record, "Network+Server Send/Recv"), server_queue_ms=_ms(record, "Server Queue"),
                server_compute_input_ms=_ms(record, "Server Compute Input"),
                server_compute_infer_ms=_ms(record, "Server Compute Infer"),
                server_compute_output_ms=_ms(record, "Server Compute Output"),
                client_recv_ms=_ms(record, "Client Recv"), gpu_utilization=gpu_value,
            ))
    return rows


def collect(out_dir: Path) -> list[Row]:
    rows: list[Row] = []
    for path in sorted(out_dir.glob("*.csv")):
        match = POINT_FILE.match(path.name)
        if not match:
            continue
        try:
            rows += parse_point_csv(path, match["model"], int(match["batch"]))
        except (KeyError, ValueError) as exc:
            LOGGER.warning("unreadable perf_analyzer CSV %s: %s", path, exc)
    rows.sort(key=lambda r: (r.model, r.batch, r.concurrency))
    return rows


def write_results_csv(rows: list[Row], path: Path) -> None:
    names = [f.name for f in fields(Row)] + ["server_compute_ms"]
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=names)
        writer.writeheader()
        for row in rows:
            record = asdict(row)
            record["server_compute_ms"] = row.server_compute_ms
            writer.writerow({k: (round(v, 3) if isinstance(v, float) else v) for k, v in record.items()})


def pareto(rows: list[Row]) -> set[int]:
    """Indices of points no other point beats on both throughput and p95 latency."""
    front = set()
    for i, a in enumerate(rows):
        dominated = any(
            b.infer_per_s >= a.infer_per_s and b.p95_ms <= a.p95_ms
            and (b.infer_per_s > a.infer_per_s or b.p95_ms < a.p95_ms)
            for j, b in enumerate(rows) if j != i
        )
        if not dominated:
            front.add(i)
    return front


def _fmt(value: float) -> str:
    return f"{value:.1f}" if value >= 10 else f"{value:.2f}"


def render_summary(rows: list[Row], meta: dict) -> str:
    lines = ["# perf_analyzer results", ""]
    if meta:
        server = "local Triton (started by perf/run.sh)" if meta.get("local_triton") else "given server"
        lines += [
            f"- Server: `{meta.get('url')}` over {meta.get('protocol')}, {server}; profile `{meta.get('profile')}`",
            f"- Input data: {meta.get('input')}; detector gets letterboxed 640×640 frames, inpainters "
            "square crops around the mark with its mask (uint8, as the pipeline sends)",
            f"- Run: {meta.get('started')} → {meta.get('finished')}",
        ]
        for name, info in meta.get("models", {}).items():
            lines.append(f"- `{name}`: backend {info.get('backend')}, max_batch_size {info.get('max_batch_size')}, "
                         f"inputs {info.get('inputs')}, dynamic batching {'on' if info.get('dynamic_batching') else 'off'}")
        lines.append("")
    lines += [
        "Times in ms. `infer/s` counts images or crops (requests × batch). `queue` and `compute` are "
        "Triton's server-side averages per request; `queue %` is queue / (queue + compute). "
        "★ = on the throughput-vs-p95 frontier.",
        "",
    ]
    for model in sorted({r.model for r in rows}):
        subset = [r for r in rows if r.model == model]
        front = pareto(subset)
        has_gpu = any(r.gpu_utilization is not None for r in subset)
        lines += [f"## {model}", ""]
        header = "| batch | concurrency | infer/s | p50 | p95 | p99 | queue | compute | queue % | network+client |"
        sep = "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
        if has_gpu:
            header += " GPU util |"
            sep += "---:|"
        lines += [header, sep]
        for i, r in enumerate(subset):
            busy = r.server_queue_ms + r.server_compute_ms
            share = 100.0 * r.server_queue_ms / busy if busy > 0 else 0.0
            client = r.client_send_ms + r.network_ms + r.client_recv_ms
            line = (f"| {r.batch} | {r.concurrency} | {_fmt(r.infer_per_s)}{' ★' if i in front else ''} | "
                    f"{_fmt(r.p50_ms)} | {_fmt(r.p95_ms)} | {_fmt(r.p99_ms)} | {_fmt(r.server_queue_ms)} | "
                    f"{_fmt(r.server_compute_ms)} | {share:.0f} | {_fmt(client)} |")
            if has_gpu:
                line += f" {'' if r.gpu_utilization is None else f'{100 * r.gpu_utilization:.0f}%'} |"
            lines.append(line)
        best = max(subset, key=lambda r: r.infer_per_s)
        fastest = min(subset, key=lambda r: r.p95_ms)
        lines += [
            "",
            f"Peak {_fmt(best.infer_per_s)} infer/s at batch {best.batch}, concurrency {best.concurrency} "
            f"(p95 {_fmt(best.p95_ms)} ms); lowest p95 {_fmt(fastest.p95_ms)} ms at batch {fastest.batch}, "
            f"concurrency {fastest.concurrency} ({_fmt(fastest.infer_per_s)} infer/s).",
            "",
        ]
    failed = [p for p in meta.get("points", []) if not p.get("ok") and not p.get("skipped")]
    if failed:
        lines += ["## Points without a result", ""]
        lines += [f"- {p['model']} batch {p['batch']} concurrency {p['concurrency']}: {p.get('error')}" for p in failed]
        lines.append("")
    skipped = [p for p in meta.get("points", []) if p.get("skipped")]
    if skipped:
        listed = ", ".join(f"{p['model']} b{p['batch']}×c{p['concurrency']}" for p in skipped)
        lines += [f"Skipped ({skipped[0]['skipped']}): {listed}.", ""]
    if not rows:
        lines += ["No perf_analyzer result was recorded; see perf_analyzer.log.", ""]
    return "\n".join(lines)


def write_report(out_dir: Path) -> Path:
    """Write ``results.csv`` and ``summary.md`` in ``out_dir``; returns the summary path."""
    out_dir = Path(out_dir)
    rows = collect(out_dir)
    meta_path = out_dir / "meta.json"
    meta = json.loads(meta_path.read_text()) if meta_path.exists() else {}
    write_results_csv(rows, out_dir / "results.csv")
    summary = out_dir / "summary.md"
    summary.write_text(render_summary(rows, meta))
    return summary


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1 or not Path(argv[0]).is_dir():
        print("usage: python -m perf.analyze OUT_DIR", file=sys.stderr)
        return 2
    print(write_report(Path(argv[0])).read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
