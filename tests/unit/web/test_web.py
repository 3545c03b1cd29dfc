"""The page's static files are served by ``mount_web`` without shadowing or exposing anything else."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.testclient import TestClient

from orchestrator.web import mount_web


def _client() -> TestClient:
    app = FastAPI()
    mount_web(app)

    @app.get("/v1/tasks")  # added after the page: must still win over it
    def tasks() -> dict:
        return {"items": []}

    return TestClient(app)


def test_page_and_assets_are_served():
    client = _client()
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    for asset, kind in (("/web/app.js", "javascript"), ("/web/style.css", "text/css")):
        assert asset in page.text
        response = client.get(asset)
        assert response.status_code == 200 and kind in response.headers["content-type"]


def test_routes_added_later_are_not_shadowed_and_sources_are_not_served():
    client = _client()
    assert client.get("/v1/tasks").json() == {"items": []}
    assert client.get("/web/__init__.py").status_code == 404
    assert client.get("/web/../__init__.py").status_code == 404


def test_page_has_labelled_controls_and_live_regions():
    html = _client().get("/").text
    for needle in ('<label for="files"', '<label for="regions"', '<label for="method"', '<label for="api-key"',
                   'role="progressbar"', 'aria-valuemin="0"', 'aria-valuemax="100"', 'aria-live="polite"',
                   'role="alert"', 'lang="en"'):
        assert needle in html, needle
