"""``sleuth train simulator``: registered on the ``train`` sub-app beside ``sft``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from sleuth.cli import train_options
from sleuth.progress import log_line


def register(app: typer.Typer) -> None:
    from sleuth.cli.train import train_app

    train_app.command("simulator")(simulator_command)


def simulator_command(
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder to write (LoRA adapter)")],
    trajectories: Annotated[
        Path | None,
        typer.Option(help="Agent trajectories with gold metadata (e.g. an eval run's file)"),
    ] = None,
    index: Annotated[
        Path | None, typer.Option(help="The real index (default: bundled HotpotQA BM25)")
    ] = None,
    benchmark: Annotated[
        str, typer.Option(help="Without --trajectories: questions run against the index")
    ] = "hotpotqa-1100:train",
    limit: train_options.QuestionLimit = 200,
    k: Annotated[int, typer.Option("-k", help="Documents retrieved per question")] = 5,
    words: Annotated[
        int,
        typer.Option(
            help="Words of each document the model learns (the simulation prompt asks for "
            "about 30; the simulator writes at most 64 tokens by default)"
        ),
    ] = 30,
    model: Annotated[
        str | None, typer.Option(help="Base model (default: the packaged SmolLM2-135M)")
    ] = None,
    lora_r: train_options.LoraRank = 8,
    lora_top_layers: train_options.LoraTopLayers = 0,
    epochs: Annotated[float, typer.Option(help="Passes over the pairs")] = 1.0,
    max_steps: train_options.MaxSteps = 0,
    lr: Annotated[float, typer.Option("--lr", help="Peak learning rate")] = 3e-4,
    grad_accum: Annotated[int, typer.Option(help="Pairs per optimizer step")] = 4,
    max_minutes: train_options.MaxMinutes = 0.0,
    seed: train_options.Seed = 0,
    overwrite: train_options.Overwrite = False,
) -> None:
    """Fine-tune a model into a search-engine simulator (ZeroSearch's lightweight SFT).

    Collects (query, real document, useful/noisy) pairs from the real engine, from
    --trajectories or by running --benchmark questions on --index. The model learns --words
    words of each document, from the sentence holding a gold answer when the answer lies past
    the opening. Useful: that text holds a gold answer (or is gold evidence of a yes/no
    question); noisy: not gold evidence and no answer anywhere; gold evidence without the answer
    is left out. Useful and noisy pairs are balanced; each is the simulation prompt plus the
    real document as the answer (loss on the document only). Use the
    result with --simulate 'llm:model=OUT,...' on ask, eval run, train agent or serve.
    """
    given = dict(locals())  # the options, passed on whole
    from sleuth.train.simulator import train_simulator

    summary = train_simulator(
        out,
        trajectories=trajectories,
        index=index,
        benchmark=benchmark,
        limit=limit,
        k=k,
        words=words,
        sft={**train_options.sft_settings(given), "max_length": 512},
        log=log_line,
    )
    keys = ("pairs", "steps", "train_loss", "first_losses", "last_losses", "seconds")
    typer.echo(json.dumps({key: summary.get(key) for key in keys}))
    typer.echo(f"simulator: {out}   use: --simulate 'llm:model={out},noise=0.3'")
