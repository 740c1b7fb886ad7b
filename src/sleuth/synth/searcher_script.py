"""The scripted searcher: s3-style episodes (search, then ``<select>``) for priming a searcher.

The untrained 135M searcher never put a new document in front of the reader: in 100 test
questions its final read was RAG's top K as a set (docs/evaluation.md). These episodes show
the behaviour GBR rewards, through the real loop and engine: read RAG's documents for the
question; when a gold paragraph is missing, search for it by name (the bridge entity the first
paragraph mentions, or the other entity the question names); then select the gold paragraphs
by their episode-wide numbers, most useful first, so a follow-up search's hit reaches the
reader. When RAG already holds both, it selects them at once (no needless search).
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, field

from sleuth.agent.prompts import FORCE_SELECT
from sleuth.llm.base import Message
from sleuth.llm.scripted import ScriptedLLM
from sleuth.synth.script import Plan, display
from sleuth.synth.words import argument, content_words

# "[7] (id: X) Title" or "[2] already seen: (id: X) Title": the episode-wide number and id.
NUMBERED_HIT = re.compile(r"^\[(\d+)\] (?:already seen: )?\(id: ([^)\n]*)\)", re.MULTILINE)
SEARCHER_BEHAVIOURS = (
    "prefetched",  # turn 0 was the loop's own retrieval of the question (always)
    "selected_at_once",  # RAG's documents held both gold paragraphs: select without searching
    "bridge_hop",  # searched the entity the first paragraph mentions
    "second_entity_hop",  # searched the other entity the question names
    "second_hop",  # searched the missing paragraph's name (not shown in what was read)
    "first_entity_hop",  # RAG missed the first paragraph: searched its name
    "retry",  # a follow-up search missed: searched again with other words
    "selected_new",  # the selection holds a document only a follow-up search found
    "think",  # a short thought before a search
)


@dataclass
class NumberedHits:
    """The episode-wide number of every hit shown so far ("[7] (id: X) ..."), and the ids turn
    0 (RAG's retrieval of the question) showed: what a scripted searcher selects by."""

    numbers: dict[str, int] = field(default_factory=dict)  # id -> episode-wide number
    prefetched: set[str] = field(default_factory=set)

    def observe(self, messages: list[Message], first: bool) -> bool:
        """Read the conversation's last observation (``first``: turn 0's); False if none."""
        last = messages[-1]
        if last["role"] != "user":
            return False
        for number, doc_id in NUMBERED_HIT.findall(str(last.get("content") or "")):
            self.numbers.setdefault(doc_id, int(number))
            if first:
                self.prefetched.add(doc_id)
        return True


def gold_reader(answer: str) -> ScriptedLLM:
    """The scripted reader of a searcher's episodes: it says the gold ``answer`` (SFT leaves its
    call out; only the searcher's turns are trained on)."""
    return ScriptedLLM(lambda _messages: f"<answer>{answer}</answer>", name="gold-reader")


def scripted_action(
    name: str,
    text: str,
    rng: random.Random,
    think_rate: float,
    behaviours: list[str],
    thought: str = "",
    behaviour: str = "",
) -> str:
    """``<name>text</name>``, after a short ``<think>`` at rate ``think_rate`` when there is a
    thought; ``behaviour`` (and "think" when a thought is written) go to ``behaviours``."""
    if behaviour:
        behaviours.append(behaviour)
    action = f"<{name}>{text}</{name}>"
    if thought and rng.random() < think_rate:
        behaviours.append("think")
        return f"<think>{argument(thought, 'think', limit=12)}</think>\n{action}"
    return action


@dataclass
class SearcherScript:
    """One question's scripted searcher (called by ``ScriptedLLM`` with the conversation)."""

    plan: Plan
    rng: random.Random
    max_turns: int
    max_searches: int
    think_rate: float = 0.5
    shown: NumberedHits = field(default_factory=NumberedHits)
    turns: int = 0
    queries: list[str] = field(default_factory=list)
    attempts: dict[str, int] = field(default_factory=dict)  # hop ("1", "2") -> searches for it
    behaviours: list[str] = field(default_factory=list)

    def _observe(self, messages: list[Message]) -> None:
        if self.shown.observe(messages, first=self.turns == 0) and self.turns == 0:
            self.behaviours.append("prefetched")

    def _number(self, ids: frozenset[str]) -> int | None:
        found = [self.shown.numbers[doc_id] for doc_id in ids if doc_id in self.shown.numbers]
        return min(found) if found else None

    def _act(self, name: str, text: str, thought: str = "", behaviour: str = "") -> str:
        self.turns += 1
        if name == "search":
            self.queries.append(text)
        return scripted_action(
            name, text, self.rng, self.think_rate, self.behaviours, thought, behaviour
        )

    def _searches_left(self) -> int:
        return self.max_searches - 1 - len(self.queries)  # the loop counts its prefetch

    def _query(self, title: str, retry: bool) -> str:
        name = display(title)
        extra = [w for w in content_words(self.plan.question) if w.lower() not in name.lower()]
        words = extra[:3] if retry else extra[: self.rng.choice((0, 1, 2))]
        query = argument(f"{name} {' '.join(words)}", "search")
        if query in self.queries:  # the loop refuses a repeated query
            query = argument(f"{name} {' '.join(extra[3:6])}", "search")
        return query

    def _search_for(self, hop: str) -> str:
        plan = self.plan
        title = plan.hop1_title if hop == "1" else plan.hop2_title
        retry = self.attempts.get(hop, 0) > 0
        self.attempts[hop] = self.attempts.get(hop, 0) + 1
        name, other = display(title), display(plan.hop1_title)
        named = name.lower() in plan.question.lower()
        if retry:
            behaviour, why = "retry", f"no result about {name}; search it again"
        elif hop == "1":
            behaviour, why = "first_entity_hop", f"no document about {name}; search it"
        elif plan.bridge and not named and plan.bridge_visible:
            behaviour, why = "bridge_hop", f"{other} mentions {name}; search it"
        elif plan.bridge and not named:
            behaviour, why = "second_hop", f"now find {name}"
        else:
            behaviour, why = "second_entity_hop", f"now find {name}"
        return self._act("search", self._query(title, retry), why, behaviour)

    def _select(self) -> str:
        chosen = [self._number(self.plan.hop1_ids), self._number(self.plan.hop2_ids)]
        numbers = [n for n in chosen if n is not None]
        if not self.queries:
            self.behaviours.append("selected_at_once")
        picked = {doc_id for doc_id, n in self.shown.numbers.items() if n in numbers}
        if picked - self.shown.prefetched:
            self.behaviours.append("selected_new")
        return self._act("select", ", ".join(str(n) for n in numbers) or "1")

    def __call__(self, messages: list[Message]) -> str:
        self._observe(messages)
        found1 = self._number(self.plan.hop1_ids) is not None
        found2 = self._number(self.plan.hop2_ids) is not None
        last = str(messages[-1].get("content") or "")
        forced = FORCE_SELECT in last  # the loop's last turn: only select is allowed
        can_search = self._searches_left() > 0 and self.max_turns - self.turns > 1
        if forced or (found1 and found2) or not can_search:
            return self._select()
        # A missing paragraph is searched for twice at most; the first hop's before the second's.
        for hop, found in (("1", found1), ("2", found2)):
            if not found and self.attempts.get(hop, 0) < 2:
                return self._search_for(hop)
        return self._select()
