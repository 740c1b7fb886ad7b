"""HotpotQA records (distractor setting): questions with context paragraphs and supporting facts.

The general reader for HotpotQA, 2WikiMultihopQA and MuSiQue is ``sleuth.corpus.multihop``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sleuth.corpus.multihop import qa_documents, read_qa_records
from sleuth.errors import CorpusError
from sleuth.types import Document


@dataclass(frozen=True, slots=True)
class HotpotQuestion:
    id: str
    question: str
    answer: str
    type: str
    supporting_titles: tuple[str, ...]  # titles of the gold paragraphs (= document ids below)


def read_hotpotqa_records(paths: Iterable[str | Path]) -> Iterator[tuple[str, dict[str, Any]]]:
    """Records from JSONL files or JSON arrays (the official release is one JSON array)."""
    return read_qa_records(paths)


def hotpotqa_documents(paths: Iterable[str | Path]) -> Iterator[Document]:
    """Each distinct context paragraph becomes a Document whose id is its Wikipedia title.

    HotpotQA keys paragraphs by title, so the same title seen under several questions is one
    document; a differing text under a seen title becomes ``"<title> (2)"`` (see
    ``sleuth.corpus.multihop``), never dropped silently.
    """
    return qa_documents(paths)


def hotpotqa_questions(paths: Iterable[str | Path]) -> Iterator[HotpotQuestion]:
    for where, record in read_hotpotqa_records(paths):
        facts = record.get("supporting_facts") or {}
        titles = facts.get("title", []) if isinstance(facts, dict) else [f[0] for f in facts]
        if "answer" not in record:
            raise CorpusError(f"{where}: HotpotQA record has no answer")
        yield HotpotQuestion(
            id=str(record.get("id", record.get("_id", where))),
            question=record["question"],
            answer=str(record["answer"]),
            type=str(record.get("type", "")),
            supporting_titles=tuple(dict.fromkeys(titles)),
        )
