"""Simulated search engines for training without a real engine (ZeroSearch-style).

``simulated:corpus`` mixes a real index's hits with hard negatives and random passages at a
noise ratio p; ``simulated:llm`` has a language model write useful or noisy documents. Both are
``SearchEngine`` implementations, so ``ask``, ``eval run``, ``train agent`` and ``serve`` take
them through one option, ``--simulate SPEC`` (see ``spec.parse_spec`` and docs/simulation.md).
Every hit they return carries its provenance (engine, noise, label), which trajectories record.
"""

from sleuth.search.simulated.context import EpisodeGold, episode_gold
from sleuth.search.simulated.corpus import CorpusSimulator
from sleuth.search.simulated.schedule import NoiseSchedule, parse_schedule
from sleuth.search.simulated.spec import SimulationSpec, parse_spec, simulated_engine

__all__ = [
    "CorpusSimulator",
    "EpisodeGold",
    "NoiseSchedule",
    "SimulationSpec",
    "episode_gold",
    "parse_schedule",
    "parse_spec",
    "simulated_engine",
]
