"""The observation budget of long episodes (``AgentConfig.context_budget``).

A 40-turn episode that keeps every search result and page in its prompt outgrows a small
model's context. Under a budget, the prompt a model call sends is fitted: the oldest
observations (search results, opened pages, accessed pages) are replaced by one-line stubs
until the prompt fits, and the documents they showed stay in a notes block (id, title, start
of the text) at the end of the system prompt, so the agent can still name, open, cite and select
them. If stubbing every older observation is not enough, the notes lose their snippets, then
their oldest lines. The conversation itself (``Episode.messages``) and the trajectory keep every
observation: only what is sent is fitted, so replays and tree search see the whole episode.

Which messages are observations is read from the trajectory (a step's observation, as
``Episode.observe`` wrapped it), not from state of its own: a copied episode fits the same way.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from sleuth.agent.escape import neutralise
from sleuth.agent.executors import page_request
from sleuth.agent.knowledge import KnowledgeCache
from sleuth.agent.trajectory import Step
from sleuth.llm.base import Message

DROPPABLE = ("search", "open", "access")  # actions whose observations show documents
NOTE_CHARS = 90  # characters of a document's text in its notes line
NOTES_HEAD = (
    "Notes: documents found earlier whose full text was dropped from this conversation to save "
    "room (id, title, start of the text); open or access one to read it again."
)
Counter = Callable[[list[Message]], int]


def approx_tokens(messages: list[Message]) -> int:
    """About 4 characters a token, rounded up per message (with its tool calls): the count for
    backends without a tokenizer here (OpenAI-compatible servers, the scripted model)."""
    total = 0
    for message in messages:
        text = str(message.get("content") or "")
        if message.get("tool_calls"):
            text += json.dumps(message["tool_calls"])
        total += -(-len(text) // 4)
    return total


def token_counter(llm: object) -> Counter:
    """The model's own count of a chat prompt (its tokenizer and chat template) where the
    backend has one (``count_tokens``: local transformers and OpenVINO), else the estimate."""
    count = getattr(llm, "count_tokens", None)
    return count if callable(count) else approx_tokens


@dataclass(slots=True)
class Fitted:
    """The prompt a call sends, its size (``tokens``), how many observations it stubbed, and
    whether it is still over the budget (stubs and notes could not shrink it enough)."""

    messages: list[Message]
    tokens: int
    dropped: int = 0
    over: bool = False


@dataclass(slots=True)
class _Observation:
    index: int  # in the conversation
    stub: str
    doc_ids: tuple[str, ...]


def fit(
    messages: list[Message],
    steps: Iterable[Step],
    knowledge: KnowledgeCache,
    budget: int,
    count: Counter,
    numbered: bool = False,
) -> Fitted:
    """``messages`` fitted to ``budget`` tokens (``count`` measures a prompt): unchanged when
    they fit; else the fewest oldest observations stubbed (never the ones the model is about to
    answer), then the notes shortened. ``numbered``: notes show the episode-wide document
    numbers (``select``)."""
    tokens = count(messages)
    if tokens <= budget:
        return Fitted(messages, tokens)
    found = _observations(messages, list(steps))

    def compose(k: int, snippets: bool = True, keep: int | None = None) -> list[Message]:
        return _compose(messages, found[:k], knowledge, numbered, snippets, keep)

    best: Fitted | None = None
    k = _fewest(len(found), lambda k: count(compose(k)) <= budget)
    if k is not None:
        prompt = compose(k)
        return Fitted(prompt, count(prompt), k)
    n = len(found)
    if n and count(titles := compose(n, snippets=False)) <= budget:
        best = Fitted(titles, count(titles), n)
    elif n:
        noted = len(_noted(found, knowledge))
        drop = _fewest(noted, lambda d: count(compose(n, False, noted - d)) <= budget)
        prompt = compose(n, False, 0 if drop is None else noted - drop)
        best = Fitted(prompt, count(prompt), n, over=drop is None)
    return best or Fitted(messages, tokens, 0, over=True)


def _fewest(n: int, fits: Callable[[int], bool]) -> int | None:
    """The smallest k in 1..n with ``fits(k)`` (sizes shrink as k grows: a binary search), or
    None when even n does not fit."""
    if n < 1 or not fits(n):
        return None
    low, high = 1, n
    while low < high:
        middle = (low + high) // 2
        if fits(middle):
            high = middle
        else:
            low = middle + 1
    return low


def _observations(messages: list[Message], steps: list[Step]) -> list[_Observation]:
    """The conversation's document-showing observations, oldest first, that precede the model's
    latest turn (the ones after it are what the model answers next: never stubbed)."""
    shown: dict[str, tuple[str, tuple[str, ...]]] = {}
    searches = 0
    for step in steps:
        if step.action == "search":
            searches += 1
        if step.action not in DROPPABLE or step.error or step.fresh_context:
            continue
        if not step.observation:
            continue  # (the prefetch's message also holds the question: it never matches)
        stub, ids = _stub(step, searches)
        shown[f"<information>\n{step.observation}\n</information>"] = (stub, ids)
        shown[step.observation] = (stub, ids)
    last_turn = max((i for i, m in enumerate(messages) if m.get("role") == "assistant"), default=0)
    found = []
    for i, message in enumerate(messages[:last_turn]):
        content = message.get("content")
        if (
            message.get("role") in ("user", "tool")
            and isinstance(content, str)
            and content in shown
        ):
            found.append(_Observation(i, *shown[content]))
    return found


def _stub(step: Step, search: int) -> tuple[str, tuple[str, ...]]:
    """The line that stands for a dropped observation, and the documents it showed."""
    if step.action == "search":
        ids = tuple(hit.id for hit in step.hits)
        if not ids:
            return f"[results of search {search} dropped: no results]", ids
        listed = ", ".join(neutralise(i) for i in ids)
        return f"[results of search {search} dropped: ids {listed}; facts kept in notes]", ids
    if step.action == "access":
        doc_id, page = page_request(step.argument)
        return f"[page {page} of {neutralise(doc_id)} dropped; facts kept in notes]", (doc_id,)
    doc_id = step.argument.strip()
    return f"[document {neutralise(doc_id)} dropped; facts kept in notes]", (doc_id,)


def _noted(found: list[_Observation], knowledge: KnowledgeCache) -> list[str]:
    """The documents the stubbed observations showed, in first-seen order, once each."""
    ids = {doc_id for obs in found for doc_id in obs.doc_ids if doc_id in knowledge.seen}
    return [doc_id for doc_id in knowledge.seen if doc_id in ids]


def _notes(ids: list[str], knowledge: KnowledgeCache, numbered: bool, snippets: bool) -> list[str]:
    lines = []
    for doc_id in ids:
        title, text = knowledge.documents.get(doc_id, (neutralise(knowledge.seen[doc_id]), ""))
        number = f"[{knowledge.number_of(doc_id)}] " if numbered else "- "
        line = f"{number}(id: {neutralise(doc_id)}) {title}"
        if snippets and text:
            short = text if len(text) <= NOTE_CHARS else text[:NOTE_CHARS].rsplit(" ", 1)[0]
            line += f": {short}{'' if short == text else ' ...'}"
        lines.append(line)
    return lines


def _compose(
    messages: list[Message],
    found: list[_Observation],
    knowledge: KnowledgeCache,
    numbered: bool,
    snippets: bool,
    keep: int | None,
) -> list[Message]:
    """``messages`` with ``found`` stubbed and the notes of their documents (the last ``keep``
    of them, all when None) at the end of the system prompt. New dicts: nothing is mutated."""
    if not found:
        return messages
    prompt = list(messages)
    for obs in found:
        prompt[obs.index] = {**messages[obs.index], "content": obs.stub}
    ids = _noted(found, knowledge)
    if keep is not None:
        ids = ids[len(ids) - keep :] if keep else []
    lines = _notes(ids, knowledge, numbered, snippets)
    if lines and prompt and prompt[0].get("role") == "system":
        system = str(prompt[0].get("content") or "")
        prompt[0] = {**prompt[0], "content": "\n\n".join([system, NOTES_HEAD, "\n".join(lines)])}
    return prompt
