"""Public weights: from a local path or a URL, checksum-verified, cached under ``data/weights``.

Sources and checksums are settings read from the environment (so a mirror or a local file works):

| variable | default |
|---|---|
| ``LAMA_WEIGHTS`` | unset; a local ``best.ckpt`` / ``big-lama.pt`` / ``big-lama.zip`` (no download) |
| ``LAMA_URL`` | IOPaint's TorchScript ``big-lama.pt`` (GitHub ``Sanster/models`` release) |
| ``LAMA_MD5`` / ``LAMA_SHA256`` | the published MD5 of that file / unset |
| ``LAMA_HF_REPO`` / ``LAMA_HF_FILE`` | ``smartywu/big-lama`` / ``big-lama.zip`` (official best.ckpt inside), tried when the URL fails |
| ``DETECTOR_WEIGHTS`` | unset; a local YOLO ``best.pt`` |
| ``DETECTOR_URL`` / ``DETECTOR_SHA256`` | SoraWatermarkCleaner release ``best.pt`` / unset |
| ``WEIGHTS_DIR`` | ``$DATA_DIR/weights`` (``./data/weights``) |

These live here rather than in ``orchestrator.settings`` because only the export tool uses them;
the serving process never downloads weights. A download without a configured checksum is
accepted with a warning that prints the SHA-256 to pin.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import tempfile
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Mapping

LOGGER = logging.getLogger(__name__)

LAMA_URL = "https://github.com/Sanster/models/releases/download/add_big_lama/big-lama.pt"
LAMA_MD5 = "e3aa4aaa15225a33ec84f9f4bc47e500"
DETECTOR_URL = "https://github.com/linkedlist771/SoraWatermarkCleaner/releases/download/V0.0.1/best.pt"


class WeightsError(RuntimeError):
    """Weights could not be obtained or failed verification; the message says which and why."""


@dataclass(frozen=True)
class WeightSettings:
    lama_weights: Path | None = None
    lama_url: str = LAMA_URL
    lama_md5: str | None = LAMA_MD5
    lama_sha256: str | None = None
    lama_hf_repo: str | None = "smartywu/big-lama"
    lama_hf_file: str = "big-lama.zip"
    detector_weights: Path | None = None
    detector_url: str = DETECTOR_URL
    detector_sha256: str | None = None
    weights_dir: Path = Path("data/weights")

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> "WeightSettings":
        env = os.environ if env is None else env
        values: dict[str, object] = {}
        if env.get("DATA_DIR"):
            values["weights_dir"] = Path(env["DATA_DIR"]) / "weights"
        for f in fields(cls):
            raw = env.get(f.name.upper())
            if raw is None:
                continue
            if raw == "" and f.name in {"lama_md5", "lama_sha256", "detector_sha256", "lama_hf_repo"}:
                values[f.name] = None  # explicitly disabled
            elif raw != "":
                values[f.name] = Path(raw) if f.name in {"lama_weights", "detector_weights", "weights_dir"} else raw
        return cls(**values)


@dataclass(frozen=True)
class Checksum:
    algorithm: str  # "sha256" | "md5"
    hexdigest: str

    @classmethod
    def pick(cls, *, sha256: str | None = None, md5: str | None = None) -> "Checksum | None":
        if sha256:
            return cls("sha256", sha256.strip().lower())
        if md5:
            return cls("md5", md5.strip().lower())
        return None


def file_digest(path: Path, algorithm: str = "sha256") -> str:
    digest = hashlib.new(algorithm)
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def verify(path: Path, checksum: Checksum | None) -> None:
    if checksum is None:
        return
    actual = file_digest(path, checksum.algorithm)
    if actual != checksum.hexdigest:
        raise WeightsError(
            f"checksum mismatch for {path}: {checksum.algorithm} is {actual}, expected {checksum.hexdigest}"
        )


def _cache_name(url: str, checksum: Checksum | None) -> str:
    base = url.rstrip("/").rsplit("/", 1)[-1].split("?")[0] or "weights"
    tag = checksum.hexdigest[:12] if checksum else hashlib.sha256(url.encode()).hexdigest()[:12]
    return f"{tag}-{base}"


def fetch(source: str | Path, *, checksum: Checksum | None = None, cache_dir: Path = Path("data/weights"),
          timeout_s: float = 30.0) -> Path:
    """A verified local file for ``source``: a path (verified in place) or an http(s)/file URL
    (downloaded once into ``cache_dir``, then reused while it still verifies)."""
    text = str(source)
    if "://" not in text:
        path = Path(text).expanduser()
        if not path.is_file():
            raise WeightsError(f"weights file not found: {path}")
        verify(path, checksum)
        return path
    cache_dir = Path(cache_dir)
    target = cache_dir / _cache_name(text, checksum)
    if target.is_file():
        try:
            verify(target, checksum)
            LOGGER.info("using cached %s", target)
            return target
        except WeightsError:
            LOGGER.warning("cached %s fails its checksum; downloading again", target)
            target.unlink()
    cache_dir.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=target.name + ".", suffix=".part", dir=cache_dir)
    LOGGER.info("downloading %s", text)
    try:
        with os.fdopen(fd, "wb") as out:
            request = urllib.request.Request(text, headers={"User-Agent": "sora-unmark-export"})
            with urllib.request.urlopen(request, timeout=timeout_s) as response:
                shutil.copyfileobj(response, out, 1 << 20)
        verify(Path(tmp), checksum)
        if checksum is None:
            LOGGER.warning("no checksum configured for %s; its sha256 is %s (pin it)", text,
                           file_digest(Path(tmp)))
        os.replace(tmp, target)
    except WeightsError:
        raise
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = f"HTTP {exc.code} {exc.reason}" if isinstance(exc, urllib.error.HTTPError) else \
            getattr(exc, "reason", exc)
        raise WeightsError(f"cannot download {text}: {reason}") from exc
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return target


def cached_download(url: str, checksum: Checksum | None, cache_dir: Path) -> Path | None:
    """The file an earlier :func:`fetch` of ``url`` left in ``cache_dir``, if any (no network)."""
    path = Path(cache_dir) / _cache_name(url, checksum)
    return path if path.is_file() else None


def extract_member(archive: Path, suffix: str, cache_dir: Path) -> Path:
    """The file of ``archive`` (a zip such as the official big-lama.zip) whose name ends with ``suffix``."""
    with zipfile.ZipFile(archive) as zf:
        names = [n for n in zf.namelist() if n.endswith(suffix)]
        if not names:
            raise WeightsError(f"{archive} has no member ending in {suffix!r}")
        target = Path(cache_dir) / f"{archive.stem}-{Path(names[0]).name}"
        if not target.is_file() or target.stat().st_size != zf.getinfo(names[0]).file_size:
            target.parent.mkdir(parents=True, exist_ok=True)
            with zf.open(names[0]) as src, open(target.with_suffix(".part"), "wb") as dst:
                shutil.copyfileobj(src, dst, 1 << 20)
            os.replace(target.with_suffix(".part"), target)
    return target


def _reachable(host: str, port: int = 443, timeout_s: float = 3.0) -> str | None:
    """None when a TCP connection to ``host`` opens, else the reason (one quick try, no retries)."""
    import socket

    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return None
    except OSError as exc:
        return str(exc)


def _hf_download(repo: str, filename: str, cache_dir: Path) -> Path:
    # huggingface_hub retries unreachable hosts with backoff for ~25 s: probe once first, so that an
    # offline `make run` stays fast.
    from urllib.parse import urlsplit

    endpoint = urlsplit(os.environ.get("HF_ENDPOINT") or "https://huggingface.co")
    host = endpoint.hostname or "huggingface.co"
    reason = _reachable(host, endpoint.port or (80 if endpoint.scheme == "http" else 443))
    if reason is not None:
        raise WeightsError(f"cannot download {filename} from HuggingFace {repo}: {host} unreachable ({reason})")
    try:
        from huggingface_hub import hf_hub_download
    except ImportError as exc:
        raise WeightsError("huggingface-hub is not installed (pip install -e '.[export]')") from exc
    try:
        return Path(hf_hub_download(repo_id=repo, filename=filename, cache_dir=str(cache_dir / "hf"),
                                    etag_timeout=10))
    except Exception as exc:  # noqa: BLE001 - the hub raises many network error types
        raise WeightsError(f"cannot download {filename} from HuggingFace {repo}: {exc}") from exc


def _unpack_lama(path: Path, cache_dir: Path) -> Path:
    """The official ``big-lama.zip`` holds ``big-lama/models/best.ckpt``; other files are used as is
    (a TorchScript ``big-lama.pt`` is a zip too, hence the check on the name)."""
    if path.suffix == ".zip" and zipfile.is_zipfile(path):
        return extract_member(path, "best.ckpt", cache_dir)
    return path


def lama_weights(settings: WeightSettings) -> Path:
    """LaMa weights: the local path if set, else the URL, else the HuggingFace repo (best.ckpt)."""
    checksum = Checksum.pick(sha256=settings.lama_sha256, md5=settings.lama_md5)
    if settings.lama_weights is not None:
        # The user's own file: the pinned checksum is for the default URL's file, not this one.
        return _unpack_lama(fetch(settings.lama_weights, cache_dir=settings.weights_dir), settings.weights_dir)
    errors = []
    try:
        return fetch(settings.lama_url, checksum=checksum, cache_dir=settings.weights_dir)
    except WeightsError as exc:
        if "checksum mismatch" in str(exc):
            raise
        errors.append(str(exc))
    if settings.lama_hf_repo:
        try:
            archive = _hf_download(settings.lama_hf_repo, settings.lama_hf_file, settings.weights_dir)
            return _unpack_lama(archive, settings.weights_dir)
        except WeightsError as exc:
            errors.append(str(exc))
    raise WeightsError("LaMa weights unavailable: " + "; ".join(errors))


def lama_cached(settings: WeightSettings) -> Path | None:
    """LaMa weights already downloaded from ``LAMA_URL`` (no network)."""
    checksum = Checksum.pick(sha256=settings.lama_sha256, md5=settings.lama_md5)
    return cached_download(settings.lama_url, checksum, settings.weights_dir)


def detector_cached(settings: WeightSettings) -> Path | None:
    """Detector weights already downloaded from ``DETECTOR_URL`` (no network)."""
    return cached_download(settings.detector_url, Checksum.pick(sha256=settings.detector_sha256),
                           settings.weights_dir)


def detector_weights(settings: WeightSettings) -> Path:
    """Detector weights (YOLO ``best.pt``): the local path if set, else the URL."""
    checksum = Checksum.pick(sha256=settings.detector_sha256)
    if settings.detector_weights is not None:
        return fetch(settings.detector_weights, checksum=checksum, cache_dir=settings.weights_dir)
    return fetch(settings.detector_url, checksum=checksum, cache_dir=settings.weights_dir)
