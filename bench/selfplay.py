"""A CPU smoke run of ``sleuth train selfplay`` with measured curves.

Settings sized for a shared 2-core machine and < 8 GB RSS: the packaged SmolLM2-135M, the
bundled HotpotQA BM25 index (the real engine, not a simulator), 1 seed topic x 2 proposals and
2 solver episodes per verified question a step, 1 hop, 32 tokens per turn, top 2 hits x 150
characters. ``SLEUTH_BENCH_SELFPLAY_STEPS`` sets the steps (default 20; ``--quick``: 2).

``python -m bench.selfplay --from-run DIR`` writes ``bench/results/selfplay.json`` from a run
folder made with the same settings by the CLI (complete, or still running: the per-step log is
read as it stands and the JSON says how many steps it holds).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

SETTINGS: dict[str, Any] = {
    "proposals_per_step": 1,
    "num_generations": 2,
    "hops": 1,
    "max_new_tokens": 32,
    "question_tokens": 32,
    "max_turns": 2,
    "max_searches": 1,
    "top_k": 2,
    "doc_chars": 150,
    "learning_rate": 5e-6,
    "save_steps": 5,
}
CLI = (
    "sleuth train selfplay --out runs/selfplay-smoke --steps 20 --proposals-per-step 1 "
    "--num-generations 2 --hops 1 --max-new-tokens 32 --question-tokens 32 --max-turns 2 "
    "--max-searches 1 --top-k 2 --doc-chars 150 --learning-rate 5e-6 --save-steps 5"
)


def from_run(folder: Path) -> dict[str, Any]:
    """The run's measured curves from its folder (``results.json`` if it finished)."""
    import json

    from sleuth.train.runlog import read_log
    from sleuth.train.selfplay_grpo import summarise_selfplay

    finished = folder / "results.json"
    if finished.is_file():
        results = json.loads(finished.read_text(encoding="utf-8"))
        results["finished"] = True
    else:
        results = summarise_selfplay(read_log(folder / "train_log.jsonl"))
        results["finished"] = False
    results["command"] = CLI
    results["engine"] = "real: bundled HotpotQA-1100 BM25 index"
    results["summary"] = [
        {"metric": "steps", "value": results["steps"]},
        {"metric": "acceptance rate (all proposals)", "value": results["acceptance_rate"]},
        {"metric": "solver accuracy (mean over steps)", "value": results["solver_accuracy_mean"]},
        {
            "metric": "proposer groups with a reward spread",
            "value": results["proposer_groups_with_reward_spread"],
        },
    ]
    return results


def run(quick: bool = False) -> dict[str, Any]:
    from sleuth.train.selfplay_grpo import SelfPlayTrainConfig, train_selfplay

    steps = int(os.environ.get("SLEUTH_BENCH_SELFPLAY_STEPS", "2" if quick else "20"))
    with tempfile.TemporaryDirectory() as folder:
        config = SelfPlayTrainConfig.from_dict({"out": folder, "steps": steps, **SETTINGS})
        train_selfplay(config, log=print)
        return from_run(Path(folder))


if __name__ == "__main__":
    import json
    import sys

    from sleuth.jsonio import write_json_atomic

    if "--from-run" in sys.argv:
        result = from_run(Path(sys.argv[sys.argv.index("--from-run") + 1]))
    else:
        result = run(quick="--quick" in sys.argv)
    write_json_atomic(Path(__file__).parent / "results" / "selfplay.json", result)
    print(json.dumps({k: v for k, v in result.items() if k != "config"}, indent=2))
