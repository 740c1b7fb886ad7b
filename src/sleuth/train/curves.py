"""Learning curves as PNG bytes: every trainer plots its per-step log the same way, so the
plotting lives here rather than in the trainer that happened to need it first."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any


def mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else 0.0


def png(draw: Callable[[Any], None], title: str, ylim: tuple[float, float] | None = None) -> bytes:
    """A 6.4 x 3.6 in figure with one axes that ``draw`` fills (PNG bytes, 100 dpi)."""
    import io

    from matplotlib.figure import Figure

    figure = Figure(figsize=(6.4, 3.6))
    axes = figure.subplots()
    draw(axes)
    axes.set_xlabel("GRPO step")
    axes.set_ylabel("value")
    if ylim is not None:
        axes.set_ylim(*ylim)
    axes.set_title(title)
    axes.legend(loc="best", fontsize="small")
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    return buffer.getvalue()


def learning_curve(
    history: list[dict[str, Any]],
    series: tuple[tuple[str, str], ...] = (
        ("reward", "reward"),
        ("engine_recall", "engine Recall@k"),
    ),
    title: str = "Query-rewrite training on engine feedback",
) -> bytes:
    """``series`` (log key, label) per step, with a moving average (PNG bytes)."""
    steps = [r["step"] for r in history if "reward" in r]

    def draw(axes: Any) -> None:
        for key, label in series:
            values = [r.get(key, r.get(f"rewards/{key}", 0.0)) for r in history if "reward" in r]
            if not any(values):
                continue
            axes.plot(steps, values, alpha=0.35, label=f"{label} (per step)")
            window = max(1, len(values) // 10)
            smooth = [mean(values[max(0, i - window + 1) : i + 1]) for i in range(len(values))]
            axes.plot(steps, smooth, label=f"{label} (moving average)")

    return png(draw, title)
