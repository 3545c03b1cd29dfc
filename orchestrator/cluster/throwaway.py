"""What the throwaway local servers (PostgreSQL, the S3 store) share: a root they may own, and a
``with`` block that starts them and removes them, data included, when the root was theirs."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path


class ThrowawayServer:
    """Subclasses set ``root`` with ``_claim_root`` and give ``start`` and ``stop``."""

    root: Path
    _own_root: bool

    def _claim_root(self, root: Path | None, prefix: str) -> Path:
        """``root``, or a new temporary directory that ``remove`` deletes."""
        self._own_root = root is None
        self.root = Path(root or tempfile.mkdtemp(prefix=prefix))
        return self.root

    def start(self) -> "ThrowawayServer":
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def _stop_for_removal(self) -> None:
        """How ``remove`` stops the server (the data is deleted next, so it need not be clean)."""
        self.stop()

    def remove(self) -> None:
        self._stop_for_removal()
        if self._own_root:
            shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc) -> None:
        self.remove()
