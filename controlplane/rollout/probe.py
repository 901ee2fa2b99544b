"""The analysis measurement of a rollout, from Prometheus: the canary version's metrics
against the stable version's, over the same window, judged metric by metric."""

from __future__ import annotations

from datetime import datetime, timedelta

from controlplane.analysis.judge import FixedSampleJudge, Judge
from controlplane.analysis.measure import measure
from controlplane.analysis.metrics import Catalog, MetricSource
from controlplane.analysis.verdict import Verdict
from controlplane.models import Model, Rollout
from controlplane.rollout.reconciler import ProbeResult
from controlplane.rollout.strategy import Analysis


class PrometheusProber:
    def __init__(
        self,
        source: MetricSource,
        judge: Judge | None = None,
        *,
        catalog: Catalog | None = None,
        min_window: timedelta = timedelta(seconds=30),
    ) -> None:
        self.source = source
        self.judge = judge or FixedSampleJudge()
        self.catalog = catalog or Catalog()
        self.min_window = min_window

    def measure(
        self, *, model: Model, rollout: Rollout, step: Analysis, now: datetime
    ) -> ProbeResult:
        if rollout.stable_version is None:
            return ProbeResult(Verdict.INCONCLUSIVE, "no stable version to compare with")
        # each measurement looks at the traffic since the previous one (at least min_window)
        window = max(timedelta(seconds=step.interval_seconds), self.min_window)
        result = measure(
            self.source,
            self.judge,
            self.catalog.resolve(step.metrics),
            namespace=model.namespace,
            model=model.name,
            canary_version=rollout.canary_version,
            stable_version=rollout.stable_version,
            window=window,
            at=now,
        )
        return ProbeResult(result.verdict, result.summary, result.evidence()["metrics"])
