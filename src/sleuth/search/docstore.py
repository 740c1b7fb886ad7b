"""Documents stored once per index in SQLite: random access by row (engines) and by id (``get``).

SQLite is in the standard library, needs no server, is crash-safe, and never unpickles anything.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Sequence
from pathlib import Path

from sleuth.errors import DocumentNotFound, IndexFormatError
from sleuth.types import Document, Hit

FILENAME = "docs.sqlite"


class DocStoreWriter:
    """Append documents in order; the row number is what engines store."""

    def __init__(self, folder: Path) -> None:
        self._db = sqlite3.connect(folder / FILENAME)
        self._db.executescript(
            "PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF;"
            "CREATE TABLE docs (row INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE,"
            " title TEXT NOT NULL, text TEXT NOT NULL, fields TEXT NOT NULL);"
        )
        self._pending: list[tuple[int, str, str, str, str]] = []
        self.count = 0

    def add(self, doc: Document) -> int:
        row = self.count
        fields = json.dumps(doc.fields, ensure_ascii=False, default=str)
        self._pending.append((row, doc.id, doc.title, doc.text, fields))
        self.count += 1
        if len(self._pending) >= 5000:
            self._flush()
        return row

    def _flush(self) -> None:
        try:
            self._db.executemany("INSERT INTO docs VALUES (?, ?, ?, ?, ?)", self._pending)
        except sqlite3.IntegrityError as exc:
            raise DuplicateIdError(str(exc)) from None
        self._pending.clear()

    def close(self) -> None:
        self._flush()
        self._db.commit()
        self._db.close()


class DuplicateIdError(ValueError):
    """Two documents share an id; raised while building so no index is written."""


SQLITE_MAGIC = b"SQLite format 3\x00"


def check_sqlite_file(path: Path) -> None:
    """Refuse a file that is not SQLite or is shorter than its header says (a truncated copy),
    in O(1): SQLite itself only notices when a query reaches a missing page."""
    with path.open("rb") as handle:
        header = handle.read(100)
    if len(header) < 100 or not header.startswith(SQLITE_MAGIC):
        raise IndexFormatError(f"{path}: not an SQLite database (damaged or replaced)")
    page_size = int.from_bytes(header[16:18], "big")
    page_size = 65536 if page_size == 1 else page_size
    pages = int.from_bytes(header[28:32], "big")
    counter_valid = header[24:28] == header[92:96]  # the page count is trustworthy
    expected, actual = page_size * pages, path.stat().st_size
    if counter_valid and pages and actual < expected:
        raise IndexFormatError(f"{path}: truncated ({actual:,} of {expected:,} bytes)")


class DocStore:
    """Read-only access; one SQLite connection per thread (the server searches from a pool).

    Damage found while reading (a page SQLite cannot read) is an IndexFormatError naming the
    file, not a raw ``sqlite3.DatabaseError``.
    """

    def __init__(self, folder: Path) -> None:
        self._path = Path(folder) / FILENAME
        self._local = threading.local()
        check_sqlite_file(self._path)
        self._count = self._fetch("SELECT COUNT(*) FROM docs")[0][0]

    def _fetch(self, sql: str, args: Sequence[object] = ()) -> list[tuple]:
        try:
            return self._conn().execute(sql, args).fetchall()
        except sqlite3.DatabaseError as exc:
            raise IndexFormatError(
                f"{self._path}: damaged document store ({exc}); rebuild the index with "
                "`sleuth index ... --out` again"
            ) from None

    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(f"file:{self._path}?mode=ro", uri=True, check_same_thread=False)
            self._local.conn = conn
        return conn

    def __len__(self) -> int:
        return self._count

    def get(self, doc_id: str) -> Document:
        rows = self._fetch("SELECT id, title, text, fields FROM docs WHERE id = ?", (doc_id,))
        if not rows:
            raise DocumentNotFound(f"no document with id {doc_id!r}")
        row = rows[0]
        return Document(id=row[0], title=row[1], text=row[2], fields=json.loads(row[3]))

    def hits(self, rows: Sequence[int], scores: Sequence[float]) -> list[Hit]:
        """Hits for ranked rows, keeping the given order."""
        if not rows:
            return []
        marks = ",".join("?" * len(rows))
        found = {
            r: (i, t, x)
            for r, i, t, x in self._fetch(
                f"SELECT row, id, title, text FROM docs WHERE row IN ({marks})", list(rows)
            )
        }
        return [
            Hit(id=found[r][0], score=float(s), title=found[r][1], text=found[r][2], rank=n)
            for n, (r, s) in enumerate(zip(rows, scores, strict=True), start=1)
        ]

    def rows(self) -> list[int]:
        """Every row number in the store (gaps are documents an update removed)."""
        return [row for (row,) in self._fetch("SELECT row FROM docs ORDER BY row")]

    def row_of(self, doc_id: str) -> int | None:
        rows = self._fetch("SELECT row FROM docs WHERE id = ?", (doc_id,))
        return rows[0][0] if rows else None
