"""Round-trip consistency filtering and BM25 hard negatives.

A generated query is kept only if the retriever, asked that query, ranks the passage it was
written from in its top ``keep_top_k``: queries too vague or off-topic to find their own
passage are noise for training (Promptagator, section 3.2).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from sleuth.search.base import SearchEngine
from sleuth.train.retriever.generate import GeneratedQuery

BATCH = 64


@dataclass(frozen=True)
class FilterResult:
    kept: list[GeneratedQuery]
    dropped: list[GeneratedQuery]
    source_rank: dict[tuple[str, str], int]  # (passage id, query) -> rank, 0 = not found


def round_trip_filter(
    engine: SearchEngine,
    queries: Sequence[GeneratedQuery],
    keep_top_k: int = 3,
    progress: Callable[[int], None] | None = None,
) -> FilterResult:
    """Keep each query whose source passage is in ``engine``'s top ``keep_top_k`` for it."""
    kept, dropped, ranks = [], [], {}
    for start in range(0, len(queries), BATCH):
        chunk = list(queries[start : start + BATCH])
        results = engine.search_batch([q.query for q in chunk], keep_top_k)
        for generated, hits in zip(chunk, results, strict=True):
            ids = [hit.id for hit in hits]
            rank = ids.index(generated.passage_id) + 1 if generated.passage_id in ids else 0
            ranks[(generated.passage_id, generated.query)] = rank
            (kept if rank else dropped).append(generated)
        if progress:
            progress(len(chunk))
    return FilterResult(kept, dropped, ranks)


def hard_negatives(
    engine: SearchEngine, pairs: Sequence[tuple[str, str]], depth: int = 10
) -> list[str | None]:
    """For each ``(query, positive id)``: the best-ranked hit that is not the positive (a
    passage the lexical retriever confuses with it), or None when there is none."""
    negatives: list[str | None] = []
    for start in range(0, len(pairs), BATCH):
        chunk = pairs[start : start + BATCH]
        results = engine.search_batch([query for query, _ in chunk], depth)
        for (_, positive), hits in zip(chunk, results, strict=True):
            negatives.append(next((h.id for h in hits if h.id != positive), None))
    return negatives
