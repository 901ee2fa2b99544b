"""The control plane's own metrics, for Prometheus: what the rollouts are doing and how the
systems it depends on (Kubernetes, Prometheus, the database) answer.

One registry per process (not the client library's global one, so tests and several apps in
one process do not collide). Label values are bounded sets (phases, verbs, status classes,
verdicts): never a rollout id, a model name or anything a user controls without limit.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

REGISTRY = CollectorRegistry(auto_describe=True)

ROLLOUTS = Gauge(
    "controlplane_rollouts",
    "Rollouts by phase (live and finished).",
    ["phase"],
    registry=REGISTRY,
)
TRANSITIONS = Counter(
    "controlplane_rollout_transitions_total",
    "Rollout phase transitions, by the phase entered.",
    ["phase"],
    registry=REGISTRY,
)
DECISIONS = Counter(
    "controlplane_rollout_decisions_total",
    "Planner decisions that changed something, by kind (transition, step, hold, measure).",
    ["kind"],
    registry=REGISTRY,
)
VERDICTS = Counter(
    "controlplane_analysis_verdicts_total",
    "Analysis measurements, by combined verdict.",
    ["verdict"],
    registry=REGISTRY,
)
RECONCILE_SECONDS = Histogram(
    "controlplane_reconcile_duration_seconds",
    "Time to reconcile one rollout once.",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
    registry=REGISTRY,
)
RECONCILE_ERRORS = Counter(
    "controlplane_reconcile_errors_total",
    "Reconciles that ended in an unexpected error.",
    registry=REGISTRY,
)
LEASES_LOST = Counter(
    "controlplane_rollout_leases_lost_total",
    "Passes that stopped, their decision unwritten, because the rollout's lease was lost "
    "(not renewed in time, or taken by another replica).",
    registry=REGISTRY,
)
KUBE_SECONDS = Histogram(
    "controlplane_kube_request_duration_seconds",
    "Kubernetes API request latency.",
    ["verb"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
    registry=REGISTRY,
)
KUBE_REQUESTS = Counter(
    "controlplane_kube_requests_total",
    "Kubernetes API requests, by verb and status class.",
    ["verb", "status"],
    registry=REGISTRY,
)
PROMETHEUS_SECONDS = Histogram(
    "controlplane_prometheus_request_duration_seconds",
    "Prometheus query latency.",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
    registry=REGISTRY,
)
PROMETHEUS_ERRORS = Counter(
    "controlplane_prometheus_errors_total",
    "Prometheus queries that failed, by kind.",
    ["kind"],
    registry=REGISTRY,
)
KUBE_CACHE_READS = Counter(
    "controlplane_kube_cache_reads_total",
    "Reads of owned Kubernetes objects through the watch cache, by outcome: hit (answered "
    "from memory), miss (not held: asked the API server), fallback (the cache's view was "
    "not current enough to answer: asked the API server).",
    ["outcome"],
    registry=REGISTRY,
)
KUBE_CACHE_RELISTS = Counter(
    "controlplane_kube_cache_relists_total",
    "Lists made again by the watch cache after its first (410 Gone, a watch that failed).",
    registry=REGISTRY,
)
KUBE_APPLIES_SKIPPED = Counter(
    "controlplane_kube_applies_skipped_total",
    "Server-side applies not sent: the object was unchanged since our identical last apply.",
    registry=REGISTRY,
)


def status_class(status: int | None) -> str:
    return "error" if status is None else f"{status // 100}xx"
