"""``simulated:corpus``: a real index's hits mixed with hard negatives and random passages.

Of the ``k`` slots of a result, about ``noise * k`` are noise (``seeding.noisy_count``), at
random positions; the rest are the real engine's top hits in rank order. A noisy slot is a hard
negative (with probability ``hard``) or a random passage. Hard negatives are BM25 neighbours of
the query that are not gold evidence (the episode's gold from ``context.episode_gold``, else
the engine's ``gold_ids``, e.g. every gold paragraph of the benchmark); when no gold is known,
they are the hits ranked just below the top ``k``. Every draw depends only on (seed, query, k):
the same call returns the same hits in any process, in any order of calls.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import replace

from sleuth.errors import SleuthError
from sleuth.search.base import MAX_K, SearchEngine, validate_query
from sleuth.search.simulated.context import current_gold
from sleuth.search.simulated.seeding import NoiseLevel, call_rng, noisy_count
from sleuth.types import Document, Hit

NAME = "simulated:corpus"


class CorpusSimulator(NoiseLevel):
    """A ``SearchEngine`` over ``base`` whose results carry noise at ratio ``noise``."""

    name = NAME
    KIND = "simulated:corpus"

    def __init__(
        self,
        base: SearchEngine,
        noise: float = 0.3,
        seed: int = 0,
        hard: float = 0.5,
        gold_ids: Iterable[str] = (),
        depth: int = 30,
    ) -> None:
        if not 0.0 <= hard <= 1.0:
            raise SleuthError(f"simulated:corpus hard={hard}: must be within 0..1")
        self.base, self.seed, self.hard, self.depth = base, seed, hard, depth
        self.noise = noise  # settable: the training curriculum raises it step by step
        self.gold_ids = frozenset(gold_ids)
        self._docs = getattr(base, "_docs", None)  # the docstore, for random passages

    def __len__(self) -> int:
        return len(self.base)

    def get(self, doc_id: str) -> Document:
        return self.base.get(doc_id)

    def search_batch(self, queries: Sequence[str], k: int = 10) -> list[list[Hit]]:
        return [self.search(q, k) for q in queries]

    def search(self, query: str, k: int = 10) -> list[Hit]:
        validate_query(query, k)
        noise = self.noise  # read once: the schedule may change it meanwhile
        rng = call_rng(self.seed, "corpus", query, k, noise)
        pool = self.base.search(query, min(MAX_K, max(self.depth, 3 * k)))
        n_noisy = noisy_count(rng, noise, k)
        real = pool[: k - n_noisy]
        used = {h.id for h in real}
        episode = current_gold()
        gold = episode.evidence_ids if episode and episode.evidence_ids else self.gold_ids
        if gold:
            hard_pool = [h for h in pool if h.id not in gold and h.id not in used]
        else:  # gold unknown: the hits ranked below the top k stand in for hard negatives
            hard_pool = [h for h in pool[k:] if h.id not in used]
        noisy: list[Hit] = []
        for _ in range(n_noisy):
            hit = None
            if hard_pool and rng.random() < self.hard:
                hit = replace(hard_pool.pop(0), label="hard_negative")
            else:
                hit = self._random_passage(rng, used | gold)
                if hit is None and hard_pool:  # no docstore to draw from: the next neighbour
                    hit = replace(hard_pool.pop(0), label="hard_negative")
            if hit is None:
                break
            used.add(hit.id)
            noisy.append(hit)
        positions = set(rng.sample(range(len(real) + len(noisy)), len(noisy)))
        out, real_iter, noisy_iter = [], iter(real), iter(noisy)
        for slot in range(len(real) + len(noisy)):
            hit = next(noisy_iter) if slot in positions else replace(next(real_iter), label="real")
            out.append(replace(hit, rank=slot + 1, engine=NAME, noise=noise))
        return out

    def _random_passage(self, rng, exclude: set[str] | frozenset[str]) -> Hit | None:
        """A passage drawn uniformly from the whole collection, not gold and not shown."""
        if self._docs is None or len(self._docs) == 0:
            return None
        for _ in range(8):
            hit = self._docs.hits([rng.randrange(len(self._docs))], [0.0])[0]
            if hit.id not in exclude:
                return replace(hit, label="random")
        return None
