"""Retrieval quality: nDCG@10 of Sleuth's BM25 (and dense / hybrid) on the bundled judged
collections, next to reference BM25s run with THEIR OWN defaults in the same run:

- bm25s: ``bm25s.tokenize(stopwords="en", stemmer=PyStemmer english)``, ``BM25()`` (Lucene
  variant, k1=1.5, b=0.75), repeated query terms counted (its default);
- rank_bm25: ``BM25Okapi`` (k1=1.5, b=0.75, epsilon=0.25) over the same bm25s English tokens
  (rank_bm25 has no analyzer of its own).

Also measured: Sleuth's format-1 behaviour (lowercase only, repeated query terms collapsed), bm25s
fed Sleuth's exact tokens (does the engine agree when the analysis is equal?), and a k1/b sweep
(bm25s on Sleuth's tokens, the engine's own constants being fixed) that justifies the defaults.

Target: Sleuth's default BM25 within 0.01 nDCG@10 of bm25s on every collection.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

from sleuth.corpus import load_documents, load_qrels, load_queries
from sleuth.evaluate.retrieval import evaluate_run, run_queries, served_order_scores
from sleuth.search import build_index, open_index
from sleuth.search.lexical import document_body, query_terms, tokenize

Run = dict[str, dict[str, float]]
COLLECTIONS = ("cranfield", "hotpotqa-1100")
SWEEP_K1 = (0.6, 0.9, 1.2, 1.5, 2.0)
SWEEP_B = (0.3, 0.5, 0.75, 0.9)


def _run_from_rows(docs: list, ids: list[str], rows: Any, scores: Any) -> Run:
    """Each reference scored in its own served order, as Sleuth's runs are (ties as served)."""
    return {
        qid: served_order_scores([docs[r].id for r, s in zip(rr, ss, strict=True) if s > 0])
        for qid, rr, ss in zip(ids, rows, scores, strict=True)
    }


def bm25s_own_run(docs: list, queries: dict[str, str], k: int = 100) -> Run:
    """bm25s exactly as its README sets it up for English: its stopwords and PyStemmer."""
    import bm25s
    import Stemmer

    stemmer = Stemmer.Stemmer("english")
    retriever = bm25s.BM25()
    corpus = bm25s.tokenize(
        [document_body(d) for d in docs], stopwords="en", stemmer=stemmer, show_progress=False
    )
    retriever.index(corpus, show_progress=False)
    ids = list(queries)
    tokens = bm25s.tokenize(
        [queries[q] for q in ids], stopwords="en", stemmer=stemmer, show_progress=False
    )
    rows, scores = retriever.retrieve(tokens, k=min(k, len(docs)), show_progress=False)
    return _run_from_rows(docs, ids, rows, scores)


def rank_bm25_run(docs: list, queries: dict[str, str], k: int = 100) -> Run:
    """rank_bm25's BM25Okapi with its defaults, over bm25s's English tokens (same as above)."""
    import bm25s
    import numpy as np
    import Stemmer
    from rank_bm25 import BM25Okapi

    stemmer = Stemmer.Stemmer("english")

    def analyse(texts: list[str]) -> list[list[str]]:
        out = bm25s.tokenize(
            texts, stopwords="en", stemmer=stemmer, return_ids=False, show_progress=False
        )
        return [list(tokens) for tokens in out]

    model = BM25Okapi(analyse([document_body(d) for d in docs]))
    ids = list(queries)
    run: Run = {}
    for qid, tokens in zip(ids, analyse([queries[q] for q in ids]), strict=True):
        scores = model.get_scores(tokens)
        top = np.argsort(-scores, kind="stable")[:k]
        run[qid] = served_order_scores([docs[i].id for i in top if scores[i] > 0])
    return run


def bm25s_on_sleuth_tokens(
    docs: list, queries: dict[str, str], k1: float = 1.2, b: float = 0.75, k: int = 100
) -> Run:
    """bm25s (Lucene variant) fed Sleuth's analyzer output, query terms counted as Sleuth does."""
    import bm25s

    retriever = bm25s.BM25(method="lucene", k1=k1, b=b)
    retriever.index([tokenize(document_body(d)) for d in docs], show_progress=False)
    ids = list(queries)
    tokens = [tokenize(queries[q]) or ["__empty__"] for q in ids]
    rows, scores = retriever.retrieve(tokens, k=min(k, len(docs)), show_progress=False)
    return _run_from_rows(docs, ids, rows, scores)


def sweep_k1_b(collections: dict[str, tuple[list, dict, dict]]) -> list[dict[str, Any]]:
    """Mean nDCG@10 over the collections for each (k1, b), best first."""
    import bm25s

    rows = []
    prepared = {
        name: (
            docs,
            [tokenize(document_body(d)) for d in docs],
            list(queries),
            [tokenize(queries[q]) or ["__empty__"] for q in queries],
            qrels,
        )
        for name, (docs, queries, qrels) in collections.items()
    }
    for k1 in SWEEP_K1:
        for b in SWEEP_B:
            per = {}
            for name, (docs, doc_tokens, ids, q_tokens, qrels) in prepared.items():
                retriever = bm25s.BM25(method="lucene", k1=k1, b=b)
                retriever.index(doc_tokens, show_progress=False)
                found, scores = retriever.retrieve(q_tokens, k=100, show_progress=False)
                run = _run_from_rows(docs, ids, found, scores)
                per[name] = round(evaluate_run(run, qrels).aggregate["nDCG@10"], 4)
            rows.append({"k1": k1, "b": b, **per, "mean": round(sum(per.values()) / len(per), 4)})
    return sorted(rows, key=lambda row: -row["mean"])


def _ndcg(run: Run, qrels: dict) -> float:
    return round(evaluate_run(run, qrels).aggregate["nDCG@10"], 4)


def evaluate_collection(name: str, with_dense: bool, tmp: Path) -> dict[str, Any]:
    docs = list(load_documents(name))
    queries, qrels = load_queries(name), load_qrels(name)
    queries = {q: t for q, t in queries.items() if q in qrels}
    avg_query_tokens = sum(len(tokenize(t, "plain")) for t in queries.values()) / len(queries)
    out: dict[str, Any] = {
        "documents": len(docs),
        "queries": len(queries),
        "mean_query_tokens": round(avg_query_tokens, 1),
    }
    started = time.perf_counter()
    bm25 = open_index(build_index(docs, tmp / f"{name}-bm25"))
    out["bm25_build_seconds"] = round(time.perf_counter() - started, 2)
    scores = evaluate_run(run_queries(bm25, queries), qrels)
    out["sleuth_bm25_ndcg@10"] = round(scores.aggregate["nDCG@10"], 4)
    out["sleuth_bm25_recall@100"] = round(scores.aggregate["R@100"], 4)
    out["sleuth_bm25_params"] = bm25.manifest["params"]

    # Format-1 behaviour, for the before/after: lowercase only, repeated query terms collapsed.
    legacy = open_index(build_index(docs, tmp / f"{name}-plain", tokenizer="plain"))
    legacy.query_tf = False
    out["sleuth_format1_ndcg@10"] = _ndcg(run_queries(legacy, queries), qrels)

    started = time.perf_counter()
    out["bm25s_ndcg@10"] = _ndcg(bm25s_own_run(docs, queries), qrels)
    out["bm25s_seconds"] = round(time.perf_counter() - started, 2)
    started = time.perf_counter()
    out["rank_bm25_ndcg@10"] = _ndcg(rank_bm25_run(docs, queries), qrels)
    out["rank_bm25_seconds"] = round(time.perf_counter() - started, 2)
    out["bm25s_on_sleuth_tokens_ndcg@10"] = _ndcg(bm25s_on_sleuth_tokens(docs, queries), qrels)
    out["sleuth_minus_bm25s"] = round(out["sleuth_bm25_ndcg@10"] - out["bm25s_ndcg@10"], 4)
    out["sleuth_minus_rank_bm25"] = round(out["sleuth_bm25_ndcg@10"] - out["rank_bm25_ndcg@10"], 4)
    repeated = sum(
        any(count > 1 for _, count in query_terms(tokenize(t))) for t in queries.values()
    )
    out["queries_with_repeated_terms"] = repeated

    if with_dense:
        started = time.perf_counter()
        dense_path = build_index(docs, tmp / f"{name}-dense", engine="dense")
        out["dense_build_seconds"] = round(time.perf_counter() - started, 1)
        started = time.perf_counter()
        hybrid = open_index(
            build_index(docs, tmp / f"{name}-hybrid", engine="hybrid", reuse_dense=dense_path)
        )
        out["hybrid_build_seconds_reusing_dense"] = round(time.perf_counter() - started, 1)
        out["hybrid_reused_dense"] = bool(hybrid.manifest["params"].get("dense_reused_from"))
        for label, engine in (("dense", hybrid.dense), ("hybrid", hybrid)):
            scores = evaluate_run(run_queries(engine, queries), qrels)
            out[f"{label}_ndcg@10"] = round(scores.aggregate["nDCG@10"], 4)
            out[f"{label}_recall@100"] = round(scores.aggregate["R@100"], 4)
    out["_data"] = (docs, queries, qrels)
    return out


def run(quick: bool = False) -> dict[str, Any]:
    # The MiniLM encoder runs at ~15-40 passages/s on 2 CPU cores: dense on HotpotQA's
    # 10,785 paragraphs takes minutes, so quick mode keeps dense to Cranfield only.
    with tempfile.TemporaryDirectory() as tmp:
        results = {
            name: evaluate_collection(
                name, with_dense=(name == "cranfield" or not quick), tmp=Path(tmp)
            )
            for name in COLLECTIONS
        }
    data = {name: res.pop("_data") for name, res in results.items()}
    sweep = sweep_k1_b(data)
    chosen = next(row for row in sweep if (row["k1"], row["b"]) == (1.2, 0.75))
    summary = []
    for name, res in results.items():
        for label in ("sleuth_bm25", "bm25s", "rank_bm25", "dense", "hybrid"):
            if f"{label}_ndcg@10" in res:
                summary.append(
                    {"metric": f"{name} {label} nDCG@10", "value": res[f"{label}_ndcg@10"]}
                )
        gap = res["sleuth_minus_bm25s"]
        summary.append(
            {
                "metric": f"{name} sleuth bm25 - bm25s own defaults (target |gap| <= 0.01)",
                "value": gap,
                "pass": abs(gap) <= 0.01,
            }
        )
    summary.append(
        {
            "metric": "k1=1.2 b=0.75 mean nDCG@10 minus best swept pair",
            "value": round(chosen["mean"] - sweep[0]["mean"], 4),
        }
    )
    return {
        "collections": results,
        "k1_b_sweep": sweep,
        "chosen": {"k1": 1.2, "b": 0.75, "best_swept": sweep[0]},
        "not_available": (
            "MED (SMART, 1,033 abstracts, 30 queries): no freely licensed copy reachable from "
            "PyPI, so no third long-query collection is bundled"
        ),
        "summary": summary,
    }
