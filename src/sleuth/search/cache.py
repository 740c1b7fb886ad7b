"""Indexes of the bundled corpora, built once into the user cache (atomically) and reused."""

from __future__ import annotations

import os
from pathlib import Path

from sleuth.errors import IndexFormatError, SleuthError


def cache_dir() -> Path:
    """``$SLEUTH_CACHE``, else ``$XDG_CACHE_HOME/sleuth``, else ``~/.cache/sleuth``."""
    if os.environ.get("SLEUTH_CACHE"):
        return Path(os.environ["SLEUTH_CACHE"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "sleuth"


def writable_cache_dir(*parts: str) -> Path:
    """``cache_dir()/parts``, created; a SleuthError saying to set SLEUTH_CACHE when the cache
    is a file, read-only, or otherwise cannot be written (not an OSError traceback)."""
    folder = cache_dir().joinpath(*parts)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise SleuthError(
            f"cannot write the cache at {folder} ({reason}); set SLEUTH_CACHE to a writable folder"
        ) from None
    return folder


def bundled_index(name: str = "hotpotqa-1100", engine: str = "bm25") -> Path:
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
