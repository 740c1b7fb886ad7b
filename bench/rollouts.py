"""GRPO rollouts: a group of 8 agent episodes generated together (batched, left-padded, per-row
stops) against the same episodes generated one at a time, on the policy model (transformers).

The same questions, model, engine and sampling settings in the same run; the figure is the
ratio of rollout seconds per step (target >= 3x).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any


def _rollout_seconds(generate: Any, tokenizer: Any, engine: Any, questions: list[str]) -> tuple:
    from sleuth.train.episode import training_episode
    from sleuth.train.rollout import run_episodes

    config = training_episode(temperature=1.0)
    started = time.perf_counter()
    rollouts = asyncio.run(
        run_episodes(questions, generate, tokenizer, engine, config, concurrency=len(questions))
    )
    seconds = time.perf_counter() - started
    tokens = sum(sum(r.stream.mask) for r in rollouts)
    return seconds, tokens


def run(quick: bool = False) -> dict[str, Any]:
    from sleuth.evaluate.benchmarks import load_benchmark
    from sleuth.search import open_index
    from sleuth.search.bundled import bundled_index
    from sleuth.train.batched_generate import BatchedGenerator
    from sleuth.train.policy_model import load_trainable
    from sleuth.train.rollout import ModelGenerator

    model, tokenizer, name = load_trainable(None)
    engine = open_index(bundled_index("hotpotqa-1100"))
    question = load_benchmark("hotpotqa-1100:train", limit=1).questions[0].question
    group = [question] * 8  # one GRPO group: the same question, 8 sampled episodes
    steps = 1 if quick else 2
    sequential, batched = [], []
    for _ in range(steps):
        sequential.append(
            _rollout_seconds(ModelGenerator(model, tokenizer), tokenizer, engine, group)
        )
        batcher = BatchedGenerator(model, tokenizer, max_batch=8)
        batched.append(_rollout_seconds(batcher, tokenizer, engine, group))
    seq_s = sum(s for s, _ in sequential) / steps
    bat_s = sum(s for s, _ in batched) / steps
    ratio = seq_s / bat_s
    return {
        "model": name,
        "group_size": 8,
        "steps": steps,
        "sequential": {
            "seconds_per_step": round(seq_s, 1),
            "model_tokens": [t for _, t in sequential],
        },
        "batched": {
            "seconds_per_step": round(bat_s, 1),
            "model_tokens": [t for _, t in batched],
            "batch_sizes": batcher.batch_sizes,
        },
        "summary": [
            {
                "metric": "rollout s/step at group 8: sequential / batched (target >= 3)",
                "value": round(ratio, 2),
                "pass": ratio >= 3,
            }
        ],
    }
