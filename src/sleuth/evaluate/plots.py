"""The report's figures, as PNG bytes (matplotlib's object API: no pyplot global state, no
display needed, safe in threads)."""

from __future__ import annotations

import io
from typing import Any

from sleuth.metrics import CATEGORIES

CATEGORY_COLOURS = {
    "solved": "#2e7d32",
    "misused": "#f9a825",
    "overcautious": "#90caf9",
    "refused": "#1565c0",
    "hallucinated": "#c62828",
    "unsupported_correct": "#8e24aa",
}


def _png(figure: Any) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    return buffer.getvalue()


def _new_figure(width: float = 6.4, height: float = 3.6) -> Any:
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height))


def accuracy_chart(summary: dict[str, dict[str, Any]]) -> bytes:
    """Grouped bars of EM / F1 / cover-EM per method with 95% interval whiskers."""
    import numpy as np

    figure = _new_figure()
    axes = figure.subplots()
    methods = list(summary)
    metrics = [("em", "EM"), ("f1", "F1"), ("cover_em", "cover-EM")]
    width = 0.8 / len(metrics)
    x = np.arange(len(methods))
    for i, (name, label) in enumerate(metrics):
        means, lows, highs = [], [], []
        for method in methods:
            cell = summary[method]["metrics"][name]
            mean = cell["mean"] or 0.0
            means.append(mean)
            lows.append(mean - cell["low"] if cell["low"] is not None else 0.0)
            highs.append(cell["high"] - mean if cell["high"] is not None else 0.0)
        axes.bar(x + i * width, means, width, label=label, yerr=[lows, highs], capsize=3)
    axes.set_xticks(x + width, methods)
    axes.set_ylim(0, 1)
    axes.set_ylabel("score (95% CI)")
    axes.set_title("Answer accuracy per method")
    axes.legend(loc="upper left")
    return _png(figure)


def factorised_chart(summary: dict[str, dict[str, Any]]) -> bytes:
    """Stacked share of episodes per factorised category (evidence x outcome)."""
    figure = _new_figure()
    axes = figure.subplots()
    methods = list(summary)
    bottoms = [0.0] * len(methods)
    for category in CATEGORIES:
        shares = []
        for method in methods:
            counts = summary[method]["factorised"]["counts"]
            total = sum(counts.values())
            shares.append(counts.get(category, 0) / total if total else 0.0)
        axes.bar(methods, shares, bottom=bottoms, label=category, color=CATEGORY_COLOURS[category])
        bottoms = [b + s for b, s in zip(bottoms, shares, strict=True)]
    axes.set_ylim(0, 1)
    axes.set_ylabel("share of episodes")
    axes.set_title("Where answers fail: evidence retrieved x answer outcome")
    axes.legend(loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize="small")
    return _png(figure)


def searches_vs_accuracy_chart(summary: dict[str, dict[str, Any]]) -> bytes:
    """Mean searches per question against cover-EM: what each extra search buys."""
    figure = _new_figure(5.0, 3.6)
    axes = figure.subplots()
    for method, data in summary.items():
        searches = data["metrics"]["searches"]["mean"] or 0.0
        accuracy = data["metrics"]["cover_em"]["mean"] or 0.0
        axes.scatter([searches], [accuracy], s=60)
        axes.annotate(method, (searches, accuracy), textcoords="offset points", xytext=(5, 5))
    axes.set_xlabel("searches per question")
    axes.set_ylabel("cover-EM")
    axes.set_ylim(0, 1)
    axes.set_title("Searches vs accuracy")
    return _png(figure)
