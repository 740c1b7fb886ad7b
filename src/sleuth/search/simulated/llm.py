"""``simulated:llm``: a language model writes the documents (ZeroSearch).

For each query, ``k`` documents; each is noisy with the per-call draw of ``seeding.noisy_count``
(ratio ``noise``), else useful, and is written by one model call with the prompt of
``prompts.simulation_messages``. Documents get stable ids (a hash of the query, slot, kind and
seed) and a title from their first words; ``get(id)`` returns what was generated. Generated
text is untrusted like any retrieved text: control characters are dropped here, and the agent
and server escape it as they do every document.

The engine's ``search`` is synchronous (the protocol) while models are async: calls run on a
private event loop in a background thread, so ``search`` works from any thread, including the
worker threads the agent loop and the server search from.
"""

from __future__ import annotations

import asyncio
import hashlib
import threading
import unicodedata
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

from sleuth.errors import DocumentNotFound
from sleuth.llm.base import LLM, GenerationConfig
from sleuth.search.base import validate_query
from sleuth.search.simulated.context import current_gold
from sleuth.search.simulated.prompts import simulation_messages
from sleuth.search.simulated.seeding import NoiseLevel, call_rng, noisy_count
from sleuth.types import Document, Hit

NAME = "simulated:llm"
MAX_STORED = 100_000  # generated documents kept for get(); the oldest are forgotten first


def clean_text(text: str, limit: int = 2000) -> str:
    """One paragraph of printable text: control/format characters dropped, spaces collapsed."""
    kept = "".join(
        ch if unicodedata.category(ch)[0] != "C" else " " for ch in text.replace("\n", " ")
    )
    return " ".join(kept.split())[:limit]


def title_of(text: str, words: int = 8) -> str:
    head = text.split(". ")[0].split()
    return " ".join(head[:words]) or "(empty document)"


class LLMSimulator(NoiseLevel):
    """A ``SearchEngine`` whose documents an LLM writes on demand."""

    name = NAME
    KIND = "simulated:llm"

    def __init__(
        self,
        llm: LLM,
        noise: float = 0.3,
        seed: int = 0,
        max_tokens: int = 64,
        temperature: float = 0.0,
        base: Any = None,
        owns_llm: bool = True,
    ) -> None:
        self.llm, self.seed, self.max_tokens, self.temperature = llm, seed, max_tokens, temperature
        self.base, self.owns_llm = base, owns_llm  # base: get() falls back to the real index
        self.noise = noise
        self.max_docs: int | None = None  # spec key k: documents written per query at most
        self._store: OrderedDict[str, Document] = OrderedDict()
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="sleuth-simulator", daemon=True
        )
        self._thread.start()

    def __len__(self) -> int:
        return len(self.base) if self.base is not None else len(self._store)

    def get(self, doc_id: str) -> Document:
        with self._lock:
            doc = self._store.get(doc_id)
        if doc is not None:
            return doc
        if self.base is not None and not doc_id.startswith("sim-"):
            return self.base.get(doc_id)
        raise DocumentNotFound(
            f"no document with id {doc_id!r} (simulated documents are kept "
            "only in the process that generated them)"
        )

    def search_batch(self, queries: Sequence[str], k: int = 10) -> list[list[Hit]]:
        return [self.search(q, k) for q in queries]

    def search(self, query: str, k: int = 10) -> list[Hit]:
        validate_query(query, k)
        k = min(k, self.max_docs) if self.max_docs else k
        noise = self.noise
        rng = call_rng(self.seed, "llm", query, k, noise)
        n_noisy = noisy_count(rng, noise, k)
        noisy_slots = set(rng.sample(range(k), n_noisy))
        gold = current_gold()
        question, answers = (gold.question, gold.answers) if gold else ("", ())
        kinds = ["noisy" if slot in noisy_slots else "useful" for slot in range(k)]
        future = asyncio.run_coroutine_threadsafe(
            self._write_all(query, kinds, question, answers), self._loop
        )
        texts = future.result()
        hits = []
        for slot, (kind, text) in enumerate(zip(kinds, texts, strict=True)):
            key = f"{self.seed}\x1f{query}\x1f{k}\x1f{slot}\x1f{kind}\x1f{question}"
            doc_id = "sim-" + hashlib.sha256(key.encode()).hexdigest()[:16]
            doc = Document(doc_id, title_of(text), text, {"simulated": kind, "query": query})
            self._remember(doc)
            hits.append(
                Hit(doc_id, 0.0, doc.title, text, slot + 1, engine=NAME, noise=noise, label=kind)
            )
        return hits

    async def _write_all(
        self, query: str, kinds: list[str], question: str, answers: tuple[str, ...]
    ) -> list[str]:
        return list(
            await asyncio.gather(
                *(
                    self._write(query, kind == "useful", question, answers, slot)
                    for slot, kind in enumerate(kinds)
                )
            )
        )

    async def _write(
        self, query: str, useful: bool, question: str, answers: tuple[str, ...], slot: int
    ) -> str:
        messages = simulation_messages(query, useful, question, answers)
        if slot:  # the same prompt twice would give the same document under greedy decoding
            messages[-1]["content"] += f" (document {slot + 1})"
        config = GenerationConfig(
            max_tokens=self.max_tokens, temperature=self.temperature, seed=self.seed + slot
        )
        completion = await self.llm.complete(messages, config)
        return clean_text(completion.text) or "(the simulator wrote nothing)"

    def _remember(self, doc: Document) -> None:
        with self._lock:
            self._store[doc.id] = doc
            self._store.move_to_end(doc.id)
            while len(self._store) > MAX_STORED:
                self._store.popitem(last=False)

    def close(self) -> None:
        """Close the model (when this engine opened it) and stop the background loop."""
        if self.owns_llm and self._loop.is_running():
            asyncio.run_coroutine_threadsafe(self.llm.aclose(), self._loop).result(timeout=30)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
