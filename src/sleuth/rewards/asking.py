"""The cost of asking: ``clear_asks`` and ``extra_asks`` (docs/clarification.md).

Asking is judged by the question it was asked on (``Gold.ambiguous``, from ``sleuth synth
ambiguous``). On a clear question every ask is a wasted turn of the user's time; on an
ambiguous one a useful ask pays through the answer it makes possible, so asking itself earns
nothing, and only asks beyond the first may cost. Both rewards are counts made negative, so
their weight in a reward spec is the cost per ask (``--ask-cost``, ``--extra-ask-cost``). A
question that is not a clarification question (``ambiguous`` None) costs nothing.
"""

from __future__ import annotations

from collections.abc import Mapping

from sleuth.agent.trajectory import Trajectory
from sleuth.errors import SleuthError
from sleuth.rewards.core import Gold, register

CLEAR_ASKS, EXTRA_ASKS = "clear_asks", "extra_asks"


def asks(traj: Trajectory) -> int:
    """Ask steps of the episode (each one a question put to the user)."""
    return sum(1 for step in traj.steps if step.action == "ask")


@register(CLEAR_ASKS)
def clear_asks(traj: Trajectory, gold: Gold) -> float:
    """Minus the asks on a clear question (0 on an ambiguous one or an unmarked one)."""
    return -float(asks(traj)) if gold.ambiguous is False else 0.0


@register(EXTRA_ASKS)
def extra_asks(traj: Trajectory, gold: Gold) -> float:
    """Minus the asks beyond the first on an ambiguous question (one ask is enough)."""
    return -float(max(0, asks(traj) - 1)) if gold.ambiguous else 0.0


def with_ask_cost(
    spec: Mapping[str, float], ask_cost: float = 0.0, extra_ask_cost: float = 0.0
) -> dict[str, float]:
    """``spec`` with the ask costs as weights of ``clear_asks`` and ``extra_asks`` (a cost of
    0 adds nothing; a cost the spec already weighs is replaced)."""
    out = dict(spec)
    costs = ((CLEAR_ASKS, "--ask-cost", ask_cost), (EXTRA_ASKS, "--extra-ask-cost", extra_ask_cost))
    for name, option, cost in costs:
        if cost < 0:
            raise SleuthError(f"{option} {cost}: a cost is >= 0 (it is subtracted per ask)")
        if cost:
            out[name] = float(cost)
    return out
