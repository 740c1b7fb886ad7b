"""One line per request on the server's stderr (method, path, status, milliseconds).

Written as plain ASGI middleware around the whole app, so requests refused before reaching a
handler (unknown route, missing token, oversized body) are logged too. Paths come from clients:
control characters are escaped so a request cannot write escape sequences into the log.
"""

from __future__ import annotations

import logging
import time
from typing import Any

ACCESS_LOG = logging.getLogger("sleuth.serve.access")
ERROR_LOG = logging.getLogger("sleuth.serve.error")


def safe_text(text: str, limit: int = 300) -> str:
    """``text`` with control characters escaped and cut to ``limit`` characters."""
    escaped = "".join(
        ch if ch.isprintable() else ch.encode("unicode_escape").decode("ascii") for ch in text
    )
    return escaped if len(escaped) <= limit else escaped[: limit - 1] + "…"


class AccessLog:
    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # if the app dies before answering, that is what the client sees

        async def send_and_note(message: Any) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_note)
        finally:
            raw = scope.get("raw_path") or scope.get("path", "").encode()
            target = raw.decode("latin-1")
            if scope.get("query_string"):
                target += "?" + scope["query_string"].decode("latin-1")
            client = str((scope.get("client") or ("-", 0))[0])
            ACCESS_LOG.info(
                "%s %s %s %d %.1fms",
                safe_text(client, 100),  # every field a client can shape is escaped
                safe_text(str(scope.get("method", "-")), 20),
                safe_text(target),
                status,
                (time.perf_counter() - started) * 1e3,
            )


class SafeFormatter(logging.Formatter):
    """Records with terminal escapes and control characters removed (newlines kept): an
    exception's message in a traceback can carry a client's text."""

    def format(self, record: logging.LogRecord) -> str:
        from sleuth.display import strip_controls

        return strip_controls(super().format(record))


def configure_server_logging(quiet: bool) -> None:
    """Access lines (unless ``quiet``), warnings and error tracebacks to stderr."""
    handler = logging.StreamHandler()
    handler.setFormatter(SafeFormatter("%(asctime)s %(message)s", "%Y-%m-%dT%H:%M:%S"))
    for logger, level in ((ACCESS_LOG, logging.INFO), (ERROR_LOG, logging.WARNING)):
        logger.handlers[:] = [handler]
        logger.setLevel(logging.WARNING if quiet and logger is ACCESS_LOG else level)
        logger.propagate = False
