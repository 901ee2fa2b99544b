"""Typer commands. Server-side commands import the server lazily so client commands
start fast and work without the server's dependencies configured."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer

from controlplane.cli import analysis
from controlplane.cli.client import ApiError, Client, UnreachableError
from controlplane.cli.output import Column, details, emit, table

app = typer.Typer(
    name="controlplane",
    help="Deployment control plane for fine-tuned LLMs on Kubernetes.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
db_app = typer.Typer(help="Database schema migrations.", no_args_is_help=True)
models_app = typer.Typer(
    help="Models: named deployables and their serving defaults.", no_args_is_help=True
)
versions_app = typer.Typer(
    help="Versions of a model: immutable, registered once.", no_args_is_help=True
)
tokens_app = typer.Typer(help="API tokens (admin).", no_args_is_help=True)
audit_app = typer.Typer(help="The audit trail of every write.", no_args_is_help=True)
rollout_app = typer.Typer(help="Rollouts: start, watch and steer them.", no_args_is_help=True)
pools_app = typer.Typer(
    help="Base pools: the pods of a base model that serve adapter models.", no_args_is_help=True
)
app.add_typer(db_app, name="db")
app.add_typer(models_app, name="models")
app.add_typer(versions_app, name="versions")
app.add_typer(tokens_app, name="tokens")
app.add_typer(audit_app, name="audit")
app.add_typer(rollout_app, name="rollout")
app.add_typer(pools_app, name="pools")

EXIT_API_ERROR = 1
EXIT_CONFIG = 2
EXIT_UNREACHABLE = 3


class Output(StrEnum):
    TABLE = "table"
    JSON = "json"


UrlOpt = Annotated[
    str,
    typer.Option("--url", envvar="CONTROLPLANE_URL", help="Control plane URL.", show_envvar=True),
]
TokenOpt = Annotated[
    str | None,
    typer.Option(
        "--token",
        envvar="CONTROLPLANE_TOKEN",
        help="Bearer token.",
        show_envvar=True,
        show_default=False,
    ),
]
OutputOpt = Annotated[Output, typer.Option("--output", "-o", help="table or json.")]
DEFAULT_URL = "http://127.0.0.1:8000"


def fail(message: str, code: int = EXIT_API_ERROR) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code)


@contextmanager
def client(url: str, token: str | None) -> Iterator[Client]:
    try:
        with Client(url, token) as api:
            yield api
    except ApiError as error:
        typer.echo(f"error: {error.detail}", err=True)
        for issue in error.errors:  # those the message does not already give
            if str(issue.get("message")) not in error.detail:
                typer.echo(f"  - {issue.get('field')}: {issue.get('message')}", err=True)
        raise typer.Exit(EXIT_API_ERROR) from None
    except UnreachableError as error:
        raise fail(str(error), EXIT_UNREACHABLE) from None


def parse_pairs(pairs: list[str] | None, what: str) -> dict[str, str] | None:
    if pairs is None:
        return None
    result = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise fail(f"{what} {pair!r} is not KEY=VALUE", EXIT_CONFIG)
        result[key] = value
    return result


SECRET_PREFIX = "secret:"  # noqa: S105 - the prefix of a reference, no secret


def parse_env(pairs: list[str] | None) -> dict[str, Any] | None:
    """``--env KEY=VALUE``, or ``--env KEY=secret:NAME/KEY``: the value read from key KEY of
    the Kubernetes Secret NAME (in the model's namespace) when the pod starts."""
    plain = parse_pairs(pairs, "--env")
    if plain is None:
        return None
    env: dict[str, Any] = {}
    for name, value in plain.items():
        if not value.startswith(SECRET_PREFIX):
            env[name] = value
            continue
        secret, slash, key = value.removeprefix(SECRET_PREFIX).partition("/")
        if not slash or not secret or not key:
            raise fail(
                f"--env {name}={value!r}: a Secret reference is {name}=secret:NAME/KEY "
                "(e.g. HF_TOKEN=secret:hf-token/token)",
                EXIT_CONFIG,
            )
        env[name] = {"secret": secret, "key": key}
    return env


ENV_HELP = "KEY=VALUE, or KEY=secret:NAME/KEY to read it from a key of a Kubernetes Secret"


def load_json(value: str | None, what: str) -> Any:
    """Inline JSON, or @path to a JSON file."""
    if value is None:
        return None
    try:
        text = Path(value[1:]).read_text() if value.startswith("@") else value
        return json.loads(text)
    except (OSError, ValueError) as error:
        raise fail(f"{what} is not valid JSON (or @file): {error}", EXIT_CONFIG) from None


# ---------------------------------------------------------------------------------------
# server side


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to bind.")] = 8000,
    migrate: Annotated[
        bool, typer.Option("--migrate/--no-migrate", help="Upgrade the schema before serving.")
    ] = True,
    workers: Annotated[
        int,
        typer.Option(
            min=1,
            max=64,
            help="Worker processes. Each is a replica as the rollouts' and webhooks' leases "
            "see it (API, reconcile loop, webhook sender); the leases keep them from acting "
            "twice. On SQLite they read in parallel but write one at a time (SQLite has one "
            "writer): more workers make reads faster, not writes.",
        ),
    ] = 1,
) -> None:
    """Run the API server (upgrading the database schema first, unless --no-migrate)."""
    import uvicorn

    from controlplane import db
    from controlplane.api import create_app
    from controlplane.logs import configure_logging

    settings = _load_settings()  # in this process first: a bad setting stops it here
    configure_logging(settings)
    if migrate and settings.auto_migrate:
        db.upgrade(settings.database_url)
    options: dict[str, Any] = {
        "host": host,
        "port": port,
        "log_config": None,
        "access_log": True,
        "proxy_headers": False,
    }
    if workers == 1:
        uvicorn.run(create_app(settings), **options)
    else:  # each worker builds its app from the same environment
        uvicorn.run(
            "controlplane.api.app:from_environment", factory=True, workers=workers, **options
        )


def _load_settings(kind: Any = None) -> Any:
    """Settings of ``kind`` (``Settings`` by default) from the environment; a bad value
    exits with the configuration error's message."""
    from pydantic import ValidationError

    from controlplane.config import Settings

    try:
        return (kind or Settings)()
    except ValidationError as error:
        messages = [str(e.get("msg", "")).removeprefix("Value error, ") for e in error.errors()]
        raise fail("; ".join(messages), EXIT_CONFIG) from None


@db_app.command("upgrade")
def db_upgrade(
    revision: Annotated[str, typer.Argument(help="Target revision.")] = "head",
) -> None:
    """Apply migrations up to REVISION (the latest by default)."""
    from controlplane import db

    url = _database_url()
    db.upgrade(url, revision)
    typer.echo(f"database at revision {db.current_revision(url)}")


@db_app.command("current")
def db_current() -> None:
    """Print the schema revision the database is at."""
    from controlplane import db

    typer.echo(db.current_revision(_database_url()) or "empty (no migrations applied)")


@db_app.command("reseal")
def db_reseal() -> None:
    """Seal every webhook signing secret with the first of CONTROLPLANE_SECRET_KEYS: after
    setting a key for the first time, or after putting a new key first (rotation)."""
    import getpass

    from controlplane.config import SealingSettings
    from controlplane.db import Database
    from controlplane.sealing import Sealer, SealingError
    from controlplane.webhooks import service

    settings = _load_settings(SealingSettings)
    sealer = Sealer.from_settings(settings)
    if not sealer.enabled:
        raise fail(
            "CONTROLPLANE_SECRET_KEYS is not set: set it to the key to seal with "
            "(e.g. `openssl rand -hex 32`; the old keys after it, comma-separated)",
            EXIT_CONFIG,
        )
    database = Database(settings.database_url, pool_size=1)
    try:
        with database.session() as session:
            resealed, current = service.reseal_secrets(
                session, sealer=sealer, actor=f"cli:{getpass.getuser()}"
            )
    except SealingError as error:
        raise fail(f"nothing was changed: {error}", EXIT_CONFIG) from None
    finally:
        database.dispose()
    typer.echo(f"resealed {resealed} webhook secret(s); {current} already sealed with the key")


def _database_url() -> str:
    # db commands need no admin token: they read only the database settings.
    from controlplane.config import DatabaseSettings

    return DatabaseSettings().database_url


# ---------------------------------------------------------------------------------------
# models

MODEL_COLUMNS: list[Column] = [
    ("NAME", lambda m: m["name"]),
    ("NAMESPACE", lambda m: m["namespace"]),
    ("IMAGE", lambda m: m["image"] or f"(adapters on pool {m.get('base_pool')})"),
    ("GPUS/REPLICA", lambda m: m["gpus_per_replica"]),
    ("REPLICAS", lambda m: m["replicas"]),
    ("GPU BUDGET", lambda m: m["gpu_budget"]),
    ("ROUTING", lambda m: m["routing_mode"]),
]
MODEL_FIELDS = [
    "name",
    "namespace",
    "description",
    "base_pool",
    "image",
    "gpus_per_replica",
    "gpu_resource",
    "replicas",
    "port",
    "args",
    "env",
    "gpu_budget",
    "routing_mode",
    "gateway",
    "endpoint_picker",
    "health_path",
    "labels",
    "created_at",
    "created_by",
    "updated_at",
    "updated_by",
    "default_strategy",
]


@models_app.command("create")
def models_create(
    name: Annotated[str, typer.Argument(help="Model name (a Kubernetes name).")],
    image: Annotated[
        str | None, typer.Option(help="Container image of the inference server.")
    ] = None,
    base_pool: Annotated[
        str | None,
        typer.Option(help="Serve the versions as LoRA adapters on this base pool (no image)."),
    ] = None,
    namespace: Annotated[str, typer.Option(help="Kubernetes namespace.")] = "default",
    gpus: Annotated[int, typer.Option("--gpus", help="GPUs per replica.")] = 1,
    gpu_resource: Annotated[str, typer.Option(help="GPU resource name.")] = "nvidia.com/gpu",
    replicas: Annotated[int, typer.Option(help="Stable replicas.")] = 1,
    port: Annotated[int, typer.Option(help="Container port.")] = 8000,
    gpu_budget: Annotated[int | None, typer.Option(help="Most GPUs a rollout may hold.")] = None,
    routing: Annotated[
        str, typer.Option(help="replicas, gateway-api or inference-pool.")
    ] = "replicas",
    gateway: Annotated[
        str | None,
        typer.Option(help="namespace/name of the Gateway (gateway-api, inference-pool)."),
    ] = None,
    endpoint_picker: Annotated[
        str | None,
        typer.Option(
            help="inference-pool: each version's endpoint picker, JSON or @file "
            '(e.g. {"service_account": "epp", "config_map": "epp-plugins"}).'
        ),
    ] = None,
    arg: Annotated[list[str] | None, typer.Option("--arg", help="Server arg (repeat).")] = None,
    env: Annotated[list[str] | None, typer.Option("--env", help=f"{ENV_HELP} (repeat).")] = None,
    label: Annotated[list[str] | None, typer.Option("--label", help="KEY=VALUE (repeat).")] = None,
    description: Annotated[str, typer.Option(help="What this model is.")] = "",
    url: UrlOpt = DEFAULT_URL,
    token: TokenOpt = None,
    output: OutputOpt = Output.TABLE,
) -> None:
    """Create a model with its serving defaults (or, with --base-pool, a model served as
    LoRA adapters on a base pool's pods: no image, no GPUs of its own)."""
    body: dict[str, Any] = {
        "name": name,
        "namespace": namespace,
        "labels": parse_pairs(label, "--label") or {},
        "description": description,
    }
    if base_pool is not None:
        if image is not None:
            raise fail("--image and --base-pool exclude each other", EXIT_CONFIG)
        body["base_pool"] = base_pool
    else:
        if image is None:
            raise fail("--image is required (or --base-pool, for an adapter model)", EXIT_CONFIG)
        body |= {
            "image": image,
            "gpus_per_replica": gpus,
            "gpu_resource": gpu_resource,
            "replicas": replicas,
            "port": port,
            "gpu_budget": gpu_budget,
            "routing_mode": routing,
            "gateway": gateway,
            "endpoint_picker": load_json(endpoint_picker, "--endpoint-picker"),
            "args": arg or [],
            "env": parse_env(env) or {},
        }
    with client(url, token) as api:
        created = api.post("/v1/models", body)
    emit(created, output, lambda m: f"model {m['name']} created\n" + details(m, MODEL_FIELDS))


@models_app.command("list")
def models_list(
    namespace: Annotated[str | None, typer.Option(help="Only this namespace.")] = None,
    limit: Annotated[int | None, typer.Option(help="At most this many.")] = None,
    url: UrlOpt = DEFAULT_URL,
    token: TokenOpt = None,
    output: OutputOpt = Output.TABLE,
) -> None:
    """List models, newest first."""
    with client(url, token) as api:
        items = api.paginate("/v1/models", limit=limit, namespace=namespace)
    emit(items, output, lambda rows: table(rows, MODEL_COLUMNS))


@models_app.command("show")
def models_show(
    name: str, url: UrlOpt = DEFAULT_URL, token: TokenOpt = None, output: OutputOpt = Output.TABLE
) -> None:
    """Show one model."""
    with client(url, token) as api:
        model = api.get(f"/v1/models/{name}")
    emit(model, output, lambda m: details(m, MODEL_FIELDS))


@models_app.command("update")
def models_update(
    name: str,
    image: Annotated[str | None, typer.Option()] = None,
    gpus: Annotated[int | None, typer.Option("--gpus")] = None,
    replicas: Annotated[int | None, typer.Option()] = None,
    port: Annotated[int | None, typer.Option()] = None,
    gpu_budget: Annotated[int | None, typer.Option()] = None,
    arg: Annotated[list[str] | None, typer.Option("--arg", help="Replaces the args.")] = None,
    env: Annotated[
        list[str] | None,
        typer.Option(
            "--env",
            help=f"{ENV_HELP}; replaces the env (a value shown redacted, "
            "sent back as shown, keeps its value).",
        ),
    ] = None,
    default_strategy: Annotated[
        str | None, typer.Option(help='Default rollout steps, JSON or @file: {"steps": [...]}.')
    ] = None,
    url: UrlOpt = DEFAULT_URL,
    token: TokenOpt = None,
    output: OutputOpt = Output.TABLE,
) -> None:
    """Change a model's serving defaults (only the options given)."""
    body: dict[str, Any] = {
        "image": image,
        "gpus_per_replica": gpus,
        "replicas": replicas,
        "port": port,
        "gpu_budget": gpu_budget,
        "args": arg,
        "env": parse_env(env),
        "default_strategy": load_json(default_strategy, "--default-strategy"),
    }
    body = {key: value for key, value in body.items() if value is not None}
    if not body:
        raise fail("nothing to change: give at least one option (see --help)", EXIT_CONFIG)
    with client(url, token) as api:
        model = api.patch(f"/v1/models/{name}", body)
    emit(model, output, lambda m: f"model {m['name']} updated\n" + details(m, MODEL_FIELDS))


@models_app.command("delete")
def models_delete(name: str, url: UrlOpt = DEFAULT_URL, token: TokenOpt = None) -> None:
    """Delete a model and its versions (refused while one is live)."""
    with client(url, token) as api:
        api.delete(f"/v1/models/{name}")
    typer.echo(f"model {name} deleted")


# ---------------------------------------------------------------------------------------
# base pools

POOL_COLUMNS: list[Column] = [
    ("NAME", lambda p: p["name"]),
    ("NAMESPACE", lambda p: p["namespace"]),
    ("BASE MODEL", lambda p: p["base_model"]),
    ("PODS OF", lambda p: p["deployment"] or f"InferencePool {p['inference_pool']}"),
    ("MAX LORAS", lambda p: p["max_loras"]),
    ("MAX RANK", lambda p: p["max_lora_rank"]),
    ("PODS SEEN", lambda p: len(p["pods"]) if p.get("observed_at") else "-"),
]
POOL_FIELDS = [
    "name",
    "namespace",
    "base_model",
    "deployment",
    "inference_pool",
    "port",
    "max_loras",
    "max_lora_rank",
    "description",
    "labels",
    "created_at",
    "created_by",
    "updated_at",
    "updated_by",
    "observed_at",
]
POD_COLUMNS: list[Column] = [
    ("POD", lambda p: p["pod"]),
    ("SERVING", lambda p: "yes" if p["serving"] else "no"),
    ("READY", lambda p: ("yes" if p["ready"] else "no") + (" (gated)" if p["gated"] else "")),
    ("ADAPTERS", lambda p: "?" if p["adapters"] is None else p["adapters"]),
    ("ERROR", lambda p: p["error"]),
]


def _pool_text(pool: dict[str, Any]) -> str:
    text = details(pool, POOL_FIELDS)
    if pool.get("observed_at") is None:
        return (
            text + "\n\nadapters: not read yet (the keeper reads a pool while an adapter on it "
            "needs loading)"
        )
    return (
        text
        + "\n\nadapters per pod:\n"
        + (table(pool["pods"], POD_COLUMNS) if pool["pods"] else "  no pod found")
    )


@pools_app.command("create")
def pools_create(
    name: Annotated[str, typer.Argument(help="The pool's name.")],
    base_model: Annotated[str, typer.Option(help="The base model its pods serve.")],
    max_loras: Annotated[int, typer.Option(help="Adapters a pod holds at once (--max-loras).")],
    deployment: Annotated[
        str | None, typer.Option(help="The base model's Deployment (never changed).")
    ] = None,
    inference_pool: Annotated[
        str | None, typer.Option(help="The InferencePool over the pods.")
    ] = None,
    namespace: Annotated[str, typer.Option(help="Kubernetes namespace.")] = "default",
    port: Annotated[int, typer.Option(help="The pods' serving port.")] = 8000,
    max_lora_rank: Annotated[int, typer.Option(help="The pods' --max-lora-rank.")] = 16,
    label: Annotated[list[str] | None, typer.Option("--label", help="KEY=VALUE (repeat).")] = None,
    description: Annotated[str, typer.Option(help="What this pool is.")] = "",
    url: UrlOpt = DEFAULT_URL,
    token: TokenOpt = None,
    output: OutputOpt = Output.TABLE,
) -> None:
    """Record a base pool: pods of a base model with LoRA enabled, which adapter models
    (models create --base-pool) share."""
    body = {
        "name": name,
        "namespace": namespace,
        "base_model": base_model,
        "deployment": deployment,
        "inference_pool": inference_pool,
        "port": port,
        "max_loras": max_loras,
        "max_lora_rank": max_lora_rank,
        "labels": parse_pairs(label, "--label") or {},
        "description": description,
    }
    with client(url, token) as api:
        created = api.post("/v1/pools", body)
    emit(created, output, lambda p: f"base pool {p['name']} created\n" + details(p, POOL_FIELDS))


@pools_app.command("list")
def pools_list(
    limit: Annotated[int | None, typer.Option(help="At most this many.")] = None,
    url: UrlOpt = DEFAULT_URL,
    token: TokenOpt = None,
    output: OutputOpt = Output.TABLE,
) -> None:
    """List base pools."""
    with client(url, token) as api:
        items = api.paginate("/v1/pools", limit=limit)
    emit(items, output, lambda rows: table(rows, POOL_COLUMNS))


@pools_app.command("show")
def pools_show(
    name: str, url: UrlOpt = DEFAULT_URL, token: TokenOpt = None, output: OutputOpt = Output.TABLE
) -> None:
    """Show a base pool, and which of its pods holds which adapters (as last read)."""
    with client(url, token) as api:
        pool = api.get(f"/v1/pools/{name}")
    emit(pool, output, _pool_text)


@pools_app.command("delete")
def pools_delete(name: str, url: UrlOpt = DEFAULT_URL, token: TokenOpt = None) -> None:
    """Delete a base pool (refused while a model uses it)."""
    with client(url, token) as api:
        api.delete(f"/v1/pools/{name}")
    typer.echo(f"base pool {name} deleted")


# ---------------------------------------------------------------------------------------
# versions

VERSION_COLUMNS: list[Column] = [
    ("VERSION", lambda v: v["version"]),
    ("STATUS", lambda v: v["status"]),
    ("KIND", lambda v: v["artifact_kind"]),
    ("ARTIFACT", lambda v: v["artifact_uri"]),
    ("CREATED", lambda v: v["created_at"][:19].replace("T", " ")),
    ("BY", lambda v: v["created_by"]),
]
VERSION_FIELDS = [
    "model",
    "version",
    "status",
    "status_changed_at",
    "artifact_uri",
    "artifact_kind",
    "base_model",
    "lora_rank",
    "image",
    "args",
    "env",
    "labels",
    "metadata",
    "description",
    "created_at",
    "created_by",
]


@versions_app.command("register")
def versions_register(
    model: Annotated[str, typer.Argument(help="The model.")],
    version: Annotated[str, typer.Argument(help="The new version's name (e.g. v2).")],
    artifact_uri: Annotated[str, typer.Option("--artifact-uri", help="Weights or adapter URI.")],
    kind: Annotated[str, typer.Option(help="weights or lora_adapter.")] = "weights",
    base_model: Annotated[str | None, typer.Option(help="Base model of an adapter.")] = None,
    lora_rank: Annotated[
        int | None, typer.Option(help="An adapter's LoRA rank (required on a base pool).")
    ] = None,
    image: Annotated[str | None, typer.Option(help="Overrides the model's image.")] = None,
    arg: Annotated[
        list[str] | None, typer.Option("--arg", help="Replaces the model's args.")
    ] = None,
    env: Annotated[
        list[str] | None, typer.Option("--env", help=f"{ENV_HELP}; over the model's.")
    ] = None,
    label: Annotated[list[str] | None, typer.Option("--label", help="KEY=VALUE (repeat).")] = None,
    metadata: Annotated[
        str | None, typer.Option(help="Lineage as JSON, or @file.json (eval scores, run id).")
    ] = None,
    description: Annotated[str, typer.Option()] = "",
    url: UrlOpt = DEFAULT_URL,
    token: TokenOpt = None,
    output: OutputOpt = Output.TABLE,
) -> None:
    """Register a new, immutable version of a model."""
    body: dict[str, Any] = {
        "version": version,
        "artifact_uri": artifact_uri,
        "artifact_kind": kind,
        "base_model": base_model,
        "lora_rank": lora_rank,
        "image": image,
        "args": arg,
        "env": parse_env(env),
        "labels": parse_pairs(label, "--label") or {},
        "metadata": load_json(metadata, "--metadata") or {},
        "description": description,
    }
    with client(url, token) as api:
        created = api.post(f"/v1/models/{model}/versions", body)
    emit(
        created,
        output,
        lambda v: f"version {v['model']}/{v['version']} registered\n" + details(v, VERSION_FIELDS),
    )


@versions_app.command("list")
def versions_list(
    model: str,
    status: Annotated[str | None, typer.Option(help="Only this status.")] = None,
    label: Annotated[str | None, typer.Option(help="Selector: team=nlp,stage=prod.")] = None,
    limit: Annotated[int | None, typer.Option(help="At most this many.")] = None,
    url: UrlOpt = DEFAULT_URL,
    token: TokenOpt = None,
    output: OutputOpt = Output.TABLE,
) -> None:
    """List a model's versions, newest first."""
    with client(url, token) as api:
        items = api.paginate(
            f"/v1/models/{model}/versions", limit=limit, status=status, label=label
        )
    emit(items, output, lambda rows: table(rows, VERSION_COLUMNS))


@versions_app.command("show")
def versions_show(
    model: str,
    version: str,
    url: UrlOpt = DEFAULT_URL,
    token: TokenOpt = None,
    output: OutputOpt = Output.TABLE,
) -> None:
    """Show one version with its lineage."""
    with client(url, token) as api:
        item = api.get(f"/v1/models/{model}/versions/{version}")
    emit(item, output, lambda v: details(v, VERSION_FIELDS))


# ---------------------------------------------------------------------------------------
# tokens

TOKEN_COLUMNS: list[Column] = [
    ("NAME", lambda t: t["name"]),
    ("ROLE", lambda t: t["role"]),
    ("PREFIX", lambda t: t["prefix"]),
    ("CREATED", lambda t: t["created_at"][:19].replace("T", " ")),
    ("BY", lambda t: t["created_by"]),
    ("EXPIRES", lambda t: (t["expires_at"] or "never")[:19].replace("T", " ")),
    ("REVOKED", lambda t: (t["revoked_at"] or "-")[:19].replace("T", " ")),
]


@tokens_app.command("create")
def tokens_create(
    name: str,
    role: Annotated[str, typer.Option(help="viewer, operator or admin.")],
    expires_in_days: Annotated[int | None, typer.Option(help="Expire after N days.")] = None,
    description: Annotated[str, typer.Option()] = "",
    url: UrlOpt = DEFAULT_URL,
    token: TokenOpt = None,
    output: OutputOpt = Output.TABLE,
) -> None:
    """Create a token. Its secret is printed once: store it now."""
    body = {
        "name": name,
        "role": role,
        "expires_in_days": expires_in_days,
        "description": description,
    }
    with client(url, token) as api:
        created = api.post("/v1/tokens", body)
    emit(
        created,
        output,
        lambda t: (
            f"token {t['name']} ({t['role']}) created; this is the only time its "
            f"secret is shown:\n{t['token']}"
        ),
    )


@tokens_app.command("list")
def tokens_list(
    include_revoked: Annotated[bool, typer.Option(help="Show revoked tokens too.")] = False,
    url: UrlOpt = DEFAULT_URL,
    token: TokenOpt = None,
    output: OutputOpt = Output.TABLE,
) -> None:
    """List tokens (never their secrets)."""
    with client(url, token) as api:
        items = api.paginate("/v1/tokens", limit=None, include_revoked=include_revoked)
    emit(items, output, lambda rows: table(rows, TOKEN_COLUMNS))


@tokens_app.command("revoke")
def tokens_revoke(name: str, url: UrlOpt = DEFAULT_URL, token: TokenOpt = None) -> None:
    """Revoke a token: it stops working at once."""
    with client(url, token) as api:
        api.delete(f"/v1/tokens/{name}")
    typer.echo(f"token {name} revoked")


# ---------------------------------------------------------------------------------------
# audit

AUDIT_COLUMNS: list[Column] = [
    ("AT", lambda e: e["at"][:19].replace("T", " ")),
    ("ACTOR", lambda e: e["actor"]),
    ("ACTION", lambda e: e["action"]),
    ("MODEL", lambda e: e["model"]),
    ("VERSION", lambda e: e["version"]),
]


@audit_app.command("list")
def audit_list(
    model: Annotated[str | None, typer.Option()] = None,
    actor: Annotated[str | None, typer.Option()] = None,
    limit: Annotated[int | None, typer.Option()] = 50,
    url: UrlOpt = DEFAULT_URL,
    token: TokenOpt = None,
    output: OutputOpt = Output.TABLE,
) -> None:
    """Who changed what, newest first."""
    with client(url, token) as api:
        items = api.paginate("/v1/audit", limit=limit, model=model, actor=actor)
    emit(items, output, lambda rows: table(rows, AUDIT_COLUMNS))


# ---------------------------------------------------------------------------------------
# rollouts

ROLLOUT_FIELDS = [
    "id",
    "model",
    "canary_version",
    "stable_version",
    "phase",
    "step_index",
    "current_step",
    "weight",
    "reason",
    "pending_command",
    "created_at",
    "created_by",
    "updated_at",
    "finished_at",
]
ROLLOUT_COLUMNS: list[Column] = [
    ("ID", lambda r: r["id"]),
    ("VERSION", lambda r: r["canary_version"]),
    ("FROM", lambda r: r["stable_version"]),
    ("PHASE", lambda r: r["phase"]),
    ("STEP", lambda r: f"{r['step_index']}/{len(r['steps'])}"),
    ("WEIGHT", lambda r: f"{r['weight']}%"),
    ("STARTED", lambda r: r["created_at"][:19].replace("T", " ")),
    ("BY", lambda r: r["created_by"]),
    ("REASON", lambda r: (r["reason"] or "")[:60]),
]
EVENT_COLUMNS: list[Column] = [
    ("AT", lambda e: e["at"][:19].replace("T", " ")),
    ("ACTOR", lambda e: e["actor"]),
    ("PHASE", lambda e: e["phase"]),
    ("STEP", lambda e: e["step_index"]),
    ("WEIGHT", lambda e: f"{e['weight']}%"),
    ("WHAT", lambda e: e["message"]),
]
TERMINAL = analysis.TERMINAL


def _evaluation_text(step: dict[str, Any]) -> str:
    pinned = f"@{step['suite_version']}" if step.get("suite_version") else ""
    return f"evaluation {step['suite']}{pinned} (both versions answer it, paired)"


STEP_TEXT: dict[str, Callable[[dict[str, Any]], str]] = {
    "set_weight": lambda step: f"set_weight {step['weight']}%",
    "pause": lambda step: (
        f"pause {step['duration_seconds']}s"
        if step.get("duration_seconds")
        else "pause until promoted"
    ),
    "eval_gate": lambda step: "eval_gate " + ", ".join(c["score"] for c in step["checks"]),
    "bake": lambda step: f"bake {step['duration_seconds']}s at 100%, old version warm",
    "evaluation": _evaluation_text,
    "analysis": lambda step: f"analysis x{step['count']} every {step['interval_seconds']}s",
}


def _step_text(step: dict[str, Any] | None) -> str:
    if not step:
        return "-"
    text = STEP_TEXT.get(str(step["kind"]))
    return text(step) if text is not None else str(step["kind"])


def _rollout_line(r: dict[str, Any]) -> str:
    line = (
        f"rollout {r['id']} {r['model']} {r['stable_version'] or '-'} -> "
        f"{r['canary_version']}: {r['phase']}, step {r['step_index']}/{len(r['steps'])} "
        f"({_step_text(r['current_step'])}), canary weight {r['weight']}%"
    )
    return line + (f"; {r['reason']}" if r["reason"] else "")


def _watch(api: Client, rollout_id: int, output: Output, timeout: float) -> dict[str, Any]:
    """Print each change of the rollout and its new events until it ends (or timeout)."""
    import time

    deadline = time.monotonic() + timeout
    seen_events: set[int] = set()
    last = ""
    while True:
        rollout: dict[str, Any] = api.get(f"/v1/rollouts/{rollout_id}")
        events = api.get(f"/v1/rollouts/{rollout_id}/events", limit=50)["items"]
        for event in reversed(events):
            if event["id"] not in seen_events:
                seen_events.add(event["id"])
                if output is Output.JSON:
                    typer.echo(json.dumps(event))
                else:
                    typer.echo(f"{event['at'][11:19]}  {event['actor']:<12} {event['message']}")
        line = _rollout_line(rollout)
        if line != last and output is Output.TABLE:
            typer.echo(f"== {line}")
            last = line
        if rollout["phase"] in TERMINAL or time.monotonic() > deadline:
            return rollout
        time.sleep(2)


@rollout_app.command("start")
def rollout_start(
    model: Annotated[str, typer.Argument(help="The model.")],
    version: Annotated[str, typer.Argument(help="The registered version to roll out.")],
    strategy: Annotated[
        str | None, typer.Option(help='Steps as JSON or @file: {"steps": [...]}.')
    ] = None,
    watch: Annotated[bool, typer.Option("--watch", "-w", help="Follow it live.")] = False,
    timeout: Annotated[float, typer.Option(help="Stop watching after this many seconds.")] = 3600,
    url: UrlOpt = DEFAULT_URL,
    token: TokenOpt = None,
    output: OutputOpt = Output.TABLE,
) -> None:
    """Start a rollout of VERSION (the model's default strategy unless --strategy)."""
    body: dict[str, Any] = {"version": version}
    if strategy is not None:
        body["strategy"] = load_json(strategy, "--strategy")
    with client(url, token) as api:
        rollout = api.post(f"/v1/models/{model}/rollouts", body)
        emit(rollout, output, _rollout_line)
        if watch:
            final = _watch(api, rollout["id"], output, timeout)
            if final["phase"] in ("rolled_back", "aborted"):
                raise typer.Exit(EXIT_API_ERROR)


@rollout_app.command("status")
def rollout_status(
    rollout_id: Annotated[int, typer.Argument(help="The rollout's id.")],
    watch: Annotated[bool, typer.Option("--watch", "-w", help="Follow it live.")] = False,
    timeout: Annotated[float, typer.Option(help="Stop watching after this many seconds.")] = 3600,
    url: UrlOpt = DEFAULT_URL,
    token: TokenOpt = None,
    output: OutputOpt = Output.TABLE,
) -> None:
    """Where a rollout stands, with the evidence so far at an analysis step (and, with
    --watch, follow it until it ends)."""
    with client(url, token) as api:
        if watch:
            _watch(api, rollout_id, output, timeout)
            return
        rollout = api.get(f"/v1/rollouts/{rollout_id}")
        so_far = analysis.fetch(api, rollout, datetime.now(UTC))
        recent = api.get(f"/v1/rollouts/{rollout_id}/events", limit=50)["items"]
    # what the world did to the rollout lately: drift undone, capacity holds
    moved = [e for e in recent if e["kind"] in ("drift", "hold")][:3]
    report: dict[str, Any] = {**rollout, "cluster_events": moved}
    if so_far is not None:
        report["analysis"] = so_far.as_json()

    def text(r: dict[str, Any]) -> str:
        parts = [details(r, ROLLOUT_FIELDS)]
        if moved:
            parts.append(
                "cluster:\n"
                + "\n".join(f"  {e['at'][11:19]}  {e['kind']:<5}  {e['message']}" for e in moved)
            )
        if r.get("placement"):
            parts.append(placement_text(r["placement"]))
        if so_far is not None:
            parts.append(analysis.text(so_far))
        return "\n\n".join(parts)

    emit(report, output, text)


def placement_text(placement: dict[str, Any]) -> str:
    """Which pod of the base pool holds the rollout's stable and canary adapters."""
    stable, canary = placement.get("stable_adapter"), placement["canary_adapter"]

    def has(name: str | None) -> Any:
        def cell(pod: dict[str, Any]) -> str:
            if name is None:
                return "-"
            if pod["adapters"] is None:
                return "?"
            return "loaded" if name in pod["adapters"] else "no"

        return cell

    columns: list[Column] = [
        ("POD", lambda p: p["pod"]),
        ("SERVING", lambda p: "yes" if p["serving"] else "no"),
        ("READY", lambda p: ("yes" if p["ready"] else "no") + (" (gated)" if p["gated"] else "")),
        (f"STABLE {stable or '-'}", has(stable)),
        (f"CANARY {canary}", has(canary)),
        (
            "OTHER ADAPTERS",
            lambda p: [a for a in p["adapters"] or [] if a not in (stable, canary)],
        ),
        ("ERROR", lambda p: p["error"]),
    ]
    at = placement["observed_at"][11:19]
    head = f"adapters on base pool {placement['pool']} (read at {at}):"
    if not placement["pods"]:
        return head + "\n  no pod of the pool found"
    return head + "\n" + table(placement["pods"], columns)


def _rollout_command(
    path: str, body: dict[str, Any], url: str, token: str | None, output: Output
) -> None:
    with client(url, token) as api:
        rollout = api.post(path, body)
    emit(rollout, output, lambda r: f"requested {r['pending_command']}: " + _rollout_line(r))


@rollout_app.command("promote")
def rollout_promote(
    rollout_id: int,
    full: Annotated[bool, typer.Option("--full", help="Skip the remaining steps.")] = False,
    reason: Annotated[str, typer.Option(help="Why, for the history.")] = "",
    url: UrlOpt = DEFAULT_URL,
    token: TokenOpt = None,
    output: OutputOpt = Output.TABLE,
) -> None:
    """Promote to the next step (or, with --full, past every step)."""
    _rollout_command(
        f"/v1/rollouts/{rollout_id}/promote", {"full": full, "reason": reason}, url, token, output
    )


def _register_rollout_command(name: str, help_text: str) -> None:
    """abort, pause and resume take a reason and differ only in the endpoint they call."""

    def command(
        rollout_id: int,
        reason: Annotated[str, typer.Option(help="Why, for the history.")] = "",
        url: UrlOpt = DEFAULT_URL,
        token: TokenOpt = None,
        output: OutputOpt = Output.TABLE,
    ) -> None:
        _rollout_command(
            f"/v1/rollouts/{rollout_id}/{name}", {"reason": reason}, url, token, output
        )

    command.__name__ = f"rollout_{name}"
    command.__doc__ = help_text
    rollout_app.command(name)(command)


_register_rollout_command("abort", "Abort: traffic back to stable, the canary removed.")
_register_rollout_command("pause", "Pause at the current step.")
_register_rollout_command("resume", "Resume a paused rollout (its current step starts over).")


@rollout_app.command("history")
def rollout_history(
    model: str,
    limit: Annotated[int | None, typer.Option(help="At most this many.")] = 20,
    url: UrlOpt = DEFAULT_URL,
    token: TokenOpt = None,
    output: OutputOpt = Output.TABLE,
) -> None:
    """A model's rollouts, newest first."""
    with client(url, token) as api:
        items = api.paginate(f"/v1/models/{model}/rollouts", limit=limit)
    emit(items, output, lambda rows: table(rows, ROLLOUT_COLUMNS))


@rollout_app.command("events")
def rollout_events(
    rollout_id: int,
    limit: Annotated[int | None, typer.Option(help="At most this many.")] = None,
    url: UrlOpt = DEFAULT_URL,
    token: TokenOpt = None,
    output: OutputOpt = Output.TABLE,
) -> None:
    """What happened to a rollout, oldest first, with who or what did it."""
    with client(url, token) as api:
        items = api.paginate(f"/v1/rollouts/{rollout_id}/events", limit=limit)
    emit(list(reversed(items)), output, lambda rows: table(rows, EVENT_COLUMNS))


# nouns with their own module (they add their commands to the apps above)
from controlplane.cli import evals, webhooks  # noqa: E402, F401


def main() -> None:
    app(prog_name="controlplane")


if __name__ == "__main__":
    main()
