"""The compared methods. Each is only a configuration of the one agent loop, so a difference in
the results is a difference in what the loop was allowed to do, never in code paths."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from sleuth.errors import SleuthError

if TYPE_CHECKING:
    from sleuth.agent import AgentConfig

METHODS: dict[str, str] = {
    "closed_book": "answer from the model's own memory, no retrieval",
    "rag": "retrieve top-k for the question once, then answer (single-shot RAG)",
    "agent": "multi-turn loop: search and open documents until it answers",
    "agent_judge": "the agent plus a judge action to check evidence before answering",
    "agent_rag": "retrieve top-k for the question first (as rag), then search and open until "
    "it answers (IRCoT-style: the model writes only the follow-up queries)",
}
# Which methods need a search engine.
NEEDS_SEARCH = {"rag", "agent", "agent_judge", "agent_rag"}


@dataclass(frozen=True, slots=True)
class Budget:
    """Limits shared by every method of a run, so methods differ only in their actions."""

    top_k: int = 3
    max_turns: int = 8
    max_searches: int = 4
    min_searches: int = 1  # agent methods: searches before the answer action is offered
    max_tokens: int = 8192
    max_new_tokens: int = 128
    wall_time_s: float = 300.0
    doc_chars: int = 600
    temperature: float = 0.0
    action_format: str = "tags"
    # Take a reply with no action tag as the answer (tiny models often answer in prose).
    untagged_answer: bool = False
    constrain: bool = True  # decode each turn under the action grammar (sleuth.agent.grammar)
    think: bool = True  # the grammar admits a short <think> before the action
    prompt_example: bool = True  # a worked example in the system prompt
    answer_spans: bool = False  # answers are spans of the documents shown (AgentConfig)
    final_read: int = 0  # agent methods: answer from a fresh read of N documents (AgentConfig)


def method_settings(method: str, budget: Budget, seed: int | None = None) -> dict[str, Any]:
    """The ``AgentConfig`` keyword arguments of ``method`` under ``budget``."""
    if method not in METHODS:
        raise SleuthError(f"unknown method {method!r}; choose from {', '.join(METHODS)}")
    settings: dict[str, Any] = {k: v for k, v in asdict(budget).items()}
    settings["seed"] = seed
    if method == "closed_book":
        settings.update(
            actions=("answer",), prefetch_k=0, max_turns=min(budget.max_turns, 2), final_read=0
        )
    elif method == "rag":  # its one answer already reads the documents afresh
        settings.update(
            actions=("answer",),
            prefetch_k=budget.top_k,
            max_turns=min(budget.max_turns, 2),
            final_read=0,
        )
    elif method == "agent":
        settings.update(actions=("search", "open", "answer"), prefetch_k=0)
    elif method == "agent_rag":
        settings.update(actions=("search", "open", "answer"), prefetch_k=budget.top_k)
    else:  # agent_judge
        settings.update(actions=("search", "open", "judge", "answer"), prefetch_k=0)
    return settings


def agent_config(method: str, budget: Budget, seed: int | None = None) -> AgentConfig:
    from sleuth.agent import AgentConfig

    return AgentConfig(**method_settings(method, budget, seed))


def parse_methods(text: str) -> list[str]:
    """``"closed_book,rag"`` -> validated, de-duplicated list in the given order."""
    names = list(dict.fromkeys(part.strip() for part in text.split(",") if part.strip()))
    if not names:
        raise SleuthError("no methods given; choose from " + ", ".join(METHODS))
    for name in names:
        if name not in METHODS:
            raise SleuthError(f"unknown method {name!r}; choose from {', '.join(METHODS)}")
    return names
