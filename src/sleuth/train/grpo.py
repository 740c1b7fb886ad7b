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
    micro_batch: int | None = None,
    **extra: Any,
) -> Any:
    """A ``GRPOConfig`` for a CPU run: one group per question, a log line and a checkpoint
    schedule per step, no bf16 or gradient checkpointing, nothing reported to external
    trackers. ``micro_batch`` episodes go through each forward/backward pass (gradients
    accumulated over the step's generation batch; TRL's loss is normalised over the whole
    batch, so the update is the same): a pass holds logits for every completion token x the
    vocabulary, which for multi-turn episodes is what fills the memory."""
    from trl import GRPOConfig

    batch = questions_per_step * num_generations  # one generation batch per optimizer step
    if micro_batch is not None and (micro_batch < 1 or batch % micro_batch):
        raise ValueError(f"micro_batch {micro_batch} must divide the step's {batch} episodes")
    return GRPOConfig(
        output_dir=str(out),
        max_steps=steps,
        per_device_train_batch_size=micro_batch or batch,
        gradient_accumulation_steps=batch // (micro_batch or batch),
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
