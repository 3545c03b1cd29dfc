"""Weights fetching against a real HTTP server on loopback (no hub is reachable here)."""

from __future__ import annotations

import hashlib
import http.server
import threading
import zipfile
from pathlib import Path

import pytest

from export.weights import (
    Checksum,
    WeightSettings,
    WeightsError,
    detector_weights,
    fetch,
    lama_weights,
)

PAYLOAD = b"not really weights, but bytes with a known digest\n" * 1000


@pytest.fixture
def http_server(tmp_path):
    root = tmp_path / "www"
    root.mkdir()
    (root / "best.pt").write_bytes(PAYLOAD)

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(root), **kwargs)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", root
    server.shutdown()
    server.server_close()


def test_download_verified_and_cached(http_server, tmp_path):
    base, root = http_server
    good = Checksum("sha256", hashlib.sha256(PAYLOAD).hexdigest())
    cache = tmp_path / "cache"
    path = fetch(f"{base}/best.pt", checksum=good, cache_dir=cache)
    assert path.read_bytes() == PAYLOAD and path.parent == cache
    (root / "best.pt").unlink()  # the second call must not need the server
    assert fetch(f"{base}/best.pt", checksum=good, cache_dir=cache) == path
    md5 = Checksum("md5", hashlib.md5(PAYLOAD).hexdigest())
    (root / "best.pt").write_bytes(PAYLOAD)
    assert fetch(f"{base}/best.pt", checksum=md5, cache_dir=cache).read_bytes() == PAYLOAD


def test_bad_checksum_is_a_clear_error_and_leaves_nothing(http_server, tmp_path):
    base, _ = http_server
    cache = tmp_path / "cache"
    with pytest.raises(WeightsError, match="checksum mismatch .* expected 0000"):
        fetch(f"{base}/best.pt", checksum=Checksum("sha256", "0" * 64), cache_dir=cache)
    assert list(cache.iterdir()) == []  # no partial or unverified file kept


def test_unreachable_and_missing_are_clear_errors(http_server, tmp_path):
    base, _ = http_server
    with pytest.raises(WeightsError, match="cannot download .*404"):
        fetch(f"{base}/nope.pt", cache_dir=tmp_path)
    # A port nobody listens on (bound then closed): connection refused, immediately.
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(WeightsError, match=f"cannot download http://127.0.0.1:{port}/x.pt"):
        fetch(f"http://127.0.0.1:{port}/x.pt", cache_dir=tmp_path, timeout_s=5)
    with pytest.raises(WeightsError, match="not found"):
        fetch(tmp_path / "absent.ckpt")


def test_settings_from_env_and_sources(http_server, tmp_path):
    base, _ = http_server
    env = {
        "DATA_DIR": str(tmp_path / "d"),
        "DETECTOR_URL": f"{base}/best.pt",
        "DETECTOR_SHA256": hashlib.sha256(PAYLOAD).hexdigest(),
        "LAMA_URL": f"{base}/missing-big-lama.pt",
        "LAMA_MD5": "",
        "LAMA_HF_REPO": "",
    }
    settings = WeightSettings.from_env(env)
    assert settings.weights_dir == tmp_path / "d" / "weights"
    assert settings.lama_md5 is None and settings.lama_hf_repo is None
    assert detector_weights(settings).read_bytes() == PAYLOAD
    with pytest.raises(WeightsError, match="LaMa weights unavailable: cannot download"):
        lama_weights(settings)
    # A local official big-lama.zip: best.ckpt is taken out of it.
    archive = tmp_path / "big-lama.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("big-lama/config.yaml", "generator: {}\n")
        zf.writestr("big-lama/models/best.ckpt", PAYLOAD)
    local = WeightSettings.from_env({**env, "LAMA_WEIGHTS": str(archive)})
    ckpt = lama_weights(local)
    assert ckpt.name.endswith("best.ckpt") and ckpt.read_bytes() == PAYLOAD
    # Defaults point at the public homes with the published MD5.
    default = WeightSettings.from_env({})
    assert default.lama_md5 == "e3aa4aaa15225a33ec84f9f4bc47e500" and default.lama_url.endswith("big-lama.pt")
    assert Path(default.weights_dir) == Path("data/weights")


def test_unreachable_hub_fails_fast(tmp_path, monkeypatch):
    """No hub here: the HuggingFace fallback must fail in about a second, not after ~25 s of retries."""
    import socket
    import time

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{port}")
    settings = WeightSettings(weights_dir=tmp_path, lama_url=f"http://127.0.0.1:{port}/big-lama.pt")
    start = time.monotonic()
    with pytest.raises(WeightsError, match="LaMa weights unavailable: .*127.0.0.1 unreachable"):
        lama_weights(settings)
    assert time.monotonic() - start < 10
