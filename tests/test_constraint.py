"""Constrained actions: the grammar itself, and each backend that enforces it.

The property test drives the real xgrammar matcher over SmolLM2's real 49k-token vocabulary
with arbitrary (random and adversarial) logits: whatever the model would prefer, the text that
comes out under the grammar is exactly one parseable action of the enabled set.
"""

import asyncio
import json

from grammar_support import decode_random_logits, parse_action
from hypothesis import given, settings
from hypothesis import strategies as st

from sleuth.agent import Agent, AgentConfig
from sleuth.agent.grammar import ActionGrammar
from sleuth.evaluate.benchmarks import load_benchmark
from sleuth.llm.base import GenerationConfig
from sleuth.llm.grammar_mask import new_matcher

ACTION_SETS = [
    ("search", "open", "answer"),
    ("search", "open", "judge", "answer"),
    ("answer",),
    ("search", "open", "judge", "ask", "answer"),
]


@given(
    seed=st.integers(0, 2**32 - 1),
    actions=st.sampled_from(ACTION_SETS),
    think=st.booleans(),
    action_format=st.sampled_from(["tags", "json"]),
    adversarial=st.booleans(),
    scale=st.floats(0.05, 50.0),
)
@settings(max_examples=60, deadline=None, derandomize=True)
def test_arbitrary_logits_under_the_grammar_yield_one_parseable_action(
    tokenizer, seed, actions, think, action_format, adversarial, scale
):
    constraint = ActionGrammar(actions, think=think).constraint(action_format)
    # Tokens that would break the format if allowed: end of turn, tag openers, other markup.
    markup = ("<", "</", "<answer>", "<search>", "\n\n", "}", "{")
    tempting = [tokenizer.eos_token_id] + [i for t in markup for i in tokenizer.encode(t)]
    text = decode_random_logits(
        tokenizer, constraint, seed, scale, tempting if adversarial else (), 1000.0
    )
    action = parse_action(text, actions, action_format)
    assert action.name in actions, (text, action)
    assert action.argument and not action.error


def test_the_grammar_rejects_prose_two_actions_and_disabled_actions(tokenizer):
    grammar = ActionGrammar(("search", "answer"))
    matcher_of = lambda: new_matcher(tokenizer, grammar.constraint("tags"), len(tokenizer))  # noqa: E731

    def accepts(text: str) -> bool:
        matcher = matcher_of()
        return matcher.accept_string(text) and matcher.is_completed()

    assert accepts("<search>Tinted Windows first concert</search>")
    assert accepts("<think>find the band</think>\n<answer>New York City</answer>")
    assert accepts("<answer>Zürich</answer>")  # non-ASCII words are fine
    assert not accepts("The band was formed in New York.")
    assert not accepts("<search>a</search><answer>b</answer>")
    assert not accepts("<open>doc1</open>")  # open is not enabled here
    assert not accepts("<answer>" + " ".join(["word"] * 11) + "</answer>")  # over the word cap


def test_the_gbnf_grammar_accepts_the_same_language_as_the_regex(tokenizer):
    """llama.cpp servers get GBNF; llguidance (an independent engine) checks it is the same."""
    import llguidance

    grammar = ActionGrammar(("search", "open", "judge", "answer"))
    constraint = grammar.constraint("tags")
    llg_tokenizer = llguidance.LLTokenizer(llguidance.TokenizerWrapper(_ByteTokenizer()))
    gbnf_grammar = llguidance.grammar_from("gbnf", constraint.gbnf)
    samples = [
        "<search>Tinted Windows</search>",
        "<think>two hops</think>\n<judge>yes: both found</judge>",
        "<judge>maybe: unsure</judge>",
        "<answer>a b c d e f g h i j</answer>",
        "<answer>a b c d e f g h i j k</answer>",
        "<open>Ashland/63rd station</open>",
        "<search></search>",
        "prose",
        "<answer>x</answer> trailing",
    ]
    for text in samples:
        xgr_matcher = new_matcher(tokenizer, constraint, len(tokenizer))
        by_regex = xgr_matcher.accept_string(text) and xgr_matcher.is_completed()
        llg_matcher = llguidance.LLMatcher(llg_tokenizer, gbnf_grammar)
        assert not llg_matcher.is_error(), llg_matcher.get_error()
        by_gbnf = llg_matcher.try_consume_tokens(list(text.encode())) == len(text.encode())
        by_gbnf = by_gbnf and llg_matcher.is_accepting()
        assert by_regex == by_gbnf, text


class _ByteTokenizer:
    """A 256-token byte-level tokenizer for llguidance (plus an end token)."""

    eos_token_id = 256
    bos_token_id = None
    special_token_ids = (256,)
    tokens = [bytes([i]) for i in range(256)] + [b"<eos>"]

    def __call__(self, text):
        return list(text.encode() if isinstance(text, str) else text)


def test_json_schema_constraint_admits_only_declared_tools_and_arguments(tokenizer):
    grammar = ActionGrammar(("search", "judge", "answer"))
    constraint = grammar.constraint("json")

    def accepts(value: dict) -> bool:
        matcher = new_matcher(tokenizer, constraint, len(tokenizer))
        return matcher.accept_string(json.dumps(value)) and matcher.is_completed()

    assert accepts({"name": "search", "arguments": {"query": "Tinted Windows"}})
    assert accepts({"name": "judge", "arguments": {"verdict": "no", "reason": "missing"}})
    assert not accepts({"name": "open", "arguments": {"doc_id": "x"}})
    assert not accepts({"name": "judge", "arguments": {"verdict": "maybe", "reason": "x"}})
    assert not accepts({"name": "search", "arguments": {"query": "x", "extra": "y"}})


def test_packaged_model_under_constraint_gives_valid_actions_on_100_questions(
    packaged_llm, hotpot_bm25
):
    """The default backend (OpenVINO, batched) and the default agent on 100 real questions."""
    questions = load_benchmark("hotpotqa-1100:test", limit=100).questions
    config = AgentConfig(max_turns=2, max_searches=1, top_k=2, max_new_tokens=64, doc_chars=200)
    agent = Agent(packaged_llm, hotpot_bm25, config)

    async def run_all():
        return await asyncio.gather(*(agent.run(q.question) for q in questions))

    trajectories = asyncio.run(run_all())
    steps = [s for t in trajectories for s in t.steps]
    assert len(trajectories) == 100 and len(steps) >= 100
    invalid = [(s.model_output, s.error) for s in steps if s.action == "invalid"]
    assert invalid == [], invalid[:5]
    assert all(s.constraint.startswith("regex") for s in steps)
    # The agent acts: the default policy offers the answer only after a search.
    assert all(len(t.searches) == 1 for t in trajectories)
    assert all(t.answer for t in trajectories)


def test_transformers_backend_enforces_the_grammar_too(hotpot_bm25):
    from sleuth.llm import load_llm

    llm = load_llm(backend="transformers")
    config = AgentConfig(max_turns=2, max_searches=1, top_k=2, max_new_tokens=48, doc_chars=200)
    trajectory = asyncio.run(
        Agent(llm, hotpot_bm25, config).run("Which city hosted the first Olympic Games?")
    )
    assert trajectory.steps and all(s.action != "invalid" for s in trajectory.steps)
    assert all(s.constraint.startswith("regex") for s in trajectory.steps)
    # Unconstrained, the same model writes prose: the constraint is what makes it act.
    plain = asyncio.run(
        llm.complete(
            [{"role": "user", "content": "Which city hosted the first Olympic Games?"}],
            GenerationConfig(max_tokens=24),
        )
    )
    assert plain.constraint == ""


def test_an_unsupporting_backend_is_recorded_not_silently_dropped(hotpot_bm25):
    from sleuth.llm.scripted import ScriptedLLM

    llm = ScriptedLLM(["<answer>Paris</answer>"])
    trajectory = asyncio.run(Agent(llm, hotpot_bm25, AgentConfig()).run("capital of France?"))
    assert trajectory.steps[0].constraint.startswith("not enforced: backend scripted")
