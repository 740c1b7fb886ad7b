"""A searcher that plays the ``links`` pipeline: priming episodes whose every action follows
from what the searcher sees (``sleuth synth trajectories --searcher K --teacher links``).

The gold script (``synth.searcher_script``) searches for the gold paragraph by its title, which
the searcher cannot see; the 135M searcher primed on it learned the numbers of its selections,
not how to choose (docs/evaluation.md). ``links`` (docs/evaluation.md) reads the documents that
the question and its best hit *name*, and with the 1.5B reader it beats RAG by +0.08 F1 without
any gold. Its choices are a function of the text on the screen: search a capitalised name the
question (or document [1]) contains, then select the hit titled by it. A searcher primed on them
should learn a policy it can carry out on questions it has never seen. The 135M did not: it
copies names, but `links` tells a link by trying every name, which 3 searches cannot
(docs/evaluation.md, "A 135M searcher primed on link following").
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from sleuth.agent.prompts import FORCE_SELECT
from sleuth.evaluate.benchmarks import BenchmarkQuestion
from sleuth.evaluate.methods import eval_budget
from sleuth.evaluate.pipelines import run_pipeline
from sleuth.llm.base import Message
from sleuth.search.base import SearchEngine
from sleuth.synth.searcher_script import (
    NUMBERED_HIT,
    NumberedHits,
    gold_reader,
    scripted_action,
)
from sleuth.synth.words import argument

LINK_BEHAVIOURS = (
    "prefetched",  # turn 0 was the loop's own retrieval of the question (always)
    "selected_at_once",  # every document links reads was among RAG's and had no name to look up
    "shown_link",  # looked up the name of a linked document RAG already showed (one search)
    "question_link",  # searched a name the question contains
    "best_link",  # searched a name document [1] contains
    "selected_new",  # the selection holds a document only a follow-up search found
    "think",  # a short thought before a search
)


@dataclass(frozen=True)
class LinkPlan:
    """What ``links`` read for one question (cut to the read budget) and the name that found
    each linked document; the answer is what the scripted reader says."""

    read: tuple[str, ...]
    names: dict[str, str]  # linked document id -> the name searched to find it
    from_question: frozenset[str]  # linked ids named by the question (else by document [1])
    answer: str


async def link_plan(question: BenchmarkQuestion, search: SearchEngine, k: int) -> LinkPlan | None:
    """The links pipeline's read of ``question`` under a read budget of ``k`` documents (its
    own searches on the same engine; the answer call is a scripted one), or None when the
    question has no short answer to say."""
    if not question.answers or not question.answers[0].strip():
        return None
    answer = question.answers[0].strip()
    traj = await run_pipeline("links", question, gold_reader(answer), search, eval_budget(top_k=k))
    links = traj.metadata.get("links") or {}
    if not traj.metadata.get("read"):
        return None
    return LinkPlan(
        read=tuple(traj.metadata["read"]),
        names=dict(links.get("names") or {}),
        from_question=frozenset(links.get("question") or ()),
        answer=answer,
    )


def take_turn(
    script: LinkSearcherScript | FollowSearcherScript,
    name: str,
    text: str,
    thought: str = "",
    behaviour: str = "",
) -> str:
    """A scripted searcher's next action (``scripted_action``), counted as one of its turns."""
    script.turns += 1
    return scripted_action(
        name, text, script.rng, script.think_rate, script.behaviours, thought, behaviour
    )


@dataclass
class LinkSearcherScript:
    """One question's scripted searcher (called by ``ScriptedLLM`` with the conversation):
    searches the name of each document links reads that RAG's top K lacks, in links' order,
    then selects links' read by the episode-wide numbers."""

    plan: LinkPlan
    rng: random.Random
    max_turns: int
    max_searches: int
    think_rate: float = 0.5
    shown: NumberedHits = field(default_factory=NumberedHits)
    searched: set[str] = field(default_factory=set)  # linked ids whose name was searched
    turns: int = 0
    behaviours: list[str] = field(default_factory=list)

    def _act(self, name: str, text: str, thought: str = "", behaviour: str = "") -> str:
        return take_turn(self, name, text, thought, behaviour)

    def _searches_left(self) -> int:
        return self.max_searches - 1 - len(self.searched)  # the loop counts its prefetch

    def _search(self, doc_id: str, behaviour: str = "") -> str:
        self.searched.add(doc_id)
        name = self.plan.names[doc_id]
        where = "the question" if doc_id in self.plan.from_question else "[1]"
        if not behaviour:
            behaviour = "question_link" if doc_id in self.plan.from_question else "best_link"
        why = f"{where} names {name}; find its page"
        return self._act("search", argument(name, "search"), why, behaviour)

    def _select(self) -> str:
        picked = [doc_id for doc_id in self.plan.read if doc_id in self.shown.numbers]
        if not self.searched:
            self.behaviours.append("selected_at_once")
        if set(picked) - self.shown.prefetched:
            self.behaviours.append("selected_new")
        numbers = ", ".join(str(self.shown.numbers[doc_id]) for doc_id in picked)
        return self._act("select", numbers or "1")

    def __call__(self, messages: list[Message]) -> str:
        if self.shown.observe(messages, first=self.turns == 0) and self.turns == 0:
            self.behaviours.append("prefetched")
        forced = FORCE_SELECT in str(messages[-1].get("content") or "")
        can_search = self._searches_left() > 0 and self.max_turns - self.turns > 1
        if not forced and can_search:
            for doc_id in self.plan.read:
                unseen = doc_id not in self.shown.numbers and doc_id not in self.searched
                if unseen and doc_id in self.plan.names:
                    return self._search(doc_id)
            if not self.searched and (shown := self._shown_link()):
                return self._search(shown, behaviour="shown_link")
        return self._select()

    def _shown_link(self) -> str | None:
        """A linked document RAG already showed, to look up before selecting: the first action
        is then always a search. Primed on episodes that selected at once when RAG held the
        whole read (90 of 201), the 135M chose ``<select>`` first on each of the first 32 test
        questions, greedy decoding resolving a near coin flip the same way each time."""
        linked = [doc_id for doc_id in self.plan.read if doc_id in self.plan.names]
        return linked[0] if linked else next(iter(self.plan.names), None)


FOLLOW_BEHAVIOURS = (
    "prefetched",  # turn 0 was the loop's own retrieval of the question (always)
    "question_follow",  # followed the names of the question (<follow>0</follow>)
    "best_follow",  # followed the names of document [1], RAG's best hit
    "selected_new",  # the selection holds a document only a follow found
    "think",  # a short thought before a follow
)


@dataclass
class FollowSearcherScript:
    """One question's scripted searcher for ``searcher_links@K`` (``--teacher follow``): it
    follows the question's names (0, when it has any) and document [1]'s, then selects [1], the
    documents the question links to and the first that [1] links to, cut to K: ``links``' read
    made of numbers on the screen. Every choice is a rule over what was shown, so the lesson is
    one a searcher can carry out (the ``links`` teacher's was not: which names are titles shows
    only after trying them, which ``follow`` does and one search a name cannot)."""

    k: int
    question_has_names: bool
    rng: random.Random
    think_rate: float = 0.5
    shown: NumberedHits = field(default_factory=NumberedHits)
    followed: list[int] = field(default_factory=list)
    links: dict[int, list[int]] = field(default_factory=dict)  # source -> numbers it showed
    turns: int = 0
    behaviours: list[str] = field(default_factory=list)

    def _act(self, name: str, text: str, thought: str = "", behaviour: str = "") -> str:
        return take_turn(self, name, text, thought, behaviour)

    def selection(self) -> list[int]:
        """[1], what the question links to, then the first new link of [1]; at most K."""
        from_question = self.links.get(0, [])
        from_best = [n for n in self.links.get(1, []) if n not in from_question and n != 1]
        return list(dict.fromkeys([1, *from_question, *from_best[:1]]))[: self.k]

    def __call__(self, messages: list[Message]) -> str:
        first = self.turns == 0
        if self.shown.observe(messages, first=first) and first:
            self.behaviours.append("prefetched")
        content = str(messages[-1].get("content") or "")
        if self.followed and not first and self.followed[-1] not in self.links:
            self.links[self.followed[-1]] = [int(n) for n, _ in NUMBERED_HIT.findall(content)]
        if FORCE_SELECT not in content:
            if 0 not in self.followed and self.question_has_names:
                self.followed.append(0)
                why = "the question names documents; follow them"
                return self._act("follow", "0", why, "question_follow")
            if 1 not in self.followed:
                self.followed.append(1)
                why = "[1] may name the next document; follow it"
                return self._act("follow", "1", why, "best_follow")
        picked = self.selection()
        if set(picked) - {self.shown.numbers[d] for d in self.shown.prefetched}:
            self.behaviours.append("selected_new")
        return self._act("select", ", ".join(map(str, picked)))
