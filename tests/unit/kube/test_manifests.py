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
