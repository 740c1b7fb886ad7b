"""The hop plan of a two-paragraph question: which gold paragraph comes first, what the second's
name is, and whether the first paragraph names it (what a scripted episode needs to know).

Shared by the agent's scripted episodes (``synth.trajectories``) and the searcher's
(``synth.searcher_episodes``).
"""

from __future__ import annotations

import random
import zlib

from sleuth.agent.config import AgentConfig
from sleuth.evaluate.benchmarks import BenchmarkQuestion
from sleuth.search.base import SearchEngine
from sleuth.synth.script import Plan
from sleuth.synth.words import fits


def episode_rng(seed: int, question: BenchmarkQuestion) -> random.Random:
    """The script's choices for one question: fixed by the seed and the question's id, so an
    episode does not change when other questions are added or reordered."""
    return random.Random(seed * 1_000_003 + zlib.crc32(question.id.encode()))


def covers_gold(ids: set[str], question: BenchmarkQuestion) -> bool:
    """True when ``ids`` hold one id of every gold paragraph (each has interchangeable ids)."""
    return all(set(aliases) & ids for aliases in question.gold_evidence)


def _titles(question: BenchmarkQuestion) -> list[tuple[frozenset[str], str]]:
    """(alias ids, title) per gold paragraph; the title is the alias that is not a BEIR id."""
    out = []
    for aliases in question.gold_evidence:
        out.append((frozenset(aliases), aliases[-1]))
    return out


def _doc_text(search: SearchEngine, aliases: frozenset[str]) -> str:
    for doc_id in sorted(aliases):
        try:
            return search.get(doc_id).text
        except Exception:  # an alias the index does not key by
            continue
    return ""


def plan_for(
    question: BenchmarkQuestion, search: SearchEngine, config: AgentConfig, rng: random.Random
) -> Plan | None:
    """The hop order and facts the script plays, or None when the question cannot be scripted."""
    gold = _titles(question)
    if len(gold) != 2 or not question.answers:
        return None
    (ids_a, title_a), (ids_b, title_b) = gold
    text_a, text_b = _doc_text(search, ids_a), _doc_text(search, ids_b)
    bridge = question.metadata.get("type", "bridge") == "bridge"
    if bridge and title_a.lower() not in text_b.lower() and title_b.lower() not in text_a.lower():
        pass  # keep supporting-fact order
    elif bridge and title_a.lower() in text_b.lower() and title_b.lower() not in text_a.lower():
        (ids_a, title_a, text_a), (ids_b, title_b, text_b) = (
            (ids_b, title_b, text_b),
            (ids_a, title_a, text_a),
        )
    shown = " ".join(text_a.split())[: config.doc_chars]
    answer = question.answers[0].strip()
    if not fits(answer, 10):
        return None
    return Plan(
        question=question.question,
        answer=answer,
        hop1_ids=ids_a,
        hop1_title=title_a,
        hop2_ids=ids_b,
        hop2_title=title_b,
        bridge_visible=title_b.lower() in shown.lower(),
        bridge_in_text=title_b.lower() in text_a.lower(),
        bridge=bridge,
        judge="judge" in config.actions,
    )
