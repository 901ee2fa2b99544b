"""The history page of an adapter rollout in headless Chromium: which pod of the base pool
holds the stable and the canary adapter (the rollout's last reading, as the reconciler
stores it), and the placement events in the timeline. Screenshot under .artifacts/ui/."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import httpx
import pytest

from controlplane.db import Database
from controlplane.models import Rollout, VersionStatus, utcnow
from tests.support.browser import ARTIFACTS, chromium, open_rollout, page_errors, sign_in
from tests.ui import live
from tests.ui.server import ADMIN_TOKEN, live_server

pytestmark = [pytest.mark.browser, pytest.mark.slow]

sync_api = pytest.importorskip(
    "playwright.sync_api", reason="playwright is not installed (the dev dependency group)"
)

BASE = "meta-llama/Llama-3.1-8B-Instruct"


def pod(name: str, adapters: list[str] | None, **facts: Any) -> dict[str, Any]:
    row = {"pod": name, "serving": True, "ready": True, "gated": True, "error": None}
    return row | {"adapters": adapters} | facts


PODS = [
    pod("llama-base-7d9f-a", ["chat-v1", "chat-v2"]),
    pod("llama-base-7d9f-b", ["chat-v1", "chat-v2", "summarize-v4"]),
    pod("llama-base-7d9f-c", ["chat-v1"], ready=False),  # restarted, v2 not back yet
    pod("llama-base-7d9f-d", None, serving=False, ready=False, error="connection refused"),
]


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str, int]]:
    with live_server(tmp_path_factory.mktemp("ui-placement")) as (url, database_url):
        with httpx.Client(
            base_url=url, timeout=10, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}
        ) as admin:
            pool = {"name": "llama", "base_model": BASE, "deployment": "llama-base"}
            assert admin.post("/v1/pools", json=pool | {"max_loras": 4}).status_code == 201
            assert admin.post("/v1/models", json={"name": "chat", "base_pool": "llama"}).is_success
            for n in (1, 2):
                registered = admin.post(
                    "/v1/models/chat/versions",
                    json={
                        "version": f"v{n}",
                        "artifact_uri": f"s3://adapters/chat/v{n}",
                        "artifact_kind": "lora_adapter",
                        "base_model": BASE,
                        "lora_rank": 8,
                    },
                )
                assert registered.status_code == 201, registered.text
            viewer = admin.post("/v1/tokens", json={"name": "on-call", "role": "viewer"})
            assert viewer.status_code == 201, viewer.text
        database = Database(database_url, pool_size=2)
        try:
            now = utcnow()
            live.set_status(database, "chat", "v1", VersionStatus.STABLE)
            started = live.at_analysis(
                database,
                model="chat",
                version="v2",
                plan=live.strategy(),
                started=now - timedelta(seconds=100),
                step_started_at=now - timedelta(seconds=90),
            )
            live.record(
                database,
                started.rollout_id,
                now - timedelta(seconds=30),
                kind="placement",
                message="chat-v2: adapter on 2 of 3 serving pods of pool llama (missing on "
                "llama-base-7d9f-c); chat-v1: adapter on 3 of 3 serving pods",
                evidence={"pool": "llama", "pods": PODS},
            )
            with database.session() as session:
                row = session.get(Rollout, started.rollout_id)
                assert row is not None
                row.placement = {
                    "pool": "llama",
                    "stable_adapter": "chat-v1",
                    "canary_adapter": "chat-v2",
                    "observed_at": (now - timedelta(seconds=30)).isoformat(),
                    "pods": PODS,
                }
                session.add(row)
                session.commit()
        finally:
            database.dispose()
        yield url, viewer.json()["token"], started.rollout_id


def test_an_adapter_rollout_shows_which_pod_holds_which_adapter(
    site: tuple[str, str, int], tmp_path_factory: pytest.TempPathFactory
) -> None:
    url, viewer, rollout_id = site
    expect = sync_api.expect
    with chromium(tmp_path_factory.mktemp("chromium-placement")) as context:
        page = context.new_page()
        problems = page_errors(page)
        sign_in(page, url, viewer)
        open_rollout(page, rollout_id)

        panel = page.locator("#placement")
        expect(panel.locator("h2")).to_have_text("Adapters on base pool llama")
        expect(panel.locator("thead th")).to_have_text(
            [
                "pod",
                "serving",
                "ready",
                "stable chat-v1",
                "canary chat-v2",
                "other adapters",
                "error",
            ]
        )
        rows = panel.locator("tbody tr")
        expect(rows).to_have_count(4)
        cells = [rows.nth(i).locator("td").all_inner_texts() for i in range(4)]
        assert cells[0][:6] == ["llama-base-7d9f-a", "yes", "yes (gated)", "loaded", "loaded", "—"]
        assert cells[1][5] == "summarize-v4"
        assert cells[2][:5] == ["llama-base-7d9f-c", "yes", "no (gated)", "loaded", "no"]
        assert cells[3][3:5] == ["?", "?"]
        assert cells[3][6] == "connection refused"
        # the serving pod that lacks the canary is marked
        expect(rows.nth(2)).to_have_class("bad")
        expect(rows.nth(0)).not_to_have_class("bad")

        event = page.locator('#timeline li[data-kind="placement"]')
        expect(event).to_contain_text("missing on llama-base-7d9f-c")
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "adapter-placement.png"), full_page=True)
        assert problems == [], problems
