"""The on-disk index: a folder with ``manifest.json`` describing what is inside.

Building writes into a hidden temporary sibling folder and renames it into place only when
complete (the manifest is written last), so a crash never leaves a half index under the
requested name, and a previous index at that path survives a failed rebuild.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from sleuth.errors import CorpusError, IndexFormatError, SleuthError
from sleuth.search.base import SearchEngine
from sleuth.search.docstore import FILENAME as DOCSTORE_FILE
from sleuth.search.docstore import DocStore, DocStoreWriter, DuplicateIdError
from sleuth.types import Document

MANIFEST = "manifest.json"
FORMAT_NAME = "sleuth-index"
FORMAT_VERSION = 1
ENGINES = ("bm25", "dense", "hybrid")
ENCODE_BATCH = 512


class CorpusHasher:
    """sha256 over the normalised documents, so an index can be matched to its corpus."""

    def __init__(self) -> None:
        self._sha = hashlib.sha256()

    def add(self, doc: Document) -> None:
        for part in (doc.id, doc.title, doc.text):
            self._sha.update(part.encode("utf-8"))
            self._sha.update(b"\x00")

    def hexdigest(self) -> str:
        return self._sha.hexdigest()


def _write_json_atomically(path: Path, payload: dict[str, Any]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", encoding="utf-8") as handle:
        json.dump(payload, handle, indent=2)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


BUILDER_PID = ".builder-pid"
STALE_UNMARKED_S = 60.0


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def recover_interrupted(out: Path) -> None:
    """Undo what a killed build left beside ``out``.

    A kill between the two renames of a swap leaves no ``out`` but a complete ``.old-`` folder:
    it is put back. Temporary folders of builds whose process is gone are removed (a live
    build's folder, marked with its PID, is left alone).
    """
    olds = sorted(out.parent.glob(f".{out.name}.old-*"), key=lambda p: p.stat().st_mtime)
    if not out.exists() and olds and (olds[-1] / MANIFEST).is_file():
        os.replace(olds.pop(), out)
    for old in olds:
        _remove_tree(old)
    for tmp in out.parent.glob(f".{out.name}.tmp-*"):
        try:
            pid = int((tmp / BUILDER_PID).read_text())
        except (OSError, ValueError):
            pid = None
        if pid is not None and pid != os.getpid() and _alive(pid):
            continue
        if pid is None and time.time() - tmp.stat().st_mtime < STALE_UNMARKED_S:
            continue  # just created by a build that has not marked it yet
        _remove_tree(tmp)


def _swap_into_place(tmp: Path, out: Path) -> None:
    if out.exists():
        if not (out / MANIFEST).is_file() and any(out.iterdir()):
            raise IndexFormatError(
                f"{out} exists and is not a Sleuth index; refusing to overwrite it"
            )
        old = out.with_name(f".{out.name}.old-{uuid.uuid4().hex[:8]}")
        os.replace(out, old)
        os.replace(tmp, out)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, out)


def build_index(
    documents: Iterable[Document],
    out: str | Path,
    engine: str = "bm25",
    *,
    tokenizer: str = "default",
    dense_index: str = "flat",
    encoder: str | None = None,
    encoder_backend: str | None = None,
    hnsw_m: int = 32,
    ef_construction: int = 80,
    source: str = "",
    progress: Callable[[int], None] | None = None,
) -> Path:
    """Index ``documents`` into the folder ``out`` (atomically) and return its path.

    ``engine``: ``bm25`` (tantivy), ``dense`` (encoder + faiss ``dense_index``) or ``hybrid``.
    ``encoder_backend``: ``onnx`` (default), ``onnx-int8``, ``openvino`` or ``torch``; the
    manifest records it.
    ``progress`` is called with the number of documents processed since the last call.
    """
    if engine not in ENGINES:
        raise SleuthError(f"unknown engine {engine!r}; choose one of {', '.join(ENGINES)}")
    out = Path(out).expanduser().resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    recover_interrupted(out)
    tmp = out.with_name(f".{out.name}.tmp-{uuid.uuid4().hex[:8]}")
    tmp.mkdir()
    (tmp / BUILDER_PID).write_text(str(os.getpid()))
    try:
        params = _build_into(
            documents,
            tmp,
            engine,
            tokenizer,
            dense_index,
            (encoder, encoder_backend),
            hnsw_m,
            ef_construction,
            progress,
        )
        count, checksum = params.pop("_count"), params.pop("_checksum")
        if count == 0:
            raise CorpusError(f"{source or 'corpus'}: no documents to index")
        from sleuth import __version__

        manifest = {
            "format": FORMAT_NAME,
            "format_version": FORMAT_VERSION,
            "engine": engine,
            "params": params,
            "corpus": {"sha256": checksum, "documents": count, "source": source},
            "sleuth_version": __version__,
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        _write_json_atomically(tmp / MANIFEST, manifest)
        (tmp / BUILDER_PID).unlink()
        _swap_into_place(tmp, out)
    except BaseException:
        _remove_tree(tmp)
        raise
    return out


def _remove_tree(path: Path) -> None:
    """Delete a failed build; retried because index writer threads may still be closing files."""
    for attempt in range(10):
        shutil.rmtree(path, ignore_errors=True)
        if not path.exists():
            return
        time.sleep(0.05 * (attempt + 1))


def _build_into(
    documents: Iterable[Document],
    folder: Path,
    engine: str,
    tokenizer: str,
    dense_index: str,
    encoder_spec: tuple[str | None, str | None],
    hnsw_m: int,
    ef_construction: int,
    progress: Callable[[int], None] | None,
) -> dict[str, Any]:
    store, hasher = DocStoreWriter(folder), CorpusHasher()
    params: dict[str, Any] = {}
    lexical = encoder = None
    if engine in ("bm25", "hybrid"):
        from sleuth.search.lexical import LexicalIndexWriter

        lexical = LexicalIndexWriter(folder / "bm25", tokenizer)
        params.update(tokenizer=tokenizer, k1=1.2, b=0.75)
    if engine in ("dense", "hybrid"):
        from sleuth.search.dense import INDEX_TYPES
        from sleuth.search.encoder import Encoder

        if dense_index not in INDEX_TYPES:
            raise SleuthError(f"unknown dense index {dense_index!r}; choose {INDEX_TYPES}")
        encoder = Encoder(*encoder_spec)
        params.update(
            dense_index=dense_index,
            encoder=encoder.name,
            encoder_backend=encoder.backend,
            dim=encoder.dim,
        )
        if "hnsw" in dense_index:
            params.update(hnsw_m=hnsw_m, ef_construction=ef_construction)
    vectors, pending = [], []
    try:
        for doc in documents:
            row = store.add(doc)
            hasher.add(doc)
            if lexical is not None:
                lexical.add(row, doc)
            if encoder is not None:
                pending.append(f"{doc.title}\n{doc.text}" if doc.title else doc.text)
                if len(pending) >= ENCODE_BATCH:
                    vectors.append(encoder.encode(pending))
                    pending = []
            if progress and (row + 1) % 1000 == 0:
                progress(1000)
        store.close()
    except BaseException as exc:
        if lexical is not None:
            lexical.abort()  # stop tantivy's writer threads before the folder is removed
        if isinstance(exc, DuplicateIdError):
            raise CorpusError(f"duplicate document id ({exc})") from None
        raise
    if lexical is not None:
        lexical.close()
    if encoder is not None:
        import numpy as np

        from sleuth.search.dense import build_faiss, save_faiss

        if pending:
            vectors.append(encoder.encode(pending))
        if vectors:
            dense_folder = folder / "dense"
            dense_folder.mkdir()
            kind_params = (
                {"hnsw_m": hnsw_m, "ef_construction": ef_construction}
                if "hnsw" in dense_index
                else {}
            )
            faiss_index = build_faiss(np.concatenate(vectors), dense_index, **kind_params)
            save_faiss(faiss_index, dense_folder)
    if progress:
        progress(store.count % 1000)
    params["_count"], params["_checksum"] = store.count, hasher.hexdigest()
    return params


def read_manifest(path: str | Path) -> dict[str, Any]:
    folder = Path(path).expanduser()
    if not folder.exists() and folder.parent.is_dir():
        recover_interrupted(folder.resolve())
    if not folder.is_dir():
        raise IndexFormatError(f"{folder}: no such index folder")
    manifest_path = folder / MANIFEST
    if not manifest_path.is_file():
        raise IndexFormatError(
            f"{folder}: not a Sleuth index (no {MANIFEST}; build one with `sleuth index`, "
            "or this is a half-written build)"
        )
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise IndexFormatError(f"{manifest_path}: corrupt manifest ({exc})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT_NAME:
        raise IndexFormatError(f"{manifest_path}: not a Sleuth index manifest")
    version = manifest.get("format_version")
    if version != FORMAT_VERSION:
        raise IndexFormatError(
            f"{folder}: index format version {version} is not supported by this Sleuth "
            f"(expects {FORMAT_VERSION}); rebuild it with `sleuth index`"
        )
    if manifest.get("engine") not in ENGINES:
        raise IndexFormatError(f"{manifest_path}: unknown engine {manifest.get('engine')!r}")
    return manifest


def open_index(
    path: str | Path, *, ef_search: int = 128, encoder_backend: str | None = None
) -> SearchEngine:
    """Open an index folder, checking its manifest and files; returns a SearchEngine.

    ``encoder_backend`` overrides the query encoder's backend (see ``encoder.query_backend``).
    """
    folder = Path(path).expanduser()
    manifest = read_manifest(folder)
    engine, params = manifest["engine"], manifest.get("params", {})
    required = [DOCSTORE_FILE]
    if engine in ("bm25", "hybrid"):
        required.append("bm25/meta.json")
    if engine in ("dense", "hybrid"):
        required.append("dense/vectors.faiss")
    missing = [name for name in required if not (folder / name).exists()]
    if missing:
        raise IndexFormatError(f"{folder}: index is incomplete, missing {', '.join(missing)}")
    docstore = DocStore(folder)
    expected = manifest.get("corpus", {}).get("documents")
    if expected != len(docstore):
        raise IndexFormatError(
            f"{folder}: manifest says {expected} documents but the store holds {len(docstore)}"
        )
    lexical = dense = None
    if engine in ("bm25", "hybrid"):
        from sleuth.search.lexical import LexicalEngine

        lexical = LexicalEngine(folder / "bm25", docstore, params.get("tokenizer", "default"))
    if engine in ("dense", "hybrid"):
        from sleuth.search.dense import DenseEngine
        from sleuth.search.encoder import query_backend

        backend = query_backend(params.get("encoder_backend"), encoder_backend)
        dense = DenseEngine(folder / "dense", docstore, params.get("encoder"), ef_search, backend)
    if engine == "bm25":
        result: Any = lexical
    elif engine == "dense":
        result = dense
    else:
        from sleuth.search.hybrid import HybridEngine

        result = HybridEngine(lexical, dense, docstore)  # type: ignore[arg-type]
    result.manifest = manifest
    result.path = folder
    return result
