"""``sleuth export verl``: hand a Sleuth task to verl/Ray clusters (see docs/verl.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from sleuth.progress import log_line

export_app = typer.Typer(
    help="Export Sleuth tasks for other training stacks.",
    no_args_is_help=True,
)


def register(app: typer.Typer) -> None:
    app.add_typer(export_app, name="export")


@export_app.command("verl")
def verl_command(
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Folder to write (new, empty, or with --force)")
    ],
    benchmark: Annotated[
        str,
        typer.Option(
            help="hotpotqa-1100 (named splits), hotpotqa-500, 2wiki-500, musique-500, "
            "bamboogle, or a FlashRAG JSONL file (split by a hash of the question id)"
        ),
    ] = "hotpotqa-1100",
    train_split: Annotated[str, typer.Option(help="Named split for train.parquet")] = "train",
    test_split: Annotated[
        str, typer.Option(help="Named split for test.parquet (verl's validation set)")
    ] = "test",
    test_fraction: Annotated[
        float, typer.Option(help="Share held out for test.parquet when there are no named splits")
    ] = 0.1,
    retrieval_url: Annotated[
        str,
        typer.Option(
            help="The /retrieve URL verl's search tool calls; `sleuth serve INDEX` answers it. "
            "Multi-node: keep 127.0.0.1 and run one server per node, or give several URLs, "
            "comma-separated (the verl >= 0.8 tool balances over them, with failover)"
        ),
    ] = "http://127.0.0.1:8000/retrieve",
    topk: Annotated[int, typer.Option(help="Documents returned per search query")] = 3,
    limit: Annotated[int, typer.Option(help="At most this many questions per split (0 = all)")] = 0,
    prompt_style: Annotated[
        str,
        typer.Option(
            help="tools: search by verl tool call, answer in <answer> tags (upstream verl); "
            "tags: Sleuth's <search>/<answer> tag prompt verbatim (needs your own agent loop)"
        ),
    ] = "tools",
    outcome: Annotated[
        str, typer.Option(help="Outcome term of the reward: em | f1 | cover_em")
    ] = "em",
    format_weight: Annotated[
        float, typer.Option(help="Reward = outcome + this x format (clean single <answer>)")
    ] = 0.0,
    force: Annotated[
        bool, typer.Option(help="Overwrite the export files in a non-empty --out")
    ] = False,
) -> None:
    """Write a verl task: train/test parquet, a self-contained reward module (sleuth_reward.py),
    verl search-tool configs pointed at `sleuth serve`'s /retrieve, and run.sh/README.md with
    the exact commands. Nothing written imports Sleuth, so the cluster does not need it."""
    from sleuth.train.verl_export import ExportOptions, export_verl

    options = ExportOptions(
        benchmark=benchmark,
        train_split=train_split,
        test_split=test_split,
        test_fraction=test_fraction,
        retrieval_url=retrieval_url,
        topk=topk,
        limit=limit or None,
        prompt_style=prompt_style,
        outcome=outcome,
        format_weight=format_weight,
    )
    typer.echo(f"exporting {benchmark} for verl to {out}")
    summary = export_verl(options, out, force=force, log=log_line)
    typer.echo(
        f"wrote {summary.counts['train']} train + {summary.counts['test']} test rows "
        f"(data_source {summary.data_source}) and {', '.join(summary.files[2:])}\n"
        "next:\n"
        f"  sleuth serve INDEX --port {_port(retrieval_url)}    # on every training node\n"
        f"  {summary.out / 'run.sh'}                  # verl GRPO; see {summary.out / 'README.md'}"
    )


def _port(url: str) -> int:
    from urllib.parse import urlsplit

    return urlsplit(url.split(",")[0].strip()).port or 8000
