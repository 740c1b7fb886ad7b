"""One table, same questions: closed_book / rag / agent on HotpotQA-1100 test questions over
the bundled 10,785-paragraph corpus, for each model configuration, split by question type.

Each configuration is a plain ``sleuth eval run`` (resumable: re-running continues where a run
stopped), so every figure here can be reproduced from the command line. Columns: valid-action
rate (model turns that were a well-formed, enabled action), searches per question, evidence
recall, EM, F1, cover-EM, seconds per episode (wall time of one episode while ``--concurrency``
episodes share the machine).

Usage: ``python -m bench.agent_table [--n 200] [--configs packaged,constraint,grpo]
[--grpo-model DIR] [--primed-model DIR] [--primed-config NAME=DIR] [--methods-of
NAME=closed_book+rag+agent+agent_rag]`` (``make bench`` runs the quick size through
``bench.run_all``).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench.common import REPO

RUNS = REPO / "runs" / "agent_table"
METHODS = "closed_book,rag,agent"
# What each configuration changes relative to the defaults of `sleuth eval run`.
CONFIGS: dict[str, list[str]] = {
    # The packaged model as it was before the agent issue: free text, no worked example,
    # allowed to answer at once.
    "packaged": ["--no-constrain", "--no-prompt-example", "--min-searches", "0"],
    # Today's defaults: action grammar, worked examples, one search before answering.
    "constraint": [],
}
COLUMNS = ("n", "valid", "searches", "recall", "em", "f1", "cover_em", "s_per_episode")


def question_types(n: int) -> dict[str, str]:
    """bridge / comparison for the first ``n`` test questions (the order eval uses)."""
    from sleuth.evaluate.benchmarks import load_benchmark

    bench = load_benchmark("hotpotqa-1100:test", limit=n)
    return {q.id: q.metadata["type"] for q in bench.questions}


def summarise(records: list[dict[str, Any]]) -> dict[str, float]:
    if not records:
        return {"n": 0}
    n = len(records)
    turns = sum(r["turns"] for r in records)
    invalid = sum(r["invalid_actions"] for r in records)

    def mean(key: str) -> float:
        values = [float(r[key] or 0.0) for r in records]
        return round(sum(values) / n, 3)

    return {
        "n": n,
        "valid": round(1 - invalid / turns, 3) if turns else 1.0,
        "searches": mean("searches"),
        "recall": mean("evidence_recall"),
        "em": mean("em"),
        "f1": mean("f1"),
        "cover_em": mean("cover_em"),
        "s_per_episode": mean("seconds"),
    }


def run_config(
    name: str, extra: list[str], n: int, concurrency: int, methods: str = METHODS
) -> dict[str, Any]:
    from sleuth.evaluate.records import ResultLog
    from sleuth.search.bundled import bundled_index

    out = RUNS / name
    command = [
        sys.executable,
        "-m",
        "sleuth.cli",
        "eval",
        "run",
        "--out",
        str(out),
        "--benchmark",
        "hotpotqa-1100:test",
        "-n",
        str(n),
        "--methods",
        methods,
        "--index",
        str(bundled_index("hotpotqa-1100")),
        "--concurrency",
        str(concurrency),
        "--no-report",
        *extra,
    ]
    started = time.perf_counter()
    subprocess.run(command, check=True, cwd=REPO)
    records = ResultLog(out / "results.jsonl").read()  # one record per episode (retries)
    types = question_types(n)
    table: dict[str, dict[str, Any]] = {}
    for method in methods.split(","):
        mine = [r for r in records if r["method"] == method and r["question_id"] in types]
        table[method] = {
            "all": summarise(mine),
            "bridge": summarise([r for r in mine if types[r["question_id"]] == "bridge"]),
            "comparison": summarise([r for r in mine if types[r["question_id"]] == "comparison"]),
        }
    return {
        "args": extra,
        "questions": n,
        "seconds": round(time.perf_counter() - started, 1),
        "table": table,
    }


def markdown(results: dict[str, Any]) -> str:
    header = "| config | method | split | " + " | ".join(COLUMNS) + " |"
    lines = [header, "|" + "---|" * (len(COLUMNS) + 3)]
    for config, result in results["configs"].items():
        if "table" not in result:
            lines.append(f"| {config} | – | – | {result.get('skipped', '')} |")
            continue
        for method, splits in result["table"].items():
            config_label = f"{config} ({result['questions']} q)"
            for split, row in splits.items():
                cells = " | ".join(str(row.get(c, "")) for c in COLUMNS)
                lines.append(f"| {config_label} | {method} | {split} | {cells} |")
    return "\n".join(lines)


def targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    """The agent issue's targets, checked for every agent method of every configuration."""
    rows = []
    for config, result in results["configs"].items():
        table = result.get("table") or {}
        if "rag" not in table:
            continue
        rag = table["rag"]
        for method in [m for m in ("agent", "agent_rag") if m in table]:
            agent = table[method]
            rows += [
                {
                    "metric": f"{config}: {method} valid-action rate (target >= 0.99)",
                    "value": agent["all"]["valid"],
                    "pass": agent["all"]["valid"] >= 0.99,
                },
                {
                    "metric": f"{config}: {method} searches per question (target >= 1.5)",
                    "value": agent["all"]["searches"],
                    "pass": agent["all"]["searches"] >= 1.5,
                },
            ]
            for split in ("all", "bridge"):
                for key in ("f1", "recall"):
                    rows.append(
                        {
                            "metric": f"{config}: {method} {key} vs rag, {split} "
                            "(target: agent higher)",
                            "value": f"{agent[split][key]} vs {rag[split][key]}",
                            "pass": agent[split][key] > rag[split][key],
                        }
                    )
    return rows


def run(quick: bool, argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=30 if quick else 200)
    parser.add_argument("--configs", default="packaged,constraint,primed,grpo,primed+grpo")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--primed-model", help="adapter/model folder from `make prime`")
    parser.add_argument("--grpo-model", help="checkpoint folder from `sleuth train agent`")
    parser.add_argument(
        "--primed-grpo-model", help="checkpoint of `sleuth train agent --model <primed>`"
    )
    parser.add_argument("--qwen", action="store_true", help="also qwen2.5-coder-0.5b")
    parser.add_argument(
        "--primed-config",
        action="append",
        default=[],
        help="NAME=DIR: one more primed model (run with the prompt it was primed on); repeat",
    )
    parser.add_argument(
        "--questions-of", default="", help="fewer questions for some configs: NAME=N,..."
    )
    parser.add_argument(
        "--methods-of", default="", help="fewer methods for some configs: NAME=m1+m2,..."
    )
    args = parser.parse_args(argv or [])
    configs = dict(CONFIGS)
    # A primed model runs with the prompt it was primed on (sleuth synth trajectories).
    if args.primed_model:
        configs["primed"] = ["--model", args.primed_model, "--no-prompt-example"]
    if args.grpo_model:
        configs["grpo"] = ["--model", args.grpo_model]
    if args.primed_grpo_model:
        configs["primed+grpo"] = ["--model", args.primed_grpo_model, "--no-prompt-example"]
    for item in args.primed_config:
        name, _, folder = item.partition("=")
        configs[name.strip()] = ["--model", folder.strip(), "--no-prompt-example"]
    if args.qwen:
        configs["qwen-0.5b"] = ["--model", "qwen2.5-coder-0.5b"]
    results: dict[str, Any] = {"questions": args.n, "benchmark": "hotpotqa-1100:test"}
    # Configurations not run this time keep the figures of their last run.
    previous = {k: v for k, v in _previous_configs().items() if "table" in v}
    order = list(dict.fromkeys([*args.configs.split(","), *previous]))
    results["configs"] = {name: previous[name] for name in order if name in previous}
    for name in args.configs.split(","):
        if name in previous and name not in configs:
            continue
        if name not in configs:
            reason = f"not run: no --{name}-model given"
            results["configs"][name] = {"skipped": reason}
            continue
        n = int(_overrides(args.questions_of).get(name, args.n))
        methods = _overrides(args.methods_of).get(name, METHODS).replace("+", ",")
        results["configs"][name] = run_config(name, configs[name], n, args.concurrency, methods)
    results["summary"] = targets(results)
    results["markdown"] = markdown(results)
    return results


def _previous_configs() -> dict[str, Any]:
    from bench.run_all import RESULTS_DIR

    path = RESULTS_DIR / "agent_table.json"
    return json.loads(path.read_text()).get("configs", {}) if path.is_file() else {}


def _overrides(text: str) -> dict[str, str]:
    pairs = (item.split("=", 1) for item in text.split(",") if "=" in item)
    return {name.strip(): value.strip() for name, value in pairs}


if __name__ == "__main__":
    from bench.run_all import RESULTS_DIR
    from sleuth.jsonio import write_json_atomic

    output = run(quick=False, argv=sys.argv[1:])
    write_json_atomic(RESULTS_DIR / "agent_table.json", output)
    print(output["markdown"])
    Path(RESULTS_DIR / "agent_table.md").write_text(output["markdown"] + "\n")
