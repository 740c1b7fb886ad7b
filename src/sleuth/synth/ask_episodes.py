"""Clarification episodes for priming: a ``sleuth synth ambiguous`` file played by the script.

An ambiguous question's episode opens with an ``ask`` that names the kind of constraint the
question lacks; the simulated user (``RulesUser``) replies from the hidden intent, the reply
comes back as the ask's observation (an environment turn, never a model turn), and the
script's first search carries the reply's words. A clear question's episode never asks. Both
kinds are offered the ``ask`` action, so the model learns when to use it, not only how.

Only questions recorded as ``train`` or ``dev`` are used: a file whose records say ``test``
(or say no split) is refused before anything runs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from sleuth.agent.trajectory import Trajectory
from sleuth.errors import SleuthError
from sleuth.evaluate.benchmarks import BenchmarkQuestion, load_benchmark
from sleuth.evaluate.clarify import intent_recovery
from sleuth.search.base import SearchEngine

TRAINABLE_SPLITS = ("train", "dev")
# The ask per kind of removed constraint: each names what is missing in words the rules user
# knows for that kind (``sleuth.agent.users.KIND_CUES``) and a plain "do you mean".
ASK_BY_KIND = {
    "year": "Which year do you mean?",
    "qualifier": "What kind or nationality do you mean?",
    "type": "What type of work do you mean?",
    "role": "Which role or job do you mean?",
    "name": "What is the full name you mean?",
    "entity": "Which title or name do you mean?",
}
GENERIC_ASK = "Which one do you mean? Please be more specific."


def is_question_file(name: str) -> bool:
    """True when ``name`` is a file rather than a registered benchmark name."""
    return Path(name).expanduser().is_file()


def check_trainable(questions: Sequence[BenchmarkQuestion], source: str) -> None:
    """Refuse questions that may not be trained on: a recorded ``test`` split, or no split at
    all (then nothing says the question is not a test question)."""
    for question in questions:
        split = str(question.metadata.get("split") or "")
        if split not in TRAINABLE_SPLITS:
            said = f"split {split!r}" if split else "no split"
            raise SleuthError(
                f"{source}: question {question.id!r} has {said}; only questions recorded as "
                f"{' or '.join(TRAINABLE_SPLITS)} are trained on (write the file with `sleuth "
                "synth ambiguous --purpose train --benchmark hotpotqa-1100:train`)"
            )


def load_clarify_file(path: str | Path, limit: int | None = None) -> list[BenchmarkQuestion]:
    """The questions of a ``synth ambiguous`` file, checked: every one says ``ambiguous`` and
    a trainable split."""
    questions = load_benchmark(path, limit=limit).questions
    for question in questions:
        if not isinstance(question.metadata.get("ambiguous"), bool):
            raise SleuthError(
                f"{path}: question {question.id!r} has no 'ambiguous' field; give a file "
                "written by `sleuth synth ambiguous`"
            )
    check_trainable(questions, str(path))
    return questions


def with_titles(question: BenchmarkQuestion, search: SearchEngine) -> BenchmarkQuestion:
    """The question with each gold id paired with its title (the script plans by title): the
    file gives the index's own ids, the index gives their titles."""
    evidence = []
    for aliases in question.gold_evidence:
        title = ""
        for doc_id in aliases:
            try:
                title = search.get(doc_id).title or ""
            except Exception:  # an id this index does not hold: the episode is not scriptable
                continue
            if title:
                break
        evidence.append((*aliases, title) if title else tuple(aliases))
    return replace(question, gold_evidence=tuple(evidence))


def ask_for(question: BenchmarkQuestion) -> str:
    """The clarification question of an ambiguous question ("" for a clear one)."""
    if not question.metadata.get("ambiguous"):
        return ""
    return ASK_BY_KIND.get(str(question.metadata.get("intent_kind") or ""), GENERIC_ASK)


def intent_missed(trajectory: Trajectory, question: BenchmarkQuestion) -> str:
    """A drop reason when an ambiguous episode did not ask or did not use every word the
    intent adds in its searches or answer after the ask; a clear episode that asked; else ""."""
    asks = sum(1 for step in trajectory.steps if step.action == "ask")
    if not question.metadata.get("ambiguous"):
        return "asked_on_clear" if asks else ""
    if asks != 1:
        return "no_ask" if not asks else "several_asks"
    intent = str(question.metadata.get("intent") or "")
    recovered = intent_recovery(trajectory, intent, question.question)
    return "" if recovered is None or recovered >= 1.0 else "intent_not_used"
