"""Where Sleuth keeps what it builds once per machine (indexes, converted models, tools).

Ground floor: every layer may import it; it imports nothing of Sleuth's but the errors.
"""

from __future__ import annotations

import os
from pathlib import Path

from sleuth.errors import SleuthError


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
