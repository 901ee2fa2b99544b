"""The dispatcher: sends pending deliveries from the outbox, signed, with retries.

A background thread claims due deliveries with a lease (a conditional UPDATE, the same on
SQLite and PostgreSQL, as the reconciler claims rollouts), so several replicas never send
the same delivery at the same time, and hands each to a small pool of worker threads. At
most one delivery per webhook is in flight in this process: a slow or dead receiver holds
one worker for at most ``timeout`` seconds per attempt, never the others, and never the
reconcile loop (which only writes rows). Delivery is at least once: a process killed
between sending and recording sends again when the lease runs out; receivers dedupe on
``X-Controlplane-Delivery``.

Failures (a network error, a timeout, any status but 2xx) are retried with exponential
backoff and jitter (``Retry-After`` is honoured on 429 and 503) up to ``max_attempts``; then
the delivery is ``failed``. Errors are recorded truncated, without the URL or the secret.
"""

from __future__ import annotations

import logging
import random
import socket
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import datetime, timedelta
from urllib.parse import urlsplit

import httpx
import sqlalchemy as sa
from prometheus_client import Counter, Histogram
from sqlmodel import col, select

import controlplane
from controlplane import logs, telemetry
from controlplane.config import Settings
from controlplane.db import Database
from controlplane.models import Rollout, Webhook, WebhookDelivery, utcnow
from controlplane.sealing import Sealer, SealingError
from controlplane.webhooks import signing
from controlplane.webhooks.guard import AddressPolicy, AddressRefusedError, UnresolvableHostError
from controlplane.webhooks.schemas import DeliveryStatus

log = logging.getLogger(__name__)

THREAD_PREFIX = "webhook"
ERROR_MAX = 500  # characters of an error kept on the delivery
BODY_SNIPPET = 200  # characters of a refusing receiver's response kept in the error

DELIVERIES = Counter(
    "controlplane_webhook_deliveries_total",
    "Webhook delivery attempts, by outcome (delivered, retrying, failed).",
    ["outcome"],
    registry=telemetry.REGISTRY,
)
REQUEST_SECONDS = Histogram(
    "controlplane_webhook_request_duration_seconds",
    "Time to POST one webhook delivery, by status class.",
    ["status"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
    registry=telemetry.REGISTRY,
)


def _truncate(text: str, limit: int = ERROR_MAX) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _scrub(error: str, url: str, target: str, secret: str) -> str:
    """An error as kept and logged: without the URL (a Slack URL's path is its credential),
    its path and query on their own (a receiver's 404 page often echoes them), or the
    secret."""
    parts = urlsplit(url)
    error = error.replace(url, parts.hostname or "").replace(target, parts.hostname or "")
    for credential in (parts.path, parts.query, secret):
        if len(credential) > 1:
            error = error.replace(credential, "<redacted>")
    return error


def _retry_after(response: httpx.Response) -> timedelta | None:
    if response.status_code not in (429, 503):
        return None
    value = response.headers.get("retry-after", "")
    return timedelta(seconds=int(value)) if value.isdigit() else None


class _RedactWebhookUrls(logging.Filter):
    """httpx logs each request's whole URL at INFO; for the dispatcher's threads keep only
    scheme, host and port (a Slack URL's path is its credential)."""

    def filter(self, record: logging.LogRecord) -> bool:
        ours = bool(record.threadName and record.threadName.startswith(THREAD_PREFIX))
        if ours and isinstance(record.args, tuple):
            record.args = tuple(_redact(arg) for arg in record.args)
        return True


def _redact(value: object) -> object:
    if isinstance(value, httpx.URL):
        return f"{value.scheme}://{value.host}:{value.port or ''}/<redacted>"
    return value


_URL_FILTER = _RedactWebhookUrls()


class Dispatcher:
    def __init__(
        self,
        database: Database,
        *,
        client: httpx.Client | None = None,
        owner: str | None = None,
        clock: Callable[[], datetime] = utcnow,
        timeout: float = 5.0,
        max_attempts: int = 8,
        backoff_base: timedelta = timedelta(seconds=10),
        backoff_max: timedelta = timedelta(hours=1),
        workers: int = 4,
        poll_interval: float = 1.0,
        lease: timedelta = timedelta(seconds=60),
        rng: random.Random | None = None,
        policy: AddressPolicy | None = None,
        sealer: Sealer | None = None,
    ) -> None:
        if lease.total_seconds() <= 3 * timeout:
            raise ValueError("the lease must outlast a delivery: more than 3 x timeout")
        self.database = database
        self.owner = owner or f"{socket.gethostname()}-{uuid.uuid4().hex[:8]}"
        self.clock = clock
        self.timeout = timeout
        self.max_attempts = max_attempts
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.workers = workers
        self.poll_interval = poll_interval
        self.lease = lease
        self.rng = rng or random.Random()  # noqa: S311 - jitter, not cryptography
        self.policy = policy or AddressPolicy()  # public addresses only, unless told
        self.sealer = sealer or Sealer()
        self._owns_client = client is None
        self.client = client or httpx.Client(
            timeout=httpx.Timeout(timeout),
            follow_redirects=False,  # a redirect could lead anywhere: never followed
            trust_env=False,  # no proxy from the environment: it would defeat the pinning
            headers={"User-Agent": f"controlplane/{controlplane.__version__}"},
            # connections go to a checked address with the name's SNI: no pooling across
            # names that share an address
            limits=httpx.Limits(max_keepalive_connections=0),
        )
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix=THREAD_PREFIX)
        httpx_log = logging.getLogger("httpx")
        if _URL_FILTER not in httpx_log.filters:
            httpx_log.addFilter(_URL_FILTER)
        self._lock = threading.Lock()
        self._in_flight: dict[Future[None], int] = {}  # future -> webhook id
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    @classmethod
    def from_settings(cls, database: Database, settings: Settings) -> Dispatcher:
        timeout = settings.webhook_timeout_seconds
        return cls(
            database,
            timeout=timeout,
            max_attempts=settings.webhook_max_attempts,
            backoff_base=timedelta(seconds=settings.webhook_backoff_base_seconds),
            backoff_max=timedelta(seconds=settings.webhook_backoff_max_seconds),
            workers=settings.webhook_workers,
            lease=timedelta(seconds=max(60.0, 4 * timeout)),
            policy=AddressPolicy.from_settings(settings),
            sealer=Sealer.from_settings(settings),
        )

    # --- lifecycle ------------------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(
            target=self._loop, name=f"{THREAD_PREFIX}-dispatcher", daemon=True
        )
        self._thread.start()
        log.info("webhook dispatcher started (%d workers)", self.workers)

    def kick(self) -> None:
        """Look for due deliveries now, not at the next poll."""
        self._wake.set()

    def stop(self) -> None:
        """Stop claiming, let the deliveries in flight finish (each within its timeout)."""
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        self._pool.shutdown(wait=True)
        if self._owns_client:
            self.client.close()

    def _loop(self) -> None:
        while not self._stopping.is_set():
            try:
                self.fill()
            except Exception:  # the database may be away for a while: keep trying
                log.exception("webhook dispatcher: claiming deliveries failed")
            self._wake.wait(self.poll_interval)
            self._wake.clear()

    # --- claiming -------------------------------------------------------------------------

    def fill(self) -> list[Future[None]]:
        """Claim as many due deliveries as there are free workers (one per webhook not
        already in flight) and start sending them. Returns their futures."""
        with self._lock:
            busy = set(self._in_flight.values())
            free = self.workers - len(self._in_flight)
        if free <= 0:
            return []
        started: list[Future[None]] = []
        for delivery_id, webhook_id in self.claim(free, busy):
            future = self._pool.submit(self._deliver, delivery_id)
            with self._lock:
                self._in_flight[future] = webhook_id
            future.add_done_callback(self._done)
            started.append(future)
        return started

    def _done(self, future: Future[None]) -> None:
        with self._lock:
            self._in_flight.pop(future, None)
        if future.exception() is not None:
            log.error("webhook delivery crashed", exc_info=future.exception())
        self._wake.set()

    def run_due(self) -> int:
        """Send everything due now and wait for it (for tests and one-shot use). Returns the
        number of attempts made."""
        attempts = 0
        while True:
            futures = self.fill()
            if not futures:
                with self._lock:
                    pending = list(self._in_flight)
                if not pending:
                    return attempts
                for future in pending:
                    future.result()
                continue
            for future in futures:
                future.result()
            attempts += len(futures)

    def claim(self, limit: int, busy: set[int] | None = None) -> list[tuple[int, int]]:
        """Lease up to ``limit`` due deliveries to this dispatcher, skipping webhooks in
        ``busy`` and taking at most one per webhook. Returns (delivery id, webhook id)."""
        busy = set(busy or ())
        now = self.clock()
        free_lease = sa.or_(
            col(WebhookDelivery.lease_until).is_(None), col(WebhookDelivery.lease_until) < now
        )
        due = (
            col(WebhookDelivery.status) == DeliveryStatus.PENDING.value,
            col(WebhookDelivery.next_attempt_at) <= now,
            free_lease,
        )
        claimed: list[tuple[int, int]] = []
        with self.database.session() as session:
            rows = session.exec(
                select(WebhookDelivery.id, WebhookDelivery.webhook_id)
                .where(*due)
                .order_by(col(WebhookDelivery.next_attempt_at), col(WebhookDelivery.id))
                .limit(limit * 10)
            ).all()
            for delivery_id, webhook_id in rows:
                if len(claimed) >= limit:
                    break
                if webhook_id in busy or delivery_id is None:
                    continue
                result = session.execute(
                    sa.update(WebhookDelivery)
                    .where(col(WebhookDelivery.id) == delivery_id, *due)
                    .values(lease_owner=self.owner, lease_until=now + self.lease)
                )
                session.commit()
                if result.rowcount:  # type: ignore[attr-defined]
                    claimed.append((delivery_id, webhook_id))
                    busy.add(webhook_id)
        return claimed

    # --- sending --------------------------------------------------------------------------

    def backoff(self, attempts: int, retry_after: timedelta | None = None) -> timedelta:
        """The wait after the ``attempts``-th failed attempt: base x 2^(attempts-1), capped,
        times a random factor in [0.5, 1) (so receivers coming back are not stampeded)."""
        exponential: timedelta = self.backoff_base * (2 ** max(attempts - 1, 0))
        delay = min(self.backoff_max, exponential) * (0.5 + self.rng.random() / 2)
        if retry_after is not None:
            delay = max(delay, min(retry_after, self.backoff_max))
        return delay

    def _deliver(self, delivery_id: int) -> None:
        with self.database.session() as session:
            delivery = session.get(WebhookDelivery, delivery_id)
            if delivery is None or delivery.lease_owner != self.owner:
                return
            hook = session.get(Webhook, delivery.webhook_id)
            if hook is None:
                return
            name, stored_url, stored_secret = hook.name, hook.url, hook.secret
            body = signing.body_of(delivery.payload)
            event, attempts = delivery.event, delivery.attempts + 1
            rollout = session.get(Rollout, delivery.rollout_id) if delivery.rollout_id else None
            about: dict[str, object] = (
                {
                    "rollout_id": rollout.id,
                    "model": rollout.model,
                    "version": rollout.canary_version,
                }
                if rollout is not None
                else {}
            )
        with logs.context(**about):
            try:
                secret = self.sealer.unseal(stored_secret, purpose=signing.secret_purpose(name))
                url = self.sealer.unseal(stored_url, purpose=signing.url_purpose(name))
            except SealingError as error:  # retried: the operator may put the key back
                self._record(delivery_id, name, attempts, None, str(error), None)
                return
            self._send(delivery_id, name, url, secret, body, event, attempts)

    def _send(
        self,
        delivery_id: int,
        name: str,
        url: str,
        secret: str,
        body: bytes,
        event: str,
        attempts: int,
    ) -> None:
        sent_at = int(time.time())  # the wall clock, as the receiver's is: not self.clock
        headers = {
            "Content-Type": "application/json",
            signing.TIMESTAMP_HEADER: str(sent_at),
            signing.SIGNATURE_HEADER: signing.sign(secret, body, sent_at, str(delivery_id)),
            signing.DELIVERY_HEADER: str(delivery_id),
            signing.EVENT_HEADER: event,
        }
        status_code: int | None = None
        error: str | None = None
        retry_after: timedelta | None = None
        try:
            target, extensions = self._pinned(url, headers)
        except AddressRefusedError as refused:  # permanent: no retry will make it allowed
            error = _truncate(_scrub(str(refused), url, url, secret))
            self._record(delivery_id, name, attempts, None, error, None, final=True)
            return
        except UnresolvableHostError as unresolved:
            self._record(delivery_id, name, attempts, None, _truncate(str(unresolved)), None)
            return
        started = time.perf_counter()
        try:
            with self.client.stream(
                "POST", target, content=body, headers=headers, extensions=extensions
            ) as response:
                status_code = response.status_code
                if not response.is_success:
                    retry_after = _retry_after(response)
                    error = f"HTTP {status_code}: {self._snippet(response)}"
        except httpx.TimeoutException as exc:
            error = f"timed out after {self.timeout:g}s ({type(exc).__name__})"
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}"
        finally:
            REQUEST_SECONDS.labels(telemetry.status_class(status_code)).observe(
                time.perf_counter() - started
            )
        if error is not None:  # never keep the URL (a credential for Slack) or the secret
            error = _truncate(_scrub(error, url, str(target), secret))
        self._record(delivery_id, name, attempts, status_code, error, retry_after)

    def _pinned(self, url: str, headers: dict[str, str]) -> tuple[httpx.URL, dict[str, str]]:
        """Where to POST: an address the policy was checked against (not whatever the name
        resolves to a moment later), with the name put in Host (added to ``headers``) and,
        for https, in SNI and so in the certificate check. Returns (URL, extensions). The
        host is taken from the URL as httpx parses and encodes it, so the name checked is
        the name sent; a URL httpx cannot use is refused like an internal one."""
        try:
            target = httpx.URL(url)
            host = target.raw_host.decode("ascii")
        except (httpx.InvalidURL, UnicodeError) as error:
            raise AddressRefusedError(f"the webhook URL cannot be used: {error}") from None
        port = target.port or (443 if target.scheme == "https" else 80)
        addresses = self.policy.addresses(host, port)
        if str(addresses[0]) == host:  # an address already
            return target, {}
        headers["Host"] = target.netloc.decode("ascii")
        extensions = {"sni_hostname": host} if target.scheme == "https" else {}
        return target.copy_with(host=str(addresses[0])), extensions

    def _snippet(self, response: httpx.Response) -> str:
        try:
            chunk = b""
            for part in response.iter_bytes():
                chunk += part
                if len(chunk) >= BODY_SNIPPET:
                    break
            return _truncate(chunk.decode(errors="replace"), BODY_SNIPPET)
        except httpx.HTTPError:
            return "(no body)"

    def _record(
        self,
        delivery_id: int,
        name: str,
        attempts: int,
        status_code: int | None,
        error: str | None,
        retry_after: timedelta | None,
        *,
        final: bool = False,
    ) -> None:
        now = self.clock()
        values: dict[str, object] = {
            "attempts": attempts,
            "last_status_code": status_code,
            "last_error": error,
            "lease_owner": None,
            "lease_until": None,
        }
        if error is None:
            outcome = DeliveryStatus.DELIVERED.value
            values.update(status=outcome, delivered_at=now)
        elif final or attempts >= self.max_attempts:
            outcome = DeliveryStatus.FAILED.value
            values.update(status=outcome)
        else:
            outcome = "retrying"
            values.update(next_attempt_at=now + self.backoff(attempts, retry_after))
        with self.database.session() as session:
            session.execute(
                sa.update(WebhookDelivery)
                .where(
                    col(WebhookDelivery.id) == delivery_id,
                    col(WebhookDelivery.lease_owner) == self.owner,
                )
                .values(**values)
            )
            session.commit()
        DELIVERIES.labels(outcome).inc()
        level = logging.WARNING if error is not None else logging.INFO
        log.log(
            level,
            "webhook %s delivery %s attempt %d: %s%s",
            name,
            delivery_id,
            attempts,
            outcome,
            f" ({error})" if error else "",
            extra={"webhook": name, "delivery_id": delivery_id},
        )
