"""``python -m orchestrator.smoke``: the images' build-time check that the pipeline really runs.

Importing ``orchestrator.app`` proved nothing once: the app imports the pipeline lazily, and a
bare install failed every task on a missing module while /ping said 200. This writes a short clip
with the synthetic mark, removes it through the real pipeline with the committed ONNX models run
in-process by onnxruntime (a Docker build has no Triton), and checks the output decodes with every
frame. Exit status 0 = the installed environment serves videos.
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import numpy as np

LOGGER = logging.getLogger(__name__)

ASSETS = Path(__file__).resolve().parent.parent / "export" / "assets"
_MODELS = {
    "detector": "detector_demo.onnx",
    "inpainter": "inpainter_fallback_512.onnx",
    "inpainter_256": "inpainter_fallback_256.onnx",
}


class OnnxClient:
    """The slice of ``TritonClient`` the pipeline uses, answered by onnxruntime in this process."""

    def __init__(self, assets: Path = ASSETS) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        self._sessions = {name: ort.InferenceSession(str(assets / file), options,
                                                     providers=["CPUExecutionProvider"])
                          for name, file in _MODELS.items() if (assets / file).exists()}
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="smoke-onnx")

    def ready_models(self) -> set[str]:
        return set(self._sessions)

    def inpainter_sizes(self, prefix: str = "inpainter") -> dict[int, str]:
        sizes = {}
        for name, session in self._sessions.items():
            if name == prefix or name.startswith(prefix + "_"):
                image = next(i for i in session.get_inputs() if i.name == "image")
                sizes[int(image.shape[-1])] = name
        return sizes

    def infer(self, model: str, inputs: dict[str, np.ndarray], outputs: list[str]) -> dict[str, np.ndarray]:
        values = self._sessions[model].run(outputs, {k: np.ascontiguousarray(v) for k, v in inputs.items()})
        return dict(zip(outputs, values))

    def submit(self, model: str, inputs: dict[str, np.ndarray], outputs: list[str]) -> Future:
        return self._pool.submit(self.infer, model, inputs, outputs)

    def close(self) -> None:
        self._pool.shutdown(wait=True)


def frame_count(path: Path) -> tuple[int, int, int]:
    """(frames, width, height) of the first video stream, by decoding it."""
    import av

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames = sum(1 for _ in container.decode(stream))
        return frames, stream.width, stream.height


def run(workdir: Path, seconds: float = 2.0) -> dict:
    """Write a clip, process it, check the output; returns the pipeline's details."""
    from export.watermark import make_clip
    from orchestrator.pipeline.options import TaskOptions
    from orchestrator.pipeline.run import process_video
    from orchestrator.settings import Settings

    clip, out = workdir / "smoke.mp4", workdir / "smoke-out.mp4"
    make_clip(clip, width=640, height=360, fps=30.0, seconds=seconds, seed=0)
    settings = Settings(data_dir=workdir)
    client = OnnxClient()
    try:
        details = process_video(clip, out, TaskOptions(), settings=settings, client=client)
    finally:
        client.close()
    want, got = frame_count(clip), frame_count(out)
    if got != want:
        raise RuntimeError(f"output has (frames, width, height) {got}, input {want}")
    return details


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m orchestrator.smoke", description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=2.0)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="sora-unmark-smoke-") as tmp:
        try:
            details = run(Path(tmp), args.seconds)
        except Exception as exc:  # noqa: BLE001 - the check's verdict, printed for the build log
            print(f"smoke test FAILED: {type(exc).__name__}: {exc}", file=sys.stderr)
            return 1
    print(f"smoke test passed: {details.get('frames')} frames in {time.perf_counter() - started:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
