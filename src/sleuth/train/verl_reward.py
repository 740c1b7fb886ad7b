"""Sleuth's answer reward for verl, as one self-contained file (standard library only).

``sleuth export verl`` copies this file next to the exported parquet as ``sleuth_reward.py`` with
the chosen settings filled in, and verl loads it with ``reward.custom_reward_function.path=...``. It
must not import ``sleuth``: Ray workers on a training cluster rarely have Sleuth installed.

It scores a decoded verl response (every assistant turn plus the tool responses between them)
the way Sleuth scores a trajectory, so a number seen in ``sleuth eval`` means the same in verl:

- the answer is the argument of the first ``<answer>`` tag that Sleuth's tag parser would act on:
  text inside tool responses (``<tool_response>``, ``<information>``) and ``<think>`` is never
  read, turns are separated at tool responses, and a turn whose first action tag is not
  ``<answer>`` is skipped (an unclosed final ``<answer>`` counts, as in Sleuth's loop);
- EM, F1 and cover-EM use the SQuAD/HotpotQA normalisation of ``sleuth.metrics``, and cover-EM
  its hedge rule (the same code; a test keeps the two equal);
- the format term is 1.0 only for a clean ending: exactly one closed, non-empty ``<answer>``,
  in the last turn, with nothing after it. Sleuth's own loop stops generation at
  ``</answer>``; verl has no such stop, so extra answers are real output and cost the format term.
"""

from __future__ import annotations

import math
import re
import string
from collections import Counter
from collections.abc import Iterable
from typing import Any

# -- settings (rewritten by `sleuth export verl`; per run: reward.custom_reward_function's
# reward_kwargs, e.g. +reward.custom_reward_function.reward_kwargs.outcome=f1)
OUTCOME = "em"  # em | f1 | cover_em: the outcome term of the score
FORMAT_WEIGHT = 0.0  # score = outcome + FORMAT_WEIGHT * format

# The action tags of Sleuth's loop: its action table's names (sleuth.agent.actions.ACTIONS),
# which `sleuth export verl` writes here; a test keeps this copy equal to the table.
ACTION_TAGS = ("search", "open", "judge", "answer", "ask", "select", "access", "follow")

OUTCOMES = ("em", "f1", "cover_em")
_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCTUATION = set(string.punctuation)
_YES_NO = {"yes", "no", "noanswer"}
# Tool output between turns: verl's hermes template and Sleuth's / Search-R1's tag format.
_TOOL_OUTPUT = re.compile(
    r"<tool_response>.*?(?:</tool_response>|$)|<information>.*?(?:</information>|$)",
    re.DOTALL | re.IGNORECASE,
)
_THINK = re.compile(r"<think>.*?(</think>|$)", re.DOTALL | re.IGNORECASE)
_ACTION = re.compile(rf"<({'|'.join(ACTION_TAGS)})>", re.IGNORECASE)
_ANSWER_OPEN = re.compile(r"<answer>", re.IGNORECASE)
_ANSWER_CLOSE = re.compile(r"</answer>", re.IGNORECASE)


def normalize_answer(text: str) -> str:
    """SQuAD normalisation: lower case, drop punctuation and articles, squeeze whitespace."""
    text = "".join(ch for ch in text.lower() if ch not in _PUNCTUATION)
    return " ".join(_ARTICLES.sub(" ", text).split())


def exact_match(prediction: str | None, golds: Iterable[str]) -> float:
    if not prediction:
        return 0.0
    pred = normalize_answer(prediction)
    return float(any(pred == normalize_answer(g) for g in golds))


def _token_f1(pred: str, gold: str) -> float:
    if (pred in _YES_NO or gold in _YES_NO) and pred != gold:  # HotpotQA's yes/no rule
        return 0.0
    pred_tokens, gold_tokens = pred.split(), gold.split()
    overlap = sum((Counter(pred_tokens) & Counter(gold_tokens)).values())
    if overlap == 0:
        return 0.0
    precision, recall = overlap / len(pred_tokens), overlap / len(gold_tokens)
    return 2 * precision * recall / (precision + recall)


def f1_score(prediction: str | None, golds: Iterable[str]) -> float:
    golds = list(golds)
    if not prediction or not golds:
        return 0.0
    pred = normalize_answer(prediction)
    return max(_token_f1(pred, normalize_answer(g)) for g in golds)


# What joins alternatives in an answer ("A or B", "A/B", "A vs. B", "A, or B"), what joins
# them in a short answer but clauses in a sentence ("A and B", "A & B"), and what joins list
# items ("A, B", "A; B"; not the comma of "May 5, 1990" or "1,000").
_JOINERS = re.compile(
    r"(?P<alternative>\s*[,;]?\s+(?:and/or|or|nor|vs\.?|versus)\s+|\s*[/|]\s*)"
    r"|(?P<conjunction>\s*[,;]?\s+and\s+|\s*&\s*)"
    r"|(?P<list>(?<!\d)\s*[,;]\s*)",
    re.IGNORECASE,
)
# "and" joins alternatives in an answer of at most this many words ("Levertov and Pekar"),
# clauses in a longer one ("Levertov, who was born in England and moved to the US").
_SHORT_LIST_WORDS = 5
# A list item opening with one of these qualifies its neighbour instead of naming another
# candidate: "Levertov, the poet", "Levertov, born 1923", "Levertov, not Pekar", "In 1923, ...".
_QUALIFIER_WORDS = (
    "a an the this that these those he she it they i we his her its their who whom whose which"
    " where when because since as but though although while so not also now then in on at of"
    " from by near for with to into during after before about under over born died located"
    " known based founded released called named"
)
_QUALIFIER_OPENERS = frozenset(_QUALIFIER_WORDS.split())
_HEDGE_WORDS = frozenset(["either", "maybe", "perhaps", "possibly", "probably"])


def _answer_items(text: str) -> list[tuple[str, str, bool]]:
    """The text's items split at list and alternative joiners: each normalised, its first word
    that is not a hedge word (lower case, articles kept), and whether an alternative ("or",
    "/", "vs"; "and" in a short answer) precedes it."""
    alternatives = {"alternative", "conjunction"}
    if len(text.split()) > _SHORT_LIST_WORDS:
        alternatives.discard("conjunction")
    pieces, start, after_alternative = [], 0, False
    for joiner in _JOINERS.finditer(text):
        pieces.append((text[start : joiner.start()], after_alternative))
        start, after_alternative = joiner.end(), joiner.lastgroup in alternatives
    pieces.append((text[start:], after_alternative))
    items = []
    for piece, alternative in pieces:
        words = [w.strip(string.punctuation).lower() for w in piece.split()]
        opener = next((w for w in words if w and w not in _HEDGE_WORDS), "")
        if normalize_answer(piece):
            items.append((normalize_answer(piece), opener, alternative))
    return items


def _is_rival(item: tuple[str, str, bool], after_gold: bool, listing: bool, gold: str) -> bool:
    """Whether an item of an answer that is not part of the gold names another candidate.

    After a comma, an item that opens like a qualifier ("Levertov, born 1923") or follows the
    gold in an answer without "or"/"and" ("Tulsa, Oklahoma") qualifies it; an item joined by
    an alternative word, before the gold ("Pekar, Levertov") or in a list that has one
    ("Levertov, Pekar or Bukowski") is a rival. For a yes/no gold only yes/no is a rival.
    """
    text, opener, after_alternative = item
    words = [w for w in text.split() if w not in _HEDGE_WORDS]
    if not words:
        return False
    if gold in _YES_NO:  # "No, Levertov was born first" answers; "yes or no" hedges
        return " ".join(words) in _YES_NO
    if after_alternative:
        return True
    if opener in _QUALIFIER_OPENERS:
        return False
    return listing or not after_gold


def _names_rivals(items: list[tuple[str, str, bool]], gold: str, gold_items: set[str]) -> bool:
    """Whether any item of the answer names a candidate beside the gold it contains."""
    parts = [
        f" {gold} " in f" {text} " or any(f" {text} " in f" {g} " for g in gold_items)
        for text, _, _ in items
    ]
    first = parts.index(True) if True in parts else len(items)
    listing = any(alternative for _, _, alternative in items)
    return any(
        _is_rival(item, index > first, listing, gold)
        for index, (item, part) in enumerate(zip(items, parts, strict=True))
        if not part
    )


def cover_exact_match(prediction: str | None, golds: Iterable[str]) -> float:
    """1.0 when a gold answer occurs in the prediction as whole words and the prediction names
    no other candidate beside it.

    Whole words so that gold "no" is not found inside "not". Containment alone credited hedges:
    "Denise Levertov or Harvey Pekar", "yes or no" and "Pekar, Levertov" named the gold among
    rivals and scored 1. The answer is split at "or", "/", "vs", "and" and list commas; see
    ``_is_rival`` for which items are rivals and which qualify the gold ("Tulsa, Oklahoma").
    """
    if not prediction:
        return 0.0
    padded = f" {normalize_answer(prediction)} "
    items = _answer_items(prediction)
    for gold in golds:
        normalised = normalize_answer(gold)
        if not normalised or f" {normalised} " not in padded:
            continue
        if padded.strip() == normalised:  # an exact match is never a hedge
            return 1.0
        gold_items = {normalised} | {text for text, _, _ in _answer_items(gold)}
        if not _names_rivals(items, normalised, gold_items):
            return 1.0
    return 0.0


def gold_answers(ground_truth: Any) -> list[str]:
    """``{"target": [...]}`` as exported, or a bare string/list; numpy arrays become lists."""
    if isinstance(ground_truth, dict):
        ground_truth = ground_truth.get("target", [])
    if hasattr(ground_truth, "tolist"):
        ground_truth = ground_truth.tolist()
    if isinstance(ground_truth, str):
        ground_truth = [ground_truth]
    return [str(g) for g in ground_truth if str(g).strip()]


def turns(solution_str: str) -> list[str]:
    """The model's own text, one item per turn (tool output removed, it splits the turns)."""
    return _TOOL_OUTPUT.split(solution_str)


def _answer_in(turn: str) -> tuple[str, bool] | None:
    """(argument, closed) when this turn's first action is a non-empty <answer>."""
    visible = _THINK.sub(" ", turn)
    action = _ACTION.search(visible)
    if action is None or action.group(1).lower() != "answer":
        return None
    rest = visible[action.end() :]
    close = _ANSWER_CLOSE.search(rest)
    argument = (rest[: close.start()] if close else rest).strip()
    return (argument, close is not None) if argument else None


def extract_answer(solution_str: str) -> str | None:
    """The answer Sleuth's loop would have taken from this response, or None."""
    for turn in turns(solution_str):
        found = _answer_in(turn)
        if found:
            return found[0]
    return None


def format_score(solution_str: str) -> float:
    """1.0 for one closed, non-empty answer ending the last turn; else 0.0."""
    parts = turns(solution_str)
    visible = [_THINK.sub(" ", t) for t in parts]
    opens = sum(len(_ANSWER_OPEN.findall(v)) for v in visible)
    closes = sum(len(_ANSWER_CLOSE.findall(v)) for v in visible)
    found = _answer_in(parts[-1])
    if opens != 1 or closes != 1 or found is None or not found[1]:
        return 0.0
    tail = visible[-1][_ANSWER_CLOSE.search(visible[-1]).end() :]  # type: ignore[union-attr]
    return 1.0 if not tail.strip() else 0.0


def score_parts(solution_str: str, golds: list[str]) -> dict[str, float]:
    answer = extract_answer(solution_str)
    return {
        "em": exact_match(answer, golds),
        "f1": f1_score(answer, golds),
        "cover_em": cover_exact_match(answer, golds),
        "format": format_score(solution_str),
        "answered": float(answer is not None),
    }


def compute_score(
    data_source: str,
    solution_str: str,
    ground_truth: Any,
    extra_info: dict[str, Any] | None = None,
    outcome: str | None = None,
    format_weight: float | None = None,
    **_: Any,
) -> dict[str, float]:
    """verl's custom reward signature. ``score`` is the reward; the other keys are logged.

    Unknown keyword arguments (verl passes e.g. ``reward_router_address``) are ignored.
    """
    outcome = OUTCOME if outcome is None else outcome
    weight = FORMAT_WEIGHT if format_weight is None else float(format_weight)
    if outcome not in OUTCOMES:
        raise ValueError(f"outcome must be one of {OUTCOMES}, got {outcome!r}")
    if not math.isfinite(weight):
        raise ValueError(f"format_weight must be finite, got {weight!r}")
    parts = score_parts(solution_str or "", gold_answers(ground_truth))
    return {"score": parts[outcome] + weight * parts["format"], **parts}
