"""The numbers behind ``sleuth train critic``: ridge regression and the two ranking metrics,
in numpy alone (scikit-learn and scipy take longer to import than the whole fit takes)."""

from __future__ import annotations

import numpy as np

from sleuth.agent.trained_critic import CriticModel

__all__ = ["auc", "fit_ridge", "spearman"]


def fit_ridge(rows: np.ndarray, labels: np.ndarray, alpha: float) -> CriticModel:
    """Standardise the features (a constant one keeps scale 1), then ridge regression in closed
    form: w = (XᵀX + αI)⁻¹ Xᵀ(y - ȳ), the intercept ȳ (the features are centred)."""
    mean = rows.mean(axis=0)
    scale = rows.std(axis=0)
    scale[scale < 1e-9] = 1.0
    x = (rows - mean) / scale
    target = labels - labels.mean()
    gram = x.T @ x + alpha * np.eye(x.shape[1])
    coef = np.linalg.solve(gram, x.T @ target)
    return CriticModel(mean, scale, coef, float(labels.mean()))


def average_ranks(values: np.ndarray) -> np.ndarray:
    """Ranks from 1, ties sharing their mean rank."""
    order = np.argsort(values, kind="mergesort")
    ranks = np.empty(len(values), dtype=np.float64)
    sorted_values = values[order]
    start = 0
    while start < len(values):
        end = start
        while end + 1 < len(values) and sorted_values[end + 1] == sorted_values[start]:
            end += 1
        ranks[order[start : end + 1]] = (start + end) / 2 + 1
        start = end + 1
    return ranks


def spearman(predicted: np.ndarray, actual: np.ndarray) -> float | None:
    """Spearman's rho (Pearson's r of the average ranks); None when either side is constant."""
    if len(actual) < 2 or np.ptp(actual) == 0 or np.ptp(predicted) == 0:
        return None
    return float(np.corrcoef(average_ranks(predicted), average_ranks(actual))[0, 1])


def auc(predicted: np.ndarray, positive: np.ndarray) -> float | None:
    """The chance a positive outranks a negative (ties count half): the ROC curve's area, by
    Mann-Whitney's U; None without both classes."""
    count = int(positive.sum())
    if count == 0 or count == len(positive):
        return None
    ranks = average_ranks(predicted)
    u = ranks[positive].sum() - count * (count + 1) / 2
    return float(u / (count * (len(positive) - count)))
