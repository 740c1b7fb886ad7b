"""Sleuth's BM25 against bm25s with its own English defaults, per collection and per query, and
where the difference comes from (issue 33 item 20, "retrieval quality debt").

For every judged collection available offline (bundled Cranfield and HotpotQA-1100; slices fixed
in advance, not chosen by result: Cranfield's and HotpotQA's long queries, >= 20 words, and
HotpotQA's bridge / comparison questions) it scores nDCG@10 of

- ``sleuth_format2``: Sleuth's BM25 as indexes of format 2 were built (tantivy's simple
  splitter: "aircraft's" -> aircraft, s; "2.5" -> 2, 5), a real format-2 index opened by Sleuth;
- ``sleuth``: Sleuth's current default (format 3, the ``words`` splitter, docs/search.md);
- ``bm25s``: bm25s as its README sets it up for English (``bench.quality.bm25s_own_run``),

with paired per-query differences (95% paired bootstrap interval, 5,000 resamples, seed 0).

The attribution part feeds one engine (bm25s, Lucene variant, b = 0.75) different tokens and
k1, so each difference is measured alone: the splitter (simple / words / words without one of
its rules / bm25s's own tokens) at k1 = 1.2 (tantivy's fixed constant) and k1 = 1.5 (bm25s's).

Usage: ``python -m bench.bm25_analysis [--out bench/results/bm25_analysis.json]``
(or ``python -m bench.run_all bm25_analysis``). About 3 minutes on 2 shared cores.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.quality import _run_from_rows, bm25s_own_run
from sleuth.corpus import load_documents, load_qrels, load_queries
from sleuth.evaluate.retrieval import evaluate_run, run_queries
from sleuth.evaluate.summary import paired_difference
from sleuth.jsonio import write_json_atomic
from sleuth.search import build_index, open_index
from sleuth.search.lexical import (
    LUCENE_ENGLISH_STOPWORDS,
    MAX_TOKEN_CHARS,
    POSSESSIVE,
    LexicalIndexWriter,
    document_body,
    tokenize,
)
from sleuth.types import Document

COLLECTIONS = ("cranfield", "hotpotqa-1100")
LONG_QUERY_WORDS = 20  # a "long query" has at least this many whitespace-separated words
RESULTS = Path(__file__).resolve().parent / "results" / "bm25_analysis.json"
BEIR_QUERIES = (
    Path(__file__).resolve().parents[1]
    / "src"
    / "sleuth"
    / "data"
    / "hotpotqa_dev_1100_beir"
    / "queries.jsonl"
)
# The words splitter with one rule taken out, to see what each rule is worth on its own.
ABLATIONS = {
    "words_without_numbers": r"['’][sS]\b|\w+(?:['’](?:[^\WsS]|[sS]\w)\w*)*",
    "words_without_apostrophes": r"\d+(?:[.,]\d+)+|[^\W_]+(?:_[^\W_]*)*",
    "words_without_underscore": (
        r"\d+(?:[.,]\d+)+|['’][sS]\b|[^\W_]+(?:['’](?:[^\WsS_]|[sS][^\W_])[^\W_]*)*"
    ),
}
Run = dict[str, dict[str, float]]


def format2_index(docs: list[Document], folder: Path) -> Path:
    """A real format-2 index (simple splitter, no ``splitter`` in the manifest), as Sleuth
    up to format 2 wrote it; Sleuth opens it with the analysis it was built with."""
    build_index(docs, folder)
    shutil.rmtree(folder / "bm25")
    writer = LexicalIndexWriter(folder / "bm25", "english", splitter="simple")
    for row, doc in enumerate(docs):
        writer.add(row, doc)
    writer.close()
    manifest_path = folder / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["format_version"] = 2
    manifest["params"].pop("splitter")
    manifest_path.write_text(json.dumps(manifest))
    return folder


def regex_tokens(pattern: str) -> Callable[[str], list[str]]:
    """The English analyzer with another regex splitter (for the ablations)."""
    import tantivy

    analyzer = (
        tantivy.TextAnalyzerBuilder(tantivy.Tokenizer.regex(pattern))
        .filter(tantivy.Filter.remove_long(MAX_TOKEN_CHARS))
        .filter(tantivy.Filter.lowercase())
        .filter(tantivy.Filter.custom_stopword([*POSSESSIVE, *LUCENE_ENGLISH_STOPWORDS]))
        .filter(tantivy.Filter.stemmer("english"))
        .build()
    )
    return analyzer.analyze


def bm25s_tokens(text: str) -> list[str]:
    import bm25s
    import Stemmer

    return list(
        bm25s.tokenize(
            [text],
            stopwords="en",
            stemmer=Stemmer.Stemmer("english"),
            return_ids=False,
            show_progress=False,
        )[0]
    )


def splitters() -> dict[str, Callable[[str], list[str]]]:
    return {
        "simple (format 2)": lambda text: tokenize(text, splitter="simple"),
        "words (format 3)": tokenize,
        **{name: regex_tokens(pattern) for name, pattern in ABLATIONS.items()},
        "bm25s own tokens": bm25s_tokens,
    }


def lucene_run(docs: list, doc_tokens: list, queries: dict, q_tokens: list, k1: float) -> Run:
    import bm25s

    retriever = bm25s.BM25(method="lucene", k1=k1, b=0.75)
    retriever.index(doc_tokens, show_progress=False)
    rows, scores = retriever.retrieve(q_tokens, k=min(100, len(docs)), show_progress=False)
    return _run_from_rows(docs, list(queries), rows, scores)


def slices(name: str, queries: dict[str, str]) -> dict[str, set[str]]:
    """The query subsets reported besides the whole collection (fixed before any result)."""
    out = {"all": set(queries)}
    out[f"long (>= {LONG_QUERY_WORDS} words)"] = {
        q for q, text in queries.items() if len(text.split()) >= LONG_QUERY_WORDS
    }
    if name == "hotpotqa-1100":
        types = {}
        for line in BEIR_QUERIES.read_text(encoding="utf-8").splitlines():
            row = json.loads(line)
            types[row["_id"]] = row["metadata"]["type"]
        for kind in ("bridge", "comparison"):
            out[kind] = {q for q in queries if types.get(q) == kind}
    return out


def _mean(per_query: dict[str, float], ids: set[str]) -> float:
    return round(sum(per_query[q] for q in ids) / len(ids), 4)


def _paired(a: dict[str, float], b: dict[str, float], ids: set[str]) -> dict[str, Any]:
    """B - A over ``ids`` with its 95% paired bootstrap interval."""
    result = paired_difference({q: a[q] for q in ids}, {q: b[q] for q in ids})
    assert result is not None
    return {
        "diff": round(result["diff"], 4),
        "ci95": [round(result["low"], 4), round(result["high"], 4)],
        "p_value": round(result["p_value"], 4),
        "significant": result["significant"],
    }


def evaluate_collection(name: str, tmp: Path) -> dict[str, Any]:
    docs = list(load_documents(name))
    qrels = load_qrels(name)
    queries = {q: t for q, t in load_queries(name).items() if q in qrels}
    per_query: dict[str, dict[str, float]] = {}
    started = time.perf_counter()
    engines = {
        "sleuth_format2": open_index(format2_index(docs, tmp / f"{name}-format2")),
        "sleuth": open_index(build_index(docs, tmp / f"{name}-format3")),
    }
    for label, engine in engines.items():
        run = run_queries(engine, queries)
        per_query[label] = {
            q: v["nDCG@10"] for q, v in evaluate_run(run, qrels, ("nDCG@10",)).per_query.items()
        }
    bm25s_run = bm25s_own_run(docs, queries)
    per_query["bm25s"] = {
        q: v["nDCG@10"] for q, v in evaluate_run(bm25s_run, qrels, ("nDCG@10",)).per_query.items()
    }
    out: dict[str, Any] = {
        "documents": len(docs),
        "queries": len(queries),
        "manifest_params": engines["sleuth"].manifest["params"],
        "slices": {},
    }
    for slice_name, ids in slices(name, queries).items():
        ids = ids & set(per_query["sleuth"])
        out["slices"][slice_name] = {
            "queries": len(ids),
            "ndcg@10": {label: _mean(values, ids) for label, values in per_query.items()},
            "sleuth_minus_format2": _paired(per_query["sleuth_format2"], per_query["sleuth"], ids),
            "sleuth_minus_bm25s": _paired(per_query["bm25s"], per_query["sleuth"], ids),
            "format2_minus_bm25s": _paired(per_query["bm25s"], per_query["sleuth_format2"], ids),
        }
    out["engine_seconds"] = round(time.perf_counter() - started, 1)

    # Attribution: one engine (bm25s, Lucene IDF, b = 0.75), tokens and k1 varied one at a time.
    ids = list(queries)
    attribution: dict[str, dict[str, float]] = {}
    for split_name, split in splitters().items():
        doc_tokens = [split(document_body(d)) for d in docs]
        q_tokens = [split(queries[q]) or ["__empty__"] for q in ids]
        for k1 in (1.2, 1.5):
            run = lucene_run(docs, doc_tokens, queries, q_tokens, k1)
            scores = evaluate_run(run, qrels, ("nDCG@10",)).aggregate["nDCG@10"]
            attribution.setdefault(split_name, {})[f"k1={k1}"] = round(scores, 4)
    out["attribution_bm25s_engine"] = attribution
    return out


def run(quick: bool = False) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        results = {name: evaluate_collection(name, Path(tmp)) for name in COLLECTIONS}
    summary = []
    for name, res in results.items():
        whole = res["slices"]["all"]
        for label, value in whole["ndcg@10"].items():
            summary.append({"metric": f"{name} {label} nDCG@10", "value": value})
        summary.append(
            {
                "metric": f"{name} sleuth - format 2 (paired, 95% CI; target: not worse)",
                "value": whole["sleuth_minus_format2"],
                "pass": whole["sleuth_minus_format2"]["ci95"][1] >= 0,
            }
        )
        summary.append(
            {
                "metric": f"{name} sleuth - bm25s (paired, 95% CI)",
                "value": whole["sleuth_minus_bm25s"],
            }
        )
    return {
        "collections": results,
        "not_available": (
            "no third judged collection is available offline (MED, CISI, CACM, NFCorpus: see "
            "docs/search.md); the multi-hop question sets in shared data carry no judgements "
            "over a corpus, so the long-query slices stand in for a long-query collection"
        ),
        "summary": summary,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    started = time.perf_counter()
    result = run()
    result["_meta"] = {
        "seconds": round(time.perf_counter() - started, 1),
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    write_json_atomic(args.out, result)
    for name, res in result["collections"].items():
        for slice_name, row in res["slices"].items():
            print(name, slice_name, row["queries"], row["ndcg@10"], row["sleuth_minus_format2"])
        print(name, "attribution", res["attribution_bm25s_engine"])
    print("wrote", args.out)


if __name__ == "__main__":
    main()
