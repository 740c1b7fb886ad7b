"""``sleuth mcp``: an index (or a running search server) as MCP tools for any MCP client."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from sleuth.cli import search_options
from sleuth.errors import SleuthError

TRANSPORTS = ("stdio", "http")


def register(app: typer.Typer) -> None:
    app.command(
        "mcp",
        help="Serve an index as Model Context Protocol tools (search, open, and ask when a "
        "model is given) over stdio (for desktop clients) or streamable HTTP at /mcp.",
    )(mcp_command)


def mcp_command(
    index: Annotated[
        Path | None, typer.Argument(help="Index folder built by `sleuth index`")
    ] = None,
    search_url: search_options.SearchUrl = None,  # instead of INDEX
    transport: Annotated[
        str, typer.Option(help="stdio (the client starts this command) | http (streamable HTTP)")
    ] = "stdio",
    host: Annotated[str, typer.Option(help="Address to bind for http (loopback only)")] = (
        "127.0.0.1"
    ),
    port: Annotated[int, typer.Option(help="Port for http; the endpoint is /mcp")] = 8765,
    model: Annotated[
        str | None,
        typer.Option(
            help="Enable the `ask` tool with this model: HF id, folder, .gguf, `packaged`, or "
            "the model name at --llm-url"
        ),
    ] = None,
    llm_url: Annotated[
        str | None,
        typer.Option(help="Enable `ask` with an OpenAI-compatible server, e.g. http://h:8000/v1"),
    ] = None,
    encoder_backend: search_options.EncoderBackend = None,
) -> None:
    """Serve INDEX (or --search-url) as MCP tools until the client disconnects or Ctrl-C."""
    from sleuth.cli.serve import bind_socket, is_loopback, run_on_socket

    if transport not in TRANSPORTS:
        raise SleuthError(f"unknown transport {transport!r}; choose one of {', '.join(TRANSPORTS)}")
    if (index is None) == (search_url is None):
        raise SleuthError("give exactly one of INDEX or --search-url")
    if transport == "http" and not is_loopback(host):
        raise SleuthError(
            f"refusing to bind {host}: the MCP HTTP endpoint has no authentication. Bind "
            "127.0.0.1 and put an authenticating proxy in front to reach it from elsewhere"
        )
    sock = bind_socket(host, port) if transport == "http" else None
    from sleuth.display import safe_markup  # paths and URLs are shown, never parsed
    from sleuth.progress import stderr  # stdout is the protocol channel under stdio
    from sleuth.search.factory import open_engine
    from sleuth.serve.mcp_server import build_mcp_server

    engine = open_engine(index, search_url, encoder_backend=encoder_backend).engine
    source = search_url or str(index)
    llm = None
    if model or llm_url:
        from sleuth.llm import load_llm

        llm = load_llm(model if model != "packaged" else None, url=llm_url)
    server = build_mcp_server(engine, llm=llm, source=source)
    tools = "search, open" + (", ask" if llm is not None else "")
    if transport == "stdio":
        stderr.print(f"[green]MCP server[/green] on stdio: {safe_markup(source)} (tools: {tools})")
        server.run("stdio")
    else:
        assert sock is not None
        shown_host = f"[{host}]" if ":" in host else host
        base = f"http://{shown_host}:{sock.getsockname()[1]}"
        stderr.print(
            f"[green]MCP server[/green] at {safe_markup(base)}/mcp: {safe_markup(source)} "
            f"(tools: {tools})"
        )
        run_on_socket(http_app(server, host), sock)


def http_app(server: object, host: str) -> object:
    """The streamable-HTTP app of ``server`` behind the same Host/Origin allow-list as Sleuth's
    other servers (``sleuth.http_guard``; the MCP SDK's own check stays on, given the names)."""
    from mcp.server.transport_security import TransportSecuritySettings

    from sleuth.http_guard import HostAllowList, RequestGuard

    hosts = HostAllowList.for_bind(host)
    shown = [f"[{name}]" if ":" in name else name for name in sorted(hosts.names)]
    security = TransportSecuritySettings(
        allowed_hosts=[f"{name}:*" for name in shown] + shown,
        allowed_origins=[f"{scheme}://{name}:*" for name in shown for scheme in ("http", "https")]
        + [f"{scheme}://{name}" for name in shown for scheme in ("http", "https")],
    )
    app = server.streamable_http_app(host=host, transport_security=security)  # type: ignore[attr-defined]
    return RequestGuard(app, hosts)
