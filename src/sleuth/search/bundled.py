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
    holds it works: opening never writes)."""
    from sleuth.corpus import load_documents
    from sleuth.progress import progress_bar
    from sleuth.search.index_format import FORMAT_VERSION, build_index, read_manifest

    path = cache_dir() / "indexes" / f"{name}-{engine}"
    try:
        if read_manifest(path)["format_version"] == FORMAT_VERSION:
            return path  # an older format is rebuilt: the bundled index follows the defaults
    except IndexFormatError:
        pass
    except OSError:  # the cache path runs through a file, or cannot be read
        pass
    writable_cache_dir("indexes")
    with progress_bar(f"indexing bundled {name} ({engine})") as advance:
        return build_index(load_documents(name), path, engine=engine, source=name, progress=advance)
