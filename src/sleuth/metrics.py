"""Answer, evidence, factorised and efficiency metrics: pure functions, no I/O.

Answer metrics follow the SQuAD/HotpotQA evaluation scripts so numbers are comparable with
papers; the factorised diagnostics follow WebDetective (search sufficiency, knowledge
utilisation, refusal) so a wrong answer can be blamed on the search or on the reader.
"""

from __future__ import annotations

import math
import re
import string
from collections import Counter
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCTUATION = set(string.punctuation)
_YES_NO = {"yes", "no", "noanswer"}
# Normalised answers that decline rather than guess: whole answers, or sentence openings.
_REFUSAL_WORDS = {"unknown", "none", "na", "unanswerable", "no answer", "not sure", "not found"}
_REFUSAL_OPENINGS = re.compile(
    r"^(i do not know|i dont know|i don t know|i cannot|i can not|i am not sure|i m not sure|"
    r"cannot answer|cannot be determined|it cannot be determined|not enough information|"
    r"insufficient information|there is no information|no information)\b"
)


def normalize_answer(text: str) -> str:
    """SQuAD normalisation: lower case, drop punctuation and articles, squeeze whitespace."""
    text = text.lower()
    text = "".join(ch for ch in text if ch not in _PUNCTUATION)
    text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


def exact_match(prediction: str | None, golds: Sequence[str]) -> float:
    """1.0 when the normalised prediction equals any normalised gold answer."""
    if not prediction:
        return 0.0
    pred = normalize_answer(prediction)
    return float(any(pred == normalize_answer(gold) for gold in golds))


def _token_f1(pred: str, gold: str) -> float:
    # HotpotQA rule: a yes/no answer either matches exactly or scores zero.
    if (pred in _YES_NO or gold in _YES_NO) and pred != gold:
        return 0.0
    pred_tokens, gold_tokens = pred.split(), gold.split()
    common = Counter(pred_tokens) & Counter(gold_tokens)
    overlap = sum(common.values())
    if overlap == 0:
        return 0.0
    precision, recall = overlap / len(pred_tokens), overlap / len(gold_tokens)
    return 2 * precision * recall / (precision + recall)


def f1_score(prediction: str | None, golds: Sequence[str]) -> float:
    """Token-overlap F1 of the normalised strings, best over the gold answers."""
    if not prediction or not golds:
        return 0.0
    pred = normalize_answer(prediction)
    return max(_token_f1(pred, normalize_answer(gold)) for gold in golds)


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


def contains_words(text: str | None, phrases: Sequence[str]) -> bool:
    """A normalised phrase occurs in the normalised text as whole words ("no" is not in "not")."""
    if not text:
        return False
    padded = f" {normalize_answer(text)} "
    return any(f" {p} " in padded for p in map(normalize_answer, phrases) if p)


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


def cover_exact_match(prediction: str | None, golds: Sequence[str]) -> float:
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


# Answers longer than this many words get no credit from ``short_cover_exact_match``: a
# HotpotQA/2Wiki/MuSiQue gold answer is an entity, date or number of 1-5 words.
SHORT_ANSWER_WORDS = 5


def answer_words(prediction: str | None) -> int | None:
    """Words in the answer (whitespace-separated), ``None`` when there is no answer."""
    if prediction is None or not prediction.strip():
        return None
    return len(prediction.split())


def short_cover_exact_match(
    prediction: str | None, golds: Sequence[str], max_words: int = SHORT_ANSWER_WORDS
) -> float:
    """Cover-EM, but only for answers of at most ``max_words`` words.

    Cover-EM gives no credit to a list of guesses, but still to a sentence naming both
    candidates of a comparison question ("Harvey Pekar was born earlier than Denise Levertov",
    gold "Denise Levertov"). Bounding the length removes that credit while keeping the
    tolerance for "the 1994 film Clerks" vs gold "Clerks".
    """
    words = answer_words(prediction)
    if words is None or words > max_words:
        return 0.0
    return cover_exact_match(prediction, golds)


def is_refusal(prediction: str | None) -> bool:
    """No answer at all, or an answer that declines ("unknown", "I don't know", ...)."""
    if prediction is None or not prediction.strip():
        return True
    normalised = normalize_answer(prediction)
    return normalised in _REFUSAL_WORDS or bool(_REFUSAL_OPENINGS.match(normalised))


def base_doc_id(doc_id: str) -> str:
    """Chunked passages are ``<parent>#<n>``; evidence is judged at the parent document."""
    parent, sep, suffix = doc_id.rpartition("#")
    return parent if sep and suffix.isdigit() else doc_id


def evidence_recall(
    retrieved_ids: Iterable[str], gold_evidence: Sequence[Collection[str]]
) -> float | None:
    """Fraction of gold evidence items found among everything retrieved in the episode.

    Each gold item is a set of interchangeable ids (e.g. a BEIR id and the Wikipedia title,
    so the same gold works for indexes keyed either way). ``None`` when there is no gold.
    """
    if not gold_evidence:
        return None
    seen = set()
    for doc_id in retrieved_ids:
        seen.add(doc_id)
        seen.add(base_doc_id(doc_id))
    found = sum(1 for aliases in gold_evidence if any(a in seen for a in aliases))
    return found / len(gold_evidence)


CATEGORIES = (
    "solved",  # all gold evidence retrieved, answered correctly
    "misused",  # all gold evidence retrieved, answered wrongly (knowledge utilisation failure)
    "overcautious",  # all gold evidence retrieved, but declined to answer
    "refused",  # evidence missing, declined: the right call
    "hallucinated",  # evidence missing, answered wrongly
    "unsupported_correct",  # evidence missing, right anyway (memory or partial evidence)
)


def factorised_category(sufficient: bool, correct: bool, refused: bool) -> str:
    """Place one episode in the WebDetective-style 2x3 table (evidence x outcome)."""
    if sufficient:
        return "solved" if correct else ("overcautious" if refused else "misused")
    if correct:
        return "unsupported_correct"
    return "refused" if refused else "hallucinated"


@dataclass(frozen=True, slots=True)
class Factorised:
    """Rates over a set of episodes; ``None`` when the conditioning set is empty."""

    search_sufficiency: float | None  # P(all gold evidence retrieved)
    knowledge_utilisation: float | None  # P(correct | sufficient)
    refusal: float | None  # P(declined | insufficient)
    hallucination: float | None  # P(wrong answer given | insufficient)
    counts: dict[str, int]


def factorised_rates(categories: Iterable[str]) -> Factorised:
    """Turn per-episode categories into the three WebDetective rates (plus hallucination)."""
    counts = Counter(categories)
    sufficient = counts["solved"] + counts["misused"] + counts["overcautious"]
    insufficient = counts["refused"] + counts["hallucinated"] + counts["unsupported_correct"]
    total = sufficient + insufficient

    def ratio(num: int, den: int) -> float | None:
        return num / den if den else None

    return Factorised(
        search_sufficiency=ratio(sufficient, total),
        knowledge_utilisation=ratio(counts["solved"], sufficient),
        refusal=ratio(counts["refused"], insufficient),
        hallucination=ratio(counts["hallucinated"], insufficient),
        counts={name: counts[name] for name in CATEGORIES},
    )


# ---- confidence intervals -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Interval:
    mean: float
    low: float
    high: float

    @property
    def half_width(self) -> float:
        return (self.high - self.low) / 2


def _finite(values: Iterable[float | None]) -> list[float]:
    return [float(v) for v in values if v is not None and not math.isnan(float(v))]


def t_interval(values: Iterable[float | None], confidence: float = 0.95) -> Interval:
    """Mean ± Student-t half-width; used across seeds, where there are only a few values."""
    from scipy.stats import t

    data = _finite(values)
    if not data:
        return Interval(math.nan, math.nan, math.nan)
    n = len(data)
    mean = sum(data) / n
    if n < 2:
        return Interval(mean, math.nan, math.nan)
    variance = sum((x - mean) ** 2 for x in data) / (n - 1)
    half = float(t.ppf((1 + confidence) / 2, n - 1)) * math.sqrt(variance / n)
    return Interval(mean, mean - half, mean + half)


def bootstrap_interval(
    values: Iterable[float | None],
    confidence: float = 0.95,
    resamples: int = 2000,
    seed: int = 0,
) -> Interval:
    """Percentile bootstrap of the mean; used over questions (many values, any distribution)."""
    import numpy as np

    data = np.asarray(_finite(values), dtype=float)
    if data.size == 0:
        return Interval(math.nan, math.nan, math.nan)
    rng = np.random.default_rng(seed)
    means = data[rng.integers(0, data.size, size=(resamples, data.size))].mean(axis=1)
    alpha = (1 - confidence) / 2
    low, high = np.quantile(means, [alpha, 1 - alpha])
    return Interval(float(data.mean()), float(low), float(high))


@dataclass(frozen=True, slots=True)
class PairedDifference:
    """Mean of ``b - a`` over paired items, its bootstrap interval and a two-sided p-value."""

    a: float
    b: float
    diff: Interval
    p_value: float
    pairs: int


def paired_bootstrap(
    a: Sequence[float],
    b: Sequence[float],
    confidence: float = 0.95,
    resamples: int = 5000,
    seed: int = 0,
) -> PairedDifference:
    """Resample paired items (the same questions in both runs) to compare two systems."""
    import numpy as np

    if len(a) != len(b):
        raise ValueError("paired_bootstrap needs two equally long sequences")
    if not a:
        nan = math.nan
        return PairedDifference(nan, nan, Interval(nan, nan, nan), nan, 0)
    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    deltas = y - x
    rng = np.random.default_rng(seed)
    means = deltas[rng.integers(0, deltas.size, size=(resamples, deltas.size))].mean(axis=1)
    alpha = (1 - confidence) / 2
    low, high = np.quantile(means, [alpha, 1 - alpha])
    observed = float(deltas.mean())
    # Two-sided p: how often the resampled difference falls on the other side of zero.
    if observed == 0 and not deltas.any():
        p_value = 1.0
    else:
        tail = (means <= 0).mean() if observed > 0 else (means >= 0).mean()
        p_value = float(min(1.0, 2 * tail))
    return PairedDifference(
        a=float(x.mean()),
        b=float(y.mean()),
        diff=Interval(observed, float(low), float(high)),
        p_value=p_value,
        pairs=int(deltas.size),
    )
