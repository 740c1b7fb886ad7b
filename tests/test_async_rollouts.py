"""Asynchronous rollouts (``train agent --async-rollouts --max-staleness S``): real GRPO steps of
the packaged SmolLM2-135M through TRL, the staleness bound checked on the recorded lags, the
sampling log-probabilities checked against TRL's own, resume, and bad settings refused."""

from __future__ import annotations

import threading

import pytest
from test_cli_hardening import sleuth

from sleuth.errors import SleuthError
from sleuth.evaluate.benchmarks import load_benchmark
from sleuth.train.agent_grpo import AgentTrainConfig, build_trainer
from sleuth.train.async_rollout import AsyncRolloutFunc, QuestionStream
from sleuth.train.episode import training_episode
from sleuth.train.runlog import read_log


@pytest.fixture(scope="module")
def policy():
    from sleuth.train.policy_model import load_trainable

    return load_trainable(None)


def right_then_wrong(tokenizer, limit: int):
    """A thread-safe sampler: search the question, then answer it, right and wrong in turn (so
    every group of two has reward spread and the weights really move)."""
    questions = load_benchmark("hotpotqa-1100:train", limit=limit).questions
    lock, answers = threading.Lock(), [0]

    def generate(ids, config):
        text = tokenizer.decode(ids)
        question = next(q for q in questions if q.question in text)
        if text.rfind("<information>") < text.rfind(question.question):  # not searched yet
            out = f"<search>{question.question}</search>"
        else:
            with lock:
                right = answers[0] % 2 == 0
                answers[0] += 1
            out = f"<answer>{question.answers[0] if right else 'Atlantis'}</answer><|im_end|>"
        return tokenizer(out, add_special_tokens=False)["input_ids"]

    return generate


@pytest.mark.slow  # two GRPO steps beside a producer thread (~1.5-2.5 min on 2 cores); the
# producer, snapshot, queue and resume run by default in the S = 0 test below
def test_async_rollouts_stay_within_the_bound_and_weigh_off_policy_groups(
    policy, hotpot_bm25, tmp_path
):
    """S = 1: two steps train; no group is more than one update old and the second step's
    group (made before the first update) is exactly one; the ratio's denominator is the
    sampling snapshot's log-probability, equal to TRL's own for the current weights on a group
    of the current version and different from it on the stale group once the weights moved."""
    import torch
    from trl import GRPOTrainer

    model, tokenizer, _ = policy
    gaps: list[tuple[int, float]] = []

    class Capturing(GRPOTrainer):
        def compute_loss(self, model, inputs, *args, **kwargs):
            ids = torch.cat([inputs["prompt_ids"], inputs["completion_ids"]], 1)
            attention = torch.cat([inputs["prompt_mask"], inputs["completion_mask"]], 1)
            with torch.no_grad():
                now, _, _ = self._get_per_token_logps_and_entropies(
                    model, ids, attention, inputs["completion_ids"].size(1)
                )
            mask = inputs["completion_mask"] * inputs["tool_mask"]
            gap = ((now - inputs["old_per_token_logps"]).abs() * mask).max().item()
            gaps.append((self.state.global_step, gap))
            return super().compute_loss(model, inputs, *args, **kwargs)

    config = AgentTrainConfig(
        out=str(tmp_path / "run"), limit=2, steps=2, save_steps=10, num_generations=2,
        concurrency=2, learning_rate=1e-3, reward={"em": 1.0}, async_rollouts=True, max_staleness=1,
        episode=training_episode(top_k=2, doc_chars=150, prompt_example=False),
    )  # fmt: skip
    generate = right_then_wrong(tokenizer, limit=2)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    trainer = build_trainer(config, hotpot_bm25, model, tokenizer, generate, Capturing)
    trainer.train()

    rollout = trainer.sleuth_rollout
    assert isinstance(rollout, AsyncRolloutFunc) and not rollout.producer.is_alive()
    log = read_log(tmp_path / "run" / "train_log.jsonl")
    lags = [r["async/lag_max"] for r in log if "async/lag_max" in r]
    assert lags == [0, 1]
    assert [g.version for g in rollout.consumed] == [0, 0]
    assert all(r["async/dropped"] == 0 for r in log if "async/dropped" in r)
    assert all(r["rollout/seconds"] >= 0 and r["async/generate_s"] > 0 for r in log if "step" in r)
    # the rewards come from each group's own question: one right, one wrong, every group
    assert all(r["reward"] == pytest.approx(0.5) for r in log if "reward" in r)
    assert any(not p.detach().equal(before[n]) for n, p in model.named_parameters())
    # behaviour log-probs: TRL's own at step 0 (lag 0), off by the update at step 1 (lag 1)
    at = {step: max(g for s, g in gaps if s == step) for step, _ in gaps}
    assert at[0] < 1e-3
    assert at[1] > 1e-2
    from sleuth.train.async_rollout import async_summary

    summary = async_summary(log, rollout)
    assert summary["groups_consumed"] == 2 and summary["lag_max_per_step"] == lags
    assert summary["groups_generated"] >= 2


@pytest.mark.slow  # a training session and its resume (~1 min on 2 cores): CI's 15 minutes
def test_staleness_zero_is_synchronous_and_a_resumed_run_refills_its_queue(
    policy, hotpot_bm25, tmp_path
):
    """S = 0 with the real sampler (the snapshot's batched generation): every group is of the
    current version, no log-probabilities are needed; a second session resumes from the
    checkpoint and its producer starts at the resumed step's version and question offset."""
    from sleuth.train.checkpoints import train_resuming

    model, tokenizer, _ = policy
    settings = dict(
        out=str(tmp_path / "run"), limit=3, num_generations=2, concurrency=2,
        reward={"f1": 1.0, "format": 0.2}, async_rollouts=True, max_staleness=0,
        episode=training_episode(
            top_k=1, doc_chars=80, max_turns=2, max_new_tokens=12, prompt_example=False
        ),
    )  # fmt: skip
    first = build_trainer(AgentTrainConfig(steps=1, **settings), hotpot_bm25, model, tokenizer)
    train_resuming(first, tmp_path / "run", log=lambda _: None)
    assert [g.version for g in first.sleuth_rollout.consumed] == [0]

    second = build_trainer(AgentTrainConfig(steps=2, **settings), hotpot_bm25, model, tokenizer)
    train_resuming(second, tmp_path / "run", log=lambda _: None)
    rollout = second.sleuth_rollout
    assert rollout.producer.start_version == 1
    assert [g.version for g in rollout.consumed] == [1]
    assert all(g.logprobs is None for g in rollout.consumed)
    rows = list(rollout.rows)
    assert rollout.consumed[0].row == QuestionStream(rows, seed=0).take(2)[1]
    log = read_log(tmp_path / "run" / "train_log.jsonl")
    assert [r["async/lag_max"] for r in log if "async/lag_max" in r] == [0.0, 0.0]
    assert all(len(r.stream.completion_ids) > 0 for r in rollout.last)


def test_bad_async_settings_are_refused(tmp_path):
    with pytest.raises(SleuthError, match="--max-staleness must be 0 or more"):
        AgentTrainConfig(out="r", async_rollouts=True, max_staleness=-1)
    with pytest.raises(SleuthError, match="--rollouts tree is synchronous only"):
        AgentTrainConfig(out="r", async_rollouts=True, rollouts="tree")
    with pytest.raises(SleuthError, match="--noise-schedule"):
        AgentTrainConfig(out="r", async_rollouts=True, simulate="rules", noise_schedule="0.1:0.5")
    from sleuth.train.searcher_grpo import SearcherTrainConfig

    with pytest.raises(SleuthError, match="--max-staleness must be 0 or more"):
        SearcherTrainConfig(out="r", async_rollouts=True, max_staleness=-2)
    result = sleuth(
        "train", "agent", "--out", str(tmp_path / "r"), "--async-rollouts",
        "--max-staleness", "-1", cache=tmp_path / "cache",
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert "--max-staleness must be 0 or more updates, not -1" in result.stderr
    assert "Traceback" not in result.stderr


def test_the_question_stream_covers_every_row_each_epoch_and_resumes_in_place():
    rows = [{"prompt": str(i)} for i in range(5)]
    whole = QuestionStream(rows, seed=3).take(10)
    assert sorted(r["prompt"] for r in whole[:5]) == sorted(r["prompt"] for r in rows)
    assert sorted(r["prompt"] for r in whole[5:]) == sorted(r["prompt"] for r in rows)
    assert QuestionStream(rows, seed=3, start=4).take(6) == whole[4:]
