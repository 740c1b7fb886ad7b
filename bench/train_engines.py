"""``train agent`` against the real engine and each simulator: rollout speed and reward.

Same questions (the first ``QUESTIONS`` of HotpotQA-1100 train, drawn in the same order under
the same seed), same model (the packaged SmolLM2-135M, reloaded fresh per engine), same small
settings; only ``--simulate`` differs:

- ``real``: the bundled BM25 index;
- ``simulated:corpus``: real hits mixed with hard negatives and random passages (p = 0.3);
- ``simulated:llm``: the packaged model writes ``k = 2`` documents per query (p = 0.3), without
  the episode's gold (``train agent`` does not set it).

Measured per engine: seconds spent in rollouts (the agent episodes, searches included) and in
the whole step (rollouts + the GRPO update), episodes per rollout second, searches per episode,
the mean reward per step, and the process's peak RSS so far. The machine is shared and this
process runs at nice 19, so wall-clock rates swing with the other jobs' load; CPU seconds of
this process (all its threads) per episode are the comparable cost. Environment:
``SLEUTH_BENCH_TRAIN_ENGINE_STEPS`` (default 3; ``--quick``: 1).
"""

from __future__ import annotations

import os
import resource
import tempfile
import time
from pathlib import Path
from typing import Any

QUESTIONS = 3
ENGINES = (
    ("real", None),
    ("simulated:corpus p=0.3", "corpus:noise=0.3,seed=0"),
    ("simulated:llm p=0.3 k=2", "llm:noise=0.3,k=2,max_tokens=48,seed=0"),
)


class TimedRollout:
    """Wraps the trainer's rollout function: seconds and episodes per call."""

    def __init__(self, inner: Any) -> None:
        self.inner, self.seconds, self.episodes, self.searches = inner, [], 0, 0
        self.cpu_seconds = 0.0

    def __call__(self, prompts: list[Any], trainer: Any) -> dict[str, Any]:
        started, cpu = time.perf_counter(), time.process_time()
        output = self.inner(prompts, trainer)
        self.seconds.append(time.perf_counter() - started)
        self.cpu_seconds += time.process_time() - cpu
        self.episodes += len(self.inner.last)
        self.searches += sum(len(r.trajectory.searches) for r in self.inner.last)
        return output


def _one_engine(spec: str | None, steps: int) -> dict[str, Any]:
    from sleuth.search.factory import open_engine
    from sleuth.train.agent_grpo import AgentTrainConfig, build_trainer
    from sleuth.train.episode import training_episode
    from sleuth.train.policy_model import load_trainable
    from sleuth.train.runlog import read_log
    from sleuth.train.simulator_callback import attach_noise_schedule, simulate_for_training

    with tempfile.TemporaryDirectory() as folder:
        config = AgentTrainConfig(
            out=folder,
            limit=QUESTIONS,
            steps=steps,
            questions_per_step=1,
            num_generations=2,
            episode=training_episode(
                max_turns=2, max_searches=1, max_new_tokens=32, top_k=2, doc_chars=150
            ),
            save_steps=10_000,  # no checkpoint: the bench measures rollouts and updates only
            simulate=spec,
        )
        engine = simulate_for_training(open_engine().engine, config)
        model, tokenizer, _ = load_trainable(None)
        trainer = build_trainer(config, engine, model, tokenizer)
        attach_noise_schedule(trainer, engine, config)
        timed = TimedRollout(trainer.rollout_func)
        trainer.rollout_func = timed
        started, cpu = time.perf_counter(), time.process_time()
        trainer.train()
        seconds, cpu_total = time.perf_counter() - started, time.process_time() - cpu
        log = read_log(Path(trainer.args.output_dir) / "train_log.jsonl")
        history = [r for r in log if "reward" in r]
    rollout_s = sum(timed.seconds)
    return {
        "steps": len(history),
        "episodes": timed.episodes,
        "seconds_total": round(seconds, 1),
        "seconds_in_rollouts": round(rollout_s, 1),
        "episodes_per_rollout_s": round(timed.episodes / rollout_s, 3) if rollout_s else None,
        "cpu_seconds_total": round(cpu_total, 1),
        "cpu_seconds_in_rollouts": round(timed.cpu_seconds, 1),
        "cpu_seconds_per_episode": round(timed.cpu_seconds / timed.episodes, 2)
        if timed.episodes
        else None,
        "steps_per_minute": round(60 * len(history) / seconds, 3) if seconds else None,
        "searches_per_episode": round(timed.searches / timed.episodes, 2) if timed.episodes else 0,
        "reward_per_step": [round(r["reward"], 3) for r in history],
        "reward_mean": round(sum(r["reward"] for r in history) / len(history), 3)
        if history
        else None,
        "peak_rss_mb_so_far": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
    }


def run(quick: bool = False, on_engine: Any = None) -> dict[str, Any]:
    """All engines in turn; ``on_engine(results)`` after each (the CLI saves partial results)."""
    steps = int(os.environ.get("SLEUTH_BENCH_TRAIN_ENGINE_STEPS", "1" if quick else "3"))
    results: dict[str, Any] = {
        "model": "packaged SmolLM2-135M-Instruct",
        "questions": f"hotpotqa-1100:train, first {QUESTIONS}",
        "settings": "1 question x 2 episodes per step, 2 turns, 1 search, 32 tokens/turn, top 2 "
        "hits x 150 chars, CPU, nice 19 on a shared machine",
        "engines": {},
    }
    for label, spec in ENGINES:
        results["engines"][label] = _one_engine(spec, steps)
        if on_engine:
            on_engine(results)
    real = results["engines"]["real"]["cpu_seconds_per_episode"]
    results["summary"] = [
        {
            "metric": f"{label}: CPU s per rollout episode (x real)",
            "value": f"{r['cpu_seconds_per_episode']} ({r['cpu_seconds_per_episode'] / real:.2f}x)"
            if real and r["cpu_seconds_per_episode"]
            else r["cpu_seconds_per_episode"],
        }
        for label, r in results["engines"].items()
    ] + [
        {"metric": f"{label}: mean reward", "value": r["reward_mean"]}
        for label, r in results["engines"].items()
    ]
    return results


def rollouts_only(episodes_per_question: int = 2) -> dict[str, Any]:
    """``train agent``'s rollout function alone (no update) on each engine: the part of a step
    that the engine changes. Same weights for all engines, sampling seeded alike; the reward
    is ``train agent``'s default mix from each trajectory."""
    import torch

    from sleuth.search.factory import open_engine
    from sleuth.train.agent_grpo import (
        DEFAULT_REWARD,
        AgentTrainConfig,
        build_dataset,
        make_reward_function,
    )
    from sleuth.train.batched_generate import BatchedGenerator
    from sleuth.train.episode import training_episode
    from sleuth.train.policy_model import load_trainable
    from sleuth.train.rollout import AgentRolloutFunc
    from sleuth.train.simulator_callback import simulate_for_training

    model, tokenizer, _ = load_trainable(None)
    generate = BatchedGenerator(model, tokenizer, max_batch=8)
    reward = make_reward_function(DEFAULT_REWARD)
    out: dict[str, Any] = {}
    for label, spec in ENGINES:
        config = AgentTrainConfig(
            out="unused", limit=QUESTIONS, simulate=spec,
            episode=training_episode(
                max_turns=2, max_searches=1, max_new_tokens=32, top_k=2, doc_chars=150
            ),
        )  # fmt: skip
        rows = build_dataset(config).to_list()
        rows = [row for row in rows for _ in range(episodes_per_question)]
        engine = simulate_for_training(open_engine().engine, config)
        rollout = AgentRolloutFunc(engine, tokenizer, config.agent_config(), 8, generate=generate)
        torch.manual_seed(0)
        started, cpu = time.perf_counter(), time.process_time()
        output = rollout([row["prompt"] for row in rows], trainer=None)
        seconds, cpu_s = time.perf_counter() - started, time.process_time() - cpu
        rewards = reward(
            None, None, output["trajectory"],
            [row["answers"] for row in rows], [row["evidence_ids"] for row in rows],
        )  # fmt: skip
        episodes = len(rows)
        out[label] = {
            "episodes": episodes,
            "seconds": round(seconds, 1),
            "episodes_per_s": round(episodes / seconds, 3),
            "cpu_seconds_per_episode": round(cpu_s / episodes, 2),
            "searches_per_episode": round(
                sum(len(r.trajectory.searches) for r in rollout.last) / episodes, 2
            ),
            "reward_mean": round(sum(rewards) / episodes, 3),
            "answered": sum(r.trajectory.answer is not None for r in rollout.last),
            "peak_rss_mb_so_far": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        }
        print(label, out[label], flush=True)
    return out


if __name__ == "__main__":
    import json
    import sys

    from sleuth.jsonio import write_json_atomic

    target = Path(__file__).parent / "results" / "train_engines.json"
    if "--rollouts-only" in sys.argv:
        rollout_results = {"rollouts_only": rollouts_only()}
        write_json_atomic(target.with_name("train_engines_rollouts.json"), rollout_results)
        print(json.dumps(rollout_results, indent=2))
        sys.exit(0)
    result = run(quick="--quick" in sys.argv, on_engine=lambda r: write_json_atomic(target, r))
    write_json_atomic(target, result)
    print(json.dumps(result, indent=2))
