"""The sampling policy's log-probabilities, and the loss that uses them for off-policy groups.

TRL's GRPO loss (1.16, any ``loss_type`` of the PPO family; ``dapo`` by default) is

    -min(r_t * A, clip(r_t, 1 - eps, 1 + eps_high) * A),  r_t = pi_theta(o_t) / pi_old(o_t)

per model token, where ``pi_old`` is ``old_per_token_logps`` and, when TRL leaves it out (one
generation per update, no vLLM: our synchronous case), the current policy itself, detached, so
that ``r_t = 1`` and the gradient is the plain policy gradient ``A * grad log pi_theta``. A group
sampled by weights S updates old is not from ``pi_theta``: with ``r_t = 1`` the update would be
a biased estimate. So asynchronous rollouts carry the log-probabilities of the snapshot that
sampled them (computed exactly as TRL computes ``pi_theta``'s: the logits over the same tokens
divided by the sampling temperature, a full log-softmax; rollouts sample with ``top_p = 1`` and
no top-k, so this is the sampling distribution), and ``BehaviourLogprobsMixin`` hands them to
the loss as ``pi_old``: the clipped importance ratio is then against the policy that sampled the
tokens (PPO's off-policy surrogate). A group of the current version gets ``r_t = 1`` up to float
rounding, as before.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def sequence_logprobs(
    model: Any, prompt_ids: Sequence[int], completion_ids: Sequence[int], temperature: float
) -> list[float]:
    """log pi(completion token | everything before it) under ``model``, per completion token,
    at ``temperature`` (TRL's ``_get_per_token_logps_and_entropies`` for one row)."""
    import torch

    if not completion_ids:
        return []
    ids = torch.tensor([list(prompt_ids) + list(completion_ids)])
    with torch.no_grad():
        logits = model(input_ids=ids, attention_mask=torch.ones_like(ids)).logits
    logits = logits[0, len(prompt_ids) - 1 : -1].float() / max(temperature, 1e-6)
    target = torch.tensor(list(completion_ids))
    picked = torch.log_softmax(logits, dim=-1).gather(1, target.unsqueeze(1)).squeeze(1)
    return picked.tolist()


class BehaviourLogprobsMixin:
    """Mix into the GRPO trainer (before TRL's class): when the rollout returned ``logprobs``
    (the sampling policy's), they become ``old_per_token_logps``, the ratio's denominator."""

    def _generate_and_score_completions(self, inputs: Any) -> dict[str, Any]:
        output = super()._generate_and_score_completions(inputs)  # type: ignore[misc]
        sampled = output.get("sampling_per_token_logps")
        if sampled is not None and output.get("old_per_token_logps") is None:
            width = output["completion_ids"].shape[1]
            output["old_per_token_logps"] = sampled[:, :width]
        return output
