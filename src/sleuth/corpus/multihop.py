"""Multi-hop QA releases that carry their own context paragraphs, as people download them.

- HotpotQA: the official JSON array (``context`` = ``[[title, [sentences]]]``,
  ``supporting_facts`` = ``[[title, sent_id]]``) or the Hugging Face JSONL schema
  (``context`` = ``{"title": [...], "sentences": [[...]]}``);
- 2WikiMultihopQA: HotpotQA's layout plus ``evidences`` triples (JSON array);
- MuSiQue: ``paragraphs`` = ``[{"idx", "title", "paragraph_text", "is_supporting"}]`` (JSONL
  release, or the JSON array HippoRAG ships).

Every distinct paragraph becomes one Document. Its id is its title; a paragraph with the same
title but a different text (MuSiQue holds several paragraphs of one article) gets
``"<title> (2)"``, ``"<title> (3)"``, ... in order of appearance, so nothing is dropped and the
ids are the same on every read. Gold evidence of a question is the ids of its supporting
paragraphs.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sleuth.corpus.jsonl import read_records
from sleuth.errors import CorpusError
from sleuth.types import Document


@dataclass(frozen=True, slots=True)
class QAParagraph:
    title: str
    text: str
    supporting: bool


@dataclass(frozen=True, slots=True)
class QAQuestion:
    id: str
    question: str
    answers: tuple[str, ...]
    gold_ids: tuple[str, ...]  # document ids of the supporting paragraphs, in order
    metadata: dict[str, Any]


def is_qa_record(record: dict[str, Any]) -> bool:
    return "question" in record and ("context" in record or "paragraphs" in record)


def _supporting_titles(record: dict[str, Any]) -> set[str]:
    facts = record.get("supporting_facts") or {}
    if isinstance(facts, dict):  # Hugging Face schema
        return {str(t) for t in facts.get("title", [])}
    return {str(fact[0]) for fact in facts if isinstance(fact, list | tuple) and fact}


def qa_paragraphs(record: dict[str, Any], where: str) -> list[QAParagraph]:
    """The context paragraphs of one record, each marked supporting or not."""
    if "paragraphs" in record:  # MuSiQue
        out = []
        for item in record["paragraphs"]:
            if not isinstance(item, dict) or "title" not in item:
                raise CorpusError(f"{where}: each MuSiQue paragraph needs title and text")
            text = item.get("paragraph_text", item.get("text"))
            if not isinstance(text, str):
                raise CorpusError(f"{where}: paragraph {item.get('idx')!r} has no text")
            supporting = bool(item.get("is_supporting"))
            out.append(QAParagraph(str(item["title"]), text.strip(), supporting))
        return out
    context = record["context"]
    if isinstance(context, dict):  # Hugging Face schema: {"title": [...], "sentences": [[...]]}
        pairs: Iterable[Any] = zip(
            context.get("title", []), context.get("sentences", []), strict=False
        )
    elif isinstance(context, list):  # official schema: [[title, [sentences]], ...]
        if not all(isinstance(item, list | tuple) and len(item) == 2 for item in context):
            raise CorpusError(f"{where}: context items must be [title, [sentences]]")
        pairs = context
    else:
        raise CorpusError(f"{where}: context must be a list or a dict")
    gold = _supporting_titles(record)
    return [
        QAParagraph(str(title), "".join(sentences).strip(), str(title) in gold)
        for title, sentences in pairs
    ]


class ParagraphIds:
    """Stable ids: the title, then ``title (n)`` for each further distinct text of that title."""

    def __init__(self) -> None:
        self._by_text: dict[tuple[str, str], str] = {}
        self._per_title: dict[str, int] = {}

    def assign(self, title: str, text: str) -> tuple[str, bool]:
        """The paragraph's id and whether it is new."""
        key = (title, text)
        if key in self._by_text:
            return self._by_text[key], False
        n = self._per_title.get(title, 0) + 1
        self._per_title[title] = n
        doc_id = title if n == 1 else f"{title} ({n})"
        self._by_text[key] = doc_id
        return doc_id, True


def read_qa_records(paths: Iterable[str | Path]) -> Iterator[tuple[str, dict[str, Any]]]:
    for path in paths:
        for where, record in read_records(path):
            if not is_qa_record(record):
                raise CorpusError(
                    f"{where}: not a multi-hop QA record (needs question and context or "
                    "paragraphs: HotpotQA, 2WikiMultihopQA or MuSiQue)"
                )
            yield where, record


def qa_documents(paths: Iterable[str | Path]) -> Iterator[Document]:
    """Each distinct context paragraph once, ids as in the module docstring."""
    ids = ParagraphIds()
    for where, record in read_qa_records(paths):
        for paragraph in qa_paragraphs(record, where):
            doc_id, new = ids.assign(paragraph.title, paragraph.text)
            if new:
                yield Document(
                    id=doc_id, title=paragraph.title, text=paragraph.text, fields={"source": where}
                )


def _answers(record: dict[str, Any]) -> tuple[str, ...]:
    answer = record.get("answer", record.get("answers", record.get("golden_answers", ())))
    values = answer if isinstance(answer, list) else [answer]
    aliases = record.get("answer_aliases") or []
    return tuple(dict.fromkeys(str(v) for v in [*values, *aliases] if str(v).strip()))


def qa_questions(paths: Iterable[str | Path]) -> Iterator[QAQuestion]:
    """Questions with gold answers and the document ids of their supporting paragraphs."""
    ids = ParagraphIds()
    for where, record in read_qa_records(paths):
        gold = []
        for paragraph in qa_paragraphs(record, where):
            doc_id, _ = ids.assign(paragraph.title, paragraph.text)
            if paragraph.supporting:
                gold.append(doc_id)
        qid = next((record[k] for k in ("id", "_id") if k in record), where)
        metadata = {k: record[k] for k in ("type", "level", "answerable") if k in record}
        yield QAQuestion(
            id=str(qid),
            question=str(record["question"]).strip(),
            answers=_answers(record),
            gold_ids=tuple(dict.fromkeys(gold)),
            metadata=metadata,
        )
