"""Offline update (NExT-Search): turn the feedback log into training inputs.

- ``sft``: the forks replayed from corrected queries, documents and answers, one
  ``Trajectory`` JSON per line (the format ``TrajectoryLog`` writes and ``sleuth train sft``
  reads). By default only forks that end correct (cover-EM against the gold answers) or whose
  answer a person wrote; ``keep_all`` keeps every fork.
- ``retriever``: ``{"query", "positive", "negative"}`` triples (sentence-transformers style)
  from pinned / thumbed-up documents against dropped / thumbed-down ones for the same query.
- ``reward``: ``{"episode_id", "step", "reward"}`` per-step labels from thumbs on steps (the
  mean when a step has several), read by ``sleuth.rewards.feedback``.
"""

from __future__ import annotations

import json
import os
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from sleuth.agent.log import TrajectoryLog
from sleuth.agent.trajectory import Trajectory
from sleuth.errors import SleuthError
from sleuth.metrics import cover_exact_match
from sleuth.view.feedback import forks_path, read_feedback

FORMATS = ("sft", "retriever", "reward")
EDIT_KINDS = ("query", "drop", "pin", "answer")


def sft_examples(
    records: list[dict[str, Any]], log: Path, keep_all: bool = False
) -> list[Trajectory]:
    wanted = {
        str(r["fork_id"]): r for r in records if r.get("kind") in EDIT_KINDS and r.get("fork_id")
    }
    forks = {t.episode_id: t for t in TrajectoryLog(forks_path(log)).read()}
    missing = sorted(set(wanted) - set(forks))
    if missing:
        raise SleuthError(
            f"{forks_path(log)} lacks {len(missing)} forks the log names (e.g. {missing[0]!r})"
        )
    chosen = []
    for fork_id, record in wanted.items():
        fork = forks[fork_id]
        golds = [str(a) for a in fork.metadata.get("gold_answers") or []]
        person_answered = record["kind"] == "answer"
        if keep_all or person_answered or cover_exact_match(fork.answer, golds):
            chosen.append(fork)
    return chosen


def _document(record: dict[str, Any]) -> str:
    return f"{record.get('doc_title', '')}\n{record.get('doc_text', '')}".strip()


def retriever_triples(records: list[dict[str, Any]]) -> list[dict[str, str]]:
    """Every (positive, negative) pair judged for the same query; a document's last verdict
    wins. Documents whose text is unknown are left out (nothing to train on)."""
    verdicts: dict[str, dict[str, tuple[bool, str]]] = defaultdict(dict)
    for record in records:
        query, kind = str(record.get("query") or "").strip(), record.get("kind")
        if not query or not record.get("doc_id") or not _document(record):
            continue
        if kind == "pin" or (kind == "thumb" and record.get("target") == "hit"):
            good = kind == "pin" or record.get("value") == 1
        elif kind == "drop":
            good = False
        else:
            continue
        verdicts[query][str(record["doc_id"])] = (good, _document(record))
    triples = []
    for query, docs in verdicts.items():
        positives = [text for good, text in docs.values() if good]
        negatives = [text for good, text in docs.values() if not good]
        triples += [
            {"query": query, "positive": p, "negative": n} for p in positives for n in negatives
        ]
    return triples


def reward_labels(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    values: dict[tuple[str, int], list[int]] = defaultdict(list)
    for record in records:
        if record.get("kind") == "thumb" and record.get("target") == "step":
            values[(str(record["episode_id"]), int(record["step"]))].append(int(record["value"]))
    return [
        {"episode_id": episode, "step": step, "reward": sum(v) / len(v)}
        for (episode, step), v in values.items()
    ]


def _write_lines(out: Path, lines: Iterable[str]) -> int:
    """Write atomically: a reader never sees half a file."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    count = 0
    with tmp.open("w", encoding="utf-8") as handle:
        for line in lines:
            handle.write(line + "\n")
            count += 1
        handle.flush()
        os.fsync(handle.fileno())
    tmp.replace(out)
    return count


def export(log: str | Path, kind: str, out: str | Path, keep_all: bool = False) -> int:
    """Write the ``kind`` training input derived from ``log`` to ``out``; returns the rows."""
    if kind not in FORMATS:
        raise SleuthError(f"--as must be one of {', '.join(FORMATS)}, not {kind!r}")
    log, out = Path(log).expanduser(), Path(out).expanduser()
    records = read_feedback(log)
    if kind == "sft":
        lines = [t.to_json() for t in sft_examples(records, log, keep_all)]
    elif kind == "retriever":
        lines = [json.dumps(t, ensure_ascii=False) for t in retriever_triples(records)]
    else:
        lines = [json.dumps(r) for r in reward_labels(records)]
    return _write_lines(out, lines)
