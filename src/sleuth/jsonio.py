"""Files that a crash must never leave half-written: written beside, then renamed into place.

Ground floor: the one atomic writer of every JSON file Sleuth writes (index manifests, run
configs, reports, training results, benchmark results) and of any other whole file.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any


def atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    """``write(tmp)`` then rename over ``path``: readers see the old file or the whole new one.
    The temporary file sits beside ``path`` (same filesystem, so the rename is atomic) and is
    removed if ``write`` fails."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{uuid.uuid4().hex[:8]}")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_json_atomic(path: Path, payload: Any) -> None:
    """``payload`` as indented UTF-8 JSON (non-JSON values as ``str``), flushed to disk before
    the rename so a power cut leaves the old file or the new one."""

    def write(tmp: Path) -> None:
        with tmp.open("w", encoding="utf-8") as handle:
            json.dump(payload, handle, indent=2, ensure_ascii=False, default=str)
            handle.write("\n")
            handle.flush()
            os.fsync(handle.fileno())

    atomic_write(path, write)
