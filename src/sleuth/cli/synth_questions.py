"""``sleuth synth questions``: registered on the ``synth`` sub-app beside ``trajectories``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from sleuth.cli import agent_options as options


def register(app: typer.Typer) -> None:
    from sleuth.cli.synth import synth_app

    synth_app.command("questions")(questions_command)


def questions_command(
    out: Annotated[Path, typer.Option("--out", "-o", help="Benchmark JSONL to write")],
    index: Annotated[
        Path | None, typer.Option(help="Index to explore (default: bundled HotpotQA BM25)")
    ] = None,
    n: Annotated[int, typer.Option("-n", help="Proposals to make (seed documents)")] = 20,
    hops: Annotated[int, typer.Option(help="Searches the proposer makes at least")] = 2,
    model: Annotated[
        str | None, typer.Option(help="Model spec, or the model name at --llm-url")
    ] = None,
    llm_url: Annotated[
        str | None, typer.Option(help="OpenAI-compatible base URL, e.g. http://localhost:8000/v1")
    ] = None,
    evolve: Annotated[
        bool,
        typer.Option("--evolve", help="Rewrite accepted questions to hide their direct clue"),
    ] = False,
    drop_easy: Annotated[
        bool,
        typer.Option("--drop-easy", help="Leave out questions closed book answers correctly"),
    ] = False,
    seed: Annotated[int, typer.Option(help="Seed of the seed-document draw")] = 0,
    top_k: Annotated[int, typer.Option(help="Hits per proposer search")] = 3,
    answer_spans: options.ProposerAnswerSpans = True,
) -> None:
    """Propose questions with the agent loop and keep those a RAG solver verifies (SSP).

    The proposer explores from a random seed document (search, open) and ends with a short
    answer it read, then writes a question for it. A question is accepted when its answer is a
    short span in a retrieved document and the RAG solver, shown every document the proposer
    retrieved, answers it; a closed-book solver answering it marks it too easy (flagged in
    metadata, or left out with --drop-easy). --evolve rewrites accepted questions to hide the
    seed's name and verifies them again (WebExplorer). Writes OUT (benchmark JSONL for eval and
    train), OUT.proposals.jsonl (every proposal and why it was rejected) and
    OUT.trajectories.jsonl (the proposer's episodes).
    """
    import asyncio

    from sleuth.agent import TrajectoryLog
    from sleuth.evaluate.session import open_llm
    from sleuth.progress import stderr
    from sleuth.search.factory import open_engine
    from sleuth.synth.questions import (
        QuestionSynthesizer,
        SynthSettings,
        no_questions_hint,
        proposer_episode,
        write_outputs,
    )

    if n < 1 or hops < 1:
        from sleuth.errors import SleuthError

        raise SleuthError("-n and --hops must be at least 1")
    engine = open_engine(index).engine  # the bundled corpus without --index
    log = TrajectoryLog(out.with_name(out.name + ".trajectories.jsonl"))
    llm = open_llm(model, llm_url)
    settings = SynthSettings(
        n=n,
        hops=hops,
        evolve=evolve,
        drop_easy=drop_easy,
        seed=seed,
        agent=proposer_episode(top_k=top_k, answer_spans=answer_spans),
    )
    synth = QuestionSynthesizer(llm, engine, settings)

    from sleuth.display import safe_markup, safe_text

    def show(p) -> None:
        verdict = (
            "too easy" if p.accepted and p.too_easy else ("accepted" if p.accepted else p.rejected)
        )
        line = safe_text(f"proposal {p.proposer_trajectory}: {verdict}")  # may quote the model
        stderr.print(line, markup=False, highlight=False)

    async def main():
        try:
            return await synth.run(on_result=show)
        finally:
            await llm.aclose()

    proposals = asyncio.run(main())
    for trajectory in synth.trajectories:
        log.append(trajectory)
    stats = write_outputs(proposals, out, drop_easy)
    typer.echo(json.dumps(stats))
    typer.echo(f"questions: {out}   all proposals: {out}.proposals.jsonl")
    hint = no_questions_hint(stats, model, out)
    if hint:
        stderr.print(f"[yellow]{safe_markup(hint)}[/yellow]")
