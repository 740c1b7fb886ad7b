"""Which documents the final read shows (``AgentConfig.final_read``).

The first search's hits come first and whole: with a prefetch they are exactly what single-shot
RAG reads, so the final read starts from RAG's context. The later searches follow rank by rank
(every follow-up's best hit before any second-best), so a second hop's document is not crowded
out by the first hop's long tail.
"""

from __future__ import annotations

from itertools import zip_longest

# Documents the final read shows by default in `ask`, `eval run` and the demo: RAG's 3 hits and
# the first follow-up search's best. Measured against 6 (docs/evaluation.md, "The final read"):
# the same for the 135M model, F1 +0.022 (within noise) for Qwen-0.5B, and a shorter prompt.
DEFAULT_DOCUMENTS = 4


def reading_order(searches: list[list[str]], k: int) -> list[str]:
    """Up to ``k`` distinct document ids from ``searches`` (each a ranked list of hit ids)."""
    if not searches or k < 1:
        return []
    ordered = list(searches[0])
    for same_rank in zip_longest(*searches[1:]):
        ordered += [doc_id for doc_id in same_rank if doc_id is not None]
    return list(dict.fromkeys(ordered))[:k]
