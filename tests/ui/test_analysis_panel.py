"""The history page's "Analysis so far" panel in headless Chromium, against a live server
whose rollouts were written as the engine writes them (tests/ui/live.py): a rollout at a
sequential analysis step that still needs traffic, one paused because its canary is not
scraped, one at a fixed-judge step with an old-style measurement, and a finished one whose
values table gains the interval column. Screenshots are kept under .artifacts/ui/."""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest

from controlplane.db import Database
from controlplane.models import Phase, VersionStatus, utcnow
from tests.support.browser import ARTIFACTS, chromium, open_rollout, page_errors, sign_in
from tests.ui import history, live
from tests.ui.server import ADMIN_TOKEN, live_server

pytestmark = [pytest.mark.browser, pytest.mark.slow]

sync_api = pytest.importorskip(
    "playwright.sync_api", reason="playwright is not installed (the dev dependency group)"
)


# the keys a metric verdict had before the sequential judge
FIXED_KEYS = {
    "metric", "verdict", "canary_value", "stable_value", "canary_samples", "stable_samples",
    "statistic", "p_value", "message", "threshold",
}  # fmt: skip


@dataclass(frozen=True)
class Written:
    analysing: int  # chat v3: sequential, two looks, still needs traffic
    rolled_back: int  # chat v2: failed by a sequential look
    unscraped: int  # rerank v2: paused, the canary has no series
    fixed: int  # embed v2: a fixed-judge step, one old-style look
    latest: list[dict[str, Any]]  # chat v3's latest look, as stored
    failed: list[dict[str, Any]]  # chat v2's failing look, as stored
    old: list[dict[str, Any]]  # embed v2's look, as stored


def _rolled_back(database: Database, t0: datetime) -> tuple[int, list[dict[str, Any]]]:
    """chat v2: into the analysis at 25%, one look fails on ttft, rolled back."""
    started = live.at_analysis(
        database,
        model="chat",
        version="v2",
        plan=live.strategy(),
        started=t0,
        step_started_at=t0 + timedelta(seconds=10),
    )
    at = t0 + timedelta(seconds=70)
    look = live.sequential_look(at, elapsed=60, canary_requests=2000, canary_ttft=0.7)
    assert look[0] == "fail", look[1]
    live.add_look(database, started.rollout_id, at, look)
    reason = f"analysis failed at 25% (1 failed measurements, limit 0): {look[1]}"
    live.record(
        database,
        started.rollout_id,
        at,
        kind="transition",
        message=reason,
        evidence={"from": "progressing", "to": "rolling_back", "step": 1},
        phase=Phase.ROLLING_BACK,
        reason=reason,
    )
    live.record(
        database,
        started.rollout_id,
        at + timedelta(seconds=6),
        kind="transition",
        message=f"rolled_back: {reason}",
        evidence={"from": "rolling_back", "to": "rolled_back", "step": 1},
        phase=Phase.ROLLED_BACK,
        weight=0,
    )
    live.set_status(database, "chat", "v2", VersionStatus.ROLLED_BACK)
    return started.rollout_id, look[2]


def _analysing(database: Database, now: datetime) -> tuple[int, list[dict[str, Any]]]:
    """chat v3: at the sequential analysis for 130 s, two looks, too few requests yet."""
    started = live.at_analysis(
        database,
        model="chat",
        version="v3",
        plan=live.strategy(),
        started=now - timedelta(seconds=140),
        step_started_at=now - timedelta(seconds=130),
    )
    for ago, requests in ((70, 300), (10, 600)):
        at = now - timedelta(seconds=ago)
        look = live.sequential_look(at, elapsed=130 - ago, canary_requests=requests, seed=ago)
        live.add_look(database, started.rollout_id, at, look)
    return started.rollout_id, look[2]


def _unscraped(database: Database, now: datetime) -> int:
    """rerank v2: five looks find no canary series; the planner paused it for a person."""
    step_start = now - timedelta(seconds=330)
    started = live.at_analysis(
        database,
        model="rerank",
        version="v2",
        plan=live.strategy(),
        started=step_start - timedelta(seconds=10),
        step_started_at=step_start,
    )
    for i in range(1, 6):
        at = step_start + timedelta(seconds=60 * i)
        look = live.sequential_look(at, elapsed=60 * i, canary_requests=0, scraped=False)
        live.add_look(database, started.rollout_id, at, look)
    reason = f"analysis inconclusive at 25% (no_series): {look[1]}; fix the cause, then resume"
    live.record(
        database,
        started.rollout_id,
        at,
        kind="transition",
        message=reason,
        evidence={"from": "progressing", "to": "paused", "step": 1},
        phase=Phase.PAUSED,
        reason=reason,
    )
    return started.rollout_id


def _fixed(database: Database, now: datetime) -> tuple[int, list[dict[str, Any]]]:
    """embed v2: a fixed-judge analysis step with one look of the fixed judge (no interval,
    no effect: the rows written before the sequential judge look like this)."""
    started = live.at_analysis(
        database,
        model="embed",
        version="v2",
        plan=live.strategy(judge="fixed", count=3),
        started=now - timedelta(seconds=80),
        step_started_at=now - timedelta(seconds=75),
    )
    at = now - timedelta(seconds=15)
    verdict, summary, metrics = history.measured(at, 0.43, 3, seed=5)
    old = [{key: value for key, value in m.items() if key in FIXED_KEYS} for m in metrics]
    live.add_look(database, started.rollout_id, at, (verdict, summary, old))
    return started.rollout_id, old


def write(database: Database) -> Written:
    now = utcnow()
    for model in ("chat", "rerank", "embed"):
        live.set_status(database, model, "v1", VersionStatus.STABLE)
    rolled_back, failed = _rolled_back(database, now - timedelta(hours=1))
    analysing, latest = _analysing(database, now)
    fixed, old = _fixed(database, now)
    return Written(analysing, rolled_back, _unscraped(database, now), fixed, latest, failed, old)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str, Written]]:
    """A live server with the rollouts above, and a viewer token."""
    with live_server(tmp_path_factory.mktemp("ui-analysis")) as (url, database_url):
        with httpx.Client(
            base_url=url, timeout=10, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}
        ) as admin:
            for model, versions in (("chat", 3), ("rerank", 2), ("embed", 2)):
                body = {"name": model, "image": "vllm/vllm-openai:v0.11.0", "replicas": 2}
                assert admin.post("/v1/models", json=body).status_code == 201
                for n in range(1, versions + 1):
                    registered = admin.post(
                        f"/v1/models/{model}/versions",
                        json={"version": f"v{n}", "artifact_uri": f"s3://m/{model}/v{n}"},
                    )
                    assert registered.status_code == 201, registered.text
            viewer = admin.post("/v1/tokens", json={"name": "on-call", "role": "viewer"})
            assert viewer.status_code == 201, viewer.text
        database = Database(database_url, pool_size=2)
        try:
            written = write(database)
        finally:
            database.dispose()
        yield url, viewer.json()["token"], written


@pytest.fixture(scope="module")
def page(site: tuple[str, str, Written], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    url, viewer, _ = site
    with chromium(tmp_path_factory.mktemp("chromium-analysis")) as context:
        page = context.new_page()
        problems = page_errors(page)
        sign_in(page, url, viewer)
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        yield page
        assert problems == [], problems
        page.close()


def pct(value: float) -> str:
    return f"{value:+.1%}"


def cx(locator: Any, attribute: str) -> float:
    return float(locator.get_attribute(attribute) or "nan")


def test_a_live_sequential_step_shows_each_metrics_effect_interval_margin_and_needs(
    site: tuple[str, str, Written], page: Any
) -> None:
    written = site[2]
    expect = sync_api.expect
    open_rollout(page, written.analysing)
    panel = page.locator("#analysis-live")
    expect(panel).to_be_visible()
    expect(panel.locator("h2")).to_have_text("Analysis so far")
    progress = page.locator("#analysis-progress")
    expect(progress).to_contain_text("step 1 · sequential judge, every 60s · look 2 of at least 5")
    expect(progress).to_contain_text("of at most 1h00m")
    expect(progress).to_have_text(re.compile(r"· 2m\d\ds of at most 1h00m$"))

    ttft = next(m for m in written.latest if m["metric"] == "ttft")
    assert ttft["verdict"] == "inconclusive"
    assert ttft["inconclusive"] == "too_few"
    row = page.locator("#live-metrics tr[data-metric=ttft]")
    expect(row.locator("td").first).to_have_text("ttft p95")
    expect(row.locator(".badge")).to_have_text("inconclusive")
    interval = f"[{pct(ttft['effect_lower'])}, {pct(ttft['effect_upper'])}]"
    expect(row.locator("td.effect")).to_have_text(f"{pct(ttft['effect'])} {interval}")
    expect(row.locator("td.margin")).to_have_text("margin 10%")
    expect(row.locator("td.samples")).to_have_text("600 / 1800")
    expect(row.locator("td.pods")).to_have_text(f"1 / 2 · spread {ttft['pod_spread']:.1%}")
    expect(row.locator("td.needs")).to_contain_text(
        f"needs ~{math.ceil(ttft['needed'])} more canary requests (~"
    )

    # the bar: the interval around the point estimate, the margin line beyond it
    bar = row.locator("svg.effect-bar")
    effect_x = cx(bar.locator("circle.bar-effect"), "cx")
    segment = bar.locator("g.bar-interval line").first
    low_x, high_x = cx(segment, "x1"), cx(segment, "x2")
    margin_x = cx(bar.locator("line.bar-margin"), "x1")
    zero_x = cx(bar.locator("line.bar-zero"), "x1")
    assert low_x < zero_x < effect_x < margin_x < high_x  # +1.x% inside [-, +], margin 10%
    assert float(bar.locator("line.bar-margin").get_attribute("data-margin") or 0) == 0.1

    errors = next(m for m in written.latest if m["metric"] == "error_rate")
    points = page.locator("#live-metrics tr[data-metric=error_rate]")
    expect(points.locator("td.margin")).to_have_text("margin 0.50 pts")
    expect(points.locator("td.effect")).to_contain_text(f"{errors['effect'] * 100:+.2f} pts")
    expect(points.locator("td.needs")).to_contain_text("more canary requests")
    expect(page.locator("#deciding")).to_have_count(0)  # nothing decided yet

    # the charts are still there, below, with the interval in the values table
    chart = page.locator("#analysis svg.chart[data-metric=ttft]")
    expect(chart.locator("g.series-canary circle")).to_have_count(2)
    last = page.locator("#analysis figure[data-metric=ttft] tbody tr").last
    expect(last.locator("td.interval")).to_have_text(
        f"{pct(ttft['effect_lower'])} .. {pct(ttft['effect_upper'])}"
    )
    assert (
        page.locator("#analysis-live").bounding_box()["y"]
        < (page.locator("#analysis").bounding_box()["y"])
    ), "the panel is above the charts"
    page.screenshot(path=str(ARTIFACTS / "analysis-so-far.png"), full_page=True)


def test_a_canary_without_series_says_so_in_words(
    site: tuple[str, str, Written], page: Any
) -> None:
    expect = sync_api.expect
    open_rollout(page, site[2].unscraped)
    expect(page.locator("#banner")).to_contain_text("paused")
    expect(page.locator("#analysis-progress")).to_contain_text("look 5 of at least 5")
    row = page.locator("#live-metrics tr[data-metric=ttft]")
    expect(row.locator("td.needs")).to_have_text(
        "the canary has no series: not scraped (check the selector)"
    )
    expect(row.locator("td.effect")).to_have_text("—")
    expect(row.locator("svg.effect-bar")).to_have_count(0)
    expect(row.locator("td.margin")).to_have_text("margin 10%")


def test_an_old_fixed_judge_measurement_still_renders(
    site: tuple[str, str, Written], page: Any
) -> None:
    written = site[2]
    expect = sync_api.expect
    open_rollout(page, written.fixed)
    expect(page.locator("#analysis-progress")).to_contain_text(
        "step 1 · fixed judge, every 60s · look 1 of 3"
    )
    expect(page.locator("#analysis-progress")).to_contain_text("of about 3m00s")
    ttft = next(m for m in written.old if m["metric"] == "ttft")
    assert "effect" not in ttft
    assert "judge" not in ttft
    row = page.locator("#live-metrics tr[data-metric=ttft]")
    expect(row).to_have_attribute("data-judge", "fixed")
    expect(row.locator(".badge")).to_have_text(ttft["verdict"])
    expect(row.locator("td.effect")).to_contain_text("canary ")
    expect(row.locator("td.effect")).to_contain_text(" vs stable ")
    expect(row.locator("td.margin")).to_contain_text("p=")
    expect(row.locator("svg.effect-bar")).to_have_count(0)
    if ttft["verdict"] == "pass":
        expect(page.locator("#deciding")).to_contain_text("deciding: ")
    # the values table: the p-value as before, no interval for a fixed-judge row
    values = page.locator("#analysis figure[data-metric=ttft] tbody tr").last
    expect(values.locator("td.interval")).to_have_text("—")
    shown_p = float(values.locator("td").nth(8).text_content() or "nan")
    assert shown_p == pytest.approx(ttft["p_value"], rel=0.01)
    page.screenshot(path=str(ARTIFACTS / "analysis-fixed-judge.png"), full_page=True)


def test_a_finished_rollout_has_no_panel_and_its_values_show_the_interval(
    site: tuple[str, str, Written], page: Any
) -> None:
    written = site[2]
    expect = sync_api.expect
    open_rollout(page, written.rolled_back)
    expect(page.locator("#banner")).to_contain_text("Rolled back")
    expect(page.locator("#analysis-live")).to_have_count(0)
    ttft = next(m for m in written.failed if m["metric"] == "ttft")
    figure = page.locator("#analysis figure[data-metric=ttft]")
    expect(figure.locator("circle.dot-fail")).to_have_count(1)
    cells = figure.locator("tbody tr").first.locator("td")
    expect(cells.nth(7)).to_have_text(f"{pct(ttft['effect_lower'])} .. {pct(ttft['effect_upper'])}")
    expect(cells.nth(8)).to_have_text("—")  # no p-value from the sequential judge
    expect(page.locator("#analysis")).to_contain_text("always-valid interval")
    # the chart's rule is the margin the judge recorded, not the built-in default
    expect(page.locator("#analysis figure[data-metric=error_rate] .rule")).to_have_text(
        "fails above stable + 0.50 points"
    )
    assert page.evaluate(
        "[...document.getElementById('view').childNodes].every((n) => n.nodeType === 1)"
    ), "only elements in the view (no stray text where the panel is left out)"
    page.screenshot(path=str(ARTIFACTS / "analysis-finished-sequential.png"), full_page=True)
