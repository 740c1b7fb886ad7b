"""Dense retrieval: encoder embeddings in a faiss index (flat, HNSW, SQ8 or HNSW+SQ8).

SQ8 stores each dimension in one byte (1/4 of flat memory); HNSW adds a graph for sub-linear
search. Indexes are saved with ``faiss.write_index`` (faiss's own format, never pickle).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from sleuth.errors import IndexFormatError
from sleuth.search.base import BatchSearch
from sleuth.search.docstore import DocStore
from sleuth.search.encoder import Encoder
from sleuth.types import Document, Hit

INDEX_TYPES = ("flat", "hnsw", "sq8", "hnsw+sq8")
FAISS_FILE = "vectors.faiss"


def _faiss() -> Any:
    try:
        import faiss
    except ImportError:
        from sleuth.errors import SleuthError

        raise SleuthError("dense retrieval needs: pip install 'sleuth[dense]'") from None
    return faiss


def make_faiss_index(kind: str, dim: int, hnsw_m: int = 32, ef_construction: int = 80) -> Any:
    faiss = _faiss()
    ip = faiss.METRIC_INNER_PRODUCT
    if kind == "flat":
        return faiss.IndexFlatIP(dim)
    if kind == "hnsw":
        index = faiss.IndexHNSWFlat(dim, hnsw_m, ip)
    elif kind == "sq8":
        return faiss.IndexScalarQuantizer(dim, faiss.ScalarQuantizer.QT_8bit, ip)
    elif kind == "hnsw+sq8":
        index = faiss.IndexHNSWSQ(dim, faiss.ScalarQuantizer.QT_8bit, hnsw_m, ip)
    else:
        raise ValueError(f"unknown dense index {kind!r}; choose one of {', '.join(INDEX_TYPES)}")
    index.hnsw.efConstruction = ef_construction
    return index


def build_faiss(vectors: np.ndarray, kind: str, **params: int) -> Any:
    index = make_faiss_index(kind, vectors.shape[1], **params)
    if not index.is_trained:
        index.train(vectors)
    index.add(vectors)
    return index


def save_faiss(index: Any, folder: Path) -> None:
    _faiss().write_index(index, str(folder / FAISS_FILE))


def _skip_deleted(index: Any, docstore: DocStore, path: Path, ef_search: int) -> Any:
    """Search parameters that skip the vectors whose row is no longer in the store (documents
    deleted or replaced by ``sleuth index update``, see ``sleuth.search.updates``)."""
    faiss = _faiss()
    rows = np.asarray(docstore.rows(), dtype=np.int64)
    if len(rows) > index.ntotal or (len(rows) and int(rows.max()) >= index.ntotal):
        raise IndexFormatError(
            f"{path}: holds {index.ntotal:,} vectors for {len(docstore):,} documents"
        )
    deleted = np.setdiff1d(np.arange(index.ntotal, dtype=np.int64), rows)
    ivf = faiss.try_extract_index_ivf(index)
    if ivf is not None:  # an IVF index takes only its own parameters (and keeps its nprobe)
        params = faiss.SearchParametersIVF()
        params.nprobe = ivf.nprobe
    elif hasattr(index, "hnsw"):
        params = faiss.SearchParametersHNSW()
        params.efSearch = ef_search
    else:
        params = faiss.SearchParameters()
    batch = faiss.IDSelectorBatch(deleted)
    params.sel = faiss.IDSelectorNot(batch)
    params.keep = (batch, params.sel)  # the selectors must live as long as the parameters
    return params


class DenseEngine(BatchSearch):
    name = "dense"

    def __init__(
        self,
        folder: Path,
        docstore: DocStore,
        encoder: str | None,
        ef_search: int = 128,
        encoder_backend: str | None = None,
        *,
        query_prefix: str = "",
        mmap: bool = False,
        nprobe: int | None = None,
        metric: str = "ip",
        rerank_factor: int | None = None,
        exact: Any = None,
    ) -> None:
        """``query_prefix`` goes before every query (e5: ``"query: "``); ``mmap`` maps a flat
        index's vectors from the file instead of reading them into memory; ``nprobe`` sets the
        lists an IVF index searches; ``metric`` ``l2`` turns distances into scores (negated),
        so a higher score is a better hit for every index. ``rerank_factor`` with ``exact``
        (a ``sleuth.search.disk_rerank.DiskVectors``): the index returns ``k x rerank_factor``
        candidates, re-scored exactly against the float32 rows kept on disk beside it."""
        faiss = _faiss()
        path = folder / FAISS_FILE
        flags = faiss.IO_FLAG_MMAP_IFC if mmap else 0
        self._index = faiss.read_index(str(path), flags)
        if hasattr(self._index, "hnsw"):
            self._index.hnsw.efSearch = ef_search
        if nprobe is not None:
            faiss.extract_index_ivf(self._index).nprobe = nprobe
        self._search_params = None
        if self._index.ntotal != len(docstore):  # an updated index: rows of deleted documents
            self._search_params = _skip_deleted(self._index, docstore, path, ef_search)
        self.query_prefix = query_prefix
        self._sign = -1.0 if metric == "l2" else 1.0
        self._docs = docstore
        self.rerank_factor, self.exact = rerank_factor, exact
        shape = (self._index.ntotal, self._index.d)
        if exact is not None and (exact.ntotal, exact.d) != shape:
            raise IndexFormatError(
                f"{exact.path}: {exact.ntotal:,} x {exact.d} vectors for an index of "
                f"{shape[0]:,} x {shape[1]}"
            )
        self.encoder = Encoder(encoder, encoder_backend)
        if self.encoder.dim != self._index.d:
            raise IndexFormatError(
                f"{path}: vectors of {self._index.d} dimensions but the encoder "
                f"{self.encoder.name} makes {self.encoder.dim}"
            )

    def __len__(self) -> int:
        return len(self._docs)

    @property
    def index_bytes(self) -> int:
        return int(_faiss().serialize_index(self._index).nbytes)

    def ranked_rows_batch(
        self, queries: Sequence[str], k: int
    ) -> list[tuple[list[int], list[float]]]:
        vectors, k = self.encode_queries(queries), min(k, len(self._docs))
        if self.exact is not None and self.rerank_factor is not None:
            depth = min(k * self.rerank_factor, self._index.ntotal)
            _, candidates = self._index.search(vectors, depth, params=self._search_params)
            return self.exact.rescore(vectors, candidates, k)
        scores, rows = self._index.search(vectors, k, params=self._search_params)
        ranked = []
        for row_list, score_list in zip(rows, scores, strict=True):
            keep = row_list >= 0  # faiss pads with -1 when fewer than k vectors exist
            ranked.append((row_list[keep].tolist(), (self._sign * score_list[keep]).tolist()))
        return ranked

    def encode_queries(self, queries: Sequence[str]) -> np.ndarray:
        """The query vectors searched: each query after the index's query prefix."""
        return self.encoder.encode([self.query_prefix + query for query in queries])

    def _search_batch(self, queries: Sequence[str], k: int) -> list[list[Hit]]:
        return [self._docs.hits(r, s) for r, s in self.ranked_rows_batch(queries, k)]

    def get(self, doc_id: str) -> Document:
        return self._docs.get(doc_id)
