"""Encode a corpus's dense vectors on a Ray cluster (``sleuth index ... --ray``), resumably.

The documents are split into contiguous shards of rows. Ray Data hands each shard to a pool of
encoder actors (one encoder loaded per worker, ``--ray-workers`` of them, anywhere in the
cluster); the vectors come back to this process, which writes each finished shard to a work
folder beside the index (``.<out>.ray-encode/``): the vectors file first, then a small record
(row range, row count, dimension, sha256 of the vectors) by temp file and rename, so a shard is
either complete and checked or absent. A worker that dies mid-shard is Ray's to handle (the
actor is restarted and the shard retried); a build killed on the
driver is resumed by running the same command again: shards whose records match are read back
instead of encoded. The texts travel in Ray's object store, so the workers need Sleuth and the
encoder installed but no shared filesystem.

The assembled vectors are in row order and are what the one-process build encodes (each shard is
encoded by the same ``Encoder``); the caller builds the faiss index from them exactly as it does
without Ray, and removes the work folder once the index is in place.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import signal
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from sleuth.errors import SleuthError
from sleuth.jsonio import atomic_write, write_json_atomic
from sleuth.search import ray_cluster

SHARD_DOCS = 50_000  # documents per shard at most (more shards than workers for a big corpus)
PLAN = "plan.json"
WAVE_SHARDS = 8  # shards handed to Ray at a time (or twice the workers): bounds driver memory
FAULT_ENV = "SLEUTH_RAY_ENCODE_FAULT"  # fault injection for the tests (module ``_fault``)


@dataclass(frozen=True)
class RayOptions:
    """How ``--ray`` runs: ``address`` ``None`` starts a Ray instance on this machine, ``auto``
    joins the one running here, ``HOST:PORT`` a cluster's head; ``shards`` ``None`` picks
    ``max(workers, ceil(documents / SHARD_DOCS))``; ``log`` receives one line per shard."""

    address: str | None = None
    workers: int = 2
    shards: int | None = None
    cpus_per_worker: float = 1.0
    log: Callable[[str], None] | None = None


@dataclass
class EncodedCorpus:
    """The vectors in row order, the backend and dimension they were made with, and which
    shards this run encoded (the others were read back from the work folder)."""

    vectors: np.ndarray
    backend: str
    dim: int
    encoded: list[int]
    reused: list[int]


def work_folder(out: Path) -> Path:
    """Where the finished shards of a build of ``out`` wait: a hidden sibling of the index."""
    return out.with_name(f".{out.name}.ray-encode")


def import_ray() -> Any:
    """``ray`` with Ray Data, or a SleuthError naming the extra that installs it."""
    return ray_cluster.import_ray("data", "Ray with Ray Data")  # the serve-only install lacks it


def check_options(options: RayOptions) -> None:
    """Bad worker or shard counts, refused before the corpus is read."""
    if options.workers < 1:
        raise SleuthError(f"--ray-workers must be at least 1, got {options.workers}")
    if options.shards is not None and options.shards < 1:
        raise SleuthError(f"--ray-shards must be at least 1, got {options.shards}")
    if options.cpus_per_worker <= 0:
        raise SleuthError(f"--ray-worker-cpus must be positive, got {options.cpus_per_worker}")
    ray_cluster.check_address(options.address)


def connect(ray: Any, options: RayOptions) -> bool:
    """Join (or start) Ray; True when this call started the connection (so it shuts it down)."""
    return ray_cluster.connect(
        ray,
        options.address,
        start={"include_dashboard": False},
        logging_level="ERROR",
        log_to_driver=False,
    )


def plan_shards(count: int, shards: int) -> list[tuple[int, int]]:
    """``shards`` contiguous ``[start, stop)`` row ranges covering ``count`` rows, sizes within
    one of each other (never an empty shard)."""
    shards = max(1, min(shards, count))
    base, extra = divmod(count, shards)
    ranges, start = [], 0
    for i in range(shards):
        stop = start + base + (1 if i < extra else 0)
        ranges.append((start, stop))
        start = stop
    return ranges


class ShardStore:
    """The work folder: a plan (what is being encoded) and one vectors file plus record per
    finished shard. A plan that differs from the folder's (another corpus, encoder or shard
    split) empties it first, so stale vectors are never mixed in."""

    def __init__(self, folder: Path, plan: dict[str, Any]) -> None:
        self.folder = folder
        self.plan = plan
        self.written = 0  # shards written by this process
        self.to_write = 0  # shards this process set out to write
        existing = None
        with contextlib.suppress(OSError, ValueError):
            existing = json.loads((folder / PLAN).read_text(encoding="utf-8"))
        if existing != plan:
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir(parents=True)
            write_json_atomic(folder / PLAN, plan)

    def _vectors_path(self, shard: int) -> Path:
        return self.folder / f"shard-{shard:05d}.npy"

    def _record_path(self, shard: int) -> Path:
        return self.folder / f"shard-{shard:05d}.json"

    def record(self, shard: int) -> dict[str, Any] | None:
        """The shard's record if its vectors file is there, whole and matches it."""
        start, stop = self.plan["shards"][shard]
        try:
            record = json.loads(self._record_path(shard).read_text(encoding="utf-8"))
            data = self._vectors_path(shard).read_bytes()
        except (OSError, ValueError):
            return None
        if (
            not isinstance(record, dict)
            or record.get("rows") != [start, stop]
            or record.get("sha256") != hashlib.sha256(data).hexdigest()
        ):
            return None
        return record

    def write(self, shard: int, vectors: np.ndarray, node: str) -> None:
        """Vectors file, then its record (the record is the commit: written last, atomically)."""
        start, stop = self.plan["shards"][shard]
        if vectors.shape[0] != stop - start:
            raise SleuthError(
                f"Ray shard {shard}: {vectors.shape[0]} vectors for rows {start}-{stop - 1}"
            )

        def save(tmp: Path) -> None:
            with tmp.open("wb") as handle:
                np.save(handle, vectors, allow_pickle=False)
                handle.flush()
                os.fsync(handle.fileno())

        path = self._vectors_path(shard)
        atomic_write(path, save)
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        record = {
            "shard": shard,
            "rows": [start, stop],
            "dim": int(vectors.shape[1]),
            "sha256": digest,
            "node": node,
            "written": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        write_json_atomic(self._record_path(shard), record)
        self.written += 1

    def load(self, shard: int) -> np.ndarray:
        return np.load(self._vectors_path(shard), allow_pickle=False)


def shard_texts(docstore: Any, start: int, stop: int) -> list[str]:
    """The texts the encoder sees for rows ``start..stop-1``, as the one-process build forms
    them (title, newline, text)."""
    hits = docstore.hits(list(range(start, stop)), [0.0] * (stop - start))
    return [f"{h.title}\n{h.text}" if h.title else h.text for h in hits]


def _fault(kind: str, value: int) -> Path | None:
    """Fault injection for the tests, from ``SLEUTH_RAY_ENCODE_FAULT``: ``worker-exit:SHARD:
    MARKER`` makes the worker encoding SHARD exit once (MARKER records that it did);
    ``driver-kill:N`` makes the driver SIGKILL itself after writing N shards."""
    spec = os.environ.get(FAULT_ENV, "")
    parts = spec.split(":", 2)
    if len(parts) >= 2 and parts[0] == kind and parts[1] == str(value):
        return Path(parts[2]) if len(parts) == 3 else Path()
    return None


class ShardEncoder:
    """A Ray Data actor: loads the encoder once, then encodes one shard per call. Its settings
    are a class attribute of a subclass made per build (``_encoder_class``), not constructor
    arguments: Ray keeps those in the object store, where a restarted actor may not find them."""

    settings: tuple[str | None, str, int] = (None, "onnx", 1)

    def __init__(self) -> None:
        encoder, backend, threads = self.settings
        os.environ.setdefault("SLEUTH_ENCODER_THREADS", str(threads))
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
        from sleuth.search.encoder import Encoder

        self._encoder = Encoder(encoder, backend)
        self._node = socket.gethostname()

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        shards, vectors, dims = [], [], []
        for shard, texts in zip(batch["shard"], batch["texts"], strict=True):
            marker = _fault("worker-exit", int(shard))
            if marker is not None and not marker.exists():
                marker.write_text(str(os.getpid()))
                os._exit(1)  # a worker dying mid-shard (Ray restarts it and retries the shard)
            encoded = self._encoder.encode([str(t) for t in texts])
            shards.append(int(shard))
            vectors.append(encoded.tobytes())
            dims.append(encoded.shape[1])
        return {
            "shard": np.array(shards, dtype=np.int64),
            "dim": np.array(dims, dtype=np.int64),
            "vectors": np.array(vectors, dtype=object),
            "node": np.array([f"{self._node}:{os.getpid()}"] * len(shards), dtype=object),
        }


def _encoder_class(encoder: str | None, backend: str, threads: int) -> type[ShardEncoder]:
    return type("ShardEncoder", (ShardEncoder,), {"settings": (encoder, backend, threads)})


def encode_corpus(
    store_folder: Path,
    count: int,
    checksum: str,
    encoder: str | None,
    backend: str,
    work: Path,
    options: RayOptions,
    progress: Callable[[int], None] | None = None,
) -> EncodedCorpus:
    """Encode the ``count`` documents of the store in ``store_folder`` on Ray (resuming from
    ``work``) and return their vectors in row order."""
    from sleuth.search.encoder import PACKAGED

    ray = import_ray()
    log = options.log or (lambda line: None)
    shards = options.shards or max(options.workers, -(-count // SHARD_DOCS))
    ranges = plan_shards(count, shards)
    plan = {
        "corpus_sha256": checksum,
        "documents": count,
        "encoder": encoder or PACKAGED,
        "encoder_backend": backend,
        "shards": [list(r) for r in ranges],
    }
    store = ShardStore(work, plan)
    reused = [i for i in range(len(ranges)) if store.record(i) is not None]
    pending = [i for i in range(len(ranges)) if i not in set(reused)]
    if reused:
        log(f"resuming: {len(reused)} of {len(ranges)} shards already encoded in {work}")
        if progress:
            progress(sum(ranges[i][1] - ranges[i][0] for i in reused))
    store.to_write = len(pending)
    if pending:
        started = connect(ray, options)
        wave = max(WAVE_SHARDS, 2 * options.workers)
        try:
            for first in range(0, len(pending), wave):  # the driver holds one wave's texts
                batch = pending[first : first + wave]
                _run(ray, store, ranges, batch, store_folder, encoder, backend, options, progress)
        finally:
            if started:
                ray.shutdown()
    missing = [i for i in range(len(ranges)) if store.record(i) is None]
    if missing:
        raise SleuthError(f"Ray encoding finished without shards {missing}; run it again")
    parts = [store.load(i) for i in range(len(ranges))]
    vectors = np.concatenate(parts) if len(parts) > 1 else parts[0]
    return EncodedCorpus(vectors, backend, int(vectors.shape[1]), pending, reused)


def _run(
    ray: Any,
    store: ShardStore,
    ranges: list[tuple[int, int]],
    pending: list[int],
    store_folder: Path,
    encoder: str | None,
    backend: str,
    options: RayOptions,
    progress: Callable[[int], None] | None,
) -> None:
    """One Ray Data pipeline over ``pending`` shards (a wave: their texts are read from the
    store here and held until Ray has them); each result is written as it arrives."""
    from sleuth.search.docstore import DocStore

    docs = DocStore(store_folder)
    items = [
        {"shard": i, "texts": shard_texts(docs, *ranges[i])} for i in pending
    ]  # one block per shard, so one actor call encodes exactly one shard
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False
    context.print_on_execution_start = False
    logging.getLogger("ray.data").setLevel(logging.ERROR)  # our own line per shard instead
    dataset = ray.data.from_items(items, override_num_blocks=len(items))
    del items
    threads = max(1, int(options.cpus_per_worker))
    # Ray Data restarts an encoder actor that dies and retries the shard it held (its defaults
    # for actor pools: max_restarts=-1, max_task_retries=-1).
    encoded = dataset.map_batches(
        _encoder_class(encoder, backend, threads),
        batch_size=1,
        # one shard in flight per actor: the first actor up must not queue every shard while
        # the others are still loading their encoder
        compute=ray.data.ActorPoolStrategy(
            size=min(options.workers, len(pending)), max_tasks_in_flight_per_actor=1
        ),
        num_cpus=options.cpus_per_worker,
    )
    for row in encoded.iter_rows():
        shard, dim = int(row["shard"]), int(row["dim"])
        vectors = np.frombuffer(row["vectors"], dtype=np.float32).reshape(-1, dim)
        store.write(shard, vectors, str(row["node"]))
        start, stop = ranges[shard]
        if options.log:
            options.log(
                f"shard {shard + 1}/{len(ranges)} encoded: rows {start:,}-{stop - 1:,} "
                f"on {row['node']} ({store.written}/{store.to_write} this run)"
            )
        if progress:
            progress(stop - start)
        if _fault("driver-kill", store.written) is not None:
            os.kill(os.getpid(), signal.SIGKILL)
