"""Checks run before an index build starts, so a bad ``--out`` or option fails in a second with
one clear line instead of after the whole build (or with a traceback)."""

from __future__ import annotations

import os
from pathlib import Path

from sleuth.errors import IndexFormatError, SleuthError

MANIFEST = "manifest.json"  # same name as index_format.MANIFEST (kept import-free)
ENGINES = ("bm25", "dense", "hybrid")  # the engines an index can be built with
# What a built index folder holds: its manifest, the document store (and SQLite's side files),
# and one folder per engine part. Anything else is the user's and must survive a rebuild.
INDEX_ENTRIES = frozenset(
    {MANIFEST, "docs.sqlite", "docs.sqlite-wal", "docs.sqlite-shm", "docs.sqlite-journal"}
    | {"bm25", "dense", "generations"}  # generations: ``sleuth index update`` (search/updates.py)
)


def check_engine_options(engine: str, dense_index: str | None) -> None:
    """Unknown engine or faiss index type, or a faiss index type given to BM25: refused."""
    from sleuth.search.dense import INDEX_TYPES

    if engine not in ENGINES:
        raise SleuthError(f"unknown engine {engine!r}; choose one of {', '.join(ENGINES)}")
    if dense_index is None:
        return
    if dense_index not in INDEX_TYPES:
        raise SleuthError(
            f"unknown dense index {dense_index!r}; choose one of {', '.join(INDEX_TYPES)}"
        )
    if engine == "bm25":
        raise SleuthError(
            f"--dense-index {dense_index} applies to the dense and hybrid engines; "
            "a bm25 index has no vectors (use --engine dense or hybrid, or drop --dense-index)"
        )


def check_index_target(out: str | Path) -> Path:
    """The resolved output folder, or a ``SleuthError`` saying why an index cannot go there:
    the filesystem root, an existing file, a folder holding something that is not an index,
    or a parent that is a file or cannot be created/written."""
    path = Path(out).expanduser().resolve()
    if path.parent == path:
        raise SleuthError(f"--out {out}: cannot build an index at the filesystem root")
    if path.is_file() or (path.exists() and not path.is_dir()):
        raise SleuthError(f"--out {out}: {path} is a file; give a folder for the index")
    if path.is_dir() and not (path / MANIFEST).is_file() and any(path.iterdir()):
        raise IndexFormatError(f"{path} exists and is not a Sleuth index; refusing to overwrite it")
    if path.is_dir() and (
        foreign := sorted(p.name for p in path.iterdir() if p.name not in INDEX_ENTRIES)
    ):
        shown = ", ".join(foreign[:5]) + (", ..." if len(foreign) > 5 else "")
        raise SleuthError(
            f"--out {out}: the index folder {path} also holds files Sleuth did not write "
            f"({shown}); a rebuild replaces the whole folder, so move them out first or give "
            "another --out"
        )
    for parent in (path.parent, *path.parent.parents):
        if parent.exists():
            if not parent.is_dir():
                raise SleuthError(f"--out {out}: {parent} is a file, not a folder")
            if not os.access(parent, os.W_OK | os.X_OK):
                raise SleuthError(f"--out {out}: cannot write in {parent} (permission denied)")
            break
    return path
