"""Read the vectors of a faiss index someone else built, row by row, in bounded memory.

A flat index (``IndexFlatIP``/``IndexFlatL2``, what Search-R1 and FlashRAG ship as
``e5_Flat.index``) ends with its vectors, row after row, as float32: its header is read by faiss
through a memory map (nothing is loaded), the layout is checked (the element count faiss writes
before the vectors, and the first and last rows against faiss's own ``reconstruct``), and the
rows are then read with plain file reads, a chunk at a time, hashing the whole file as they go.
Any other structure (HNSW, IVF, ...) cannot be read in parts: faiss loads it once and the rows
are reconstructed from it in chunks.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from sleuth.errors import IndexFormatError
from sleuth.search.dense import _faiss

HASH_BLOCK = 16 << 20
CHUNK_BYTES = 64 << 20  # vectors read or reconstructed at a time


def index_kind(index: Any) -> str:
    """What Sleuth calls the structure of a faiss index (the manifest's ``dense_index``)."""
    faiss = _faiss()
    if isinstance(index, faiss.IndexFlat) and index.code_size == 4 * index.d:
        return "flat"
    if isinstance(index, faiss.IndexHNSWFlat):
        return "hnsw"
    if isinstance(index, faiss.IndexHNSWSQ):
        return "hnsw+sq8"
    if isinstance(index, faiss.IndexScalarQuantizer):
        return "sq8" if index.sq.qtype == faiss.ScalarQuantizer.QT_8bit else "other"
    if isinstance(index, faiss.IndexIVFPQ):
        return "ivf-pq"
    if isinstance(index, faiss.IndexIVF):
        return "ivf"
    return "other"


def metric_name(index: Any) -> str:
    faiss = _faiss()
    if index.metric_type == faiss.METRIC_INNER_PRODUCT:
        return "ip"
    if index.metric_type == faiss.METRIC_L2:
        return "l2"
    raise IndexFormatError(
        f"faiss metric {index.metric_type} is not supported (inner product or L2 only)"
    )


def file_sha256(path: Path) -> str:
    sha = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(HASH_BLOCK):
            sha.update(block)
    return sha.hexdigest()


class VectorSource:
    """The rows of a faiss index in order, and a few rows by number."""

    path: Path
    index: Any  # the faiss index (memory-mapped for a flat file: its vectors are not read)
    d: int
    ntotal: int
    kind: str
    metric: str
    loaded: bool  # True: faiss read the whole index into memory

    def chunk_rows(self) -> int:
        return max(1, CHUNK_BYTES // (4 * self.d))

    def chunks(self) -> Iterator[tuple[int, np.ndarray]]:
        raise NotImplementedError

    def take(self, rows: Sequence[int]) -> np.ndarray:
        raise NotImplementedError

    def sha256(self) -> str:
        """The file's sha256 (free after a full ``chunks`` pass of a flat file)."""
        raise NotImplementedError


def open_source(path: str | Path) -> VectorSource:
    """A flat file read in chunks when its layout is the one checked, else the loaded index."""
    path = Path(path).expanduser().resolve()
    if not path.is_file():
        raise IndexFormatError(f"{path}: no such faiss index file")
    faiss = _faiss()
    try:
        mapped = faiss.read_index(str(path), faiss.IO_FLAG_MMAP_IFC)
    except RuntimeError as exc:
        reason = " ".join(str(exc).split())[:300]
        raise IndexFormatError(f"{path}: not a faiss index faiss can read ({reason})") from None
    _check_row_ids(mapped, path)
    if index_kind(mapped) == "flat":
        flat = FlatFileSource.checked(path, mapped)
        if flat is not None:
            return flat
    return LoadedSource(path, faiss.read_index(str(path)))


def _check_row_ids(index: Any, path: Path) -> None:
    """An ``IndexIDMap`` answers with its own ids; Sleuth needs row numbers (row i = line i),
    so one is accepted only when its ids are exactly 0..n-1."""
    faiss = _faiss()
    if isinstance(index, faiss.IndexIDMap):
        ids = faiss.vector_to_array(index.id_map)
        if not np.array_equal(ids, np.arange(index.ntotal)):
            raise IndexFormatError(
                f"{path}: an IndexIDMap whose ids are not the row numbers 0..n-1; Sleuth maps "
                "row i of the index to line i of the corpus"
            )


class FlatFileSource(VectorSource):
    """A flat index file read with ``pread``: page cache, not this process's memory."""

    loaded = False

    def __init__(self, path: Path, index: Any, offset: int) -> None:
        self.path, self.index, self.offset = path, index, offset
        self.d, self.ntotal = int(index.d), int(index.ntotal)
        self.kind, self.metric = "flat", metric_name(index)
        self._sha: str | None = None

    @classmethod
    def checked(cls, path: Path, index: Any) -> FlatFileSource | None:
        """The source if the vectors sit where expected (else None: faiss loads the file)."""
        count = int(index.ntotal) * int(index.d)
        offset = path.stat().st_size - 4 * count
        if offset < 8 or count == 0:
            return None
        with path.open("rb") as handle:
            handle.seek(offset - 8)
            if int.from_bytes(handle.read(8), "little") != count:
                return None
        source = cls(path, index, offset)
        ends = [0, source.ntotal - 1]
        if not np.array_equal(source.take(ends), index.reconstruct_batch(np.array(ends))):
            return None
        return source

    def read_rows(self, fd: int, start: int, count: int) -> np.ndarray:
        """``count`` rows from ``start``, read from the open file ``fd`` with one pread."""
        size = 4 * self.d * count
        data = os.pread(fd, size, self.offset + 4 * self.d * start)
        if len(data) != size:
            raise IndexFormatError(f"{self.path}: cut short while reading row {start}")
        return np.frombuffer(data, dtype=np.float32).reshape(count, self.d)

    def chunks(self) -> Iterator[tuple[int, np.ndarray]]:
        sha = hashlib.sha256()
        fd = os.open(self.path, os.O_RDONLY)
        try:
            sha.update(os.pread(fd, self.offset, 0))  # the header
            step = self.chunk_rows()
            for start in range(0, self.ntotal, step):
                block = self.read_rows(fd, start, min(step, self.ntotal - start))
                sha.update(block.tobytes())
                yield start, block
        finally:
            os.close(fd)
        self._sha = sha.hexdigest()

    def take(self, rows: Sequence[int]) -> np.ndarray:
        out = np.empty((len(rows), self.d), dtype=np.float32)  # filled in place: no second copy
        fd = os.open(self.path, os.O_RDONLY)
        try:
            for n, row in enumerate(rows):
                out[n] = self.read_rows(fd, int(row), 1)[0]
        finally:
            os.close(fd)
        return out

    def sha256(self) -> str:
        if self._sha is None:
            self._sha = file_sha256(self.path)
        return self._sha


class LoadedSource(VectorSource):
    """Any other faiss index, loaded by faiss; rows are reconstructed (lossy for quantised
    indexes: what the index itself holds)."""

    loaded = True

    def __init__(self, path: Path, index: Any) -> None:
        faiss = _faiss()
        self.path, self.index = path, index
        self.d, self.ntotal = int(index.d), int(index.ntotal)
        self.kind, self.metric = index_kind(index), metric_name(index)
        ivf = faiss.try_extract_index_ivf(index)
        if ivf is not None:
            ivf.make_direct_map(True)  # rows by number without scanning every list
        self._sha: str | None = None

    def take(self, rows: Sequence[int]) -> np.ndarray:
        try:
            return self.index.reconstruct_batch(np.asarray(rows, dtype=np.int64))
        except RuntimeError as exc:
            reason = " ".join(str(exc).split())[:300]
            raise IndexFormatError(
                f"{self.path}: faiss cannot give back the vectors of this "
                f"{type(self.index).__name__} ({reason})"
            ) from None

    def chunks(self) -> Iterator[tuple[int, np.ndarray]]:
        step = self.chunk_rows()
        for start in range(0, self.ntotal, step):
            yield start, self.take(range(start, min(start + step, self.ntotal)))

    def sha256(self) -> str:
        if self._sha is None:
            self._sha = file_sha256(self.path)
        return self._sha
