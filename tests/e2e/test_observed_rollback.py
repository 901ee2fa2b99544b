"""One real rollout, start to rollback, seen the way an operator sees it: the control
plane's own ``/metrics``, its JSON log, a webhook receiver that refuses every delivery once,
and the history page in headless Chromium.

The stack is the end-to-end one (local cluster, simulated vLLM servers, a real Prometheus,
`controlplane serve` as a process); the canary's TTFT is doubled, so the analysis fails and
the engine rolls back. The module's tests read what that single run left behind."""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import sqlite3
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.stack import DOUBLED_TTFT, Stack, open_stack
from tests.support.browser import ARTIFACTS, WAIT, chromium, sign_in
from tests.support.receiver import Received, Receiver, receiving

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.cluster,
    pytest.mark.prometheus,
    pytest.mark.browser,
    pytest.mark.slow,
]

HOOK_PATH = "/hooks/controlplane"
SEALING_KEY = secrets.token_hex(32)
EVERY_EVENT = ["started", "step_passed", "paused", "promoted", "rolled_back", "failed"]
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(stack: Stack) -> Samples:
    """Every sample of ``/metrics`` (unauthenticated, as Prometheus scrapes it)."""
    response = httpx.get(f"{stack.control_plane.url}/metrics", timeout=10)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


@dataclass
class Run:
    stack: Stack
    receiver: Receiver
    secret: str
    rollout_id: int
    rollout: dict[str, Any]
    before: Samples
    after: Samples
    log_lines: list[str]

    def delta(self, name: str, **labels: str) -> float:
        key = (name, tuple(sorted(labels.items())))
        return self.after.get(key, 0.0) - self.before.get(key, 0.0)


def wait_for_deliveries(stack: Stack, rollout_id: int, timeout: float = 60) -> list[dict[str, Any]]:
    """The rollout's deliveries once none is pending (each needs its retry first)."""
    deadline = time.monotonic() + timeout
    items: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        page = stack.api.get("/v1/webhooks/ops/deliveries", params={"limit": 100}).json()
        items = [d for d in page["items"] if d["rollout_id"] == rollout_id]
        if items and all(d["status"] != "pending" for d in items):
            return items
        time.sleep(0.5)
    raise TimeoutError(f"deliveries still pending after {timeout}s: {items}")


@pytest.fixture(scope="module")
def run(kubeconfig: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    workdir = tmp_path_factory.mktemp("observed")
    settings = {
        "CONTROLPLANE_LOG_FORMAT": "json",
        "CONTROLPLANE_WEBHOOK_BACKOFF_BASE_SECONDS": "0.5",
        "CONTROLPLANE_WEBHOOK_TIMEOUT_SECONDS": "2",
        "CONTROLPLANE_WEBHOOK_ALLOWED_CIDRS": "127.0.0.0/8",  # the receiver is on loopback
        "CONTROLPLANE_SECRET_KEYS": SEALING_KEY,
    }
    with (
        receiving(Receiver(fail_each_delivery_once=True)) as receiver,
        open_stack(kubeconfig, workdir, DOUBLED_TTFT, env=settings) as stack,
    ):
        created = stack.api.post(
            "/v1/webhooks",
            json={"name": "ops", "url": receiver.to(HOOK_PATH), "events": EVERY_EVENT},
        )
        assert created.status_code == 201, created.text
        before = scrape(stack)
        rollout_id = stack.start_v2()
        rollout = stack.wait(rollout_id, "succeeded", "rolled_back", "paused")
        stack.traffic.stop()
        wait_for_deliveries(stack, rollout_id)
        after = scrape(stack)
        log_lines = stack.control_plane.log.read_text().splitlines()
        yield Run(
            stack,
            receiver,
            created.json()["secret"],
            rollout_id,
            rollout,
            before,
            after,
            log_lines,
        )


def test_the_canary_was_rolled_back_for_its_ttft(run: Run) -> None:
    assert run.rollout["state"] == "rolled_back", run.rollout["reason"]
    assert "ttft" in run.rollout["reason"]


def test_metrics_show_the_rollout_from_start_to_rollback(run: Run) -> None:
    transitions = "controlplane_rollout_transitions_total"
    for phase in ("progressing", "rolling_back", "rolled_back"):
        assert run.delta(transitions, phase=phase) == 1, phase
    assert run.delta(transitions, phase="succeeded") == 0
    assert run.after[("controlplane_rollouts", (("phase", "rolled_back"),))] == 1
    assert run.after[("controlplane_rollouts", (("phase", "succeeded"),))] == 1  # v1's first
    assert run.after.get(("controlplane_rollouts", (("phase", "progressing"),)), 0) == 0
    assert run.delta("controlplane_analysis_verdicts_total", verdict="fail") >= 1
    assert run.delta("controlplane_rollout_decisions_total", kind="transition") >= 3
    assert run.delta("controlplane_reconcile_duration_seconds_count") >= 3
    assert run.delta("controlplane_prometheus_request_duration_seconds_count") >= 1
    kube = sum(
        value - run.before.get((name, labels), 0.0)
        for (name, labels), value in run.after.items()
        if name == "controlplane_kube_requests_total"
    )
    assert kube >= 4  # observe and apply, canary and stable, several times


def test_the_json_log_tells_the_rollouts_life_with_its_context(run: Run) -> None:
    records = []
    for number, line in enumerate(run.log_lines, 1):
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            pytest.fail(f"log line {number} is not JSON: {line[:200]!r}")
    assert all({"ts", "level", "logger", "message"} <= set(r) for r in records)
    about = [r for r in records if r.get("rollout_id") == run.rollout_id]
    assert about, "no log line carries the rollout's id"
    assert {(r.get("model"), r.get("version")) for r in about} == {("chat", "v2")}
    # every event of the rollout's history is also a log line about the rollout
    logged = " | ".join(r["message"] for r in about)
    history = [e["message"] for e in run.stack.events(run.rollout_id)]
    assert history[0].startswith("rollout of v2 started by")
    missing = [message for message in history if message not in logged]
    assert missing == [], f"events missing from the log: {missing}"
    # the deliveries' lines too (the only deliveries are this rollout's)
    sent = [r for r in records if r["logger"] == "controlplane.webhooks.dispatcher"]
    sent = [r for r in sent if " attempt " in r["message"]]
    assert len(sent) >= 4  # each delivery: refused once, then delivered
    assert all(r.get("rollout_id") == run.rollout_id for r in sent), sent
    phases = [e["phase"] for e in run.stack.events(run.rollout_id)]
    assert phases[-1] == "rolled_back"
    # and nothing secret: the admin token, the webhook secret, the sealing key
    text = "\n".join(run.log_lines)
    for secret in (run.stack.token, run.secret, SEALING_KEY):
        assert secret not in text


def test_the_receiver_got_every_event_signed_and_retried_once(run: Run) -> None:
    deliveries = run.stack.api.get("/v1/webhooks/ops/deliveries", params={"limit": 100}).json()
    ours = [d for d in deliveries["items"] if d["rollout_id"] == run.rollout_id]
    events = [d["event"] for d in reversed(ours)]  # oldest first
    assert (events[0], events[-1]) == ("started", "rolled_back")
    assert {(d["status"], d["attempts"], d["last_status_code"]) for d in ours} == {
        ("delivered", 2, 200)
    }

    attempts: dict[str, list[Received]] = defaultdict(list)
    for request in run.receiver.at(HOOK_PATH):
        attempts[request.headers["X-Controlplane-Delivery"]].append(request)
    ids = {str(d["id"]) for d in ours}
    assert ids <= set(attempts)
    for delivery_id in ids:
        first, second = attempts[delivery_id]
        assert (first.status, second.status) == (503, 200)
        assert first.body == second.body  # a retry sends the very same bytes
        for request in (first, second):
            stamp = request.headers["X-Controlplane-Timestamp"]
            assert hmac.compare_digest(
                _signature(run.secret, f"{delivery_id}.{stamp}.".encode() + request.body),
                request.headers["X-Controlplane-Signature"],
            )
            assert abs(time.time() - int(request.headers["X-Controlplane-Timestamp"])) < 300
    documents = [json.loads(attempts[str(d["id"])][1].body) for d in reversed(ours)]
    assert Counter(d["event"] for d in documents)["rolled_back"] == 1
    final = documents[-1]
    assert final["rollout"] == {**final["rollout"], "id": run.rollout_id, "version": "v2"}
    assert "ttft" in final["rollout"]["reason"]
    assert run.delta("controlplane_webhook_deliveries_total", outcome="retrying") == len(ours)
    assert run.delta("controlplane_webhook_deliveries_total", outcome="delivered") == len(ours)


def test_the_webhook_secret_and_url_are_not_in_the_database_file(run: Run) -> None:
    url = run.stack.control_plane.env["CONTROLPLANE_DATABASE_URL"]
    database = Path(url.removeprefix("sqlite:///"))
    for path in (database, *database.parent.glob(f"{database.name}-*")):  # and the WAL
        assert run.secret.encode() not in path.read_bytes()
        assert HOOK_PATH.encode() not in path.read_bytes()  # the URL is sealed too
    with closing(sqlite3.connect(database)) as connection:
        [(stored,)] = connection.execute("SELECT secret FROM webhook").fetchall()
    assert stored.startswith("sealed:v1:")


def _signature(secret: str, content: bytes) -> str:
    """What a receiver computes (written out, not the product's own verify): HMAC-SHA256
    of "<delivery id>.<timestamp>." and the raw body, with the shared secret."""
    return "sha256=" + hmac.new(secret.encode(), content, hashlib.sha256).hexdigest()


def test_the_history_page_shows_the_real_rollback(
    run: Run, tmp_path_factory: pytest.TempPathFactory
) -> None:
    from playwright.sync_api import expect

    viewer = run.stack.api.post("/v1/tokens", json={"name": "on-call", "role": "viewer"})
    assert viewer.status_code == 201, viewer.text
    url, rollout_id = run.stack.control_plane.url, run.rollout_id
    with chromium(tmp_path_factory.mktemp("chromium-profile")) as context:
        page = context.new_page()
        problems: list[str] = []
        page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: problems.append(str(e)))
        sign_in(page, url, viewer.json()["token"])
        expect(page.locator("#models tr[data-model=chat]")).to_contain_text("rolled_back")

        page.goto(f"{url}/ui#/rollouts/{rollout_id}")
        page.wait_for_selector(f'body[data-ready="#/rollouts/{rollout_id}"]', timeout=WAIT)
        expect(page.locator("#banner")).to_contain_text("Rolled back")
        expect(page.locator("#reason")).to_have_text(run.rollout["reason"])
        key = page.locator("#timeline .event-key")
        expect(key).to_have_count(1)
        expect(key).to_contain_text("rolled_back")
        expect(key).to_contain_text("ttft")
        events = run.stack.events(rollout_id)
        expect(page.locator("#timeline .event")).to_have_count(len(events))

        expect(page.locator(".steps .step").first).to_have_text("eval gate (mmlu)")
        mmlu = page.locator("#analysis svg.chart[data-metric=mmlu]")
        for series in ("canary", "stable", "threshold"):  # the gate, passed, once
            expect(mmlu.locator(f"g.series-{series} circle")).to_have_count(1)
        expect(mmlu.locator("circle.dot-fail")).to_have_count(0)
        expect(page.locator("#analysis figure[data-metric=mmlu] .rule")).to_have_text(
            "fails below stable \u2212 0.01 (eval score, higher is better)"
        )
        # the threshold is drawn where the gate puts it: v1's 0.61 less 0.01, below both
        mmlu_y = {
            series: float(mmlu.locator(f"g.series-{series} circle").get_attribute("cy") or "nan")
            for series in ("canary", "stable", "threshold")
        }
        assert mmlu_y["canary"] < mmlu_y["stable"] < mmlu_y["threshold"]  # y grows downwards
        zone = mmlu.locator("polygon.fail-zone").get_attribute("points") or ""
        zone_y = [float(point.split(",")[1]) for point in zone.split()]
        assert min(zone_y) == pytest.approx(mmlu_y["threshold"])  # shaded below the line
        ttft = page.locator("#analysis svg.chart[data-metric=ttft]")
        expect(ttft).to_be_visible()
        for series in ("canary", "stable", "threshold"):
            expect(ttft.locator(f"g.series-{series} circle")).not_to_have_count(0)
        expect(ttft.locator("circle.dot-fail")).not_to_have_count(0)
        expect(page.locator("#analysis figure[data-metric=ttft] .rule")).to_contain_text("stable")
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "e2e-rollback.png"), full_page=True)
        assert problems == [], problems
        page.close()
