"""Issue 29: searcher episodes that play the links pipeline (``synth trajectories --searcher K
--teacher links``), through the real loop and the real HotpotQA index: every follow-up query is
a name the searcher can read on its screen (in the question or in document [1]), and the
selection is exactly what the links pipeline reads, by the loop's episode-wide numbers."""

from __future__ import annotations

import asyncio
import re

import pytest
from typer.testing import CliRunner

from sleuth.agent.grammar import ActionGrammar
from sleuth.agent.log import TrajectoryLog
from sleuth.cli import app as cli
from sleuth.errors import SleuthError
from sleuth.search.links import normalise, title_key
from sleuth.synth.link_searcher import link_plan
from sleuth.synth.searcher_episodes import searcher_config
from sleuth.synth.trajectories import load_questions, synth_trajectories
from sleuth.train.sft_data import remembered_output

N_QUESTIONS = 40
K = 3


@pytest.fixture(scope="module")
def link_episodes(hotpot_bm25, tmp_path_factory):
    out = tmp_path_factory.mktemp("synth-links") / "links.jsonl"
    stats = synth_trajectories(
        ["hotpotqa-1100:train"], hotpot_bm25, out, limit=N_QUESTIONS, searcher_k=K,
        think_share=0.5, teacher="links",
    )  # fmt: skip
    return stats, TrajectoryLog(out).read()


def test_the_selection_is_what_the_links_pipeline_reads(link_episodes, hotpot_bm25):
    stats, trajectories = link_episodes
    assert stats.kept == len(trajectories) >= 0.5 * N_QUESTIONS
    assert stats.kept + sum(stats.dropped.values()) == N_QUESTIONS
    assert set(stats.dropped) <= {"evidence_not_selected", "not_scriptable", "name_not_on_screen"}
    questions = {q.id: q for q in load_questions("hotpotqa-1100:train", hotpot_bm25, N_QUESTIONS)}
    for traj in trajectories:
        assert traj.stop_reason == "selected" and not traj.invalid_actions
        plan = asyncio.run(link_plan(questions[traj.episode_id], hotpot_bm25, K))
        assert plan is not None and list(plan.read) == traj.metadata["links_read"]
        seen = list(dict.fromkeys(hit.id for s in traj.searches for hit in s.hits))
        select = next(s for s in traj.steps if s.action == "select")
        chosen = [seen[int(n) - 1] for n in re.findall(r"\d+", select.argument)]
        assert chosen == list(plan.read) == traj.metadata["selected"]
        assert traj.metadata["final_read"] == chosen  # links reads K: no fill needed
        for aliases in traj.metadata["evidence_ids"]:
            assert set(aliases) & set(chosen)  # kept only when the read holds the evidence


def test_every_query_is_a_name_on_the_screen_and_finds_its_document(link_episodes, hotpot_bm25):
    _, trajectories = link_episodes
    new = [t for t in trajectories if "selected_new" in t.metadata["behaviours"]]
    at_once = [t for t in trajectories if "selected_at_once" in t.metadata["behaviours"]]
    assert len(new) >= 0.3 * len(trajectories) and at_once
    for traj in trajectories:
        first = traj.steps[0]  # turn 0 is RAG's top K
        assert first.argument == traj.question and len(first.hits) == K
        screen = normalise(traj.question)
        for step in traj.steps:
            if step.action == "search" and step.model_output:
                assert normalise(step.argument) in screen, step.argument  # read, not guessed
            screen += " " + normalise(step.observation)
        rag = {hit.id for hit in first.hits}
        for doc_id in set(traj.metadata["selected"]) - rag:  # found by searching its title
            assert any(
                hit.id == doc_id
                and title_key(hotpot_bm25.get(doc_id).title) in normalise(search.argument)
                for search in traj.searches[1:]
                for hit in search.hits
            ), doc_id
    for traj in new:
        assert set(traj.metadata["selected"]) - {hit.id for hit in traj.steps[0].hits}
    for traj in at_once:  # nothing to look up: links read RAG's documents, no name resolved
        assert len(traj.searches) == 1
    shown = [t for t in trajectories if "shown_link" in t.metadata["behaviours"]]
    assert len(shown) >= 0.2 * len(trajectories)
    for traj in shown:  # one look-up of a name RAG already showed, then the selection
        assert len(traj.searches) == 2
        assert set(traj.metadata["selected"]) <= {hit.id for hit in traj.steps[0].hits}
    assert len(at_once) < 0.2 * len(trajectories)  # the first action is a search, mostly


def test_link_searcher_turns_match_the_grammar(link_episodes):
    _, trajectories = link_episodes
    pattern = ActionGrammar(searcher_config(K).actions, think=True).tag_regex()
    for traj in trajectories:
        turns = [remembered_output(s) for s in traj.steps if s.model_output and not s.fresh_context]
        assert turns and "<answer>" not in "".join(turns)  # the reader's turn is not the searcher's
        for turn in turns:
            assert re.fullmatch(pattern, turn), turn


def test_teacher_is_checked_before_anything_is_written(hotpot_bm25, tmp_path):
    with pytest.raises(SleuthError, match="--teacher must be one of gold, links"):
        synth_trajectories(
            ["hotpotqa-1100:train"], hotpot_bm25, tmp_path / "x.jsonl", searcher_k=3,
            teacher="oracle",
        )  # fmt: skip
    with pytest.raises(SleuthError, match="give --searcher K"):
        synth_trajectories(
            ["hotpotqa-1100:train"], hotpot_bm25, tmp_path / "x.jsonl", teacher="links"
        )
    assert not list(tmp_path.iterdir())


def test_cli_writes_link_episodes_and_names_a_bad_teacher(hotpot_bm25_path, tmp_path):
    out = tmp_path / "links.jsonl"
    args = ["synth", "trajectories", "--benchmark", "hotpotqa-1100:train", "-n", "10",
            "--index", str(hotpot_bm25_path), "--searcher", "3", "--out", str(out)]  # fmt: skip
    result = CliRunner().invoke(cli, [*args, "--teacher", "links"])
    assert result.exit_code == 0, result.output
    kept = len(TrajectoryLog(out).read())
    assert f"kept {kept} of 10 episodes" in result.output and kept >= 5
    bad = CliRunner().invoke(cli, [*args[:-1], str(tmp_path / "x.jsonl"), "--teacher", "oracle"])
    assert isinstance(bad.exception, SleuthError)  # `sleuth` prints it in one line, exit 2
    assert "--teacher must be one of gold, links" in str(bad.exception)
    assert not (tmp_path / "x.jsonl").exists()
