"""Clarification in evaluation: a simulated user per episode, the full-intent ceiling, and the
metrics of asking (docs/clarification.md).

A question of a clarification benchmark (``sleuth synth ambiguous``) carries ``ambiguous`` and
its hidden ``intent`` in its metadata. Per episode the runner makes a fresh simulated user from
them (``user_factory``); each result record gets ``ambiguous``, ``asks`` and
``intent_recovery`` (``clarification_fields``), and every summary a ``clarification`` block
(``summarize_clarification``) when its records carry ``ambiguous``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from sleuth.agent.users import (
    DEFAULT_MAX_ANSWERS,
    SimulatedUser,
    UserSpec,
    content_words,
    make_user,
)
from sleuth.errors import SleuthError
from sleuth.evaluate.benchmarks import BenchmarkQuestion

if TYPE_CHECKING:
    from sleuth.agent.trajectory import Trajectory
    from sleuth.llm.base import LLM

UserFactory = Callable[[BenchmarkQuestion], SimulatedUser]


def user_factory(
    spec: UserSpec, max_answers: int = DEFAULT_MAX_ANSWERS, llm: LLM | None = None
) -> UserFactory:
    """A fresh simulated user for each question, answering from its hidden intent (a clear
    question has none: every reply is "I don't know") and never naming its gold answers."""

    def for_question(question: BenchmarkQuestion) -> SimulatedUser:
        return make_user(
            spec,
            str(question.metadata.get("intent") or ""),
            question.answers,
            kind_of_intent=str(question.metadata.get("intent_kind") or ""),
            max_answers=max_answers,
            llm=llm,
        )

    return for_question


def with_full_intent(questions: Sequence[BenchmarkQuestion]) -> list[BenchmarkQuestion]:
    """The questions as they were before a constraint was removed (``original_question``): the
    ceiling of a clarification run. Every other field, ``ambiguous`` included, stays."""
    missing = [q.id for q in questions if not q.metadata.get("original_question")]
    if missing:
        raise SleuthError(
            f"--full-intent needs questions with an original_question (from `sleuth synth "
            f"ambiguous`); {len(missing)} lack one, e.g. {missing[0]!r}"
        )
    return [replace(q, question=str(q.metadata["original_question"])) for q in questions]


def ask_steps(trajectory: Trajectory) -> list[int]:
    """Positions of the steps that asked the user."""
    return [i for i, step in enumerate(trajectory.steps) if step.action == "ask"]


def intent_recovery(trajectory: Trajectory, intent: str, shown: str) -> float | None:
    """Share of the hidden constraint's words (those of ``intent`` not already in the shown
    question) that appear in the agent's queries or answer after its first ``ask`` (the whole
    episode when it never asked: a good search can recover the intent too). None when the
    intent adds no word."""
    wanted = set(content_words(intent)) - set(content_words(shown))
    if not wanted:
        return None
    asks = ask_steps(trajectory)
    start = asks[0] + 1 if asks else 0
    said = [s.argument for s in trajectory.steps[start:] if s.action == "search"]
    said.append(trajectory.answer or "")
    found = set(content_words(" ".join(said)))
    return len(wanted & found) / len(wanted)


def clarification_fields(trajectory: Trajectory, question: BenchmarkQuestion) -> dict[str, Any]:
    """The clarification columns of a result record (``ambiguous`` None: not such a question)."""
    ambiguous = question.metadata.get("ambiguous")
    if not isinstance(ambiguous, bool):
        return {"ambiguous": None, "asks": len(ask_steps(trajectory)), "intent_recovery": None}
    user = trajectory.metadata.get("user") or {}
    outcomes = Counter(str(e.get("outcome")) for e in user.get("exchanges", []))
    recovery = None
    if ambiguous:
        intent = str(question.metadata.get("intent") or "")
        recovery = intent_recovery(trajectory, intent, trajectory.question)
    return {
        "ambiguous": ambiguous,
        "asks": len(ask_steps(trajectory)),
        "intent_recovery": recovery,
        "user_replies": dict(outcomes),
    }


def _mean(values: Sequence[float | None]) -> float | None:
    kept = [float(v) for v in values if v is not None]
    return round(sum(kept) / len(kept), 6) if kept else None


def summarize_clarification(records: Sequence[dict[str, Any]]) -> dict[str, Any] | None:
    """Asking as a decision: its rate on ambiguous and on clear questions, precision (asked
    episodes that were ambiguous) and recall (ambiguous episodes that asked), intent recovery,
    and F1, evidence recall and turns on each side. None when no record says ``ambiguous``."""
    scored = [r for r in records if isinstance(r.get("ambiguous"), bool) and not r.get("error")]
    if not scored:
        return None
    amb = [r for r in scored if r["ambiguous"]]
    clear = [r for r in scored if not r["ambiguous"]]
    asked = [r for r in scored if (r.get("asks") or 0) > 0]
    asked_amb = [r for r in amb if (r.get("asks") or 0) > 0]
    replies: Counter = Counter()
    for record in scored:
        replies.update(record.get("user_replies") or {})

    def side(name: str, rows: list[dict[str, Any]]) -> dict[str, Any]:
        return {
            f"{name}_episodes": len(rows),
            f"ask_rate_{name}": _mean([1.0 if (r.get("asks") or 0) else 0.0 for r in rows]),
            f"f1_{name}": _mean([r.get("f1") for r in rows]),
            f"evidence_recall_{name}": _mean([r.get("evidence_recall") for r in rows]),
            f"turns_{name}": _mean([r.get("turns") for r in rows]),
        }

    return {
        **side("ambiguous", amb),
        **side("clear", clear),
        "ask_precision": round(len(asked_amb) / len(asked), 6) if asked else None,
        "ask_recall": round(len(asked_amb) / len(amb), 6) if amb else None,
        "intent_recovery": _mean([r.get("intent_recovery") for r in amb]),
        "asks_per_episode": _mean([r.get("asks") or 0 for r in scored]),
        "user_replies": dict(sorted(replies.items())),
    }


CLARIFICATION_LABELS = {
    "ask_rate_ambiguous": "ask rate (ambiguous)",
    "ask_rate_clear": "ask rate (clear)",
    "ask_precision": "ask precision",
    "ask_recall": "ask recall",
    "intent_recovery": "intent recovery",
    "f1_ambiguous": "F1 ambiguous",
    "f1_clear": "F1 clear",
    "evidence_recall_ambiguous": "evidence recall ambiguous",
    "evidence_recall_clear": "evidence recall clear",
    "turns_ambiguous": "turns ambiguous",
    "turns_clear": "turns clear",
}
