"""Soak test: the retrieval server under 8 concurrent loopback clients for 10 minutes.

Mixed traffic (``/search``, ``/search/batch``, ``/retrieve``) with HotpotQA questions against the
bundled BM25 index. Recorded: errors, p50/p99 latency per minute, and the server's RSS sampled
every 5 s. Pass: zero errors, RSS after within 10% of RSS after warm-up, p99 of the last minute
within 1.5x the first minute's. ``make soak`` runs it; ``SLEUTH_SOAK_MINUTES`` shortens it.
"""

from __future__ import annotations

import asyncio
import os
import random
import sys
import time
from typing import Any

import httpx

from bench.common import percentile
from bench.serving import free_port, start, stop

CLIENTS = 8
WARM_UP_S = 30


def _bodies(questions: list[str], rng: random.Random) -> tuple[str, dict[str, Any]]:
    kind = rng.choice(("search", "batch", "retrieve"))
    if kind == "search":
        return "/search", {"query": rng.choice(questions), "k": 10}
    if kind == "batch":
        return "/search/batch", {"queries": rng.sample(questions, 8), "k": 10}
    return "/retrieve", {"queries": rng.sample(questions, 4), "topk": 3, "return_scores": True}


async def _client(
    base: str,
    questions: list[str],
    seed: int,
    until: float,
    log: list[tuple[float, str, float, int]],
) -> None:
    rng = random.Random(seed)
    async with httpx.AsyncClient(base_url=base, timeout=30) as client:
        while (now := time.monotonic()) < until:
            path, body = _bodies(questions, rng)
            started = time.perf_counter()
            try:
                status = (await client.post(path, json=body)).status_code
            except httpx.HTTPError:
                status = 0  # connection-level failure: an error like any non-200
            log.append((now, path, (time.perf_counter() - started) * 1e3, status))


async def _sample_rss(pid: int, until: float, samples: list[tuple[float, float]]) -> None:
    import psutil

    process = psutil.Process(pid)
    while time.monotonic() < until:
        samples.append((time.monotonic(), process.memory_info().rss / 2**20))
        await asyncio.sleep(5)


async def _soak(base: str, pid: int, questions: list[str], seconds: float) -> dict[str, Any]:
    log: list[tuple[float, str, float, int]] = []
    rss: list[tuple[float, float]] = []
    started = time.monotonic()
    until = started + seconds
    await asyncio.gather(
        _sample_rss(pid, until, rss),
        *(_client(base, questions, seed, until, log) for seed in range(CLIENTS)),
    )
    return {"log": log, "rss": rss, "started": started}


def _window(log: list[tuple[float, str, float, int]], start: float, end: float) -> dict[str, Any]:
    times = [ms for t, _, ms, _ in log if start <= t < end]
    return {
        "requests": len(times),
        "p50_ms": round(percentile(times, 50), 2),
        "p99_ms": round(percentile(times, 99), 2),
    }


def run(quick: bool = False) -> dict[str, Any]:
    from sleuth.corpus import load_queries
    from sleuth.search.bundled import bundled_index

    minutes = float(os.environ.get("SLEUTH_SOAK_MINUTES", "1" if quick else "10"))
    warm_up = min(WARM_UP_S, 10 if quick else WARM_UP_S)
    index = bundled_index("hotpotqa-1100")
    questions = list(load_queries("hotpotqa-1100").values())
    port = free_port()
    server = start(
        # --quiet: no access log (the stderr pipe of `start` is not drained during the soak)
        [sys.executable, "-m", "sleuth.cli", "serve", str(index), "--port", str(port), "--quiet"],
        port,
    )
    try:
        data = asyncio.run(
            _soak(f"http://127.0.0.1:{port}", server.pid, questions, warm_up + minutes * 60)
        )
    finally:
        stop(server)
    log, rss, t0 = data["log"], data["rss"], data["started"]
    measured_from = t0 + warm_up
    measured = [entry for entry in log if entry[0] >= measured_from]
    errors = [entry for entry in measured if entry[3] != 200]
    per_minute = []
    for minute in range(max(1, int(minutes))):
        start_t = measured_from + 60 * minute
        per_minute.append({"minute": minute + 1, **_window(log, start_t, start_t + 60)})
    rss_after_warm_up = next(mb for t, mb in rss if t >= measured_from)
    rss_end = rss[-1][1]
    growth = rss_end / rss_after_warm_up - 1
    p99_first, p99_last = per_minute[0]["p99_ms"], per_minute[-1]["p99_ms"]
    by_endpoint = {}
    for path in ("/search", "/search/batch", "/retrieve"):
        times = [ms for _, p, ms, _ in measured if p == path]
        by_endpoint[path] = {
            "requests": len(times),
            "p50_ms": round(percentile(times, 50), 2),
            "p99_ms": round(percentile(times, 99), 2),
        }
    seconds = minutes * 60
    return {
        "minutes": minutes,
        "clients": CLIENTS,
        "requests": len(measured),
        "requests_per_s": round(len(measured) / seconds, 1),
        "errors": len(errors),
        "error_statuses": sorted({e[3] for e in errors}),
        "by_endpoint": by_endpoint,
        "per_minute": per_minute,
        "rss_mb": {
            "after_warm_up": round(rss_after_warm_up, 1),
            "end": round(rss_end, 1),
            "max": round(max(mb for _, mb in rss), 1),
            "growth": round(growth, 4),
        },
        "summary": [
            {"metric": "requests over the soak (8 clients)", "value": len(measured)},
            {"metric": "errors (target 0)", "value": len(errors), "pass": not errors},
            {
                "metric": "p99 ms first / last minute (target last <= 1.5x first)",
                "value": f"{p99_first} / {p99_last}",
                "pass": p99_last <= 1.5 * p99_first,
            },
            {
                "metric": "server RSS MB after warm-up / end (target growth <= 10%)",
                "value": f"{rss_after_warm_up:.1f} / {rss_end:.1f} ({growth:+.1%})",
                "pass": growth <= 0.10,
            },
        ],
    }
