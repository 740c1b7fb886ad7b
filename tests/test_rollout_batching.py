"""GRPO rollouts decode a group together: real packaged model, real index, real agent loop."""

import asyncio

import pytest

from sleuth.agent import AgentConfig
from sleuth.train.batched_generate import BatchedGenerator
from sleuth.train.rollout import ModelGenerator, run_episodes


@pytest.fixture(scope="module")
def policy():
    from sleuth.train.policy_model import load_trainable

    model, tokenizer, _ = load_trainable(None)
    return model, tokenizer


def test_a_group_is_generated_in_batches_with_per_row_stops(policy, hotpot_bm25):
    model, tokenizer = policy
    config = AgentConfig(
        actions=("search", "answer"), max_turns=2, max_searches=1, max_new_tokens=32,
        doc_chars=150, force_answer=False,
    )  # fmt: skip
    batcher = BatchedGenerator(model, tokenizer, max_batch=4)
    questions = ["Who wrote Hamlet?"] * 3 + ["Which river flows through Paris?"]
    rollouts = asyncio.run(
        run_episodes(questions, batcher, tokenizer, hotpot_bm25, config, concurrency=4)
    )
    assert max(batcher.batch_sizes) >= 2  # rows decoded together, not one at a time
    for rollout in rollouts:
        steps = rollout.trajectory.steps
        assert steps and all(s.action != "invalid" for s in steps)
        assert all(s.constraint.startswith("regex") for s in steps)  # maybe "(retried...)"
        # The loss mask covers exactly the model's own tokens: each model span decodes to
        # that step's output (plus what a stop string cut), never padding or observations.
        spans, current = [], []
        for token, mask in zip(rollout.stream.completion_ids, rollout.stream.mask, strict=True):
            if mask:
                current.append(token)
            elif current:
                spans.append(current)
                current = []
        if current:
            spans.append(current)
        outputs = [s.model_output for s in steps if s.model_output]
        assert len(spans) == len(outputs)
        for span, output in zip(spans, outputs, strict=True):
            assert tokenizer.decode(span, skip_special_tokens=True).startswith(output)
    # Identical greedy prompts decode identically inside one batch.
    first = [r.trajectory.steps[0].model_output for r in rollouts[:3]]
    assert len(set(first)) == 1


def test_batched_rows_equal_single_generation_for_the_same_prompt(policy):
    from sleuth.llm.base import GenerationConfig

    model, tokenizer = policy
    ids = tokenizer("<|im_start|>user\nName a colour.<|im_end|>\n<|im_start|>assistant\n")[
        "input_ids"
    ]
    config = GenerationConfig(max_tokens=12, stop=["\n"])
    alone = ModelGenerator(model, tokenizer)(ids, config)
    batcher = BatchedGenerator(model, tokenizer, max_batch=2)
    longer = tokenizer("<|im_start|>user\nName a large animal that lives in Africa.<|im_end|>\n"
                       "<|im_start|>assistant\n")["input_ids"]  # fmt: skip
    import concurrent.futures

    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        padded, other = pool.map(lambda x: batcher(x, config), [ids, longer])
    assert max(batcher.batch_sizes) == 2  # the shorter prompt was left-padded
    assert tokenizer.decode(padded) == tokenizer.decode(alone)
    assert other and tokenizer.eos_token_id not in other[:-1]
