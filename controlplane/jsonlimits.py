"""What a JSON value must be to be stored: checked before anything is written.

A JSON column takes whatever it is given, and a bad value fails later, where it hurts:
metadata nested a few hundred levels deep is stored, and then every read of it fails to
serialize; NaN and Infinity are not JSON (SQLite stores them and reads back null,
PostgreSQL refuses them); PostgreSQL cannot hold a NUL character in a string, nor a lone
UTF-16 surrogate (an unpaired \\ud800-\\udfff escape). This module does no I/O.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from types import UnionType
from typing import Any, Union, get_args, get_origin

from pydantic import model_validator

MAX_DEPTH = 32
KIB = 1024


@dataclass(frozen=True)
class JsonProblem:
    """Why a value cannot be stored; ``code`` is one of too_deep, too_large, not_finite,
    invalid_character, not_json."""

    code: str
    message: str


def text_problem(text: str) -> str | None:
    """What in ``text`` no database column can hold, or None."""
    if "\x00" in text:
        return "a NUL character (\\u0000)"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "a lone surrogate (an unpaired \\ud800-\\udfff escape), which is not Unicode text"
    return None


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if key.isidentifier() else f"{path}[{json.dumps(key)}]"


def _bytes(count: int) -> str:
    return f"{count // KIB} KiB" if count % KIB == 0 else f"{count} bytes"


def _shown(path: str) -> str:
    return path if len(path) <= 200 else path[:200] + "..."


_Frame = tuple[Any, str, int]  # a value, where it is, how deep its container is


def _children(
    node: dict[Any, Any] | list[Any], path: str, depth: int
) -> list[_Frame] | JsonProblem:
    if isinstance(node, list):
        return [(item, f"{path}[{index}]", depth) for index, item in enumerate(node)]
    children = []
    for key, item in node.items():
        if not isinstance(key, str):
            return JsonProblem("not_json", f"{_shown(path)} has a key that is not text")
        bad = text_problem(key)
        if bad is not None:
            return JsonProblem(
                "invalid_character", f"a key of {_shown(path)} contains {bad}: remove it"
            )
        children.append((item, _join(path, key), depth))
    return children


def _scalar_problem(node: Any, path: str) -> JsonProblem | None:
    if isinstance(node, str):
        bad = text_problem(node)
        if bad is not None:
            return JsonProblem("invalid_character", f"{_shown(path)} contains {bad}: remove it")
    elif isinstance(node, float):
        if not math.isfinite(node):
            return JsonProblem(
                "not_finite",
                f"{_shown(path)} is {node}: JSON numbers must be finite; send a number or null",
            )
    elif node is not None and not isinstance(node, bool | int):
        return JsonProblem("not_json", f"{_shown(path)} is a {type(node).__name__}, not JSON")
    return None


def json_problem(
    value: Any, what: str, *, max_depth: int | None = MAX_DEPTH, max_bytes: int | None = None
) -> JsonProblem | None:
    """Why ``value`` (decoded JSON, named ``what`` in messages) cannot be stored, or None.

    Containers may nest ``max_depth`` levels (``{}`` is one); the value may take
    ``max_bytes`` bytes as compact UTF-8 JSON. The walk is iterative: a value nested
    deeper than Python's recursion limit is reported, not a crash."""
    stack: list[_Frame] = [(value, what, 0)]
    while stack:
        node, path, depth = stack.pop()
        if isinstance(node, dict | list):
            if max_depth is not None and depth + 1 > max_depth:
                return JsonProblem(
                    "too_deep",
                    f"{what} is nested more than {max_depth} levels deep (at {_shown(path)}): "
                    "flatten it, or keep the document elsewhere and reference it by URI",
                )
            children = _children(node, path, depth + 1)
            if isinstance(children, JsonProblem):
                return children
            stack.extend(reversed(children))  # report the first problem in document order
        else:
            problem = _scalar_problem(node, path)
            if problem is not None:
                return problem
    if max_bytes is not None:
        size = len(json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode())
        if size > max_bytes:
            return JsonProblem(
                "too_large",
                f"{what} takes {size} bytes as JSON; the limit is {_bytes(max_bytes)}: keep "
                "large documents elsewhere and reference them by URI",
            )
    return None


CUT = "(cut: nested more than {depth} levels deep, stored before the limit was enforced)"


def cut_too_deep(value: Any, max_depth: int = MAX_DEPTH) -> tuple[Any, int]:
    """``value`` with every container nested deeper than ``max_depth`` (counted as
    :func:`json_problem` counts) replaced by a short text saying so, and how many were cut:
    for documents stored before the limit, which every read would fail to serialize.
    Recurses at most ``max_depth`` levels, however deep ``value`` is."""
    cut = 0
    marker = CUT.format(depth=max_depth)

    def walk(node: Any, depth: int) -> Any:
        nonlocal cut
        if not isinstance(node, dict | list):
            return node
        if depth + 1 > max_depth:
            cut += 1
            return marker
        if isinstance(node, list):
            return [walk(item, depth + 1) for item in node]
        return {key: walk(item, depth + 1) for key, item in node.items()}

    return walk(value, 0), cut


def json_type_problem(annotation: Any, value: Any) -> str | None:
    """Why ``value``, from a JSON body, is not of the JSON type that a field annotated
    ``annotation`` documents (``bool``, ``int`` or ``float``, maybe optional), or None.

    Pydantic's lax mode would read ``0`` as false, ``"3"`` as 3 and ``"1.5"`` as 1.5: a
    client sending those has a bug, and the OpenAPI document says boolean or number."""
    kinds = (
        set(get_args(annotation)) if get_origin(annotation) in (Union, UnionType) else {annotation}
    )
    kinds.discard(type(None))
    if value is None or not kinds or not kinds <= {bool, int, float}:
        return None
    if kinds == {bool}:
        return None if isinstance(value, bool) else "must be true or false"
    if isinstance(value, bool) or not isinstance(value, int | float):
        return "must be a whole number" if kinds == {int} else "must be a number"
    return None


class JsonTypes:
    """Mixed into the models of request bodies: each boolean or number field takes the JSON
    type the document gives it (see :func:`json_type_problem`), a 422 otherwise."""

    @model_validator(mode="before")
    @classmethod
    def _json_types(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        fields: dict[str, Any] = getattr(cls, "model_fields", {})
        for name, field in fields.items():
            key = field.alias or name
            if key in data:
                problem = json_type_problem(field.annotation, data[key])
                if problem is not None:
                    raise ValueError(f"{key} {problem}, not {data[key]!r:.40}")
        return data
