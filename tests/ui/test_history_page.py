"""The history page in headless Chromium (Debian's chromium, driven by Playwright without
downloading a browser) against a live server whose history was written through the services
with the judge's own verdicts: every state the page draws (a promoted rollout, a rolled-back
one with two measurements per metric, hostile text in a description), pinned exactly. The
page against a history made by a real rollout is tested in
tests/e2e/test_observed_rollback.py. The screenshots are kept under .artifacts/ui/."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from controlplane.db import Database
from tests.support.browser import ARTIFACTS, WAIT, chromium, page_errors
from tests.ui import history
from tests.ui.server import ADMIN_TOKEN, live_server

pytestmark = [pytest.mark.browser, pytest.mark.slow]

sync_api = pytest.importorskip(
    "playwright.sync_api", reason="playwright is not installed (the dev dependency group)"
)

HOSTILE = '<img src=x onerror="document.title=1">&amp; <b>not bold</b>'


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, object]]:
    """A live server; chat with v1 (retired), v2 (stable), v3 (rolled back); a viewer."""
    with live_server(tmp_path_factory.mktemp("ui-server")) as (url, database_url):
        admin = httpx.Client(
            base_url=url, timeout=10, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}
        )
        created = admin.post(
            "/v1/models",
            json={
                "name": "chat",
                "namespace": "llm",
                "image": "vllm/vllm-openai:v0.11.0",
                "gpus_per_replica": 1,
                "replicas": 2,
                "gpu_budget": 4,
                "description": HOSTILE,
            },
        )
        assert created.status_code == 201, created.text
        for version in ("v1", "v2", "v3"):
            registered = admin.post(
                "/v1/models/chat/versions",
                json={"version": version, "artifact_uri": f"s3://models/chat/{version}"},
            )
            assert registered.status_code == 201, registered.text
        viewer = admin.post("/v1/tokens", json={"name": "night-shift", "role": "viewer"})
        assert viewer.status_code == 201, viewer.text
        admin.close()
        database = Database(database_url, pool_size=2)
        try:
            written = history.write(database)
        finally:
            database.dispose()
        yield {"url": url, "viewer": viewer.json()["token"], "history": written}


@pytest.fixture(scope="module")
def browser_context(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    with chromium(tmp_path_factory.mktemp("chromium-profile")) as context:
        yield context


def test_a_viewer_reads_the_history_down_to_the_rollback_reason(
    site: dict[str, object], browser_context: object
) -> None:
    url, viewer = str(site["url"]), str(site["viewer"])
    written = site["history"]
    assert isinstance(written, history.History)
    context = browser_context
    assert isinstance(context, sync_api.BrowserContext)
    page = context.new_page()
    problems = page_errors(page)
    requested: list[str] = []
    page.on("request", lambda r: requested.append(r.url))
    expect = sync_api.expect
    ARTIFACTS.mkdir(parents=True, exist_ok=True)

    # a bad token says so clearly, and is not kept
    page.goto(f"{url}/ui")
    expect(page.locator("#login")).to_be_visible()
    page.fill("#token", "not-a-real-token")
    page.click("#login button[type=submit]")
    expect(page.locator("#login-error")).to_contain_text("did not accept this token", timeout=WAIT)
    assert page.evaluate("sessionStorage.getItem('controlplane.token')") is None
    problems.clear()  # the browser logs the 401 itself

    # a viewer token: the models with their versions' statuses
    page.fill("#token", viewer)
    page.click("#login button[type=submit]")
    page.wait_for_selector('body[data-ready="#/"]', timeout=WAIT)
    models = page.locator("#models")
    expect(models).to_contain_text("chat")
    expect(models.locator("tr[data-model=chat] .badge-rolled_back")).to_have_count(2)  # v3, latest

    # the model: versions and statuses, the rollouts with the reason inline
    page.click("#models a[href='#/models/chat']")
    page.wait_for_selector('body[data-ready="#/models/chat"]', timeout=WAIT)
    for version, status in (("v3", "rolled_back"), ("v2", "stable"), ("v1", "retired")):
        expect(page.locator(f"#versions tr[data-version={version}] .badge")).to_have_text(status)
    # API text is text: the hostile description shows as typed and creates no element
    expect(page.locator(".facts dd", has_text="not bold")).to_have_text(HOSTILE)
    assert page.locator("main img, main b").count() == 0
    expect(page.locator("#rollouts tbody tr")).to_have_count(3)
    expect(page.locator(f"#rollouts tr[data-rollout='{written.rolled_back}']")).to_contain_text(
        "analysis failed at 25%"
    )
    page.screenshot(path=str(ARTIFACTS / "model.png"), full_page=True)

    # the rolled-back rollout: the reason at the top and in the timeline
    page.click(f"#rollouts tr[data-rollout='{written.rolled_back}']")
    page.wait_for_selector(f'body[data-ready="#/rollouts/{written.rolled_back}"]', timeout=WAIT)
    expect(page.locator("#banner")).to_contain_text("Rolled back")
    expect(page.locator("#reason")).to_have_text(written.reason)
    key = page.locator("#timeline .event-key")
    expect(key).to_have_count(1)
    expect(key).to_contain_text("rolled_back: analysis failed at 25%")
    expect(key).to_contain_text("ttft p95 canary")
    expect(page.locator("#timeline .event")).to_have_count(6)

    # the charts: canary, stable and threshold series per metric, the failure marked
    for metric in ("ttft", "error_rate"):
        chart = page.locator(f"#analysis svg.chart[data-metric={metric}]")
        expect(chart).to_be_visible()
        for series in ("canary", "stable", "threshold"):
            expect(chart.locator(f"g.series-{series} polyline")).to_have_count(1)
            expect(chart.locator(f"g.series-{series} circle")).to_have_count(2)
    ttft = page.locator("#analysis svg.chart[data-metric=ttft]")
    expect(ttft.locator("circle.dot-fail")).to_have_count(1)
    expect(ttft.locator(".fail-label")).to_contain_text("FAIL")
    expect(page.locator("#analysis figure[data-metric=ttft] .rule")).to_contain_text(
        "stable \u00d7 1.10"
    )
    expect(page.locator("#analysis figure[data-metric=error_rate] .rule")).to_contain_text(
        "stable + 1.00 points"
    )
    # the threshold is drawn where the judge puts it: stable x 1.10 for the failing point
    fail_y = float(ttft.locator("circle.dot-fail").get_attribute("cy") or "nan")
    stable_y = [float(c.get_attribute("cy") or "nan") for c in ttft.locator(".stable").all()[1:]]
    threshold_y = [
        float(c.get_attribute("cy") or "nan") for c in ttft.locator("circle.threshold").all()
    ]
    assert fail_y < threshold_y[1] < stable_y[1]  # y grows downwards: canary above the line

    page.screenshot(path=str(ARTIFACTS / "rollout-rolled-back.png"), full_page=True)

    # the token never travels in a URL, and nothing went wrong in the page
    assert all(viewer not in u for u in requested), "the token appeared in a URL"
    assert viewer not in page.url
    assert problems == [], problems

    # forgetting the token returns to the sign-in form
    page.click("#sign-out")
    expect(page.locator("#login")).to_be_visible()
    assert page.evaluate("sessionStorage.getItem('controlplane.token')") is None
    page.close()
