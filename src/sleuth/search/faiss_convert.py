"""Convert an imported index's vectors to a smaller faiss structure, a chunk at a time.

The quantizer is trained on an evenly spaced sample of rows, then rows are added in the source's
order, chunk by chunk, so row i stays line i of the corpus. Memory: the output index (faiss
builds it in memory before writing it; a flat or SQ8 one is sized once, not grown), one chunk of
source rows and the training sample; a flat source is never loaded. The peak resident memory
is measured (``PeakMemory``) and recorded.
"""

from __future__ import annotations

import math
import resource
from pathlib import Path
from typing import Any

import numpy as np

from sleuth.errors import SleuthError
from sleuth.search.dense import _faiss
from sleuth.search.faiss_source import VectorSource

TARGETS = ("flat", "sq8", "ivf-pq")
MAX_TRAIN = 200_000  # rows the quantizer is trained on, at most
PQ_BITS = 8


def ivf_pq_shape(ntotal: int, d: int, nlist: int | None, pq_m: int | None) -> tuple[int, int, int]:
    """(lists, sub-quantizers, bits): about sqrt(n) lists with 39+ training rows each, one byte
    per 8 dimensions; fewer bits when the corpus is too small to train 256 codes."""
    lists = nlist or max(1, min(int(math.sqrt(ntotal)), ntotal // 39))
    m = pq_m or max(1, d // 8)
    if d % m:
        raise SleuthError(f"--pq-m {m} must divide the vector dimension {d}")
    bits = PQ_BITS if min(ntotal, MAX_TRAIN) >= 39 * (1 << PQ_BITS) else 4
    return lists, m, bits


def make_target(kind: str, d: int, metric: str, ntotal: int, **shape: Any) -> Any:
    faiss = _faiss()
    faiss_metric = faiss.METRIC_L2 if metric == "l2" else faiss.METRIC_INNER_PRODUCT
    if kind == "flat":
        return faiss.IndexFlat(d, faiss_metric)
    if kind == "sq8":
        return faiss.IndexScalarQuantizer(d, faiss.ScalarQuantizer.QT_8bit, faiss_metric)
    if kind == "ivf-pq":
        lists, m, bits = ivf_pq_shape(ntotal, d, shape.get("nlist"), shape.get("pq_m"))
        quantizer = faiss.IndexFlat(d, faiss_metric)  # faiss's wrapper keeps it referenced
        return faiss.IndexIVFPQ(quantizer, d, lists, m, bits, faiss_metric)
    raise SleuthError(f"unknown --to {kind!r}; choose one of {', '.join(TARGETS)}")


def training_rows(ntotal: int, limit: int = MAX_TRAIN) -> np.ndarray:
    return np.unique(np.linspace(0, ntotal - 1, num=min(ntotal, limit)).astype(np.int64))


def train(target: Any, source: VectorSource) -> int:
    """Train ``target`` on an evenly spaced sample of the source; returns the rows used."""
    if target.is_trained:
        return 0
    rows = training_rows(source.ntotal)
    target.train(np.ascontiguousarray(source.take(rows)))
    return len(rows)


class ChunkAdder:
    """Adds source rows to ``target`` in order. A flat-codes index (flat, SQ8) is sized once
    for every row and each chunk's codes are written in place: ``add`` would grow its buffer by
    doubling, holding the old and the new buffer at once (up to twice the output) at the end."""

    def __init__(self, target: Any, ntotal: int) -> None:
        faiss = _faiss()
        self.target, self._view = target, None
        if isinstance(target, faiss.IndexFlatCodes):
            self._size = target.code_size
            target.codes.resize(ntotal * self._size)
            target.ntotal = ntotal
            self._view = faiss.rev_swig_ptr(target.codes.data(), ntotal * self._size)

    def add(self, start: int, block: np.ndarray) -> None:
        if self._view is None:
            self.target.add(block)
            return
        end = (start + len(block)) * self._size
        self._view[start * self._size : end] = self.target.sa_encode(block).ravel()


class PeakMemory:
    """The peak resident memory of this process while the block runs.

    Linux resets the high-water mark when 5 is written to ``/proc/self/clear_refs``, so the peak
    is the block's own (``scope`` "conversion"); where that is refused it is the process's peak
    since it started (``scope`` "process").
    """

    def __enter__(self) -> PeakMemory:
        try:
            Path("/proc/self/clear_refs").write_text("5")
            self.scope = "conversion"
        except OSError:
            self.scope = "process"
        self.bytes = 0
        return self

    def __exit__(self, *exc: object) -> None:
        self.bytes = _high_water_bytes()


def _high_water_bytes() -> int:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux: KiB
