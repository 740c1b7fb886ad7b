"""How many look-ups link following needs: the read recall of a links read whose name searches
are capped, on HotpotQA-1100 questions (no reader: read recall is what F1 follows with the 1.5B
reader, docs/evaluation.md).

The `links` pipeline searches every name in the question and in its best hit (about 13
searches) and keeps the hits titled by a name. A searcher with `eval run`'s budget has 3
follow-up searches. This reads the question's best hit, the documents titled by the first N
names (the question's, then optionally its best hit's, in text order), then RAG's next hits,
cut to 3 documents, for N = 1, 2, 3, 5 and 24 (the pipeline's cap): what a searcher that copies
names in order, without knowing which are titles, could read at most.

Usage: ``python -m bench.link_lookups [--split test] [-n 200] [--out
bench/results/link_lookups.json]``; the bundled BM25 index.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from bench.common import REPO
from sleuth.evaluate.benchmarks import BenchmarkQuestion, load_benchmark
from sleuth.evaluate.pipelines import LINK_POOL
from sleuth.jsonio import write_json_atomic
from sleuth.metrics import evidence_recall
from sleuth.search.base import SearchEngine
from sleuth.search.factory import open_engine
from sleuth.search.links import LINK_LOOKUP_K, MAX_LINK_LOOKUPS, names_in, title_named

READ = 3
BUDGETS = (1, 2, 3, 5, MAX_LINK_LOOKUPS)


def capped_read(engine: SearchEngine, question: str, lookups: int, best_names: bool) -> list[str]:
    """The ids of a links-style read with at most ``lookups`` name searches."""
    pool = engine.search(question, LINK_POOL)
    if not pool:
        return []
    best = pool[0]
    names = names_in(question)
    if best_names:
        names += [name for name in names_in(best.text) if name not in names]
    read = [best.id]
    for name in names[:lookups]:
        hit = title_named(name, engine.search(name, LINK_LOOKUP_K))
        if hit is not None and hit.id not in read:
            read.append(hit.id)
    read += [hit.id for hit in pool if hit.id not in read]
    return read[:READ]


def read_recall(read: list[str], question: BenchmarkQuestion) -> float:
    return evidence_recall(read, question.gold_evidence) or 0.0


def measure(split: str, n: int) -> dict[str, Any]:
    engine = open_engine(None).engine
    questions = load_benchmark(f"hotpotqa-1100:{split}", limit=n).questions
    rag = [read_recall([h.id for h in engine.search(q.question, READ)], q) for q in questions]
    rows: list[dict[str, Any]] = [
        {"read": f"rag@{READ}", "lookups": 0, "read_recall": round(sum(rag) / len(rag), 3)}
    ]
    for best_names in (False, True):
        for lookups in BUDGETS:
            values = [
                read_recall(capped_read(engine, q.question, lookups, best_names), q)
                for q in questions
            ]
            rows.append(
                {
                    "read": "question and best-hit names" if best_names else "question names",
                    "lookups": lookups,
                    "read_recall": round(sum(values) / len(values), 3),
                }
            )
    return {"benchmark": f"hotpotqa-1100:{split}", "questions": len(questions), "rows": rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--split", default="test", choices=("train", "dev", "test"))
    parser.add_argument("-n", type=int, default=200)
    parser.add_argument("--out", type=Path, default=REPO / "bench/results/link_lookups.json")
    args = parser.parse_args()
    result = measure(args.split, args.n)
    for row in result["rows"]:
        print(f"{row['read']:<28} lookups {row['lookups']:>2}  read recall {row['read_recall']}")
    write_json_atomic(args.out, result)
    print(f"written: {args.out}")


if __name__ == "__main__":
    main()
