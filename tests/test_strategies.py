"""Strategies over the agent's steps (``sleuth.agent.strategies``): ReAct unchanged, cloned
episodes independent, best-of-n / beam / MCTS choosing by the model-as-judge critic within the
call budget, the tree in the trajectory, and ``ask`` / ``eval run`` with ``--strategy``.

The model is a scripted policy that sees each call's decoding settings (greedy turns, sampled
branches and the critic's judge prompt answer differently); the search engine is a real BM25
index of the bundled HotpotQA corpus."""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import LiveServer
from view_support import view_episode

from sleuth.agent import Agent, AgentConfig, Episode, Trajectory
from sleuth.agent.critic import SYSTEM as CRITIC_SYSTEM
from sleuth.agent.strategies import run_strategy
from sleuth.agent.strategy_config import StrategyConfig
from sleuth.errors import SleuthError
from sleuth.evaluate.benchmarks import BenchmarkQuestion
from sleuth.evaluate.records import score_trajectory
from sleuth.llm.base import Completion, GenerationConfig, Usage
from sleuth.llm.scripted import approx_tokens
from sleuth.llm.serve_llm import create_llm_app

ROOT = Path(__file__).resolve().parents[1]
QUESTION = (
    "The band who released the debut album Tinted Windows had their first performance in what city?"
)
GOOD_QUERY = "Tinted Windows band first performance"  # its hits name Tulsa
BAD_QUERY = "pizza recipe"


class PolicyLLM:
    """A scripted model whose output depends on the prompt and the decoding settings:
    ``policy(messages, config) -> text``. Every call is logged with its settings."""

    def __init__(self, policy, name: str = "policy") -> None:
        self.policy, self.name = policy, name
        self.calls: list[tuple[list[dict], GenerationConfig]] = []

    async def complete(self, messages, config=None, tools=None) -> Completion:
        await asyncio.sleep(0)
        config = config or GenerationConfig()
        self.calls.append((list(messages), config))
        text = self.policy(messages, config)
        for stop in config.stop:
            text = text.split(stop)[0]
        return Completion(text, usage=Usage(10, approx_tokens(text)), model=self.name)

    async def aclose(self) -> None:
        return None

    def count(self, kind: str) -> int:
        critic = sum(1 for messages, _ in self.calls if is_critic(messages))
        return critic if kind == "critic" else len(self.calls) - critic


def is_critic(messages) -> bool:
    return messages[0]["content"] == CRITIC_SYSTEM


def judge(messages) -> str:
    """The critic's verdict: sufficient when the documents shown name Tulsa."""
    return (
        "<judge>yes: it is there</judge>"
        if "Tulsa" in messages[-1]["content"]
        else ("<judge>no: the city is missing</judge>")
    )


def turns_taken(messages) -> int:
    return sum(1 for m in messages if m["role"] == "assistant")


def must_answer(messages) -> bool:
    """The forced answer or the final read: only the answer action is wanted."""
    return "<search>" not in messages[0]["content"] or "No more searches" in str(messages[-1])


def answer(messages) -> str:
    return "<answer>Tulsa</answer>" if "Tulsa" in str(messages) else "<answer>Rome</answer>"


def greedy_bad_sampled_good(messages, config) -> str:
    """Greedy decoding searches the wrong thing and answers Rome; a sampled turn finds the
    band and answers Tulsa."""
    if is_critic(messages):
        return judge(messages)
    sampled = config.temperature > 0
    if turns_taken(messages) == 0 and not must_answer(messages):
        return f"<search>{GOOD_QUERY if sampled else BAD_QUERY}</search>"
    return answer(messages)


def varied(messages, config) -> str:
    """Sampled turns pick a query by their seed; two searches, then an answer."""
    if is_critic(messages):
        return judge(messages)
    queries = [GOOD_QUERY, BAD_QUERY, "Tinted Windows album", "weather in Oslo", "Tulsa"]
    turn = turns_taken(messages)
    if turn >= 2 or must_answer(messages):
        return answer(messages)
    pick = 0 if config.temperature == 0 else (config.seed or 0) % len(queries)
    return f"<search>{queries[(pick + turn) % len(queries)]}</search>"


def run(llm, engine, strategy: StrategyConfig | None, **config) -> Trajectory:
    config.setdefault("seed", 0)
    agent = Agent(llm, engine, AgentConfig(**config))
    return asyncio.run(run_strategy(agent, QUESTION, strategy, episode_id="e1"))


def comparable(trajectory: Trajectory) -> dict:
    """The trajectory without its clock readings."""
    data = trajectory.to_dict()
    data.pop("seconds"), data.pop("started_at")
    for step in data["steps"]:
        step.pop("llm_seconds"), step.pop("tool_seconds")
    return data


def test_react_is_todays_loop_unchanged(hotpot_bm25) -> None:
    """No strategy and ``--strategy react`` make the same calls and the same trajectory, with
    no tree and no strategy metadata (the file reads as before strategies)."""
    plain, react = PolicyLLM(greedy_bad_sampled_good), PolicyLLM(greedy_bad_sampled_good)
    a = run(plain, hotpot_bm25, None, final_read=2)
    b = run(react, hotpot_bm25, StrategyConfig("react"), final_read=2)
    assert comparable(a) == comparable(b)
    assert [c for c, _ in plain.calls] == [c for c, _ in react.calls]
    assert a.answer == "Rome" and len(plain.calls) == 3  # search, answer, final read
    assert "tree" not in b.to_dict() and "strategy" not in b.metadata
    record = score_trajectory(b, BenchmarkQuestion("q", QUESTION, ["Tulsa"]), "agent", 0)
    assert record["strategy"] == "react" and record["critic_calls"] == 0
    assert record["model_calls"] == 3


def test_a_clones_steps_leave_the_original_untouched(hotpot_bm25) -> None:
    llm = PolicyLLM(varied)
    agent = Agent(llm, hotpot_bm25, AgentConfig(prefetch_k=2, seed=0))
    episode = Episode(agent, QUESTION, None)
    asyncio.run(episode.prefetch())
    before = (
        json.dumps(episode.messages),
        json.dumps(episode.pending),
        dict(episode.knowledge.seen),
        list(episode.knowledge.texts),
        episode.searches,
        episode.tokens,
        episode.turns,
        set(episode.queries),
        comparable(episode.trajectory),
    )
    twin = episode.clone(temperature=0.9, seed=5)
    assert twin.agent is agent and twin.agent.llm is llm and twin.agent.search is hotpot_bm25
    asyncio.run(twin.next_turn())
    asyncio.run(twin.next_turn())
    assert twin.searches == 3 and len(twin.trajectory.steps) == 3
    assert twin.cfg.temperature == 0.9 and llm.calls[-1][1].seed == 5
    after = (
        json.dumps(episode.messages),
        json.dumps(episode.pending),
        dict(episode.knowledge.seen),
        list(episode.knowledge.texts),
        episode.searches,
        episode.tokens,
        episode.turns,
        set(episode.queries),
        comparable(episode.trajectory),
    )
    assert after == before and episode.cfg.temperature == 0.0
    # The original still steps on its own state: its first turn sees only the prefetch.
    asyncio.run(episode.next_turn())
    assert len(episode.trajectory.steps) == 2 and episode.searches == 2
    assert turns_taken(llm.calls[-1][0]) == 0


def test_best_of_n_picks_the_episode_the_critic_scores_highest(hotpot_bm25) -> None:
    llm = PolicyLLM(greedy_bad_sampled_good)
    greedy = run(PolicyLLM(greedy_bad_sampled_good), hotpot_bm25, None)
    assert greedy.answer == "Rome"  # ReAct's one chain: the wrong search, the wrong answer
    traj = run(llm, hotpot_bm25, StrategyConfig("best-of-n", branches=3))
    assert traj.answer == "Tulsa" and traj.stop_reason == "answered"
    assert [s.argument for s in traj.steps] == [GOOD_QUERY, "Tulsa"]
    leaves = {n["id"]: n for n in traj.tree if n["stop"] == "answered"}
    assert len(leaves) == 3
    scores = sorted(n["score"] for n in leaves.values())
    chosen = [n for n in leaves.values() if n["chosen"]]
    assert len(chosen) == 1 and chosen[0]["score"] == scores[-1] == 1.0
    assert scores[0] == 0.0  # the greedy sample: answered on evidence judged insufficient
    # Exact calls: 3 episodes x 2 turns; the two sampled episodes saw the same documents, so
    # the critic judged twice.
    meta = traj.metadata
    assert (meta["policy_calls"], meta["critic_calls"]) == (6, 2)
    assert (llm.count("policy"), llm.count("critic")) == (6, 2)
    assert meta["strategy"] == "best-of-n" and meta["call_budget"] == 4 * (16 + 1)
    record = score_trajectory(traj, BenchmarkQuestion("q", QUESTION, ["Tulsa"]), "agent", 0)
    assert (record["model_calls"], record["critic_calls"], record["strategy"]) == (
        6,
        2,
        "best-of-n",
    )
    assert record["f1"] == 1.0


def test_beam_keeps_the_best_b_states_per_depth(hotpot_bm25) -> None:
    llm = PolicyLLM(varied)
    traj = run(llm, hotpot_bm25, StrategyConfig("beam", branches=3, beam_width=2), max_turns=4)
    nodes = {n["id"]: n for n in traj.tree}
    kept = traj.metadata["beam_kept"]
    assert kept and all(1 <= len(ids) <= 2 for ids in kept)
    # Depth d + 1 grows only from the states kept at depth d (the root before that).
    growing = [[0], *kept]
    for depth in range(1, max(n["depth"] for n in nodes.values()) + 1):
        parents = {n["parent"] for n in nodes.values() if n["depth"] == depth}
        assert parents <= set(growing[depth - 1]), depth
    # Each kept set holds the best scored candidates of its depth (duplicates aside).
    first = [n for n in nodes.values() if n["depth"] == 1 and "duplicate_of" not in n]
    best = sorted(first, key=lambda n: (-n["score"], n["id"]))[:2]
    assert kept[0] == [n["id"] for n in best]
    # The chosen path: root to the best kept state, its steps the trajectory's.
    path = [n for n in nodes.values() if n["chosen"]]
    assert [n["step"] for n in path if n["step"] is not None] == list(range(len(traj.steps)))
    assert path[-1]["id"] == kept[-1][0] and traj.answer == "Tulsa"
    assert traj.metadata["policy_calls"] == llm.count("policy")
    assert traj.metadata["critic_calls"] == llm.count("critic")


def test_mcts_stays_within_the_call_budget_and_returns_a_whole_trajectory(hotpot_bm25) -> None:
    llm = PolicyLLM(varied)
    strategy = StrategyConfig("mcts", branches=2, simulations=50, call_budget=9)
    traj = run(llm, hotpot_bm25, strategy, final_read=2)
    meta = traj.metadata
    assert len(llm.calls) == meta["policy_calls"] + meta["critic_calls"] <= 9
    assert meta["policy_calls"] == llm.count("policy")
    assert meta["critic_calls"] == llm.count("critic")
    # A whole episode: it reads back, ends in an answer (forced when the budget cut it short),
    # and the final read ran.
    again = Trajectory.from_dict(json.loads(traj.to_json()))
    assert again.tree == traj.tree and again.answer == traj.answer is not None
    assert [s.index for s in traj.steps] == list(range(len(traj.steps)))
    assert traj.steps[-1].fresh_context and meta["final_read"]
    # The tree: every node's parent exists, visits recorded, the chosen nodes one chain.
    ids = {n["id"] for n in traj.tree}
    assert all(n["parent"] in ids for n in traj.tree if n["parent"] is not None)
    root = traj.tree[0]
    assert root["visits"] >= 1 and root["chosen"]
    chosen = [n for n in traj.tree if n["chosen"]]
    assert all(b["parent"] == a["id"] for a, b in itertools.pairwise(chosen))


def test_astar_expands_the_cheapest_state_until_it_has_ended(hotpot_bm25) -> None:
    llm = PolicyLLM(greedy_bad_sampled_good)
    traj = run(llm, hotpot_bm25, StrategyConfig("astar", branches=3))
    assert traj.answer == "Tulsa" and [s.argument for s in traj.steps] == [GOOD_QUERY, "Tulsa"]
    depth1 = [n for n in traj.tree if n["depth"] == 1]
    expanded = {n["parent"] for n in traj.tree if n["depth"] == 2}
    # Only the good search (the cheapest state) was expanded; the bad one stayed a leaf.
    assert [n["argument"] for n in depth1] == [BAD_QUERY, GOOD_QUERY, GOOD_QUERY]
    assert expanded == {depth1[1]["id"]} and depth1[2]["duplicate_of"] == depth1[1]["id"]
    assert (traj.metadata["policy_calls"], traj.metadata["critic_calls"]) == (6, 2)
    assert len(llm.calls) == 8


@pytest.mark.parametrize("name", ["best-of-n", "beam", "mcts", "astar"])
def test_every_strategy_counts_each_call_it_makes(hotpot_bm25, name) -> None:
    llm = PolicyLLM(varied)
    traj = run(llm, hotpot_bm25, StrategyConfig(name, call_budget=14), final_read=2)
    meta = traj.metadata
    assert meta["policy_calls"] == llm.count("policy") > 0
    assert meta["critic_calls"] == llm.count("critic") > 0
    assert len(llm.calls) <= 14 and traj.answer is not None


def test_a_call_budget_too_small_to_search_is_refused() -> None:
    with pytest.raises(SleuthError, match="at least 7 calls"):
        StrategyConfig("beam", call_budget=3).budget_for(AgentConfig(final_read=2))
    with pytest.raises(SleuthError, match="unknown strategy 'greedy'"):
        StrategyConfig("greedy")


# ---- the commands --------------------------------------------------------------------------


def sleuth(*args: str, cache: Path) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT / "src"),
        "SLEUTH_CACHE": str(cache),
        "COLUMNS": "250",
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
    }
    return subprocess.run(
        [sys.executable, "-m", "sleuth.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        cwd=cache.parent,
    )


def test_ask_with_beam_shows_the_chosen_path_and_saves_the_tree(
    hotpot_bm25_path: Path, tmp_path: Path
) -> None:
    llm = PolicyLLM(greedy_bad_sampled_good)
    out = tmp_path / "t.jsonl"
    with LiveServer(create_llm_app(llm)) as server:
        result = sleuth(
            "ask", QUESTION, "--index", str(hotpot_bm25_path), "--llm-url", f"{server.url}/v1",
            "--model", "policy", "--strategy", "beam", "--branches", "2", "--final-read", "0",
            "--trajectory-out", str(out), cache=tmp_path / "cache",
        )  # fmt: skip
    assert result.returncode == 0, result.stderr
    text = " ".join(result.stdout.split())
    assert "answer: Tulsa" in text and f"search {GOOD_QUERY}" in text
    saved = json.loads(out.read_text(encoding="utf-8"))
    assert saved["metadata"]["strategy"] == "beam" and saved["answer"] == "Tulsa"
    meta = saved["metadata"]
    assert f"beam: {len(saved['tree'])} states, {meta['policy_calls']} policy" in text
    assert meta["policy_calls"] + meta["critic_calls"] == len(llm.calls)


def test_eval_run_with_best_of_n_records_the_strategy_and_its_calls(
    hotpot_bm25_path: Path, tmp_path: Path
) -> None:
    llm = PolicyLLM(greedy_bad_sampled_good)
    run_dir = tmp_path / "run"

    def eval_run(*extra: str) -> subprocess.CompletedProcess:
        return sleuth(
            "eval", "run", "--out", str(run_dir), "--benchmark", "hotpotqa-1100:test", "-n", "1",
            "--methods", "rag,agent", "--index", str(hotpot_bm25_path), "--llm-url",
            f"{server.url}/v1", "--model", "policy", "--final-read", "0", "--no-report", *extra,
            cache=tmp_path / "cache",
        )  # fmt: skip

    with LiveServer(create_llm_app(llm)) as server:
        result = eval_run("--strategy", "best-of-n", "--branches", "2")
        assert result.returncode == 0, result.stderr
        other = eval_run("--strategy", "beam")  # the same folder, another experiment
    assert other.returncode != 0 and "strategy.name" in other.stderr
    records = {
        r["method"]: r
        for r in map(json.loads, (run_dir / "results.jsonl").read_text().splitlines())
    }
    assert records["rag"]["strategy"] == "react" and records["rag"]["critic_calls"] == 0
    agent = records["agent"]
    assert agent["strategy"] == "best-of-n" and agent["critic_calls"] >= 1
    assert agent["model_calls"] == 4  # two episodes of two turns
    config = json.loads((run_dir / "config.json").read_text())
    assert config["strategy"]["name"] == "best-of-n" and config["strategy"]["branches"] == 2
    trajectories = [json.loads(line) for line in (run_dir / "trajectories.jsonl").open()]
    assert [bool(t.get("tree")) for t in trajectories] == [False, True]
    # The viewer lists, under the chosen first step, the candidate the search passed over.
    page = " ".join(view_episode(run_dir, agent["episode_id"]).split())
    assert "1 other candidate the best-of-n search weighed here" in page
    assert f'<span class="argument">{BAD_QUERY}</span> · critic not scored' in page
