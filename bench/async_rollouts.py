"""Asynchronous rollouts against synchronous ones at the same wall-clock budget (issue 32).

The same tiny ``train agent`` run (packaged SmolLM2-135M, 2 questions x 4 episodes per step,
short episodes) twice, each stopped by ``--max-minutes``: synchronous (the trainer generates its
groups, then updates) and ``--async-rollouts --max-staleness 1`` (a producer thread generates
the next step's groups with a snapshot while the trainer updates). Reported per mode: steps
done, trajectories generated / consumed / dropped, reward per step, the seconds the trainer
waited for its rollouts and the seconds spent generating. Torch runs one intra-op thread in
both modes, so the asynchronous run can put its two threads on two cores where the synchronous
one uses one; on a 2-core machine shared with other jobs both compete for the same cores.
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path
from typing import Any

SETTINGS = {
    "limit": 8,
    "steps": 6,
    "questions_per_step": 2,
    "num_generations": 4,
    "concurrency": 8,
    "save_steps": 100,  # no checkpoint writes inside the budget
    "max_turns": 2,
    "max_new_tokens": 32,
    "top_k": 2,
    "doc_chars": 150,
}


def _one(mode: str, minutes: float, out: Path) -> dict[str, Any]:
    from sleuth.train.agent_grpo import AgentTrainConfig, train_agent
    from sleuth.train.runlog import read_log

    options: dict[str, Any] = {**SETTINGS, "out": str(out), "max_minutes": minutes}
    if mode == "async":
        options.update(async_rollouts=True, max_staleness=1)
    config = AgentTrainConfig.from_dict(options)
    started = time.perf_counter()
    results = train_agent(config, log=lambda _: None)
    wall = time.perf_counter() - started
    log = [r for r in read_log(out / "train_log.jsonl") if "reward" in r]
    per_step = SETTINGS["questions_per_step"] * SETTINGS["num_generations"]
    consumed = len(log) * per_step
    record: dict[str, Any] = {
        "steps_done": len(log),
        "wall_s": round(wall, 1),
        "train_s": results["seconds"],
        "trajectories_consumed": consumed,
        "reward_per_step": [round(r["reward"], 4) for r in log],
        "mean_reward": round(sum(r["reward"] for r in log) / len(log), 4) if log else None,
        "trainer_wait_s_per_step": [round(r.get("rollout/seconds", 0.0), 1) for r in log],
        "trainer_wait_s": round(sum(r.get("rollout/seconds", 0.0) for r in log), 1),
        "step_s_per_step": [round(r.get("step_time", 0.0), 1) for r in log],
    }
    if mode == "async":
        summary = results["async_rollouts"]
        generated = summary["groups_generated"] * SETTINGS["num_generations"]
        record.update(
            trajectories_generated=generated,
            trajectories_dropped=summary["groups_dropped"] * SETTINGS["num_generations"],
            generating_s=summary["producer_seconds"],
            lag_max_per_step=summary["lag_max_per_step"],
            lag_mean_per_step=summary["lag_mean_per_step"],
        )
    else:  # the trainer generates: every trajectory made is consumed, waiting is generating
        record.update(
            trajectories_generated=consumed,
            trajectories_dropped=0,
            generating_s=record["trainer_wait_s"],
        )
    return record


def run(quick: bool = False, minutes: float | None = None) -> dict[str, Any]:
    import torch

    torch.set_num_threads(1)
    budget = minutes if minutes is not None else (2.0 if quick else 5.0)
    modes: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for mode in ("sync", "async"):
            modes[mode] = _one(mode, budget, Path(tmp) / mode)
    sync, asyn = modes["sync"], modes["async"]
    speedup = asyn["steps_done"] / sync["steps_done"] if sync["steps_done"] else None
    return {
        "model": "packaged SmolLM2-135M-Instruct",
        "settings": {**SETTINGS, "max_minutes": budget, "torch_threads": 1},
        "sync": sync,
        "async_s1": asyn,
        "steps_ratio_async_over_sync": round(speedup, 2) if speedup else None,
        "summary": [
            {"metric": "steps in budget, sync", "value": sync["steps_done"]},
            {"metric": "steps in budget, async S=1", "value": asyn["steps_done"]},
            {"metric": "trainer wait s, sync", "value": sync["trainer_wait_s"]},
            {"metric": "trainer wait s, async S=1", "value": asyn["trainer_wait_s"]},
        ],
    }


if __name__ == "__main__":
    import sys

    from sleuth.jsonio import write_json_atomic

    result = run(minutes=float(sys.argv[1]) if len(sys.argv) > 1 else None)
    out = Path(__file__).resolve().parent / "results" / "async_rollouts.json"
    write_json_atomic(out, result)
    print(json.dumps(result, indent=1))
