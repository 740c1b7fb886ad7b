"""``sleuth train expand``: query expansion trained on the search engine's feedback (LESER).

A policy rewrites a question into search queries that must obey platform rules; GRPO (TRL)
rewards each rewrite with the engine's Recall@k of the gold paragraphs, minus rule penalties.
One run reports Recall@k on held-out questions for the raw question, the untrained policy's
rewrites and the trained policy's rewrites, and saves the learning curve.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from sleuth.errors import SleuthError
from sleuth.evaluate.benchmarks import BenchmarkQuestion, load_benchmark
from sleuth.jsonio import write_json_atomic
from sleuth.rewards.query_rewrite import PlatformRules, rewrite_reward
from sleuth.search.base import SearchEngine
from sleuth.train.curves import learning_curve, mean
from sleuth.train.run import GRPORun

FUSION_DEPTH = 100  # hits per query fed to reciprocal-rank fusion before the Recall@k cut


@dataclass(frozen=True)
class ExpandConfig:
    out: str
    model: str | None = None  # None = the packaged SmolLM2-135M-Instruct
    benchmark: str = "hotpotqa-1100"
    train_split: str = "train"
    eval_split: str = "test"
    index: str | None = None  # None = the bundled HotpotQA BM25 index
    train_limit: int = 0  # 0 = the whole split
    eval_limit: int = 0
    k: int = 10
    rules: PlatformRules = field(default_factory=PlatformRules)
    steps: int = 60
    questions_per_step: int = 2
    num_generations: int = 8
    learning_rate: float = 5e-6
    beta: float = 0.0  # KL weight; 0 skips the reference model (TRL's default too)
    temperature: float = 1.0
    max_completion_length: int = 48
    save_steps: int = 10
    seed: int = 0
    eval_batch_size: int = 16
    vllm_mode: str = ""  # "" = generate with transformers; "server" | "colocate" = TRL's vLLM
    vllm_server_url: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def system_prompt(rules: PlatformRules) -> str:
    lines = [
        "You write web search queries. Rewrite the user's question into at most "
        f"{rules.max_queries} short search queries that would find the documents answering it.",
        "Write one query per line and nothing else.",
        f"Each query must be at most {rules.max_chars} characters.",
    ]
    if rules.banned_terms:
        lines.append("Never use these terms: " + ", ".join(rules.banned_terms) + ".")
    if rules.required_terms:
        lines.append("Every query must contain: " + ", ".join(rules.required_terms) + ".")
    return "\n".join(lines)


def gold_ids(question: BenchmarkQuestion) -> list[str]:
    """The gold paragraphs' ids (the first alias of each is the corpus id)."""
    return [aliases[0] for aliases in question.gold_evidence if aliases]


def load_split(config: ExpandConfig, split: str, limit: int) -> list[BenchmarkQuestion]:
    name = f"{config.benchmark}:{split}" if split else config.benchmark
    questions = [q for q in load_benchmark(name).questions if gold_ids(q)]
    if not questions:
        raise SleuthError(f"{name}: no questions with gold evidence to train query rewriting on")
    return questions[:limit] if limit else questions


def ranked_ids(engine: SearchEngine) -> Callable[[list[str]], list[list[str]]]:
    """``queries -> ranked id lists`` over the engine; a query the engine rejects ranks nothing."""
    from sleuth.errors import QueryError

    def search(queries: list[str]) -> list[list[str]]:
        rankings = []
        for query in queries:
            try:
                rankings.append([h.id for h in engine.search(query, FUSION_DEPTH)])
            except QueryError:
                rankings.append([])
        return rankings

    return search


def raw_question_recall(
    engine: SearchEngine, questions: Sequence[BenchmarkQuestion], k: int
) -> list[float]:
    """Recall@k when the question itself is the query: the baseline a rewrite must beat."""
    scores = []
    for question in questions:
        gold = set(gold_ids(question))
        top = {h.id for h in engine.search(question.question, k)}
        scores.append(len(top & gold) / len(gold))
    return scores


def chat_prompt(question: str, rules: PlatformRules) -> list[dict[str, str]]:
    return [
        {"role": "system", "content": system_prompt(rules)},
        {"role": "user", "content": question},
    ]


def generate_rewrites(
    model: Any,
    tokenizer: Any,
    questions: Sequence[str],
    rules: PlatformRules,
    max_new_tokens: int,
    batch_size: int = 16,
    progress: Callable[[int], None] | None = None,
) -> list[str]:
    """Greedy rewrites in left-padded batches (batching is what makes 500 questions cheap)."""
    import torch

    outputs: list[str] = []
    was_training = model.training
    model.eval()
    try:
        for start in range(0, len(questions), batch_size):
            batch = questions[start : start + batch_size]
            texts = [
                tokenizer.apply_chat_template(
                    chat_prompt(q, rules), add_generation_prompt=True, tokenize=False
                )
                for q in batch
            ]
            encoded = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False)
            with torch.no_grad():
                generated = model.generate(
                    **encoded,
                    max_new_tokens=max_new_tokens,
                    do_sample=False,
                    pad_token_id=tokenizer.pad_token_id,
                )
            new = generated[:, encoded["input_ids"].shape[1] :]
            outputs += tokenizer.batch_decode(new, skip_special_tokens=True)
            if progress:
                progress(len(batch))
    finally:
        model.train(was_training)
    return outputs


def rewrite_all(
    model: Any,
    tokenizer: Any,
    questions: Sequence[BenchmarkQuestion],
    config: ExpandConfig,
    when: str,
) -> list[str]:
    from sleuth.progress import progress_bar

    with progress_bar(f"rewrites {when}", len(questions)) as advance:
        return generate_rewrites(
            model,
            tokenizer,
            [q.question for q in questions],
            config.rules,
            config.max_completion_length,
            config.eval_batch_size,
            advance,
        )


def score_rewrites(
    outputs: Sequence[str],
    questions: Sequence[BenchmarkQuestion],
    search: Callable[[list[str]], list[list[str]]],
    rules: PlatformRules,
    k: int,
) -> list[dict[str, Any]]:
    rows = []
    for output, question in zip(outputs, questions, strict=True):
        reward, info = rewrite_reward(output, set(gold_ids(question)), search, rules, k)
        rows.append({"id": question.id, "output": output, "reward": reward, **info})
    return rows


def make_reward_function(
    search: Callable[[list[str]], list[list[str]]], rules: PlatformRules, k: int
) -> Callable[..., list[float]]:
    """The TRL reward function: the engine's Recall@k of the gold ids, minus rule penalties."""

    def engine_recall_reward(prompts, completions, gold_ids, **kwargs) -> list[float]:
        rewards, recalls, broken = [], [], 0
        for completion, gold in zip(completions, gold_ids, strict=True):
            text = completion[-1]["content"] if isinstance(completion, list) else completion
            reward, info = rewrite_reward(text, set(gold), search, rules, k)
            rewards.append(reward)
            recalls.append(info["recall"])
            broken += bool(info["violations"])
        log_metric = kwargs.get("log_metric")
        if callable(log_metric):
            log_metric("engine_recall", sum(recalls) / len(recalls))
            log_metric("rule_violation_rate", broken / len(rewards))
        return rewards

    return engine_recall_reward


def vllm_options(config: ExpandConfig) -> dict[str, Any]:
    """TRL's own vLLM generation (GPU only; not exercised on this CPU machine)."""
    if not config.vllm_mode:
        return {}
    if config.vllm_mode not in ("server", "colocate"):
        raise SleuthError(f"vllm mode must be 'server' or 'colocate', not {config.vllm_mode!r}")
    options: dict[str, Any] = {"use_vllm": True, "vllm_mode": config.vllm_mode}
    if config.vllm_server_url:
        options["vllm_server_base_url"] = config.vllm_server_url
    return options


class ExpandRun(GRPORun):
    """``train expand``'s parts of the run skeleton (``sleuth.train.run``): the held-out
    rewrites are scored before training (``before.json``, kept for a resumed run) and after
    (``after.json``)."""

    config: ExpandConfig

    def prepare(self) -> None:
        config = self.config
        self.search = ranked_ids(self.engine)
        self.train_questions = load_split(config, config.train_split, config.train_limit)
        self.eval_questions = load_split(config, config.eval_split, config.eval_limit)

    def build_trainer(self, model: Any, tokenizer: Any, name: str) -> Any:
        from datasets import Dataset

        from sleuth.train.grpo import grpo_args, trainer_class
        from sleuth.train.runlog import JsonlLogCallback

        config, out, eval_questions = self.config, self.out, self.eval_questions
        sizes = f"{len(self.train_questions)} training, {len(eval_questions)} held-out questions"
        self.log(f"model {name}; {sizes}")
        baseline_path = out / "before.json"
        if baseline_path.is_file():  # resumed: the untrained evaluation is already done
            self.before = json.loads(baseline_path.read_text())
        else:
            raw = raw_question_recall(self.engine, eval_questions, config.k)
            outputs = rewrite_all(model, tokenizer, eval_questions, config, "before training")
            self.before = {
                "raw_question_recall": mean(raw),
                "rows": score_rewrites(
                    outputs, eval_questions, self.search, config.rules, config.k
                ),
            }
            write_json_atomic(baseline_path, self.before)

        dataset = Dataset.from_list(
            [
                {"prompt": chat_prompt(q.question, config.rules), "gold_ids": gold_ids(q)}
                for q in self.train_questions
            ]
        )
        args = grpo_args(
            out,
            steps=config.steps,
            questions_per_step=config.questions_per_step,
            num_generations=config.num_generations,
            max_completion_length=config.max_completion_length,
            learning_rate=config.learning_rate,
            beta=config.beta,
            temperature=config.temperature,
            save_steps=config.save_steps,
            seed=config.seed,
            **vllm_options(config),
        )
        Trainer = trainer_class()
        self.tokenizer = tokenizer
        return Trainer(
            model=model,
            reward_funcs=make_reward_function(self.search, config.rules, config.k),
            args=args,
            train_dataset=dataset,
            processing_class=tokenizer,
            callbacks=[JsonlLogCallback(out / "train_log.jsonl")],
        )

    def summarise(
        self, trainer: Any, history: list[dict[str, Any]], seconds: float, name: str
    ) -> dict[str, Any]:
        config, questions = self.config, self.eval_questions
        outputs = rewrite_all(trainer.model, self.tokenizer, questions, config, "after training")
        after_rows = score_rewrites(outputs, questions, self.search, config.rules, config.k)
        results = summarise(config, name, self.before, after_rows, history, seconds)
        write_json_atomic(self.out / "after.json", {"rows": after_rows})
        return results

    def curve(self, history: list[dict[str, Any]]) -> bytes:
        return learning_curve(history)


def train_expand(config: ExpandConfig, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Train, evaluate before/after, write ``results.json`` and ``curve.png``; resumable."""
    from sleuth.search.factory import open_engine

    run = ExpandRun(config, log).start()
    return run.finish(open_engine(config.index).engine)  # the bundled corpus without --index


def summarise(
    config: ExpandConfig,
    model_name: str,
    before: dict[str, Any],
    after_rows: list[dict[str, Any]],
    history: list[dict[str, Any]],
    train_seconds: float,
) -> dict[str, Any]:
    def recall(rows: list[dict[str, Any]]) -> float:
        return mean([r["recall"] for r in rows])

    def violation_rate(rows: list[dict[str, Any]]) -> float:
        return mean([1.0 if r["violations"] else 0.0 for r in rows])

    rewards = [r["reward"] for r in history if "reward" in r]
    reward_std = [r.get("reward_std", 0.0) for r in history if "reward" in r]
    return {
        "model": model_name,
        "k": config.k,
        "eval_questions": len(after_rows),
        f"recall@{config.k}": {
            "raw_question": before["raw_question_recall"],
            "untrained_rewrites": recall(before["rows"]),
            "trained_rewrites": recall(after_rows),
        },
        "rule_violation_rate": {
            "untrained": violation_rate(before["rows"]),
            "trained": violation_rate(after_rows),
        },
        "training": {
            "steps": len(rewards),
            "seconds": round(train_seconds, 1),
            "reward_first5": mean(rewards[:5]),
            "reward_last5": mean(rewards[-5:]),
            "mean_within_group_reward_std": mean(reward_std),
        },
        "config": config.to_dict(),
    }
