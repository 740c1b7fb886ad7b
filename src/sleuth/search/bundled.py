"""Indexes of the bundled corpora, built once into the user cache (atomically) and reused.

``DEFAULT_CORPUS`` is the corpus every command searches when given no index: named here once.
"""

from __future__ import annotations

from pathlib import Path

from sleuth.errors import IndexFormatError
from sleuth.paths import cache_dir, writable_cache_dir

DEFAULT_CORPUS = "hotpotqa-1100"


def bundled_index(name: str = DEFAULT_CORPUS, engine: str = "bm25") -> Path:
    """The cached index of a bundled corpus, built on first use (a read-only cache that already
    holds it works: opening never writes). A cached index is rebuilt when it is not what a build
    now would write (``cached_index_is_current``): results then follow the installed version."""
    from sleuth.corpus import load_documents
    from sleuth.progress import progress_bar
    from sleuth.search.index_format import build_index

    path = cache_dir() / "indexes" / f"{name}-{engine}"
    if cached_index_is_current(path, name, engine):
        return path
    writable_cache_dir("indexes")
    with progress_bar(f"indexing bundled {name} ({engine})") as advance:
        return build_index(load_documents(name), path, engine=engine, source=name, progress=advance)


def cached_index_is_current(path: Path, name: str, engine: str) -> bool:
    """Whether the index cached at ``path`` has the current index format, the bundled corpus as
    installed now (checksum and count: an upgrade may change the data) and, for BM25, the
    current analysis settings (an upgrade may change a default without a new format)."""
    from sleuth.corpus import load_documents
    from sleuth.search.index_format import (
        FORMAT_VERSION,
        CorpusHasher,
        manifest_has_corpus,
        read_manifest,
    )
    from sleuth.search.lexical import DEFAULT_ANALYZER, analyzer_params

    try:
        manifest = read_manifest(path)
    except (IndexFormatError, OSError):  # none, damaged, or the cache path runs through a file
        return False
    if manifest.get("format_version") != FORMAT_VERSION:
        return False
    if engine == "bm25" and manifest.get("params") != analyzer_params(DEFAULT_ANALYZER):
        return False
    hasher, count = CorpusHasher(), 0
    for doc in load_documents(name):
        hasher.add(doc)
        count += 1
    return manifest_has_corpus(manifest, hasher.hexdigest(), count)
