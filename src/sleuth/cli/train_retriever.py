"""``sleuth train retriever``: Promptagator, registered on the ``train`` sub-app."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from sleuth.cli import agent_options as options


def register(app: typer.Typer) -> None:
    from sleuth.cli.train import train_app

    train_app.command("retriever")(retriever_command)


def retriever_command(
    corpus: Annotated[
        str,
        typer.Option(
            help="Corpus: bundled name (hotpotqa-1100, cranfield), JSONL / JSON file, BEIR "
            "folder, SMART folder, HotpotQA / 2Wiki / MuSiQue file (as `sleuth index`)"
        ),
    ],
    examples: Annotated[
        Path,
        typer.Option(
            help="JSONL, at most 8 lines: {'query', 'passage_id'} (a corpus id) or "
            "{'query', 'passage', 'title'?}"
        ),
    ],
    out: Annotated[Path, typer.Option("--out", "-o", help="New folder for the results")],
    format: Annotated[str, typer.Option(help="Corpus format, as `sleuth index --format`")] = "auto",
    passages: Annotated[int, typer.Option(help="Corpus passages that get generated queries")] = 200,
    queries_per_passage: Annotated[int, typer.Option(help="Queries generated per passage")] = 1,
    keep_top_k: Annotated[
        int,
        typer.Option(help="Round trip: keep a query if its passage ranks in this top k for it"),
    ] = 3,
    filter_index: Annotated[
        Path | None,
        typer.Option(
            help="Index of the corpus that does the round-trip filter, e.g. a dense MiniLM "
            "index (default: BM25 of the corpus)"
        ),
    ] = None,
    baseline_index: Annotated[
        Path | None,
        typer.Option(
            help="Dense index of the corpus with the packaged encoder, for the 'before' numbers "
            "(default: built in OUT/baseline-index)"
        ),
    ] = None,
    queries: Annotated[
        str | None,
        typer.Option(help="Judged queries for the report (default: the corpus's own, if any)"),
    ] = None,
    qrels: Annotated[str | None, typer.Option(help="Judgements for --queries")] = None,
    evaluate: Annotated[
        bool, typer.Option(help="Score before/after on the judged queries (if there are any)")
    ] = True,
    model: Annotated[
        str | None,
        typer.Option(
            help="LLM writing the queries: a served model name with --llm-url, else a local "
            "model spec (default: the packaged SmolLM2-135M)"
        ),
    ] = None,
    llm_url: Annotated[
        str | None, typer.Option(help="OpenAI-compatible server, e.g. http://host:8000/v1")
    ] = None,
    backend: options.Backend = "auto",
    temperature: Annotated[float, typer.Option(help="Sampling temperature of the LLM")] = 0.7,
    epochs: Annotated[int, typer.Option(help="Passes over the training pairs")] = 1,
    batch_size: Annotated[
        int, typer.Option(help="Pairs per batch (each batch's other passages are negatives)")
    ] = 16,
    learning_rate: Annotated[float, typer.Option(help="Adam learning rate")] = 2e-5,
    reranker: Annotated[
        bool, typer.Option(help="Also train a cross-encoder reranker into OUT/reranker")
    ] = False,
    rerank_depth: Annotated[int, typer.Option(help="Hits the reranker reorders (report)")] = 20,
    dense_index: Annotated[str, typer.Option(help="faiss index: flat | hnsw | sq8 | hnsw+sq8")] = (
        "flat"
    ),
    encoder_backend: Annotated[
        str,
        typer.Option(
            help="Runtime encoding the corpus with the new encoder: torch (no export step) | "
            "onnx | onnx-int8 | openvino"
        ),
    ] = "torch",
    seed: Annotated[int, typer.Option(help="Seed: passage sample, sampling, training")] = 0,
) -> None:
    """Few-shot dense retrieval (Promptagator) from at most 8 labelled (query, passage) pairs.

    An LLM writes queries for --passages corpus passages, shown the examples as passage ->
    query demonstrations; a query is kept only if the current retriever ranks its passage in
    the top --keep-top-k (round-trip consistency); the packaged MiniLM encoder is fine-tuned on
    the kept pairs (in-batch negatives plus one BM25 hard negative each) and saved in
    OUT/encoder; the corpus is indexed with it into OUT/index. OUT/report.json holds nDCG@10
    and Recall@10 before and after, queries generated and kept, and the time of each phase.
    """
    from sleuth.display import safe_markup
    from sleuth.progress import stderr
    from sleuth.train.retriever import RetrieverTrainConfig, train_retriever
    from sleuth.train.retriever.pipeline import regressions

    config = RetrieverTrainConfig(
        corpus=corpus,
        examples=str(examples),
        out=str(out),
        format=format,
        passages=passages,
        queries_per_passage=queries_per_passage,
        keep_top_k=keep_top_k,
        seed=seed,
        model=model,
        llm_url=llm_url,
        backend=backend,
        temperature=temperature,
        filter_index=str(filter_index) if filter_index else None,
        baseline_index=str(baseline_index) if baseline_index else None,
        queries=queries,
        qrels=qrels,
        epochs=epochs,
        batch_size=batch_size,
        learning_rate=learning_rate,
        reranker=reranker,
        rerank_depth=rerank_depth,
        dense_index=dense_index,
        encoder_backend=encoder_backend,
        evaluate=evaluate,
    )
    report = train_retriever(config, log=lambda line: stderr.print(safe_markup(line)))
    summary = {k: report[k] for k in ("queries_generated", "queries_kept", "training_pairs")}
    typer.echo(json.dumps({**summary, "metrics": report["metrics"], "seconds": report["seconds"]}))
    typer.echo(
        f"encoder: {out / 'encoder'}   index: {out / 'index'}   report: {out / 'report.json'}"
    )
    for warning in regressions(report["metrics"]):
        stderr.print(f"[yellow]warning:[/] {safe_markup(warning)}")
