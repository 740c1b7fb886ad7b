"""Candidate answer spans: the short names, dates and numbers in the documents an agent saw.

Why: a small model asked for "a short fact you read" writes a sentence or an invented name (the
135M proposer of ``synth questions`` and ``train selfplay``: 39 of 40 proposals were not a short
span of a document it had read). With ``AgentConfig.answer_spans`` the answer action's grammar
admits only these spans, so the model *chooses* its answer from what it read instead of writing
one. The extraction is deliberately simple and predictable: document titles, then per document
its dates, runs of capitalised words (with "of", "the", "de" ... inside), "Place, Region" pairs
and numbers, each at most ``MAX_SPAN_WORDS`` words.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

MAX_SPAN_WORDS = 5  # the short-answer rule of synth questions (SHORT_ANSWER_WORDS)
MAX_SPANS = 80  # per turn: bounds the grammar (a new one per answer turn, compiled each time)
ALWAYS = ("yes", "no")  # comparison questions are answered yes or no

MONTHS = "January|February|March|April|May|June|July|August|September|October|November|December"
_DATE = re.compile(
    rf"\b(?:\d{{1,2}} (?:{MONTHS}) \d{{4}}|(?:{MONTHS}) \d{{1,2}}, \d{{4}}|(?:{MONTHS}) \d{{4}})\b"
)
_NUMBER = re.compile(r"(?<![\w.])\d[\d,]*(?:\.\d+)?(?![\w])")
_WORD = re.compile(r"[^\s]+")
_NAME = r"[A-Z][\w.'\u2019-]*"
# "Tumwater, Washington", "Berlin, Germany": a place and the region it is in.
_PLACE = re.compile(rf"\b{_NAME}(?: {_NAME}){{0,2}}, {_NAME}(?: {_NAME})?\b(?!,)")
# Lower-case words allowed inside a capitalised name: "University of the Arts", "Leonardo da Vinci".
CONNECTORS = {"of", "the", "de", "da", "del", "della", "di", "von", "van", "der", "la", "le", "and"}
# A capitalised word alone that is not a name (sentence starts, pronouns, determiners).
NOT_NAMES = {
    "a", "an", "and", "as", "at", "but", "by", "for", "from", "he", "her", "his", "in", "is",
    "it", "its", "she", "that", "the", "their", "there", "these", "they", "this", "those", "to",
    "was", "we", "were", "what", "when", "where", "which", "who", "with", "after", "before",
    "during", "however", "although", "on", "or", "since", "while", "id", "no", "yes",
}  # fmt: skip
_EDGE = "\"'()[]{}.,;:!?\u201c\u201d\u2018\u2019"
OPENERS = "\"'([{\u201c\u2018"
CLOSERS = ".,;:!?\"')]}\u201d\u2019"


def _name_runs(text: str) -> Iterable[str]:
    """Runs of capitalised words, connectors allowed inside, split at punctuation."""
    run: list[str] = []

    def flush() -> Iterable[str]:
        while run and run[-1].lower() in CONNECTORS:
            run.pop()
        while run and run[0].lower() in NOT_NAMES | CONNECTORS:
            run.pop(0)  # "In 1994", "The Beatles": a sentence start, an article
        if run:
            yield " ".join(run)
        run.clear()

    for match in _WORD.finditer(re.sub(r"(?<=\w)([(\[])", r" \1", text)):
        raw = match.group()
        word = raw.strip(_EDGE)
        possessive = word.endswith(("'s", "\u2019s"))
        if possessive:
            word = word[:-2]
        # "John F. Kennedy", "U.S. Navy": an initial's full stop does not end the name
        initial = raw.endswith(".") and word[:1].isupper() and (len(word) == 1 or "." in word)
        ends_clause = possessive or (raw[-1:] in CLOSERS and not initial)
        starts_name = word[:1].isupper() or (run and word[:1].isdigit())  # "Apollo 11"
        if word and (starts_name or (run and word.lower() in CONNECTORS)):
            if raw[:1] in OPENERS:  # a quoted or bracketed name starts afresh
                yield from flush()
            run.append(word + "." if initial else word)
            if len(run) > MAX_SPAN_WORDS:
                run.pop(0)  # a long run keeps its last words ("... Kennedy International Airport")
            if ends_clause:
                yield from flush()
        else:
            yield from flush()
    yield from flush()


def _clean(span: str) -> str:
    return " ".join(span.split()).strip(_EDGE + " ")


def candidate_spans(
    texts: Iterable[str], titles: Iterable[str] = (), yes_no: bool = True
) -> list[str]:
    """The answer spans found in ``titles`` and ``texts``: titles first (without their
    parenthesised disambiguation), then each text's dates, names and numbers; yes and no
    first unless ``yes_no`` is off (a quiz proposer's answer must be a fact it read); unique
    case-insensitively; at most ``MAX_SPANS``."""
    found: list[str] = list(ALWAYS) if yes_no else []
    seen: set[str] = set(ALWAYS)

    def add(span: str) -> None:
        span = _clean(span)
        key = span.lower()
        words = span.split()
        if not span or key in seen or len(words) > MAX_SPAN_WORDS:
            return
        if len(words) == 1 and key in NOT_NAMES:
            return
        seen.add(key)
        found.append(span)

    for title in titles:
        add(re.sub(r"\s*\([^)]*\)\s*$", "", title))  # "Ed Wood (film)" -> "Ed Wood"
    for text in texts:
        for match in _DATE.finditer(text):
            add(match.group())
        for span in _name_runs(text):
            add(span)
        for match in _PLACE.finditer(text):
            add(match.group())
        for match in _NUMBER.finditer(text):
            add(match.group())
    return found[:MAX_SPANS]
