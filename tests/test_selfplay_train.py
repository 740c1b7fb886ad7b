"""``sleuth train selfplay``: a real GRPO step through TRL on the packaged SmolLM2 and the real
bundled HotpotQA index, with a scripted sampler (the 135M model rarely writes a verifiable
question, so the rewards could not be checked exactly; its real numbers are in
docs/training.md). The sampler answers from what each token stream shows it."""

from __future__ import annotations

import re
import subprocess
import sys
import threading
from types import SimpleNamespace

import pytest

from sleuth.synth.questions import Proposal, correct
from sleuth.train.runlog import read_log
from sleuth.train.selfplay_grpo import (
    METRIC,
    SelfPlayRolloutFunc,
    SelfPlayTrainConfig,
    StepRecord,
    build_trainer,
    pick_solver_groups,
    seed_prompts,
    selfplay_curve,
    solver_episode,
    step_metrics,
    summarise_selfplay,
)

TITLE = re.compile(r"\(id: [^)]*\) ([^\n]+)")
QUESTION = "Which subject do the listed documents describe first?"


class Sampler:
    """Plays every role from the stream it is fed: the proposer searches once more, answers
    with a title it read (every second proposal: a sentence, rejected as too long) and writes
    a question; the RAG verifier reads the answer off its documents, closed book does not know;
    solvers search, then answer right and wrong in turn."""

    def __init__(self, tokenizer) -> None:
        self.tokenizer, self.lock = tokenizer, threading.Lock()
        self.proposals = self.solver_answers = 0
        self.answer = ""

    def _ids(self, text: str) -> list[int]:
        return self.tokenizer(text + "<|im_end|>", add_special_tokens=False)["input_ids"]

    def __call__(self, ids, config) -> list[int]:
        text = self.tokenizer.decode(ids)
        system, _, body = text.partition("<|im_end|>")  # the system prompt names the tags
        last_user = text.rsplit("<|im_start|>user", 1)[-1]
        with self.lock:
            if "You are writing a quiz question" in text:
                if "Now write the quiz question" in last_user:
                    return self._ids(QUESTION)
                if body.count("<information>") < 2:
                    return self._ids("<search>its best known fact</search>")
                self.proposals += 1
                if self.proposals % 2 == 0:
                    return self._ids("<answer>a sentence far too long to be any span</answer>")
                self.answer = min(TITLE.findall(text)[:3], key=len)
                return self._ids(f"<answer>{self.answer}</answer>")
            if "<search>" not in system:  # the verifiers may only answer
                known = self.answer in TITLE.findall(text)
                return self._ids(f"<answer>{self.answer if known else 'no idea'}</answer>")
            if "<information>" not in body:
                return self._ids(f"<search>{QUESTION}</search>")
            self.solver_answers += 1
            right = self.solver_answers % 2 == 1
            return self._ids(f"<answer>{self.answer if right else 'Atlantis'}</answer>")


@pytest.fixture(scope="module")
def tokenizer():
    from transformers import AutoTokenizer

    from sleuth.train.policy_model import resolve_model_folder

    return AutoTokenizer.from_pretrained(resolve_model_folder(None)[0])


def test_a_selfplay_step_rewards_both_roles_in_train_agents_rows(tokenizer, hotpot_bm25, tmp_path):
    """The rollout alone (no update): rows, masks, rewards, log, progress line."""
    config = SelfPlayTrainConfig(
        out=str(tmp_path / "run"), steps=1, proposals_per_step=1, num_generations=2,
        episode=solver_episode(top_k=2, doc_chars=120), concurrency=4,
    )  # fmt: skip
    seeds = list(seed_prompts(hotpot_bm25, config))
    lines: list[str] = []
    rollout = SelfPlayRolloutFunc(
        hotpot_bm25, tokenizer, config, seed_prompts(hotpot_bm25, config), Sampler(tokenizer),
        lines.append,
    )  # fmt: skip
    trainer = SimpleNamespace(state=SimpleNamespace(global_step=0, max_steps=1))
    output = rollout([seeds[0]] * 2 + [seeds[1]] * 2, trainer)

    record, rows = rollout.last_record, rollout.last
    assert len(rows) == 4  # one proposer group of 2, one solver group of 2
    proposals = record.proposals
    assert sorted(p.accepted for p in proposals) == [False, True]
    accepted = next(i for i, p in enumerate(proposals) if p.accepted)
    rejected = 1 - accepted
    assert proposals[rejected].rejected == "answer longer than 5 words"
    assert proposals[accepted].question == QUESTION
    assert sorted(record.solver_groups[accepted]) == [0.0, 1.0]
    assert record.proposer_rewards[accepted] == 0.5 and record.proposer_rewards[rejected] == 0.0
    assert record.trained_solver_groups == [accepted]
    assert [r.trajectory.metadata.get("role") for r in rows[:2]] == ["proposer"] * 2
    assert output["selfplay_role"] == ["proposer", "proposer", "solver", "solver"]
    expected = record.proposer_rewards + [
        1.0 if correct(r.trajectory.answer, proposals[accepted].answer) else 0.0 for r in rows[2:]
    ]
    assert output["selfplay_reward"] == expected
    assert output["env_mask"] == [r.stream.mask for r in rows]

    # the proposer's row holds its whole episode and the question turn; only the model's own
    # tokens are trained on (the retrieved documents and the question request are masked)
    stream = rows[accepted].stream
    pairs = list(zip(stream.completion_ids, stream.mask, strict=True))
    own = tokenizer.decode([t for t, m in pairs if m])
    env = tokenizer.decode([t for t, m in pairs if not m])
    assert QUESTION in own and "<answer>" in own and "<search>" in own
    assert "<information>" in env and "Now write the quiz question" in env
    assert "<information>" not in own and "Now write" not in own
    for row in rows[2:]:  # the solver rows are train agent's episodes on the question
        assert row.trajectory.question == QUESTION and row.trajectory.searches

    history = read_log(tmp_path / "run" / "train_log.jsonl")
    assert history[0][METRIC + "acceptance_rate"] == 0.5
    assert history[0][METRIC + "solver_accuracy"] == 0.5
    assert history[0][METRIC + "proposer_reward"] == 0.25
    summary = summarise_selfplay(history)
    assert summary["steps"] == 1 and summary["proposals"] == 2 and summary["verified"] == 1
    assert summary["proposer_groups_with_reward_spread"] == 1.0
    assert summary["solver_groups_with_reward_spread"] == 1.0
    assert summary["rejected_because"] == {"answer longer than 5 words": 1}
    assert selfplay_curve(history)[:4] == b"\x89PNG"
    assert lines and lines[0].startswith("step 1/1: 2 proposals, 1 verified (50%)")
    assert len((tmp_path / "run" / "proposals.jsonl").read_text().splitlines()) == 2


def test_an_empty_solver_slot_is_a_row_with_no_model_token(tokenizer, hotpot_bm25, tmp_path):
    config = SelfPlayTrainConfig(
        out=str(tmp_path / "run"), steps=1, num_generations=2,
        episode=solver_episode(top_k=2, doc_chars=120),
    )  # fmt: skip
    sampler = Sampler(tokenizer)
    sampler.proposals = 1  # every proposal's answer is now a sentence: nothing verified
    seeds = list(seed_prompts(hotpot_bm25, config))

    def always_long(ids, generation):
        sampler.proposals = 1
        return sampler(ids, generation)

    rollout = SelfPlayRolloutFunc(
        hotpot_bm25, tokenizer, config, seed_prompts(hotpot_bm25, config), always_long,
        lambda _: None,
    )  # fmt: skip
    trainer = SimpleNamespace(state=SimpleNamespace(global_step=4, max_steps=9))
    output = rollout([seeds[2]] * 2 + [seeds[3]] * 2, trainer)
    assert output["selfplay_role"] == ["proposer", "proposer", "empty", "empty"]
    assert output["selfplay_reward"] == [0.0] * 4
    assert output["env_mask"][2:] == [[0], [0]]  # one masked EOS: no gradient
    assert output["completion_ids"][2] == [tokenizer.eos_token_id]
    assert read_log(tmp_path / "run" / "train_log.jsonl")[0]["step"] == 5


@pytest.fixture(scope="module")
def policy():
    from sleuth.train.policy_model import load_trainable

    return load_trainable(None)


@pytest.mark.slow  # ~2 min of one core: the GRPO update over 4 rows of ~600 tokens
def test_a_selfplay_step_trains_both_roles_with_their_rewards(policy, hotpot_bm25, tmp_path):
    from trl import GRPOTrainer

    model, tokenizer, _ = policy
    captured: list[dict] = []

    class Capturing(GRPOTrainer):
        def compute_loss(self, model, inputs, *args, **kwargs):
            captured.append({k: v.clone() for k, v in inputs.items() if hasattr(v, "clone")})
            return super().compute_loss(model, inputs, *args, **kwargs)

    config = SelfPlayTrainConfig(
        out=str(tmp_path / "run"), steps=1, proposals_per_step=1, num_generations=2,
        learning_rate=1e-4, episode=solver_episode(top_k=2, doc_chars=120), concurrency=4,
    )  # fmt: skip
    sampler = Sampler(tokenizer)
    lines: list[str] = []
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    trainer = build_trainer(config, hotpot_bm25, model, tokenizer, sampler, Capturing, lines.append)
    trainer.train()

    record = trainer.sleuth_rollout.last_record
    rows = trainer.sleuth_rollout.last
    assert len(rows) == 4  # one proposer group of 2, one solver group of 2
    proposals = record.proposals
    assert sorted(p.accepted for p in proposals) == [False, True]
    accepted = next(i for i, p in enumerate(proposals) if p.accepted)
    rejected = 1 - accepted
    assert proposals[rejected].rejected == "answer longer than 5 words"
    assert proposals[accepted].question == QUESTION
    assert sorted(record.solver_groups[accepted]) == [0.0, 1.0]
    assert record.proposer_rewards[accepted] == 0.5 and record.proposer_rewards[rejected] == 0.0
    assert [r.trajectory.metadata.get("role") for r in rows[:2]] == ["proposer"] * 2

    # the proposer's row holds its whole episode and the question turn; only the model's own
    # tokens are trained on (the retrieved documents and the question request are masked)
    stream = rows[accepted].stream
    pairs = list(zip(stream.completion_ids, stream.mask, strict=True))
    own = tokenizer.decode([t for t, m in pairs if m])
    env = tokenizer.decode([t for t, m in pairs if not m])
    assert QUESTION in own and "<answer>" in own and "<search>" in own
    assert "<information>" in env and "Now write the quiz question" in env
    assert "<information>" not in own and "Now write" not in own
    for row in rows[2:]:  # the solver rows are train agent's episodes on the question
        assert row.trajectory.question == QUESTION and row.trajectory.searches

    # TRL trained on our rows with our masks and group-relative advantages of our rewards
    [inputs] = captured
    rewards = [record.proposer_rewards[0], record.proposer_rewards[1]]
    rewards += record.solver_groups[accepted]
    for row in range(4):
        ids = inputs["completion_ids"][row].tolist()
        index = next(
            i for i, r in enumerate(rows)
            if ids[: len(r.stream.completion_ids)] == r.stream.completion_ids
        )  # fmt: skip
        mask = rows[index].stream.mask
        assert inputs["tool_mask"][row, : len(mask)].tolist() == mask
        group = rewards[(index // 2) * 2 : (index // 2) * 2 + 2]
        assert (inputs["advantages"][row].item() > 0) == (rewards[index] > sum(group) / 2)
    changed = sum(not p.detach().equal(before[n]) for n, p in model.named_parameters())
    assert changed > 0

    # the per-step log, the summary, the curve and the progress line
    history = read_log(tmp_path / "run" / "train_log.jsonl")
    assert history[0][METRIC + "acceptance_rate"] == 0.5
    assert history[0][METRIC + "solver_accuracy"] == 0.5
    assert history[0][METRIC + "proposer_reward"] == 0.25
    assert "reward" in history[0]  # TRL's own line for the same step, merged
    summary = summarise_selfplay(history)
    assert summary["steps"] == 1 and summary["proposals"] == 2 and summary["verified"] == 1
    assert summary["proposer_groups_with_reward_spread"] == 1.0
    assert summary["solver_groups_with_reward_spread"] == 1.0
    assert summary["rejected_because"] == {"answer longer than 5 words": 1}
    assert selfplay_curve(history)[:4] == b"\x89PNG"
    assert lines and lines[0].startswith("step 1/1: 2 proposals, 1 verified (50%)")
    assert (tmp_path / "run" / "checkpoint-1" / "trainer_state.json").is_file()
    assert len((tmp_path / "run" / "proposals.jsonl").read_text().splitlines()) == 2


def test_solver_slots_prefer_groups_with_a_reward_spread():
    rewards = {0: [1.0, 1.0], 3: [0.0, 1.0], 5: [0.0, 0.0], 6: [1.0, 0.0]}
    assert pick_solver_groups(rewards, 2) == [3, 6]
    assert pick_solver_groups(rewards, 3) == [3, 6, 0]
    assert pick_solver_groups({}, 2) == []


def test_step_metrics_without_verified_questions():
    failed = [Proposal("d", "T", rejected="no answer"), Proposal("e", "T", rejected="no answer")]
    record = StepRecord(failed, [0.0, 0.0], {}, [])
    metrics = step_metrics(record, group=2)
    assert metrics["acceptance_rate"] == 0.0 and metrics["solver_accuracy"] is None
    assert metrics["proposer_groups_with_spread"] == 0.0
    assert metrics["solver_groups_with_spread"] is None
    assert metrics["rejected"] == {"no answer": 2}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--num-generations", "1"], "--num-generations must be at least 2"),
        (["--proposals-per-step", "0"], "--proposals-per-step must be at least 1"),
        (["--index", "/nonexistent/index"], "no such index folder"),
        (["--noise-schedule", "0.1:0.5"], "--noise-schedule needs --simulate"),
    ],
)
def test_bad_settings_fail_with_one_clear_line(tmp_path, args, message):
    run = subprocess.run(
        [sys.executable, "-m", "sleuth.cli", "train", "selfplay", "--out", str(tmp_path), *args],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 2
    assert message in run.stderr
    assert "Traceback" not in run.stderr
