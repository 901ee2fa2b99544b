"""``controlplane evals ...``: eval suites (create from JSONL, list, show), and
``controlplane rollout evals``: what the canary and stable answered, side by side."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from controlplane.cli.app import (
    DEFAULT_URL,
    EXIT_CONFIG,
    Output,
    OutputOpt,
    TokenOpt,
    UrlOpt,
    app,
    client,
    fail,
    rollout_app,
    versions_app,
)
from controlplane.cli.output import Column, details, emit, table
from controlplane.evalsuite import SuiteError, jsonl_objects

evals_app = typer.Typer(
    help="Eval suites: versioned sets of prompts the evaluation step sends to both versions.",
    no_args_is_help=True,
)
app.add_typer(evals_app, name="evals")

SUITE_COLUMNS: list[Column] = [
    ("NAME", lambda s: s["name"]),
    ("VERSION", lambda s: s["version"]),
    ("ITEMS", lambda s: s["item_count"]),
    ("TAGS", lambda s: ", ".join(f"{t} {n}" for t, n in s["tags"].items())),
    ("CREATED", lambda s: s["created_at"][:19].replace("T", " ")),
    ("BY", lambda s: s["created_by"]),
]
SUITE_FIELDS = ["name", "version", "item_count", "tags", "sha256", "created_at", "created_by"]


def read_items(path: Path) -> list[object]:
    """A JSONL file's objects (blank and # lines skipped); the server checks each one."""
    try:
        return jsonl_objects(path.read_text())
    except OSError as error:
        raise fail(f"cannot read {path}: {error}", EXIT_CONFIG) from None
    except SuiteError as error:
        raise fail(f"{path}: {error}", EXIT_CONFIG) from None


@evals_app.command("create")
def evals_create(
    name: Annotated[str, typer.Argument(help="The suite's name (a new version if it exists).")],
    file: Annotated[Path, typer.Option("--file", "-f", help="The items, one JSON per line.")],
    description: Annotated[str, typer.Option(help="What the suite checks.")] = "",
    url: UrlOpt = DEFAULT_URL,
    token: TokenOpt = None,
    output: OutputOpt = Output.TABLE,
) -> None:
    """Create an eval suite from a JSONL file, or its next version (the same items again
    change nothing)."""
    body = {"name": name, "description": description, "items": read_items(file)}
    with client(url, token) as api:
        suite = api.post("/v1/eval-suites", body)
    emit(
        suite,
        output,
        lambda s: f"eval suite {s['name']} version {s['version']}\n" + details(s, SUITE_FIELDS),
    )


@evals_app.command("list")
def evals_list(
    name: Annotated[str | None, typer.Option(help="Only this suite's versions.")] = None,
    limit: Annotated[int | None, typer.Option(help="At most this many.")] = None,
    url: UrlOpt = DEFAULT_URL,
    token: TokenOpt = None,
    output: OutputOpt = Output.TABLE,
) -> None:
    """List eval suites, every version, newest first."""
    with client(url, token) as api:
        items = api.paginate("/v1/eval-suites", limit=limit, name=name)
    emit(items, output, lambda rows: table(rows, SUITE_COLUMNS))


@evals_app.command("show")
def evals_show(
    name: str,
    version: Annotated[int | None, typer.Option(help="This version (default: latest).")] = None,
    items: Annotated[bool, typer.Option("--items", help="List every item too.")] = False,
    url: UrlOpt = DEFAULT_URL,
    token: TokenOpt = None,
    output: OutputOpt = Output.TABLE,
) -> None:
    """Show an eval suite (its latest version unless --version)."""
    path = f"/v1/eval-suites/{name}" + (f"/versions/{version}" if version else "")
    with client(url, token) as api:
        suite = api.get(path)

    def text(s: dict[str, Any]) -> str:
        out = details(s, SUITE_FIELDS)
        if items:
            rows = [
                {
                    "id": i["id"],
                    "tags": ",".join(i.get("tags", [])),
                    "scorer": i["scorer"],
                    "prompt": (i.get("prompt") or i["messages"][-1]["content"])[:70],
                }
                for i in s["items"]
            ]
            columns: list[Column] = [
                ("ID", lambda r: r["id"]),
                ("TAGS", lambda r: r["tags"]),
                ("SCORER", lambda r: r["scorer"]),
                ("PROMPT", lambda r: r["prompt"]),
            ]
            out += "\n\n" + table(rows, columns)
        return out

    emit(suite, output, text)


def _one_line(text: str | None, width: int) -> str:
    flat = " ".join((text or "").split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


def runs_text(runs: list[dict[str, Any]]) -> str:
    """Each run: its judgement and cost, then the items shown, the two answers side by side."""
    if not runs:
        return "no evaluation run yet"
    parts = []
    for run in runs:
        result = run.get("result") or {}
        head = (
            f"run {run['id']} (step {run['step_index']}): suite {run['suite']}, "
            f"{run['canary_version']} vs {run['stable_version']}, {run['status']}"
        )
        lines = [head]
        if result.get("summary"):
            lines.append(f"  {result['summary']}")
        elif run.get("error"):
            lines.append(f"  {run['error']}")
        else:
            answered = run.get("answered") or {}
            lines.append(
                f"  answered so far: canary {answered.get('canary', 0)}, stable "
                f"{answered.get('stable', 0)} of {run.get('items_total')}"
            )
        for item in run["items"]:
            c, s = item.get("canary") or {}, item.get("stable") or {}

            def mark(side: dict[str, Any]) -> str:
                if not side:
                    return "-"
                if side.get("passed") is None:
                    return "no answer"
                return "pass" if side["passed"] else "FAIL"

            lines.append(
                f"  {'REGRESSED ' if item['regressed'] else ''}{item['item_id']} [{item['tag']}]"
                f": {_one_line(item['prompt'], 90)}"
            )
            lines.append(
                f"      stable {mark(s):<9} {_one_line(s.get('answer') or s.get('error'), 80)}"
            )
            lines.append(
                f"      canary {mark(c):<9} {_one_line(c.get('answer') or c.get('error'), 80)}"
            )
        parts.append("\n".join(lines))
    return "\n\n".join(parts)


@rollout_app.command("evals")
def rollout_evals(
    rollout_id: Annotated[int, typer.Argument(help="The rollout's id.")],
    items: Annotated[
        str, typer.Option(help="Which items: regressed (default), differ or all.")
    ] = "regressed",
    url: UrlOpt = DEFAULT_URL,
    token: TokenOpt = None,
    output: OutputOpt = Output.TABLE,
) -> None:
    """A rollout's evaluation runs: the judgement, the cost, and the items that regressed
    with both versions' answers side by side."""
    if items not in ("regressed", "differ", "all"):
        raise fail("--items is regressed, differ or all", EXIT_CONFIG)
    with client(url, token) as api:
        runs = api.get(f"/v1/rollouts/{rollout_id}/evaluations", items=items)
    emit(runs, output, runs_text)


SCORE_COLUMNS: list[Column] = [
    ("SCORE", lambda s: s["name"]),
    ("VALUE", lambda s: f"{s['value']:.6g}"),
    ("SOURCE", lambda s: s["source"]),
    ("SHA256", lambda s: str(s["provenance"].get("sha256", ""))[:12]),
    ("LIMIT", lambda s: s["provenance"].get("limit")),
    ("RECORDED", lambda s: s["recorded_at"][:19].replace("T", " ")),
]


@versions_app.command("import-evals")
def versions_import_evals(
    model: str,
    version: str,
    file: Annotated[Path, typer.Option("--file", "-f", help="The harness's output file.")],
    format: Annotated[
        str, typer.Option("--format", help="lm-eval-harness (results JSON) or openai-evals.")
    ] = "lm-eval-harness",
    task: Annotated[
        list[str] | None, typer.Option("--task", help="Only this task (repeat).")
    ] = None,
    metric: Annotated[str | None, typer.Option(help="The metric read as each score.")] = None,
    url: UrlOpt = DEFAULT_URL,
    token: TokenOpt = None,
    output: OutputOpt = Output.TABLE,
) -> None:
    """Record a version's scores from lm-evaluation-harness or OpenAI evals output, with
    their provenance (the file's SHA-256, task, metric, limit): an eval_gate check with
    measured: true counts only these."""
    if format not in ("lm-eval-harness", "openai-evals"):
        raise fail("--format is lm-eval-harness or openai-evals", EXIT_CONFIG)
    try:
        text = file.read_text()
    except OSError as error:
        raise fail(f"cannot read {file}: {error}", EXIT_CONFIG) from None
    body = {"format": format, "document": text, "tasks": task, "metric": metric}
    with client(url, token) as api:
        scores = api.post(f"/v1/models/{model}/versions/{version}/eval-scores", body)
    emit(scores, output, lambda rows: table(rows, SCORE_COLUMNS))
