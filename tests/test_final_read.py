"""The final read (``AgentConfig.final_read``): the answer from a fresh, RAG-style read of the
documents the episode saw. Scripted policies against the real bundled BM25 index; one episode
with the real packaged model under the grammar."""

import asyncio
import re

import pytest

from sleuth.agent import Agent, AgentConfig
from sleuth.agent.final_read import reading_order
from sleuth.agent.prompts import tag_system_prompt
from sleuth.errors import SleuthError
from sleuth.evaluate.methods import eval_budget, method_settings
from sleuth.llm.scripted import ScriptedLLM
from sleuth.train.sft_data import conversation
from sleuth.view.replay import Edit, replay

QUESTION = (
    "The band who released the debut album Tinted Windows had their first performance in what city?"
)


def run(llm, engine, **config):
    config.setdefault("min_searches", 0)
    return asyncio.run(Agent(llm, engine, AgentConfig(**config)).run(QUESTION, episode_id="e1"))


def test_reading_order_keeps_the_first_search_whole_then_goes_rank_by_rank():
    searches = [["a", "b", "c"], ["d", "a", "e"], ["f", "g"]]
    assert reading_order(searches, 10) == ["a", "b", "c", "d", "f", "g", "e"]
    assert reading_order(searches, 5) == ["a", "b", "c", "d", "f"]
    assert reading_order(searches, 0) == [] and reading_order([], 4) == []
    assert reading_order([["x", "y"]], 1) == ["x"]


def test_the_final_read_answers_from_a_fresh_prompt_over_the_documents_seen(hotpot_bm25):
    llm = ScriptedLLM(
        [
            "<search>Fountains of Wayne Hanson Smashing Pumpkins</search>",
            "<answer>Fountains of Wayne</answer>",
            "<think>the hits say where</think><answer>Tulsa</answer>",
        ]
    )
    traj = run(llm, hotpot_bm25, prefetch_k=3, final_read=4)
    prefetch, search, conversation_answer, read = traj.steps
    order = reading_order([[h.id for h in prefetch.hits], [h.id for h in search.hits]], 4)
    # The last call is not the conversation: an answer-only system prompt, then the documents
    # in reading order and the question, exactly as RAG's prompt is built.
    system, user = llm.calls[-1]
    assert system == {"role": "system", "content": tag_system_prompt(("answer",), True)}
    information, _, question = user["content"].rpartition("\n\n")
    assert question == QUESTION and information.startswith("<information>\n[1] (id: ")
    shown = re.findall(r"^\[\d+\] \(id: ([^)]*)\)", information, re.MULTILINE)
    assert shown == order and len(order) == 4
    assert order[:3] == [h.id for h in prefetch.hits]  # RAG's documents come first
    assert read.fresh_context and read.action == "answer" and read.prompt_delta == llm.calls[-1]
    assert [h.id for h in read.hits] == order and not any(h.new for h in read.hits)
    assert read.hits[0].score == prefetch.hits[0].score  # as first retrieved
    assert traj.answer == "Tulsa" and traj.stop_reason == "answered"
    assert traj.metadata["conversation_answer"] == "Fountains of Wayne"
    assert traj.metadata["final_read"] == order
    assert traj.retrieved_ids == [h.id for h in prefetch.hits + search.hits if h.new]
    # Training data is the conversation the agent had; the separate read is not part of it.
    messages = conversation(traj)
    assert messages[-1] == {"role": "assistant", "content": "<answer>Fountains of Wayne</answer>"}
    assert conversation_answer.action == "answer" and not conversation_answer.fresh_context


def test_an_invalid_final_read_keeps_the_conversation_answer(hotpot_bm25):
    llm = ScriptedLLM(["<search>Tinted Windows</search>", "<answer>Tulsa</answer>", "no tag"])
    traj = run(llm, hotpot_bm25, final_read=4, constrain=False)
    assert traj.steps[-1].fresh_context and traj.steps[-1].action == "invalid"
    assert traj.answer == "Tulsa" and traj.metadata["conversation_answer"] == "Tulsa"


def test_no_documents_no_final_read_and_a_forced_answer_is_read_again(hotpot_bm25):
    closed = run(ScriptedLLM(["<answer>Paris</answer>"]), None, actions=("answer",), final_read=4)
    assert len(closed.steps) == 1 and "final_read" not in closed.metadata
    outputs = ["<search>Tinted Windows</search>", "<search>Tinted Windows debut</search>"]
    llm = ScriptedLLM([*outputs, "<answer>Chicago</answer>", "<answer>Tulsa</answer>"])
    traj = run(llm, hotpot_bm25, max_turns=2, final_read=4)
    assert traj.stop_reason == "max_turns" and traj.metadata["forced_answer"]
    assert traj.metadata["conversation_answer"] == "Chicago" and traj.answer == "Tulsa"
    with pytest.raises(SleuthError, match="final_read"):
        AgentConfig(final_read=-1)


def test_only_agent_methods_read_again():
    budget = eval_budget(final_read=6)
    assert method_settings("rag", budget)["final_read"] == 0
    assert method_settings("closed_book", budget)["final_read"] == 0
    for method in ("agent", "agent_rag", "agent_judge"):
        assert method_settings(method, budget)["final_read"] == 6


def test_a_replay_reads_again_but_never_edits_the_read_or_overrides_an_edited_answer(
    hotpot_bm25,
):
    outputs = ["<search>Tinted Windows</search>", "<answer>Chicago</answer>"]
    parent = run(ScriptedLLM([*outputs, "<answer>Tulsa</answer>"]), hotpot_bm25, final_read=4)
    read = len(parent.steps) - 1
    with pytest.raises(SleuthError, match="final read"):
        Edit("answer", read, "x").check(parent)
    edited = asyncio.run(replay(parent, Edit("answer", read - 1, "Seattle"), None, hotpot_bm25))
    assert edited.answer == "Seattle" and not edited.steps[-1].fresh_context
    llm = ScriptedLLM(["<answer>Chicago</answer>", "<answer>Tulsa</answer>"])
    forked = asyncio.run(replay(parent, Edit("query", 0, "Tinted Windows band"), llm, hotpot_bm25))
    assert forked.steps[-1].fresh_context and forked.answer == "Tulsa"
    assert llm.calls[-1][0]["content"] == tag_system_prompt(("answer",), True)


def test_the_packaged_model_reads_again_under_the_grammar(hotpot_bm25, packaged_llm):
    config = AgentConfig(prefetch_k=3, max_turns=3, max_new_tokens=40, final_read=6)
    traj = asyncio.run(Agent(packaged_llm, hotpot_bm25, config).run(QUESTION, episode_id="r"))
    read = traj.steps[-1]
    assert read.fresh_context and read.action == "answer" and read.constraint
    assert traj.answer == read.argument and 3 <= len(read.hits) <= 6
    assert "conversation_answer" in traj.metadata


def test_training_rollouts_refuse_the_final_read(hotpot_bm25):
    from sleuth.train.rollout import run_episodes

    def never(ids, config):  # the guard must stop the run before any generation
        raise AssertionError("generated")

    with pytest.raises(SleuthError, match="final_read is for inference"):
        asyncio.run(run_episodes(["q"], never, None, hotpot_bm25, AgentConfig(final_read=6)))


def test_the_viewer_labels_the_final_read_and_offers_no_edit_of_it(hotpot_bm25_path, tmp_path):
    from dataclasses import replace

    import httpx
    from conftest import LiveServer
    from view_support import SETTINGS, make_run, policy

    from sleuth.search import open_index
    from sleuth.view.app import create_app
    from sleuth.view.runs import load_runs
    from sleuth.view.state import ViewerState

    settings = replace(SETTINGS, methods=["agent"], budget=replace(SETTINGS.budget, final_read=4))
    run_dir = make_run(hotpot_bm25_path, tmp_path / "run-a", n=2, settings=settings)
    engine = open_index(hotpot_bm25_path)
    runs = load_runs([run_dir])
    state = ViewerState(runs, tmp_path / "fb.jsonl", engine=engine, llm=ScriptedLLM(policy))
    with LiveServer(create_app(state)) as server, httpx.Client(base_url=server.url) as http:
        page = http.get("/episode", params={"run": "run-a", "id": "evil-1::agent::s0"}).text
    sections = re.findall(r'<section class="step[^"]*".*?</section>', page, re.DOTALL)
    final = [s for s in sections if 'class="step final-read"' in s]
    assert len(final) == 1 and final[0] is sections[-1] and "final read:" in final[0]
    assert "replaced the conversation" in final[0] and "seen before" in final[0]
    assert "replay" not in final[0].replace("Edit an earlier step to replay", "")
    assert "drop &amp; replay" in sections[0] and "edit this step" in sections[0]
    assert "<script>alert" not in page


def test_a_run_folder_from_before_the_final_read_resumes_only_without_it(tmp_path):
    """Its config has no budget.final_read: it ran as final_read=0, so --final-read 0 resumes it
    and the new default (a different experiment) is refused, naming the setting."""
    import json
    from dataclasses import replace

    from sleuth.evaluate.runner import RunSettings, check_run

    settings = RunSettings(benchmark="hotpotqa-1100:test", methods=["agent"], model="scripted")
    old = settings.to_dict()
    del old["budget"]["final_read"]
    tmp_path.joinpath("config.json").write_text(json.dumps(old))
    check_run(tmp_path, settings, has_engine=True)  # final_read=0: same experiment
    with pytest.raises(SleuthError, match=r"budget.final_read: 0 in the folder, 4 now"):
        check_run(tmp_path, replace(settings, budget=eval_budget(final_read=4)), has_engine=True)


def test_a_replay_after_the_first_search_reads_the_documents_shown_before_the_edit(hotpot_bm25):
    """The fork rebuilds what the episode had been shown before the edited step, so its final
    read starts from the parent's first search, as the parent's did."""
    outputs = ["<search>Tinted Windows</search>", "<search>Hanson band</search>"]
    parent = run(
        ScriptedLLM([*outputs, "<answer>Chicago</answer>", "<answer>Tulsa</answer>"]),
        hotpot_bm25,
        prefetch_k=3,
        final_read=4,
    )
    llm = ScriptedLLM(["<answer>Chicago</answer>", "<answer>Tulsa</answer>"])
    forked = asyncio.run(replay(parent, Edit("query", 2, "Fountains of Wayne"), llm, hotpot_bm25))
    read = forked.steps[-1]
    assert read.fresh_context and forked.answer == "Tulsa"
    prefetch = [h.id for h in parent.steps[0].hits]
    assert [h.id for h in read.hits][:3] == prefetch == forked.metadata["final_read"][:3]
    prompt = llm.calls[-1][1]["content"]
    for doc_id in prefetch:  # the parent's documents, with their text, in the fork's read
        title, text = hotpot_bm25.get(doc_id).title, hotpot_bm25.get(doc_id).text
        assert f"(id: {doc_id}) {title}\n{' '.join(text.split())[:40]}" in prompt
