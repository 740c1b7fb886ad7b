"""Few-shot query generation: the examples as passage -> query demonstrations, then the target.

The demonstrations are chat turns (user: passage, assistant: query), identical for every
target, so a backend with prefix caching (the OpenVINO default) computes them once; all
requests are sent at once (``asyncio.gather``) so a continuous-batching backend decodes them
together. Generated text is untrusted model output: only its first line is kept, trimmed of
labels and quotes, and it is used solely as a query string.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from sleuth.llm.base import LLM, GenerationConfig, Message
from sleuth.train.retriever.examples import Example
from sleuth.types import Document

SYSTEM = (
    "You write search queries. Given a passage, reply with one short search query that the "
    "passage answers. Reply with the query only."
)
DEMO_WORDS = 60  # words of each demonstration passage (keeps the shared prefix short)
TARGET_WORDS = 120
IN_FLIGHT = 32  # requests sent at once: the OpenVINO scheduler's batch; more only queue in its
# KV cache (measured: 150 at once took 450 s to finish the first one on a loaded machine)
MAX_QUERY_CHARS = 300
_LABEL = re.compile(r"^\s*(?:search\s+)?(?:query|question)\s*\d*\s*[:\-]\s*", re.IGNORECASE)


@dataclass(frozen=True)
class GeneratedQuery:
    passage_id: str
    query: str
    sample: int  # which of the passage's queries (0 .. queries_per_passage - 1)


def _words(text: str, limit: int) -> str:
    words = text.split()
    return " ".join(words[:limit]) + (" ..." if len(words) > limit else "")


def passage_block(title: str, text: str, limit: int) -> str:
    head = f"Title: {title}\n" if title else ""
    return f"{head}Passage: {_words(text, limit)}"


def build_messages(examples: Sequence[Example], target: Document) -> list[Message]:
    """System prompt, one user/assistant turn per example, then the target passage."""
    messages: list[Message] = [{"role": "system", "content": SYSTEM}]
    for example in examples:
        messages.append(
            {"role": "user", "content": passage_block(example.title, example.text, DEMO_WORDS)}
        )
        messages.append({"role": "assistant", "content": example.query})
    messages.append(
        {"role": "user", "content": passage_block(target.title, target.text, TARGET_WORDS)}
    )
    return messages


def clean_query(text: str) -> str:
    """The first non-empty line without a "Query:" label or surrounding quotes ('' if none)."""
    line = next((part.strip() for part in text.splitlines() if part.strip()), "")
    line = _LABEL.sub("", line).strip().strip("\"'`").strip()
    return " ".join(line.split())[:MAX_QUERY_CHARS]


async def generate_queries(
    llm: LLM,
    examples: Sequence[Example],
    passages: Sequence[Document],
    *,
    queries_per_passage: int = 1,
    temperature: float = 0.7,
    max_tokens: int = 40,
    seed: int = 0,
    progress: Callable[[int], None] | None = None,
    in_flight: int = IN_FLIGHT,
) -> tuple[list[GeneratedQuery], int]:
    """One query per (passage, sample), ``in_flight`` requests at a time (a batching backend
    decodes them together); returns the cleaned non-empty queries and how many came back
    empty."""
    slots = asyncio.Semaphore(in_flight)

    async def one(index: int, doc: Document, sample: int) -> GeneratedQuery | None:
        config = GenerationConfig(
            max_tokens=max_tokens,
            temperature=temperature,
            stop=["\n"],
            seed=seed * 1_000_003 + index * 97 + sample,
        )
        try:
            async with slots:
                completion = await llm.complete(build_messages(examples, doc), config)
        finally:
            if progress:
                progress(1)
        query = clean_query(completion.text)
        return GeneratedQuery(doc.id, query, sample) if query else None

    jobs = [
        one(index, doc, sample)
        for index, doc in enumerate(passages)
        for sample in range(queries_per_passage)
    ]
    results = await asyncio.gather(*jobs)
    kept = [r for r in results if r is not None]
    # the same query twice for one passage teaches nothing new
    unique = list({(r.passage_id, r.query.lower()): r for r in kept}.values())
    return unique, len(results) - len(kept)
