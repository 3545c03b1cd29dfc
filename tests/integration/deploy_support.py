"""Helpers shared by the deployment tests: the dashboard's PromQL metric names, scrape parsing."""

from __future__ import annotations

import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "deploy" / "grafana" / "dashboards" / "sora-unmark.json"

# Triton exports these only when it runs on a GPU (Triton docs, "Metrics" → "GPU Metrics"); the
# CPU scrape in the tests cannot show them, so they are named here instead.
GPU_ONLY_TRITON_METRICS = frozenset({
    "nv_gpu_utilization", "nv_gpu_memory_used_bytes", "nv_gpu_memory_total_bytes",
    "nv_gpu_power_usage", "nv_gpu_power_limit", "nv_energy_consumption",
})

_KEYWORDS = frozenset({"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or",
                       "unless", "offset", "inf", "nan"})


def dashboard_panels(dashboard: dict) -> list[dict]:
    """Every panel, including those nested in collapsed rows."""
    panels = []
    for panel in dashboard.get("panels", []):
        panels.append(panel)
        panels.extend(panel.get("panels", []))
    return panels


def dashboard_exprs(path: Path = DASHBOARD) -> list[str]:
    dashboard = json.loads(path.read_text())
    return [t["expr"] for p in dashboard_panels(dashboard) for t in p.get("targets", []) if t.get("expr")]


def promql_metric_names(expr: str) -> set[str]:
    """Metric names a PromQL expression selects (not functions, keywords, labels or variables)."""
    e = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # string literals
    e = re.sub(r"\{[^}]*\}", " ", e)  # label matchers
    e = re.sub(r"\[[^\]]*\]", " ", e)  # range selectors, [$__rate_interval] included
    e = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", e)
    e = re.sub(r"\$\{?\w+\}?", " ", e)  # Grafana variables
    e = re.sub(r"(?<![\w:])(\d+(ms|[smhdwy]))+\b", " ", e)  # durations (offset 5m, 1h30m)
    e = re.sub(r"(?<![\w:])\d+(\.\d+)?([eE][+-]?\d+)?", " ", e)  # numbers
    names = set()
    for match in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", e):
        token = match.group(0)
        if token.lower() in _KEYWORDS or e[match.end():].lstrip().startswith("("):
            continue  # a keyword or a function call
        names.add(token)
    return names


def dashboard_metric_names(path: Path = DASHBOARD) -> set[str]:
    names: set[str] = set()
    for expr in dashboard_exprs(path):
        names |= promql_metric_names(expr)
    return names


_SAMPLE = re.compile(r"^([A-Za-z_:][A-Za-z0-9_:]*)(?:\{(.*)\})?\s+(\S+)")
_LABEL = re.compile(r'([A-Za-z_][A-Za-z0-9_]*)="((?:[^"\\]|\\.)*)"')


def scrape_samples(text: str) -> list[tuple[str, dict[str, str], float]]:
    """(series name, labels, value) per sample line of a Prometheus text exposition, names exactly
    as written: prometheus_client's parser renames counters to ``*_total``, which Triton's are not."""
    samples = []
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        match = _SAMPLE.match(line)
        if match:
            labels = dict(_LABEL.findall(match.group(2) or ""))
            samples.append((match.group(1), labels, float(match.group(3))))
    return samples


def scrape_series_names(text: str) -> set[str]:
    return {name for name, _, _ in scrape_samples(text)}


def scrape_value(text: str, name: str, **labels: str) -> float:
    """Sum of the samples called ``name`` whose labels include ``labels`` (0 when none)."""
    return sum(value for n, sample_labels, value in scrape_samples(text)
               if n == name and all(sample_labels.get(k) == v for k, v in labels.items()))
