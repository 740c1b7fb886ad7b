"""The trajectory: the one record of an episode. Metrics, rewards, reports and training read it;
nothing re-runs to explain a result."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

from sleuth.llm.base import Message

STOP_REASONS = (
    "answered",
    "max_turns",
    "max_searches",
    "max_tokens",
    "wall_time",
    "max_invalid",
    "llm_error",
    "search_error",
    "call_budget",
)


@dataclass(slots=True)
class HitRef:
    """A hit as recorded in a trajectory: enough to score retrieval without the text."""

    id: str
    score: float
    rank: int
    new: bool = True  # False when the knowledge cache had already shown this document
    # Which engine produced the hit and at which noise level ("" / None: the run's real engine,
    # named in its config); label says what a simulated engine made of it (real,
    # hard_negative, random, useful, noisy). Old trajectories without them still load.
    engine: str = ""
    noise: float | None = None
    label: str = ""


@dataclass(slots=True)
class Step:
    index: int
    prompt_delta: list[Message]  # messages appended to the conversation before this call
    model_output: str  # raw text the model produced
    action: str  # search | open | judge | answer | ask | invalid
    argument: str = ""  # the query, doc id, judge verdict, answer or clarification question
    hits: list[HitRef] = field(default_factory=list)
    observation: str = ""  # what the environment returned to the model
    prompt_tokens: int = 0
    completion_tokens: int = 0
    llm_seconds: float = 0.0
    tool_seconds: float = 0.0
    error: str = ""  # why the action was invalid or failed, if it was
    # How the action grammar was applied to this turn: "regex"/"json_schema" (enforced by the
    # backend), "fallback: ..." (the server refused it), "not enforced: ..." or "" (not asked).
    constraint: str = ""
    # True: this call did not continue the conversation; prompt_delta is its whole prompt
    # (the final read, AgentConfig.final_read). Conversation rebuilds skip it.
    fresh_context: bool = False
    # Which model made this call when the agent has a reader (``Agent(reader=...)``):
    # "searcher" or "reader"; "" (and left out of the file) for one model or a tool step.
    role: str = ""
    # Under a context budget (``AgentConfig.context_budget``; 0 and left out of the file
    # otherwise): the prompt's size as the budget counted it (the model's tokenizer where the
    # backend has one) and how many older observations it carried as stubs.
    context_tokens: int = 0
    dropped_observations: int = 0


@dataclass(slots=True)
class Trajectory:
    episode_id: str
    question: str
    answer: str | None = None
    stop_reason: str = ""
    steps: list[Step] = field(default_factory=list)
    config: dict[str, Any] = field(default_factory=dict)  # resolved agent config
    model: str = ""
    started_at: float = 0.0  # unix seconds
    seconds: float = 0.0
    metadata: dict[str, Any] = field(default_factory=dict)  # e.g. benchmark id, gold answers
    # A tree search's nodes (``sleuth.agent.strategies``, ``sleuth.agent.tree.tree_record``):
    # each with its parent, action, critic score and whether ``steps`` went through it; empty
    # (and left out of the file) for ReAct's one chain.
    tree: list[dict[str, Any]] = field(default_factory=list)

    # Derived views used by metrics and rewards.
    @property
    def searches(self) -> list[Step]:
        return [s for s in self.steps if s.action == "search"]

    @property
    def retrievals(self) -> list[Step]:
        """The steps that brought documents from the engine: searches and link ``follow``s
        (the final read's sources, in order)."""
        return [s for s in self.steps if s.action in ("search", "follow")]

    @property
    def retrieved_ids(self) -> list[str]:
        """Every document id shown to the model, first-seen order, de-duplicated."""
        seen: dict[str, None] = {}
        for step in self.steps:
            for hit in step.hits:
                seen.setdefault(hit.id, None)
        return list(seen)

    @property
    def prompt_tokens(self) -> int:
        return sum(s.prompt_tokens for s in self.steps)

    @property
    def completion_tokens(self) -> int:
        return sum(s.completion_tokens for s in self.steps)

    @property
    def invalid_actions(self) -> int:
        return sum(1 for s in self.steps if s.action == "invalid")

    def usage_by_role(self) -> dict[str, dict[str, Any]]:
        """Per role ("searcher", "reader"): its model, calls, tokens and model seconds, summed
        over the steps that name a role (``Step.role``)."""
        models = {"searcher": self.model, "reader": str(self.metadata.get("reader", ""))}
        usage: dict[str, dict[str, Any]] = {}
        for role, model in models.items():
            steps = [s for s in self.steps if s.role == role]
            usage[role] = {
                "model": model,
                "calls": len(steps),
                "prompt_tokens": sum(s.prompt_tokens for s in steps),
                "completion_tokens": sum(s.completion_tokens for s in steps),
                "llm_seconds": sum(s.llm_seconds for s in steps),
            }
        return usage

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        if not data["tree"]:  # ReAct's trajectory reads as before tree searches
            del data["tree"]
        for step in data["steps"]:  # a step without a role: the file reads as before readers
            for name in OPTIONAL_STEP_FIELDS:  # and as before context budgets
                if not step[name]:
                    del step[name]
        return data

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), ensure_ascii=False)

    @classmethod
    def from_dict(cls, data: Any) -> Trajectory:
        """The trajectory a JSON object describes; ``TrajectoryFormatError`` naming the first
        field of the wrong type (a damaged file must not reach pages and reports half-read)."""
        data = dict(_checked(data, TRAJECTORY_FIELDS, "trajectory"))
        steps = []
        for i, raw in enumerate(data.pop("steps", [])):
            raw = dict(_checked(raw, STEP_FIELDS, f"steps[{i}]"))
            raw["hits"] = [
                HitRef(**_checked(h, HIT_FIELDS, f"steps[{i}].hits[{j}]"))
                for j, h in enumerate(raw.get("hits", []))
            ]
            steps.append(Step(**raw))
        return cls(steps=steps, **data)


class TrajectoryFormatError(ValueError):
    """A trajectory record whose shape is not a trajectory's (wrong type, unknown field)."""


# Field -> (accepted JSON types, required). ``float`` fields take integers too; ``None`` is
# accepted only where listed. Checked before any dataclass is built.
_NUMBER = (int, float)
TRAJECTORY_FIELDS: dict[str, tuple[tuple[type, ...], bool]] = {
    "episode_id": ((str,), True),
    "question": ((str,), True),
    "answer": ((str, type(None)), False),
    "stop_reason": ((str,), False),
    "steps": ((list,), False),
    "config": ((dict,), False),
    "model": ((str,), False),
    "started_at": (_NUMBER, False),
    "seconds": (_NUMBER, False),
    "metadata": ((dict,), False),
    "tree": ((list,), False),
}
STEP_FIELDS: dict[str, tuple[tuple[type, ...], bool]] = {
    "index": ((int,), True),
    "prompt_delta": ((list,), True),
    "model_output": ((str,), True),
    "action": ((str,), True),
    "argument": ((str,), False),
    "hits": ((list,), False),
    "observation": ((str,), False),
    "prompt_tokens": ((int,), False),
    "completion_tokens": ((int,), False),
    "llm_seconds": (_NUMBER, False),
    "tool_seconds": (_NUMBER, False),
    "error": ((str,), False),
    "constraint": ((str,), False),
    "fresh_context": ((bool,), False),
    "role": ((str,), False),
    "context_tokens": ((int,), False),
    "dropped_observations": ((int,), False),
}
# Left out of a step's record when empty, so files without them read and write as before.
OPTIONAL_STEP_FIELDS = ("role", "context_tokens", "dropped_observations")
HIT_FIELDS: dict[str, tuple[tuple[type, ...], bool]] = {
    "id": ((str,), True),
    "score": (_NUMBER, True),
    "rank": ((int,), True),
    "new": ((bool,), False),
    "engine": ((str,), False),
    "noise": ((*_NUMBER, type(None)), False),
    "label": ((str,), False),
}
_JSON_NAMES = {
    str: "a string",
    int: "an integer",
    float: "a number",
    bool: "true or false",
    list: "a list",
    dict: "an object",
    type(None): "null",
}


def _json_name(value: object) -> str:
    return _JSON_NAMES.get(type(value), type(value).__name__)


def _checked(
    data: Any, fields: dict[str, tuple[tuple[type, ...], bool]], where: str
) -> dict[str, Any]:
    """``data`` if it is an object whose fields have the types ``fields`` lists, else a
    ``TrajectoryFormatError`` saying which field of ``where`` is wrong and what it holds."""
    if not isinstance(data, dict):
        raise TrajectoryFormatError(f"{where} is {_json_name(data)}, not an object")
    for name, value in data.items():
        if name not in fields:
            raise TrajectoryFormatError(f"{where} has an unknown field {name!r}")
        kinds, _ = fields[name]
        bad_bool = isinstance(value, bool) and bool not in kinds  # JSON true is not a number
        if bad_bool or not isinstance(value, kinds):
            shown = [k for k in kinds if not (k is int and float in kinds)]
            wanted = " or ".join(_JSON_NAMES[k] for k in shown)
            raise TrajectoryFormatError(f"{where}.{name} is {_json_name(value)}, not {wanted}")
    missing = [name for name, (_, required) in fields.items() if required and name not in data]
    if missing:
        raise TrajectoryFormatError(f"{where} lacks {', '.join(missing)}")
    if fields is STEP_FIELDS and not all(isinstance(m, dict) for m in data["prompt_delta"]):
        raise TrajectoryFormatError(f"{where}.prompt_delta holds something other than messages")
    return data
