"""``sleuth train simulator``: ZeroSearch's lightweight SFT that turns a model into a search
engine simulator.

Pairs (query, real retrieved document, useful/noisy) are collected from the real engine: from
the search steps of trajectories the agent already wrote (``eval run`` trajectories carry the
gold answers and evidence), or by running benchmark questions against an index. A document is
*useful* when it is gold evidence or contains a gold answer, else *noisy*. Each pair becomes
one chat example: the simulation prompt (``sleuth.search.simulated.prompts``, the one the
simulator uses at inference) and the real document as the model's turn. Training is the SFT
machinery of ``sleuth train sft`` (loss on the document only, LoRA by default).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sleuth.errors import DocumentNotFound, SleuthError
from sleuth.evaluate.metrics import normalize_answer
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


def is_useful(doc_id: str, text: str, answers: Sequence[str], evidence: set[str]) -> bool:
    return doc_id in evidence or contains_answer(text, answers)


def document_text(doc: Any, words: int) -> str:
    body = " ".join(f"{doc.title}. {doc.text}".split() if doc.title else doc.text.split())
    cut = body.split()[:words]
    return " ".join(cut)


def pairs_from_trajectories(path: Path, engine: Any, words: int = 60) -> list[SimulatorPair]:
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
                text = document_text(doc, words)
                useful = is_useful(doc.id, doc.text, answers, evidence)
                pairs.append(
                    SimulatorPair(step.argument, text, useful, trajectory.question, answers)
                )
    return pairs


def pairs_from_index(
    engine: Any, questions: Sequence[Any], k: int = 5, words: int = 60
) -> list[SimulatorPair]:
    """Run each benchmark question as the query against the real engine; label its top ``k``."""
    pairs: list[SimulatorPair] = []
    for q in questions:
        evidence = {alias for aliases in q.gold_evidence for alias in aliases}
        for hit in engine.search(q.question, k):
            useful = is_useful(hit.id, hit.text, q.answers, evidence)
            doc = engine.get(hit.id)
            text = document_text(doc, words)
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
    from sleuth.search import open_index
    from sleuth.search.cache import bundled_index
    from sleuth.train.sft import SFTRunConfig, train_sft

    engine = open_index(index or bundled_index("hotpotqa-1100"))
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
