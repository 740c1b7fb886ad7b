"""Tree rollouts for GRPO (Tree-GRPO, Ji et al., ICLR 2026): a question's group of G episodes
grown as a forest whose nodes are whole agent turns, so shared prefixes are generated once.

Growth, per question (``grow_group``):

1. ``roots`` (M) root chains run to their end, as ``--rollouts chain`` would run them.
2. While the group has fewer than G leaves (ended episodes), a round of branches: each picks a
   branch point, the saved state after a turn taken at a depth that is a multiple of
   ``branch_every`` and did not end the episode, clones it (``Episode.clone``; the policy's
   token stream is copied with it) and samples a new continuation to its end. Each branch
   picks the point with the fewest branches so far (those picked earlier in the round
   counted), then in the tree with the fewest branches, then the shallowest, then the oldest;
   states made in a round are branch points of the next (a tree grows deeper). A group with no
   branch point at all (every episode ended on its first turn) starts a new root chain.

Each leaf is a whole episode root→leaf, its token stream and loss mask exactly as a chain's
(retrieved and other environment tokens masked), and no leaf generates more than a chain
would: the group never costs more than G chains, and costs less by every shared turn.
``sleuth.train.tree_advantage`` turns the leaves' rewards into Tree-GRPO advantages.
"""

from __future__ import annotations

import asyncio
import copy
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sleuth.agent.config import AgentConfig
from sleuth.agent.loop import Agent, Episode, EpisodeStop
from sleuth.errors import SleuthError
from sleuth.llm.base import LLM
from sleuth.search.base import SearchEngine
from sleuth.train.rollout import AgentRolloutFunc, Generate, PolicyLLM, Rollout, TokenStream


@dataclass
class StepNode:
    """One agent turn of a tree. ``start``/``end``: its range in the completion tokens of every
    leaf below it (the environment's tokens before the turn, then the model's);
    ``generated``: the model's tokens in it, generated once however many leaves share it."""

    parent: int | None
    tree: int
    depth: int  # turns taken when this turn ended (1 = the first turn)
    start: int
    end: int
    generated: int
    calls: int  # model steps the turn recorded (a retried turn records one)
    children: list[int] = field(default_factory=list)
    state: tuple[Episode, PolicyLLM] | None = None  # the state after it, to branch from


@dataclass
class Leaf:
    rollout: Rollout
    path: list[int]  # node indices, root first


@dataclass
class TreeGroup:
    """One question's forest: its nodes and its leaves (the GRPO group, in the order made)."""

    question: str
    nodes: list[StepNode] = field(default_factory=list)
    leaves: list[Leaf] = field(default_factory=list)
    trees: int = 0

    @property
    def parents(self) -> list[int | None]:
        return [node.parent for node in self.nodes]

    def stats(self) -> dict[str, float]:
        """What the group cost: model turns and tokens generated (each shared turn once), and
        the tokens its leaves train on (what G chains would have generated for them)."""
        return {
            "episodes": len(self.leaves),
            "answered": sum(
                leaf.rollout.trajectory.stop_reason == "answered" for leaf in self.leaves
            ),
            "generate_calls": sum(node.calls for node in self.nodes),
            "generated_tokens": sum(node.generated for node in self.nodes),
            "trained_tokens": sum(sum(leaf.rollout.stream.mask) for leaf in self.leaves),
        }


def fork(
    episode: Episode, policy: PolicyLLM, config: AgentConfig, reader: LLM | None
) -> tuple[Episode, PolicyLLM]:
    """An independent copy of an episode and the policy recording its tokens: the episode is
    cloned (``Episode.clone``) and its agent given a copy of the policy, whose stream so far
    is copied (``PolicyLLM`` keeps per-episode state, so a branch needs its own)."""
    twin_policy = copy.copy(policy)
    stream = policy.stream
    twin_policy.stream = TokenStream(
        list(stream.prompt_ids), list(stream.completion_ids), list(stream.mask)
    )
    twin = episode.clone()
    twin.agent = Agent(twin_policy, episode.agent.search, config, reader=reader)
    twin.trajectory.episode_id = uuid.uuid4().hex[:12]
    return twin, twin_policy


class TreeGrower:
    """Grows the forests of one batch of questions (``grow``), decoding their turns together."""

    def __init__(
        self,
        generate: Generate,
        tokenizer: Any,
        search: SearchEngine,
        config: AgentConfig,
        roots: int,
        branch_every: int = 1,
        concurrency: int = 4,
        reader: LLM | None = None,
    ) -> None:
        check_tree_settings(config, roots, branch_every)
        self.generate, self.tokenizer, self.search, self.config = (
            generate,
            tokenizer,
            search,
            config,
        )
        self.roots, self.branch_every, self.reader = roots, branch_every, reader
        self.gate = asyncio.Semaphore(max(1, concurrency))

    async def grow(self, questions: Sequence[str], group_size: int) -> list[TreeGroup]:
        """A forest of ``group_size`` leaves per question (``grow_group``'s rule, above)."""
        if group_size < 1:
            raise SleuthError(f"a group needs at least one episode, not {group_size}")
        groups = [TreeGroup(q) for q in questions]
        roots = min(self.roots, group_size)
        await asyncio.gather(*(self._root(g) for g in groups for _ in range(roots)))
        while any(len(g.leaves) < group_size for g in groups):
            jobs = []
            for group in groups:
                need = group_size - len(group.leaves)
                points = branch_points(group, need)
                jobs += [self._branch(group, p) for p in points]
                jobs += [self._root(group) for _ in range(need if not points else 0)]
            await asyncio.gather(*jobs)  # each job adds one leaf: no group overshoots
        return groups

    async def _root(self, group: TreeGroup) -> None:
        policy = PolicyLLM(self.generate, self.tokenizer)
        episode = Episode(
            Agent(policy, self.search, self.config, reader=self.reader), group.question, None
        )
        episode.trajectory.episode_id = uuid.uuid4().hex[:12]
        tree = group.trees
        group.trees += 1
        episode.trajectory.metadata = {"tree": tree, "branched_at": None}
        async with self.gate:
            try:
                await episode.prefetch()
            except EpisodeStop as stop:
                await self._end(group, episode, policy, stop, [])
                return
        await self._run(group, episode, policy, None, tree, [])

    async def _branch(self, group: TreeGroup, point: int) -> None:
        node = group.nodes[point]
        assert node.state is not None
        episode, policy = fork(*node.state, self.config, self.reader)
        episode.trajectory.metadata = {"tree": node.tree, "branched_at": node.depth}
        path = [*_path(group, point)]
        await self._run(group, episode, policy, point, node.tree, path)

    async def _run(
        self,
        group: TreeGroup,
        episode: Episode,
        policy: PolicyLLM,
        parent: int | None,
        tree: int,
        path: list[int],
    ) -> None:
        """Turns from the state until the episode ends; every turn becomes a node."""
        while True:
            start, steps = len(policy.stream.completion_ids), len(episode.trajectory.steps)
            turns, stop, done = episode.turns, None, False
            async with self.gate:
                try:
                    done = await episode.next_turn()
                except EpisodeStop as caught:
                    stop, done = caught, True
            if episode.turns == turns:  # a limit ended it before the turn
                break
            stream = policy.stream
            node = StepNode(
                parent=parent,
                tree=tree,
                depth=episode.turns,
                start=start,
                end=len(stream.completion_ids),
                generated=sum(stream.mask[start:]),
                calls=sum(1 for s in episode.trajectory.steps[steps:] if s.completion_tokens),
            )
            parent = len(group.nodes)
            group.nodes.append(node)
            if parent_node := (group.nodes[node.parent] if node.parent is not None else None):
                parent_node.children.append(parent)
            path = [*path, parent]
            if done:
                break
            if node.depth % self.branch_every == 0:
                node.state = fork(episode, policy, self.config, self.reader)
        await self._end(group, episode, policy, stop, path)

    async def _end(
        self,
        group: TreeGroup,
        episode: Episode,
        policy: PolicyLLM,
        stop: EpisodeStop | None,
        path: list[int],
    ) -> None:
        await episode.finish(stop)
        group.leaves.append(Leaf(Rollout(episode.trajectory, policy.stream), path))


def _path(group: TreeGroup, node: int | None) -> list[int]:
    path: list[int] = []
    while node is not None:
        path.append(node)
        node = group.nodes[node].parent
    return path[::-1]


def branch_points(group: TreeGroup, need: int) -> list[int]:
    """``need`` states to branch from (a state may be picked more than once), by the rule in
    the module docstring; none when the group has no state left to branch from."""
    open_points = [i for i, n in enumerate(group.nodes) if n.state is not None]
    if not open_points:
        return []
    planned = {i: len(group.nodes[i].children) for i in open_points}
    per_tree: dict[int, int] = {}
    for node in group.nodes:
        if node.parent is not None and len(group.nodes[node.parent].children) > 1:
            per_tree[node.tree] = per_tree.get(node.tree, 0) + 1
    chosen: list[int] = []
    for _ in range(need):
        best = min(
            open_points,
            key=lambda i: (
                planned[i],
                per_tree.get(group.nodes[i].tree, 0),
                group.nodes[i].depth,
                i,
            ),
        )
        chosen.append(best)
        planned[best] += 1
        tree = group.nodes[best].tree
        per_tree[tree] = per_tree.get(tree, 0) + 1
    return chosen


def check_tree_settings(config: AgentConfig, roots: int, branch_every: int) -> None:
    if roots < 1:
        raise SleuthError(f"--tree-roots must be at least 1, not {roots}")
    if branch_every < 1:
        raise SleuthError(f"--tree-branch-every must be at least 1, not {branch_every}")
    if config.temperature <= 0:
        raise SleuthError(
            "tree rollouts sample a different continuation at each branch: "
            "they need a temperature above 0"
        )


def chain_stats(rollouts: Sequence[Rollout]) -> dict[str, float]:
    """``TreeGroup.stats`` for independent chains: every token generated is trained on."""
    trained = sum(sum(r.stream.mask) for r in rollouts)
    return {
        "episodes": len(rollouts),
        "answered": sum(r.trajectory.stop_reason == "answered" for r in rollouts),
        "generate_calls": sum(
            1 for r in rollouts for s in r.trajectory.steps if s.completion_tokens
        ),
        "generated_tokens": trained,
        "trained_tokens": trained,
    }


class TreeRolloutFunc(AgentRolloutFunc):
    """TRL's ``rollout_func`` for ``--rollouts tree``: the G copies of a question TRL asks for
    (consecutive, one GRPO group) become one forest's G leaves. ``last`` holds the leaves,
    ``last_groups`` the forests (``sleuth.train.tree_advantage`` reads their shape)."""

    def __init__(self, *args: Any, roots: int = 2, branch_every: int = 1, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        check_tree_settings(self.config, roots, branch_every)
        self.roots, self.branch_every = roots, branch_every
        self.last_groups: list[TreeGroup] = []

    def __call__(self, prompts: list[Any], trainer: Any) -> dict[str, Any]:
        from sleuth.train.rollout import as_trl_output

        questions = [p if isinstance(p, str) else p[-1]["content"] for p in prompts]
        size = int(getattr(trainer, "num_generations", 0) or len(questions))
        if len(questions) % size or any(
            len(set(questions[i : i + size])) != 1 for i in range(0, len(questions), size)
        ):
            raise SleuthError(
                f"tree rollouts need each question's {size} episodes together (one GRPO group)"
            )
        if self._generate is None:  # one batcher for the whole run, as for chains
            from sleuth.train.batched_generate import BatchedGenerator

            self._generate = BatchedGenerator(
                trainer.accelerator.unwrap_model(trainer.model),
                self.tokenizer,
                max_batch=max(1, self.concurrency),
            )
        grower = TreeGrower(
            self._generate, self.tokenizer, self.search, self.config, self.roots,
            self.branch_every, self.concurrency, self.reader,
        )  # fmt: skip
        self.last_groups = asyncio.run(grower.grow(questions[::size], size))
        self.last = [leaf.rollout for group in self.last_groups for leaf in group.leaves]
        return as_trl_output(self.last, self.tokenizer.eos_token_id)

    def stats(self) -> dict[str, float]:
        totals: dict[str, float] = {}
        for group in self.last_groups:
            for key, value in group.stats().items():
                totals[key] = totals.get(key, 0) + value
        return totals
