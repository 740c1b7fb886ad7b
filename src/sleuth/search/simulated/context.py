"""What a simulator may know about the episode it serves: the question, answers, evidence.

A ``SearchEngine`` sees only queries. Callers that know the episode's gold (training rollouts,
benchmarks, the fidelity bench) set it with ``episode_gold``; ``asyncio.to_thread`` copies the
context, so the engine's ``search`` running in a worker thread still sees it.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass


@dataclass(frozen=True)
class EpisodeGold:
    question: str = ""
    answers: tuple[str, ...] = ()
    evidence_ids: frozenset[str] = frozenset()


_CURRENT: ContextVar[EpisodeGold | None] = ContextVar("sleuth_episode_gold", default=None)


def current_gold() -> EpisodeGold | None:
    return _CURRENT.get()


@contextmanager
def episode_gold(
    question: str = "", answers: Iterable[str] = (), evidence_ids: Iterable[str] = ()
) -> Iterator[EpisodeGold]:
    """Make the episode's gold visible to simulated engines inside the ``with`` block."""
    gold = EpisodeGold(question, tuple(answers), frozenset(evidence_ids))
    token = _CURRENT.set(gold)
    try:
        yield gold
    finally:
        _CURRENT.reset(token)
