"""``sleuth synth ...``: synthetic training data (a sub-app; other generators may join it)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

synth_app = typer.Typer(
    help="Build synthetic training data with the real engine.", no_args_is_help=True
)


def register(app: typer.Typer) -> None:
    app.add_typer(synth_app, name="synth")


@synth_app.command("trajectories")
def trajectories_command(
    benchmark: Annotated[
        list[str],
        typer.Option(
            help="hotpotqa-1100:train or hotpotqa-1100:dev (repeat for both; test is refused)"
        ),
    ],
    out: Annotated[Path, typer.Option("--out", "-o", help="Trajectory JSONL to write (new)")],
    index: Annotated[
        Path | None, typer.Option(help="Index of the corpus (default: bundled HotpotQA BM25)")
    ] = None,
    n: Annotated[int, typer.Option("-n", help="First N questions per benchmark (0 = all)")] = 0,
    seed: Annotated[int, typer.Option(help="Seed of the script's choices")] = 0,
    judge_share: Annotated[
        float, typer.Option(help="Share of episodes whose actions include judge")
    ] = 0.3,
    prefetch: Annotated[
        int,
        typer.Option(
            help="K > 0: each episode starts from the loop's top-K retrieval of the question "
            "(priming for the agent_rag method); 0: the script's own first search"
        ),
    ] = 0,
    think_share: Annotated[
        float,
        typer.Option(
            help="Share of actions with a short <think> before them (0: none; a 135M model "
            "primed with thoughts writes them as its answers)"
        ),
    ] = 0.0,
    searcher: Annotated[
        int,
        typer.Option(
            "--searcher",
            metavar="K",
            help="K > 0: searcher@K episodes (priming a searcher for `train searcher` / "
            "`--model` beside `--reader`): RAG's top K, a search for each missing gold "
            "paragraph, then <select> of the gold paragraphs; 0: the agent's episodes",
        ),
    ] = 0,
    teacher: Annotated[
        str,
        typer.Option(
            help="With --searcher: gold (search the gold paragraphs' titles, select them) or "
            "links (play the links pipeline: search the names the question and its best hit "
            "contain, select the documents titled by them; kept when they hold the evidence) "
            "or follow (the same read with the follow action: searcher_links@K episodes)"
        ),
    ] = "gold",
) -> None:
    """SFT episodes for behaviour priming, played through the real agent loop and engine.

    A scripted policy searches the question's key words, reformulates with the entity's name
    when that misses, opens a hit to read past the snippet, judges what is found or missing,
    runs a second hop from what the first returned, and answers with the gold answer. Only
    episodes that retrieved both gold paragraphs are kept; the stats print as JSON.

    With --searcher K the episodes are a searcher's (s3): it searches by name for each gold
    paragraph RAG's top K missed and selects the gold paragraphs by number; only episodes whose
    selection names both are kept. With --teacher links every search and selection follows
    from the text the searcher sees (the links pipeline's choices), not from the gold titles.
    Use --think-share 0.5 for a thought before each search.
    """
    from sleuth.search.factory import open_engine
    from sleuth.synth.trajectories import check_benchmark, synth_trajectories

    for name in benchmark:
        check_benchmark(name)  # before opening anything
    engine = open_engine(index).engine  # the bundled corpus without --index
    stats = synth_trajectories(
        list(benchmark),
        engine,
        out,
        limit=n or None,
        seed=seed,
        judge_share=judge_share,
        prefetch_k=prefetch,
        think_share=think_share,
        searcher_k=searcher,
        teacher=teacher,
    )
    typer.echo(json.dumps(stats.to_dict()))
    typer.echo(f"kept {stats.kept} of {stats.questions} episodes: {out}")


@synth_app.command("ambiguous")
def ambiguous_command(
    benchmark: Annotated[
        str, typer.Option(help="Questions to make ambiguous, NAME:SPLIT (e.g. hotpotqa-1100:dev)")
    ],
    out: Annotated[Path, typer.Option("--out", "-o", help="Benchmark JSONL to write")],
    index: Annotated[
        Path | None,
        typer.Option(
            help="Index the ambiguity is checked against (default: bundled HotpotQA BM25)"
        ),
    ] = None,
    n: Annotated[
        int, typer.Option("-n", help="Ambiguous questions to keep (0 = all that pass)")
    ] = 0,
    seed: Annotated[int, typer.Option(help="Seed of the question order and rule choice")] = 0,
    purpose: Annotated[
        str, typer.Option(help="eval | train (train refuses test questions)")
    ] = "eval",
    rewrite_model: Annotated[
        str | None,
        typer.Option(
            help="Rewrite with this model instead of the rules (any `sleuth model list` spec); "
            "its rewrites pass the same corpus check"
        ),
    ] = None,
) -> None:
    """Underspecified questions from fully specified ones, with the removed constraint kept as
    the hidden intent a simulated user answers from (docs/clarification.md). Each is kept only
    when the corpus shows several plausible matches; as many clear questions are added
    unchanged. The file is a benchmark for `sleuth eval run --benchmark FILE`."""
    from sleuth.search.factory import open_engine
    from sleuth.synth.ambiguous import check_purpose, llm_rewriter, synth_ambiguous

    check_purpose(benchmark, purpose)  # before opening anything
    engine = open_engine(index).engine
    rewriter, label = None, "rules"
    if rewrite_model:
        from sleuth.llm import load_llm

        rewriter, label = llm_rewriter(load_llm(rewrite_model)), f"llm:{rewrite_model}"
    stats = synth_ambiguous(
        benchmark,
        engine,
        out,
        limit=n or None,
        seed=seed,
        purpose=purpose,
        rewriter=rewriter,
        rewrite_label=label,
    )
    typer.echo(json.dumps(stats.to_dict()))
    typer.echo(f"wrote {stats.ambiguous} ambiguous and {stats.clear} clear questions: {out}")
