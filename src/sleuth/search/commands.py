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
            help="Corpus: JSONL / JSON-array file, BEIR folder, HotpotQA / 2Wiki / MuSiQue "
            "file or folder, SMART folder (*.ALL, *.QRY, *.REL) or bundled name"
        ),
    ],
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Index folder to create (replaced atomically)")
    ],
    engine: Annotated[str, typer.Option(help="bm25 | dense | hybrid")] = "bm25",
    analyzer: Annotated[
        str,
        typer.Option(
            help="BM25 analysis: english (lowercase, Lucene stopwords, Snowball stemming) | "
            "en_stem (no stopwords) | plain (lowercase only)"
        ),
    ] = "english",
    stem: Annotated[
        bool, typer.Option("--stem", help="Same as --analyzer en_stem (kept for old scripts)")
    ] = False,
    reuse_dense: Annotated[
        Path | None,
        typer.Option(
            help="Existing dense/hybrid index of the same corpus whose vectors to reuse "
            "(checked by corpus checksum, encoder and faiss settings; otherwise encodes)"
        ),
    ] = None,
    dense_index: Annotated[
        str, typer.Option(help="faiss index for dense: flat | hnsw | sq8 | hnsw+sq8")
    ] = "flat",
    encoder: Annotated[
        str | None,
        typer.Option(help="Encoder HF id or folder (default: packaged all-MiniLM-L6-v2)"),
    ] = None,
    format: Annotated[
        str,
        typer.Option(
            help="auto | jsonl | flashrag | json | hipporag | beir | hotpotqa | 2wiki | musique "
            "| smart | cranfield"
        ),
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
            tokenizer="en_stem" if stem else analyzer,
            dense_index=dense_index,
            encoder=encoder,
            source=str(corpus),
            progress=advance,
            reuse_dense=reuse_dense,
        )
    manifest = read_manifest(path)
    if manifest["params"].get("dense_reused_from"):
        stderr.print(f"reused the vectors of {manifest['params']['dense_reused_from']}")
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
) -> None:
    """Search INDEX for QUERY."""
    from rich.console import Console
    from rich.table import Table

    from sleuth.search import open_index

    engine = open_index(index)
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
