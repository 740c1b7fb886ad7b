"""``sleuth train sft``: registered on the ``train`` sub-app beside ``expand`` and ``agent``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from sleuth.cli import train_options
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
    lora_r: train_options.LoraRank = 16,
    lora_top_layers: train_options.LoraTopLayers = 0,
    epochs: Annotated[float, typer.Option(help="Passes over the data")] = 1.0,
    max_steps: train_options.MaxSteps = 0,
    lr: Annotated[float, typer.Option("--lr", help="Peak learning rate (cosine decay)")] = 3e-4,
    batch_size: Annotated[int, typer.Option(help="Episodes per micro-batch")] = 1,
    grad_accum: Annotated[int, typer.Option(help="Micro-batches per optimizer step")] = 4,
    max_length: Annotated[
        int, typer.Option(help="Tokens per episode; longer episodes are skipped, not cut")
    ] = 1536,
    limit: Annotated[int, typer.Option(help="Use the first N trajectories (0 = all)")] = 0,
    max_minutes: train_options.MaxMinutes = 0.0,
    seed: train_options.Seed = 0,
    overwrite: train_options.Overwrite = False,
) -> None:
    """Supervised fine-tuning on agent trajectories, loss on the model's own turns only.

    Each trajectory is rendered exactly as the agent loop showed it to the model (its system
    prompt, observations, and each model turn with its closing tag and end-of-turn token); only
    the model's turns carry loss. Load the result anywhere with --model OUT.
    """
    given = dict(locals())  # the options, passed on whole
    from sleuth.train.sft import SFTRunConfig, train_sft

    config = train_options.from_options(
        SFTRunConfig, given, data=str(data), out=str(out), **train_options.sft_settings(given)
    )
    summary = train_sft(config, log=log_line)
    typer.echo(json.dumps({k: summary[k] for k in ("steps", "train_loss", "seconds")}))
    typer.echo(f"written: {out}")
