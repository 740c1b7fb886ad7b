"""Aggregate result records into per-method numbers with 95% confidence intervals.

With several seeds the interval is a Student-t interval over the per-seed means (it measures
run-to-run variation); with one seed it is a bootstrap over questions (it measures how much the
number depends on which questions were asked).
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from typing import Any

from sleuth.evaluate.clarify import summarize_clarification
from sleuth.metrics import (
    SHORT_ANSWER_WORDS,
    Interval,
    answer_words,
    bootstrap_interval,
    factorised_rates,
    paired_bootstrap,
    short_cover_exact_match,
    t_interval,
)

ANSWER_METRICS = ("em", "f1", "cover_em", "cover_em_short", "judge", "no_answer", "answer_words")
EVIDENCE_METRICS = ("evidence_recall", "read_recall")
EFFICIENCY_METRICS = (
    "searches",
    "documents_read",
    "model_calls",
    "reader_calls",
    "critic_calls",
    "turns",
    "tokens",
    "seconds",
)
ALL_METRICS = ANSWER_METRICS + EVIDENCE_METRICS + EFFICIENCY_METRICS
LABELS = {
    "em": "EM",
    "f1": "F1",
    "cover_em": "cover-EM",
    "cover_em_short": f"cover-EM ≤{SHORT_ANSWER_WORDS} words",
    "no_answer": "no answer",
    "answer_words": "answer words",
    "judge": "judge",
    "evidence_recall": "evidence recall",
    "read_recall": "read recall",
    "searches": "searches",
    "documents_read": "documents read",
    "model_calls": "model calls",
    "reader_calls": "reader calls",
    "critic_calls": "critic calls",
    "turns": "turns",
    "tokens": "tokens",
    "seconds": "seconds",
    "search_sufficiency": "search sufficiency",
    "knowledge_utilisation": "knowledge use",
    "refusal": "refusal",
    "hallucination": "hallucination",
}


def with_answer_fields(record: dict[str, Any]) -> dict[str, Any]:
    """The record with the answer-length fields, derived from the prediction when a run was
    scored before they existed (so old runs get the new columns on ``eval report``)."""
    if "cover_em_short" in record:
        return record
    prediction = record.get("prediction")
    words = answer_words(prediction)
    return {
        **record,
        "cover_em_short": short_cover_exact_match(prediction, record.get("gold_answers", [])),
        "answer_words": words,
        "no_answer": words is None,
    }


def metric_value(record: dict[str, Any], metric: str) -> float | None:
    if metric in ("cover_em_short", "answer_words", "no_answer"):
        record = with_answer_fields(record)
    value = record.get(metric)
    if value is None:
        return None
    return float(value)  # bools (judge) become 0/1


def per_question(records: Sequence[dict[str, Any]], method: str, metric: str) -> dict[str, float]:
    """``{question_id: value}`` for one method, averaged over seeds; missing values dropped."""
    values: dict[str, list[float]] = defaultdict(list)
    for record in records:
        if record["method"] != method:
            continue
        value = metric_value(record, metric)
        if value is not None:
            values[str(record["question_id"])].append(value)
    return {qid: sum(v) / len(v) for qid, v in values.items()}


def paired_difference(a: dict[str, float], b: dict[str, float]) -> dict[str, Any] | None:
    """B - A over the questions both hold (``per_question`` maps): the two means, the mean
    paired difference with its 95% bootstrap interval, p, and whether the interval excludes 0.
    None when they share no question."""
    shared = sorted(set(a) & set(b))
    if not shared:
        return None
    result = paired_bootstrap([a[q] for q in shared], [b[q] for q in shared])
    return {
        "questions": result.pairs,
        "a": result.a,
        "b": result.b,
        "diff": result.diff.mean,
        "low": result.diff.low,
        "high": result.diff.high,
        "p_value": result.p_value,
        "significant": not (result.diff.low <= 0 <= result.diff.high),
    }


def interval(records: Sequence[dict[str, Any]], metric: str) -> tuple[Interval, str]:
    """The mean of ``metric`` and its 95% interval, choosing the method by the seed count."""
    by_seed: dict[int, list[float]] = defaultdict(list)
    for record in records:
        value = metric_value(record, metric)
        if value is not None:
            by_seed[int(record["seed"])].append(value)
    if len(by_seed) > 1:
        seed_means = [sum(v) / len(v) for v in by_seed.values() if v]
        return t_interval(seed_means), "t over seeds"
    values = [v for vs in by_seed.values() for v in vs]
    return bootstrap_interval(values), "bootstrap over questions"


def _interval_dict(value: Interval, how: str) -> dict[str, Any]:
    def clean(x: float) -> float | None:
        return None if math.isnan(x) else round(x, 6)

    return {
        "mean": clean(value.mean),
        "low": clean(value.low),
        "high": clean(value.high),
        "ci": how,
    }


def summarize_method(records: Sequence[dict[str, Any]]) -> dict[str, Any]:
    metrics = {}
    for name in ALL_METRICS:
        value, how = interval(records, name)
        metrics[name] = _interval_dict(value, how)
    factorised = factorised_rates(r["category"] for r in records if r.get("category"))
    return {
        "episodes": len(records),
        "questions": len({r["question_id"] for r in records}),
        "seeds": sorted({int(r["seed"]) for r in records}),
        "failures": sum(1 for r in records if r.get("error")),
        "metrics": metrics,
        "factorised": {
            "search_sufficiency": factorised.search_sufficiency,
            "knowledge_utilisation": factorised.knowledge_utilisation,
            "refusal": factorised.refusal,
            "hallucination": factorised.hallucination,
            "counts": factorised.counts,
        },
        "stop_reasons": dict(Counter(r.get("stop_reason") or "unknown" for r in records)),
        "clarification": summarize_clarification(records),
    }


def summarize(
    records: Iterable[dict[str, Any]], methods: Sequence[str] | None = None
) -> dict[str, dict[str, Any]]:
    """``{method: summary}`` in the given method order (then any others, sorted)."""
    grouped: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for record in records:
        grouped[record["method"]].append(record)
    order = [m for m in (methods or []) if m in grouped]
    order += sorted(m for m in grouped if m not in order)
    return {method: summarize_method(grouped[method]) for method in order}


def best_rag(summary: dict[str, dict[str, Any]], top_k: int | None = None) -> dict[str, Any] | None:
    """The RAG depth with the highest mean F1 among a run's ``rag`` and ``rag@K`` rows (``rag``
    reads the budget's ``top_k``): ``{"method", "k", "f1", "of"}``, None with fewer than two."""
    from sleuth.evaluate.methods import rag_depth

    rows = {
        method: (rag_depth(method) or top_k, data["metrics"]["f1"]["mean"])
        for method, data in summary.items()
        if (method == "rag" or rag_depth(method) is not None)
        and data["metrics"]["f1"]["mean"] is not None
    }
    if len(rows) < 2:
        return None
    method = max(rows, key=lambda name: rows[name][1])  # the first listed wins a tie
    return {"method": method, "k": rows[method][0], "f1": rows[method][1], "of": list(rows)}


def best_rag_line(best: dict[str, Any] | None) -> str:
    """``best RAG depth by F1: rag@5 (k=5, F1 0.412) of rag@3, rag@5, rag@8``; "" for none."""
    if best is None:
        return ""
    return (
        f"best RAG depth by F1: {best['method']} (k={best['k']}, F1 {best['f1']:.3f}) "
        f"of {', '.join(best['of'])}"
    )


def running_mean(records: Iterable[dict[str, Any]], metric: str = "em") -> float | None:
    values = [v for r in records if (v := metric_value(r, metric)) is not None]
    return sum(values) / len(values) if values else None
