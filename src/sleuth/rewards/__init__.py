"""Rewards: pure functions of a trajectory and its gold data (no I/O, no model calls).

The search engine's own results are the training signal: besides the answer's correctness,
rewards score what each query retrieved (LESER, InForage) and whether the agent's judgements
about its evidence were right (ReSeek).

>>> from sleuth.rewards import Gold, combined
>>> combined(trajectory, Gold(answers=["Tulsa"], evidence_ids={"doc9819"}),
...          {"f1": 1.0, "format": 0.2, "coverage": 0.5})                 # doctest: +SKIP
"""

from sleuth.rewards.asking import with_ask_cost  # registers "clear_asks", "extra_asks"
from sleuth.rewards.core import (
    REWARDS,
    Gold,
    RewardFn,
    combined,
    parse_spec,
    register,
    reward_breakdown,
)
from sleuth.rewards.feedback import attach_step_rewards, load_step_rewards  # registers "feedback"
from sleuth.rewards.query_rewrite import PlatformRules, parse_queries, rewrite_reward

__all__ = [
    "REWARDS",
    "Gold",
    "PlatformRules",
    "RewardFn",
    "attach_step_rewards",
    "combined",
    "load_step_rewards",
    "parse_queries",
    "parse_spec",
    "register",
    "reward_breakdown",
    "rewrite_reward",
    "with_ask_cost",
]
