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


def trainer_grpo_args(
    config: Any, max_completion_length: int, questions_per_step: int | None = None
) -> Any:
    """``grpo_args`` from the settings every episode trainer's config holds under the same
    names (``steps``, ``num_generations``, ``learning_rate``, ``beta``, ``save_steps``,
    ``seed``, ``micro_batch``, its ``episode``'s temperature); ``questions_per_step`` when the
    trainer counts its prompts otherwise (self-play: two per proposal)."""
    return grpo_args(
        Path(config.out),
        steps=config.steps,
        questions_per_step=questions_per_step or config.questions_per_step,
        num_generations=config.num_generations,
        max_completion_length=max_completion_length,
        learning_rate=config.learning_rate,
        beta=config.beta,
        temperature=config.episode.temperature,
        save_steps=config.save_steps,
        seed=config.seed,
        micro_batch=config.micro_batch,
    )


def nothing_to_learn(trainer: Any, inputs: dict[str, Any]) -> bool:
    """True when this pass's loss and its gradient are exactly zero whatever the model says.

    GRPO's policy term is proportional to each episode's advantage; with every advantage 0
    (all groups of the pass without reward spread) and no term that does not scale with it (KL
    penalty ``beta``, entropy bonus, router aux loss), the forward and backward pass over long
    multi-turn episodes is pure cost. On CPU with small models most groups have no spread.
    """
    advantages = inputs.get("advantages")
    return (
        advantages is not None
        and getattr(trainer, "beta", 1.0) == 0.0
        and not getattr(trainer, "_entropy_bonus_enabled", True)
        and not getattr(trainer, "aux_loss_enabled", True)
        and not bool((advantages != 0).any())
    )


class SkipNoSignalMixin:
    """Skips the forward/backward pass of a micro-batch with nothing to learn (above).

    The update is unchanged where there is signal (a skipped pass would have added exactly zero
    to the accumulated gradient); a step whose every pass is skipped leaves the weights and the
    optimizer's state as they were, instead of moving them by momentum alone (as DAPO's dynamic
    sampling drops zero-spread groups). ``passes_skipped`` in the training log is the share of
    the step's passes skipped.
    """

    def compute_loss(self, model: Any, inputs: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
        import torch

        skipped = nothing_to_learn(self, inputs)
        metrics = getattr(self, "_metrics", None)
        if metrics is not None and model.training:
            metrics["train"]["passes_skipped"].append(1.0 if skipped else 0.0)
        if skipped:
            device = inputs["advantages"].device
            return torch.zeros((), device=device, requires_grad=True)
        return super().compute_loss(model, inputs, *args, **kwargs)  # type: ignore[misc]


def skipped_share(steps: list[dict[str, Any]]) -> float | None:
    """Mean share of loss passes skipped for want of signal (``sleuth.train.grpo``); None for a
    log written before the skip existed."""
    shares = [float(r["passes_skipped"]) for r in steps if r.get("passes_skipped") is not None]
    return round(sum(shares) / len(shares), 3) if shares else None


def reward_spread_share(steps: list[dict[str, Any]]) -> float | None:
    """Mean share of GRPO groups whose episodes got different rewards (TRL logs the share
    without spread, ``frac_reward_zero_std``): a group with equal rewards teaches nothing."""
    spread = [1.0 - float(r.get("frac_reward_zero_std", 1.0)) for r in steps]
    return round(sum(spread) / len(spread), 3) if spread else None


def episode_tokens(turns: int, max_new_tokens: int, top_k: int) -> int:
    """Completion tokens an episode of ``turns`` may take: each turn's output and up to two
    searches' hits of about 64 tokens each (the environment's tokens count, masked)."""
    return turns * (max_new_tokens + 64 * top_k * 2)


def rollout_trainer(
    args: Any,
    model: Any,
    tokenizer: Any,
    reward: Any,
    dataset: Any,
    rollout: Any,
    base: type | None = None,
    *,
    peft_config: Any = None,
    adapter_base: str | None = None,
    run: Any = None,
) -> Any:
    """A GRPO trainer (``trainer_class(base)``) whose completions come from ``rollout``
    (TRL's ``rollout_func``; kept as ``trainer.sleuth_rollout``), logging every step to the
    run folder's ``train_log.jsonl``. With ``peft_config`` only a LoRA adapter trains and each
    checkpoint is an adapter naming ``adapter_base`` (the spec the run was given) as its base.
    ``run`` is the trainer's config: its ``episode``'s settings are recorded in every
    checkpoint, so ``ask`` and ``eval run`` run a checkpoint as it was trained, and its
    ``max_minutes`` > 0 (where it has one) stops after that much wall time with the step saved
    (a rerun resumes)."""
    from sleuth.agent.trained_settings import settings_of_episodes
    from sleuth.train.runlog import JsonlLogCallback

    callbacks: list[Any] = [JsonlLogCallback(Path(args.output_dir) / "train_log.jsonl")]
    max_minutes = float(getattr(run, "max_minutes", 0.0))
    if max_minutes > 0:
        callbacks.append(wall_time_stop(max_minutes))
    trainer = trainer_class(base)(
        model=model,
        reward_funcs=reward,
        args=args,
        train_dataset=dataset,
        processing_class=tokenizer,
        rollout_func=rollout,
        callbacks=callbacks,
        peft_config=peft_config,
    )
    trainer.sleuth_rollout = rollout
    trainer.sleuth_adapter_base = adapter_base if peft_config is not None else None
    episode = getattr(run, "episode", None)
    trainer.sleuth_inference = (
        None if episode is None else settings_of_episodes([episode.to_dict()])
    )
    return trainer


def wall_time_stop(max_minutes: float) -> Any:
    """A callback that ends training after ``max_minutes`` of wall time, saving the step it
    stops at: on a shared CPU a run is cut into sessions and resumed from that checkpoint."""
    import time

    from transformers import TrainerCallback

    class WallTimeStop(TrainerCallback):
        def __init__(self) -> None:
            self.started = time.perf_counter()

        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
            if time.perf_counter() - self.started > max_minutes * 60:
                control.should_training_stop = True
                control.should_save = True
            return control

    return WallTimeStop()


def trainer_class(base: type | None = None) -> type:
    """``base`` (TRL's ``GRPOTrainer`` by default) with checkpoints written atomically, passes
    without signal skipped, and a rollout's sampling log-probabilities (asynchronous rollouts)
    used as the importance ratio's denominator."""
    from trl import GRPOTrainer

    from sleuth.train.behaviour_logprobs import BehaviourLogprobsMixin
    from sleuth.train.checkpoints import AtomicCheckpointMixin

    os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")  # rollout_func is marked experimental
    bases = (AtomicCheckpointMixin, SkipNoSignalMixin, BehaviourLogprobsMixin, base or GRPOTrainer)
    return type("SleuthGRPOTrainer", bases, {})
