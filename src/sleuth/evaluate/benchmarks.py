"""Question-answering benchmarks: the bundled sets by name, or any FlashRAG-style JSONL file.

A benchmark question carries its gold answers and, when known, its gold evidence: one entry per
supporting paragraph, each a tuple of interchangeable ids (the BEIR ``docN`` id and the
Wikipedia title) so evidence recall works whether the index was built from the BEIR folder or
from the raw HotpotQA files (which key paragraphs by title).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from sleuth.corpus.bundled import DATA_DIR
from sleuth.corpus.jsonl import read_jsonl, read_records
from sleuth.corpus.multihop import ParagraphIds, is_qa_record, qa_paragraphs
from sleuth.errors import CorpusError, SleuthError

HOTPOT_DIR = DATA_DIR / "hotpotqa_dev_1100"
HOTPOT_BEIR_DIR = DATA_DIR / "hotpotqa_dev_1100_beir"
MULTIHOP_DIR = DATA_DIR / "multihop_qa_500"
HOTPOT_SPLITS = ("train", "dev", "test")

# name -> (description, files); the hotpotqa-1100 names also carry gold evidence.
REGISTRY: dict[str, tuple[str, tuple[Path, ...]]] = {
    "hotpotqa-1100": (
        "HotpotQA dev, 1,100 hard multi-hop questions with supporting paragraphs",
        tuple(HOTPOT_DIR / f"{split}.jsonl" for split in HOTPOT_SPLITS),
    ),
    **{
        f"hotpotqa-1100:{split}": (
            f"the {split} split of hotpotqa-1100",
            (HOTPOT_DIR / f"{split}.jsonl",),
        )
        for split in HOTPOT_SPLITS
    },
    "hotpotqa-500": (
        "HotpotQA, 500 questions (R1-Searcher set)",
        (MULTIHOP_DIR / "hotpotqa_500.jsonl",),
    ),
    "2wiki-500": ("2WikiMultihopQA, 500 questions", (MULTIHOP_DIR / "2wiki_500.jsonl",)),
    "musique-500": ("MuSiQue, 500 questions", (MULTIHOP_DIR / "musique_500.jsonl",)),
    "bamboogle": ("Bamboogle, 125 questions", (MULTIHOP_DIR / "bamboogle.jsonl",)),
}


@dataclass(frozen=True, slots=True)
class BenchmarkQuestion:
    id: str
    question: str
    answers: tuple[str, ...]
    gold_evidence: tuple[tuple[str, ...], ...] = ()  # one alias tuple per gold paragraph
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Benchmark:
    name: str
    questions: list[BenchmarkQuestion]

    @property
    def has_evidence(self) -> bool:
        return any(q.gold_evidence for q in self.questions)


@lru_cache(maxsize=4)
def _title_to_beir_id(corpus_path: Path) -> dict[str, str]:
    """Wikipedia title -> BEIR ``_id`` of the bundled corpus (titles are unique there)."""
    mapping: dict[str, str] = {}
    for _, record in read_jsonl(corpus_path):
        mapping.setdefault(str(record.get("title", "")), str(record["_id"]))
    return mapping


def _answers(record: dict[str, Any], where: str) -> tuple[str, ...]:
    for key in ("golden_answers", "answers", "answer"):
        if key in record:
            value = record[key]
            values = value if isinstance(value, list) else [value]
            values = [*values, *(record.get("answer_aliases") or [])]  # MuSiQue
            answers = tuple(dict.fromkeys(str(v) for v in values if str(v).strip()))
            if answers:
                return answers
            raise CorpusError(f"{where}: {key!r} is empty")
    raise CorpusError(f"{where}: no gold answer (expected golden_answers, answers or answer)")


# Fields of a clarification benchmark (``sleuth synth ambiguous``) kept in a question's
# metadata: the simulated user answers from the intent, the metrics split on ``ambiguous`` and
# ``eval run --full-intent`` asks ``original_question`` instead.
CLARIFY_FIELDS = (
    "ambiguous",
    "intent",
    "intent_kind",
    "removed",
    "original_question",
    "supporting_titles",
    "split",
)
GOLD_ID_KEYS = ("gold_ids", "gold_doc_ids", "supporting_ids", "evidence_ids")


def _supporting_titles(record: dict[str, Any]) -> list[str]:
    facts = record.get("supporting_facts")
    if facts is None and isinstance(record.get("metadata"), dict):  # FlashRAG keeps it there
        facts = record["metadata"].get("supporting_facts")
    facts = facts or {}
    titles = facts.get("title", []) if isinstance(facts, dict) else [f[0] for f in facts]
    return list(dict.fromkeys(str(t) for t in titles))


def _evidence(record: dict[str, Any], title_ids: dict[str, str]) -> tuple[tuple[str, ...], ...]:
    items = []
    for title in _supporting_titles(record):
        beir_id = title_ids.get(title)
        items.append((beir_id, title) if beir_id else (title,))
    return tuple(items)


def _gold_by_id(record: dict[str, Any], where: str) -> tuple[tuple[str, ...], ...] | None:
    key = next((k for k in GOLD_ID_KEYS if k in record), None)
    if key is None:
        return None
    value = record[key]
    if not isinstance(value, list) or not all(isinstance(v, str | int) for v in value):
        raise CorpusError(f"{where}: {key!r} must be a list of document ids")
    return tuple((str(v),) for v in dict.fromkeys(value))


def read_questions(
    path: Path,
    title_ids: dict[str, str] | None = None,
    qrels: dict[str, dict[str, int]] | None = None,
) -> Iterator[BenchmarkQuestion]:
    """Records in FlashRAG (``id``, ``question``, ``golden_answers``), R1-Searcher (``idx``,
    ``question``, ``answer``), HotpotQA / 2WikiMultihopQA (``supporting_facts``) or MuSiQue
    (``paragraphs`` with ``is_supporting``) layout, as JSONL or one JSON array.

    Gold evidence, first found wins: ``qrels`` (``{question_id: {doc_id: gain}}``, by document
    id), a ``gold_ids`` list in the record, the supporting context paragraphs (ids as
    ``sleuth.corpus.multihop`` gives them), then supporting-fact titles.
    """
    seen: set[str] = set()
    paragraph_ids = ParagraphIds()
    for where, record in read_records(path):
        question = record.get("question")
        if not isinstance(question, str) or not question.strip():
            raise CorpusError(f"{where}: record has no 'question' text")
        raw_id = next((record[k] for k in ("id", "_id", "idx") if k in record), None)
        qid = str(raw_id) if raw_id is not None else f"{path.stem}-{len(seen) + 1}"
        if qid in seen:
            raise CorpusError(f"{where}: duplicate question id {qid!r}")
        seen.add(qid)
        metadata = {k: record[k] for k in ("type", "level", *CLARIFY_FIELDS) if k in record}
        if isinstance(record.get("metadata"), dict):
            metadata.update(record["metadata"])
        by_context: tuple[tuple[str, ...], ...] = ()
        if is_qa_record(record):  # ids of supporting paragraphs, as the corpus loader gives them
            items = []
            for paragraph in qa_paragraphs(record, where):
                doc_id, _ = paragraph_ids.assign(paragraph.title, paragraph.text)
                if not paragraph.supporting:
                    continue
                if "context" in record:  # HotpotQA / 2Wiki key paragraphs by title
                    aliases = [(title_ids or {}).get(paragraph.title), paragraph.title]
                else:  # MuSiQue: several paragraphs per title, so by the paragraph's own id
                    aliases = [doc_id]
                item = tuple(a for a in aliases if a)
                if item not in items:
                    items.append(item)
            by_context = tuple(items)
        if qrels is not None and qid in qrels:
            gold = tuple((doc,) for doc, gain in qrels[qid].items() if gain > 0)
        else:
            gold = _gold_by_id(record, where) or by_context or _evidence(record, title_ids or {})
        yield BenchmarkQuestion(
            id=qid,
            question=question.strip(),
            answers=_answers(record, where),
            gold_evidence=gold,
            metadata=metadata,
        )


def load_benchmark(
    name_or_path: str | Path,
    limit: int | None = None,
    qrels: dict[str, dict[str, int]] | None = None,
) -> Benchmark:
    """A registered benchmark by name (see ``REGISTRY``) or a JSONL / JSON-array file; first
    ``limit``; ``qrels`` gives gold evidence by document id (see ``read_questions``)."""
    key = str(name_or_path)
    if key in REGISTRY:
        files = REGISTRY[key][1]
        bundled_hotpot = key.startswith("hotpotqa-1100")
        title_ids = _title_to_beir_id(HOTPOT_BEIR_DIR / "corpus.jsonl") if bundled_hotpot else None
        name = key
    else:
        path = Path(name_or_path).expanduser()
        if not path.is_file():
            known = ", ".join(REGISTRY)
            raise SleuthError(f"{path}: no such benchmark file (known names: {known})")
        files, title_ids, name = (path,), None, path.stem
    questions: list[BenchmarkQuestion] = []
    for file in files:
        for question in read_questions(file, title_ids, qrels):
            questions.append(question)
            if limit is not None and len(questions) >= limit:
                return Benchmark(name, questions)
    if not questions:
        raise CorpusError(f"{name}: the benchmark holds no questions")
    return Benchmark(name, questions)


def describe() -> str:
    return "\n".join(f"{name}: {text}" for name, (text, _) in REGISTRY.items())


def unmatched_evidence(questions: list[BenchmarkQuestion], has_id: Any) -> tuple[int, list[str]]:
    """How many gold evidence items name no document ``has_id`` knows, and a few examples.

    Evidence recall counts such items as missed, so a corpus keyed by other ids (a BEIR
    ``m6`` where the questions name titles) would otherwise score 0.000 silently.
    """
    missing, examples = 0, []
    for question in questions:
        for aliases in question.gold_evidence:
            if not any(has_id(alias) for alias in aliases):
                missing += 1
                if len(examples) < 3:
                    examples.append(aliases[0])
    return missing, examples
