"""Sleuth's answer reward for verl, as one self-contained file (standard library only).

``sleuth export verl`` copies this file next to the exported parquet as ``sleuth_reward.py`` with
the chosen settings filled in, and verl loads it with ``custom_reward_function.path=...``. It
must not import ``sleuth``: Ray workers on a training cluster rarely have Sleuth installed.

It scores a decoded verl response (every assistant turn plus the tool responses between them)
the way Sleuth scores a trajectory, so a number seen in ``sleuth eval`` means the same in verl:

- the answer is the argument of the first ``<answer>`` tag that Sleuth's tag parser would act on:
  text inside tool responses (``<tool_response>``, ``<information>``) and ``<think>`` is never
  read, turns are separated at tool responses, and a turn whose first action tag is not
  ``<answer>`` is skipped (an unclosed final ``<answer>`` counts, as in Sleuth's loop);
- EM, F1 and cover-EM use the SQuAD/HotpotQA normalisation of ``sleuth.metrics``;
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

# -- settings (rewritten by `sleuth export verl`; per run: +custom_reward_function.reward_kwargs)
OUTCOME = "em"  # em | f1 | cover_em: the outcome term of the score
FORMAT_WEIGHT = 0.0  # score = outcome + FORMAT_WEIGHT * format

# The action tags of Sleuth's loop: its action table's names (sleuth.agent.actions.ACTIONS),
# which `sleuth export verl` writes here; a test keeps this copy equal to the table.
ACTION_TAGS = ("search", "open", "judge", "answer", "ask")

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


def cover_exact_match(prediction: str | None, golds: Iterable[str]) -> float:
    """A gold answer appears in the prediction as whole words (so "no" is not inside "not")."""
    if not prediction:
        return 0.0
    padded = f" {normalize_answer(prediction)} "
    return float(any(f" {g} " in padded for g in map(normalize_answer, golds) if g))


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
