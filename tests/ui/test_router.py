"""/ui serves the page and its assets, public and data-free, with a strict CSP."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from controlplane import db
from controlplane.api.routers import ui
from tests.ui.server import ADMIN_TOKEN, ui_app


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    url = f"sqlite:///{tmp_path / 'cp.db'}"
    db.upgrade(url)
    with TestClient(ui_app(url)) as client:
        yield client


def test_the_page_is_served_without_a_token_and_holds_no_data(client: TestClient) -> None:
    response = client.get("/ui")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    csp = response.headers["content-security-policy"]
    assert "script-src 'self'" in csp
    assert "default-src 'none'" in csp
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "no-referrer"
    assert "/ui/app.js" in response.text
    assert ADMIN_TOKEN not in response.text
    assert client.get("/ui/", follow_redirects=False).headers["location"] == "/ui"


@pytest.mark.parametrize(
    ("name", "media_type"),
    [("app.js", "text/javascript"), ("style.css", "text/css"), ("index.html", "text/html")],
)
def test_assets(client: TestClient, name: str, media_type: str) -> None:
    response = client.get(f"/ui/{name}")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith(media_type)
    assert response.content == (ui.STATIC / name).read_bytes()


@pytest.mark.parametrize(
    "path", ["/ui/nope.js", "/ui/..%2Fapp.py", "/ui/%2E%2E%2Frouters%2Fui.py", "/ui/ui.py"]
)
def test_nothing_else_is_served(client: TestClient, path: str) -> None:
    assert client.get(path).status_code == 404


def test_the_data_still_needs_a_token(client: TestClient) -> None:
    assert client.get("/v1/models").status_code == 401


def test_the_script_never_writes_html() -> None:
    """API text reaches the page only as text nodes: no HTML sinks in the script."""
    source = (ui.STATIC / "app.js").read_text()
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("):
        assert sink not in source, sink
    assert "localStorage" not in source  # the token lives in sessionStorage only
