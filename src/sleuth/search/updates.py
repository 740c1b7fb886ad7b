"""Add, replace and delete documents of a built index, committed atomically as a generation.

A commit never writes into the files readers have open. It writes a new generation folder
(``generations/NNNNNN``: the document store, the BM25 index, the vectors) beside the current
one, and the manifest, rewritten last with an atomic rename, switches readers to it. A crash
at any point before that rename leaves the last committed index as it was (the half-written
generation is removed by the next commit); after it, the new one. The manifest's ``updates``
lists every commit (time, added, updated, deleted, generation).

Per engine:
- documents: the SQLite store is copied and changed in one transaction. Rows are never reused
  (``next_row`` in the manifest), so a row number always means one document version.
- BM25: a batch that only adds documents is a delta: the previous generation's segment files
  are hard-linked (tantivy never rewrites a segment) and the new documents become a new segment
  searched with the others; statistics are index-wide, so scores equal a rebuild's. A batch
  that replaces or deletes documents rebuilds the BM25 index from the new store, because
  tantivy counts a deleted document in term frequencies until a merge purges it, which its
  Python binding cannot request: scores would drift from a rebuilt index.
- dense (faiss): the new documents' vectors are appended; vectors of deleted or replaced
  documents stay in the file and are masked at search time (rows absent from the store).
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import sqlite3
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from sleuth.errors import DocumentNotFound, IndexFormatError, SleuthError
from sleuth.jsonio import write_json_atomic
from sleuth.search.docstore import FILENAME as DOCSTORE_FILE
from sleuth.search.docstore import check_sqlite_file
from sleuth.search.index_format import (
    MANIFEST,
    data_folder,
    read_manifest,
)
from sleuth.types import Document

GENERATIONS = "generations"
LOCK_FILE = ".lock"
ROOT_DATA = (DOCSTORE_FILE, "bm25", "dense")  # generation 0 lives in the index folder itself
MAX_LISTED = 5  # ids named in an error


class UpdateError(SleuthError):
    """A batch that cannot be applied as given (nothing is written)."""


@dataclass(frozen=True)
class UpdateResult:
    """What one commit did; ``bm25`` says how the BM25 half was written (delta or rebuilt)."""

    generation: int
    added: int
    updated: int
    deleted: int
    documents: int
    bm25: str | None
    commit_ms: float

    def public(self) -> dict[str, Any]:
        return asdict(self)


def checkpoint(step: str) -> None:
    """A named point between the writes of a commit (``docstore``, ``bm25``, ``dense``,
    ``manifest``); does nothing. Tests replace it to crash a commit there."""


def check_batch(upserts: Sequence[Document], deletes: Sequence[str]) -> None:
    """Refuse an empty batch, an empty id, and an id given twice (or both upserted and
    deleted): which of the two would win is not obvious, so neither is applied."""
    if not upserts and not deletes:
        raise UpdateError("nothing to update: give documents to add or ids to delete")
    seen: set[str] = set()
    for kind, ids in (("documents", [d.id for d in upserts]), ("deletes", list(deletes))):
        for doc_id in ids:
            if not isinstance(doc_id, str) or not doc_id.strip():
                raise UpdateError(f"{kind}: an id is empty")
            if doc_id in seen:
                raise UpdateError(f"id {doc_id!r} appears twice in the batch")
            seen.add(doc_id)
    for doc in upserts:
        if not doc.title.strip() and not doc.text.strip():
            raise UpdateError(f"document {doc.id!r} has neither title nor text")


@contextmanager
def update_lock(folder: Path) -> Iterator[None]:
    """One commit at a time per index folder, across processes (a server and the CLI)."""
    generations = folder / GENERATIONS
    try:
        generations.mkdir(exist_ok=True)
        handle = (generations / LOCK_FILE).open("a")
    except OSError as exc:
        raise SleuthError(
            f"cannot update {folder}: {exc.strerror or exc} (updates write a new generation "
            "into the index folder, so it must be writable)"
        ) from None
    with handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _generation_name(number: int) -> str:
    return f"{GENERATIONS}/{number:06d}"


def publish_manifest(folder: Path, manifest: dict[str, Any]) -> None:
    """The commit point: the manifest naming the new generation replaces the old one."""
    write_json_atomic(folder / MANIFEST, manifest)


def apply_update(
    folder: str | Path,
    upserts: Sequence[Document] = (),
    deletes: Sequence[str] = (),
    *,
    encoder: Any = None,
    publish: Callable[[Path, dict[str, Any]], None] = publish_manifest,
) -> UpdateResult:
    """Upsert ``upserts`` (a known id is replaced) and delete ``deletes`` (ids) in ``folder``,
    all or nothing. ``encoder``: the dense encoder to reuse (default: the manifest's).
    ``publish`` writes the new manifest (the server wraps it to know the change is its own).
    An unknown id to delete is a DocumentNotFound and nothing is written."""
    started = time.perf_counter()
    folder = Path(folder).expanduser()
    check_batch(upserts, deletes)
    read_manifest(folder)  # a missing or foreign folder is named before anything is written
    with update_lock(folder):
        manifest = read_manifest(folder)
        engine = manifest["engine"]
        source = data_folder(folder, manifest)
        generation = int(manifest.get("generation", 0)) + 1
        target = folder / _generation_name(generation)
        _remove_tree(target)  # left by a commit that crashed before its manifest
        target.mkdir(parents=True)
        try:
            first_row = int(manifest.get("next_row", manifest["corpus"]["documents"]))
            change = _write_docstore(source, target, upserts, deletes, first_row)
            checkpoint("docstore")
            bm25 = None
            if engine in ("bm25", "hybrid"):
                rebuild = bool(change["removed_rows"])
                bm25 = _write_bm25(source, target, manifest["params"], change["new_rows"], rebuild)
            checkpoint("bm25")
            if engine in ("dense", "hybrid"):
                _write_dense(source, target, manifest["params"], change["new_rows"], encoder)
            checkpoint("dense")
            _sync_tree(target)  # on disk before the manifest names it (a power cut too)
            result = UpdateResult(
                generation=generation,
                added=change["added"],
                updated=change["updated"],
                deleted=change["deleted"],
                documents=change["count"],
                bm25=bm25,
                commit_ms=0.0,
            )
            publish(folder, _next_manifest(manifest, result, change))
        except BaseException:
            _remove_tree(target)
            raise
        checkpoint("manifest")
        _remove_old_generations(folder, keep={target, source})
    return UpdateResult(
        **{**result.public(), "commit_ms": round((time.perf_counter() - started) * 1e3, 1)}
    )


def _next_manifest(
    manifest: dict[str, Any], result: UpdateResult, change: dict[str, Any]
) -> dict[str, Any]:
    history = list(manifest.get("updates", []))
    history.append(
        {
            "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "added": result.added,
            "updated": result.updated,
            "deleted": result.deleted,
            "generation": result.generation,
            "bm25": result.bm25,
        }
    )
    corpus = {**manifest.get("corpus", {}), "documents": change["count"], "sha256": change["sha"]}
    return {
        **manifest,
        "corpus": corpus,
        "generation": result.generation,
        "data": _generation_name(result.generation),
        "next_row": change["next_row"],
        "updates": history,
    }


def _write_docstore(
    source: Path, target: Path, upserts: Sequence[Document], deletes: Sequence[str], first_row: int
) -> dict[str, Any]:
    """Copy the store and apply the batch in one transaction; returns what changed."""
    import json

    check_sqlite_file(source / DOCSTORE_FILE)
    shutil.copyfile(source / DOCSTORE_FILE, target / DOCSTORE_FILE)
    db = sqlite3.connect(target / DOCSTORE_FILE)
    try:
        known = _rows_of(db, [d.id for d in upserts] + list(deletes))
        missing = [doc_id for doc_id in deletes if doc_id not in known]
        if missing:
            shown = ", ".join(map(repr, missing[:MAX_LISTED]))
            more = f" and {len(missing) - MAX_LISTED} more" if len(missing) > MAX_LISTED else ""
            raise DocumentNotFound(f"cannot delete unknown ids: {shown}{more}")
        updated = [d.id for d in upserts if d.id in known]
        removed = [known[doc_id] for doc_id in [*updated, *deletes]]
        db.executemany("DELETE FROM docs WHERE row = ?", [(row,) for row in removed])
        new_rows = list(enumerate(upserts, start=first_row))
        db.executemany(
            "INSERT INTO docs VALUES (?, ?, ?, ?, ?)",
            [
                (row, d.id, d.title, d.text, json.dumps(d.fields, ensure_ascii=False, default=str))
                for row, d in new_rows
            ],
        )
        db.commit()
        count = db.execute("SELECT COUNT(*) FROM docs").fetchone()[0]
        checksum = _store_checksum(db)
    finally:
        db.close()
    return {
        "added": len(upserts) - len(updated),
        "updated": len(updated),
        "deleted": len(deletes),
        "removed_rows": removed,
        "new_rows": new_rows,
        "count": count,
        "next_row": first_row + len(upserts),
        "sha": checksum,
    }


def _store_checksum(db: sqlite3.Connection) -> str:
    """``CorpusHasher``'s digest of the stored documents in row order (what a build of the same
    documents records), fed in chunks: per document it was most of a small commit's time."""
    sha = hashlib.sha256()
    cursor = db.execute(
        "SELECT id || char(0) || title || char(0) || text || char(0) FROM docs ORDER BY row"
    )
    while rows := cursor.fetchmany(2000):
        sha.update("".join(row[0] for row in rows).encode("utf-8"))
    return sha.hexdigest()


def _rows_of(db: sqlite3.Connection, ids: list[str]) -> dict[str, int]:
    found: dict[str, int] = {}
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        marks = ",".join("?" * len(chunk))
        found.update(db.execute(f"SELECT id, row FROM docs WHERE id IN ({marks})", chunk))
    return found


def _stored_documents(folder: Path) -> Iterator[tuple[int, Document]]:
    db = sqlite3.connect(f"file:{folder / DOCSTORE_FILE}?mode=ro", uri=True)
    try:
        for row, doc_id, title, text in db.execute(
            "SELECT row, id, title, text FROM docs ORDER BY row"
        ):
            yield row, Document(doc_id, title, text)
    finally:
        db.close()


def _write_bm25(
    source: Path,
    target: Path,
    params: dict[str, Any],
    new_rows: list[tuple[int, Document]],
    rebuild: bool,
) -> str:
    from sleuth.search.lexical import LOCK_FILES, LexicalIndexWriter

    tokenizer = params.get("tokenizer", "english")
    splitter = params.get("splitter", "simple")  # formats 1-2 record none
    out = target / "bm25"
    rows: Any = _stored_documents(target) if rebuild else new_rows
    if not rebuild:
        _link_files(source / "bm25", out, skip=LOCK_FILES)
    writer = LexicalIndexWriter(out, tokenizer, heap_mb=64, splitter=splitter)
    try:
        for row, doc in rows:
            writer.add(row, doc)
    except BaseException:
        writer.abort()
        raise
    writer.close()
    return "rebuilt" if rebuild else "delta"


def _link_files(source: Path, target: Path, skip: Sequence[str] = ()) -> None:
    """Hard links to the files of ``source`` (copies across filesystems): tantivy replaces its
    meta files by rename and never rewrites a segment, so the source stays as it was."""
    target.mkdir()
    for entry in source.iterdir():
        if entry.name in skip or not entry.is_file():
            continue
        try:
            os.link(entry, target / entry.name)
        except OSError:
            shutil.copy2(entry, target / entry.name)


def _write_dense(
    source: Path,
    target: Path,
    params: dict[str, Any],
    new_rows: list[tuple[int, Document]],
    encoder: Any,
) -> None:
    from sleuth.search.dense import FAISS_FILE, _faiss, save_faiss

    if not new_rows:
        _link_files(source / "dense", target / "dense")
        return
    if params.get("rerank"):
        raise SleuthError(
            f"{source}: documents cannot be added to an index imported with --rerank disk (its "
            "full-precision rows on disk are not appended to); import it again instead"
        )
    index = _faiss().read_index(str(source / "dense" / FAISS_FILE))
    if index.ntotal != new_rows[0][0]:
        raise IndexFormatError(
            f"{source / 'dense' / FAISS_FILE}: holds {index.ntotal:,} vectors but the next "
            f"row is {new_rows[0][0]:,}; rebuild the index"
        )
    if encoder is None:
        from sleuth.search.encoder import Encoder

        encoder = Encoder(params.get("encoder"), params.get("encoder_backend"))
    texts = [f"{d.title}\n{d.text}" if d.title else d.text for _, d in new_rows]
    index.add(encoder.encode(texts))
    (target / "dense").mkdir()
    save_faiss(index, target / "dense")


def _sync_tree(folder: Path) -> None:
    """fsync every file and folder of the new generation (faiss does not sync its file)."""
    for path in [*folder.rglob("*"), folder]:
        flags = os.O_RDONLY | (os.O_DIRECTORY if path.is_dir() else 0)
        descriptor = os.open(path, flags)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)


def _remove_old_generations(folder: Path, keep: set[Path]) -> None:
    """Keep the new generation and the one before it (requests still reading it finish);
    generation 0's files in the index folder go once neither uses them."""
    for entry in (folder / GENERATIONS).iterdir():
        if entry.is_dir() and entry not in keep:
            _remove_tree(entry)
    if folder not in keep:
        for name in ROOT_DATA:
            path = folder / name
            if path.is_dir():
                _remove_tree(path)
            else:
                path.unlink(missing_ok=True)


def _remove_tree(path: Path) -> None:
    from sleuth.search.index_format import _remove_tree as remove

    if path.exists():
        remove(path)
