"""A small client of the control plane's REST API, for the CLI.

It turns problem+json responses into :class:`ApiError` with the server's message, and a
server that cannot be reached into :class:`UnreachableError` that says where it looked.
The token is sent as a header and never printed.
"""

from __future__ import annotations

from typing import Any

import httpx


class ApiError(Exception):
    def __init__(self, status: int, code: str, detail: str, errors: list[dict[str, Any]]):
        super().__init__(detail)
        self.status = status
        self.code = code
        self.detail = detail
        self.errors = errors


class UnreachableError(Exception):
    pass


class Client:
    def __init__(self, base_url: str, token: str | None, *, timeout: float = 30.0) -> None:
        headers = {"User-Agent": "controlplane-cli"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self.base_url = base_url.rstrip("/")
        self._http = httpx.Client(base_url=self.base_url, headers=headers, timeout=timeout)

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *_: object) -> None:
        self._http.close()

    def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: dict[str, Any] | None = None,
    ) -> Any:
        clean_params = {k: v for k, v in (params or {}).items() if v is not None}
        try:
            response = self._http.request(method, path, json=json, params=clean_params)
        except httpx.TransportError as error:
            raise UnreachableError(
                f"cannot reach the control plane at {self.base_url} ({type(error).__name__}): "
                "is it running? Set --url or CONTROLPLANE_URL"
            ) from error
        if response.status_code >= 400:
            raise _api_error(response)
        if response.status_code == 204 or not response.content:
            return None
        return response.json()

    def get(self, path: str, **params: Any) -> Any:
        return self.request("GET", path, params=params)

    def post(self, path: str, body: Any) -> Any:
        return self.request("POST", path, json=body)

    def patch(self, path: str, body: Any) -> Any:
        return self.request("PATCH", path, json=body)

    def delete(self, path: str) -> Any:
        return self.request("DELETE", path)

    def paginate(self, path: str, *, limit: int | None, **params: Any) -> list[dict[str, Any]]:
        """All items of a list endpoint (or the first ``limit``), following cursors."""
        items: list[dict[str, Any]] = []
        cursor: str | None = None
        while True:
            page_size = min(limit - len(items), 500) if limit else 500
            page = self.get(path, cursor=cursor, limit=page_size, **params)
            items.extend(page["items"])
            cursor = page.get("next_cursor")
            if not cursor or (limit and len(items) >= limit):
                return items


def _api_error(response: httpx.Response) -> ApiError:
    try:
        body = response.json()
    except ValueError:
        text = response.text[:300]
        return ApiError(
            response.status_code, "http_error", f"HTTP {response.status_code}: {text}", []
        )
    if not isinstance(body, dict):
        return ApiError(response.status_code, "http_error", f"HTTP {response.status_code}", [])
    return ApiError(
        response.status_code,
        str(body.get("code", "http_error")),
        str(body.get("detail") or body.get("title") or f"HTTP {response.status_code}"),
        list(body.get("errors") or []),
    )
