"""``sleuth train critic``: learn a state's value from stored runs (CR-Planner's recipe).

Every prefix of every stored episode is a state (``sleuth.agent.critic_state``), labelled by the
outcome of the episode that went through it: its answer's F1, its gold-evidence recall, or their
mean (``label``). Episodes that share a prefix (the same question and actions) share the state,
whose label is the mean of their outcomes. Questions, not states, are split into training and
held-out ones, so the held-out metrics say how the critic ranks states of questions it never
saw. The fit: ridge regression on standardised features (``sleuth.train.critic_fit``), its
strength chosen by cross-validation grouped by question on the training questions alone.
"""

from __future__ import annotations

import hashlib
import random
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from sleuth.agent.critic_state import CriticState, states_of_trajectory
from sleuth.agent.trained_critic import (
    ENCODER,
    ENCODER_BACKEND,
    CriticModel,
    StateFeatures,
    feature_names,
    save_critic,
)
from sleuth.agent.trajectory import Trajectory, TrajectoryFormatError
from sleuth.errors import SleuthError
from sleuth.evaluate.records import ResultLog
from sleuth.jsonio import read_jsonl_objects, warn_line
from sleuth.train.critic_fit import auc, fit_ridge, spearman

__all__ = ["LABELS", "CriticTraining", "LabelledState", "label_of", "read_states", "train_critic"]

LABELS = ("f1", "recall", "mix")
ALPHAS = (0.1, 1.0, 10.0, 100.0, 1000.0)  # ridge strengths tried
RESULTS, TRAJECTORIES = "results.jsonl", "trajectories.jsonl"


@dataclass
class LabelledState:
    """A state, the question it belongs to, and the mean outcome of the episodes through it."""

    state: CriticState
    question_id: str
    label: float
    episodes: int = 1


@dataclass
class CriticTraining:
    """What a training run made: the folder, the saved model, the metrics, how many states
    and questions."""

    out: Path
    model: CriticModel
    metrics: dict[str, Any]
    states: int
    questions: int
    runs: list[dict[str, Any]] = field(default_factory=list)


def label_of(record: dict[str, Any], label: str) -> float | None:
    """The outcome ``label`` names from a result record (None: it has none, e.g. no gold
    evidence for recall)."""
    f1, recall = record.get("f1"), record.get("evidence_recall")
    if label == "f1":
        return None if f1 is None else float(f1)
    if label == "recall":
        return None if recall is None else float(recall)
    if f1 is None:
        return None
    return float(f1) if recall is None else (float(f1) + float(recall)) / 2


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_states(runs: list[Path], label: str) -> tuple[list[LabelledState], list[dict[str, Any]]]:
    """Every state of every scored, unfailed episode of ``runs`` (eval run folders), one per
    shared prefix with its mean label; and a record of each run (path, checksums, episodes)."""
    if label not in LABELS:
        raise SleuthError(f"unknown --label {label!r}; choose from {', '.join(LABELS)}")
    outcomes: dict[tuple, list[float]] = defaultdict(list)
    first: dict[tuple, tuple[CriticState, str]] = {}
    described = []
    for run in runs:
        results_path, trajectories_path = run / RESULTS, run / TRAJECTORIES
        for path in (results_path, trajectories_path):
            if not path.is_file():
                raise SleuthError(f"{run} is not an eval run folder: {path.name} is missing")
        records = {r["episode_id"]: r for r in ResultLog(results_path).read() if not r.get("error")}
        used = 0
        for number, data in read_jsonl_objects(trajectories_path, "a trajectory"):
            try:
                trajectory = Trajectory.from_dict(data)
            except TrajectoryFormatError as exc:
                warn_line(trajectories_path, number, f"skipped a damaged trajectory: {exc}")
                continue
            record = records.get(trajectory.episode_id)
            value = None if record is None else label_of(record, label)
            if value is None:
                continue
            used += 1
            question_id = str(record["question_id"])  # type: ignore[index]
            for state in states_of_trajectory(trajectory):
                outcomes[state.key].append(value)
                first.setdefault(state.key, (state, question_id))
        described.append(
            {
                "path": str(run.resolve()),
                "episodes": used,
                "results_sha256": _sha256(results_path),
                "trajectories_sha256": _sha256(trajectories_path),
            }
        )
    states = [
        LabelledState(first[key][0], first[key][1], float(np.mean(values)), len(values))
        for key, values in outcomes.items()
    ]
    return states, described


def split_questions(
    question_ids: list[str], holdout: float, seed: int
) -> tuple[set[str], set[str]]:
    """Training and held-out question ids: a seeded shuffle, at least one question each."""
    unique = sorted(set(question_ids))
    if len(unique) < 2:
        raise SleuthError(
            f"the runs hold {len(unique)} question(s) with outcomes; a critic needs at least 2 "
            "(one to train on, one held out)"
        )
    if not 0 < holdout < 1:
        raise SleuthError(f"--holdout must be between 0 and 1; got {holdout}")
    random.Random(seed).shuffle(unique)
    held = min(len(unique) - 1, max(1, round(len(unique) * holdout)))
    return set(unique[held:]), set(unique[:held])


def _choose_alpha(rows: np.ndarray, labels: np.ndarray, groups: list[str], seed: int) -> float:
    """The ridge strength with the least squared error in cross-validation grouped by question
    (a question's states never on both sides); the middle one when too few questions."""
    unique = sorted(set(groups))
    folds = min(5, len(unique))
    if folds < 2:
        return 10.0
    random.Random(seed).shuffle(unique)
    fold_of = {q: i % folds for i, q in enumerate(unique)}
    which = np.array([fold_of[g] for g in groups])
    errors = []
    for alpha in ALPHAS:
        error = 0.0
        for fold in range(folds):
            train, test = which != fold, which == fold
            model = fit_ridge(rows[train], labels[train], alpha)
            error += float(np.sum((model.predict(rows[test]) - labels[test]) ** 2))
        errors.append(error)
    return ALPHAS[int(np.argmin(errors))]


def ranking_metrics(predicted: np.ndarray, actual: np.ndarray) -> dict[str, float | None]:
    """Spearman's rho of predicted against actual outcome, and the AUC of telling states whose
    outcome is at least 0.5 from the rest (None where undefined: one class, or no spread)."""
    return {"spearman": spearman(predicted, actual), "auc": auc(predicted, actual >= 0.5)}


def train_critic(
    runs: list[Path],
    out: Path,
    *,
    label: str = "mix",
    holdout: float = 0.25,
    seed: int = 0,
    features: StateFeatures | None = None,
) -> CriticTraining:
    """Build the states of ``runs``, fit the critic on the training questions, measure it and
    the documents-gathered baseline on the held-out ones, refit on every question, and save
    the critic folder at ``out`` (atomically, with its manifest)."""
    if not runs:
        raise SleuthError("--runs: name at least one eval run folder")
    states, described = read_states([Path(r) for r in runs], label)
    if not states:
        raise SleuthError(
            f"the runs hold no scored episode with a {label} outcome (failed episodes and "
            "questions without gold evidence give none)"
        )
    groups = [s.question_id for s in states]
    train_ids, held_ids = split_questions(groups, holdout, seed)
    features = features or StateFeatures()
    rows = features.rows([s.state for s in states])
    labels = np.array([s.label for s in states])
    train = np.array([g in train_ids for g in groups])
    held = ~train
    train_groups = [g for g in groups if g in train_ids]
    alpha = _choose_alpha(rows[train], labels[train], train_groups, seed)
    model = fit_ridge(rows[train], labels[train], alpha)
    names = feature_names(features.dim)
    documents = rows[:, names.index("documents")]
    metrics = {
        "label": label,
        "alpha": alpha,
        "states": {"train": int(train.sum()), "held_out": int(held.sum())},
        "questions": {"train": len(train_ids), "held_out": len(held_ids)},
        "held_out": ranking_metrics(model.predict(rows[held]), labels[held]),
        "baseline_documents_held_out": ranking_metrics(documents[held], labels[held]),
        "train": ranking_metrics(model.predict(rows[train]), labels[train]),
    }
    final = fit_ridge(rows, labels, alpha)  # the saved critic learns from every question
    manifest = {
        "encoder": {"name": ENCODER, "backend": ENCODER_BACKEND, "dim": features.dim},
        "features": names,
        "label": label,
        "model": "standardise + ridge regression, prediction clipped to [0, 1]",
        "training_runs": described,
        "held_out_questions": sorted(held_ids),
        "seed": seed,
        "metrics": metrics,
    }
    save_critic(out, final, manifest)
    return CriticTraining(out, final, metrics, len(states), len(set(groups)), described)
