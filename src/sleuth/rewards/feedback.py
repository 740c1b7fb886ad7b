"""Per-step reward labels from people's (or a shadow user's) thumbs, as written by
``sleuth feedback export --as reward``: one ``{"episode_id", "step", "reward"}`` per line.

Rewards stay pure functions of a trajectory: attach the labels to trajectories once
(``attach_step_rewards``), then the registered ``feedback`` reward reads them from
``trajectory.metadata["step_rewards"]``.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

from sleuth.agent.trajectory import Trajectory
from sleuth.errors import SleuthError
from sleuth.rewards.core import Gold, register

StepRewards = dict[str, dict[int, float]]  # episode id -> step -> reward


def load_step_rewards(path: str | Path) -> StepRewards:
    path = Path(path).expanduser()
    if not path.is_file():
        raise SleuthError(f"{path}: no such reward label file")
    labels: StepRewards = defaultdict(dict)
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            row = json.loads(raw)
            labels[str(row["episode_id"])][int(row["step"])] = float(row["reward"])
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise SleuthError(f"{path}:{number}: not a reward label ({exc})") from None
    return dict(labels)


def attach_step_rewards(trajectory: Trajectory, labels: StepRewards) -> Trajectory:
    """Copy this episode's labels into its metadata (string keys, so it stays JSON)."""
    found = labels.get(trajectory.episode_id, {})
    if found:
        trajectory.metadata["step_rewards"] = {str(k): v for k, v in sorted(found.items())}
    return trajectory


@register("feedback")
def feedback_reward(traj: Trajectory, gold: Gold) -> float:
    """Mean of the per-step feedback labels on this trajectory; 0.0 when it has none."""
    labels = traj.metadata.get("step_rewards") or {}
    values = [float(v) for v in labels.values()]
    return sum(values) / len(values) if values else 0.0
