"""One command that fills a Triton model repository: ``python -m export.prepare --target cpu``.

Per model it takes the best source available and says which it used:
- detector: real YOLO weights (``DETECTOR_WEIGHTS`` path, or the download) exported to ONNX;
  else the committed demo detector ``export/assets/detector_demo.onnx``; else (torch installed)
  a random-init YOLO11s export, for tests only.
- inpainter(s): big-lama (``LAMA_WEIGHTS`` path, or the download) exported per crop; else the
  committed weight-free fallback ``export/assets/inpainter_fallback_<crop>.onnx``.

Exports are cached under ``$WEIGHTS_DIR/onnx`` keyed by the weights file, and the repository
writer leaves unchanged files alone, so a second run (``make run`` calls this every time) takes
about a second. Torch is imported only to export: the serving install (no torch) uses the
committed assets or exports cached by an earlier run. A weights file given by path that cannot be
used is an error; a failed download falls back, unless ``--require-real``.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import logging
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from export.repository import TARGETS, inpainter_name, write_repository
from export.weights import (WeightSettings, WeightsError, detector_cached, detector_weights, lama_cached,
                            lama_weights)

LOGGER = logging.getLogger(__name__)

ASSETS = Path(__file__).resolve().parent / "assets"
DETECTOR_DEMO = ASSETS / "detector_demo.onnx"
DEFAULT_CROPS = (512, 256)


class PrepareError(RuntimeError):
    """The repository cannot be prepared as asked; the message says what to do."""


@dataclass
class Choice:
    model: str
    kind: str  # "real" | "demo" | "random-init" | "fallback"
    path: Path
    note: str = ""
    crop: int | None = None  # inpainters only


@dataclass
class Report:
    choices: list[Choice] = field(default_factory=list)
    changed: dict[str, bool] = field(default_factory=dict)
    seconds: float = 0.0

    def lines(self) -> list[str]:
        out = []
        for c in self.choices:
            state = "updated" if self.changed.get(c.model) else "unchanged"
            out.append(f"{c.model:15s} {c.kind:11s} {c.path}  [{state}]{'  ' + c.note if c.note else ''}")
        return out


def _has_torch() -> bool:
    return importlib.util.find_spec("torch") is not None


def _weights_key(path: Path) -> str:
    """Cache key of a weights file: cheap (name, size, mtime), so a re-run does not hash 200 MB."""
    st = path.resolve().stat()
    return hashlib.sha256(f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}".encode()).hexdigest()[:16]


def _cached_export(cache: Path, what: str, export) -> Path:
    if cache.is_file():
        return cache
    if not _has_torch():
        raise PrepareError(f"{what}: exporting needs torch, which is not installed (pip install -e '.[export]')")
    start = time.monotonic()
    export(cache)
    LOGGER.info("%s exported in %.1f s", what, time.monotonic() - start)
    return cache


def _obtain(getter, cached, settings: WeightSettings, explicit: Path | None, offline: bool, what: str):
    """(weights path | None, note why not). A path given explicitly must work (else PrepareError);
    a download is tried only where torch can export it, and a failed one just returns None."""
    if explicit is not None:
        try:
            return getter(settings), ""
        except WeightsError as exc:
            raise PrepareError(f"{what}: {exc}") from exc
    if offline:
        return None, "offline"
    if not _has_torch():  # serving install: only an earlier download can be used (its export is cached)
        path = cached(settings)
        if path is not None:
            return path, ""
        return None, "torch is not installed here to export downloaded weights (see make export)"
    try:
        return getter(settings), ""
    except WeightsError as exc:
        LOGGER.warning("%s: %s", what, exc)
        return None, "download failed"


def choose_detector(settings: WeightSettings, *, offline: bool, require_real: bool,
                    demo: Path = DETECTOR_DEMO) -> Choice:
    cache_dir = settings.weights_dir / "onnx"
    explicit = settings.detector_weights
    weights, note = _obtain(detector_weights, detector_cached, settings, explicit, offline, "detector")
    if weights is not None:
        def export(out: Path) -> None:
            from export.detector import export_detector

            export_detector(out, weights=weights)

        try:
            path = _cached_export(cache_dir / f"detector-{_weights_key(weights)}.onnx", "detector", export)
            return Choice("detector", "real", path, f"from {weights}")
        except PrepareError as exc:
            if explicit is not None or require_real:
                raise
            note = str(exc)
    if require_real:
        raise PrepareError(f"detector: real weights required but unavailable ({note}); set DETECTOR_WEIGHTS=PATH "
                           "or DETECTOR_URL")
    if demo.is_file():
        return Choice("detector", "demo", demo, "trained here on synthetic data")

    def export_random(out: Path) -> None:
        from export.detector import export_detector

        export_detector(out, random_init=True)

    if _has_torch() or (cache_dir / "detector-random-init.onnx").is_file():
        path = _cached_export(cache_dir / "detector-random-init.onnx", "detector (random init)", export_random)
        return Choice("detector", "random-init", path, "NO trained detector: it finds nothing useful")
    raise PrepareError(f"detector: no weights, no {demo}, and no torch to export a random-init one; "
                       "set DETECTOR_WEIGHTS=PATH or install the export extra")


def choose_inpainters(settings: WeightSettings, crops: tuple[int, ...], *, offline: bool,
                      require_real: bool) -> list[Choice]:
    explicit = settings.lama_weights
    weights, note = _obtain(lama_weights, lama_cached, settings, explicit, offline, "inpainter")
    if weights is not None:
        choices = []
        for crop in crops:
            def export(out: Path, crop: int = crop) -> None:
                from export.inpainter import export_lama

                export_lama(out, weights=weights, crop=crop)

            cache = settings.weights_dir / "onnx" / f"lama-{_weights_key(weights)}-{crop}.onnx"
            try:
                path = _cached_export(cache, f"LaMa {crop}", export)
            except PrepareError as exc:  # no torch to export with
                if explicit is not None or require_real:
                    raise
                note = str(exc)
                break
            except Exception as exc:  # noqa: BLE001 - a checkpoint that does not fit, etc.
                raise PrepareError(f"inpainter: cannot export LaMa from {weights}: {exc}") from exc
            choices.append(Choice(inpainter_name(crop), "real", path, f"big-lama from {weights}", crop))
        else:
            return choices
    if require_real:
        raise PrepareError(f"inpainter: LaMa weights required but unavailable ({note}); set LAMA_WEIGHTS=PATH "
                           "or LAMA_URL")
    choices = []
    for crop in crops:
        path = ASSETS / f"inpainter_fallback_{crop}.onnx"
        if not path.is_file():
            raise PrepareError(f"no fallback inpainter for crop {crop}: {path} is missing "
                               "(re-create with python -m export.fallback --all)")
        choices.append(Choice(inpainter_name(crop), "fallback", path, "weight-free push-pull (no LaMa weights)", crop))
    return choices


def prepare(repo_dir: Path | str = Path("model_repository"), *, target: str = "cpu",
            settings: WeightSettings | None = None, crops: tuple[int, ...] = DEFAULT_CROPS,
            offline: bool = False, require_real: bool = False, detector_demo: Path = DETECTOR_DEMO) -> Report:
    if target not in ("cpu", "gpu"):
        raise PrepareError(f"target must be cpu or gpu (gpu-plan: python -m export.tensorrt), not {target!r}")
    start = time.monotonic()
    settings = settings or WeightSettings.from_env()
    detector = choose_detector(settings, offline=offline, require_real=require_real, demo=detector_demo)
    inpainters = choose_inpainters(settings, crops, offline=offline, require_real=require_real)
    changed = write_repository(repo_dir, target=target, detector_onnx=detector.path,
                               inpainter_onnx={c.crop: c.path for c in inpainters}, detector_weights=detector.kind)
    report = Report([detector, *inpainters], changed, time.monotonic() - start)
    for line in report.lines():
        LOGGER.info("%s", line)
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--target", choices=[t for t in TARGETS if t != "gpu-plan"], default="cpu")
    parser.add_argument("--repository", type=Path, default=None,
                        help="default: model_repository (cpu), deploy/gpu/model_repository (gpu)")
    parser.add_argument("--require-real", action="store_true", help="fail unless real weights are used")
    parser.add_argument("--offline", action="store_true", help="no downloads (paths and cache only)")
    parser.add_argument("--crops", default=",".join(map(str, DEFAULT_CROPS)),
                        help="inpainter crop sizes (512 is 'inpainter', others 'inpainter_<crop>')")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    repo = args.repository or Path("model_repository" if args.target == "cpu" else "deploy/gpu/model_repository")
    try:
        crops = tuple(int(c) for c in args.crops.split(",") if c.strip())
        report = prepare(repo, target=args.target, crops=crops, offline=args.offline,
                         require_real=args.require_real)
    except (PrepareError, ValueError) as exc:
        print(f"export.prepare: {exc}", file=sys.stderr)
        return 2
    print(f"model repository {repo} ({args.target}) ready in {report.seconds:.1f} s:")
    for line in report.lines():
        print("  " + line)
    if any(c.kind != "real" for c in report.choices):
        print("  (offline models in use: give DETECTOR_WEIGHTS / LAMA_WEIGHTS paths or network for real ones)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
