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

from bench.common import folder_bytes, percentile, run_child

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
                        "load1": os.getloadavg()[0], **status_mb("VmRSS", "RssAnon", "RssFile")}})
        print("sample", samples[-1], file=sys.stderr, flush=True)
done = [0]
threading.Thread(target=sample, daemon=True).start()
def progress(k):
    done[0] += k
    if done[0] % 1_000_000 < k:
        print(f"{{done[0]:,}} docs {{time.perf_counter() - started:.0f}} s", file=sys.stderr,
              flush=True)
load_before = os.getloadavg()
main_before = time.thread_time()
build_index(timed(wiki_documents(n, seen=seen)), path, progress=progress)
wall = time.perf_counter() - started
main_cpu = time.thread_time() - main_before
stop.set()
usage = resource.getrusage(resource.RUSAGE_SELF)
result = {{
    "build_seconds": wall,
    "build_cpu_seconds": usage.ru_utime + usage.ru_stime,
    "generator_cpu_seconds": generator_cpu,
    # this thread: generator, SQLite, hashing, handing documents to tantivy; the rest is
    # tantivy's indexing and merging threads (runnable in parallel on a second core)
    "main_thread_cpu_seconds": main_cpu,
    "distinct_words": int(seen.sum()),
    "load_average_before": load_before,
    "load_average_after": os.getloadavg(),
    "load1_mean_during": float(np.mean([s["load1"] for s in samples])) if samples else None,
    "load1_max_during": max((s["load1"] for s in samples), default=None),
    "samples": samples,
}}
"""


def stats(times: list[float]) -> dict[str, float]:
    """p50 / p95 / p99 and the mean of ``times`` (ms)."""
    return {f"p{q}_ms": percentile(times, q) for q in (50, 95, 99)} | {
        "mean_ms": sum(times) / len(times)
    }


def time_single_queries(engine: Any, queries: list[str]) -> dict[str, Any]:
    """One query at a time, top 10: the tantivy search and the SQLite document lookup timed
    apart, and the CPU time of both (what the latency would be with a core to itself)."""
    docs = engine._docs  # the SQLite store
    search, lookup, total, cpu, empty = [], [], [], [], 0
    for q in queries:
        c0, t0 = time.thread_time(), time.perf_counter()
        rows, scores = engine.ranked_rows(q, 10)
        t1 = time.perf_counter()
        hits = docs.hits(rows, scores)
        t2, c2 = time.perf_counter(), time.thread_time()
        search.append((t1 - t0) * 1e3)
        lookup.append((t2 - t1) * 1e3)
        total.append((t2 - t0) * 1e3)
        cpu.append((c2 - c0) * 1e3)
        empty += not hits
    return {
        "queries": len(total),
        "no_hits": empty,
        "search_and_lookup": stats(total),
        "cpu_per_query": stats(cpu),
        "tantivy_search": stats(search),
        "docstore_lookup": stats(lookup),
    }


SERVE = """
import json, os, time
from bench.corpus_gen import wiki_queries
from bench.scale_bm25 import stats, time_single_queries
from sleuth.search import open_index

def status_mb():
    fields = dict(line.split(":", 1) for line in open("/proc/self/status"))
    keys = ("VmRSS", "RssAnon", "RssFile", "VmHWM")
    return {{k: round(int(fields[k].split()[0]) / 1024, 1) for k in keys}}

queries = wiki_queries({warm} + {single} + {batch})
result = {{"rss_before_open_mb": status_mb()}}
started = time.perf_counter()
engine = open_index({path!r})
result["open_seconds"] = time.perf_counter() - started
result["rss_after_open_mb"] = status_mb()
for q in queries[:{warm}]:
    engine.search(q, 10)
result["rss_after_warmup_mb"] = status_mb()
result["single"] = time_single_queries(engine, queries[{warm}:{warm} + {single}])
batch_queries = queries[{warm} + {single}:]
batch_times = []
cpu_started, started = time.process_time(), time.perf_counter()
for i in range(0, len(batch_queries), {batch_size}):
    t0 = time.perf_counter()
    engine.search_batch(batch_queries[i:i + {batch_size}], 10)
    batch_times.append((time.perf_counter() - t0) * 1e3)
result["batched"] = {{"queries": len(batch_queries), "batch_size": {batch_size},
                     "qps": len(batch_queries) / (time.perf_counter() - started),
                     "cpu_ms_per_query": (time.process_time() - cpu_started) * 1e3
                     / len(batch_queries),
                     "batch_ms": stats(batch_times)}}
result["rss_after_queries_mb"] = status_mb()
result["load_average_after"] = os.getloadavg()
result["example_queries"] = queries[{warm}:{warm} + 5]
"""


SERVE_QUESTIONS = """
import os
from bench.scale_bm25 import time_single_queries
from sleuth.evaluate.benchmarks import load_benchmark
from sleuth.search import open_index

questions = [q.question for q in load_benchmark("hotpotqa-1100").questions]
engine = open_index({path!r})
for q in questions[:100]:
    engine.search(q, 10)  # warm-up (these 100 are timed again below)
result = {{**time_single_queries(engine, questions), "load_average_after": os.getloadavg(),
          "source": "hotpotqa-1100 questions (all splits), as written"}}
"""


def serve_questions(path: Path) -> dict[str, Any]:
    """Single-query latency of an existing index for real questions: the 1,100 HotpotQA-1100
    questions, the query RAG and every method's turn 0 send. Their words are real words with
    the generator's (real) frequencies, so posting-list lengths are what such questions meet
    at this size. At 21M they were the heavier load (p50 75 ms against 30 ms for ``SERVE``'s
    keyword queries): longer, and full of frequent words that are no stop words."""
    return run_child(textwrap.dedent(SERVE_QUESTIONS.format(path=str(path))))


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


TARGET_PASSAGES = 21_000_000  # the issue's targets are stated for wiki-18's 21M passages
TARGET_BUILD_S, TARGET_RSS_MB, TARGET_P50_MS = 3600, 4096, 20


def summary(result: dict[str, Any]) -> list[dict[str, Any]]:
    """Rows of a run; pass/fail only where the run is at the targets' size (21M)."""
    n = result["passages"]
    judged = n >= TARGET_PASSAGES
    single = result["single"]["search_and_lookup"]
    rss = result["rss_after_queries_mb"]
    rows = [
        {"metric": "passages", "value": n},
        {
            "metric": "build wall s / CPU s (21M target: wall < 3600 on 2 cores)",
            "value": f"{result['build_seconds']:.0f} / {result['build_cpu_seconds']:.0f}",
            "pass": result["build_seconds"] < TARGET_BUILD_S,
        },
        {"metric": "index GB (tantivy + SQLite)", "value": round(result["index_gb"], 2)},
        {
            "metric": "serving RSS MB after queries: total (anon + file) (21M target < 4096)",
            "value": f"{rss['VmRSS']} ({rss['RssAnon']} + {rss['RssFile']}), peak {rss['VmHWM']}",
            "pass": rss["VmHWM"] < TARGET_RSS_MB,
        },
        {
            "metric": "single query p50 / p99 ms incl. document lookup (21M target p50 < 20)",
            "value": f"{single['p50_ms']:.2f} / {single['p99_ms']:.2f}",
            "pass": single["p50_ms"] < TARGET_P50_MS,
        },
        {"metric": "batched q/s (64 a batch)", "value": round(result["batched"]["qps"])},
    ]
    if "single_questions" in result:  # real questions as queries (``serve_questions``)
        asked = result["single_questions"]["search_and_lookup"]
        rows.insert(
            -1,
            {
                "metric": "HotpotQA questions as queries: p50 / p99 ms incl. document lookup "
                "(21M target p50 < 20)",
                "value": f"{asked['p50_ms']:.2f} / {asked['p99_ms']:.2f}",
                "pass": asked["p50_ms"] < TARGET_P50_MS,
            },
        )
    if not judged:
        for row in rows:
            row.pop("pass", None)
    return rows


def extrapolate(
    small: dict[str, Any],
    large: dict[str, Any],
    cpu_run: dict[str, Any] | None = None,
    n: int = TARGET_PASSAGES,
) -> dict[str, Any]:
    """Figures at ``n`` passages from runs at two smaller sizes, with the arithmetic.

    Build CPU and index bytes per passage are taken from the larger run (they were flat between
    1M and 5M); latencies follow the power law through the two runs (``t ~ N**e``: posting
    lists grow with N); file-backed RSS is bounded by the whole tantivy index being mapped.
    ``cpu_run``: a run that timed CPU per query and the build's main thread (older runs did
    not), scaled with the exponents of the two runs' latencies.
    """
    import math

    n1, n2 = small["passages"], large["passages"]
    scale = n / n2
    out: dict[str, Any] = {"passages": n, "measured": False, "from_runs": [n1, n2]}
    cpu_per_doc = large["build_cpu_seconds"] / n2
    timed = large if "main_thread_cpu_seconds" in large else (cpu_run or large)
    main_share = timed.get("main_thread_cpu_seconds", 0) / timed["build_cpu_seconds"]
    out["build_main_thread_cpu_share"] = main_share
    out["build_cpu_seconds"] = cpu_per_doc * n
    # two cores to itself: at best the CPU split over both, at worst one after the other
    out["build_wall_seconds_2_idle_cores"] = [
        max(out["build_cpu_seconds"] / 2, out["build_cpu_seconds"] * main_share),
        out["build_cpu_seconds"],
    ]
    out["build_wall_seconds_at_measured_rate"] = large["build_seconds"] / n2 * n
    out["bm25_gb"] = large["bm25_gb"] * scale
    out["docstore_gb"] = large["docstore_gb"] * scale
    out["index_gb"] = out["bm25_gb"] + out["docstore_gb"]
    # RSS: anonymous memory grown linearly from the two runs, plus file-backed pages: at most
    # the whole tantivy index mapped (SQLite reads through the page cache, not into RSS) plus
    # the libraries' pages measured before opening
    rss1, rss2 = small["rss_after_queries_mb"], large["rss_after_queries_mb"]
    anon = rss2["RssAnon"] + (rss2["RssAnon"] - rss1["RssAnon"]) / (n2 - n1) * (n - n2)
    libraries = large["rss_before_open_mb"]["RssFile"]
    out["serving_rss_anon_mb"] = anon
    out["serving_rss_mb_upper_bound"] = anon + out["bm25_gb"] * 1e9 / 2**20 + libraries
    out["serving_rss_mb_same_share_touched"] = (
        anon + (rss2["RssFile"] - libraries) * scale + (libraries)
    )
    for key in ("search_and_lookup", "tantivy_search", "docstore_lookup", "cpu_per_query"):
        if key not in small["single"] or key not in large["single"]:
            continue
        figures = {}
        for q in ("p50_ms", "p99_ms"):
            a, b = small["single"][key][q], large["single"][key][q]
            exponent = math.log(b / a) / math.log(n2 / n1)
            figures[q] = b * scale**exponent
            figures[q.replace("_ms", "_exponent")] = exponent
        out[key] = figures
    if cpu_run is not None and "cpu_per_query" in cpu_run["single"]:
        n3, cpu = cpu_run["passages"], cpu_run["single"]["cpu_per_query"]
        out["cpu_per_query"] = {
            q: cpu[q] * (n / n3) ** out["search_and_lookup"][q.replace("_ms", "_exponent")]
            for q in ("p50_ms", "p99_ms")
        }
        out["cpu_per_query"]["from_run_at"] = n3
        out["batched_qps_per_core"] = 1e3 / (
            cpu_run["batched"]["cpu_ms_per_query"]
            * (n / n3) ** out["search_and_lookup"]["p50_exponent"]
        )
    return out


def section_name(n: int) -> str:
    return f"bm25_{n // 1_000_000}m" if n % 1_000_000 == 0 else f"bm25_{n}"


def default_folder() -> Path:
    return Path(os.environ.get("SLEUTH_SCALE_DIR", "/tmp/sleuth-scale-bm25"))
