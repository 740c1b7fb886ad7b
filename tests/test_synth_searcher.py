"""Issue 29: searcher episodes for priming (``synth trajectories --searcher K``), through the real
loop and the real HotpotQA index: the selection names the gold paragraphs by their
episode-wide numbers, follow-up searches find what RAG's top K missed, and SFT trains on the
searcher's turns only (never on the reader's)."""

from __future__ import annotations

import re

import pytest

from sleuth.agent.grammar import ActionGrammar
from sleuth.agent.log import TrajectoryLog
from sleuth.errors import SleuthError
from sleuth.synth.searcher_episodes import SEARCHER_SYNTH_CONFIG
from sleuth.synth.trajectories import synth_trajectories
from sleuth.train.sft_data import conversation, remembered_output

N_QUESTIONS = 40
K = 5


@pytest.fixture(scope="module")
def searcher_episodes(hotpot_bm25, tmp_path_factory):
    out = tmp_path_factory.mktemp("synth-searcher") / "searcher.jsonl"
    stats = synth_trajectories(
        ["hotpotqa-1100:train"], hotpot_bm25, out, limit=N_QUESTIONS, searcher_k=K,
        think_share=0.5,
    )  # fmt: skip
    return stats, TrajectoryLog(out).read()


def test_selection_names_every_gold_paragraph_by_its_episode_number(searcher_episodes):
    stats, trajectories = searcher_episodes
    assert stats.kept == len(trajectories) >= 0.7 * N_QUESTIONS
    assert stats.kept + sum(stats.dropped.values()) == N_QUESTIONS
    for traj in trajectories:
        assert traj.stop_reason == "selected"
        assert traj.config["prefetch_k"] == K and traj.config["final_read"] == K
        assert tuple(traj.config["actions"]) == ("search", "select")
        first = traj.steps[0]  # turn 0 is RAG: the loop's retrieval of the question
        assert first.action == "search" and first.argument == traj.question
        assert not first.model_output and len(first.hits) == K
        seen = list(dict.fromkeys(hit.id for s in traj.searches for hit in s.hits))
        select = next(s for s in traj.steps if s.action == "select")
        numbers = [int(n) for n in re.findall(r"\d+", select.argument)]
        chosen = [seen[n - 1] for n in numbers]  # the episode-wide numbering the loop shows
        assert chosen == traj.metadata["selected"]
        for aliases in traj.metadata["evidence_ids"]:
            assert set(aliases) & set(chosen)
        # the reader's read: the selection first, cut to K documents
        assert traj.metadata["final_read"][: len(chosen)] == chosen[:K]
        assert len(traj.metadata["final_read"]) == K


def test_follow_up_searches_bring_documents_rag_missed_into_the_selection(searcher_episodes):
    _, trajectories = searcher_episodes
    new = [t for t in trajectories if "selected_new" in t.metadata["behaviours"]]
    at_once = [t for t in trajectories if "selected_at_once" in t.metadata["behaviours"]]
    assert new and at_once  # both lessons: search for what is missing, and not when nothing is
    for traj in new:
        rag = {hit.id for hit in traj.steps[0].hits}
        assert len(traj.searches) >= 2
        assert set(traj.metadata["selected"]) - rag  # a follow-up's hit reaches the reader
        assert set(traj.metadata["final_read"]) != rag
    for traj in at_once:
        assert len(traj.searches) == 1
        assert set(traj.metadata["selected"]) <= {hit.id for hit in traj.steps[0].hits}
    for traj in trajectories:
        assert len(traj.searches) <= traj.config["max_searches"]
        queries = [s.argument for s in traj.searches[1:]]
        assert len(queries) == len(set(queries))


def test_searcher_turns_match_the_grammar_and_sft_leaves_the_reader_out(searcher_episodes):
    _, trajectories = searcher_episodes
    pattern = ActionGrammar(SEARCHER_SYNTH_CONFIG.actions, think=True).tag_regex()
    for traj in trajectories:
        reader_steps = [s for s in traj.steps if s.fresh_context]
        assert len(reader_steps) == 1 and reader_steps[0].role == "reader"
        messages = conversation(traj)
        turns = [m["content"] for m in messages if m["role"] == "assistant"]
        searcher_steps = [s for s in traj.steps if s.model_output and not s.fresh_context]
        assert turns == [remembered_output(s) for s in searcher_steps]
        assert turns[-1].startswith(("<select>", "<think>")) and "</select>" in turns[-1]
        assert "<answer>" not in "".join(turns)  # the searcher never answers
        for turn in turns:
            assert re.fullmatch(pattern, turn), turn


def test_searcher_episodes_refuse_test_questions_and_a_prefetch(hotpot_bm25, tmp_path):
    with pytest.raises(SleuthError, match="hotpotqa-1100:test"):
        synth_trajectories(["hotpotqa-1100:test"], hotpot_bm25, tmp_path / "x.jsonl", searcher_k=5)
    with pytest.raises(SleuthError, match="--prefetch"):
        synth_trajectories(
            ["hotpotqa-1100:train"], hotpot_bm25, tmp_path / "x.jsonl", searcher_k=5, prefetch_k=3
        )
    with pytest.raises(SleuthError, match="1 to 50"):
        synth_trajectories(
            ["hotpotqa-1100:train"], hotpot_bm25, tmp_path / "y.jsonl", searcher_k=-1
        )
    assert not list(tmp_path.iterdir())
