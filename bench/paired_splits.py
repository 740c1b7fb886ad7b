"""Paired comparisons between (run, method) pairs, overall and by HotpotQA question type
(any split of HotpotQA-1100).

``sleuth eval report`` pairs each method with the run's own RAG and ``sleuth eval compare``
pairs one method across two runs; neither splits by bridge / comparison question or pairs
different methods of different runs (a primed agent against the unprimed model's RAG, the
baseline a user would otherwise pick). This does, over the questions both answered, with the
same paired bootstrap (5,000 resamples).

Usage: ``python -m bench.paired_splits --pair LABEL=RUN_A:METHOD,RUN_B:METHOD [--pair ...]
[--out bench/results/NAME.json]``; B - A is reported. The run folders come from
``sleuth eval run`` on ``hotpotqa-1100:test`` (docs/evaluation.md names the commands).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from bench.common import REPO
from sleuth.evaluate.benchmarks import load_benchmark
from sleuth.evaluate.report import load_run
from sleuth.evaluate.summary import paired_difference, per_question

METRICS = ("f1", "em", "evidence_recall", "read_recall", "searches")
SPLITS = ("all", "bridge", "comparison")


def hotpot_types() -> dict[str, str]:
    """bridge / comparison of every HotpotQA-1100 question, train, dev and test."""
    return {
        q.id: q.metadata["type"]
        for split in ("train", "dev", "test")
        for q in load_benchmark(f"hotpotqa-1100:{split}").questions
    }


def run_and_method(text: str) -> tuple[Path, str]:
    """``RUN:METHOD`` as (run folder, method); the run folder may itself hold colons."""
    folder, _, method = text.rpartition(":")
    if not folder or not method:
        raise SystemExit(f"expected RUN:METHOD, got {text!r}")
    return Path(folder), method


def paired_rows(label: str, a: str, b: str) -> list[dict[str, Any]]:
    (run_a, method_a), (run_b, method_b) = run_and_method(a), run_and_method(b)
    _, records_a = load_run(run_a)
    _, records_b = load_run(run_b)
    ids = {str(r["question_id"]) for r in records_a} | {str(r["question_id"]) for r in records_b}
    types = hotpot_types()
    rows = []
    for split in SPLITS:
        wanted = {q for q in ids if split == "all" or types.get(q) == split}
        for metric in METRICS:
            values_a = per_question(records_a, method_a, metric)
            values_b = per_question(records_b, method_b, metric)
            paired = paired_difference(
                {q: v for q, v in values_a.items() if q in wanted},
                {q: v for q, v in values_b.items() if q in wanted},
            )
            if paired is None:
                continue
            rows.append(
                {
                    "pair": label,
                    "run_a": f"{run_a.name}:{method_a}",
                    "run_b": f"{run_b.name}:{method_b}",
                    "split": split,
                    "metric": metric,
                    **{k: round(v, 4) if isinstance(v, float) else v for k, v in paired.items()},
                }
            )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pair", action="append", required=True, help="LABEL=A:METHOD,B:METHOD")
    parser.add_argument("--out", type=Path, default=None, help="JSON file to write")
    args = parser.parse_args()
    rows = []
    for pair in args.pair:
        label, _, sides = pair.partition("=")
        a, _, b = sides.partition(",")
        rows += paired_rows(label, a, b)
    for r in rows:
        mark = " *" if r["significant"] else ""
        print(
            f"{r['pair']:<28} {r['split']:<10} {r['metric']:<15} n={r['questions']:<4} "
            f"{r['a']:.3f} -> {r['b']:.3f}  {r['diff']:+.3f}{mark} "
            f"[{r['low']:+.3f}, {r['high']:+.3f}]"
        )
    if args.out:
        out = args.out if args.out.is_absolute() else REPO / args.out
        out.write_text(json.dumps({"rows": rows}, indent=2) + "\n", encoding="utf-8")
        print(f"wrote {out}")


if __name__ == "__main__":
    main()
