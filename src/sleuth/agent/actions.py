"""The actions an agent may take, each defined once: the one table every other part reads.

The configuration's names (``config.ACTIONS``), the parser's tag pattern (``parsing.TAG``), the
system prompt's line and JSON tool of each action (``prompts``), its piece of the decoding
grammar (``grammar``), the viewer's tool-call arguments (``view.replay``) and the action tags
the exported verl reward reads (``train.verl_export``) are all derived from ``ACTION_SPECS``.

Adding an action: one ``ActionSpec`` below, plus its executor in ``sleuth.agent.executors``
(``EXECUTORS``), the code that runs it in an episode. This module imports nothing of the agent,
so every part of it can read the table.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class ActionSpec:
    """One action: its name (also its tag and tool name) and everything said about it."""

    name: str
    prompt: str  # its line in the tags format's system prompt
    description: str  # its JSON tool's description
    # The JSON tool's arguments (name -> description), all required strings; the first one is
    # the action's argument, or its head when ``heads`` is set.
    parameters: dict[str, str]
    words: int  # grammar, tags format: words allowed after the first in its argument
    chars: int  # grammar, JSON format: maxLength of each tool argument
    # The argument starts with one of these and ": " (the judge's verdict); in the JSON format
    # the head is the first tool argument (an enum) and the rest the second.
    heads: tuple[str, ...] = ()
    spans: bool = False  # answer_spans may restrict the argument to spans of documents read
    engine: bool = False  # runs against the search engine: the agent needs one
    after_search: bool = False  # needs something retrieved: not offered before min_searches

    def argument_from(self, arguments: dict[str, Any]) -> str:
        """The action's argument from a JSON tool call's arguments (empty when missing)."""
        if self.heads:
            head, rest = self.parameters
            verdict = str(arguments.get(head, "")).strip()
            return f"{verdict}: {arguments.get(rest, '')}".strip(": ")
        return str(arguments.get(next(iter(self.parameters)), "")).strip()

    def arguments_for(self, argument: str) -> dict[str, str]:
        """The JSON tool call's arguments that say ``argument`` (inverse of ``argument_from``)."""
        if self.heads:
            head, rest = self.parameters
            verdict, _, reason = argument.partition(":")
            return {head: verdict.strip(), rest: reason.strip()}
        return {next(iter(self.parameters)): argument}

    def tool(self) -> dict[str, Any]:
        """The OpenAI-style tool definition offered in the JSON format."""
        return {
            "type": "function",
            "function": {
                "name": self.name,
                "description": self.description,
                "parameters": {
                    "type": "object",
                    "properties": {
                        k: {"type": "string", "description": v} for k, v in self.parameters.items()
                    },
                    "required": list(self.parameters),
                },
            },
        }


# In the order the configuration lists them (``AgentConfig`` errors name them in this order).
ACTION_SPECS: tuple[ActionSpec, ...] = (
    ActionSpec(
        name="search",
        prompt="<search>query</search> searches the document collection; results come back "
        "inside <information>...</information>.",
        description="Search the document collection.",
        parameters={"query": "the search query"},
        words=15,
        chars=150,
        engine=True,
    ),
    ActionSpec(
        name="open",
        prompt="<open>document id</open> shows the whole document with that id.",
        description="Show the whole document with this id.",
        parameters={"doc_id": "a document id from results"},
        words=15,
        chars=200,
        engine=True,
    ),
    ActionSpec(
        name="judge",
        prompt="<judge>yes: why</judge> or <judge>no: what is missing</judge> states whether "
        "the information gathered so far is enough to answer.",
        description="State whether the information gathered so far is enough to answer.",
        parameters={"verdict": "yes or no", "reason": "why, or what is missing"},
        words=29,
        chars=300,
        heads=("yes", "no"),
        after_search=True,
    ),
    ActionSpec(
        name="answer",
        prompt="<answer>short answer</answer> gives the final answer (a few words) and ends.",
        description="Give the final answer (a few words) and end.",
        parameters={"answer": "the short answer"},
        words=9,
        chars=100,
        spans=True,
        after_search=True,
    ),
    ActionSpec(
        name="ask",
        prompt="<ask>question</ask> asks the user to clarify the question.",
        description="Ask the user to clarify the question.",
        parameters={"question": "the clarification question"},
        words=29,
        chars=300,
    ),
    # The searcher's last action (s3's document selection, arXiv 2505.14146): a frozen reader
    # then answers from the chosen documents (``AgentConfig.final_read``), so the searcher's
    # episode ends in a choice of evidence, not an answer.
    ActionSpec(
        name="select",
        prompt="<select>numbers</select> chooses the documents the reader will answer from, by "
        "their numbers, most useful first (for example <select>4, 1</select>), and ends.",
        description="Choose the documents the reader will answer from, most useful first, and end.",
        parameters={"documents": "document numbers, most useful first, e.g. 4, 1"},
        words=11,
        chars=60,
        after_search=True,
    ),
    # Paged reading of a whole document (long horizons): ``open`` shows its first
    # 4 x doc_chars characters, ``access`` any page of ``page_chars``, with the page count.
    ActionSpec(
        name="access",
        prompt="<access>document id page N</access> reads page N of the document with that id "
        "(page 1 when N is left out); each page says how many pages the document has.",
        description="Read a document page by page: its id, then 'page N' (page 1 when left out).",
        parameters={
            "document": "a document id from results, then 'page N', e.g. Mira Castell page 2"
        },
        words=17,
        chars=220,
        engine=True,
    ),
    # Link following for a searcher (``searcher_links@K``): the look-ups of the ``links``
    # pipeline as one action. Which names are titles shows only in searches' results, so a
    # searcher copying one name per search cannot tell a link (docs/evaluation.md); here the
    # tool tries every name of a document and shows the documents titled by them.
    ActionSpec(
        name="follow",
        prompt="<follow>number</follow> shows the documents that document [number] links to "
        "(those titled by a name in it); <follow>0</follow> shows those the question names.",
        description="Show the documents a document links to (titled by names in it); 0: the "
        "documents the question names.",
        parameters={"document": "a document number, or 0 for the question"},
        words=1,
        chars=20,
        engine=True,
    ),
)
SPECS: dict[str, ActionSpec] = {spec.name: spec for spec in ACTION_SPECS}
ACTIONS: tuple[str, ...] = tuple(SPECS)
