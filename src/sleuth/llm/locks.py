"""Cross-process locks and publish-once folders for first-use conversions into the cache.

Two processes converting the same model at once (``make demo`` beside ``serve-llm`` on a fresh
machine) must not both convert, and neither may delete a folder the other is reading: the
conversion runs under an exclusive file lock, writes into a private temporary folder, and is
published with one rename only if nobody published it first.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

from sleuth.errors import SleuthError


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``path`` (created if needed); released on exit or death."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(path, "a+")  # noqa: SIM115 - held for the duration of the block
    except OSError as exc:
        raise SleuthError(
            f"cannot write the cache at {path.parent} ({exc.strerror}); set SLEUTH_CACHE to a "
            "writable folder"
        ) from None
    try:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(handle, fcntl.LOCK_UN)
        handle.close()


def publish_once(out: Path, build: Callable[[Path], None], ready: Callable[[Path], bool]) -> Path:
    """Build ``out`` once across processes: ``build(tmp)`` fills a private folder, then renamed.

    ``ready(out)`` says whether a finished copy exists. A finished copy is never removed or
    replaced, so a reader in another process is never pulled out from under.
    """
    if ready(out):
        return out
    with file_lock(out.with_name(f".{out.name}.lock")):
        if ready(out):  # another process finished while we waited for the lock
            return out
        tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:6]}")
        try:
            build(tmp)
            if out.exists():  # an unfinished leftover (no ready marker): nobody reads it
                shutil.rmtree(out)
            os.replace(tmp, out)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return out
