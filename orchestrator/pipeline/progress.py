"""Progress reports and cancellation checks of ``process_video`` (called from its threads)."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Callable

from orchestrator.errors import TaskCancelledError

LOGGER = logging.getLogger(__name__)


@dataclass(frozen=True)
class Progress:
    """One progress report: percent of the whole task, stage, throughput and frame counts."""

    percent: float
    stage: str
    fps: float | None
    frames_done: int
    frames_total: int | None


class Reporter:
    """Calls ``progress`` at most every ``interval`` seconds (and always on stage changes)."""

    def __init__(self, callback: Callable[[Progress], None] | None, interval: float = 0.5) -> None:
        self.callback = callback
        self.interval = interval
        self._last = 0.0
        self._stage = ""
        self._stage_start = time.monotonic()

    def __call__(self, stage: str, done: int, total: int | None, lo: float, hi: float, force: bool = False) -> None:
        if self.callback is None:
            return
        now = time.monotonic()
        if stage != self._stage:
            self._stage, self._stage_start, force = stage, now, True
        if not force and now - self._last < self.interval:
            return
        self._last = now
        frac = min(done / total, 1.0) if total else 0.0
        elapsed = now - self._stage_start
        fps = done / elapsed if elapsed > 0 and done else None
        try:
            self.callback(Progress(round(lo + (hi - lo) * frac, 1), stage, fps, done, total))
        except Exception:  # noqa: BLE001 - a broken progress sink must not fail the task
            LOGGER.warning("progress callback failed", exc_info=True)


def checker(should_cancel: Callable[[], bool] | None) -> Callable[[], None]:
    def check() -> None:
        if should_cancel is not None and should_cancel():
            raise TaskCancelledError("the task was cancelled")
    return check
