"""The history page as a viewer sees it, in headless Chromium, for a model whose env and
args hold credentials: no page shows one, and no API answer the page read holds one."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.browser import ARTIFACTS, WAIT, chromium, sign_in
from tests.ui.server import ADMIN_TOKEN, live_server

pytestmark = [pytest.mark.browser, pytest.mark.slow]

sync_api = pytest.importorskip(
    "playwright.sync_api", reason="playwright is not installed (the dev dependency group)"
)

HF = "hf_" + "Ui5" * 12
NAMED = "plain-but-named-ui-4b7c"
URI_PASSWORD = "uri-pw-ui-90ad"
SECRETS = (HF, NAMED, URI_PASSWORD)


def _history(url: str) -> str:
    """chat with credentials in its env and args, v1 and v2 (v2's artifact URI holds a
    password), a rollout of v2; returns a viewer token."""
    with httpx.Client(
        base_url=url, timeout=10, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}
    ) as admin:
        created = admin.post(
            "/v1/models",
            json={
                "name": "chat",
                "namespace": "llm",
                "image": "vllm/vllm-openai:v0.11.0",
                "replicas": 1,
                "args": ["--api-key", NAMED],
                "env": {
                    "HF_TOKEN": {"secret": "hf-token", "key": "token"},
                    "MIRROR": HF,
                    "WANDB_API_KEY": NAMED,
                },
            },
        )
        assert created.status_code == 201, created.text
        for version, uri in (
            ("v1", "s3://models/chat/v1"),
            ("v2", f"https://deploy:{URI_PASSWORD}@models.example.com/chat/v2"),
        ):
            registered = admin.post(
                "/v1/models/chat/versions",
                json={"version": version, "artifact_uri": uri, "env": {"GITHUB_TOKEN": HF}},
            )
            assert registered.status_code == 201, registered.text
        started = admin.post("/v1/models/chat/rollouts", json={"version": "v1"})
        assert started.status_code == 201, started.text
        viewer = admin.post("/v1/tokens", json={"name": "reader", "role": "viewer"})
        assert viewer.status_code == 201, viewer.text
        token: str = viewer.json()["token"]
        return token


def test_a_viewer_sees_no_credential_on_any_page(tmp_path: Path) -> None:
    (tmp_path / "server").mkdir()
    with live_server(tmp_path / "server") as (url, _), chromium(tmp_path / "profile") as context:
        viewer = _history(url)
        page = context.new_page()
        answers: list[tuple[str, str]] = []

        def keep(response: Any) -> None:
            if "/v1/" in response.url:
                answers.append((response.url, response.text()))

        page.on("response", keep)
        sign_in(page, url, viewer)
        page.click("#models a[href='#/models/chat']")
        page.wait_for_selector('body[data-ready="#/models/chat"]', timeout=WAIT)
        row = page.locator("#versions tr[data-version=v2]")
        sync_api.expect(row).to_contain_text(
            "https://deploy:***redacted***@models.example.com/chat/v2"
        )
        model_text = page.inner_text("body")
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "model-credentials-redacted.png"), full_page=True)
        page.click("#rollouts tbody tr")
        page.wait_for_selector('body[data-ready^="#/rollouts/"]', timeout=WAIT)
        rollout_text = page.inner_text("body")
        page.close()

    assert {u.split("/v1/", 1)[1].split("?")[0] for u, _ in answers} >= {
        "models",
        "models/chat",
        "models/chat/versions",
        "models/chat/rollouts",
    }
    for where, text in [("model page", model_text), ("rollout page", rollout_text), *answers]:
        for secret in SECRETS:
            assert secret not in text, f"a credential in {where}"
