"""``controlplane webhooks ...``: subscriptions to rollout events (create, list, show,
delete), a webhook's deliveries, and a test ping. Admin only, as the API is.

The signing secret is printed by ``create`` and nowhere else: the API returns it then only,
and this module must never print, store or ask for it afterwards. A webhook's URL can be a
credential too (a Slack URL), so the list shows only its host; ``show`` and ``-o json``
give it whole, as the API does to admins.
"""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import urlsplit

import typer

from controlplane.cli.app import (
    DEFAULT_URL,
    Output,
    OutputOpt,
    TokenOpt,
    UrlOpt,
    app,
    client,
)
from controlplane.cli.output import Column, details, emit, table

webhooks_app = typer.Typer(
    help="Webhooks (admin): rollout events POSTed to a receiver, signed, and their deliveries.",
    no_args_is_help=True,
)
app.add_typer(webhooks_app, name="webhooks")

# Mirrored from controlplane.webhooks.schemas.WebhookEvent (the CLI does not import the
# server; tests/cli/test_webhooks.py keeps the two equal). The server checks the values.
EVENTS = ("started", "step_passed", "paused", "promoted", "rolled_back", "failed", "drift")


def _when(value: str | None) -> str | None:
    return value[:19].replace("T", " ") if value else None


def url_host(url: str) -> str:
    """Where a webhook points, without the path, query or user info that may hold a
    credential; a URL the server could not unseal is shown as the server wrote it."""
    try:
        parts = urlsplit(url)
        host, port = parts.hostname, parts.port
    except ValueError:
        return url
    if not host:
        return url
    return f"{host}:{port}" if port else host


WEBHOOK_COLUMNS: list[Column] = [
    ("NAME", lambda h: h["name"]),
    ("HOST", lambda h: url_host(h["url"])),
    ("EVENTS", lambda h: ",".join(h["events"])),
    ("FORMAT", lambda h: h["format"]),
    ("ACTIVE", lambda h: "yes" if h["active"] else "no"),
    ("CREATED", lambda h: _when(h["created_at"])),
    ("BY", lambda h: h["created_by"]),
]
WEBHOOK_FIELDS = [
    "name",
    "url",
    "events",
    "format",
    "active",
    "description",
    "created_at",
    "created_by",
]
DELIVERY_COLUMNS: list[Column] = [
    ("ID", lambda d: d["id"]),
    ("CREATED", lambda d: _when(d["created_at"])),
    ("EVENT", lambda d: d["event"]),
    ("ROLLOUT", lambda d: d["rollout_id"]),
    ("STATUS", lambda d: d["status"]),
    ("ATTEMPTS", lambda d: d["attempts"]),
    ("NEXT ATTEMPT", lambda d: _when(d["next_attempt_at"])),
    ("LAST ERROR", lambda d: d["last_error"]),
]


def _created_text(hook: dict[str, Any]) -> str:
    return (
        f"webhook {hook['name']} created\n{details(hook, WEBHOOK_FIELDS)}\n\n"
        "signing secret, shown only this once (the receiver checks X-Controlplane-Signature "
        f"with it):\n{hook['secret']}"
    )


@webhooks_app.command("create")
def webhooks_create(
    name: Annotated[str, typer.Argument(help="The webhook's name (an RFC 1123 label).")],
    target: Annotated[
        str, typer.Argument(metavar="RECEIVER_URL", help="Where events are POSTed (http/https).")
    ],
    event: Annotated[
        list[str],
        typer.Option("--event", help="An event to send (repeat): " + ", ".join(EVENTS)),
    ],
    format: Annotated[
        str, typer.Option("--format", help="json (the event) or slack ({'text': ...}).")
    ] = "json",
    description: Annotated[str, typer.Option(help="What this webhook is for.")] = "",
    active: Annotated[
        bool, typer.Option("--active/--inactive", help="Inactive: only test pings are sent.")
    ] = True,
    url: UrlOpt = DEFAULT_URL,
    token: TokenOpt = None,
    output: OutputOpt = Output.TABLE,
) -> None:
    """Subscribe a receiver to rollout events; its signing secret is printed once."""
    body = {
        "name": name,
        "url": target,
        "events": event,
        "format": format,
        "description": description,
        "active": active,
    }
    with client(url, token) as api:
        created = api.post("/v1/webhooks", body)
    emit(created, output, _created_text)
    if output == Output.JSON:
        typer.echo(
            "note: 'secret' is the signing secret, shown only this once: store it now",
            err=True,
        )


@webhooks_app.command("list")
def webhooks_list(
    limit: Annotated[int | None, typer.Option(help="At most this many.")] = None,
    url: UrlOpt = DEFAULT_URL,
    token: TokenOpt = None,
    output: OutputOpt = Output.TABLE,
) -> None:
    """List webhooks, newest first (their hosts; never their secrets)."""
    with client(url, token) as api:
        items = api.paginate("/v1/webhooks", limit=limit)
    emit(items, output, lambda rows: table(rows, WEBHOOK_COLUMNS))


@webhooks_app.command("show")
def webhooks_show(
    name: str, url: UrlOpt = DEFAULT_URL, token: TokenOpt = None, output: OutputOpt = Output.TABLE
) -> None:
    """Show a webhook with its whole URL (never its secret)."""
    with client(url, token) as api:
        hook = api.get(f"/v1/webhooks/{name}")
    emit(hook, output, lambda h: details(h, WEBHOOK_FIELDS))


@webhooks_app.command("delete")
def webhooks_delete(name: str, url: UrlOpt = DEFAULT_URL, token: TokenOpt = None) -> None:
    """Delete a webhook and its deliveries (pending ones are never sent)."""
    with client(url, token) as api:
        api.delete(f"/v1/webhooks/{name}")
    typer.echo(f"webhook {name} deleted, with its deliveries")


@webhooks_app.command("deliveries")
def webhooks_deliveries(
    name: str,
    status: Annotated[
        str | None, typer.Option(help="Only these: pending, delivered or failed.")
    ] = None,
    limit: Annotated[int | None, typer.Option(help="At most this many.")] = 20,
    url: UrlOpt = DEFAULT_URL,
    token: TokenOpt = None,
    output: OutputOpt = Output.TABLE,
) -> None:
    """A webhook's deliveries, newest first: whether each arrived, and the last error."""
    with client(url, token) as api:
        items = api.paginate(f"/v1/webhooks/{name}/deliveries", limit=limit, status=status)
    emit(items, output, lambda rows: table(rows, DELIVERY_COLUMNS) if rows else "no delivery yet")


@webhooks_app.command("test")
def webhooks_test(
    name: str, url: UrlOpt = DEFAULT_URL, token: TokenOpt = None, output: OutputOpt = Output.TABLE
) -> None:
    """Send the webhook a 'ping' (inactive ones too): it is queued and sent like any event."""
    with client(url, token) as api:
        delivery = api.post(f"/v1/webhooks/{name}/test", None)
    emit(
        delivery,
        output,
        lambda d: (
            f"ping queued for webhook {name} (delivery {d['id']}); see whether it arrived "
            f"with: controlplane webhooks deliveries {name}"
        ),
    )
