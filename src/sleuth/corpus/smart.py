"""SMART-format test collections (Cranfield, MED, CISI, CACM, ADI, NPL, TIME, ...).

A folder holds three files, found by pattern: documents (``*.ALL``, ``*.all.*``, e.g.
``cran.all.1400``, ``MED.ALL``), queries (``*.QRY``) and judgements (``*.REL``, ``*qrel*``).
Records start with ``.I <id>``; a line holding only a tag (``.T`` title, ``.W`` text, ``.A``
author, ``.B`` bibliography, ``.K`` keywords, any other letter) starts a field. Numeric ids are
normalised (``007`` -> ``7``) in documents, queries and judgements alike.

Judgement files come in several layouts, told apart by their columns:
``qid docid rel`` (Cranfield: 1 most .. 4 least relevant, -1 not, gain ``5 - rel``; other
3-column files: gain = rel), ``qid 0 docid rel`` (TREC, e.g. MED), ``qid docid 0 0.0`` (CISI:
every listed pair is relevant) and ``qid docid``.

Query numbering: when the judgements name queries that the ``.I`` lines do not (Cranfield's
``cran.qry`` numbers 001, 002, 004, ... while ``cranqrel`` counts 1..225), queries are
renumbered by position, which is what the judgements mean.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

from sleuth.errors import CorpusError
from sleuth.types import Document

FIELD_NAMES = {"T": "title", "A": "author", "B": "bibliography", "W": "text", "K": "keywords"}
TAG = re.compile(r"^\.([A-Z])(?:\s+(.*))?$")
DOC_PATTERNS = ("*.ALL", "*.all", "*.all.*", "*.ALL.*", "*.DOC", "*.doc")
QUERY_PATTERNS = ("*.QRY", "*.qry", "*.QUE", "*.que")
QREL_PATTERNS = ("*.REL", "*.rel", "*qrel*", "*QREL*", "*.qrels")
Qrels = dict[str, dict[str, int]]


def _norm_id(raw: str) -> str:
    return str(int(raw)) if raw.isdigit() else raw


def _find(folder: Path, patterns: tuple[str, ...], what: str) -> Path:
    for pattern in patterns:
        matches = sorted(p for p in folder.glob(pattern) if p.is_file())
        if matches:
            return matches[0]
    wanted = ", ".join(patterns)
    raise CorpusError(f"{folder}: no SMART {what} file (looked for {wanted})")


def documents_file(folder: Path) -> Path:
    return _find(folder, DOC_PATTERNS, "documents")


def is_smart_folder(path: Path) -> bool:
    """A folder whose documents file (by pattern) starts with a ``.I`` line."""
    if not path.is_dir():
        return False
    try:
        with documents_file(path).open("rb") as handle:
            return handle.read(64).lstrip().startswith(b".I")
    except (CorpusError, OSError):
        return False


def smart_records(path: Path) -> Iterator[tuple[int, str, dict[str, str]]]:
    """Yield (line of .I, id, {field: text}) from a SMART file."""
    if not path.is_file():
        raise CorpusError(f"{path}: no such file")
    current_id, start_line, fields, field = None, 0, {}, None
    with path.open(encoding="utf-8", errors="replace") as handle:
        for line_no, line in enumerate(handle, start=1):
            stripped = line.rstrip("\r\n")
            tag = TAG.match(stripped)
            if tag and tag.group(1) == "I":
                if current_id is not None:
                    yield start_line, current_id, fields
                if not tag.group(2) or len(tag.group(2).split()) != 1:
                    raise CorpusError(f"{path}:{line_no}: malformed .I line {stripped!r}")
                current_id, start_line, fields, field = tag.group(2).strip(), line_no, {}, None
            elif tag and current_id is not None and tag.group(2) is None:
                field = FIELD_NAMES.get(tag.group(1), tag.group(1))
                fields.setdefault(field, "")
            elif field is not None:
                fields[field] += line
            elif stripped.strip():
                raise CorpusError(f"{path}:{line_no}: text outside any field")
    if current_id is not None:
        yield start_line, current_id, fields


def _clean(text: str) -> str:
    return " ".join(text.split())


def smart_documents(folder: str | Path) -> Iterator[Document]:
    path = documents_file(Path(folder))
    for _, doc_id, fields in smart_records(path):
        extra = {k: _clean(v) for k, v in fields.items() if k not in ("title", "text")}
        yield Document(
            id=_norm_id(doc_id),
            title=_clean(fields.get("title", "")),
            text=_clean(fields.get("text", "")),
            fields=extra,
        )


def _parse_qrels(path: Path) -> Qrels:
    rows: list[list[str]] = []
    with path.open(encoding="utf-8", errors="replace") as handle:
        for line_no, line in enumerate(handle, start=1):
            parts = line.split()
            if not parts:
                continue
            if len(parts) not in (2, 3, 4):
                raise CorpusError(f"{path}:{line_no}: expected 2 to 4 columns, got {len(parts)}")
            rows.append(parts)
    cranfield_scale = path.name == "cranqrel" or any(
        len(r) == 3 and r[2].lstrip("-").isdigit() and int(r[2]) < 0 for r in rows
    )
    qrels: Qrels = {}
    for parts in rows:
        try:
            if len(parts) == 2:
                qid, docid, gain = parts[0], parts[1], 1
            elif len(parts) == 3:
                qid, docid, rel = parts[0], parts[1], int(parts[2])
                gain = (5 - rel if 1 <= rel <= 4 else 0) if cranfield_scale else rel
            elif "." in parts[3]:  # CISI: "qid docid 0 0.000000", every pair relevant
                qid, docid, gain = parts[0], parts[1], 1
            else:  # TREC: "qid iteration docid relevance"
                qid, docid, gain = parts[0], parts[2], int(parts[3])
        except ValueError:
            raise CorpusError(f"{path}: non-integer relevance in {' '.join(parts)!r}") from None
        if gain > 0:
            qrels.setdefault(_norm_id(qid), {})[_norm_id(docid)] = gain
    return qrels


def smart_qrels(folder: str | Path) -> Qrels:
    return _parse_qrels(_find(Path(folder), QREL_PATTERNS, "judgements"))


def smart_queries(folder: str | Path) -> dict[str, str]:
    """``{query_id: text}``; renumbered by position when the judgements count queries so."""
    folder = Path(folder)
    records = list(smart_records(_find(folder, QUERY_PATTERNS, "queries")))
    by_id = {_norm_id(qid): _clean(fields.get("text", "")) for _, qid, fields in records}
    try:
        judged = set(smart_qrels(folder))
    except CorpusError:
        return by_id
    positions = {str(n) for n in range(1, len(records) + 1)}
    if judged and not judged <= by_id.keys() and judged <= positions:
        return {
            str(n): _clean(fields.get("text", ""))
            for n, (_, _, fields) in enumerate(records, start=1)
        }
    return by_id
