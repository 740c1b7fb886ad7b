"""The reward signature, the registry, and the rewards themselves."""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sleuth.agent.parsing import judge_verdict
from sleuth.agent.trajectory import HitRef, Trajectory
from sleuth.errors import SleuthError
from sleuth.metrics import cover_exact_match, exact_match, f1_score


@dataclass(frozen=True)
class Gold:
    answers: list[str]
    evidence_ids: set[str] = field(default_factory=set)
    # A clarification question's ``ambiguous`` (``sleuth synth ambiguous``); None: not one.
    ambiguous: bool | None = None


RewardFn = Callable[[Trajectory, Gold], float]
REWARDS: dict[str, RewardFn] = {}


def register(name: str) -> Callable[[RewardFn], RewardFn]:
    """Add a reward by writing one function: ``@register("mine")``."""

    def add(fn: RewardFn) -> RewardFn:
        REWARDS[name] = fn
        return fn

    return add


def recall_at(hits: list[HitRef], gold: set[str]) -> float:
    return len({h.id for h in hits} & gold) / len(gold) if gold else 0.0


def ndcg_at(hits: list[HitRef], gold: set[str]) -> float:
    """Binary-relevance nDCG over the hits as ranked."""
    if not gold:
        return 0.0
    dcg = sum(1 / math.log2(n + 1) for n, h in enumerate(hits, start=1) if h.id in gold)
    ideal = sum(1 / math.log2(n + 1) for n in range(1, min(len(gold), len(hits) or 1) + 1))
    return dcg / ideal if ideal else 0.0


# -- outcome --------------------------------------------------------------------------------
@register("em")
def em(traj: Trajectory, gold: Gold) -> float:
    return exact_match(traj.answer, gold.answers)


@register("f1")
def f1(traj: Trajectory, gold: Gold) -> float:
    return f1_score(traj.answer, gold.answers)


@register("cover_em")
def cover_em(traj: Trajectory, gold: Gold) -> float:
    return cover_exact_match(traj.answer, gold.answers)


# -- format ---------------------------------------------------------------------------------
@register("format")
def well_formed(traj: Trajectory, gold: Gold) -> float:
    """Share of well-formed model turns, zero unless the episode ended with a tagged answer."""
    turns = [s for s in traj.steps if s.model_output]
    if traj.stop_reason != "answered" or not turns:
        return 0.0
    clean = sum(1 for s in turns if s.action != "invalid" and not s.error)
    return clean / len(turns)


# -- retrieval feedback (LESER relevance/coverage, InForage intermediate reward) --------------
@register("search_recall")
def mean_search_recall(traj: Trajectory, gold: Gold) -> float:
    """Mean recall of gold evidence among each query's hits."""
    searches = traj.searches
    return (
        sum(recall_at(s.hits, gold.evidence_ids) for s in searches) / len(searches)
        if searches
        else 0.0
    )


@register("search_ndcg")
def mean_search_ndcg(traj: Trajectory, gold: Gold) -> float:
    searches = traj.searches
    return (
        sum(ndcg_at(s.hits, gold.evidence_ids) for s in searches) / len(searches)
        if searches
        else 0.0
    )


@register("coverage")
def coverage(traj: Trajectory, gold: Gold) -> float:
    """Share of gold evidence retrieved anywhere in the episode."""
    return recall_at([HitRef(i, 0.0, 0) for i in traj.retrieved_ids], gold.evidence_ids)


@register("info_gain")
def information_gain(traj: Trajectory, gold: Gold) -> float:
    """Mean over searches of the gold evidence each query found for the first time: repeating
    a query earns nothing."""
    searches, seen = traj.searches, set()
    if not searches or not gold.evidence_ids:
        return 0.0
    gains = []
    for step in searches:
        found = {h.id for h in step.hits} & gold.evidence_ids
        gains.append(len(found - seen) / len(gold.evidence_ids))
        seen |= found
    return sum(gains) / len(gains)


# -- process (ReSeek) -----------------------------------------------------------------------
@register("judge_accuracy")
def judge_accuracy(traj: Trajectory, gold: Gold) -> float:
    """A judge verdict is right when "yes" coincides with all gold evidence retrieved so far."""
    seen: set[str] = set()
    verdicts = []
    for step in traj.steps:
        seen |= {h.id for h in step.hits}
        if step.action == "judge":
            verdict = judge_verdict(step.argument)
            sufficient = gold.evidence_ids <= seen
            verdicts.append(1.0 if verdict is not None and verdict == sufficient else 0.0)
    return sum(verdicts) / len(verdicts) if verdicts else 0.0


@register("useful_searches")
def useful_searches(traj: Trajectory, gold: Gold) -> float:
    """Share of searches that retrieved at least one new gold document."""
    searches, seen, useful = traj.searches, set(), 0
    for step in searches:
        found = {h.id for h in step.hits} & gold.evidence_ids
        useful += bool(found - seen)
        seen |= found
    return useful / len(searches) if searches else 0.0


# -- combinations ---------------------------------------------------------------------------
def parse_spec(spec: Mapping[str, float] | str) -> dict[str, float]:
    """``{"f1": 1.0, "format": 0.2}`` or its JSON text, validated against the registry."""
    weights = json.loads(spec) if isinstance(spec, str) else dict(spec)
    if not isinstance(weights, dict) or not weights:
        raise SleuthError("a reward spec is a non-empty mapping of reward name to weight")
    unknown = sorted(set(weights) - set(REWARDS))
    if unknown:
        raise SleuthError(f"unknown rewards {unknown}; known: {', '.join(sorted(REWARDS))}")
    for name, weight in weights.items():
        if isinstance(weight, bool) or not isinstance(weight, (int, float)):
            raise SleuthError(f"weight of {name!r} must be a number, got {weight!r}")
    return {name: float(weight) for name, weight in weights.items()}


def reward_breakdown(
    traj: Trajectory, gold: Gold, spec: Mapping[str, float] | str
) -> dict[str, Any]:
    """Each weighted reward's value, and their weighted sum under ``total`` (for logging)."""
    weights = parse_spec(spec)
    values = {name: REWARDS[name](traj, gold) for name in weights}
    return {**values, "total": sum(weights[n] * v for n, v in values.items())}


def combined(traj: Trajectory, gold: Gold, spec: Mapping[str, float] | str) -> float:
    return reward_breakdown(traj, gold, spec)["total"]
