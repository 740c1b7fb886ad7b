"""Training: token streams and loss masks of agent rollouts, a real GRPO step through TRL,
atomic checkpoints, and kill -9 / resume of a real ``sleuth train expand`` run."""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sleuth.agent.trajectory import Trajectory
from sleuth.evaluate.benchmarks import load_benchmark
from sleuth.rewards.core import Gold, combined
from sleuth.train.agent_grpo import AgentTrainConfig, build_trainer
from sleuth.train.checkpoints import AtomicCheckpointMixin, last_checkpoint
from sleuth.train.episode import training_episode
from sleuth.train.rollout import run_episodes
from sleuth.train.runlog import read_log


@pytest.fixture(scope="module")
def policy():
    from sleuth.train.policy_model import load_trainable

    return load_trainable(None)  # the packaged SmolLM2-135M, as plain float weights


def scripted(tokenizer, outputs: list[str]):
    """A sampler replaying ``outputs`` in order (as token ids), recording what it was fed."""
    queue, seen = list(outputs), []

    def generate(ids, config):
        seen.append(list(ids))
        return tokenizer(queue.pop(0), add_special_tokens=False)["input_ids"]

    generate.seen = seen  # type: ignore[attr-defined]
    return generate


def spans(stream) -> list[tuple[int, list[int]]]:
    out: list[tuple[int, list[int]]] = []
    for token, flag in zip(stream.completion_ids, stream.mask, strict=True):
        if not out or out[-1][0] != flag:
            out.append((flag, []))
        out[-1][1].append(token)
    return out


def test_loss_mask_covers_exactly_the_environment_tokens(policy, hotpot_bm25):
    _, tokenizer, _ = policy
    outputs = [
        "<think>first the director</think><search>Scott Derrickson director</search>",
        "<search>Ed Wood filmmaker",  # cut short: the loop appends the closing tag itself
        "<answer>American</answer><|im_end|>",
    ]
    generate = scripted(tokenizer, outputs)
    config = training_episode(max_turns=4)
    question = "Were Scott Derrickson and Ed Wood of the same nationality?"
    [rollout] = asyncio.run(run_episodes([question], generate, tokenizer, hotpot_bm25, config))
    traj, stream = rollout.trajectory, rollout.stream

    assert traj.stop_reason == "answered" and traj.answer == "American"
    model_ids = [t for t, m in zip(stream.completion_ids, stream.mask, strict=True) if m]
    expected = [i for o in outputs for i in tokenizer(o, add_special_tokens=False)["input_ids"]]
    assert model_ids == expected  # every model token trained on, nothing else with mask 1

    env = [tokenizer.decode(ids) for flag, ids in spans(stream) if flag == 0]
    searches = [s for s in traj.steps if s.action == "search"]
    assert len(env) == 2 == len(searches)
    turn = "<|im_end|>\n<|im_start|>user\n<information>\n{}\n</information><|im_end|>\n"
    turn += "<|im_start|>assistant\n"
    assert env[0] == turn.format(searches[0].observation)
    assert env[1] == "</search>" + turn.format(searches[1].observation)
    for flag, ids in spans(stream):
        if flag == 1:
            assert "<information>" not in tokenizer.decode(ids)
    # the model was fed exactly the recorded stream, turn after turn
    assert (
        generate.seen[-1]
        == stream.prompt_ids
        + stream.completion_ids[
            : -len(tokenizer(outputs[-1], add_special_tokens=False)["input_ids"])
        ]
    )


def test_grpo_episodes_use_the_primed_prompt_when_asked(policy, hotpot_bm25):
    """A primed model is trained on the prompt it was primed with (search/open/answer, no
    worked example), the same text `sleuth synth trajectories` stored and SFT trained on."""
    from sleuth.agent import prompts
    from sleuth.errors import SleuthError
    from sleuth.synth.trajectories import SYNTH_CONFIG

    _, tokenizer, _ = policy
    generate = scripted(tokenizer, ["<search>Ed Wood", "<answer>American</answer><|im_end|>"])
    primed = AgentTrainConfig(
        out="unused",
        episode=training_episode(
            actions=SYNTH_CONFIG.actions, prompt_example=SYNTH_CONFIG.prompt_example
        ),
    )
    assert primed.to_dict()["actions"] == ["search", "open", "answer"]
    question = "Were Scott Derrickson and Ed Wood of the same nationality?"
    [rollout] = asyncio.run(
        run_episodes([question], generate, tokenizer, hotpot_bm25, primed.agent_config())
    )
    system = prompts.tag_system_prompt(SYNTH_CONFIG.actions, example=False)
    prompt_text = tokenizer.decode(rollout.stream.prompt_ids)
    assert system in prompt_text and "<open>" in prompt_text
    default_prompt = prompts.tag_system_prompt(("search", "answer"), example=True)
    assert default_prompt not in prompt_text
    with pytest.raises(SleuthError, match="unknown actions"):
        AgentTrainConfig(
            out="unused", episode=training_episode(actions=("search", "browse", "answer"))
        )


def test_a_grpo_step_trains_on_agent_rollouts_with_masked_observations(
    policy, hotpot_bm25, tmp_path
):
    from trl import GRPOTrainer

    model, tokenizer, _ = policy
    question = load_benchmark("hotpotqa-1100:train", limit=1).questions[0]
    right, wrong = question.answers[0], "Atlantis"
    outputs = []
    for answer in (right, wrong):  # one group: a correct and a wrong episode
        outputs += [f"<search>{question.question}</search>", f"<answer>{answer}</answer><|im_end|>"]
    generate = scripted(tokenizer, outputs)
    captured: list[dict] = []

    class Capturing(GRPOTrainer):
        def compute_loss(self, model, inputs, *args, **kwargs):
            captured.append({k: v.clone() for k, v in inputs.items() if hasattr(v, "clone")})
            return super().compute_loss(model, inputs, *args, **kwargs)

    config = AgentTrainConfig(
        out=str(tmp_path / "run"), limit=1, steps=1, num_generations=2, concurrency=1,
        learning_rate=1e-4, reward={"em": 1.0, "format": 0.5},
        episode=training_episode(top_k=2, doc_chars=150),
    )  # fmt: skip
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    trainer = build_trainer(config, hotpot_bm25, model, tokenizer, generate, Capturing)
    trainer.train()

    rollouts = trainer.sleuth_rollout.last
    assert len(rollouts) == 2 and all(r.trajectory.stop_reason == "answered" for r in rollouts)
    # one episode per forward/backward pass (micro_batch=1: the logits of a whole group of
    # long episodes x a 49k vocabulary took 13.7 GB), the loss still over the group
    assert len(captured) == 2 and all(len(c["completion_ids"]) == 1 for c in captured)
    # the loss mask TRL used is our environment mask, row for row (TRL shuffles the rows)
    gold = Gold(list(question.answers), {a[0] for a in question.gold_evidence})
    ours = [combined(r.trajectory, gold, config.reward) for r in rollouts]
    assert max(ours) > min(ours)
    matched = []
    for inputs in captured:
        row = 0
        ids = [t for t in inputs["completion_ids"][row].tolist()]
        index = next(
            i for i, r in enumerate(rollouts)
            if ids[: len(r.stream.completion_ids)] == r.stream.completion_ids
            and i not in matched
        )  # fmt: skip
        matched.append(index)
        mask = rollouts[index].stream.mask
        assert inputs["tool_mask"][row, : len(mask)].tolist() == mask
        assert 0 in mask and 1 in mask
        # group-relative advantage: above the group's mean reward is positive
        assert (inputs["advantages"][row].item() > 0) == (ours[index] > sum(ours) / 2)
    assert sorted(matched) == [0, 1]
    # rewards reach the trainer: its logged mean equals sleuth.rewards on the trajectories
    logged = next(h for h in trainer.state.log_history if "reward" in h)
    assert logged["reward"] == pytest.approx(sum(ours) / 2, abs=1e-5)
    changed = sum(not p.detach().equal(before[n]) for n, p in model.named_parameters())
    assert changed > 0
    assert (tmp_path / "run" / "checkpoint-1" / "trainer_state.json").is_file()
    assert read_log(tmp_path / "run" / "train_log.jsonl")[0]["step"] == 1
    # chains' cost, logged as a tree's is (sleuth.train.tree_advantage): nothing shared
    first = read_log(tmp_path / "run" / "train_log.jsonl")[0]
    assert first["rollout/episodes"] == 2 and first["rollout/generate_calls"] == 4
    assert first["rollout/shared_token_share"] == 0.0
    assert first["rollout/generated_tokens"] == sum(sum(r.stream.mask) for r in rollouts)
    # the run's summary: one group, and its rewards differed, so it carried signal
    from sleuth.train.agent_grpo import summarise_history

    summary = summarise_history(read_log(tmp_path / "run" / "train_log.jsonl"))
    assert summary["steps"] == 1 and summary["groups_with_reward_spread"] == 1.0
    assert summary["loss_passes_skipped"] == 0.0
    assert summary["reward_per_step"] == [pytest.approx(sum(ours) / 2, abs=1e-5)]


def test_a_step_whose_groups_have_no_reward_spread_skips_the_model(policy, hotpot_bm25, tmp_path):
    """Both episodes wrong: every advantage is 0, so the loss pass is skipped (it could only
    add zero) and the weights stay exactly as they were; the log says the pass was skipped."""
    from trl import GRPOTrainer

    model, tokenizer, _ = policy
    question = load_benchmark("hotpotqa-1100:train", limit=1).questions[0]
    outputs = [f"<search>{question.question}</search>", "<answer>Atlantis</answer><|im_end|>"] * 2
    generate = scripted(tokenizer, outputs)
    computed: list[int] = []

    class Counting(GRPOTrainer):
        def compute_loss(self, model, inputs, *args, **kwargs):
            computed.append(1)
            return super().compute_loss(model, inputs, *args, **kwargs)

    config = AgentTrainConfig(
        out=str(tmp_path / "run"), limit=1, steps=1, num_generations=2, concurrency=1,
        learning_rate=1e-2, reward={"em": 1.0}, episode=training_episode(top_k=2, doc_chars=150),
    )  # fmt: skip
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    trainer = build_trainer(config, hotpot_bm25, model, tokenizer, generate, Counting)
    trainer.train()

    assert computed == []
    assert all(p.detach().equal(before[n]) for n, p in model.named_parameters())
    logged = next(h for h in trainer.state.log_history if "reward" in h)
    assert logged["reward"] == 0.0 and logged["passes_skipped"] == 1.0
    from sleuth.train.agent_grpo import summarise_history

    summary = summarise_history(read_log(tmp_path / "run" / "train_log.jsonl"))
    assert summary["groups_with_reward_spread"] == 0.0 and summary["loss_passes_skipped"] == 1.0


def test_only_a_loss_that_scales_with_the_advantage_is_skipped():
    import torch

    from sleuth.train.grpo import nothing_to_learn

    plain = {"beta": 0.0, "_entropy_bonus_enabled": False, "aux_loss_enabled": False}
    zero, some = {"advantages": torch.zeros(2)}, {"advantages": torch.tensor([0.0, -0.5])}
    assert nothing_to_learn(type("T", (), plain)(), zero)
    assert not nothing_to_learn(type("T", (), plain)(), some)
    for term, value in (("beta", 0.04), ("_entropy_bonus_enabled", True), ("aux_loss_enabled", 1)):
        assert not nothing_to_learn(type("T", (), {**plain, term: value})(), zero), term
    assert not nothing_to_learn(type("T", (), plain)(), {})


class _FakeTrainer:
    """The two Trainer hooks the mixin wraps; the save writes half a checkpoint, then fails."""

    def __init__(self, root: Path, fail: bool) -> None:
        self.root, self.fail = root, fail
        self.state = type("State", (), {"global_step": 2})()
        self.args = type("Args", (), {"should_save": True, "save_total_limit": None})()

    def _get_output_dir(self, trial):
        return str(self.root)

    def _save_checkpoint(self, model, trial):
        folder = Path(self._get_output_dir(trial)) / f"checkpoint-{self.state.global_step}"
        folder.mkdir(parents=True)
        (folder / "model.safetensors").write_bytes(b"half")
        if self.fail:
            raise OSError(28, "No space left on device")
        (folder / "trainer_state.json").write_text("{}")


class _Atomic(AtomicCheckpointMixin, _FakeTrainer):
    pass


def test_an_interrupted_checkpoint_save_leaves_no_checkpoint(tmp_path):
    good = tmp_path / "checkpoint-1"
    good.mkdir()
    (good / "trainer_state.json").write_text("{}")
    with pytest.raises(OSError, match="No space"):
        _Atomic(tmp_path, fail=True)._save_checkpoint(None, None)
    assert not (tmp_path / "checkpoint-2").exists()
    assert last_checkpoint(tmp_path) == good
    _Atomic(tmp_path, fail=False)._save_checkpoint(None, None)
    assert last_checkpoint(tmp_path) == tmp_path / "checkpoint-2"
    assert not (tmp_path / ".staging").exists()


@pytest.fixture(scope="module")
def tiny_model(policy, tmp_path_factory) -> Path:
    """A 2-layer Llama with SmolLM2's tokenizer: resume mechanics at a fraction of the cost."""
    from transformers import LlamaConfig, LlamaForCausalLM

    _, tokenizer, _ = policy
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=2048,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
    )  # fmt: skip
    folder = tmp_path_factory.mktemp("tiny-llama")
    LlamaForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


# Steps whose groups have no reward spread skip the loss pass (sleuth.train.grpo), so a step of
# the tiny model takes ~0.16 s here: 6 steps ended within the kill's random delay after the first
# checkpoint. 20 steps leave ~3 s of run after it for a delay of at most 0.5 s (+ 0.2 s polling).
EXPAND_STEPS = 20


def _expand(out: Path, model: Path) -> subprocess.Popen:
    command = [
        sys.executable, "-m", "sleuth.cli", "train", "expand", "--out", str(out),
        "--model", str(model),
        "--steps", str(EXPAND_STEPS), "--save-steps", "1", "--questions-per-step", "1",
        "--num-generations", "2", "--max-completion-length", "16",
        "--train-limit", "3", "--eval-limit", "4",
    ]  # fmt: skip
    return subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=os.environ
    )


def test_train_expand_survives_kill_9_and_resumes_to_the_same_end(tmp_path, tiny_model):
    out = tmp_path / "expand"
    first = _expand(out, tiny_model)
    deadline = time.monotonic() + 300
    while last_checkpoint(out) is None and first.poll() is None:
        assert time.monotonic() < deadline, "no checkpoint appeared"
        time.sleep(0.2)
    time.sleep(random.uniform(0.0, 0.5))  # land anywhere in the next steps or saves
    first.send_signal(signal.SIGKILL)
    assert first.wait() == -signal.SIGKILL, "the run ended before it could be killed"
    killed_at = last_checkpoint(out)
    assert killed_at is not None and (killed_at / "trainer_state.json").is_file()
    assert killed_at != out / f"checkpoint-{EXPAND_STEPS}"
    assert not (out / "results.json").exists()

    second = _expand(out, tiny_model)
    output, _ = second.communicate(timeout=600)
    assert second.returncode == 0, output
    assert f"resuming from {killed_at.name}" in output
    results = json.loads((out / "results.json").read_text())
    recall = results["recall@10"]
    assert set(recall) == {"raw_question", "untrained_rewrites", "trained_rewrites"}
    assert all(0.0 <= v <= 1.0 for v in recall.values())
    steps = [r["step"] for r in read_log(out / "train_log.jsonl")]
    assert steps == list(range(1, EXPAND_STEPS + 1))
    assert last_checkpoint(out) == out / f"checkpoint-{EXPAND_STEPS}"
    assert not (out / ".staging").exists()
    assert (out / "curve.png").read_bytes().startswith(b"\x89PNG")
    # the untrained evaluation is done once and kept across the kill
    before = json.loads((out / "before.json").read_text())
    assert len(before["rows"]) == results["eval_questions"] == 4


def test_config_json_keeps_its_flat_shape_and_reads_back_into_the_nested_config():
    from sleuth.errors import SleuthError
    from sleuth.train.selfplay_grpo import SelfPlayTrainConfig, solver_episode

    agent = AgentTrainConfig(out="run", episode=training_episode(top_k=5, prompt_example=False))
    record = json.loads(json.dumps(agent.to_dict()))  # as config.json holds it
    assert (
        "episode" not in record
        and record["top_k"] == 5
        and record["actions"]
        == [
            "search",
            "answer",
        ]
    )
    assert AgentTrainConfig.from_dict(record) == agent
    selfplay = SelfPlayTrainConfig(out="run", episode=solver_episode(doc_chars=99))
    assert SelfPlayTrainConfig.from_dict(selfplay.to_dict()) == selfplay
    with pytest.raises(SleuthError, match="unknown settings"):
        AgentTrainConfig.from_dict({**record, "max_turn": 4})
    with pytest.raises(SleuthError, match="tags format without a forced answer"):
        AgentTrainConfig(out="run", episode=training_episode(force_answer=True))


def test_reward_function_scores_each_trajectory_for_trl():
    from sleuth.agent.trajectory import Step
    from sleuth.train.agent_grpo import make_reward_function

    def episode(answer: str) -> str:
        steps = [Step(index=0, prompt_delta=[], model_output=f"<answer>{answer}</answer>",
                      action="answer", argument=answer)]  # fmt: skip
        return Trajectory("e", "q", answer=answer, stop_reason="answered", steps=steps).to_json()

    logged = {}
    reward = make_reward_function({"em": 1.0, "format": 0.5})
    values = reward(
        prompts=["q", "q"], completions=["", ""],
        trajectory=[episode("Paris"), episode("Rome")],
        answers=[["Paris"], ["Paris"]], evidence_ids=[[], []],
        log_metric=lambda k, v: logged.__setitem__(k, v),
    )  # fmt: skip
    assert values == [1.5, 0.5]
    assert logged == {"reward_parts/em": 0.5, "reward_parts/format": 1.0}
