"""Document collections stored as one JSON value, as HippoRAG and many RAG repos ship them.

- a JSON array of objects: ``[{"title", "text"}, ...]`` (HippoRAG 2 ``*_corpus.json``, with an
  optional ``idx``) or any objects ``record_to_document`` understands (``id``/``_id``,
  ``text``/``contents``);
- a JSON object mapping title to text or to its sentences: ``{"Title": ["s1", " s2"], ...}``
  (HippoRAG 1 corpora).

Records without an id are keyed by title the way ``sleuth.corpus.multihop`` keys context
paragraphs (``"<title>"``, then ``"<title> (2)"`` for a further distinct text), so gold evidence
read from the matching question file names the same documents when both list a title's texts
in the same order.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from sleuth.corpus.documents import ID_KEYS, record_to_document
from sleuth.corpus.jsonl import read_json_document
from sleuth.corpus.multihop import ParagraphIds
from sleuth.errors import CorpusError
from sleuth.types import Document


def read_json_corpus(path: str | Path) -> Iterator[Document]:
    path = Path(path)
    data = read_json_document(path)
    ids = ParagraphIds()
    if isinstance(data, dict):
        for title, value in data.items():
            sentences = value if isinstance(value, list) else [value]
            if not all(isinstance(part, str) for part in sentences):
                raise CorpusError(f"{path}: the text of {title!r} is not a string or sentences")
            text = "".join(sentences).strip()
            doc_id, new = ids.assign(str(title), text)
            if new:
                yield Document(id=doc_id, title=str(title), text=text)
        return
    if not isinstance(data, list):
        raise CorpusError(f"{path}: expected a JSON array of documents or an object title->text")
    for position, record in enumerate(data):
        where = f"{path}[{position}]"
        if not isinstance(record, dict):
            raise CorpusError(f"{where}: expected a JSON object, got {type(record).__name__}")
        if any(key in record for key in ID_KEYS):
            yield record_to_document(record, where)
            continue
        title, text = record.get("title"), record.get("text", record.get("contents"))
        if not isinstance(title, str) or not isinstance(text, str):
            raise CorpusError(f"{where}: a document needs an id, or a title and a text")
        doc_id, new = ids.assign(title, text)
        if new:
            fields = {k: v for k, v in record.items() if k not in ("title", "text", "contents")}
            yield Document(id=doc_id, title=title, text=text, fields=fields)
