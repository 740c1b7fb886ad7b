"""A second copy of the policy for asynchronous rollouts, and the version clock it is read by.

The trainer updates its model in ``optimizer.step()``; a rollout thread generating with that
same model would see weights change in the middle of an episode. So rollouts generate with a
snapshot: a deep copy whose trainable weights are copied from the trainer's model between
rollout batches, under a lock the trainer holds around each optimizer step (the copy never
reads half-updated weights). The snapshot's version is the number of optimizer steps the
weights it holds had taken (the trainer's ``global_step`` when they were copied).
"""

from __future__ import annotations

import copy
import threading
from typing import Any

from transformers import TrainerCallback


class VersionClock(TrainerCallback):
    """Counts optimizer steps and holds ``lock`` while one runs (a Trainer callback).

    ``version`` is the number of updates the trainer's weights have taken; ``wait_for``
    blocks a rollout thread until they have taken at least that many.
    """

    def __init__(self, start: int = 0) -> None:
        self.lock = threading.Lock()  # held by the trainer during optimizer.step()
        self._changed = threading.Condition()
        self.version = start

    def on_pre_optimizer_step(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.lock.acquire()

    def on_optimizer_step(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        with self._changed:
            self.version += 1
            self._changed.notify_all()
        self.lock.release()

    def reset(self, version: int) -> None:
        """Start counting from ``version`` (a resumed run's ``global_step``)."""
        with self._changed:
            self.version = version
            self._changed.notify_all()

    def wait_for(self, version: int, timeout: float) -> bool:
        """True once the weights have taken ``version`` updates; False after ``timeout`` s."""
        with self._changed:
            return self._changed.wait_for(lambda: self.version >= version, timeout)

    def wake(self) -> None:
        """Wake waiters (to see a stop request)."""
        with self._changed:
            self._changed.notify_all()


class PolicySnapshot:
    """A frozen copy of ``source`` that ``refresh`` brings up to the trainer's weights."""

    def __init__(self, source: Any, clock: VersionClock) -> None:
        import torch

        self.source, self.clock = source, clock
        with clock.lock, torch.no_grad():
            self.model = copy.deepcopy(source)
            self.version = clock.version
        self.model.eval()
        for param in self.model.parameters():
            param.requires_grad_(False)
        # Only weights the optimizer changes are ever copied again (a LoRA run: the adapter).
        pairs = zip(source.named_parameters(), self.model.named_parameters(), strict=True)
        self._pairs = [(src, dst) for (_, src), (_, dst) in pairs if src.requires_grad]

    def refresh(self) -> int:
        """Copy the trainer's current weights (if newer) and return the version now held."""
        import torch

        if self.clock.version == self.version:
            return self.version
        with self.clock.lock, torch.no_grad():
            for src, dst in self._pairs:
                dst.copy_(src.detach())
            self.version = self.clock.version
        return self.version
