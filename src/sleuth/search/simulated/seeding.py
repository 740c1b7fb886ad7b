"""Per-call random generators: the same (seed, query, k) always draws the same way, whatever
else ran before (no global random state, safe across threads)."""

from __future__ import annotations

import hashlib
import random


def call_rng(seed: int, *parts: object) -> random.Random:
    digest = hashlib.sha256("\x1f".join(map(str, (seed, *parts))).encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


def noisy_count(rng: random.Random, noise: float, k: int) -> int:
    """How many of ``k`` slots are noise: p*k rounded stochastically, so the mean is exactly
    p*k and an integral p*k is exact on every call."""
    whole = int(noise * k)
    return min(k, whole + (1 if rng.random() < noise * k - whole else 0))
