"""Wrap a corpus and a faiss index built elsewhere (Search-R1, FlashRAG) as a Sleuth dense index.

Search-R1's ``wiki-18.jsonl`` (``{"id", "contents": "\\"Title\\"\\ntext"}`` a line) and its
``e5_Flat.index`` (row i = line i, e5 vectors of ``"passage: " + contents``) become a folder that
every command opens like an index ``sleuth index`` built: the documents go into the usual SQLite
store (streamed line by line), the faiss file is linked (or copied) unchanged and memory-mapped
when flat, or converted to SQ8 / IVF-PQ in chunks; queries get the encoder's query prefix.

Everything is checked before anything is kept: dimension against the encoder, vector count
against corpus lines, every line (its number in the error), and a sample of lines re-encoded
whose nearest row must be their own. The folder is built beside ``out`` and renamed into place.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from sleuth.corpus.documents import record_to_document
from sleuth.corpus.jsonl import GZIP_ERRORS, MAX_LINE_BYTES, UTF8_BOM, open_bytes
from sleuth.errors import CorpusError, IndexFormatError, SleuthError
from sleuth.jsonio import write_json_atomic
from sleuth.search.dense import FAISS_FILE, _faiss
from sleuth.search.disk_rerank import DEFAULT_FACTOR, RERANK_FILE, RERANK_KINDS
from sleuth.search.docstore import DocStoreWriter, DuplicateIdError
from sleuth.search.faiss_convert import TARGETS, ChunkAdder, PeakMemory, make_target, train
from sleuth.search.faiss_source import FlatFileSource, VectorSource, open_source
from sleuth.search.flat_file import FlatFileWriter
from sleuth.search.index_format import (
    MANIFEST,
    CorpusHasher,
    atomic_index_folder,
    new_manifest,
)
from sleuth.search.targets import check_index_target

SAMPLES = 8
TIE = 1e-4  # a sample whose own row scores within this of the best is a duplicate, not a miss
IVF_NPROBE = 32


@dataclass
class ImportOptions:
    """How to read the source: its encoder and prefixes, and what to make of its vectors."""

    encoder: str
    query_prefix: str = ""
    passage_prefix: str = ""
    to: str | None = None  # None: keep the faiss structure as it is
    dim: int | None = None  # the encoder's dimension when it cannot be loaded here
    encoder_backend: str | None = None
    verify: bool = True  # the sample check
    link: bool = True  # hard-link a kept faiss file (a copy when linking is impossible)
    nprobe: int | None = None
    nlist: int | None = None
    pq_m: int | None = None
    rerank: str | None = None  # "disk": float32 rows kept beside the index, candidates re-scored
    rerank_factor: int | None = None  # candidates per hit (default DEFAULT_FACTOR)
    warnings: list[str] = field(default_factory=list)


def import_index(
    corpus: str | Path,
    faiss_path: str | Path,
    out: str | Path,
    options: ImportOptions,
    progress: Callable[[int], None] | None = None,
) -> Path:
    """Build the index folder ``out`` from ``corpus`` and ``faiss_path``; returns ``out``.

    ``progress`` is called with the corpus lines read, then the vectors passed.
    """
    options = replace(options, warnings=list(options.warnings))  # the caller's stays as it was
    out = check_index_target(out)
    corpus = Path(corpus).expanduser().resolve()
    if not corpus.is_file():
        raise CorpusError(f"{corpus}: no such corpus file")
    if options.to is not None and options.to not in TARGETS:
        raise SleuthError(f"unknown --to {options.to!r}; choose one of {', '.join(TARGETS)}")
    source = open_source(faiss_path)
    if source.ntotal == 0:
        raise IndexFormatError(f"{source.path}: the faiss index holds no vectors")
    check_rerank(options, source)
    local = Path(options.encoder).expanduser()
    if local.is_dir():  # a folder: recorded absolute, so the index opens from any folder
        options.encoder = str(local.resolve())
    encoder = _encoder_checked(options, source)
    samples = _sample_rows(source.ntotal)
    with atomic_index_folder(out) as tmp:
        lines = _store_corpus(corpus, tmp, source.ntotal, samples, progress)
        started = time.perf_counter()
        verify = encoder is not None and options.verify
        check = _SampleCheck(source, encoder, lines, options) if verify else None
        placed = _place_vectors(source, tmp / "dense", options, check, progress)
        placed["seconds"] = round(time.perf_counter() - started, 3)
        if check is not None:
            check.raise_if_failed(corpus)
        elif not options.verify:
            options.warnings.append("sample check skipped (--no-verify)")
        else:
            options.warnings.append("sample check skipped: the encoder could not be loaded")
        manifest = new_manifest(
            "dense",
            _params(source, options, encoder, placed),
            lines.checksum,
            lines.count,
            str(corpus),
        )
        manifest["imported"] = {
            "corpus": {"path": str(corpus), "sha256": lines.file_sha256, "lines": lines.count},
            "faiss": {
                "path": str(source.path),
                "sha256": source.sha256(),
                "bytes": source.path.stat().st_size,
                "structure": type(source.index).__name__,
                "dense_index": source.kind,
                "vectors": source.ntotal,
                "dim": source.d,
                "metric": source.metric,
            },
            "encoder": options.encoder,
            "query_prefix": options.query_prefix,
            "passage_prefix": options.passage_prefix,
            "vectors": placed,
            "sample_check": check.record() if check else None,
            "warnings": options.warnings,
        }
        write_json_atomic(tmp / MANIFEST, manifest)
    return out


def _encoder_checked(options: ImportOptions, source: VectorSource) -> Any:
    """The loaded encoder, its dimension checked against the index; None when it cannot be
    loaded here and ``--dim`` vouches for the dimension instead (recorded as a warning)."""
    from sleuth.search.encoder import Encoder

    folder = Path(options.encoder).expanduser()
    if options.encoder.startswith(("/", ".", "~")) and not folder.exists():
        encoder, reason = None, f"no such folder {folder}"  # a path, not a hub id: fail fast
    else:
        try:
            encoder, reason = Encoder(options.encoder, options.encoder_backend), ""
        except Exception as exc:  # an offline hub, a broken folder or export
            encoder, reason = None, " ".join(str(exc).split())[:300]
    if encoder is not None:
        if encoder.dim != source.d or options.dim not in (None, encoder.dim):
            raise IndexFormatError(
                f"{source.path}: vectors of {source.d} dimensions, but the encoder "
                f"{options.encoder} makes {encoder.dim}"
            )
        return encoder
    if options.dim is None:
        raise SleuthError(
            f"the encoder {options.encoder!r} cannot be loaded here ({reason}); make it "
            f"available (download it once, or give a local folder), or give --dim "
            f"{source.d} to import without it (dimension from --dim, no sample check)"
        )
    if options.dim != source.d:
        raise IndexFormatError(
            f"{source.path}: vectors of {source.d} dimensions, but --dim says the encoder "
            f"makes {options.dim}"
        )
    options.warnings.append(
        f"encoder {options.encoder!r} could not be loaded at import ({reason}); "
        f"dimension {options.dim} taken from --dim"
    )
    return None


def _sample_rows(ntotal: int) -> list[int]:
    return sorted({int(r) for r in np.linspace(0, max(ntotal - 1, 0), num=min(SAMPLES, ntotal))})


@dataclass
class _Lines:
    count: int = 0
    checksum: str = ""
    file_sha256: str = ""
    sampled: dict[int, tuple[str, str]] = field(default_factory=dict)  # row: (id, contents)


def _store_corpus(
    corpus: Path,
    folder: Path,
    ntotal: int,
    samples: list[int],
    progress: Callable[[int], None] | None,
) -> _Lines:
    """Stream the corpus into the document store; every line must be a record of the layout."""
    import hashlib

    store, hasher, sha = DocStoreWriter(folder), CorpusHasher(), hashlib.sha256()
    lines, wanted = _Lines(), set(samples)
    try:
        for line_no, record in _records(corpus, sha):
            if lines.count >= ntotal:
                raise CorpusError(
                    f"{corpus}:{line_no}: the corpus has more lines than the faiss index has "
                    f"vectors ({ntotal:,}); row i of the index must be line i of the corpus"
                )
            contents = record.get("contents")
            if not isinstance(contents, str):
                raise CorpusError(
                    f'{corpus}:{line_no}: no "contents" string (Search-R1 / FlashRAG layout: '
                    '{"id": ..., "contents": "\\"Title\\"\\ntext"})'
                )
            doc = record_to_document(record, f"{corpus}:{line_no}")
            store.add(doc)
            hasher.add(doc)
            if lines.count in wanted:
                lines.sampled[lines.count] = (doc.id, contents)
            lines.count += 1
            if progress and lines.count % 1000 == 0:
                progress(1000)
        store.close()
    except DuplicateIdError as exc:
        raise CorpusError(f"{corpus}: duplicate document id ({exc})") from None
    if progress:
        progress(lines.count % 1000)
    if lines.count != ntotal:
        raise IndexFormatError(
            f"{corpus} has {lines.count:,} lines but the faiss index holds {ntotal:,} vectors; "
            "row i of the index must be line i of the corpus (the wrong corpus or index?)"
        )
    lines.checksum, lines.file_sha256 = hasher.hexdigest(), sha.hexdigest()
    return lines


def _records(path: Path, sha: Any) -> Iterator[tuple[int, dict[str, Any]]]:
    """``(line number, object)`` per line, hashing the bytes; a blank line between records is
    refused (it would shift every later row), blank lines at the end are not."""
    blank = 0
    try:
        with open_bytes(path) as handle:
            for line_no, raw in enumerate(handle, start=1):
                sha.update(raw)
                if line_no == 1:
                    raw = raw.removeprefix(UTF8_BOM)
                if not raw.strip():
                    blank = blank or line_no
                    continue
                if blank:
                    raise CorpusError(
                        f"{path}:{blank}: blank line; every line must be a record (row i of "
                        "the index is line i of the corpus)"
                    )
                yield line_no, _parse_line(path, line_no, raw)
    except GZIP_ERRORS as exc:
        raise CorpusError(f"{path}: damaged gzip file ({exc or 'cut short'})") from None


def _parse_line(path: Path, line_no: int, raw: bytes) -> dict[str, Any]:
    if len(raw) > MAX_LINE_BYTES:
        raise CorpusError(f"{path}:{line_no}: line is {len(raw):,} bytes (over the limit)")
    try:
        record = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise CorpusError(f"{path}:{line_no}: not valid UTF-8 (byte {exc.start})") from None
    except json.JSONDecodeError as exc:
        raise CorpusError(f"{path}:{line_no}: invalid JSON ({exc.msg})") from None
    if not isinstance(record, dict):
        raise CorpusError(f"{path}:{line_no}: expected a JSON object, got {type(record).__name__}")
    return record


class _SampleCheck:
    """A few corpus lines re-encoded: each one's nearest row must be its own (exact search over
    every row as the vectors stream past), and its cosine with its own row is recorded."""

    def __init__(
        self, source: VectorSource, encoder: Any, lines: _Lines, options: ImportOptions
    ) -> None:
        self.rows = sorted(lines.sampled)
        self.ids = [lines.sampled[r][0] for r in self.rows]
        texts = [options.passage_prefix + lines.sampled[r][1] for r in self.rows]
        self.queries = encoder.encode(texts)
        self.l2 = source.metric == "l2"
        own = source.take(self.rows)
        self.own = self._scores(own, self.queries).diagonal().copy()
        norms = np.linalg.norm(own, axis=1) * np.linalg.norm(self.queries, axis=1)
        self.cosine = (own * self.queries).sum(axis=1) / np.maximum(norms, 1e-12)
        self.best = np.full(len(self.rows), -np.inf, dtype=np.float32)
        self.best_row = np.full(len(self.rows), -1, dtype=np.int64)

    def _scores(self, block: np.ndarray, queries: np.ndarray) -> np.ndarray:
        """Higher is nearer: inner products, or negated squared L2 distances."""
        dots = block @ queries.T
        if not self.l2:
            return dots
        return 2 * dots - (block * block).sum(axis=1)[:, None] - (queries * queries).sum(axis=1)

    def add(self, start: int, block: np.ndarray) -> None:
        scores = self._scores(block, self.queries)
        top = scores.argmax(axis=0)
        better = scores[top, np.arange(len(self.rows))] > self.best
        self.best[better] = scores[top, np.arange(len(self.rows))][better]
        self.best_row[better] = start + top[better]

    def passed(self) -> list[bool]:
        rows = np.array(self.rows)
        tolerance = TIE * np.maximum(1.0, np.abs(self.best))
        return [bool(ok) for ok in (self.best_row == rows) | (self.best - self.own <= tolerance)]

    def record(self) -> dict[str, Any]:
        return {
            "samples": [
                {
                    "row": row,
                    "id": doc_id,
                    "nearest_row": int(nearest),
                    "cosine_with_own_row": round(float(cos), 6),
                    "ok": ok,
                }
                for row, doc_id, nearest, cos, ok in zip(
                    self.rows, self.ids, self.best_row, self.cosine, self.passed(), strict=True
                )
            ],
            "passed": all(self.passed()),
        }

    def raise_if_failed(self, corpus: Path) -> None:
        failed = [s for s in self.record()["samples"] if not s["ok"]]
        if failed:
            shown = "; ".join(
                f"line {s['row'] + 1} (id {s['id']!r}): nearest row {s['nearest_row']}, "
                f"cosine with its own row {s['cosine_with_own_row']:.3f}"
                for s in failed[:4]
            )
            raise IndexFormatError(
                f"sample check failed: {len(failed)} of {len(self.rows)} re-encoded lines of "
                f"{corpus} are not nearest to their own row ({shown}); the encoder, "
                "--passage-prefix or the corpus do not match the index (--no-verify imports "
                "anyway)"
            )


def _place_vectors(
    source: VectorSource,
    dense: Path,
    options: ImportOptions,
    check: _SampleCheck | None,
    progress: Callable[[int], None] | None,
) -> dict[str, Any]:
    """One pass over the source rows (sample check, file hash, conversion), then the faiss file
    into ``dense``: the source linked or copied as it is, or the converted index written."""
    dense.mkdir()
    target_kind = options.to if options.to not in (None, source.kind) else None
    rerank = _RerankRows(source, dense / RERANK_FILE, options.link) if options.rerank else None
    with PeakMemory() as peak:
        target = trained = adder = None
        if target_kind is not None:
            shape = {"nlist": options.nlist, "pq_m": options.pq_m}
            target = make_target(target_kind, source.d, source.metric, source.ntotal, **shape)
            trained = train(target, source)
            adder = ChunkAdder(target, source.ntotal)
        if target is not None or check is not None or not source.loaded:
            for start, block in source.chunks():  # a flat file's hash comes from this pass
                if check is not None:
                    check.add(start, block)
                if adder is not None:
                    adder.add(start, block)
                if rerank is not None:
                    rerank.add(block)
                if progress:
                    progress(len(block))
        if target is not None:
            _faiss().write_index(target, str(dense / FAISS_FILE))
    placed: dict[str, Any] = {
        "dense_index": target_kind or source.kind,
        "peak_rss_bytes": peak.bytes,  # of the pass over the vectors (and the conversion)
        "peak_rss_scope": peak.scope,
    }
    final = source.index if target is None else target
    ivf = _faiss().try_extract_index_ivf(final)
    if ivf is not None:
        placed["nlist"] = int(ivf.nlist)
        placed["source_nprobe"] = int(ivf.nprobe) if target is None else None
    if target is None:
        placed["placed"] = _link_or_copy(source.path, dense / FAISS_FILE, options.link)
        return placed
    placed.update(
        converted_from=source.kind,
        training_rows=trained,
        bytes=(dense / FAISS_FILE).stat().st_size,
    )
    if target_kind == "ivf-pq":
        placed.update(pq_m=int(target.pq.M), pq_bits=int(target.pq.nbits))
    if rerank is not None:
        placed["rerank"] = rerank.finish()
    return placed


def check_rerank(options: ImportOptions, source: VectorSource) -> None:
    """``--rerank disk`` needs a quantised target and full-precision source rows."""
    if options.rerank is None:
        if options.rerank_factor is not None:
            raise SleuthError("--rerank-factor applies only with --rerank disk")
        return
    if options.rerank != "disk":
        raise SleuthError(f"unknown --rerank {options.rerank!r}; the one choice is 'disk'")
    if options.to not in RERANK_KINDS:
        raise SleuthError(
            "--rerank disk re-scores the candidates of a quantised index: give --to "
            + " or --to ".join(RERANK_KINDS)
        )
    if options.rerank_factor is not None and options.rerank_factor < 1:
        raise SleuthError(f"--rerank-factor must be at least 1, got {options.rerank_factor}")
    lossless = source.kind in ("flat", "hnsw") or isinstance(source.index, _faiss().IndexIVFFlat)
    if not lossless:
        raise SleuthError(
            f"{source.path}: its vectors are already quantised ({source.kind}); --rerank disk "
            "needs the full-precision vectors (a flat, HNSW or IVF-flat source)"
        )


class _RerankRows:
    """The float32 rows kept beside the converted index for exact re-scoring: a flat source
    file is linked (or copied) as it is; any other source's rows are written as they stream."""

    def __init__(self, source: VectorSource, path: Path, link: bool) -> None:
        self.source, self.path, self.link = source, path, link
        self.writer = None
        if not isinstance(source, FlatFileSource):
            self.writer = FlatFileWriter(path, source.d, source.ntotal, source.metric)

    def add(self, block: np.ndarray) -> None:
        if self.writer is not None:
            self.writer.write(block)

    def finish(self) -> dict[str, Any]:
        if self.writer is not None:
            self.writer.close()
            placed = "written"
        else:
            placed = _link_or_copy(self.source.path, self.path, self.link)
        return {"file": RERANK_FILE, "placed": placed, "bytes": self.path.stat().st_size}


def _link_or_copy(source: Path, target: Path, link: bool) -> str:
    if link:
        try:
            os.link(source, target)
            return "hardlink"
        except OSError:  # another filesystem, or links not allowed: copy instead
            pass
    shutil.copyfile(source, target)
    return "copy"


def _params(
    source: VectorSource, options: ImportOptions, encoder: Any, placed: dict[str, Any]
) -> dict[str, Any]:
    """The manifest ``params`` the engine opens the index with."""
    from sleuth.search.encoder import resolve_backend

    kind = placed["dense_index"]
    params: dict[str, Any] = {
        "dense_index": kind,
        "encoder": options.encoder,
        "dim": source.d,
        "encoder_backend": encoder.backend if encoder else resolve_backend(options.encoder_backend),
        "query_prefix": options.query_prefix,
        "passage_prefix": options.passage_prefix,
        "metric": source.metric,
        "mmap": kind == "flat",
    }
    if options.rerank is not None:
        params["rerank"] = options.rerank
        params["rerank_factor"] = options.rerank_factor or DEFAULT_FACTOR
    if "nlist" in placed:  # IVF: the source's own nprobe when it set one, else up to 32 lists
        own = placed.get("source_nprobe") or 1
        default = own if own > 1 else min(placed["nlist"], IVF_NPROBE)
        params["nprobe"] = options.nprobe or default
    return params
