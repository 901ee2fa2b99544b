"""vLLM's runtime LoRA API over HTTP: list, load and unload adapters on one server.

Answers are classified the way the rollout engine needs them (vLLM 0.33's codes): an
adapter already loaded is a success (loading is idempotent), unloading one that is not there
is a success, a server without the runtime API (FastAPI's bare 404), an adapter whose files
are not found (404) or that fails to load (500 with vLLM's error body: a rank over
``--max-lora-rank``, a bad config) is a permanent error, a timeout, a 429 or a gateway's 5xx
is a passing one. Unloading in vLLM only drops the name from the server's registry (the
weights stay cached until evicted, vllm#54839): a rollout never reloads a name in place.
"""

from __future__ import annotations

import httpx

from controlplane.kube.adapters import AdapterError
from controlplane.redaction import mask_text


def _message(response: httpx.Response) -> str:
    """The server's words, as kept in a rollout's events and reason (which every viewer
    reads): vLLM echoes the adapter's path, and an artifact URI may hold a password."""
    return mask_text(_text(response))


def _text(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:500]
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict) and error.get("message"):
            return str(error["message"])[:500]  # vLLM's {"error": {...}}
        for key in ("message", "detail"):  # older vLLM's flat error; FastAPI's 404
            if body.get(key):
                return str(body[key])[:500]
    return response.text[:500]


def _structured(response: httpx.Response) -> bool:
    """vLLM's own error answer (not a proxy's or a server's generic one)."""
    try:
        body = response.json()
    except ValueError:
        return False
    return isinstance(body, dict) and ("error" in body or body.get("object") == "error")


class VllmAdmin:
    """List, load and unload LoRA adapters on one vLLM server."""

    def __init__(self, client: httpx.Client | None = None, *, timeout: float = 30.0) -> None:
        self.client = client or httpx.Client(timeout=timeout, trust_env=False)

    def close(self) -> None:
        self.client.close()

    def adapters(self, url: str, base: str | None = None) -> frozenset[str]:
        """The adapters the server lists (``/v1/models`` entries with a parent)."""
        try:
            response = self.client.get(f"{url}/v1/models", timeout=5.0)
            response.raise_for_status()
            data = response.json().get("data") or []
        except (httpx.HTTPError, ValueError, AttributeError) as error:
            raise AdapterError(f"cannot list its models: {error}", permanent=False) from error
        return frozenset(
            str(m["id"])
            for m in data
            if isinstance(m, dict) and m.get("parent") and (base is None or m["id"] != base)
        )

    def load(self, url: str, name: str, path: str) -> None:
        try:
            response = self.client.post(
                f"{url}/v1/load_lora_adapter", json={"lora_name": name, "lora_path": path}
            )
        except httpx.HTTPError as error:
            raise AdapterError(f"load {name}: {error}", permanent=False) from error
        if response.is_success:
            return
        message = _message(response)
        if response.status_code == 400 and "already been loaded" in message:
            return
        if response.status_code in (404, 405) and "lora" not in message.lower():
            raise AdapterError(
                f"load {name}: the server has no runtime LoRA API (HTTP "
                f"{response.status_code}): start vLLM with --enable-lora and "
                "VLLM_ALLOW_RUNTIME_LORA_UPDATING=True",
                permanent=True,
            )
        # vLLM answers 500 with its error body when the adapter itself fails to load (a
        # rank over --max-lora-rank, a bad config): trying again will not help; a gateway's
        # 502-504, a 429 or a bare 500 may pass
        if response.status_code == 429 or (
            response.status_code >= 500
            and not (response.status_code == 500 and _structured(response))
        ):
            raise AdapterError(
                f"load {name}: HTTP {response.status_code}: {message}", permanent=False
            )
        raise AdapterError(f"load {name}: HTTP {response.status_code}: {message}", permanent=True)

    def unload(self, url: str, name: str) -> None:
        try:
            response = self.client.post(f"{url}/v1/unload_lora_adapter", json={"lora_name": name})
        except httpx.HTTPError as error:
            raise AdapterError(f"unload {name}: {error}", permanent=False) from error
        if response.is_success:
            return
        if response.status_code == 404 and _structured(response):
            return  # vLLM's own "cannot be found": not there (any more), what we wanted
        if response.status_code in (404, 405):  # a bare 404: no runtime LoRA API here
            raise AdapterError(
                f"unload {name}: the server has no runtime LoRA API (HTTP "
                f"{response.status_code}): start vLLM with VLLM_ALLOW_RUNTIME_LORA_UPDATING=True",
                permanent=True,
            )
        raise AdapterError(
            f"unload {name}: HTTP {response.status_code}: {_message(response)}",
            permanent=response.status_code < 500,
        )
