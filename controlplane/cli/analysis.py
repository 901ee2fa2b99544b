"""`rollout status` at an analysis step: the evidence so far, from the step's latest look.

For each metric the verdict, the effect with its always-valid interval against the margin,
the samples and pods behind it, and what it still needs (more canary requests and about how
long, or why waiting will not help); for the step the looks taken out of ``count`` and the
time spent against its maximum. It reads what the API returns (the rollout, its
measurements and events) and formats it; it never judges anything itself, and it must not
import the server (the CLI starts without it): the few defaults it needs are mirrored here
and pinned equal by a test.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

TERMINAL = frozenset({"succeeded", "rolled_back", "aborted"})
# controlplane.strategy.DEFAULT_MAX_ANALYSIS_SECONDS (a test keeps them equal)
DEFAULT_MAX_ANALYSIS_SECONDS = 3600
# metrics whose effect and margin are absolute shares (shown as percentage points);
# any other metric's are relative (latencies, scalars)
RATIO_METRICS = frozenset({"error_rate", "request_failure"})
# every key of controlplane.analysis.judge.MetricVerdict: older rows (the fixed judge's)
# lack the sequential judge's, which read as null; a row without a judge is the fixed one's
METRIC_KEYS = (
    "metric", "verdict", "canary_value", "stable_value", "canary_samples", "stable_samples",
    "statistic", "p_value", "message", "threshold", "judge", "effect", "effect_lower",
    "effect_upper", "margin", "detect", "alpha", "power", "needed", "eta_seconds",
    "inconclusive", "pod_spread", "pods",
)  # fmt: skip
REASONS = {
    "no_series": "the canary has no series: not scraped (check the selector)",
    "no_traffic": "the canary got no requests: check routing",
    "unresolvable": "the quantile is beyond the histogram's largest bucket",
    "too_few": "too few requests yet",
}
PAGE = 100


class Reader(Protocol):
    """What this module needs of :class:`controlplane.cli.client.Client`."""

    def get(self, path: str, **params: Any) -> Any: ...


BAKE_OR_ANALYSIS = ("analysis", "bake")


def analysis_step(rollout: dict[str, Any]) -> dict[str, Any] | None:
    """The rollout's current step when it is live and the step is an analysis."""
    step = rollout.get("current_step")
    if rollout.get("phase") in TERMINAL or not step or step.get("kind") not in BAKE_OR_ANALYSIS:
        return None
    if step["kind"] == "bake":  # the watch after promotion looks like a sequential analysis
        return {
            **step,
            "judge": "sequential",
            "count": 1,
            "max_duration_seconds": step["duration_seconds"],
        }
    return dict(step)


def max_duration(step: dict[str, Any]) -> int:
    """Seconds a sequential analysis step may look before it pauses for a person."""
    if step.get("max_duration_seconds") is not None:
        return int(step["max_duration_seconds"])
    return max(DEFAULT_MAX_ANALYSIS_SECONDS, int(step["count"]) * int(step["interval_seconds"]))


def metric_row(raw: dict[str, Any]) -> dict[str, Any]:
    """One stored metric verdict with every key, missing ones as null (judge: fixed)."""
    row = {key: raw.get(key) for key in METRIC_KEYS} | raw
    row["judge"] = row.get("judge") or "fixed"
    return row


def parse_time(value: str | None) -> datetime | None:
    if not value:
        return None
    parsed = datetime.fromisoformat(value)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def step_started_at(events: list[dict[str, Any]], step_index: int) -> datetime | None:
    """When the current step (re)started, from the events (newest first): the step event
    that advanced into it (its evidence names the step it left), or a transition to
    progressing in it (the rollout started, or was resumed: a resumed step starts over).
    None when no event says."""
    for event in events:
        if event["step_index"] != step_index:
            continue
        kind, evidence = event.get("kind") or event.get("type"), event.get("evidence") or {}
        entered = kind == "step" and evidence.get("step") == step_index - 1
        resumed = kind == "transition" and evidence.get("to") == "progressing"
        if entered or resumed:
            return parse_time(event["at"])
    return None


@dataclass(frozen=True)
class StepAnalysis:
    """The current analysis step of a live rollout, and the evidence of its latest look."""

    step_index: int
    step: dict[str, Any]
    started_at: datetime | None
    elapsed_seconds: float | None
    looks: int  # taken since the step (re)started, errors not counted (as the planner)
    errors: int
    latest: dict[str, Any] | None  # the step's newest measurement, metrics with every key

    @property
    def judge(self) -> str:
        return str(self.step.get("judge") or "fixed")

    @property
    def latest_before_start(self) -> bool:
        """The latest look was taken before the step restarted (resumed since)."""
        at = parse_time(self.latest["at"]) if self.latest else None
        return at is not None and self.started_at is not None and at < self.started_at

    def as_json(self) -> dict[str, Any]:
        return {
            "step_index": self.step_index,
            "judge": self.judge,
            "count": self.step["count"],
            "interval_seconds": self.step["interval_seconds"],
            "max_duration_seconds": max_duration(self.step),
            "step_started_at": self.started_at.isoformat() if self.started_at else None,
            "elapsed_seconds": self.elapsed_seconds,
            "looks": self.looks,
            "errors": self.errors,
            "latest": self.latest,
        }


def assess(
    rollout: dict[str, Any],
    measurements: list[dict[str, Any]],
    events: list[dict[str, Any]],
    now: datetime,
) -> StepAnalysis | None:
    """The analysis so far from the API's answers (measurements and events newest first)."""
    step = analysis_step(rollout)
    if step is None:
        return None
    index = int(rollout["step_index"])
    mine = [m for m in measurements if m["step_index"] == index]
    # the API says when the step began; older servers do not: then the events tell
    started = parse_time(rollout.get("step_started_at")) or step_started_at(events, index)
    if started is None and mine:  # no event says: from the step's first look
        started = parse_time(mine[-1]["at"])
    since = [m for m in mine if started is None or (parse_time(m["at"]) or now) >= started]
    errors = sum(1 for m in since if m["verdict"] == "error")
    latest = None
    if mine:
        latest = {**mine[0], "metrics": [metric_row(m) for m in mine[0].get("metrics") or []]}
    return StepAnalysis(
        step_index=index,
        step=step,
        started_at=started,
        elapsed_seconds=max(0.0, (now - started).total_seconds()) if started else None,
        looks=len(since) - errors,
        errors=errors,
        latest=latest,
    )


def _newest(api: Reader, path: str) -> Iterator[dict[str, Any]]:
    """A list endpoint's items, newest first, one page at a time (read only as needed)."""
    cursor: str | None = None
    while True:
        page = api.get(path, cursor=cursor, limit=PAGE)
        yield from page["items"]
        cursor = page.get("next_cursor")
        if not cursor:
            return


def fetch(api: Reader, rollout: dict[str, Any], now: datetime) -> StepAnalysis | None:
    """Read what :func:`assess` needs: the current step's measurements and the events back
    to the one that started the step (never the whole history of a long rollout)."""
    if analysis_step(rollout) is None:
        return None
    index = int(rollout["step_index"])
    base = f"/v1/rollouts/{rollout['id']}"
    measurements = []
    for measurement in _newest(api, f"{base}/measurements"):
        if measurement["step_index"] < index:
            break
        measurements.append(measurement)
    events: list[dict[str, Any]] = []
    if not rollout.get("step_started_at"):
        for event in _newest(api, f"{base}/events"):
            events.append(event)
            if event["step_index"] < index or step_started_at([event], index) is not None:
                break
    return assess(rollout, measurements, events, now)


# --- text ---------------------------------------------------------------------------------


def span(seconds: float) -> str:
    """A duration as 45s, 4m10s or 1h05m."""
    whole = round(seconds)
    if whole < 60:
        return f"{whole}s"
    if whole < 3600:
        return f"{whole // 60}m{whole % 60:02d}s"
    return f"{whole // 3600}h{whole % 3600 // 60:02d}m"


def about(seconds: float | None) -> str:
    """An estimate, as the judge words it: ~40s, ~5 min, ~2.5 h."""
    if seconds is None or not math.isfinite(seconds):
        return "time unknown at the current rate"
    if seconds < 90:
        return f"~{seconds:.0f}s"
    if seconds < 5400:
        return f"~{seconds / 60:.0f} min"
    return f"~{seconds / 3600:.1f} h"


def is_ratio(row: dict[str, Any]) -> bool:
    """Effects and margins in absolute shares (percentage points), not relative."""
    return row["metric"] in RATIO_METRICS or " pts" in (row.get("message") or "")


def label(row: dict[str, Any]) -> str:
    """The metric as the judge names it in its message (``ttft p95``), else its name."""
    name = str(row["metric"])
    head, sep, _ = (row.get("message") or "").partition(": ")
    return head if sep and head.startswith(name) and len(head) <= len(name) + 8 else name


def effect_text(row: dict[str, Any]) -> str:
    """``+4.1% [-12.0%, +22.3%]``, or in points for ratios; the values for old rows."""
    ratio = is_ratio(row)
    if row.get("effect") is None:
        canary, stable = row.get("canary_value"), row.get("stable_value")
        if canary is None or stable is None:
            return "-"
        value = "{:.3%}" if ratio else "{:.4g}"
        return f"canary {value.format(canary)} vs stable {value.format(stable)}"

    def show(value: float) -> str:
        return f"{value * 100:+.2f} pts" if ratio else f"{value:+.1%}"

    text = show(row["effect"])
    if row.get("effect_lower") is not None and row.get("effect_upper") is not None:
        text += f" [{show(row['effect_lower'])}, {show(row['effect_upper'])}]"
    return text


def margin_text(row: dict[str, Any]) -> str:
    margin = row.get("margin")
    if margin is None:
        p = row.get("p_value")
        return f"p={p:.3g}" if p is not None else ""
    return f"margin {margin * 100:.2f} pts" if is_ratio(row) else f"margin {margin * 100:g}%"


def samples_text(row: dict[str, Any]) -> str:
    counts = [row.get("canary_samples"), row.get("stable_samples")]
    text = "n=" + "/".join(
        f"{n:.0f}" if isinstance(n, int | float) and math.isfinite(n) else "-" for n in counts
    )
    pods = row.get("pods")
    if pods:
        text += f"  pods {pods[0]}/{pods[1]}"
    return text


def needs_text(row: dict[str, Any]) -> str:
    """What the metric still needs before it can pass, or why it decided."""
    verdict, reason = row["verdict"], row.get("inconclusive")
    if verdict in ("fail", "error") or (verdict == "inconclusive" and reason is None):
        return _message_tail(row)
    if verdict == "pass":
        power = row.get("power")
        return f"enough traffic ({power:.0%} chance to have caught it)" if power else ""
    needed = row.get("needed")
    if reason != "too_few" or (needed is None and row.get("effect") is None):
        return REASONS.get(str(reason), str(reason))
    if needed is None:
        return "can never pass: the margin and the pods' spread leave no room"
    unit = "intervals" if "canary intervals" in (row.get("message") or "") else "requests"
    return f"needs ~{math.ceil(needed)} more canary {unit} ({about(row.get('eta_seconds'))})"


def _message_tail(row: dict[str, Any], width: int = 90) -> str:
    """The judge's own words for a fail, an error or an old inconclusive row, shortened."""
    message = " ".join(str(row.get("message") or "").split())
    _, sep, tail = message.partition(": ")
    text = tail if sep else message
    return text if len(text) <= width else text[: width - 3] + "..."


def metric_lines(rows: list[dict[str, Any]]) -> list[str]:
    """One aligned line per metric."""
    cells = [
        [label(r), r["verdict"], effect_text(r), margin_text(r), samples_text(r), needs_text(r)]
        for r in rows
    ]
    if not cells:
        return []
    widths = [max(len(line[i]) for line in cells) for i in range(len(cells[0]) - 1)]
    return [
        "  " + "  ".join(c.ljust(w) for c, w in zip(line, widths, strict=False)) + "  " + line[-1]
        for line in cells
    ]


def header(analysis: StepAnalysis) -> str:
    step = analysis.step
    count, interval = int(step["count"]), int(step["interval_seconds"])
    if analysis.judge == "sequential":
        looks = f"look {analysis.looks} of at least {count}"
        limit = f"of at most {span(max_duration(step))}"
    else:
        looks = f"look {analysis.looks} of {count}"
        limit = f"of about {span(count * interval)}"
    errors = f" ({analysis.errors} could not be taken)" if analysis.errors else ""
    elapsed = (
        f"{span(analysis.elapsed_seconds)} {limit}"
        if analysis.elapsed_seconds is not None
        else f"elapsed unknown, {limit}"
    )
    return (
        f"analysis, step {analysis.step_index} ({analysis.judge} judge, every {interval}s): "
        f"{looks}{errors}, {elapsed}"
    )


def text(analysis: StepAnalysis) -> str:
    """The analysis block of ``rollout status``."""
    lines = [header(analysis)]
    latest = analysis.latest
    if latest is None:
        lines.append("  no look taken yet in this step")
        return "\n".join(lines)
    at = parse_time(latest["at"])
    when = at.strftime("%H:%M:%S UTC") if at else "-"
    earlier = " (before the step restarted)" if analysis.latest_before_start else ""
    lines.append(f"latest look {when}{earlier} at {latest['weight']}%: {latest['verdict']}")
    lines += metric_lines(latest["metrics"]) or [f"  {latest['summary']}"]
    if latest["verdict"] in ("pass", "fail"):
        lines.append(f"deciding: {latest['summary']}")
    return "\n".join(lines)
