from __future__ import annotations

import re
from collections.abc import Callable
from itertools import product

import pytest

from controlplane import naming


@pytest.mark.parametrize("name", ["chat", "chat-7b", "a", "l" + "x" * 62])
def test_valid_service_names(name: str) -> None:
    assert naming.dns1035_label_problem(name, "model name") is None


@pytest.mark.parametrize(
    "name", ["Chat", "7b", "chat-", "-chat", "chat_7b", "chat.7b", "", "x" * 64]
)
def test_invalid_service_names_say_why(name: str) -> None:
    problem = naming.dns1035_label_problem(name, "model name")
    assert problem is not None
    assert "model name" in problem


@pytest.mark.parametrize("name", ["v1", "2024-11-rc1", "1"])
def test_version_names_may_start_with_a_digit(name: str) -> None:
    assert naming.dns1123_label_problem(name, "version name") is None


@pytest.mark.parametrize(
    ("key", "ok"),
    [
        ("team", True),
        ("app.kubernetes.io/name", True),
        ("a/b/c", False),
        ("-x", False),
        ("UPPER_ok.1", True),
        ("Bad.Prefix/x", False),
    ],
)
def test_label_keys(key: str, ok: bool) -> None:
    assert (naming.label_key_problem(key) is None) is ok


@pytest.mark.parametrize(
    ("value", "ok"), [("", True), ("nlp", True), ("a b", False), ("x" * 64, False)]
)
def test_label_values(value: str, ok: bool) -> None:
    assert (naming.label_value_problem("k", value) is None) is ok


@pytest.mark.parametrize(
    ("name", "ok"),
    [("nvidia.com/gpu", True), ("amd.com/gpu", True), ("gpu", True), ("not a resource", False)],
)
def test_resource_names(name: str, ok: bool) -> None:
    assert (naming.resource_name_problem(name) is None) is ok


def test_workload_name_joins_model_and_version() -> None:
    assert naming.workload_name("chat", "v2") == "chat-v2"


@pytest.mark.parametrize(
    ("check", "valid"),
    [
        (lambda v: naming.dns1035_label_problem(v, "model name"), "chat"),
        (lambda v: naming.dns1123_label_problem(v, "version name"), "v1"),
        (naming.label_key_problem, "app.kubernetes.io/name"),
        (lambda v: naming.label_value_problem("team", v), "nlp"),
        (naming.resource_name_problem, "nvidia.com/gpu"),
        (naming.env_name_problem, "HF_HOME"),
    ],
)
@pytest.mark.parametrize("suffix", ["\n", "\r\n", "\n\n", " ", "\x00"])
def test_names_are_matched_whole_so_a_trailing_newline_fails(
    check: Callable[[str], str | None], valid: str, suffix: str
) -> None:
    assert check(valid) is None
    assert check(valid + suffix) is not None
    assert check(suffix + valid) is not None


def test_a_label_key_prefix_with_a_trailing_newline_fails() -> None:
    assert naming.label_key_problem("example.com\n/team") is not None


@pytest.mark.parametrize("selector", ["\x00=x", "team=\x00", '"=x', "a b=c", "x=" + "v" * 64])
def test_a_label_selector_is_checked_by_the_label_rules(selector: str) -> None:
    from controlplane.errors import InvalidRequestError
    from controlplane.registry.versions import parse_label_selector

    with pytest.raises(InvalidRequestError) as raised:
        parse_label_selector(selector)
    assert raised.value.code == "invalid_label_selector"


def test_a_label_selector_may_select_the_empty_value() -> None:
    from controlplane.registry.versions import parse_label_selector

    assert parse_label_selector("team=,stage==prod") == {"team": "", "stage": "prod"}


def _gateway_ok(value: str) -> bool:
    return all(naming.dns1123_label_problem(p, "x") is None for p in value.split("/", 1))


# each pattern, the validator's verdict, and the field's maxLength where it counts too
RULES: list[tuple[str, Callable[[str], bool], int | None]] = [
    (naming.DNS1035_LABEL_PATTERN, lambda v: naming.dns1035_label_problem(v, "x") is None, None),
    (naming.DNS1123_LABEL_PATTERN, lambda v: naming.dns1123_label_problem(v, "x") is None, None),
    (naming.GATEWAY_PATTERN, _gateway_ok, None),
    (naming.LABEL_KEY_PATTERN, lambda v: naming.label_key_problem(v) is None, None),
    (
        naming.OPTIONAL_LABEL_KEY_PATTERN,
        lambda v: not v or naming.label_key_problem(v) is None,
        None,
    ),
    (naming.LABEL_VALUE_PATTERN, lambda v: naming.label_value_problem("k", v) is None, None),
    (naming.RESOURCE_NAME_PATTERN, lambda v: naming.resource_name_problem(v) is None, 253),
    (naming.ENV_NAME_PATTERN, lambda v: naming.env_name_problem(v) is None and len(v) <= 256, None),
]


@pytest.mark.parametrize(("pattern", "valid", "max_length"), RULES)
def test_the_documented_patterns_are_the_rules(
    pattern: str, valid: Callable[[str], bool], max_length: int | None
) -> None:
    """The OpenAPI document's patterns accept exactly what the validators accept (read as
    JSON Schema reads them: ``$`` is the very end, not also before a final newline)."""
    assert pattern.startswith("^")
    assert pattern.endswith("$")
    compiled = re.compile(pattern[:-1] + r"\Z")
    alphabet = "a0-Z_./"
    samples = ["", "a\n", "chat-7b", "9lives", "nvidia.com/gpu", "a" * 63, "a" * 64, "a" * 257]
    samples += ["".join(chars) for n in range(1, 5) for chars in product(alphabet, repeat=n)]
    samples += ["a" + "-" * 61 + "b", "a" + "-" * 62 + "b", "x.io/" + "a" * 63, "x/" + "a" * 64]
    samples += ["/a", "/", "a/", "x.io/a/b", "x.io//a", "x" * 254]
    for sample in samples:
        documented = compiled.search(sample) is not None
        documented = documented and (max_length is None or len(sample) <= max_length)
        assert documented == valid(sample), sample


def test_a_label_key_with_a_slash_needs_a_prefix() -> None:
    # Kubernetes refuses "/team": found when the document's pattern was checked against it
    assert naming.label_key_problem("/team") is not None
    assert naming.label_key_problem("example.com/team") is None
