"""The analysis measurement of a rollout, from Prometheus: the canary version's metrics
against the stable version's, judged metric by metric.

The sequential judge (the default) reads everything since the analysis step began (the
weight went into force then) and spends the step's share of the rollout's false-rollback
budget; the fixed-sample judge reads the last interval only."""

from __future__ import annotations

from datetime import datetime, timedelta

from controlplane.analysis.judge import FixedSampleJudge, Judge
from controlplane.analysis.measure import measure
from controlplane.analysis.metrics import Catalog, MetricSource, adapter_selector
from controlplane.analysis.sequential import SequentialJudge
from controlplane.analysis.verdict import Verdict, Window
from controlplane.models import Model, Rollout
from controlplane.naming import workload_name
from controlplane.rollout.reconciler import ProbeResult
from controlplane.rollout.strategy import Analysis, Bake, Strategy


class PrometheusProber:
    def __init__(
        self,
        source: MetricSource,
        judge: Judge | None = None,
        *,
        catalog: Catalog | None = None,
        min_window: timedelta = timedelta(seconds=30),
        unit_label: str = "pod",
    ) -> None:
        self.source = source
        self.fixed = judge or FixedSampleJudge()
        self.sequential = SequentialJudge()
        self.catalog = catalog or Catalog()
        self.adapter_catalog = Catalog.for_adapters(self.catalog.custom)
        self.min_window = min_window
        self.unit_label = unit_label

    def measure(
        self, *, model: Model, rollout: Rollout, step: Analysis | Bake, now: datetime
    ) -> ProbeResult:
        if rollout.stable_version is None:
            return ProbeResult(Verdict.INCONCLUSIVE, "no stable version to compare with")
        interval = timedelta(seconds=step.interval_seconds)
        adapters = model.base_pool is not None
        catalog = self.adapter_catalog if adapters else self.catalog
        checks = catalog.resolve(step.metrics, step.check_overrides())
        common: dict[str, object] = {
            "namespace": model.namespace,
            "model": model.name,
            "canary_version": rollout.canary_version,
            "stable_version": rollout.stable_version,
            "at": now,
        }
        if adapters:
            # both adapters run on the same pods: their requests are told apart by the
            # endpoint picker's labels (the rewritten model name), not by pod labels
            common["selectors"] = tuple(
                adapter_selector(
                    namespace=model.namespace,
                    model=model.name,
                    adapter=workload_name(model.name, version),
                )
                for version in (rollout.canary_version, rollout.stable_version)
            )
        # everything since the weight went into force, at least one scrape's worth
        since = max(now - rollout.step_started_at, self.min_window)
        if isinstance(step, Bake) or step.judge == "sequential":
            alpha, rollout_alpha = Strategy.model_validate(rollout.strategy).analysis_alphas(
                rollout.step_index
            )
        if isinstance(step, Bake):
            # the new version (all the traffic, since the bake began) against the old one
            # over the same length of time before the rollout started
            result = measure(
                self.source,
                self.sequential,
                checks,
                window=since,
                alpha=alpha,
                interval=interval,
                unit_label=self.unit_label,
                baseline=(rollout.created_at, timedelta(seconds=step.baseline)),
                **common,  # type: ignore[arg-type]
            )
        elif step.judge == "sequential":
            result = measure(
                self.source,
                self.sequential,
                checks,
                window=since,
                alpha=alpha,
                rollout_alpha=rollout_alpha,
                history=[Window.from_json(w) for w in rollout.analysis_windows],
                interval=interval,
                unit_label=self.unit_label,
                **common,  # type: ignore[arg-type]
            )
        else:
            # each measurement looks at the traffic since the previous one
            result = measure(
                self.source,
                self.fixed,
                checks,
                window=max(interval, self.min_window),
                **common,  # type: ignore[arg-type]
            )
        return ProbeResult(
            result.verdict,
            result.summary,
            result.evidence()["metrics"],
            inconclusive=result.inconclusive,
        )
