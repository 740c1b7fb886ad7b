"""Append-only JSONL of trajectories that survives crashes and supports resuming.

Each record is written with one ``write`` and ``fsync``ed. A crash can only tear the last line;
opening the log trims such a torn tail (that episode never finished, so it is simply re-run).
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

from sleuth.agent.trajectory import Trajectory, TrajectoryFormatError
from sleuth.errors import SleuthError

log = logging.getLogger(__name__)


class TrajectoryLog:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._trim_torn_tail()

    def _trim_torn_tail(self) -> None:
        if not self.path.is_file() or self.path.stat().st_size == 0:
            return
        with self.path.open("rb+") as handle:
            data = handle.read()
            if data.endswith(b"\n"):
                return
            keep = data.rfind(b"\n") + 1
            log.warning("%s: dropping a torn last record (%d bytes)", self.path, len(data) - keep)
            handle.truncate(keep)

    def append(self, trajectory: Trajectory) -> None:
        line = (trajectory.to_json() + "\n").encode("utf-8")
        with self.path.open("ab") as handle:
            handle.write(line)
            handle.flush()
            os.fsync(handle.fileno())

    def read(self) -> list[Trajectory]:
        if not self.path.is_file():
            return []
        records = []
        lines = self.path.read_bytes().split(b"\n")
        for number, raw in enumerate(lines, start=1):
            if not raw.strip():
                continue
            try:
                records.append(Trajectory.from_dict(json.loads(raw)))
            except (json.JSONDecodeError, TrajectoryFormatError, UnicodeDecodeError) as exc:
                if number == len(lines):  # torn tail written after we opened the file
                    log.warning("%s:%d: ignoring a torn last record", self.path, number)
                    continue
                raise SleuthError(
                    f"{self.path}:{number}: corrupt trajectory record ({exc})"
                ) from None
        return records

    def done_ids(self) -> set[str]:
        return {t.episode_id for t in self.read()}
