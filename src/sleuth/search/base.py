"""The ``SearchEngine`` protocol every engine (and the remote client) implements."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from sleuth.errors import QueryError
from sleuth.types import Document, Hit

MAX_QUERY_CHARS = 4096
MAX_K = 1000


@runtime_checkable
class SearchEngine(Protocol):
    """Ranked retrieval over a fixed document collection."""

    name: str

    def search(self, query: str, k: int = 10) -> list[Hit]:
        """Top-``k`` hits for one query, best first (rank 1..k)."""
        ...

    def search_batch(self, queries: Sequence[str], k: int = 10) -> list[list[Hit]]:
        """Top-``k`` hits for each query; engines override this when batching is faster."""
        ...

    def get(self, doc_id: str) -> Document:
        """The full document; raises ``DocumentNotFound`` for an unknown id."""
        ...

    def __len__(self) -> int:
        """Number of documents searchable."""
        ...


def validate_query(query: object, k: object) -> tuple[str, int]:
    """Reject what no engine can answer sensibly, with a message naming the problem."""
    if not isinstance(query, str):
        raise QueryError(f"query must be a string, got {type(query).__name__}")
    if not query.strip():
        raise QueryError("query is empty")
    if len(query) > MAX_QUERY_CHARS:
        raise QueryError(f"query is {len(query)} characters; the limit is {MAX_QUERY_CHARS}")
    if isinstance(k, bool) or not isinstance(k, int):
        raise QueryError(f"k must be an integer, got {k!r}")
    if not 1 <= k <= MAX_K:
        raise QueryError(f"k={k} is out of range; use 1..{MAX_K}")
    return query, k


class BatchSearch:
    """For engines whose batch search is the real one: ``search`` asks a batch of one, and
    ``search_batch`` checks every query (an empty batch answers ``[]``) before handing the
    batch to the engine's ``_search_batch``; so the checks live once, not in each engine."""

    def search(self, query: str, k: int = 10) -> list[Hit]:
        return self.search_batch([query], k)[0]

    def search_batch(self, queries: Sequence[str], k: int = 10) -> list[list[Hit]]:
        for query in queries:
            validate_query(query, k)
        if not queries:
            return []
        return self._search_batch(queries, k)

    def _search_batch(self, queries: Sequence[str], k: int) -> list[list[Hit]]:
        raise NotImplementedError
