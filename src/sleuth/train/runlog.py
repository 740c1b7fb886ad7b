"""The append-only training log: one JSON line per logged step, read back de-duplicated."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from transformers import TrainerCallback


def append_jsonl(path: Path, record: dict[str, Any]) -> None:
    """One line per record, flushed and fsynced: a crash loses at most the line being written."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as handle:
        handle.write(json.dumps(record) + "\n")
        handle.flush()
        os.fsync(handle.fileno())


def read_log(path: Path) -> list[dict[str, Any]]:
    """One record per step (logs of the same step merged; a resumed run's redo wins)."""
    if not path.is_file():
        return []
    by_step: dict[int, dict[str, Any]] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:  # a torn last line from a kill
            continue
        if isinstance(record, dict) and "step" in record:
            by_step.setdefault(int(record["step"]), {}).update(record)
    return [by_step[s] for s in sorted(by_step)]


class JsonlLogCallback(TrainerCallback):
    """Appends every Trainer log (loss, reward, KL, ...) with its step to ``path``."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def on_log(self, args, state, control, logs=None, **kwargs):  # type: ignore[override]
        if logs and state.is_world_process_zero:
            append_jsonl(self.path, {"step": state.global_step, **_numbers(logs)})


def _numbers(logs: dict[str, Any]) -> dict[str, float | str]:
    """Log values as numbers where they are numbers (some are pre-formatted strings)."""
    clean: dict[str, float | str] = {}
    for key, value in logs.items():
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            continue
        try:
            clean[key] = float(value)
        except ValueError:
            clean[key] = value
    return clean
