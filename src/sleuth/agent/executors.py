"""What each action does in an episode: one executor per entry of ``sleuth.agent.actions``.

An executor runs its action on the episode's state, writes the observation (and any error) into
the step being recorded, queues the observation for the model and says whether the episode is
over. ``Episode.execute`` dispatches through ``EXECUTORS``; adding an action is its table entry
plus one function here, registered in ``EXECUTORS`` (tests check the two agree).

Executors see the episode through ``EpisodeState``, not the loop's class, so this module sits
below ``sleuth.agent.loop`` (which imports it) and no import goes round.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Protocol

from sleuth.agent import prompts
from sleuth.agent.config import AgentConfig
from sleuth.agent.escape import neutralise
from sleuth.agent.knowledge import KnowledgeCache
from sleuth.agent.parsing import Action, judge_verdict
from sleuth.agent.trajectory import Step, Trajectory
from sleuth.errors import DocumentNotFound, QueryError, SleuthError
from sleuth.search.base import SearchEngine
from sleuth.search.links import LINK_LOOKUP_K, MAX_LINK_LOOKUPS, linked_hits, names_in
from sleuth.types import Document, Hit

AskUser = Callable[[str], Awaitable[str]]
OPEN_CHARS_FACTOR = 4  # an opened document shows this many times doc_chars


class EpisodeStop(Exception):
    """Ends an episode early with a ``reason`` (the trajectory's ``stop_reason``) and an optional
    ``error``; raised by the loop's limits, its failures and executors (a spent search budget),
    caught by whoever drives the episode (``Agent.run``, the viewer's replay), who records it
    and may still force an answer."""

    def __init__(self, reason: str, error: str = "") -> None:
        super().__init__(reason)
        self.reason, self.error = reason, error


class Environment(Protocol):
    """What the agent brings to an episode besides the model (``sleuth.agent.loop.Agent``)."""

    search: SearchEngine | None
    ask_user: AskUser | None


class EpisodeState(Protocol):
    """The part of ``sleuth.agent.loop.Episode`` an executor may read and change."""

    agent: Environment
    cfg: AgentConfig
    knowledge: KnowledgeCache
    trajectory: Trajectory
    question: str
    searches: int
    queries: set[str]
    answer_only: bool

    async def search(self, query: str, k: int) -> list[Hit]: ...

    def observe(self, text: str, action: Action, wrap: bool = False) -> None: ...


Executor = Callable[[EpisodeState, Action, Step], Awaitable[bool]]


def refuse(ep: EpisodeState, action: Action, step: Step, error: str, observation: str) -> bool:
    """An action that cannot run: its ``error`` recorded, ``observation`` told to the model,
    and the episode goes on (False)."""
    step.error, step.observation = error, observation
    ep.observe(observation, action)
    return False


def closing_word(cfg: AgentConfig) -> str:
    """What the model must do next when it may not search again: answer, or select."""
    return "Select the documents now." if "select" in cfg.actions else "Give your final answer now."


def stop_if_searches_spent(ep: EpisodeState, step: Step) -> None:
    """Search and follow share ``max_searches``: past it the episode stops (forced answer)."""
    if ep.searches >= ep.cfg.max_searches:
        step.error = "search budget exhausted"
        raise EpisodeStop("max_searches")


async def run_search(ep: EpisodeState, action: Action, step: Step) -> bool:
    """Search, unless the budget is spent (the episode stops), the query is the instructions'
    placeholder (not run, not counted) or a repeat under ``answer_on_repeat`` (answer next)."""
    cfg = ep.cfg
    stop_if_searches_spent(ep, step)
    normalised = " ".join(action.argument.lower().split())
    if normalised.strip("\"'<>") in prompts.PLACEHOLDER_QUERIES:  # not run, not counted
        step.error = "placeholder query"
        step.observation = (
            f"'{neutralise(action.argument.strip())}' is the placeholder of the "
            "instructions, not a search. Write the words to look up instead: a name "
            "plus what you need."
        )
        ep.observe(step.observation, action)
        return False
    if normalised in ep.queries and cfg.answer_on_repeat:
        step.error = "repeated query"
        step.observation = (
            "You searched for exactly this before; the results would be the same. "
            + closing_word(cfg)
        )
        ep.answer_only = True
        ep.observe(step.observation, action)
        return False
    ep.searches += 1
    try:
        hits = await ep.search(action.argument, cfg.top_k)
    except QueryError as exc:
        step.error = str(exc)
        step.observation = f"Search failed: {neutralise(str(exc))}. Rewrite the query."
        ep.observe(step.observation, action)
        return False
    text, step.hits = ep.knowledge.render_hits(hits)
    if normalised in ep.queries:  # tiny models loop on one query: say so
        text += "\nYou searched for exactly this before. Search for something else or answer."
    ep.queries.add(normalised)
    step.observation = text
    ep.observe(text, action, wrap=True)
    return False


async def fetch_document(
    ep: EpisodeState, doc_id: str, action: Action, step: Step, verb: str
) -> Document | None:
    """The document ``doc_id`` from the engine, or None after telling the model why not (no
    such id; an engine that cannot ``verb`` documents by id)."""
    try:
        return await asyncio.to_thread(ep.agent.search.get, doc_id)  # type: ignore[union-attr]
    except DocumentNotFound:
        step.error = f"no document with id {doc_id!r}"
        step.observation = f"No document has the id {neutralise(doc_id)!r}."
    except SleuthError as exc:
        step.error = str(exc)
        step.observation = f"Cannot {verb} documents here: {neutralise(str(exc))}"
    ep.observe(step.observation, action)
    return None


async def run_open(ep: EpisodeState, action: Action, step: Step) -> bool:
    """Show a document by id, up to ``OPEN_CHARS_FACTOR`` times ``doc_chars``."""
    doc = await fetch_document(ep, action.argument, action, step, "open")
    if doc is None:
        return False
    limit = ep.cfg.doc_chars * OPEN_CHARS_FACTOR
    body = doc.text if len(doc.text) <= limit else doc.text[:limit] + " ..."
    step.observation = f"(id: {neutralise(doc.id)}) {neutralise(doc.title)}\n{neutralise(body)}"
    ep.knowledge.seen.setdefault(doc.id, doc.title)
    ep.knowledge.texts.append(neutralise(body))
    ep.observe(step.observation, action, wrap=True)
    return False


async def run_judge(ep: EpisodeState, action: Action, step: Step) -> bool:
    """Note the model's verdict on its evidence; "yes" leaves only the answer to give."""
    verdict = judge_verdict(action.argument)
    ep.knowledge.notes.append(action.argument)
    if verdict is None:
        step.error = "judge verdict must start with yes or no"
        step.observation = "Start the judgement with yes or no."
    elif verdict:
        step.observation = "You judged the information sufficient. Give the final answer."
        ep.answer_only = True  # else a small model repeats "yes" until the budget ends
    else:
        step.observation = (
            "You judged the information insufficient. Plan a new search for what is "
            "missing, with different terms."
        )
    ep.observe(step.observation, action)
    return False


async def run_answer(ep: EpisodeState, action: Action, step: Step) -> bool:
    """The final answer: the episode is over."""
    ep.trajectory.answer = action.argument
    ep.trajectory.stop_reason = "answered"
    return True


async def run_select(ep: EpisodeState, action: Action, step: Step) -> bool:
    """The searcher's choice of documents for the reader (by their episode-wide numbers, most
    useful first): kept in the metadata for the final read, which fills any places left in the
    read budget in reading order. Numbers of no document shown are an error the model may
    correct; a choice of none ends the episode with the reading order alone."""
    chosen: list[str] = []
    unknown: list[str] = []
    for text in re.findall(r"\d+", action.argument):
        doc_id = ep.knowledge.document_numbered(int(text))
        if doc_id is None:
            unknown.append(text)
        elif doc_id not in chosen:
            chosen.append(doc_id)
    if unknown and not chosen:
        return refuse(
            ep, action, step, f"no document has the number(s) {', '.join(unknown)}",
            f"No document has the number(s) {', '.join(unknown)}; the documents shown are "
            f"numbered 1 to {len(ep.knowledge.seen)}. Select again.",
        )  # fmt: skip
    if unknown:
        step.error = f"ignored number(s) of no document: {', '.join(unknown)}"
    ep.trajectory.metadata["selected"] = chosen
    ep.trajectory.stop_reason = "selected"
    return True


async def run_ask(ep: EpisodeState, action: Action, step: Step) -> bool:
    """Ask the user (``Agent(ask_user=...)``); without one, the model is told to go on."""
    if ep.agent.ask_user is None:
        step.error = "nobody can answer clarification questions here"
        step.observation = "No one can answer questions now; continue on your own."
    else:
        reply = await ep.agent.ask_user(action.argument)
        step.observation = f"The user says: {neutralise(reply)}"
    ep.observe(step.observation, action)
    return False


PAGE_REQUEST = re.compile(r"^(?P<id>.*?)(?:[\s,;:]+page\s*(?P<page>\d+))?\s*$", re.I | re.S)


def page_request(argument: str) -> tuple[str, int]:
    """``"Mira Castell page 2"`` -> ``("Mira Castell", 2)``; no page named: page 1."""
    match = PAGE_REQUEST.match(argument.strip())
    assert match is not None  # the pattern matches every string
    return match["id"].strip(), int(match["page"] or 1)


def pages_of(text: str, size: int) -> list[str]:
    """``text`` cut into pages of at most ``size`` characters, at a space in a page's second
    half where there is one (words stay whole); their concatenation is the text."""
    pages, start = [], 0
    while start < len(text):
        end = start + size
        if end < len(text):
            cut = text.rfind(" ", start + size // 2, end)
            end = cut + 1 if cut > start else end
        pages.append(text[start:end])
        start = end
    return pages or [""]


async def run_access(ep: EpisodeState, action: Action, step: Step) -> bool:
    """Show one page (``page_chars`` characters) of a whole document, with the page count; a
    page past the end is refused with the pages there are."""
    doc_id, page = page_request(action.argument)
    doc = await fetch_document(ep, doc_id, action, step, "read")
    if doc is None:
        return False
    pages = pages_of(doc.text, ep.cfg.page_chars)
    shown_id = neutralise(doc.id)
    if not 1 <= page <= len(pages):
        step.error = f"page {page} of {len(pages)}"
        step.observation = (
            f"Document {shown_id!r} has {len(pages)} page{'s' if len(pages) > 1 else ''}; "
            f"page {page} does not exist. Ask for a page from 1 to {len(pages)}."
        )
        ep.observe(step.observation, action)
        return False
    body = neutralise(pages[page - 1].strip())
    after = (
        f"[page {page} of {len(pages)}; page {page + 1} reads on]"
        if page < len(pages)
        else f"[page {page} of {len(pages)}: the end of the document]"
    )
    step.observation = (
        f"(id: {shown_id}) {neutralise(doc.title)}, page {page} of {len(pages)}\n{body}\n{after}"
    )
    ep.knowledge.seen.setdefault(doc.id, doc.title)
    ep.knowledge.texts.append(body)
    ep.observe(step.observation, action, wrap=True)
    return False


QUESTION_NUMBER = 0  # <follow>0</follow>: the names of the question


def follow_source(argument: str) -> int:
    """The number a ``follow`` names (its first number; -1 when it names none)."""
    found = re.search(r"\d+", argument)
    return int(found.group()) if found else -1


def follow_key(number: int) -> str:
    """How a followed source is remembered among the episode's queries (no second follow)."""
    return f"<follow>{number}"


async def run_follow(ep: EpisodeState, action: Action, step: Step) -> bool:
    """Show the documents titled by the names in a document shown (by its episode-wide
    number) or in the question (0): ``links``' look-ups, every name tried at once and one
    action of the search budget; each engine query is counted in the metadata's
    ``link_lookups``. Following the same source twice, or a number of no document, is told."""
    cfg = ep.cfg
    stop_if_searches_spent(ep, step)
    number = follow_source(action.argument)
    source_id = "" if number == QUESTION_NUMBER else ep.knowledge.document_numbered(number)
    if source_id is None:
        return refuse(
            ep, action, step, f"no document numbered {action.argument.strip()!r}",
            f"No document has the number {neutralise(action.argument.strip())!r}; follow a "
            f"number from 1 to {len(ep.knowledge.seen)}, or 0 for the question.",
        )  # fmt: skip
    key = follow_key(number)
    if key in ep.queries:
        ep.answer_only = True
        return refuse(
            ep, action, step, "followed before",
            "You followed these links before. " + closing_word(cfg),
        )  # fmt: skip
    ep.queries.add(key)
    ep.searches += 1
    # A hit's text as it was shown (an opened document, not kept there: its title).
    kept = ep.knowledge.documents.get(source_id)
    text = ep.question if source_id == "" else kept[1] if kept else ep.knowledge.seen[source_id]
    names = names_in(text)[:MAX_LINK_LOOKUPS]
    try:
        results = (
            await asyncio.to_thread(
                ep.agent.search.search_batch,  # type: ignore[union-attr]
                names,
                LINK_LOOKUP_K,
            )
            if names
            else []
        )
    except SleuthError as exc:
        raise EpisodeStop("search_error", str(exc)) from None
    except Exception as exc:  # an engine/server failure ends the episode, as a search's does
        raise EpisodeStop("search_error", f"{type(exc).__name__}: {exc}") from None
    lookups = ep.trajectory.metadata.get("link_lookups", 0) + len(names)
    ep.trajectory.metadata["link_lookups"] = lookups
    # Ranked in the names' order (each came first or near it in its own name's search).
    found = linked_hits(names, results, exclude=source_id).values()
    hits = [replace(hit, rank=rank) for rank, (_, hit) in enumerate(found, start=1)]
    source = "The question" if source_id == "" else f"Document [{number}]"
    if hits:
        text, step.hits = ep.knowledge.render_hits(hits)
        text = f"{source} links to:\n{text}"
    else:
        text = f"{source} names no document's title. Search, follow another, or select."
    step.observation = text
    ep.observe(text, action, wrap=True)
    return False


EXECUTORS: dict[str, Executor] = {
    "search": run_search,
    "open": run_open,
    "judge": run_judge,
    "answer": run_answer,
    "ask": run_ask,
    "select": run_select,
    "access": run_access,
    "follow": run_follow,
}
