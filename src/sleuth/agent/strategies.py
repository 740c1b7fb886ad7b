"""Strategies over an episode's steps: ReAct's one greedy chain is ``Agent.run``; this module
searches a tree of cloned episodes (``Episode.clone``, stepped a ``turn`` at a time) and returns
the trajectory of the path it chooses, with the whole tree in ``Trajectory.tree``.

- ``best-of-n``: ``branches`` whole episodes (the first decoded as ReAct would, the others
  sampled); the final state the critic scores highest wins, ties going to the answer most
  samples agree on (self-consistency), then to the earlier sample.
- ``beam``: from every kept state, ``branches`` candidate next turns; the ``beam_width`` best
  states (by the critic) are kept per depth, finished states compete with open ones.
- ``mcts``: ``simulations`` rounds of UCT selection, one new turn expanded per round (up to
  ``branches`` per state), the critic's score of the new state backed up as its value; the
  path of most visits is chosen.
- ``astar``: best-first over every state found so far, by turns taken plus the critic's
  shortfall (``STEP_COST`` per turn + 1 - score); ends when the cheapest state has ended.

Every model call, the policy's (turns, forced answer, final read) and the critic's, is counted
against the question's call budget (``CallBudget``), which work in flight can never overrun:
each piece of work promises its worst case first. The calls to finish the chosen path (forced
answer, final read) are promised at the start. A chosen state that has not ended continues
greedily while calls are left, then is forced to answer (stop reason ``call_budget``).
"""

from __future__ import annotations

import asyncio
import copy
import math
import random
import uuid
import zlib
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from sleuth.agent.critic import make_critic, model_calls_per_score
from sleuth.agent.executors import EpisodeStop
from sleuth.agent.loop import Episode
from sleuth.agent.strategy_config import StrategyConfig, calls_per_turn, finishing_calls
from sleuth.agent.tree import CallBudget, CountedLLM, Node, tree_record
from sleuth.metrics import normalize_answer

if TYPE_CHECKING:
    from sleuth.agent.loop import Agent
    from sleuth.agent.trajectory import Step, Trajectory

__all__ = ["SEARCHES", "TreeSearch", "run_strategy"]


async def run_strategy(
    agent: Agent,
    question: str,
    strategy: StrategyConfig | None = None,
    *,
    episode_id: str | None = None,
    metadata: dict[str, Any] | None = None,
    on_step: Callable[[Step], None] | None = None,
    prefetch_query: str | None = None,
) -> Trajectory:
    """One episode on ``question`` with its steps chosen by ``strategy``, under ``Agent.run``'s
    contract (the trajectory is returned, failures recorded in it). None or react: exactly
    ``agent.run``. A tree search's ``on_step`` sees the chosen path's steps when it is over."""
    if strategy is None or strategy.name == "react":
        return await agent.run(
            question,
            episode_id=episode_id,
            metadata=metadata,
            on_step=on_step,
            prefetch_query=prefetch_query,
        )
    search = TreeSearch(agent, strategy, question, episode_id, metadata, prefetch_query)
    trajectory = await search.run()
    if on_step is not None:
        for step in trajectory.steps:
            on_step(step)
    return trajectory


class TreeSearch:
    """One question's search: the root episode, every node made, the budget and the critic."""

    def __init__(
        self,
        agent: Agent,
        strategy: StrategyConfig,
        question: str,
        episode_id: str | None,
        metadata: dict[str, Any] | None,
        prefetch_query: str | None,
    ) -> None:
        self.strategy = strategy
        self.base = agent.config
        self.budget = CallBudget(self.strategy.budget_for(self.base))
        counted = copy.copy(agent)  # the same models and engine, every call counted
        counted.llm = CountedLLM(agent.llm, self.budget, "policy")
        if agent.reader is not None:
            counted.reader = CountedLLM(agent.reader, self.budget, "policy")
        self.critic = make_critic(
            self.strategy.critic, CountedLLM(agent.llm, self.budget, "critic"), self.base
        )
        self.critic_cost = model_calls_per_score(self.critic)  # promised per state scored
        self.per_turn = calls_per_turn(self.base)
        self.seed = self.base.seed if self.base.seed is not None else random.randrange(2**31)
        episode = Episode(counted, question, None, prefetch_query)
        episode.trajectory.episode_id = episode_id or uuid.uuid4().hex[:12]
        episode.trajectory.metadata = dict(metadata or {})
        self.root = Node(0, None, episode)
        self.nodes = [self.root]
        self.kept: list[list[int]] = []  # beam: the states kept at each depth
        self.reserved = 0  # calls promised to finishing the chosen path

    async def run(self) -> Trajectory:
        try:
            await self.root.episode.prefetch()
        except EpisodeStop as stop:
            self.root.stop, self.root.done = stop, True
            return await self.close(self.root)
        self.reserved = finishing_calls(self.base)  # the chosen path can always finish
        self.budget.take(self.reserved)
        chosen = await SEARCHES[self.strategy.name](self)
        chosen = await self.complete(chosen)
        return await self.close(chosen)

    # -- growing the tree -----------------------------------------------------------------------
    def open(self, node: Node) -> bool:
        """Whether another turn may follow ``node``: not ended, no limit reached (a limit
        reached ends the node with it as its stop)."""
        if node.done:
            return False
        try:
            node.episode.check_limits(node.episode.turns)
        except EpisodeStop as stop:
            node.stop, node.done = stop, True
            return False
        return True

    async def child(self, parent: Node, branch: int) -> Node:
        """One more turn from ``parent``'s state, on a clone: branch 0 decodes as ReAct would
        (the run's temperature and seed), the others sample at the strategy's temperature
        with a seed of their own, derived from the branches taken from the root and the run's
        seed, so a seeded search samples the same tree however its calls interleave. (Without
        a run seed a random one stands in: a backend's default seed samples every branch of
        one prompt alike.)"""
        route = f"{parent.route}/{branch}"
        if branch == 0:
            temperature, seed = self.base.temperature, self.base.seed
        else:
            temperature = self.strategy.temperature
            seed = (self.seed * 1_000_003 + zlib.crc32(route.encode())) % 2**31
        episode = parent.episode.clone(temperature=temperature, seed=seed)
        node = Node(len(self.nodes), parent, episode, parent.depth + 1, route=route)
        self.nodes.append(node)
        parent.children.append(node)
        before = len(episode.trajectory.steps)
        try:
            node.done = await episode.next_turn()
        except EpisodeStop as stop:
            node.stop, node.done = stop, True
        if len(episode.trajectory.steps) > before:
            node.step = episode.trajectory.steps[-1]
        return node

    def mark_duplicate(self, node: Node) -> None:
        """A node whose turn did what an earlier sibling's did (same action and argument) is
        that sibling's duplicate: scored as it, never searched further. Called once the
        siblings' turns are all taken (turns taken at once finish in any order)."""
        if node.step is None or node.parent is None:
            return
        key = _action_key(node.step)
        for sibling in node.parent.children:
            if sibling is node:
                return
            if sibling.duplicate_of is None and sibling.step and _action_key(sibling.step) == key:
                node.duplicate_of = sibling.id
                return

    async def evaluate(self, node: Node) -> float:
        """The critic's score of ``node`` (a failed episode scores 0, a duplicate as its
        sibling); the caller has promised the one call it may take."""
        if node.score is None:
            if node.duplicate_of is not None:
                node.score = self.nodes[node.duplicate_of].score
            if node.score is None:
                node.score = 0.0 if node.failed else await self.critic.score(node.episode)
        return node.score

    async def complete(self, node: Node) -> Node:
        """Continue ``node`` greedily while a turn is affordable (a chosen state that has not
        ended); the last node reached."""
        while self.open(node) and self.budget.take(self.per_turn):
            node = await self.child(node, 0)
            self.budget.give(self.per_turn)
        return node

    async def close(self, node: Node) -> Trajectory:
        """Finish the chosen path as ``Agent.run`` finishes an episode (greedy decoding again)
        and record the tree and the calls."""
        self.budget.give(self.reserved)
        self.reserved = 0
        episode = node.episode
        episode.cfg = self.base
        stop = node.stop
        if not node.done:
            stop = EpisodeStop("call_budget")
        await episode.finish(stop)
        trajectory = episode.trajectory
        trajectory.tree = tree_record(self.nodes, node, with_visits=self.strategy.name == "mcts")
        meta = trajectory.metadata
        meta["strategy"] = self.strategy.name
        meta["strategy_settings"] = self.strategy.to_dict()
        meta["call_budget"] = self.budget.limit
        meta["policy_calls"] = self.budget.calls["policy"]
        meta["critic_calls"] = self.budget.calls["critic"]
        meta["critic_scores"] = getattr(self.critic, "scores", 0)
        if self.kept:
            meta["beam_kept"] = self.kept
        if errors := getattr(self.critic, "errors", None):
            meta["critic_errors"] = errors[:5]
        return trajectory


def _action_key(step: Step) -> tuple[str, str]:
    return step.action, " ".join(step.argument.lower().split())


def _rank(node: Node) -> tuple[float, int]:
    """Best first: the higher score, then the earlier node."""
    return (-(node.score if node.score is not None else -1.0), node.id)


async def best_of_n(search: TreeSearch) -> Node:
    """``branches`` whole episodes, run at once; the final state the critic scores highest."""
    leaves = await asyncio.gather(
        *(_sample(search, branch) for branch in range(search.strategy.branches))
    )
    finished = [leaf for leaf in leaves if leaf is not None]
    if not finished:
        return search.root
    answers = Counter(_answer(leaf) for leaf in finished)
    return min(
        finished, key=lambda leaf: (_rank(leaf)[0], -answers[_answer(leaf)], _sample_of(leaf))
    )


def _sample_of(node: Node) -> int:
    """Which sample of best-of-n ``node`` belongs to (its branch at the root)."""
    return int(node.route.split("/")[1])


def _answer(node: Node) -> str:
    return normalize_answer(node.episode.trajectory.answer or "")


async def _sample(search: TreeSearch, branch: int) -> Node | None:
    """One episode from the root, each turn a node (all of branch ``branch``'s decoding), cut
    where the budget ends; its last state, scored. None when not even a turn was affordable."""
    if not search.budget.take(search.critic_cost):  # its critic call, promised first
        return None
    node = search.root
    while search.open(node) and search.budget.take(search.per_turn):
        node = await search.child(node, branch)
        search.budget.give(search.per_turn)
    if node is not search.root:
        await search.evaluate(node)
    search.budget.give(search.critic_cost)
    return None if node is search.root else node


async def beam(search: TreeSearch) -> Node:
    """Beam search: ``branches`` candidates from each kept open state per depth, the
    ``beam_width`` best states kept; the best state when no kept state can go on."""
    frontier = [search.root]
    cost = search.per_turn + search.critic_cost  # a candidate's turn and its critic call
    while True:
        growing = [node for node in frontier if search.open(node)]
        plan = [  # every state's first candidate first, as many as the budget affords
            (node, branch) for branch in range(search.strategy.branches) for node in growing
        ]
        affordable = 0
        while affordable < len(plan) and search.budget.take(cost):
            affordable += 1
        plan = plan[:affordable]
        if not plan:
            break
        children = await asyncio.gather(*(search.child(node, b) for node, b in plan))
        for child in children:
            search.mark_duplicate(child)
        fresh = [child for child in children if child.duplicate_of is None]
        await asyncio.gather(*(search.evaluate(child) for child in fresh))
        search.budget.give(cost * len(plan))
        expanded = {node.id for node, _ in plan}
        pool = fresh + [node for node in frontier if node.id not in expanded]
        frontier = sorted(pool, key=_rank)[: search.strategy.beam_width]
        search.kept.append([node.id for node in frontier])
    return min(frontier, key=_rank)


async def mcts(search: TreeSearch) -> Node:
    """UCT over turns: each simulation descends by UCT to a state with fewer than ``branches``
    children, expands one turn, scores it with the critic and backs the score up its path.
    The chosen path follows the most visited child (then the better mean value)."""
    root, cost = search.root, search.per_turn + search.critic_cost
    for _ in range(search.strategy.simulations):
        node, path = root, [root]
        while True:
            if not search.open(node):  # an ended state: its score is its value
                if node.score is None:
                    if not search.budget.take(search.critic_cost):
                        return _most_visited(root)
                    await search.evaluate(node)
                    search.budget.give(search.critic_cost)
                break
            if len(node.children) < search.strategy.branches:
                if not search.budget.take(cost):
                    return _most_visited(root)
                child = await search.child(node, len(node.children))
                search.mark_duplicate(child)
                if child.duplicate_of is not None:  # the same turn again: its sibling stands in
                    child = search.nodes[child.duplicate_of]
                await search.evaluate(child)
                search.budget.give(cost)
                node = child
                path.append(node)
                break
            node = max(_distinct(node), key=lambda c, p=node: _uct(p, c, search))
            path.append(node)
        value = node.score or 0.0
        for visited in path:
            visited.visits += 1
            visited.value += value
    return _most_visited(root)


def _distinct(node: Node) -> list[Node]:
    return [child for child in node.children if child.duplicate_of is None]


def _uct(parent: Node, child: Node, search: TreeSearch) -> float:
    if child.visits == 0:
        return math.inf
    explore = math.sqrt(math.log(max(parent.visits, 1)) / child.visits)
    return child.value / child.visits + search.strategy.exploration * explore


def _most_visited(root: Node) -> Node:
    node = root
    while children := _distinct(node):
        node = max(children, key=lambda c: (c.visits, c.value / max(c.visits, 1), -c.id))
    return node


# A*: the cost of a path is this much per turn plus what the critic finds missing (1 - score).
STEP_COST = 0.05


def _cost(node: Node) -> tuple[float, int]:
    """A*'s f = g + h: turns taken so far (g) plus the critic's shortfall (h), then the node."""
    return (STEP_COST * node.depth + 1.0 - (node.score or 0.0), node.id)


async def astar(search: TreeSearch) -> Node:
    """Best-first (A*): expand the cheapest state (``_cost``) into ``branches`` candidates,
    until the cheapest state has ended (the goal) or no candidate is affordable."""
    frontier, cost = [search.root], search.per_turn + search.critic_cost
    while True:
        node = min(frontier, key=_cost)
        if not search.open(node):
            return node
        affordable = 0
        while affordable < search.strategy.branches and search.budget.take(cost):
            affordable += 1
        if not affordable:
            return node
        frontier.remove(node)
        children = await asyncio.gather(*(search.child(node, b) for b in range(affordable)))
        for child in children:
            search.mark_duplicate(child)
        fresh = [child for child in children if child.duplicate_of is None]
        await asyncio.gather(*(search.evaluate(child) for child in fresh))
        search.budget.give(cost * affordable)
        frontier += fresh


SEARCHES: dict[str, Callable[[TreeSearch], Awaitable[Node]]] = {
    "best-of-n": best_of_n,
    "beam": beam,
    "mcts": mcts,
    "astar": astar,
}
