"""A pool of retrieval servers: which URLs, which are healthy, and which one takes a request.

Users run one retrieval server per node, so a client is given several URLs (``a,b,c``) or an
address file (``@FILE``: one URL a line, ``#`` comments, reread when it changes so servers can
join a running job). :class:`ServerPool` sends each request to the healthy server with the
fewest requests in flight (ties taken in turn), fails over to the next on a connection error or
a 5xx, and benches a failing server for a cool-down before probing its ``/health`` again. A 4xx
is the request's fault: it comes back to the caller at once, never retried. The HTTP protocol
spoken on top (Sleuth or Search-R1) is the caller's business (``sleuth.search.remote``).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from sleuth.errors import SleuthError

BACKOFF_S = 0.2  # pause after the n-th round in which every server failed: 0.2 * 2**n ...
BACKOFF_MAX_S = 2.0  # ... at most this
COOLDOWN_S = 5.0  # a failed server rests this long before a /health probe; doubles per failure
COOLDOWN_MAX_S = 60.0
PROBE_TIMEOUT_S = 2.0
RECHECK_FILE_S = 0.5  # an address file is looked at (stat) at most this often


@dataclass(eq=False)  # compared by identity: two entries are never "the same" server
class Server:
    """One server of the pool and its health bookkeeping (guarded by the pool's lock)."""

    url: str
    client: httpx.Client
    protocol: str | None = None  # "sleuth" | "search-r1"; None: not yet known
    health: dict[str, Any] | None = None
    in_flight: int = 0
    down_until: float = 0.0  # monotonic time; 0: healthy
    failures: int = 0  # consecutive
    last_error: str = ""
    probing: bool = False
    requests: int = 0  # answered requests, for the curious (tests, bench)

    @property
    def down(self) -> bool:
        return self.down_until > 0.0


@dataclass
class AddressSource:
    """Where the URLs come from: a fixed list, or a file reread when its size or mtime change."""

    urls: list[str]
    path: Path | None = None
    stamp: tuple[int, int] | None = None
    checked: float = field(default=0.0)


def strip_url(url: str) -> tuple[str, str | None]:
    """(base URL, protocol implied by the URL): ``.../retrieve`` is a Search-R1 endpoint URL."""
    base = url.strip().rstrip("/")
    if base.endswith("/retrieve"):
        return base.removesuffix("/retrieve"), "search-r1"
    return base, None


def read_address_file(path: Path) -> list[str]:
    """URLs of an address file, one a line; blank lines and ``#`` comments skipped."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise SleuthError(f"cannot read the address file {path}: {exc.strerror or exc}") from None
    urls = [line.split("#", 1)[0].strip() for line in text.splitlines()]
    urls = [url for url in urls if url]
    for url in urls:
        check_url(url, f"address file {path}")
    if not urls:
        raise SleuthError(f"the address file {path} lists no URL (one http(s) URL a line)")
    return list(dict.fromkeys(urls))


def check_url(url: str, origin: str) -> None:
    if not url.startswith(("http://", "https://")) or len(url) <= len("https://"):
        raise SleuthError(f"{origin}: {url!r} is not an http(s) URL")


def parse_addresses(spec: str | Sequence[str]) -> AddressSource:
    """``--search-url``'s value: a URL, URLs joined by commas, ``@FILE``, or a file's path."""
    if not isinstance(spec, str):
        urls = [u.strip() for u in spec if u.strip()]
        for url in urls:
            check_url(url, "--search-url")
        if not urls:
            raise SleuthError("--search-url names no URL")
        return AddressSource(list(dict.fromkeys(urls)))
    text = spec.strip()
    if text.startswith("@") or ("://" not in text and Path(text).expanduser().is_file()):
        path = Path(text.removeprefix("@")).expanduser()
        source = AddressSource(read_address_file(path), path, file_stamp(path))
        source.checked = time.monotonic()
        return source
    urls = [u.strip() for u in text.split(",") if u.strip()]
    if not urls:
        raise SleuthError("--search-url names no URL")
    for url in urls:
        if "://" not in url:
            raise SleuthError(
                f"--search-url {url!r} is neither an http(s) URL nor an address file "
                "(give @FILE for a file of URLs)"
            )
        check_url(url, "--search-url")
    return AddressSource(list(dict.fromkeys(urls)))


def file_stamp(path: Path) -> tuple[int, int] | None:
    try:
        info = os.stat(path)
    except OSError:
        return None
    return info.st_mtime_ns, info.st_size


class PoolError(SleuthError):
    """Every server of the pool failed a request; the message names each and its last failure."""


class ServerPool:
    """Thread-safe: many threads may ``request`` at once (an evaluation searches from a pool
    of worker threads); the lock guards only the bookkeeping, never a request in flight."""

    def __init__(
        self,
        spec: str | Sequence[str],
        *,
        headers: dict[str, str] | None = None,
        timeout: float = 30.0,
        retries: int = 3,
        cooldown_s: float = COOLDOWN_S,
        backoff_s: float = BACKOFF_S,
        detect: Callable[[httpx.Response], tuple[str, dict[str, Any] | None]] | None = None,
        protocol: str | None = None,
    ) -> None:
        self._source = parse_addresses(spec)
        self._headers, self._timeout = headers or {}, timeout
        self.retries, self.cooldown_s, self.backoff_s = retries, cooldown_s, backoff_s
        self._detect, self._forced = detect, protocol
        self._lock = threading.Lock()
        self._turn = 0
        self._retired: list[Server] = []
        self.servers: list[Server] = []
        self.protocol = protocol  # the pool's: given, or from the first server that answers
        self._set_urls(self._source.urls)

    # -- membership ------------------------------------------------------------------------
    def _new_server(self, url: str) -> Server:
        base, implied = strip_url(url)
        client = httpx.Client(base_url=base, headers=self._headers, timeout=self._timeout)
        return Server(url=base, client=client, protocol=implied or self._forced)

    def _set_urls(self, urls: list[str]) -> None:
        """Called with the lock held (or before any thread can see the pool)."""
        known = {s.url: s for s in self.servers}
        wanted: dict[str, str] = {}  # base URL -> the first URL given for it, in order
        for url in urls:
            wanted.setdefault(strip_url(url)[0], url)
        kept = [known.get(base) or self._new_server(url) for base, url in wanted.items()]
        if self.protocol is None:  # a /retrieve URL says what it speaks
            self.protocol = next((s.protocol for s in kept if s.protocol), None)
        self._retired += [s for s in self.servers if s not in kept]  # closed by close()
        self.servers = kept

    def _refresh(self) -> None:
        """Reread the address file when it changed; a broken rewrite keeps the old list."""
        source = self._source
        if source.path is None:
            return
        now = time.monotonic()
        if now - source.checked < RECHECK_FILE_S:
            return
        source.checked = now
        stamp = file_stamp(source.path)
        if stamp is None or stamp == source.stamp:
            return
        try:
            urls = read_address_file(source.path)
        except SleuthError:
            return  # half-written or emptied: keep serving from the servers we know
        source.stamp = stamp
        if urls != source.urls:
            source.urls = urls
            self._set_urls(urls)

    @property
    def urls(self) -> list[str]:
        with self._lock:
            return [s.url for s in self.servers]

    # -- health ----------------------------------------------------------------------------
    def set_protocol(self, server: Server, protocol: str, health: dict[str, Any] | None) -> None:
        """Record what ``server`` speaks. A server joining a pool that speaks another protocol
        is refused (the probe benches it with this message)."""
        with self._lock:
            server.protocol, server.health = protocol, health or server.health
            if self.protocol is None:
                self.protocol = protocol
            elif protocol != self.protocol:  # kept, but never picked: see _usable
                others = [s.url for s in self.servers if s.protocol == self.protocol]
                raise SleuthError(
                    f"{server.url} speaks {protocol}, the other search servers "
                    f"({', '.join(others)}) speak {self.protocol}"
                )

    def _usable(self, server: Server) -> bool:
        """False for a server that speaks another protocol than the pool."""
        return server.protocol is None or self.protocol in (None, server.protocol)

    def _mark_down(self, server: Server, error: str) -> None:
        server.failures += 1
        server.last_error = error
        pause = min(self.cooldown_s * 2 ** (server.failures - 1), COOLDOWN_MAX_S)
        server.down_until = time.monotonic() + pause

    def _mark_up(self, server: Server) -> None:
        server.down_until, server.failures = 0.0, 0

    def _probe(self, server: Server) -> bool:
        """GET /health on a rested server (one thread at a time); any non-5xx answer is up. A
        server whose protocol is unknown (just joined) has it read from that answer."""
        try:
            response = server.client.get("/health", timeout=PROBE_TIMEOUT_S)
        except httpx.TransportError as exc:
            ok, error = False, f"unreachable: {type(exc).__name__}: {exc}"
        else:
            ok, error = response.status_code < 500, f"/health answered {response.status_code}"
            if ok and self._detect is not None and server.protocol is None:
                protocol, health = self._detect(response)
                try:
                    self.set_protocol(server, protocol, health)
                except SleuthError as exc:
                    ok, error = False, str(exc)
        with self._lock:
            server.probing = False
            if ok:
                self._mark_up(server)
            else:
                self._mark_down(server, error)
        return ok

    def probe_all(self) -> None:
        """Probe every server whose protocol is unknown, so a pool that mixes protocols is
        refused before any work (the message names each server and what it speaks)."""
        for server in list(self.servers):
            if server.protocol is None:
                with self._lock:
                    server.probing = True
                self._probe(server)
        with self._lock:
            kinds = {s.protocol for s in self.servers if s.protocol}
            if len(kinds) > 1:
                named = ", ".join(f"{s.url} ({s.protocol})" for s in self.servers if s.protocol)
                raise SleuthError(
                    f"the search servers do not all speak one protocol: {named}; give servers "
                    "of one kind (Sleuth servers, or Search-R1 /retrieve URLs)"
                )

    # -- choosing and sending --------------------------------------------------------------
    def _pick(self, tried: set[str]) -> tuple[Server | None, bool]:
        """(server, needs a probe first). Healthy untried servers first, fewest in flight, ties
        in turn, while rested ones (cool-down over, or just joined) are probed in the
        background; with no healthy server, a rested one is probed here, and failing that the
        longest-benched is tried anyway (a pool of one retries its server this way)."""
        with self._lock:
            self._refresh()
            now = time.monotonic()
            self._turn = (self._turn + 1) % max(len(self.servers), 1)
            order = self.servers[self._turn :] + self.servers[: self._turn]
            fresh = [s for s in order if s.url not in tried and self._usable(s)]
            healthy = [s for s in fresh if not s.down and s.protocol is not None]
            rested = [
                s
                for s in fresh
                if (s.down or s.protocol is None) and s.down_until <= now and not s.probing
            ]
            for server in rested:
                server.probing = True
            if healthy:
                for server in rested:
                    threading.Thread(target=self._probe, args=(server,), daemon=True).start()
                best = min(healthy, key=lambda s: s.in_flight)
                best.in_flight += 1
                return best, False
            if rested:
                for server in rested[1:]:
                    server.probing = False
                return rested[0], True
            benched = [s for s in fresh if not s.probing]
            if benched:
                server = min(benched, key=lambda s: s.down_until)
                if server.protocol is None:
                    server.probing = True
                    return server, True
                server.in_flight += 1
                return server, False
            return None, False

    def request(self, method: str, path: str, **kwargs: Any) -> tuple[Server, httpx.Response]:
        """Send to the pool: (server that answered, its response, status < 500). Raises
        :class:`PoolError` naming every server and its last failure when all failed
        ``retries + 1`` rounds (a round tries each server at most once)."""
        failures: dict[str, str] = {}
        for round_ in range(self.retries + 1):
            tried: set[str] = set()
            while True:
                server, probe = self._pick(tried)
                if server is None:
                    break
                tried.add(server.url)
                if probe:
                    if not self._probe(server):
                        failures[server.url] = server.last_error
                        continue
                    with self._lock:
                        server.in_flight += 1
                error = self._send(server, method, path, kwargs)
                if isinstance(error, httpx.Response):
                    return server, error
                failures[server.url] = error
            if round_ < self.retries:
                time.sleep(min(self.backoff_s * 2**round_, BACKOFF_MAX_S))
        raise self._all_failed(failures)

    def _send(
        self, server: Server, method: str, path: str, kwargs: dict[str, Any]
    ) -> httpx.Response | str:
        """The response (status < 500), or the failure as text after benching the server."""
        try:
            response = server.client.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            error = f"unreachable: {type(exc).__name__}: {exc}"
        else:
            if response.status_code < 500:
                with self._lock:
                    server.in_flight -= 1
                    server.requests += 1
                    self._mark_up(server)
                return response
            error = f"answered {response.status_code}: {response.text[:200]}"
        with self._lock:
            server.in_flight -= 1
            self._mark_down(server, error)
        return error

    def _all_failed(self, failures: dict[str, str]) -> PoolError:
        with self._lock:
            urls = [s.url for s in self.servers]
            for s in self.servers:
                failures.setdefault(s.url, s.last_error or "not tried (benched)")
        if len(urls) == 1:
            return PoolError(f"search server {urls[0]} unreachable: {failures[urls[0]]}")
        lines = "; ".join(f"{url}: {failures[url]}" for url in urls)
        return PoolError(
            f"all {len(urls)} search servers failed after {self.retries + 1} rounds "
            f"(unreachable or 5xx): {lines}"
        )

    def close(self) -> None:
        with self._lock:
            for server in self.servers + self._retired:
                server.client.close()
