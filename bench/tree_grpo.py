"""Tree rollouts against chain rollouts over a real GRPO run (issue 32, Tree-GRPO).

Two ``sleuth train agent`` runs of the primed 135M (``smollm2-135m-primed``) with the settings it
was primed with, side by side from the same seed, one torch thread each so the two share the 2
cores alike: chains of G = 4 episodes a question, and trees of G = 8 leaves grown from M = 2
roots (shared turns generated once). Tree-GRPO's claim is more trajectories for the same
generation budget; the report puts the two side by side per step: episodes, model calls and
tokens generated (a tree's shared turns once), episodes per 1,000 generated tokens, the share of
groups whose rewards differ (the groups GRPO learns from), reward and evidence recall by thirds
of the run, and seconds per step. A curve of reward per step goes to
``docs/img/tree_grpo_curve.png``.

Run (about 45 minutes on 2 idle cores):
``python -m bench.tree_grpo --out runs/tree-grpo --steps 30``; the run folders resume if
stopped. ``--summarise`` reads existing folders without training.
Results: ``bench/results/tree_grpo.json``.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from bench.common import REPO

MODEL = "smollm2-135m-primed"
# The settings of the 30-step primed GRPO run in docs/training.md (the prompt it was primed on).
SHARED = [
    "--model", MODEL, "--learning-rate", "1e-5", "--max-turns", "4", "--max-searches", "3",
    "--max-new-tokens", "48", "--top-k", "3", "--doc-chars", "300",
    "--actions", "search,open,answer", "--no-prompt-example", "--seed", "0",
]  # fmt: skip
MODES = {
    "chain": ["--num-generations", "4"],
    "tree": ["--num-generations", "8", "--rollouts", "tree", "--tree-roots", "2"],
}
RESULTS = REPO / "bench" / "results" / "tree_grpo.json"
CURVE = REPO / "docs" / "img" / "tree_grpo_curve.png"


def command(mode: str, out: Path, steps: int, minutes: float) -> list[str]:
    sleuth = Path(sys.executable).with_name("sleuth")
    return [
        str(sleuth), "train", "agent", "--out", str(out / mode), "--steps", str(steps),
        "--max-minutes", str(minutes), *SHARED, *MODES[mode],
    ]  # fmt: skip


def train_both(out: Path, steps: int, minutes: float) -> None:
    """Both runs at once, one torch thread each, logs beside the run folders."""
    out.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    running = []
    for mode in MODES:
        log = (out / f"{mode}.log").open("a")
        argv = command(mode, out, steps, minutes)
        running.append((mode, subprocess.Popen(argv, stdout=log, stderr=log, env=env)))
    for mode, process in running:
        if process.wait() != 0:
            raise SystemExit(f"{mode} run failed: see {out / f'{mode}.log'}")


def thirds(values: list[float]) -> list[float | None]:
    """Means over the first, middle and last third of the steps."""
    n = len(values)
    cuts = [0, n // 3, 2 * n // 3, n]
    return [
        round(sum(values[a:b]) / (b - a), 4) if b > a else None for a, b in itertools.pairwise(cuts)
    ]


def summarise_mode(folder: Path) -> dict[str, Any]:
    results = json.loads((folder / "results.json").read_text())
    rollouts = results["rollouts"]
    rewards = results["reward_per_step"]
    recall = [r or 0.0 for r in results["evidence_recall_per_step"]]
    tokens = rollouts["generated_tokens_per_step"]
    episodes = rollouts["episodes_per_step"]
    return {
        "steps": results["steps"],
        "seconds": results.get("seconds"),
        "seconds_per_step": round(results["seconds"] / results["steps"], 1)
        if results.get("seconds") and results["steps"]
        else None,
        "rollout_mode": rollouts["mode"],
        "mean_episodes_per_step": rollouts["mean_episodes"],
        "mean_generate_calls_per_step": rollouts["mean_generate_calls"],
        "mean_generated_tokens_per_step": rollouts["mean_generated_tokens"],
        "mean_trained_tokens_per_step": rollouts["mean_trained_tokens"],
        "mean_shared_token_share": rollouts["mean_shared_token_share"],
        "episodes_per_1k_generated_tokens": round(1000 * sum(episodes) / sum(tokens), 2)
        if sum(tokens)
        else None,
        "groups_with_reward_spread": results["groups_with_reward_spread"],
        "reward_by_thirds": thirds(rewards),
        "evidence_recall_by_thirds": thirds(recall),
        "reward_per_step": [round(r, 4) for r in rewards],
        "generated_tokens_per_step": tokens,
        "episodes_per_step": episodes,
    }


def curve(modes: dict[str, dict[str, Any]]) -> bytes:
    from sleuth.train.curves import mean, png

    def draw(axes: Any) -> None:
        for mode, record in modes.items():
            values = record["reward_per_step"]
            steps = list(range(1, len(values) + 1))
            line = axes.plot(steps, values, alpha=0.3, label=f"{mode}: reward per step")[0]
            window = 5
            smooth = [mean(values[max(0, i - window + 1) : i + 1]) for i in range(len(values))]
            axes.plot(steps, smooth, color=line.get_color(), label=f"{mode}: 5-step mean")

    return png(draw, "GRPO on the primed 135M: chain (G=4) vs tree (G=8, M=2) rollouts")


def summarise(out: Path) -> dict[str, Any]:
    modes = {mode: summarise_mode(out / mode) for mode in MODES}
    chain, tree = modes["chain"], modes["tree"]
    result = {
        "model": MODEL,
        "settings": {"shared": SHARED, **{mode: MODES[mode] for mode in MODES}},
        "torch_threads_each": 1,
        **modes,
        "tree_over_chain": {
            "episodes_per_step": round(
                tree["mean_episodes_per_step"] / chain["mean_episodes_per_step"], 2
            ),
            "generated_tokens_per_step": round(
                tree["mean_generated_tokens_per_step"] / chain["mean_generated_tokens_per_step"], 2
            ),
            "episodes_per_generated_token": round(
                tree["episodes_per_1k_generated_tokens"]
                / chain["episodes_per_1k_generated_tokens"],
                2,
            ),
            "seconds_per_step": round(tree["seconds_per_step"] / chain["seconds_per_step"], 2),
        },
    }
    CURVE.write_bytes(curve(modes))
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=REPO / "runs" / "tree-grpo")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--max-minutes", type=float, default=0.0, help="per run (0 = no limit)")
    parser.add_argument("--summarise", action="store_true", help="only read the run folders")
    args = parser.parse_args()
    if not args.summarise:
        train_both(args.out, args.steps, args.max_minutes)
    from sleuth.jsonio import write_json_atomic

    result = summarise(args.out)
    write_json_atomic(RESULTS, result)
    print(json.dumps({k: v for k, v in result.items() if k != "settings"}, indent=1)[:4000])
    print(f"wrote {RESULTS} and {CURVE}")


if __name__ == "__main__":
    main()
