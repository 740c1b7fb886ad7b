"""Promptagator on the bundled judged collections: nDCG@10 and Recall@10 of the dense MiniLM
retriever before and after fine-tuning on LLM-generated, round-trip-filtered queries, and of a
cross-encoder reranker trained on the same pairs (over BM25's top 20), next to BM25, all in one
run. Only corpus text and at most 8 labelled pairs are used:

- Cranfield: 8 queries drawn (seeded) from its judgements, each with its most relevant
  document, are the examples; the other 217 judged queries are scored.
- HotpotQA-1100: the examples are 8 questions of the ``train`` split with a supporting
  paragraph; the scored questions are a seeded sample of the ``test`` split, and the corpus is
  the context paragraphs of those questions (10 each: 2 supporting, 8 distractors chosen to be
  hard). The full 10,785-paragraph corpus is not used: encoding it twice (before and after)
  takes about 30 minutes on 2 shared cores.

The packaged SmolLM2-135M writes the queries (OpenVINO backend, 32 requests in flight).
Default sizes (`make bench`): one query each for 200 Cranfield passages and 300 HotpotQA
paragraphs, 100 HotpotQA test questions (about 1,000 paragraphs), one epoch, the reranker over
BM25's top 20 (first stage BM25 on both); `--quick` 40 passages / 30 questions.
Measured 26 Nov 2026 at nice 19 on 2 shared cores: Cranfield 34 minutes, HotpotQA 87 (most of
it waiting for the CPU); the time of each phase is in the results. ``python -m
bench.promptagator --only hotpotqa`` runs one collection and merges it into the results file.
"""

from __future__ import annotations

import asyncio
import json
import random
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from sleuth.corpus import load_qrels, load_queries
from sleuth.corpus.bundled import DATA_DIR
from sleuth.train.retriever import RetrieverTrainConfig, train_retriever

SEED = 0
# passages that get a generated query (sized to finish on 2 shared cores; see the docstring)
PASSAGES = {"cranfield": 200, "hotpotqa": 300}
HOTPOT_QUESTIONS = 100  # test-split questions scored (their ~1,000 context paragraphs)
HOTPOT_BEIR = DATA_DIR / "hotpotqa_dev_1100_beir"
HOTPOT_RAW = DATA_DIR / "hotpotqa_dev_1100"


def cranfield_task(work: Path, seed: int) -> tuple[str, Path, dict, dict]:
    """8 judged queries as examples (their most relevant document), the rest for scoring."""
    queries, qrels = load_queries("cranfield"), load_qrels("cranfield")
    judged = sorted(q for q in qrels if q in queries)
    chosen = random.Random(seed).sample(judged, 8)
    examples = work / "cranfield_examples.jsonl"
    with examples.open("w") as handle:
        for qid in chosen:
            best = max(qrels[qid].items(), key=lambda item: (item[1], -int(item[0])))[0]
            handle.write(json.dumps({"query": queries[qid], "passage_id": best}) + "\n")
    held_out = {q: queries[q] for q in judged if q not in chosen}
    return "cranfield", examples, held_out, {q: qrels[q] for q in held_out}


def hotpot_task(work: Path, seed: int, questions: int) -> tuple[str, Path, dict, dict]:
    """A seeded sample of test-split questions over their own context paragraphs; 8 train-split
    questions with one supporting paragraph each as the examples."""
    rows = [json.loads(line) for line in (HOTPOT_BEIR / "queries.jsonl").open()]
    test = [r for r in rows if r["metadata"]["rpt_split"] == "test"]
    picked = random.Random(seed).sample(test, questions)
    qrels_all = load_qrels(HOTPOT_BEIR)
    docs = [json.loads(line) for line in (HOTPOT_BEIR / "corpus.jsonl").open()]
    by_title = {d["title"]: d for d in docs}
    raw = {}
    for line in (HOTPOT_RAW / "test.jsonl").open():
        record = json.loads(line)
        raw[record["id"]] = record
    wanted: dict[str, dict] = {}
    for row in picked:
        for title in raw[row["_id"]]["context"]["title"]:
            doc = by_title[title]
            wanted[doc["_id"]] = doc
        for doc_id in qrels_all[row["_id"]]:
            wanted[doc_id] = next(d for d in docs if d["_id"] == doc_id)
    corpus = work / "hotpot_test_corpus.jsonl"
    with corpus.open("w") as handle:
        for doc in wanted.values():
            handle.write(
                json.dumps({"_id": doc["_id"], "title": doc["title"], "text": doc["text"]}) + "\n"
            )
    train = [json.loads(line) for line in (HOTPOT_RAW / "train.jsonl").open()]
    examples = work / "hotpot_examples.jsonl"
    with examples.open("w") as handle:
        for record in random.Random(seed).sample(train, 8):
            title = record["supporting_facts"]["title"][0]
            doc = by_title[title]
            handle.write(
                json.dumps({"query": record["question"], "title": title, "passage": doc["text"]})
                + "\n"
            )
    queries = {r["_id"]: r["text"] for r in picked}
    return str(corpus), examples, queries, {q: qrels_all[q] for q in queries}


LABELS = {"cranfield": "cranfield", "hotpotqa": "hotpotqa-1100 (test split)"}


def entry_from_report(report: dict[str, Any], wall_seconds: float) -> dict[str, Any]:
    """One collection's figures, taken from the report ``train_retriever`` wrote."""
    return {
        "documents": report["documents"],
        "passages": report["passages"],
        "eval_queries": report["eval_queries"],
        "queries_generated": report["queries_generated"],
        "queries_kept": report["queries_kept"],
        "training_pairs": report["training_pairs"],
        "metrics": report["metrics"],
        "seconds": report["seconds"],
        "wall_seconds": round(wall_seconds, 1),
        "versions": report["versions"],
    }


def summarise(collections: dict[str, Any]) -> list[dict[str, str]]:
    summary = []
    for label, entry in collections.items():
        m = entry["metrics"]
        for name in ("dense_before", "dense_after", "bm25", "bm25_rerank@20"):
            if name in m:
                summary.append(
                    {
                        "metric": f"{label} {name} nDCG@10 / R@10",
                        "value": f"{m[name]['nDCG@10']:.4f} / {m[name]['R@10']:.4f}",
                    }
                )
        summary.append(
            {
                "metric": f"{label} queries kept / generated",
                "value": f"{entry['queries_kept']} / {entry['queries_generated']}",
            }
        )
    return summary


def run(
    quick: bool = False,
    only: tuple[str, ...] = ("cranfield", "hotpotqa"),
    passages: int | None = None,
    questions: int | None = None,
) -> dict[str, Any]:
    from sleuth.llm import load_llm

    questions = questions or (30 if quick else HOTPOT_QUESTIONS)
    work = Path(tempfile.mkdtemp(prefix="sleuth-promptagator-"))
    llm = load_llm()  # loaded once, shared by both collections
    results: dict[str, Any] = {
        "llm": getattr(llm, "name", ""),
        "queries_per_passage": 1,
        "keep_top_k": 3,
        "epochs": 1,
        "rerank_depth": 20,
        "rerank_first_stage": "bm25",
        "hotpot_test_questions": questions,
        "collections": {},
    }
    makers = {
        "cranfield": lambda: cranfield_task(work, SEED),
        "hotpotqa": lambda: hotpot_task(work, SEED, questions),
    }
    try:
        for key in only:
            name, examples, queries, qrels = makers[key]()
            config = RetrieverTrainConfig(
                corpus=name,
                examples=str(examples),
                out=str(work / f"run-{key}"),
                passages=passages or (40 if quick else PASSAGES[key]),
                keep_top_k=3,
                seed=SEED,
                reranker=True,
                rerank_depth=20,
            )
            started = time.perf_counter()
            report = train_retriever(config, llm=llm, eval_queries=queries, eval_qrels=qrels)
            entry = entry_from_report(report, time.perf_counter() - started)
            results["collections"][LABELS[key]] = entry
    finally:
        asyncio.run(llm.aclose())
    shutil.rmtree(work, ignore_errors=True)  # ~180 MB a run; kept only when the run failed
    results["summary"] = summarise(results["collections"])
    return results


def main() -> None:
    """Run some collections (or take one from a finished run's report.json) and merge them
    into bench/results/promptagator.json, keeping the other collections' figures."""
    import argparse

    from bench.run_all import RESULTS_DIR
    from sleuth.jsonio import write_json_atomic

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--only", nargs="+", choices=list(LABELS), default=list(LABELS))
    parser.add_argument("--passages", type=int)
    parser.add_argument("--questions", type=int)
    parser.add_argument("--from-report", type=Path, help="a train_retriever report.json")
    args = parser.parse_args()
    path = RESULTS_DIR / "promptagator.json"
    if args.from_report:
        report = json.loads(args.from_report.read_text())
        (key,) = args.only
        result = {
            "collections": {LABELS[key]: entry_from_report(report, report["seconds"]["total"])}
        }
    else:
        result = run(only=tuple(args.only), passages=args.passages, questions=args.questions)
    # read after the run: another collection's run may have written the file meanwhile
    merged = json.loads(path.read_text()) if path.is_file() else {"collections": {}}
    merged.update({k: v for k, v in result.items() if k != "collections"})
    merged["collections"].update(result["collections"])
    merged["summary"] = summarise(merged["collections"])
    merged["_meta_partial"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    write_json_atomic(path, merged)
    print(json.dumps(merged["summary"], indent=1))


if __name__ == "__main__":
    main()
