"""What the server pool costs: requests/s of the remote client over loopback, in one run.

Two ``sleuth serve`` processes serve the bundled HotpotQA BM25 index on 127.0.0.1. The same
queries (one per request) go through: a bare ``httpx.Client`` POST (what the client did before
the pool), ``RemoteSearchEngine`` on one URL (a pool of one), and on both URLs (balanced); each
with 1 and 8 client threads. The pool's own bookkeeping (pick a server, settle the count) is
also timed without any network. Each measurement is repeated three times, interleaved, and the
median kept. Run: ``python -m bench.search_pool``.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import threading
import time
from collections.abc import Callable

import httpx

from bench.common import REPO
from bench.serving import free_port, start, stop

REQUESTS = 600  # per measurement
REPEATS = 3
OUT = REPO / "bench" / "results" / "search_pool.json"


def rate(search: Callable[[str], object], queries: list[str], threads: int) -> tuple[float, float]:
    """(requests answered per second, client CPU microseconds per request) with ``threads``
    clients sharing ``queries``. The CPU time is this process's only (the servers are others):
    what the client costs, and much steadier than wall time on a shared machine."""
    cursor = iter(range(len(queries)))
    lock = threading.Lock()

    def work() -> None:
        while True:
            with lock:
                n = next(cursor, None)
            if n is None:
                return
            search(queries[n])

    workers = [threading.Thread(target=work) for _ in range(threads)]
    started, cpu = time.perf_counter(), time.process_time()
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    cpu_us = (time.process_time() - cpu) / len(queries) * 1e6
    return round(len(queries) / (time.perf_counter() - started), 1), round(cpu_us, 1)


def bookkeeping_us(urls: list[str], n: int = 200_000) -> float:
    """Microseconds per pick-and-settle of a pool over ``urls``, no request sent."""
    from sleuth.search.pool import ServerPool

    pool = ServerPool(urls, protocol="sleuth")
    started = time.perf_counter()
    for _ in range(n):
        server, _ = pool._pick(set())
        with pool._lock:
            server.in_flight -= 1
    return round((time.perf_counter() - started) / n * 1e6, 2)


def main() -> None:
    from sleuth.evaluate.benchmarks import load_benchmark
    from sleuth.search.bundled import bundled_index
    from sleuth.search.remote import RemoteSearchEngine

    index = str(bundled_index())
    questions = [q.question for q in load_benchmark("hotpotqa-1100").questions]
    queries = (questions * (REQUESTS // len(questions) + 1))[:REQUESTS]
    ports = [free_port(), free_port()]
    servers = [
        start([sys.executable, "-m", "sleuth.cli", "serve", index, "--port", str(p), "--quiet"], p)
        for p in ports
    ]
    urls = [f"http://127.0.0.1:{p}" for p in ports]
    try:
        bare = httpx.Client(base_url=urls[0], timeout=30)
        one = RemoteSearchEngine(urls[0])
        two = RemoteSearchEngine(urls)
        clients = {
            "bare_httpx_one_url": lambda q: bare.post(
                "/search/batch", json={"queries": [q], "k": 3}
            ).json(),
            "pool_one_url": lambda q: one.search(q, 3),
            "pool_two_urls": lambda q: two.search(q, 3),
        }
        for search in clients.values():  # warm connections and server caches
            rate(search, queries[:100], 4)
        samples: dict[str, dict[str, list[float]]] = {}
        for _ in range(REPEATS):  # interleaved, so drift in the machine's load hits all alike
            for threads in (1, 8):
                for name, search in clients.items():
                    rps, cpu_us = rate(search, queries, threads)
                    by = samples.setdefault(name, {})
                    by.setdefault(f"rps_{threads}_threads", []).append(rps)
                    by.setdefault(f"client_cpu_us_per_request_{threads}_threads", []).append(cpu_us)
        results = {
            name: {key: {"median": statistics.median(v), "samples": v} for key, v in by.items()}
            for name, by in samples.items()
        }
        report = {
            "what": "requests/s, one query per request, k=3, BM25 on the bundled HotpotQA index, "
            "sleuth serve x2 on loopback, same run",
            "requests_per_measurement": REQUESTS,
            "repeats": REPEATS,
            "cpus": len(os.sched_getaffinity(0)),
            "load_average_1min_at_end": round(os.getloadavg()[0], 1),  # other jobs share the CPUs
            "results": results,
            "pool_bookkeeping_us_per_request": {
                "one_url": bookkeeping_us(urls[:1]),
                "two_urls": bookkeeping_us(urls),
            },
            "served_by": {s.url: s.requests for s in two.pool.servers},
        }
    finally:
        for server in servers:
            stop(server)
    OUT.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
