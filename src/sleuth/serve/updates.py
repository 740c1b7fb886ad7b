"""Fresh content without downtime: ``POST /documents`` and ``DELETE /doc/{id}``.

A batch is committed as a new index generation (``sleuth.search.updates``) while searches go
on: each request takes the engine once (``LiveEngine.engine``) and answers from it, so it sees
the old generation or the new one, never half a batch. After the commit the server opens the
new generation and swaps it in; the answer comes after the swap, so the documents are
searchable when the client reads it. The manifest rewrite is the server's own, so the index
watch takes it as current; a commit by another replica or ``sleuth index update`` is opened by
the watch before the next request (``sleuth.serve.index_watch``); an outside rebuild of the
folder is still a 503.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec
from litestar import Request, delete, post
from litestar.connection import ASGIConnection
from litestar.exceptions import PermissionDeniedException
from litestar.handlers.base import BaseRouteHandler
from litestar.params import FromPath, JSONBody

from sleuth.errors import SleuthError
from sleuth.search.base import SearchEngine
from sleuth.search.updates import apply_update, publish_manifest
from sleuth.serve.access_log import ERROR_LOG
from sleuth.serve.index_watch import IndexWatch
from sleuth.types import Document

MAX_UPDATE_DOCUMENTS = 10_000
TOKEN_NEEDED = (
    "document updates need a token: restart the server with --token (or SLEUTH_TOKEN) and "
    "send it as 'Authorization: Bearer TOKEN'"
)


class DocumentIn(msgspec.Struct, forbid_unknown_fields=True):
    id: str
    title: str = ""
    text: str = ""
    fields: dict[str, Any] = msgspec.field(default_factory=dict)


class UpdateRequest(msgspec.Struct, forbid_unknown_fields=True):
    """Documents to add or replace (by id) and ids to delete, committed together."""

    documents: list[DocumentIn] = msgspec.field(default_factory=list)
    delete: list[str] = msgspec.field(default_factory=list)


class UpdateResponse(msgspec.Struct):
    generation: int
    added: int
    updated: int
    deleted: int
    documents: int
    bm25: str | None
    commit_ms: float
    searchable_after_ms: float  # from the handler's start to the swap; searchable now


class UpdatesUnavailable(SleuthError):
    """The server has no index folder to commit to (a remote or simulated engine)."""


class LiveEngine:
    """The engine the server answers from, replaced whole after each commit it makes."""

    def __init__(
        self,
        engine: SearchEngine,
        folder: Path | None,
        watch: IndexWatch | None,
        reopen: Callable[[], SearchEngine] | None,
        *,
        refused: str | None = None,
    ) -> None:
        self.engine = engine
        self._refused = refused
        self.folder = folder
        self._watch = watch
        self._reopen = reopen
        self._lock = threading.Lock()  # one commit at a time in this server

    def apply(self, upserts: list[Document], deletes: list[str]) -> UpdateResponse:
        started = time.perf_counter()
        if self._refused is not None:
            raise UpdatesUnavailable(self._refused)
        if self.folder is None or self._reopen is None:
            raise UpdatesUnavailable(
                "this server was not started on an index folder, so it cannot update one"
            )
        with self._lock:
            if self._watch is not None:
                self._watch.require_current()
            result = apply_update(self.folder, upserts, deletes, publish=self._publish)
            try:
                self.engine = self._reopen()
            except Exception:
                ERROR_LOG.exception("committed generation %d but cannot open it", result.generation)
                raise
        searchable = round((time.perf_counter() - started) * 1e3, 1)
        return UpdateResponse(**result.public(), searchable_after_ms=searchable)

    def reload(self) -> None:
        """Open the index again: another server or process committed a generation to it (the
        index watch noticed); requests already running finish on the engine they took."""
        if self._reopen is None:
            raise UpdatesUnavailable("this server cannot open its index again")
        self.engine = self._reopen()

    def _publish(self, folder: Path, manifest: dict[str, Any]) -> None:
        if self._watch is None:
            publish_manifest(folder, manifest)
        else:
            self._watch.own_change(lambda: publish_manifest(folder, manifest))


def token_configured(token: str | None) -> Callable[[ASGIConnection, BaseRouteHandler], None]:
    """A guard refusing updates (403) on a server started without a token: anyone who can
    reach it could otherwise rewrite the index. The app's guard checks the token itself."""

    def guard(_: ASGIConnection, __: BaseRouteHandler) -> None:
        if token is None:
            raise PermissionDeniedException(TOKEN_NEEDED)

    return guard


def update_routes(
    live: LiveEngine, token: str | None, doc_id_of: Callable[[Request], str]
) -> list[Any]:
    """The route handlers; ``doc_id_of`` reads the percent-encoded id as GET /doc/{id} does."""
    guards = [token_configured(token)]

    @post(
        "/documents",
        sync_to_thread=True,
        status_code=200,
        guards=guards,
        opt={"body_type": UpdateRequest},
    )
    def update_documents(data: JSONBody[UpdateRequest]) -> UpdateResponse:
        """Add or replace ``documents`` (by id) and delete the ids in ``delete``, committed
        atomically; answers with the new generation once it is searchable."""
        if len(data.documents) + len(data.delete) > MAX_UPDATE_DOCUMENTS:
            raise SleuthError(
                f"{len(data.documents) + len(data.delete)} documents and deletes in one "
                f"request; the limit is {MAX_UPDATE_DOCUMENTS}"
            )
        upserts = [Document(d.id, d.title, d.text, d.fields) for d in data.documents]
        return live.apply(upserts, list(data.delete))

    @delete("/doc/{doc_id:path}", sync_to_thread=True, status_code=200, guards=guards)
    def delete_document(request: Request, doc_id: FromPath[str]) -> UpdateResponse:
        """Delete one document by id (percent-encoded as in GET /doc/{id}); 404 if unknown."""
        return live.apply([], [doc_id_of(request)])

    return [update_documents, delete_document]
