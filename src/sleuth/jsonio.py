"""Files that a crash must never leave half-written: written beside, then renamed into place.

Ground floor: the one atomic writer of every JSON file Sleuth writes (index manifests, run
configs, reports, training results, benchmark results) and of any other whole file, and the
reader of append-only JSONL files that names each damaged line instead of skipping it quietly.
"""

from __future__ import annotations

import json
import logging
import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)
_WARNED: set[tuple[str, int, int]] = set()


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


def warn_line(path: Path, number: int, problem: str) -> None:
    """Log ``PATH:LINE: problem`` once per file line and problem (a run folder is read several
    times per command). The text may quote the file, so control characters are removed."""
    from sleuth.display import safe_text

    key = (str(path), number, hash(problem))
    if key not in _WARNED:
        _WARNED.add(key)
        log.warning("warning: %s", safe_text(f"{path}:{number}: {problem}"))


def read_jsonl_objects(path: Path, what: str) -> Iterator[tuple[int, dict[str, Any]]]:
    """``(line number, object)`` for each JSON object line of ``path``; a line that is not JSON
    or not an object is skipped with a warning naming the file and line (``what`` says what
    the line should have been), so the rest of the file is still used."""
    with Path(path).open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            if not raw.strip():
                continue
            try:
                data = json.loads(raw)
            except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                torn = "; a torn last line from a crash" if not raw.endswith(b"\n") else ""
                warn_line(path, number, f"skipped a line that is not JSON ({exc}{torn})")
                continue
            if not isinstance(data, dict):
                warn_line(path, number, f"skipped a line that is not {what}")
                continue
            yield number, data
