"""The feedback log: every thumb, edit and replay a person (or a shadow user) gives, appended
as one JSON line, ``fsync``ed, never rewritten. Forked trajectories live beside it in
``<log stem>.forks.jsonl`` (a ``TrajectoryLog``), so the run's own files are never touched.

A record::

    {"id": "...", "time": 1790000000.0, "source": "user" | "simulated:rules" | "simulated:llm",
     "kind": "thumb" | "query" | "drop" | "pin" | "answer",
     "run": "run label", "episode_id": "...", "step": 2, "question": "...",
     # thumb:  "target": "step" | "hit", "hit_id": "doc7", "value": 1 | -1, "comment": "..."
     # query:  "query": old query, "better_query": "...", "fork_id": "..." (when replayed)
     # drop / pin: "query": "...", "doc_id": "...", "doc_title": "...", "doc_text": "...",
     # answer: "answer": "...",
     "fork_id": "...", "gold_answers": [...]}
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time
import uuid
from pathlib import Path
from typing import Any

from sleuth.agent.log import TrajectoryLog
from sleuth.errors import SleuthError

log = logging.getLogger(__name__)

KINDS = ("thumb", "query", "drop", "pin", "answer")
SOURCES = ("user", "simulated:rules", "simulated:llm")
MAX_COMMENT = 2000


def forks_path(feedback_path: Path) -> Path:
    return feedback_path.with_name(f"{feedback_path.stem}.forks.jsonl")


class FeedbackLog:
    """Append-only JSONL; a crash can only tear the last line, which readers skip."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path).expanduser()
        if self.path.is_dir():
            raise SleuthError(f"{self.path} is a folder; the feedback log is a .jsonl file")
        self._check_writable()
        self.forks = TrajectoryLog(forks_path(self.path))

    def _check_writable(self) -> None:
        """Open the log for appending now, so a read-only folder is one clear error at start
        rather than a failed click later (a probe file it had to create is removed again)."""
        created = [p for p in (self.path, forks_path(self.path)) if not p.exists()]
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            for path in (self.path, forks_path(self.path)):
                with path.open("ab"):
                    pass
        except OSError as exc:
            raise SleuthError(_unwritable(self.path, exc)) from None
        finally:
            for path in created:
                with contextlib.suppress(OSError):  # never made (its folder is a file)
                    path.unlink(missing_ok=True)

    def append(self, record: dict[str, Any]) -> dict[str, Any]:
        """Validate, stamp (id, time) and append ``record``; returns the stored record."""
        kind = record.get("kind")
        if kind not in KINDS:
            raise SleuthError(f"feedback kind must be one of {', '.join(KINDS)}, not {kind!r}")
        if record.get("source", "user") not in SOURCES:
            raise SleuthError(f"feedback source must be one of {', '.join(SOURCES)}")
        if kind == "thumb" and record.get("value") not in (1, -1):
            raise SleuthError("a thumb's value is 1 (up) or -1 (down)")
        comment = str(record.get("comment") or "")
        stored = {
            "id": uuid.uuid4().hex[:12],
            "time": time.time(),
            "source": "user",
            **record,
            "comment": comment[:MAX_COMMENT],
        }
        line = (json.dumps(stored, ensure_ascii=False) + "\n").encode("utf-8")
        try:
            with self.path.open("ab") as handle:
                if handle.tell() > 0 and not _ends_with_newline(self.path):
                    handle.write(b"\n")  # a torn line from a crash stays a line of its own
                handle.write(line)
                handle.flush()
                os.fsync(handle.fileno())
        except OSError as exc:  # it became unwritable while serving: say so, and log it
            message = _unwritable(self.path, exc)
            log.error("%s", message)
            raise SleuthError(message) from None
        return stored

    def read(self) -> list[dict[str, Any]]:
        return read_feedback(self.path) if self.path.is_file() else []


def _unwritable(path: Path, exc: OSError) -> str:
    reason = exc.strerror or type(exc).__name__
    return (
        f"cannot write the feedback log {path} ({reason}); reading a run needs no write access, "
        "but feedback and replays are appended to this log: give --feedback FILE in a "
        "writable folder"
    )


def _ends_with_newline(path: Path) -> bool:
    with path.open("rb") as handle:
        handle.seek(-1, os.SEEK_END)
        return handle.read(1) == b"\n"


def read_feedback(path: str | Path) -> list[dict[str, Any]]:
    """Every intact record, in order; torn or foreign lines are skipped with a warning."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise SleuthError(f"{path}: no such feedback log")
    records = []
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            if not raw.strip():
                continue
            try:
                record = json.loads(raw)
            except (json.JSONDecodeError, UnicodeDecodeError):
                log.warning("%s:%d: skipping a torn or corrupt line", path, number)
                continue
            if isinstance(record, dict) and record.get("kind") in KINDS:
                records.append(record)
    return records
