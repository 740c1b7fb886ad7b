"""A dense index split into S shards, searched apart and merged: exactly one index's top-k.

Each shard holds a contiguous range of the live rows (deleted rows of an updated index are left
out) as its own faiss file, so a process serving it loads only that part. A flat or SQ8 index
searches every vector, so the best k of the union of each shard's best k is the best k overall:
the merge is exact, scores included (a shard computes the same inner product or distance for
a vector as the whole index does). A graph or IVF index would find other neighbours per shard,
so it is refused.

Order among bit-identical scores follows faiss's own heap order (for inner product the higher
row first, for L2 the lower row first), so ties inside the top-k read as the single index has
them. Which of several tied rows straddling rank k is kept depends on faiss's scan order and may
differ from one index; with real text this needs two passages with bit-identical vectors.

The shard files are built once per index generation and shard count, into
``INDEX/shards/gNNNNNN-sS/`` (written in a hidden sibling folder and renamed into place).
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from sleuth.errors import IndexFormatError, SleuthError
from sleuth.jsonio import write_json_atomic
from sleuth.search.base import BatchSearch
from sleuth.search.dense import FAISS_FILE, _faiss
from sleuth.search.docstore import DocStore
from sleuth.search.index_format import data_folder, read_manifest
from sleuth.types import Document, Hit

SHARDS = "shards"
META = "shards.json"
FORMAT = "sleuth-dense-shards"
MAX_SHARDS = 64
BM25_REFUSAL = (
    "BM25 scores depend on collection statistics (each term's document frequency, the average "
    "document length): a shard would score with its own, so merged shards rank differently "
    "from the whole index (measured in bench/results/bm25_sharding.json); serve it with "
    "--replicas instead"
)

# (distances, global rows) per query batch, as faiss returns them: shape (queries, k)
ShardResult = tuple[np.ndarray, np.ndarray]


@dataclass(frozen=True)
class ShardSet:
    """The shard files of one generation of an index."""

    folder: Path
    count: int
    metric: str  # "ip" | "l2"
    generation: int
    documents: int

    def shard_file(self, number: int) -> Path:
        return self.folder / f"shard-{number:03d}.faiss"

    def rows_file(self, number: int) -> Path:
        return self.folder / f"shard-{number:03d}.rows.npy"


def check_shardable(index: Path, count: int) -> dict[str, Any]:
    """The manifest, once ``index`` is known to be a dense index ``count`` shards can split."""
    manifest = read_manifest(index)
    engine = manifest["engine"]
    if engine == "bm25":
        raise SleuthError(f"--shards splits a dense index; {index} is a BM25 index. {BM25_REFUSAL}")
    if engine != "dense":
        raise SleuthError(
            f"--shards splits a dense index; {index} is a {engine} index, whose BM25 half "
            "cannot be sharded exactly (" + BM25_REFUSAL.split(": a shard")[0] + "); serve it "
            "with --replicas instead"
        )
    if not 2 <= count <= MAX_SHARDS:
        raise SleuthError(f"--shards {count}: give 2..{MAX_SHARDS} (1 is --replicas alone)")
    documents = int(manifest.get("corpus", {}).get("documents", 0))
    if count > documents:
        raise SleuthError(f"--shards {count} is more than the index's {documents} documents")
    return manifest


def shard_set_of(index: Path, count: int) -> ShardSet | None:
    """The shard files already built for the index's current generation, if any."""
    manifest = read_manifest(index)
    generation = int(manifest.get("generation", 0))
    folder = index / SHARDS / f"g{generation:06d}-s{count}"
    try:
        meta = json.loads((folder / META).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    source = data_folder(index, manifest) / "dense" / FAISS_FILE
    if meta.get("format") != FORMAT or meta.get("source") != _file_stamp(source):
        return None
    return ShardSet(folder, count, meta["metric"], generation, meta["documents"])


def build_shards(index: str | Path, count: int) -> ShardSet:
    """Split the index's vectors into ``count`` shard files (once per generation; reused after).

    Memory: the source is memory-mapped and one shard's codes are copied at a time."""
    index = Path(index).expanduser()
    manifest = check_shardable(index, count)
    existing = shard_set_of(index, count)
    if existing is not None:
        return existing
    faiss = _faiss()
    data = data_folder(index, manifest)
    source_path = data / "dense" / FAISS_FILE
    source = faiss.read_index(str(source_path), faiss.IO_FLAG_MMAP_IFC)
    kind = _flat_kind(source, source_path)
    rows = np.asarray(sorted(DocStore(data).rows()), dtype=np.int64)
    if len(rows) and int(rows[-1]) >= source.ntotal:
        raise IndexFormatError(
            f"{source_path}: holds {source.ntotal:,} vectors for rows up to {int(rows[-1]):,}"
        )
    generation = int(manifest.get("generation", 0))
    target = index / SHARDS / f"g{generation:06d}-s{count}"
    tmp = target.with_name(f".{target.name}.tmp-{uuid.uuid4().hex[:8]}")
    try:
        tmp.mkdir(parents=True)
    except OSError as exc:
        raise SleuthError(
            f"cannot write the shard files into {index / SHARDS}: {exc.strerror or exc} "
            "(--shards splits the vectors once into the index folder, so it must be writable)"
        ) from None
    try:
        codes = faiss.rev_swig_ptr(source.codes.data(), source.ntotal * source.code_size)
        codes = np.asarray(codes).reshape(source.ntotal, source.code_size)
        shards = ShardSet(tmp, count, _metric(source), generation, len(rows))
        for number, part in enumerate(np.array_split(rows, count)):
            shard = _empty_like(source, kind)
            _fill(shard, codes[part])
            faiss.write_index(shard, str(shards.shard_file(number)))
            np.save(shards.rows_file(number), part, allow_pickle=False)
        meta = {
            "format": FORMAT,
            "generation": generation,
            "count": count,
            "metric": shards.metric,
            "kind": kind,
            "documents": len(rows),
            "source": _file_stamp(source_path),
        }
        write_json_atomic(tmp / META, meta)
        _fsync_tree(tmp)
        _remove_other_generations(index / SHARDS, target.name)
        try:
            os.replace(tmp, target)
        except OSError:  # another process put the same shards in place first
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return ShardSet(target, count, shards.metric, generation, len(rows))


def _flat_kind(index: Any, path: Path) -> str:
    faiss = _faiss()
    if isinstance(index, faiss.IndexFlat):
        return "flat"
    if isinstance(index, faiss.IndexScalarQuantizer):
        return "sq8"
    raise SleuthError(
        f"--shards needs a flat or SQ8 dense index (an exhaustive search, so merging the "
        f"shards' top-k is exact); {path} is a {type(index).__name__}, whose search per shard "
        "would find other neighbours. Serve it with --replicas, or convert it "
        "(sleuth index import --to flat|sq8)"
    )


def _metric(index: Any) -> str:
    return "l2" if index.metric_type == _faiss().METRIC_L2 else "ip"


def _empty_like(source: Any, kind: str) -> Any:
    faiss = _faiss()
    if kind == "flat":
        return faiss.IndexFlat(source.d, source.metric_type)
    shard = faiss.IndexScalarQuantizer(source.d, source.sq.qtype, source.metric_type)
    faiss.copy_array_to_vector(faiss.vector_to_array(source.sq.trained), shard.sq.trained)
    shard.is_trained = True
    return shard


def _fill(shard: Any, codes: np.ndarray) -> None:
    """Put the rows' codes in as they are (no decode and encode again: SQ8 codes stay bit-equal)."""
    faiss = _faiss()
    shard.codes.resize(codes.size)
    shard.ntotal = len(codes)
    if codes.size:
        np.asarray(faiss.rev_swig_ptr(shard.codes.data(), codes.size))[:] = codes.ravel()


def _file_stamp(path: Path) -> list[int]:
    try:
        stat = os.stat(path)
    except OSError as exc:
        raise IndexFormatError(f"{path}: {exc.strerror or exc}") from None
    return [stat.st_size, stat.st_mtime_ns, stat.st_ino]


def _fsync_tree(folder: Path) -> None:
    for path in [*folder.iterdir(), folder]:
        descriptor = os.open(path, os.O_RDONLY | (os.O_DIRECTORY if path.is_dir() else 0))
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)


def _remove_other_generations(shards: Path, keep: str) -> None:
    """Shards of earlier generations are stale once a new generation is sharded."""
    keep_generation = keep.split("-")[0]
    for entry in shards.iterdir():
        if (
            entry.is_dir()
            and entry.name.startswith("g")
            and not entry.name.startswith(keep_generation)
        ):
            shutil.rmtree(entry, ignore_errors=True)


class DenseShard:
    """One shard, loaded alone: searches query vectors, answers global rows."""

    def __init__(self, shards: ShardSet, number: int) -> None:
        if not 0 <= number < shards.count:
            raise SleuthError(f"shard {number} of {shards.count} does not exist")
        faiss = _faiss()
        path = shards.shard_file(number)
        try:
            self._index = faiss.read_index(str(path), faiss.IO_FLAG_MMAP_IFC)
            self._rows = np.load(shards.rows_file(number), allow_pickle=False)
        except (OSError, RuntimeError, ValueError) as exc:
            raise IndexFormatError(f"{path}: cannot read the shard ({exc})") from None
        if len(self._rows) != self._index.ntotal:
            raise IndexFormatError(f"{path}: {self._index.ntotal} vectors, {len(self._rows)} rows")
        self.number = number

    def __len__(self) -> int:
        return int(self._index.ntotal)

    def search(self, vectors: np.ndarray, k: int) -> ShardResult:
        """faiss's distances and the global rows of this shard's best ``k`` (-1: none)."""
        if not len(self._rows):
            empty = np.full((len(vectors), 0), -1, dtype=np.int64)
            return empty.astype(np.float32), empty
        distances, local = self._index.search(vectors, min(k, len(self._rows)))
        rows = np.where(local >= 0, self._rows[np.maximum(local, 0)], -1)
        return distances, rows


def merge(parts: Sequence[ShardResult], k: int, metric: str) -> list[tuple[list[int], list[float]]]:
    """Per query, the best ``k`` of every shard's answer, ordered as one faiss index orders
    them: inner product descending (ties: higher row first), L2 ascending (ties: lower row
    first). Returns (rows, scores) with scores as the dense engine reports them (L2 negated)."""
    distances = np.concatenate([d for d, _ in parts], axis=1)
    rows = np.concatenate([r for _, r in parts], axis=1)
    merged = []
    for dist, row in zip(distances, rows, strict=True):
        keep = row >= 0
        dist, row = dist[keep], row[keep]
        if metric == "l2":
            order = np.lexsort((row, dist))  # distance up, then row up
            scores = -dist[order[:k]]
        else:
            order = np.lexsort((-row, -dist))  # score down, then row down
            scores = dist[order[:k]]
        merged.append((row[order[:k]].tolist(), scores.astype(np.float32).tolist()))
    return merged


class ShardedDenseEngine(BatchSearch):
    """The dense engine of a sharded index: encodes the queries once, asks every shard (through
    ``fan_out``: local shards, or Ray Serve deployments), merges, reads the hits' documents."""

    name = "dense"

    def __init__(
        self,
        index: str | Path,
        fan_out: Callable[[np.ndarray, int], list[ShardResult]],
        *,
        metric: str,
        encoder_backend: str | None = None,
    ) -> None:
        from sleuth.search.encoder import Encoder, query_backend

        folder = Path(index).expanduser()
        manifest = read_manifest(folder)
        params = manifest.get("params", {})
        self._docs = DocStore(data_folder(folder, manifest))
        backend = query_backend(params.get("encoder_backend"), encoder_backend)
        self.encoder = Encoder(params.get("encoder"), backend)
        self.query_prefix = params.get("query_prefix", "")
        self._fan_out, self._metric = fan_out, metric
        self.manifest, self.path = manifest, folder

    def __len__(self) -> int:
        return len(self._docs)

    def encode_queries(self, queries: Sequence[str]) -> np.ndarray:
        return self.encoder.encode([self.query_prefix + query for query in queries])

    def ranked_rows_batch(
        self, queries: Sequence[str], k: int
    ) -> list[tuple[list[int], list[float]]]:
        k = min(k, len(self._docs))
        return merge(self._fan_out(self.encode_queries(queries), k), k, self._metric)

    def _search_batch(self, queries: Sequence[str], k: int) -> list[list[Hit]]:
        return [self._docs.hits(r, s) for r, s in self.ranked_rows_batch(queries, k)]

    def get(self, doc_id: str) -> Document:
        return self._docs.get(doc_id)


def local_fan_out(shards: ShardSet) -> Callable[[np.ndarray, int], list[ShardResult]]:
    """Every shard in this process (tests, and a check of the shard files without Ray)."""
    loaded = [DenseShard(shards, number) for number in range(shards.count)]
    return lambda vectors, k: [shard.search(vectors, k) for shard in loaded]
