"""The reader role (``Agent(reader=...)``, s3's split): a second model makes every call whose
prompt is an answer prompt (the final read; rag's and closed_book's answer), the searcher the
rest. Scripted searcher and reader with different names on the real bundled BM25 index; the
commands run in child processes against scripted models served on loopback."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path

import pytest
from conftest import LiveServer
from test_cli_hardening import assert_one_line_error, sleuth
from view_support import view_episode

from sleuth.agent import Agent, AgentConfig, Trajectory
from sleuth.agent.prompts import tag_system_prompt
from sleuth.errors import SleuthError
from sleuth.evaluate.benchmarks import load_benchmark
from sleuth.evaluate.methods import agent_config, eval_budget
from sleuth.evaluate.report import write_report
from sleuth.evaluate.runner import CONFIG_FILE, EvaluationRunner, RunSettings, check_run
from sleuth.llm.scripted import ScriptedLLM
from sleuth.llm.serve_llm import create_llm_app

QUESTION = (
    "The band who released the debut album Tinted Windows had their first performance in what city?"
)
ANSWER_PROMPT = tag_system_prompt(("answer",), True)


def searching(messages: list[dict]) -> str:
    """The searcher: searches first, then answers in its conversation."""
    if any(m["role"] == "assistant" for m in messages):
        return "<answer>Chicago</answer>"
    return "<search>Tinted Windows</search>"


def episode(searcher, reader, engine, config):
    agent = Agent(searcher, engine, config, reader=reader)
    return asyncio.run(agent.run(QUESTION, episode_id="e"))


def test_the_reader_makes_the_final_read_and_the_searcher_the_conversation(hotpot_bm25):
    searcher = ScriptedLLM(searching, name="searcher-model")
    reader = ScriptedLLM(["<answer>Tulsa</answer>"], name="reader-model")
    config = AgentConfig(prefetch_k=3, final_read=4)
    traj = episode(searcher, reader, hotpot_bm25, config)
    assert len(searcher.calls) == 2 and len(reader.calls) == 1
    assert all(call[0]["content"] != ANSWER_PROMPT for call in searcher.calls)
    assert reader.calls[0][0] == {"role": "system", "content": ANSWER_PROMPT}
    assert reader.calls[0][1]["content"].startswith("<information>\n[1] (id: ")
    # The prefetch is the loop's own search (no model, no role); then who made each call.
    assert [s.role for s in traj.steps] == ["", "searcher", "searcher", "reader"]
    assert traj.steps[-1].fresh_context
    assert traj.answer == "Tulsa" and traj.metadata["conversation_answer"] == "Chicago"
    assert traj.model == "searcher-model" and traj.metadata["reader"] == "reader-model"
    roles, read, turns = traj.metadata["roles"], traj.steps[-1], traj.steps[1:3]
    assert roles["reader"] == {
        "model": "reader-model",
        "calls": 1,
        "prompt_tokens": read.prompt_tokens,
        "completion_tokens": read.completion_tokens,
        "llm_seconds": read.llm_seconds,
    }
    assert roles["searcher"]["model"] == "searcher-model" and roles["searcher"]["calls"] == 2
    assert roles["searcher"]["prompt_tokens"] == sum(s.prompt_tokens for s in turns) > 0
    assert roles["searcher"]["completion_tokens"] == sum(s.completion_tokens for s in turns)
    assert roles["searcher"]["prompt_tokens"] + read.prompt_tokens == traj.prompt_tokens
    saved = json.loads(traj.to_json())
    assert [s.get("role") for s in saved["steps"]] == [None, "searcher", "searcher", "reader"]
    assert Trajectory.from_dict(saved) == traj


def test_a_forced_answer_is_the_searchers_and_the_reader_still_reads(hotpot_bm25):
    """The forced answer continues the searcher's conversation (its prompt is not an answer
    prompt), so the searcher makes it; the final read after it is the reader's."""
    searcher = ScriptedLLM(searching, name="s")
    reader = ScriptedLLM(["<answer>Tulsa</answer>"], name="r")
    traj = episode(searcher, reader, hotpot_bm25, AgentConfig(max_turns=1, final_read=4))
    assert traj.stop_reason == "max_turns" and traj.metadata["forced_answer"]
    assert [(s.action, s.role) for s in traj.steps] == [
        ("search", "searcher"),
        ("answer", "searcher"),
        ("answer", "reader"),
    ]
    assert len(searcher.calls) == 2 and len(reader.calls) == 1 and traj.answer == "Tulsa"


@pytest.mark.parametrize("method", ["rag", "closed_book"])
def test_rag_and_closed_book_answer_only_through_the_reader(hotpot_bm25, method):
    searcher = ScriptedLLM([], name="s")  # any call would fail the episode (out of outputs)
    reader = ScriptedLLM(["<answer>Tulsa</answer>"], name="r")
    config = agent_config(method, eval_budget(final_read=4))
    engine = hotpot_bm25 if method == "rag" else None
    traj = episode(searcher, reader, engine, config)
    assert searcher.calls == [] and len(reader.calls) == 1
    assert traj.answer == "Tulsa" and traj.stop_reason == "answered"
    system, user = reader.calls[0]
    assert system["content"] == tag_system_prompt(("answer",), config.prompt_example)
    assert user["content"].startswith("<information>") == (method == "rag")
    assert [s.role for s in traj.steps] == (["", "reader"] if method == "rag" else ["reader"])
    assert traj.metadata["roles"]["searcher"]["calls"] == 0
    assert traj.metadata["roles"]["reader"]["calls"] == 1


def test_without_a_reader_steps_carry_no_role_and_old_files_load(hotpot_bm25):
    llm = ScriptedLLM(
        ["<search>Tinted Windows</search>", "<answer>Chicago</answer>", "<answer>Tulsa</answer>"]
    )
    traj = episode(llm, None, hotpot_bm25, AgentConfig(final_read=4))
    saved = traj.to_dict()
    assert all("role" not in step for step in saved["steps"])  # the file reads as before
    assert "reader" not in traj.metadata and "roles" not in traj.metadata
    assert Trajectory.from_dict(saved) == traj and traj.answer == "Tulsa"


def run_settings(reader: str | None) -> RunSettings:
    return RunSettings(
        benchmark="hotpotqa-1100:test",
        methods=["rag", "agent"],
        budget=eval_budget(top_k=2, max_turns=4, max_searches=2, max_new_tokens=32, final_read=4),
        model="searcher-model",
        search="bm25",
        reader=reader,
    )


def test_the_runner_gives_every_episode_the_reader_and_a_resume_must_keep_it(hotpot_bm25, tmp_path):
    questions = load_benchmark("hotpotqa-1100:test", limit=2).questions
    searcher = ScriptedLLM(searching, name="searcher-model")
    reader = ScriptedLLM(lambda messages: "<answer>Tulsa</answer>", name="reader-model")
    settings = run_settings("reader-model")
    runner = EvaluationRunner(tmp_path, settings, questions, searcher, hotpot_bm25, reader=reader)
    outcome = asyncio.run(runner.run())
    assert outcome.ran == 4 and outcome.failed == 0
    # rag: 1 reader call each; agent: 2 searcher turns and 1 final read each.
    assert len(reader.calls) == 4 and len(searcher.calls) == 4
    answer_prompt = tag_system_prompt(("answer",), settings.budget.prompt_example)
    assert all(call[0]["content"] == answer_prompt for call in reader.calls)
    assert all(call[0]["content"] != answer_prompt for call in searcher.calls)
    lines = (tmp_path / "trajectories.jsonl").read_text(encoding="utf-8").splitlines()
    for traj in map(Trajectory.from_dict, map(json.loads, lines)):
        assert traj.answer == "Tulsa" and traj.metadata["reader"] == "reader-model"
        assert traj.steps[-1].role == "reader"
    config = json.loads((tmp_path / CONFIG_FILE).read_text(encoding="utf-8"))
    assert config["reader"] == "reader-model"
    _, html = write_report(tmp_path)  # the report's settings name the reader; its steps show it
    page = html.read_text(encoding="utf-8")
    assert "<th>reader</th><td>reader-model</td>" in page and "<i>reader:</i> <b>answer" in page
    viewed = view_episode(tmp_path, f"{questions[0].id}::agent::s0")
    sections = re.findall(r'<section class="step[^"]*".*?</section>', viewed, re.DOTALL)
    assert "model searcher-model · reader reader-model" in viewed
    assert ["reader:" in section for section in sections] == [False, False, True]
    # Another reader (or none) is another experiment: the folder refuses it.
    with pytest.raises(SleuthError, match='reader: "reader-model" in the folder, "other" now'):
        check_run(tmp_path, run_settings("other"), True)
    with pytest.raises(SleuthError, match='reader: "reader-model" in the folder, null now'):
        check_run(tmp_path, run_settings(None), True)
    # A folder written before readers existed has no "reader": it resumes without one.
    del config["reader"]
    (tmp_path / CONFIG_FILE).write_text(json.dumps(config), encoding="utf-8")
    check_run(tmp_path, run_settings(None), True)
    with pytest.raises(SleuthError, match='reader: null in the folder, "reader-model" now'):
        check_run(tmp_path, run_settings("reader-model"), True)


def test_eval_run_and_ask_take_a_reader_served_apart_from_the_model(
    hotpot_bm25_path: Path, tmp_path: Path
) -> None:
    searcher = ScriptedLLM(searching, name="searcher-model")
    reader = ScriptedLLM(lambda messages: "<answer>Tulsa</answer>", name="reader-model")
    with LiveServer(create_llm_app(searcher)) as model, LiveServer(create_llm_app(reader)) as read:

        def run(out: str, reader_name: str) -> object:
            return sleuth(
                "eval", "run", "--out", str(tmp_path / out), "--methods", "rag", "-n", "1",
                "--index", str(hotpot_bm25_path), "--llm-url", f"{model.url}/v1",
                "--model", "searcher-model", "--reader", reader_name,
                "--reader-url", f"{read.url}/v1", "--no-report", cache=tmp_path / "cache",
            )  # fmt: skip

        first = run("a", "reader-model")
        assert first.returncode == 0, first.stderr
        assert f"reader: reader-model@{read.url}/v1" in first.stdout
        config = json.loads((tmp_path / "a" / CONFIG_FILE).read_text(encoding="utf-8"))
        assert config["reader"] == f"reader-model@{read.url}/v1"
        assert searcher.calls == [] and len(reader.calls) == 1
        again = run("a", "reader-b")
        assert_one_line_error(again, "different settings", 'reader: "reader-model@', '"reader-b@')

        out = tmp_path / "ask.jsonl"
        asked = sleuth(
            "ask", QUESTION, "--index", str(hotpot_bm25_path), "--llm-url", f"{model.url}/v1",
            "--model", "searcher-model", "--reader", "reader-model",
            "--reader-url", f"{read.url}/v1", "--trajectory-out", str(out),
            cache=tmp_path / "cache",
        )  # fmt: skip
    assert asked.returncode == 0, asked.stderr
    text = " ".join(asked.stdout.split())
    assert "reader: reader-model@" in text and "reader wrote: <answer>Tulsa" in text
    assert "answer: Tulsa" in text
    saved = json.loads(out.read_text(encoding="utf-8"))
    assert [s.get("role") for s in saved["steps"]] == ["searcher", "searcher", "reader"]
    assert saved["metadata"]["roles"]["reader"]["model"] == "reader-model"
    assert len(searcher.calls) == 2 and len(reader.calls) == 2


def test_reader_url_needs_a_reader_name(tmp_path: Path) -> None:
    result = sleuth(
        "ask", "q", "--reader-url", "http://127.0.0.1:9/v1", "--llm-url", "http://127.0.0.1:9/v1",
        cache=tmp_path / "cache",
    )  # fmt: skip
    assert_one_line_error(result, "--reader-url needs --reader")
