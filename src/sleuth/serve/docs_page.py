"""``/schema``: a self-contained page listing the server's operations.

Litestar's default docs pages load scripts, fonts and a favicon from third-party CDNs, so they
are blank offline and tell a third party who reads the docs. This page has no external
reference at all: every operation with its summary, parameters and body schema, escaped.
"""

from __future__ import annotations

import html
import json
from typing import Any

from litestar import Request
from litestar.enums import MediaType
from litestar.openapi.plugins import OpenAPIRenderPlugin

STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem}"
    "code,pre{background:#f4f4f4;padding:.1rem .3rem}pre{padding:.5rem;overflow:auto}"
    ".op{border-top:1px solid #ddd;padding:.5rem 0}.m{font-weight:bold;margin-right:.5rem}"
)


def _operation(method: str, path: str, op: dict[str, Any], components: dict[str, Any]) -> str:
    parts = [f"<div class='op'><span class='m'>{html.escape(method.upper())}</span>"]
    parts.append(f"<code>{html.escape(path)}</code>")
    if op.get("summary") or op.get("description"):
        text = op.get("description") or op.get("summary")
        parts.append(f"<p>{html.escape(str(text))}</p>")
    for param in op.get("parameters", []):
        parts.append(
            f"<p>{html.escape(param.get('in', ''))} parameter "
            f"<code>{html.escape(param.get('name', ''))}</code></p>"
        )
    body = op.get("requestBody", {}).get("content", {}).get("application/json", {})
    ref = body.get("schema", {}).get("$ref", "")
    if ref:
        name = ref.rsplit("/", 1)[-1]
        schema = json.dumps(components.get(name, {}), indent=1)
        parts.append(f"<p>JSON body <code>{html.escape(name)}</code></p>")
        parts.append(f"<pre>{html.escape(schema)}</pre>")
    parts.append("</div>")
    return "".join(parts)


class LocalDocsPage(OpenAPIRenderPlugin):
    def __init__(self, path: str = "/") -> None:
        super().__init__(path=path, media_type=MediaType.HTML, favicon="", style="")

    def render(self, request: Request, openapi_schema: dict[str, Any]) -> bytes:
        info = openapi_schema.get("info", {})
        components = openapi_schema.get("components", {}).get("schemas", {})
        ops = [
            _operation(method, path, op, components)
            for path, item in openapi_schema.get("paths", {}).items()
            for method, op in item.items()
            if isinstance(op, dict)
        ]
        title = html.escape(str(info.get("title", "API")))
        json_url = html.escape(self.get_openapi_json_route(request), quote=True)
        page = (
            "<!doctype html><html><head><meta charset='utf-8'>"
            f"<title>{title}</title><style>{STYLE}</style></head><body>"
            f"<h1>{title}</h1><p>The machine-readable schema: <a href='{json_url}'>"
            f"{json_url}</a>. Every route but /health needs "
            "<code>Authorization: Bearer TOKEN</code> when the server has a token.</p>"
            + "".join(ops)
            + "</body></html>"
        )
        return page.encode("utf-8")
