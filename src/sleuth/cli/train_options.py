"""Command-line options shared by the GRPO commands (``train expand | agent | selfplay``):
one definition, so a flag means the same in every trainer. Defaults stay at each command,
since a smoke-sized run of one trainer is not that of another."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

RunFolder = Annotated[Path, typer.Option("--out", "-o", help="Run folder (resumed if it exists)")]
PolicyModel = Annotated[
    str | None, typer.Option(help="HF id, local folder or .gguf (default: packaged SmolLM2)")
]
Steps = Annotated[int, typer.Option(help="GRPO steps")]
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
