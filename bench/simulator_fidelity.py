"""A trained search-engine simulator against the untrained model (ZeroSearch's lightweight SFT).

``sleuth train simulator`` fine-tunes the packaged SmolLM2-135M on (query, real document,
useful/noisy) pairs from HotpotQA-1100 *train* questions on the bundled index; then the
untrained and the trained model each play ``simulated:llm`` (p = 0.5, 3 documents a query, the
same seed, so the same slots are useful or noisy) on the same HotpotQA-1100 *dev* questions.
Fidelity as in ``bench/simulated_engines.py``: the share of documents written as *useful* that
contain a gold answer, and of those written as *noisy* that do not; with the question and answer
in the prompt (as in training and in ZeroSearch's RL) and without (as in ``ask``/``eval``).

    python -m bench.simulator_fidelity [--quick] [--questions N] [--model SPEC ...]

``--model`` measures existing simulators (a trained simulator's folder, or any model spec such
as ``qwen2.5-coder-0.5b`` untrained) instead of training one, each against the untrained
packaged model on the same questions in the same run.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path
from typing import Any

from bench.common import WORK
from bench.simulated_engines import _fidelity, _timed

DOCS = 3
NOISE = 0.5
MAX_TOKENS = 64


def _train(quick: bool) -> tuple[Path, dict[str, Any]]:
    from sleuth.train.simulator import train_simulator

    out = WORK / "simulator"
    shutil.rmtree(out, ignore_errors=True)
    started = time.perf_counter()
    summary = train_simulator(
        out,
        trajectories=None,
        index=None,
        benchmark="hotpotqa-1100:train",
        limit=60 if quick else 500,
        k=5,
        words=30,
        sft={
            "lora_r": 8,
            "lora_alpha": 16,
            "epochs": 1.0,
            "max_steps": 15 if quick else 0,
            "learning_rate": 3e-4,
            "grad_accum": 4,
            "max_length": 512,
            "seed": 0,
            "overwrite": True,
        },
        log=lambda line: print(line, file=sys.stderr, flush=True),
    )
    keys = ("pairs", "steps", "train_loss", "first_losses", "last_losses")
    return out, {
        **{key: summary.get(key) for key in keys},
        "seconds": round(time.perf_counter() - started, 1),
    }


def _measure(model: str | None, questions: list[Any]) -> dict[str, Any]:
    from sleuth.llm import load_llm
    from sleuth.search.simulated.llm import LLMSimulator

    simulator = LLMSimulator(
        load_llm(model), noise=NOISE, seed=0, max_tokens=MAX_TOKENS, owns_llm=True
    )
    out: dict[str, Any] = {}
    try:
        simulator.search("warm up", 1)
        for label, gold in (("with question+answer", True), ("no gold", False)):
            hits, latency = _timed(simulator, questions, DOCS, gold=gold)
            out[label] = {
                **_fidelity(hits),
                **latency,
                "example": {
                    "query": hits[0][0].question,
                    "answers": list(hits[0][0].answers),
                    "docs": [{"label": h.label, "text": h.text[:300]} for h in hits[0][1]],
                },
            }
            print(model or "packaged", label, out[label], file=sys.stderr, flush=True)
    finally:
        simulator.close()
    return out


def run(
    quick: bool = False, models: list[str] | None = None, n_questions: int | None = None
) -> dict[str, Any]:
    from sleuth.evaluate.benchmarks import load_benchmark

    limit = n_questions or (10 if quick else 100)
    questions = load_benchmark("hotpotqa-1100:dev", limit=limit).questions
    result: dict[str, Any] = {
        "questions": len(questions),
        "docs_per_query": DOCS,
        "noise": NOISE,
        "max_tokens": MAX_TOKENS,
        "simulators": {"untrained (packaged SmolLM2-135M)": _measure(None, questions)},
    }
    if not models:
        folder, training = _train(quick)
        result["training"] = training
        models = [str(folder)]
    for model in models:
        result["simulators"][Path(model).name] = _measure(model, questions)
    result["summary"] = [
        {
            "metric": f"{name}, {condition}: useful docs with answer / noisy without",
            "value": f"{m['useful_with_answer']} / {m['noisy_without_answer']}",
        }
        for name, measured in result["simulators"].items()
        for condition, m in measured.items()
    ]
    return result


if __name__ == "__main__":
    from bench.run_all import RESULTS_DIR
    from sleuth.jsonio import write_json_atomic

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--model", action="append", help="a simulator to measure (repeatable)")
    parser.add_argument("--questions", type=int, help="dev questions (default 100, quick 10)")
    parser.add_argument("--out", default=str(RESULTS_DIR / "simulator_fidelity.json"))
    args = parser.parse_args()
    result = run(args.quick, args.model, args.questions)
    write_json_atomic(Path(args.out), result)
    print(json.dumps(result["summary"], indent=1))
