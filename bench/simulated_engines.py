"""Simulated search engines against the real one, on HotpotQA-1100 dev questions.

Fidelity (ZeroSearch's requirement of a simulator): the share of documents a simulator labels
*useful* that contain a gold answer, and the share it labels *noisy* that do not; the real
engine's own top-k is measured in the same run as the reference. ``simulated:llm`` runs with
the packaged SmolLM2-135M, without the episode's gold (as in ``ask``/``eval``) and with it
(as in training, ZeroSearch's prompt with question and answer). Latency: ms per query of each
engine against the real BM25 engine, same queries, same k. Without ``--quick``, a short
``train agent`` run (2 GRPO steps) against the real engine and ``simulated:corpus`` compares
rollout time and reward (``SLEUTH_BENCH_SIM_TRAIN_STEPS=0`` skips it;
``SLEUTH_BENCH_SIM_LLM_QUESTIONS=N`` runs the LLM simulator on the first N questions only).
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from typing import Any

K = 5
LLM_DOCS = 3


def _fidelity(hits_per_question: list[tuple[Any, list[Any]]]) -> dict[str, Any]:
    from sleuth.train.simulator import contains_answer

    useful, noisy = [], []
    for question, hits in hits_per_question:
        for hit in hits:
            has = contains_answer(f"{hit.title} {hit.text}", question.answers)
            (noisy if hit.label in ("noisy", "hard_negative", "random") else useful).append(has)
    return {
        "useful_docs": len(useful),
        "useful_with_answer": round(sum(useful) / len(useful), 3) if useful else None,
        "noisy_docs": len(noisy),
        "noisy_without_answer": round(1 - sum(noisy) / len(noisy), 3) if noisy else None,
    }


def _timed(engine: Any, questions: list[Any], k: int, gold: bool = False) -> tuple[list, dict]:
    from sleuth.search.simulated import episode_gold

    out, ms = [], []
    for q in questions:
        evidence = [aliases[0] for aliases in q.gold_evidence]
        started = time.perf_counter()
        if gold:
            with episode_gold(q.question, q.answers, evidence):
                hits = engine.search(q.question, k)
        else:
            hits = engine.search(q.question, k)
        ms.append((time.perf_counter() - started) * 1000)
        out.append((q, hits))
    latency = {
        "ms_median": round(statistics.median(ms), 2),
        "ms_mean": round(statistics.mean(ms), 2),
    }
    return out, latency


def _train_compare(steps: int) -> dict[str, Any]:
    from sleuth.train.agent_grpo import AgentTrainConfig, train_agent

    out: dict[str, Any] = {}
    for label, spec in (("real", None), ("simulated:corpus p=0.5", "corpus:noise=0.5,seed=0")):
        with tempfile.TemporaryDirectory() as folder:
            config = AgentTrainConfig(
                out=folder,
                steps=steps,
                num_generations=4,
                simulate=spec,
                noise_schedule="0.3:0.6" if spec else None,
            )
            started = time.perf_counter()
            results = train_agent(config, log=lambda _: None)
            seconds = time.perf_counter() - started
        rollouts = steps * config.num_generations * config.questions_per_step
        out[label] = {
            "steps": results["steps"],
            "seconds": round(seconds, 1),
            "rollouts_per_s": round(rollouts / seconds, 3),
            "reward_per_step": results["reward_per_step"],
        }
    return out


def run(quick: bool = False) -> dict[str, Any]:
    from sleuth.evaluate.benchmarks import load_benchmark
    from sleuth.llm import load_llm
    from sleuth.search import open_index
    from sleuth.search.bundled import bundled_index
    from sleuth.search.simulated import CorpusSimulator
    from sleuth.search.simulated.llm import LLMSimulator
    from sleuth.search.simulated.spec import gold_ids_of

    n = 10 if quick else 30
    n_llm = int(os.environ.get("SLEUTH_BENCH_SIM_LLM_QUESTIONS", "5" if quick else "30"))
    questions = load_benchmark("hotpotqa-1100:dev", limit=n).questions
    real = open_index(bundled_index("hotpotqa-1100"))
    all_gold = gold_ids_of(load_benchmark("hotpotqa-1100").questions)
    real.search("warm up", K)
    results: dict[str, Any] = {"questions": n, "k": K, "engines": {}}

    real_hits, real_latency = _timed(real, questions, K)
    real_hits = [(q, [h for h in hits]) for q, hits in real_hits]  # all labelled "" -> useful
    results["engines"]["real bm25"] = {**_fidelity(real_hits), **real_latency}
    print("real bm25", results["engines"]["real bm25"], file=sys.stderr, flush=True)

    corpus = CorpusSimulator(real, noise=0.5, seed=0, gold_ids=all_gold)
    hits, latency = _timed(corpus, questions, K)
    results["engines"]["simulated:corpus p=0.5"] = {**_fidelity(hits), **latency}
    print("corpus", results["engines"]["simulated:corpus p=0.5"], file=sys.stderr, flush=True)

    llm = load_llm()
    simulator = LLMSimulator(llm, noise=0.5, seed=0, max_tokens=48, owns_llm=False)
    try:
        llm_questions = questions[:n_llm]
        simulator.search("warm up", 1)
        for label, gold in (("no gold", False), ("with question+answer", True)):
            hits, latency = _timed(simulator, llm_questions, LLM_DOCS, gold=gold)
            results["engines"][f"simulated:llm p=0.5 ({label})"] = {
                **_fidelity(hits),
                **latency,
                "k": LLM_DOCS,
                "questions": len(llm_questions),
                "max_tokens": 48,
                "example": {
                    "query": hits[0][0].question,
                    "docs": [{"label": h.label, "text": h.text[:200]} for h in hits[0][1]],
                },
            }
            print(
                label,
                results["engines"][f"simulated:llm p=0.5 ({label})"],
                file=sys.stderr,
                flush=True,
            )
    finally:
        simulator.close()
    train_steps = int(os.environ.get("SLEUTH_BENCH_SIM_TRAIN_STEPS", "0" if quick else "2"))
    if train_steps:  # minutes per step on a loaded CPU: 0 skips it
        results[f"train_agent_{train_steps}_steps"] = _train_compare(train_steps)
    real_ms = results["engines"]["real bm25"]["ms_median"]
    results["summary"] = [
        {
            "metric": f"{name}: useful docs with answer / noisy without",
            "value": f"{e['useful_with_answer']} / {e['noisy_without_answer']}",
        }
        for name, e in results["engines"].items()
    ] + [
        {"metric": f"{name}: median ms/query (real bm25 {real_ms})", "value": e["ms_median"]}
        for name, e in results["engines"].items()
        if name != "real bm25"
    ]
    return results
