"""The agent episode a GRPO trainer rolls out, held whole in its config (an ``AgentConfig``,
never its fields copied one by one), and the flat record of such a config.

``config.json`` and ``results.json`` keep the flat shape they always had: the trainer's own
settings and, beside them, the episode settings its command exposes (``max_turns``,
``top_k``, ...). ``from_record`` reads that shape back into the nested config, so a run
folder written before the nesting reads the same.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, fields, replace
from typing import Any, TypeVar

from sleuth.agent.config import AgentConfig
from sleuth.errors import SleuthError

EPISODE = "episode"  # the field of a trainer's config that holds its AgentConfig
T = TypeVar("T")


def training_episode(**changes: Any) -> AgentConfig:
    """``train agent``'s episode with ``changes``: tags, search and answer, a smoke-sized
    budget, sampled at temperature 1, and no forced answer (it is not the policy's choice,
    so it earns no credit)."""
    settings: dict[str, Any] = {
        "action_format": "tags",
        "actions": ("search", "answer"),
        "max_turns": 3,
        "max_searches": 2,
        "min_searches": 1,
        "max_new_tokens": 48,
        "top_k": 3,
        "doc_chars": 300,
        "temperature": 1.0,
        "force_answer": False,
    }
    return AgentConfig(**{**settings, **changes})


def check_training_episode(episode: AgentConfig) -> None:
    """Rollouts parse the tags format, and a forced answer would be credited to the policy."""
    if episode.action_format != "tags" or episode.force_answer:
        raise SleuthError(
            "a training episode uses the tags format without a forced answer "
            "(build it with sleuth.train.episode.training_episode)"
        )


def to_record(config: Any, keys: Sequence[str]) -> dict[str, Any]:
    """The config as flat JSON: its own fields, then the episode's ``keys``."""
    record = asdict(config)
    episode = record.pop(EPISODE)
    record.update({key: episode[key] for key in keys})
    if "actions" in record:
        record["actions"] = list(record["actions"])
    return record


def from_record(
    cls: type[T], record: dict[str, Any], keys: Sequence[str], episode: AgentConfig
) -> T:
    """``cls`` from a flat record (``to_record``'s shape): ``keys`` go into ``episode``."""
    own = {f.name for f in fields(cls)} - {EPISODE}  # type: ignore[arg-type]
    unknown = sorted(set(record) - own - set(keys))
    if unknown:
        raise SleuthError(f"{cls.__name__}: unknown settings {unknown}")
    changes = {key: record[key] for key in keys if key in record}
    values = {key: value for key, value in record.items() if key in own}
    return cls(**values, **{EPISODE: replace(episode, **changes)})
