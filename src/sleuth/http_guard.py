"""The request checks every Sleuth HTTP server shares: which ``Host`` it answers to, which
``Origin`` may call it, which routes take JSON only, and headers set on every response.

A DNS-rebinding page (``attacker.example`` resolving to 127.0.0.1) reaches a loopback server
with its own name in ``Host``: it gets a 421. A page of another origin posting to the server
sends its ``Origin``: a 403. A cross-origin "simple" POST (``text/plain``, a form, a body with
no type) to a JSON route skips the browser's preflight: a 415, so only clients that can send
``application/json`` (which a foreign page cannot without the server's CORS consent) get in.

Plain ASGI, standard library only, so the search server, the model server, the viewer and the
MCP endpoint wrap their apps in the same guard (docs/reliability.md, issue 33 item 4).
"""

from __future__ import annotations

import ipaddress
import json
import socket
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})
WILDCARD_ADDRESSES = frozenset({"0.0.0.0", "::", ""})

Render = Callable[[int, str], tuple[bytes, bytes]]  # (status, message) -> (content type, body)


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def host_name(value: str | None) -> str | None:
    """The name in a ``Host`` header (``h``, ``h:port``, ``[v6]:port``), lower-cased and without
    brackets or port; None when absent or malformed."""
    if not value:
        return None
    value = value.strip().lower()
    if value.startswith("["):
        inside, bracket, rest = value[1:].partition("]")
        if not bracket or (rest and not (rest.startswith(":") and rest[1:].isdigit())):
            return None
        return inside if _is_ip(inside) else None
    name, colon, port = value.partition(":")
    if colon and not port.isdigit():
        return None
    if not name or any(ch in name for ch in "/@ \\"):
        return None
    return name


@dataclass(frozen=True)
class HostAllowList:
    """The names a server answers to: the loopback names, the address it bound and the names
    it was told to accept. Bound to a wildcard address (``0.0.0.0``, ``::``), it also accepts
    any IP address (a rebinding page cannot put one in ``Host``: its own name is there) and this
    machine's host name."""

    names: frozenset[str] = LOOPBACK_NAMES
    any_ip: bool = False

    @classmethod
    def for_bind(cls, host: str | None = None, extra: Iterable[str] = ()) -> HostAllowList:
        names = set(LOOPBACK_NAMES)
        bound = (host or "").strip().strip("[]").lower()
        wildcard = host is not None and bound in WILDCARD_ADDRESSES
        if bound and not wildcard:
            names.add(bound)
        names.update(e.strip().strip("[]").lower() for e in extra if e.strip())
        if wildcard:
            for name in (socket.gethostname(), socket.getfqdn()):
                if name:
                    names.add(name.lower())
        return cls(frozenset(names), any_ip=wildcard)

    def allows(self, name: str | None) -> bool:
        if name is None:
            return False
        return name in self.names or (self.any_ip and _is_ip(name))

    def origin_allowed(self, origin: str) -> bool:
        """An ``Origin`` header: http(s) on an allowed name (any port); ``null`` is refused."""
        try:
            parts = urlsplit(origin.strip())
            name = parts.hostname
            parts.port  # noqa: B018 - raises on a malformed port
        except ValueError:
            return False
        return parts.scheme in ("http", "https") and self.allows(name)


def plain_text(status: int, message: str) -> tuple[bytes, bytes]:
    return b"text/plain; charset=utf-8", message.encode()


def json_error(status: int, message: str) -> tuple[bytes, bytes]:
    """``{"error": message, "status_code": status}``, the search server's error shape."""
    return b"application/json", json.dumps({"error": message, "status_code": status}).encode()


def is_json_type(content_type: str | None) -> bool:
    media = (content_type or "").split(";", 1)[0].strip().lower()
    return media == "application/json" or (
        media.startswith("application/") and media.endswith("+json")
    )


class RequestGuard:
    """ASGI middleware: refuse a foreign ``Host`` (421) or ``Origin`` (403), a POST to one of
    ``json_paths`` whose body is not declared JSON (415); add ``headers`` to every response
    that does not set them itself (refusals included)."""

    def __init__(
        self,
        app: Any,
        hosts: HostAllowList | None = None,
        *,
        json_paths: Collection[str] = (),
        headers: Sequence[tuple[str, str]] = (),
        render: Render = plain_text,
        max_body_bytes: int | None = None,
    ) -> None:
        self.app = app
        self.hosts = hosts or HostAllowList()
        self.json_paths = frozenset(json_paths)
        self.headers = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers]
        self.render = render
        self.max_body_bytes = max_body_bytes

    def refusal(self, scope: Any) -> tuple[int, str] | None:
        headers: dict[bytes, bytes] = {}
        for key, value in scope.get("headers") or ():
            headers.setdefault(key.lower(), value)
        raw_host = headers.get(b"host", b"").decode("latin-1")
        if not self.hosts.allows(host_name(raw_host)):
            shown = raw_host[:100].encode("unicode_escape").decode("ascii") or "(none)"
            return 421, (
                f"misdirected request: this server does not answer to Host {shown}; use "
                "127.0.0.1, localhost or the address it was started on"
            )
        origin = headers.get(b"origin")
        if origin is not None and not self.hosts.origin_allowed(origin.decode("latin-1")):
            return 403, "cross-origin request refused: the Origin is not this server's"
        if scope.get("method") == "POST" and scope.get("path") in self.json_paths:
            content_type = headers.get(b"content-type", b"").decode("latin-1")
            if not is_json_type(content_type) and not self._too_large(headers):
                return 415, "the body must be sent as Content-Type: application/json"
        return None

    def _too_large(self, headers: dict[bytes, bytes]) -> bool:
        """A body over the app's limit: the app refuses it (413) whatever its type."""
        declared = headers.get(b"content-length", b"")
        return (
            self.max_body_bytes is not None
            and declared.isdigit()
            and (int(declared) > self.max_body_bytes)
        )

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        refused = self.refusal(scope)

        async def send_with_headers(message: Any) -> None:
            if message["type"] == "http.response.start" and self.headers:
                present = {key.lower() for key, _ in message.get("headers") or ()}
                extra = [(k, v) for k, v in self.headers if k not in present]
                message = {**message, "headers": [*(message.get("headers") or ()), *extra]}
            await send(message)

        if refused is None:
            await self.app(scope, receive, send_with_headers)
            return
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})
            return
        status, message = refused
        content_type, body = self.render(status, message)
        await send_with_headers(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", content_type),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
