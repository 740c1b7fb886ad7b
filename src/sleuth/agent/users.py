"""Simulated users for the agent's ``ask`` action: they answer from a hidden intent only.

A question made ambiguous on purpose (``sleuth synth ambiguous``) keeps the constraint it lost
as its *intent* ("the 1998 film", "Tom Hanks"). A simulated user is the ``ask_user`` callable of
``Agent`` for one episode: it replies from that intent, never from the answer, so an agent that
asks the right question recovers what a person would have said and nothing more.

Rules every simulated user keeps, whatever writes its reply:

- it never reveals a gold answer: a reply naming one is redacted, and refused when nothing is
  left (``LEAK_REPLY``);
- a question unrelated to the intent gets "I don't know" (``UNKNOWN_REPLY``);
- it answers at most ``max_answers`` questions per episode (``CAP_REPLY`` after that);
- every exchange is kept in ``exchanges`` (the runner writes them into the trajectory's
  metadata; the ``ask`` step itself holds the question and the reply as for a person).

``RulesUser`` decides relevance by word overlap with the intent, by the kind of constraint the
question asks about (a year, a type, a role, a name) or by a plain request to be more specific;
``LLMUser`` asks a model whose prompt holds only the intent and the question.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from sleuth.errors import SleuthError
from sleuth.llm.base import LLM, GenerationConfig
from sleuth.metrics import contains_words, normalize_answer

DEFAULT_MAX_ANSWERS = 2
UNKNOWN_REPLY = "I don't know."
CAP_REPLY = "No more questions, please; go on with what you have."
LEAK_REPLY = "I can't tell you that; that is what I am asking you."
REDACTED = "[...]"
USER_KINDS = ("rules", "llm")

_WORD = re.compile(r"[\w'-]+", re.UNICODE)
STOPWORDS = frozenset(
    """a an the of in on at to for from by with and or as is was were are be been being which
    what who whom whose when where why how that this these those did does do than then also
    it its his her their they he she there into about after before during you your i me my
    we our us mean meant please can could would should will any some one""".split()  # noqa: SIM905
)
# What a clarification question asks about -> words that say so, and the intent kinds
# (``sleuth synth ambiguous``'s constraint kinds) it matches.
KIND_CUES: dict[str, tuple[str, ...]] = {
    "year": ("year", "when", "date", "decade", "century", "period", "time"),
    "qualifier": ("country", "nationality", "kind", "describe", "description", "detail"),
    "type": ("type", "kind", "sort", "category", "film", "movie", "album", "song", "book"),
    "role": ("role", "job", "profession", "occupation", "work"),
    "name": ("name", "full", "first", "surname", "person"),
    "entity": ("which", "name", "title", "called"),
}
# A plain request to be more specific matches any intent.
GENERIC_CUES = (
    "clarify",
    "specific",
    "specify",
    "mean",
    "which one",
    "more detail",
    "more details",
    "more information",
    "be more",
    "refer",
    "referring",
)
USER_PROMPT = (
    "You asked a search assistant a question, but left out a detail. The detail you meant: "
    '"{intent}". The assistant asks you: "{question}". If its question is about the detail you '
    "meant, reply in one short sentence using only that detail. If it asks about anything "
    "else, reply exactly: I don't know."
)


def content_words(text: str) -> list[str]:
    """Lower-cased words of ``text`` that carry meaning (stopwords and punctuation dropped)."""
    return [
        w
        for w in (m.group(0).lower().strip("'-") for m in _WORD.finditer(text))
        if w and w not in STOPWORDS
    ]


@dataclass(frozen=True)
class UserSpec:
    """A ``--user`` value: ``simulated:rules`` or ``simulated:llm[:model=NAME]``."""

    kind: str  # rules | llm
    model: str | None = None  # the llm user's model; None: the run's own model

    @property
    def label(self) -> str:
        return f"simulated:{self.kind}" + (f":model={self.model}" if self.model else "")


def parse_user(text: str) -> UserSpec:
    """``"simulated:llm:model=qwen"`` -> ``UserSpec("llm", "qwen")``; a clear error otherwise."""
    parts = text.strip().split(":")
    usage = "give --user simulated:rules or simulated:llm[:model=NAME]"
    if len(parts) < 2 or parts[0] != "simulated" or parts[1] not in USER_KINDS:
        raise SleuthError(f"--user {text!r}: unknown user; {usage}")
    model = None
    if len(parts) > 2:
        option = ":".join(parts[2:])
        if parts[1] != "llm" or not option.startswith("model=") or not option[6:].strip():
            raise SleuthError(f"--user {text!r}: only simulated:llm takes model=NAME; {usage}")
        model = option[6:].strip()
    return UserSpec(parts[1], model)


@dataclass
class SimulatedUser:
    """One episode's user: ``await user(question)`` -> reply. Subclasses write ``_reply``."""

    intent: str
    answers: tuple[str, ...] = ()
    max_answers: int = DEFAULT_MAX_ANSWERS
    kind_of_intent: str = ""  # year | qualifier | type | role | name | entity, "" unknown
    exchanges: list[dict[str, str]] = field(default_factory=list)
    label: str = "simulated"

    def __post_init__(self) -> None:
        if self.max_answers < 0:
            raise SleuthError("--user-max-answers cannot be negative")

    async def __call__(self, question: str) -> str:
        if len(self.exchanges) >= self.max_answers:
            reply, outcome = CAP_REPLY, "cap"
        elif not self.intent.strip():
            reply, outcome = UNKNOWN_REPLY, "unknown"  # a clear question: nothing was left out
        else:
            reply = (await self._reply(question)).strip() or UNKNOWN_REPLY
            outcome = "unknown" if is_unknown(reply) else "answered"
            if outcome == "answered":
                reply, leaked = redact(reply, self.answers)
                if leaked:
                    outcome = "redacted"
                    if not content_words(reply.replace(REDACTED, " ")):
                        reply, outcome = LEAK_REPLY, "refused"
        self.exchanges.append({"question": question, "reply": reply, "outcome": outcome})
        return reply

    async def _reply(self, question: str) -> str:
        raise NotImplementedError

    def record(self) -> dict[str, Any]:
        """What the trajectory's metadata keeps of this user (``metadata["user"]``)."""
        return {
            "user": self.label,
            "intent": self.intent,
            "max_answers": self.max_answers,
            "exchanges": list(self.exchanges),
        }


def is_unknown(reply: str) -> bool:
    return normalize_answer(reply).startswith(normalize_answer(UNKNOWN_REPLY))


def redact(reply: str, answers: tuple[str, ...]) -> tuple[str, bool]:
    """``reply`` with every gold answer cut out (whole words, any case); True when one was."""
    leaked = False
    for answer in sorted((a for a in answers if normalize_answer(a)), key=len, reverse=True):
        if not contains_words(reply, [answer]):
            continue
        leaked = True
        words = [re.escape(w) for w in answer.split()]
        pattern = re.compile(r"\b" + r"\W+".join(words) + r"\b", re.IGNORECASE)
        reply = pattern.sub(REDACTED, reply)
        if contains_words(reply, [answer]):  # punctuation inside the answer: refuse outright
            return LEAK_REPLY, True
    return reply, leaked


@dataclass
class RulesUser(SimulatedUser):
    """Replies "I mean <intent>." when the question shares a word with the intent, asks about
    the intent's kind of constraint, or simply asks to be more specific; else I don't know."""

    label: str = "simulated:rules"

    def relevant(self, question: str) -> bool:
        asked = set(content_words(question))
        if asked & set(content_words(self.intent)):
            return True
        lowered = f" {' '.join(_WORD.findall(question.lower()))} "
        if any(f" {cue} " in lowered for cue in GENERIC_CUES):
            return True
        cues = KIND_CUES.get(self.kind_of_intent, ())
        return any(f" {cue} " in lowered for cue in cues)

    async def _reply(self, question: str) -> str:
        return f"I mean {self.intent}." if self.relevant(question) else UNKNOWN_REPLY


@dataclass
class LLMUser(SimulatedUser):
    """A model writes the reply from a prompt holding only the intent and the question."""

    llm: LLM | None = None
    label: str = "simulated:llm"

    async def _reply(self, question: str) -> str:
        if self.llm is None:
            raise SleuthError("the simulated:llm user needs a model")
        prompt = USER_PROMPT.format(intent=self.intent, question=" ".join(question.split()))
        completion = await self.llm.complete(
            [{"role": "user", "content": prompt}],
            GenerationConfig(max_tokens=48, temperature=0.0, stop=["\n"]),
        )
        return " ".join(completion.text.split())


def make_user(
    spec: UserSpec,
    intent: str,
    answers: tuple[str, ...] = (),
    *,
    kind_of_intent: str = "",
    max_answers: int = DEFAULT_MAX_ANSWERS,
    llm: LLM | None = None,
) -> SimulatedUser:
    """A fresh user for one episode (its answer count starts at zero)."""
    common: dict[str, Any] = {
        "intent": intent,
        "answers": tuple(answers),
        "max_answers": max_answers,
        "kind_of_intent": kind_of_intent,
    }
    if spec.kind == "rules":
        return RulesUser(**common)
    return LLMUser(**common, llm=llm, label=spec.label)
