"""Settings of the control plane, read once from the environment (prefix ``CONTROLPLANE_``).

Unsafe combinations are refused here, at start, with a message that says what to set;
this module must never log or print a secret value.
"""

from __future__ import annotations

import functools
import ipaddress
from enum import StrEnum
from typing import Self

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
DEV_ADMIN_TOKEN = "dev-admin-token"  # noqa: S105 - a well-known value, accepted only in dev mode


class LogFormat(StrEnum):
    TEXT = "text"
    JSON = "json"


class ConfigError(ValueError):
    """The settings cannot be used as given; the message says which variable to change."""


class DatabaseSettings(BaseSettings):
    """What the ``db`` commands need: no credentials beyond the database URL."""

    # hide_input_in_errors: a refused setting's message must not echo the other inputs
    # (the admin token, a database URL with its password)
    model_config = SettingsConfigDict(
        env_prefix="CONTROLPLANE_", extra="ignore", hide_input_in_errors=True
    )

    database_url: str = Field(
        default="sqlite:///./controlplane.db",
        description="SQLAlchemy URL. SQLite file by default; postgresql://user:pw@host/db "
        "in production (the psycopg 3 driver is used).",
    )
    database_pool_size: int = Field(default=10, ge=1, le=200)
    auto_migrate: bool = Field(
        default=True, description="Upgrade the schema to the latest migration on `serve`."
    )


MIN_SECRET_KEY_CHARS = 32


class SealingSettings(DatabaseSettings):
    """What reading and sealing stored secrets needs (``serve`` and ``db reseal``)."""

    secret_keys: SecretStr | None = Field(
        default=None,
        description="Comma-separated keys (each at least 32 random characters, e.g. "
        "`openssl rand -hex 32`) that seal webhook secrets at rest. The first seals; the "
        "others still unseal, for rotation.",
    )

    @model_validator(mode="after")
    def _check_secret_keys(self) -> Self:
        if self.secret_keys is not None and not self.secret_key_list:
            raise ConfigError("CONTROLPLANE_SECRET_KEYS is empty: unset it, or give it a key.")
        for position, key in enumerate(self.secret_key_list, 1):
            if len(key) < MIN_SECRET_KEY_CHARS:
                raise ConfigError(
                    f"CONTROLPLANE_SECRET_KEYS: key {position} has {len(key)} characters; "
                    f"each key needs at least {MIN_SECRET_KEY_CHARS} (e.g. `openssl rand -hex 32`)"
                )
        return self

    @property
    def secret_key_list(self) -> list[str]:
        if self.secret_keys is None:
            return []
        return [k.strip() for k in self.secret_keys.get_secret_value().split(",") if k.strip()]


class Settings(SealingSettings):
    """Every knob of the control plane; each field maps to ``CONTROLPLANE_<FIELD>``."""

    # --- security --------------------------------------------------------------------
    admin_token: SecretStr | None = Field(
        default=None,
        description="Bootstrap admin bearer token. Required unless dev_mode is on.",
    )
    token_cache_seconds: float = Field(
        default=5.0,
        ge=0,
        le=60,
        description="How long a process remembers a token it resolved, instead of reading "
        "it from the database on every request. A token revoked through another process or "
        "replica is still accepted here for up to this long (the process that revoked it "
        "refuses it at once); 0: read every request's token from the database.",
    )
    dev_mode: bool = Field(
        default=False,
        description="Local development only: allows starting without an admin token "
        f"(the admin token is then {DEV_ADMIN_TOKEN!r}).",
    )

    # --- API -------------------------------------------------------------------------
    max_body_bytes: int = Field(
        default=1_048_576, ge=1024, description="Requests with a larger body get 413."
    )
    page_size_max: int = Field(default=500, ge=1)
    server_timing: bool = Field(
        default=False,
        description="Add 'Server-Timing: app;dur=<ms>' to every answer: the time the "
        "application took, from the parsed request to the start of the answer (for "
        "benchmarks; see controlplane/api/timing.py).",
    )

    # --- rollouts --------------------------------------------------------------------
    kubeconfig: str | None = Field(
        default=None,
        description="Kubeconfig file of the cluster to deploy to; $KUBECONFIG, then the "
        "in-cluster service account, when unset.",
    )
    kube_context: str | None = Field(default=None)
    reconcile_enabled: bool = Field(
        default=True, description="Run the rollout reconcile loop in this process."
    )
    reconcile_interval_seconds: float = Field(default=5.0, gt=0, le=300)
    rollout_lease_seconds: float = Field(
        default=6.0,
        ge=1,
        le=300,
        description="How long a replica's claim on a rollout lasts without renewal: a "
        "heartbeat renews it every third of this while a pass runs, and a crashed replica's "
        "rollouts are taken over after at most this long. Replicas' clocks must agree to "
        "within a third of it.",
    )
    reconcile_workers: int = Field(
        default=4,
        ge=1,
        le=64,
        description="Reconcile passes run side by side (never two of one rollout). Each "
        "takes a database connection or two: keep it within database_pool_size * 1.5. "
        "More only helps while the API server keeps up (make bench-scale: on 2 cores, 4 "
        "finished 300 rollouts as fast as 8, with half the pass latency).",
    )
    kube_cache: bool = Field(
        default=True,
        description="Read the objects the control plane owns from a watch-fed cache (and "
        "skip applies that would change nothing) instead of asking the API server on every "
        "pass. Needs list and watch on them (the chart's roles grant it); falls back to "
        "direct reads whenever the watch is not current.",
    )
    kube_cache_stale_seconds: float = Field(
        default=5.0,
        gt=0,
        le=300,
        description="How long the cache still answers once its watch broke (the API server "
        "restarting); after that, until it follows again, reads go to the API server.",
    )
    prometheus_url: str | None = Field(
        default=None, description="Prometheus base URL for canary analysis."
    )
    pod_address_map: str | None = Field(
        default=None,
        description="Local clusters only: a JSON file naming where each pod's server "
        'answers ({"<namespace>/<pod>": "http://127.0.0.1:<port>"}), for kwok pods that run '
        "no server (the demo and the tests run simulated ones). Unset in a real cluster: the "
        "control plane reaches a base pool's pods at their IP.",
    )
    prometheus_pod_label: str = Field(
        default="pod",
        pattern=r"^[A-Za-z_][A-Za-z0-9_]*$",
        description="The label that names an inference pod on its series (the scrape configs "
        "in manifests/monitoring set `pod`): the sequential judge reads latency pod by pod, so "
        "that a pod on a slow node is told apart from a slow version.",
    )

    # --- webhooks ------------------------------------------------------------------------
    webhook_enabled: bool = Field(
        default=True, description="Send webhook deliveries from this process."
    )
    webhook_timeout_seconds: float = Field(
        default=5.0, gt=0, le=60, description="Per-attempt timeout of a delivery."
    )
    webhook_max_attempts: int = Field(
        default=8, ge=1, le=50, description="Attempts before a delivery is marked failed."
    )
    webhook_backoff_base_seconds: float = Field(
        default=10.0,
        gt=0,
        le=3600,
        description="Wait after the first failed attempt; doubled after each further one.",
    )
    webhook_backoff_max_seconds: float = Field(default=3600.0, gt=0, le=86_400)
    webhook_workers: int = Field(default=4, ge=1, le=64)
    webhook_allow_private_networks: bool = Field(
        default=False,
        description="Let webhooks reach internal addresses (loopback, private, link-local). "
        "Off by default: a webhook must not become a way into the cluster's network.",
    )
    webhook_allowed_cidrs: str = Field(
        default="",
        description="Comma-separated networks webhooks may reach even though internal, "
        "e.g. '10.96.0.0/12' for receivers inside the cluster.",
    )

    # --- logging ---------------------------------------------------------------------
    log_level: str = Field(default="INFO")
    log_format: LogFormat = Field(default=LogFormat.TEXT)

    @model_validator(mode="after")
    def _require_admin_token(self) -> Self:
        if self.admin_token is None and not self.dev_mode:
            raise ConfigError(
                "CONTROLPLANE_ADMIN_TOKEN is not set: set it to a long random secret "
                "(e.g. `openssl rand -hex 32`), or set CONTROLPLANE_DEV_MODE=true for a "
                "local, insecure development server."
            )
        if self.admin_token is not None and not self.admin_token.get_secret_value().strip():
            raise ConfigError("CONTROLPLANE_ADMIN_TOKEN is empty: give it a non-empty secret.")
        try:
            self.webhook_allowed_networks  # noqa: B018 - parses, raises on a bad one
        except ValueError as error:
            raise ConfigError(f"CONTROLPLANE_WEBHOOK_ALLOWED_CIDRS: {error}") from error
        return self

    @property
    def webhook_allowed_networks(self) -> tuple[IPNetwork, ...]:
        """``webhook_allowed_cidrs`` parsed; a ValueError that says which item is wrong."""
        networks: list[IPNetwork] = []
        for item in (i.strip() for i in self.webhook_allowed_cidrs.split(",")):
            if not item:
                continue
            try:
                networks.append(ipaddress.ip_network(item, strict=False))
            except ValueError as error:
                raise ValueError(
                    f"{item!r} is not a network in CIDR notation (e.g. 10.96.0.0/12): {error}"
                ) from error
        return tuple(networks)

    @property
    def effective_admin_token(self) -> str:
        if self.admin_token is not None:
            return self.admin_token.get_secret_value()
        return DEV_ADMIN_TOKEN

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")


@functools.cache
def get_settings() -> Settings:
    """The process-wide settings, read from the environment on first use."""
    return Settings()
