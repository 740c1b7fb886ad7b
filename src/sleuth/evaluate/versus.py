"""Each method of a run against the run's own single-shot RAG, question by question; with
several RAG depths (``rag``, ``rag@K``) against the best of them by mean F1 on these questions,
the baseline a user would pick (chosen after the fact, which can only favour the baseline).

"Does the agent beat RAG?" is a paired question: both methods answered the same questions, so
the per-question differences carry the signal and which questions are hard cancels out. The
summary table's intervals are for each mean alone and overlap even when a paired difference is
clear, so this module gives the paired difference with its bootstrap interval, and then where
an F1 difference comes from: grouped by how much of the gold evidence each method found, the
questions where the agent completed evidence RAG had only in part are the ones an agent can win,
and those where RAG already had it all are the ones extra reading can lose.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sleuth.evaluate.methods import NEEDS_SEARCH
from sleuth.evaluate.summary import paired_difference, per_question

BASELINE = "rag"
VERSUS_METRICS = ("f1", "em", "evidence_recall", "read_recall")
# How much of a question's gold evidence a method read (or, in older records, found).
EVIDENCE_LEVELS = ("none", "part", "all")


def evidence_level(recall: float) -> str:
    """``none`` (0), ``part`` (some gold paragraphs) or ``all`` of the gold evidence."""
    if recall <= 0:
        return "none"
    return "all" if recall >= 1 else "part"


def _compared_methods(records: Sequence[dict[str, Any]], baseline: str) -> list[str]:
    methods = list(dict.fromkeys(str(r["method"]) for r in records))
    return [m for m in methods if m != baseline]


def versus_rows(
    records: Sequence[dict[str, Any]],
    baseline: str = BASELINE,
    metrics: Sequence[str] = VERSUS_METRICS,
) -> list[dict[str, Any]]:
    """One row per (method, metric), the shape ``sleuth eval compare`` prints: ``a`` the
    baseline's mean, ``b`` the method's, their paired difference with its 95% bootstrap interval
    and p, over the questions both answered (seeds averaged). Evidence and read recall only for
    methods that search (closed book finds nothing by construction); read recall only where the
    records have it (runs scored before it existed have none)."""
    rows = []
    for method in _compared_methods(records, baseline):
        for metric in metrics:
            if metric in ("evidence_recall", "read_recall") and method not in NEEDS_SEARCH:
                continue
            paired = paired_difference(
                per_question(records, baseline, metric), per_question(records, method, metric)
            )
            if paired is not None:
                rows.append({"method": method, "metric": metric, **paired})
    return rows


def evidence_shifts(
    records: Sequence[dict[str, Any]], method: str, baseline: str = BASELINE
) -> list[dict[str, Any]]:
    """The F1 difference split by (baseline's evidence level, method's evidence level): of the
    evidence each *read* (``read_recall``: the documents in front of the scored answer call,
    which is what the answer follows), or each found where records predate read recall.

    ``share`` is each group's part of the overall mean difference (its summed per-question
    differences over all shared questions), so the shares add up to the overall difference.
    Empty when either method has no evidence recall (a benchmark without gold evidence)."""
    base_f1, other_f1 = per_question(records, baseline, "f1"), per_question(records, method, "f1")
    both = [q for q in base_f1 if q in other_f1]
    evidence, metric = "read", "read_recall"
    if any(r.get("read_recall") is None for r in records if r.get("evidence_recall") is not None):
        evidence, metric = "found", "evidence_recall"  # a run scored before read recall
    base_recall = per_question(records, baseline, metric)
    other_recall = per_question(records, method, metric)
    shared = [q for q in both if q in base_recall and q in other_recall]
    if not shared:
        return []
    groups: dict[tuple[str, str], list[str]] = {}
    for qid in shared:
        key = (evidence_level(base_recall[qid]), evidence_level(other_recall[qid]))
        groups.setdefault(key, []).append(qid)
    rows = []
    for before in EVIDENCE_LEVELS:
        for after in EVIDENCE_LEVELS:
            ids = groups.get((before, after))
            if not ids:
                continue
            diffs = [other_f1[q] - base_f1[q] for q in ids]
            rows.append(
                {
                    "evidence": evidence,
                    "baseline_evidence": before,
                    "method_evidence": after,
                    "questions": len(ids),
                    "baseline_f1": sum(base_f1[q] for q in ids) / len(ids),
                    "method_f1": sum(other_f1[q] for q in ids) / len(ids),
                    "diff": sum(diffs) / len(ids),
                    "share": sum(diffs) / len(shared),
                }
            )
    return rows


def versus_baseline(
    records: Sequence[dict[str, Any]], best: dict[str, Any] | None = None
) -> dict[str, Any] | None:
    """The paired rows and, for each searching method, its evidence shifts, against the run's
    best RAG depth (``best``: ``sleuth.evaluate.summary.best_rag`` of the run's summary) or,
    without one, ``rag``; None when the run has no such method or nothing to compare it with."""
    baseline = best["method"] if best else BASELINE
    among: list[str] = best["of"] if best else []
    if not any(r["method"] == baseline for r in records):
        return None
    rows = versus_rows(records, baseline)
    if not rows:
        return None
    shifts = {
        method: found
        for method in _compared_methods(records, baseline)
        if method in NEEDS_SEARCH and (found := evidence_shifts(records, method, baseline))
    }
    chosen = f"the best by F1 of {', '.join(among)}" if len(among) > 1 else ""
    return {"baseline": baseline, "chosen": chosen, "rows": rows, "shifts": shifts}
