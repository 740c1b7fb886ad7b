"""The pieces a tree search over an episode's steps is built from: the call budget, the model
wrapper that counts calls against it, the search tree's nodes and the record of the tree that
a trajectory keeps (``Trajectory.tree``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sleuth.llm.base import LLM, Completion, GenerationConfig, Message

if TYPE_CHECKING:
    from sleuth.agent.executors import EpisodeStop
    from sleuth.agent.loop import Episode
    from sleuth.agent.trajectory import Step

__all__ = ["CallBudget", "CountedLLM", "Node", "tree_record"]


class CallBudget:
    """Model calls of one question, counted by kind ("policy": the agent's turns, forced
    answer and final read; "critic": the critic's), against ``limit``. A search ``take``s the
    most a piece of work can cost before starting it and ``give``s it back after, so work
    running at once can never overrun the limit; what was spent is counted as it is called."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.calls = {"policy": 0, "critic": 0}
        self.held = 0

    @property
    def used(self) -> int:
        return self.calls["policy"] + self.calls["critic"]

    @property
    def left(self) -> int:
        """Calls neither made nor promised to work in progress."""
        return self.limit - self.used - self.held

    def take(self, calls: int) -> bool:
        """Promise ``calls`` to a piece of work; False (nothing promised) when they are not left."""
        if calls > self.left:
            return False
        self.held += calls
        return True

    def give(self, calls: int) -> None:
        """Release a promise once its work is done (what it called is counted in ``used``)."""
        self.held -= calls

    def count(self, kind: str) -> None:
        self.calls[kind] += 1


class CountedLLM:
    """``llm``, each call counted in ``budget`` as ``kind``; the model itself is shared."""

    def __init__(self, llm: LLM, budget: CallBudget, kind: str) -> None:
        self.llm, self.budget, self.kind = llm, budget, kind
        self.name = getattr(llm, "name", type(llm).__name__)

    async def complete(
        self,
        messages: list[Message],
        config: GenerationConfig | None = None,
        tools: list[dict[str, Any]] | None = None,
    ) -> Completion:
        self.budget.count(self.kind)
        return await self.llm.complete(messages, config, tools)

    async def aclose(self) -> None:
        return None  # the wrapped model belongs to the caller


@dataclass(eq=False)
class Node:
    """A state of the search: the episode after the path of turns from the root. ``step``: the
    step its turn recorded (None: the root, or a turn stopped before recording one); ``stop``:
    the limit or failure that ended it; ``done``: no turn may follow (answered, selected or
    stopped); ``duplicate_of``: a sibling that took the same action (not searched further)."""

    id: int
    parent: Node | None
    episode: Episode
    depth: int = 0
    step: Step | None = None
    stop: EpisodeStop | None = None
    done: bool = False
    score: float | None = None
    duplicate_of: int | None = None
    children: list[Node] = field(default_factory=list)
    route: str = "0"  # the branch taken at each depth from the root, e.g. "0/2/0"
    visits: int = 0  # MCTS: simulations through this node
    value: float = 0.0  # MCTS: sum of the values backed up through it

    @property
    def ended(self) -> str:
        """How the episode's own action ended it ("answered", "selected"), if it did."""
        return self.episode.trajectory.stop_reason

    @property
    def failed(self) -> bool:
        return self.stop is not None and self.stop.reason in ("llm_error", "search_error")

    def path(self) -> list[Node]:
        """The nodes from the root to this one."""
        nodes, node = [], self
        while node is not None:
            nodes.append(node)
            node = node.parent
        return nodes[::-1]


def tree_record(nodes: list[Node], chosen: Node, with_visits: bool) -> list[dict[str, Any]]:
    """Every node as the trajectory keeps it: its parent, the step its turn took (action,
    argument, error; ``step``: the step's index in the trajectory when it is on the chosen
    path), the critic's score and whether the final trajectory went through it."""
    on_path = {node.id for node in chosen.path()}
    record = []
    for node in nodes:
        step = node.step
        entry: dict[str, Any] = {
            "id": node.id,
            "parent": None if node.parent is None else node.parent.id,
            "depth": node.depth,
            "action": step.action if step else "",
            "argument": step.argument if step else "",
            "error": step.error if step else "",
            "score": None if node.score is None else round(node.score, 4),
            "chosen": node.id in on_path,
            "step": step.index if step is not None and node.id in on_path else None,
            "stop": node.stop.reason if node.stop else (node.ended if node.done else ""),
        }
        if node.duplicate_of is not None:
            entry["duplicate_of"] = node.duplicate_of
        if with_visits:
            entry["visits"] = node.visits
        record.append(entry)
    return record
