"""Command-line options shared by the training commands (``train expand | agent | selfplay``,
the GRPO ones, and ``train sft | simulator``, the fine-tuning ones): one definition, so a flag
means the same in every trainer. Defaults stay at each command, since a smoke-sized run of one
trainer is not that of another. ``from_options`` hands a command's options on whole."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

T = TypeVar("T")

RunFolder = Annotated[Path, typer.Option("--out", "-o", help="Run folder (resumed if it exists)")]
PolicyModel = Annotated[
    str | None, typer.Option(help="HF id, local folder or .gguf (default: packaged SmolLM2)")
]
BenchmarkIndex = Annotated[
    Path | None, typer.Option(help="Index of the benchmark's corpus (default: bundled BM25)")
]
QuestionLimit = Annotated[int, typer.Option(help="Use the first N questions (0 = all)")]
Steps = Annotated[int, typer.Option(help="GRPO steps")]
QuestionsPerStep = Annotated[int, typer.Option(help="Questions per step")]
NumGenerations = Annotated[int, typer.Option(help="Episodes per question (GRPO group)")]
LearningRate = Annotated[float, typer.Option(help="Adam learning rate")]
Beta = Annotated[float, typer.Option(help="KL penalty weight (0 = no reference model)")]
Temperature = Annotated[float, typer.Option(help="Sampling temperature of rollouts")]
MaxNewTokens = Annotated[int, typer.Option(help="Tokens per model turn")]
TopK = Annotated[int, typer.Option(help="Hits shown per search")]
DocChars = Annotated[int, typer.Option(help="Characters shown per hit")]
SaveSteps = Annotated[int, typer.Option(help="Checkpoint every N steps")]
Seed = Annotated[int, typer.Option(help="Random seed")]
NoiseSchedule = Annotated[
    str | None,
    typer.Option(
        help="With --simulate: raise its noise from START to END over the steps, "
        "START:END[:linear|cosine|exp] (ZeroSearch curriculum; logged as sim_noise)"
    ),
]
# Clarification in GRPO (``train agent | searcher``; with ``--user``, docs/clarification.md).
AskCost = Annotated[
    float,
    typer.Option(help="Reward subtracted per ask on a clear question (a synth ambiguous file)"),
]
ExtraAskCost = Annotated[
    float, typer.Option(help="Reward subtracted per ask beyond the first on an ambiguous question")
]
# Asynchronous rollouts (``train agent | searcher``; sleuth.train.async_rollout).
AsyncRollouts = Annotated[
    bool,
    typer.Option(
        "--async-rollouts/--sync-rollouts",
        help="Generate GRPO groups ahead on a thread with a snapshot of the policy, at most "
        "--max-staleness updates old (off-policy groups weighted by their sampling log-probs)",
    ),
]
MaxStaleness = Annotated[
    int,
    typer.Option(
        help="With --async-rollouts: updates a group's weights may lag the trainer's (0 = "
        "synchronous behaviour)"
    ),
]

# Fine-tuning (``train sft | simulator``).
LoraRank = Annotated[int, typer.Option(help="LoRA rank")]
LoraTopLayers = Annotated[
    int, typer.Option(help="Adapt only the top N layers (0 = all; fewer is faster on CPU)")
]
MaxMinutes = Annotated[
    float, typer.Option(help="Stop after this much wall time and save (0 = no limit)")
]
MaxSteps = Annotated[int, typer.Option(help="Optimizer steps (> 0 overrides --epochs)")]
Overwrite = Annotated[bool, typer.Option(help="Replace --out if it exists")]
# The fine-tuning options both commands hand to ``SFTRunConfig`` unchanged (besides ``--lr``,
# which is its ``learning_rate``, and ``lora_alpha``, always twice the rank).
SFT_OPTIONS = (
    "model",
    "lora_r",
    "lora_top_layers",
    "epochs",
    "max_steps",
    "grad_accum",
    "max_minutes",
    "seed",
    "overwrite",
)


def sft_settings(given: dict[str, Any]) -> dict[str, Any]:
    """The ``SFTRunConfig`` fields of a fine-tuning command's options (its ``locals()``)."""
    return {
        **{name: given[name] for name in SFT_OPTIONS},
        "lora_alpha": 2 * given["lora_r"],
        "learning_rate": given["lr"],
    }


def from_options(cls: type[T], given: dict[str, Any], **changes: Any) -> T:
    """``cls`` (a dataclass) from a command's options (its ``locals()``): each option named as
    one of its fields, with ``changes`` (options converted or renamed) on top."""
    names = {f.name for f in fields(cls)}  # type: ignore[arg-type]
    return cls(**{k: v for k, v in {**given, **changes}.items() if k in names})
