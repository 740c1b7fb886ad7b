"""Issue 13 items 11 and 13: the HTML report of a real run, checked in a real headless browser.

The run is real (the bundled HotpotQA questions, the real BM25 index, the evaluation runner);
only the model is scripted, so the answers are known: one is a long hedging answer with markup
and a script tag. Chromium (Debian's ``chromium`` package) is driven by Playwright at a 1400x900
window; Playwright's own browser download is not used.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import replace
from pathlib import Path

import pytest

from sleuth.evaluate.benchmarks import load_benchmark
from sleuth.evaluate.methods import eval_budget
from sleuth.evaluate.report import write_report
from sleuth.evaluate.runner import EvaluationRunner, RunSettings
from sleuth.llm.scripted import ScriptedLLM
from sleuth.metrics import cover_exact_match

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
HEDGE = (
    "Harvey Pekar was born earlier than Denise Levertov [bold]<script>alert('x')</script> "
    + "averyveryverylongtokenwithoutanyspaces" * 6
)


def scripted_answers(messages: list[dict]) -> str:
    """Search once with the question, then answer; question 0 gets the long hedging answer."""
    question = next(m["content"] for m in messages if m["role"] == "user")
    if not any(m["role"] == "assistant" for m in messages) and "<search>" in messages[0]["content"]:
        return f"<search>{question}</search>"
    return f"<answer>{HEDGE if 'Pekar' in question else 'Levertov'}</answer>"


def real_run(folder: Path, benchmark: str, engine, limit: int = 4) -> Path:
    bench = load_benchmark(benchmark, limit=limit)
    pekar = "Who was born first, Harvey Pekar or Denise Levertov?"
    first = replace(bench.questions[0], question=pekar, answers=("Denise Levertov",))
    questions = [first, *bench.questions[1:]]
    settings = RunSettings(
        benchmark=benchmark,
        methods=["closed_book", "rag", "agent"],
        budget=eval_budget(max_turns=3),
        model="scripted",
        search="bundled hotpotqa bm25",
    )
    runner = EvaluationRunner(folder, settings, questions, ScriptedLLM(scripted_answers), engine)
    asyncio.run(runner.run())
    return folder


def chromium_page(playwright):
    if not CHROMIUM.is_file():
        pytest.fail(
            "the report browser test needs Chromium: apt-get update && apt-get install -y chromium"
        )
    browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
    return browser, browser.new_page(viewport={"width": 1400, "height": 900})


def test_report_fits_1400px_and_links_open_trajectories(tmp_path: Path, hotpot_bm25) -> None:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("the report browser test needs Playwright: pip install 'sleuth[dev]'")
    run = real_run(tmp_path / "run", "hotpotqa-1100:dev", hotpot_bm25)
    json_path, html_path = write_report(run)

    dialogs: list[str] = []
    with sync_playwright() as playwright:
        browser, page = chromium_page(playwright)
        try:
            page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
            page.goto(html_path.as_uri())
            widths = page.evaluate(
                "() => [document.querySelector('a[href^=\"#traj-\"]').closest('table').scrollWidth,"
                " document.documentElement.scrollWidth]"
            )
            assert max(widths) <= 1400, widths  # the trajectory column is on screen
            link = page.locator("a[href^='#traj-']").first
            target = link.get_attribute("href").removeprefix("#")
            assert not page.locator(f"details#{target}").evaluate("d => d.open")
            link.click()
            details = page.locator(f"details#{target}")
            assert details.evaluate("d => d.open")
            assert details.locator("ol").is_visible()  # the steps, not just the summary line
            assert details.evaluate("d => d.getBoundingClientRect().top") < 900  # scrolled to
            # Settings are key/value rows, not JSON.
            settings = page.locator(".settings").inner_text()
            assert "budget.max_turns\t3" in settings and "{" not in settings
            # Untrusted text stayed text: the script tag is shown, never run.
            text = page.locator("body").inner_text()
            assert "<script>alert('x')</script>" in text and not dialogs
            # The paired comparison with the run's own RAG is on the page.
            assert "Against rag, question by question" in text
            assert "Where agent's F1 difference comes from" in text
            page.evaluate("document.querySelector('.questions').scrollIntoView()")
            (ROOT / "docs" / "img").mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(ROOT / "docs" / "img" / "report.png"))
        finally:
            browser.close()

    # item 11: the new columns and their explanation on the page and in report.json.
    assert "cover-EM ≤5 words" in text and "no answer" in text
    assert "names both candidates" in " ".join(text.split())
    report = json.loads(json_path.read_text(encoding="utf-8"))
    assert report["short_answer_words"] == 5
    hedged = next(r for r in report["results"] if r["prediction"] == HEDGE)
    # cover-EM: the "/" of "</script>" joins a rival item; short cover-EM: too long anyway.
    assert hedged["cover_em"] == cover_exact_match(HEDGE, hedged["gold_answers"]) == 0.0
    assert hedged["cover_em_short"] == 0.0
    assert hedged["answer_words"] == len(HEDGE.split())
    for summary in report["methods"].values():
        assert {"cover_em_short", "answer_words", "no_answer"} <= set(summary["metrics"])


def test_a_benchmark_without_gold_evidence_says_why_there_is_no_failure_plot(
    tmp_path: Path, hotpot_bm25
) -> None:
    run = real_run(tmp_path / "run", "bamboogle", hotpot_bm25, limit=2)
    _, html_path = write_report(run)
    page = html_path.read_text(encoding="utf-8")
    assert "this benchmark has no gold evidence" in page
    assert page.count("data:image/png") == 2  # the empty breakdown chart is left out


def test_short_cover_em_answer_length_and_no_answer_share() -> None:
    from sleuth.evaluate.summary import summarize
    from sleuth.metrics import answer_words, cover_exact_match, short_cover_exact_match

    both = "Harvey Pekar was born earlier than Denise Levertov"
    gold = ["Denise Levertov"]
    assert cover_exact_match(both, gold) == 1.0  # no rival joined by "or", "/", a comma: kept
    assert short_cover_exact_match(both, gold) == 0.0  # 8 words > 5
    assert short_cover_exact_match("poet Denise Levertov", gold) == 1.0
    assert short_cover_exact_match(both, gold, max_words=8) == 1.0
    assert answer_words(both) == 8 and answer_words("  ") is None and answer_words(None) is None
    # Old result records (scored before these fields existed) get them derived on report.
    records = [
        {"method": "agent", "question_id": str(i), "seed": 0, "prediction": p,
         "gold_answers": gold, "cover_em": cover_exact_match(p, gold)}
        for i, p in enumerate([both, "Denise Levertov", None, None])
    ]  # fmt: skip
    metrics = summarize(records)["agent"]["metrics"]
    assert metrics["cover_em"]["mean"] == 0.5
    assert metrics["cover_em_short"]["mean"] == 0.25
    assert metrics["no_answer"]["mean"] == 0.5
    assert metrics["answer_words"]["mean"] == 5.0  # (8 + 2) / 2 answered episodes
