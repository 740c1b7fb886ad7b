"""BM25 over tantivy: one indexed field holding title + text, scored as BM25 (k1=1.2, b=0.75).

The default analyzer is Lucene's English one in tantivy's filters: words split as Lucene's
StandardTokenizer and EnglishPossessiveFilter split them (``words``, below), lowercase, Lucene's
33-word English stopword list, Snowball English stemming. Queries go through the same
analyzer and become a disjunction of term queries, one per distinct term boosted by how often the
term occurs in the query (Lucene and bm25s sum repeated terms; collapsing them cost about 0.06
nDCG@10 on long queries). User and LLM queries full of quotes, colons or ``AND`` never hit a
query-language parse error, and a reference BM25 can be fed the very same tokens.

k1 and b are tantivy's fixed constants; a sweep (``bench/quality.py``) found them within 0.002
mean nDCG@10 of the best pair on the bundled collections, see docs/search.md.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import weakref
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import tantivy

from sleuth.errors import SleuthError
from sleuth.search.base import validate_query
from sleuth.search.docstore import DocStore
from sleuth.types import Document, Hit

FIELD = "body"
DEFAULT_ANALYZER = "english"
ANALYZERS = ("english", "plain", "en_stem")
LEGACY_ANALYZERS = {"default": "plain"}  # format-1 manifests named the lowercase-only analyzer so
TOKENIZERS = (*ANALYZERS, *LEGACY_ANALYZERS)  # every name a manifest may carry
MAX_TOKEN_CHARS = 40  # tantivy's default tokenizer drops longer tokens
K1, B = 1.2, 0.75  # tantivy's BM25 constants (not configurable in tantivy)
# How text is cut into words before the filters (the manifest's ``splitter``):
# - ``simple``: tantivy's simple tokenizer, a word is a run of letters and digits. Indexes up to
#   format 2 were built so: "aircraft's" -> aircraft, s; "don't" -> don, t; "2.5" -> 2, 5;
#   "foo_bar" -> foo, bar. The fragments s, t, 2, 5 are words neither Lucene nor bm25s indexes.
# - ``words`` (format 3, the English analyzers): as Lucene's StandardTokenizer (UAX#29) and
#   EnglishPossessiveFilter cut English text: a decimal or grouped number is one word ("2.5",
#   "3,000"), an apostrophe between letters joins ("don't", "o'neill"), a possessive 's or ’s is
#   dropped ("aircraft's" -> aircraft), an underscore joins ("foo_bar"). Hyphens and other
#   punctuation split, as before and as in Lucene and bm25s.
SPLITTERS = ("simple", "words")
WORDS_PATTERN = (
    r"\d+(?:[.,]\d+)+"  # 2.5, 3,000, 1.2.3: one number
    r"|['’][sS]\b"  # a possessive marker, removed by POSSESSIVE below
    r"|\w+(?:['’](?:[^\WsS]|[sS]\w)\w*)*"  # a word; an apostrophe joins unless 's ends it
)
POSSESSIVE = ["'s", "’s"]
# Lucene's EnglishAnalyzer.ENGLISH_STOP_WORDS_SET; tantivy's built-in "english" list is the same.
LUCENE_ENGLISH_STOPWORDS = (
    "a", "an", "and", "are", "as", "at", "be", "but", "by", "for", "if", "in", "into", "is", "it",
    "no", "not", "of", "on", "or", "such", "that", "the", "their", "then", "there", "these",
    "they", "this", "to", "was", "will", "with",
)  # fmt: skip


def canonical_analyzer(name: str) -> str:
    """The current name of an analyzer (format-1 indexes say ``default`` for ``plain``)."""
    name = LEGACY_ANALYZERS.get(name, name)
    if name not in ANALYZERS:
        raise ValueError(f"unknown analyzer {name!r}; choose one of {', '.join(ANALYZERS)}")
    return name


def default_splitter(name: str) -> str:
    """The splitter a new index of this analyzer uses: ``words`` for the English analyzers,
    ``simple`` for ``plain`` (other languages and identifiers keep the format-1 behaviour)."""
    return "simple" if canonical_analyzer(name) == "plain" else "words"


def analyzer_params(name: str, query_tf: bool = True) -> dict[str, Any]:
    """What the manifest records about the analysis, so an index can be reproduced."""
    name = canonical_analyzer(name)
    return {
        "tokenizer": name,
        "splitter": default_splitter(name),
        "lowercase": True,
        "stopwords": "lucene-english" if name == "english" else None,
        "stemmer": "snowball-english" if name in ("english", "en_stem") else None,
        "query_tf": query_tf,
        "k1": K1,
        "b": B,
    }


def make_analyzer(
    tokenizer: str = DEFAULT_ANALYZER, splitter: str | None = None
) -> tantivy.TextAnalyzer:
    """The splitter (default: the analyzer's, see ``default_splitter``), long-token removal,
    lowercase, then the analyzer's filters."""
    name = canonical_analyzer(tokenizer)
    splitter = splitter or default_splitter(name)
    if splitter not in SPLITTERS:
        raise ValueError(f"unknown splitter {splitter!r}; choose one of {', '.join(SPLITTERS)}")
    words = splitter == "words"
    builder = (
        tantivy.TextAnalyzerBuilder(
            tantivy.Tokenizer.regex(WORDS_PATTERN) if words else tantivy.Tokenizer.simple()
        )
        .filter(tantivy.Filter.remove_long(MAX_TOKEN_CHARS))
        .filter(tantivy.Filter.lowercase())
    )
    if words:  # Lucene's EnglishPossessiveFilter: the 's marker is no word
        builder = builder.filter(tantivy.Filter.custom_stopword(POSSESSIVE))
    if name == "english":
        builder = builder.filter(tantivy.Filter.custom_stopword(list(LUCENE_ENGLISH_STOPWORDS)))
    if name in ("english", "en_stem"):
        builder = builder.filter(tantivy.Filter.stemmer("english"))
    return builder.build()


def tokenize(
    text: str, tokenizer: str = DEFAULT_ANALYZER, splitter: str | None = None
) -> list[str]:
    """The exact tokens Sleuth's BM25 indexes and searches (for reference implementations);
    ``splitter="simple"`` gives what an index of format 2 or older holds."""
    return make_analyzer(tokenizer, splitter).analyze(text)


def query_terms(tokens: Sequence[str], query_tf: bool = True) -> list[tuple[str, int]]:
    """Distinct terms in first-seen order with their query frequency (1 each if not counted)."""
    counts = Counter(tokens)
    return [(term, counts[term] if query_tf else 1) for term in dict.fromkeys(tokens)]


def document_body(doc: Document) -> str:
    return f"{doc.title}\n{doc.text}" if doc.title else doc.text


def _schema() -> tantivy.Schema:
    builder = tantivy.SchemaBuilder()
    builder.add_unsigned_field("row", stored=True, fast=True)
    builder.add_text_field(FIELD, stored=False, tokenizer_name="sleuth", index_option="freq")
    return builder.build()


class LexicalIndexWriter:
    def __init__(
        self,
        folder: Path,
        tokenizer: str = DEFAULT_ANALYZER,
        heap_mb: int = 256,
        splitter: str | None = None,
    ) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self._index = tantivy.Index(_schema(), path=str(folder))
        self._index.register_tokenizer("sleuth", make_analyzer(tokenizer, splitter))
        self._writer = self._index.writer(heap_size=heap_mb * 1024 * 1024)

    def add(self, row: int, doc: Document) -> None:
        record = tantivy.Document()
        record.add_unsigned("row", row)  # kwargs would make it i64, which the u64 column rejects
        record.add_text(FIELD, document_body(doc))
        self._writer.add_document(record)

    def close(self) -> None:
        self._writer.commit()
        self._writer.wait_merging_threads()

    def abort(self) -> None:
        """Discard uncommitted documents and wait for the writer's threads to finish."""
        self._writer.rollback()
        self._writer.wait_merging_threads()


LOCK_FILES = (".tantivy-meta.lock", ".tantivy-writer.lock")
VIEW_PREFIX = "sleuth-bm25-"


def _remove_views_of_dead_processes() -> None:
    """Views are removed when their engine goes away; a killed process leaves its view behind."""
    for view in Path(tempfile.gettempdir()).glob(f"{VIEW_PREFIX}*-*"):
        try:
            os.kill(int(view.name.removeprefix(VIEW_PREFIX).split("-")[0]), 0)
        except ProcessLookupError:
            shutil.rmtree(view, ignore_errors=True)
        except (ValueError, PermissionError):
            continue


def open_read_only(folder: Path) -> tuple[tantivy.Index, Path]:
    """Open a tantivy index without writing a byte into ``folder``; returns the index and the
    private folder to remove when the index is no longer used.

    tantivy's reader creates and locks ``.tantivy-meta.lock`` inside the index folder while it
    loads segments, so a read-only mount (container ``:ro``, NFS export, shared volume) fails
    with ``ReadOnlyFilesystem``. Here tantivy opens a private temporary folder of symlinks to
    the index files instead (named with this process's id): the lock file lands there, and the
    reader never reloads (``manual``). The folder lives as long as the index: removing it early
    would race tantivy's file watcher, which may re-create the lock file.
    """
    folder = Path(folder).resolve()
    _remove_views_of_dead_processes()
    try:
        view = Path(tempfile.mkdtemp(prefix=f"{VIEW_PREFIX}{os.getpid()}-"))
    except OSError as exc:
        raise SleuthError(
            f"cannot create a temporary folder to open the BM25 index ({exc.strerror}); "
            "set TMPDIR to a writable folder"
        ) from None
    try:
        for entry in folder.iterdir():
            if entry.name not in LOCK_FILES:
                os.symlink(entry, view / entry.name)
        index = tantivy.Index.open(str(view))
        index.config_reader(reload_policy="manual")
        index.reload()
        return index, view
    except ValueError as exc:  # tantivy's errors name files by their path in the view
        shutil.rmtree(view, ignore_errors=True)
        raise ValueError(str(exc).replace(str(view), str(folder))) from None
    except BaseException:
        shutil.rmtree(view, ignore_errors=True)
        raise


class LexicalEngine:
    """BM25 search; ``search_batch`` fans out over threads because tantivy releases the GIL."""

    name = "bm25"

    def __init__(
        self,
        folder: Path,
        docstore: DocStore,
        tokenizer: str = DEFAULT_ANALYZER,
        query_tf: bool = True,
        splitter: str | None = None,
    ) -> None:
        self._index, view = open_read_only(folder)
        self._remove_view = weakref.finalize(self, shutil.rmtree, view, ignore_errors=True)
        self._index.register_tokenizer("sleuth", make_analyzer(tokenizer, splitter))
        self._analyzer = make_analyzer(tokenizer, splitter)
        self._schema = self._index.schema
        self._searcher = self._index.searcher()
        self._docs = docstore
        self._pool: ThreadPoolExecutor | None = None
        self.tokenizer = canonical_analyzer(tokenizer)
        self.splitter = splitter or default_splitter(tokenizer)
        self.query_tf = query_tf  # False only for format-1 indexes, which collapsed repeats

    def __len__(self) -> int:
        return len(self._docs)

    def _query(self, query: str) -> tantivy.Query | None:
        terms = query_terms(self._analyzer.analyze(query), self.query_tf)
        if not terms:
            return None
        clauses = []
        for term, count in terms:
            clause = tantivy.Query.term_query(self._schema, FIELD, term)
            if count > 1:  # a term said n times scores n times, as n Lucene clauses would
                clause = tantivy.Query.boost_query(clause, float(count))
            clauses.append((tantivy.Occur.Should, clause))
        return tantivy.Query.boolean_query(clauses)

    def ranked_rows(self, query: str, k: int) -> tuple[list[int], list[float]]:
        """Row numbers and BM25 scores, best first (used by hybrid fusion too)."""
        parsed = self._query(query)
        if parsed is None:
            return [], []
        result = self._searcher.search(parsed, limit=k, count=False)
        rows, scores = [], []
        for score, address in result.hits:
            rows.append(self._searcher.doc(address)["row"][0])
            scores.append(score)
        return rows, scores

    def search(self, query: str, k: int = 10) -> list[Hit]:
        validate_query(query, k)
        return self._docs.hits(*self.ranked_rows(query, k))

    def search_batch(self, queries: Sequence[str], k: int = 10) -> list[list[Hit]]:
        for query in queries:
            validate_query(query, k)
        if len(queries) < 8:
            return [self._docs.hits(*self.ranked_rows(q, k)) for q in queries]
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="bm25")
        ranked = list(self._pool.map(lambda q: self.ranked_rows(q, k), queries))
        return [self._docs.hits(rows, scores) for rows, scores in ranked]

    def get(self, doc_id: str) -> Document:
        return self._docs.get(doc_id)
