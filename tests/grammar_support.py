"""Shared by the grammar property tests: decode under a constraint whatever the logits say."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest
import torch

from sleuth.agent.parsing import Action, parse_json, parse_tags
from sleuth.llm.base import Completion
from sleuth.llm.constraint import Constraint
from sleuth.llm.grammar_mask import new_matcher


def decode_random_logits(
    tokenizer,
    constraint: Constraint,
    seed: int,
    scale: float,
    boosted: Sequence[int] = (),
    boost: float = 0.0,
    limit: int = 3000,
) -> str:
    """The text the real xgrammar matcher lets through when each step's logits are random
    (``scale`` x standard normal) with ``boost`` added to the ``boosted`` token ids."""
    import xgrammar

    vocab = len(tokenizer)
    matcher = new_matcher(tokenizer, constraint, vocab)
    rng = np.random.default_rng(seed)
    bitmask = xgrammar.allocate_token_bitmask(1, vocab)
    generated: list[int] = []
    for _ in range(limit):
        logits = torch.from_numpy((rng.standard_normal(vocab) * scale).astype(np.float32))[None]
        if boosted:
            logits[0, list(boosted)] += boost
        matcher.fill_next_token_bitmask(bitmask)
        xgrammar.apply_token_bitmask_inplace(logits, bitmask)
        token = int(logits.argmax())
        assert matcher.accept_token(token), "the mask admitted a token the grammar rejects"
        if matcher.is_terminated():
            break
        generated.append(token)
    else:
        pytest.fail(f"the grammar did not end within {limit} tokens")
    return tokenizer.decode(generated)


def parse_action(text: str, actions: tuple[str, ...], action_format: str) -> Action:
    if action_format == "tags":
        return parse_tags(text, actions)
    return parse_json(Completion(text=text), actions)
