"""What a searcher changed in front of the reader, question by question.

A searcher@K row differs from rag@K only through the documents the reader reads. This counts, per
searcher run, the questions whose final read is not RAG's top K as a set, how many documents a
follow-up search found reached the reader, the gold paragraphs those brought, and the F1 gained or
lost on the questions whose read changed against those whose read stayed RAG's (reordered only).
The untrained 135M searcher changed the read set in 0 of 100 questions (docs/evaluation.md):
this is the measurement that says whether priming or training moved it.

Usage: ``python -m bench.searcher_reads --searcher RUN:searcher@5 --rag RUN:rag@5
[--out bench/results/NAME.json]``; the RAG side may be another run over the same questions.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from bench.common import REPO
from bench.paired_splits import run_and_method
from sleuth.evaluate.report import load_run, read_trajectories


def _episodes(run: Path, records: list[dict[str, Any]], method: str) -> dict[str, dict]:
    """``method``'s trajectory of each question (the reader a resumed run's retries leave)."""
    ids = {str(r["episode_id"]): str(r["question_id"]) for r in records if r["method"] == method}
    found = read_trajectories(run / "trajectories.jsonl", set(ids))
    return {ids[episode]: data for episode, data in found.items()}


def _gold_hit(ids: set[str], gold: list[list[str]]) -> int:
    return sum(1 for aliases in gold if set(aliases) & ids)


def read_changes(searcher: str, rag: str) -> dict[str, Any]:
    (s_run, s_method), (r_run, r_method) = run_and_method(searcher), run_and_method(rag)
    _, s_records = load_run(s_run)
    episodes = _episodes(s_run, s_records, s_method)
    _, r_records = load_run(r_run)
    f1_s = {str(r["question_id"]): r["f1"] for r in s_records if r["method"] == s_method}
    f1_r = {str(r["question_id"]): r["f1"] for r in r_records if r["method"] == r_method}
    changed, same = [], []
    new_docs = gold_new = follow_ups = 0
    for qid, episode in episodes.items():
        if qid not in f1_s or qid not in f1_r:
            continue
        meta = episode["metadata"]
        steps = episode["steps"]
        rag_ids = {hit["id"] for hit in (steps[0].get("hits") or [])} if steps else set()
        read = set(meta.get("final_read") or [])
        gold = [list(a) for a in meta.get("gold_evidence") or []]
        follow_ups += sum(1 for s in steps[1:] if s.get("action") == "search")
        extra = read - rag_ids
        new_docs += len(extra)
        gold_new += _gold_hit(read, gold) - _gold_hit(read & rag_ids, gold)
        (changed if extra else same).append(f1_s[qid] - f1_r[qid])
    n = len(changed) + len(same)

    def mean(values: list[float]) -> float | None:
        return round(sum(values) / len(values), 4) if values else None

    return {
        "searcher": searcher,
        "rag": rag,
        "questions": n,
        "read_set_changed": len(changed),
        "follow_up_searches_per_question": round(follow_ups / n, 3) if n else None,
        "new_documents_read": new_docs,
        "gold_paragraphs_added": gold_new,
        "f1_change_where_read_changed": mean(changed),
        "f1_change_where_read_kept": mean(same),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--searcher", action="append", required=True, help="RUN:searcher@K")
    parser.add_argument("--rag", required=True, help="RUN:rag@K (the same K)")
    parser.add_argument("--out", type=Path, help="JSON file for the rows")
    args = parser.parse_args()
    rows = [read_changes(s, args.rag) for s in args.searcher]
    for row in rows:
        print(json.dumps(row))
    if args.out:
        out = args.out if args.out.is_absolute() else REPO / args.out
        out.write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
