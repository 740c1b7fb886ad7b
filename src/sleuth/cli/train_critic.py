"""``sleuth train critic``: a state-value critic from stored eval runs, registered on the
``train`` sub-app (``sleuth.train.critic``; docs/planning.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def register(app: typer.Typer) -> None:
    from sleuth.cli.train import train_app

    train_app.command("critic")(critic_command)


def critic_command(
    runs: Annotated[
        list[Path],
        typer.Option(
            "--runs",
            help="Eval run folder (trajectories.jsonl + results.jsonl) to learn from; repeat "
            "for more",
        ),
    ],
    out: Annotated[Path, typer.Option("--out", "-o", help="Critic folder to write")],
    label: Annotated[
        str,
        typer.Option(
            help="A state's value: f1 (the answer's), recall (gold evidence retrieved) or mix "
            "(their mean) of the episodes through it"
        ),
    ] = "mix",
    holdout: Annotated[
        float, typer.Option(help="Share of the questions held out to measure the critic")
    ] = 0.25,
    seed: Annotated[int, typer.Option(help="Seed of the question split")] = 0,
) -> None:
    """Train a critic for --strategy (--critic OUT): every prefix of every stored episode is a
    state, valued by the outcome of the episodes through it; a ridge regression over the
    state's sentence-encoder and count features learns it. Prints the held-out ranking metrics
    against the documents-gathered baseline; no model is called."""
    from sleuth.train.critic import train_critic

    result = train_critic(runs, out, label=label, holdout=holdout, seed=seed)
    metrics = result.metrics
    held, base = metrics["held_out"], metrics["baseline_documents_held_out"]

    def shown(value: float | None) -> str:
        return "n/a" if value is None else f"{value:.3f}"

    typer.echo(
        f"{result.states} states of {result.questions} questions "
        f"({metrics['questions']['held_out']} held out); label {label}, ridge alpha "
        f"{metrics['alpha']}"
    )
    typer.echo(
        f"held out: critic spearman {shown(held['spearman'])} auc {shown(held['auc'])}; "
        f"documents gathered spearman {shown(base['spearman'])} auc {shown(base['auc'])}"
    )
    typer.echo(f"saved {result.out} (use: --strategy best-of-n --critic {result.out})")
