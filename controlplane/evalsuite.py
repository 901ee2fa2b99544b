"""The items of an eval suite: what is asked, what a good answer is, how it is scored.

A suite is a set of these, stored once and never changed (a new set is a new version of
the suite). Each item is checked on the way in, so a suite that cannot be scored is a 400
when it is created, not an inconclusive gate half-way through a rollout. One line of a
suite's JSONL file is one item::

    {"id": "arith-017", "prompt": "What is 17 + 25? Answer with the number only.",
     "scorer": "number", "expected": 42, "tags": ["general", "arithmetic"]}

``tags`` decide how the gate judges an item: ``general`` (forgetting: the canary must not
be worse than stable), ``domain`` (the fine-tune's own task: an optional floor, and no
regression), ``safety`` (red-team probes: a probe stable refuses and the canary complies
with fails the rollout). Other tags are shown, not judged on their own.
"""

from __future__ import annotations

import json
import re
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

GATED_TAGS = ("general", "domain", "safety")
MAX_ITEMS = 5000
MAX_PROMPT_CHARS = 20_000

Scorer = Literal[
    "exact",  # the answer equals expected (or one of them), normalised
    "choice",  # the multiple-choice letter the answer picks equals expected
    "number",  # the first number in the answer is expected, within tolerance
    "regex",  # the answer matches the pattern expected (re.search)
    "contains",  # the answer contains every string expected (case-insensitive)
    "not_contains",  # the answer contains none of the strings expected (case-insensitive)
    "refuses",  # a safety probe: the answer is a refusal (the good answer)
    "complies",  # an over-refusal check: the answer is not a refusal
]
SCORERS: tuple[str, ...] = Scorer.__args__  # type: ignore[attr-defined]

_ID = r"^[A-Za-z0-9][A-Za-z0-9_.:-]*$"
_TAG = r"^[a-z0-9][a-z0-9_.-]*$"


class Message(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    role: Literal["system", "user", "assistant"]
    content: str = Field(max_length=MAX_PROMPT_CHARS)


class EvalItem(BaseModel):
    """One prompt of a suite and how to score the answer."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(min_length=1, max_length=100, pattern=_ID)
    prompt: str | None = Field(default=None, min_length=1, max_length=MAX_PROMPT_CHARS)
    messages: tuple[Message, ...] | None = Field(default=None, min_length=1, max_length=50)
    scorer: Scorer
    expected: str | float | tuple[str, ...] | None = Field(
        default=None,
        description="exact: the answer, or a list of accepted answers; choice: the letter; "
        "number: the number; regex: the pattern; contains / not_contains: a string or a list; "
        "refuses / complies: nothing.",
    )
    tolerance: float = Field(
        default=0.0, ge=0, allow_inf_nan=False, description="number: how far off may pass."
    )
    tags: tuple[Annotated[str, Field(max_length=50, pattern=_TAG)], ...] = Field(
        default=(), max_length=20
    )
    reference: str | None = Field(
        default=None,
        max_length=MAX_PROMPT_CHARS,
        description="A good answer, for people (and a judge model) to compare with.",
    )
    max_tokens: int = Field(default=256, ge=1, le=8192)

    @model_validator(mode="after")
    def _scorable(self) -> EvalItem:
        if (self.prompt is None) == (self.messages is None):
            raise ValueError(f"item {self.id!r}: give either prompt or messages, not both")
        if self.messages is not None and self.messages[-1].role != "user":
            raise ValueError(f"item {self.id!r}: the last message must be the user's")
        self._check_expected()
        return self

    def _check_expected(self) -> None:
        e = self.expected
        if self.scorer in ("refuses", "complies"):
            if e is not None:
                raise ValueError(f"item {self.id!r}: scorer {self.scorer} takes no expected")
        elif e is None or e in ("", ()):
            raise ValueError(f"item {self.id!r}: scorer {self.scorer} needs expected")
        elif self.scorer == "number":
            if isinstance(e, tuple) or (isinstance(e, str) and _as_number(e) is None):
                raise ValueError(f"item {self.id!r}: scorer number needs a number as expected")
        elif self.scorer == "choice":
            if not isinstance(e, str) or not re.fullmatch(r"[A-Ja-j]", e.strip()):
                raise ValueError(
                    f"item {self.id!r}: scorer choice needs one letter A-J as expected"
                )
        elif self.scorer == "regex":
            if not isinstance(e, str):
                raise ValueError(f"item {self.id!r}: scorer regex needs one pattern as expected")
            try:
                re.compile(e)
            except re.error as error:
                raise ValueError(f"item {self.id!r}: expected is not a regex: {error}") from None
        elif isinstance(e, float | int) and self.scorer != "exact":
            raise ValueError(f"item {self.id!r}: scorer {self.scorer} needs text as expected")

    @property
    def gated_tag(self) -> str | None:
        """The tag the gate judges this item under (the first of general, domain, safety)."""
        return next((t for t in GATED_TAGS if t in self.tags), None)

    def chat(self) -> list[dict[str, str]]:
        """The messages to send (a prompt is one user message)."""
        if self.messages is not None:
            return [m.model_dump() for m in self.messages]
        assert self.prompt is not None
        return [{"role": "user", "content": self.prompt}]


def _as_number(text: str) -> float | None:
    try:
        return float(text.strip().replace(",", ""))
    except ValueError:
        return None


class SuiteError(ValueError):
    """Lines of a suite that are not items; ``problems`` says which and why."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems[:10]) + (" ..." if len(problems) > 10 else ""))
        self.problems = problems


def parse_items(raw: list[object]) -> list[EvalItem]:
    """Items from decoded JSON objects: every problem at once (up to 50), ids unique."""
    problems: list[str] = []
    items: list[EvalItem] = []
    if not raw:
        raise SuiteError(["a suite needs at least one item"])
    if len(raw) > MAX_ITEMS:
        raise SuiteError([f"a suite holds at most {MAX_ITEMS} items, not {len(raw)}"])
    for index, obj in enumerate(raw):
        try:
            items.append(EvalItem.model_validate(obj))
        except ValidationError as error:
            for e in error.errors(include_url=False)[:3]:
                where = ".".join(str(p) for p in e["loc"])
                problems.append(f"item {index + 1}{' ' + where if where else ''}: {e['msg']}")
        if len(problems) >= 50:
            break
    seen: set[str] = set()
    for item in items:
        if item.id in seen:
            problems.append(f"item id {item.id!r} appears more than once")
        seen.add(item.id)
    if problems:
        raise SuiteError(problems)
    return items


def jsonl_objects(text: str) -> list[object]:
    """The decoded lines of a JSONL text (blank lines and lines starting with # skipped);
    SuiteError names every line that is not JSON."""
    raw: list[object] = []
    problems: list[str] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        try:
            raw.append(json.loads(line))
        except json.JSONDecodeError as error:
            problems.append(f"line {number}: not JSON ({error.msg})")
    if problems:
        raise SuiteError(problems)
    return raw


def parse_jsonl(text: str) -> list[EvalItem]:
    """Items from a JSONL text (blank lines and lines starting with # are skipped)."""
    return parse_items(jsonl_objects(text))
