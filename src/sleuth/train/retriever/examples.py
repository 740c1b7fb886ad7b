"""The few-shot examples file: at most 8 labelled (query, passage) pairs, one JSON object a line.

Each line holds ``query`` and either ``passage_id`` (an id of the corpus; ``doc_id`` and ``id``
are accepted too) or the passage itself as ``passage`` (``text`` accepted, ``title``
optional). More than 8 is refused: the method's point is learning from a handful.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from sleuth.errors import SleuthError
from sleuth.types import Document

MAX_EXAMPLES = 8
ID_KEYS = ("passage_id", "doc_id", "id")
TEXT_KEYS = ("passage", "text")


class ExamplesError(SleuthError):
    """The examples file is missing, malformed, too long, or names passages the corpus lacks."""


@dataclass(frozen=True)
class Example:
    """One demonstration: a query and the passage that answers it."""

    query: str
    title: str
    text: str
    passage_id: str | None = None  # set when the passage is a document of the corpus


def _field(record: dict, keys: tuple[str, ...]) -> str | None:
    for key in keys:
        value = record.get(key)
        if value is not None:
            if not isinstance(value, str) or not value.strip():
                raise ValueError(f"{key!r} must be a non-empty string")
            return value.strip()
    return None


def read_example_records(path: str | Path) -> list[tuple[int, dict]]:
    """``(line number, object)`` for each non-blank line; errors name the file and line."""
    file = Path(path).expanduser()
    if not file.is_file():
        raise ExamplesError(f"{file}: no such examples file")
    try:
        lines = file.read_text(encoding="utf-8-sig").splitlines()
    except UnicodeDecodeError as exc:
        raise ExamplesError(f"{file}: not UTF-8 text ({exc.reason})") from None
    records = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        if not records and line.lstrip().startswith("["):
            raise ExamplesError(
                f"{file}: is a JSON array; write one object a line (JSONL): jq -c '.[]' FILE"
            )
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ExamplesError(f"{file}:{number}: not valid JSON ({exc.msg})") from None
        if not isinstance(record, dict):
            raise ExamplesError(f"{file}:{number}: expected a JSON object, got {line[:60]!r}")
        records.append((number, record))
    if not records:
        raise ExamplesError(f"{file}: no examples (one {{'query', 'passage_id'}} object a line)")
    if len(records) > MAX_EXAMPLES:
        raise ExamplesError(
            f"{file}: {len(records)} examples; Promptagator is few-shot: give at most "
            f"{MAX_EXAMPLES} labelled (query, passage) pairs"
        )
    return records


def load_examples(path: str | Path, corpus: Mapping[str, Document]) -> list[Example]:
    """Read and check the examples file against the corpus (``{id: Document}``)."""
    examples = []
    for number, record in read_example_records(path):
        where = f"{Path(path).expanduser()}:{number}"
        try:
            query = _field(record, ("query", "question"))
            passage_id = _field(record, ID_KEYS)
            text = _field(record, TEXT_KEYS)
            title = _field(record, ("title",)) or ""
        except ValueError as exc:
            raise ExamplesError(f"{where}: {exc}") from None
        if query is None:
            raise ExamplesError(f"{where}: no 'query'")
        if passage_id is None and text is None:
            raise ExamplesError(f"{where}: give 'passage_id' (a corpus id) or 'passage' (its text)")
        if passage_id is not None:
            doc = corpus.get(passage_id)
            if doc is None:
                sample = ", ".join(list(corpus)[:3])
                raise ExamplesError(
                    f"{where}: passage_id {passage_id!r} is not in the corpus (ids look like: "
                    f"{sample})"
                )
            title, text = doc.title, doc.text
        examples.append(Example(query, title, text or "", passage_id))
    return examples
