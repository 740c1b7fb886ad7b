"""Outcome categories and the episode filters of the list page.

The outcome is the evaluation's own factorised category (solved / misused / overcautious /
refused / hallucinated / unsupported_correct, computed from the trajectory by
``sleuth.evaluate.records``); episodes it cannot place get one of three more: ``failed`` (the
model or search backend broke), ``no_answer`` or ``wrong``/``correct`` (no gold evidence known).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from sleuth.metrics import CATEGORIES
from sleuth.view.runs import Episode

OUTCOMES = (*CATEGORIES, "correct", "wrong", "no_answer", "failed")


def outcome(episode: Episode) -> str:
    record = episode.record
    if record.get("error"):
        return "failed"
    if record.get("category"):
        return str(record["category"])
    if record.get("prediction") is None or record.get("refused"):
        return "no_answer"
    return "correct" if record.get("cover_em") else "wrong"


def is_correct(episode: Episode) -> bool:
    """Correct means cover-EM (the gold answer appears in the prediction), or the judge's yes."""
    record = episode.record
    return bool(record.get("cover_em")) or record.get("judge") is True


@dataclass(frozen=True)
class EpisodeFilter:
    """What the list page asks for; empty fields match everything."""

    run: str = ""
    method: str = ""
    outcome: str = ""
    searches: str = ""  # "0", "1", ... or "3+"
    correct: str = ""  # "yes" | "no"
    question: str = ""  # a substring of the question text or its id

    @classmethod
    def from_query(cls, params: Mapping[str, str]) -> EpisodeFilter:
        fields = cls.__dataclass_fields__
        return cls(**{k: str(params.get(k, "") or "").strip()[:200] for k in fields})

    def matches(self, episode: Episode) -> bool:
        record = episode.record
        if self.run and episode.run != self.run:
            return False
        if self.method and episode.method != self.method:
            return False
        if self.outcome and outcome(episode) != self.outcome:
            return False
        if self.searches and not _searches_match(self.searches, int(record.get("searches", 0))):
            return False
        if self.correct and is_correct(episode) != (self.correct == "yes"):
            return False
        if self.question:
            needle = self.question.lower()
            haystack = f"{record.get('question', '')} {record.get('question_id', '')}".lower()
            if needle not in haystack:
                return False
        return True


def _searches_match(wanted: str, searches: int) -> bool:
    if wanted.endswith("+") and wanted[:-1].isdigit():
        return searches >= int(wanted[:-1])
    return wanted.isdigit() and searches == int(wanted)


def select(episodes: Iterable[Episode], wanted: EpisodeFilter) -> list[Episode]:
    chosen = [e for e in episodes if wanted.matches(e)]
    return sorted(chosen, key=lambda e: (e.question_id, e.method, e.run, e.record.get("seed", 0)))


def outcome_counts(episodes: Iterable[Episode]) -> dict[str, int]:
    counts = Counter(outcome(e) for e in episodes)
    return {name: counts[name] for name in OUTCOMES if counts[name]}
