"""The typed hand-offs between pass 1 (detect), planning and pass 2 (remove), and the one place the
API's per-mark details are built from them (shape: docs/CONTRACTS.md)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from orchestrator.pipeline.matte import MatteEstimate
from orchestrator.pipeline.options import Region


@dataclass(frozen=True)
class MarkKey:
    """Which mark: a detected position (``index`` into the timeline's positions) or a task region
    (``index`` into the task's regions)."""

    kind: Literal["position", "region"]
    index: int

    @classmethod
    def position(cls, index: int) -> "MarkKey":
        return cls("position", int(index))

    @classmethod
    def region(cls, index: int) -> "MarkKey":
        return cls("region", int(index))


@dataclass(frozen=True, eq=False)
class Mark:
    """A mark to remove: its key, its box (x1, y1, x2, y2; frame pixels) and, for a region, the
    task's region (time range)."""

    key: MarkKey
    box: np.ndarray  # float64 [4]
    region: Region | None = None
    found: dict | None = None  # how pass 1 found a position: source, visits, mark, alpha (discover)


@dataclass(frozen=True, eq=False)
class MarkPlan:
    """Matte removal for one mark (only when its estimate is usable): the estimate, the window
    (x0, y0, w, h) the matte lives in, and the mark's offset in that window."""

    estimate: MatteEstimate
    window: tuple[int, int, int, int]
    offset: np.ndarray


@dataclass(frozen=True)
class MarkReport:
    """How a mark is removed and why: ``method`` "matte" or "inpaint", ``reason`` when the matte
    is not used, ``matte`` the estimate's summary (``MatteEstimate.summary`` plus its scope),
    ``confirmed_by`` the evidence planning found for a position pass 1 left unconfirmed (``jump``:
    the confirmed mark jumped to or from it on the frame)."""

    method: str = "inpaint"
    reason: str | None = None
    matte: dict | None = None
    confirmed_by: str | None = None


def mark_details(mark: Mark, report: MarkReport) -> dict:
    """One entry of the task details' ``marks`` (positions) or ``regions`` list."""
    if mark.region is not None:
        entry: dict = {"box": list(mark.region.box), "start": mark.region.start, "end": mark.region.end}
    else:
        entry = {"box": [round(float(v), 1) for v in mark.box]}
    if mark.found is not None:
        entry.update(mark.found)
    entry["method"] = report.method
    if report.matte is not None:
        entry["matte"] = report.matte
    if report.reason is not None:
        entry["reason"] = report.reason
    if report.confirmed_by is not None:
        entry["confirmed"] = True
        entry["confirmed_by"] = report.confirmed_by
    return entry


def marks_details(marks: list[Mark], reports: dict[MarkKey, MarkReport], *, detect: bool) -> dict:
    """The details' ``marks`` (detected positions; only when detection ran) and ``regions``."""
    out: dict = {}
    if detect:
        out["marks"] = [mark_details(m, reports.get(m.key, MarkReport())) for m in marks
                        if m.key.kind == "position"]
    out["regions"] = [mark_details(m, reports.get(m.key, MarkReport())) for m in marks
                      if m.key.kind == "region"]
    return out


def outcome(details: dict) -> str:
    """One plain phrase for the task: ``removed``, ``no watermark found`` or ``found, left
    untouched`` (confirmed positions whose estimate showed no overlay; an unconfirmed detector
    guess the matte refuted is not a watermark found)."""
    if details.get("frames_with_boxes"):
        return "removed"
    if any(m.get("confirmed", True) for m in details.get("marks") or ()):
        return "found, left untouched"
    return "no watermark found"
