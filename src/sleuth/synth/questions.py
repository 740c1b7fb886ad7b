"""``sleuth synth questions``: proposed-and-verified questions (Search Self-play, WebExplorer).

1. **Propose** (the one agent loop, ``sleuth.agent.Agent``): from a seed document drawn from
   the index, the proposer explores with search/open (``--hops`` searches at least) and ends
   with ``<answer>`` holding a short fact it read (by default the grammar makes it choose one of
   the short spans of the documents it retrieved: ``AgentConfig.answer_spans``). Its last turn
   writes the question for that answer from the documents it saw; that turn is one plain model
   call outside the action grammar, because the grammar caps an answer action at 10 words and
   questions are longer (so no hook in the loop is needed).
2. **Verify** (SSP): the answer must be a short span (at most 5 words) found in a document the
   proposer saw; the RAG solver (the loop's ``rag`` configuration) given *every* document the
   proposer retrieved must answer correctly (EM or short cover-EM, ``sleuth.metrics``);
   a closed-book solver answering correctly marks the question too easy (kept with a flag, or
   dropped with ``--drop-easy``).
3. **Evolve** (WebExplorer, ``--evolve``): accepted questions are rewritten to hide their most
   direct clue (the seed document's title, named in the question) and verified again; the
   rewrite replaces the question only when it still verifies.

The output is benchmark JSONL (``id``, ``question``, ``golden_answers``, ``gold_ids``,
``metadata``) that ``sleuth eval run --benchmark FILE`` and ``sleuth train agent --benchmark
FILE`` read.
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from sleuth.agent import Agent, AgentConfig
from sleuth.agent.trajectory import Trajectory
from sleuth.llm.base import LLM, GenerationConfig
from sleuth.metrics import (
    SHORT_ANSWER_WORDS,
    contains_words,
    exact_match,
    normalize_answer,
    short_cover_exact_match,
)
from sleuth.types import Document, Hit

MAX_QUESTION_CHARS = 300


@dataclass
class Proposal:
    seed_id: str
    seed_title: str
    question: str = ""
    answer: str = ""
    evidence_ids: list[str] = field(default_factory=list)
    retrieved_ids: list[str] = field(default_factory=list)
    rejected: str = ""  # why it failed verification ("" = accepted)
    rag_answer: str | None = None
    closed_book_answer: str | None = None
    too_easy: bool = False
    evolved_from: str = ""  # the question before --evolve rewrote it
    proposer_trajectory: str = ""  # episode id in the trajectories file

    @property
    def accepted(self) -> bool:
        return not self.rejected


def correct(prediction: str | None, answer: str) -> bool:
    """The eval metrics' notion of right: exact match or short cover-EM."""
    return bool(exact_match(prediction, [answer]) or short_cover_exact_match(prediction, [answer]))


def contains_answer(question: str, answer: str) -> bool:
    """The answer appears in the question, possessives included: the metrics' normalisation
    reads "Panettiere's" as "panettieres", which let "What is Hayden Leslie Panettiere's
    name?" through with the answer "Hayden Leslie Panettiere"."""
    without_possessives = re.sub(r"(?<=\w)['\u2019]s\b", "", question)
    return contains_words(question, [answer]) or contains_words(without_possessives, [answer])


def proposer_task(seed: Document, hops: int) -> str:
    """The proposer's user turn: explore from the seed, end with a short fact as the answer."""
    return (
        "You are writing a quiz question, not answering one. Explore the document collection "
        f'starting from the topic "{seed.title}": search for it, then search for something '
        f"its documents mention ({hops} searches in all), so that the fact connects "
        "documents. Then give, as the answer, one short fact you read (a name, a date, a "
        "place or a number: a few words copied from a document)."
    )


def question_messages(answer: str, documents: Sequence[Document]) -> list[dict[str, str]]:
    shown = "\n".join(f"- {d.title}: {' '.join(d.text.split())[:400]}" for d in documents)
    return [
        {"role": "system", "content": "You write quiz questions from documents."},
        {
            "role": "user",
            "content": f"Documents:\n{shown}\n\nWrite one question whose answer is "
            f'"{answer}", using facts from the documents. Do not put the answer in the '
            "question. Reply with the question only.",
        },
    ]


def evolve_messages(question: str, clue: str) -> list[dict[str, str]]:
    return [
        {"role": "system", "content": "You rewrite quiz questions to make them harder."},
        {
            "role": "user",
            "content": f'Question: {question}\nRewrite the question so it does not say "{clue}": '
            "describe it instead, keeping the same answer. Reply with the question only.",
        },
    ]


def clean_question(text: str) -> str:
    """First line of the model's reply, without a label or quotes; ends with '?'."""
    line = next((ln for ln in text.strip().splitlines() if ln.strip()), "").strip()
    line = re.sub(r"^(question|q)\s*[:.-]\s*", "", line, flags=re.IGNORECASE).strip().strip('"')
    line = " ".join(line.split())[:MAX_QUESTION_CHARS]
    if line and "?" in line:
        line = line[: line.index("?") + 1]
    return line


class FixedDocuments:
    """A ``SearchEngine`` that returns the same given documents for any query: how the RAG
    solver is shown every document the proposer retrieved, through the loop's own rag path."""

    name = "proposer-documents"

    def __init__(self, documents: Sequence[Document]) -> None:
        self.documents = list(documents)

    def search(self, query: str, k: int = 10) -> list[Hit]:
        return [Hit(d.id, 1.0, d.title, d.text, rank) for rank, d in enumerate(self.documents, 1)][
            :k
        ]

    def search_batch(self, queries: Sequence[str], k: int = 10) -> list[list[Hit]]:
        return [self.search(q, k) for q in queries]

    def get(self, doc_id: str) -> Document:
        from sleuth.errors import DocumentNotFound

        for d in self.documents:
            if d.id == doc_id:
                return d
        raise DocumentNotFound(f"no document with id {doc_id!r}")

    def __len__(self) -> int:
        return len(self.documents)


def proposer_episode(**changes: Any) -> AgentConfig:
    """The proposer's episode with ``changes``: longer turns and hits than the loop's
    defaults, and its answer chosen from the short spans of what it retrieved (under the
    grammar): free answers from small models were mostly sentences or invented names."""
    settings: dict[str, Any] = {"max_new_tokens": 64, "doc_chars": 400, "answer_spans": True}
    return AgentConfig(**{**settings, **changes})


@dataclass(frozen=True)
class SynthSettings:
    n: int = 20
    hops: int = 2
    evolve: bool = False
    drop_easy: bool = False
    seed: int = 0  # of the seed-document draw (not the model's sampling: that is agent.seed)
    # The proposer's episode (its actions, turns and searches follow from ``hops``; its
    # temperature is its sampling: self-play samples a GRPO group). The verifying solvers read
    # as it does (top_k, max_new_tokens, doc_chars) but answer greedily and freely.
    agent: AgentConfig = field(default_factory=proposer_episode)


class QuestionSynthesizer:
    """Propose, verify and (optionally) evolve questions with one LLM over one engine."""

    def __init__(self, llm: LLM, engine: Any, settings: SynthSettings) -> None:
        self.llm, self.engine, self.settings = llm, engine, settings
        self.trajectories: list[Trajectory] = []

    def _config(self, **changes: Any) -> AgentConfig:
        """A verifying solver's episode: read as the proposer does, answer greedily."""
        a = self.settings.agent
        base: dict[str, Any] = {
            "top_k": a.top_k,
            "max_new_tokens": a.max_new_tokens,
            "doc_chars": a.doc_chars,
            "untagged_answer": True,
        }
        return AgentConfig(**{**base, **changes})

    def seeds(self) -> list[Document]:
        """Seed documents drawn without replacement from the collection, by ``seed``."""
        docs = getattr(self.engine, "_docs", None)
        if docs is None:
            from sleuth.errors import SleuthError

            raise SleuthError("synth questions needs a local index (--index), not a server")
        rng = random.Random(self.settings.seed)
        rows = rng.sample(range(len(docs)), min(self.settings.n, len(docs)))
        return [self.engine.get(h.id) for h in docs.hits(rows, [0.0] * len(rows))]

    async def _complete(self, messages: list[dict[str, str]]) -> str:
        config = GenerationConfig(max_tokens=self.settings.agent.max_new_tokens, temperature=0.0)
        return (await self.llm.complete(messages, config)).text

    async def propose(self, seed: Document, index: int) -> Proposal:
        s = self.settings
        proposal = Proposal(seed.id, seed.title)
        agent = Agent(
            self.llm,
            self.engine,
            replace(
                s.agent,
                untagged_answer=True,
                actions=("search", "open", "answer"),
                prefetch_k=s.agent.top_k,  # the first search, of the seed's title, is given
                max_turns=s.hops + 3,
                max_searches=s.hops + 1,
                min_searches=max(0, s.hops - 1),
                prompt_example=False,  # small models copy the example's invented topic
                answer_yes_no=False,  # not a fact read in a document
            ),
        )
        trajectory = await agent.run(
            proposer_task(seed, s.hops),
            episode_id=f"proposer-{s.seed}-{index}",
            metadata={"role": "proposer", "seed_id": seed.id},
            # Searching the whole task found the same documents for every seed (its generic
            # words outweigh the title in BM25): 7 of 20 proposals answered "1970".
            prefetch_query=seed.title,
        )
        self.trajectories.append(trajectory)
        proposal.proposer_trajectory = trajectory.episode_id
        proposal.answer = " ".join((trajectory.answer or "").split()).strip(" .")
        proposal.retrieved_ids = list(trajectory.retrieved_ids)
        if seed.id not in proposal.retrieved_ids:
            proposal.retrieved_ids.insert(0, seed.id)  # the seed was read to pick the topic
        documents = [self.engine.get(i) for i in proposal.retrieved_ids]
        if not proposal.answer:
            proposal.rejected = "no answer"
            return proposal
        if len(proposal.answer.split()) > SHORT_ANSWER_WORDS:
            proposal.rejected = f"answer longer than {SHORT_ANSWER_WORDS} words"
            return proposal
        proposal.evidence_ids = [
            d.id for d in documents if contains_words(f"{d.title} {d.text}", [proposal.answer])
        ]
        if not proposal.evidence_ids:
            proposal.rejected = "answer not in any retrieved document"
            return proposal
        proposal.question = clean_question(
            await self.write_question(proposal.answer, documents, trajectory)
        )
        if not proposal.question.endswith("?") or len(proposal.question.split()) < 4:
            proposal.rejected = "no well-formed question"
            return proposal
        if contains_answer(proposal.question, proposal.answer):
            proposal.rejected = "question contains its answer"
            return proposal
        await self.verify(proposal, documents)
        if proposal.accepted and s.evolve:
            await self.evolve(proposal, documents)
        return proposal

    async def write_question(
        self, answer: str, documents: Sequence[Document], trajectory: Trajectory
    ) -> str:
        """The question for ``answer``: one plain call with the documents listed (self-play
        training overrides it to continue the proposer's own episode instead)."""
        return await self._complete(question_messages(answer, documents))

    def solver_llm(self) -> LLM:
        """The model each verification episode uses (self-play: a fresh policy stream)."""
        return self.llm

    async def solve(self, question: str, documents: Sequence[Document] | None) -> str | None:
        """The RAG solver (all ``documents`` shown) or, without documents, closed book."""
        if documents is None:
            agent = Agent(self.solver_llm(), None, self._config(actions=("answer",), max_turns=2))
        else:
            agent = Agent(
                self.solver_llm(),
                FixedDocuments(documents),
                self._config(actions=("answer",), prefetch_k=len(documents), max_turns=2),
            )
        trajectory = await agent.run(question, metadata={"role": "solver"})
        return trajectory.answer

    async def verify(self, proposal: Proposal, documents: Sequence[Document]) -> None:
        proposal.rag_answer = await self.solve(proposal.question, documents)
        if not correct(proposal.rag_answer, proposal.answer):
            proposal.rejected = "the RAG solver with the proposer's documents got it wrong"
            return
        proposal.closed_book_answer = await self.solve(proposal.question, None)
        proposal.too_easy = correct(proposal.closed_book_answer, proposal.answer)

    async def evolve(self, proposal: Proposal, documents: Sequence[Document]) -> None:
        clue = proposal.seed_title
        if not clue or clue.lower() not in proposal.question.lower():
            return  # the question does not name its seed: nothing direct to hide
        rewritten = clean_question(await self._complete(evolve_messages(proposal.question, clue)))
        if not rewritten.endswith("?") or clue.lower() in rewritten.lower():
            return
        if contains_answer(rewritten, proposal.answer):
            return
        trial = Proposal(**{**asdict(proposal), "question": rewritten})
        await self.verify(trial, documents)
        if trial.accepted:
            trial.evolved_from = proposal.question
            proposal.__dict__.update(trial.__dict__)

    async def run(self, on_result: Callable[[Proposal], None] | None = None) -> list[Proposal]:
        """One proposal per seed. A question accepted before (up to case, punctuation and
        articles) is rejected: different seeds can lead to the same document and question, and
        a benchmark of copies would overstate what was synthesised."""
        out, accepted = [], set()
        for index, seed in enumerate(self.seeds()):
            proposal = await self.propose(seed, index)
            key = normalize_answer(proposal.question)
            if proposal.accepted and key in accepted:
                proposal.rejected = "the same question was accepted before"
            elif proposal.accepted:
                accepted.add(key)
            out.append(proposal)
            if on_result:
                on_result(proposal)
        return out


def benchmark_record(proposal: Proposal, index: int) -> dict[str, Any]:
    """One line of benchmark JSONL (``read_questions`` reads ``gold_ids`` as evidence)."""
    return {
        "id": f"synth-{index:05d}",
        "question": proposal.question,
        "golden_answers": [proposal.answer],
        "gold_ids": proposal.evidence_ids,
        "metadata": {
            "too_easy": proposal.too_easy,
            "seed_id": proposal.seed_id,
            "retrieved_ids": proposal.retrieved_ids,
            "evolved_from": proposal.evolved_from,
            "proposer_trajectory": proposal.proposer_trajectory,
        },
    }


def write_outputs(proposals: Sequence[Proposal], out: Path, drop_easy: bool) -> dict[str, Any]:
    """The accepted questions to ``out``, every proposal to ``out``.proposals.jsonl; stats."""
    accepted = [p for p in proposals if p.accepted and not (drop_easy and p.too_easy)]
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    with tmp.open("w", encoding="utf-8") as handle:
        for index, proposal in enumerate(accepted, start=1):
            handle.write(json.dumps(benchmark_record(proposal, index), ensure_ascii=False) + "\n")
    tmp.replace(out)
    with out.with_name(out.name + ".proposals.jsonl").open("w", encoding="utf-8") as handle:
        for proposal in proposals:
            handle.write(json.dumps(asdict(proposal), ensure_ascii=False) + "\n")
    verified = [p for p in proposals if p.accepted]
    reasons: dict[str, int] = {}
    for p in proposals:
        if p.rejected:
            reasons[p.rejected] = reasons.get(p.rejected, 0) + 1
    return {
        "proposals": len(proposals),
        "verified": len(verified),
        "acceptance_rate": round(len(verified) / len(proposals), 3) if proposals else 0.0,
        "too_easy": sum(p.too_easy for p in verified),
        "share_too_easy": round(sum(p.too_easy for p in verified) / len(verified), 3)
        if verified
        else None,
        "evolved": sum(1 for p in verified if p.evolved_from),
        "written": len(accepted),
        "rejected_because": reasons,
    }


# Small models that rarely write a question that verifies (docs/simulation.md, "Measured here").
_SMALL_MODELS = ("packaged", "smollm2", "135m")
BIGGER_MODEL = "qwen2.5-coder-0.5b"


def no_questions_hint(stats: dict[str, Any], model: str | None, out: Path) -> str | None:
    """What to say when nothing was written: the main rejection reasons, where every proposal
    is, and (for the packaged 135M model, which almost never verifies) the bigger model."""
    if stats["written"]:
        return None
    reasons = sorted(stats["rejected_because"].items(), key=lambda item: -item[1])[:3]
    because = "; ".join(f"{why} ({count})" for why, count in reasons) or "none rejected"
    hint = (
        f"wrote no questions: {stats['verified']} of {stats['proposals']} proposals verified "
        f"(rejected because: {because}); every proposal and why: {out}.proposals.jsonl"
    )
    if stats["verified"]:
        hint += "; the verified ones were too easy and --drop-easy left them out"
    spec = (model or "packaged").lower()
    if any(name in spec for name in _SMALL_MODELS):
        hint += (
            f". The packaged SmolLM2-135M rarely writes a question that verifies; a bigger model "
            f"accepts about a fifth of its proposals: --model {BIGGER_MODEL} "
            "(`sleuth model list`, docs/simulation.md)"
        )
    return hint
