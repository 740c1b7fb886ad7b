"""Atomic checkpoints, resume, and an append-only training log.

Hugging Face's Trainer writes ``checkpoint-N`` in place, so a kill mid-save leaves a folder that
``get_last_checkpoint`` happily resumes from. Here each checkpoint is written into a staging
folder and renamed into place: a ``checkpoint-N`` folder either is complete or does not exist.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path
from typing import Any

from transformers.trainer_utils import rotate_checkpoints

from sleuth.agent.trained_settings import PROVENANCE
from sleuth.train.lora import point_adapter_at

STAGING = ".staging"
CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")
COMPLETE_MARKER = "trainer_state.json"  # the Trainer writes it last


def train_resuming(trainer: Any, run_dir: str | Path, log: Any = print) -> float:
    """Train, resuming from the newest complete checkpoint in ``run_dir`` if there is one;
    the seconds spent training."""
    import time

    resume = last_checkpoint(run_dir)
    if resume:
        log(f"resuming from {resume.name}")
    started = time.perf_counter()
    trainer.train(resume_from_checkpoint=str(resume) if resume else None)
    return time.perf_counter() - started


def last_checkpoint(run_dir: str | Path) -> Path | None:
    """The newest complete checkpoint in ``run_dir``; staging leftovers are never candidates."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        return None
    found = [
        (int(m.group(1)), p)
        for p in run_dir.iterdir()
        if (m := CHECKPOINT.match(p.name)) and (p / COMPLETE_MARKER).is_file()
    ]
    return max(found)[1] if found else None


def clear_staging(run_dir: str | Path) -> None:
    """Remove what an interrupted save left behind."""
    shutil.rmtree(Path(run_dir) / STAGING, ignore_errors=True)


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class AtomicCheckpointMixin:
    """Mix into a ``transformers.Trainer`` subclass (before it in the bases)."""

    _staging_root: str | None = None

    def _get_output_dir(self, trial: Any) -> str:
        if self._staging_root is not None:
            return self._staging_root
        return super()._get_output_dir(trial)  # type: ignore[misc]

    def _save_checkpoint(self, model: Any, trial: Any) -> None:
        final_root = Path(super()._get_output_dir(trial))  # type: ignore[misc]
        staging_root = final_root / STAGING
        clear_staging(final_root)
        staging_root.mkdir(parents=True, exist_ok=True)
        self._staging_root = str(staging_root)
        try:
            super()._save_checkpoint(model, trial)  # type: ignore[misc]
        finally:
            self._staging_root = None
        name = f"checkpoint-{self.state.global_step}"  # type: ignore[attr-defined]
        adapter_base = getattr(self, "sleuth_adapter_base", None)
        if adapter_base is not None:  # a LoRA run: the adapter names its base portably
            point_adapter_at(staging_root / name, adapter_base, home=final_root / name)
        inference = getattr(self, "sleuth_inference", None)
        if inference is not None:  # how the checkpoint was trained to run (trained_settings)
            record = {"inference": inference, "step": self.state.global_step}  # type: ignore[attr-defined]
            (staging_root / name / PROVENANCE).write_text(json.dumps(record, indent=2))
        target = final_root / name
        if target.exists():  # a re-save of the same step after resume: replace it whole
            shutil.rmtree(target)
        os.replace(staging_root / name, target)
        _fsync_dir(final_root)
        clear_staging(final_root)
        args = self.args  # type: ignore[attr-defined]
        if args.should_save:
            rotate_checkpoints(str(final_root), save_total_limit=args.save_total_limit)
