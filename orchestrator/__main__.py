"""``python -m orchestrator``: the service (uvicorn), optionally with an embedded local Triton.

``--local-triton`` starts ``tritonserver`` from the pytriton wheel on ``model_repository/`` first
(ports from TRITON_HTTP_PORT / TRITON_GRPC_PORT / TRITON_METRICS_PORT, default 8000/8001/8002)
and points the orchestrator at it. Ctrl-C stops both.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
import threading
from pathlib import Path

import uvicorn

from orchestrator.app import create_app, create_health_app
from orchestrator.settings import Settings

LOGGER = logging.getLogger("orchestrator")


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m orchestrator", description=__doc__.splitlines()[0])
    parser.add_argument("--host", help="bind address (default HOST or 0.0.0.0)")
    parser.add_argument("--port", type=int, help="HTTP port (default PORT or 5344)")
    parser.add_argument("--local-triton", action="store_true", help="start the embedded Triton first")
    parser.add_argument("--model-repository", type=Path, default=Path("model_repository"),
                        help="model repository for --local-triton (default ./model_repository)")
    parser.add_argument("--log-level", default=os.environ.get("LOG_LEVEL", "info"))
    return parser.parse_args(argv)


class _TritonThread(threading.Thread):
    """Starts the local Triton and stays alive while it runs: the parent-death signal Triton gets
    is tied to the thread that started it, so that thread must outlive the server."""

    def __init__(self, triton) -> None:
        super().__init__(name="local-triton", daemon=True)
        self.triton = triton
        self.stop_event = threading.Event()
        self.error: Exception | None = None

    def run(self) -> None:
        try:
            self.triton.start()
        except Exception as exc:  # noqa: BLE001 - reported; /ping turns degraded after the deadline
            self.error = exc
            LOGGER.error("local Triton did not start: %s", exc)
            print(f"Triton did not start: {exc}", file=sys.stderr, flush=True)
            return
        print(f"Triton running: gRPC {self.triton.grpc_url}, HTTP {self.triton.http_url}, "
              f"log {self.triton.log_path}", flush=True)
        self.stop_event.wait()
        self.triton.stop()


async def _serve(settings: Settings) -> None:
    app = create_app(settings)
    log_level = logging.getLevelName(logging.getLogger().level).lower()
    servers = [uvicorn.Server(uvicorn.Config(app, host=settings.host, port=settings.port, log_level=log_level,
                                             timeout_keep_alive=30, timeout_graceful_shutdown=15))]
    if settings.port_health:
        servers.append(uvicorn.Server(uvicorn.Config(create_health_app(app), host=settings.host,
                                                     port=settings.port_health, log_level=log_level,
                                                     lifespan="off")))
    # Each server installs signal handlers; the first Ctrl-C stops all of them.
    tasks = [asyncio.create_task(server.serve()) for server in servers]
    done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    for server in servers:
        server.should_exit = True
    await asyncio.gather(*tasks, return_exceptions=True)


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    logging.basicConfig(level=args.log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = Settings.from_env()
    overrides = {k: v for k, v in (("host", args.host), ("port", args.port)) if v is not None}
    triton_thread = None
    if args.local_triton:
        from orchestrator.triton.local import LocalTriton

        ports = {name: int(os.environ.get(f"TRITON_{name.upper()}_PORT", default))
                 for name, default in (("http", 8000), ("grpc", 8001), ("metrics", 8002))}
        triton = LocalTriton(args.model_repository, http_port=ports["http"], grpc_port=ports["grpc"],
                             metrics_port=ports["metrics"],
                             runtime_dir=settings.data_dir / "triton-runtime")
        overrides["triton_grpc_url"] = triton.grpc_url
        # Triton starts beside the service (not before it): /ping answers 204 while it comes up.
        triton_thread = _TritonThread(triton)
        triton_thread.start()
    settings = settings.with_overrides(**overrides)
    shown = "127.0.0.1" if settings.host in ("0.0.0.0", "::") else settings.host
    print(f"Orchestrator: http://{shown}:{settings.port}  (API docs: /docs, health: /ping)", flush=True)
    try:
        asyncio.run(_serve(settings))
    except KeyboardInterrupt:
        pass
    finally:
        if triton_thread is not None:
            print("stopping Triton", flush=True)
            triton_thread.stop_event.set()
            triton_thread.join(30)
    return 0 if triton_thread is None or triton_thread.error is None else 1


if __name__ == "__main__":
    sys.exit(main())
