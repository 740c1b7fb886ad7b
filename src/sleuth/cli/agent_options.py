"""Command-line options shared by every command that runs the agent (``ask``, ``eval run``):
one definition, so the flags mean the same everywhere."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from sleuth.agent.config import AgentConfig
    from sleuth.agent.strategy_config import StrategyConfig

Constrain = Annotated[
    bool,
    typer.Option(help="Decode each model turn under the action grammar: exactly one valid action"),
]
AnswerSpans = Annotated[
    bool,
    typer.Option(
        help="Under --constrain, the answer must be a short span (title, name, date, number, "
        "yes/no) of a document the agent was shown: it chooses what it read"
    ),
]
FinalRead = Annotated[
    int,
    typer.Option(
        help="Answer in one more, RAG-style call that reads up to N of the documents the "
        "episode was shown, instead of at the end of the conversation (agent methods; 0 = off)"
    ),
]
# For the quiz proposer (`synth questions`, `train selfplay`): on by default there.
ProposerAnswerSpans = Annotated[
    bool,
    typer.Option(
        help="The proposer chooses its answer among the short spans (names, dates, numbers, "
        "titles) of the documents it retrieved; --no-answer-spans lets it write one"
    ),
]
PromptExample = Annotated[
    bool, typer.Option(help="Put a worked example of the protocol in the system prompt")
]
# For commands that default to the settings a model was trained with
# (sleuth.agent.trained_settings).
PromptExampleOrTrained = Annotated[
    bool | None,
    typer.Option(
        "--prompt-example/--no-prompt-example",
        help="Put a worked example of the protocol in the system prompt (default: as the model "
        "was trained, else on)",
        show_default=False,
    ),
]
DocCharsOrTrained = Annotated[
    int | None,
    typer.Option(
        help="Characters of each hit shown (default: as the model was trained, else 600)",
        show_default=False,
    ),
]
MinSearches = Annotated[
    int,
    typer.Option(
        help="Searches the agent must make before it may answer (enforced by the grammar; "
        "0 lets it answer from memory at once)"
    ),
]
Backend = Annotated[
    str,
    typer.Option(
        help="Local model backend: auto | openvino (fp16) | openvino-int8 (faster, changes a "
        "small model's greedy output) | openvino-fp32 | transformers"
    ),
]
ConstrainVia = Annotated[
    str,
    typer.Option(
        help="With --llm-url: how the server takes the action grammar: auto | vllm | "
        "vllm-legacy | sglang | llamacpp | openai | none"
    ),
]

# The budget options of every command that runs episodes (`ask`, `eval run`): one declaration
# each, so `ask` shows one episode of exactly what `eval run` measures.
LlmUrl = Annotated[
    str | None, typer.Option(help="OpenAI-compatible base URL, e.g. http://localhost:8000/v1")
]
TopK = Annotated[int, typer.Option(help="Documents per search (and RAG's prefetch)")]
MaxTurns = Annotated[int, typer.Option(help="Model calls per episode")]
MaxSearches = Annotated[int, typer.Option(help="Searches per episode")]
MaxNewTokens = Annotated[int, typer.Option(help="Tokens generated per model call")]
ContextBudget = Annotated[
    int,
    typer.Option(
        help="Most tokens a turn's prompt may have (long episodes): older search results and "
        "pages become one-line stubs, their documents stay in a notes block (0 = keep every "
        "observation; docs/agent.md, 'Long horizons')"
    ),
]
UntaggedAnswer = Annotated[
    bool, typer.Option(help="Take prose with no action tag as the answer (for tiny models)")
]
# The reader role (`sleuth.agent.loop.Agent`, s3's split): a second, frozen model makes the
# answer-only calls (the final read; rag's and closed_book's answer); the model searches.
Reader = Annotated[
    str | None,
    typer.Option(
        help="Reader model that answers from the documents (the final read; rag's and "
        "closed_book's answer) while the model searches: a local model spec like --model "
        "(named, folder, .gguf, adapter, packaged), or the served name with --reader-url "
        "(default: the model answers itself)",
        show_default=False,
    ),
]
ReaderUrl = Annotated[
    str | None,
    typer.Option(
        help="OpenAI-compatible base URL serving the --reader model (e.g. http://localhost:8001/v1)"
    ),
]

# The simulated user that answers the agent's `ask` (`ask`, `eval run`; docs/clarification.md).
User = Annotated[
    str | None,
    typer.Option(
        "--user",
        help="Who answers the agent's clarification questions: simulated:rules or "
        "simulated:llm[:model=NAME] (default model: the agent's own); it answers from the "
        "question's hidden intent only, never with the answer",
        show_default=False,
    ),
]
UserMaxAnswers = Annotated[
    int, typer.Option(help="Questions the simulated user answers per episode")
]
# Strategies over the agent's steps (`sleuth.agent.strategies`, docs/planning.md): react is the
# one greedy chain; the others search a tree of sampled turns, scored by the model as judge.
Strategy = Annotated[
    str,
    typer.Option(
        help="How the agent's steps are chosen: react (one greedy chain) | best-of-n (whole "
        "episodes, the critic picks) | beam | mcts | astar (agent methods; docs/planning.md)"
    ),
]
Branches = Annotated[
    int,
    typer.Option(
        help="Tree strategies: candidate next turns per state, the first greedy, the others "
        "sampled (best-of-n: whole episodes)"
    ),
]
BeamWidth = Annotated[int, typer.Option(help="Beam: states kept per depth")]
Simulations = Annotated[int, typer.Option(help="MCTS: simulations (each expands one turn)")]
CallBudget = Annotated[
    int,
    typer.Option(
        help="Tree strategies: model calls per question, policy and critic together (0 = 4 x "
        "the most one ReAct episode makes)"
    ),
]

CriticOption = Annotated[
    str,
    typer.Option(
        "--critic",
        help="Tree strategies: what scores states: judge (the model itself, one call a state) "
        "or the folder of a critic trained on past runs (`sleuth train critic`; no model calls)",
    ),
]


def strategy_plan(
    config: AgentConfig,
    strategy: str,
    branches: int,
    beam_width: int,
    simulations: int,
    call_budget: int,
    critic: str = "judge",
) -> StrategyConfig:
    """The ``--strategy`` options as one plan; a call budget too small for ``config``, or a
    ``--critic`` folder that is not a trained critic, is refused here, before any model loads.
    A trained critic is recorded by its absolute path (a run folder's settings name it)."""
    from pathlib import Path

    from sleuth.agent.strategy_config import CRITIC_NAMES, StrategyConfig

    if critic not in CRITIC_NAMES:
        from sleuth.agent.trained_critic import MANIFEST, load_critic

        load_critic(critic)
        folder = Path(critic)
        critic = str((folder.parent if folder.name == MANIFEST else folder).resolve())
    plan = StrategyConfig(
        name=strategy,
        branches=branches,
        beam_width=beam_width,
        simulations=simulations,
        call_budget=call_budget,
        critic=critic,
    )
    plan.budget_for(config)
    return plan
