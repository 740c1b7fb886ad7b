"""``sleuth eval-retrieval``: nDCG@10, Recall@10/100, MRR@10 and All@10 of an index on judged
queries, scored in the order the engine served (ties as served)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer


def register(app: typer.Typer) -> None:
    app.command(
        "eval-retrieval",
        help="Score an index on judged queries: nDCG@10, Recall@10, Recall@100, MRR@10 and "
        "All@10 (every gold document in the top 10), in the engine's own order.",
    )(eval_retrieval_command)


def eval_retrieval_command(
    index: Annotated[Path, typer.Argument(help="Index folder built by `sleuth index`")],
    queries: Annotated[
        str, typer.Argument(help="queries.jsonl / BEIR folder / Cranfield folder / bundled name")
    ],
    qrels: Annotated[
        str | None,
        typer.Argument(help="qrels .tsv / BEIR folder / Cranfield folder (default: as QUERIES)"),
    ] = None,
    k: Annotated[int, typer.Option("-k", help="Ranking depth retrieved per query")] = 100,
    as_json: Annotated[bool, typer.Option("--json", help="Print the scores as JSON")] = False,
    per_query: Annotated[
        Path | None,
        typer.Option(
            "--per-query",
            help="Also write one JSON line per judged query (metrics, gold ids, top 10) here",
        ),
    ] = None,
) -> None:
    """Run every query of QUERIES against INDEX and score the run against QRELS."""
    from rich.console import Console
    from rich.table import Table

    from sleuth.corpus import load_qrels, load_queries
    from sleuth.evaluate.retrieval import evaluate_run, run_queries
    from sleuth.progress import progress_bar
    from sleuth.search.factory import open_engine

    engine = open_engine(index).engine
    query_texts = load_queries(queries)
    judgements = load_qrels(qrels or queries)
    query_texts = {qid: text for qid, text in query_texts.items() if qid in judgements}
    warn_unjudgeable(engine, judgements)
    with progress_bar("searching", total=len(query_texts)) as advance:
        run = run_queries(engine, query_texts, k=k, progress=advance)
    scores = evaluate_run(run, judgements)
    if per_query is not None:
        write_per_query(per_query, scores.per_query, query_texts, judgements, run)
    if as_json:
        payload = {"index": str(index), "queries": scores.queries, **scores.labelled()}
        typer.echo(json.dumps(payload, indent=2))
        return
    table = Table(title=f"{engine.name} on {scores.queries} judged queries")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for name, value in scores.labelled().items():
        table.add_row(name, f"{value:.4f}")
    Console().print(table)


def write_per_query(
    path: Path,
    per_query: dict[str, dict[str, float]],
    queries: dict[str, str],
    qrels: dict[str, dict[str, int]],
    run: dict[str, dict[str, float]],
) -> None:
    """One JSON object a line: the query, its metrics, its gold ids and the served top 10."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as handle:
        for qid, metrics in per_query.items():
            served = list(run.get(qid, {}))[:10]  # run_queries keeps the served order
            gold = sorted(doc for doc, gain in qrels[qid].items() if gain > 0)
            record = {"query_id": qid, "query": queries.get(qid, ""), **metrics}
            record |= {"gold": gold, "top10": served}
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")


def warn_unjudgeable(engine: object, qrels: dict[str, dict[str, int]], sample: int = 500) -> None:
    """Say so when judged documents are not in the index: they can never be retrieved."""
    from sleuth.display import safe_markup
    from sleuth.errors import DocumentNotFound
    from sleuth.progress import stderr

    judged = list(dict.fromkeys(d for docs in qrels.values() for d, g in docs.items() if g > 0))
    checked = judged[:sample]
    missing = []
    for doc_id in checked:
        try:
            engine.get(doc_id)  # type: ignore[attr-defined]
        except DocumentNotFound:
            missing.append(doc_id)
    if missing:
        stderr.print(
            f"[yellow]warning: {len(missing)} of {len(checked)} judged document ids are not in "
            f"the index (e.g. {safe_markup(missing[:3])}); they count as never retrieved. "
            "Are the judgements for this corpus?[/yellow]"
        )
