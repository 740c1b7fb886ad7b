"""``sleuth train simulator``: ZeroSearch's lightweight SFT that turns a model into a search
engine simulator.

Pairs (query, real retrieved document, useful/noisy) are collected from the real engine: from
the search steps of trajectories the agent already wrote (``eval run`` trajectories carry the
gold answers and evidence), or by running benchmark questions against an index. The text the
model learns is the document's opening, or, when a gold answer lies further on, its title and
the passage from the sentence that holds the answer. That text is *useful* when it contains a
gold answer (or is gold evidence of a yes/no question, whose answer no text spells out) and
*noisy* when the document is not gold evidence and holds no answer anywhere; gold evidence
without the answer (a bridge question's first hop) is left out, because it is neither: the
useful prompt asks for the facts that answer, the noisy one for a document without the answer.
Each pair becomes one chat example: the simulation prompt (``sleuth.search.simulated.prompts``,
the one the simulator uses at inference) and the real document as the model's turn. Training is
the SFT machinery of ``sleuth train sft`` (loss on the document only, LoRA by default).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sleuth.errors import DocumentNotFound, SleuthError
from sleuth.metrics import normalize_answer
from sleuth.search.simulated.prompts import simulation_messages


@dataclass(frozen=True)
class SimulatorPair:
    query: str
    document: str
    useful: bool
    question: str = ""
    answers: tuple[str, ...] = ()


def contains_answer(text: str, answers: Iterable[str]) -> bool:
    """Whether any gold answer appears in ``text`` (SQuAD-normalised, on word boundaries)."""
    body = f" {normalize_answer(text)} "
    return any(f" {a} " in body for a in map(normalize_answer, answers) if a)


_YES_NO = {"yes", "no"}
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


def label(
    doc_id: str, full_text: str, shown: str, answers: Sequence[str], evidence: set[str]
) -> bool | None:
    """True (useful), False (noisy) or None (neither: left out of training).

    ``shown`` is the text the model learns (``document_text``), ``full_text`` the whole one.
    """
    if contains_answer(shown, answers):
        return True
    if doc_id in evidence:
        return True if {normalize_answer(a) for a in answers} & _YES_NO else None
    return None if contains_answer(full_text, answers) else False


def document_text(doc: Any, words: int, answers: Sequence[str] = ()) -> str:
    """The first ``words`` words (title first); when a gold answer lies beyond them, the title
    and the text from the first sentence that holds the answer, so a useful document shows it."""

    def with_title(body: str) -> str:
        text = f"{doc.title}. {body}" if doc.title else body
        return " ".join(text.split()[:words])

    opening = with_title(doc.text)
    if not answers or contains_answer(opening, answers):
        return opening
    sentences = _SENTENCE_END.split(doc.text)
    for i, sentence in enumerate(sentences):
        if contains_answer(sentence, answers):
            return with_title(" ".join(sentences[i:]))
    return opening


def pairs_from_trajectories(path: Path, engine: Any, words: int = 30) -> list[SimulatorPair]:
    """Every (query, shown document) of the search steps of trajectories with gold metadata."""
    from sleuth.agent.log import TrajectoryLog

    if not path.is_file():
        raise SleuthError(f"{path}: no such trajectory file")
    pairs: list[SimulatorPair] = []
    for trajectory in TrajectoryLog(path).read():
        answers = tuple(trajectory.metadata.get("gold_answers") or ())
        evidence = {a for item in trajectory.metadata.get("gold_evidence") or () for a in item}
        if not answers:
            continue  # no gold: nothing says whether a document is useful
        for step in trajectory.searches:
            for hit in step.hits:
                if not hit.new or hit.engine:  # repeats, and simulated documents, teach nothing
                    continue
                try:
                    doc = engine.get(hit.id)
                except DocumentNotFound:
                    continue
                text = document_text(doc, words, answers)
                useful = label(doc.id, doc.text, text, answers, evidence)
                if useful is not None:
                    pairs.append(
                        SimulatorPair(step.argument, text, useful, trajectory.question, answers)
                    )
    return pairs


def pairs_from_index(
    engine: Any, questions: Sequence[Any], k: int = 5, words: int = 30
) -> list[SimulatorPair]:
    """Run each benchmark question as the query against the real engine; label its top ``k``
    (documents that are neither useful nor noisy are left out, see ``label``)."""
    pairs: list[SimulatorPair] = []
    for q in questions:
        evidence = {alias for aliases in q.gold_evidence for alias in aliases}
        for hit in engine.search(q.question, k):
            doc = engine.get(hit.id)
            text = document_text(doc, words, q.answers)
            useful = label(doc.id, doc.text, text, q.answers, evidence)
            if useful is not None:
                pairs.append(SimulatorPair(q.question, text, useful, q.question, tuple(q.answers)))
    return pairs


def balance(pairs: list[SimulatorPair]) -> list[SimulatorPair]:
    """As many useful as noisy pairs (interleaved), so the model learns both kinds."""
    useful = [p for p in pairs if p.useful]
    noisy = [p for p in pairs if not p.useful]
    n = min(len(useful), len(noisy))
    out: list[SimulatorPair] = []
    for a, b in zip(useful[:n], noisy[:n], strict=True):
        out += [a, b]
    return out


def write_examples(pairs: Sequence[SimulatorPair], path: Path) -> int:
    """One ``{"messages": [...]}`` line per pair: the simulation prompt, then the document."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as handle:
        for p in pairs:
            messages = simulation_messages(p.query, p.useful, p.question, p.answers)
            messages.append({"role": "assistant", "content": p.document})
            handle.write(json.dumps({"messages": messages}, ensure_ascii=False) + "\n")
    return len(pairs)


def train_simulator(
    out: Path,
    *,
    trajectories: Path | None,
    index: Path | None,
    benchmark: str,
    limit: int,
    k: int,
    words: int,
    sft: dict[str, Any],
    log: Any = print,
) -> dict[str, Any]:
    """Collect the pairs, write them beside OUT, and fine-tune with ``train_sft``."""
    from sleuth.search.factory import open_engine
    from sleuth.train.sft import SFTRunConfig, train_sft

    engine = open_engine(index).engine  # the bundled corpus without --index
    if trajectories is not None:
        pairs = pairs_from_trajectories(trajectories, engine, words)
        source = str(trajectories)
    else:
        from sleuth.evaluate.benchmarks import load_benchmark

        questions = load_benchmark(benchmark, limit=limit or None).questions
        pairs = pairs_from_index(engine, questions, k, words)
        source = f"{benchmark} questions on {index or 'the bundled index'}"
    useful = sum(1 for p in pairs if p.useful)
    kept = balance(pairs)
    if not kept:
        raise SleuthError(
            f"no training pairs from {source}: {len(pairs)} documents, {useful} useful; both "
            "useful and noisy documents are needed"
        )
    data = out.with_name(out.name + ".simulator-data.jsonl")
    write_examples(kept, data)
    log(f"{len(pairs)} documents from {source} ({useful} useful); {len(kept)} balanced -> {data}")
    summary = train_sft(SFTRunConfig(data=str(data), out=str(out), data_format="messages", **sft))
    summary["pairs"] = {"documents": len(pairs), "useful": useful, "trained": len(kept)}
    return summary
