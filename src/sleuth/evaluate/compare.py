"""Compare two runs question by question: the difference per method and metric, with a paired
bootstrap interval over the questions both runs answered (pairing removes the variation due to
which questions are hard, so smaller real differences show)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sleuth.display import safe_text
from sleuth.evaluate.report import load_run
from sleuth.evaluate.runner import settings_differences
from sleuth.evaluate.summary import paired_difference, per_question

COMPARED_METRICS = (
    "em",
    "f1",
    "cover_em",
    "cover_em_short",
    "no_answer",
    "judge",
    "evidence_recall",
    "searches",
    "seconds",
)


def compare_runs(
    run_a: str | Path, run_b: str | Path, metrics: Sequence[str] = COMPARED_METRICS
) -> list[dict[str, Any]]:
    """One row per (method, metric) present in both runs: means, B - A and its 95% interval."""
    _config_a, records_a = load_run(run_a)
    _config_b, records_b = load_run(run_b)
    methods_a = list(dict.fromkeys(r["method"] for r in records_a))
    methods_b = {r["method"] for r in records_b}
    rows = []
    for method in (m for m in methods_a if m in methods_b):
        for metric in metrics:
            paired = paired_difference(
                per_question(records_a, method, metric), per_question(records_b, method, metric)
            )
            if paired is not None:
                rows.append({"method": method, "metric": metric, **paired})
    return rows


def config_differences(run_a: str | Path, run_b: str | Path) -> list[str]:
    """How the two runs' settings differ (model, search, budget, ..., methods, questions), as
    ``"budget.top_k: 3 in A, 5 in B"`` lines, so a difference can be attributed."""
    config_a, _ = load_run(run_a)
    config_b, _ = load_run(run_b)
    lines = settings_differences(config_a, config_b, labels=("in A", "in B"))
    for key in ("methods", "seeds"):
        if config_a.get(key) != config_b.get(key):
            lines.append(f"{key}: {config_a.get(key)} in A, {config_b.get(key)} in B")
    count_a, count_b = len(config_a.get("question_ids", [])), len(config_b.get("question_ids", []))
    if count_a != count_b:
        lines.append(f"questions: {count_a} in A, {count_b} in B")
    return [safe_text(line) for line in lines]
