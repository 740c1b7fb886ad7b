"""Run Sleuth's benchmarks, write ``bench/results/<name>.json`` and print a summary table.

Usage: ``python -m bench.run_all [--quick] [NAME ...]`` (``make bench`` runs them all).
Each benchmark module exposes ``run(quick: bool) -> dict``; figures are ratios against an
alternative measured in the same run, so they stay meaningful on another machine.
"""

from __future__ import annotations

import argparse
import importlib
import os
import platform
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from sleuth.jsonio import write_json_atomic

BENCHMARKS = (
    "quality",
    "bm25_analysis",
    "bm25_sharding",
    "scale",
    "import_scale",
    "serving",
    "ray_serve",
    "agent",
    "encoder",
    "llm",
    "rollouts",
    "agent_table",
    "promptagator",
    "simulated_engines",
    "simulator_fidelity",
    "train_engines",
    "selfplay",
    "ray_encode",
    "async_rollouts",
)
RESULTS_DIR = Path(__file__).resolve().parent / "results"


def summary_rows(name: str, result: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    """Rows for the printed table: a module's own ``summary`` if it gives one."""
    rows = []
    for row in result.get("summary", []):
        passed = row.get("pass")
        verdict = "" if passed is None else ("PASS" if passed else "FAIL")
        rows.append((name, str(row.get("metric")), str(row.get("value")), verdict))
    if not rows:
        for key, value in result.items():
            if isinstance(value, (int, float, str)) and key != "summary":
                rows.append((name, key, str(value), ""))
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("names", nargs="*", default=list(BENCHMARKS), help="benchmarks to run")
    parser.add_argument("--quick", action="store_true", help="smaller sizes, minutes not hours")
    args = parser.parse_args(argv)
    console = Console()
    table = Table(title="Sleuth benchmarks" + (" (quick)" if args.quick else ""))
    for column in ("bench", "figure", "value", "target"):
        table.add_column(column)
    failures = 0
    for name in args.names:
        console.print(f"[bold]running bench/{name}.py[/bold] ...")
        started = time.perf_counter()
        try:
            module = importlib.import_module(f"bench.{name}")
            result = module.run(quick=args.quick)
        except Exception:  # one broken benchmark must not hide the others' results
            failures += 1
            console.print(f"[red]bench/{name} failed[/red]\n{traceback.format_exc()}")
            continue
        result["_meta"] = {
            "seconds": round(time.perf_counter() - started, 1),
            "quick": args.quick,
            "python": sys.version.split()[0],
            "machine": platform.machine(),
            "cpus": os.cpu_count(),
            "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        out = RESULTS_DIR / f"{name}.json"
        write_json_atomic(out, result)
        for row in summary_rows(name, result):
            table.add_row(*row)
        console.print(f"  wrote {out}")
    console.print(table)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
