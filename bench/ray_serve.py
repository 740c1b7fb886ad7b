"""What Ray Serve adds to a request: ``sleuth serve --ray`` against the plain server, same run.

The bundled HotpotQA BM25 index (10,785 paragraphs) is served by the plain ``sleuth serve``
(one uvicorn process) and by the Ray Serve deployment of the same app (``sleuth.serve.ray_app``,
a local Ray instance): 1 replica, then 2. The same real HotpotQA questions go to each:
- single: one query per ``POST /search`` (k=10), one client (latency p50/p99, requests/s) and
  8 concurrent clients (requests/s);
- batched: 32 queries per ``POST /search/batch``, one client (latency per request, queries/s).
The plain server and Ray at 1 replica are measured twice, interleaved, and the better of the
two kept for each, so a burst of load from other jobs on the machine does not decide the ratio.
Ratios are Ray / plain (latency: above 1 is slower; throughput: below 1 is slower).
Run: ``python -m bench.ray_serve`` (or ``python -m bench.run_all ray_serve``).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from bench.common import REPO, percentile
from bench.serving import free_port, stop

OUT = REPO / "bench" / "results" / "ray_serve.json"
SINGLE = 300  # requests per single-query measurement
CONCURRENT = 400  # requests for the 8-client measurement
BATCHES = 30  # requests of BATCH queries
BATCH = 32
CLIENTS = 8
TOKEN = "bench-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def _sequential(send: Callable[[int], None], n: int) -> dict[str, float]:
    times = []
    started = time.perf_counter()
    for i in range(n):
        t = time.perf_counter()
        send(i)
        times.append((time.perf_counter() - t) * 1e3)
    elapsed = time.perf_counter() - started
    return {
        "p50_ms": round(percentile(times, 50), 2),
        "p99_ms": round(percentile(times, 99), 2),
        "requests_per_s": round(n / elapsed, 1),
    }


def _concurrent(send: Callable[[int], None], n: int, clients: int) -> float:
    cursor = iter(range(n))
    lock = threading.Lock()

    def work() -> None:
        while True:
            with lock:
                i = next(cursor, None)
            if i is None:
                return
            send(i)

    workers = [threading.Thread(target=work) for _ in range(clients)]
    started = time.perf_counter()
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    return round(n / (time.perf_counter() - started), 1)


def measure(url: str, questions: list[str]) -> dict[str, Any]:
    client = httpx.Client(
        base_url=url, headers=AUTH, timeout=60, limits=httpx.Limits(max_connections=32)
    )

    def single(i: int) -> None:
        body = {"query": questions[i % len(questions)], "k": 10}
        response = client.post("/search", json=body)
        if response.status_code != 200:
            raise RuntimeError(f"{url}: {response.status_code} {response.text[:200]}")

    def batch(i: int) -> None:
        start_at = (i * BATCH) % len(questions)
        body = {"queries": (questions * 2)[start_at : start_at + BATCH], "k": 10}
        response = client.post("/search/batch", json=body)
        if response.status_code != 200:
            raise RuntimeError(f"{url}: {response.status_code} {response.text[:200]}")

    for i in range(30):  # warm connections, caches and every replica
        single(i)
    one = _sequential(single, SINGLE)
    many = _concurrent(single, CONCURRENT, CLIENTS)
    batched = _sequential(batch, BATCHES)
    client.close()
    return {
        "single_p50_ms": one["p50_ms"],
        "single_p99_ms": one["p99_ms"],
        "single_requests_per_s": one["requests_per_s"],
        f"single_{CLIENTS}_clients_requests_per_s": many,
        "batch32_p50_ms": batched["p50_ms"],
        "batch32_p99_ms": batched["p99_ms"],
        "batch32_queries_per_s": round(batched["requests_per_s"] * BATCH, 1),
    }


def measure_updates(url: str, headers: dict[str, str], rounds: int = 5) -> dict[str, Any]:
    """Add a document through the Ray URL, then search for it 20 times (spread over the
    replicas): the POST's time, whether every search after the answer found it, and the
    searches' latencies (the first one a replica takes after the commit opens the new
    generation)."""
    posts, after, steady, found = [], [], [], True
    with httpx.Client(base_url=url, headers=headers, timeout=60) as client:
        for i in range(rounds):
            doc = {"id": f"bench-new-{i}", "title": f"Zyxquor {i} station", "text": "A new stop."}
            started = time.perf_counter()
            answer = client.post("/documents", json={"documents": [doc]})
            posts.append((time.perf_counter() - started) * 1e3)
            if answer.status_code != 200:
                raise RuntimeError(f"update failed: {answer.status_code} {answer.text[:200]}")
            for n in range(20):
                started = time.perf_counter()
                hits = client.post("/search", json={"query": f"zyxquor {i}", "k": 1}).json()
                (after if n < 4 else steady).append((time.perf_counter() - started) * 1e3)
                found = found and hits["hits"][0]["id"] == doc["id"]
    return {
        "rounds": rounds,
        "post_to_answer_ms_p50": round(percentile(posts, 50), 1),
        "post_to_answer_ms_max": round(max(posts), 1),
        "every_search_after_the_answer_found_it": found,
        "first_4_searches_after_ms_max": round(max(after), 1),
        "first_4_searches_after_ms_p50": round(percentile(after, 50), 1),
        "later_searches_ms_p50": round(percentile(steady, 50), 1),
    }


def reopen_ms(index: Any, n: int = 5) -> float:
    """What a replica pays to open a new generation of this index (median of ``n``)."""
    from sleuth.search import open_index

    times = []
    for _ in range(n):
        started = time.perf_counter()
        open_index(index)
        times.append((time.perf_counter() - started) * 1e3)
    return round(percentile(times, 50), 1)


def _start(args: list[str], port: int) -> subprocess.Popen:
    """The plain server, once its /health answers (the only route without the token)."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    process = subprocess.Popen(args, cwd=REPO, env=env, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError("the plain server exited")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=5).status_code == 200:
                return process
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    process.kill()
    raise RuntimeError("the plain server did not start within 120 s")


def _best(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Per figure, the better of the runs (lower latency, higher throughput)."""
    best = {}
    for key in runs[0]:
        values = [r[key] for r in runs]
        best[key] = min(values) if key.endswith("_ms") else max(values)
    return best


def _ratios(ray: dict[str, Any], plain: dict[str, Any]) -> dict[str, float]:
    return {key: round(ray[key] / plain[key], 2) for key in plain if plain[key]}


def run(quick: bool = False) -> dict[str, Any]:
    from sleuth.evaluate.benchmarks import load_benchmark
    from sleuth.search.bundled import bundled_index
    from sleuth.serve.ray_app import APP_NAME, RayOptions, build_application, deploy
    from sleuth.serve.spec import ServerSpec

    scratch = Path(tempfile.mkdtemp(prefix="ray-serve-bench-"))
    index = scratch / "hotpot-bm25"  # a copy: the update measurement writes into it
    shutil.copytree(bundled_index(), index)
    questions = [q.question for q in load_benchmark("hotpotqa-1100").questions]
    plain_port, ray_port = free_port(), free_port()
    command = [sys.executable, "-m", "sleuth.cli", "serve", str(index), "--quiet"]
    plain = _start([*command, "--port", str(plain_port), "--token", TOKEN], plain_port)
    spec = ServerSpec(index, token=TOKEN, quiet=True)
    started = time.perf_counter()
    deployment = None
    try:
        deployment = deploy(
            spec, RayOptions(replicas=1, replica_cpus=0.5), host="127.0.0.1", port=ray_port
        )
        deploy_s = round(time.perf_counter() - started, 1)
        plain_url, ray_url = f"http://127.0.0.1:{plain_port}", deployment.url
        plain_runs, ray_runs = [], []
        for _ in range(1 if quick else 2):
            plain_runs.append(measure(plain_url, questions))
            ray_runs.append(measure(ray_url, questions))
        from ray import serve

        serve.run(
            build_application(spec, RayOptions(replicas=2, replica_cpus=0.5)),
            name=APP_NAME,
            route_prefix="/",
        )
        two = measure(ray_url, questions)
        updates = measure_updates(ray_url, AUTH)
    finally:
        if deployment is not None:
            deployment.shutdown()
        stop(plain)
    reopen = reopen_ms(index)
    shutil.rmtree(scratch, ignore_errors=True)
    plain_best, ray_best = _best(plain_runs), _best(ray_runs)
    return {
        "what": "BM25, bundled HotpotQA index (10,785 paragraphs), HotpotQA questions, k=10, "
        "loopback; plain sleuth serve vs the same app on Ray Serve (local Ray), same run",
        "cpus": len(os.sched_getaffinity(0)),
        "load_average_1min_at_end": round(os.getloadavg()[0], 1),
        "ray_deploy_seconds": deploy_s,
        "requests": {"single": SINGLE, "concurrent": CONCURRENT, "batches": BATCHES},
        "plain": plain_best,
        "ray_1_replica": ray_best,
        "ray_2_replicas": two,
        "ratio_ray_1_replica_over_plain": _ratios(ray_best, plain_best),
        "ratio_ray_2_replicas_over_plain": _ratios(two, plain_best),
        "updates_on_2_replicas": updates,
        "bm25_reopen_ms_p50": reopen,
        "runs": {"plain": plain_runs, "ray_1_replica": ray_runs},
        "summary": [
            {
                "metric": "Ray 1 replica / plain, single p50 latency",
                "value": _ratios(ray_best, plain_best)["single_p50_ms"],
            },
            {
                "metric": "Ray 1 replica / plain, batch32 queries/s",
                "value": _ratios(ray_best, plain_best)["batch32_queries_per_s"],
            },
        ],
    }


def main() -> None:
    report = run()
    OUT.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
