"""The searcher (s3's split, arXiv 2505.14146): RAG's documents first, follow-up searches, then
``select`` names the documents a frozen reader answers from, by episode-wide numbers, within the
read budget (``final_read``; places left are filled in reading order). Scripted searcher and
reader on the real bundled BM25 index."""

from __future__ import annotations

import asyncio
import json
import re

import pytest
from conftest import LiveServer
from test_cli_hardening import sleuth
from view_support import view_episode

from sleuth.agent import Agent, AgentConfig
from sleuth.agent.prompts import FORCE_SELECT, tag_system_prompt
from sleuth.errors import SleuthError
from sleuth.evaluate.benchmarks import load_benchmark
from sleuth.evaluate.methods import agent_config, eval_budget, method_settings, parse_methods
from sleuth.evaluate.runner import EvaluationRunner, RunSettings
from sleuth.llm.scripted import ScriptedLLM
from sleuth.llm.serve_llm import create_llm_app

QUESTION = (
    "The band who released the debut album Tinted Windows had their first performance in what city?"
)
ANSWER_PROMPT = tag_system_prompt(("answer",), True)
SEARCHER = AgentConfig(actions=("search", "select"), prefetch_k=3, final_read=3, top_k=3)
NUMBERED = re.compile(r"^\[(\d+)\] (?:already seen: )?\(id: ([^)]+)\)", re.MULTILINE)


def shown(messages: list[dict]) -> dict[int, str]:
    """Number -> document id, as every observation so far showed them to the model."""
    found: dict[int, str] = {}
    for message in messages:
        if message["role"] == "user":
            for number, doc_id in NUMBERED.findall(message["content"]):
                assert found.setdefault(int(number), doc_id) == doc_id  # one number, one doc
    return found


def search_then_select(seen: list[dict[int, str]]):
    """A searcher that searches once, then selects #4 (a follow-up's) and #2 (RAG's); it keeps
    the numbering each call showed in ``seen``."""

    def searcher(messages):
        seen.append(shown(messages))
        if sum(m["role"] == "assistant" for m in messages) == 0:
            return "<search>Taylor Hanson Fountains of Wayne</search>"
        return "<select>4, 2</select>"

    return searcher


def run(searcher, reader, config=SEARCHER, engine=None):
    agent = Agent(searcher, engine, config, reader=reader)
    return asyncio.run(agent.run(QUESTION, episode_id="e"))


def test_numbers_run_across_searches_and_the_reader_reads_the_selection_first(hotpot_bm25):
    seen: list[dict[int, str]] = []

    searcher = search_then_select(seen)

    reader = ScriptedLLM(["<answer>Tulsa</answer>"], name="reader")
    traj = run(ScriptedLLM(searcher, name="searcher"), reader, engine=hotpot_bm25)
    numbers = seen[-1]
    prefetch, follow_up = traj.steps[0], traj.steps[1]
    assert [numbers[n] for n in (1, 2, 3)] == [h.id for h in prefetch.hits]
    # The follow-up's new documents go on from 4; one seen before keeps its number.
    number_of = {doc_id: n for n, doc_id in numbers.items()}
    new = [h.id for h in follow_up.hits if h.new]
    again = [h.id for h in follow_up.hits if not h.new]
    assert new and again  # this query finds both kinds
    assert [number_of[doc_id] for doc_id in new] == [4 + i for i in range(len(new))]
    assert all(number_of[doc_id] <= 3 for doc_id in again)
    # The reader: RAG's answer prompt over #4 and #2 first, then the reading order fills.
    assert traj.metadata["selected"] == [numbers[4], numbers[2]]
    read_ids = traj.metadata["final_read"]
    assert read_ids[:2] == [numbers[4], numbers[2]] and len(read_ids) == 3
    assert read_ids[2] == numbers[1]  # RAG's best is the first of the reading order
    system, user = reader.calls[0]
    assert system == {"role": "system", "content": ANSWER_PROMPT}
    assert [doc_id for _, doc_id in NUMBERED.findall(user["content"])] == read_ids
    assert traj.answer == "Tulsa" and traj.stop_reason == "selected"
    assert [s.role for s in traj.steps] == ["", "searcher", "searcher", "reader"]


def test_searcher_selected_reads_the_selection_alone(hotpot_bm25):
    """``searcher_selected@K`` (s3's reader): the two documents selected are all the reader
    reads; no place is filled from RAG's documents. An empty selection still reads RAG's."""
    config = agent_config("searcher_selected@3", eval_budget(top_k=3))
    assert config.read_selection_only and config.final_read == 3 and config.prefetch_k == 3
    assert not agent_config("searcher@3", eval_budget(top_k=3)).read_selection_only
    assert parse_methods("searcher_selected@03,searcher@3") == [
        "searcher_selected@3",
        "searcher@3",
    ]

    seen: list[dict[int, str]] = []

    searcher = search_then_select(seen)

    reader = ScriptedLLM(["<answer>Tulsa</answer>"], name="reader")
    traj = run(ScriptedLLM(searcher, name="searcher"), reader, config=config, engine=hotpot_bm25)
    numbers = seen[-1]
    assert traj.metadata["final_read"] == traj.metadata["selected"] == [numbers[4], numbers[2]]
    _, user = reader.calls[0]
    assert [doc_id for _, doc_id in NUMBERED.findall(user["content"])] == [numbers[4], numbers[2]]
    nothing = ScriptedLLM(["<select>none of them</select>"], name="searcher")
    empty = run(nothing, ScriptedLLM(["<answer>x</answer>"]), config=config, engine=hotpot_bm25)
    assert empty.metadata["final_read"] == [h.id for h in empty.steps[0].hits]


def test_a_selection_of_nothing_reads_what_rag_reads_in_rags_prompt(hotpot_bm25):
    """No follow-up and no usable choice: the reader's call is exactly single-shot RAG's."""
    searcher = ScriptedLLM(["<select>none of them</select>"], name="searcher")
    reader = ScriptedLLM(["<answer>Tulsa</answer>"] * 2, name="reader")
    traj = run(searcher, reader, engine=hotpot_bm25)
    rag = Agent(reader, hotpot_bm25, AgentConfig(actions=("answer",), prefetch_k=3, top_k=3))
    rag_traj = asyncio.run(rag.run(QUESTION))
    assert traj.metadata["selected"] == []
    assert traj.metadata["final_read"] == [h.id for h in rag_traj.steps[0].hits]
    assert reader.calls[0] == reader.calls[1]  # same messages as RAG's answer call


def test_numbers_of_no_document_are_said_and_the_searcher_selects_again(hotpot_bm25):
    searcher = ScriptedLLM(["<select>9, 12</select>", "<select>3</select>"], name="s")
    reader = ScriptedLLM(["<answer>Tulsa</answer>"], name="r")
    traj = run(searcher, reader, engine=hotpot_bm25)
    first = traj.steps[1]
    assert first.action == "select" and "9, 12" in first.error
    assert "numbered 1 to 3" in first.observation
    assert traj.metadata["selected"] == [traj.steps[0].hits[2].id]
    assert "numbered 1 to 3" in searcher.calls[1][-1]["content"]


def test_the_last_search_is_followed_by_a_forced_selection(hotpot_bm25):
    queries = iter(["James Iha", "Taylor Hanson", "Adam Schlesinger"])

    def searcher(messages):
        if messages[-1]["content"] == FORCE_SELECT:
            return "<select>4</select>"
        return f"<search>{next(queries)}</search>"

    config = AgentConfig(
        actions=("search", "select"), prefetch_k=3, final_read=3, top_k=3, max_searches=2
    )
    reader = ScriptedLLM(["<answer>Tulsa</answer>"], name="r")
    traj = run(ScriptedLLM(searcher, name="s"), reader, config, hotpot_bm25)
    assert traj.stop_reason == "max_searches" and traj.metadata["forced_select"]
    assert traj.steps[-2].action == "select"
    assert traj.metadata["selected"][0] == traj.metadata["final_read"][0]
    assert traj.answer == "Tulsa"


def test_the_json_format_offers_the_select_tool(hotpot_bm25):
    call = json.dumps({"name": "select", "arguments": {"documents": "2"}})
    searcher = ScriptedLLM([f"<tool_call>{call}</tool_call>"], name="s")
    reader = ScriptedLLM(
        ['<tool_call>{"name": "answer", "arguments": {"answer": "Tulsa"}}</tool_call>'], name="r"
    )
    config = AgentConfig(
        actions=("search", "select"), prefetch_k=3, final_read=3, action_format="json"
    )
    traj = run(searcher, reader, config, hotpot_bm25)
    assert "select" in searcher.calls[0][0]["content"]
    assert traj.metadata["selected"] == [traj.steps[0].hits[1].id]
    assert traj.answer == "Tulsa"


def test_configurations_that_cannot_end_are_refused():
    with pytest.raises(SleuthError, match="'select' with final_read > 0"):
        AgentConfig(actions=("search", "select"))
    with pytest.raises(SleuthError, match="enable one of them"):
        AgentConfig(actions=("search", "select", "answer"), final_read=3)


def test_the_searcher_method_reads_rags_budget():
    budget = eval_budget(top_k=3)
    plain = method_settings("searcher", budget)
    assert (plain["prefetch_k"], plain["final_read"], plain["top_k"]) == (3, 3, 3)
    at5 = method_settings("searcher@5", budget)
    assert (at5["prefetch_k"], at5["final_read"], at5["top_k"]) == (5, 5, 3)
    assert at5["actions"] == ("search", "select")
    assert parse_methods("rag@05,searcher@05") == ["rag@5", "searcher@5"]
    with pytest.raises(SleuthError, match="searcher@K reads K documents"):
        parse_methods("searcher@0")


def test_an_evaluation_of_the_searcher_records_selection_and_roles(hotpot_bm25, tmp_path):
    def searcher(messages):
        if sum(m["role"] == "assistant" for m in messages) == 0:
            return "<search>first performance city</search>"
        return "<select>4, 1</select>"

    questions = load_benchmark("hotpotqa-1100:test", limit=3).questions
    budget = eval_budget(top_k=3)
    settings = RunSettings(
        benchmark="hotpotqa-1100:test",
        methods=["searcher"],
        budget=budget,
        model="searcher-model",
        search="bm25",
        reader="reader-model",
    )
    searcher_llm = ScriptedLLM(searcher, name="searcher-model")
    reader = ScriptedLLM(lambda messages: "<answer>Tulsa</answer>", name="reader-model")
    runner = EvaluationRunner(
        tmp_path, settings, questions, searcher_llm, hotpot_bm25, reader=reader
    )
    outcome = asyncio.run(runner.run())
    assert outcome.ran == 3 and outcome.failed == 0
    lines = (tmp_path / "trajectories.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(lines) == 3
    for line in lines:
        traj = json.loads(line)
        meta = traj["metadata"]
        assert meta["reader"] == "reader-model" and len(meta["final_read"]) == 3
        assert meta["final_read"][:2] == meta["selected"]
        assert meta["roles"]["searcher"]["calls"] == 2 and meta["roles"]["reader"]["calls"] == 1
        assert traj["answer"] == "Tulsa"
    assert agent_config("searcher", budget).final_read == 3
    # results.jsonl counts what the scored answer read and the calls of each role
    for line in (tmp_path / "results.jsonl").read_text(encoding="utf-8").splitlines():
        record = json.loads(line)
        assert record["documents_read"] == 3
        assert record["model_calls"] == 3 and record["reader_calls"] == 1
    # The viewer marks, in the reader's step, which documents the searcher selected.
    traj = json.loads(lines[0])
    page = view_episode(tmp_path, traj["episode_id"])
    final = page[page.index('class="step final-read"') :]
    final = final[: final.index("</table>")]
    rows = re.findall(r'data-hit="([^"]+)".*?class="(selected|filled)"', final, re.DOTALL)
    assert rows and [i for i, mark in rows if mark == "selected"] == traj["metadata"]["selected"]
    assert [i for i, _ in rows] == traj["metadata"]["final_read"]
    assert "The searcher selected 2 documents" in page


def test_ask_select_makes_the_served_model_a_searcher_for_the_served_reader(
    hotpot_bm25_path, tmp_path
):
    def searching(messages):
        if sum(m["role"] == "assistant" for m in messages) == 0:
            return "<search>Taylor Hanson Fountains of Wayne</search>"
        return "<select>4, 2</select>"

    # a model Sleuth trained as a searcher whose reader read the selection alone
    trained = tmp_path / "trained-searcher"
    trained.mkdir()
    inference = {"searcher": True, "read_selection_only": True, "prefetch_k": 4}
    (trained / "sleuth_training.json").write_text(json.dumps({"inference": inference}))
    searcher = ScriptedLLM(searching, name=str(trained))
    reader = ScriptedLLM(lambda messages: "<answer>Tulsa</answer>", name="reader-model")
    out, alone_out = tmp_path / "ask.jsonl", tmp_path / "alone.jsonl"
    served = ["--index", str(hotpot_bm25_path), "--reader", "reader-model"]
    with LiveServer(create_llm_app(searcher)) as model, LiveServer(create_llm_app(reader)) as read:
        served += ["--llm-url", f"{model.url}/v1", "--model", str(trained)]
        served += ["--reader-url", f"{read.url}/v1"]
        # flags over the record: a searcher whose read is filled up to --top-k
        asked = sleuth(
            "ask", QUESTION, "--select", "--fill-read", *served, "--trajectory-out", str(out),
            cache=tmp_path / "cache",
        )  # fmt: skip
        # no flags: the model runs as it was trained, a searcher read alone
        alone = sleuth(
            "ask", QUESTION, *served, "--trajectory-out", str(alone_out), cache=tmp_path / "cache"
        )
        refused = sleuth("ask", QUESTION, "--select", "--judge", cache=tmp_path / "cache")
        unselected = sleuth("ask", QUESTION, "--read-selection-only", cache=tmp_path / "cache")
    assert asked.returncode == 0, asked.stderr
    text = " ".join(asked.stdout.split())
    assert "select 4, 2" in text and "answer: Tulsa" in text
    saved = json.loads(out.read_text(encoding="utf-8"))
    assert [s["action"] for s in saved["steps"]] == ["search", "search", "select", "answer"]
    meta = saved["metadata"]
    assert len(meta["selected"]) == 2 and meta["final_read"][:2] == meta["selected"]
    # the read budget is the trained RAG depth K (not --top-k's 3), as in eval's searcher@K
    assert len(meta["final_read"]) == 4 and saved["config"]["prefetch_k"] == 4
    assert "You find documents for a reader" in searcher.calls[0][0]["content"]
    assert alone.returncode == 0, alone.stderr
    assert "a searcher (--select), its selection read alone" in " ".join(alone.stdout.split())
    # s3's read: the reader gets the two selected documents and nothing filled in after them
    alone_meta = json.loads(alone_out.read_text(encoding="utf-8"))["metadata"]
    assert alone_meta["final_read"] == alone_meta["selected"] and len(alone_meta["selected"]) == 2
    assert len(reader.calls) == 2  # one answer call in each of the two runs
    assert refused.returncode == 2 and "drop --judge and --ask" in refused.stderr
    assert unselected.returncode == 2 and "add --select" in unselected.stderr


def test_the_frozen_reader_answers_greedily_while_the_searcher_samples(hotpot_bm25):
    def searcher(messages):
        return "<select>1</select>"

    sampling = AgentConfig(**{**SEARCHER.to_dict(), "temperature": 1.0})
    scripted_searcher = ScriptedLLM(searcher, name="searcher")
    reader = ScriptedLLM(["<answer>Tulsa</answer>"], name="reader")
    traj = run(scripted_searcher, reader, config=sampling, engine=hotpot_bm25)
    assert traj.answer == "Tulsa"
    assert [c.temperature for c in scripted_searcher.configs] == [1.0]
    assert [c.temperature for c in reader.configs] == [0.0]
