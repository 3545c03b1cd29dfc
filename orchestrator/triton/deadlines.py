"""RPC deadlines from the work: a request may take as long as the model's measured cost per item
times its batch, times a safety factor; never less than ``floor_s``.

A fixed deadline was wrong both ways: 60 s is below CPU LaMa's own cost at batch 8 (62-215 s
measured), yet far too long to notice a hung GPU server. Until a model has been measured, its
first requests get ``first_s`` (room for lazy initialisation and a first engine build).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass


@dataclass(frozen=True)
class DeadlinePolicy:
    floor_s: float = 60.0  # no request gets less (GRPC_TIMEOUT_S)
    first_s: float = 900.0  # before the model was measured (GRPC_FIRST_TIMEOUT_S)
    factor: float = 4.0  # times the expected time (GRPC_DEADLINE_FACTOR)
    ceiling_s: float = 3600.0


class Deadlines:
    """Per-model cost per item: the slower of a moving average and the latest request, so one
    slow request (a busy CPU) raises the next deadlines at once and they relax over time."""

    def __init__(self, policy: DeadlinePolicy = DeadlinePolicy(), smoothing: float = 0.2) -> None:
        self.policy = policy
        self.smoothing = smoothing
        self._lock = threading.Lock()
        self._average: dict[str, float] = {}
        self._latest: dict[str, float] = {}

    def per_item_s(self, model: str) -> float | None:
        with self._lock:
            if model not in self._average:
                return None
            return max(self._average[model], self._latest[model])

    def timeout_s(self, model: str, batch: int) -> float:
        per_item = self.per_item_s(model)
        if per_item is None:
            return max(self.policy.first_s, self.policy.floor_s)
        want = self.policy.factor * per_item * max(1, batch)
        return min(self.policy.ceiling_s, max(self.policy.floor_s, want))

    def observe(self, model: str, batch: int, seconds: float) -> None:
        """Record a successful request of ``batch`` items that took ``seconds``."""
        per_item = seconds / max(1, batch)
        with self._lock:
            previous = self._average.get(model)
            self._average[model] = per_item if previous is None else (
                (1 - self.smoothing) * previous + self.smoothing * per_item)
            self._latest[model] = per_item


_SHARED: dict[tuple[str, DeadlinePolicy], Deadlines] = {}
_SHARED_LOCK = threading.Lock()


def shared(url: str, policy: DeadlinePolicy) -> Deadlines:
    """One cost table per Triton URL and policy, shared by every client in the process (each task
    makes its own client; the costs it learnt must outlive it)."""
    with _SHARED_LOCK:
        return _SHARED.setdefault((url, policy), Deadlines(policy))
