"""Self-play rewards (SSP) with scripted models through the real loop and the real index."""

from __future__ import annotations

import asyncio

from test_synth_questions import Policy

from sleuth.llm.scripted import ScriptedLLM
from sleuth.synth.questions import Proposal, QuestionSynthesizer, SynthSettings
from sleuth.train.selfplay import SelfPlayRound, proposer_reward, round_metrics, solver_reward


def test_reward_rules():
    verified = Proposal("d1", "T", question="Who?", answer="Tulsa")
    failed = Proposal("d2", "T", question="Who?", answer="Tulsa", rejected="no answer")
    assert solver_reward("tulsa", verified) == 1.0 and solver_reward("Boston", verified) == 0.0
    assert solver_reward("Tulsa", failed) == 0.0  # an unverified question pays nobody
    assert proposer_reward(verified, [1.0, 0.0, 0.0, 0.0]) == 0.75
    assert proposer_reward(verified, [1.0, 1.0]) == 0.0  # too easy for the solver: no reward
    assert proposer_reward(verified, [0.0, 0.0]) == 1.0
    assert proposer_reward(failed, [0.0, 0.0]) == 0.0  # unverifiable: 0, however hard


class SolverSometimesRight(Policy):
    """The scripted proposer/verifier, plus a searching solver right on every other episode."""

    def __init__(self) -> None:
        super().__init__()
        self.solver_calls = 0

    def __call__(self, messages) -> str:
        system = str(messages[0]["content"])
        task = str(messages[1]["content"]) if len(messages) > 1 else ""
        if "<search>" in system and "You are writing a quiz" not in task:
            if not any("<search>" in str(m.get("content", "")) for m in messages[2:]):
                return f"<search>{task[:80]}</search>"
            self.solver_calls += 1
            return f"<answer>{self.proposed[-1] if self.solver_calls % 2 else 'wrong'}</answer>"
        return super().__call__(messages)


def test_a_round_rewards_both_roles(hotpot_bm25):
    policy = SolverSometimesRight()
    synth = QuestionSynthesizer(ScriptedLLM(policy), hotpot_bm25, SynthSettings(n=3, seed=3))
    results = asyncio.run(SelfPlayRound(synth, group=4).run())
    assert len(results) == 3
    for result in results:
        assert result.proposal.accepted
        assert result.solver_rewards == [1.0, 0.0, 1.0, 0.0]
        assert result.proposer_reward == 0.5
    metrics = round_metrics(results)
    assert metrics == {
        "proposals": 3,
        "acceptance_rate": 1.0,
        "solver_accuracy": 0.5,
        "proposer_reward": 0.5,
    }


def test_unverified_proposals_get_no_solver_episodes_and_zero_reward(hotpot_bm25):
    policy = SolverSometimesRight()
    policy.long_answers = True  # every other proposal's answer is a sentence: rejected
    synth = QuestionSynthesizer(ScriptedLLM(policy), hotpot_bm25, SynthSettings(n=4, seed=3))
    results = asyncio.run(SelfPlayRound(synth, group=2).run())
    rejected = [r for r in results if not r.proposal.accepted]
    assert len(rejected) == 2
    assert all(r.solver_answers == [] and r.proposer_reward == 0.0 for r in rejected)
    assert round_metrics(results)["acceptance_rate"] == 0.5
