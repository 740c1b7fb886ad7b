"""The GRPO settings both trainers share, and their trainer class (TRL's, with atomic saves)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any


def grpo_args(
    out: Path,
    *,
    steps: int,
    questions_per_step: int,
    num_generations: int,
    max_completion_length: int,
    learning_rate: float,
    beta: float,
    temperature: float,
    save_steps: int,
    seed: int,
    **extra: Any,
) -> Any:
    """A ``GRPOConfig`` for a CPU run: one group per question, a log line and a checkpoint
    schedule per step, no bf16 or gradient checkpointing (a small model on CPU has memory to
    spare, not speed), nothing reported to external trackers."""
    from trl import GRPOConfig

    return GRPOConfig(
        output_dir=str(out),
        max_steps=steps,
        per_device_train_batch_size=questions_per_step * num_generations,
        gradient_accumulation_steps=1,
        num_generations=num_generations,
        max_completion_length=max_completion_length,
        learning_rate=learning_rate,
        beta=beta,
        temperature=temperature,
        logging_steps=1,
        save_strategy="steps",
        save_steps=save_steps,
        save_total_limit=2,
        seed=seed,
        bf16=False,
        use_cpu=True,
        gradient_checkpointing=False,
        report_to=[],
        dataloader_num_workers=0,
        **extra,
    )


def trainer_class(base: type | None = None) -> type:
    """``base`` (TRL's ``GRPOTrainer`` by default) with checkpoints written atomically."""
    from trl import GRPOTrainer

    from sleuth.train.checkpoints import AtomicCheckpointMixin

    os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")  # rollout_func is marked experimental
    return type("SleuthGRPOTrainer", (AtomicCheckpointMixin, base or GRPOTrainer), {})
