"""``sleuth synth ambiguous``: underspecified questions made from fully specified ones.

Each question loses one key constraint by a rule (a year, a qualifier such as "American" or an
appositive, a type word such as "film", a role such as "actor", a first name, or a whole name
behind its type: "the band X" -> "the band"), or by a model's rewrite (``--rewrite-model``). The
removed part is kept as the hidden *intent* a simulated user answers from
(``sleuth.agent.users``). A rewrite is kept only when the corpus says it is really ambiguous:
searching the underspecified question must bring up several distinct strong titles, at least
one of them a rival outside the gold evidence that the removed words would have ruled out.
As many clear questions are added unchanged (``ambiguous: false``), so asking too often shows.

The output is a benchmark file ``sleuth eval run --benchmark FILE`` reads (FlashRAG layout plus
the fields of ``CLARIFY_FIELDS``, see ``sleuth.evaluate.benchmarks``).
"""

from __future__ import annotations

import json
import random
import re
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sleuth.agent.users import STOPWORDS, content_words
from sleuth.errors import SleuthError
from sleuth.evaluate.benchmarks import BenchmarkQuestion, load_benchmark
from sleuth.jsonio import atomic_write
from sleuth.metrics import contains_words
from sleuth.search.base import SearchEngine

PURPOSES = ("eval", "train")
CHECK_K = 10  # hits of each search the check looks at
STRONG = 0.8  # a hit is a strong match at this share of the top score or more
MIN_STRONG_TITLES = 2

DEMONYMS = (
    "American|British|English|Scottish|Welsh|Irish|French|German|Italian|Spanish|Canadian|"
    "Australian|Japanese|Chinese|Indian|Russian|Swedish|Norwegian|Danish|Dutch|Belgian|Swiss|"
    "Austrian|Polish|Mexican|Brazilian|Argentine|Korean|South Korean|Greek|Turkish|Israeli|"
    "Finnish|Portuguese|New Zealand|Filipino|Pakistani|Egyptian|Nigerian|Czech|Hungarian"
)
TYPE_WORDS = (
    "film|movie|album|song|single|band|group|novel|book|magazine|newspaper|series|show|sitcom|"
    "game|play|musical|opera|company|university|college|river|city|town|village|team|club|"
    "station|airport|stadium|channel|documentary|comedy|drama|franchise|church|school"
)
ROLE_WORDS = (
    "actor|actress|singer|director|author|writer|novelist|footballer|politician|musician|"
    "player|rapper|producer|composer|poet|artist|comedian|journalist|painter|guitarist|"
    "drummer|songwriter|businessman|screenwriter|filmmaker|architect|coach|boxer|wrestler"
)
_NAME = r"(?:[A-Z][\w.'-]+)(?:\s+(?:[A-Z][\w.'-]+|de|van|von|da|del|di|la|le))*"
_TITLE = rf"(?:\"[^\"]+\"|“[^”]+”|{_NAME})"
RULES: dict[str, re.Pattern[str]] = {
    "year": re.compile(r"\s*\b(?:in|of|from|during|since|by)?\s*\b((?:1[5-9]|20)\d\d)s?\b"),
    "qualifier": re.compile(rf"(?<![\w-])({DEMONYMS})\s+(?=[a-z])"),
    "appositive": re.compile(r",\s+((?:a|an|the)\s+[^,?]{3,60}),\s*"),
    "type": re.compile(rf"\b(?:the|a|an)\s+(?:\w+\s+)?({TYPE_WORDS})\s+(?={_TITLE})"),
    "role": re.compile(rf"\b(?:the|a|an)\s+(?:\w+\s+)?({ROLE_WORDS})\s+(?={_NAME})"),
    "name": re.compile(r"(?<![\w\"“])((?:[A-Z][a-z]+\s+){1,2})([A-Z][a-z]{2,})\b(?![\w\"”])"),
    "entity": re.compile(rf"\b(the\s+(?:{TYPE_WORDS}))\s+({_TITLE})"),
}
KINDS = {"appositive": "qualifier"}  # rule -> the kind of constraint a user is asked about


@dataclass
class Candidate:
    """One underspecified version of a question: what was shown, what was removed."""

    question: str
    removed: str  # the words cut out
    intent: str  # the hidden intent: the original phrase the removed words belonged to
    kind: str  # year | qualifier | type | role | name | entity
    rule: str  # which rule (or "llm")


def _tidy(text: str) -> str:
    text = re.sub(r"\s+([?,.!])", r"\1", " ".join(text.split()))
    return re.sub(r",\s*,", ",", text).strip(" ,")


def rule_candidates(question: str) -> Iterator[Candidate]:
    """Every rule's rewrite of ``question`` (at most one per rule: its first match)."""
    for rule, pattern in RULES.items():
        found = pattern.search(question)
        if found is None:
            continue
        start, end = found.span()
        if rule == "year":
            if re.search(r"\b(what|which) year\b", question, re.I):
                continue
            removed, intent, shown = found.group(1), found.group(0).strip(), question[:start] + " "
        elif rule == "name":
            if start == 0 or question[:start].rstrip().endswith((".", "?")):
                continue  # a capital at the start of a sentence is no first name
            removed = found.group(1).strip()
            intent, shown = found.group(0).strip(), question[:start]
            shown += found.group(2)
        elif rule == "entity":
            removed, intent = found.group(2), found.group(0)
            shown = question[:start] + found.group(1)
        elif rule == "appositive":
            removed = intent = found.group(1)
            shown = question[:start] + " "
        else:
            removed = found.group(1)
            phrase_end = found.end(1)
            tail = re.match(_TITLE, question[end:])
            intent = question[start : end + (tail.end() if tail else 0)].strip()
            if rule in ("type", "role"):
                shown = question[: found.start(1)]
                if tail:  # "the film Arrival" -> "Arrival" (but "the debut Tinted Windows")
                    shown = re.sub(r"\b(?:the|a|an)\s+$", "", shown)
                shown += " "
                end = phrase_end
            else:  # a qualifier: the user would name it with the words it qualifies
                shown = question[: found.start(1)]
                end = phrase_end
                following = []
                for word in question[end:].split()[:3]:  # "American science fiction film"
                    if not re.fullmatch(r"[a-z][\w-]*", word) or word in STOPWORDS:
                        break
                    following.append(word)
                intent = " ".join([removed, *following])
        shown = _tidy(shown + question[end:])
        if shown and shown != question and content_words(removed):
            yield Candidate(shown, removed.strip(), intent.strip(), KINDS.get(rule, rule), rule)


@dataclass
class Check:
    """The corpus check of one candidate: passed, and why (kept in the output)."""

    passed: bool
    evidence: dict[str, Any]


def _gold_titles(question: BenchmarkQuestion) -> list[str]:
    return [aliases[-1] for aliases in question.gold_evidence]


def _rank(hits: list[Any], gold: set[str]) -> int | None:
    return next((i + 1 for i, h in enumerate(hits) if h.title in gold), None)


def check_candidate(
    engine: SearchEngine, original: BenchmarkQuestion, candidate: Candidate
) -> Check:
    """Several distinct strong titles for the underspecified question, at least one a rival:
    not gold, and missing a removed word (the constraint would have ruled it out)."""
    gold = set(_gold_titles(original))
    if candidate.kind == "name" and not is_title(engine, candidate.intent):
        return Check(False, {"reason": f"{candidate.intent!r} is no title of the corpus"})
    hits_original = engine.search(original.question, CHECK_K)
    hits = engine.search(candidate.question, CHECK_K)
    top = hits[0].score if hits else 0.0
    strong = [h for h in hits if top > 0 and h.score >= STRONG * top]
    titles = list(dict.fromkeys(h.title for h in strong))
    removed = set(content_words(candidate.removed))
    rivals = [
        h.title
        for h in strong
        if h.title not in gold and not removed <= set(content_words(f"{h.title} {h.text}"))
    ]
    rivals = list(dict.fromkeys(rivals))
    passed = len(titles) >= MIN_STRONG_TITLES and bool(rivals)
    return Check(
        passed,
        {
            "strong_titles": titles,
            "rivals": rivals,
            "gold_titles": sorted(gold),
            "gold_rank_original": _rank(hits_original, gold),
            "gold_rank_underspecified": _rank(hits, gold),
            "top_original": [h.title for h in hits_original[:5]],
            "top_underspecified": [h.title for h in hits[:5]],
        },
    )


def names_an_answer(candidate: Candidate, answers: tuple[str, ...]) -> bool:
    """The removed part holds a gold answer or a word of one."""
    removed = set(content_words(candidate.intent))
    return contains_words(candidate.intent, list(answers)) or any(
        removed & set(content_words(answer)) for answer in answers
    )


def is_title(engine: SearchEngine, phrase: str) -> bool:
    """``phrase`` names a document of the corpus ("Chris Summers", "Tom Hanks (actor)"): the
    name rule shortens only names of people and things the corpus knows, not "High School"."""
    for hit in engine.search(phrase, 5):
        if re.sub(r"\s*\(.*\)$", "", hit.title).strip().lower() == phrase.lower():
            return True
    return False


REWRITE_PROMPT = (
    "Rewrite this question so that it leaves out exactly one detail that tells which person, "
    "work, place or time is meant (a year, a first name, a qualifier such as a nationality, a "
    "type word such as film or album, or a role such as actor), so that several answers "
    "become plausible. Keep every other word. Reply with one line of JSON: "
    '{{"question": "the rewritten question", "removed": "the words left out", "kind": '
    '"year|qualifier|type|role|name|entity"}}.\nQuestion: {question}'
)


def parse_rewrite(text: str, original: str) -> Candidate | None:
    """A model's rewrite as a candidate, or None when it is not one: not JSON, the removed
    words not in the original, or still in the rewritten question."""
    found = re.search(r"\{.*\}", text, re.S)
    if found is None:
        return None
    try:
        data = json.loads(found.group(0))
    except json.JSONDecodeError:
        return None
    if not isinstance(data, dict):
        return None
    shown, removed = str(data.get("question", "")).strip(), str(data.get("removed", "")).strip()
    words = set(content_words(removed))
    if not shown or not words or not words <= set(content_words(original)):
        return None
    if words & set(content_words(shown)):
        return None
    kind = str(data.get("kind", "")).strip()
    kind = kind if kind in ("year", "qualifier", "type", "role", "name", "entity") else "entity"
    return Candidate(_tidy(shown), removed, removed, kind, "llm")


Rewriter = Callable[[str], "list[Candidate]"]


def llm_rewriter(llm: Any) -> Rewriter:
    """``--rewrite-model``: one greedy rewrite per question by any Sleuth LLM."""
    import asyncio

    from sleuth.llm.base import GenerationConfig

    def rewrite(question: str) -> list[Candidate]:
        prompt = REWRITE_PROMPT.format(question=question)
        completion = asyncio.run(
            llm.complete([{"role": "user", "content": prompt}], GenerationConfig(max_tokens=160))
        )
        candidate = parse_rewrite(completion.text, question)
        return [candidate] if candidate else []

    return rewrite


def check_purpose(benchmark: str, purpose: str) -> str:
    """The split of ``benchmark`` ("dev", "test", "" for a whole set or file); a test split
    (or a benchmark that holds one) is refused for training data."""
    if purpose not in PURPOSES:
        raise SleuthError(f"--purpose {purpose!r}: choose {' or '.join(PURPOSES)}")
    split = benchmark.rpartition(":")[2] if ":" in benchmark else ""
    if purpose == "train" and (split == "test" or benchmark == "hotpotqa-1100"):
        raise SleuthError(
            f"--purpose train refuses {benchmark!r}: it holds test questions, which must never "
            "be trained on; use a :train or :dev split"
        )
    return split


@dataclass
class AmbiguousStats:
    questions: int = 0
    ambiguous: int = 0
    clear: int = 0
    by_kind: Counter = field(default_factory=Counter)
    dropped: Counter = field(default_factory=Counter)  # reason -> questions

    def to_dict(self) -> dict[str, Any]:
        return {
            "questions": self.questions,
            "ambiguous": self.ambiguous,
            "clear": self.clear,
            "by_kind": dict(sorted(self.by_kind.items())),
            "dropped": dict(sorted(self.dropped.items())),
        }


def _gold_ids(engine: SearchEngine, question: BenchmarkQuestion) -> list[str]:
    """Per gold paragraph, the alias the index knows (so evidence recall works on it)."""
    ids = []
    for aliases in question.gold_evidence:
        chosen = aliases[-1]
        for alias in aliases:
            try:
                engine.get(alias)
            except SleuthError:  # DocumentNotFound among them
                continue
            chosen = alias
            break
        ids.append(chosen)
    return ids


def _record(
    question: BenchmarkQuestion,
    engine: SearchEngine,
    meta: dict[str, Any],
    candidate: Candidate | None = None,
    check: Check | None = None,
) -> dict[str, Any]:
    record: dict[str, Any] = {
        "id": f"{question.id}-ambiguous" if candidate else question.id,
        "question": candidate.question if candidate else question.question,
        "answers": list(question.answers),
        "ambiguous": candidate is not None,
        "intent": candidate.intent if candidate else "",
        "intent_kind": candidate.kind if candidate else "",
        "removed": candidate.removed if candidate else "",
        "rule": candidate.rule if candidate else "",
        "original_question": question.question,
        "supporting_titles": _gold_titles(question),
        "gold_ids": _gold_ids(engine, question),
        "source_id": question.id,
        **meta,
    }
    if check is not None:
        record["check"] = check.evidence
    return record


def synth_ambiguous(
    benchmark: str,
    engine: SearchEngine,
    out: Path,
    *,
    limit: int | None = None,
    seed: int = 0,
    purpose: str = "eval",
    rewriter: Rewriter | None = None,
    rewrite_label: str = "rules",
) -> AmbiguousStats:
    """Write up to ``limit`` ambiguous questions (all that pass, without a limit) and as many
    clear ones to ``out`` (JSONL, written atomically); the ambiguous first, in the shuffled
    order of ``seed``."""
    split = check_purpose(benchmark, purpose)
    questions = list(load_benchmark(benchmark).questions)
    random.Random(seed).shuffle(questions)
    meta = {"benchmark": benchmark, "split": split, "purpose": purpose, "rewrite": rewrite_label}
    stats = AmbiguousStats(questions=len(questions))
    ambiguous: list[dict[str, Any]] = []
    unused: list[BenchmarkQuestion] = []
    rng = random.Random(seed + 1)
    for question in questions:
        if limit is not None and len(ambiguous) >= limit:
            unused.append(question)
            continue
        if not question.gold_evidence:
            stats.dropped["no gold evidence"] += 1
            unused.append(question)
            continue
        candidates = (
            rewriter(question.question) if rewriter else list(rule_candidates(question.question))
        )
        rng.shuffle(candidates)
        # The user could not say what was removed without giving the answer away ("Who is
        # older, Malamud or ...?" when the answer is Bernard Malamud): no such candidate.
        candidates = [c for c in candidates if not names_an_answer(c, question.answers)]
        kept = None
        for candidate in candidates:
            check = check_candidate(engine, question, candidate)
            if check.passed:
                kept = (candidate, check)
                break
        if kept is None:
            stats.dropped["no rewrite" if not candidates else "check failed"] += 1
            unused.append(question)
            continue
        ambiguous.append(_record(question, engine, meta, *kept))
        stats.by_kind[kept[0].kind] += 1
    clear = [_record(q, engine, meta) for q in unused[: len(ambiguous)]]
    stats.ambiguous, stats.clear = len(ambiguous), len(clear)
    if not ambiguous:
        raise SleuthError(f"{benchmark}: no question passed the ambiguity check; nothing written")
    text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in ambiguous + clear)
    atomic_write(out, lambda tmp: tmp.write_text(text, encoding="utf-8"))
    return stats
