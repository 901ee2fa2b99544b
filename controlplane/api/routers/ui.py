"""/ui: a read-only history page (models, versions, rollouts, their timelines and analysis
charts), served from ``controlplane/api/static`` with no build step.

The page and its assets are public and hold no data: the browser asks for a token, keeps it
in sessionStorage and reads the /v1 API with it, so the page sees exactly what the token may
see (a viewer token is enough). The content security policy allows only our own scripts,
styles and API, so API text can never run as code even if a renderer slipped.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, HTTPException, status
from fastapi.responses import FileResponse, RedirectResponse

from controlplane.api.routing import StrictRoute

STATIC = Path(__file__).resolve().parent.parent / "static"

_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
}

_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    # small files that change with each release: revalidate rather than go stale
    "Cache-Control": "no-cache",
}

router = APIRouter(tags=["ui"], include_in_schema=False, route_class=StrictRoute)


def _assets() -> dict[str, Path]:
    """The files the page may be served from: a fixed list, never a path from the URL."""
    return {p.name: p for p in STATIC.iterdir() if p.is_file() and p.suffix in _TYPES}


def _file(path: Path) -> FileResponse:
    return FileResponse(path, media_type=_TYPES[path.suffix], headers=_HEADERS)


@router.get("/", summary="The root: the history page")
def root() -> RedirectResponse:
    return RedirectResponse("/ui", status_code=status.HTTP_307_TEMPORARY_REDIRECT)


@router.get("/ui", summary="The history page")
def index() -> FileResponse:
    return _file(STATIC / "index.html")


@router.get("/ui/", summary="The history page")
def index_slash() -> RedirectResponse:
    return RedirectResponse("/ui", status_code=status.HTTP_308_PERMANENT_REDIRECT)


@router.get("/ui/{name}", summary="A static asset of the history page")
def asset(name: str) -> FileResponse:
    path = _assets().get(name)
    if path is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no such file: /ui/{name}")
    return _file(path)
