"""Long episodes (docs/agent.md, 'Long horizons'): the context budget that stubs old
observations and keeps their documents in notes, and the paged ``access`` action; scripted
policies against the real BM25 index of the bundled HotpotQA corpus."""

from __future__ import annotations

import asyncio
import itertools
import re

import pytest

from sleuth.agent import Agent, AgentConfig
from sleuth.agent.context import NOTES_HEAD, approx_tokens, fit
from sleuth.agent.executors import page_request, pages_of
from sleuth.agent.grammar import ActionGrammar
from sleuth.agent.knowledge import KnowledgeCache
from sleuth.agent.trajectory import Trajectory
from sleuth.corpus import load_documents
from sleuth.errors import SleuthError
from sleuth.evaluate.report import _trajectory_html, within_page_size
from sleuth.llm.base import Completion, ToolCall
from sleuth.llm.scripted import ScriptedLLM

QUESTION = (
    "The band who released the debut album Tinted Windows had their first performance in what city?"
)
LONG = ("search", "open", "access", "answer")
BIG_DOC = "doc1547"  # Bill Pounds, 3309 characters: the longest paragraphs of the corpus


@pytest.fixture(scope="module")
def titles() -> list[str]:
    """42 distinct queries: titles spread over the corpus."""
    docs = list(load_documents("hotpotqa-1100"))
    return [d.title for d in docs[: 42 * 10 : 10]]


def long_script(titles: list[str]) -> list[str]:
    """A 45-turn episode: 42 searches, one opened document, one accessed page, an answer."""
    outputs = [f"<search>{title} history</search>" for title in titles]
    outputs.insert(20, f"<access>{BIG_DOC} page 2</access>")
    outputs.insert(30, "<open>doc9819</open>")
    return [*outputs, "<answer>Tulsa</answer>"]


def run(llm, engine, **config) -> Trajectory:
    settings = {"actions": LONG, "max_turns": 50, "max_searches": 45, "min_searches": 0}
    agent = Agent(llm, engine, AgentConfig(**{**settings, **config}))
    return asyncio.run(agent.run(QUESTION, episode_id="long"))


def test_a_45_turn_episode_stays_under_a_small_context_budget(hotpot_bm25, titles):
    budget = 3500
    llm = ScriptedLLM(long_script(titles))
    traj = run(llm, hotpot_bm25, context_budget=budget)
    assert len(traj.steps) == 45 and traj.stop_reason == "answered" and traj.answer == "Tulsa"
    # Every prompt sent fits (the scripted model has no tokenizer: the 4-characters estimate,
    # which is also at least what the scripted model reports as its prompt tokens).
    sizes = [approx_tokens(call) for call in llm.calls]
    assert max(sizes) <= budget and len(llm.calls) == 45
    assert [s.context_tokens for s in traj.steps] == sizes
    assert all(0 < s.prompt_tokens <= budget for s in traj.steps)
    # Without the budget the same episode's last prompt is over four times as large.
    unbounded = ScriptedLLM(long_script(titles))
    run(unbounded, hotpot_bm25)
    assert approx_tokens(unbounded.calls[-1]) > 4 * budget
    # Old observations were dropped, oldest first, and the count grows with the episode.
    dropped = [s.dropped_observations for s in traj.steps]
    assert dropped[0] == 0 and dropped[-1] >= 40 and dropped == sorted(dropped)
    assert traj.metadata["context"] == {
        "budget": budget,
        "max_prompt_tokens": max(sizes),
        "dropped_observations": dropped[-1],
    }
    last = llm.calls[-1]
    first_ids = [hit.id for hit in traj.steps[0].hits]
    stub = f"[results of search 1 dropped: ids {', '.join(first_ids)}; facts kept in notes]"
    assert last[3] == {"role": "user", "content": stub}
    assert any(m["content"].startswith(f"[page 2 of {BIG_DOC} dropped") for m in last[1:])
    # The newest observation, the one the model answers, is always shown whole.
    for step, call in zip(traj.steps[:-1], llm.calls[1:], strict=True):
        assert step.observation in call[-1]["content"]
    # The notes name the dropped documents by id and title.
    system = last[0]["content"]
    assert NOTES_HEAD in system
    notes = system.split(NOTES_HEAD)[1]
    assert "(id: doc9819) Tinted Windows (band)" in notes
    assert len(re.findall(r"^- \(id: ", notes, re.M)) >= 20
    # The trajectory keeps every observation whole and reads back with the new fields.
    again = Trajectory.from_dict(traj.to_dict())
    assert [s.context_tokens for s in again.steps] == sizes
    assert all("<information>" in s.prompt_delta[-1]["content"] for s in traj.steps[1:21])


def test_notes_keep_snippets_when_there_is_room(hotpot_bm25, titles):
    llm = ScriptedLLM([*long_script(titles)[:12], "<answer>Tulsa</answer>"])
    traj = run(llm, hotpot_bm25, context_budget=3000)
    assert traj.answer == "Tulsa" and traj.steps[-1].dropped_observations > 0
    notes = llm.calls[-1][0]["content"].split(NOTES_HEAD)[1]
    first = traj.steps[0].hits[0].id
    title, text = load_title_and_text(first)
    line = next(line for line in notes.splitlines() if f"(id: {first})" in line)
    assert line.startswith(f"- (id: {first}) {title}: ")
    assert text.split()[0] in line and line.endswith(" ...")


def load_title_and_text(doc_id: str) -> tuple[str, str]:
    doc = next(d for d in load_documents("hotpotqa-1100") if d.id == doc_id)
    return doc.title, " ".join(doc.text.split())


def test_no_budget_sends_the_conversation_as_before(hotpot_bm25, titles):
    """Budget 0 (the default): every prompt is the whole conversation, exactly as the
    trajectory's deltas and the model's turns rebuild it, and no new field is written."""
    script = [*long_script(titles)[:10], "<answer>Tulsa</answer>"]
    plain, roomy = ScriptedLLM(script), ScriptedLLM(script)
    traj = run(plain, hotpot_bm25)
    run(roomy, hotpot_bm25, context_budget=10**6)  # never reached: nothing changes either
    assert plain.calls == roomy.calls
    conversation: list[dict] = [plain.calls[0][0]]  # the system prompt
    for step, call in zip(traj.steps, plain.calls, strict=True):
        conversation.extend(step.prompt_delta)
        assert call == conversation
        conversation.append({"role": "assistant", "content": call_output(step.model_output)})
    assert "context" not in traj.metadata
    record = traj.to_dict()
    assert not any({"context_tokens", "dropped_observations"} & set(s) for s in record["steps"])


def call_output(text: str) -> str:
    action = re.search(r"<(\w+)>", text)
    return text if f"</{action[1]}>" in text else f"{text}</{action[1]}>"  # type: ignore[index]


def test_the_model_tokenizer_counts_where_the_backend_has_one(hotpot_bm25, titles, tokenizer):
    """A backend with ``count_tokens`` (the local ones) is measured with its own tokenizer and
    chat template: here the packaged SmolLM2's."""

    class Tokenized(ScriptedLLM):
        def count_tokens(self, messages):
            text = tokenizer.apply_chat_template(
                messages, add_generation_prompt=True, tokenize=False
            )
            return len(tokenizer(text, add_special_tokens=False)["input_ids"])

    budget = 3000
    llm = Tokenized([*long_script(titles)[:25], "<answer>Tulsa</answer>"])
    traj = run(llm, hotpot_bm25, context_budget=budget)
    counts = [llm.count_tokens(call) for call in llm.calls]
    assert max(counts) <= budget and [s.context_tokens for s in traj.steps] == counts
    assert traj.steps[-1].dropped_observations > 0
    assert counts != [approx_tokens(call) for call in llm.calls]


def test_the_json_format_stubs_tool_messages(hotpot_bm25, titles):
    def call(n: int, name: str, **arguments) -> Completion:
        return Completion(text="", tool_calls=[ToolCall(f"c{n}", name, arguments)])

    script = [call(n, "search", query=f"{t} history") for n, t in enumerate(titles[:20])]
    script.append(call(99, "answer", answer="Tulsa"))
    llm = ScriptedLLM(script)
    traj = run(llm, hotpot_bm25, action_format="json", context_budget=2000)
    assert traj.answer == "Tulsa" and max(approx_tokens(c) for c in llm.calls) <= 2000
    last = llm.calls[-1]
    stubbed = [m for m in last if m["role"] == "tool" and m["content"].startswith("[results")]
    assert stubbed and stubbed[0]["tool_call_id"] == "c0"
    # Every tool message still answers the call before it: the conversation stays valid.
    for before, message in itertools.pairwise(last):
        if message["role"] == "tool":
            assert before["tool_calls"][0]["id"] == message["tool_call_id"]


def test_a_budget_too_small_for_what_cannot_be_dropped_is_reported(hotpot_bm25, titles):
    llm = ScriptedLLM([*long_script(titles)[:6], "<answer>Tulsa</answer>"])
    traj = run(llm, hotpot_bm25, context_budget=300)  # the system prompt alone is larger
    assert traj.answer == "Tulsa"
    assert traj.metadata["context"]["over_budget_turns"] == 7
    assert NOTES_HEAD not in llm.calls[-1][0]["content"]  # notes dropped first, to the last
    assert llm.calls[-1][3]["content"].startswith("[results of search 1 dropped")


def test_fit_leaves_a_prompt_under_the_budget_untouched():
    messages = [{"role": "system", "content": "s"}, {"role": "user", "content": "q"}]
    fitted = fit(messages, [], KnowledgeCache(), 100, approx_tokens)
    assert fitted.messages is messages and fitted.dropped == 0 and not fitted.over


def test_bad_budgets_are_refused():
    with pytest.raises(SleuthError, match="context_budget must be 0"):
        AgentConfig(context_budget=-1)
    with pytest.raises(SleuthError, match="page_chars"):
        AgentConfig(page_chars=0)


# -- paged reading ---------------------------------------------------------------------------
def test_access_reads_consecutive_pages_and_refuses_one_past_the_end(hotpot_bm25):
    doc = hotpot_bm25.get(BIG_DOC)
    pages = pages_of(doc.text, 1000)
    assert len(pages) == 4 and "".join(pages) == doc.text
    script = [f"<access>{BIG_DOC}</access>"]
    script += [f"<access>{BIG_DOC} page {n}</access>" for n in (2, 3, 4, 5)]
    script += ["<access>doc-missing page 1</access>", "<answer>Bill Pounds</answer>"]
    traj = run(ScriptedLLM(script), hotpot_bm25, page_chars=1000)
    steps = traj.steps
    assert [s.action for s in steps] == ["access"] * 6 + ["answer"]
    for n, step in enumerate(steps[:4], start=1):
        head, body, tail = step.observation.split("\n")
        assert head == f"(id: {BIG_DOC}) {doc.title}, page {n} of 4" and not step.error
        assert body == pages[n - 1].strip()
        assert tail == (
            f"[page {n} of 4; page {n + 1} reads on]"
            if n < 4
            else "[page 4 of 4: the end of the document]"
        )
    read = " ".join(s.observation.split("\n")[1] for s in steps[:4])
    assert read.split() == doc.text.split()  # the pages, in order, are the whole document
    assert steps[4].error == "page 5 of 4"
    assert steps[4].observation == (
        f"Document '{BIG_DOC}' has 4 pages; page 5 does not exist. Ask for a page from 1 to 4."
    )
    assert steps[5].observation == "No document has the id 'doc-missing'."


def test_access_in_the_json_format_and_the_grammar(hotpot_bm25):
    llm = ScriptedLLM(
        [
            Completion(
                text="", tool_calls=[ToolCall("c1", "access", {"document": f"{BIG_DOC} page 3"})]
            ),
            Completion(text="", tool_calls=[ToolCall("c2", "answer", {"answer": "Bill Pounds"})]),
        ]
    )
    traj = run(llm, hotpot_bm25, action_format="json", page_chars=1000)
    assert traj.steps[0].observation.startswith(f"(id: {BIG_DOC}) Bill Pounds, page 3 of 4")
    assert llm.calls[1][-1] == {
        "role": "tool",
        "tool_call_id": "c1",
        "content": traj.steps[0].observation,
    }
    grammar = ActionGrammar(LONG, think=True)
    pattern = re.compile(grammar.tag_regex())
    assert pattern.fullmatch(f"<think>read on</think>\n<access>{BIG_DOC} page 2</access>")
    assert pattern.fullmatch("<access>Tinted Windows (band) page 12</access>")
    assert "access" in grammar.tag_gbnf()
    names = [v["properties"]["name"]["const"] for v in grammar.json_schema()["anyOf"]]
    assert "access" in names


@pytest.mark.parametrize(
    ("argument", "expected"),
    [
        ("doc12 page 2", ("doc12", 2)),
        ("doc12", ("doc12", 1)),
        ("Tinted Windows (band), page 10", ("Tinted Windows (band)", 10)),
        ("doc12 PAGE3", ("doc12", 3)),
        ("  doc12  ", ("doc12", 1)),
    ],
)
def test_page_requests(argument, expected):
    assert page_request(argument) == expected


# -- the report of long episodes ---------------------------------------------------------------
def test_the_report_shows_prompt_sizes_and_stays_a_page_one_can_open(hotpot_bm25, titles):
    traj = run(ScriptedLLM(long_script(titles)), hotpot_bm25, context_budget=3500)
    data = traj.to_dict()
    view = _trajectory_html("long", data)
    last = traj.steps[-1]
    note = f"prompt {last.context_tokens} tokens, {last.dropped_observations} older observations"
    assert note in view and len(view) < 100_000
    many = {f"e{n}": data for n in range(10)}
    kept = within_page_size(many, list(many), limit=5 * len(view))
    assert list(kept) == ["e0", "e1", "e2", "e3", "e4"]  # the rest: in trajectories.jsonl


def test_a_searchers_notes_keep_the_numbers_it_selects_by(hotpot_bm25, titles):
    """Under ``select`` documents keep one number for the episode: the notes show it, and a
    document whose results were dropped can still be selected by it."""
    script = [f"<search>{title} history</search>" for title in titles[:14]]
    llm = ScriptedLLM([*script, "<select>2, 1</select>", "<answer>Tulsa</answer>"])
    traj = run(llm, hotpot_bm25, actions=("search", "select"), final_read=2, context_budget=2500)
    first = [hit.id for hit in traj.steps[0].hits]
    notes = llm.calls[-2][0]["content"].split(NOTES_HEAD)[1]  # the searcher's last turn
    assert f"[1] (id: {first[0]})" in notes and f"[2] (id: {first[1]})" in notes
    assert traj.steps[-2].dropped_observations > 0
    assert traj.metadata["selected"] == [first[1], first[0]] and traj.answer == "Tulsa"


def test_eval_runs_offer_access_in_the_agent_rag_access_method(tmp_path, hotpot_bm25):
    """``eval run --methods agent_rag_access``: agent_rag's prefetch, then a paged read of a
    prefetched document, then the answer; agent_rag itself is not offered access."""
    import asyncio
    import json
    import re

    from sleuth.evaluate.benchmarks import load_benchmark
    from sleuth.evaluate.methods import agent_config, eval_budget
    from sleuth.evaluate.runner import EvaluationRunner, RunSettings
    from sleuth.llm.scripted import ScriptedLLM

    budget = eval_budget(constrain=False, final_read=0)
    assert "access" in agent_config("agent_rag_access", budget).actions
    assert "access" not in agent_config("agent_rag", budget).actions

    def policy(messages):
        shown = "\n".join(str(m.get("content") or "") for m in messages if m["role"] != "system")
        if "page 1 of" not in shown:
            first = re.search(r"\(id: ([^)]+)\)", shown)
            assert first, "the prefetched documents name their ids"
            return f"<access>{first.group(1)} page 1</access>"
        return "<answer>unknown</answer>"

    questions = load_benchmark("hotpotqa-1100:test", limit=1).questions
    settings = RunSettings(
        benchmark="hotpotqa-1100:test", methods=["agent_rag_access"], budget=budget,
        concurrency=1,
    )  # fmt: skip
    run = tmp_path / "run"
    runner = EvaluationRunner(run, settings, questions, ScriptedLLM(policy), hotpot_bm25)
    outcome = asyncio.run(runner.run())
    assert outcome.ran == 1 and outcome.failed == 0
    trajectory = json.loads((run / "trajectories.jsonl").read_text().splitlines()[0])
    access = next(s for s in trajectory["steps"] if s["action"] == "access")
    assert re.search(r", page 1 of \d+", access["observation"])
    assert trajectory["answer"] == "unknown"
