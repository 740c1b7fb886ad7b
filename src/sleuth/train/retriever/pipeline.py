"""``train_retriever``: generate -> round-trip filter -> fine-tune -> index -> report.

Everything lands in one folder: ``encoder/`` (the fine-tuned sentence-transformers model),
``index/`` (a dense Sleuth index of the corpus built with it), ``bm25-index/`` (the lexical
index used for filtering and hard negatives), ``baseline-index/`` (packaged MiniLM, for the
"before" numbers, unless one was given), ``reranker/`` (optional cross-encoder),
``generated.jsonl`` (every generated query, its source passage, and whether it was kept) and
``report.json``.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from sleuth.errors import SleuthError
from sleuth.train.retriever.examples import Example, load_examples
from sleuth.train.retriever.finetune import TrainSettings, Triplet, steps_for
from sleuth.train.retriever.generate import GeneratedQuery, generate_queries
from sleuth.types import Document

MEASURES = ("nDCG@10", "R@10")
MIN_PASSAGE_WORDS = 5  # a title-only stub gives the generator nothing to ask about


@dataclass
class RetrieverTrainConfig:
    """Every setting of a run; written into ``report.json`` so a result can be reproduced."""

    corpus: str
    examples: str
    out: str
    format: str = "auto"
    passages: int = 200
    queries_per_passage: int = 1
    keep_top_k: int = 3
    seed: int = 0
    model: str | None = None  # LLM spec (default: the packaged SmolLM2)
    llm_url: str | None = None
    backend: str = "auto"
    temperature: float = 0.7
    max_new_tokens: int = 40
    filter_index: str | None = None  # the current retriever (default: BM25 of the corpus)
    baseline_index: str | None = None  # dense index with the packaged encoder, for "before"
    queries: str | None = None  # judged queries for the report (default: the corpus's own)
    qrels: str | None = None
    epochs: int = 1
    batch_size: int = 16
    learning_rate: float = 2e-5
    reranker: bool = False
    reranker_epochs: int = 1
    rerank_depth: int = 20
    dense_index: str = "flat"
    encoder_backend: str = "torch"
    evaluate: bool = True


@dataclass
class _Run:
    out: Path
    phases: dict[str, float] = field(default_factory=dict)
    log: Callable[[str], None] = print

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            self.phases[name] = round(time.perf_counter() - started, 2)


def check_out(out: Path) -> None:
    """Refuse an existing non-empty folder: a run never overwrites earlier results."""
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise SleuthError(f"{out} exists and is not empty; choose a new --out folder")


def sample_passages(
    docs: list[Document], count: int, seed: int, exclude: set[str]
) -> list[Document]:
    """``count`` passages drawn without replacement (seeded), skipping the examples' own."""
    pool = [d for d in docs if d.id not in exclude and len(d.text.split()) >= MIN_PASSAGE_WORDS]
    if count <= 0:
        raise SleuthError("--passages must be at least 1")
    return random.Random(seed).sample(pool, min(count, len(pool)))


def _normal(text: str) -> str:
    return " ".join(text.lower().split())


def load_evaluation(
    config: RetrieverTrainConfig, examples: list[Example]
) -> tuple[dict[str, str], dict[str, dict[str, int]], int]:
    """Judged queries for the report, minus any whose text is one of the examples' queries
    (the labelled pairs must not be scored on); returns queries, qrels, number excluded."""
    from sleuth.corpus import load_qrels, load_queries

    try:
        queries = load_queries(config.queries or config.corpus)
        qrels = load_qrels(config.qrels or config.queries or config.corpus)
    except SleuthError:
        if config.queries or config.qrels:
            raise
        return {}, {}, 0  # a corpus without judgements: train, but nothing to score
    seen = {_normal(e.query) for e in examples}
    judged = {q: t for q, t in queries.items() if q in qrels}
    kept = {q: t for q, t in judged.items() if _normal(t) not in seen}
    return kept, {q: qrels[q] for q in kept}, len(judged) - len(kept)


def score(engine: Any, queries: dict[str, str], qrels: dict[str, dict[str, int]], label: str):
    from sleuth.evaluate.retrieval import evaluate_run, run_queries
    from sleuth.progress import progress_bar

    with progress_bar(f"scoring {label}", total=len(queries)) as advance:
        run = run_queries(engine, queries, k=10, batch_size=32, progress=advance)
    return {
        name: round(value, 4)
        for name, value in evaluate_run(run, qrels, MEASURES).aggregate.items()
    }


def regressions(metrics: dict[str, Any], measure: str = "nDCG@10") -> list[str]:
    """What the run made worse on the judged queries, in words: a reranker trained from a few
    hundred generated pairs scored far below the BM25 order it reorders (docs/promptagator.md),
    and nothing else would tell the user before they pass it to ``--rerank``."""
    out = []
    pairs = [("dense_after", "dense_before", "the fine-tuned encoder")]
    pairs += [(key, "bm25", "the reranker") for key in metrics if key.startswith("bm25_rerank")]
    for trained, reference, what in pairs:
        after = metrics.get(trained, {}).get(measure)
        before = metrics.get(reference, {}).get(measure)
        if after is not None and before is not None and after < before:
            out.append(
                f"{what} scores {measure} {after:.4f}, below {reference} ({before:.4f}) on the "
                "judged queries: it makes ranking worse; do not use it as is"
            )
    return out


def _passage(doc: Document) -> str:
    return f"{doc.title}\n{doc.text}" if doc.title else doc.text


def build_triplets(
    kept: list[GeneratedQuery], examples: list[Example], docs: dict[str, Document], bm25: Any
) -> list[Triplet]:
    """Training pairs: every kept query and every example, each with a BM25 hard negative."""
    from sleuth.train.retriever.roundtrip import hard_negatives

    pairs = [(g.query, g.passage_id) for g in kept]
    texts = [_passage(docs[g.passage_id]) for g in kept]
    for example in examples:
        pairs.append((example.query, example.passage_id or ""))
        texts.append(f"{example.title}\n{example.text}" if example.title else example.text)
    negatives = hard_negatives(bm25, pairs)
    return [
        Triplet(query, text, _passage(docs[neg]) if neg else None)
        for (query, _), text, neg in zip(pairs, texts, negatives, strict=True)
    ]


def _versions(llm_name: str) -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    from sleuth import __version__

    found = {"sleuth": __version__, "llm": llm_name}
    for package in ("sentence-transformers", "transformers", "torch", "faiss-cpu"):
        with suppress(PackageNotFoundError):
            found[package] = version(package)
    return found


def _generate(config: RetrieverTrainConfig, examples, passages, llm) -> tuple[list, int, str]:
    from sleuth.progress import progress_bar

    owned = llm is None
    if owned:
        from sleuth.llm import load_llm

        llm = load_llm(config.model, url=config.llm_url, backend=config.backend)

    async def run(advance: Callable[[int], None]) -> tuple[list, int]:
        try:
            return await generate_queries(
                llm,
                examples,
                passages,
                queries_per_passage=config.queries_per_passage,
                temperature=config.temperature,
                max_tokens=config.max_new_tokens,
                seed=config.seed,
                progress=advance,
            )
        finally:
            if owned:
                await llm.aclose()

    total = len(passages) * config.queries_per_passage
    with progress_bar("generating queries", total=total) as advance:
        generated, empty = asyncio.run(run(advance))
    return generated, empty, getattr(llm, "name", "")


def _write_jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    with path.open("w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")


def train_retriever(
    config: RetrieverTrainConfig,
    *,
    llm: Any = None,
    eval_queries: dict[str, str] | None = None,
    eval_qrels: dict[str, dict[str, int]] | None = None,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Run Promptagator end to end and return the report (also written to OUT/report.json).

    ``llm``: an already loaded LLM (kept open); ``eval_queries``/``eval_qrels`` override the
    judged queries the report scores (the bench passes a held-out split)."""
    from sleuth.corpus import load_documents
    from sleuth.progress import progress_bar
    from sleuth.search import build_index, open_index
    from sleuth.search.rerank import RerankingEngine, load_cross_encoder, write_marker
    from sleuth.train.retriever.finetune import train_bi_encoder, train_cross_encoder
    from sleuth.train.retriever.roundtrip import round_trip_filter

    out = Path(config.out).expanduser()
    check_out(out)
    if not 1 <= config.keep_top_k <= 1000:
        raise SleuthError("--keep-top-k must be in 1..1000")
    if config.queries_per_passage < 1:
        raise SleuthError("--queries-per-passage must be at least 1")
    run = _Run(out, log=log)
    started = time.perf_counter()
    with run.phase("load"):
        docs = list(load_documents(config.corpus, format=config.format))
        by_id = {d.id: d for d in docs}
        examples = load_examples(config.examples, by_id)  # checked before any slow work
        if eval_queries is not None:
            queries, qrels, excluded = eval_queries, eval_qrels or {}, 0
        elif config.evaluate:
            queries, qrels, excluded = load_evaluation(config, examples)
        else:
            queries, qrels, excluded = {}, {}, 0
    out.mkdir(parents=True, exist_ok=True)
    with run.phase("bm25_index"):
        bm25_path = build_index(docs, out / "bm25-index", source=config.corpus)
        bm25 = open_index(bm25_path)
    passages = sample_passages(
        docs, config.passages, config.seed, {e.passage_id for e in examples if e.passage_id}
    )
    log(
        f"{len(docs):,} documents, {len(examples)} examples; "
        f"writing queries for {len(passages)} passages"
    )
    with run.phase("generate"):
        generated, empty, llm_name = _generate(config, examples, passages, llm)
    with run.phase("filter"):
        retriever = open_index(config.filter_index) if config.filter_index else bm25
        with progress_bar("round-trip filter", total=len(generated)) as advance:
            result = round_trip_filter(retriever, generated, config.keep_top_k, advance)
    _write_jsonl(
        out / "generated.jsonl",
        [
            {
                "passage_id": g.passage_id,
                "query": g.query,
                "source_rank": result.source_rank[(g.passage_id, g.query)],
                "kept": bool(result.source_rank[(g.passage_id, g.query)]),
            }
            for g in generated
        ],
    )
    log(f"generated {len(generated)} queries ({empty} empty), kept {len(result.kept)}")
    triplets = build_triplets(result.kept, examples, by_id, bm25)
    settings = TrainSettings(
        epochs=config.epochs,
        batch_size=config.batch_size,
        learning_rate=config.learning_rate,
        seed=config.seed,
    )
    from sleuth.search.encoder import resolve_encoder

    base = resolve_encoder(None)
    encoder_dir = out / "encoder"
    with run.phase("train_encoder"):
        total = steps_for(sum(t.negative is not None for t in triplets), settings)
        with progress_bar("fine-tuning the encoder", total=total) as advance:
            training = train_bi_encoder(base, triplets, encoder_dir, settings, advance)
    with (
        run.phase("index"),
        progress_bar("indexing (dense, fine-tuned)", total=len(docs)) as advance,
    ):
        index_path = build_index(
            docs,
            out / "index",
            engine="dense",
            dense_index=config.dense_index,
            encoder=str(encoder_dir.resolve()),
            encoder_backend=config.encoder_backend,
            source=config.corpus,
            progress=advance,
        )
    reranker_training = None
    if config.reranker:
        rerank_settings = replace(settings, epochs=config.reranker_epochs)
        with run.phase("train_reranker"):
            count = sum(1 + (t.negative is not None) for t in triplets)
            with progress_bar(
                "training the reranker", total=steps_for(count, rerank_settings)
            ) as advance:
                reranker_training = train_cross_encoder(
                    base, triplets, out / "reranker", rerank_settings, advance
                )
            write_marker(out / "reranker", {"base": base, "trained_on": reranker_training})
    metrics: dict[str, Any] = {}
    if queries and qrels:
        with run.phase("evaluate"):
            metrics["bm25"] = score(bm25, queries, qrels, "BM25")
            baseline_path = config.baseline_index
            if not baseline_path:
                with progress_bar("indexing (dense, packaged MiniLM)", total=len(docs)) as advance:
                    baseline_path = build_index(
                        docs,
                        out / "baseline-index",
                        engine="dense",
                        dense_index=config.dense_index,
                        encoder_backend=config.encoder_backend,
                        source=config.corpus,
                        progress=advance,
                    )
            backend = config.encoder_backend
            metrics["dense_before"] = score(
                open_index(baseline_path, encoder_backend=backend), queries, qrels, "dense before"
            )
            metrics["dense_after"] = score(
                open_index(index_path, encoder_backend=backend), queries, qrels, "dense after"
            )
            if config.reranker:
                reranked = RerankingEngine(
                    bm25, load_cross_encoder(out / "reranker"), config.rerank_depth
                )
                metrics[f"bm25_rerank@{config.rerank_depth}"] = score(
                    reranked, queries, qrels, "BM25 + reranker"
                )
    report = {
        "corpus": config.corpus,
        "documents": len(docs),
        "examples": len(examples),
        "passages": len(passages),
        "queries_generated": len(generated),
        "queries_empty": empty,
        "queries_kept": len(result.kept),
        "keep_rate": round(len(result.kept) / len(generated), 4) if generated else 0.0,
        "training_pairs": len(triplets),
        "encoder_training": training,
        "reranker_training": reranker_training,
        "eval_queries": len(queries),
        "eval_queries_excluded_as_examples": excluded,
        "metrics": metrics,
        "seconds": {**run.phases, "total": round(time.perf_counter() - started, 2)},
        "seed": config.seed,
        "versions": _versions(llm_name),
        "config": asdict(config),
        "outputs": {
            "encoder": str(encoder_dir),
            "index": str(index_path),
            "reranker": str(out / "reranker") if config.reranker else None,
        },
    }
    tmp = out / "report.json.tmp"
    tmp.write_text(json.dumps(report, indent=2), encoding="utf-8")
    tmp.replace(out / "report.json")
    return report
