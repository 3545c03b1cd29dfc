"""/ping's parts: 200 only with the database open, the worker running, the pipeline importable and
the models ready; 204 while a part starts; 503 naming the broken part."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import httpx
from fastapi import FastAPI

from orchestrator.api import health
from orchestrator.api.deps import Services
from orchestrator.settings import Settings
from orchestrator.triton.models import ModelManager, ModelState


@dataclass
class FakeWorker:
    worker: str = "ok"
    pipeline: str = "ok"

    def health_worker(self) -> str:
        return self.worker

    def health_pipeline(self) -> str:
        return self.pipeline


async def _ping(services: Services) -> httpx.Response:
    app = FastAPI()
    app.state.services = services
    app.include_router(health.router)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        return await client.get("/ping")


def _services(models: ModelState = ModelState.ready, store=True, worker: FakeWorker | None = None,
              **settings) -> Services:
    manager = ModelManager(Settings(**settings))
    manager.state = models
    if models is ModelState.degraded:
        manager.error = "model 'inpainter' failed to load: bad file"
    return Services(settings=manager.settings, models=manager, store=object() if store else None,
                    worker=worker if worker is not None else FakeWorker())


async def test_all_parts_ok_is_200_and_says_so():
    response = await _ping(_services())
    assert response.status_code == 200
    assert response.json()["parts"] == {"database": "ok", "worker": "ok", "pipeline": "ok", "models": "ok"}


async def test_parts_still_starting_are_204():
    assert (await _ping(_services(models=ModelState.loading))).status_code == 204
    assert (await _ping(_services(store=False))).status_code == 204
    assert (await _ping(_services(worker=FakeWorker(pipeline="starting")))).status_code == 204


async def test_a_pipeline_that_cannot_import_is_503_even_with_models_ready():
    why = "the video pipeline cannot be imported: No module named 'cv2'"
    response = await _ping(_services(worker=FakeWorker(pipeline=why)))
    assert response.status_code == 503
    body = response.json()
    assert body["parts"]["pipeline"] == why and body["parts"]["models"] == "ok"
    assert "cv2" in body["error"]


async def test_a_stopped_worker_loop_and_a_closed_database_are_503():
    response = await _ping(_services(worker=FakeWorker(worker="the worker loop stopped")))
    assert response.status_code == 503 and response.json()["error"].startswith("worker:")
    services = _services(store=False)
    services.boot_error = "OperationalError: unable to open database file"
    response = await _ping(services)
    assert response.status_code == 503 and "unable to open database" in response.json()["parts"]["database"]


async def test_degraded_models_are_503_with_the_reason():
    response = await _ping(_services(models=ModelState.degraded))
    assert response.status_code == 503
    assert response.json()["error"] == "model 'inpainter' failed to load: bad file"


async def test_the_real_worker_reports_a_pipeline_import_failure(tmp_path, monkeypatch):
    from orchestrator.tasks import worker as worker_module
    from orchestrator.tasks.store import TaskStore

    def broken():
        raise ImportError("No module named 'cv2'")

    monkeypatch.setattr(worker_module, "_import_pipeline", broken)
    settings = Settings(data_dir=tmp_path)
    store = TaskStore(settings.effective_database_url)
    await store.init()
    manager = ModelManager(settings)
    worker = worker_module.Worker(settings, store, manager)
    await worker.start()
    try:
        for _ in range(200):
            if worker.health_pipeline() != "starting":
                break
            await asyncio.sleep(0.01)
        assert "No module named 'cv2'" in worker.health_pipeline()
        assert worker.health_worker() == "ok"
    finally:
        await worker.stop()
        await store.close()
    assert worker.health_worker().startswith("the worker loop stopped")
