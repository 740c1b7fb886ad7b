"""Serving throughput: Sleuth's server against a Search-R1-style baseline on the same corpus.

Both servers run as subprocesses on 127.0.0.1 and serve the same HotpotQA paragraphs with the
same MiniLM vectors. A bounded load (8 concurrent clients, fixed request count) measures
queries answered per second. Target: Sleuth's batch endpoint >= 5x the baseline.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import shutil
import signal
import subprocess
import sys
import time
from typing import Any

import httpx

from bench.common import REPO, WORK

CONCURRENCY = 8
BATCH = 16


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start(args: list[str], port: int) -> subprocess.Popen:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    process = subprocess.Popen(
        args, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited: {process.stderr.read().decode()[-2000:]}")
        try:
            body = {"queries": ["warm up"], "topk": 1}
            if (
                httpx.post(f"http://127.0.0.1:{port}/retrieve", json=body, timeout=5).status_code
                == 200
            ):
                return process
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    process.kill()
    raise RuntimeError("server did not start within 120 s")


def stop(process: subprocess.Popen) -> None:
    process.send_signal(signal.SIGINT)
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()


async def load(url: str, bodies: list[dict], queries_per_body: int) -> dict[str, float]:
    """Send every body once with CONCURRENCY workers; count answered queries per second."""
    cursor = itertools.count()
    errors = 0

    async def worker(client: httpx.AsyncClient) -> None:
        nonlocal errors
        while (n := next(cursor)) < len(bodies):
            reply = await client.post(url, json=bodies[n])
            errors += reply.status_code != 200

    async with httpx.AsyncClient(timeout=120) as client:
        started = time.perf_counter()
        await asyncio.gather(*(worker(client) for _ in range(CONCURRENCY)))
        elapsed = time.perf_counter() - started
    return {
        "queries_per_s": round(len(bodies) * queries_per_body / elapsed, 1),
        "requests": len(bodies),
        "errors": errors,
    }


def run(quick: bool = False) -> dict[str, Any]:
    from sleuth.corpus import load_documents, load_queries
    from sleuth.search import build_index

    documents = 1000 if quick else 3000
    requests = 40 if quick else 120
    root = WORK / "serving"
    shutil.rmtree(root, ignore_errors=True)
    docs = list(itertools.islice(load_documents("hotpotqa-1100"), documents))
    dense = build_index(docs, root / "dense", engine="dense")
    bm25 = build_index(docs, root / "bm25")
    questions = list(load_queries("hotpotqa-1100").values())
    batches = [questions[i * BATCH : (i + 1) * BATCH] for i in range(requests)]
    retrieve = [{"queries": b, "topk": 3, "return_scores": True} for b in batches]
    native = [{"queries": b, "k": 3} for b in batches]
    single = [{"query": q, "k": 3} for q in questions[: requests * 4]]
    results: dict[str, Any] = {"documents": documents, "batch_size": BATCH, "clients": CONCURRENCY}

    port = free_port()
    server = start(
        [
            sys.executable,
            "-m",
            "bench.searchr1_baseline",
            "--index",
            str(dense),
            "--port",
            str(port),
        ],
        port,
    )
    try:
        url = f"http://127.0.0.1:{port}/retrieve"
        results["baseline_retrieve_batch"] = asyncio.run(load(url, retrieve, BATCH))
        one = [{"queries": [b["query"]], "topk": 3} for b in single]
        results["baseline_retrieve_single"] = asyncio.run(load(url, one, 1))
    finally:
        stop(server)

    sleuth = [sys.executable, "-m", "sleuth.cli", "serve"]
    for label, index in (("sleuth_dense", dense), ("sleuth_bm25", bm25)):
        port = free_port()
        # --quiet: no access log (its stderr pipe is not drained while the load runs)
        server = start([*sleuth, str(index), "--port", str(port), "--quiet"], port)
        base = f"http://127.0.0.1:{port}"
        try:
            results[f"{label}_retrieve_batch"] = asyncio.run(
                load(f"{base}/retrieve", retrieve, BATCH)
            )
            results[f"{label}_search_batch"] = asyncio.run(
                load(f"{base}/search/batch", native, BATCH)
            )
            results[f"{label}_search_single"] = asyncio.run(load(f"{base}/search", single, 1))
        finally:
            stop(server)
    shutil.rmtree(root, ignore_errors=True)

    baseline = results["baseline_retrieve_batch"]["queries_per_s"]
    summary = [{"metric": "baseline (Search-R1 style) /retrieve q/s", "value": baseline}]
    for key in (
        "sleuth_dense_retrieve_batch",
        "sleuth_dense_search_batch",
        "sleuth_bm25_retrieve_batch",
        "sleuth_bm25_search_batch",
        "sleuth_bm25_search_single",
    ):
        ratio = results[key]["queries_per_s"] / baseline
        results[key]["vs_baseline"] = round(ratio, 2)
        row = {"metric": f"{key} vs baseline", "value": f"{ratio:.2f}x"}
        if key.endswith("search_batch"):
            row["pass"] = ratio >= 5
            row["metric"] += " (target >= 5x)"
        summary.append(row)
    results["errors"] = sum(v.get("errors", 0) for v in results.values() if isinstance(v, dict))
    results["summary"] = summary
    return results
