"""One scored result per (question, method, seed), computed from its trajectory alone, and the
append-only ``results.jsonl`` that makes a run resumable."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sleuth.evaluate.benchmarks import BenchmarkQuestion
from sleuth.evaluate.clarify import clarification_fields
from sleuth.jsonio import read_jsonl_objects, warn_line
from sleuth.metrics import (
    answer_words,
    cover_exact_match,
    evidence_recall,
    exact_match,
    f1_score,
    factorised_category,
    is_refusal,
    short_cover_exact_match,
)

if TYPE_CHECKING:
    from sleuth.agent.trajectory import Trajectory


def result_key(question_id: str, method: str, seed: int) -> str:
    return f"{question_id}::{method}::s{seed}"


FAILURE_STOPS = ("llm_error", "search_error", "error")


def episode_error(trajectory: Trajectory) -> str | None:
    """Why the episode failed (the model or search backend broke), else ``None``.

    A wrong or missing answer is not a failure; a backend that raised is. An episode the model
    ended with invalid actions (``max_invalid``) carries the last complaint in
    ``metadata["error"]`` but is a result, not a failure: it is scored, never retried.
    """
    if trajectory.stop_reason not in FAILURE_STOPS:
        return None
    if trajectory.metadata.get("error"):
        return str(trajectory.metadata["error"])
    last = next((s.error for s in reversed(trajectory.steps) if s.error), "")
    return last or trajectory.stop_reason


def score_trajectory(
    trajectory: Trajectory, question: BenchmarkQuestion, method: str, seed: int
) -> dict[str, Any]:
    """Every metric of one episode. A pure function of the trajectory and the question, so a
    report can always be recomputed from ``trajectories.jsonl`` without re-running anything."""
    prediction = trajectory.answer
    recall = evidence_recall(trajectory.retrieved_ids, question.gold_evidence)
    cover = cover_exact_match(prediction, question.answers)
    refused = is_refusal(prediction)
    sufficient = None if recall is None else recall >= 1.0
    category = None if sufficient is None else factorised_category(sufficient, cover > 0, refused)
    prompt_tokens, completion_tokens = trajectory.prompt_tokens, trajectory.completion_tokens
    return {
        "key": result_key(question.id, method, seed),
        "question_id": question.id,
        "method": method,
        "seed": seed,
        "episode_id": trajectory.episode_id,
        "question": question.question,
        "gold_answers": list(question.answers),
        "prediction": prediction,
        "stop_reason": trajectory.stop_reason,
        "error": episode_error(trajectory),
        "em": exact_match(prediction, question.answers),
        "f1": f1_score(prediction, question.answers),
        "cover_em": cover,
        "cover_em_short": short_cover_exact_match(prediction, question.answers),
        "answer_words": answer_words(prediction),
        "no_answer": answer_words(prediction) is None,
        "judge": None,
        "evidence_recall": recall,
        # Of the gold evidence, what the scored answer call had in front of it: a searcher's or
        # pipeline's read is a few of the documents seen, and the answer follows the read.
        "read_recall": evidence_recall(read_ids(trajectory), question.gold_evidence),
        "sufficient": sufficient,
        "refused": refused,
        "category": category,
        # Engine queries: a ``follow`` action's look-ups count one each, as links' do.
        "searches": len(trajectory.searches) + trajectory.metadata.get("link_lookups", 0),
        "documents_read": documents_read(trajectory),
        # A tree search's every policy call, on every branch (the chosen path's alone for
        # ReAct's chain); the critic's apart.
        "model_calls": trajectory.metadata.get(
            "policy_calls", sum(1 for step in trajectory.steps if step.model_output)
        ),
        "critic_calls": trajectory.metadata.get("critic_calls", 0),
        "strategy": trajectory.metadata.get("strategy", "react"),
        "reader_calls": (
            trajectory.usage_by_role()["reader"]["calls"]
            if trajectory.metadata.get("reader")
            else None
        ),
        "turns": len(trajectory.steps),
        "invalid_actions": trajectory.invalid_actions,
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "tokens": prompt_tokens + completion_tokens,
        "seconds": trajectory.seconds,
        **clarification_fields(trajectory, question),
    }


def read_ids(trajectory: Trajectory) -> list[str]:
    """The documents in front of the call whose answer is scored: the final read's, a
    pipeline's read, else every document the conversation showed (RAG: its top K)."""
    for key in ("final_read", "read"):
        ids = trajectory.metadata.get(key)
        if isinstance(ids, list):
            return [str(doc_id) for doc_id in ids]
    return trajectory.retrieved_ids


def documents_read(trajectory: Trajectory) -> int:
    return len(read_ids(trajectory))


# A result record's fields that readers use, and the JSON types they must have.
_RECORD_TEXT = ("key", "episode_id", "question_id", "method")
_RECORD_NUMBERS = (
    "seed",
    "em",
    "f1",
    "cover_em",
    "cover_em_short",
    "answer_words",
    "evidence_recall",
    "read_recall",
    "searches",
    "documents_read",
    "model_calls",
    "reader_calls",
    "critic_calls",
    "turns",
    "invalid_actions",
    "prompt_tokens",
    "completion_tokens",
    "tokens",
    "seconds",
    "asks",
    "intent_recovery",
)


def result_record_problem(record: dict[str, Any]) -> str:
    """Why ``record`` cannot be a result record ("" when it can): its identifying fields must
    be strings, its metrics numbers (or null), its prediction text, so summaries, reports and
    pages never meet a value of the wrong type."""
    for name in _RECORD_TEXT:
        if not isinstance(record.get(name), str):
            return f"{name} is missing or not a string"
    for name in _RECORD_NUMBERS:
        value = record.get(name)
        if value is not None and not isinstance(value, int | float):
            return f"{name} is not a number"
    if not isinstance(record.get("prediction"), str | None):
        return "prediction is not a string"
    if not isinstance(record.get("gold_answers", []), list):
        return "gold_answers is not a list"
    for name in ("question", "error", "category", "stop_reason", "strategy"):
        if not isinstance(record.get(name), str | None):
            return f"{name} is not a string"
    return ""


class ResultLog:
    """Append-only JSONL of result records, one line per key, fsynced per line.

    A crash can at worst leave a torn last line: readers skip it and the next append starts on
    a fresh line, so no earlier record is ever lost or rewritten.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def append(self, record: dict[str, Any]) -> None:
        line = json.dumps(record, ensure_ascii=False) + "\n"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("ab") as handle:
            if handle.tell() > 0 and not self._ends_with_newline():
                handle.write(b"\n")
            handle.write(line.encode("utf-8"))
            handle.flush()
            os.fsync(handle.fileno())

    def _ends_with_newline(self) -> bool:
        with self.path.open("rb") as handle:
            handle.seek(-1, os.SEEK_END)
            return handle.read(1) == b"\n"

    def _lines(self) -> Iterator[dict[str, Any]]:
        """Each well-formed record; a damaged line (a torn write, a bad hand edit) is skipped
        with a warning naming the file and line, and the rest are used."""
        if not self.path.is_file():
            return
        for number, record in read_jsonl_objects(self.path, "a result record"):
            problem = result_record_problem(record)
            if problem:
                warn_line(self.path, number, f"skipped a damaged result record: {problem}")
            else:
                yield record

    def read(self) -> list[dict[str, Any]]:
        """One record per key, in first-write order: the first success if there is one (a
        resumed run retries failures), else the latest failure. Never a key twice."""
        unique: dict[str, dict[str, Any]] = {}
        for record in self._lines():
            kept = unique.get(record["key"])
            if kept is None or kept.get("error"):  # a failure gives way to any later attempt
                unique[record["key"]] = record
        return list(unique.values())

    def recorded_keys(self) -> set[str]:
        """Every key with a record, failed or not."""
        return {record["key"] for record in self._lines()}

    def keys(self) -> set[str]:
        """Keys that are done: answered without a backend failure. Failed episodes (the model
        or search server broke) are not done, so a re-run retries them."""
        return {record["key"] for record in self.read() if not record.get("error")}
