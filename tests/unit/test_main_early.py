"""The early responder of ``python -m orchestrator``: /ping 204 before the web stack is imported."""

from __future__ import annotations

import http.client

from orchestrator.__main__ import _EarlyResponder, _listen


def test_early_responder_answers_ping_and_refuses_the_rest_politely():
    sock = _listen("127.0.0.1", 0)
    port = sock.getsockname()[1]
    early = _EarlyResponder([sock])
    early.start()
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        conn.request("GET", "/ping?x=1")
        r = conn.getresponse()
        assert r.status == 204 and r.read() == b""
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        conn.request("POST", "/v1/tasks", body=b"x" * 100)
        r = conn.getresponse()
        assert r.status == 503 and b'"code":"starting"' in r.read()
    finally:
        early.stop()
    assert not early.is_alive()
    # the socket stays open for uvicorn to take over
    assert sock.fileno() != -1
    sock.close()
