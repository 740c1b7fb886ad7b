"""Does the faster weight format change what the agent does? int8 and fp16 against fp32.

The same agent episodes (same questions, greedy, the bundled BM25 index) on the OpenVINO backend
with fp32, fp16 (the default) and int8 weights of one model. The inference issue asks for the
int8 backend's EM / F1 / valid-action rate within the 95% interval of fp32 on 100 questions. On
the packaged model that check is empty (its agent F1 is about 0.01), so the default model here
is the primed adapter from ``make prime``, run with the prompt and budget it was primed on;
any ``--model`` works.

Usage: ``python -m bench.llm_quality [--model runs/prime/adapter] [--n 100]``; writes
``bench/results/llm_quality.json``. Not part of ``make bench`` (it needs ``make prime`` first).
"""

from __future__ import annotations

import argparse
import gc
import sys
from pathlib import Path
from typing import Any

from bench.common import REPO
from bench.llm import _episodes

BACKENDS = ("openvino-fp32", "openvino", "openvino-int8")  # reference first


def agent_config(primed: bool) -> Any:
    from sleuth.agent import AgentConfig
    from sleuth.synth.trajectories import SYNTH_CONFIG

    if primed:  # what the model saw in training: no worked example, 300 characters a hit
        return SYNTH_CONFIG
    return AgentConfig(max_turns=4, max_searches=3, max_new_tokens=64, doc_chars=300)


def compare(reference: dict[str, Any], other: dict[str, Any]) -> dict[str, Any]:
    same = sum(a == b for a, b in zip(reference["answers"], other["answers"], strict=True))
    return {
        "f1_within_reference_ci95": reference["f1_ci95"][0]
        <= other["f1"]
        <= reference["f1_ci95"][1],
        "em_within_reference_ci95": reference["em_ci95"][0]
        <= other["em"]
        <= reference["em_ci95"][1],
        "valid_action_rate_difference": round(
            other["valid_action_rate"] - reference["valid_action_rate"], 4
        ),
        "same_answer_share": round(same / len(reference["answers"]), 3),
    }


def run(model: str, n: int) -> dict[str, Any]:
    from sleuth.evaluate.benchmarks import load_benchmark
    from sleuth.llm import load_llm
    from sleuth.llm.models import is_adapter_folder
    from sleuth.search import open_index
    from sleuth.search.bundled import bundled_index

    engine = open_index(bundled_index("hotpotqa-1100"))
    questions = load_benchmark("hotpotqa-1100:test", limit=n).questions
    primed = Path(model).is_dir() and is_adapter_folder(Path(model))
    config = agent_config(primed)
    runs: dict[str, Any] = {}
    for backend in BACKENDS:
        llm = load_llm(model, backend=backend)
        _episodes(llm, engine, questions[:2], concurrent=True, config=config)  # warm-up
        runs[backend] = _episodes(llm, engine, questions, concurrent=True, config=config)
        print(backend, {k: v for k, v in runs[backend].items() if k != "answers"}, flush=True)
        del llm
        gc.collect()
    reference = runs["openvino-fp32"]
    summary = []
    for backend in BACKENDS[1:]:
        check = compare(reference, runs[backend])
        runs[backend]["versus_fp32"] = check
        summary += [
            {
                "metric": f"{backend}: agent F1 within fp32's 95% CI {reference['f1_ci95']}",
                "value": runs[backend]["f1"],
                "pass": check["f1_within_reference_ci95"],
            },
            {
                "metric": f"{backend}: agent EM within fp32's 95% CI {reference['em_ci95']}",
                "value": runs[backend]["em"],
                "pass": check["em_within_reference_ci95"],
            },
            {
                "metric": f"{backend}: valid-action rate minus fp32's",
                "value": check["valid_action_rate_difference"],
                "pass": check["valid_action_rate_difference"] >= -0.01,
            },
            {
                "metric": f"{backend}: same final answer as fp32 (share of questions)",
                "value": check["same_answer_share"],
                "pass": None,
            },
        ]
    return {
        "model": model,
        "questions": n,
        "benchmark": "hotpotqa-1100:test",
        "agent_config": {"prompt_example": config.prompt_example, "doc_chars": config.doc_chars},
        "runs": runs,
        "summary": summary,
    }


if __name__ == "__main__":
    from bench.run_all import RESULTS_DIR
    from sleuth.jsonio import write_json_atomic

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default=str(REPO / "runs" / "prime" / "adapter"))
    parser.add_argument("--n", type=int, default=100)
    args = parser.parse_args(sys.argv[1:])
    if args.model == parser.get_default("model") and not Path(args.model).is_dir():
        sys.exit(f"{args.model}: no such adapter (run `make prime` first, or pass --model)")
    output = run(args.model, args.n)
    write_json_atomic(RESULTS_DIR / "llm_quality.json", output)
    for row in output["summary"]:
        print(row)
