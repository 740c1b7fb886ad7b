"""A cross-encoder reranker in front of any engine: the first stage finds candidates, the
cross-encoder reads each (query, passage) pair together and reorders the top ``depth``.

Why a wrapper: every consumer (``sleuth search``, ``serve``, the agent) takes a
``SearchEngine``, so reranking is one more engine and none of them changes. Models are
sentence-transformers ``CrossEncoder`` folders, e.g. the one ``sleuth train retriever
--reranker`` writes; loading needs torch (``sleuth[dense]``).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sleuth.errors import SleuthError
from sleuth.search.base import MAX_K, BatchSearch, SearchEngine
from sleuth.types import Document, Hit

MARKER = "sleuth_reranker.json"  # written beside the model by `sleuth train retriever`
DEFAULT_DEPTH = 20
MAX_PASSAGE_CHARS = 2000  # the model reads 256 tokens; longer text only costs tokenisation


def passage_text(title: str, text: str) -> str:
    """The text a cross-encoder reads for a passage (the same as the dense encoder's)."""
    return f"{title}\n{text}" if title else text


def load_cross_encoder(path: str | Path) -> Any:
    """A sentence-transformers CrossEncoder from a folder, with clear errors for bad folders."""
    folder = Path(path).expanduser()
    if not folder.is_dir():
        raise SleuthError(f"{folder}: no such reranker folder")
    if not (folder / "config.json").is_file():
        raise SleuthError(
            f"{folder}: not a cross-encoder model folder (no config.json); train one with "
            "`sleuth train retriever --reranker`"
        )
    try:
        from sentence_transformers import CrossEncoder
        from transformers.utils.logging import disable_progress_bar
    except ImportError:
        raise SleuthError("reranking needs: pip install 'sleuth[dense]'") from None
    disable_progress_bar()
    try:
        return CrossEncoder(str(folder), device="cpu", local_files_only=True)
    except (OSError, ValueError) as exc:
        raise SleuthError(f"cannot load the reranker {folder}: {exc}") from None


class RerankingEngine(BatchSearch):
    """``base``'s top ``depth`` hits for each query, reordered by a cross-encoder's scores.

    Hits keep their id, title and text; ``score`` becomes the cross-encoder's score and
    ``rank`` the new position. Ties keep the first stage's order (a stable sort).
    """

    def __init__(
        self, base: SearchEngine, model: Any, depth: int = DEFAULT_DEPTH, path: str = ""
    ) -> None:
        if not 1 <= depth <= MAX_K:
            raise SleuthError(f"rerank depth {depth} is out of range; use 1..{MAX_K}")
        self.base, self.model, self.depth = base, model, depth
        self.name = f"{base.name}+rerank"
        self.reranker_path = path
        for attr in ("manifest", "path"):  # callers read these from opened indexes
            if hasattr(base, attr):
                setattr(self, attr, getattr(base, attr))

    def __len__(self) -> int:
        return len(self.base)

    def _search_batch(self, queries: Sequence[str], k: int) -> list[list[Hit]]:
        candidates = self.base.search_batch(list(queries), max(k, self.depth))
        pairs = [
            (query, passage_text(hit.title, hit.text)[:MAX_PASSAGE_CHARS])
            for query, hits in zip(queries, candidates, strict=True)
            for hit in hits
        ]
        scores = self._scores(pairs)
        results, at = [], 0
        for hits in candidates:
            mine, at = scores[at : at + len(hits)], at + len(hits)
            order = sorted(range(len(hits)), key=lambda i: -mine[i])[:k]
            results.append(
                [
                    dataclasses.replace(hits[i], score=float(mine[i]), rank=rank)
                    for rank, i in enumerate(order, start=1)
                ]
            )
        return results

    def _scores(self, pairs: list[tuple[str, str]]) -> list[float]:
        if not pairs:
            return []
        values = self.model.predict(pairs, batch_size=32, show_progress_bar=False)
        return [float(v) for v in values]

    def get(self, doc_id: str) -> Document:
        return self.base.get(doc_id)


def with_reranker(
    engine: SearchEngine, reranker: str | Path | None, depth: int = DEFAULT_DEPTH
) -> SearchEngine:
    """``engine`` itself when ``reranker`` is empty, else ``engine`` reranked by that model."""
    if not reranker:
        return engine
    return RerankingEngine(engine, load_cross_encoder(reranker), depth, str(reranker))


def write_marker(folder: Path, info: dict[str, Any]) -> None:
    """Record what a reranker folder holds (base model, training data counts)."""
    (folder / MARKER).write_text(json.dumps(info, indent=2), encoding="utf-8")
