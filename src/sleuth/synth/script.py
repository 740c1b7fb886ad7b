"""The scripted policy: a planned, behaviour-rich episode that reacts to the real observations.

One ``BehaviourScript`` per question. The agent loop calls it with the conversation (through
``ScriptedLLM``); it reads the last observation (the real hits of the real engine), updates what
it has found, and writes the next action: a first-hop query of the question's own words, a
reformulation with the entity's name when that query missed, an ``open`` when the bridge is
beyond the shown snippet, a ``judge`` that cites what was found or names what is missing, a
second hop built from what the first returned, and the short gold answer.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, field

from sleuth.llm.base import Message
from sleuth.synth.words import argument, content_words

_HIT_ID = re.compile(r"^\[\d+\] (?:already seen: )?\(id: ([^)\n]*)\)", re.MULTILINE)
BEHAVIOURS = (
    "first_hop",  # a query of the question's content words (copied, in order)
    "reformulation",  # an unproductive query, then another with the entity's name
    "open",  # opened a hit to read past the snippet
    "judge_missing",  # judge no: names what is still missing
    "judge_found",  # judge yes: cites what was found
    "bridge_hop",  # second query built from an entity the first hop returned
    "second_entity_hop",  # second query for the other entity the question names (comparison)
    "second_hop",  # second query for the bridge entity (not visible in what was shown)
    "adaptive_stop",  # both paragraphs already found: answer without another search
    "think",  # a short thought before an action
    "prefetched",  # the loop retrieved the question first (the agent_rag method): no first hop
    "ask",  # asked the user for the missing constraint (an ambiguous question)
    "clarified_hop",  # a search carrying the words of the user's reply
)
_REPLY = re.compile(r"^The user says: (.*)$", re.DOTALL)
_I_MEAN = re.compile(r"^\s*I mean\s+", re.IGNORECASE)


def display(title: str) -> str:
    """A title as a name to search or mention: without a "(disambiguation)" suffix."""
    return re.sub(r"\s*\([^)]*\)\s*$", "", title) or title


@dataclass(frozen=True)
class Plan:
    """What the script knows in advance: the gold paragraphs in hop order and the answer."""

    question: str
    answer: str
    hop1_ids: frozenset[str]  # alias ids of the first-hop paragraph
    hop1_title: str
    hop2_ids: frozenset[str]
    hop2_title: str
    bridge_visible: bool  # the hop-2 title is in the hop-1 paragraph's shown snippet
    bridge_in_text: bool  # ... or at least in its full text (reachable with open)
    bridge: bool  # a bridge question (else comparison)
    judge: bool  # this episode's actions include judge
    # Share of actions with a short thought before them. synth trajectories sets 0 by default:
    # primed with thoughts before half the actions, the 135M model wrote thought text ("X
    # mentions Y; search it") as its answer in 43 of 200 agent_rag and 75 of 200 rag episodes.
    think_rate: float = 0.5
    stop_early_rate: float = 0.3
    # The clarification question to ask before anything else ("" = the question is clear).
    ask: str = ""


@dataclass
class BehaviourScript:
    plan: Plan
    rng: random.Random
    max_turns: int
    max_searches: int
    found1: bool = False
    found2: bool = False
    hop1_doc: str = ""  # the id the hop-1 paragraph was shown under (for open)
    turns: int = 0
    stage: str = "start"
    judged_missing: bool = False
    opened: bool = False
    behaviours: list[str] = field(default_factory=list)
    queries: list[str] = field(default_factory=list)
    prefetched: bool = False  # the first message held the loop's own retrieval of the question
    clarified: str = ""  # what the user's reply to the ask added (its words, "I mean" cut)

    # -- reading the environment ---------------------------------------------------------------
    def _observe(self, messages: list[Message]) -> None:
        last = messages[-1]
        if last["role"] != "user":
            return
        text = str(last.get("content") or "")
        if self.turns == 0:
            self.prefetched = text.startswith("<information>")
        reply = _REPLY.match(text.strip())
        meant = _I_MEAN.match(reply.group(1)) if reply and self.stage == "asked" else None
        if meant:  # "I mean <intent>." (anything else: "I don't know", a cap, ...)
            said = reply.group(1)[meant.end() :].strip().rstrip(".")
            known = {w.lower() for w in content_words(self.plan.question)}
            self.clarified = " ".join(w for w in content_words(said) if w.lower() not in known)
        for doc_id in _HIT_ID.findall(text):
            if doc_id in self.plan.hop1_ids:
                self.found1, self.hop1_doc = True, doc_id
            if doc_id in self.plan.hop2_ids:
                self.found2 = True
        opened = re.match(r"<information>\n\(id: ([^)\n]*)\)", text)
        if opened and opened.group(1) in self.plan.hop2_ids:
            self.found2 = True

    # -- writing actions -----------------------------------------------------------------------
    def _thought(self, words: str) -> str:
        if self.rng.random() >= self.plan.think_rate:
            return ""
        self.behaviours.append("think")
        return f"<think>{argument(words, 'think', limit=12)}</think>\n"

    def _act(self, name: str, text: str, thought: str = "", behaviour: str = "") -> str:
        if behaviour:
            self.behaviours.append(behaviour)
        self.turns += 1
        if name == "search":
            self.queries.append(text)
        return f"{self._thought(thought) if thought else ''}<{name}>{text}</{name}>"

    def _left(self) -> tuple[int, int]:
        searches = len(self.queries) + self.prefetched  # the loop counts its prefetch
        return self.max_turns - self.turns, self.max_searches - searches

    def _answer(self) -> str:
        # No thought before an answer: primed on "<think>X gives the answer</think>", the
        # 135M model wrote that thought as its answer in 23 of 200 test episodes.
        self.stage = "done"
        return self._act("answer", self.plan.answer)

    def __call__(self, messages: list[Message]) -> str:
        self._observe(messages)
        plan = self.plan
        turns_left, searches_left = self._left()
        if (
            self.stage == "judged_yes"
            or turns_left <= 1
            or (searches_left <= 0 and not (self.found1 and self.found2))
        ):
            return self._answer()
        if self.stage == "start" and plan.ask:  # ambiguous: ask before searching
            self.stage = "asked"
            return self._act("ask", argument(plan.ask, "ask"), behaviour="ask")
        if self.stage == "asked":
            # The reply's words first (the constraint the question lacked), then the question's.
            self.stage = "hop1"
            words = [self.clarified] if self.clarified else []
            query = argument(" ".join(words + content_words(plan.question)), "search")
            return self._act("search", query, behaviour="clarified_hop" if words else "first_hop")
        if self.stage == "start" and self.prefetched:
            # The loop searched the question itself: that was the first hop; go on from its hits.
            self.stage = "hop1"
            self.behaviours.append("prefetched")
        if self.stage == "start":
            self.stage = "hop1"
            # The question's content words: on the 200 test questions their top-3 BM25 hits hold
            # 0.680 of the gold paragraphs against 0.625 for six key words first (entities
            # picked). No thought before it: primed on "<think>first look up ...", the model
            # wrote that thought as its answer in 18 of 200 test episodes.
            query = argument(" ".join(content_words(plan.question)), "search")
            return self._act("search", query, behaviour="first_hop")
        if not self.found1:  # the first query missed: reformulate with the entity's name
            name = display(plan.hop1_title)
            query = argument(name, "search")
            if self.stage == "reformulated":  # a second miss: add key words of the question
                words = " ".join(content_words(plan.question)[:3])
                query = argument(f"{name} {words}", "search")
            self.stage = "reformulated"
            why = f"no result about {name}; search its name"
            return self._act("search", query, why, "reformulation")
        if self.found2:
            early = self.stage in ("hop1", "reformulated")
            if early and searches_left > 0 and self.rng.random() >= plan.stop_early_rate:
                return self._second_hop()  # confirm with the second hop's own query anyway
            return self._finish(turns_left)
        # hop 1 found, hop 2 not yet: read on, judge what is missing, then the second hop
        hidden = plan.bridge and not plan.bridge_visible and plan.bridge_in_text
        if hidden and not self.opened and turns_left >= 3:
            self.opened = True
            why = f"read more of {display(plan.hop1_title)}"
            return self._act("open", self.hop1_doc, why, "open")
        if plan.judge and not self.judged_missing and turns_left >= 4:
            self.judged_missing = True
            missing = argument(f"no: missing {display(plan.hop2_title)}", "judge")
            return self._act("judge", missing, "", "judge_missing")
        return self._second_hop()

    def _second_hop(self) -> str:
        plan = self.plan
        name, first = display(plan.hop2_title), display(plan.hop1_title)
        extra = [w for w in content_words(plan.question) if w.lower() not in name.lower()]
        already = self.stage in ("hop2", "hop2_retry")
        if already:  # the hop-2 query missed: the bare name (or, if that was it, more words)
            query = argument(name, "search")
            if query in self.queries:  # the loop refuses a repeated query
                query = argument(f"{name} {' '.join(extra[:3])}", "search")
            self.stage = "hop2_retry"
        else:
            words = extra[: self.rng.choice((0, 1, 2))]
            query = argument(f"{name} {' '.join(words)}", "search")
            self.stage = "hop2"
        named = name.lower() in plan.question.lower()  # then the question names it already
        seen_bridge = plan.bridge and (plan.bridge_visible or self.opened) and not named
        if already:
            behaviour, why = "reformulation", f"no result about {name}; search its name"
        elif seen_bridge:
            behaviour, why = "bridge_hop", f"{first} mentions {name}; search it"
        elif plan.bridge and not named:
            behaviour, why = "second_hop", f"now find {name}"
        else:
            behaviour, why = "second_entity_hop", f"now find {name}"
        return self._act("search", query, why, behaviour)

    def _finish(self, turns_left: int) -> str:
        plan = self.plan
        if self.stage in ("hop1", "reformulated") and "adaptive_stop" not in self.behaviours:
            self.behaviours.append("adaptive_stop")
        if plan.judge and self.stage != "judged_yes" and turns_left >= 2:
            self.stage = "judged_yes"
            found = f"{display(plan.hop1_title)} and {display(plan.hop2_title)}"
            reason = argument(f"yes: {found} give the answer", "judge")
            return self._act("judge", reason, "", "judge_found")
        return self._answer()
