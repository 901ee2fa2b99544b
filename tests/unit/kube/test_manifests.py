"""manifests/examples are the renderer's output, byte for byte."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[3]


def test_examples_match_the_renderer() -> None:
    result = subprocess.run(
        [sys.executable, "scripts/render_manifests.py", "--check"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr


def test_monitoring_manifests_are_valid_yaml_with_the_analysis_labels() -> None:
    for path in (REPO / "manifests" / "monitoring").glob("*.yaml"):
        text = path.read_text()
        assert list(yaml.safe_load_all(text)), path
        assert "target_label: version" in text or "targetLabel: version" in text, path


def test_grafana_dashboard_compares_canary_and_stable_on_the_analysed_metrics() -> None:
    import json

    dashboard = json.loads((REPO / "manifests" / "grafana" / "rollout-dashboard.json").read_text())
    variables = {v["name"] for v in dashboard["templating"]["list"]}
    assert {"namespace", "model", "canary", "stable"} <= variables
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    for metric in (
        "vllm:time_to_first_token_seconds_bucket",
        "http_requests_total",
        "vllm:inter_token_latency_seconds_bucket",
        "controlplane_rollouts",
    ):
        assert any(metric in e for e in exprs), metric
    assert all(e.count("(") == e.count(")") for e in exprs)
    titles = " ".join(p["title"] for p in dashboard["panels"])
    assert "Traffic weight" in titles
