"""Where each connector resumes: one small JSON file per connector, replaced atomically.

A checkpoint is written to a temporary file in the same folder, flushed to disk, then renamed
over the old one (rename is atomic on POSIX), so a crash leaves either the old or the new
checkpoint, never half of one. Files are created ``0600``: cursors can carry account details.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from pathlib import Path
from typing import Any

_SAFE = re.compile(r"[^A-Za-z0-9_.-]+")


class CheckpointStore:
    """Checkpoints under ``folder`` (``<folder>/<name>.json``)."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)

    def path(self, name: str) -> Path:
        return self.folder / f"{_SAFE.sub('_', name)}.json"

    def load(self, name: str) -> dict[str, Any] | None:
        """The last saved checkpoint, or None for a first start."""
        try:
            return json.loads(self.path(name).read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None

    def save(self, name: str, checkpoint: dict[str, Any]) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        target = self.path(name)
        fd, tmp = tempfile.mkstemp(dir=self.folder, prefix=f".{target.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump(checkpoint, fh, ensure_ascii=False, sort_keys=True)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
