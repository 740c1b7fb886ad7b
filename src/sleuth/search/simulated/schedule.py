"""The noise curriculum (ZeroSearch's curriculum rollout): p rises from START to END over the
training steps, so the policy first learns with good documents, then with ever worse ones."""

from __future__ import annotations

import math
from dataclasses import dataclass

from sleuth.errors import SleuthError

SHAPES = ("linear", "cosine", "exp")


@dataclass(frozen=True)
class NoiseSchedule:
    start: float
    end: float
    shape: str = "linear"

    def value(self, step: int, total_steps: int) -> float:
        """p at ``step`` (0-based) of ``total_steps``: START at the first, END at the last."""
        fraction = min(1.0, max(0.0, step / (total_steps - 1))) if total_steps > 1 else 1.0
        if self.shape == "cosine":
            fraction = (1 - math.cos(math.pi * fraction)) / 2
        elif self.shape == "exp":  # ZeroSearch: (b^(i/m) - 1) / (b - 1) with base b = 10
            fraction = (10**fraction - 1) / 9
        return round(self.start + (self.end - self.start) * fraction, 6)


def parse_schedule(text: str) -> NoiseSchedule:
    """``START:END[:linear|cosine|exp]``, both ends noise ratios in [0, 1]."""
    parts = text.strip().split(":")
    if len(parts) not in (2, 3):
        raise SleuthError(f"--noise-schedule {text!r}: expected START:END[:linear|cosine|exp]")
    try:
        start, end = float(parts[0]), float(parts[1])
    except ValueError:
        raise SleuthError(f"--noise-schedule {text!r}: START and END must be numbers") from None
    for value in (start, end):
        if not 0.0 <= value <= 1.0:
            raise SleuthError(f"--noise-schedule {text!r}: noise {value} is outside 0..1")
    shape = parts[2] if len(parts) == 3 else "linear"
    if shape not in SHAPES:
        raise SleuthError(f"--noise-schedule {text!r}: shape must be one of {', '.join(SHAPES)}")
    return NoiseSchedule(start, end, shape)
