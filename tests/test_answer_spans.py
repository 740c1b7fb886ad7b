"""Answers chosen from what was read (``AgentConfig.answer_spans``): the span extraction on
real HotpotQA paragraphs, the grammar under arbitrary logits, and the packaged model choosing."""

import asyncio
import json
import re

import pytest
from grammar_support import decode_random_logits, parse_action
from hypothesis import given, settings
from hypothesis import strategies as st

from sleuth.agent import Agent, AgentConfig
from sleuth.agent.grammar import ActionGrammar
from sleuth.agent.spans import MAX_SPAN_WORDS, MAX_SPANS, candidate_spans
from sleuth.evaluate.benchmarks import load_benchmark
from sleuth.llm.grammar_mask import new_matcher
from sleuth.metrics import exact_match


@pytest.fixture(scope="module")
def dev_questions():
    return load_benchmark("hotpotqa-1100:dev", limit=200).questions


def _gold_documents(engine, question):
    return [engine.get(doc_id) for doc_id, _ in question.gold_evidence]


def _shown(text: str) -> str:
    return " ".join(text.split())[:600]


def test_spans_are_short_verbatim_and_usually_hold_the_gold_answer(hotpot_bm25, dev_questions):
    """On the gold paragraphs of 200 dev questions (as the agent is shown them: 600 chars),
    every span is a verbatim piece of a title or text of at most 5 words, and most answers are
    among them (71% of the first 300 when measured; the rest are common nouns or phrases such
    as "museum" or "the heaviest album of all")."""
    covered = 0
    for question in dev_questions:
        documents = _gold_documents(hotpot_bm25, question)
        texts = [_shown(d.text) for d in documents]
        spans = candidate_spans(texts, [d.title for d in documents])
        assert spans[:2] == ["yes", "no"] and len(spans) <= MAX_SPANS
        assert len({s.lower() for s in spans}) == len(spans)
        haystack = " ".join(texts + [d.title for d in documents])
        for span in spans[2:]:
            assert len(span.split()) <= MAX_SPAN_WORDS, span
            assert span in haystack, span
        covered += any(exact_match(s, list(question.answers)) for s in spans)
    assert covered / len(dev_questions) >= 0.6


def test_names_dates_and_places_are_whole():
    text = (
        "Ed Wood is a 1994 American film directed by Tim Burton, starring Johnny Depp. It was "
        "released on 28 September 1994 by Touchstone Pictures. John F. Kennedy International "
        "Airport is in Queens. The University of the Arts in Philadelphia has 1,200 students. "
        "The team moved to Tumwater, Washington in Wood's time."
    )
    spans = candidate_spans([text], ["Ed Wood (film)"])
    for expected in (
        "Ed Wood",
        "Tim Burton",
        "Johnny Depp",
        "28 September 1994",
        "1994",
        "Touchstone Pictures",
        "John F. Kennedy International Airport",
        "University of the Arts",
        "1,200",
        "Tumwater, Washington",
        "Wood",
    ):
        assert expected in spans, (expected, spans)
    for junk in ("It", "The", "In", "Ed Wood (film", "1994 American", "Wood's"):
        assert junk not in spans


@given(
    seed=st.integers(0, 2**32 - 1),
    think=st.booleans(),
    action_format=st.sampled_from(["tags", "json"]),
    scale=st.floats(0.05, 50.0),
    question=st.integers(0, 199),
)
@settings(max_examples=12, deadline=None, derandomize=True)
def test_arbitrary_logits_under_span_choices_yield_one_of_the_spans(
    tokenizer, hotpot_bm25, dev_questions, seed, think, action_format, scale, question
):
    documents = _gold_documents(hotpot_bm25, dev_questions[question])
    spans = tuple(
        candidate_spans([_shown(d.text) for d in documents], [d.title for d in documents])
    )
    actions = ("search", "answer")
    constraint = ActionGrammar(actions, think=think, answer_choices=spans).constraint(action_format)
    answer_open = tokenizer.encode("<answer>") + tokenizer.encode('"answer"')
    # steer towards answering, where the choice applies
    text = decode_random_logits(tokenizer, constraint, seed, scale, answer_open, 30.0)
    action = parse_action(text, actions, action_format)
    assert action.name in actions and not action.error, text
    if action.name == "answer":
        assert action.argument in spans, (action.argument, text)


def test_gbnf_and_json_schema_carry_the_same_choices(tokenizer):
    spans = ("yes", "no", "Tim Burton", "U.S. Navy (1775)", "1,200")
    grammar = ActionGrammar(("answer",), think=False, answer_choices=spans)
    assert '"U.S. Navy (1775)"' in grammar.constraint("tags").gbnf
    schema = grammar.json_schema()
    assert schema["properties"]["arguments"]["properties"]["answer"]["enum"] == list(spans)
    regex = grammar.constraint("tags")
    for text, ok in [
        ("<answer>U.S. Navy (1775)</answer>", True),
        ("<answer>Tim Burton</answer>", True),
        ("<answer>Tim</answer>", False),
        ("<answer>U.S. Navy</answer>", False),
        ("<answer>Johnny Depp</answer>", False),
    ]:
        matcher = new_matcher(tokenizer, regex, len(tokenizer))
        assert (matcher.accept_string(text) and matcher.is_completed()) is ok, text
    as_json = json.dumps({"name": "answer", "arguments": {"answer": "Tim Burton"}})
    matcher = new_matcher(tokenizer, grammar.constraint("json"), len(tokenizer))
    assert matcher.accept_string(as_json) and matcher.is_completed()


def test_the_packaged_model_answers_with_a_span_it_was_shown(packaged_llm, hotpot_bm25):
    """RAG with answer spans on 4 real test questions: every answer is a span of the hits the
    model was shown, and the trajectory says how many spans it chose from."""
    questions = load_benchmark("hotpotqa-1100:test", limit=4).questions
    config = AgentConfig(
        actions=("answer",), prefetch_k=3, max_turns=2, doc_chars=300, answer_spans=True
    )
    agent = Agent(packaged_llm, hotpot_bm25, config)

    async def run_all():
        return await asyncio.gather(*(agent.run(q.question) for q in questions))

    for trajectory in asyncio.run(run_all()):
        answer_step = trajectory.steps[-1]
        assert answer_step.action == "answer", answer_step
        assert trajectory.answer in trajectory.steps[0].observation or trajectory.answer in (
            "yes",
            "no",
        ), trajectory.answer
        assert re.search(r"\(answer: one of \d+ spans read\)", answer_step.constraint)


def test_without_documents_the_answer_is_free(hotpot_bm25):
    from sleuth.llm.scripted import ScriptedLLM

    llm = ScriptedLLM(["<answer>Paris</answer>"])
    config = AgentConfig(actions=("answer",), answer_spans=True)
    trajectory = asyncio.run(Agent(llm, None, config).run("capital of France?"))
    assert trajectory.answer == "Paris"


def test_a_replayed_fork_offers_the_spans_the_original_had(hotpot_bm25, monkeypatch):
    """The viewer's fork rebuilds the episode's state before the edited step, the documents
    shown included, so an answer_spans episode forked at its answer offers the same spans."""
    from sleuth.agent.loop import Episode
    from sleuth.llm.scripted import ScriptedLLM
    from sleuth.view.replay import Edit, _Replay

    offered: list[tuple[str, ...]] = []
    choose = Episode.answer_choices

    def recording(self, actions):
        offered.append(choose(self, actions))
        return offered[-1]

    monkeypatch.setattr(Episode, "answer_choices", recording)
    llm = ScriptedLLM(["<search>Tinted Windows band</search>", "<open>doc9818</open>", "<answer>x"])
    config = AgentConfig(prefetch_k=2, top_k=2, max_turns=4, answer_spans=True)
    trajectory = asyncio.run(
        Agent(llm, hotpot_bm25, config).run("Where did Tinted Windows first perform?")
    )
    assert [s.action for s in trajectory.steps] == ["search", "search", "open", "answer"]
    at_answer = offered[-1]
    assert at_answer and "Tinted Windows" in at_answer
    replay = _Replay(trajectory, Edit("answer", 3, "x"), llm, hotpot_bm25, "fork")
    replay.rebuild()
    assert choose(replay.episode, ("answer",)) == at_answer
