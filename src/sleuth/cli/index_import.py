"""``sleuth index import``: a Search-R1 / FlashRAG corpus and faiss index as a Sleuth index."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from sleuth.cli import search_options


def import_command(
    corpus: Annotated[
        Path,
        typer.Option(help='Corpus JSONL, one {"id", "contents": "\\"Title\\"\\ntext"} a line'),
    ],
    faiss: Annotated[
        Path, typer.Option(help="The faiss index built from it (row i = line i of the corpus)")
    ],
    encoder: Annotated[
        str,
        typer.Option(help="The encoder that made the vectors: HF id or folder (e5-base-v2's)"),
    ],
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Index folder to create (replaced atomically)")
    ],
    query_prefix: Annotated[
        str, typer.Option(help="Put before every query by every command that opens the index")
    ] = "",
    passage_prefix: Annotated[
        str, typer.Option(help="Put before each passage when it was encoded (e5: 'passage: ')")
    ] = "",
    to: Annotated[
        str | None,
        typer.Option(help="Convert the vectors: flat | sq8 | ivf-pq (default: keep as they are)"),
    ] = None,
    dim: Annotated[
        int | None,
        typer.Option(help="The encoder's dimension, when the encoder cannot be loaded here"),
    ] = None,
    verify: Annotated[
        bool,
        typer.Option(
            "--verify/--no-verify",
            help="Re-encode 8 corpus lines and check each one's nearest row is its own",
        ),
    ] = True,
    copy: Annotated[
        bool,
        typer.Option(
            "--copy", help="Copy a kept faiss file instead of hard-linking it (same disk only)"
        ),
    ] = False,
    nprobe: Annotated[
        int | None, typer.Option(help="IVF lists searched per query (IVF and --to ivf-pq)")
    ] = None,
    nlist: Annotated[
        int | None, typer.Option(help="--to ivf-pq: inverted lists (default about sqrt(n))")
    ] = None,
    pq_m: Annotated[
        int | None, typer.Option(help="--to ivf-pq: bytes per vector (default dim / 8)")
    ] = None,
    rerank: Annotated[
        str | None,
        typer.Option(
            help="disk: keep the float32 rows on disk beside a --to sq8 / ivf-pq index and "
            "re-score its candidates exactly (a flat source is linked, not copied)"
        ),
    ] = None,
    rerank_factor: Annotated[
        int | None,
        typer.Option(help="--rerank disk: candidates re-scored per hit returned (default 20)"),
    ] = None,
    encoder_backend: search_options.EncoderBackend = None,
) -> None:
    """Import CORPUS and FAISS into OUT."""
    import time

    from sleuth.display import safe_markup
    from sleuth.progress import progress_bar, stderr
    from sleuth.search import read_manifest
    from sleuth.search.index_import import ImportOptions, import_index

    options = ImportOptions(
        encoder=encoder,
        query_prefix=query_prefix,
        passage_prefix=passage_prefix,
        to=to,
        dim=dim,
        encoder_backend=encoder_backend,
        verify=verify,
        link=not copy,
        nprobe=nprobe,
        nlist=nlist,
        pq_m=pq_m,
        rerank=rerank,
        rerank_factor=rerank_factor,
    )
    started = time.perf_counter()
    with progress_bar("importing (corpus lines, then vectors)") as advance:
        path = import_index(corpus, faiss, out, options, progress=advance)
    manifest = read_manifest(path)
    imported, count = manifest["imported"], manifest["corpus"]["documents"]
    vectors = imported["vectors"]
    how = (
        f"converted {vectors['converted_from']} -> {vectors['dense_index']}"
        if "converted_from" in vectors
        else f"{vectors['dense_index']} kept ({vectors['placed']})"
    )
    peak = vectors["peak_rss_bytes"] / 2**20
    if "rerank" in vectors:
        how += f"; float32 rows kept for re-scoring ({vectors['rerank']['placed']})"
    stderr.print(f"vectors: {how}; peak memory {peak:,.0f} MiB ({vectors['peak_rss_scope']})")
    check = imported["sample_check"]
    if check is not None:
        ok, total = sum(s["ok"] for s in check["samples"]), len(check["samples"])
        stderr.print(f"sample check: {ok} of {total} lines nearest to their own row")
    for warning in imported["warnings"]:
        stderr.print(f"[yellow]warning:[/yellow] {safe_markup(warning)}")
    stderr.print(
        f"[green]imported {count:,} documents[/green] into {safe_markup(path)} in "
        f"{time.perf_counter() - started:.1f}s"
    )
