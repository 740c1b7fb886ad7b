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


class NoiseLevel:
    """The ``noise`` ratio both simulators share: settable (the training curriculum raises it
    step by step) and checked to lie within 0..1, naming the simulator (``KIND``)."""

    KIND = "simulated"
    _noise: float

    @property
    def noise(self) -> float:
        return self._noise

    @noise.setter
    def noise(self, value: float) -> None:
        if not 0.0 <= value <= 1.0:
            from sleuth.errors import SleuthError

            raise SleuthError(f"{self.KIND} noise={value}: must be within 0..1")
        self._noise = float(value)
