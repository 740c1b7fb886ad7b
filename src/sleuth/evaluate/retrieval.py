"""Retrieval quality with ``ir-measures`` (trec_eval semantics), so numbers match IR papers.

trec_eval orders a run by score and breaks ties by document id, not as the engine served them
(fused hybrid scores tie often). ``run_queries`` therefore records strictly decreasing
pseudo-scores by served rank, so every measure scores the order the engine actually returned.
``All@k`` (every gold document in the top k: the multi-hop number) is computed here, as
ir-measures has no such measure.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from sleuth.search.base import SearchEngine

Run = dict[str, dict[str, float]]
Qrels = dict[str, dict[str, int]]
DEFAULT_MEASURES = ("nDCG@10", "R@10", "R@100", "RR@10", "All@10")
LABELS = {
    "nDCG@10": "nDCG@10",
    "R@10": "Recall@10",
    "R@100": "Recall@100",
    "RR@10": "MRR@10",
    "All@10": "All@10",
}


@dataclass
class RetrievalScores:
    aggregate: dict[str, float]
    per_query: dict[str, dict[str, float]] = field(default_factory=dict)
    queries: int = 0

    def labelled(self) -> dict[str, float]:
        return {LABELS.get(name, name): value for name, value in self.aggregate.items()}


def evaluate_run(
    run: Run, qrels: Qrels, measures: Sequence[str] = DEFAULT_MEASURES
) -> RetrievalScores:
    """Score a run against judgements; queries without judgements are ignored (trec_eval)."""
    import ir_measures

    all_at = {name: int(name.split("@")[1]) for name in measures if name.startswith("All@")}
    standard = [name for name in measures if name not in all_at]
    parsed = [ir_measures.parse_measure(name) for name in standard]
    judged = {qid: docs for qid, docs in qrels.items() if any(g > 0 for g in docs.values())}
    # A judged query the run has no answer for still counts, as zero (trec_eval -c semantics).
    full_run = {qid: run.get(qid, {}) for qid in judged}
    padded = {qid: docs or {"__no_result__": 0.0} for qid, docs in full_run.items()}
    per_query: dict[str, dict[str, float]] = {qid: {} for qid in judged}
    if parsed:
        for metric in ir_measures.iter_calc(parsed, judged, padded):
            per_query[metric.query_id][str(metric.measure)] = float(metric.value)
    names = dict(zip(standard, map(str, parsed), strict=True))
    per_query_named = {
        qid: {
            name: (
                all_found_at(full_run[qid], judged[qid], all_at[name])
                if name in all_at
                else values.get(names[name], 0.0)
            )
            for name in measures
        }
        for qid, values in per_query.items()
    }
    aggregate = {
        name: sum(q[name] for q in per_query_named.values()) / len(per_query_named)
        if per_query_named
        else 0.0
        for name in measures
    }
    return RetrievalScores(aggregate=aggregate, per_query=per_query_named, queries=len(per_query))


def all_found_at(ranking: dict[str, float], gold: dict[str, int], k: int) -> float:
    """1.0 when every relevant document is among the ``k`` best-scored, else 0.0."""
    relevant = {doc for doc, gain in gold.items() if gain > 0}
    top = sorted(ranking, key=lambda doc: -ranking[doc])[:k]
    return 1.0 if relevant and relevant <= set(top) else 0.0


def served_order_scores(doc_ids: Sequence[str]) -> dict[str, float]:
    """Strictly decreasing pseudo-scores in the given order (first = best), ties impossible."""
    scores: dict[str, float] = {}
    for doc_id in doc_ids:
        scores.setdefault(doc_id, float(len(doc_ids) - len(scores)))
    return scores


def run_queries(
    engine: SearchEngine,
    queries: dict[str, str],
    k: int = 100,
    batch_size: int = 64,
    progress: Callable[[int], None] | None = None,
) -> Run:
    """Search every query (in batches) and return a run ``{qid: {doc_id: score}}`` whose scores
    are pseudo-scores by served rank (see the module docstring)."""
    ids = list(queries)
    run: Run = {}
    for start in range(0, len(ids), batch_size):
        chunk = ids[start : start + batch_size]
        for qid, hits in zip(
            chunk, engine.search_batch([queries[q] for q in chunk], k), strict=True
        ):
            run[qid] = served_order_scores([hit.id for hit in hits])
        if progress:
            progress(len(chunk))
    return run
