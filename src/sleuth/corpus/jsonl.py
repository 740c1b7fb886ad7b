"""Line-by-line JSONL reading with errors that name the file and line."""

from __future__ import annotations

import gzip
import json
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from sleuth.errors import CorpusError

MAX_LINE_BYTES = 10 * 1024 * 1024  # a single record above 10 MB is almost surely a broken file
UTF8_BOM = b"\xef\xbb\xbf"  # written by some Windows editors; harmless, so accepted
GZIP_MAGIC = b"\x1f\x8b"
GZIP_ERRORS = (gzip.BadGzipFile, EOFError, zlib.error)  # bad header, cut short, bad data


def is_gzip(path: Path) -> bool:
    """By content, not name: a ``.jsonl.gz`` corpus or a gzip file under any name."""
    with path.open("rb") as handle:
        return handle.read(2) == GZIP_MAGIC


def open_bytes(path: Path) -> IO[bytes]:
    """The file's bytes, transparently decompressed when it is gzip."""
    return gzip.open(path, "rb") if is_gzip(path) else path.open("rb")


def first_line(path: Path, limit: int = 1 << 20) -> bytes:
    """The first line (BOM removed, at most ``limit`` bytes), for format detection."""
    try:
        with open_bytes(path) as handle:
            return handle.readline(limit).removeprefix(UTF8_BOM)
    except GZIP_ERRORS as exc:
        raise CorpusError(f"{path}: damaged gzip file ({exc or 'cut short'})") from None


def read_jsonl(path: str | Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield ``(line_number, record)``; blank lines are skipped, anything else must be an object."""
    path = Path(path)
    if not path.is_file():
        raise CorpusError(f"{path}: no such file")
    try:
        yield from _records(path)
    except GZIP_ERRORS as exc:
        raise CorpusError(f"{path}: damaged gzip file ({exc or 'cut short'})") from None


def _records(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    with open_bytes(path) as handle:
        for line_no, raw in enumerate(handle, start=1):
            if line_no == 1:
                raw = raw.removeprefix(UTF8_BOM)
            if len(raw) > MAX_LINE_BYTES:
                raise CorpusError(
                    f"{path}:{line_no}: record is {len(raw):,} bytes; the limit is "
                    f"{MAX_LINE_BYTES:,} (split long documents before indexing)"
                )
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise CorpusError(
                    f"{path}:{line_no}: not valid UTF-8 (byte {exc.start}); re-encode the file"
                ) from None
            if not text.strip():
                continue
            try:
                record = json.loads(text)
            except json.JSONDecodeError as exc:
                if line_no == 1 and text.lstrip().startswith(("[", "{")):
                    raise CorpusError(json_not_jsonl(path)) from None
                raise CorpusError(f"{path}:{line_no}: invalid JSON ({exc.msg})") from None
            if line_no == 1 and isinstance(record, list):
                raise CorpusError(json_not_jsonl(path))
            if not isinstance(record, dict):
                raise CorpusError(
                    f"{path}:{line_no}: expected a JSON object, got {type(record).__name__}"
                )
            yield line_no, record


def json_not_jsonl(path: Path) -> str:
    """What to do when a JSON array (or pretty-printed JSON) arrives where JSONL is expected."""
    return (
        f"{path}: this is a JSON array or multi-line JSON, not JSONL (one object per line). "
        "`sleuth index` and `eval` read JSON arrays of documents or QA records directly "
        "(--format auto/json); elsewhere convert it: jq -c '.[]' FILE > FILE.jsonl"
    )


def starts_with_json_array(path: Path) -> bool:
    try:
        with open_bytes(path) as handle:
            head = handle.read(4096).lstrip(b"\xef\xbb\xbf \t\r\n")
    except GZIP_ERRORS as exc:  # (an EOFError would read as Ctrl-D to the CLI: "Aborted.")
        raise CorpusError(f"{path}: damaged gzip file ({exc or 'cut short'})") from None
    return head.startswith(b"[")


def read_json_document(path: str | Path) -> Any:
    """A whole JSON file (array or object); errors name the file and line."""
    path = Path(path)
    if not path.is_file():
        raise CorpusError(f"{path}: no such file")
    try:
        with path.open(encoding="utf-8-sig") as handle:
            return json.load(handle)
    except UnicodeDecodeError as exc:
        raise CorpusError(f"{path}: not valid UTF-8 (byte {exc.start}); re-encode it") from None
    except json.JSONDecodeError as exc:
        raise CorpusError(f"{path}:{exc.lineno}: invalid JSON ({exc.msg})") from None


def read_records(path: str | Path) -> Iterator[tuple[str, dict[str, Any]]]:
    """``(where, record)`` from a JSONL file or a JSON array of objects, whichever it is."""
    path = Path(path)
    if path.is_file() and starts_with_json_array(path):
        data = read_json_document(path)
        for position, record in enumerate(data, start=1):
            where = f"{path}[{position - 1}]"
            if not isinstance(record, dict):
                raise CorpusError(f"{where}: expected a JSON object, got {type(record).__name__}")
            yield where, record
        return
    for line_no, record in read_jsonl(path):
        yield f"{path}:{line_no}", record
