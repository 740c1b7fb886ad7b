"""Tree rollouts (Tree-GRPO): a forest of agent turns over the real bundled BM25 index, with a
scripted policy; shared turns generated once, G leaves, masks as chains', the documented
advantage formula on a hand-built tree, and a real GRPO step with ``rollouts="tree"``."""

from __future__ import annotations

import asyncio
import itertools
import math

import pytest

from sleuth.errors import SleuthError
from sleuth.evaluate.benchmarks import load_benchmark
from sleuth.train.agent_grpo import AgentTrainConfig, build_trainer, rollout_summary
from sleuth.train.episode import training_episode
from sleuth.train.rollout import run_episodes
from sleuth.train.runlog import read_log
from sleuth.train.tree_advantage import EPS, token_advantages, tree_advantages
from sleuth.train.tree_rollout import TreeGrower, chain_stats


@pytest.fixture(scope="module")
def policy():
    from sleuth.train.policy_model import load_trainable

    return load_trainable(None)  # the packaged SmolLM2-135M, as plain float weights


class ScriptedPolicy:
    """Searches on a first turn, answers once it has read (the n-th answer is
    ``answers[n]``, cycling); counts its calls and the tokens it generated, keeps what it was
    fed."""

    def __init__(self, tokenizer, query: str, answers: list[str]) -> None:
        self.tokenizer, self.query, self.answers = tokenizer, query, answers
        self.calls, self.answered, self.tokens, self.seen = 0, 0, 0, []

    def __call__(self, ids, config):
        self.seen.append(list(ids))
        last_user = self.tokenizer.decode(ids).rsplit("<|im_start|>user", 1)[-1]
        read = "<information>" in last_user  # the last message is a search's observation
        if read:
            text = f"<answer>{self.answers[self.answered % len(self.answers)]}</answer><|im_end|>"
            self.answered += 1
        else:
            text = f"<search>{self.query}</search>"
        self.calls += 1
        out = self.tokenizer(text, add_special_tokens=False)["input_ids"]
        self.tokens += len(out)
        return out


def grow(tokenizer, search, generate, group_size, roots, **episode):
    config = training_episode(top_k=2, doc_chars=150, **episode)
    grower = TreeGrower(generate, tokenizer, search, config, roots, concurrency=1)
    [group] = asyncio.run(grower.grow(["Were Scott Derrickson and Ed Wood American?"], group_size))
    return group


def test_a_tree_generates_its_shared_turns_once_and_gives_g_leaves(policy, hotpot_bm25):
    _, tokenizer, _ = policy
    generate = ScriptedPolicy(
        tokenizer, "Scott Derrickson nationality", ["American", "Canadian", "French", "German"]
    )
    group = grow(tokenizer, hotpot_bm25, generate, group_size=4, roots=2)

    assert len(group.leaves) == 4 and group.trees == 2
    assert all(leaf.rollout.trajectory.stop_reason == "answered" for leaf in group.leaves)
    # 2 root chains (search, answer) + 2 branches from their searches (answer only): 6 calls,
    # where 4 chains make 8
    assert generate.calls == 6 == group.stats()["generate_calls"]
    assert generate.tokens == group.stats()["generated_tokens"]
    roots = [
        leaf for leaf in group.leaves if leaf.rollout.trajectory.metadata["branched_at"] is None
    ]
    branches = [leaf for leaf in group.leaves if leaf.rollout.trajectory.metadata["branched_at"]]
    assert len(roots) == 2 and len(branches) == 2
    for branch in branches:
        root = next(r for r in roots if r.path[0] == branch.path[0])  # the same first turn
        shared = group.nodes[branch.path[0]]
        r, b = root.rollout.stream, branch.rollout.stream
        assert b.prompt_ids == r.prompt_ids
        assert b.completion_ids[: shared.end] == r.completion_ids[: shared.end]
        assert b.mask[: shared.end] == r.mask[: shared.end]
        assert b.completion_ids[shared.end :] != r.completion_ids[shared.end :]  # a new answer
        # each trajectory is its whole path: the shared search, then its own answer
        actions = [s.action for s in branch.rollout.trajectory.steps]
        assert actions == ["search", "answer"]
        assert branch.rollout.trajectory.steps[0].argument == "Scott Derrickson nationality"
    # the branch's answer turn was fed the shared prefix, as recorded
    fed = [ids for ids in generate.seen]
    for leaf in group.leaves:
        stream, last = leaf.rollout.stream, group.nodes[leaf.path[-1]]
        assert stream.prompt_ids + stream.completion_ids[: last.start] in [
            ids[: len(stream.prompt_ids) + last.start] for ids in fed
        ]


def test_tree_leaves_mask_exactly_the_environment_tokens(policy, hotpot_bm25):
    _, tokenizer, _ = policy
    generate = ScriptedPolicy(tokenizer, "Ed Wood filmmaker", ["American"])
    group = grow(tokenizer, hotpot_bm25, generate, group_size=3, roots=1)
    # one root chain, then two branches from its search: one tree, one search for three leaves
    assert group.trees == 1 and generate.calls == 4
    for leaf in group.leaves:
        stream, traj = leaf.rollout.stream, leaf.rollout.trajectory
        model = [t for t, m in zip(stream.completion_ids, stream.mask, strict=True) if m]
        env = [t for t, m in zip(stream.completion_ids, stream.mask, strict=True) if not m]
        expected = "<search>Ed Wood filmmaker</search><answer>American</answer><|im_end|>"
        assert tokenizer.decode(model) == expected
        [search] = [s for s in traj.steps if s.action == "search"]
        assert search.observation in tokenizer.decode(env)
        assert "<information>" not in tokenizer.decode(model)
        # the turns' ranges tile the completion: each turn's env tokens, then its own
        spans = [(group.nodes[n].start, group.nodes[n].end) for n in leaf.path]
        assert spans[0][0] == 0 and spans[-1][1] == len(stream.completion_ids)
        assert all(a[1] == b[0] for a, b in itertools.pairwise(spans))


def test_tree_costs_fewer_tokens_per_complete_episode_than_chains(policy, hotpot_bm25):
    """The same scripted policy and group size: chains vs a tree of two roots."""
    _, tokenizer, _ = policy
    query, answers = "Scott Derrickson nationality", ["American", "Canadian", "French", "German"]
    chain_policy = ScriptedPolicy(tokenizer, query, answers)
    config = training_episode(top_k=2, doc_chars=150)
    question = "Were Scott Derrickson and Ed Wood American?"
    chains = asyncio.run(
        run_episodes([question] * 4, chain_policy, tokenizer, hotpot_bm25, config, 1)
    )
    tree_policy = ScriptedPolicy(tokenizer, query, answers)
    group = grow(tokenizer, hotpot_bm25, tree_policy, group_size=4, roots=2)

    chain, tree = chain_stats(chains), group.stats()
    assert chain["episodes"] == tree["episodes"] == 4
    assert chain["generated_tokens"] == chain_policy.tokens and chain["generate_calls"] == 8
    assert tree["generated_tokens"] == tree_policy.tokens and tree["generate_calls"] == 6
    # trained on the same tokens (every leaf is a whole episode), generated fewer
    assert tree["trained_tokens"] == chain["trained_tokens"]
    per_chain = chain["generated_tokens"] / chain["episodes"]
    per_tree = tree["generated_tokens"] / tree["episodes"]
    search_tokens = len(
        tokenizer(f"<search>{query}</search>", add_special_tokens=False)["input_ids"]
    )
    assert per_chain - per_tree == pytest.approx(2 * search_tokens / 4)  # two searches shared


def test_tree_grpo_advantages_follow_the_formula_on_a_hand_built_tree():
    # tree 0: 0 -> 1 (leaf a); 0 -> 2 -> 3 (leaf b), 2 -> 4 (leaf c); tree 1: 5 -> 6 (leaf d)
    parents = [None, 0, 0, 2, 2, None, 5]
    paths = [[0, 1], [0, 2, 3], [0, 2, 4], [5, 6]]
    rewards = [1.0, 0.0, 1.0, 0.0]
    s = math.sqrt(1 / 3) + EPS  # the group's unbiased std, as TRL's
    inter = [0.5 / s, -0.5 / s, 0.5 / s, -0.5 / s]
    # V: 0 = 2/3, 1 = 1, 2 = 1/2, 3 = 0, 4 = 1; siblings {1, 2} mean 3/4, {3, 4} mean 1/2
    intra = {0: 0.0, 1: 0.25 / s, 2: -0.25 / s, 3: -0.5 / s, 4: 0.5 / s, 5: 0.0, 6: 0.0}
    got = tree_advantages(rewards, paths, parents)
    for leaf, path in enumerate(paths):
        assert got[leaf] == pytest.approx([inter[leaf] + intra[n] for n in path])
    # the better sibling gets more credit than its episode alone would
    assert got[0][1] > inter[0] and got[1][1] < inter[1]
    # a forest that never branched: exactly GRPO's group advantage
    chains = tree_advantages([1.0, 0.0, 0.0], [[0], [1], [2]], [None, None, None])
    s3 = math.sqrt(1 / 3) + EPS
    assert [a[0] for a in chains] == pytest.approx([(2 / 3) / s3, -(1 / 3) / s3, -(1 / 3) / s3])
    # equal rewards: no signal anywhere
    assert tree_advantages([0.5, 0.5, 0.5, 0.5], paths, parents) == [[0.0] * len(p) for p in paths]


def test_token_advantages_give_each_turn_its_advantage(policy, hotpot_bm25):
    _, tokenizer, _ = policy
    generate = ScriptedPolicy(
        tokenizer, "Scott Derrickson nationality", ["American", "Canadian", "French", "German"]
    )
    group = grow(tokenizer, hotpot_bm25, generate, group_size=4, roots=2)
    rewards = [
        1.0 if leaf.rollout.trajectory.answer == "American" else 0.0 for leaf in group.leaves
    ]
    assert 0 < sum(rewards) < 4
    width = max(len(leaf.rollout.stream.completion_ids) for leaf in group.leaves) + 3
    rows = token_advantages([group], rewards, width)
    per_turn = tree_advantages(rewards, [leaf.path for leaf in group.leaves], group.parents)
    for leaf, row, turns in zip(group.leaves, rows, per_turn, strict=True):
        assert len(row) == width
        for node, advantage in zip(leaf.path, turns, strict=True):
            turn = group.nodes[node]
            width_of_turn = turn.end - turn.start
            assert row[turn.start : turn.end] == pytest.approx([advantage] * width_of_turn)
    # the right answer's turn earns more than the search it shares with a wrong answer
    right = rewards.index(1.0)
    assert per_turn[right][-1] > per_turn[right][0] > 0


def test_tree_settings_are_checked():
    with pytest.raises(SleuthError, match="chain or tree"):
        AgentTrainConfig(out="unused", rollouts="forest")
    with pytest.raises(SleuthError, match="temperature above 0"):
        AgentTrainConfig(out="unused", rollouts="tree", episode=training_episode(temperature=0))
    with pytest.raises(SleuthError, match="tree-roots"):
        AgentTrainConfig(out="unused", rollouts="tree", tree_roots=0)
    with pytest.raises(SleuthError, match="simulated user"):  # branches get no user yet
        AgentTrainConfig(out="unused", rollouts="tree", user="simulated:rules")
    record = AgentTrainConfig(out="x", rollouts="tree", tree_roots=3).to_dict()
    assert AgentTrainConfig.from_dict(record).tree_roots == 3


def test_a_grpo_step_with_tree_rollouts_trains_on_tree_advantages(policy, hotpot_bm25, tmp_path):
    from trl import GRPOTrainer

    model, tokenizer, _ = policy
    question = load_benchmark("hotpotqa-1100:train", limit=1).questions[0]
    right = question.answers[0]
    generate = ScriptedPolicy(tokenizer, question.question, [right, "Atlantis"])
    captured: list[dict] = []

    class Capturing(GRPOTrainer):
        def compute_loss(self, model, inputs, *args, **kwargs):
            captured.append({k: v.clone() for k, v in inputs.items() if hasattr(v, "clone")})
            return super().compute_loss(model, inputs, *args, **kwargs)

    config = AgentTrainConfig(
        out=str(tmp_path / "run"), limit=1, steps=1, num_generations=2, concurrency=1,
        learning_rate=1e-4, reward={"em": 1.0}, rollouts="tree", tree_roots=1,
        episode=training_episode(top_k=2, doc_chars=150),
    )  # fmt: skip
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    trainer = build_trainer(config, hotpot_bm25, model, tokenizer, generate, Capturing)
    trainer.train()

    [group] = trainer.sleuth_rollout.last_groups
    assert len(group.leaves) == 2 and generate.calls == 3  # one search shared by both leaves
    rewards = [1.0 if leaf.rollout.trajectory.answer == right else 0.0 for leaf in group.leaves]
    assert rewards == [1.0, 0.0]
    per_turn = tree_advantages(rewards, [leaf.path for leaf in group.leaves], group.parents)
    # the shared search gets only the episodes' (inter) advantage; the answers, siblings, more
    assert per_turn[0][1] > per_turn[0][0] > 0 > per_turn[1][0] > per_turn[1][1]
    assert len(captured) == 2
    for inputs in captured:  # one leaf per pass (TRL shuffles the rows)
        ids = inputs["completion_ids"][0].tolist()
        index = next(
            i for i, leaf in enumerate(group.leaves)
            if ids[: len(leaf.rollout.stream.completion_ids)] == leaf.rollout.stream.completion_ids
        )  # fmt: skip
        leaf = group.leaves[index]
        assert (
            inputs["tool_mask"][0, : len(leaf.rollout.stream.mask)].tolist()
            == leaf.rollout.stream.mask
        )
        advantages = inputs["advantages"]
        assert advantages.dim() == 2  # per token
        for node, advantage in zip(leaf.path, per_turn[index], strict=True):
            turn = group.nodes[node]
            assert advantages[0, turn.start : turn.end].tolist() == pytest.approx(
                [advantage] * (turn.end - turn.start), abs=1e-5
            )
    changed = sum(not p.detach().equal(before[n]) for n, p in model.named_parameters())
    assert changed > 0
    log = read_log(tmp_path / "run" / "train_log.jsonl")
    assert log[0]["rollout/episodes"] == 2 and log[0]["rollout/generate_calls"] == 3
    assert log[0]["rollout/shared_token_share"] > 0
    summary = rollout_summary(log, config)
    assert summary["mode"] == "tree" and summary["episodes_per_step"] == [2.0]
    assert summary["generate_calls_per_step"] == [3.0]
