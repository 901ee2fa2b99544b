"""Evaluation results measured elsewhere, read as a version's recorded scores with where
they came from: lm-evaluation-harness's results JSON and OpenAI-evals-style logs.

Each score keeps its provenance (the file's SHA-256, the task, the metric and filter, the
limit and sample count the harness ran with), so the ``eval_gate`` can tell a score that
was measured from one typed into a version's metadata. Pure: the documents come in
decoded; what cannot be read is a :class:`ResultsError` naming what is wrong.

lm-evaluation-harness (0.4) writes ``results: {task: {"<metric>,<filter>": value,
"<metric>_stderr,<filter>": se, "alias": ...}}`` with ``n-samples``, ``n-shot``,
``versions`` and ``config`` (``limit``, ``model_args``) beside it; 0.3 wrote plain
``<metric>`` keys. OpenAI evals' recorder writes JSONL: a ``spec`` line (``eval_name``,
``run_config``), event lines (``type: match`` with ``data.correct``) and a
``final_report`` line.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from typing import Any

# the metric read as a task's score when none is asked for, best first
PREFERRED_METRICS = ("acc_norm", "acc", "exact_match", "f1", "mc2", "bleu", "pass@1")
MAX_SCORES = 500


class ResultsError(ValueError):
    pass


@dataclass(frozen=True)
class MeasuredScore:
    name: str  # the key the eval gate reads (the task, or task:metric)
    value: float
    provenance: dict[str, Any] = field(default_factory=dict)


def sha256_of(document: Any) -> str:
    """The hash a user can reproduce: of the file's bytes when the text is given, else of
    the canonical JSON."""
    raw = document if isinstance(document, str) else json.dumps(document, sort_keys=True)
    return hashlib.sha256(raw.encode()).hexdigest()


def _finite(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def _pretrained(model_args: Any) -> str | None:
    """The model the harness loaded (``pretrained=...``), and nothing else of its
    arguments: they can hold endpoints and keys, and every viewer reads provenance."""
    for part in str(model_args or "").split(","):
        key, _, value = part.partition("=")
        if key.strip() == "pretrained" and value.strip():
            return value.strip()[:300]
    return None


def _obj(document: dict[str, Any], key: str) -> dict[str, Any]:
    value = document.get(key)
    return value if isinstance(value, dict) else {}


def _task_metrics(entry: dict[str, Any]) -> dict[str, tuple[float, str | None, float | None]]:
    """A task's metrics (the first filter's value of each), with their standard errors."""
    metrics: dict[str, tuple[float, str | None, float | None]] = {}
    for key, raw in entry.items():
        name, _, filt = str(key).partition(",")
        value = _finite(raw)
        if value is None or name.endswith("_stderr") or name == "alias":
            continue
        stderr = _finite(entry.get(f"{name}_stderr{',' + filt if filt else ''}"))
        metrics.setdefault(name, (value, filt or None, stderr))
    return metrics


def lm_eval_scores(
    document: Any, *, tasks: list[str] | None = None, metric: str | None = None
) -> list[MeasuredScore]:
    """Scores from lm-evaluation-harness's results JSON (a dict, or its text)."""
    text = document if isinstance(document, str) else None
    if isinstance(document, str):
        try:
            document = json.loads(document)
        except ValueError as error:
            raise ResultsError(f"not JSON: {error}") from error
    if not isinstance(document, dict) or not isinstance(document.get("results"), dict):
        raise ResultsError(
            "not lm-evaluation-harness results: expected an object with a 'results' object "
            "(the file `lm_eval --output_path` writes, results_<date>.json)"
        )
    digest = sha256_of(text if text is not None else document)
    config, samples = _obj(document, "config"), _obj(document, "n-samples")
    shots, versions = _obj(document, "n-shot"), _obj(document, "versions")
    results: dict[str, Any] = document["results"]
    unknown = sorted(set(tasks or ()) - set(results))
    if unknown:
        raise ResultsError(
            f"task(s) {', '.join(unknown)} not in the results; it has "
            f"{', '.join(sorted(results)[:20])}"
        )
    scores: list[MeasuredScore] = []
    for task in sorted(tasks or results):
        entry = results[task]
        if not isinstance(entry, dict):
            continue
        metrics = _task_metrics(entry)
        if not metrics:
            continue
        chosen: str | None = metric if metric in metrics else None
        if chosen is None and metric is None:
            chosen = next((m for m in PREFERRED_METRICS if m in metrics), sorted(metrics)[0])
        n = _obj(samples, task)
        base = {
            "source": "lm-eval-harness",
            "sha256": digest,
            "task": task,
            "limit": config.get("limit"),
            "samples": n.get("effective"),
            "n_shot": shots.get(task),
            "task_version": versions.get(task),
            "model": _pretrained(config.get("model_args")),
            "harness_version": document.get("lm_eval_version"),
        }
        for name, (value, filt, stderr) in sorted(metrics.items()):
            provenance = {**base, "metric": name, "filter": filt, "stderr": stderr}
            scores.append(MeasuredScore(f"{task}:{name}", value, provenance))
            if name == chosen:
                scores.append(MeasuredScore(task, value, provenance))
    if not scores:
        raise ResultsError("the results hold no numeric score for the tasks asked")
    if len(scores) > MAX_SCORES:
        raise ResultsError(f"{len(scores)} scores; import at most {MAX_SCORES} (name --task)")
    return scores


def openai_evals_scores(text: str, *, metric: str | None = None) -> list[MeasuredScore]:
    """Scores from an OpenAI-evals-style JSONL log: the ``final_report``'s numbers, or the
    share of ``match`` events that are correct when there is no report."""
    spec: dict[str, Any] = {}
    report: dict[str, Any] | None = None
    matches = correct = 0
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except ValueError as error:
            raise ResultsError(f"line {number}: not JSON ({error})") from error
        if not isinstance(obj, dict):
            continue
        if isinstance(obj.get("spec"), dict):
            spec = obj["spec"]
        elif isinstance(obj.get("final_report"), dict):
            report = obj["final_report"]
        elif obj.get("type") == "match" and isinstance(obj.get("data"), dict):
            matches += 1
            correct += bool(obj["data"].get("correct"))
    task = str(spec.get("eval_name") or spec.get("base_eval") or "")
    if not task:
        raise ResultsError("no spec line with eval_name: not an OpenAI evals log")
    run_config = _obj(spec, "run_config")
    base = {
        "source": "openai-evals",
        "sha256": sha256_of(text),
        "task": task,
        "limit": run_config.get("max_samples"),
        "samples": matches or None,
        "run_id": spec.get("run_id"),
    }
    values: dict[str, float] = {}
    if report is not None:
        values = {k: v for k, raw in report.items() if (v := _finite(raw)) is not None}
    elif matches:
        values = {"accuracy": correct / matches}
    if not values:
        raise ResultsError(f"{task}: no final_report numbers and no match events")
    fallback = "accuracy" if "accuracy" in values else sorted(values)[0]
    chosen = metric if metric is not None and metric in values else fallback
    scores = [
        MeasuredScore(f"{task}:{name}", value, {**base, "metric": name})
        for name, value in sorted(values.items())
    ]
    scores.append(MeasuredScore(task, values[chosen], {**base, "metric": chosen}))
    return scores
