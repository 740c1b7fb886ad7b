"""Dense 768-d at millions of vectors: IVF-PQ (alone and with exact re-scoring from disk) and SQ8.

Each step runs in its own process (``bench.common.run_child``), so its peak memory is its own:

1. ``generate``: n synthetic 768-d passage vectors (``bench.dense_synth``) streamed into a flat
   faiss file on disk with ``FlatFileWriter``, and the exact top 10 of every query computed in
   the same pass (the ground truth: exact search over all n vectors);
2. ``build``: ``--to ivf-pq`` / ``--to sq8`` as ``sleuth index import`` does it (the same
   ``faiss_convert`` calls: train on up to 200,000 evenly spaced rows, add chunk by chunk from
   the file, which is never loaded); seconds and the peak resident memory of the build;
3. ``serve``: the built index read into memory as the dense engine reads it, searched query by
   query (one thread), recall@10 against the exact top 10 and p50/p99 latency, for several
   ``nprobe``; then with ``--rerank disk`` (``DiskVectors.rescore``: k x R candidates re-scored
   against their float32 rows read from the flat file), cold (the file's pages dropped from the
   page cache first) and warm. Resident memory is reported split: ``RssAnon`` (this process's
   own memory: the index) and ``RssFile`` (mapped files: libraries), and the flat file's pages in
   the page cache (``fincore``: shared, reclaimable) before and after the queries.
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path
from typing import Any

import numpy as np

K = 10
CHUNK = 50_000
PASSAGES = 6000  # real HotpotQA paragraphs encoded once (the synthetic vectors' base)


def rss_split() -> dict[str, float]:
    """This process's resident memory (MiB): anonymous, file-backed, and the high-water mark."""
    fields = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("RssAnon", "RssFile", "VmRSS", "VmHWM"):
            fields[name] = round(int(value.split()[0]) / 1024, 1)
    return fields


def cached_mib(path: Path) -> float | None:
    """MiB of ``path`` in the page cache (util-linux ``fincore``), None where unavailable."""
    try:
        out = subprocess.run(
            ["fincore", "--bytes", "--noheadings", "--output", "RES", str(path)],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        return round(int(out.split()[0]) / 2**20, 1)
    except (OSError, subprocess.CalledProcessError, ValueError, IndexError):
        return None


def drop_cache(path: Path) -> None:
    """Evict this one file's clean pages from the page cache (nothing else is touched)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def real_vectors(folder: Path) -> tuple[np.ndarray, np.ndarray]:
    """MiniLM vectors of PASSAGES real HotpotQA paragraphs and of its 1,100 questions (cached)."""
    passages, questions = folder / "real_passages.npy", folder / "real_questions.npy"
    if not passages.exists():
        from sleuth.corpus import load_documents, load_queries
        from sleuth.search.encoder import Encoder

        encoder = Encoder()
        docs = list(load_documents("hotpotqa-1100"))[:PASSAGES]
        np.save(questions, encoder.encode(list(load_queries("hotpotqa-1100").values())))
        np.save(passages, encoder.encode([f"{d.title}\n{d.text}" for d in docs]))
    return np.load(passages), np.load(questions)


def generate(n: int, folder: str, nq: int) -> dict[str, Any]:
    """The flat file of n vectors, the lifted queries and their exact top 10."""
    import faiss

    from bench.dense_synth import D_OUT, Lift, passage_block
    from sleuth.search.flat_file import FlatFileWriter

    work = Path(folder)
    real, questions = real_vectors(work.parent)
    lift = Lift()
    queries = lift(questions[:nq])
    heap = faiss.ResultHeap(nq, K, keep_max=True)
    started = time.perf_counter()
    with FlatFileWriter(work / "flat.faiss", D_OUT, n) as writer:
        for start in range(0, n, CHUNK):
            rng = np.random.default_rng([11, start])
            block = passage_block(real, lift, rng, min(CHUNK, n - start))
            writer.write(block)
            scores = queries @ block.T
            top = np.argpartition(-scores, K, axis=1)[:, :K]
            heap.add_result(np.take_along_axis(scores, top, axis=1), (top + start).astype("int64"))
    heap.finalize()
    np.save(work / "queries.npy", queries)
    np.save(work / "truth.npy", heap.I)
    return {
        "vectors": n,
        "dim": D_OUT,
        "queries": nq,
        "real_passages": len(real),
        "seconds": round(time.perf_counter() - started, 1),
        "flat_bytes": (work / "flat.faiss").stat().st_size,
    }


def build(kind: str, folder: str, nlist: int | None = None) -> dict[str, Any]:
    """Convert the flat file to ``kind`` as ``sleuth index import --to kind`` does."""
    import faiss

    from sleuth.search.faiss_convert import ChunkAdder, PeakMemory, make_target, train
    from sleuth.search.faiss_source import open_source

    work = Path(folder)
    source = open_source(work / "flat.faiss")
    started = time.perf_counter()
    with PeakMemory() as peak:
        target = make_target(kind, source.d, source.metric, source.ntotal, nlist=nlist)
        trained = train(target, source)
        trained_at = time.perf_counter()
        adder = ChunkAdder(target, source.ntotal)
        for start, block in source.chunks():
            adder.add(start, block)
        faiss.write_index(target, str(work / f"{kind}.faiss"))
    result: dict[str, Any] = {
        "train_seconds": round(trained_at - started, 1),
        "build_seconds": round(time.perf_counter() - started, 1),
        "training_rows": trained,
        "build_peak_rss_mb": round(peak.bytes / 2**20, 1),
        "peak_scope": peak.scope,
        "index_bytes": (work / f"{kind}.faiss").stat().st_size,
    }
    ivf = faiss.try_extract_index_ivf(target)
    if ivf is not None:
        result.update(nlist=int(ivf.nlist), pq_m=int(target.pq.M), pq_bits=int(target.pq.nbits))
    return result


def _recall(found: np.ndarray, truth: np.ndarray) -> float:
    return float(np.mean([len(set(f) & set(t)) / K for f, t in zip(found, truth, strict=True)]))


def _timed(fn: Any, queries: np.ndarray) -> tuple[list[Any], dict[str, float]]:
    from bench.common import percentile

    answers, times = [], []
    for query in queries:
        started = time.perf_counter()
        answers.append(fn(query[None, :]))
        times.append((time.perf_counter() - started) * 1e3)
    return answers, {
        "p50_ms": round(percentile(times, 50), 3),
        "p99_ms": round(percentile(times, 99), 3),
    }


def serve(
    kind: str,
    folder: str,
    nprobes: list[int],
    factors: list[int],
    rerank_nprobe: int | None,
    limit: int | None = None,
) -> dict[str, Any]:
    """Recall, latency and memory of the index as served, alone and with disk re-scoring."""
    import faiss

    from sleuth.search.disk_rerank import DiskVectors

    faiss.omp_set_num_threads(1)  # one query at a time on one core: latency, not throughput
    work = Path(folder)
    queries, truth = np.load(work / "queries.npy")[:limit], np.load(work / "truth.npy")[:limit]
    result: dict[str, Any] = {"queries": len(queries), "rss_before_load_mb": rss_split()}
    index = faiss.read_index(str(work / f"{kind}.faiss"))
    result["rss_loaded_mb"] = rss_split()
    ivf = faiss.try_extract_index_ivf(index)
    alone: dict[str, Any] = {}
    for nprobe in nprobes if ivf is not None else [0]:
        if ivf is not None:
            ivf.nprobe = nprobe
        answers, lat = _timed(lambda q: index.search(q, K)[1][0], queries)
        alone[str(nprobe)] = {"recall@10": round(_recall(np.array(answers), truth), 4), **lat}
    result["alone" if ivf is None else "alone_by_nprobe"] = alone
    flat = work / "flat.faiss"
    exact = DiskVectors(flat)
    if ivf is not None and rerank_nprobe:
        ivf.nprobe = rerank_nprobe
    reranked: dict[str, Any] = {}
    for factor in factors:

        def query(q: np.ndarray, factor: int = factor) -> list[int]:
            _, candidates = index.search(q, K * factor)
            return exact.rescore(q, candidates, K)[0][0]

        drop_cache(flat)
        before, read_before = cached_mib(flat), exact.rows_read
        answers, cold = _timed(query, queries)
        rows = (exact.rows_read - read_before) / len(queries)
        after = cached_mib(flat)
        _, warm = _timed(query, queries)
        reranked[str(factor)] = {
            "recall@10": round(_recall(np.array(answers), truth), 4),
            "cold_p50_ms": cold["p50_ms"],
            "cold_p99_ms": cold["p99_ms"],
            "warm_p50_ms": warm["p50_ms"],
            "warm_p99_ms": warm["p99_ms"],
            "rows_read_per_query": round(rows, 1),
            "bytes_read_per_query": round(rows * 4 * exact.d),
            "flat_file_cached_mib_before": before,
            "flat_file_cached_mib_after_cold_pass": after,
        }
    result["rerank_nprobe"] = rerank_nprobe if ivf is not None else None
    result["rerank_disk_by_factor"] = reranked
    result["rss_after_queries_mb"] = rss_split()
    return result


SCRATCH = Path(os.environ.get("SLEUTH_DENSE_SCRATCH", "/work/scratch-dense"))
NQ = 500  # real questions (IVF-PQ); SQ8 scans every code per query, so it gets SQ8_NQ
SQ8_NQ = 50
FACTORS = [5, 10, 20]


def _step(code: str) -> dict[str, Any]:
    from bench.common import run_child

    return run_child(code, env={"OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "2")})


def measure(n: int, sq8: bool = True) -> dict[str, Any]:
    """Generate, build and serve at n vectors; the flat file is deleted afterwards."""
    import shutil

    folder = SCRATCH / f"n{n}"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    call = "from bench.dense_768 import {fn}\nresult = {fn}({args})\n"
    try:
        out: dict[str, Any] = {
            "generate": _step(call.format(fn="generate", args=f"{n}, {str(folder)!r}, {NQ}"))
        }
        out["ivf_pq_build"] = _step(call.format(fn="build", args=f"'ivf-pq', {str(folder)!r}"))
        nlist = out["ivf_pq_build"]["nlist"]
        nprobes = sorted({max(1, nlist // r) for r in (64, 32, 16, 8)})
        rerank_nprobe = max(1, nlist // 8)  # re-scoring recovers PQ's losses, not IVF's
        args = f"'ivf-pq', {str(folder)!r}, {nprobes}, {FACTORS}, {rerank_nprobe}"
        out["ivf_pq_serve"] = _step(call.format(fn="serve", args=args))
        if sq8:
            out["sq8_build"] = _step(call.format(fn="build", args=f"'sq8', {str(folder)!r}"))
            args = f"'sq8', {str(folder)!r}, [], [2], None, {SQ8_NQ}"
            out["sq8_serve"] = _step(call.format(fn="serve", args=args))
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return out


def measured_at(n: int, sq8: bool) -> dict[str, Any]:
    """``measure`` at n, kept in the scratch folder as JSON once done, so a run cut short (an
    hour or more on 2 cores) goes on from the sizes already measured."""
    import json

    saved = SCRATCH / f"measured-{n}{'-sq8' if sq8 else ''}.json"
    if saved.exists():
        return json.loads(saved.read_text())
    result = measure(n, sq8)
    saved.write_text(json.dumps(result))
    return result


TARGET_N = 21_000_000
TARGET_BYTES = 4 * 10**9  # "under 4 GB of RAM"
E5_BASE_WEIGHTS = 109_482_240 * 4  # e5-base-v2's parameters as float32: the query encoder
MINILM_WEIGHTS = 22_713_216 * 4  # the packaged MiniLM's, loaded in the process measured below


def serving_process_bytes() -> tuple[int, str]:
    """A Sleuth process with its encoder loaded, before any vectors: the peak of the kept import
    measured by ``bench/import_scale.py`` (Python, faiss, onnxruntime, SQLite, MiniLM), with
    MiniLM's weights swapped for e5-base-v2's."""
    import json

    path = Path(__file__).resolve().parent / "results" / "import_scale.json"
    measured = json.loads(path.read_text())["kept"]["import_peak_rss_mb_sampled"] * 2**20
    total = int(measured - MINILM_WEIGHTS + E5_BASE_WEIGHTS)
    how = (
        f"process {measured / 1e9:.3f} GB (measured: Python, faiss, onnxruntime, MiniLM; "
        f"import_scale.json) - MiniLM weights {MINILM_WEIGHTS / 1e9:.3f} GB + e5-base-v2 "
        f"weights {E5_BASE_WEIGHTS / 1e9:.3f} GB"
    )
    return total, how


def extrapolate(sizes: dict[int, dict[str, Any]], d: int = 768) -> dict[str, Any]:
    """Memory at 21M from the structure's bytes per vector (checked against the RSS measured at
    the largest size), and recall from its trend between the two sizes measured."""
    import math

    largest = max(sizes)
    at = sizes[largest]
    build = at["ivf_pq_build"]
    pq_m, bits = build["pq_m"], build["pq_bits"]
    nlist = int(math.sqrt(TARGET_N))  # the import's default: about sqrt(n) lists
    code, ids = pq_m * bits // 8, 8
    centroids = nlist * d * 4
    codebooks = pq_m * (1 << bits) * (d // pq_m) * 4
    index = TARGET_N * (code + ids) + centroids + codebooks
    serve = at["ivf_pq_serve"]
    measured_anon = (
        serve["rss_loaded_mb"]["RssAnon"] - serve["rss_before_load_mb"]["RssAnon"]
    ) * 2**20
    predicted_here = largest * (code + ids) + build["nlist"] * d * 4 + codebooks
    process, process_how = serving_process_bytes()
    total = index + process
    out: dict[str, Any] = {
        "n": TARGET_N,
        "arithmetic": (
            f"{TARGET_N:,} x ({code} B codes + {ids} B ids) + {nlist} x {d} x 4 B centroids "
            f"+ {pq_m} x {1 << bits} x {d // pq_m} x 4 B codebooks = {index / 1e9:.3f} GB; "
            f"+ {process_how} = {total / 1e9:.3f} GB"
        ),
        "ivf_pq_index_bytes": index,
        "ivf_pq_process_total_bytes": total,
        "formula_check_at_measured_n": {
            "n": largest,
            "predicted_index_bytes": predicted_here,
            "measured_rss_anon_delta_bytes": round(measured_anon),
        },
        "process_bytes": process,
        "sq8_index_bytes": TARGET_N * d,
        "rerank_file_bytes_on_disk": TARGET_N * d * 4,
        "fits_under_4gb": total < TARGET_BYTES,
    }
    if len(sizes) >= 2:
        small, large = sorted(sizes)[0], largest
        doublings = math.log2(TARGET_N / large)
        per_doubling = math.log2(large / small)
        trend: dict[str, Any] = {}
        for key in ("alone_by_nprobe", "rerank_disk_by_factor"):
            pairs = {}
            a, b = sizes[small]["ivf_pq_serve"][key], sizes[large]["ivf_pq_serve"][key]
            for (ka, va), (kb, vb) in zip(a.items(), b.items(), strict=True):
                slope = (vb["recall@10"] - va["recall@10"]) / per_doubling
                label = (
                    f"nprobe=nlist/{_ratio(sizes, small, ka)}"
                    if key == "alone_by_nprobe"
                    else f"R={kb}"
                )
                linear = min(1.0, max(0.0, vb["recall@10"] + slope * doublings))
                pairs[label] = {
                    f"recall_at_{small}": va["recall@10"],
                    f"recall_at_{large}": vb["recall@10"],
                    "change_per_doubling": round(slope, 4),
                    "linear_in_log_n_at_21m": round(linear, 3),
                    # a rise is not counted on: the lower of the trend and the largest measured
                    "expected_at_21m": round(min(linear, vb["recall@10"]), 3),
                }
            trend[key] = pairs
        out["recall_trend"] = trend
    return out


def _ratio(sizes: dict[int, dict[str, Any]], n: int, nprobe: str) -> int:
    return round(sizes[n]["ivf_pq_build"]["nlist"] / int(nprobe))
