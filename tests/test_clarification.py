"""Clarification: ambiguous questions made from the bundled HotpotQA dev set and checked against
the bundled corpus, the simulated user, and the asking metrics of an evaluation run."""

from __future__ import annotations

import asyncio
import json

import pytest

from sleuth.agent.users import (
    CAP_REPLY,
    LEAK_REPLY,
    UNKNOWN_REPLY,
    LLMUser,
    RulesUser,
    content_words,
    parse_user,
)
from sleuth.errors import SleuthError
from sleuth.evaluate.benchmarks import load_benchmark
from sleuth.synth.ambiguous import check_purpose, rule_candidates, synth_ambiguous


@pytest.fixture(scope="module")
def ambiguous_file(tmp_path_factory, hotpot_bm25):
    out = tmp_path_factory.mktemp("clarify") / "ambiguous.jsonl"
    stats = synth_ambiguous("hotpotqa-1100:dev", hotpot_bm25, out, limit=12, seed=3)
    return out, stats


def test_synth_ambiguous_removes_a_constraint_the_corpus_shows_was_needed(ambiguous_file):
    out, stats = ambiguous_file
    records = [json.loads(line) for line in out.read_text().splitlines()]
    ambiguous = [r for r in records if r["ambiguous"]]
    assert len(ambiguous) == 12 == stats.ambiguous
    originals = {q.id: q for q in load_benchmark("hotpotqa-1100:dev").questions}
    for record in ambiguous:
        original = originals[record["source_id"]]
        assert record["original_question"] == original.question
        assert record["question"] != original.question
        removed = set(content_words(record["removed"]))
        assert removed and removed <= set(content_words(original.question))
        assert not removed <= set(content_words(record["question"]))
        assert record["intent"] and record["intent_kind"]
        assert record["split"] == "dev" and record["purpose"] == "eval"
        check = record["check"]
        assert len(check["strong_titles"]) >= 2  # several titles match the remaining words
        assert check["rivals"] and not set(check["rivals"]) & set(check["gold_titles"])
        assert record["answers"] == list(original.answers)
    assert sum(stats.by_kind.values()) == 12 and stats.dropped  # some failed the check


def test_clear_questions_are_unchanged_and_the_file_is_a_benchmark(ambiguous_file, hotpot_bm25):
    out, stats = ambiguous_file
    records = [json.loads(line) for line in out.read_text().splitlines()]
    clear = [r for r in records if not r["ambiguous"]]
    assert len(clear) == stats.clear == 12
    originals = {q.id: q for q in load_benchmark("hotpotqa-1100:dev").questions}
    used = {r["source_id"] for r in records if r["ambiguous"]}
    for record in clear:
        assert record["question"] == record["original_question"]
        assert record["question"] == originals[record["id"]].question
        assert record["intent"] == "" and record["id"] not in used
    bench = load_benchmark(out)  # what `sleuth eval run --benchmark FILE` reads
    assert len(bench.questions) == 24
    first = bench.questions[0]
    assert first.metadata["ambiguous"] is True and first.metadata["intent"]
    assert first.metadata["original_question"] != first.question
    for aliases in first.gold_evidence:  # evidence recall works on the index checked against
        assert hotpot_bm25.get(aliases[0])


def test_test_questions_are_refused_for_training(tmp_path, hotpot_bm25):
    out = tmp_path / "train.jsonl"
    for name in ("hotpotqa-1100:test", "hotpotqa-1100"):
        with pytest.raises(SleuthError, match="never be trained on"):
            synth_ambiguous(name, hotpot_bm25, out, purpose="train")
    assert not out.exists()
    assert check_purpose("hotpotqa-1100:test", "eval") == "test"  # evaluation may use them
    assert check_purpose("hotpotqa-1100:dev", "train") == "dev"


def test_rules_remove_years_qualifiers_names_and_types():
    kinds = {
        c.rule: c
        for c in rule_candidates(
            "Who directed the 2009 American science fiction film starring the actor Michael Hall?"
        )
    }
    assert kinds["year"].removed == "2009" and "2009" not in kinds["year"].question
    assert kinds["qualifier"].removed == "American"
    assert kinds["qualifier"].intent == "American science fiction film"
    assert kinds["role"].question.endswith("starring Michael Hall?")
    assert kinds["name"].question.endswith("Hall?") and kinds["name"].removed == "Michael"
    assert not list(rule_candidates("In what year was it founded?"))  # nothing to remove


def ask(user, question: str) -> str:
    return asyncio.run(user(question))


def test_rules_user_answers_from_the_intent_only():
    user = RulesUser("in 1986", answers=("Sir Gordon Stadium",), kind_of_intent="year")
    assert ask(user, "Which year do you mean?") == "I mean in 1986."
    assert ask(user, "Who owns the stadium?") == UNKNOWN_REPLY  # unrelated to the intent
    assert ask(user, "Anything else?") == CAP_REPLY  # the cap: two answers per episode
    assert [e["outcome"] for e in user.exchanges] == ["answered", "unknown", "cap"]
    generic = RulesUser("Tom Hanks", kind_of_intent="name", max_answers=1)
    assert ask(generic, "Could you be more specific?") == "I mean Tom Hanks."
    nothing = RulesUser("", max_answers=5)  # a clear question: nothing was left out
    assert ask(nothing, "Which year do you mean?") == UNKNOWN_REPLY


def test_the_user_never_reveals_the_answer():
    user = RulesUser("the film Arrival by Denis Villeneuve", answers=("Denis Villeneuve",))
    reply = ask(user, "Which film do you mean?")
    assert "Villeneuve" not in reply and "Arrival" in reply
    assert user.exchanges[0]["outcome"] == "redacted"
    only = RulesUser("Jeremy Renner", answers=("Jeremy Renner",), kind_of_intent="name")
    assert ask(only, "Which name?") == LEAK_REPLY

    class Blabber:  # an LLM user whose model tries to give the answer away
        name = "blabber"

        async def complete(self, messages, config=None, tools=None):
            from sleuth.llm.base import Completion

            assert "Tulsa" not in messages[0]["content"]  # its prompt holds the intent only
            return Completion(text="It was in Tulsa, Oklahoma.")

    llm_user = LLMUser("the band Tinted Windows", answers=("Tulsa",), llm=Blabber())
    reply = ask(llm_user, "Which band?")
    assert "tulsa" not in reply.lower() and llm_user.exchanges[0]["outcome"] == "redacted"


def test_user_specs():
    assert parse_user("simulated:rules").kind == "rules"
    spec = parse_user("simulated:llm:model=qwen2.5-0.5b")
    assert (spec.kind, spec.model, spec.label) == ("llm", "qwen2.5-0.5b", spec.label)
    for bad in ("person", "simulated:oracle", "simulated:rules:model=x"):
        with pytest.raises(SleuthError, match="--user"):
            parse_user(bad)


# A hand-built clarification benchmark: two ambiguous questions (one asked, the asked reply
# used in the next search; one asked, the reply ignored) and two clear ones (one asked for
# nothing). Expected: ask recall 2/2, ask precision 2/3, ask rate on clear 1/2, intent
# recovery (1 + 0) / 2.
CASES = [
    {
        "id": "a1",
        "question": "Who founded the band?",
        "original_question": "Who founded the band Nirvana?",
        "answers": ["Kurt Cobain"],
        "ambiguous": True,
        "intent": "the band Nirvana",
        "intent_kind": "entity",
    },
    {
        "id": "a2",
        "question": "Where was the stadium built in?",
        "original_question": "Where was the stadium built in 1986?",
        "answers": ["Auckland"],
        "ambiguous": True,
        "intent": "in 1986",
        "intent_kind": "year",
    },
    {"id": "c1", "question": "What is the capital of France?", "answers": ["Paris"]},
    {"id": "c2", "question": "Who wrote Hamlet?", "answers": ["Shakespeare"]},
]


def scripted_policy(messages):
    """Ask once (except on c2), search with the user's words when a1 is asked, then answer."""
    question = next(str(m["content"]) for m in messages if m["role"] == "user")
    said = [str(m.get("content") or "") for m in messages[2:] if m["role"] == "user"]
    replies = [t.split("The user says: ", 1)[1] for t in said if "The user says: " in t]
    searched = any(
        "<search>" in str(m.get("content")) for m in messages if m["role"] == "assistant"
    )
    if "Hamlet" in question:
        return "<answer>Shakespeare</answer>" if searched else "<search>Hamlet</search>"
    if not replies:
        return "<ask>Which one do you mean?</ask>"
    if not searched:
        words = replies[-1].removeprefix("I mean ") if "band" in question else "stadium"
        return f"<search>{words}</search>"
    return "<answer>Kurt Cobain</answer>" if "band" in question else "<answer>Eden Park</answer>"


def test_an_eval_run_records_the_exchange_and_reports_asking(tmp_path, hotpot_bm25):
    from sleuth.agent.users import parse_user
    from sleuth.evaluate.clarify import user_factory
    from sleuth.evaluate.methods import eval_budget
    from sleuth.evaluate.report import build_report, write_report
    from sleuth.evaluate.runner import EvaluationRunner, RunSettings
    from sleuth.llm.scripted import ScriptedLLM

    bench_file = tmp_path / "clarify.jsonl"
    bench_file.write_text("".join(json.dumps({"ambiguous": False, **c}) + "\n" for c in CASES))
    questions = load_benchmark(bench_file).questions
    settings = RunSettings(
        benchmark=str(bench_file),
        methods=["agent_ask"],
        budget=eval_budget(constrain=False, final_read=0),
        concurrency=1,
        user="simulated:rules",
        user_max_answers=2,
    )
    run = tmp_path / "run"
    runner = EvaluationRunner(
        run,
        settings,
        questions,
        ScriptedLLM(scripted_policy),
        hotpot_bm25,
        user=user_factory(parse_user("simulated:rules")),
    )
    outcome = asyncio.run(runner.run())
    assert outcome.ran == 4 and outcome.failed == 0
    trajectories = {
        t["metadata"]["question_id"]: t
        for t in map(json.loads, (run / "trajectories.jsonl").read_text().splitlines())
    }
    a1 = trajectories["a1"]
    ask_step = next(s for s in a1["steps"] if s["action"] == "ask")
    assert ask_step["argument"] == "Which one do you mean?"
    assert ask_step["observation"] == "The user says: I mean the band Nirvana."
    assert a1["metadata"]["user"]["exchanges"][0]["outcome"] == "answered"
    assert trajectories["c1"]["metadata"]["user"]["exchanges"][0]["reply"] == UNKNOWN_REPLY

    write_report(run)
    report = build_report(run)
    c = report["methods"]["agent_ask"]["clarification"]
    assert (c["ambiguous_episodes"], c["clear_episodes"]) == (2, 2)
    assert c["ask_recall"] == 1.0 and c["ask_precision"] == pytest.approx(2 / 3, abs=1e-5)
    assert (c["ask_rate_ambiguous"], c["ask_rate_clear"]) == (1.0, 0.5)
    assert c["intent_recovery"] == 0.5  # a1 searched "the band Nirvana", a2 ignored "1986"
    assert c["f1_ambiguous"] == 0.5 and c["f1_clear"] == 0.5  # c1 says "Eden Park"
    assert (c["turns_ambiguous"], c["turns_clear"]) == (3.0, 2.5)
    assert c["user_replies"] == {"answered": 2, "unknown": 1}
    by_id = {r["question_id"]: r for r in report["results"]}
    assert (by_id["a1"]["intent_recovery"], by_id["a2"]["intent_recovery"]) == (1.0, 0.0)
    assert by_id["c2"]["asks"] == 0 and by_id["c2"]["intent_recovery"] is None
    html = (run / "report.html").read_text()
    assert "<h2>Clarification</h2>" in html and "I mean the band Nirvana." in html
    from view_support import view_episode

    page = view_episode(run, a1["episode_id"])  # the viewer shows the exchange
    assert (
        '<p class="reply" title="simulated:rules">The user says: I mean the band Nirvana.' in page
    )


def test_full_intent_asks_the_original_question(tmp_path):
    from sleuth.evaluate.clarify import with_full_intent

    bench_file = tmp_path / "clarify.jsonl"
    bench_file.write_text("".join(json.dumps(c) + "\n" for c in CASES[:2]))
    full = with_full_intent(load_benchmark(bench_file).questions)
    assert [q.question for q in full] == [c["original_question"] for c in CASES[:2]]
    assert full[0].metadata["ambiguous"] is True
    plain = tmp_path / "plain.jsonl"
    plain.write_text(json.dumps(CASES[2]) + "\n")
    with pytest.raises(SleuthError, match="original_question"):
        with_full_intent(load_benchmark(plain).questions)


def test_commands_refuse_what_cannot_work(tmp_path):
    from serve_process import sleuth

    out = tmp_path / "train.jsonl"
    done = sleuth(
        "synth", "ambiguous", "--benchmark", "hotpotqa-1100:test", "--purpose", "train", "-o", out
    )
    assert done.returncode != 0 and "never be trained on" in done.stderr and not out.exists()
    done = sleuth("ask", "Who founded the band?", "--user", "simulated:rules")
    assert done.returncode != 0 and "--user needs --intent" in done.stderr
    done = sleuth("ask", "Who founded the band?", "--user", "person", "--intent", "Nirvana")
    assert done.returncode != 0 and "unknown user" in done.stderr


def test_a_model_rewrite_is_checked_like_a_rule(tmp_path, hotpot_bm25):
    """--rewrite-model: the model's JSON is parsed defensively and passes the same check."""
    import re

    from sleuth.llm.scripted import ScriptedLLM
    from sleuth.synth.ambiguous import llm_rewriter, parse_rewrite

    def drop_year(messages):
        question = str(messages[-1]["content"]).split("Question: ", 1)[1]
        year = re.search(r"\b(?:in )?(1[89]\d\d|20\d\d)\b", question)
        if year is None:
            return "I cannot."
        shown = " ".join((question[: year.start()] + question[year.end() :]).split())
        return json.dumps({"question": shown, "removed": year.group(0), "kind": "year"})

    out = tmp_path / "llm.jsonl"
    rewriter = llm_rewriter(ScriptedLLM(drop_year))
    stats = synth_ambiguous("hotpotqa-1100:dev", hotpot_bm25, out, limit=3, rewriter=rewriter)
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert stats.ambiguous == 3 and stats.dropped["no rewrite"] > 0
    for record in records[:3]:
        assert record["rule"] == "llm" and record["intent_kind"] == "year"
        assert re.search(r"\d{4}", record["removed"]) and record["check"]["rivals"]
    original = "Who won in 1986?"
    assert parse_rewrite("no json here", original) is None
    assert parse_rewrite('{"question": "Who won?", "removed": "1999"}', original) is None
    assert parse_rewrite('{"question": "Who won in 1986?", "removed": "1986"}', original) is None
    kept = parse_rewrite('{"question": "Who won?", "removed": "in 1986", "kind": "x"}', original)
    assert kept is not None and kept.kind == "entity" and kept.question == "Who won?"


def test_sleuth_ask_prints_the_users_reply_under_the_ask_step():
    from rich.console import Console

    from sleuth.agent.show import StepPrinter
    from sleuth.agent.trajectory import Step

    console = Console(record=True, width=120)
    step = Step(
        index=0,
        prompt_delta=[],
        model_output="<ask>Which year?</ask>",
        action="ask",
        argument="Which year?",
        observation="The user says: I mean in [bold]1986[/bold].",  # markup stays text
    )
    StepPrinter(console, {})(step)
    shown = console.export_text()
    assert "ask Which year?" in shown
    assert "The user says: I mean in [bold]1986[/bold]." in shown
