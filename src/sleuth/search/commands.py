"""``sleuth index`` and ``sleuth search``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from sleuth.corpus.bundled import describe as describe_bundled


def register(app: typer.Typer) -> None:
    app.command(
        "index", help=f"Build a search index from a corpus. Bundled: {describe_bundled()}."
    )(index_command)
    app.command("search", help="Search an index and print the ranked hits.")(search_command)


def index_command(
    corpus: Annotated[
        str,
        typer.Argument(
            help="Corpus: JSONL file, BEIR folder, HotpotQA JSONL, Cranfield folder or bundled name"
        ),
    ],
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Index folder to create (replaced atomically)")
    ],
    engine: Annotated[str, typer.Option(help="bm25 | dense | hybrid")] = "bm25",
    stem: Annotated[bool, typer.Option("--stem", help="English stemming for BM25")] = False,
    dense_index: Annotated[
        str, typer.Option(help="faiss index for dense: flat | hnsw | sq8 | hnsw+sq8")
    ] = "flat",
    encoder: Annotated[
        str | None,
        typer.Option(help="Encoder HF id or folder (default: packaged all-MiniLM-L6-v2)"),
    ] = None,
    encoder_backend: Annotated[
        str | None,
        typer.Option(
            help="Dense encoder runtime: onnx (default) | onnx-int8 | openvino | torch. "
            "The first use of onnx/openvino exports the model once into the cache."
        ),
    ] = None,
    format: Annotated[
        str, typer.Option(help="auto | jsonl | beir | hotpotqa | cranfield")
    ] = "auto",
    chunk_words: Annotated[
        int, typer.Option(help="Split documents longer than this many words (0 = never)")
    ] = 0,
) -> None:
    """Index CORPUS into OUT."""
    import time

    from sleuth.corpus import chunk_documents, load_documents
    from sleuth.progress import progress_bar, stderr
    from sleuth.search import build_index, read_manifest

    documents = load_documents(corpus, format=format)
    if chunk_words:
        documents = chunk_documents(documents, max_words=chunk_words, overlap=chunk_words // 5)
    started = time.perf_counter()
    with progress_bar(f"indexing ({engine})") as advance:
        path = build_index(
            documents,
            out,
            engine=engine,
            tokenizer="en_stem" if stem else "default",
            dense_index=dense_index,
            encoder=encoder,
            encoder_backend=encoder_backend,
            source=str(corpus),
            progress=advance,
        )
    manifest = read_manifest(path)
    stderr.print(
        f"[green]indexed {manifest['corpus']['documents']:,} documents[/green] into {path} "
        f"in {time.perf_counter() - started:.1f}s (engine {engine})"
    )


def search_command(
    index: Annotated[Path, typer.Argument(help="Index folder built by `sleuth index`")],
    query: Annotated[str, typer.Argument(help="The query text")],
    k: Annotated[int, typer.Option("-k", help="Number of hits")] = 10,
    as_json: Annotated[bool, typer.Option("--json", help="Print hits as JSON")] = False,
    width: Annotated[int, typer.Option(help="Characters of text shown per hit")] = 160,
    encoder_backend: Annotated[
        str | None,
        typer.Option(help="Query encoder for dense/hybrid: onnx | onnx-int8 | openvino | torch"),
    ] = None,
) -> None:
    """Search INDEX for QUERY."""
    from rich.console import Console
    from rich.table import Table

    from sleuth.search import open_index

    engine = open_index(index, encoder_backend=encoder_backend)
    hits = engine.search(query, k)
    if as_json:
        typer.echo(json.dumps([hit.to_dict() for hit in hits], ensure_ascii=False, indent=2))
        return
    table = Table(title=f"{len(hits)} hits for {query!r} ({engine.name}, {len(engine):,} docs)")
    table.add_column("#", justify="right")
    table.add_column("score", justify="right")
    table.add_column("id")
    table.add_column("title", style="bold")
    table.add_column("text")
    for hit in hits:
        snippet = " ".join(hit.text.split())
        snippet = snippet if len(snippet) <= width else snippet[: width - 1] + "…"
        table.add_row(str(hit.rank), f"{hit.score:.3f}", hit.id, hit.title, snippet)
    Console().print(table)
