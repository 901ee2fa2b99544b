"""Headless Chromium for page tests: Debian's ``chromium`` (scripts/ensure-chromium.sh),
driven by Playwright without downloading a browser. Screenshots go to .artifacts/ui/."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / ".artifacts" / "ui"
CHROMIUM = os.environ.get("CONTROLPLANE_CHROMIUM_BIN", "/usr/bin/chromium")
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
WAIT = 15_000  # ms


@contextmanager
def chromium(profile: Path) -> Iterator[Any]:
    """A persistent headless browser context (a ``playwright.sync_api.BrowserContext``)."""
    sync_api = pytest.importorskip(
        "playwright.sync_api", reason="playwright is not installed (the dev dependency group)"
    )
    if not Path(CHROMIUM).exists():
        pytest.fail(f"no Chromium at {CHROMIUM}: run scripts/ensure-chromium.sh")
    with sync_api.sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(profile),
            executable_path=CHROMIUM,
            headless=True,
            args=FLAGS,
            viewport={"width": 1440, "height": 1000},
        )
        try:
            yield context
        finally:
            context.close()


def sign_in(page: Any, url: str, token: str) -> None:
    """Open the page and sign in with ``token``; returns when the models view is ready."""
    page.goto(f"{url}/ui")
    page.fill("#token", token)
    page.click("#login button[type=submit]")
    page.wait_for_selector('body[data-ready="#/"]', timeout=WAIT)


def page_errors(page: Any) -> list[str]:
    """The page's console errors and uncaught exceptions, collected from now on (a test
    ends by asserting the list is empty)."""
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(str(e)))
    return problems


def open_rollout(page: Any, rollout_id: int) -> None:
    """The signed-in page's view of one rollout, once it has rendered."""
    page.goto(f"{page.url.split('#')[0]}#/rollouts/{rollout_id}")
    page.wait_for_selector(f'body[data-ready="#/rollouts/{rollout_id}"]', timeout=WAIT)
