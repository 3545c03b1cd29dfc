"""``python -m orchestrator``: the service (uvicorn), optionally with an embedded local Triton.

``--local-triton`` also starts ``tritonserver`` from the pytriton wheel on ``model_repository/``
(ports from TRITON_HTTP_PORT / TRITON_GRPC_PORT / TRITON_METRICS_PORT, default 8000/8001/8002)
and points the orchestrator at it. Ctrl-C stops both. The ports are bound before anything heavy
is imported and /ping answers 204 from the first moment, so a load balancer never sees a refusal.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import selectors
import signal
import socket
import sys
import threading
from pathlib import Path

from orchestrator.settings import Settings

LOGGER = logging.getLogger("orchestrator")


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m orchestrator", description=__doc__.splitlines()[0])
    parser.add_argument("--host", help="bind address (default HOST or 127.0.0.1)")
    parser.add_argument("--port", type=int, help="HTTP port (default PORT or 5344)")
    parser.add_argument("--local-triton", action="store_true", help="start the embedded Triton first")
    parser.add_argument("--role", choices=("api", "worker", "all"),
                        help="api: HTTP only; worker: runs tasks (HTTP /ping, /metrics); all (default ROLE or all)")
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
            os.kill(os.getpid(), signal.SIGINT)  # `make run` without its Triton is no use: stop
            return
        print(f"Triton running: gRPC {self.triton.grpc_url}, HTTP {self.triton.http_url}, "
              f"log {self.triton.log_path}", flush=True)
        self.triton.supervise(self.stop_event)  # restarted if it dies, until Ctrl-C
        self.triton.stop()


def _listen(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.set_inheritable(False)
    return sock


class _EarlyResponder(threading.Thread):
    """Answers on the bound sockets while the web stack is imported (about a second of CPU):
    /ping → 204 (the service *is* starting), anything else → 503 ``starting``. Uvicorn takes the
    same sockets over afterwards, so the port never refuses a connection."""

    _PING = b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n"
    _BODY = b'{"error":{"code":"starting","message":"the service is starting; try again shortly"}}'
    _OTHER = (b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nRetry-After: 1\r\n"
              b"Content-Length: " + str(len(_BODY)).encode() + b"\r\nConnection: close\r\n\r\n" + _BODY)

    def __init__(self, sockets: list[socket.socket]) -> None:
        super().__init__(name="early-ping", daemon=True)
        self.sockets = sockets
        self._stop_event = threading.Event()

    def stop(self) -> None:
        self._stop_event.set()
        self.join(5)

    def run(self) -> None:
        selector = selectors.DefaultSelector()
        for sock in self.sockets:
            sock.setblocking(False)
            selector.register(sock, selectors.EVENT_READ)
        try:
            while not self._stop_event.is_set():
                for key, _ in selector.select(0.02):
                    try:
                        conn, _ = key.fileobj.accept()
                    except (BlockingIOError, OSError):
                        continue
                    self._answer(conn)
        finally:
            selector.close()

    def _answer(self, conn: socket.socket) -> None:
        with conn:
            try:
                conn.setblocking(True)
                conn.settimeout(1.0)
                data = b""
                while b"\r\n" not in data and len(data) < 8192:
                    chunk = conn.recv(4096)
                    if not chunk:
                        return
                    data += chunk
                parts = data.split(b" ", 2)
                is_ping = len(parts) > 1 and parts[1].split(b"?", 1)[0] == b"/ping"
                conn.sendall(self._PING if is_ping else self._OTHER)
            except OSError:
                pass


class _EarlyStop:
    """Ctrl-C or SIGTERM while the early responder already answers /ping but uvicorn has not yet
    installed its handlers: remembered and handed to the servers, which then start and shut down
    cleanly. (The default handler raised KeyboardInterrupt in the middle of the web stack's
    imports and left the process hanging on its worker threads.)"""

    def __init__(self) -> None:
        self.requested = False
        self.servers: list = []

    def install(self) -> None:
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, self)

    def __call__(self, signum: int, frame) -> None:
        self.requested = True
        self.hand_to(self.servers)

    def hand_to(self, servers: list) -> None:
        self.servers = servers
        if self.requested:
            for server in servers:
                server.should_exit = True


async def _serve(settings: Settings, sockets: list[socket.socket], early: _EarlyResponder | None,
                 triton_thread: "_TritonThread | None" = None, early_stop: _EarlyStop | None = None) -> None:
    import uvicorn

    from orchestrator.app import create_app, create_health_app

    app = create_app(settings)
    log_level = logging.getLevelName(logging.getLogger().level).lower()
    servers = [uvicorn.Server(uvicorn.Config(app, host=settings.host, port=settings.port, log_level=log_level,
                                             timeout_keep_alive=30, timeout_graceful_shutdown=15))]
    if settings.port_health:
        servers.append(uvicorn.Server(uvicorn.Config(create_health_app(app), host=settings.host,
                                                     port=settings.port_health, log_level=log_level,
                                                     lifespan="off")))
    if early_stop is not None:
        early_stop.hand_to(servers)
    if early is not None:
        early.stop()
    # Each server installs signal handlers; the first Ctrl-C stops all of them.
    tasks = [asyncio.create_task(server.serve(sockets=[sock])) for server, sock in zip(servers, sockets)]
    if triton_thread is not None:
        # Started once the API listens: its imports (pytriton, ~1.7 s) would delay the first /ping.
        while not servers[0].started and not tasks[0].done():
            await asyncio.sleep(0.01)
        triton_thread.start()
    done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    for server in servers:
        server.should_exit = True
    await asyncio.gather(*tasks, return_exceptions=True)


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    logging.basicConfig(level=args.log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = Settings.from_env()
    overrides = {k: v for k, v in (("host", args.host), ("port", args.port), ("role", args.role)) if v is not None}
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
    settings = settings.with_overrides(**overrides)
    refusal = settings.exposure_refusal()
    if refusal:
        print(refusal, file=sys.stderr)
        return 2
    try:
        sockets = [_listen(settings.host, settings.port)]
        if settings.port_health:
            sockets.append(_listen(settings.host, settings.port_health))
    except OSError as exc:
        print(f"cannot listen on {settings.host}:{settings.port}/{settings.port_health}: {exc}", file=sys.stderr)
        return 1
    early_stop = _EarlyStop()
    early_stop.install()
    early = _EarlyResponder(sockets)
    early.start()
    shown = "127.0.0.1" if settings.host in ("0.0.0.0", "::") else settings.host
    print(f"Orchestrator: http://{shown}:{settings.port}  (API docs: /docs, health: /ping)", flush=True)
    try:
        asyncio.run(_serve(settings, sockets, early, triton_thread, early_stop))
    except KeyboardInterrupt:
        pass
    finally:
        if triton_thread is not None and triton_thread.is_alive():
            print("stopping Triton", flush=True)
            triton_thread.stop_event.set()
            triton_thread.join(30)
    return 0 if triton_thread is None or triton_thread.error is None else 1


if __name__ == "__main__":
    sys.exit(main())
