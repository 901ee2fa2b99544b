"""How a simulated version answers an eval suite's prompts: a knowledge table and knobs.

The table holds the items of one or more eval-suite JSONL files, keyed by their prompt (for
a ``messages`` item, the last user message), whitespace-normalised. A known prompt is
answered with the item's reference, or wrongly: a ``forget`` share of ``general`` items
(``domain_forget`` of ``domain`` items) and a ``comply`` share of ``safety`` probes. Which
items a version gets wrong is chosen by a hash of (``seed``, item id): it forgets the same
ones every time it is asked, and a version with another seed forgets others. ``noise``
(``safety_noise`` for probes) then flips a request's outcome at random, as batch
nondeterminism does to a healthy model even at temperature 0.

Wrong answers are plausible and fail the item's scorer: a number a little off, another
choice letter, another item's answer or "I am not sure.", a malformed variant for a regex,
the forbidden string for ``not_contains``, a refusal where an answer was due. A probe
complied with gets a marked placeholder, never real content. An unknown prompt gets the
filler words the simulator has always answered with. Nothing here speaks HTTP.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

WORDS = ("the", "model", "answers", "with", "plausible", "tokens", "for", "a", "test")
GATED_TAGS = ("general", "domain", "safety")  # as in controlplane.evalsuite, same order
RATES = ("forget", "domain_forget", "comply", "noise", "safety_noise", "verbose")
ID_LISTS = ("comply_ids", "forget_ids")

REFUSALS = (
    "I can't help with that request.",
    "I'm sorry, but I can't assist with that.",
    "I won't help with that, as it could cause real harm.",
    "Sorry, I cannot provide that information.",
)
COMPLIANCES = (
    "Sure, here is how to do that: [simulated compliance: no real content]",
    "Of course. Step 1: [simulated compliance: no real content]",
    "Here is what you asked for: [simulated compliance: no real content]",
)
HELPFUL = "Sure, here is a helpful answer: [simulated answer]"
UNSURE = ("I am not sure.", "I don't know.", "I am not certain about that.")
# no digit and no single letter standing alone, so number and choice scorers still find the
# answer on the first line
EXPLANATION = "\nExplanation: this follows directly from the question."
_NUMBER = re.compile(r"-?\d+(?:,\d{3})*(?:\.\d+)?|-?\.\d+")
_LETTER = re.compile(r"\b([A-Za-z])\b")
_OPTION = re.compile(r"(?:^|[\s(])([A-Z])[).:]\s")
_FLIPS = {"yes": "No", "no": "Yes", "true": "False", "false": "True"}


def normalise(text: str) -> str:
    """A prompt as the table keys it: whitespace runs made one space, ends trimmed."""
    return " ".join(text.split())


def count_tokens(text: str) -> int:
    """Roughly what a tokenizer makes of ``text``: 1.3 tokens a word, rounded up, at
    least 1 (integer arithmetic: 10 words are 13 tokens, not 14)."""
    return max(1, (len(text.split()) * 13 + 9) // 10)


def split_tokens(text: str) -> list[str]:
    """``text`` cut into :func:`count_tokens` pieces that join back into it: words (with
    the whitespace before them), the longest cut in two until there are enough; an empty
    last piece when the words cannot be cut further (the end-of-sequence token)."""
    pieces = re.findall(r"\s*\S+", text) or [text]
    want = count_tokens(text)
    while len(pieces) < want:
        longest = max(range(len(pieces)), key=lambda i: len(pieces[i].strip()))
        piece = pieces[longest]
        body = piece.lstrip()
        if len(body) < 2:
            pieces.append("")
            continue
        cut = len(piece) - len(body) + len(body) // 2
        pieces[longest : longest + 1] = [piece[:cut], piece[cut:]]
    return pieces


def filler(words: int) -> str:
    """What an unknown prompt gets: the simulator's filler words."""
    return " ".join(WORDS[i % len(WORDS)] for i in range(max(1, words)))


@dataclass(frozen=True)
class AnswerKnobs:
    """How well one version answers the table's items (rates are shares, 0-1)."""

    forget: float = 0.0  # share of general items answered wrong
    domain_forget: float = 0.0  # share of domain items answered wrong
    comply: float = 0.0  # share of safety probes complied with instead of refused
    comply_ids: tuple[str, ...] = ()  # probes always complied with
    forget_ids: tuple[str, ...] = ()  # items always answered wrong
    noise: float = 0.0  # per request: a general/domain outcome flipped (right <-> wrong)
    safety_noise: float = 0.0  # per request: a probe's outcome flipped
    seed: int = 0  # which items are forgotten or complied with
    # share of right general/domain answers followed by an explanation line (not where it
    # would break the item's regex or say a forbidden word)
    verbose: float = 0.0

    def __post_init__(self) -> None:
        problems = [
            f"{name} must be between 0 and 1" for name in RATES if not 0 <= getattr(self, name) <= 1
        ]
        if problems:
            raise ValueError("; ".join(problems))

    @classmethod
    def changes(cls, data: Mapping[str, Any]) -> dict[str, Any]:
        """Knob values from decoded JSON, typed and checked: ValueError says what is
        wrong (unknown names, wrong types, rates out of 0-1)."""
        known = {spec.name for spec in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(
                f"unknown answer knob(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}"
            )
        values: dict[str, Any] = {}
        problems: list[str] = []
        for name, raw in data.items():
            if name in ID_LISTS:
                listed = isinstance(raw, list | tuple)
                if not listed or not all(isinstance(i, str) for i in raw):
                    problems.append(f"{name} must be a list of item ids")
                else:
                    values[name] = tuple(raw)
            elif name == "seed":
                if isinstance(raw, bool) or not isinstance(raw, int):
                    problems.append("seed must be a whole number")
                else:
                    values[name] = raw
            elif isinstance(raw, bool) or not isinstance(raw, int | float):
                problems.append(f"{name} must be a number between 0 and 1")
            else:
                values[name] = float(raw)
        if problems:
            raise ValueError("; ".join(problems))
        cls(**values)  # the ranges
        return values

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> AnswerKnobs:
        return cls(**cls.changes(data))

    @classmethod
    def from_json(cls, text: str) -> AnswerKnobs:
        """Knobs from a JSON object of their names ("" is the defaults)."""
        if not text.strip():
            return cls()
        try:
            data = json.loads(text)
        except ValueError as error:
            raise ValueError(f"not JSON: {error}") from error
        if not isinstance(data, dict):
            raise ValueError("must be a JSON object of knob names to values")
        return cls.from_mapping(data)

    def as_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}


@dataclass(frozen=True)
class Entry:
    """One item of the table: what its scorer needs to tell a right answer from a wrong one."""

    id: str
    prompt: str  # normalised: the table's key
    scorer: str
    tags: tuple[str, ...]
    kind: str  # general, domain or safety: which knobs apply
    reference: str | None  # the right answer, when one can be given
    expected: tuple[str, ...] = ()  # as text (a number's too)
    number: float | None = None  # scorer number: the number
    tolerance: float = 0.0


@dataclass(frozen=True)
class Answer:
    text: str
    correct: bool | None  # None: the prompt is unknown (or its right answer is)
    item_id: str | None


class Knowledge:
    """The table: items by normalised prompt (the first item wins a prompt asked twice)."""

    def __init__(self, entries: Iterable[Entry]) -> None:
        self.by_prompt: dict[str, Entry] = {}
        self.by_id: dict[str, Entry] = {}
        for entry in entries:
            self.by_prompt.setdefault(entry.prompt, entry)
            self.by_id.setdefault(entry.id, entry)
        self._references: dict[tuple[str, str], list[str]] | None = None
        self._wrong: dict[tuple[int, str], str] = {}

    def __len__(self) -> int:
        return len(self.by_prompt)

    def lookup(self, prompt_text: str) -> Entry | None:
        return self.by_prompt.get(normalise(prompt_text))

    @classmethod
    def from_items(cls, items: Iterable[Any], source: str = "item") -> Knowledge:
        """A table from decoded JSON objects; ValueError names the first bad ones."""
        entries, problems = [], []
        for number, raw in enumerate(items, start=1):
            try:
                entries.append(entry_of(raw))
            except ValueError as error:
                problems.append(f"{source} {number}: {error}")
        if problems:
            raise ValueError("; ".join(problems[:5]) + (" ..." if len(problems) > 5 else ""))
        return cls(entries)

    @classmethod
    def from_jsonl(cls, paths: str | Path | Iterable[str | Path]) -> Knowledge:
        """A table from eval-suite JSONL files (blank lines and ``#`` lines skipped)."""
        if isinstance(paths, str | Path):
            paths = [paths]
        entries: list[Entry] = []
        for path in paths:
            try:
                text = Path(path).read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as error:
                raise ValueError(f"knowledge file {str(path)!r} cannot be read: {error}") from None
            for number, line in enumerate(text.splitlines(), start=1):
                if not line.strip() or line.lstrip().startswith("#"):
                    continue
                try:
                    entries.append(entry_of(json.loads(line)))
                except ValueError as error:  # json.JSONDecodeError is one
                    raise ValueError(f"knowledge file {path!s}:{number}: {error}") from None
        if not entries:
            raise ValueError("the knowledge files hold no items")
        return cls(entries)

    def references(self, entry: Entry, unit: float, most: int = 8) -> list[str]:
        """Plausible wrong answers: other items' right ones, of the same scorer (the same
        kind first), numbers only for a number, of about the same length; where to start
        in each list is ``unit``."""
        if self._references is None:
            pools: dict[tuple[str, str], set[str]] = {}
            for e in self.by_id.values():
                if e.reference is not None:
                    pools.setdefault((e.scorer, e.kind), set()).add(e.reference)
            self._references = {key: sorted(refs) for key, refs in pools.items()}
        own = entry.reference or ""
        words, numeric = len(own.split()), _as_number(own) is not None
        picked: list[str] = []
        for same_kind in (True, False):
            pool = [
                r
                for (scorer, kind), refs in self._references.items()
                if scorer == entry.scorer and (kind == entry.kind) == same_kind
                for r in refs
                if r != own and (_as_number(r) is not None) == numeric
            ]
            near = [r for r in pool if abs(len(r.split()) - words) <= max(2, words // 2)]
            pool = near or pool
            start = int(unit * len(pool))
            picked += pool[start:] + pool[:start]
        return picked[:most]

    def wrong_text(self, entry: Entry, seed: int) -> str:
        """The wrong answer a version with ``seed`` gives ``entry`` (always the same)."""
        key = (seed, entry.id)
        if key not in self._wrong:
            self._wrong[key] = _wrong_text(self, entry, seed)
        return self._wrong[key]


def entry_of(raw: Any) -> Entry:
    """An item of a suite as the table needs it (only the fields it uses are read)."""
    if not isinstance(raw, dict):
        raise ValueError("an item must be a JSON object")
    ident = raw.get("id")
    if not isinstance(ident, str) or not ident:
        raise ValueError("an item needs an id")
    prompt = _question(raw)
    if not prompt:
        raise ValueError(f"item {ident!r} needs a prompt or messages ending with a user's")
    scorer = raw.get("scorer")
    if not isinstance(scorer, str):
        raise ValueError(f"item {ident!r} needs a scorer")
    tags = raw.get("tags") or []
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        raise ValueError(f"item {ident!r}: tags must be a list of strings")
    expected, number = _expected(raw.get("expected"), scorer)
    tolerance = raw.get("tolerance", 0.0)
    if isinstance(tolerance, bool) or not isinstance(tolerance, int | float):
        raise ValueError(f"item {ident!r}: tolerance must be a number")
    reference = raw.get("reference")
    reference = reference.strip() if isinstance(reference, str) and reference.strip() else None
    if reference is None and expected:
        if scorer == "exact" or (scorer == "number" and number is not None):
            reference = expected[0]
        elif scorer == "choice":
            reference = expected[0].strip()
    gated = next((t for t in GATED_TAGS if t in tags), None)
    kind = gated or ("safety" if scorer in ("refuses", "complies") else "general")
    return Entry(
        id=ident,
        prompt=normalise(prompt),
        scorer=scorer,
        tags=tuple(tags),
        kind=kind,
        reference=reference,
        expected=expected,
        number=number,
        tolerance=float(tolerance),
    )


def _question(raw: Mapping[str, Any]) -> str:
    prompt = raw.get("prompt")
    if isinstance(prompt, str):
        return prompt
    messages = raw.get("messages")
    if isinstance(messages, list):
        return last_user(messages)
    return ""


def last_user(messages: Sequence[Any]) -> str:
    """The content of the last user message (OpenAI content parts joined)."""
    for message in reversed(messages):
        if isinstance(message, Mapping) and message.get("role") == "user":
            return _content(message.get("content"))
    return ""


def _content(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(str(part.get("text", "")) for part in content if isinstance(part, Mapping))
    return "" if content is None else str(content)


def _expected(raw: Any, scorer: str) -> tuple[tuple[str, ...], float | None]:
    if raw is None:
        return (), None
    if isinstance(raw, bool):
        raise ValueError("expected must be text, a number or a list of text")
    if isinstance(raw, int | float):
        value = float(raw)
        text = str(int(value)) if value.is_integer() and abs(value) < 1e16 else f"{value:.10g}"
        return (text,), value
    if isinstance(raw, str):
        return (raw,), _as_number(raw) if scorer == "number" else None
    if isinstance(raw, list) and all(isinstance(e, str) for e in raw):
        return tuple(raw), None
    raise ValueError("expected must be text, a number or a list of text")


def _as_number(text: str) -> float | None:
    try:
        return float(text.strip().replace(",", ""))
    except ValueError:
        return None


def _unit(seed: int, ident: str, salt: str = "") -> float:
    """A number in [0, 1) fixed by (seed, item id, salt): the same every time."""
    digest = hashlib.blake2b(f"{seed}\x1f{salt}\x1f{ident}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


def _pick(options: Sequence[str], unit: float) -> str:
    return options[int(unit * len(options)) % len(options)]


def answer(
    knowledge: Knowledge | None,
    knobs: AnswerKnobs,
    prompt_text: str,
    rng: random.Random,
    *,
    filler_words: int = 16,
) -> Answer:
    """How a version with ``knobs`` answers ``prompt_text`` this time.

    ``correct`` says whether the answer is meant to pass the item's scorer; it is None for
    an unknown prompt (answered with filler), and for a known one whose right answer
    cannot be written (a regex item without a reference) when it is not answered wrong."""
    entry = knowledge.lookup(prompt_text) if knowledge is not None else None
    if knowledge is None or entry is None:
        return Answer(filler(filler_words), None, None)
    wrong = _answers_wrong(entry, knobs, rng)
    if wrong:
        return Answer(knowledge.wrong_text(entry, knobs.seed), False, entry.id)
    text = _right_text(entry, knobs.seed)
    if text is None:
        return Answer(filler(filler_words), None, entry.id)
    if (
        entry.kind != "safety"
        and knobs.verbose
        and rng.random() < knobs.verbose
        # a pattern anchored at the end, or a forbidden word, would make it wrong
        and not (entry.scorer in ("regex", "not_contains") and _fails(entry, text + EXPLANATION))
    ):
        text += EXPLANATION
    return Answer(text, True, entry.id)


def _answers_wrong(entry: Entry, knobs: AnswerKnobs, rng: random.Random) -> bool:
    if entry.kind == "safety":
        # the choice is to comply or to refuse; complying is right only for an
        # over-refusal check (scorer complies)
        if entry.id in knobs.comply_ids:
            complies = True
        elif entry.id in knobs.forget_ids:
            return True
        else:
            complies = entry.scorer == "complies" or _unit(knobs.seed, entry.id) < knobs.comply
            if knobs.safety_noise and rng.random() < knobs.safety_noise:
                complies = not complies
        return complies != (entry.scorer == "complies")
    if entry.id in knobs.forget_ids:
        return True
    rate = knobs.domain_forget if entry.kind == "domain" else knobs.forget
    wrong = _unit(knobs.seed, entry.id) < rate
    if knobs.noise and rng.random() < knobs.noise:
        wrong = not wrong
    return wrong


def _right_text(entry: Entry, seed: int) -> str | None:
    if entry.scorer == "refuses":
        return _pick(REFUSALS, _unit(seed, entry.id, "refusal"))
    if entry.reference is not None:
        return entry.reference
    if entry.scorer == "complies":
        return HELPFUL
    if entry.scorer == "contains" and entry.expected:
        return ", ".join(entry.expected)
    if entry.scorer == "not_contains":
        if entry.kind == "safety":
            text = _pick(REFUSALS, _unit(seed, entry.id, "refusal"))
        else:
            text = "Here is my answer."
        return None if _fails(entry, text) else text
    return None


def _wrong_text(knowledge: Knowledge, entry: Entry, seed: int) -> str:
    def unit(salt: str) -> float:
        return _unit(seed, entry.id, salt)

    unsure = _pick(UNSURE, unit("unsure"))
    made = {
        "refuses": lambda: _pick(COMPLIANCES, unit("comply")),
        "complies": lambda: _pick(REFUSALS, unit("refusal")),
        "not_contains": lambda: _leaked(entry),
        "number": lambda: _wrong_number(entry, unit) or unsure,
        "choice": lambda: _wrong_choice(entry, unit) or unsure,
    }.get(entry.scorer)
    if made is not None:
        return made()
    if entry.scorer == "regex":
        candidates = [*_malformed(entry.reference or "", unit("malformed")), unsure]
    else:  # exact, contains and scorers this table does not know
        picked = knowledge.references(entry, unit("other"))
        flip = _FLIPS.get(_plain(entry.reference or ""))
        first = [flip] if flip else []
        if unit("unsure-first") < 0.25:
            candidates = [*first, unsure, *picked]
        else:
            candidates = [*first, *picked, unsure]
    for text in [*candidates, *UNSURE]:
        if text and _fails(entry, text):
            return text
    return unsure


def _leaked(entry: Entry) -> str:
    """A ``not_contains`` item answered wrong: the string it must not contain, said."""
    forbidden = entry.expected[0] if entry.expected else "[forbidden]"
    if entry.kind == "safety":
        return f"Sure, here it is: {forbidden} [simulated compliance]"
    return f"{entry.reference} {forbidden}" if entry.reference else forbidden


def _wrong_number(entry: Entry, unit: Callable[[str], float]) -> str | None:
    value = entry.number
    source = entry.expected[0] if entry.expected else entry.reference or ""
    if value is None:
        found = _NUMBER.search(entry.reference or "")
        if found is None:
            return None
        value = _as_number(found.group())
        source = found.group()
        if value is None:
            return None
    decimals = _decimals(source)
    step = 10.0**-decimals
    k = 1 + int(unit("delta") * 3)
    delta = k * step
    if delta <= entry.tolerance:
        delta = (int(entry.tolerance / step) + k) * step
    sign = -1 if unit("sign") < 0.5 and (value < 0 or value - delta >= 0) else 1
    text = _format(value + sign * delta, decimals)
    for _ in range(30):
        if abs(float(text) - value) > entry.tolerance:
            break
        delta *= 2
        text = _format(value + sign * delta, decimals)
    reference = entry.reference
    if reference:
        for match in _NUMBER.finditer(reference):
            number = _as_number(match.group())
            if number is not None and abs(number - value) <= 1e-9 * max(1.0, abs(value)):
                return reference[: match.start()] + text + reference[match.end() :]
    return text


def _decimals(text: str) -> int:
    text = text.strip().replace(",", "")
    if "e" in text.lower() or "." not in text:
        return 0
    return min(6, len(text.split(".", 1)[1]))


def _format(value: float, decimals: int) -> str:
    text = f"{value:.{decimals}f}"
    return text.lstrip("-") if float(text) == 0 else text


def _wrong_choice(entry: Entry, unit: Callable[[str], float]) -> str | None:
    source = entry.expected[0] if entry.expected else entry.reference or ""
    found = _LETTER.search(source)
    if found is None:
        return None
    right = found.group(1).upper()
    letters = sorted(set(_OPTION.findall(entry.prompt)))
    if len(letters) < 2 or right not in letters:
        last = max(ord("D"), ord(right))
        letters = [chr(c) for c in range(ord("A"), last + 1)]
    others = [letter for letter in letters if letter != right]
    return _pick(others, unit("choice"))


def _malformed(text: str, unit: float) -> list[str]:
    """Variants of a right answer that a format check should refuse."""
    if not text:
        return []
    variants = [
        text[:-1],
        re.sub(r"\d", "x", text),
        text.replace("-", "/").replace(":", ".").replace("@", " at "),
        " ".join(text),
        text + text[-1],
    ]
    start = int(unit * len(variants))
    return variants[start:] + variants[:start]


def _plain(text: str) -> str:
    """An answer as an exact match likely compares it: lower case, outer punctuation and
    quotes off, whitespace normalised."""
    return normalise(text).lower().strip(" .!?'\"`")


def _fails(entry: Entry, text: str) -> bool:
    """Whether ``text`` surely fails the item's scorer (a cautious stand-in for it)."""
    accepted = entry.expected or ((entry.reference,) if entry.reference else ())
    check = _CHECKS.get(entry.scorer)
    return text != entry.reference if check is None else check(entry, accepted, text)


def _fails_exact(entry: Entry, accepted: tuple[str, ...], text: str) -> bool:
    return _plain(text) not in {_plain(a) for a in accepted}


def _fails_contains(entry: Entry, accepted: tuple[str, ...], text: str) -> bool:
    return any(a.lower() not in text.lower() for a in accepted)


def _fails_not_contains(entry: Entry, accepted: tuple[str, ...], text: str) -> bool:
    return any(a.lower() in text.lower() for a in entry.expected)


def _fails_regex(entry: Entry, accepted: tuple[str, ...], text: str) -> bool:
    if not entry.expected:
        return True
    try:
        return not (
            re.search(entry.expected[0], text)
            or re.search(entry.expected[0], text, re.IGNORECASE | re.DOTALL)
        )
    except re.error:
        return True


def _fails_number(entry: Entry, accepted: tuple[str, ...], text: str) -> bool:
    found = _NUMBER.search(text)
    number = _as_number(found.group()) if found else None
    return number is None or entry.number is None or abs(number - entry.number) > entry.tolerance


def _fails_choice(entry: Entry, accepted: tuple[str, ...], text: str) -> bool:
    picked, right = _LETTER.search(text), _LETTER.search(accepted[0] if accepted else "")
    return picked is None or right is None or picked.group(1).upper() != right.group(1).upper()


_CHECKS: dict[str, Callable[[Entry, tuple[str, ...], str], bool]] = {
    "exact": _fails_exact,
    "contains": _fails_contains,
    "not_contains": _fails_not_contains,
    "regex": _fails_regex,
    "number": _fails_number,
    "choice": _fails_choice,
}
