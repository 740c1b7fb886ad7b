"""Write a faiss flat index file row block by row block, never holding the vectors in memory.

faiss writes an ``IndexFlat`` as a short header (``d``, ``ntotal``, the metric, ...) followed by
the element count and the float32 rows. Building one with ``faiss.IndexFlat.add`` and
``write_index`` needs every vector in memory at once (64 GB for 21M x 768); this writer takes
the header faiss itself writes for an empty index of the same shape, sets the row count in it,
and streams the rows after it. The result is checked by reading it back with faiss
(``FlatFileSource.checked``): the file is one faiss and Sleuth read as any flat index.
"""

from __future__ import annotations

import os
from pathlib import Path
from types import TracebackType

import numpy as np

from sleuth.errors import IndexFormatError
from sleuth.search.dense import _faiss

_NTOTAL_AT = 8  # fourcc (4 bytes) and d (int32) come first, then ntotal (int64)


def flat_header(d: int, ntotal: int, metric: str = "ip") -> bytes:
    """The bytes faiss writes before the rows of a flat index of ``ntotal`` x ``d``."""
    faiss = _faiss()
    kind = faiss.METRIC_L2 if metric == "l2" else faiss.METRIC_INNER_PRODUCT
    empty = bytearray(faiss.serialize_index(faiss.IndexFlat(d, kind)).tobytes())
    if int.from_bytes(empty[-8:], "little") != 0 or int.from_bytes(empty[8:16], "little") != 0:
        raise IndexFormatError("this faiss version writes flat indexes in an unknown layout")
    empty[_NTOTAL_AT : _NTOTAL_AT + 8] = ntotal.to_bytes(8, "little")
    empty[-8:] = (ntotal * d).to_bytes(8, "little")  # the element count before the rows
    return bytes(empty)


class FlatFileWriter:
    """``write`` row blocks in order; ``close`` checks the count, syncs and verifies the file.

    Used to keep full-precision vectors on disk beside a quantised index (``--rerank disk``)
    and by the benchmarks to generate large flat indexes without holding them."""

    def __init__(self, path: str | Path, d: int, ntotal: int, metric: str = "ip") -> None:
        self.path, self.d, self.ntotal, self.metric = Path(path), d, ntotal, metric
        self.written = 0
        self._handle = self.path.open("wb")
        self._handle.write(flat_header(d, ntotal, metric))

    def write(self, block: np.ndarray) -> None:
        block = np.ascontiguousarray(block, dtype=np.float32)
        if block.ndim != 2 or block.shape[1] != self.d:
            raise ValueError(f"rows of {self.d} dimensions expected, got shape {block.shape}")
        if self.written + len(block) > self.ntotal:
            raise ValueError(f"more than the {self.ntotal:,} rows announced")
        self._handle.write(block.tobytes())
        self.written += len(block)

    def close(self) -> None:
        from sleuth.search.faiss_source import FlatFileSource

        self._handle.flush()
        os.fsync(self._handle.fileno())
        self._handle.close()
        if self.written != self.ntotal:
            raise IndexFormatError(
                f"{self.path}: {self.written:,} rows written of the {self.ntotal:,} announced"
            )
        index = _faiss().read_index(str(self.path), _faiss().IO_FLAG_MMAP_IFC)
        if FlatFileSource.checked(self.path, index) is None:
            raise IndexFormatError(f"{self.path}: faiss does not read the written rows back")

    def __enter__(self) -> FlatFileWriter:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if kind is None:
            self.close()
        else:
            self._handle.close()
