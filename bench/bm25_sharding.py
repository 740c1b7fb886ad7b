"""What sharding a BM25 index would do to its rankings (why ``--shards`` refuses BM25).

The bundled HotpotQA corpus (10,785 paragraphs) is indexed whole and split into S = 2 and 4
shards by a stable hash of the document id (as a sharded cluster places documents). Each shard
is a tantivy index with its own statistics (document frequencies, average length); a query's
per-shard top-10 are merged by score, as a fan-out router would. Against the single index,
over the 1,100 real HotpotQA questions: top-10 overlap, top-1 agreement, Kendall's tau of the
shared documents' ranks, how far a shared document's score moves, and recall@10 of the gold
supporting paragraphs (does quality change, not only order). Run:
``python -m bench.bm25_sharding`` (or ``python -m bench.run_all bm25_sharding``).
"""

from __future__ import annotations

import json
import os
import statistics
import tempfile
import time
import zlib
from pathlib import Path
from typing import Any

from bench.common import REPO

OUT = REPO / "bench" / "results" / "bm25_sharding.json"
K = 10
SHARD_COUNTS = (2, 4)


def _shard_of(doc_id: str, count: int) -> int:
    return zlib.crc32(doc_id.encode("utf-8")) % count


def _merge(per_shard: list[list[Any]], k: int) -> list[Any]:
    hits = [hit for hits in per_shard for hit in hits]
    return sorted(hits, key=lambda h: (-h.score, h.id))[:k]


def _gold_found(hits: list[Any], gold: tuple[tuple[str, ...], ...]) -> float:
    found = sum(any(h.id in aliases or h.title in aliases for h in hits) for aliases in gold)
    return found / len(gold)


def _compare(single: list[list[Any]], merged: list[list[Any]], gold: list[Any]) -> dict:
    from scipy.stats import kendalltau

    overlaps, top1, taus, score_moves = [], [], [], []
    recall_single, recall_merged = [], []
    for ours, theirs, evidence in zip(single, merged, gold, strict=True):
        ours_ids, theirs_ids = [h.id for h in ours], [h.id for h in theirs]
        shared = [doc for doc in ours_ids if doc in theirs_ids]
        overlaps.append(len(shared) / K)
        top1.append(float(bool(ours_ids) and bool(theirs_ids) and ours_ids[0] == theirs_ids[0]))
        if len(shared) >= 3:
            tau = kendalltau(
                [ours_ids.index(d) for d in shared], [theirs_ids.index(d) for d in shared]
            ).statistic
            if tau == tau:  # nan when every rank is tied
                taus.append(tau)
        ours_scores = {h.id: h.score for h in ours}
        score_moves += [
            abs(h.score - ours_scores[h.id]) / ours_scores[h.id]
            for h in theirs
            if h.id in ours_scores and ours_scores[h.id] > 0
        ]
        if evidence:
            recall_single.append(_gold_found(ours, evidence))
            recall_merged.append(_gold_found(theirs, evidence))
    return {
        "top10_overlap_mean": round(statistics.fmean(overlaps), 4),
        "top10_identical_sets": round(sum(o == 1.0 for o in overlaps) / len(overlaps), 4),
        "top1_agreement": round(statistics.fmean(top1), 4),
        "kendall_tau_shared_mean": round(statistics.fmean(taus), 4) if taus else None,
        "score_relative_change_median": round(statistics.median(score_moves), 4),
        "score_relative_change_p90": round(sorted(score_moves)[int(0.9 * len(score_moves))], 4),
        "recall_at_10_single": round(statistics.fmean(recall_single), 4),
        "recall_at_10_sharded": round(statistics.fmean(recall_merged), 4),
    }


def run(quick: bool = False) -> dict[str, Any]:
    from sleuth.corpus import load_documents
    from sleuth.evaluate.benchmarks import load_benchmark
    from sleuth.search import build_index, open_index

    documents = list(load_documents("hotpotqa-1100"))
    benchmark = load_benchmark("hotpotqa-1100")
    questions = benchmark.questions[:200] if quick else benchmark.questions
    queries = [q.question for q in questions]
    gold = [q.gold_evidence for q in questions]
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="bm25-shards-") as tmp:
        started = time.perf_counter()
        single_index = open_index(build_index(documents, Path(tmp) / "single"))
        single = single_index.search_batch(queries, K)
        for count in SHARD_COUNTS:
            shards = []
            for number in range(count):
                part = [d for d in documents if _shard_of(d.id, count) == number]
                shards.append(open_index(build_index(part, Path(tmp) / f"s{count}-{number}")))
            per_shard = [shard.search_batch(queries, K) for shard in shards]
            merged = [_merge([hits[i] for hits in per_shard], K) for i in range(len(queries))]
            results[f"shards_{count}"] = {
                "documents_per_shard": [len(s) for s in shards],
                **_compare(single, merged, gold),
            }
        seconds = round(time.perf_counter() - started, 1)
    summary = [
        {
            "metric": f"S={count} top-10 overlap",
            "value": results[f"shards_{count}"]["top10_overlap_mean"],
        }
        for count in SHARD_COUNTS
    ]
    return {
        "what": "BM25 (tantivy, English analyzer) over the bundled HotpotQA corpus, whole vs "
        "split by crc32(id) % S, per-shard top-10 merged by score; the 1,100 HotpotQA questions",
        "documents": len(documents),
        "questions": len(queries),
        "k": K,
        "single_index_recall_at_10": results[f"shards_{SHARD_COUNTS[0]}"]["recall_at_10_single"],
        "results": results,
        "seconds": seconds,
        "cpus": len(os.sched_getaffinity(0)),
        "summary": summary,
    }


def main() -> None:
    report = run()
    OUT.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
