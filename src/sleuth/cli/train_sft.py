"""``sleuth train sft``: registered on the ``train`` sub-app beside ``expand`` and ``agent``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from sleuth.progress import log_line


def register(app: typer.Typer) -> None:
    from sleuth.cli.train import train_app

    train_app.command("sft")(sft_command)


def sft_command(
    data: Annotated[
        Path, typer.Option(help="Trajectory JSONL (e.g. from `sleuth synth trajectories`)")
    ],
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder to write (adapter or model)")],
    model: Annotated[
        str | None, typer.Option(help="Base: HF id, local folder or .gguf (default: packaged)")
    ] = None,
    lora: Annotated[
        bool, typer.Option("--lora/--full", help="LoRA adapter (peft) or full fine-tuning")
    ] = True,
    lora_r: Annotated[int, typer.Option(help="LoRA rank")] = 16,
    lora_top_layers: Annotated[
        int, typer.Option(help="Adapt only the top N layers (0 = all; fewer is faster on CPU)")
    ] = 0,
    epochs: Annotated[float, typer.Option(help="Passes over the data")] = 1.0,
    max_steps: Annotated[int, typer.Option(help="Optimizer steps (> 0 overrides --epochs)")] = 0,
    lr: Annotated[float, typer.Option("--lr", help="Peak learning rate (cosine decay)")] = 3e-4,
    batch_size: Annotated[int, typer.Option(help="Episodes per micro-batch")] = 1,
    grad_accum: Annotated[int, typer.Option(help="Micro-batches per optimizer step")] = 4,
    max_length: Annotated[
        int, typer.Option(help="Tokens per episode; longer episodes are skipped, not cut")
    ] = 1536,
    limit: Annotated[int, typer.Option(help="Use the first N trajectories (0 = all)")] = 0,
    max_minutes: Annotated[
        float, typer.Option(help="Stop after this much wall time and save (0 = no limit)")
    ] = 0.0,
    seed: Annotated[int, typer.Option(help="Random seed")] = 0,
    overwrite: Annotated[bool, typer.Option(help="Replace --out if it exists")] = False,
) -> None:
    """Supervised fine-tuning on agent trajectories, loss on the model's own turns only.

    Each trajectory is rendered exactly as the agent loop showed it to the model (its system
    prompt, observations, and each model turn with its closing tag and end-of-turn token); only
    the model's turns carry loss. Load the result anywhere with --model OUT.
    """
    from sleuth.train.sft import SFTRunConfig, train_sft

    config = SFTRunConfig(
        data=str(data),
        out=str(out),
        model=model,
        lora=lora,
        lora_r=lora_r,
        lora_alpha=2 * lora_r,
        lora_top_layers=lora_top_layers,
        epochs=epochs,
        max_steps=max_steps,
        learning_rate=lr,
        batch_size=batch_size,
        grad_accum=grad_accum,
        max_length=max_length,
        limit=limit,
        max_minutes=max_minutes,
        seed=seed,
        overwrite=overwrite,
    )
    summary = train_sft(config, log=log_line)
    typer.echo(json.dumps({k: summary[k] for k in ("steps", "train_loss", "seconds")}))
    typer.echo(f"written: {out}")
