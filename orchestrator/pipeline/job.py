"""``Job``: one call of ``process_video`` as every stage reads it, and ``threaded``, the bounded
queue that lets the stages (decode, work, encode) run in their own threads and overlap."""

from __future__ import annotations

import queue
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator

from orchestrator.pipeline.decode import Decoded, VideoInfo, iter_frames
from orchestrator.pipeline.options import TaskOptions
from orchestrator.pipeline.progress import Reporter
from orchestrator.settings import Settings


def threaded(items: Iterable, maxsize: int, name: str, timer: dict) -> Iterator:
    """Run the iterable in a thread, yield its items through a bounded queue (errors re-raised).

    Closing the returned generator (or an error in the consumer) stops the thread at its next item.
    """
    q: queue.Queue = queue.Queue(maxsize)
    stop = threading.Event()
    done = object()

    def produce() -> None:
        try:
            it = iter(items)
            while not stop.is_set():
                t0 = time.perf_counter()
                try:
                    item = next(it)
                except StopIteration:
                    break
                finally:
                    timer[name] = timer.get(name, 0.0) + time.perf_counter() - t0
                while not stop.is_set():
                    try:
                        q.put(item, timeout=0.1)
                        break
                    except queue.Full:
                        continue
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer
            q.put(exc)
            return
        finally:
            close = getattr(items, "close", None)
            if close is not None:
                try:
                    close()
                except Exception:  # noqa: BLE001
                    pass
        q.put(done)

    thread = threading.Thread(target=produce, name=f"pipeline-{name}", daemon=True)
    thread.start()
    try:
        while True:
            item = q.get()
            if item is done:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        while thread.is_alive():
            try:
                q.get_nowait()
            except queue.Empty:
                thread.join(0.05)


@dataclass(frozen=True, eq=False)
class Job:
    """One call of ``process_video``: what every stage reads."""

    input_path: Path
    output_path: Path
    options: TaskOptions
    settings: Settings
    info: VideoInfo
    client: object  # TritonClient
    sizes: dict[int, str]  # inpainter crop size -> model name
    check: Callable[[], None]
    report: Reporter
    timer: dict[str, float]

    def frames(self) -> Iterator[Decoded]:
        """A decode of the input in its own thread (bounded queue)."""
        return threaded(iter_frames(self.input_path, max_duration_s=self.settings.max_duration_s),
                        8, "decode", self.timer)
