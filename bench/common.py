"""Helpers shared by the benchmarks: timing percentiles, peak memory of a child process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
WORK = REPO / "bench" / "work"  # scratch space (git-ignored): generated corpora and indexes


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    position = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[position]


def latencies_ms(fn: Callable[[Any], Any], inputs: list[Any]) -> dict[str, float]:
    times = []
    for item in inputs:
        started = time.perf_counter()
        fn(item)
        times.append((time.perf_counter() - started) * 1e3)
    return {"p50_ms": percentile(times, 50), "p95_ms": percentile(times, 95)}


PEAK_SUFFIX = """
import json as _json, resource as _resource
result["peak_rss_mb"] = round(_resource.getrusage(_resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
print(_json.dumps(result))
"""


def run_child(
    code: str, env: dict[str, str] | None = None, show_progress: bool = False
) -> dict[str, Any]:
    """Run ``code`` (which fills a dict named ``result``) in a fresh interpreter.

    A child process isolates peak memory: the parent's own allocations do not count, and the
    child reports its own peak RSS (MB) alongside its results. ``show_progress``: the child's
    stderr goes to ours as it comes (an hour-long build), instead of into the error message.
    """
    completed = subprocess.run(
        [sys.executable, "-c", code + PEAK_SUFFIX],
        stdout=subprocess.PIPE,
        stderr=None if show_progress else subprocess.PIPE,
        text=True,
        cwd=REPO,
        env={**os.environ, **(env or {})},
        check=False,
    )
    if completed.returncode != 0:
        raise RuntimeError(f"benchmark child failed:\n{(completed.stderr or '')[-3000:]}")
    return json.loads(completed.stdout.strip().splitlines()[-1])


def folder_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
