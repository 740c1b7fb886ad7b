"""BM25 at Wikipedia scale: Sleuth's index over N Wikipedia-like passages (21M as Search-R1's
wiki-18), generated while indexing (``bench.corpus_gen.wiki_documents``), never on disk as a corpus.

Measured, each in a fresh process: build wall and CPU seconds (the generator's share apart), peak
RSS, load average while building (the 2 cores are shared), index size (tantivy and the SQLite
document store); then serving: open time, RSS after opening and after the queries (anonymous vs
file-backed: tantivy memory-maps its files), single-query p50/p95/p99 split into the tantivy search
and the document lookup, and batched throughput. Targets (issue 30): 21M builds in under 1 hour
on 2 cores, serves with RSS under 4 GB at p50 under 20 ms.

Run: ``python -m bench.scale --bm25-passages 21000000 --dir /work/scratch-bm25`` (the index is
deleted afterwards unless ``--keep``); the result is merged into ``bench/results/scale.json``.
"""

from __future__ import annotations

import os
import shutil
import textwrap
import time
from pathlib import Path
from typing import Any

from bench.common import folder_bytes, run_child

BUILD = """
import json, os, resource, sys, threading, time
import numpy as np
from bench.corpus_gen import WikiVocabulary, wiki_documents
from sleuth.search import build_index

def status_mb(*keys):
    fields = dict(line.split(":", 1) for line in open("/proc/self/status"))
    return {{k: round(int(fields[k].split()[0]) / 1024, 1) for k in keys}}

n, path = {n}, {path!r}
seen = np.zeros(WikiVocabulary().size, dtype=bool)
generator_cpu = 0.0
def timed(documents):
    global generator_cpu
    documents = iter(documents)
    while True:
        before = time.thread_time()
        try:
            doc = next(documents)
        except StopIteration:
            return
        generator_cpu += time.thread_time() - before
        yield doc

started = time.perf_counter()
samples, stop = [], threading.Event()
def sample():
    while not stop.wait({every}):
        usage = resource.getrusage(resource.RUSAGE_SELF)
        samples.append({{"s": round(time.perf_counter() - started), "docs": done[0],
                        "cpu_s": round(usage.ru_utime + usage.ru_stime),
                        "load1": os.getloadavg()[0], **status_mb("VmRSS")}})
        print("sample", samples[-1], file=sys.stderr, flush=True)
done = [0]
threading.Thread(target=sample, daemon=True).start()
def progress(k):
    done[0] += k
    if done[0] % 1_000_000 < k:
        print(f"{{done[0]:,}} docs {{time.perf_counter() - started:.0f}} s", file=sys.stderr,
              flush=True)
load_before = os.getloadavg()
build_index(timed(wiki_documents(n, seen=seen)), path, progress=progress)
wall = time.perf_counter() - started
stop.set()
usage = resource.getrusage(resource.RUSAGE_SELF)
result = {{
    "build_seconds": wall,
    "build_cpu_seconds": usage.ru_utime + usage.ru_stime,
    "generator_cpu_seconds": generator_cpu,
    "distinct_words": int(seen.sum()),
    "load_average_before": load_before,
    "load_average_after": os.getloadavg(),
    "load1_mean_during": float(np.mean([s["load1"] for s in samples])) if samples else None,
    "load1_max_during": max((s["load1"] for s in samples), default=None),
    "samples": samples,
}}
"""

SERVE = """
import json, os, time
from bench.common import percentile
from bench.corpus_gen import wiki_queries
from sleuth.search import open_index

def status_mb():
    fields = dict(line.split(":", 1) for line in open("/proc/self/status"))
    keys = ("VmRSS", "RssAnon", "RssFile", "VmHWM")
    return {{k: round(int(fields[k].split()[0]) / 1024, 1) for k in keys}}

def stats(times):
    return {{f"p{{q}}_ms": percentile(times, q) for q in (50, 95, 99)}} | {{
        "mean_ms": sum(times) / len(times)}}

queries = wiki_queries({warm} + {single} + {batch})
result = {{"rss_before_open_mb": status_mb()}}
started = time.perf_counter()
engine = open_index({path!r})
result["open_seconds"] = time.perf_counter() - started
result["rss_after_open_mb"] = status_mb()
docs = engine._docs  # the SQLite store: the lookup is timed apart from the tantivy search
for q in queries[:{warm}]:
    engine.search(q, 10)
result["rss_after_warmup_mb"] = status_mb()
search, lookup, total, empty = [], [], [], 0
for q in queries[{warm}:{warm} + {single}]:
    t0 = time.perf_counter()
    rows, scores = engine.ranked_rows(q, 10)
    t1 = time.perf_counter()
    hits = docs.hits(rows, scores)
    t2 = time.perf_counter()
    search.append((t1 - t0) * 1e3); lookup.append((t2 - t1) * 1e3); total.append((t2 - t0) * 1e3)
    empty += not hits
result["single"] = {{"queries": len(total), "no_hits": empty, "search_and_lookup": stats(total),
                    "tantivy_search": stats(search), "docstore_lookup": stats(lookup)}}
batch_queries = queries[{warm} + {single}:]
batch_times = []
started = time.perf_counter()
for i in range(0, len(batch_queries), {batch_size}):
    t0 = time.perf_counter()
    engine.search_batch(batch_queries[i:i + {batch_size}], 10)
    batch_times.append((time.perf_counter() - t0) * 1e3)
result["batched"] = {{"queries": len(batch_queries), "batch_size": {batch_size},
                     "qps": len(batch_queries) / (time.perf_counter() - started),
                     "batch_ms": stats(batch_times)}}
result["rss_after_queries_mb"] = status_mb()
result["load_average_after"] = os.getloadavg()
result["example_queries"] = queries[{warm}:{warm} + 5]
"""


def run_wiki(n: int, folder: Path, keep: bool = False, sample_every: int = 30) -> dict[str, Any]:
    """Build and serve BM25 over ``n`` generated passages in ``folder`` (removed unless
    ``keep``)."""
    path = folder / f"bm25-wiki-{n}"
    shutil.rmtree(path, ignore_errors=True)
    folder.mkdir(parents=True, exist_ok=True)
    build = run_child(
        textwrap.dedent(BUILD.format(n=n, path=str(path), every=sample_every)), show_progress=True
    )
    build["build_peak_rss_mb"] = build.pop("peak_rss_mb")
    sizes = {
        "index_gb": folder_bytes(path) / 1e9,
        "bm25_gb": folder_bytes(path / "bm25") / 1e9,
        "docstore_gb": (path / "docs.sqlite").stat().st_size / 1e9,
        "bm25_segments": len(list((path / "bm25").glob("*.idx"))),
    }
    serve = run_child(
        textwrap.dedent(
            SERVE.format(
                path=str(path),
                warm=200,
                single=1000,
                batch=2048 if n > 100_000 else 512,
                batch_size=64,
            )
        )
    )
    serve["serve_peak_rss_mb"] = serve.pop("peak_rss_mb")
    if not keep:
        shutil.rmtree(path, ignore_errors=True)
    return {"passages": n, **build, **sizes, **serve, "when": time.strftime("%Y-%m-%dT%H:%M:%SZ")}


def summary(result: dict[str, Any]) -> list[dict[str, Any]]:
    """Rows against the issue's targets (which are stated for 21M passages)."""
    n = result["passages"]
    single = result["single"]["search_and_lookup"]
    rss = result["rss_after_queries_mb"]
    return [
        {"metric": "passages", "value": n},
        {
            "metric": "build wall s / CPU s (target < 3600 s wall on 2 cores)",
            "value": f"{result['build_seconds']:.0f} / {result['build_cpu_seconds']:.0f}",
            "pass": result["build_seconds"] < 3600,
        },
        {"metric": "index GB (tantivy + SQLite)", "value": round(result["index_gb"], 2)},
        {
            "metric": "serving RSS MB after queries: total (anon + file) (target < 4096)",
            "value": f"{rss['VmRSS']} ({rss['RssAnon']} + {rss['RssFile']}), peak {rss['VmHWM']}",
            "pass": rss["VmHWM"] < 4096,
        },
        {
            "metric": "single query p50 / p99 ms incl. document lookup (target p50 < 20)",
            "value": f"{single['p50_ms']:.2f} / {single['p99_ms']:.2f}",
            "pass": single["p50_ms"] < 20,
        },
        {"metric": "batched q/s (64 a batch)", "value": round(result["batched"]["qps"])},
    ]


def section_name(n: int) -> str:
    return f"bm25_{n // 1_000_000}m" if n % 1_000_000 == 0 else f"bm25_{n}"


def default_folder() -> Path:
    return Path(os.environ.get("SLEUTH_SCALE_DIR", "/tmp/sleuth-scale-bm25"))
