"""The viewer in a real browser: Debian's chromium driven by Playwright clicks through the
filters, opens an episode, edits a query, replays it (scripted model, real BM25 index) and
checks what the page shows. Needs ``apt-get install chromium`` (Playwright's own browser
download is not used). ``SLEUTH_UPDATE_SCREENSHOTS=1`` also refreshes docs/img/viewer-*.png.
"""

from __future__ import annotations

import os
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from conftest import LiveServer
from view_support import make_run, policy

from sleuth.llm.scripted import ScriptedLLM
from sleuth.view.app import create_app
from sleuth.view.feedback import read_feedback
from sleuth.view.runs import load_runs
from sleuth.view.state import ViewerState

CHROMIUM = os.environ.get("SLEUTH_CHROMIUM", "/usr/bin/chromium")
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
DOCS_IMG = Path(__file__).resolve().parent.parent / "docs" / "img"


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).is_file():
        pytest.fail(
            f"chromium not found at {CHROMIUM}: install it with `apt-get install -y chromium` "
            "(or point SLEUTH_CHROMIUM at a chromium binary); the browser test does not skip"
        )
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("playwright is not installed: pip install playwright==1.65.2 (the dev extra)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield browser
        browser.close()


def _shot(page, tmp_path: Path, name: str) -> None:
    path = tmp_path / f"viewer-{name}.png"
    page.screenshot(path=str(path), full_page=True)
    if os.environ.get("SLEUTH_UPDATE_SCREENSHOTS") == "1":
        shutil.copy(path, DOCS_IMG / path.name)


def test_click_filter_open_edit_replay_in_chromium(
    browser, hotpot_bm25_path: Path, hotpot_bm25, tmp_path: Path
) -> None:
    # Playwright's sync API runs an event loop in this thread; the evaluation runs in another.
    with ThreadPoolExecutor(1) as pool:
        run_dir = pool.submit(make_run, hotpot_bm25_path, tmp_path / "runs" / "demo-run").result()
    log_path = tmp_path / "runs" / "feedback.jsonl"
    state = ViewerState(load_runs([run_dir]), log_path, engine=hotpot_bm25, llm=ScriptedLLM(policy))
    dialogs: list[str] = []
    with LiveServer(create_app(state)) as server:
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
        failed: list[str] = []
        page.on("requestfailed", lambda r: failed.append(r.url))

        page.goto(server.url + "/")
        assert page.locator("table.metrics tr[data-method]").count() == 3
        _shot(page, tmp_path, "runs")

        # Filters: each select applies on change (the page's script submits the form).
        page.click("nav >> text=episodes")
        with page.expect_navigation():
            page.select_option("select[name=method]", "agent")
        with page.expect_navigation():
            page.select_option("select[name=outcome]", "misused")
        rows = page.locator("tr.episode-row")
        assert rows.count() >= 1
        for i in range(rows.count()):
            assert rows.nth(i).get_attribute("data-method") == "agent"
            assert rows.nth(i).get_attribute("data-outcome") == "misused"
        assert page.locator("#episode-count").inner_text().startswith(f"{rows.count()} episodes")
        _shot(page, tmp_path, "episodes")

        # One episode, step by step, gold evidence marked.
        rows.first.locator("a.open-episode").click()
        page.wait_for_selector("section.step")
        assert page.locator("section.step").count() == 3
        assert page.locator("tr.hit.gold").count() >= 1
        assert page.locator("aside.forks .fork").count() == 0

        # Thumbs down on a hit, with a comment.
        first_hit = page.locator("#step-0 tr.hit").first
        hit_id = first_hit.get_attribute("data-hit")
        first_hit.locator("input.comment").fill("off topic <b>really</b>")
        with page.expect_navigation():
            first_hit.locator("button.down").click()
        assert "off topic <b>really</b>" in page.locator("ul.feedback-list").inner_text()

        # Debug mode: edit step 1's query and replay from there.
        step = page.locator("#step-1")
        step.locator("details.debug > summary").click()
        # The person searches for what the answer should be about (the gold answer shown).
        new_query = page.locator("p.gold-answer b").inner_text().split(" | ")[0]
        step.locator("input.query-input").fill(new_query)
        with page.expect_navigation():
            step.locator("form.edit-query button").click()
        fork = page.locator("aside.forks .fork")
        assert fork.count() == 1
        assert fork.locator(".edit-text").inner_text() == new_query
        expected = [h.id for h in hotpot_bm25.search(new_query, 3)]
        fork_steps = fork.locator("ol.compact li")
        assert fork_steps.count() == 3
        searched = fork_steps.nth(1).inner_text()
        assert new_query in searched and all(doc_id in searched for doc_id in expected)
        answer = fork.locator("b.answer").inner_text()
        assert answer == hotpot_bm25.get(expected[0]).title  # the model read the new results
        _shot(page, tmp_path, "fork")

        # The fork opens as an episode of its own, linked to its parent.
        fork.locator("h3 a").click()
        page.wait_for_selector("p.fork-of")
        assert "step 1" in page.locator("p.fork-of").inner_text()
        page.go_back()

        page.click("text=compare across methods and runs")
        page.wait_for_selector(".side-by-side")
        assert page.locator(".side-by-side .column").count() == 3
        _shot(page, tmp_path, "compare")

        # Untrusted text stays text, in a real browser too.
        page.goto(server.url + "/episode?run=demo-run&id=evil-1%3A%3Aagent%3A%3As0")
        assert "<script>alert('x')</script>" in page.locator("h1#question").inner_text()
        assert page.locator("main script, main img").count() == 0
        page.close()
    assert dialogs == []
    assert failed == []  # every asset came from the viewer itself
    kinds = [(r["kind"], r.get("hit_id"), r.get("better_query")) for r in read_feedback(log_path)]
    assert kinds == [("thumb", hit_id, None), ("query", None, new_query)]
