"""Notice when the index folder a server opened is rebuilt or removed under it.

A rebuild (``sleuth index ... --out`` of the same folder) swaps a new folder into place. The
server went on answering without a word (issue 33 item 19), and wrongly: the BM25 index it had
open gave the old row numbers, its document store (opened per thread, by path) read them from
the new folder, so a search for "apples" returned "oranges". The manifest's identity (device,
inode, mtime, size) is compared with the one opened, one ``stat`` per request: after a change,
searches and documents are a 503 saying to restart, ``/health`` reports it and the log says it
once.

An update committed by Sleuth itself (``sleuth.search.updates``: another replica's
``POST /documents``, ``sleuth index update``) also rewrites the manifest, but it is no rebuild:
the same folder, the same ``created``, a higher ``generation``. A watch given ``follow`` calls it
(the server opens the new generation) before the request goes on, so every replica serving a
folder answers from the newest commit from its first request after it; an outside rebuild is
still a 503.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable
from pathlib import Path

from sleuth.errors import SleuthError
from sleuth.serve.access_log import ERROR_LOG, safe_text

MANIFEST = "manifest.json"
Signature = tuple[int, int, int, int]


class IndexChanged(SleuthError):
    """The index folder no longer holds the index this server opened (a 503)."""


def _signature(manifest: Path) -> Signature | None:
    try:
        stat = os.stat(manifest)
    except OSError:
        return None
    return (stat.st_dev, stat.st_ino, stat.st_mtime_ns, stat.st_size)


def _read(manifest: Path) -> dict[str, object] | None:
    try:
        data = json.loads(manifest.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


Identity = tuple[tuple[int, int], object, int]  # (folder device and inode, created, generation)


def _identity(folder: Path, manifest: dict[str, object] | None) -> Identity | None:
    """What stays the same across Sleuth's own commits (the folder, not swapped by a rebuild;
    the manifest's ``created``) and what grows with each (``generation``)."""
    if manifest is None:
        return None
    try:
        stat = os.stat(folder)
        generation = int(manifest.get("generation", 0))  # type: ignore[call-overload]
    except (OSError, TypeError, ValueError):
        return None
    return (stat.st_dev, stat.st_ino), manifest.get("created"), generation


class IndexWatch:
    """Whether the index folder still holds the index this server opened."""

    def __init__(self, folder: str | Path, follow: Callable[[], None] | None = None) -> None:
        """``follow``: opens the index again after a commit of Sleuth's own (None: every change
        of the manifest is a 503, as for a server whose engine cannot follow)."""
        self.folder = Path(folder)
        self._opened = _signature(self.folder / MANIFEST)
        self._identity = _identity(self.folder, _read(self.folder / MANIFEST))
        self._follow = follow
        self._warning: str | None = None
        self._lock = threading.Lock()

    def check(self) -> str | None:
        """None while the folder is unchanged, else what happened (logged the first time)."""
        if self._warning is not None:
            return self._warning
        with self._lock:
            if self._warning is None:
                current = _signature(self.folder / MANIFEST)
                if current != self._opened and not self._follow_update(current):
                    self._warning = self._describe(current)
                    ERROR_LOG.warning("%s (%s)", self._warning, safe_text(str(self.folder)))
        return self._warning

    def _follow_update(self, current: Signature | None) -> bool:
        """With the lock held: when the change is a later generation of the same index, open
        it (``follow``) and take it as the index opened. False for anything else. A follow that
        fails (a commit racing the open) is a 503 for this request only; the next one retries."""
        if self._follow is None or current is None:
            return False
        identity = _identity(self.folder, _read(self.folder / MANIFEST))
        if identity is None or self._identity is None:
            return False
        if identity[:2] != self._identity[:2] or identity[2] < self._identity[2]:
            return False
        if identity[2] == self._identity[2]:  # already following it (read before this stat)
            self._opened = current
            return True
        try:
            self._follow()
        except Exception as exc:  # reported to the client as a retryable 503
            ERROR_LOG.warning("cannot open generation %d yet: %s", identity[2], exc)
            raise IndexChanged(
                f"the index was updated to generation {identity[2]} and this server could "
                f"not open it yet ({type(exc).__name__}); retry"
            ) from None
        self._opened, self._identity = current, identity
        return True

    def own_change(self, write: Callable[[], None]) -> None:
        """Run ``write`` (this server committing an update, which rewrites the manifest) and
        take the result as the index opened: a search checking meanwhile waits, then passes."""
        with self._lock:
            if self._warning is not None:
                raise IndexChanged(self._warning)
            write()
            self._opened = _signature(self.folder / MANIFEST)
            self._identity = _identity(self.folder, _read(self.folder / MANIFEST))

    def require_current(self) -> None:
        """Raise ``IndexChanged`` once the folder changed: answers from a half-old, half-new
        index would be wrong."""
        warning = self.check()
        if warning is not None:
            raise IndexChanged(warning)

    def public(self) -> dict[str, object]:
        """For ``/health``: ``current`` and, when not, the warning."""
        warning = self.check()
        return {"current": warning is None, "warning": warning}

    def _describe(self, current: Signature | None) -> str:
        if current is None:
            return (
                "the index folder was removed after this server opened it; searches are "
                "refused (restart the server on an index)"
            )
        created = self._created()
        when = f" (new index created {created})" if created else ""
        return (
            f"the index folder was rebuilt after this server opened it{when}; restart the "
            "server to serve the new one (searches are refused until then)"
        )

    def _created(self) -> str | None:
        try:
            manifest = json.loads((self.folder / MANIFEST).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        created = manifest.get("created") if isinstance(manifest, dict) else None
        return safe_text(created, 40) if isinstance(created, str) else None
