"""The report and the store index as a person sees them, in headless Chromium (Debian's chromium, driven by
Playwright; never Playwright's own browser download): a real failing run's report (--bug stale-read)
and `splitbrain serve` over a store. Any console error fails the test; screenshots are kept in the test's
temporary folder (printed) for a look by eye."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from splitbrain.harness.cli import main
from splitbrain.harness.serve import StoreServer
from splitbrain.histories.faults import fault_windows
from splitbrain.histories.jsonl import read_jsonl

from tests.report_helpers import make_run

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]
pytestmark = [pytest.mark.browser,
              pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="needs Debian's chromium (.ci/setup)")]


@pytest.fixture
def browser_page() -> Iterator[tuple[object, list[str]]]:
    playwright = pytest.importorskip("playwright.sync_api")
    with tempfile.TemporaryDirectory() as profile, playwright.sync_playwright() as p:
        context = p.chromium.launch_persistent_context(profile, executable_path=CHROMIUM, headless=True, args=ARGS,
                                                       viewport={"width": 1400, "height": 900})
        page = context.new_page()
        errors: list[str] = []
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        try:
            yield page, errors
        finally:
            context.close()


def _stale_read_run(store: Path) -> Path:
    for seed in range(1, 5):
        code = main(["run", "--store", str(store), "--time-limit", "8", "--nemesis-interval", "1.5", "--nodes", "5",
                     "--rate", "100", "--nemesis", "partition", "--bug", "stale-read", "--seed", str(seed)])
        if code == 1:
            return (store / "latest").resolve()
    pytest.fail("--bug stale-read was not caught on seeds 1-4")


@pytest.mark.integration
@pytest.mark.timeout(300)
@pytest.mark.skipif(os.geteuid() != 0, reason="local nodes need root (network namespaces)")
def bar_starts(page) -> dict[str, float]:
    """Each drawn op bar's left edge on screen, by op index."""
    return dict(page.eval_on_selector_all(
        "#timeline rect.op", "rs => rs.map(r => [r.dataset.index, r.getBoundingClientRect().left])"))


def widest_gap(before: dict[str, float], after: dict[str, float]) -> tuple[float, float] | None:
    """The on-screen distance between the two ops drawn in both views that were furthest apart before, as
    (before, after); None while no view has changed."""
    both = [i for i in before if i in after]
    if len(both) < 2 or all(before[i] == after[i] for i in both):
        return None
    lo, hi = min(both, key=before.__getitem__), max(both, key=before.__getitem__)
    return before[hi] - before[lo], after[hi] - after[lo]


def test_the_report_of_a_stale_read_run_shows_the_failure(tmp_path: Path, browser_page) -> None:
    page, errors = browser_page
    run = _stale_read_run(tmp_path / "runs")
    report = run / "report.html"
    assert report.is_file(), "every run writes its report"
    history = read_jsonl(str(run / "history.jsonl"))
    failure = json.loads((run / "results.json").read_text())["linearizable"]["failure"]
    page.goto(report.as_uri())
    page.wait_for_selector("#timeline rect.op")
    assert page.inner_text("#verdict").strip() == "INVALID"
    ops = len(history.operations())
    assert page.locator("#timeline rect.op").count() == min(ops, 10_000)
    assert page.locator("#timeline rect.fault-band").count() == len(fault_windows(history)) > 0
    failing = page.locator("#timeline rect.op.failing")
    assert failing.count() == 1
    assert int(failing.get_attribute("data-index")) == failure["op"]["invoke_index"]
    window = page.locator("#window-1 rect.op")
    assert window.count() >= 2 and page.locator("#window-1 rect.op.failing").count() == 1
    for name in ("latency-raw", "latency-quantiles", "rate"):
        assert page.eval_on_selector(f"#plot-{name}", "img => img.complete && img.naturalWidth > 300"), name
    page.click("#timeline-section [data-action=focus]")
    page.wait_for_timeout(200)
    failing.hover()
    tooltip = page.inner_text("#tooltip")
    assert f"[{failure['op']['invoke_index']}.." in tooltip and "read" in tooltip
    # Zooming in spreads the bars: the distance between two ops' starts grows (a bar's own width may be
    # held at its minimum, so widths alone cannot show it).
    before = bar_starts(page)
    page.click("#timeline-section [data-action=in]")
    for _ in range(100):  # the redraw may take a while on a loaded machine
        if widest_gap(before, bar_starts(page)) is not None:
            break
        page.wait_for_timeout(50)
    gap = widest_gap(before, bar_starts(page))
    assert gap is not None and gap[1] > gap[0] * 1.5, gap  # zoom x2 spreads the bars
    page.screenshot(path=str(tmp_path / "report.png"), full_page=True)
    page.locator("#timeline-section").screenshot(path=str(tmp_path / "timeline.png"))
    print(f"screenshots: {tmp_path}/report.png, {tmp_path}/timeline.png")
    assert errors == []


@pytest.fixture
def served_store(tmp_path: Path) -> Iterator[tuple[StoreServer, Path]]:
    store = tmp_path / "store"
    for i, (target, workload, stale) in enumerate([("raft", "register", 40), ("raft", "register", None),
                                                   ("etcd", "register", None), ("etcd", "lock", None),
                                                   ("zookeeper", "register", 60)]):
        make_run(store, f"{target}-{workload}", f"2026010{i + 1}T000000.000", n_ops=120, seed=7001 + i,
                 stale_at=stale, target=target, workload=workload)
    broken = store / "raft-register" / "20260109T000000.000"
    broken.mkdir(parents=True)
    (broken / "test.json").write_text("{")
    server = StoreServer(store, "127.0.0.1", 0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server, store
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


@pytest.mark.timeout(180)
def test_the_serve_index_filters_searches_and_opens_reports(tmp_path: Path, browser_page, served_store) -> None:
    page, errors = browser_page
    server, _ = served_store
    page.goto(server.url)
    rows = page.locator("#runs tbody tr.run")
    visible = page.locator("#runs tbody tr.run:visible")
    assert rows.count() == 6
    page.select_option("#f-verdict", "invalid")
    assert visible.count() == 2
    page.select_option("#f-target", "zookeeper")
    assert visible.count() == 1
    page.select_option("#f-verdict", "")
    page.select_option("#f-target", "")
    page.select_option("#f-workload", "lock")
    assert visible.count() == 1 and "etcd" in visible.first.inner_text()
    page.select_option("#f-workload", "")
    page.select_option("#f-verdict", "broken")
    assert visible.count() == 1
    page.select_option("#f-verdict", "")
    page.fill("#f-search", "7002")
    assert visible.count() == 1 and "7002" in visible.first.inner_text()
    page.fill("#f-search", "zookeeper")
    assert visible.count() == 1
    page.fill("#f-search", "")
    dates = lambda: [r.get_attribute("data-date") for r in rows.all()]  # noqa: E731
    assert dates() == sorted(dates(), reverse=True)
    page.click("#sort-date")
    assert dates() == sorted(dates())
    page.screenshot(path=str(tmp_path / "index.png"), full_page=True)
    page.select_option("#f-verdict", "invalid")
    with page.expect_navigation():
        visible.first.locator("a.report").click()
    page.wait_for_selector("#timeline rect.op.failing")
    assert page.inner_text("#verdict").strip() == "INVALID"
    page.screenshot(path=str(tmp_path / "served-report.png"), full_page=True)
    print(f"screenshots: {tmp_path}/index.png, {tmp_path}/served-report.png")
    assert errors == []
    shutil.rmtree(tmp_path / "store", ignore_errors=True)
