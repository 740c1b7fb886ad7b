"""The compared methods. The agent's methods are configurations of the one agent loop, so a
difference between them is a difference in what the loop was allowed to do, never in code
paths. The baselines from the literature and the ceilings (``PIPELINES``) are fixed retrieval
pipelines (``sleuth.evaluate.pipelines``) whose answer call is RAG's own, over the same read
budget: ``top_k`` documents of ``doc_chars`` characters."""

from __future__ import annotations

import re
from collections.abc import Iterator
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
    "ircot": "IRCoT (Trivedi et al. 2023): each chain-of-thought sentence is the next query; "
    "the reader answers from the documents collected",
    "iter_retgen": "Iter-RetGen (Shao et al. 2023): rounds of retrieve with the question plus "
    "the previous generation, then generate; the last round's answer stands",
    "self_ask": "Self-Ask (Press et al. 2023): follow-up questions one at a time, each answered "
    "from its own retrieval; the reader answers from the documents collected",
    "agent_ask": "the agent plus an ask action: it may ask the user (--user) to clarify the "
    "question",
    "agent_rag_ask": "agent_rag plus the ask action",
    "agent_rag_access": "agent_rag plus the access action: read a whole document page by page "
    "(long horizons: give it --max-turns 40 and a --context-budget)",
    "links": "link following (as PathRetriever, Asai et al. 2020, follows Wikipedia's links): the "
    "question's best document, the documents the question names and one the best document "
    "names (exact-title searches), then the question's next hits; no model call but the reader's",
    "oracle": "ceiling: the reader over the question's gold evidence documents only",
    "searcher": "s3-style searcher (Jiang et al. 2025): RAG's top-k first, then follow-up "
    "searches; it selects which documents the reader answers from, within RAG's read budget "
    "(top-k documents; places it leaves are filled in reading order); searcher_selected@K: "
    "the reader reads the selection alone (at most K documents), as s3's reader does; "
    "searcher_links@K: the searcher may also follow links (<follow>N</follow>: the documents "
    "titled by the names in document N, or in the question for 0)",
}
# Single-shot RAG, or the searcher, reading K documents (the read budget: K x doc_chars):
# "rag@5", "searcher@5"; "searcher_selected@5" reads the searcher's selection alone;
# "searcher_links@5" may also follow links (the ``follow`` action).
RAG_AT = re.compile(r"rag@(\d+)")
SEARCHER_AT = re.compile(r"searcher(_selected|_links)?@(\d+)")
MAX_RAG_K = 50
# Methods run as a fixed pipeline (sleuth.evaluate.pipelines.PIPELINES), not as the loop.
PIPELINES = ("ircot", "iter_retgen", "self_ask", "links", "oracle")


def rag_depth(method: str) -> int | None:
    """``K`` of ``rag@K``; None for any other name."""
    found = RAG_AT.fullmatch(method)
    return int(found.group(1)) if found else None


def searcher_depth(method: str) -> int | None:
    """``K`` of ``searcher@K``, ``searcher_selected@K`` or ``searcher_links@K``; else None."""
    found = SEARCHER_AT.fullmatch(method)
    return int(found.group(2)) if found else None


def reads_selection_only(method: str) -> bool:
    """``searcher_selected@K``: the reader reads the selection alone, no places filled."""
    found = SEARCHER_AT.fullmatch(method)
    return bool(found and found.group(1) == "_selected")


def follows_links(method: str) -> bool:
    """``searcher_links@K``: the searcher may also ``follow`` a document's links."""
    found = SEARCHER_AT.fullmatch(method)
    return bool(found and found.group(1) == "_links")


def searcher_name(kind: str, k: int) -> str:
    """The canonical name of a searcher method: ``searcher_links@5`` from ("_links", 5)."""
    return f"searcher{kind}@{k}"


def base_method(method: str) -> str:
    """The entry of ``METHODS`` a name belongs to: ``rag@5`` is a ``rag``."""
    if rag_depth(method) is not None:
        return "rag"
    return "searcher" if searcher_depth(method) is not None else method


class _MethodSet:
    """Names of ``METHODS`` entries; ``in`` also holds their variants (``rag@5`` with ``rag``)."""

    def __init__(self, names: set[str]) -> None:
        self.names = frozenset(names)

    def __contains__(self, method: object) -> bool:
        return isinstance(method, str) and base_method(method) in self.names

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self.names))


# Which methods need a search engine (the oracle too: it fetches the gold documents by id).
NEEDS_SEARCH = _MethodSet(
    {
        "rag",
        "agent",
        "agent_judge",
        "agent_rag",
        "agent_ask",
        "agent_rag_ask",
        "agent_rag_access",
        "searcher",
    }
    | set(PIPELINES)
)


# The methods a tree-search strategy (``--strategy``, ``sleuth.agent.strategies``) applies to:
# the loop's searching configurations. The others take one answer turn, or are pipelines.
TREE_METHODS = _MethodSet({"agent", "agent_judge", "agent_rag", "agent_rag_access", "searcher"})


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
    "context_budget",
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
    """The ``AgentConfig`` keyword arguments of ``method`` under ``budget``; for a pipeline,
    those of its answer call (RAG's) plus ``pipeline``: its name."""
    check_method(method)
    settings: dict[str, Any] = budget_record(budget)
    settings["seed"] = seed
    if (k := rag_depth(method)) is not None:  # RAG reading k documents: its budget grows with k
        settings.update(
            actions=("answer",),
            top_k=k,
            prefetch_k=k,
            max_turns=min(budget.max_turns, 2),
            final_read=0,
        )
    elif method in PIPELINES:  # the answer call reads top_k documents, as RAG's does
        settings.update(
            pipeline=method,
            actions=("answer",),
            prefetch_k=budget.top_k,
            max_turns=min(budget.max_turns, 2),
            final_read=0,
        )
    elif method == "closed_book":
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
    elif base_method(method) == "searcher":
        # Turn 0 is RAG at the read budget K; follow-ups show top_k hits each; the reader reads
        # K documents: the selection first, then the reading order (RAG's K, then follow-ups).
        k = searcher_depth(method) or budget.top_k
        settings.update(
            actions=("search", "follow", "select")
            if follows_links(method)
            else ("search", "select"),
            prefetch_k=k,
            final_read=k,
            read_selection_only=reads_selection_only(method),
        )
    elif method == "agent_rag":
        settings.update(actions=("search", "open", "answer"), prefetch_k=budget.top_k)
    elif method == "agent_ask":
        settings.update(actions=("search", "open", "ask", "answer"), prefetch_k=0)
    elif method == "agent_rag_ask":
        settings.update(actions=("search", "open", "ask", "answer"), prefetch_k=budget.top_k)
    elif method == "agent_rag_access":
        settings.update(actions=("search", "open", "access", "answer"), prefetch_k=budget.top_k)
    else:  # agent_judge
        settings.update(actions=("search", "open", "judge", "answer"), prefetch_k=0)
    return settings


def agent_config(method: str, budget: AgentConfig, seed: int | None = None) -> AgentConfig:
    """The loop's configuration of ``method`` (for a pipeline: its answer call's)."""
    from sleuth.agent import AgentConfig

    settings = method_settings(method, budget, seed)
    settings.pop("pipeline", None)
    return AgentConfig(**settings)


def check_method(name: str) -> None:
    """Refuse a name that is no method, saying what the names are."""
    k = rag_depth(name) if rag_depth(name) is not None else searcher_depth(name)
    if k is not None and not 1 <= k <= MAX_RAG_K:
        kind = name.partition("@")[0]  # rag, searcher, searcher_selected or searcher_links
        raise SleuthError(f"{name}: {kind}@K reads K documents; K must be 1 to {MAX_RAG_K}")
    if k is None and name not in METHODS:
        raise SleuthError(
            f"unknown method {name!r}; choose from {', '.join(METHODS)}, or rag@K "
            f"(single-shot RAG reading K documents, K 1 to {MAX_RAG_K}, e.g. rag@5), or "
            "searcher@K (the searcher within a read budget of K documents; "
            "searcher_selected@K: the reader reads its selection alone; searcher_links@K: it "
            "may also follow links)"
        )


def parse_methods(text: str) -> list[str]:
    """``"closed_book,rag,rag@5"`` -> validated, de-duplicated list in the given order
    (``rag@05`` is written ``rag@5``)."""
    names = [part.strip() for part in text.split(",") if part.strip()]
    names = [f"rag@{k}" if (k := rag_depth(n)) is not None else n for n in names]
    names = [
        searcher_name(SEARCHER_AT.fullmatch(n).group(1) or "", k)  # type: ignore[union-attr]
        if (k := searcher_depth(n)) is not None
        else n
        for n in names
    ]
    names = list(dict.fromkeys(names))
    if not names:
        raise SleuthError("no methods given; choose from " + ", ".join(METHODS))
    for name in names:
        check_method(name)
    return names
