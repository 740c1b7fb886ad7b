"""``sleuth demo``: the whole pipeline on bundled data with the packaged model, offline.

The model is the packaged SmolLM2-135M with the shipped priming adapter merged in
(``smollm2-135m-primed``, built by ``make prime``: docs/training.md), run with the prompt and
hit length it was primed on (its recorded training settings: ``sleuth.agent.trained_settings``).
Every model turn is decoded under the action grammar, so even a 135M model acts (searches, then
answers) instead of writing prose. The OpenVINO backend batches the episodes in flight; no
episode starts after the 15-minute deadline (measured numbers are in the README and
docs/evaluation.md): short generations and few turns, because a 135M model rarely gains from
long reasoning anyway.
"""

from __future__ import annotations

import time
from pathlib import Path

from sleuth.agent.config import AgentConfig
from sleuth.agent.final_read import DEFAULT_DOCUMENTS
from sleuth.evaluate.methods import eval_budget

DEMO_BENCHMARK = "hotpotqa-1100:test"
DEMO_BUDGET = eval_budget(
    top_k=3,
    max_turns=4,
    max_searches=3,
    max_tokens=2048,
    max_new_tokens=64,
    wall_time_s=120.0,  # episodes here take ~30 s; the cap bounds the wait at the deadline
    temperature=0.0,
    constrain=True,  # every turn is one valid action (the 135M model writes prose otherwise)
    final_read=DEFAULT_DOCUMENTS,  # agent rows answer from the evidence, as `eval run` does
)  # doc_chars and prompt_example: as DEMO_MODEL was trained (demo_budget)
# Measured on 200 test questions at this budget (docs/training.md): the primed agent_rag finds
# more of the gold evidence than rag (0.728 vs 0.667) with F1 within noise (0.137 vs 0.146).
DEMO_MODEL = "smollm2-135m-primed"
# links: the read that pays with a capable reader (F1 +0.083 over best-k RAG on 200 test and
# +0.114 on 300 dev questions with Qwen2.5-Coder-1.5B reading, docs/evaluation.md); with the
# demo's 135M as reader +0.017 (within noise). One reader call, like rag.
# searcher_links@3: the shipped searcher (``smollm2-135m-searcher``, ``make searcher``), primed
# on follow episodes, selects the 3 documents the demo's model then reads. With Qwen2.5-Coder-1.5B
# reading it scored F1 +0.083 over best-k RAG on 200 test questions (docs/evaluation.md); the
# demo's 135M reads too weakly for a read to pay (its row: read recall 0.765 against RAG's 0.655,
# F1 -0.004, CI -0.050 to +0.040).
DEMO_SEARCHER = "smollm2-135m-searcher"
DEMO_METHODS = ["closed_book", "rag", "links", "searcher_links@3", "agent", "agent_rag"]


def demo_budget() -> AgentConfig:
    """DEMO_BUDGET with the hit length and prompt DEMO_MODEL was trained with (300, none)."""
    from dataclasses import replace

    from sleuth.agent.trained_settings import trained_settings

    trained = trained_settings(DEMO_MODEL)
    keys = {"doc_chars", "prompt_example"}
    return replace(DEMO_BUDGET, **{k: v for k, v in trained.items() if k in keys})


# Episodes in flight at once: the OpenVINO backend decodes them together (continuous batching).
DEMO_CONCURRENCY = 16
DEMO_QUESTIONS = 100
TIME_LIMIT_S = 15 * 60
# Episodes in flight when the deadline passes finish (each within wall_time_s), then the report.
DEADLINE_MARGIN_S = DEMO_BUDGET.wall_time_s + 45


def run_demo(
    out: Path | None = None,
    n: int = DEMO_QUESTIONS,
    concurrency: int | None = None,
    reader: str | None = None,
    reader_url: str | None = None,
) -> Path | None:
    """``reader`` (``reader_url``): a reader model answers (``Agent(reader=...)``) while
    DEMO_MODEL searches; by default DEMO_MODEL does both, as before."""
    from sleuth.display import safe_markup
    from sleuth.evaluate.benchmarks import load_benchmark
    from sleuth.evaluate.runner import RunSettings
    from sleuth.evaluate.session import execute, open_llm, open_reader, reader_label
    from sleuth.progress import stderr
    from sleuth.search.factory import open_engine

    started = time.perf_counter()
    reader_name = reader_label(reader, reader_url)  # a bad pair fails before any work
    out = out or Path("runs") / time.strftime("demo-%Y%m%d-%H%M%S")
    opened = open_engine()  # the bundled corpus's BM25 index, built once
    engine = opened.engine
    stderr.print(f"index ready: {safe_markup(opened.label)} ({len(engine):,} documents)")
    llm = open_llm(DEMO_MODEL, None)
    seconds = time.perf_counter() - started
    stderr.print(f"model ready: {safe_markup(llm.name)} ({seconds:.0f}s so far)")
    reader_llm = open_reader(reader, reader_url, DEMO_MODEL, None, llm)
    if reader_llm is not None and reader_llm is not llm:
        stderr.print(f"reader ready: {safe_markup(reader_llm.name)}")
    searcher = open_llm(DEMO_SEARCHER, None)
    stderr.print(f"searcher ready: {safe_markup(searcher.name)} (the searcher_links@3 row)")
    questions = load_benchmark(DEMO_BENCHMARK, limit=n).questions
    settings = RunSettings(
        benchmark=DEMO_BENCHMARK,
        methods=list(DEMO_METHODS),
        seeds=[0],
        budget=demo_budget(),
        limit=n,
        concurrency=concurrency or DEMO_CONCURRENCY,
        model=DEMO_MODEL,
        search=opened.label,
        reader=reader_name,
        searcher=DEMO_SEARCHER,
    )
    deadline = time.monotonic() - (time.perf_counter() - started) + TIME_LIMIT_S
    _, _, html = execute(
        out,
        settings,
        questions,
        llm,
        engine,
        None,
        opened.manifest,
        deadline=deadline - DEADLINE_MARGIN_S,
        reader=reader_llm,
        searcher=searcher,
    )
    stderr.print(f"demo finished in {time.perf_counter() - started:.0f}s; open {safe_markup(html)}")
    return html
