"""The trained critic (``sleuth train critic``, ``--critic PATH``): states built from a real
stored eval run, a critic that ranks states holding the gold evidence above states that do not
(and beats counting documents) on held-out questions, a saved folder that reloads to the same
scores and refuses a pickle or a changed file, and ``eval run --strategy best-of-n`` driven by
it with no critic model calls.

The run: a scripted policy over a real BM25 index of the bundled HotpotQA corpus, on 24 test
questions, three seeds that behave differently and known in advance: seed 0 searches the
question (its hits hold gold evidence), seed 1 searches for pizza recipes (none), seed 2 does
the pizza search and then the question's; each then answers the gold answer if it was shown,
else "Rome"."""

from __future__ import annotations

import asyncio
import json
import pickle
from pathlib import Path

import numpy as np
import pytest
from conftest import LiveServer
from test_strategies import (
    GOOD_QUERY,
    QUESTION,
    PolicyLLM,
    greedy_bad_sampled_good,
    is_critic,
    sleuth,
)
from typer.testing import CliRunner

from sleuth.agent import Agent, AgentConfig, Episode
from sleuth.agent.critic_state import state_of_episode, states_of_trajectory
from sleuth.agent.strategies import run_strategy
from sleuth.agent.strategy_config import StrategyConfig
from sleuth.agent.trained_critic import (
    CriticFormatError,
    StateFeatures,
    TrainedCritic,
    load_critic,
)
from sleuth.agent.trajectory import Trajectory
from sleuth.cli.agent_options import strategy_plan
from sleuth.cli.main import app
from sleuth.errors import SleuthError
from sleuth.evaluate.benchmarks import load_benchmark
from sleuth.evaluate.methods import eval_budget
from sleuth.evaluate.runner import EvaluationRunner, RunSettings
from sleuth.llm.serve_llm import create_llm_app
from sleuth.paths import cache_dir
from sleuth.train.critic import read_states, train_critic

BAD_QUERY = "pizza dough recipe with tomato"
QUESTIONS = 24


def staged_policy(answers: dict[str, list[str]]):
    """Seed 0: the question; seed 1: pizza; seed 2: pizza, then the question; then the gold
    answer when a document shown contains it, else Rome."""

    def policy(messages, config) -> str:
        question = next(q for q in answers if q in str(messages[1]["content"]))
        turn = sum(1 for m in messages if m["role"] == "assistant")
        plan = {0: [question], 1: [BAD_QUERY], 2: [BAD_QUERY, question]}[config.seed or 0]
        if turn < len(plan) and "<search>" in messages[0]["content"]:
            return f"<search>{plan[turn]}</search>"
        shown = " ".join(str(m["content"]) for m in messages[1:]).lower()
        gold = next((a for a in answers[question] if a.lower() in shown), None)
        return f"<answer>{gold or 'Rome'}</answer>"

    return policy


@pytest.fixture(scope="module")
def run_dir(hotpot_bm25, tmp_path_factory) -> Path:
    questions = load_benchmark("hotpotqa-1100:test", limit=QUESTIONS).questions
    llm = PolicyLLM(staged_policy({q.question: list(q.answers) for q in questions}))
    out = tmp_path_factory.mktemp("critic") / "run"
    settings = RunSettings(
        benchmark="hotpotqa-1100:test",
        methods=["agent"],
        seeds=[0, 1, 2],
        budget=eval_budget(top_k=3, max_turns=4, max_searches=2, final_read=0),
        concurrency=4,
        model="scripted",
        search="bm25",
    )
    asyncio.run(EvaluationRunner(out, settings, questions, llm, hotpot_bm25).run())
    return out


@pytest.fixture(scope="module")
def features() -> StateFeatures:
    """The packaged encoder's features, shared so each text is embedded once per module."""
    return StateFeatures()


@pytest.fixture(scope="module")
def trained(run_dir, tmp_path_factory, features):
    out = tmp_path_factory.mktemp("critics") / "critic"
    return train_critic([run_dir], out, label="recall", holdout=0.25, seed=0, features=features)


def records(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "results.jsonl").read_text().splitlines()]


def test_states_are_every_prefix_with_documents_as_shown_and_shared_prefixes_averaged(
    run_dir: Path, hotpot_bm25
) -> None:
    first = json.loads((run_dir / "trajectories.jsonl").read_text().splitlines()[0])
    trajectory = Trajectory.from_dict(first)
    states = states_of_trajectory(trajectory)
    assert len(states) == len(trajectory.steps) >= 2  # after each search and after the answer
    search = trajectory.steps[0]
    assert [d[0] for d in states[0].documents] == [
        hotpot_bm25.get(hit.id).title for hit in search.hits
    ]
    text = " ".join(hotpot_bm25.get(search.hits[0].id).text.split())
    assert states[0].documents[0][1] == text[:200]
    assert states[-1].answered and not states[0].answered
    # Seeds 1 and 2 share their first state (the pizza search): one state, two outcomes.
    by_seed = {(r["question_id"], r["seed"]): r["evidence_recall"] for r in records(run_dir)}
    states_read, runs = read_states([run_dir], "recall")
    shared = [s for s in states_read if s.episodes == 2]
    assert len(shared) == QUESTIONS
    for state in shared:
        q = state.question_id
        assert state.state.queries == (BAD_QUERY,)
        assert state.label == pytest.approx((by_seed[(q, 1)] + by_seed[(q, 2)]) / 2)
    assert runs[0]["episodes"] == 3 * QUESTIONS and len(runs[0]["results_sha256"]) == 64


def test_a_live_episode_and_its_stored_trajectory_make_the_same_state(hotpot_bm25) -> None:
    """What a tree search scores (the live episode) is what training learned from (the file)."""
    question = load_benchmark("hotpotqa-1100:test", limit=1).questions[0]
    llm = PolicyLLM(staged_policy({question.question: list(question.answers)}))
    agent = Agent(llm, hotpot_bm25, AgentConfig(seed=2, top_k=3, final_read=0))
    episode = Episode(agent, question.question, None)

    async def two_searches() -> None:
        await episode.prefetch()
        for _ in range(2):
            await episode.next_turn()

    asyncio.run(two_searches())
    stored = Trajectory.from_dict(json.loads(episode.trajectory.to_json()))
    live = state_of_episode(episode)
    assert live == states_of_trajectory(stored)[-1]
    assert live.queries == (BAD_QUERY, question.question) and len(live.documents) == 6


def test_the_critic_ranks_states_with_gold_evidence_first_and_beats_counting_documents(
    trained, run_dir: Path, features: StateFeatures
) -> None:
    metrics = trained.metrics
    held, baseline = metrics["held_out"], metrics["baseline_documents_held_out"]
    assert metrics["questions"] == {"train": 18, "held_out": 6}
    assert held["auc"] > 0.9 and held["spearman"] > 0.6
    assert held["auc"] > (baseline["auc"] or 0.5) + 0.2
    # On the held-out questions, every state that gathered all the gold evidence outranks, on
    # average, those that gathered none.
    manifest = json.loads((trained.out / "manifest.json").read_text())
    held_ids = set(manifest["held_out_questions"])
    critic = TrainedCritic.load(trained.out, features)
    states, _ = read_states([run_dir], "recall")
    held_states = [s for s in states if s.question_id in held_ids]
    scores = critic.score_states([s.state for s in held_states])
    full = [x for x, s in zip(scores, held_states, strict=True) if s.label == 1.0]
    none = [x for x, s in zip(scores, held_states, strict=True) if s.label == 0.0]
    assert full and none and np.mean(full) > np.mean(none) + 0.3


def test_a_saved_critic_reloads_to_the_same_scores_and_records_its_training(
    trained, run_dir: Path, features: StateFeatures
) -> None:
    states, _ = read_states([run_dir], "f1")
    rows = [s.state for s in states]
    loaded = TrainedCritic.load(trained.out, features)
    expected = trained.model.predict(features.rows(rows))
    assert np.array_equal(loaded.score_states(rows), expected)
    manifest = json.loads((trained.out / "manifest.json").read_text())
    assert manifest["encoder"]["name"] == "packaged:all-MiniLM-L6-v2"
    assert manifest["training_runs"][0]["path"] == str(run_dir.resolve())
    assert manifest["metrics"]["held_out"] == trained.metrics["held_out"]
    assert sorted(p.name for p in trained.out.iterdir()) == ["manifest.json", "weights.json"]
    with pytest.raises(SleuthError, match="not a critic folder"):  # never overwrites others
        train_critic([run_dir], run_dir, label="recall", features=features)


def test_a_pickled_damaged_or_foreign_critic_is_refused_with_its_reason(
    trained, tmp_path: Path
) -> None:
    copy = tmp_path / "copy"
    copy.mkdir()
    for name in ("manifest.json", "weights.json"):
        (copy / name).write_bytes((trained.out / name).read_bytes())
    load_critic(copy)  # the copy is fine
    weights = json.loads((copy / "weights.json").read_text())
    weights["coef"][0] += 1.0
    (copy / "weights.json").write_text(json.dumps(weights))
    with pytest.raises(CriticFormatError, match="checksum"):
        load_critic(copy)
    (copy / "manifest.json").write_bytes(pickle.dumps({"format": "sleuth-critic"}))
    with pytest.raises(CriticFormatError, match="never unpickles"):
        load_critic(copy)
    pickled = tmp_path / "critic.pkl"
    pickled.write_bytes(pickle.dumps([1, 2]))
    with pytest.raises(CriticFormatError, match="never unpickles"):
        load_critic(pickled)
    with pytest.raises(CriticFormatError, match="not a critic folder"):
        load_critic(tmp_path / "nowhere")


def test_train_critic_command_saves_a_critic_and_says_how_it_ranks(
    run_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "critic"
    result = CliRunner().invoke(
        app, ["train", "critic", "--runs", str(run_dir), "--out", str(out), "--label", "f1"]
    )
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert "states of 24 questions (6 held out); label f1" in text
    assert "held out: critic spearman" in text and "documents gathered spearman" in text
    assert load_critic(out)[1]["label"] == "f1"
    bad = CliRunner().invoke(
        app, ["train", "critic", "--runs", str(tmp_path), "--out", str(out), "--label", "f1"]
    )
    assert bad.exit_code != 0 and "is not an eval run folder" in str(bad.exception)
    # --critic is checked before any model loads: a folder that is no critic is named.
    with pytest.raises(CriticFormatError, match="not a critic folder"):
        strategy_plan(AgentConfig(), "best-of-n", 2, 2, 12, 0, str(tmp_path / "nowhere"))
    plan = strategy_plan(AgentConfig(), "best-of-n", 2, 2, 12, 0, str(out / "manifest.json"))
    assert plan.critic == str(out.resolve())


def test_beam_with_the_trained_critic_spends_its_budget_on_the_policy_alone(
    trained, hotpot_bm25
) -> None:
    """The judge's call is promised before every candidate; the trained critic's cost is 0, so
    the same budget buys the policy more turns and the critic is never asked."""
    made = {}
    for critic in ("judge", str(trained.out)):
        llm = PolicyLLM(greedy_bad_sampled_good)
        agent = Agent(llm, hotpot_bm25, AgentConfig(seed=0, final_read=0, max_turns=3))
        strategy = StrategyConfig("beam", branches=2, beam_width=2, call_budget=8, critic=critic)
        trajectory = asyncio.run(run_strategy(agent, QUESTION, strategy, episode_id="e"))
        meta = trajectory.metadata
        assert meta["policy_calls"] + meta["critic_calls"] == len(llm.calls) <= 8
        made[critic] = (meta["policy_calls"], meta["critic_calls"], trajectory.answer)
    assert made[str(trained.out)][1] == 0 and made["judge"][1] > 0
    assert made[str(trained.out)][0] > made["judge"][0]
    assert made[str(trained.out)][2] == "Tulsa"  # the band's documents ranked first


def cli_cache(tmp_path: Path) -> Path:
    """A fresh cache for a command, with this machine's exported encoder linked in (exporting
    it again takes a minute)."""
    cache = tmp_path / "cache"
    cache.mkdir()
    if (cache_dir() / "encoders").is_dir():
        (cache / "encoders").symlink_to(cache_dir() / "encoders")
    return cache


def test_eval_run_best_of_n_with_the_trained_critic_makes_no_critic_calls(
    trained, hotpot_bm25_path: Path, tmp_path: Path
) -> None:
    llm = PolicyLLM(greedy_bad_sampled_good)  # greedy: pizza-like miss; sampled: the band
    run = tmp_path / "run"
    cache = cli_cache(tmp_path)

    def eval_run(critic: str) -> object:
        return sleuth(
            "eval", "run", "--out", str(run), "--benchmark", "hotpotqa-1100:test", "-n", "1",
            "--methods", "agent", "--index", str(hotpot_bm25_path), "--llm-url",
            f"{server.url}/v1", "--model", "policy", "--final-read", "0", "--no-report",
            "--strategy", "best-of-n", "--branches", "2", "--critic", critic, cache=cache,
        )  # fmt: skip

    with LiveServer(create_llm_app(llm)) as server:
        result = eval_run(str(trained.out))
    assert result.returncode == 0, result.stderr
    assert not any(is_critic(messages) for messages, _ in llm.calls)
    (record,) = [json.loads(line) for line in (run / "results.jsonl").open()]
    assert record["critic_calls"] == 0 and record["model_calls"] == len(llm.calls) == 4
    (trajectory,) = [json.loads(line) for line in (run / "trajectories.jsonl").open()]
    meta = trajectory["metadata"]
    assert meta["critic_scores"] == 2 and meta["strategy_settings"]["critic"] == str(
        trained.out.resolve()
    )
    leaves = [node for node in trajectory["tree"] if node["score"] is not None]
    assert len(leaves) == 2 and all(0.0 <= node["score"] <= 1.0 for node in leaves)
    config = json.loads((run / "config.json").read_text())
    assert config["strategy"]["critic"] == str(trained.out.resolve())
    # The band's documents scored above the wrong search's: the sampled episode was chosen.
    assert GOOD_QUERY in [s["argument"] for s in trajectory["steps"]]
