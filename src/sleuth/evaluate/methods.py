"""The compared methods. Each is only a configuration of the one agent loop, so a difference in
the results is a difference in what the loop was allowed to do, never in code paths."""

from __future__ import annotations

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


# The limits every method of a run shares: these fields of the run's one ``AgentConfig`` (a method
# then sets its actions and prefetch), recorded under "budget" in the run's config.json.
BUDGET_FIELDS = (
    "top_k",
    "max_turns",
    "max_searches",
    "min_searches",
    "max_tokens",
    "max_new_tokens",
    "wall_time_s",
    "doc_chars",
    "temperature",
    "action_format",
    "untagged_answer",
    "constrain",
    "think",
    "prompt_example",
    "answer_spans",
    "final_read",
)
# Evaluation's shorter episode where its defaults differ from AgentConfig's.
EVAL_DEFAULTS: dict[str, Any] = {"max_turns": 8, "max_searches": 4, "max_new_tokens": 128}


def eval_budget(**changes: Any) -> AgentConfig:
    """The run-wide settings of an evaluation: an ``AgentConfig`` at evaluation's defaults with
    ``changes`` (budget fields only; the command-line flags' own checks first, so a bad flag is
    named as the user typed it)."""
    from sleuth.agent import AgentConfig

    unknown = sorted(set(changes) - set(BUDGET_FIELDS))
    if unknown:
        raise SleuthError(f"not budget settings: {unknown}; a budget sets {BUDGET_FIELDS}")
    for name in ("top_k", "max_turns", "max_new_tokens"):
        if changes.get(name, 1) < 1:
            raise SleuthError(f"--{name.replace('_', '-')} must be at least 1")
    if changes.get("max_searches", 0) < 0 or changes.get("temperature", 0) < 0:
        raise SleuthError("--max-searches and --temperature cannot be negative")
    return AgentConfig(**{**EVAL_DEFAULTS, **changes})


def budget_record(budget: AgentConfig) -> dict[str, Any]:
    """The budget as config.json records it: its fields, nothing method-specific."""
    return {name: getattr(budget, name) for name in BUDGET_FIELDS}


def method_settings(method: str, budget: AgentConfig, seed: int | None = None) -> dict[str, Any]:
    """The ``AgentConfig`` keyword arguments of ``method`` under ``budget``."""
    if method not in METHODS:
        raise SleuthError(f"unknown method {method!r}; choose from {', '.join(METHODS)}")
    settings: dict[str, Any] = budget_record(budget)
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


def agent_config(method: str, budget: AgentConfig, seed: int | None = None) -> AgentConfig:
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
