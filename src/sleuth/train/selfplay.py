"""Search Self-play rewards (SSP): one policy proposes questions and solves them.

For each proposal (``sleuth.synth.questions``: the proposer's episode, then the SSP check that a
RAG solver given every document the proposer retrieved answers it), a group of ``G`` solver
episodes runs the agent loop on the real (or simulated) engine:

- solver reward: 1 for a correct answer (EM or short cover-EM, the eval metrics), else 0; only
  verified questions are solved (an unverified one has no trustworthy answer);
- proposer reward: ``1 - the solver group's success rate`` for a verified question (hard but
  solvable questions earn most), 0 for an unverifiable or malformed one.

These are the GRPO rewards of both roles; ``SelfPlayRound`` computes them for one step's
proposals with any ``LLM`` (scripted in tests), so the trainer only has to batch them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sleuth.agent import Agent, AgentConfig
from sleuth.synth.questions import Proposal, QuestionSynthesizer, correct


def solver_reward(answer: str | None, proposal: Proposal) -> float:
    """Correctness of one solver episode on a verified question; 0 on an unverified one."""
    if not proposal.accepted:
        return 0.0
    return 1.0 if correct(answer, proposal.answer) else 0.0


def proposer_reward(proposal: Proposal, solver_rewards: Sequence[float]) -> float:
    """``1 - mean(solver rewards)`` for a verified question, 0 for one that failed the check."""
    if not proposal.accepted or not solver_rewards:
        return 0.0
    return 1.0 - sum(solver_rewards) / len(solver_rewards)


@dataclass
class RoundResult:
    proposal: Proposal
    solver_answers: list[str | None] = field(default_factory=list)
    solver_rewards: list[float] = field(default_factory=list)
    proposer_reward: float = 0.0


@dataclass
class SelfPlayRound:
    """One step: propose and verify ``n`` questions, then ``group`` solver episodes each."""

    synthesizer: QuestionSynthesizer
    group: int = 4
    solver_config: AgentConfig = field(
        default_factory=lambda: AgentConfig(
            actions=("search", "answer"), max_turns=4, max_searches=2, temperature=1.0
        )
    )

    async def solve_group(self, proposal: Proposal) -> list[str | None]:
        agent = Agent(self.synthesizer.llm, self.synthesizer.engine, self.solver_config)
        answers = []
        for member in range(self.group):
            trajectory = await agent.run(
                proposal.question, metadata={"role": "solver", "member": member}
            )
            answers.append(trajectory.answer)
        return answers

    async def run(self) -> list[RoundResult]:
        results = []
        for index, seed in enumerate(self.synthesizer.seeds()):
            proposal = await self.synthesizer.propose(seed, index)
            result = RoundResult(proposal)
            if proposal.accepted:
                result.solver_answers = await self.solve_group(proposal)
                result.solver_rewards = [solver_reward(a, proposal) for a in result.solver_answers]
            result.proposer_reward = proposer_reward(proposal, result.solver_rewards)
            results.append(result)
        return results


def round_metrics(results: Sequence[RoundResult]) -> dict[str, Any]:
    """What a self-play run logs per step: acceptance, solver accuracy, proposer reward."""
    verified = [r for r in results if r.proposal.accepted]
    solved = [x for r in verified for x in r.solver_rewards]
    return {
        "proposals": len(results),
        "acceptance_rate": len(verified) / len(results) if results else 0.0,
        "solver_accuracy": sum(solved) / len(solved) if solved else None,
        "proposer_reward": sum(r.proposer_reward for r in results) / len(results)
        if results
        else 0.0,
    }
