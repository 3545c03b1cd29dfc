"""A throwaway PostgreSQL server in a directory: ``initdb`` + ``pg_ctl`` on a loopback port.

PostgreSQL refuses to run as root, so when we are root the server runs as the ``postgres`` user
(``runuser``) in a directory it owns. fsync is off: the data is for tests and demos only.
"""

from __future__ import annotations

import logging
import os
import pwd
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from orchestrator.cluster.throwaway import ThrowawayServer

LOGGER = logging.getLogger(__name__)

PG_BIN_DIRS = ("/usr/lib/postgresql/16/bin", "/usr/lib/postgresql/15/bin", "/usr/lib/postgresql/17/bin")


def pg_bin() -> Path | None:
    """The directory holding ``initdb``/``pg_ctl`` (Debian keeps them off PATH)."""
    if os.environ.get("PG_BIN"):
        return Path(os.environ["PG_BIN"])
    for candidate in PG_BIN_DIRS:
        if (Path(candidate) / "initdb").exists():
            return Path(candidate)
    found = shutil.which("initdb")
    return Path(found).parent if found else None


def _traversable(path: Path) -> bool:
    """Whether another user can reach ``path`` (every directory on the way is o+x)."""
    for part in (path, *path.parents):
        try:
            if not part.stat().st_mode & 0o001:
                return False
        except FileNotFoundError:
            continue
    return True


@dataclass
class LocalPostgres(ThrowawayServer):
    """``start()`` → a server on 127.0.0.1:``port`` with database ``app`` and user ``app``."""

    port: int
    root: Path | None = None
    user: str = "app"

    def __post_init__(self) -> None:
        self._run_as = "postgres" if os.geteuid() == 0 else None
        if self.root is not None and self._run_as and not _traversable(Path(self.root).resolve().parent):
            LOGGER.info("%s is not reachable by the postgres user; PostgreSQL's files go to /tmp", self.root)
            self.root = None
        self._claim_root(self.root, "sora-pg-")
        self.data = self.root / "data"
        self.sockets = self.root / "sock"
        self.log = self.root / "postgres.log"

    @property
    def url(self) -> str:
        return f"postgresql+asyncpg://{self.user}@127.0.0.1:{self.port}/app"

    def _cmd(self, *args: str) -> list[str]:
        return ["runuser", "-u", self._run_as, "--", *args] if self._run_as else list(args)

    def _run(self, *args: str, check: bool = True) -> None:
        result = subprocess.run(self._cmd(*args), capture_output=True, text=True)
        if check and result.returncode != 0:
            raise RuntimeError(f"{Path(args[0]).name} failed ({result.returncode}): {result.stderr.strip()[-2000:]}")

    def start(self) -> "LocalPostgres":
        bin_dir = pg_bin()
        if bin_dir is None:
            raise RuntimeError("PostgreSQL server binaries not found (apt-get install postgresql)")
        self.sockets.mkdir(parents=True, exist_ok=True)
        if self._run_as:
            entry = pwd.getpwnam(self._run_as)
            os.chmod(self.root, 0o755)
            for path in (self.root, self.sockets):
                os.chown(path, entry.pw_uid, entry.pw_gid)
        if not (self.data / "PG_VERSION").exists():
            self._run(str(bin_dir / "initdb"), "-D", str(self.data), "-U", self.user, "--auth=trust", "-E", "UTF8",
                      "--no-sync")
        options = (f"-p {self.port} -k {self.sockets} -c listen_addresses=127.0.0.1 -c fsync=off "
                   "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200")
        self._run(str(bin_dir / "pg_ctl"), "-D", str(self.data), "-o", options, "-l", str(self.log), "-w", "-t", "60",
                  "start")
        self._run(str(bin_dir / "createdb"), "-h", str(self.sockets), "-p", str(self.port), "-U", self.user, "app",
                  check=False)  # exists already on a restart
        LOGGER.info("PostgreSQL on 127.0.0.1:%d (data %s)", self.port, self.data)
        return self

    def stop(self, mode: str = "fast") -> None:
        bin_dir = pg_bin()
        if bin_dir and (self.data / "postmaster.pid").exists():
            subprocess.run(self._cmd(str(bin_dir / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop"),
                           check=False, capture_output=True)

    def _stop_for_removal(self) -> None:
        self.stop("immediate")
