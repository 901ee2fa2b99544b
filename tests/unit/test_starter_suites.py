"""The starter suites shipped in controlplane/evals: valid, the advertised size, every
reference passing its own scorer, and exactly what scripts/make_starter_suites.py writes."""

from __future__ import annotations

import importlib.util
import sys
from collections import Counter
from pathlib import Path
from types import ModuleType

import pytest

from controlplane.analysis.scoring import is_refusal, score
from controlplane.evals import STARTER_SUITES, starter_path
from controlplane.evalsuite import EvalItem, parse_jsonl

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "make_starter_suites.py"
LICENSE_LINE = "# license: same as the project (see LICENSE / pyproject)"


def items_of(name: str) -> list[EvalItem]:
    return parse_jsonl(starter_path(name).read_text(encoding="utf-8"))


def load_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("make_starter_suites", SCRIPT)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault(spec.name, module)
    spec.loader.exec_module(module)
    return module


def test_starter_path_names_the_two_files() -> None:
    assert STARTER_SUITES == ("general", "safety")
    for name in STARTER_SUITES:
        path = starter_path(name)
        assert path.name == f"starter-{name}.jsonl"
        assert path.is_file()
    with pytest.raises(ValueError, match="no starter suite 'domain'"):
        starter_path("domain")


@pytest.mark.parametrize("name", STARTER_SUITES)
def test_the_first_line_is_the_license(name: str) -> None:
    text = starter_path(name).read_text(encoding="utf-8")
    assert text.splitlines()[0] == LICENSE_LINE
    assert text.endswith("\n")


def test_the_general_suite() -> None:
    items = items_of("general")
    assert len(items) == 300
    assert all(i.tags[0] == "general" and i.gated_tag == "general" for i in items)
    assert Counter(i.tags[1] for i in items) == {
        "arithmetic": 110,
        "facts": 90,
        "instruction-following": 50,
        "formats": 50,
    }
    prefixes = {"arithmetic": "arith", "facts": "fact", "instruction-following": "instr"}
    for sub, count in Counter(i.tags[1] for i in items).items():
        prefix = prefixes.get(sub, "fmt")
        ids = [i.id for i in items if i.tags[1] == sub]
        assert ids == [f"gen-{prefix}-{n:03d}" for n in range(1, count + 1)]
    assert all(i.scorer == "number" for i in items if i.tags[1] == "arithmetic")
    facts = Counter(i.scorer for i in items if i.tags[1] == "facts")
    assert set(facts) == {"exact", "choice"}
    assert facts["choice"] >= 20
    assert set(Counter(i.expected for i in items if i.scorer == "choice")) == set("ABCD")


def test_the_safety_suite() -> None:
    items = items_of("safety")
    probes = [i for i in items if i.scorer == "refuses"]
    checks = [i for i in items if i.scorer == "complies"]
    assert len(items) == 50
    assert len(probes) == 40
    assert len(checks) == 10
    assert [i.id for i in probes] == [f"safe-{n:03d}" for n in range(1, 41)]
    assert [i.id for i in checks] == [f"overref-{n:03d}" for n in range(1, 11)]
    assert all(i.tags[0] == "safety" and len(i.tags) == 2 for i in probes)
    assert Counter(i.tags[1] for i in probes) == dict.fromkeys(
        ["weapons", "malware", "self-harm", "fraud", "privacy", "hate", "drugs", "violence"], 5
    )
    assert all(i.tags == ("general", "over-refusal") for i in checks)
    # the references of the probes are refusals, of the over-refusal checks helpful answers
    assert all(i.reference is not None and is_refusal(i.reference) for i in probes)
    assert not any(i.reference is not None and is_refusal(i.reference) for i in checks)


@pytest.mark.parametrize("name", STARTER_SUITES)
def test_ids_and_prompts_are_unique_and_every_item_has_a_reference(name: str) -> None:
    items = items_of(name)
    assert len({i.id for i in items}) == len(items)
    assert len({i.prompt for i in items}) == len(items)
    assert all(i.prompt and i.reference for i in items)


@pytest.mark.parametrize("name", STARTER_SUITES)
def test_every_reference_passes_its_own_scorer(name: str) -> None:
    failures = {}
    for i in items_of(name):
        assert i.reference is not None
        result = score(i, i.reference)
        if not result.passed:
            failures[i.id] = result.detail
    assert failures == {}


def test_the_script_writes_exactly_the_shipped_files(tmp_path: Path) -> None:
    script = load_script()
    first = script.write_suites(tmp_path / "one")
    second = script.write_suites(tmp_path / "two")
    assert sorted(p.name for p in first) == [f"starter-{n}.jsonl" for n in STARTER_SUITES]
    for one, two in zip(first, second, strict=True):
        assert one.read_bytes() == two.read_bytes()
        assert one.read_bytes() == (starter_path(one.stem.removeprefix("starter-"))).read_bytes()
    assert script.main(["--check", "--out-dir", str(tmp_path / "one")]) == 0
    (tmp_path / "one" / "starter-safety.jsonl").write_text("# stale\n", encoding="utf-8")
    assert script.main(["--check", "--out-dir", str(tmp_path / "one")]) == 1


def test_a_good_answer_may_explain_itself_on_the_lines_after() -> None:
    explained = {}
    for i in items_of("general"):
        assert i.reference is not None
        result = score(i, i.reference + "\nExplanation: this follows from the question.")
        if not result.passed:
            explained[i.id] = result.detail
    assert explained == {}


@pytest.mark.parametrize("name", STARTER_SUITES)
def test_no_item_passes_a_non_answer(name: str) -> None:
    for i in items_of(name):
        if i.scorer not in ("refuses", "complies"):
            assert not score(i, "I am not sure.").passed, i.id
            assert not score(i, "").passed, i.id


def test_the_format_checks_are_strict_where_the_prompt_is() -> None:
    by_id = {i.id: i for i in items_of("general")}
    upper = next(i for i in by_id.values() if "in capital letters" in (i.prompt or ""))
    assert upper.reference is not None
    assert score(upper, f'"{upper.reference}."').passed
    assert not score(upper, upper.reference.lower()).passed
    assert not score(upper, f"Sure: {upper.reference}").passed
    bullets = next(i for i in by_id.values() if "bulleted list" in (i.prompt or ""))
    assert bullets.reference is not None
    assert score(bullets, f"Here you go:\n{bullets.reference}\n").passed
    assert not score(bullets, f"{bullets.reference}\n- one more").passed
    assert not score(bullets, bullets.reference.replace("- ", "* ")).passed
    multiples = next(i for i in by_id.values() if "positive multiples" in (i.prompt or ""))
    assert multiples.reference is not None
    assert not score(multiples, multiples.reference + ", 1000").passed
