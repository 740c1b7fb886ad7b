"""Exact re-scoring of a quantised index's candidates against full-precision vectors on disk.

An IVF-PQ index keeps 96 bytes a 768-d vector in memory (2 GB for 21M) but its scores are
approximate: its top 10 misses many of the exact top 10. Here the index returns ``k x factor``
candidates, and each is scored again exactly against its float32 row, read with ``pread``
from a flat faiss file kept beside the index (``dense/rerank.faiss``: the imported source
itself, hard-linked, or written once at import). Only the candidate rows are read, so the
process's own memory stays the quantised index; the rows a query touches go through the page
cache (shared, reclaimable), ``4 x d`` bytes each.
"""

from __future__ import annotations

import os
import threading
import weakref
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from sleuth.errors import IndexFormatError
from sleuth.search.dense import _faiss
from sleuth.search.faiss_source import FlatFileSource, metric_name

RERANK_FILE = "rerank.faiss"
RERANK_KINDS = ("sq8", "ivf-pq")  # quantised conversions whose candidates are worth re-scoring
# Candidates re-scored per hit. 20, not 10: measured on 768-d vectors (bench/dense_768.py),
# recall@10 with R=10 fell from 0.938 at 1M to 0.917 at 2M (0.85 extrapolated to 21M), with
# R=20 from 0.963 to 0.955 (0.93 at 21M), for 300 KiB more read per query and the same memory.
DEFAULT_FACTOR = 20


class DiskVectors:
    """The float32 rows of a flat faiss file, read a row at a time with ``pread``.

    ``rows_read`` counts the rows read since opening (what a query touched on disk)."""

    def __init__(self, path: str | Path) -> None:
        path = Path(path)
        if not path.is_file():
            raise IndexFormatError(f"{path}: the full-precision vectors for re-scoring are missing")
        faiss = _faiss()
        try:
            header = faiss.read_index(str(path), faiss.IO_FLAG_MMAP_IFC)  # maps, reads nothing
        except RuntimeError as exc:
            reason = " ".join(str(exc).split())[:300]
            raise IndexFormatError(f"{path}: not a faiss index faiss can read ({reason})") from None
        flat = isinstance(header, faiss.IndexFlat)
        source = FlatFileSource.checked(path, header) if flat else None
        if source is None:
            raise IndexFormatError(f"{path}: not a flat faiss file of float32 rows")
        del header  # the mapping is not kept: rows are read by pread
        self.path, self.d, self.ntotal = path, source.d, source.ntotal
        self.metric = metric_name(source.index)
        self._source = source
        self._fd = os.open(path, os.O_RDONLY)
        weakref.finalize(self, os.close, self._fd)
        if hasattr(os, "posix_fadvise"):  # no read-ahead: a query reads scattered single rows
            os.posix_fadvise(self._fd, 0, 0, os.POSIX_FADV_RANDOM)
        self._lock = threading.Lock()
        self.rows_read = 0

    def take(self, rows: Sequence[int] | np.ndarray) -> np.ndarray:
        """The rows, in the order given (each one ``pread`` on its own)."""
        out = np.empty((len(rows), self.d), dtype=np.float32)
        for n, row in enumerate(rows):
            row = int(row)
            if not 0 <= row < self.ntotal:
                raise IndexFormatError(f"{self.path}: no row {row} (it holds {self.ntotal:,})")
            out[n] = self._source.read_rows(self._fd, row, 1)[0]
        with self._lock:
            self.rows_read += len(rows)
        return out

    def rescore(
        self, queries: np.ndarray, candidates: np.ndarray, k: int
    ) -> list[tuple[list[int], list[float]]]:
        """Per query, its best ``k`` candidates by exact score (higher is nearer: the inner
        product, or the negated squared L2 distance). ``candidates`` is faiss's answer, -1
        padded; a row several queries share is read once, and rows are read in file order."""
        unique = np.unique(candidates[candidates >= 0])
        block = self.take(unique)
        ranked = []
        for query, row_list in zip(queries, candidates, strict=True):
            rows = row_list[row_list >= 0]
            vectors = block[np.searchsorted(unique, rows)]
            if self.metric == "l2":
                scores = -((vectors - query) ** 2).sum(axis=1)
            else:
                scores = vectors @ query
            order = np.argsort(-scores, kind="stable")[:k]
            ranked.append((rows[order].tolist(), scores[order].astype(float).tolist()))
        return ranked
