"""Prometheus figures recorded in a task's child process, relayed to the service's registry.

The child's own registry is never scraped, so in the child every metric object the project's
modules hold is swapped for a relay that buffers ``inc``/``observe`` calls; the buffer travels to
the parent with each progress report and with the outcome, and the parent replays it on the real
objects (counters and histograms add up exactly; gauges are the parent's own business).
"""

from __future__ import annotations

import sys
import threading

from prometheus_client import Counter, Histogram

from orchestrator import metrics

Event = tuple[str, str, tuple[str, ...], float]  # (metric name in orchestrator.metrics, method, labels, value)


class _Buffer:
    def __init__(self) -> None:
        self.events: list[Event] = []
        self.lock = threading.Lock()

    def add(self, event: Event) -> None:
        with self.lock:
            self.events.append(event)

    def drain(self) -> list[Event]:
        with self.lock:
            events, self.events = self.events, []
        return events


class _Relay:
    def __init__(self, name: str, buffer: _Buffer, labels: tuple[str, ...] = ()) -> None:
        self._name, self._buffer, self._labels = name, buffer, labels

    def labels(self, *values: str, **named: str) -> "_Relay":
        return _Relay(self._name, self._buffer, tuple(values) or tuple(named.values()))

    def inc(self, amount: float = 1.0) -> None:
        self._buffer.add((self._name, "inc", self._labels, float(amount)))

    def observe(self, value: float) -> None:
        self._buffer.add((self._name, "observe", self._labels, float(value)))


def install() -> _Buffer:
    """In the child: replace every counter/histogram of ``orchestrator.metrics`` wherever a
    project module holds it. Returns the buffer to drain."""
    buffer = _Buffer()
    relays = {}
    for name, value in vars(metrics).items():
        if isinstance(value, (Counter, Histogram)):
            relays[id(value)] = _Relay(name, buffer)
    for module in list(sys.modules.values()):
        if module is None or not getattr(module, "__name__", "").startswith("orchestrator"):
            continue
        for attr, value in list(vars(module).items()):
            relay = relays.get(id(value))
            if relay is not None:
                setattr(module, attr, relay)
    return buffer


def replay(events: list[Event]) -> None:
    """In the parent: apply the child's events to the real metrics."""
    for name, method, labels, value in events:
        metric = getattr(metrics, name, None)
        if metric is None:
            continue
        target = metric.labels(*labels) if labels else metric
        getattr(target, method)(value)
