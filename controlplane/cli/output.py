"""Human tables and machine JSON for the CLI's answers."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

import typer

Column = tuple[str, Callable[[dict[str, Any]], Any]]


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, dict):
        return ",".join(f"{k}={v}" for k, v in value.items()) or "-"
    if isinstance(value, list):
        return " ".join(str(v) for v in value) or "-"
    return str(value)


def table(rows: Sequence[dict[str, Any]], columns: Sequence[Column]) -> str:
    header = [name for name, _ in columns]
    body = [[_cell(get(row)) for _, get in columns] for row in rows]
    widths = [max(len(cell) for cell in column) for column in zip(header, *body, strict=False)]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True))
        for line in [header, *body]
    ]
    return "\n".join(line.rstrip() for line in lines)


def details(item: dict[str, Any], fields: Sequence[str]) -> str:
    width = max(len(field) for field in fields)
    lines = []
    for field in fields:
        value = item.get(field)
        rendered = json.dumps(value) if isinstance(value, (dict, list)) and value else _cell(value)
        lines.append(f"{field + ':':<{width + 1}} {rendered}")
    return "\n".join(lines)


def emit(data: Any, output: str, human: Callable[[Any], str]) -> None:
    if output == "json":
        typer.echo(json.dumps(data, indent=2, sort_keys=False))
    else:
        typer.echo(human(data))
