"""``sleuth index`` and ``sleuth search``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import click
import typer
from typer.core import TyperGroup

from sleuth.cli import search_options
from sleuth.corpus.bundled import describe as describe_bundled

if TYPE_CHECKING:
    from sleuth.search.ray_encode import RayOptions

BUILD = "build"


class IndexGroup(TyperGroup):
    """``sleuth index CORPUS --out DIR`` builds, as it always did (the same as ``sleuth index
    build``); ``sleuth index import`` wraps an index built elsewhere; ``sleuth index update``
    changes a built one. Arguments that do not start with a subcommand's name go to ``build``."""

    def route(self, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ("--help", "-h"):
            return [BUILD, *args]
        return args

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        return super().parse_args(ctx, self.route(list(args)))


def register(app: typer.Typer) -> None:
    from sleuth.cli.index_import import import_command
    from sleuth.cli.index_update import update_command

    index_app = typer.Typer(
        cls=IndexGroup,
        no_args_is_help=True,
        help="Build a search index from a corpus (`sleuth index CORPUS --out DIR`, the same as "
        "`sleuth index build`), import a corpus and faiss index built elsewhere "
        "(`sleuth index import`), or add, replace and delete documents of a built index "
        "(`sleuth index update`).",
    )
    index_app.command(
        BUILD, help=f"Build a search index from a corpus. Bundled: {describe_bundled()}."
    )(index_command)
    index_app.command(
        "import",
        help="Wrap a Search-R1 / FlashRAG corpus JSONL and its prebuilt faiss index as a Sleuth "
        "dense index, without encoding the corpus again (docs/scale.md).",
    )(import_command)
    index_app.command(
        "update",
        help="Add, replace and delete documents of an index, committed atomically "
        "(docs/serving.md, 'Fresh content').",
    )(update_command)
    app.add_typer(index_app, name="index")
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
        str | None,
        typer.Option(
            help="faiss index for dense/hybrid: flat | hnsw | sq8 | hnsw+sq8 (default flat)"
        ),
    ] = None,
    encoder: Annotated[
        str | None,
        typer.Option(help="Encoder HF id or folder (default: packaged all-MiniLM-L6-v2)"),
    ] = None,
    encoder_backend: search_options.EncoderBackend = None,
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
    ray: Annotated[
        bool,
        typer.Option(
            "--ray",
            help="Encode the vectors (dense/hybrid) on Ray workers, shard by shard; a rerun "
            "resumes from the finished shards (docs/scale.md; needs sleuth[ray])",
        ),
    ] = False,
    ray_address: search_options.RayAddress = None,
    ray_workers: Annotated[
        int, typer.Option(help="With --ray: encoder workers (one encoder loaded in each)")
    ] = 2,
    ray_shards: Annotated[
        int | None,
        typer.Option(
            help="With --ray: shards to split the corpus into (default: the workers, or one "
            "per 50,000 documents if more)"
        ),
    ] = None,
    ray_worker_cpus: Annotated[
        float, typer.Option(help="With --ray: CPUs each worker takes (its encoder threads)")
    ] = 1.0,
) -> None:
    """Index CORPUS into OUT."""
    import time

    from sleuth.corpus import chunk_documents, load_documents
    from sleuth.display import safe_markup
    from sleuth.progress import progress_bar, stderr
    from sleuth.search import build_index, read_manifest
    from sleuth.search.targets import check_engine_options, check_index_target

    check_engine_options(engine, dense_index)  # all checks before the corpus is read
    check_index_target(out)
    ray_options = None
    if ray:
        ray_options = ray_build_options(
            engine, ray_address, ray_workers, ray_shards, ray_worker_cpus
        )
    elif ray_address is not None or ray_shards is not None:
        raise typer.BadParameter("--ray-address and --ray-shards go with --ray")
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
            dense_index=dense_index or "flat",
            encoder=encoder,
            encoder_backend=encoder_backend,
            source=corpus_source(corpus),
            progress=advance,
            reuse_dense=reuse_dense,
            ray=ray_options,
        )
    manifest = read_manifest(path)
    count = manifest["corpus"]["documents"]
    if manifest["params"].get("dense_reused_from"):
        reused = manifest["params"]["dense_reused_from"]
        stderr.print(f"reused the vectors of {safe_markup(reused)}")
    stderr.print(
        f"[green]indexed {count:,} {plural(count, 'document')}[/green] into "
        f"{safe_markup(path)} in {time.perf_counter() - started:.1f}s (engine {engine})"
    )


def ray_build_options(
    engine: str, address: str | None, workers: int, shards: int | None, cpus: float
) -> RayOptions:
    """``--ray``'s settings, checked before the corpus is read: an engine with vectors, Ray
    installed, sane counts and an address of the right shape."""
    from sleuth.errors import SleuthError
    from sleuth.progress import stderr
    from sleuth.search.ray_encode import RayOptions, check_options, import_ray

    if engine not in ("dense", "hybrid"):
        raise SleuthError(
            f"--ray encodes vectors, and a {engine} index has none to encode "
            "(use --engine dense or hybrid, or drop --ray)"
        )
    options = RayOptions(
        address,
        workers,
        shards,
        cpus,
        log=lambda line: stderr.print(line, markup=False, highlight=False),
    )
    check_options(options)
    import_ray()
    return options


def corpus_source(corpus: str) -> str:
    """What the manifest records as the corpus: a bundled name as is, a path made absolute so
    the rebuild hint of a damaged index works from any folder."""
    from sleuth.corpus.bundled import BUNDLED

    return corpus if corpus in BUNDLED else str(Path(corpus).expanduser().resolve())


def search_command(
    index: Annotated[Path, typer.Argument(help="Index folder built by `sleuth index`")],
    query: Annotated[str, typer.Argument(help="The query text")],
    k: Annotated[int, typer.Option("-k", help="Number of hits")] = 10,
    as_json: Annotated[bool, typer.Option("--json", help="Print hits as JSON")] = False,
    width: Annotated[int, typer.Option(help="Characters of text shown per hit")] = 160,
    encoder_backend: search_options.EncoderBackend = None,
    rerank: search_options.Rerank = None,
    rerank_depth: Annotated[int, typer.Option(help="Hits the reranker reorders")] = 20,
) -> None:
    """Search INDEX for QUERY."""
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    from sleuth.display import one_line, safe_text
    from sleuth.search.factory import open_engine

    engine = open_engine(
        index, rerank=rerank, rerank_depth=rerank_depth, encoder_backend=encoder_backend
    ).engine
    hits = engine.search(query, k)
    if as_json:
        typer.echo(json.dumps([hit.to_dict() for hit in hits], ensure_ascii=False, indent=2))
        return
    console = Console()
    where = f"({engine.name}, {len(engine):,} {plural(len(engine), 'doc')})"
    if not hits:
        console.print(Text(f"no hits for {safe_text(repr(query))} {where}"))
        return
    title = f"{len(hits)} {plural(len(hits), 'hit')} for {safe_text(repr(query))} {where}"
    table = Table(title=Text(title))
    table.add_column("#", justify="right")
    table.add_column("score", justify="right")
    table.add_column("id")
    table.add_column("title", style="bold")
    table.add_column("text")
    for hit in hits:
        table.add_row(
            str(hit.rank),
            f"{hit.score:.3f}",
            Text(safe_text(hit.id)),
            Text(one_line(hit.title)),
            Text(one_line(hit.text, width)),
        )
    console.print(table)


def plural(count: int, noun: str) -> str:
    """``noun`` or ``noun + "s"`` for ``count`` (English regular plurals only)."""
    return noun if count == 1 else noun + "s"
