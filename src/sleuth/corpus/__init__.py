"""Read document collections, queries and relevance judgements in the common formats.

>>> from sleuth.corpus import load_documents
>>> docs = list(load_documents("hotpotqa-1100"))   # a bundled name or any path
>>> len(docs)
10785
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from sleuth.corpus import beir, cranfield, hotpotqa, smart
from sleuth.corpus.bundled import resolve
from sleuth.corpus.chunk import chunk_documents
from sleuth.corpus.documents import read_jsonl_documents, reject_duplicate_ids
from sleuth.corpus.jsoncorpus import read_json_corpus
from sleuth.corpus.jsonl import first_line, read_records, starts_with_json_array
from sleuth.corpus.multihop import is_qa_record
from sleuth.errors import CorpusError
from sleuth.types import Document

# hotpotqa / 2wiki / musique: QA records whose context paragraphs become the documents;
# json / hipporag: one JSON array (or title->text object) of documents; flashrag: JSONL.
FORMATS = (
    "auto", "jsonl", "flashrag", "json", "hipporag", "beir",
    "hotpotqa", "2wiki", "musique", "smart", "cranfield",
)  # fmt: skip
QA_FORMATS = ("hotpotqa", "2wiki", "musique")
JSONL_SUFFIXES = (".jsonl", ".json", ".jsonl.gz", ".json.gz")

__all__ = [
    "FORMATS",
    "chunk_documents",
    "detect_format",
    "load_documents",
    "load_qrels",
    "load_queries",
]


def _detect_file(path: Path) -> str:
    """``hotpotqa`` (QA records with contexts), ``json`` (one JSON value) or ``jsonl``."""
    if starts_with_json_array(path):
        first = next(iter(read_records(path)), ("", {}))[1]
        return "hotpotqa" if is_qa_record(first) else "json"
    head = first_line(path)
    complete_line = len(head) < 1 << 20
    if head.strip() in (b"{", b"[") or (complete_line and not head.rstrip().endswith(b"}")):
        return "json"  # a pretty-printed JSON object (title -> text), not one object a line
    qa = b'"question"' in head and (b'"context"' in head or b'"paragraphs"' in head)
    return "hotpotqa" if qa else "jsonl"


def detect_format(path: Path) -> str:
    if beir.is_beir_folder(path):
        return "beir"
    if cranfield.is_cranfield_folder(path):
        return "cranfield"
    if smart.is_smart_folder(path):
        return "smart"
    if path.is_dir():
        files = sorted([*path.glob("*.jsonl"), *path.glob("*.json")])
        if files and all(_detect_file(f) == "hotpotqa" for f in files):
            return "hotpotqa"
    if path.is_file() and path.name.lower().endswith(JSONL_SUFFIXES):
        return _detect_file(path)
    raise CorpusError(
        f"{path}: cannot tell the corpus format; expected a .jsonl/.json(.gz) file, a BEIR folder "
        "(corpus.jsonl), a SMART folder (*.ALL, *.QRY, *.REL) or a folder of HotpotQA/2Wiki/"
        f"MuSiQue files; pass --format ({', '.join(FORMATS[1:])})"
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
    elif kind == "smart":
        if not path.is_dir():
            raise CorpusError(f"{path}: --format smart needs the folder holding *.ALL/*.QRY/*.REL")
        docs = smart.smart_documents(path)
    elif kind in QA_FORMATS:
        files = sorted([*path.glob("*.jsonl"), *path.glob("*.json")]) if path.is_dir() else [path]
        return hotpotqa.hotpotqa_documents(files)  # de-duplicated by (title, text) by design
    elif kind in ("json", "hipporag"):
        docs = read_json_corpus(path)
    else:
        docs = read_jsonl_documents(path)
    return reject_duplicate_ids(docs, str(path))


def load_queries(source: str | Path) -> dict[str, str]:
    """Queries as ``{query_id: text}`` from a BEIR folder/file or a SMART (Cranfield) folder."""
    path = resolve(source)
    if cranfield.is_cranfield_folder(path) or smart.is_smart_folder(path):
        return smart.smart_queries(path)
    if path.is_dir() and (path / "cran.qry").is_file():
        return cranfield.cranfield_queries(path)
    return beir.read_beir_queries(path)


def load_qrels(source: str | Path, split: str = "test") -> dict[str, dict[str, int]]:
    """Judgements as ``{query_id: {doc_id: gain}}`` from BEIR qrels or a SMART folder."""
    path = resolve(source)
    if cranfield.is_cranfield_folder(path) or (path.is_dir() and (path / "cranqrel").is_file()):
        return cranfield.cranfield_qrels(path)
    if smart.is_smart_folder(path):
        return smart.smart_qrels(path)
    return beir.read_beir_qrels(path, split)
