"""Cranfield 1400 in SMART format (``cran.all.1400``, ``cran.qry``, ``cranqrel``).

Quirk: ``cran.qry`` numbers its 225 queries with gaps (001, 002, 004, 008, ...), while
``cranqrel`` refers to them by position 1..225. Queries are therefore renumbered by order.

Relevance in ``cranqrel``: 1 = most relevant ... 4 = least relevant, -1 = not relevant (some
distributions also use 5 for "minimal interest"). Graded gain for nDCG: ``gain = 5 - rel`` for
1..4 (so 4, 3, 2, 1), and 0 otherwise.

The general SMART reader, which keeps both quirks, is ``sleuth.corpus.smart``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from sleuth.corpus import smart
from sleuth.errors import CorpusError
from sleuth.types import Document


def cranfield_documents(folder: str | Path) -> Iterator[Document]:
    path = Path(folder) / "cran.all.1400"
    if not path.is_file():
        raise CorpusError(f"{path}: no such file")
    return smart.smart_documents(folder)


def cranfield_queries(folder: str | Path) -> dict[str, str]:
    """Queries keyed "1".."225" by position, matching cranqrel (see the module docstring)."""
    return smart.smart_queries(folder)


def cranfield_gain(relevance: int) -> int:
    return 5 - relevance if 1 <= relevance <= 4 else 0


def cranfield_qrels(folder: str | Path) -> dict[str, dict[str, int]]:
    path = Path(folder) / "cranqrel"
    if not path.is_file():
        raise CorpusError(f"{path}: no such file")
    return smart.smart_qrels(folder)


def is_cranfield_folder(path: Path) -> bool:
    return path.is_dir() and (path / "cran.all.1400").is_file()
