"""The agent loop and its records.

Example (``llm`` from ``sleuth.llm.load_llm``, ``engine`` from ``sleuth.search.open_index``):

    from sleuth.agent import Agent, AgentConfig
    agent = Agent(llm, engine, AgentConfig(actions=("search", "judge", "answer")))
    trajectory = asyncio.run(agent.run("Who founded ...?"))
"""

from sleuth.agent.config import ACTIONS, AgentConfig
from sleuth.agent.log import TrajectoryLog
from sleuth.agent.loop import Agent, Episode, EpisodeStop
from sleuth.agent.trajectory import HitRef, Step, Trajectory

__all__ = [
    "ACTIONS",
    "Agent",
    "AgentConfig",
    "Episode",
    "EpisodeStop",
    "HitRef",
    "Step",
    "Trajectory",
    "TrajectoryLog",
]
