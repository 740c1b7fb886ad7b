"""The one bearer-token check of Sleuth's HTTP servers (``sleuth serve``, ``sleuth serve-llm``).

One helper so both servers agree: the ``Bearer`` scheme in any case (HTTP auth schemes are
case-insensitive, RFC 9110 11.1) and a constant-time comparison, so a wrong token's response
time says nothing about how much of it was right.
"""

from __future__ import annotations

import hmac


def token_matches(expected: str, header_value: str | None) -> bool:
    """True when ``header_value`` (an ``Authorization`` header, or None when absent) is
    ``Bearer <expected>``, the scheme in any case."""
    scheme, _, supplied = (header_value or "").partition(" ")
    if scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(supplied.encode(), expected.encode())
