"""Read document collections, queries and relevance judgements in the common formats.

>>> from sleuth.corpus import load_documents
>>> docs = list(load_documents("hotpotqa-1100"))   # a bundled name or any path
>>> len(docs)
10785
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from sleuth.corpus import beir, cranfield, hotpotqa
from sleuth.corpus.bundled import resolve
from sleuth.corpus.chunk import chunk_documents
from sleuth.corpus.documents import read_jsonl_documents, reject_duplicate_ids
from sleuth.corpus.jsonl import first_line
from sleuth.errors import CorpusError
from sleuth.types import Document

FORMATS = ("auto", "jsonl", "beir", "hotpotqa", "cranfield")
JSONL_SUFFIXES = (".jsonl", ".json", ".jsonl.gz", ".json.gz")

__all__ = [
    "FORMATS",
    "chunk_documents",
    "detect_format",
    "load_documents",
    "load_qrels",
    "load_queries",
]


def detect_format(path: Path) -> str:
    if beir.is_beir_folder(path):
        return "beir"
    if cranfield.is_cranfield_folder(path):
        return "cranfield"
    if path.is_dir() and any(detect_format(f) == "hotpotqa" for f in path.glob("*.jsonl")):
        return "hotpotqa"
    if path.is_file() and path.name.lower().endswith(JSONL_SUFFIXES):
        head = first_line(path)
        return "hotpotqa" if b'"context"' in head and b'"question"' in head else "jsonl"
    raise CorpusError(
        f"{path}: cannot tell the corpus format; expected a .jsonl(.gz) file, a BEIR folder "
        "(corpus.jsonl) or a Cranfield folder (cran.all.1400); pass --format"
    )


def load_documents(source: str | Path, format: str = "auto") -> Iterator[Document]:
    """Stream Documents from a bundled name or a path; duplicate ids are an error."""
    path = resolve(source)
    if format not in FORMATS:
        raise CorpusError(f"unknown corpus format {format!r}; choose one of {', '.join(FORMATS)}")
    kind = detect_format(path) if format == "auto" else format
    if kind == "beir":
        docs = beir.read_beir_corpus(path)
    elif kind == "cranfield":
        docs = cranfield.cranfield_documents(path)
    elif kind == "hotpotqa":
        files = sorted(path.glob("*.jsonl")) if path.is_dir() else [path]
        return hotpotqa.hotpotqa_documents(files)  # de-duplicated by title by design
    else:
        docs = read_jsonl_documents(path)
    return reject_duplicate_ids(docs, str(path))


def load_queries(source: str | Path) -> dict[str, str]:
    """Queries as ``{query_id: text}`` from a BEIR folder/file or a Cranfield folder."""
    path = resolve(source)
    if cranfield.is_cranfield_folder(path):
        return cranfield.cranfield_queries(path)
    if path.is_dir() and (path / "cran.qry").is_file():
        return cranfield.cranfield_queries(path)
    return beir.read_beir_queries(path)


def load_qrels(source: str | Path, split: str = "test") -> dict[str, dict[str, int]]:
    """Judgements as ``{query_id: {doc_id: gain}}`` from BEIR qrels or a Cranfield folder."""
    path = resolve(source)
    if cranfield.is_cranfield_folder(path) or (path.is_dir() and (path / "cranqrel").is_file()):
        return cranfield.cranfield_qrels(path)
    return beir.read_beir_qrels(path, split)
