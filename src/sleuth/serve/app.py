"""The retrieval server: native JSON API plus the Search-R1 ``/retrieve`` contract.

Engine calls are CPU-bound and synchronous, so handlers run in Litestar's thread pool
(``sync_to_thread``) and the event loop keeps accepting requests. Every request's work is
bounded (hits, response bytes, time: ``ServerLimits``) so one request cannot occupy the server.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import unquote

import msgspec
from litestar import Litestar, MediaType, Request, Response, get, post
from litestar.connection import ASGIConnection
from litestar.exceptions import HTTPException, NotAuthorizedException
from litestar.handlers.base import BaseRouteHandler
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import JsonRenderPlugin
from litestar.params import FromPath, JSONBody, QueryParameter

from sleuth.errors import DocumentNotFound, IndexFormatError, QueryError, SleuthError
from sleuth.http_guard import HostAllowList, RequestGuard, json_error
from sleuth.search.base import SearchEngine, validate_query
from sleuth.serve.access_log import ERROR_LOG, AccessLog, safe_text
from sleuth.serve.docs_page import LocalDocsPage
from sleuth.serve.index_watch import IndexChanged, IndexWatch
from sleuth.serve.limits import RequestTooCostly, ServerLimits, run_bounded
from sleuth.serve.schemas import (
    LIMITS,
    MAX_BATCH,
    BatchSearchRequest,
    BatchSearchResponse,
    DocumentOut,
    HitOut,
    RetrieveRequest,
    SearchRequest,
    SearchResponse,
)
from sleuth.serve.updates import LiveEngine, update_routes
from sleuth.tokens import token_matches
from sleuth.types import Hit

MAX_BODY_BYTES = 1024 * 1024
DOC_PREFIX = "/doc/"
JSON_ROUTES = ("/search", "/search/batch", "/retrieve", "/documents")


def _hits_out(hits: list[Hit]) -> list[HitOut]:
    return [HitOut(id=h.id, score=h.score, title=h.title, text=h.text, rank=h.rank) for h in hits]


def _check_batch(queries: list[str], k: int) -> None:
    if not queries:
        raise QueryError("queries is empty")
    if len(queries) > MAX_BATCH:
        raise QueryError(f"{len(queries)} queries in one request; the limit is {MAX_BATCH}")
    for position, query in enumerate(queries):
        try:
            validate_query(query, k)
        except QueryError as exc:
            raise QueryError(f"queries[{position}]: {exc}") from None


def searchr1_document(hit: Hit) -> dict[str, Any]:
    """The document shape Search-R1 returns (its agent reads ``contents``), plus id/title/text."""
    contents = f'"{hit.title}"\n{hit.text}' if hit.title else hit.text
    return {"id": hit.id, "contents": contents, "title": hit.title, "text": hit.text}


def _error(status: int, message: str) -> Response[dict[str, Any]]:
    return Response({"error": message, "status_code": status}, status_code=status)


def _handle_sleuth_error(request: Request, exc: SleuthError) -> Response[dict[str, Any]]:
    if isinstance(exc, IndexFormatError):  # the server's data is damaged: not the client's fault
        ERROR_LOG.error("%s %s: %s", request.method, safe_text(request.url.path), exc)
        return _error(500, str(exc))
    if isinstance(exc, RequestTooCostly):
        return _error(413, str(exc))
    if isinstance(exc, IndexChanged):
        return _error(503, str(exc))
    return _error(404 if isinstance(exc, DocumentNotFound) else 400, str(exc))


def _readable(extra: Any) -> str:
    """Litestar's error details (lists of ``{"key", "message"}``) as text, not a Python repr."""
    if isinstance(extra, list):
        return "; ".join(_readable(item) for item in extra)
    if isinstance(extra, dict) and "message" in extra:
        return f"{extra['key']}: {extra['message']}" if extra.get("key") else str(extra["message"])
    return str(extra)


def _handle_http_error(_: Request, exc: HTTPException) -> Response[dict[str, Any]]:
    message = str(exc.detail)
    extra = getattr(exc, "extra", None)
    if extra:
        message = f"{message}: {_readable(extra)}"
    return _error(exc.status_code, message)


def _handle_unexpected(request: Request, exc: Exception) -> Response[dict[str, Any]]:
    """A bug or an environment fault: logged with its traceback, answered without internals."""
    ERROR_LOG.error(
        "unhandled error in %s %s", request.method, safe_text(request.url.path), exc_info=exc
    )
    return _error(500, "internal server error (the traceback is in the server's log)")


async def _decode_strictly(request: Request) -> None:
    """Validate the JSON body against the route's type without coercion ("2" is not an int).

    Litestar converts bodies leniently; this hook runs first, so a body reaching the handler is
    exactly what the schema says. Errors read as msgspec's messages (path and expected type).
    """
    body_type = request.route_handler.opt.get("body_type")
    if body_type is None:
        return
    raw = await request.body()
    _require_utf8(raw)
    try:
        msgspec.json.decode(raw, type=body_type, strict=True)
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        raise QueryError(f"invalid request body: {exc}") from None


def _require_utf8(raw: bytes) -> None:
    """Check the bytes ourselves: msgspec's error for bad UTF-8 differs between releases
    (``UnicodeDecodeError`` before 0.23, a ``DecodeError`` without the offset since)."""
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise QueryError(
            f"invalid request body: the body is not valid UTF-8 "
            f"(byte 0x{raw[exc.start]:02x} at offset {exc.start})"
        ) from None


def _json_response(payload: msgspec.Struct | dict[str, Any], limits: ServerLimits) -> Response:
    """Encode once, refusing a body over ``max_response_bytes`` before anything is sent."""
    body = msgspec.json.encode(payload)
    limits.check_response_bytes(len(body))
    return Response(content=body, media_type=MediaType.JSON)


def _doc_id_from_raw_path(request: Request) -> str:
    """The id exactly as the client percent-encoded it (``a%2Fb`` is ``a/b``, ``a//b`` stays)."""
    raw = request.scope.get("raw_path") or request.url.path.encode()
    path = raw.decode("latin-1")
    if not path.startswith(DOC_PREFIX):
        raise QueryError("document ids go after /doc/ (or use /doc?id=...)")
    try:
        return unquote(path[len(DOC_PREFIX) :], errors="strict")
    except UnicodeDecodeError:
        raise QueryError("the document id is not valid UTF-8 once percent-decoded") from None


def create_app(
    engine: SearchEngine,
    *,
    token: str | None = None,
    default_topk: int = 3,
    max_body_bytes: int = MAX_BODY_BYTES,
    limits: ServerLimits | None = None,
    access_log: bool = True,
    allowed_hosts: HostAllowList | None = None,
    index_folder: str | Path | None = None,
    reopen: Callable[[], SearchEngine] | None = None,
    follow_updates: bool = True,
    updates_refused: str | None = None,
) -> Litestar:
    """A Litestar app serving ``engine``; with ``token`` every route but /health needs it.
    Requests whose ``Host`` is not in ``allowed_hosts`` (default: the loopback names) are a 421,
    a foreign ``Origin`` a 403, a POST body not declared JSON a 415 (``sleuth.http_guard``).
    ``index_folder``: the folder ``engine`` was opened from; a rebuild of it is logged and shown
    in /health (``sleuth.serve.index_watch``). ``reopen`` opens the engine again after this
    server commits an update to ``index_folder`` (default: ``open_index`` of the folder); the
    update routes need a ``token`` (``sleuth.serve.updates``). ``follow_updates``: a commit
    by another server or process on ``index_folder`` is opened and served (else a 503 saying to
    restart). ``updates_refused``: why this server takes no updates (a sharded deployment)."""
    validate_query("x", default_topk)
    limits = limits or ServerLimits()
    folder = Path(index_folder) if index_folder is not None else None
    if folder is not None and reopen is None:
        from sleuth.search.index_format import open_index

        reopen = lambda: open_index(folder)  # noqa: E731
    follow = (lambda: live.reload()) if follow_updates else None
    watch = IndexWatch(folder, follow) if folder is not None else None
    live = LiveEngine(engine, folder, watch, reopen, refused=updates_refused)

    def require_token(connection: ASGIConnection, handler: BaseRouteHandler) -> None:
        if token is None or handler.opt.get("public"):
            return
        if not token_matches(token, connection.headers.get("authorization")):
            raise NotAuthorizedException("missing or wrong bearer token")

    def search_many(queries: Sequence[str], k: int) -> list[list[Hit]]:
        if watch is not None:
            watch.require_current()  # one stat: a rebuilt folder is a 503, not wrong hits
        return run_bounded(live.engine.search_batch, list(queries), k, limits)

    @post("/search", sync_to_thread=True, status_code=200, opt={"body_type": SearchRequest})
    def search(data: JSONBody[SearchRequest]) -> SearchResponse:
        """Top-k hits for one query."""
        validate_query(data.query, data.k)
        started = time.perf_counter()
        hits = search_many([data.query], data.k)[0]
        took = round((time.perf_counter() - started) * 1e3, 3)
        return _json_response(SearchResponse(_hits_out(hits), took), limits)  # type: ignore[return-value]

    @post(
        "/search/batch", sync_to_thread=True, status_code=200, opt={"body_type": BatchSearchRequest}
    )
    def search_batch(data: JSONBody[BatchSearchRequest]) -> BatchSearchResponse:
        """Top-k hits for each of many queries in one round trip (the fast path for RL)."""
        _check_batch(data.queries, data.k)
        started = time.perf_counter()
        results = search_many(data.queries, data.k)
        took = round((time.perf_counter() - started) * 1e3, 3)
        payload = BatchSearchResponse([_hits_out(hits) for hits in results], took)
        return _json_response(payload, limits)  # type: ignore[return-value]

    @post("/retrieve", sync_to_thread=True, status_code=200, opt={"body_type": RetrieveRequest})
    def retrieve(data: JSONBody[RetrieveRequest]) -> dict[str, Any]:
        """Search-R1 contract: ``{"result": [[doc, ...] | [{"document", "score"}, ...]]}``."""
        k = data.topk or default_topk
        _check_batch(data.queries, k)
        results = search_many(data.queries, k)
        if data.return_scores:
            shaped = [
                [{"document": searchr1_document(h), "score": h.score} for h in hits]
                for hits in results
            ]
        else:
            shaped = [[searchr1_document(h) for h in hits] for hits in results]
        return _json_response({"result": shaped}, limits)  # type: ignore[return-value]

    def document_out(doc_id: str) -> DocumentOut:
        if watch is not None:
            watch.require_current()
        doc = live.engine.get(doc_id)
        return DocumentOut(doc.id, doc.title, doc.text, doc.contents, doc.fields)

    @get("/doc/{doc_id:path}", sync_to_thread=True)
    def document(request: Request, doc_id: FromPath[str]) -> DocumentOut:
        """The full document by id, percent-encoded (``/doc/Ashland%2F63rd%20station``); 404 if
        unknown."""
        return document_out(_doc_id_from_raw_path(request))

    @get("/doc", sync_to_thread=True)
    def document_by_query(
        doc_id: Annotated[str, QueryParameter(name="id", description="The document id")],
    ) -> DocumentOut:
        """The full document by id as a query parameter (``/doc?id=...``); 404 if unknown."""
        return document_out(doc_id)

    @get("/health", media_type=MediaType.JSON, sync_to_thread=False, opt={"public": True})
    def health() -> dict[str, Any]:
        """Liveness plus what is being served."""
        current = live.engine
        manifest = getattr(current, "manifest", {}) or {}
        return {
            "status": "ok",
            "engine": current.name,
            "documents": len(current),
            "default_topk": default_topk,
            "limits": {**LIMITS, **limits.public(), "max_body_bytes": max_body_bytes},
            "index": {
                "params": manifest.get("params", {}),
                "corpus": manifest.get("corpus", {}),
                "created": manifest.get("created"),
                "generation": manifest.get("generation", 0),
                **(watch.public() if watch is not None else {}),
            },
        }

    app = Litestar(
        route_handlers=[
            search,
            search_batch,
            retrieve,
            document,
            document_by_query,
            health,
            *update_routes(live, token, _doc_id_from_raw_path),
        ],
        guards=[require_token],
        before_request=_decode_strictly,
        exception_handlers={
            SleuthError: _handle_sleuth_error,
            HTTPException: _handle_http_error,
            Exception: _handle_unexpected,
        },
        request_max_body_size=max_body_bytes,
        openapi_config=OpenAPIConfig(
            title="Sleuth retrieval server",
            version="1",
            render_plugins=[JsonRenderPlugin(), LocalDocsPage()],
        ),
        debug=False,
        logging_config=None,  # leave the process's logging alone: sleuth.serve.* loggers only
    )
    app.asgi_handler = RequestGuard(
        app.asgi_handler,
        allowed_hosts,
        json_paths=JSON_ROUTES,
        render=json_error,
        max_body_bytes=max_body_bytes,
    )
    if access_log:  # outermost, so routing 404s, 401s, 413s and refused hosts are logged too
        app.asgi_handler = AccessLog(app.asgi_handler)
    return app
