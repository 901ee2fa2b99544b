"""The demo, end to end, exactly as a newcomer runs it: the real cluster, a real Prometheus
scraping simulated vLLM servers, `controlplane serve` on SQLite, the CLI, and load that
follows the weight in force. v1 goes to stable, v2 is promoted through its analysis steps,
v3 (slower time to first token) is rolled back by itself with the evidence."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.cluster import REPO

pytestmark = [pytest.mark.e2e, pytest.mark.cluster, pytest.mark.prometheus, pytest.mark.slow]


def test_demo_promotes_a_good_canary_and_rolls_back_a_slow_one(
    kubeconfig: str, tmp_path: Path
) -> None:
    summary_path = tmp_path / "summary.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONTROLPLANE_")}
    env["KUBECONFIG"] = kubeconfig
    result = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "demo.py"), "--summary", str(summary_path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
        cwd=REPO,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    summary = json.loads(summary_path.read_text())
    first, second, third = summary["rollouts"]
    assert (first["phase"], second["phase"], third["phase"]) == (
        "succeeded",
        "succeeded",
        "rolled_back",
    )
    assert first["stable_version"] is None
    assert (second["stable_version"], second["weight"]) == ("v1", 100)
    assert third["weight"] == 0, "traffic went back to stable"
    assert "analysis failed" in third["reason"]
    assert "ttft" in third["reason"]
    gate = [m for m in summary["measurements_v3"] if m["metrics"][0]["metric"] == "mmlu"]
    assert [m["verdict"] for m in gate] == ["pass"], "v3's mmlu (0.64) is not below v2's"
    evaluated = [
        m for m in summary["measurements_v3"] if m["metrics"][0]["metric"].startswith("eval:")
    ]
    assert [m["verdict"] for m in evaluated] == ["pass"], "v3 answers the suite as well as v2"
    assert "cost: 350 prompts" in evaluated[0]["summary"], "v2's answers reused as stable's"
    failed = [m for m in summary["measurements_v3"] if m["verdict"] == "fail"]
    assert failed, summary["measurements_v3"]
    ttft = next(m for m in failed[0]["metrics"] if m["metric"] == "ttft")
    assert ttft["verdict"] == "fail"
    assert ttft["canary_value"] > ttft["stable_value"] * 1.1
    assert ttft["canary_samples"] >= 100
    assert summary["requests_sent"] > 0
