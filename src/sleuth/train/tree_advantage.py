"""Tree-GRPO advantages (Ji et al., ICLR 2026) over a forest of rollouts, per token, and the
trainer mixin that gives them to TRL in place of its per-episode GRPO advantages.

For one question's group of G leaves with rewards R_1..R_G, mean mu and standard deviation
sigma (unbiased, as TRL's per-group std):

- inter-tree, the leaf against the whole group: ``A_inter(l) = (R_l - mu) / (sigma + 1e-4)``,
  exactly TRL's GRPO advantage (a forest that never branched trains as chains do);
- a node's value ``V(n)`` is the mean reward of the leaves below it;
- intra-tree, a turn against its siblings (the other turns sampled from the same state):
  ``A_intra(n) = (V(n) - mean of V over n and its siblings) / (sigma + 1e-4)``; a turn without
  siblings (a root chain's first turn, or any turn never branched from) has 0;
- every token of turn ``n`` in leaf ``l`` gets ``A_inter(l) + A_intra(n)``.

So a turn that did better than its alternatives gains credit on top of its episode's, and a
shared turn's credit (in every leaf below it) is the same intra term. TRL (1.16) accepts
advantages of shape (batch, tokens) from a subclass; the environment's tokens stay masked by the
rollout's ``env_mask``, so only the model's own tokens carry them.

Why an override rather than shaped rewards: TRL normalises rewards per episode, so no reward
can give one episode different advantages on different turns; and the logged reward stays the
true ``sleuth.rewards`` mix.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from typing import Any

from sleuth.errors import SleuthError
from sleuth.train.tree_rollout import TreeGroup, chain_stats

EPS = 1e-4  # TRL's


def node_values(
    rewards: Sequence[float], paths: Sequence[Sequence[int]], count: int
) -> list[float]:
    """``V(n)``: the mean reward of the leaves whose path passes through node ``n``."""
    sums, hits = [0.0] * count, [0] * count
    for reward, path in zip(rewards, paths, strict=True):
        for node in path:
            sums[node] += reward
            hits[node] += 1
    return [s / h if h else 0.0 for s, h in zip(sums, hits, strict=True)]


def tree_advantages(
    rewards: Sequence[float], paths: Sequence[Sequence[int]], parents: Sequence[int | None]
) -> list[list[float]]:
    """Per leaf, the advantage of each turn on its path (the formula above)."""
    if len(rewards) != len(paths):
        raise SleuthError(f"{len(rewards)} rewards for {len(paths)} leaves")
    mean = statistics.fmean(rewards) if rewards else 0.0
    sigma = statistics.stdev(rewards) if len(rewards) > 1 else 0.0
    values = node_values(rewards, paths, len(parents))
    children: dict[int, list[int]] = {}
    for node, parent in enumerate(parents):
        if parent is not None:
            children.setdefault(parent, []).append(node)
    intra = [0.0] * len(parents)
    for siblings in children.values():
        if len(siblings) > 1:
            base = statistics.fmean(values[s] for s in siblings)
            for s in siblings:
                intra[s] = (values[s] - base) / (sigma + EPS)
    return [
        [(reward - mean) / (sigma + EPS) + intra[node] for node in path]
        for reward, path in zip(rewards, paths, strict=True)
    ]


def token_advantages(
    groups: Sequence[TreeGroup], rewards: Sequence[float], width: int
) -> list[list[float]]:
    """One row per leaf (the rollout's order), ``width`` tokens: each turn's range gets its
    advantage; tokens outside every turn (padding, a failed episode's placeholder) get the
    leaf's inter-tree advantage."""
    rows: list[list[float]] = []
    at = 0
    for group in groups:
        mine = rewards[at : at + len(group.leaves)]
        at += len(group.leaves)
        paths = [leaf.path for leaf in group.leaves]
        per_turn = tree_advantages(mine, paths, group.parents)
        mean = statistics.fmean(mine) if mine else 0.0
        sigma = statistics.stdev(mine) if len(mine) > 1 else 0.0
        for reward, path, advantages in zip(mine, paths, per_turn, strict=True):
            row = [(reward - mean) / (sigma + EPS)] * width
            for node, advantage in zip(path, advantages, strict=True):
                turn = group.nodes[node]
                row[turn.start : min(turn.end, width)] = [advantage] * (
                    min(turn.end, width) - turn.start
                )
            rows.append(row[:width])
    if at != len(rewards):
        raise SleuthError(f"{len(rewards)} rewards for {at} leaves")
    return rows


def rollout_stats(rollout: Any) -> dict[str, float]:
    """The batch's cost and yield, for a tree (``TreeRolloutFunc.stats``) or chains."""
    stats = rollout.stats() if hasattr(rollout, "stats") else chain_stats(rollout.last)
    episodes = max(1.0, float(stats["episodes"]))
    trained = float(stats["trained_tokens"])
    return {
        **stats,
        "generated_tokens_per_episode": stats["generated_tokens"] / episodes,
        "shared_token_share": 1 - stats["generated_tokens"] / trained if trained else 0.0,
    }


class TreeGRPOMixin:
    """For ``TreeRolloutFunc`` rollouts, Tree-GRPO's per-token advantages replace TRL's; for
    any rollout, the batch's cost (``rollout/*`` in ``train_log.jsonl``): episodes, model
    calls and tokens generated, tokens per episode, the share of trained tokens shared."""

    def _calculate_rewards(self, *args: Any, **kwargs: Any) -> Any:
        rewards = super()._calculate_rewards(*args, **kwargs)  # type: ignore[misc]
        self.sleuth_rewards_per_func = rewards
        return rewards

    def _generate_and_score_completions(self, inputs: Any) -> dict[str, Any]:
        import torch

        output = super()._generate_and_score_completions(inputs)  # type: ignore[misc]
        rollout = getattr(self, "sleuth_rollout", None)
        if rollout is None:
            return output
        mode = "train" if self.model.training else "eval"  # type: ignore[attr-defined]
        for key, value in rollout_stats(rollout).items():
            self._metrics[mode][f"rollout/{key}"].append(float(value))  # type: ignore[attr-defined]
        groups = getattr(rollout, "last_groups", None)
        if groups:
            if self.accelerator.num_processes != 1:  # type: ignore[attr-defined]
                raise SleuthError("tree rollouts train on one process")
            per_func = self.sleuth_rewards_per_func
            weights = self.reward_weights.to(per_func.device).unsqueeze(0)  # type: ignore[attr-defined]
            rewards = torch.nan_to_num((per_func * weights).nansum(dim=1)).tolist()
            width = output["completion_ids"].shape[1]
            device = output["advantages"].device
            rows = token_advantages(groups, rewards, width)
            output["advantages"] = torch.tensor(rows, dtype=torch.float32, device=device)
        return output
