"""``sleuth train expand | agent | searcher | selfplay``: GRPO on the search engine's feedback
(TRL, CPU)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from sleuth.cli import agent_options as options
from sleuth.cli import search_options, train_options
from sleuth.progress import log_line

train_app = typer.Typer(
    help="Train with GRPO on the search engine's feedback. Runs resume from their last "
    "complete checkpoint when re-run with the same --out.",
    no_args_is_help=True,
)


def register(app: typer.Typer) -> None:
    app.add_typer(train_app, name="train")


def _terms(value: str) -> tuple[str, ...]:
    return tuple(t.strip() for t in value.split(",") if t.strip())


@train_app.command("expand")
def expand_command(
    out: train_options.RunFolder,
    model: train_options.PolicyModel = None,
    benchmark: Annotated[str, typer.Option(help="Benchmark with gold evidence")] = "hotpotqa-1100",
    train_split: Annotated[str, typer.Option(help="Split to train on")] = "train",
    eval_split: Annotated[str, typer.Option(help="Held-out split to report on")] = "test",
    index: train_options.BenchmarkIndex = None,
    train_limit: Annotated[
        int, typer.Option(help="Use the first N training questions (0 = all)")
    ] = 0,
    eval_limit: Annotated[int, typer.Option(help="Report on the first N held-out (0 = all)")] = 0,
    steps: train_options.Steps = 60,
    questions_per_step: train_options.QuestionsPerStep = 2,
    num_generations: Annotated[int, typer.Option(help="Rewrites per question (GRPO group)")] = 8,
    learning_rate: train_options.LearningRate = 5e-6,
    beta: train_options.Beta = 0.0,
    temperature: train_options.Temperature = 1.0,
    max_completion_length: Annotated[int, typer.Option(help="Tokens per rewrite")] = 48,
    k: Annotated[int, typer.Option("-k", help="Recall cut-off the reward uses")] = 10,
    max_queries: Annotated[int, typer.Option(help="Platform rule: queries per rewrite")] = 3,
    max_chars: Annotated[int, typer.Option(help="Platform rule: characters per query")] = 200,
    banned: Annotated[str, typer.Option(help="Platform rule: comma-separated banned terms")] = "",
    required: Annotated[
        str, typer.Option(help="Platform rule: comma-separated required terms")
    ] = "",
    penalty: Annotated[float, typer.Option(help="Reward subtracted per rule violation")] = 0.25,
    save_steps: train_options.SaveSteps = 10,
    seed: train_options.Seed = 0,
    vllm_mode: Annotated[
        str, typer.Option(help="GPU: generate with TRL's vLLM ('server' or 'colocate')")
    ] = "",
    vllm_server_url: Annotated[
        str, typer.Option(help="GPU: URL of `trl vllm-serve` when --vllm-mode server")
    ] = "",
) -> None:
    """Teach a model to rewrite questions into search queries that the engine answers well.

    The reward is the engine's own Recall@k of the gold paragraphs for the rewrite's queries
    (fused by reciprocal rank), minus a penalty per platform-rule violation (LESER). Reports
    Recall@k of the raw question, the untrained and the trained rewrites on the held-out split,
    and saves the learning curve as curve.png.
    """
    given = dict(locals())  # the options, passed on whole
    from sleuth.rewards.query_rewrite import PlatformRules
    from sleuth.train.expand import ExpandConfig, train_expand

    rules = train_options.from_options(
        PlatformRules, given, banned_terms=_terms(banned), required_terms=_terms(required)
    )
    config = train_options.from_options(
        ExpandConfig, given, out=str(out), index=str(index) if index else None, rules=rules
    )
    results = train_expand(config, log=log_line)
    recall = results[f"recall@{k}"]
    typer.echo(f"\nRecall@{k} on {results['eval_questions']} held-out questions:")
    for name, value in recall.items():
        typer.echo(f"  {name:<20} {value:.3f}")
    typer.echo(json.dumps(results["training"]))
    typer.echo(f"results: {out / 'results.json'}   learning curve: {out / 'curve.png'}")


@train_app.command("agent")
def agent_command(
    out: train_options.RunFolder,
    model: train_options.PolicyModel = None,
    benchmark: Annotated[str, typer.Option(help="Questions to train on")] = "hotpotqa-1100:train",
    index: train_options.BenchmarkIndex = None,
    limit: train_options.QuestionLimit = 0,
    reward: Annotated[
        str,
        typer.Option(help="Reward weights as JSON over sleuth.rewards names"),
    ] = json.dumps({"f1": 1.0, "format": 0.2, "search_recall": 0.2}),
    steps: train_options.Steps = 3,
    questions_per_step: train_options.QuestionsPerStep = 1,
    num_generations: train_options.NumGenerations = 4,
    learning_rate: train_options.LearningRate = 1e-6,
    beta: train_options.Beta = 0.0,
    temperature: train_options.Temperature = 1.0,
    max_turns: Annotated[int, typer.Option(help="Model turns per episode")] = 3,
    max_searches: Annotated[int, typer.Option(help="Searches per episode")] = 2,
    min_searches: options.MinSearches = 1,
    max_new_tokens: train_options.MaxNewTokens = 48,
    top_k: train_options.TopK = 3,
    doc_chars: train_options.DocChars = 300,
    save_steps: train_options.SaveSteps = 1,
    seed: train_options.Seed = 0,
    simulate: search_options.Simulate = None,
    noise_schedule: train_options.NoiseSchedule = None,
    actions: Annotated[
        str,
        typer.Option(
            help="Comma-separated actions the episodes offer (search, open, judge, answer); "
            "a primed model trains with the set it was primed on: search,open,answer"
        ),
    ] = "search,answer",
    prompt_example: options.PromptExample = True,
    user: options.User = None,
    user_max_answers: options.UserMaxAnswers = 2,
    ask_cost: train_options.AskCost = 0.0,
    extra_ask_cost: train_options.ExtraAskCost = 0.0,
    rollouts: Annotated[
        str,
        typer.Option(
            help="chain: G independent episodes per question; tree: a forest of G episodes "
            "that share turns (Tree-GRPO: shared turns generated once, turn-level advantages)"
        ),
    ] = "chain",
    tree_roots: Annotated[
        int, typer.Option(help="With --rollouts tree: root chains per question (M)")
    ] = 2,
    tree_branch_every: Annotated[
        int,
        typer.Option(help="With --rollouts tree: branch from the state after every N-th turn"),
    ] = 1,
    async_rollouts: train_options.AsyncRollouts = False,
    max_staleness: train_options.MaxStaleness = 1,
    max_minutes: train_options.MaxMinutes = 0.0,
) -> None:
    """GRPO on multi-turn search episodes run through the agent loop.

    Retrieved <information> and other environment tokens are masked out of the loss; the
    reward mixes sleuth.rewards (see docs/rewards.md) computed from each trajectory. The CPU
    default is a smoke-sized run; docs/training.md gives multi-GPU settings. With --user
    simulated:rules and a `sleuth synth ambiguous` --benchmark FILE the episodes offer <ask>
    and --ask-cost prices asking on clear questions (docs/clarification.md).
    """
    given = dict(locals())  # the options, passed on whole
    from sleuth.train.agent_grpo import AgentTrainConfig, train_agent

    config = AgentTrainConfig.from_dict(
        {
            **given,
            "out": str(out),
            "index": str(index) if index else None,
            "reward": json.loads(reward) if reward.strip().startswith("{") else reward,
            "actions": _terms(actions),
        }
    )
    results = train_agent(config, log=log_line)
    typer.echo(json.dumps({k: v for k, v in results.items() if k != "config"}))
    typer.echo(f"results: {out / 'results.json'}   log: {out / 'train_log.jsonl'}")


@train_app.command("searcher")
def searcher_command(
    out: train_options.RunFolder,
    model: train_options.PolicyModel = None,
    reader: Annotated[
        str | None,
        typer.Option(
            help="The frozen reader that answers from the searcher's documents: a local model "
            "spec (named, folder, .gguf, packaged) or the served name with --reader-url "
            "(default: the packaged SmolLM2)",
            show_default=False,
        ),
    ] = None,
    reader_url: options.ReaderUrl = None,
    benchmark: Annotated[str, typer.Option(help="Questions to train on")] = "hotpotqa-1100:train",
    index: train_options.BenchmarkIndex = None,
    limit: train_options.QuestionLimit = 0,
    read_budget: Annotated[
        int, typer.Option(help="K: RAG's top K first; the reader reads K documents (s3: 8)")
    ] = 3,
    accuracy: Annotated[
        str, typer.Option(help="Acc in the reward Acc(searcher) - Acc(RAG): f1 | em | cover_em")
    ] = "f1",
    add_accuracy: Annotated[
        bool, typer.Option(help="Add Acc(searcher) to the gain, as s3's released code does")
    ] = False,
    recall_weight: Annotated[
        float, typer.Option(help="Add this weight x evidence recall of the documents read")
    ] = 0.0,
    keep_solved: Annotated[
        bool, typer.Option(help="Keep questions RAG already answers (s3 leaves them out)")
    ] = False,
    keep_yes_no: Annotated[
        bool, typer.Option(help="Keep yes/no questions (s3 leaves them out)")
    ] = False,
    read_selection_only: Annotated[
        bool,
        typer.Option(
            help="The reader reads the selection alone, as s3's does (eval's "
            "searcher_selected@K); default: places the selection leaves are filled in reading "
            "order (searcher@K)"
        ),
    ] = False,
    follow: Annotated[
        bool,
        typer.Option(
            help="The searcher may also follow links (<follow>N</follow>: the documents titled "
            "by the names in document N, 0 the question's; eval's searcher_links@K), as a "
            "searcher primed by `synth trajectories --teacher follow` does"
        ),
    ] = False,
    steps: train_options.Steps = 3,
    questions_per_step: train_options.QuestionsPerStep = 1,
    num_generations: train_options.NumGenerations = 4,
    learning_rate: train_options.LearningRate = 1e-6,
    beta: train_options.Beta = 0.0,
    temperature: train_options.Temperature = 1.0,
    max_turns: Annotated[int, typer.Option(help="Searcher turns per episode")] = 3,
    max_searches: Annotated[
        int, typer.Option(help="Searches per episode, turn 0's RAG search included")
    ] = 3,
    max_new_tokens: train_options.MaxNewTokens = 48,
    top_k: Annotated[int, typer.Option(help="Hits shown per follow-up search")] = 3,
    doc_chars: train_options.DocChars = 300,
    concurrency: Annotated[int, typer.Option(help="Episodes (and RAG answers) in flight")] = 8,
    save_steps: train_options.SaveSteps = 1,
    seed: train_options.Seed = 0,
    prompt_example: options.PromptExample = True,
    lora: Annotated[
        bool,
        typer.Option(
            "--lora/--full",
            help="Train a LoRA adapter (small, loads as --model DIR) or every weight (s3)",
        ),
    ] = False,
    lora_r: train_options.LoraRank = 16,
    lora_top_layers: train_options.LoraTopLayers = 0,
    max_minutes: train_options.MaxMinutes = 0.0,
    user: options.User = None,
    user_max_answers: options.UserMaxAnswers = 2,
    ask_cost: train_options.AskCost = 0.0,
    extra_ask_cost: train_options.ExtraAskCost = 0.0,
    async_rollouts: train_options.AsyncRollouts = False,
    max_staleness: train_options.MaxStaleness = 1,
) -> None:
    """GRPO on a searcher beside a frozen reader, rewarded by Gain Beyond RAG (s3).

    Each episode is the searcher method's: RAG's top K, follow-up searches, then <select>; the
    reader answers from K documents (the selection first). Reward = Acc(reader over them) -
    Acc(reader over RAG's top K); RAG's answers are computed once into OUT/rag_answers.jsonl.
    Yes/no questions and those RAG already answers are left out. Only the searcher trains.
    --user simulated:rules with a `sleuth synth ambiguous` --benchmark FILE lets it <ask>.
    """
    given = dict(locals())  # the options, passed on whole
    from sleuth.train.searcher_grpo import SearcherTrainConfig, train_searcher

    config = SearcherTrainConfig.from_dict(
        {**given, "out": str(out), "index": str(index) if index else None}
    )
    results = train_searcher(config, log=log_line)
    typer.echo(json.dumps({k: v for k, v in results.items() if k != "config"}))
    typer.echo(f"results: {out / 'results.json'}   log: {out / 'train_log.jsonl'}")


@train_app.command("selfplay")
def selfplay_command(
    out: train_options.RunFolder,
    index: Annotated[
        Path | None,
        typer.Option(
            help="Local index: seed topics and the engine both roles search "
            "(default: the bundled HotpotQA BM25 index)"
        ),
    ] = None,
    model: train_options.PolicyModel = None,
    steps: train_options.Steps = 20,
    proposals_per_step: Annotated[
        int,
        typer.Option(help="Seed topics per step (P); each is proposed --num-generations times"),
    ] = 1,
    num_generations: Annotated[
        int,
        typer.Option(
            help="GRPO group size (G): proposals per seed and solver episodes per verified question"
        ),
    ] = 2,
    hops: Annotated[int, typer.Option(help="Searches the proposer is asked for")] = 2,
    learning_rate: train_options.LearningRate = 1e-6,
    beta: train_options.Beta = 0.0,
    temperature: Annotated[float, typer.Option(help="Sampling temperature of both roles")] = 1.0,
    max_new_tokens: train_options.MaxNewTokens = 48,
    question_tokens: Annotated[int, typer.Option(help="Tokens of the question turn")] = 40,
    max_turns: Annotated[int, typer.Option(help="Solver turns per episode")] = 3,
    max_searches: Annotated[int, typer.Option(help="Solver searches per episode")] = 2,
    min_searches: options.MinSearches = 1,
    top_k: train_options.TopK = 2,
    doc_chars: train_options.DocChars = 200,
    save_steps: train_options.SaveSteps = 1,
    seed: Annotated[int, typer.Option(help="Random seed (also picks the seed topics)")] = 0,
    simulate: search_options.Simulate = None,
    noise_schedule: train_options.NoiseSchedule = None,
    answer_spans: options.ProposerAnswerSpans = True,
) -> None:
    """Search self-play (SSP): one policy proposes questions and solves them, GRPO for both.

    Per step, each of P seed documents is proposed G times: the policy explores from the seed
    (search/open), answers with a short fact it read, and writes the question in the same
    episode. A proposal counts only if the policy as a RAG solver, shown every document the
    proposer retrieved, answers it (SSP verification). Each verified question gets G solver
    episodes (train agent's loop, same loss masks). Rewards: solver = correct answer;
    proposer = 1 - the solver group's success rate (0 if unverified). Logs acceptance rate,
    solver accuracy and proposer reward per step (train_log.jsonl, results.json, curve.png);
    every proposal goes to proposals.jsonl. See docs/training.md.
    """
    given = dict(locals())  # the options, passed on whole
    from sleuth.train.selfplay_grpo import SelfPlayTrainConfig, train_selfplay

    config = SelfPlayTrainConfig.from_dict(
        {**given, "out": str(out), "index": str(index) if index else None}
    )
    results = train_selfplay(config, log=log_line)
    typer.echo(json.dumps({k: v for k, v in results.items() if k != "config"}))
    typer.echo(f"results: {out / 'results.json'}   curve: {out / 'curve.png'}")
