"""How an episode's steps are chosen: the strategy's typed settings (``sleuth.agent.strategies``
runs them). Kept apart from the search itself so configurations, the command line and run
folders can name a strategy without importing it."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from sleuth.agent.config import AgentConfig
from sleuth.errors import SleuthError

__all__ = [
    "BUDGET_FACTOR",
    "CRITIC_NAMES",
    "STRATEGIES",
    "StrategyConfig",
    "calls_per_turn",
    "finishing_calls",
    "minimum_budget",
    "react_calls",
]

# react: the one greedy chain (``Agent.run``); the others search over cloned episodes.
STRATEGIES = ("react", "best-of-n", "beam", "mcts", "astar")
# sleuth.agent.critic.CRITICS: one entry per critic class; any other --critic is the path of a
# trained critic folder (``sleuth train critic``), checked when it is loaded.
CRITIC_NAMES = ("judge",)
# The default call budget: this many times the most calls one ReAct episode can make.
BUDGET_FACTOR = 4


def calls_per_turn(cfg: AgentConfig) -> int:
    """The most calls one turn makes: two when a thought cut at max tokens is retried."""
    return 2 if cfg.think and cfg.action_format == "tags" and cfg.constrain else 1


def finishing_calls(cfg: AgentConfig) -> int:
    """The most calls finishing a path makes: the forced answer and the final read."""
    return calls_per_turn(cfg) * (int(cfg.force_answer) + int(cfg.final_read > 0))


def minimum_budget(cfg: AgentConfig) -> int:
    """The smallest call budget a search can work in: one turn, its critic, and the finish."""
    return calls_per_turn(cfg) + 1 + finishing_calls(cfg)


def react_calls(cfg: AgentConfig) -> int:
    """The most model calls one greedy (ReAct) episode makes in turns: every turn, the forced
    answer and the final read (a turn cut inside its thought retries once: not counted)."""
    return cfg.max_turns + int(cfg.force_answer) + int(cfg.final_read > 0)


@dataclass(frozen=True)
class StrategyConfig:
    """``branches`` (K): candidate next actions sampled per state (best-of-n: the number of
    whole episodes); the first candidate of every state is decoded as ReAct decodes it
    (the run's temperature), the others at ``temperature``. ``beam_width`` (B): states kept
    per depth (beam). ``simulations``: MCTS's selection-expansion-backup rounds.
    ``call_budget``: model calls per question, policy and critic together (0: ``BUDGET_FACTOR``
    times ``react_calls``). ``exploration``: UCT's constant. ``critic``: which critic scores
    states (a name in ``sleuth.agent.critic.CRITICS``, or a trained critic's folder)."""

    name: str = "react"
    branches: int = 3
    beam_width: int = 2
    simulations: int = 12
    call_budget: int = 0
    temperature: float = 0.8
    exploration: float = 1.0
    critic: str = "judge"

    def __post_init__(self) -> None:
        if self.name not in STRATEGIES:
            raise SleuthError(
                f"unknown strategy {self.name!r}; choose from {', '.join(STRATEGIES)}"
            )
        if not self.critic.strip():
            raise SleuthError(
                f"--critic must name a critic ({', '.join(CRITIC_NAMES)}) or a trained critic "
                "folder"
            )
        if self.branches < 1 or self.beam_width < 1 or self.simulations < 1:
            raise SleuthError(
                "--branches, --beam-width and --simulations must be at least 1; got "
                f"{self.branches}, {self.beam_width} and {self.simulations}"
            )
        if self.call_budget < 0:
            raise SleuthError(
                f"--call-budget must be 0 (automatic) or more; got {self.call_budget}"
            )
        if self.temperature <= 0 or self.exploration < 0:
            raise SleuthError(
                "the branches' sampling temperature must be above 0 and the exploration "
                f"constant 0 or more; got {self.temperature} and {self.exploration}"
            )

    def budget_for(self, cfg: AgentConfig) -> int:
        """The call budget of one question under ``cfg``; ``SleuthError`` when it is too small
        to take one turn, judge it and finish (``minimum_budget``)."""
        budget = self.call_budget or BUDGET_FACTOR * react_calls(cfg)
        if budget < minimum_budget(cfg):
            raise SleuthError(
                f"--call-budget {budget} cannot take one turn, judge it and finish; these "
                f"settings need at least {minimum_budget(cfg)} calls"
            )
        return budget

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> StrategyConfig:
        """The settings a run folder recorded (None: react, as before strategies existed)."""
        return cls(**data) if data else cls()
