"""Settings.from_env: one place that reads the environment, with typed parsing."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.settings import Settings


def test_defaults_without_environment():
    s = Settings.from_env({})
    assert s.port == 5344 and s.port_health is None and s.api_key is None
    assert s.triton_grpc_url == "127.0.0.1:8001"
    assert s.effective_database_url.startswith("sqlite+aiosqlite:///")
    assert s.effective_database_url.endswith("/data/tasks.db")


def test_values_are_parsed_by_type():
    s = Settings.from_env({
        "PORT": "8080", "PORT_HEALTH": "8081", "API_KEY": "k", "MAX_UPLOAD_MB": "10",
        "DATA_DIR": "/tmp/x", "ALLOW_PRIVATE_URLS": "yes", "TRITON_LIVE_DEADLINE_S": "2.5",
        "CORS_ORIGINS": "http://a, http://b,", "REQUIRED_MODELS": "detector",
        "DATABASE_URL": "postgresql+asyncpg://u@h/db", "UNRELATED": "ignored",
    })
    assert (s.port, s.port_health, s.api_key, s.max_upload_mb) == (8080, 8081, "k", 10)
    assert s.data_dir == Path("/tmp/x") and s.allow_private_urls is True
    assert s.triton_live_deadline_s == 2.5
    assert s.cors_origins == ("http://a", "http://b") and s.required_models == ("detector",)
    assert s.effective_database_url == "postgresql+asyncpg://u@h/db"


def test_empty_values_keep_defaults_and_bad_numbers_fail_loudly():
    assert Settings.from_env({"PORT": "", "API_KEY": ""}).port == 5344
    assert Settings.from_env({"API_KEY": ""}).api_key is None
    with pytest.raises(ValueError):
        Settings.from_env({"PORT": "eighty"})


def test_overrides_return_a_new_object():
    s = Settings()
    t = s.with_overrides(port=1)
    assert t.port == 1 and s.port == 5344


def test_the_default_bind_is_loopback_and_a_public_bind_needs_a_key_or_a_deliberate_choice():
    assert Settings.from_env({}).host == "127.0.0.1" and Settings().exposure_refusal() is None
    for host in ("127.0.0.1", "127.0.0.2", "::1", "[::1]", "localhost"):
        assert Settings(host=host).exposure_refusal() is None, host
    for host in ("0.0.0.0", "::", "192.168.1.5", "example.com"):
        refusal = Settings(host=host).exposure_refusal()
        assert refusal and "API_KEY" in refusal and "ALLOW_ANONYMOUS=1" in refusal, host
        assert Settings(host=host, api_key="k").exposure_refusal() is None
        assert Settings.from_env({"HOST": host, "ALLOW_ANONYMOUS": "1"}).exposure_refusal() is None
