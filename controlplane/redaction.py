"""What no API response and no audit record ever shows: credentials.

Credentials belong in Kubernetes Secrets, referenced from a model's or a version's env as
``{"secret": NAME, "key": KEY}`` (rendered as ``valueFrom.secretKeyRef``): a reference
holds no secret and is shown as it is. A plain value is still stored and put into the
pod's env as given, but every API response and every audit record shows
:data:`REDACTED` in its place when

- its **name** says it is a credential: after upper-casing and turning every run of other
  characters into ``_``, the name contains ``SECRET``, ``PASSWORD``, ``PASSWD``,
  ``PASSPHRASE``, ``CREDENTIAL``, ``PRIVATE_KEY``, ``API_KEY``/``APIKEY``,
  ``ACCESS_KEY``/``ACCESSKEY``, ``AUTHORIZATION`` or ``COOKIE``, or its last part ends
  in ``TOKEN`` or is ``KEY``, ``PWD``, ``PASS``, ``AUTH``, ``SIG`` or ``SIGNATURE``
  (``HF_TOKEN``, ``OPENAI_API_KEY``, ``AWS_SECRET_ACCESS_KEY``, ``DB_PASSWORD``; not
  ``TOKENIZERS_PARALLELISM``, ``MAX_TOKENS`` or ``TOKEN_FILE``), or
- its **value** looks like a credential of a known format anywhere in it (Hugging Face
  ``hf_...``, OpenAI/Anthropic ``sk-...``, AWS ``AKIA...``/``ASIA...``, GitHub ``ghp_...``
  and ``github_pat_...``, GitLab ``glpat-...``, Slack ``xox[abposr]-...``, Google
  ``AIza...``, Stripe ``sk_live_...``, npm ``npm_...``, a JWT, a PEM private key, a
  ``Bearer ...`` header).

Inside a value, only the secret part goes when it can be told apart: a URL's password
(``postgres://app:***redacted***@db/app``) and the value of a URL query parameter whose
name is a credential's (``?sig=***redacted***``). In args, the value after a flag whose
name is a credential's goes too (``--api-key ***redacted***``, ``--hf-token=***redacted***``).

The rule is the same for every role, admins included: the API is not a way to read a
credential back. Sending :data:`REDACTED` back where the API showed it (a PATCH made from
a GET) keeps the stored value; anywhere else it is refused.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping, Sequence
from typing import Any

REDACTED = "***redacted***"

_NAME_ANYWHERE = (
    "SECRET",
    "PASSWORD",
    "PASSWD",
    "PASSPHRASE",
    "CREDENTIAL",
    "PRIVATE_KEY",
    "PRIVATEKEY",
    "API_KEY",
    "APIKEY",
    "ACCESS_KEY",
    "ACCESSKEY",
    "AUTHORIZATION",
    "COOKIE",
)
_NAME_LAST = frozenset({"KEY", "PWD", "PASS", "AUTH", "SIG", "SIGNATURE"})

_CREDENTIAL = re.compile(
    r"(?<![A-Za-z0-9])(?:"
    r"hf_[A-Za-z0-9]{30,}"  # Hugging Face
    r"|api_org_[A-Za-z0-9]{30,}"  # Hugging Face organization (older)
    r"|sk-[A-Za-z0-9_-]{20,}"  # OpenAI, Anthropic (sk-ant-), DeepSeek, ...
    r"|[rs]k_(?:live|test)_[A-Za-z0-9]{16,}"  # Stripe
    r"|(?:AKIA|ASIA)[A-Z0-9]{16}(?![A-Za-z0-9])"  # AWS access key ids
    r"|gh[pousr]_[A-Za-z0-9]{30,}"  # GitHub
    r"|github_pat_[A-Za-z0-9_]{30,}"
    r"|glpat-[A-Za-z0-9_-]{20,}"  # GitLab
    r"|xox[abposr]-[A-Za-z0-9-]{10,}"  # Slack
    r"|AIza[A-Za-z0-9_-]{35}"  # Google API keys
    r"|npm_[A-Za-z0-9]{36}"  # npm
    r"|eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*"  # a JWT
    r"|-----BEGIN[A-Z ]*PRIVATE KEY-----"  # PEM
    r"|(?i:bearer)\s+[A-Za-z0-9._~+/=-]{16,}"  # an Authorization header's value
    r")"
)
# scheme://user:PASSWORD@host: the password only
_URL_PASSWORD = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.-]*://[^/\s:@]*:)(?P<password>[^/\s@]+)@")
# ?name=VALUE / &name=VALUE: the value only, when the name is a credential's
_QUERY_PARAM = re.compile(r"(?P<head>[?&;](?P<name>[A-Za-z0-9_.-]+)=)(?P<value>[^&#;\s]+)")
# NAME=VALUE as one arg (e.g. ``--env HF_TOKEN=...`` to a wrapper)
_ASSIGNMENT = re.compile(r"(?P<name>[A-Za-z_][A-Za-z0-9_.-]*)=(?P<value>.+)", re.DOTALL)


def sensitive_name(name: str) -> bool:
    """The name (of an env variable, a flag, a JSON key) says its value is a credential."""
    # every answer asks again about the same few names; long ones are not kept (a JSON key
    # can be kilobytes long, and the cache must stay small whatever is stored)
    return _known_name(name) if len(name) <= 128 else _sensitive(name)


@functools.lru_cache(maxsize=4096)
def _known_name(name: str) -> bool:
    return _sensitive(name)


def _sensitive(name: str) -> bool:
    normal = re.sub(r"[^A-Z0-9]+", "_", name.upper()).strip("_")
    if any(word in normal for word in _NAME_ANYWHERE):
        return True
    last = normal.rsplit("_", 1)[-1]
    return last in _NAME_LAST or last.endswith("TOKEN")


def credential_like(value: str) -> bool:
    """The value holds something that looks like a credential (see the module docstring)."""
    return redact_text(value) != value


def redact_text(value: str) -> str:
    """``value`` as shown: a URL's password and credential query parameters masked, and the
    whole value when a credential of a known format is left in it."""

    if _CREDENTIAL.search(value):
        return REDACTED
    # no credential in the value, so none in it once masked (a mask is followed by the
    # delimiter that ended what it replaced): the last pass of mask_text has nothing to do
    return _mask_secret_parts(value)


def mask_text(text: str) -> str:
    """Free text (a server's error message) with each credential in it masked, the rest
    kept: unlike a value, a message stays readable around what it echoed."""
    return _CREDENTIAL.sub(REDACTED, _mask_secret_parts(text))


def _mask_secret_parts(text: str) -> str:
    """A URL's password and credential query parameters masked. Each pattern runs only on
    text that holds what it must match ('://', '='): the URL pattern backtracks on every
    letter of a long word, and every answer's every string passes here."""

    def query(match: re.Match[str]) -> str:
        return match["head"] + REDACTED if sensitive_name(match["name"]) else match[0]

    if "://" in text:
        text = _URL_PASSWORD.sub(lambda m: f"{m['head']}{REDACTED}@", text)
    if "=" in text:
        text = _QUERY_PARAM.sub(query, text)
    return text


def redact_value(name: str, value: str) -> str:
    """A plain value named ``name`` (an env variable, a JSON key), as shown."""
    if value and sensitive_name(name):
        return REDACTED
    return redact_text(value)


def redact_env(env: Mapping[str, Any]) -> dict[str, Any]:
    """An env as shown: plain values redacted by the rule; Secret references as they are."""
    return {
        name: redact_value(name, value) if isinstance(value, str) else value
        for name, value in env.items()
    }


def _flag_name(arg: str) -> str | None:
    return arg.lstrip("-") if arg.startswith("-") and len(arg.lstrip("-")) > 0 else None


def redact_args(args: Sequence[str]) -> list[str]:
    """Server args as shown: ``--api-key VALUE`` and ``--api-key=VALUE`` lose the value,
    ``NAME=VALUE`` does when the name is a credential's, and any credential-looking arg
    goes whole."""
    shown: list[str] = []
    hide_next = False
    for arg in args:
        if hide_next and not arg.startswith("-"):
            shown.append(REDACTED if arg else arg)
            hide_next = False
            continue
        hide_next = False
        head, eq, value = arg.partition("=")
        flag = _flag_name(head)
        if flag is not None and sensitive_name(flag):
            if eq:
                shown.append(f"{head}={REDACTED}" if value else arg)
            else:
                shown.append(arg)
                hide_next = True
            continue
        assignment = _ASSIGNMENT.fullmatch(arg) if flag is None else None
        if assignment and sensitive_name(assignment["name"]):
            shown.append(f"{assignment['name']}={REDACTED}")
            continue
        shown.append(redact_text(arg))
    return shown


def redact_json(value: Any, name: str | None = None) -> Any:
    """A JSON document as shown (audit details, version metadata): ``env`` objects and
    ``args`` lists by their own rules, any other text by its key's name and its look."""
    if isinstance(value, Mapping):
        shown: dict[str, Any] = {}
        for key, item in value.items():
            if key == "env" and isinstance(item, Mapping):
                shown[key] = redact_env(item)
            elif key == "args" and _strings(item):
                shown[key] = redact_args(item)
            else:
                shown[key] = redact_json(item, str(key))
        return shown
    if isinstance(value, list):
        return [redact_json(item, name) for item in value]
    if isinstance(value, str):
        return redact_value(name, value) if name is not None else redact_text(value)
    return value


def _strings(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(item, str) for item in value)


# --- sending back what was shown ---------------------------------------------------------


def keep_redacted_env(given: Mapping[str, Any], stored: Mapping[str, Any]) -> dict[str, Any]:
    """A PATCH's env where a value equal to what the API showed for a redacted stored value
    (sent back from a GET) stands for the stored value."""
    shown = redact_env(stored)
    kept: dict[str, Any] = {}
    for name, value in given.items():
        current = stored.get(name)
        was_redacted = name in stored and shown[name] != current
        kept[name] = current if was_redacted and value == shown[name] else value
    return kept


def keep_redacted_args(given: Sequence[str], stored: Sequence[str]) -> list[str]:
    """The same for args, position by position."""
    shown = redact_args(stored)
    return [
        stored[index]
        if index < len(stored) and shown[index] != stored[index] and arg == shown[index]
        else arg
        for index, arg in enumerate(given)
    ]


def placeholder_problem(value: str, what: str) -> str | None:
    """Why ``value`` may not be stored: it holds the placeholder the API shows."""
    if REDACTED in value:
        return (
            f"{what} holds {REDACTED!r}, the placeholder the API shows in place of a "
            "credential: send the real value (better: reference a Kubernetes Secret, "
            '{"secret": NAME, "key": KEY}), or, in a PATCH, send back exactly what a GET '
            "showed to keep the stored value"
        )
    return None
